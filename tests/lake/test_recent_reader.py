"""Recent logs over hot + lake, by the row-group reader, agree with a plain SQL scan of everything."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from loglake.ids import format_uuid, parse_uuid
from loglake.lake import parts, reads
from loglake.lake.flush import Flusher
from loglake.lake.lake import Lake
from loglake.lake.objectstore import LocalObjectStore, ObjectStore
from loglake.lake.recent_reader import CACHE_BYTES, LakeRecentReader
from loglake.model import SEVERITY_NAMES, NewRecord, Severity
from loglake.store.base import RecentQuery
from loglake.store.sqlite import SQLiteHotStore
from tests.lake.test_flush import DAY, START, seed
from tests.store.contract import record


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
    if query.log_type:
        where.append("log_type = ?")
        params.append(query.log_type)
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


@pytest.mark.parametrize("cache_bytes", [CACHE_BYTES, 0], ids=["cached", "no room to cache"])
def test_recent_over_hot_and_lake_matches_a_full_scan(lake: Lake, object_store: ObjectStore, cache_bytes: int) -> None:
    reader = LakeRecentReader(object_store, cache_bytes)
    for query in QUERIES:
        for _ in range(2):  # the second time from what the first decoded (with room for it)
            expected = by_sql(lake, query)
            found = [format_uuid(r.log_id) for r in reads.recent(lake.store, reader, query)]
            assert found == expected, query
        if found and len(found) == query.limit:  # the next page continues where this one ended
            following = replace(query, before_id=parse_uuid(found[-1]))
            page = [format_uuid(r.log_id) for r in reads.recent(lake.store, reader, following)]
            assert page == by_sql(lake, following), following
    reader.close()


# Few errors among many other records, in row groups of 16 (api: [0 s, 14 s], [15 s, 28.5 s], [29 s, 39 s];
# db: [0.5 s, 13.5 s], [14.5 s, 20.2 s]): per service a run longer than a row group (one write, several
# row groups), an old error among infos, a row group whose errors are older and newer than another's,
# and a few records of another log type.
def rare_errors() -> list[NewRecord]:
    records = [record(START + i * 1000, f"api-{i}", service="api") for i in range(40)]
    records += [record(START + i * 1000 + 500, f"db-{i}", service="db", severity=Severity.DEBUG) for i in range(20)]
    records += [
        record(START + 5_500, "old api error", service="api", severity=Severity.ERROR),
        record(START + 15_500, "api error at 15.5 s", service="api", severity=Severity.ERROR),
        record(START + 28_500, "api error at 28.5 s", service="api", severity=Severity.ERROR),
        record(START + 37_700, "new api error", service="api", severity=Severity.ERROR),
        record(START + 2_600, "old db error", service="db", severity=Severity.ERROR),
        record(START + 12_600, "db critical", service="db", severity=Severity.CRITICAL),
        *(record(START + 20_000 + i * 100, f"db error {i}", service="db", severity=Severity.ERROR) for i in range(3)),
        record(START + 33_300, "api audit", service="api", log_type="audit"),
        record(START + 16_600, "db audit error", service="db", log_type="audit", severity=Severity.ERROR),
    ]
    return records


def severity_queries() -> list[RecentQuery]:
    return [
        RecentQuery(
            since_ms=since, until_ms=until, service=service, log_type=log_type, severities=severities, limit=limit
        )
        for since, until in [(START, START + DAY), (START + 10_000, START + DAY), (START, START + 29_000)]
        for service in (None, "api", "db")
        for log_type in (None, "audit")
        for severities in (None, frozenset({Severity.ERROR}), frozenset({Severity.ERROR, Severity.CRITICAL}))
        for limit in (1, 2, 3, 100)
    ]


def stripped_of_the_index(data: bytes) -> bytes:
    """A lake file as a loglake before the severity index wrote it: same rows and row groups, no index."""
    parquet = pq.ParquetFile(io.BytesIO(data))
    out = io.BytesIO()
    with pq.ParquetWriter(out, parquet.schema_arrow.remove_metadata()) as writer:
        for i in range(parquet.metadata.num_row_groups):
            writer.write_table(parquet.read_row_group(i))
    assert pq.ParquetFile(io.BytesIO(out.getvalue())).metadata.metadata.get(parts.SEVERITY_INDEX_KEY) is None
    return out.getvalue()


def with_an_index_that_does_not_fit(data: bytes) -> bytes:
    """A file whose index names fewer row groups than it has (written by hand, or cut): not to be trusted."""
    parquet = pq.ParquetFile(io.BytesIO(data))
    out = io.BytesIO()
    with pq.ParquetWriter(out, parquet.schema_arrow.remove_metadata()) as writer:
        for i in range(parquet.metadata.num_row_groups):
            writer.write_table(parquet.read_row_group(i))
        writer.add_key_value_metadata({parts.SEVERITY_INDEX_KEY: '[{"info": 0}]'})
    return out.getvalue()


@pytest.mark.parametrize("files", ["as written", "older, without the index", "with an index that does not fit"])
def test_the_newest_errors_or_audits_are_found_however_few_among_other_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, files: str
) -> None:
    monkeypatch.setattr(parts, "ROW_GROUP_ROWS", 16)
    objects = LocalObjectStore(tmp_path / "lake")
    store = SQLiteHotStore(tmp_path / "hot.db")
    store.put(rare_errors())
    Flusher(store, objects, worker_process=False).flush(before_ms=START + DAY)
    rewrite = {
        "older, without the index": stripped_of_the_index,
        "with an index that does not fit": with_an_index_that_does_not_fit,
    }
    for (key,) in store.read("SELECT key FROM lake_files"):
        if files in rewrite:
            objects.put(key, rewrite[files](objects.get(key)))
    lake = Lake(store, objects, tmp_path)
    try:
        for query in severity_queries():
            found = [format_uuid(r.log_id) for r in reads.recent(lake.store, lake.recent_reader, query)]
            assert found == by_sql(lake, query), query
        errors = RecentQuery(since_ms=START, until_ms=START + DAY, severities=frozenset({Severity.ERROR}), limit=1)
        found = reads.recent(lake.store, lake.recent_reader, errors)
        assert [r.message for r in found] == ["new api error"]
        found = reads.recent(lake.store, lake.recent_reader, replace(errors, until_ms=START + 29_000))
        assert [r.message for r in found] == ["api error at 28.5 s"]
    finally:
        lake.close()
        store.close()


def test_each_row_group_names_the_newest_time_of_each_severity_in_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(parts, "ROW_GROUP_ROWS", 16)
    objects = LocalObjectStore(tmp_path / "lake")
    store = SQLiteHotStore(tmp_path / "hot.db")
    store.put(rare_errors())
    Flusher(store, objects, worker_process=False).flush(before_ms=START + DAY)
    ((key,),) = store.read("SELECT key FROM lake_files")
    store.close()
    parquet = pq.ParquetFile(io.BytesIO(objects.get(key)))
    index = json.loads(parquet.metadata.metadata[parts.SEVERITY_INDEX_KEY])
    assert len(index) == parquet.metadata.num_row_groups > 4
    for i, newest in enumerate(index):
        newest_by_hand: dict[str, int] = {}
        for row in parquet.read_row_group(i).to_pylist():
            ms = int(row["timestamp"].replace(tzinfo=UTC).timestamp() * 1000)
            newest_by_hand[row["severity"]] = max(ms, newest_by_hand.get(row["severity"], ms))
        assert newest == newest_by_hand, i


@pytest.mark.parametrize("filtered_by", ["a text", "a cursor"])
def test_a_row_group_with_more_matches_than_the_page_gives_its_newest_whatever_the_filter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, filtered_by: str
) -> None:
    """A row group holding between one and two pages of matches, found by text or below a cursor (which
    read its log ids and messages): the page is its newest matches, none left out for older ones."""
    monkeypatch.setattr(parts, "ROW_GROUP_ROWS", 64)
    objects = LocalObjectStore(tmp_path / "lake")
    store = SQLiteHotStore(tmp_path / "hot.db")
    store.put([record(START + i * 1000, f"api timeout {i}", service="api") for i in range(40)])
    Flusher(store, objects, worker_process=False).flush(before_ms=START + DAY)
    lake = Lake(store, objects, tmp_path)
    try:
        query = RecentQuery(since_ms=START, limit=25)
        if filtered_by == "a text":
            query = replace(query, contains="timeout")
        else:
            newest = reads.recent(lake.store, lake.recent_reader, replace(query, limit=1))
            query = replace(query, before_id=newest[0].log_id)
        found = [r.message for r in reads.recent(lake.store, lake.recent_reader, query)]
        newest_first = [f"api timeout {i}" for i in range(39, -1, -1)]
        assert found == (newest_first if filtered_by == "a text" else newest_first[1:])[:25]
    finally:
        lake.close()
        store.close()
