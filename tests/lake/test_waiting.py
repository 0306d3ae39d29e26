"""Small bulk batches waiting in hot.db (lake/waiting.py) before the mover joins them into lake parts: durable
when answered, read exactly once by every reader while they wait and after they moved, moved exactly once
whatever moment a process dies and whoever else moves them."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from loglake.ids import parse_uuid
from loglake.lake import bulk
from loglake.lake.bulk import WRITER_ROWS, BulkWriter
from loglake.lake.lake import Lake, LakePolicy
from loglake.lake.manifest import reading
from loglake.lake.objectstore import LocalObjectStore
from loglake.lake.query import TimeRange
from loglake.lake.query_answers import LakeUnreadable
from loglake.lake.reads import facets, get, histogram, recent, search
from loglake.lake.schema import LAKE_SCHEMA
from loglake.lake.verify import VerifyReport, verify_waiting
from loglake.lake.waiting import (
    QUARANTINE_DIR,
    batch_file_name,
    oldest_batches,
    quarantine_batches,
    quarantined_batch_file,
    sweep,
    waiting_dir,
    write_batch_file,
)
from loglake.store.base import RecentQuery
from loglake.store.sqlite import SQLiteHotStore
from loglake.times import DAY_MS
from tests.conftest import run_cli
from tests.lake.test_bulk import CRASH_PREAMBLE, START, batch
from tests.lake.test_flush import lake_ids
from tests.store.contract import record


@pytest.fixture
def lake(tmp_path: Path) -> Iterator[Lake]:
    store = SQLiteHotStore(tmp_path / "hot.db")
    store.use_schema(LAKE_SCHEMA)
    made = Lake(store, LocalObjectStore(tmp_path / "lake"), tmp_path, policy=LakePolicy(grace_ms=0))
    yield made
    made.close()
    store.close()


def waiting_count(store: SQLiteHotStore) -> tuple[int, int]:
    """Batches and records waiting in hot.db."""
    ((batches, rows),) = store.read("SELECT count(*), coalesce(sum(rows), 0) FROM bulk_batches")
    return batches, rows


def sql_ids(lake: Lake) -> list[str]:
    return [row[0] for row in lake.engine.query("SELECT log_id FROM logs", limit=100_000).rows]


def test_a_small_batch_is_answered_once_durable_in_hot_db_without_a_part(lake: Lake) -> None:
    table = batch(days=1, per_day=1600)
    assert lake.bulk.submit(table).result() == []  # durable, and no part yet
    assert waiting_count(lake.store) == (1, 1600)
    assert lake.store.read("SELECT count(*) FROM lake_files") == [(0,)]
    assert lake.store.count() == 0  # not hot rows either: one row holding the batch's table


def test_every_read_sees_waiting_records_exactly_once_before_and_after_they_move(lake: Lake) -> None:
    lake.store.put([record(START + 500 + i, f"hot {i}", service="hot") for i in range(5)])  # older than the batch
    table = batch(days=1, per_day=1200)  # START + i s, services s0..s3
    lake.bulk.submit(table).result()
    ids = sorted(table.column("log_id").to_pylist())
    newest_id = parse_uuid(table.column("log_id")[1199].as_py())
    everything = RecentQuery(since_ms=START, until_ms=START + DAY_MS, limit=2000)

    def check() -> None:
        in_sql = sql_ids(lake)
        assert len(in_sql) == len(set(in_sql)) == 1205 and set(ids) <= set(in_sql)
        newest = lake.engine.query("SELECT log_id FROM logs ORDER BY timestamp DESC LIMIT 3").rows  # a top-N
        assert [r[0] for r in newest] == [table.column("log_id")[i].as_py() for i in (1199, 1198, 1197)]
        page = recent(lake.store, lake.recent_reader, RecentQuery(since_ms=START, limit=3))
        assert [r.log_id for r in page] == [parse_uuid(table.column("log_id")[i].as_py()) for i in (1199, 1198, 1197)]
        found = search(lake.engine, RecentQuery(since_ms=START, limit=2000, service="s1"))
        assert len(found) == 300 and all(r.service == "s1" for r in found)
        assert search(lake.engine, RecentQuery(since_ms=START, limit=1))[0].log_id == newest_id
        counts = histogram(lake.engine, everything, [], DAY_MS)
        assert counts[0]["total"] == 1205
        assert {f["value"]: f["count"] for f in facets(lake.engine, everything, [], 10)["service"]} == {
            "s0": 300,
            "s1": 300,
            "s2": 300,
            "s3": 300,
            "hot": 5,
        }
        found_one = get(lake.engine, newest_id)
        assert found_one is not None and found_one.message == "b-0-1199"

    check()
    assert lake.hot_records() == 1205 and lake.state().hot_records == 1205
    report = lake.flush(everything=True)
    assert report.records == 1205
    assert waiting_count(lake.store) == (0, 0) and lake.store.count() == 0
    check()
    assert sorted(lake_ids(lake.store, lake.objects)) == sorted([*ids, *(i for i in sql_ids(lake) if i not in ids)])
    assert lake.hot_records() == 0


def test_a_query_window_reads_only_the_waiting_records_inside_it(lake: Lake) -> None:
    lake.bulk.submit(batch(days=3, per_day=1000)).result()
    day_two = TimeRange(START + DAY_MS, START + 2 * DAY_MS)
    rows = lake.engine.run_internal("SELECT count(*), min(message) FROM logs", [], day_two, 1).rows
    assert rows == [(1000, "b-1-0")]
    page = recent(lake.store, lake.recent_reader, RecentQuery(since_ms=START, until_ms=START + DAY_MS, limit=5000))
    assert len(page) == 1000 and {r.message.split("-")[1] for r in page} == {"0"}


def test_waiting_batches_move_once_a_parts_worth_waits(lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bulk, "MOVED_ROWS", 4000)
    monkeypatch.setattr(bulk, "MOVE_AFTER_SECONDS", 3600)  # so only the rows waiting start the move
    for n in range(4):
        lake.bulk.submit(batch(days=1, per_day=1000, tag=f"b{n}")).result()
    deadline = time.monotonic() + 60
    while waiting_count(lake.store)[0] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert waiting_count(lake.store) == (0, 0)
    assert lake.store.read("SELECT count(*), sum(records) FROM lake_files") == [(1, 4000)]  # one part


def test_a_few_waiting_records_move_once_the_oldest_waited_a_while(lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bulk, "MOVE_AFTER_SECONDS", 0.3)
    lake.bulk.submit(batch(days=1, per_day=1000)).result()
    deadline = time.monotonic() + 60
    while waiting_count(lake.store)[0] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert lake.store.read("SELECT count(*), sum(records) FROM lake_files") == [(1, 1000)]


def test_past_the_bound_a_small_batch_becomes_a_part_of_its_own(lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bulk, "MAX_WAITING_ROWS", 2500)
    monkeypatch.setattr(bulk, "MOVE_AFTER_SECONDS", 3600)  # nothing moves meanwhile
    first = lake.bulk.submit(batch(days=1, per_day=1200, tag="first")).result()
    second = lake.bulk.submit(batch(days=1, per_day=1200, tag="second")).result()
    third = lake.bulk.submit(batch(days=1, per_day=1200, tag="third")).result()
    assert first == second == [] and len(third) == 1
    assert waiting_count(lake.store) == (2, 2400)
    assert len(set(sql_ids(lake))) == 3600


def test_a_batch_of_a_writers_worth_is_a_part_at_once_as_before(lake: Lake) -> None:
    assert len(lake.bulk.submit(batch(days=1, per_day=WRITER_ROWS)).result()) == 1
    assert waiting_count(lake.store) == (0, 0)


def test_a_batch_as_large_as_a_part_is_a_part_at_once(tmp_path: Path) -> None:
    store = SQLiteHotStore(tmp_path / "hot.db")
    store.use_schema(LAKE_SCHEMA)
    writer = BulkWriter(store, LocalObjectStore(tmp_path / "lake"), wait_below_rows=2000)
    try:
        assert len(writer.submit(batch(days=1, per_day=2000)).result()) == 1
        assert writer.submit(batch(days=1, per_day=1999)).result() == []
    finally:
        writer.close()
        store.close()


def test_batches_queued_while_the_hot_stores_writer_is_busy_share_one_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hot store's writer commits the rows of the batch files written while it was busy in one
    transaction (one fsync), not one after another."""
    monkeypatch.setattr(bulk, "BULK_THREADS", 2)  # both batches written at once, whatever the machine's cores
    store = SQLiteHotStore(tmp_path / "hot.db")
    store.use_schema(LAKE_SCHEMA)
    steps: list[str] = []
    queued = threading.Semaphore(0)

    def seen(step: str) -> None:
        steps.append(step)
        if step == "batch row queued":
            queued.release()

    writer = BulkWriter(store, LocalObjectStore(tmp_path / "lake"), on_step=seen)
    busy = threading.Event()
    store.queue_for_writer(lambda conn: busy.wait(60))  # another write holds the writer meanwhile
    try:
        answers = []
        for tag in ("a", "b"):  # one at a time: a writer taking both would join them into one file
            answers.append(writer.submit(batch(days=1, per_day=1000, tag=tag)))
            assert queued.acquire(timeout=60)
        busy.set()
        assert [answer.result(60) for answer in answers] == [[], []]
        assert waiting_count(store) == (2, 2000)
        assert [step for step in steps if step.startswith("stored")] == ["stored 2 batches"]
    finally:
        busy.set()
        writer.close()
        store.close()


def test_small_batches_joined_past_the_waiting_size_still_wait(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches that each would wait, joined while the writer is busy, wait together (up to WRITER_ROWS)
    rather than become a part of a few thousand rows: only a batch that large by itself is a part."""
    monkeypatch.setattr(bulk, "BULK_THREADS", 1)
    store = SQLiteHotStore(tmp_path / "hot.db")
    store.use_schema(LAKE_SCHEMA)
    at_file = threading.Event()
    go_on = threading.Event()

    def pause(step: str) -> None:
        if step == "batch file written" and not at_file.is_set():
            at_file.set()
            assert go_on.wait(60)

    writer = BulkWriter(store, LocalObjectStore(tmp_path / "lake"), on_step=pause, wait_below_rows=2000)
    try:
        first = writer.submit(batch(days=1, per_day=1000, tag="first"))
        assert at_file.wait(60)  # the one writer is busy: the next two wait for it and are joined
        joined = [writer.submit(batch(days=1, per_day=1200, tag=tag)) for tag in ("second", "third")]
        go_on.set()
        assert [answer.result(60) for answer in (first, *joined)] == [[], [], []]
        assert waiting_count(store) == (2, 3400)  # 1,000, then 2,400 joined
        assert store.read("SELECT count(*) FROM lake_files") == [(0,)]
    finally:
        go_on.set()
        writer.close()
        store.close()


def test_a_move_that_another_process_beat_is_undone_and_no_record_is_moved_twice(tmp_path: Path) -> None:
    """Two movers (a server's and `loglake flush`'s, say) read the same waiting batches: only the first
    commit moves them; the second rolls back and takes its parts away."""
    store = SQLiteHotStore(tmp_path / "hot.db")
    store.use_schema(LAKE_SCHEMA)
    objects = LocalObjectStore(tmp_path / "lake")
    at_published = threading.Event()
    go_on = threading.Event()

    def pause(step: str) -> None:
        if step == "published 1":
            at_published.set()
            assert go_on.wait(60)

    slow = BulkWriter(store, objects, on_step=pause)
    fast = BulkWriter(store, objects)
    try:
        table = batch(days=2, per_day=1000)
        fast.submit(table).result()
        slow_move = threading.Thread(target=slow.move_waiting)
        slow_move.start()
        assert at_published.wait(60)
        assert fast.move_waiting()[0] == 2000
        go_on.set()
        slow_move.join(60)
    finally:
        go_on.set()
        slow.close()
        fast.close()
    in_lake = lake_ids(store, objects)
    assert sorted(in_lake) == sorted(table.column("log_id").to_pylist())
    assert len(list(objects.list())) == 2, "the beaten move's parts were left in the lake"
    assert store.read("SELECT count(*) FROM flushes") == [(0,)]
    store.close()


CRASH_SCRIPT = CRASH_PREAMBLE + textwrap.dedent(
    """
    writer.submit(batch()).result()  # answered: waiting
    if crash_at == "waiting":
        os._exit(9)
    writer.move_waiting()
    os._exit(0)
    """
)


@pytest.mark.parametrize(
    "crash_at",
    [
        "batch file written",
        "batch row queued",
        "waiting",
        "written",
        "journaled",
        "published 1",
        "published 3",
        "committed",
    ],
)
def test_a_crash_with_batches_waiting_or_moving_loses_and_duplicates_nothing(tmp_path: Path, crash_at: str) -> None:
    child = subprocess.run(
        [sys.executable, "-c", CRASH_SCRIPT, str(tmp_path), crash_at], capture_output=True, timeout=60
    )
    assert child.returncode == 9, child.stderr.decode()
    store = SQLiteHotStore(tmp_path / "hot.db")
    store.use_schema(LAKE_SCHEMA)
    objects = LocalObjectStore(tmp_path / "lake")
    lake = Lake(store, objects, tmp_path)
    try:
        moved = crash_at == "committed"
        answered = crash_at not in ("batch file written", "batch row queued")  # (killed before its commit)
        expected = 1200 if answered else 0
        assert waiting_count(store) == ((0, 0) if moved or not answered else (1, 1200))
        assert len(set(sql_ids(lake))) == len(sql_ids(lake)) == expected  # what a query sees right after the crash
        for lock_file in (tmp_path / "ingest-writers").glob("*.lock"):  # old enough not to be a writer starting
            os.utime(lock_file, (0, 0))
        with lake.maintenance():  # the dead writer's unfinished move is undone: its batches still wait
            assert store.read("SELECT count(*) FROM flushes") == [(0,)]
            lake.flush()
        assert waiting_count(store) == (0, 0)
        in_lake = lake_ids(store, objects)
        assert len(in_lake) == len(set(in_lake)) == expected
        assert len(list(objects.list())) == (3 if answered else 0), "an object outside the catalog"
        assert list(waiting_dir(tmp_path).glob("*")) == [], "a batch file left behind"
    finally:
        lake.close()
        store.close()


def waiting_files(lake: Lake) -> list[str]:
    return sorted(p.name for p in waiting_dir(lake.store.path.parent).glob("*"))


def test_the_files_of_moved_batches_go_once_no_reader_holds_the_catalog(lake: Lake) -> None:
    lake.bulk.submit(batch(days=1, per_day=1000, tag="first")).result()
    assert len(waiting_files(lake)) == 1
    with reading(lake.store):  # a reader that may have listed the batch before it moved
        lake.flush(everything=True)
        assert len(waiting_files(lake)) == 1
    lake.bulk.submit(batch(days=1, per_day=1000, tag="second")).result()
    lake.flush(everything=True)
    assert waiting_files(lake) == []
    assert len(set(sql_ids(lake))) == 2000


def test_a_file_no_row_names_is_swept_once_its_writer_is_gone(lake: Lake, tmp_path: Path) -> None:
    folder = waiting_dir(tmp_path)
    write_batch_file(folder, batch_file_name("12345-deadwriter01", 1), batch(days=1, per_day=1000))
    lake.bulk.submit(batch(days=1, per_day=1000)).result()
    lake.flush(everything=True)
    assert waiting_files(lake) == []
    assert len(set(sql_ids(lake))) == 1000  # the orphan's records were never answered: not in the lake


def test_a_sweep_leaves_alone_a_file_its_writer_starts_while_it_sweeps(tmp_path: Path) -> None:
    """The writer registers a file as in flight, then creates it: a sweep that asked which files are in
    flight before listing the folder would take a file created in between for a leftover."""
    store = SQLiteHotStore(tmp_path / "hot.db")
    store.use_schema(LAKE_SCHEMA)
    folder = waiting_dir(tmp_path)
    name = batch_file_name("1-thiswriter", 7)
    folder.mkdir()

    def in_flight_then_a_new_file() -> set[str]:
        write_batch_file(folder, name, batch(days=1, per_day=1000))  # registered after the sweep asked
        return set()

    try:
        sweep(store.read, folder, tmp_path, "1-thiswriter", in_flight_then_a_new_file)
    finally:
        store.close()
    assert (folder / name).exists()


def test_a_maintenance_turn_leaves_the_batches_its_mover_waits_for_and_moves_those_of_an_earlier_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Parts the mover publishes wake maintenance (on_parts_piling_up): had its flush moved every waiting
    batch, the few just stored would have made a tiny part at each turn."""
    monkeypatch.setattr(bulk, "MOVE_AFTER_SECONDS", 3600)
    store = SQLiteHotStore(tmp_path / "hot.db")
    store.use_schema(LAKE_SCHEMA)
    try:
        first = Lake(store, LocalObjectStore(tmp_path / "lake"), tmp_path)
        first.bulk.submit(batch(days=1, per_day=1000)).result()
        assert first.flush().records == 0 and waiting_count(store) == (1, 1000)
        first.close()
        later = Lake(store, LocalObjectStore(tmp_path / "lake"), tmp_path)  # (as after a restart)
        assert later.flush().records == 1000 and waiting_count(store) == (0, 0)
        later.close()
    finally:
        store.close()


def test_a_waiting_batch_gone_or_damaged_is_named_by_reads_and_verify_and_the_others_move(lake: Lake) -> None:
    """A waiting batch's file missing (a copy of the data dir without `waiting/`) made every move go round and round
    (`loglake flush --all` never ended) and every SQL query fail with a traceback; one cut short stopped every move
    for good, recent logs answered a 500 and `loglake verify` said "all ok"."""
    tables = [batch(days=1, per_day=1200 + i) for i in range(3)]
    for table in tables:
        lake.bulk.submit(table).result()
    folder = waiting_dir(lake.store.path.parent)
    gone, cut, _ = [file for (file,) in lake.store.read("SELECT file FROM bulk_batches ORDER BY batch_id")]
    (folder / gone).unlink()
    os.truncate(folder / cut, 1000)

    for read in (
        lambda: sql_ids(lake),
        lambda: recent(lake.store, lake.recent_reader, RecentQuery(since_ms=START, limit=3)),
    ):
        with pytest.raises(LakeUnreadable, match=f"waiting/{gone}: missing from the data dir") as refused:
            read()
        assert "Traceback" not in str(refused.value)
    report = VerifyReport()
    verify_waiting(report, lake.store)
    assert report.waiting == 3 and [d.what for d in report.damaged] == [f"waiting/{gone}", f"waiting/{cut}"]
    assert report.damaged[1].problem.startswith("damaged: ")

    moving = threading.Thread(target=lake.bulk.move_waiting)
    moving.start()
    moving.join(timeout=30)
    assert not moving.is_alive()
    assert waiting_count(lake.store) == (2, 2401)  # the readable batch moved, the two others stay as they were
    assert sorted(lake_ids(lake.store, lake.objects)) == sorted(tables[2].column("log_id").to_pylist())

    taken = quarantine_batches(lake.store, folder, [gone, cut])
    kept = folder / QUARANTINE_DIR / "date=2026-11-01" / cut  # (by its newest record's day, for the retention)
    assert taken == [(gone, 1200, None), (cut, 1201, kept)] and kept.exists()
    assert waiting_count(lake.store) == (0, 0)
    assert sorted(sql_ids(lake)) == sorted(tables[2].column("log_id").to_pylist())


@pytest.mark.usefixtures("no_loglake_environment")
def test_flush_says_which_waiting_batches_it_could_not_read_and_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`loglake flush --all` passed them over and exited 0, as if every record had moved (`loglake compact` exits 1
    for a damaged lake file)."""
    monkeypatch.setattr(bulk, "MOVE_AFTER_SECONDS", 3600)
    data = tmp_path / "data"
    store = SQLiteHotStore(data / "hot.db")
    store.use_schema(LAKE_SCHEMA)
    lake = Lake(store, LocalObjectStore(data / "lake"), data)
    tables = [batch(days=1, per_day=1200 + i) for i in range(2)]
    for table in tables:
        lake.bulk.submit(table).result()
    lake.close()
    ((gone,), _) = store.read("SELECT file FROM bulk_batches ORDER BY batch_id")
    (waiting_dir(data) / gone).unlink()
    store.close()
    for command, moved in ((["flush", "--all"], "1,201"), (["flush"], "0")):
        result = run_cli(*command, "--data-dir", str(data))
        assert result.exit_code == 1, result.output
        assert result.stdout.startswith(f"moved {moved} records")  # (the readable batch, at the first)
        assert result.stderr.endswith(
            "Error: 1 waiting bulk batch(es) (1,200 records) could not be read and stay waiting: restore them from a "
            "backup of the data dir, or `loglake verify --quarantine` takes them out, their records with them\n"
        )


def test_quarantining_a_batch_whose_file_is_gone_makes_no_empty_folder(lake: Lake) -> None:
    """`loglake verify --quarantine` made an empty waiting/_quarantine/ for a batch it said had "no file left"."""
    lake.bulk.submit(batch(days=1, per_day=1200)).result()
    folder = waiting_dir(lake.store.path.parent)
    ((gone,),) = lake.store.read("SELECT file FROM bulk_batches")
    (folder / gone).unlink()
    assert quarantine_batches(lake.store, folder, [gone]) == [(gone, 1200, None)]
    assert waiting_count(lake.store) == (0, 0) and not (folder / QUARANTINE_DIR).exists()


def test_a_quarantine_killed_after_it_kept_a_batchs_file_is_told_and_finished_by_the_next(lake: Lake) -> None:
    """`verify --quarantine` killed between keeping a batch's file aside and taking its row out of hot.db: the next run
    said "missing from the data dir" and then "no file left", the file being in waiting/_quarantine/."""
    lake.bulk.submit(batch(days=1, per_day=1200)).result()
    folder = waiting_dir(lake.store.path.parent)
    ((file, newest),) = lake.store.read("SELECT file, max_ts FROM bulk_batches")
    os.truncate(folder / file, 1000)
    kept = quarantined_batch_file(folder, file, newest)
    kept.parent.mkdir(parents=True)
    os.replace(folder / file, kept)  # (what the killed run did, its row left)
    report = VerifyReport()
    verify_waiting(report, lake.store)
    (damaged,) = report.damaged
    assert damaged.problem == (
        f"missing from the data dir, but in waiting/_quarantine/date=2026-11-01/{file}: `loglake verify --quarantine`"
        " was stopped before it took the batch out of hot.db; run it again"
    )
    assert quarantine_batches(lake.store, folder, [file]) == [(file, 1200, kept)]
    assert waiting_count(lake.store) == (0, 0) and kept.exists()


def test_retention_deletes_the_quarantined_batches_of_the_days_it_drops(lake: Lake) -> None:
    """A batch's file `verify --quarantine` kept in waiting/_quarantine/ stayed there for good, its records past any
    retention; it goes once the retention passed its newest record's day, with the folders it leaves empty."""
    folder = waiting_dir(lake.store.path.parent)
    for days in (1, 2):  # the newest records of 2026-11-01 and 2026-11-02
        lake.bulk.submit(batch(days=days, per_day=1200)).result()
    older, newer = [file for (file,) in lake.store.read("SELECT file FROM bulk_batches ORDER BY batch_id")]
    for file in (older, newer):
        os.truncate(folder / file, 1000)
    taken = quarantine_batches(lake.store, folder, [older, newer])
    assert [kept.parent.name for _, _, kept in taken] == ["date=2026-11-01", "date=2026-11-02"]
    lake.policy = LakePolicy(retention_days=1)
    lake.clock = lambda: (START + 2 * DAY_MS) / 1000  # 2026-11-03: keeping 2026-11-02 on
    assert lake.expired_quarantine() == ([], [taken[0][2]])
    lake.expire()
    assert [path.relative_to(folder).as_posix() for path in folder.rglob("*")] == [
        QUARANTINE_DIR,
        f"{QUARANTINE_DIR}/date=2026-11-02",
        f"{QUARANTINE_DIR}/date=2026-11-02/{newer}",
    ]
    lake.clock = lambda: (START + 3 * DAY_MS) / 1000
    lake.expire()
    assert list(folder.iterdir()) == []


def test_retention_drops_unread_the_waiting_batches_all_older_than_it_even_a_damaged_one(
    lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A damaged waiting batch whose records were all past the retention stayed waiting for good (no move reads it),
    failing every SQL query: the retention said "deleted 0 partition(s)". One holding kept records too still moves."""
    monkeypatch.setattr(bulk, "MOVE_AFTER_SECONDS", 3600)
    folder = waiting_dir(lake.store.path.parent)
    lake.bulk.submit(batch(days=1, per_day=1200)).result()  # 2026-11-01
    lake.bulk.submit(batch(days=3, per_day=1000)).result()  # 2026-11-01 to 2026-11-03
    old, _ = [file for (file,) in lake.store.read("SELECT file FROM bulk_batches ORDER BY batch_id")]
    os.truncate(folder / old, 1000)
    lake.policy = LakePolicy(retention_days=1, grace_ms=0)
    lake.clock = lambda: (START + 3 * DAY_MS) / 1000  # 2026-11-04: keeping 2026-11-03 on
    assert lake.expired_batches() == [(old, 1200)]
    assert lake.not_moved_before(lake.retention_start_ms()) == (0, 1)  # (the other one, moved first)
    assert [(p.day, p.records) for p in lake.expire()] == [("2026-11-01", 1000), ("2026-11-02", 1000)]
    assert waiting_count(lake.store) == (0, 0) and not (folder / old).exists()
    days = lake.engine.query("SELECT date::VARCHAR, count(*) FROM logs GROUP BY 1 ORDER BY 1").rows
    assert days == [("2026-11-03", 1000)]


def test_a_waiting_batch_the_retention_drops_keeps_its_file_while_a_reader_holds_the_catalog(lake: Lake) -> None:
    lake.bulk.submit(batch(days=1, per_day=1200)).result()
    folder = waiting_dir(lake.store.path.parent)
    ((file,),) = lake.store.read("SELECT file FROM bulk_batches")
    lake.policy = LakePolicy(retention_days=1, grace_ms=0)
    lake.clock = lambda: (START + 3 * DAY_MS) / 1000
    with reading(lake.store):  # (its snapshot may name the batch)
        lake.expire()
        assert waiting_count(lake.store) == (0, 0) and (folder / file).exists()
    lake.bulk.move_waiting()  # a later move sweeps it
    assert not (folder / file).exists()


@pytest.mark.usefixtures("no_loglake_environment")
def test_retention_by_hand_drops_a_damaged_waiting_batch_all_older_than_it(tmp_path: Path) -> None:
    """`loglake retention --days N` exited 0 saying "deleted 0 partition(s)" and left the batch, and SQL kept failing
    with `lake_unreadable`, where the README says it leaves none of the older records behind."""
    data = tmp_path / "data"
    store = SQLiteHotStore(data / "hot.db")
    store.use_schema(LAKE_SCHEMA)
    lake = Lake(store, LocalObjectStore(data / "lake"), data)
    lake.bulk.submit(batch(days=1, per_day=1200)).result()  # 2026-11-01, more than 10 days ago
    lake.close()
    ((file,),) = store.read("SELECT file FROM bulk_batches")
    store.close()
    os.truncate(waiting_dir(data) / file, 1000)
    for command in (["retention", "--dry-run"], ["retention"]):
        result = run_cli(*command, "--days", "10", "--data-dir", str(data))
        assert result.exit_code == 0, result.output
        assert "0 partition(s)\n  and 1 waiting bulk batch(es) of records all before " in result.stdout
        assert "(1,200 records)\n" in result.stdout and result.stderr == ""
    assert not (waiting_dir(data) / file).exists()
    result = run_cli("query", "--format", "csv", "--data-dir", str(data), "SELECT count(*) AS n FROM logs")
    assert result.exit_code == 0 and result.stdout.splitlines() == ["n", "0"], result.output


def test_the_mover_rests_while_only_unreadable_batches_wait(lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch passed over (its file gone) still counted as waiting for a move: the move it was due for found nothing
    to move and the mover was at once due again, going round without rest (a core's worth of reads of hot.db)."""
    monkeypatch.setattr(bulk, "MOVE_AFTER_SECONDS", 0.2)
    looks = []
    monkeypatch.setattr(bulk, "oldest_batches", lambda *args: looks.append(1) or oldest_batches(*args))
    lake.bulk.submit(batch(days=1, per_day=1200)).result()
    folder = waiting_dir(lake.store.path.parent)
    ((gone,),) = lake.store.read("SELECT file FROM bulk_batches", ())
    (folder / gone).unlink()
    time.sleep(2)  # the mover's move is due after 0.2 s: it passes the batch over, then rests
    assert 1 <= len(looks) <= 5, len(looks)  # (going round, it looked thousands of times)
    lake.bulk.submit(batch(days=1, per_day=1300)).result()  # a new batch is moved when due, the other still waits
    deadline = time.monotonic() + 10
    while waiting_count(lake.store)[0] != 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert waiting_count(lake.store) == (1, 1200)


def test_a_batch_passed_over_is_read_again_later_and_moves_once_its_file_is_restored(
    lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Passed over for the life of the process: a file restored from a backup, as the warning advises, stayed
    waiting until the server was restarted."""
    monkeypatch.setattr(bulk, "MOVE_AFTER_SECONDS", 0.2)
    monkeypatch.setattr(bulk, "UNREADABLE_RETRY_SECONDS", 1.0)
    first = batch(days=1, per_day=1200)
    lake.bulk.submit(first).result()
    folder = waiting_dir(lake.store.path.parent)
    ((file,),) = lake.store.read("SELECT file FROM bulk_batches", ())
    backup = (folder / file).read_bytes()
    (folder / file).unlink()
    deadline = time.monotonic() + 10
    while not lake.bulk.passed_over()[0] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert lake.bulk.passed_over() == ([file], 1200)
    (folder / file).write_bytes(backup)  # restored
    time.sleep(1.2)  # its pass over ends: the next move reads it again
    second = batch(days=1, per_day=1300)
    lake.bulk.submit(second).result()
    while waiting_count(lake.store)[0] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert waiting_count(lake.store) == (0, 0)
    expected = first.column("log_id").to_pylist() + second.column("log_id").to_pylist()
    assert sorted(lake_ids(lake.store, lake.objects)) == sorted(expected)
