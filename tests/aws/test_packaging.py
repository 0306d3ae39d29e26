"""The functions' dependencies layer: what goes in it, that pip finds all of it for Lambda's arm64
Python 3.12, and that the handlers need nothing left out of it."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from loglake.aws.packaging import IMPORT_NAMES, NOT_ON_LAMBDA, layer_requirements, pip_install_command

# Every module a handler imports, at load or inside its function.
HANDLER_MODULES = [
    "loglake.aws.handlers",
    "loglake.api.app",
    "loglake.aws.athena",
    "loglake.aws.athena_search",
    "loglake.aws.stream_flush",
    "loglake.aws.compaction",
    "loglake.aws.retention",
    "loglake.aws.amplify_steps",
    "loglake.amplify.source",
    "loglake.lake.objectstore",
    "loglake.aws.ask",
    "loglake.ask.rule_draft",
]


def test_the_layer_holds_the_runtime_requirements_the_functions_use() -> None:
    names = {r.split(">")[0].split("=")[0].split("<")[0].strip().lower() for r in layer_requirements()}
    assert {"pyarrow", "duckdb", "msgspec", "httpx", "pytz"} <= names
    # Written out: the local server's HTTP stack and SQLite driver, and boto3 (Lambda's Python has it).
    assert not names & {"uvicorn", "httptools", "uvloop", "adbc-driver-sqlite", "boto3", "pysigma"}


@pytest.mark.network
def test_pip_finds_every_requirement_for_lambdas_platform(tmp_path: Path) -> None:
    """A dry run (metadata only) of the very command the bundling runs: every package has a wheel for
    manylinux aarch64 / CPython 3.12, or a pure-Python one. It asks the package registry: `pytest --network`."""
    report = tmp_path / "report.json"
    command = pip_install_command(tmp_path / "python", layer_requirements(), report=report)
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    installs = json.loads(report.read_text())["install"]
    wheels = {i["metadata"]["name"].lower(): i["download_info"]["url"].rsplit("/", 1)[1] for i in installs}
    assert {"pyarrow", "duckdb"} <= set(wheels)
    for name, wheel in wheels.items():
        assert wheel.endswith(".whl") and ("aarch64" in wheel or "-none-any" in wheel), (name, wheel)
        assert "cp312" in wheel or "abi3" in wheel or "-none-any" in wheel or "py3" in wheel, (name, wheel)


def test_the_handlers_import_without_what_the_layer_leaves_out() -> None:
    blocked = sorted(IMPORT_NAMES.get(n, n.replace("-", "_")) for n in NOT_ON_LAMBDA if n != "boto3")  # boto3: Lambda's
    script = textwrap.dedent(
        f"""
        import importlib, sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {blocked!r}:
                    raise ImportError(f"{{name}} is not on Lambda")
        sys.meta_path.insert(0, Block())
        for module in {HANDLER_MODULES!r}:
            importlib.import_module(module)
        from loglake.aws import handlers
        handlers._api_app  # the app is built on the first request; its imports are above
        print("ok")
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_the_function_code_is_the_package_at_the_archives_root(tmp_path: Path) -> None:
    """What a deploy bundles as each function's code, from wherever loglake is installed."""
    from loglake.aws.packaging import PACKAGE_DIR, _PackageBundling

    assert _PackageBundling().try_bundle(str(tmp_path), None)
    assert (tmp_path / "loglake" / "aws" / "handlers.py").read_bytes() == (
        PACKAGE_DIR / "aws" / "handlers.py"
    ).read_bytes()
    assert [p.name for p in tmp_path.iterdir()] == ["loglake"]
    assert not list(tmp_path.rglob("__pycache__")) and not list(tmp_path.rglob("*.pyc"))
