"""Flush: hot store -> Parquet lake, exactly once, including when the process dies at any step."""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap
import uuid
from datetime import datetime
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from loglake.ids import format_uuid, join_id, split_id, uuid7_bytes
from loglake.lake.flush import Flusher
from loglake.lake.objectstore import LocalObjectStore, ObjectStore
from loglake.model import Severity
from loglake.store.base import RecentQuery
from loglake.store.sqlite import SQLiteHotStore
from loglake.times import DAY_MS
from tests.store.contract import record

DAY = DAY_MS
START = 1_793_491_200_000  # 2026-11-01T00:00:00Z
SERVICES = ["web", "api", "db"]


def seed(store: SQLiteHotStore, days: int = 3, per_day: int = 300) -> set[str]:
    records = [
        record(
            START + d * DAY + i * 1000,
            f"d{d}-{i}",
            service=SERVICES[i % 3],
            severity=Severity(i % 5),
            attributes=b'{"i":%d}' % i if i % 2 else None,
        )
        for d in range(days)
        for i in range(per_day)
    ]
    store.put(records)
    return {format_uuid(r.log_id) for r in records}


def hot_ids(store: SQLiteHotStore) -> set[str]:
    return {format_uuid(join_id(hi, lo)) for hi, lo in store.read("SELECT id_hi, id_lo FROM logs")}


def lake_ids(store: SQLiteHotStore, lake: ObjectStore) -> list[str]:
    """What a query sees in the lake: the objects of the catalog (lake_files)."""
    found: list[str] = []
    for (key,) in store.read("SELECT key FROM lake_files"):
        found.extend(pq.read_table(io.BytesIO(lake.get(key))).column("log_id").to_pylist())
    return found


@pytest.fixture
def lake(object_store: ObjectStore) -> ObjectStore:
    return object_store


# Rounds are read and written in this process (a thread), or in a worker process (with ADBC).
IN_WORKER = pytest.mark.parametrize("in_worker", [False, True], ids=["thread", "worker-process"])


@IN_WORKER
def test_flush_moves_due_records_into_daily_parquet(store: SQLiteHotStore, lake: ObjectStore, in_worker: bool) -> None:
    everything = seed(store)
    with_client_id = record(START + 7, "with a client id", client_id=uuid.UUID(int=7).bytes)
    store.put([with_client_id])
    everything.add(format_uuid(with_client_id.log_id))
    report = Flusher(store, lake, rows_per_round=250, worker_process=in_worker).flush(before_ms=START + 2 * DAY)
    assert report.records == 601 and report.rounds == 3  # the third day is not due yet
    assert sorted({k.split("/")[1] for k in report.objects}) == ["date=2026-11-01", "date=2026-11-02"]
    flushed = lake_ids(store, lake)
    assert len(flushed) == len(set(flushed)) == 601
    assert set(flushed) | hot_ids(store) == everything
    assert not set(flushed) & hot_ids(store)

    table = pq.read_table(io.BytesIO(lake.get(report.objects[0])))
    rows = table.to_pylist()
    assert [(r["service"], r["timestamp"]) for r in rows] == sorted((r["service"], r["timestamp"]) for r in rows)
    first = next(r for r in rows if r["message"] == "d0-1")
    assert (first["severity"], first["attributes"], first["log_type"]) == ("info", '{"i":1}', "application")
    metadata = pq.ParquetFile(io.BytesIO(lake.get(report.objects[0]))).metadata
    assert metadata.row_group(0).column(0).compression == "SNAPPY"  # (compaction rewrites it: fast to write)
    assert one_service_per_row_group(metadata)
    assert store.read("SELECT client_id FROM flushed_client_ids") == [(str(uuid.UUID(int=7)),)]


def one_service_per_row_group(metadata: pq.FileMetaData) -> bool:
    service = metadata.schema.names.index("service")
    groups = [metadata.row_group(i).column(service).statistics for i in range(metadata.num_row_groups)]
    return len(groups) >= 3 and all(stats.min == stats.max for stats in groups)


def test_the_catalog_describes_each_flushed_object(store: SQLiteHotStore, lake: ObjectStore) -> None:
    seed(store)
    Flusher(store, lake).flush(before_ms=START + 3 * DAY)
    catalog = store.read("SELECT key, table_name, day, min_ts, max_ts, records, bytes FROM lake_files ORDER BY day")
    assert [row[2] for row in catalog] == ["2026-11-01", "2026-11-02", "2026-11-03"]
    for key, table_name, day, min_ts, max_ts, records, size in catalog:
        data = lake.get(key)
        millis = pq.read_table(io.BytesIO(data)).column("timestamp").cast("int64").to_pylist()
        assert (table_name, f"date={day}" in key) == ("logs", True)
        assert (min_ts, max_ts, records, size) == (min(millis), max(millis), len(millis), len(data))


@IN_WORKER
def test_records_that_arrive_during_a_flush_stay_hot(store: SQLiteHotStore, tmp_path: Path, in_worker: bool) -> None:
    seed(store, days=1, per_day=50)
    lake = LocalObjectStore(tmp_path / "lake")
    late = record(START + 5, "late arrival, old timestamp")

    def arrive(step: str) -> None:
        if step == "journaled":
            store.put([late])

    Flusher(store, lake, on_step=arrive, worker_process=in_worker).flush(before_ms=START + DAY, max_rounds=1)
    assert hot_ids(store) == {format_uuid(late.log_id)}
    assert len(lake_ids(store, lake)) == 50


CRASH_SCRIPT = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from loglake.lake.flush import Flusher
    from loglake.lake.objectstore import LocalObjectStore
    from loglake.store.sqlite import SQLiteHotStore

    data, crash_at, in_worker = Path(sys.argv[1]), sys.argv[2], sys.argv[4] == "True"

    def step(name):
        if name == crash_at:
            os._exit(9)  # like kill -9: no cleanup, no atexit, no flush of anything

    store = SQLiteHotStore(data / "hot.db")
    flusher = Flusher(store, LocalObjectStore(data / "lake"), on_step=step, worker_process=in_worker)
    flusher.flush(before_ms=int(sys.argv[3]))
    os._exit(0)
    """
)


@IN_WORKER
@pytest.mark.parametrize("crash_at", ["written", "journaled", "published 1", "published 2", "published 3", "committed"])
def test_a_crash_at_any_step_loses_and_duplicates_nothing(tmp_path: Path, crash_at: str, in_worker: bool) -> None:
    store = SQLiteHotStore(tmp_path / "hot.db")
    everything = seed(store)
    store.close()

    child = subprocess.run(
        [sys.executable, "-c", CRASH_SCRIPT, str(tmp_path), crash_at, str(START + 3 * DAY), str(in_worker)],
        capture_output=True,
        timeout=60,  # a worker process outliving its killed parent would hold the pipes open
    )
    assert child.returncode == 9, child.stderr.decode()

    store = SQLiteHotStore(tmp_path / "hot.db")
    lake = LocalObjectStore(tmp_path / "lake")
    try:
        for _ in range(2):  # what a query sees right after the crash, then after recovery
            in_lake = lake_ids(store, lake)
            assert len(in_lake) == len(set(in_lake)), "a record is in the lake twice"
            assert not set(in_lake) & hot_ids(store), "a record is both hot and in the lake"
            assert set(in_lake) | hot_ids(store) == everything, "a record was lost"
            Flusher(store, lake).recover()
            lake.remove_unfinished()
        assert store.read("SELECT count(*) FROM flushes") == [(0,)]
        expected_in_lake = 900 if crash_at == "committed" else 0
        assert len(lake_ids(store, lake)) == expected_in_lake
        assert len(list(lake.list())) == (3 if crash_at == "committed" else 0)

        Flusher(store, lake).flush(before_ms=START + 3 * DAY)  # the next round finishes the job
        assert hot_ids(store) == set() and set(lake_ids(store, lake)) == everything
    finally:
        store.close()


@IN_WORKER
def test_rows_holding_values_no_record_can_have_are_flushed_as_the_lake_can_hold_them(
    store: SQLiteHotStore, lake: ObjectStore, in_worker: bool
) -> None:
    """Rows written into hot.db by hand (or by an older loglake) never stop the flush: values pass as
    stored where the lake's column types hold them (readers then name them), others are converted."""
    seed(store, days=1, per_day=10)
    odd = {
        "a 15-byte client id": {"client_id": "01234567-89ab-cdef-0123-456789abcd"},
        "a severity past critical": {"severity": 7},
        "attributes not JSON": {"attributes": '{"user": '},
        "a time as text": {"timestamp": "soon"},
        "bytes": {"message": b"\xff\xfe bytes", "service": b"api"},
    }
    for n, (name, values) in enumerate(odd.items()):
        ts = START + 100 + n
        high, low = split_id(uuid7_bytes(ts))
        row = {"id_hi": high, "id_lo": low, "timestamp": ts, "service": "api", "log_type": "application"}
        row |= {"severity": 1, "message": name, "attributes": None, "client_id": None} | values
        store.run_in_writer(
            lambda conn, row=row: conn.execute(
                f"INSERT INTO logs ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", list(row.values())
            )
        )
    for high in (1.5, "x"):  # ids that are not integers: never due, never in the way
        store.run_in_writer(
            lambda conn, high=high: conn.execute(
                "INSERT INTO logs VALUES (?, 1, ?, 'api', 'application', 1, 'no id', NULL, NULL, NULL, NULL)",
                (high, START),
            )
        )
    report = Flusher(store, lake, worker_process=in_worker).flush(before_ms=START + DAY)
    assert report.records == 15
    assert store.read("SELECT id_hi FROM logs ORDER BY id_hi") == [(1.5,), ("x",)]
    assert [r.message for r in store.recent(RecentQuery(since_ms=0))] == []
    rows = {r["message"]: r for key in report.objects for r in pq.read_table(io.BytesIO(lake.get(key))).to_pylist()}
    assert rows["a 15-byte client id"]["client_id"] == "01234567-89ab-cdef-0123-456789abcd"
    assert rows["a severity past critical"]["severity"] == "7"
    assert rows["attributes not JSON"]["attributes"] == '{"user": '
    assert rows["a time as text"]["timestamp"] == datetime(2026, 11, 1, 0, 0, 0, 103_000)  # START + 103: its id's
    assert (rows["\ufffd\ufffd bytes"]["service"], rows["d0-1"]["severity"]) == ("api", "info")
