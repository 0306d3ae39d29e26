"""Bulk batches written straight to lake parts: all of a batch or none of it, whatever moment the
process dies, and maintenance never undoes a batch whose writer is still at work. (Small batches wait in
hot.db first, test_waiting.py; these writers make every batch a part: wait_below_rows=0.)"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from loglake.ingest import parse_batch
from loglake.lake.bulk import BULK_THREADS, WRITER_ROWS, BulkWriter
from loglake.lake.compact import TIER_FILES
from loglake.lake.flush import Flusher
from loglake.lake.lake import Lake, LakeJobs, LakePolicy, MaintenanceReport
from loglake.lake.objectstore import LocalObjectStore, ObjectStore
from loglake.lake.schema import LAKE_SCHEMA
from loglake.model import Limits
from loglake.store.sqlite import SQLiteHotStore
from loglake.times import DAY_MS
from tests.lake.test_flush import lake_ids

START = 1_793_491_200_000  # 2026-11-01T00:00:00Z
NOW = START + 3 * DAY_MS


def batch(days: int = 3, per_day: int = 400, tag: str = "b") -> pa.Table:
    """A checked bulk batch spanning `days` UTC days (one part each)."""
    lines = [
        msgspec.json.encode(
            {"timestamp": START + d * DAY_MS + i * 1000, "service": f"s{i % 4}", "message": f"{tag}-{d}-{i}"}
        )
        for d in range(days)
        for i in range(per_day)
    ]
    parsed = parse_batch(b"\n".join(lines), True, Limits(max_records=100_000), NOW, bulk=True)
    assert parsed.table is not None
    return parsed.table


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteHotStore]:
    s = SQLiteHotStore(tmp_path / "hot.db")
    s.use_schema(LAKE_SCHEMA)
    yield s
    s.close()


def test_a_batch_is_in_the_catalog_as_one_part_per_day_and_not_in_the_hot_store(
    store: SQLiteHotStore, object_store: ObjectStore
) -> None:
    table = batch()
    writer = BulkWriter(store, object_store, wait_below_rows=0)
    try:
        files = writer.submit(table).result()
    finally:
        writer.close()
    assert sorted(f.day for f in files) == ["2026-11-01", "2026-11-02", "2026-11-03"]
    part = pq.read_table(io.BytesIO(object_store.get(files[0].key)))
    rows = [(r["service"], r["timestamp"]) for r in part.to_pylist()]
    assert rows == sorted(rows)  # sorted as every part is; row groups hold runs of services (their stats say which)
    assert sorted(lake_ids(store, object_store)) == sorted(table.column("log_id").to_pylist())
    assert store.count() == 0
    assert store.read("SELECT count(*) FROM flushes") == [(0,)]


# A process that writes a bulk batch and dies (os._exit(9), like kill -9) at the step named by its second argument;
# its data dir is the first. What it does with its `writer` follows (CRASH_SCRIPT, test_waiting's).
CRASH_PREAMBLE = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from loglake.lake.bulk import BulkWriter
    from loglake.lake.objectstore import LocalObjectStore
    from loglake.lake.schema import LAKE_SCHEMA
    from loglake.store.sqlite import SQLiteHotStore
    from tests.lake.test_bulk import batch

    data, crash_at = Path(sys.argv[1]), sys.argv[2]

    def step(name):
        if name == crash_at:
            os._exit(9)  # like kill -9: no cleanup, no atexit, no flush of anything

    store = SQLiteHotStore(data / "hot.db")
    store.use_schema(LAKE_SCHEMA)
    writer = BulkWriter(store, LocalObjectStore(data / "lake"), on_step=step)
    """
)
CRASH_SCRIPT = CRASH_PREAMBLE + "writer.write(batch())\nos._exit(0)\n"


@pytest.mark.parametrize("crash_at", ["written", "journaled", "published 1", "published 2", "published 3", "committed"])
def test_a_crash_at_any_step_leaves_all_of_the_batch_or_none(tmp_path: Path, crash_at: str) -> None:
    child = subprocess.run(
        [sys.executable, "-c", CRASH_SCRIPT, str(tmp_path), crash_at], capture_output=True, timeout=60
    )
    assert child.returncode == 9, child.stderr.decode()
    store = SQLiteHotStore(tmp_path / "hot.db")
    lake = LocalObjectStore(tmp_path / "lake")
    try:
        expected = 1200 if crash_at == "committed" else 0
        assert len(lake_ids(store, lake)) == expected  # what a query sees right after the crash
        Flusher(store, lake).recover()  # the writer is gone: its unfinished round is undone
        lake.remove_unfinished()
        assert store.read("SELECT count(*) FROM flushes") == [(0,)]
        in_lake = lake_ids(store, lake)
        assert len(in_lake) == len(set(in_lake)) == expected
        assert len(list(lake.list())) == (3 if crash_at == "committed" else 0), "an object outside the catalog"
        for lock_file in (tmp_path / "ingest-writers").glob("*.lock"):  # old enough not to be a writer starting
            os.utime(lock_file, (0, 0))
        Flusher(store, lake).recover()
        assert list((tmp_path / "ingest-writers").glob("*.lock")) == []
    finally:
        store.close()


RECOVER_SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from loglake.lake.flush import Flusher
    from loglake.lake.objectstore import LocalObjectStore
    from loglake.store.sqlite import SQLiteHotStore

    data = Path(sys.argv[1])
    store = SQLiteHotStore(data / "hot.db")
    print(Flusher(store, LocalObjectStore(data / "lake")).recover())
    store.close()
    """
)


def test_maintenance_in_another_process_leaves_a_running_writers_batch_alone(
    store: SQLiteHotStore, tmp_path: Path
) -> None:
    lake = LocalObjectStore(tmp_path / "lake")
    published = threading.Event()
    go_on = threading.Event()

    def pause_after_publishing(step: str) -> None:
        if step == "published 3":
            published.set()
            assert go_on.wait(60)

    writer = BulkWriter(store, lake, on_step=pause_after_publishing, wait_below_rows=0)
    try:
        written = writer.submit(batch())
        assert published.wait(60)
        child = subprocess.run(
            [sys.executable, "-c", RECOVER_SCRIPT, str(tmp_path)], capture_output=True, text=True, timeout=60
        )
        assert child.returncode == 0, child.stderr
        assert child.stdout.strip() == "0", "recovery undid a batch under way"
        go_on.set()
        written.result()
    finally:
        go_on.set()
        writer.close()
    assert len(lake_ids(store, lake)) == 1200
    assert len(list(lake.list())) == 3


def test_parts_piling_up_wake_the_maintenance_job_which_merges_them(store: SQLiteHotStore, tmp_path: Path) -> None:
    lake = Lake(store, LocalObjectStore(tmp_path / "lake"), tmp_path, policy=LakePolicy(grace_ms=0))
    lake.bulk.wait_below_rows = 0  # a part per batch
    turns: list[MaintenanceReport] = []
    jobs = LakeJobs(lake, interval_seconds=3600, on_report=turns.append)  # no turn unless woken
    jobs.start()
    try:
        for n in range(TIER_FILES):
            lake.bulk.submit(batch(days=1, per_day=1000, tag=f"b{n}")).result()
        deadline = time.monotonic() + 60
        while not any(t.compacted.merged_files for t in turns) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        jobs.stop()
        lake.close()
    assert sum(t.compacted.merged_files for t in turns) == TIER_FILES
    assert store.read("SELECT count(*), sum(records) FROM lake_files") == [(1, TIER_FILES * 1000)]


@pytest.mark.parametrize("fail_at", ["written", "published 1", "published 2"])
def test_a_write_that_fails_undoes_itself_while_its_writer_lives(
    store: SQLiteHotStore, tmp_path: Path, fail_at: str
) -> None:
    lake = LocalObjectStore(tmp_path / "lake")

    def fail(step: str) -> None:
        if step == fail_at:
            raise OSError(f"the disk went away at {step}")

    writer = BulkWriter(store, lake, on_step=fail, wait_below_rows=0)
    try:
        with pytest.raises(OSError, match="disk went away"):
            writer.submit(batch()).result()
        # Recovery would leave this writer's entry alone while it lives: the writer undid it itself.
        assert store.read("SELECT count(*) FROM flushes") == [(0,)]
        assert list(lake.list()) == [] and lake_ids(store, lake) == []
        writer.on_step = lambda step: None
        writer.submit(batch()).result()  # and it goes on writing
    finally:
        writer.close()
    assert len(lake_ids(store, lake)) == 1200


def _busy_writers(store: SQLiteHotStore, lake: ObjectStore, fail_after: int | None = None) -> tuple[BulkWriter, list]:
    """A writer whose first BULK_THREADS writes wait at "written" until `release` is set (so that batches
    submitted meanwhile wait for a writer); with `fail_after`, the writes after that many fail there."""
    release = threading.Event()
    writes: list[str] = []
    lock = threading.Lock()

    def step(name: str) -> None:
        if name != "written":
            return
        with lock:
            writes.append(name)
            number = len(writes)
        if number <= BULK_THREADS:
            assert release.wait(60)
        if fail_after is not None and number > fail_after:
            raise OSError("the disk went away")

    return BulkWriter(store, lake, on_step=step, wait_below_rows=0), [release, writes]


def _occupy_every_writer(writer: BulkWriter, writes: list, writers: int = BULK_THREADS) -> list:
    """Submit a batch per writer, each once the one before is at "written" (else one writer could take two),
    each large enough to start a writer while others are at work."""
    first = []
    for n in range(writers):
        first.append(writer.submit(batch(days=1, per_day=WRITER_ROWS, tag=f"first{n}")))
        deadline = time.monotonic() + 60
        while len(writes) <= n and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(writes) == n + 1
    return first


def test_batches_waiting_for_a_writer_are_joined_into_one_part_each_answered_once_it_is_committed(
    store: SQLiteHotStore, object_store: ObjectStore
) -> None:
    writer, (release, writes) = _busy_writers(store, object_store)
    try:
        first = _occupy_every_writer(writer, writes)
        waiting_tables = [batch(days=1, per_day=1000, tag=f"waiting{n}") for n in range(3)]
        waiting = [writer.submit(table) for table in waiting_tables]
        assert not any(done.done() for done in waiting)
        release.set()
        parts = [done.result(60) for done in waiting]
        for done in first:
            done.result(60)
    finally:
        writer.close()
    assert len(writes) == BULK_THREADS + 1, "the waiting batches took one write"
    assert parts[0] == parts[1] == parts[2] and len(parts[0]) == 1  # one part of their day for the three
    (part,) = parts[0]
    assert part.records == 3 * 1000
    stored = pq.read_table(io.BytesIO(object_store.get(part.key))).column("log_id").to_pylist()
    assert sorted(stored) == sorted(i for t in waiting_tables for i in t.column("log_id").to_pylist())
    assert len(lake_ids(store, object_store)) == BULK_THREADS * WRITER_ROWS + 3 * 1000
    assert store.read("SELECT count(*) FROM lake_files") == [(BULK_THREADS + 1,)]


def test_small_batches_wait_for_the_writer_at_work_and_are_joined_rather_than_each_start_a_writer(
    store: SQLiteHotStore, object_store: ObjectStore
) -> None:
    writer, (release, writes) = _busy_writers(store, object_store)
    try:
        (first,) = _occupy_every_writer(writer, writes, writers=1)
        small = [writer.submit(batch(days=1, per_day=WRITER_ROWS // 4, tag=f"small{n}")) for n in range(3)]
        release.set()
        parts = [done.result(60) for done in small]
        first.result(60)
    finally:
        writer.close()
    assert len(writes) == 2, "the small batches took one write, after the first"
    assert parts[0] == parts[1] == parts[2] and len(parts[0]) == 1


@pytest.mark.skipif(BULK_THREADS < 2, reason="one writer: batches always wait for it")
def test_small_batches_that_add_up_to_a_writers_worth_start_another_writer(
    store: SQLiteHotStore, object_store: ObjectStore
) -> None:
    writer, (release, writes) = _busy_writers(store, object_store)
    try:
        (first,) = _occupy_every_writer(writer, writes, writers=1)
        small = [writer.submit(batch(days=1, per_day=WRITER_ROWS // 2, tag=f"small{n}")) for n in range(2)]
        deadline = time.monotonic() + 60
        while len(writes) < 2 and time.monotonic() < deadline:  # (the first write still waits for release)
            time.sleep(0.01)
        assert len(writes) == 2, "a second writer took the small batches while the first was at work"
        release.set()
        parts = [done.result(60) for done in small]
        first.result(60)
    finally:
        writer.close()
    assert parts[0] == parts[1] and parts[0] != first.result()


def test_a_joined_write_that_fails_fails_every_batch_in_it_and_stores_none_of_them(
    store: SQLiteHotStore, object_store: ObjectStore
) -> None:
    writer, (release, writes) = _busy_writers(store, object_store, fail_after=BULK_THREADS)
    try:
        first = _occupy_every_writer(writer, writes)
        waiting = [writer.submit(batch(days=2, per_day=1000, tag=f"waiting{n}")) for n in range(3)]
        release.set()
        for done in waiting:
            with pytest.raises(OSError, match="disk went away"):
                done.result(60)
        for done in first:
            done.result(60)
    finally:
        writer.close()
    assert len(lake_ids(store, object_store)) == BULK_THREADS * WRITER_ROWS  # the first batches only
    assert store.read("SELECT count(*) FROM flushes") == [(0,)]
