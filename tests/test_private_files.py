"""Every folder loglake makes is 0700 and every file 0600, from every entry point: the library, the
in-process app, `loglake serve`, and each CLI command that touches a data dir, whatever the umask."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from loglake.api.app import LoglakeApp
from loglake.config import Settings
from loglake.keys import KeyStore
from loglake.private_files import fsync_together, private_database
from loglake.store.sqlite import SQLiteHotStore
from tests.amplify.logs import access_log, varied_requests
from tests.conftest import asgi_client, key_for, run_cli
from tests.lake.test_flush import START, seed

pytestmark = pytest.mark.usefixtures("no_loglake_environment")


@pytest.fixture(autouse=True)
def usual_umask() -> Iterator[None]:
    """The common default, which makes files 0644 and folders 0755 unless the code says otherwise."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def loose(*roots: Path) -> list[str]:
    """Each folder (the roots too) that is not 0700 and each file that is not 0600, with its mode."""
    found = []
    for root in roots:
        paths = [root] if root.is_file() else [root, *root.rglob("*")]
        for path in paths:
            want = 0o700 if path.is_dir() else 0o600
            mode = stat.S_IMODE(path.stat().st_mode)
            if mode != want:
                found.append(f"{path.relative_to(root.parent)} {oct(mode)}")
    return found


def test_sqlite_files_are_private_from_their_first_byte(tmp_path: Path) -> None:
    """The -wal and -shm files are checked while the databases are open (closing removes them)."""
    data = tmp_path / "new" / "data"
    store = SQLiteHotStore(data / "hot.db")
    keys = KeyStore(data)
    try:
        seed(store, days=1, per_day=10)
        keys.create("admin", frozenset({"admin"}))
        names = {p.name for p in data.iterdir()}
        assert {"hot.db-wal", "hot.db-shm", "keys.db-wal", "keys.db-shm"} <= names
        assert loose(tmp_path / "new") == []
    finally:
        store.close()
        keys.close()


def test_files_an_older_version_left_open_are_tightened(tmp_path: Path) -> None:
    data = tmp_path / "data"
    SQLiteHotStore(data / "hot.db").close()
    for path, mode in ((data, 0o755), (data / "hot.db", 0o644)):
        path.chmod(mode)
    (data / "hot.db-wal").touch(0o644)  # as a crash would leave it
    SQLiteHotStore(data / "hot.db").close()
    assert loose(data) == []


async def test_the_in_process_app_keeps_its_data_dir_and_access_log_private(tmp_path: Path) -> None:
    data, access = tmp_path / "data", tmp_path / "logs" / "access.log"
    access.parent.mkdir()
    app = LoglakeApp.from_settings(Settings(data_dir=data, access_log=str(access)))
    try:
        async with asgi_client(app, key_for(app, "admin", "admin")) as client:
            sent = await client.post("/logs", json=[{"message": f"m{i}", "timestamp": START + i} for i in range(50)])
            assert sent.status_code == 201, sent.text
            app.lake.flush(everything=True)
            app.lake.compact()
            answer = await client.post("/query", json={"sql": "SELECT count(*) FROM logs"})
            assert answer.json()["rows"] == [[50]]
        app.access_log.flush()
        assert (data / "lake" / "type=app_logs").is_dir() and access.stat().st_size > 0
        assert loose(data, access) == []
    finally:
        app.close()


def test_cli_commands_keep_the_data_dir_private(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()  # as a user would before `keys create`: 0755 with this umask
    created = run_cli("keys", "create", "--name", "ops", "--scopes", "admin", "--data-dir", str(data))
    assert created.exit_code == 0, created.output
    assert loose(data) == []

    store = SQLiteHotStore(data / "hot.db")
    seed(store, days=2, per_day=30)
    store.close()
    for command in (
        ["flush", "--all"],
        ["compact"],
        ["retention"],
        ["query", "SELECT count(*) FROM logs"],
        ["tables"],
        ["keys", "list"],
        ["keys", "revoke", "ops", "--force"],
    ):
        result = run_cli(*command, "--data-dir", str(data))
        assert result.exit_code == 0, (command, result.output)
        assert loose(data) == [], command
    assert any((data / "lake" / "type=app_logs").iterdir())

    export = tmp_path / "export.csv"
    export.write_bytes(access_log(varied_requests(20, START, 3_600_000, "r"), "example.com"))
    fresh = tmp_path / "amplify-data"  # made by the command itself
    imported = run_cli("amplify", "import", str(export), "--app", "site", "--data-dir", str(fresh))
    assert imported.exit_code == 0, imported.output
    assert loose(fresh) == []
    for command in (
        ["amplify", "status"],
        ["amplify", "report", "--app", "site", "--since", "2026-10-01", "--until", "2026-12-01"],
    ):
        result = run_cli(*command, "--data-dir", str(fresh))
        assert result.exit_code == 0, (command, result.output)
        assert loose(fresh) == [], command


def test_serve_keeps_its_files_private_while_it_runs(server_factory, admin_key_of, tmp_path: Path) -> None:
    data, access = tmp_path / "served", tmp_path / "access.log"
    server = server_factory(data, "--access-log", str(access), "--hot-window-seconds", "1")
    key = admin_key_of(server)
    sent = httpx.post(server.url + "/logs", json={"message": "private"}, headers={"authorization": f"Bearer {key}"})
    assert sent.status_code == 201, sent.text
    batch = [{"message": f"waiting {i}"} for i in range(1500)]  # a bulk batch that waits in waiting/ for the mover
    sent = httpx.post(server.url + "/logs", json=batch, headers={"authorization": f"Bearer {key}"})
    assert sent.status_code == 201, sent.text
    assert loose(data / "waiting") == []  # (before, its file was 0644)
    deadline = time.monotonic() + 10
    while not access.stat().st_size and time.monotonic() < deadline:
        time.sleep(0.05)  # the access log is written in chunks
    assert {"hot.db-wal", "hot.db-shm", "keys.db-wal", "keys.db-shm"} <= {p.name for p in data.iterdir()}
    assert loose(data, access) == []


def test_making_an_open_database_private_again_keeps_its_connections_locks(tmp_path: Path) -> None:
    """Opening and closing a descriptor of a file drops every POSIX lock the process holds on it: a
    second open of alerts.db in the server took the scheduler connection's lock away, another process
    closing its connection then thought itself the last user and deleted the WAL, and the scheduler's
    later commits went to the deleted file."""

    def count_in_another_process() -> str:
        read = (
            "import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute('SELECT count(*) FROM t').fetchone()[0])"
        )
        return subprocess.run(
            [sys.executable, "-c", read, str(path)], capture_output=True, text=True, check=True
        ).stdout

    path = private_database(tmp_path / "x.db")
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("PRAGMA journal_mode = WAL")
    holder.execute("PRAGMA wal_autocheckpoint = 0")
    holder.execute("CREATE TABLE t (x)")
    holder.execute("INSERT INTO t VALUES (1)")
    private_database(path)  # what a second open of the database does first
    assert count_in_another_process().strip() == "1"
    holder.execute("INSERT INTO t VALUES (2)")
    assert count_in_another_process().strip() == "2"


def test_fsync_together_syncs_every_path_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each file and folder is synced before it returns, the others on helper threads while this one syncs
    the first: in flight together, they share one flush of the disk."""
    threads_of = {}
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        real_fsync(fd)
        threads_of[os.fstat(fd).st_ino] = threading.get_ident()

    monkeypatch.setattr(os, "fsync", recording_fsync)
    paths = [tmp_path / "a", tmp_path / "b", tmp_path]
    for path in paths[:2]:
        path.write_bytes(b"x")
    fsync_together(paths)
    assert set(threads_of) == {path.stat().st_ino for path in paths}
    assert len(set(threads_of.values())) > 1
