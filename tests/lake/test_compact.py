"""Compaction, retention and the deletion of retired objects: crash-safe, invisible to queries."""

from __future__ import annotations

import io
import multiprocessing
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from loglake.lake import compact, reads
from loglake.lake.compact import TIER_FILES, Compactor, final_groups, merge_groups, tier_groups
from loglake.lake.flush import Flusher
from loglake.lake.lake import Lake, LakePolicy
from loglake.lake.manifest import LakeFile
from loglake.lake.objectstore import LocalObjectStore, ObjectStore
from loglake.lake.schema import LAKE_SCHEMA
from loglake.store.base import RecentQuery
from loglake.store.sqlite import SQLiteHotStore
from tests.lake.test_bulk import batch as bulk_batch
from tests.lake.test_flush import DAY, START, hot_ids, lake_ids, one_service_per_row_group, seed
from tests.store.contract import record

NOW = (START + 400 * DAY) / 1000  # 400 days after the seeded days: those are past a 365-day retention


def flush_in_small_rounds(store: SQLiteHotStore, lake: ObjectStore, days: int = 3) -> set[str]:
    """Seeded days flushed 60 records a round: each day ends up in five small files."""
    everything = seed(store, days=days)
    Flusher(store, lake, rows_per_round=60).flush(before_ms=START + days * DAY)
    return everything


def parts(lake: ObjectStore) -> list[str]:
    """The lake's Parquet objects (without the tables' manifests)."""
    return sorted(o.key for o in lake.list() if o.key.endswith(".parquet"))


def catalog(store: SQLiteHotStore) -> list[tuple[str, str, int]]:
    return store.read("SELECT day, key, records FROM lake_files ORDER BY day, key")


def test_small_files_of_a_day_merge_into_one_sorted_file(store: SQLiteHotStore, object_store: ObjectStore) -> None:
    everything = flush_in_small_rounds(store, object_store)
    assert len(catalog(store)) == 15
    report = Compactor(store, object_store, target_bytes=10_000_000, grace_ms=0).compact()
    assert (report.merged_files, len(report.written_files), report.records) == (15, 3, 900)
    after = catalog(store)
    assert [(day, records) for day, _, records in after] == [
        ("2026-11-01", 300),
        ("2026-11-02", 300),
        ("2026-11-03", 300),
    ]
    assert sorted(lake_ids(store, object_store)) == sorted(everything)
    assert one_service_per_row_group(pq.ParquetFile(io.BytesIO(object_store.get(after[0][1]))).metadata)
    rows = pq.read_table(io.BytesIO(object_store.get(after[0][1]))).to_pylist()
    assert [(r["service"], r["timestamp"]) for r in rows] == sorted((r["service"], r["timestamp"]) for r in rows)
    # the inputs wait out their grace period (0 here) and then go
    assert len(list(object_store.list())) == 18
    assert Lake(store, object_store, store.path.parent, policy=LakePolicy(grace_ms=0)).collect_garbage() == 15
    assert parts(object_store) == sorted(key for _, key, _ in after)


def test_merge_groups_leave_big_files_and_lone_files_alone() -> None:
    def f(name: str, size: int) -> LakeFile:
        return LakeFile(name, "logs", "2026-11-01", len(name), len(name), 1, size)

    files = [f("a", 10), f("bb", 600), f("ccc", 20), f("dddd", 30), f("eeeee", 45)]
    assert [[x.key for x in g] for g in merge_groups(files, target_bytes=100)] == [["a", "ccc", "dddd"]]
    assert list(merge_groups([f("a", 10), f("b", 600)], target_bytes=100)) == []


def test_a_quiet_days_files_no_final_merge_wrote_are_rewritten_even_alone() -> None:
    def f(name: str, size: int, final: bool) -> LakeFile:
        return LakeFile(name, "logs", "2026-11-01", len(name), len(name), 1, size, final)

    small = [f("a", 10, False), f("bb", 20, True)]
    assert [[x.key for x in g] for g in final_groups(small, target_bytes=100)] == [["a", "bb"]]
    # a tier merge's big output, and a part alone in its day: each alone; what a final merge wrote stays
    assert [[x.key for x in g] for g in final_groups([f("a", 600, False), f("b", 600, True)], 100)] == [["a"]]
    assert [[x.key for x in g] for g in final_groups([f("a", 10, False)], 100)] == [["a"]]
    assert final_groups([f("a", 10, True)], 100) == []


def test_a_day_left_in_one_fast_file_gets_its_final_shape_once(store: SQLiteHotStore, tmp_path: Path) -> None:
    """A day whose only file a flush round (or a tier merge) wrote, in Snappy with plain row groups, is rewritten
    by the final merge as any day is (ZSTD, a service per row group), and then never again."""
    lake = LocalObjectStore(tmp_path / "lake")
    everything = seed(store, days=1)
    Flusher(store, lake).flush(before_ms=START + DAY)
    ((before,),) = store.read("SELECT key FROM lake_files WHERE final = 0")
    assert codecs(pq.ParquetFile(io.BytesIO(lake.get(before))).metadata) == {"SNAPPY"}
    compactor = Compactor(store, lake, target_bytes=10_000_000, grace_ms=0)
    assert (compactor.compact().merged_files, compactor.compact().merged_files) == (1, 0)
    ((after, final),) = store.read("SELECT key, final FROM lake_files")
    assert after != before and final == 1
    metadata = pq.ParquetFile(io.BytesIO(lake.get(after))).metadata
    assert codecs(metadata) == {"ZSTD"} and one_service_per_row_group(metadata)
    assert sorted(lake_ids(store, lake)) == sorted(everything)


CRASH_SCRIPT = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from loglake.lake.compact import Compactor
    from loglake.lake.objectstore import LocalObjectStore
    from loglake.store.sqlite import SQLiteHotStore

    data, crash_at = Path(sys.argv[1]), sys.argv[2]

    def step(name):
        if name == crash_at:
            os._exit(9)

    store = SQLiteHotStore(data / "hot.db")
    Compactor(store, LocalObjectStore(data / "lake"), target_bytes=10_000_000, grace_ms=0, on_step=step).compact()
    os._exit(0)
    """
)


@pytest.mark.parametrize("crash_at", ["written", "journaled", "published 1", "committed"])
def test_a_crash_at_any_step_of_a_merge_loses_and_duplicates_nothing(tmp_path: Path, crash_at: str) -> None:
    store = SQLiteHotStore(tmp_path / "hot.db")
    lake = LocalObjectStore(tmp_path / "lake")
    everything = flush_in_small_rounds(store, lake, days=1)
    store.close()

    child = subprocess.run([sys.executable, "-c", CRASH_SCRIPT, str(tmp_path), crash_at], capture_output=True)
    assert child.returncode == 9, child.stderr.decode()

    store = SQLiteHotStore(tmp_path / "hot.db")
    try:
        maintained = Lake(store, lake, tmp_path, policy=LakePolicy(grace_ms=0))
        for _ in range(2):  # as a query sees it right after the crash, then after recovery
            seen = lake_ids(store, lake)
            assert sorted(seen) == sorted(everything) and not hot_ids(store)
            with maintained.maintenance():
                maintained.collect_garbage()
        listed = set(parts(lake))
        assert listed == {key for _, key, _ in catalog(store)}, "an object is in the store but not the catalog"
        assert len(listed) == (1 if crash_at == "committed" else 5)
        maintained.close()
    finally:
        store.close()


def test_queries_see_each_record_once_while_compaction_runs(store: SQLiteHotStore, tmp_path: Path) -> None:
    lake = LocalObjectStore(tmp_path / "lake")
    flush_in_small_rounds(store, lake)
    maintained = Lake(store, lake, tmp_path, policy=LakePolicy(compact_target_bytes=10_000_000, grace_ms=60_000))
    counts: list[tuple[int, int]] = []
    done = threading.Event()

    def keep_querying() -> None:
        while not done.is_set():
            counts.append(maintained.engine.query("SELECT count(*), count(DISTINCT log_id) FROM logs").rows[0])

    def wait_for_queries(at_least: int) -> None:
        while len(counts) < at_least and reader.is_alive():
            time.sleep(0.01)

    reader = threading.Thread(target=keep_querying)
    reader.start()
    try:
        wait_for_queries(1)  # before, during and after the merges, however slow the machine
        for _ in range(3):
            maintained.compact()
        wait_for_queries(len(counts) + 2)
    finally:
        done.set()
        reader.join()
        maintained.close()
    assert len(counts) > 2 and set(counts) == {(900, 900)}


def test_retention_drops_whole_old_partitions(store: SQLiteHotStore, object_store: ObjectStore, tmp_path: Path) -> None:
    seed(store, days=3)
    Flusher(store, object_store).flush(before_ms=START + 3 * DAY)
    lake = Lake(store, object_store, tmp_path, policy=LakePolicy(retention_days=398, grace_ms=0), clock=lambda: NOW)
    # today is 2026-11-01 + 400 days; keeping 398 days keeps 2026-11-03 onwards
    planned = lake.expired_partitions()
    assert [(p.day, p.records) for p in planned] == [("2026-11-01", 300), ("2026-11-02", 300)]
    assert len(catalog(store)) == 3, "a dry run changes nothing"
    assert lake.expire() == planned
    assert [day for day, _, _ in catalog(store)] == ["2026-11-03"]
    assert lake.engine.query("SELECT count(*) FROM logs").rows == [(300,)]
    assert lake.collect_garbage() == 2
    assert [key.split("/")[1] for key in parts(object_store)] == ["date=2026-11-03"]
    forever = Lake(store, object_store, tmp_path, policy=LakePolicy(retention_days=0), clock=lambda: NOW)
    assert forever.expired_partitions() == []
    lake.close()
    forever.close()


def test_retention_drops_the_old_records_not_in_the_lake_yet_too(store: SQLiteHotStore, tmp_path: Path) -> None:
    """`loglake retention --days N` by hand (shorter than the server's, or the server stopped) dropped the lake's old
    days only: their records still hot or in waiting bulk batches stayed in every read, then moved into days the
    retention had passed."""
    store.use_schema(LAKE_SCHEMA)
    seed(store, days=3)
    lake = Lake(store, LocalObjectStore(tmp_path / "lake"), tmp_path, policy=LakePolicy(retention_days=398, grace_ms=0))
    lake.clock = lambda: NOW
    lake.bulk.submit(bulk_batch(days=3, per_day=1000)).result()  # waits in hot.db, in one batch over the cutoff
    assert lake.hot_records() == 3900 and lake.store.read("SELECT count(*) FROM bulk_batches") == [(1,)]
    assert lake.not_moved_before(lake.retention_start_ms()) == (600, 1)
    assert [(p.day, p.records) for p in lake.expire()] == [("2026-11-01", 1300), ("2026-11-02", 1300)]
    days = lake.engine.query("SELECT date::VARCHAR, count(*) FROM logs GROUP BY 1 ORDER BY 1").rows
    assert days == [("2026-11-03", 1300)]
    assert lake.hot_records() == 300  # the kept day's hot records stay hot
    lake.close()


def test_the_hot_store_keeps_only_its_window_and_cap(store: SQLiteHotStore, tmp_path: Path) -> None:
    seed(store, days=3)  # 900 records, 300 a day
    lake = LocalObjectStore(tmp_path / "lake")
    clock = lambda: (START + 2 * DAY + 150_000) / 1000  # noqa: E731 - 150 s into the third day
    windowed = Lake(store, lake, tmp_path, policy=LakePolicy(hot_window_ms=60_000), clock=clock)
    assert windowed.flush().records == 600 + 90  # two days, and the third's first 150 s minus the window
    capped = Lake(store, lake, tmp_path, policy=LakePolicy(hot_window_ms=DAY, hot_max_records=100), clock=clock)
    assert capped.flush().records == 110 and store.count() == 100  # the cap moves the oldest
    windowed.close()
    capped.close()


def test_tier_groups_merge_only_enough_files_of_one_size() -> None:
    def f(key: str, size: int) -> LakeFile:
        return LakeFile(key, "app_logs", "2026-11-01", 0, 1, 1, size)

    small = [f(f"s{i}", 3000 + i) for i in range(TIER_FILES)]  # one tier, just enough
    bigger = [f(f"b{i}", 30_000 * (i + 1)) for i in range(3)]  # a higher tier, too few to merge
    assert [[x.key for x in g] for g in tier_groups(small + bigger, target_bytes=10_000_000)] == [
        [x.key for x in small]
    ]
    assert list(tier_groups(small[:-1] + bigger, target_bytes=10_000_000)) == []


def test_a_tier_of_parts_too_many_to_merge_in_memory_by_sixteen_merges_fewer_at_a_time() -> None:
    """Bulk parts of joined batches (20,000 records each): sixteen would go to the merge worker, twelve merge in
    memory; still more than TIER_BASE, so that the output is in a higher tier. Parts so big that fewer than that
    fit in memory merge sixteen at a time, streamed, as before."""

    def f(key: str, records: int) -> LakeFile:
        return LakeFile(key, "app_logs", "2026-11-01", 0, 1, records, records * 25)

    parts = [f(f"p{i}", 20_000) for i in range(TIER_FILES)]
    assert compact.IN_MEMORY_MERGE_RECORDS // 20_000 == 12
    assert [len(group) for group in tier_groups(parts, target_bytes=10**9)] == [12]
    assert [len(g) for g in tier_groups([f(f"p{i}", 10_000) for i in range(TIER_FILES)], 10**9)] == [TIER_FILES]
    assert [len(g) for g in tier_groups([f(f"p{i}", 50_000) for i in range(TIER_FILES)], 10**9)] == [TIER_FILES]


def test_the_background_merges_a_day_still_written_to_by_tiers_and_a_quiet_day_fully(
    store: SQLiteHotStore, object_store: ObjectStore
) -> None:
    flush_in_small_rounds(store, object_store)  # 5 files a day
    quiet_day, busy_day = "2026-11-01", "2026-11-02"
    # The busy day got its files after `since`; the other days before it.
    since = 1_000
    store.run_in_writer(lambda conn: conn.execute("UPDATE lake_files SET created_ms = 0"))
    store.run_in_writer(lambda conn: conn.execute("UPDATE lake_files SET created_ms = 2000 WHERE day = ?", (busy_day,)))
    compactor = Compactor(store, object_store, target_bytes=10_000_000, grace_ms=0)
    report = compactor.compact(written_since_ms=since)
    per_day = dict(store.read("SELECT day, count(*) FROM lake_files GROUP BY day"))
    assert per_day[quiet_day] == 1 and per_day[busy_day] == 5  # five files of one tier: fewer than TIER_FILES
    assert report.merged_files == 10

    # More small files of the busy day make a tier of TIER_FILES: merged, records all kept.
    more = TIER_FILES - 5
    store.put([record(START + DAY + 500_000 + i, f"late-{i}") for i in range(more * 60)])
    Flusher(store, object_store, rows_per_round=60).flush(before_ms=START + 3 * DAY)
    store.run_in_writer(lambda conn: conn.execute("UPDATE lake_files SET created_ms = 2000 WHERE day = ?", (busy_day,)))
    report = compactor.compact(written_since_ms=since)
    assert report.merged_files == TIER_FILES
    assert store.read("SELECT count(*), sum(records) FROM lake_files WHERE day = ?", (busy_day,)) == [
        (1, 300 + more * 60)
    ]


def test_a_tier_that_grew_while_the_worker_was_busy_merges_a_tier_at_a_time() -> None:
    def f(key: str, n: int) -> LakeFile:
        return LakeFile(key, "app_logs", "2026-11-01", n, n + 1, 1, 3000 + n)

    grown = [f(f"s{n:02}", n) for n in range(2 * TIER_FILES + 3)]
    groups = [[x.key for x in g] for g in tier_groups(grown, target_bytes=10_000_000)]
    assert groups == [[x.key for x in grown[:TIER_FILES]], [x.key for x in grown[TIER_FILES : 2 * TIER_FILES]]]


def test_a_quiet_days_full_merge_waits_while_new_parts_fill_a_tier(
    store: SQLiteHotStore, object_store: ObjectStore
) -> None:
    """Under sustained ingest the worker merges tiers first: a quiet day's full merge (several times a
    tier merge's work) waits for a turn in which no tier has filled meanwhile."""
    quiet_day, busy_day = "2026-11-01", "2026-11-02"
    seed(store, days=1)
    store.put([record(START + DAY + 1000 * i, f"busy-{i}") for i in range(TIER_FILES * 60)])
    Flusher(store, object_store, rows_per_round=60).flush(before_ms=START + 3 * DAY)  # 5 quiet, 16 busy files
    store.run_in_writer(lambda conn: conn.execute("UPDATE lake_files SET created_ms = 0 WHERE day = ?", (quiet_day,)))
    since = int(time.time() * 1000) - 60_000
    more = [record(START + DAY + 500_000 + 1000 * i, f"more-{i}") for i in range(TIER_FILES * 60)]

    def new_parts_arrive(step: str) -> None:
        if step == "committed" and more:  # after the first merge, a tier's worth of new parts
            store.put(more)
            more.clear()
            Flusher(store, object_store, rows_per_round=60).flush(before_ms=START + 3 * DAY)

    def files_per_day() -> dict[str, int]:
        return dict(store.read("SELECT day, count(*) FROM lake_files GROUP BY day"))

    compactor = Compactor(store, object_store, target_bytes=10_000_000, grace_ms=0, on_step=new_parts_arrive)
    assert compactor.compact(written_since_ms=since).merged_files == TIER_FILES
    assert files_per_day() == {quiet_day: 5, busy_day: 1 + TIER_FILES}  # the quiet day waits
    assert compactor.compact(written_since_ms=since).merged_files == TIER_FILES + 5
    assert files_per_day() == {quiet_day: 1, busy_day: 2}
    assert store.read("SELECT sum(records) FROM lake_files") == [(300 + 2 * TIER_FILES * 60,)]


def test_a_quiet_days_full_merge_waits_while_tier_merges_keep_the_worker_busy(
    store: SQLiteHotStore, object_store: ObjectStore
) -> None:
    quiet_day, busy_day = "2026-11-01", "2026-11-02"
    seed(store, days=1)
    store.put([record(START + DAY + 1000 * i, f"busy-{i}") for i in range(TIER_FILES * 60)])
    Flusher(store, object_store, rows_per_round=60).flush(before_ms=START + 3 * DAY)  # 5 quiet, 16 busy files
    store.run_in_writer(lambda conn: conn.execute("UPDATE lake_files SET created_ms = 0 WHERE day = ?", (quiet_day,)))
    now = [time.time()]
    since = int(now[0] * 1000) - 60_000

    def a_tier_merge_takes_long(step: str) -> None:
        if step == "written":
            now[0] += 0.6 * compact.BUSY_WINDOW_S  # a tier merge on a busy machine

    def files_per_day() -> dict[str, int]:
        return dict(store.read("SELECT day, count(*) FROM lake_files GROUP BY day"))

    compactor = Compactor(
        store, object_store, target_bytes=10_000_000, grace_ms=0, clock=lambda: now[0], on_step=a_tier_merge_takes_long
    )
    assert compactor.compact(written_since_ms=since).merged_files == TIER_FILES
    assert files_per_day() == {quiet_day: 5, busy_day: 1}  # the quiet day waits: the worker was busy
    now[0] += 0.3 * compact.BUSY_WINDOW_S
    assert compactor.compact(written_since_ms=since).merged_files == 0  # 60 % of the last minute: still busy
    now[0] += 0.5 * compact.BUSY_WINDOW_S
    assert compactor.compact(written_since_ms=since).merged_files == 5  # 20 %: its turn
    assert files_per_day() == {quiet_day: 1, busy_day: 1}


def busy_day_files(store: SQLiteHotStore, lake: ObjectStore, tiers: int) -> int:
    """`tiers` tiers' worth of small files of a day still written to; returns a `since` that makes it busy."""
    store.put([record(START + DAY + 1000 * i, f"busy-{i}") for i in range(tiers * TIER_FILES * 60)])
    Flusher(store, lake, rows_per_round=60).flush(before_ms=START + 3 * DAY)
    return int(time.time() * 1000) - 60_000


def merge_threads() -> set[str]:
    return {t.name.rsplit("_", 1)[0] for t in threading.enumerate() if t.name.startswith("loglake-merge")}


@pytest.mark.parametrize(
    ("tiers", "threads"), [(1, {"loglake-merge"}), (compact.BEHIND_TIERS, {"loglake-merge-behind"})]
)
def test_tier_merges_that_fell_behind_run_at_the_servers_priority(
    store: SQLiteHotStore, tmp_path: Path, tiers: int, threads: set[str]
) -> None:
    lake = LocalObjectStore(tmp_path / "lake")
    since = busy_day_files(store, lake, tiers)
    background = compact.Background()
    try:
        compactor = Compactor(store, lake, target_bytes=10_000_000, grace_ms=0, background=background)
        assert compactor.compact(written_since_ms=since).merged_files == tiers * TIER_FILES
        assert merge_threads() == threads

        def priority() -> int:
            return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

        assert background.run_in_thread(priority, niced=False) == os.nice(0)  # the server's
    finally:
        background.close()
    assert store.read("SELECT count(*), sum(records) FROM lake_files") == [(tiers, tiers * TIER_FILES * 60)]


@pytest.mark.parametrize("busy", [False, True], ids=["final-merges", "tier-merges"])
def test_a_turn_of_merges_ends_at_the_next_merge_once_the_server_stops(
    store: SQLiteHotStore, object_store: ObjectStore, busy: bool
) -> None:
    stop = threading.Event()

    def stop_after_the_first(step: str) -> None:
        if step == "committed":
            stop.set()

    if busy:
        since: int | None = busy_day_files(store, object_store, 2 * compact.BEHIND_MERGES)  # tier merges waiting
    else:
        flush_in_small_rounds(store, object_store)  # three days, a full merge each
        since = None
    compactor = Compactor(store, object_store, target_bytes=10_000_000, grace_ms=0, on_step=stop_after_the_first)
    report = compactor.compact(written_since_ms=since, stop=stop)
    assert len(report.written_files) == 1 or (busy and len(report.written_files) <= compact.BEHIND_MERGES)
    assert compactor.compact(written_since_ms=since).written_files != []  # the rest, next time


def deleted_files_held_open() -> list[str]:
    """Files this process holds open that were deleted (their disk space is not given back)."""
    links = (os.readlink(fd) for fd in Path("/proc/self/fd").iterdir() if fd.is_symlink())
    return [link for link in links if link.endswith(" (deleted)") and ".parquet" in link]


def test_files_compaction_replaced_are_not_held_open_by_recent_reads(store: SQLiteHotStore, tmp_path: Path) -> None:
    lake = Lake(store, LocalObjectStore(tmp_path / "lake"), tmp_path, policy=LakePolicy(grace_ms=0))
    try:
        flush_in_small_rounds(store, lake.objects)
        query = RecentQuery(since_ms=START, until_ms=START + 3 * DAY, limit=1000)
        assert len(reads.recent(store, lake.recent_reader, query)) == 900  # opens every small file
        lake.compact()
        lake.collect_garbage()
        assert deleted_files_held_open() == []
        assert len(reads.recent(store, lake.recent_reader, query)) == 900
    finally:
        lake.close()


@pytest.mark.parametrize("in_memory_up_to", [0, 1_000_000], ids=["streamed", "arrow"])
@pytest.mark.parametrize("style", [compact.FINAL, compact.TIER], ids=["final", "tier"])
def test_a_merge_in_memory_or_streamed_writes_the_same_sorted_rows(
    store: SQLiteHotStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, in_memory_up_to: int, style
) -> None:
    lake = LocalObjectStore(tmp_path / "lake")
    flush_in_small_rounds(store, lake, days=1)  # five files of one day
    inputs = []
    for n, (key,) in enumerate(store.read("SELECT key FROM lake_files")):
        inputs.append(tmp_path / f"in-{n}.parquet")
        lake.get_file(key, inputs[-1])
    monkeypatch.setattr(compact, "IN_MEMORY_MERGE_RECORDS", in_memory_up_to)
    compact.merge_in_background(None, inputs, tmp_path / "out.parquet", tmp_path, 64, distinct_ids=False, style=style)
    merged = pq.ParquetFile(tmp_path / "out.parquet")
    rows = merged.read().to_pylist()
    expected = sorted(
        (r for p in inputs for r in pq.read_table(p).to_pylist()), key=lambda r: (r["service"], r["timestamp"])
    )
    assert [(r["service"], r["timestamp"], r["log_id"]) for r in rows] == [
        (r["service"], r["timestamp"], r["log_id"]) for r in expected
    ]
    assert one_service_per_row_group(merged.metadata) == style.by_service
    # a day's final merge compresses hard; a tier merge, whose output is merged again soon, fast
    assert codecs(merged.metadata) == {"ZSTD" if style is compact.FINAL else "SNAPPY"}


def codecs(metadata: pq.FileMetaData) -> set[str]:
    """The compression of every column chunk of a Parquet file."""
    groups = (metadata.row_group(i) for i in range(metadata.num_row_groups))
    return {group.column(c).compression for group in groups for c in range(group.num_columns)}


@pytest.mark.parametrize("in_memory_up_to", [compact.IN_MEMORY_MERGE_RECORDS, 0], ids=["arrow", "streamed"])
def test_the_servers_small_merges_run_on_a_niced_thread_the_big_ones_in_a_worker(
    store: SQLiteHotStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, in_memory_up_to: int
) -> None:
    monkeypatch.setattr(compact, "IN_MEMORY_MERGE_RECORDS", in_memory_up_to)
    niceness = os.nice(0)
    lake = Lake(store, LocalObjectStore(tmp_path / "lake"), tmp_path, policy=LakePolicy(grace_ms=0))
    try:
        flush_in_small_rounds(store, lake.objects)
        assert lake.compact().merged_files == 15
        # Merges Arrow sorts in memory run on a thread of this process; only streamed ones start a worker.
        workers = multiprocessing.active_children()
        assert len(workers) == (1 if in_memory_up_to == 0 else 0)
        assert os.nice(0) == niceness  # the calling thread keeps its priority
        expected = min(19, niceness + compact.BACKGROUND_NICENESS)
        assert lake.background.run_in_thread(lambda: os.getpriority(os.PRIO_PROCESS, threading.get_native_id())) == (
            expected
        )
        assert lake.background.run(os.getpid) != os.getpid()
        assert lake.background.run(os.nice, 0) == niceness  # the worker keeps the server's (see Background)
    finally:
        lake.close()
    assert store.read("SELECT count(*), sum(records) FROM lake_files") == [(3, 900)]


def test_a_damaged_lake_file_stops_neither_retention_nor_the_other_days_merges(
    store: SQLiteHotStore, object_store: ObjectStore, tmp_path: Path
) -> None:
    """A part overwritten outside loglake fails its day's merge every turn; the turn raised there, so the
    days after it were never merged and retention and the deletion of retired files never ran again."""
    flush_in_small_rounds(store, object_store, days=4)
    damaged = next(key for day, key, _ in catalog(store) if day == "2026-11-03")
    object_store.put(damaged, b"not a Parquet file")
    lake = Lake(store, object_store, tmp_path, policy=LakePolicy(retention_days=398, grace_ms=0), clock=lambda: NOW)
    try:
        report = lake.maintain()
        assert report is not None and list(report.compacted.damaged) == [damaged]
        by_day = [(day, key) for day, key, _ in catalog(store)]
        assert [day for day, _ in by_day] == ["2026-11-03"] * 2 + ["2026-11-04"]  # 1-2 expired, 3 merged without it
        assert (damaged in [key for _, key in by_day]) and object_store.exists(damaged)  # left as it was
        assert {key.split("/")[1] for key in parts(object_store)} == {"date=2026-11-03", "date=2026-11-04"}
    finally:
        lake.close()
