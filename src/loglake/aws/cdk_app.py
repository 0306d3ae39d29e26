"""`cdk` entry point (deploy/cdk.json runs `python -m loglake.aws.cdk_app`): the stack of the
configuration named by LOGLAKE_AWS_CONFIG (default deploy/loglake-aws.json)."""

from __future__ import annotations

import os
from pathlib import Path

from loglake.aws.deployment import load_deployment


def main() -> None:
    from loglake.aws.stack import build_app

    config = Path(os.environ.get("LOGLAKE_AWS_CONFIG", "deploy/loglake-aws.json"))
    build_app(load_deployment(config)).synth()


if __name__ == "__main__":
    main()
