"""SQL over records still in the hot store: right answers in bounded memory, however many are hot.

DuckDB reads the hot rows as a stream, batch by batch, in the one SQLite snapshot the query also lists
the lake's files in (store.sqlite_reads.Snapshot): these tests hold that stream to its promises.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from loglake.ids import format_uuid, join_id
from loglake.lake.flush import Flusher
from loglake.lake.manifest import list_files
from loglake.lake.objectstore import LocalObjectStore
from loglake.lake.query import QueryEngine, TimeRange
from loglake.lake.query_limits import QueryLimits
from loglake.lake.tables import APP_LOGS_TABLE
from loglake.store.sqlite import SQLiteHotStore
from loglake.store.sqlite_reads import SnapshotEnded
from tests.lake.test_flush import DAY, START, seed
from tests.store.contract import record

SERVICES = ["web", "api", "db"]


def fill(path: Path, count: int, message_bytes: int, every_ms: int) -> None:
    """`count` records of `message_bytes`-character messages, one every `every_ms` from START, services in turn."""
    store = SQLiteHotStore(path, durability="process")
    try:
        for first in range(0, count, 5000):
            store.put(
                [
                    record(START + i * every_ms, f"{i:09d}".ljust(message_bytes, "x"), service=SERVICES[i % 3])
                    for i in range(first, min(count, first + 5000))
                ]
            )
    finally:
        store.close()


# In a process of its own, so that its peak RSS is the query's: open the engine and warm it up (DuckDB's
# first query allocates its own buffers), then run the queries and report how far the peak grew.
QUERY_SCRIPT = textwrap.dedent(
    """
    import json, resource, sys
    from pathlib import Path
    from loglake.ids import format_uuid
    from loglake.lake.objectstore import LocalObjectStore
    from loglake.lake.query import QueryEngine
    from loglake.lake.query_answers import QueryResult
    from loglake.lake.reads import search
    from loglake.store.base import RecentQuery
    from loglake.store.sqlite import SQLiteHotStore

    folder = Path(sys.argv[1])
    store = SQLiteHotStore(folder / "hot.db")
    engine = QueryEngine(store, LocalObjectStore(folder / "lake"), folder / "duckdb")
    engine.query("SELECT count(*) FROM range(1000000) t(i) GROUP BY i % 7")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    results = [engine.query(sql) for sql in json.loads(sys.argv[2])]
    if len(sys.argv) > 3:  # and the API's search: the newest records of that service
        found = search(engine, RecentQuery(since_ms=0, service=sys.argv[3], limit=500))
        results.append(QueryResult([], [(format_uuid(r.log_id), r.message) for r in found], False, 0, 0, 0))
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    answers, scanned = [r.rows for r in results], [r.rows_scanned for r in results]
    print(json.dumps({"answers": answers, "rows_scanned": scanned, "grown_mib": grown / 1024}, default=str))
    """
)


def run_queries(folder: Path, queries: list[str], *search_service: str) -> dict:
    """QUERY_SCRIPT's report of `queries` (and of a search of the service, if given) over the data dir `folder`."""
    child = subprocess.run(
        [sys.executable, "-c", QUERY_SCRIPT, str(folder), json.dumps(queries), *search_service],
        capture_output=True,
        text=True,
    )
    assert child.returncode == 0, child.stderr
    return json.loads(child.stdout)


def test_a_query_over_many_hot_records_is_right_and_its_memory_does_not_grow_with_them(tmp_path: Path) -> None:
    count, message_bytes = 50_000, 4000  # 200 MB of messages in the hot store, over two days
    fill(tmp_path / "hot.db", count, message_bytes, every_ms=2000)
    queries = [
        "SELECT count(*), count(DISTINCT log_id), sum(length(message)) FROM logs",
        "SELECT service, count(*), min(message[:9]), max(message[:9]) FROM logs WHERE date = '2026-11-02'"
        " GROUP BY ALL ORDER BY 1",
        # `logs` twice: DuckDB scans the hot rows twice, and each scan reads them all
        "SELECT count(*) FROM logs a JOIN logs b USING (log_id)",
    ]
    found = run_queries(tmp_path, queries)
    day_2 = range(DAY // 2000, count)  # the numbers of the records of 2026-11-02
    of_day_2 = {name: [i for i in day_2 if SERVICES[i % 3] == name] for name in sorted(SERVICES)}
    assert found["answers"] == [
        [[count, count, count * message_bytes]],
        [[name, len(numbers), f"{numbers[0]:09d}", f"{numbers[-1]:09d}"] for name, numbers in of_day_2.items()],
        [[count]],
    ]
    # Read whole, the hot rows took 540 MiB more (Python objects, then Arrow); streamed, under 90 MiB.
    assert found["grown_mib"] < 200


def test_the_newest_records_take_as_much_memory_and_read_as_many_rows_however_many_are_hot(tmp_path: Path) -> None:
    """`SELECT * ... ORDER BY timestamp DESC LIMIT n` over 10k and over 100k hot records of 1 KB each.
    Before hot_top.py, DuckDB's top-N took in every hot row and the query's peak RSS grew by 18 MiB over
    10k records and 107 MiB over 100k; reading the newest first, it stays under the warm-up's peak either way."""
    found = {}
    for count in (10_000, 100_000):
        (tmp_path / str(count)).mkdir()
        fill(tmp_path / str(count) / "hot.db", count, 1000, every_ms=1000)
        found[count] = run_queries(tmp_path / str(count), ["SELECT * FROM logs ORDER BY timestamp DESC LIMIT 1000"])
    for count, report in found.items():
        assert [row[5][:9] for row in report["answers"][0]] == [f"{i:09d}" for i in range(count - 1, count - 1001, -1)]
    # Batches of 64, 256 and 1024 rows hold the newest 1000; DuckDB may have asked for the next one.
    assert all(report["rows_scanned"][0] <= 64 + 256 + 1024 + 4096 for report in found.values())
    assert found[100_000]["grown_mib"] < found[10_000]["grown_mib"] + 40


def test_a_search_of_the_newest_records_takes_as_much_memory_however_many_are_hot(tmp_path: Path) -> None:
    """The API's search sorts by log id, newest first, over all the hot rows when the lake has no files
    to size its first slice by. Streamed oldest first, each newer row entered DuckDB's top-N: the search's
    peak RSS grew by 19 MiB over 20k records of 1 KB and by 89 MiB over 160k. Streamed newest first, no
    row after the first matches enters it: 15 and 38 MiB, the batches growing to their full size (over
    320k records it took as much as over 160k)."""
    found = {}
    for count in (20_000, 160_000):
        (tmp_path / str(count)).mkdir()
        fill(tmp_path / str(count) / "hot.db", count, 1000, every_ms=1000)
        found[count] = run_queries(tmp_path / str(count), [], "web")
    for count, report in found.items():
        newest_web = [i for i in range(count - 1, -1, -1) if SERVICES[i % 3] == "web"][:500]
        assert [message[:9] for _, message in report["answers"][0]] == [f"{i:09d}" for i in newest_web]
    assert found[160_000]["grown_mib"] < found[20_000]["grown_mib"] + 45


def lake_files_now(store: SQLiteHotStore) -> int:
    """How many files the catalog holds, read outside any snapshot of the store's own connections."""
    conn = sqlite3.connect(store.path)
    try:
        return conn.execute("SELECT count(*) FROM lake_files").fetchone()[0]
    finally:
        conn.close()


def test_a_flush_committing_between_two_batches_of_a_read_changes_nothing_it_reads(
    store: SQLiteHotStore, tmp_path: Path
) -> None:
    everything = seed(store, days=3, per_day=400)
    lake = LocalObjectStore(tmp_path / "lake")
    Flusher(store, lake)  # the lake's tables, before the snapshot
    with store.snapshot() as snapshot:
        batches = snapshot.column_batches(None, None, batch_bytes=20_000)
        read = [next(batches)]
        moved = Flusher(store, lake, rows_per_round=100, worker_process=False).flush(before_ms=START + 3 * DAY)
        assert moved.records == 1200 and lake_files_now(store) > 0
        read.extend(batches)
        files = list_files(snapshot.read, APP_LOGS_TABLE.name)
    ids = [format_uuid(join_id(hi, lo)) for columns in read for hi, lo in zip(columns[0], columns[1], strict=True)]
    assert len(read) > 2 and len(ids) == 1200 and set(ids) == everything
    assert files == []  # the lake's files, as the same snapshot lists them: none yet


def test_a_snapshot_is_not_read_after_it_ended(store: SQLiteHotStore) -> None:
    seed(store, days=1, per_day=10)
    with store.snapshot() as snapshot:
        batches = snapshot.column_batches(None, None, batch_bytes=1_000_000)
    with pytest.raises(SnapshotEnded):
        next(batches)
    with pytest.raises(SnapshotEnded):
        snapshot.read("SELECT count(*) FROM logs")


def test_batches_are_sized_by_the_bytes_of_their_rows(store: SQLiteHotStore) -> None:
    """Messages of 64 KiB: after the first batch, each holds about 1 MiB of them, not a fixed row count."""
    store.put([record(START + i, f"{i:06d}".ljust(65536, "m")) for i in range(300)])
    with store.snapshot() as snapshot:
        batches = list(snapshot.column_batches(None, None, batch_bytes=2**20))
    sizes = [sum(map(len, columns[6])) for columns in batches]
    assert sum(len(columns[6]) for columns in batches) == 300
    assert [m[:6] for columns in batches for m in columns[6]] == [f"{i:06d}" for i in range(300)]
    assert len(batches) > 10 and max(sizes[1:]) <= 2**20


def test_the_engine_reads_hot_rows_of_its_own_time_range_only(store: SQLiteHotStore, tmp_path: Path) -> None:
    seed(store, days=3, per_day=100)
    engine = QueryEngine(store, LocalObjectStore(tmp_path / "lake"), tmp_path / "duckdb", QueryLimits(max_rows=1000))
    try:
        rows = engine.run_internal("SELECT count(*) FROM logs", [], TimeRange(START + DAY, START + 2 * DAY), 10).rows
        assert rows == [(100,)]
    finally:
        engine.close()


@pytest.mark.parametrize("newest_first", [False, True])
def test_batches_of_a_time_range_come_in_either_order_and_hold_it_exactly(
    store: SQLiteHotStore, newest_first: bool
) -> None:
    store.put([record(START + i * 10, f"{i:04d}") for i in range(1000)])
    with store.snapshot() as snapshot:
        batches = list(snapshot.column_batches(START + 1000, START + 9000, 4000, newest_first=newest_first))
    messages = [m for columns in batches for m in sorted(columns[6], reverse=newest_first)]
    expected = [f"{i:04d}" for i in range(100, 900)]
    assert len(batches) > 3 and messages == (expected[::-1] if newest_first else expected)
