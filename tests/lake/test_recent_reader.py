"""Recent logs over hot + lake, by the row-group reader, agree with a plain SQL scan of everything."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from loglake.ids import format_uuid, parse_uuid
from loglake.lake import parts, reads
from loglake.lake.flush import Flusher
from loglake.lake.lake import Lake
from loglake.lake.objectstore import ObjectStore
from loglake.model import SEVERITY_NAMES
from loglake.store.base import RecentQuery
from loglake.store.sqlite import SQLiteHotStore
from tests.lake.test_flush import DAY, START, seed


@pytest.fixture
def lake(tmp_path: Path, object_store: ObjectStore, monkeypatch: pytest.MonkeyPatch) -> Iterator[Lake]:
    monkeypatch.setattr(parts, "ROW_GROUP_ROWS", 16)  # many row groups, so pruning and stopping matter
    store = SQLiteHotStore(tmp_path / "hot.db")
    seed(store, days=3)
    # in this process: a worker process would not see the patched row group size
    Flusher(store, object_store, rows_per_round=70, worker_process=False).flush(
        before_ms=START + 2 * DAY + 150_000
    )  # part of day 3 stays hot
    lake = Lake(store, object_store, tmp_path)
    yield lake
    lake.close()
    store.close()


def by_sql(lake: Lake, query: RecentQuery) -> list[str]:
    where = ["epoch_ms(timestamp) >= ?"]
    params: list = [query.since_ms]
    if query.until_ms is not None:
        where.append("epoch_ms(timestamp) < ?")
        params.append(query.until_ms)
    if query.service:
        where.append("service = ?")
        params.append(query.service)
    if query.severities is not None:
        where.append("list_contains(?, severity)")
        params.append([SEVERITY_NAMES[s] for s in query.severities])
    if query.contains:
        where.append("contains(lower(message), ?)")
        params.append(query.contains)
    if query.before_id is not None:
        where.append("log_id < ?")
        params.append(format_uuid(query.before_id))
    sql = f"SELECT log_id FROM logs WHERE {' AND '.join(where)} ORDER BY log_id DESC LIMIT {query.limit}"
    return [row[0] for row in lake.engine.run_internal(sql, params, reads.TimeRange(), query.limit).rows]


QUERIES = [
    RecentQuery(since_ms=since, until_ms=until, service=service, severities=severities, contains=contains, limit=limit)
    for since, until in [(START, None), (START + DAY // 2, START + 2 * DAY + 100_000), (START + 2 * DAY, None)]
    for service, severities, contains in [
        (None, None, None),
        ("api", None, None),
        ("db", frozenset({3, 4}), None),
        (None, frozenset({0}), "d1-"),
    ]
    for limit in (1, 7, 100)
]


def test_recent_over_hot_and_lake_matches_a_full_scan(lake: Lake) -> None:
    for query in QUERIES:
        expected = by_sql(lake, query)
        found = [format_uuid(r.log_id) for r in reads.recent(lake.store, lake.recent_reader, query)]
        assert found == expected, query
        if found and len(found) == query.limit:  # the next page continues where this one ended
            following = replace(query, before_id=parse_uuid(found[-1]))
            page = [format_uuid(r.log_id) for r in reads.recent(lake.store, lake.recent_reader, following)]
            assert page == by_sql(lake, following), following
