from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from loglake.store.base import RecentQuery, StoreUnavailable
from loglake.store.sqlite import SQLiteHotStore
from loglake.store.sqlite_rows import MIGRATIONS
from tests.store.contract import BASE_TS, HotStoreContract, record


class TestSQLiteContract(HotStoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[SQLiteHotStore]:
        s = SQLiteHotStore(tmp_path / "hot.db")
        yield s
        s.close()


def test_data_survives_reopen_and_schema_is_versioned(tmp_path: Path) -> None:
    store = SQLiteHotStore(tmp_path / "hot.db")
    new = record(message="kept")
    store.put([new])
    store.close()
    reopened = SQLiteHotStore(tmp_path / "hot.db")
    try:
        assert reopened.get(new.log_id).message == "kept"
    finally:
        reopened.close()
    conn = sqlite3.connect(tmp_path / "hot.db")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_newer_schema_is_refused_with_advice(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "hot.db")
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    conn.close()
    with pytest.raises(RuntimeError, match="upgrade loglake"):
        SQLiteHotStore(tmp_path / "hot.db")


def test_full_store_refuses_whole_batches_and_recovers_when_space_returns(tmp_path: Path) -> None:
    store = SQLiteHotStore(tmp_path / "hot.db", max_size_bytes=256 * 1024)
    try:
        stored = 0
        with pytest.raises(StoreUnavailable, match="full"):
            for i in range(10_000):
                store.put([record(BASE_TS + i * 10 + j, "x" * 500) for j in range(10)])
                stored += 10
        assert stored > 0
        everything = RecentQuery(since_ms=BASE_TS, limit=1000)
        count_when_full = store.count()
        assert count_when_full == stored  # the refused batch left nothing half-written
        with pytest.raises(StoreUnavailable):
            store.put([record(BASE_TS - 1 - j, "still full " * 50) for j in range(10)])
        store.set_max_size(0)  # space returns
        [recovered] = store.put([record(BASE_TS - 1, "after recovery")])
        assert store.count() == stored + 1
        assert store.get(recovered).message == "after recovery"
        assert len(store.recent(everything)) == stored
    finally:
        store.close()


def test_submit_after_close_fails_cleanly(tmp_path: Path) -> None:
    store = SQLiteHotStore(tmp_path / "hot.db")
    store.close()
    with pytest.raises(StoreUnavailable, match="closed"):
        store.put([record()])


def test_text_that_is_not_utf8_is_read_with_replacement(tmp_path: Path) -> None:
    store = SQLiteHotStore(tmp_path / "hot.db")
    try:
        new = record(message="fine")
        store.put([new])
        raw = sqlite3.connect(tmp_path / "hot.db")  # what a damaged or hand-edited file could hold
        raw.execute("UPDATE logs SET message = CAST(x'6361fe' AS TEXT)")
        raw.commit()
        raw.close()
        assert store.get(new.log_id).message == "ca\ufffd"
        assert [r.message for r in store.recent(RecentQuery(since_ms=BASE_TS, limit=5))] == ["ca\ufffd"]
    finally:
        store.close()
