"""The hot store gives the space of records it no longer holds back to the file system: hot.db and its WAL
shrink once a flush has moved the records to the lake, while the server runs, after `loglake flush --all`,
and in a database made by an older loglake (rewritten once to make that possible)."""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path

import pytest

from loglake.ids import LAST_STORABLE_MS
from loglake.lake.flush import Flusher
from loglake.lake.objectstore import LocalObjectStore
from loglake.model import NewRecord
from loglake.sqlitedb import migrate, use_wal
from loglake.store import sqlite_space
from loglake.store.sqlite import SQLiteHotStore
from loglake.store.sqlite_rows import MIGRATIONS, row_values
from tests.conftest import run_cli
from tests.store.contract import BASE_TS, record

SMALL = 2**20  # what hot.db and its WAL may take once their records are gone: the lake's catalog and the schema


def on_disk(db: Path) -> int:
    """The bytes of a database and its WAL."""
    wal = db.with_name(db.name + "-wal")
    return db.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


def fill(store: SQLiteHotStore, count: int) -> None:
    for first in range(0, count, 10_000):
        store.put([record(BASE_TS + i, f"{i:08d} " + "m" * 300) for i in range(first, min(count, first + 10_000))])


def settles_below(db: Path, limit: int, within_s: float = 60.0) -> int:
    """The size of db + WAL once it is below `limit`, or the last size seen when `within_s` have passed
    (the background checkpoints work every half second; the deadline only bounds a failing test)."""
    deadline = time.monotonic() + within_s
    while (size := on_disk(db)) >= limit and time.monotonic() < deadline:
        time.sleep(0.2)
    return size


def test_a_running_store_gives_back_the_space_of_flushed_records(tmp_path: Path) -> None:
    db = tmp_path / "hot.db"
    store = SQLiteHotStore(db)
    try:
        fill(store, 60_000)
        peak = on_disk(db)
        assert peak > 20 * SMALL
        moved = Flusher(store, LocalObjectStore(tmp_path / "lake")).flush(before_ms=LAST_STORABLE_MS)
        assert moved.records == 60_000
        assert settles_below(db, SMALL) < SMALL
        store.put([record(BASE_TS, "still takes records")])
        assert store.count() == 1
    finally:
        store.close()
    assert on_disk(db) < SMALL


@pytest.mark.usefixtures("no_loglake_environment")
def test_flush_all_from_the_cli_leaves_a_small_hot_db(tmp_path: Path) -> None:
    """What the side-by-side benchmark measures: the data dir after ingest and `loglake flush --all`."""
    data = tmp_path / "data"
    data.mkdir()
    store = SQLiteHotStore(data / "hot.db")
    fill(store, 60_000)
    store.close()
    before = on_disk(data / "hot.db")
    result = run_cli("flush", "--all", "--data-dir", str(data))
    assert result.exit_code == 0, result.output
    assert before > 20 * SMALL and on_disk(data / "hot.db") < SMALL


def make_old_database(db: Path, count: int) -> list[NewRecord]:
    """hot.db as loglake made it before it gave space back: no auto_vacuum, `count` records in it."""
    records = [record(BASE_TS + i, f"old {i} " + "m" * 300) for i in range(count)]
    conn = sqlite3.connect(db, isolation_level=None)
    use_wal(conn)
    migrate(conn, MIGRATIONS)
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO logs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        map(row_values, records),
    )
    conn.execute("COMMIT")
    assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 0
    conn.close()
    return records


def auto_vacuum(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("PRAGMA auto_vacuum").fetchone()[0]
    finally:
        conn.close()


def test_a_database_made_before_is_rewritten_once_then_gives_space_back(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "hot.db"
    records = make_old_database(db, 30_000)
    monkeypatch.setattr(sqlite_space, "ANNOUNCE_REWRITE_BYTES", 0)  # announce it however small
    with caplog.at_level(logging.WARNING, "loglake.store"):
        store = SQLiteHotStore(db)
    try:
        assert auto_vacuum(db) == sqlite_space.INCREMENTAL
        assert store.count() == 30_000 and store.get(records[7].log_id) == records[7]
        assert "rewriting it once" in caplog.text and "rewritten in" in caplog.text
        Flusher(store, LocalObjectStore(tmp_path / "lake")).flush(before_ms=LAST_STORABLE_MS)
        assert settles_below(db, SMALL) < SMALL
    finally:
        store.close()
    caplog.clear()
    with caplog.at_level(logging.WARNING, "loglake.store"):
        SQLiteHotStore(db).close()
    assert caplog.text == ""  # once


def test_a_new_database_gives_space_back_from_its_first_table_on(tmp_path: Path) -> None:
    SQLiteHotStore(tmp_path / "hot.db").close()
    assert auto_vacuum(tmp_path / "hot.db") == sqlite_space.INCREMENTAL


def test_space_goes_back_only_once_most_of_the_file_is_free(tmp_path: Path) -> None:
    """A flush that frees a part of the file leaves those pages to the inserts that come next."""
    db = tmp_path / "hot.db"
    store = SQLiteHotStore(db)
    try:
        fill(store, 60_000)
        Flusher(store, LocalObjectStore(tmp_path / "lake")).flush(before_ms=BASE_TS + 20_000)
        conn = sqlite3.connect(db)
        free, pages = sqlite_space.free_pages(conn)
        conn.close()
        assert 0.2 < free / pages < sqlite_space.RECLAIM_SHARE
        assert not sqlite_space.reclaim_due(free, pages)
    finally:
        store.close()
    assert on_disk(db) > 20 * SMALL
