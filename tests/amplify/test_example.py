"""The README's "Try it without an AWS account": its commands, as written, against the example's stand-in."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import free_port, run_cli

ROOT = Path(__file__).parents[2]
DOCUMENTED_PORT = "8787"


def documented_commands() -> list[str]:
    """The lines of the README's shell block under "Try it without an AWS account", comments dropped."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("**Try it without an AWS account.**") :]
    start = section.index("```sh\n") + len("```sh\n")
    block = section[start : section.index("\n```", start)]
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.strip()]


@pytest.mark.usefixtures("no_loglake_environment")
def test_the_documented_commands_collect_and_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "examples").symlink_to(ROOT / "examples")  # the commands' paths are from the repository's root
    port = str(free_port())
    commands = documented_commands()
    assert commands[0] == f"python -m examples.amplify.fake_amplify --port {DOCUMENTED_PORT} &"
    stand_in = subprocess.Popen(
        [sys.executable, *shlex.split(commands[0].removesuffix("&").replace(DOCUMENTED_PORT, port))[1:]],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    outputs = []
    try:
        assert stand_in.stdout is not None and "Amplify stand-in on" in stand_in.stdout.readline()
        for command in commands[1:]:
            words = shlex.split(command.replace(DOCUMENTED_PORT, port))
            if words[0] == "export":
                for assignment in words[1:]:
                    monkeypatch.setenv(*assignment.split("=", 1))
                continue
            assert words[0] == "loglake", command
            result = run_cli(*words[1:])
            assert result.exit_code == 0, (command, result.output)
            outputs.append(result.stdout)
    finally:
        stand_in.terminate()
        stand_in.communicate(timeout=10)
    dry_run, collected, report, status = outputs
    assert "example_site: 4 window(s) of at most 2 day(s)" in dry_run
    assert "example_site" in collected and "example_shop" in collected
    assert report.startswith("Top paths\npath") and "Cache hit ratio per day" in report
    assert "example_site: collected up to" in status and "example_shop: collected up to" in status
    counted = run_cli("query", "--data-dir", "amplify-demo", "--format", "json", "SELECT count(*) FROM amplify_access")
    assert json.loads(counted.stdout)["rows"][0][0] > 2000
