"""The README's awscurl commands, run as written against a real `loglake serve` with a CLI-made SigV4 key."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import run_cli

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("no_loglake_environment")]

README = Path(__file__).resolve().parents[2] / "README.md"
AWSCURL = Path(sys.executable).with_name("awscurl")


def readme_local_awscurl_commands() -> list[list[str]]:
    """The awscurl commands of the README's SigV4 example for a local server, as argument lists."""
    text = README.read_text(encoding="utf-8").replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    commands = [shlex.split(line) for line in lines if line.startswith("awscurl ") and "127.0.0.1:8080" in line]
    assert len(commands) >= 2, "the README shows awscurl sending a log and searching for it"
    return commands


def test_the_readme_awscurl_examples_work(tmp_path: Path, server_factory) -> None:
    server = server_factory(tmp_path / "data")
    created = run_cli("keys", "create", "--name", "awscurl", "--scopes", "ingest,read", "--sigv4",
                      "--data-dir", str(server.data_dir))  # fmt: skip
    access_key_id, secret = created.stdout.split()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")} | {
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
    }
    answers = []
    for command in readme_local_awscurl_commands():
        args = [
            {"LLAK...": access_key_id, "...": secret}.get(arg, arg.replace("http://127.0.0.1:8080", server.url))
            for arg in command[1:]
        ]
        done = subprocess.run([str(AWSCURL), *args], capture_output=True, text=True, env=env, timeout=60)
        assert done.returncode == 0, done.stderr
        answers.append(json.loads(done.stdout))
    sent, found = answers[0], answers[-1]
    assert re.fullmatch(r"[0-9a-f-]{36}", sent["logId"]), sent
    assert [log["logId"] for log in found["logs"]] == [sent["logId"]], found
