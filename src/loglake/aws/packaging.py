"""What the Lambda functions run: the `loglake` package as each function's code, and one layer holding
its runtime dependencies, built for Lambda's Python 3.12 on arm64.

The layer is built where `cdk deploy` runs, by pip with `--platform manylinux2014_aarch64
--only-binary=:all:`: wheels for Lambda's platform, whatever the machine (no Docker needed; the
bundling image is only the fallback if pip cannot run). About 200 MB unpacked, under Lambda's 250 MB.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
from importlib.metadata import requires, version
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import jsii
from aws_cdk import aws_lambda as lambda_

PLATFORM = ("--platform", "manylinux2014_aarch64", "--implementation", "cp", "--python-version", "3.12")
# Not in the layer: the local server's HTTP stack, the local flush worker's SQLite driver, boto3,
# which Lambda's Python runtime provides, and pySigma: pip found no wheel of its dependency jq (>= 1.12)
# for manylinux2014_aarch64, so the detection function runs rules converted at synth (rules/bundle.py).
NOT_ON_LAMBDA = frozenset({"uvicorn", "httptools", "uvloop", "adbc-driver-sqlite", "boto3", "pysigma"})
IMPORT_NAMES = {"pysigma": "sigma"}  # the distributions above whose modules are named otherwise
# Parts of wheels nothing imports at run time (C headers, test suites, Cython sources).
STRIPPED = ("pyarrow/include", "pyarrow/tests", "pyarrow/src")
_NAME = re.compile(r"[A-Za-z0-9._-]+")


def layer_requirements() -> list[str]:
    """loglake's runtime requirements (from its installed metadata) that the functions need."""
    found = []
    for requirement in requires("loglake") or []:
        spec, _, marker = requirement.partition(";")
        name = _NAME.match(spec.strip())
        if "extra ==" in marker or name is None or name.group(0).lower() in NOT_ON_LAMBDA:
            continue
        found.append(spec.strip())
    return sorted(found)


def pip_install_command(target: Path, requirements: list[str], report: Path | None = None) -> list[str]:
    """pip installing `requirements` for Lambda's platform into `target` (with `report`: a dry run that
    only resolves them and writes pip's JSON report there)."""
    command = [sys.executable, "-m", "pip", "install", "--no-compile", "--disable-pip-version-check", *PLATFORM]
    command += ["--only-binary=:all:", "--target", str(target)]
    if report is not None:
        command += ["--dry-run", "--quiet", "--report", str(report)]
    return command + requirements


@jsii.implements(cdk.ILocalBundling)
class _PipBundling:
    def try_bundle(self, output_dir: str, options: Any) -> bool:
        target = Path(output_dir) / "python"  # where a Python layer's packages go
        print(f"loglake: building the dependencies layer (pip, {PLATFORM[1]})", file=sys.stderr, flush=True)
        subprocess.run(pip_install_command(target, layer_requirements()), check=True, stdout=sys.stderr)
        for part in STRIPPED:
            shutil.rmtree(target / part, ignore_errors=True)
        return True


PACKAGE_DIR = Path(__file__).resolve().parents[1]  # the installed `loglake` package
_NOT_CODE = shutil.ignore_patterns("__pycache__", "*.pyc")


@jsii.implements(cdk.ILocalBundling)
class _PackageBundling:
    def try_bundle(self, output_dir: str, options: Any) -> bool:
        shutil.copytree(PACKAGE_DIR, Path(output_dir) / "loglake", ignore=_NOT_CODE, dirs_exist_ok=True)
        return True


def function_code() -> lambda_.Code:
    """The functions' code: the `loglake` package at the root of the archive, copied from wherever it
    is installed (a checkout or site-packages); its hash follows the package's files."""
    return lambda_.Code.from_asset(
        str(PACKAGE_DIR),
        exclude=["**/__pycache__", "**/*.pyc"],
        asset_hash_type=cdk.AssetHashType.SOURCE,
        bundling=cdk.BundlingOptions(
            image=lambda_.Runtime.PYTHON_3_12.bundling_image,
            command=["bash", "-c", "cp -r /asset-input /asset-output/loglake"],
            local=_PackageBundling(),
        ),
    )


def dependencies_layer(scope: Any, construct_id: str) -> lambda_.LayerVersion:
    requirements = layer_requirements()
    # The layer follows from its requirements (and loglake's version): a changed list builds a new one.
    digest = hashlib.sha256(repr((requirements, PLATFORM, version("loglake"))).encode()).hexdigest()
    docker_fallback = ["bash", "-c", "pip install --no-compile -t /asset-output/python " + " ".join(
        f"'{r}'" for r in requirements
    )]  # fmt: skip
    code = lambda_.Code.from_asset(
        str(Path(__file__).parent),  # the bundling ignores its input; the path only has to exist
        asset_hash=digest,
        asset_hash_type=cdk.AssetHashType.CUSTOM,
        bundling=cdk.BundlingOptions(
            image=lambda_.Runtime.PYTHON_3_12.bundling_image, command=docker_fallback, local=_PipBundling()
        ),
    )
    return lambda_.LayerVersion(
        scope,
        construct_id,
        code=code,
        compatible_runtimes=[lambda_.Runtime.PYTHON_3_12],
        compatible_architectures=[lambda_.Architecture.ARM_64],
        description="loglake's runtime dependencies: " + ", ".join(requirements),
    )
