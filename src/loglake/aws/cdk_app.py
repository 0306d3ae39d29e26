"""`cdk` entry point: deploy/cdk.json runs `python -m loglake.aws.cdk_app loglake-aws.json` from deploy/.
The configuration is LOGLAKE_AWS_CONFIG when set, else the file named on the command line."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from loglake.aws.deployment import DeploymentConfigError, load_deployment


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    config = Path(os.environ.get("LOGLAKE_AWS_CONFIG") or (args[0] if args else "deploy/loglake-aws.json"))
    try:
        deployment = load_deployment(config)
    except DeploymentConfigError as e:
        sys.exit(f"loglake: {config}: {e}")  # one line for `cdk`'s output, not a traceback
    from loglake.aws.stack import build_app

    try:
        build_app(deployment).synth()
    except DeploymentConfigError as e:  # found while building: a rule of detections.rulesDir
        sys.exit(f"loglake: {config}: {e}")


if __name__ == "__main__":
    main()
