"""Trace and span ids in the lake: files written before the columns were added read with nulls beside newer
files (SQL, search, recent, get), whatever order the catalog lists them in."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from loglake.ids import format_uuid
from loglake.lake.flush import Flusher
from loglake.lake.lake import Lake
from loglake.lake.objectstore import ObjectStore
from loglake.model import NewRecord
from loglake.service import LogService
from loglake.store.base import RecentQuery
from loglake.store.sqlite import SQLiteHotStore
from tests.lake.test_flush import DAY, START
from tests.store.contract import record

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"
NOW = (START + 5 * DAY) / 1000


def traced(day: int, count: int) -> list[NewRecord]:
    """`count` records of `day`, the even ones with TRACE and a span of their own."""
    return [
        record(START + day * DAY + i * 1000, f"d{day}-{i}", trace_id=None if i % 2 else TRACE, span_id=span(i))
        for i in range(count)
    ]


def span(i: int) -> str | None:
    return None if i % 2 else f"{i + 1:016x}"


def drop_trace_columns(objects: ObjectStore, day: str) -> None:
    """Rewrite the day's files as loglake wrote them before trace ids: without the two columns."""
    for found in list(objects.list(f"type=app_logs/date={day}/")):
        table = pq.read_table(io.BytesIO(objects.get(found.key))).drop_columns(["trace_id", "span_id"])
        out = io.BytesIO()
        pq.write_table(table, out)
        objects.put(found.key, out.getvalue())


@pytest.fixture(params=[0, 1], ids=["old file first", "new file first"])
def old_day(request: pytest.FixtureRequest) -> int:
    """The day (0 or 1) whose file was written before trace ids; 0: the catalog lists it first (DuckDB
    would take its columns for all files)."""
    return request.param


@pytest.fixture
def lake(old_day: int, tmp_path: Path, object_store: ObjectStore) -> Iterator[Lake]:
    """Days 0 and 1 in the lake, one of them in a file without trace ids; day 2 hot."""
    new_day = 1 - old_day
    store = SQLiteHotStore(tmp_path / "hot.db")
    store.put(traced(old_day, 10))
    Flusher(store, object_store, worker_process=False).flush(before_ms=START + 2 * DAY)
    drop_trace_columns(object_store, f"2026-11-0{old_day + 1}")
    store.put(traced(new_day, 10) + traced(2, 10))
    Flusher(store, object_store, worker_process=False).flush(before_ms=START + 2 * DAY)  # day 2 stays hot
    lake = Lake(store, object_store, tmp_path)
    yield lake
    lake.close()
    store.close()


def test_sql_reads_old_files_with_null_ids(lake: Lake, old_day: int) -> None:
    rows = lake.engine.query(
        f"SELECT message LIKE 'd{old_day}-%' AS old, count(*), count(trace_id), count(DISTINCT span_id) FROM logs"
        " GROUP BY 1 ORDER BY 1"
    ).rows
    assert rows == [(False, 20, 10, 5), (True, 10, 0, 0)]  # the two days repeat the five spans
    found = lake.engine.query(f"SELECT message FROM logs WHERE trace_id = '{TRACE}' AND span_id = '{3:016x}'")
    assert sorted(m for (m,) in found.rows) == [f"d{1 - old_day}-2", "d2-2"]


def test_search_finds_trace_and_span_ids_in_hot_and_lake(lake: Lake, old_day: int) -> None:
    service = LogService(lake.store, clock=lambda: NOW, lake=lake)
    window = {"since": "2026-10-30T00:00:00Z"}
    found = service.search({**window, "q": f"trace_id:{TRACE.upper()}", "limit": "100"}).records
    new_day = 1 - old_day
    assert sorted(r.message for r in found) == sorted(f"d{d}-{i}" for d in (new_day, 2) for i in range(0, 10, 2))
    assert all(r.trace_id == TRACE for r in found)
    by_span = service.search({**window, "q": f"span_id:{5:016x} -trace_id:{'1' * 32}"}).records
    assert sorted(r.message for r in by_span) == sorted([f"d{new_day}-4", "d2-4"])


def test_recent_and_get_read_old_and_new_files(lake: Lake, old_day: int) -> None:
    service = LogService(lake.store, clock=lambda: NOW, lake=lake)
    page = service.recent(RecentQuery(since_ms=START, limit=100)).records
    assert len(page) == 30
    by_message = {r.message: r for r in page}
    assert (by_message[f"d{old_day}-0"].trace_id, by_message[f"d{old_day}-0"].span_id) == (None, None)
    assert (by_message[f"d{1 - old_day}-0"].trace_id, by_message[f"d{1 - old_day}-0"].span_id) == (TRACE, f"{1:016x}")
    flushed = by_message[f"d{1 - old_day}-2"]
    assert lake.store.get(flushed.log_id) is None  # in the lake only
    got = service.get(format_uuid(flushed.log_id))
    assert got is not None and (got.trace_id, got.span_id) == (TRACE, f"{3:016x}")
