from __future__ import annotations

import asyncio
import collections
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from loglake.amplify.schema import AMPLIFY_SCHEMA
from loglake.ids import split_id
from loglake.lake.schema import LAKE_SCHEMA
from loglake.model import Severity
from loglake.sqlitedb import migrate
from loglake.store import sqlite_checkpoints
from loglake.store.base import RecentQuery, StoreUnavailable
from loglake.store.sqlite import SQLiteHotStore
from loglake.store.sqlite_rows import MIGRATIONS, VALUES_MAX_ROWS
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


def test_a_database_with_the_old_service_index_drops_it_and_finds_a_service_by_the_id_order(tmp_path: Path) -> None:
    """The index by service cost a page write per service of a commit (sqlite_rows.MIGRATIONS): a database made
    before it went loses it when it opens, and a service's records are still found, newest first."""
    conn = sqlite3.connect(tmp_path / "hot.db", isolation_level=None)
    migrate(conn, MIGRATIONS[:6])
    conn.close()
    store = SQLiteHotStore(tmp_path / "hot.db")
    try:
        store.put([record(BASE_TS + i, f"m{i}", service="pager" if i % 3 == 0 else "api") for i in range(12)])
        indexes = {name for (name,) in store.read("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert "logs_by_service" not in indexes
        assert {"logs_by_log_type", "logs_by_severity", "logs_by_client_id"} <= indexes
        found = store.recent(RecentQuery(since_ms=BASE_TS, service="pager", limit=3))
        assert [r.message for r in found] == ["m9", "m6", "m3"]
    finally:
        store.close()


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


async def test_a_write_awaited_after_close_fails_cleanly(tmp_path: Path) -> None:
    store = SQLiteHotStore(tmp_path / "hot.db")
    store.close()
    with pytest.raises(StoreUnavailable, match="closed"):
        await store.write([record()])


async def test_the_writes_of_one_round_of_the_event_loop_commit_together(tmp_path: Path) -> None:
    """They are handed to the writer as one item, so it cannot start on the first before the others came (each
    hand-over, a system call that wakes the writer's thread, cost the event loop 6 % of B1's time)."""
    commits: list[int] = []
    store = SQLiteHotStore(tmp_path / "hot.db", on_commit=lambda rows, seconds: commits.append(rows))

    async def request(n: int) -> list[bytes]:
        time.sleep(0.005)  # (the rest of a request's work, during which the writer's thread may run)
        return await store.write([record(message=f"m{n}")])

    try:
        for _ in range(3):
            ids = await asyncio.gather(*(request(n) for n in range(10)))  # (their first steps: one round)
            assert len({i for (i,) in ids}) == 10
        assert commits == [10, 10, 10]
        assert store.count() == 30
    finally:
        store.close()


async def test_a_write_asked_for_before_the_store_closes_is_written(tmp_path: Path) -> None:
    store = SQLiteHotStore(tmp_path / "hot.db")
    write = asyncio.ensure_future(store.write([record(message="last")]))
    await asyncio.sleep(0)  # (the write is asked for; its round's hand-over to the writer has not run yet)
    store.close()
    (log_id,) = await write
    reopened = SQLiteHotStore(tmp_path / "hot.db")
    try:
        found = reopened.get(log_id)
        assert found is not None and found.message == "last"
    finally:
        reopened.close()


@pytest.mark.parametrize(("durability", "synchronous"), [("full", 2), ("process", 1)])
def test_durability_full_has_sqlite_sync_the_wal_inside_every_commit(
    tmp_path: Path, durability: str, synchronous: int
) -> None:
    # A write is acknowledged once its COMMIT returns: with durability "full" that COMMIT fsyncs the WAL
    # (SQLite's synchronous FULL, 2); "process" leaves it to the operating system (NORMAL, 1).
    store = SQLiteHotStore(tmp_path / "hot.db", durability=durability)
    try:
        assert store.run_in_writer(lambda conn: conn.execute("PRAGMA synchronous").fetchone()[0]) == synchronous
    finally:
        store.close()


@pytest.mark.parametrize("count", [1, VALUES_MAX_ROWS, VALUES_MAX_ROWS + 1, 3 * VALUES_MAX_ROWS])
@pytest.mark.parametrize("nul", [False, True])
def test_a_group_keeps_every_field_whichever_statement_inserts_it(tmp_path: Path, count: int, nul: bool) -> None:
    # Up to VALUES_MAX_ROWS records go in as bound values, more as one JSON array, which cannot carry a NUL
    # character (those go in row by row): every way keeps every field, absent ones absent.
    shapes = [
        {},
        {"attributes": b'{"k":[1,{"n":null}],"e":"\\u00e9"}', "severity": Severity.CRITICAL, "log_type": "audit"},
        {"trace_id": "ab" * 16, "span_id": "cd" * 8, "severity": Severity.DEBUG, "service": "billing"},
        {"trace_id": "ef" * 16, "message": 'quote " and backslash \\ and \u00fcber \U0001f600'},
    ]
    group = [record(BASE_TS + i, **{"message": f"m{i}", **shapes[i % len(shapes)]}) for i in range(count)]
    if nul:
        group[-1] = record(BASE_TS + count, message="before\x00after", attributes=b'{"k":"\\u0000"}')
    store = SQLiteHotStore(tmp_path / "hot.db")
    try:
        assert store.put(group) == [r.log_id for r in group]
        assert [store.get(r.log_id) for r in group] == group
    finally:
        store.close()


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


def largest_wal_while_writing(path: Path, restart_frames: int, monkeypatch: pytest.MonkeyPatch) -> int:
    """Writes ~24 MB back to back while a thread keeps reading; the largest WAL file seen."""
    monkeypatch.setattr(sqlite_checkpoints, "WAL_RESTART_FRAMES", restart_frames)
    monkeypatch.setattr(sqlite_checkpoints, "CHECKPOINT_SECONDS", 0.02)
    monkeypatch.setattr(sqlite_checkpoints, "WAL_IDLE_SECONDS", 3600)  # a stall of a busy machine is no pause
    store = SQLiteHotStore(path)
    stop = threading.Event()

    def keep_reading() -> None:
        while not stop.is_set():
            store.read("SELECT count(*) FROM logs WHERE service = 'api'")

    reader = threading.Thread(target=keep_reading)
    reader.start()
    largest = 0
    try:
        # Made beforehand, like 4 clients sending: the writer is never idle. (Made on the way, a batch
        # took longer than the writer's commit, now that the commit does not wait for its fsync.)
        batches = [[record(BASE_TS + batch * 1000 + i, "x" * 100) for i in range(1000)] for batch in range(120)]
        pending: collections.deque = collections.deque()
        for batch in batches:
            pending.append(store.submit(batch))
            if len(pending) == 4:
                pending.popleft().result()
            largest = max(largest, _wal_size(path))
        for future in pending:
            future.result()
    finally:
        stop.set()
        reader.join()
        store.close()
    return largest


def _wal_size(path: Path) -> int:
    wal = path.with_name(path.name + "-wal")
    return wal.stat().st_size if wal.exists() else 0


def test_the_wal_is_rewound_under_sustained_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A PASSIVE checkpoint alone lets the WAL grow while writes keep coming (the control run);
    # past WAL_RESTART_FRAMES the checkpointer rewinds it.
    unbounded = largest_wal_while_writing(tmp_path / "control.db", 1 << 40, monkeypatch)
    bounded = largest_wal_while_writing(tmp_path / "hot.db", 256, monkeypatch)  # 1 MiB
    # (of ~24 MB written; at load 11-24 the control's reader let a passive checkpoint through now and then: 11.3
    # and 12.3 MB, where a quiet machine gives more: a third of what was written still says it grew unbounded)
    assert unbounded > 8 * 2**20, "the control run should have grown its WAL"
    assert bounded < unbounded / 3


def tables_of(path: Path) -> set[str]:
    conn = sqlite3.connect(path)
    try:
        return {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        conn.close()


def test_each_package_brings_its_own_tables(tmp_path: Path) -> None:
    store = SQLiteHotStore(tmp_path / "hot.db")
    try:
        assert tables_of(store.path) == {"logs", "flushed_client_ids"}
        store.use_schema(LAKE_SCHEMA)
        store.use_schema(LAKE_SCHEMA)  # once is enough, twice is harmless
        store.use_schema(AMPLIFY_SCHEMA)
        lake_tables = {"flushes", "lake_files", "lake_garbage", "bulk_batches"}
        amplify_tables = {"amplify_watermarks", "amplify_runs"}
        assert tables_of(store.path) == {"logs", "flushed_client_ids", "schema_versions"} | lake_tables | amplify_tables
        assert store.read("SELECT name, version FROM schema_versions ORDER BY name") == [("amplify", 2), ("lake", 4)]
    finally:
        store.close()


def test_a_database_from_before_packages_kept_their_schemas_opens_with_its_data(tmp_path: Path) -> None:
    """Such a database has every table from the hot store's own history (user_version 5) and no
    schema_versions: the lake's and the collector's first steps find their tables there and keep them."""
    store = SQLiteHotStore(tmp_path / "hot.db")
    store.use_schema(LAKE_SCHEMA)
    store.use_schema(AMPLIFY_SCHEMA)
    store.run_in_writer(
        lambda conn: conn.execute(
            "INSERT INTO lake_files VALUES ('type=app_logs/date=2026-11-01/part-a.parquet', 'logs', '2026-11-01',"
            " 1, 2, 3, 4, 5, 1)"
        )
    )
    store.run_in_writer(lambda conn: conn.execute("INSERT INTO amplify_watermarks VALUES ('shop', 10, 11, NULL)"))
    store.run_in_writer(lambda conn: conn.execute("DROP TABLE schema_versions"))
    store.run_in_writer(lambda conn: conn.execute("ALTER TABLE amplify_watermarks DROP COLUMN rechecked_ms"))  # later
    store.run_in_writer(lambda conn: conn.execute("ALTER TABLE flushes DROP COLUMN owner"))  # came later
    store.run_in_writer(lambda conn: conn.execute("DROP TABLE bulk_batches"))  # came later too
    store.run_in_writer(lambda conn: conn.execute("ALTER TABLE lake_files DROP COLUMN final"))  # and this
    store.close()

    reopened = SQLiteHotStore(tmp_path / "hot.db")
    try:
        reopened.use_schema(LAKE_SCHEMA)
        reopened.use_schema(AMPLIFY_SCHEMA)
        assert reopened.read("SELECT key, records, final FROM lake_files") == [
            ("type=app_logs/date=2026-11-01/part-a.parquet", 3, 1)  # (an older file is taken as final)
        ]
        assert reopened.read("SELECT app, until_ms, rechecked_ms FROM amplify_watermarks") == [("shop", 10, None)]
        assert reopened.read("SELECT name, version FROM schema_versions ORDER BY name") == [("amplify", 2), ("lake", 4)]
    finally:
        reopened.close()


def test_a_newer_package_schema_is_refused_with_advice(tmp_path: Path) -> None:
    store = SQLiteHotStore(tmp_path / "hot.db")
    try:
        store.use_schema(LAKE_SCHEMA)
        store.run_in_writer(lambda conn: conn.execute("UPDATE schema_versions SET version = 99 WHERE name = 'lake'"))
        later = SQLiteHotStore(tmp_path / "hot.db")
        try:
            with pytest.raises(RuntimeError, match=r"lake tables at version 99.*upgrade loglake"):
                later.use_schema(LAKE_SCHEMA)
        finally:
            later.close()
    finally:
        store.close()


def test_a_database_from_before_trace_ids_opens_with_its_records_and_takes_traced_ones(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "hot.db", isolation_level=None)
    migrate(conn, MIGRATIONS[:5])  # the steps before trace ids
    old = record(BASE_TS, "before")
    hi, lo = split_id(old.log_id)
    conn.execute("INSERT INTO logs VALUES (?, ?, ?, 'api', 'application', 1, 'before', NULL, NULL)", (hi, lo, BASE_TS))
    conn.close()
    store = SQLiteHotStore(tmp_path / "hot.db")
    try:
        traced = record(BASE_TS + 1, "after", trace_id="4bf92f3577b34da6a3ce929d0e0e4736", span_id="00f067aa0ba902b7")
        store.put([traced])
        assert store.get(old.log_id) == old
        assert store.get(traced.log_id) == traced
    finally:
        store.close()


def _connections_held(path: Path) -> int:
    """This process's open files on `path` (each SQLite connection holds one)."""
    return sum(1 for fd in Path("/proc/self/fd").iterdir() if fd.is_symlink() and fd.readlink() == path)


def test_reads_on_threads_that_end_do_not_leave_their_connections_open(tmp_path: Path) -> None:
    """Each flush reads on a thread of its own that ends with it: a running server opened a reader
    connection (two files, and its cache) per flush and kept it, until it ran out of files."""
    store = SQLiteHotStore(tmp_path / "hot.db")
    try:
        store.put([record(message="kept")])

        def read_on_threads(count: int) -> int:
            for _ in range(count):
                thread = threading.Thread(target=store.read, args=("SELECT count(*) FROM logs",))
                thread.start()
                thread.join()
            assert store.read("SELECT count(*) FROM logs") == [(1,)]
            return _connections_held(tmp_path / "hot.db")

        assert read_on_threads(20) == read_on_threads(1)
    finally:
        store.close()
    assert _connections_held(tmp_path / "hot.db") == 0
