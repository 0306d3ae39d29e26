"""A data dir the user may not write, or a lake store that refuses loglake's credentials, is a configuration
mistake: the commands say what is wrong and what to do in one line, exit 1, and show no Python traceback (a
new-user trial got tracebacks from `serve`, `keys list` and `flush`)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from loglake.alerts.outbox import Outbox
from loglake.ask.store import AskStore
from loglake.config import Settings
from loglake.lake.location import check_lake_location
from loglake.rules.state import open_state
from loglake.sessions import SessionStore
from loglake.store.sqlite import SQLiteHotStore
from tests.conftest import free_port
from tests.damage import damage_table_page
from tests.s3_server import ACCESS_KEY, S3Server
from tests.store.contract import record


def _loglake(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("LOGLAKE_", "AWS_"))}
    return subprocess.run(
        [sys.executable, "-m", "loglake", *args], capture_output=True, text=True, timeout=60, env=clean | (env or {})
    )


def _said_without_traceback(completed: subprocess.CompletedProcess[str], *words: str) -> None:
    assert completed.returncode == 1, completed.stderr
    assert "Traceback" not in completed.stderr, completed.stderr
    for word in words:
        assert word in completed.stderr, completed.stderr


@pytest.mark.skipif(not Path("/sys").is_dir(), reason="needs Linux /sys, where nobody may create a folder")
def test_serve_on_a_data_dir_it_cannot_create_says_so(tmp_path: Path) -> None:
    completed = _loglake("serve", "--port", str(free_port()), "--data-dir", "/sys/loglake-test-data")
    _said_without_traceback(completed, "Error: ", ": /sys/loglake-test-data: give", "--data-dir / LOGLAKE_DATA_DIR")
    assert "llk_" not in completed.stdout


@pytest.mark.parametrize("command", [["rules", "init"], ["serve", "--port", "free"]])
def test_a_data_dir_that_cannot_be_made_is_said_in_one_line(tmp_path: Path, command: list[str]) -> None:
    """`loglake rules init --data-dir /proc/x` (and serve's) ended in a traceback of the mkdir's FileNotFoundError;
    a path through a file in a NotADirectoryError's."""
    (tmp_path / "a-file").write_text("")
    data_dir = tmp_path / "a-file" / "data"
    completed = _loglake(
        *[str(free_port()) if word == "free" else word for word in command], "--data-dir", str(data_dir)
    )
    _said_without_traceback(completed, f"Error: cannot make the folder {data_dir}: Not a directory; point loglake at")


def test_commands_on_a_data_dir_whose_databases_cannot_be_opened_say_so(tmp_path: Path) -> None:
    """hot.db and keys.db that SQLite cannot open (here: folders in their place, which it refuses as it refuses a
    read-only file, whoever runs the test)."""
    data_dir = tmp_path / "data"
    (data_dir / "hot.db").mkdir(parents=True)
    (data_dir / "keys.db").mkdir()
    for command in (["keys", "list"], ["flush"], ["serve", "--port", str(free_port())]):
        completed = _loglake(*command, "--data-dir", str(data_dir))
        _said_without_traceback(completed, "cannot open the data dir's databases for writing", "LOGLAKE_DATA_DIR")


@pytest.mark.parametrize("database", ["keys.db", "hot.db"])
def test_commands_on_a_damaged_database_name_it_and_say_what_to_do(tmp_path: Path, database: str) -> None:
    """A database whose first page is damaged (a disk that failed, a copy cut short) stopped `serve` and every
    command with a Python traceback ending in "database disk image is malformed", which names no file."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    SQLiteHotStore(data_dir / "hot.db").close()
    assert _loglake("keys", "create", "--name", "ops", "--data-dir", str(data_dir)).returncode == 0
    damaged = data_dir / database
    damaged.write_bytes(damaged.read_bytes()[:1000])
    reader = ["keys", "list"] if database == "keys.db" else ["flush"]
    for command in (reader, ["serve", "--port", str(free_port())]):
        completed = _loglake(*command, "--data-dir", str(data_dir))
        _said_without_traceback(completed, f"{damaged} is damaged", "database disk image is malformed", "backup")


def test_commands_on_a_database_damaged_past_its_first_pages_say_so_in_one_line(tmp_path: Path) -> None:
    """A page the open does not read (keys.db's table of keys, overwritten) met later by `keys list` and `serve`:
    SQLite's error names no file, and both ended in a traceback of "database disk image is malformed"."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    SQLiteHotStore(data_dir / "hot.db").close()
    assert _loglake("keys", "create", "--name", "ops", "--data-dir", str(data_dir)).returncode == 0
    damage_table_page(data_dir / "keys.db", "api_keys")
    for command in (["keys", "list"], ["serve", "--port", str(free_port())]):
        completed = _loglake(*command, "--data-dir", str(data_dir))
        _said_without_traceback(
            completed, "a database of the data dir is damaged", "`loglake verify` names it", "backup"
        )


def test_commands_on_a_database_whose_schema_versions_are_damaged_name_it(tmp_path: Path) -> None:
    """A damaged page of `schema_versions` reads as no version at all: the lake's first migration ran again and every
    command (serve too) ended in a traceback of "duplicate column name", naming no file."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    hot = data_dir / "hot.db"
    SQLiteHotStore(hot).close()
    assert _loglake("flush", "--data-dir", str(data_dir)).returncode == 0  # (the lake's tables made)
    damage_table_page(hot, "schema_versions", length=192)
    for command in (["flush"], ["serve", "--port", str(free_port())]):
        completed = _loglake(*command, "--data-dir", str(data_dir))
        _said_without_traceback(completed, f"{hot} is damaged", "schema_versions", "backup")


def test_maintenance_with_wrong_s3_credentials_says_so(s3_server: S3Server, s3_bucket: tuple, tmp_path: Path) -> None:
    """`loglake flush` with a secret the store refuses: the store's reason and what to check, no traceback."""
    _, bucket, prefix = s3_bucket
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    store = SQLiteHotStore(data_dir / "hot.db")
    store.put([record(int(time.time() * 1000) - 3_600_000, f"to flush {i}") for i in range(10)])
    store.close()
    lake = {"LOGLAKE_LAKE_BUCKET": bucket, "LOGLAKE_LAKE_PREFIX": prefix, "LOGLAKE_LAKE_ENDPOINT": s3_server.endpoint}
    check_lake_location(Settings(data_dir=data_dir, lake_bucket=bucket, lake_prefix=prefix))
    aws = {
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": "not-the-secret",
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    for command in (["flush", "--all"], ["compact"], ["retention", "--days", "3"]):
        completed = _loglake(*command, "--data-dir", str(data_dir), env=lake | aws)
        _said_without_traceback(
            completed, "the lake's object store failed", "SignatureDoesNotMatch", "AWS_SECRET_ACCESS_KEY"
        )
    hot = SQLiteHotStore(data_dir / "hot.db")
    try:
        assert hot.read("SELECT count(*) FROM logs")[0][0] == 10  # (nothing left the hot store)
    finally:
        hot.close()


@pytest.mark.parametrize("database", ["keys.db", "hot.db"])
def test_commands_on_a_database_a_newer_loglake_migrated_say_so_in_one_line(tmp_path: Path, database: str) -> None:
    """A downgrade: a data dir whose databases a newer loglake migrated stopped `serve` and every command with a
    Python traceback (the refusal itself, naming the file and saying to upgrade, was its last line)."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    SQLiteHotStore(data_dir / "hot.db").close()
    assert _loglake("keys", "create", "--name", "ops", "--data-dir", str(data_dir)).returncode == 0
    conn = sqlite3.connect(data_dir / database)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    reader = ["keys", "list"] if database == "keys.db" else ["flush"]
    for command in (reader, ["serve", "--port", str(free_port())]):
        completed = _loglake(*command, "--data-dir", str(data_dir))
        _said_without_traceback(completed, f"{data_dir / database} has its schema at version 99", "upgrade loglake")


@pytest.mark.parametrize(
    ("database", "newer"),
    [
        ("alerts.db", "PRAGMA user_version = 99"),
        ("alerts.db", "UPDATE schema_versions SET version = 99 WHERE name = 'rules'"),
        ("alerts.db", "UPDATE schema_versions SET version = 99 WHERE name = 'delivery'"),
        ("sessions.db", "PRAGMA user_version = 99"),
        ("ask.db", "PRAGMA user_version = 99"),
    ],
)
def test_serve_refuses_at_start_the_databases_it_opens_later_when_a_newer_loglake_migrated_them(
    tmp_path: Path, database: str, newer: str
) -> None:
    """alerts.db, sessions.db and ask.db are opened at their first use (a rule's run, a delivery, GET /alerts, a
    sign-in, a scrape of /metrics): a server given a downgraded data dir started and said it was up, then /healthz,
    the alert routes, every sign-in and every scrape answered 500."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    open_state(data_dir).close()
    Outbox(data_dir).close()
    SessionStore(data_dir, time.time).create("llk_…", b"hash", "ops", 60)
    asked = AskStore(data_dir, time.time, 60_000)
    asked.usage()
    asked.close()
    conn = sqlite3.connect(data_dir / database)
    conn.execute(newer)
    conn.commit()
    conn.close()
    completed = _loglake("serve", "--port", str(free_port()), "--data-dir", str(data_dir))
    _said_without_traceback(completed, f"{data_dir / database} has its", "at version 99", "upgrade loglake")
    assert "llk_" not in completed.stdout  # (no first key shown by a start that failed)
