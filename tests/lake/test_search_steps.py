"""The API's search reads its window newest first in slices: the first one holds about four pages (if
every record matched) whether the records are in the hot store, the lake or both, so a search reads
little more than it answers, in a few slices."""

from __future__ import annotations

from pathlib import Path

import pytest

from loglake.lake.flush import Flusher
from loglake.lake.objectstore import LocalObjectStore
from loglake.lake.query import QueryEngine
from loglake.lake.reads import search, search_steps
from loglake.store.base import RecentQuery
from loglake.store.sqlite import SQLiteHotStore
from tests.lake.test_flush import DAY, SERVICES, START
from tests.store.contract import record

LIMIT = 100
DENSE = 30_000  # records, one a second from a day after START, services in turn: about 8 hours
DENSE_START = START + DAY


@pytest.fixture
def engine(store: SQLiteHotStore, tmp_path: Path) -> QueryEngine:
    return QueryEngine(store, LocalObjectStore(tmp_path / "lake"), tmp_path / "duckdb")


def put_dense(store: SQLiteHotStore) -> dict[int, str]:
    """The dense records, hot; returns their services by time."""
    services = {DENSE_START + i * 1000: SERVICES[i % 3] for i in range(DENSE)}
    records = [record(ts, f"m{ts}", service=service) for ts, service in services.items()]
    for first in range(0, DENSE, 5000):
        store.put(records[first : first + 5000])
    return services


def records_within(times: dict[int, str], since_ms: int, until_ms: int) -> int:
    return sum(since_ms <= ts < until_ms for ts in times)


def newest_of(times: dict[int, str], service: str, limit: int = LIMIT) -> list[str]:
    return [f"m{ts}" for ts in sorted(times, reverse=True) if times[ts] == service][:limit]


def test_a_search_of_hot_records_only_reads_a_few_pages_of_them(store: SQLiteHotStore, engine: QueryEngine) -> None:
    """With no lake file to size the first slice by, it was the whole window: all 30,000 hot records read
    to answer 100."""
    times = put_dense(store)
    query = RecentQuery(since_ms=START, service="web", limit=LIMIT)
    steps = list(search_steps(engine, query))
    assert [r.message for step in steps for r in step.records] == newest_of(times, "web")
    assert len(steps) == 1 and records_within(times, steps[0].since_ms, steps[0].until_ms) <= 8 * LIMIT


def test_a_search_of_rare_matches_reaches_the_start_of_the_window_in_a_few_steps(
    store: SQLiteHotStore, engine: QueryEngine
) -> None:
    put_dense(store)
    rare = {DENSE_START + i * 1000 + 500: "rare" for i in range(0, DENSE, 6000)}  # five, the oldest in the first second
    store.put([record(ts, f"m{ts}", service=service) for ts, service in rare.items()])
    steps = list(search_steps(engine, RecentQuery(since_ms=START, service="rare", limit=LIMIT)))
    assert [r.message for step in steps for r in step.records] == newest_of(rare, "rare")
    assert steps[-1].since_ms == START and len(steps) <= 6  # slices growing eightfold from a few minutes


def test_a_few_old_lake_records_do_not_make_the_first_slice_of_many_hot_ones_long(
    store: SQLiteHotStore, engine: QueryEngine, tmp_path: Path
) -> None:
    """Ten records over the day before, in the lake: sized from them alone, the first slice held every
    hot record."""
    old = {START + i * 3_600_000: "web" for i in range(10)}
    store.put([record(ts, f"m{ts}", service=service) for ts, service in old.items()])
    assert Flusher(store, LocalObjectStore(tmp_path / "lake")).flush(before_ms=DENSE_START).records == 10
    times = put_dense(store)
    steps = list(search_steps(engine, RecentQuery(since_ms=START, service="web", limit=LIMIT)))
    assert [r.message for step in steps for r in step.records] == newest_of(times, "web")
    assert len(steps) == 1 and records_within(times, steps[0].since_ms, steps[0].until_ms) <= 8 * LIMIT
    everything = search(engine, RecentQuery(since_ms=START, service="web", limit=10_100))  # and the lake's too
    assert [r.message for r in everything] == newest_of(times, "web", DENSE) + newest_of(old, "web")
