"""Compaction: merge a day's small lake files into files of about the target size.

Each flush round adds one file per day it touches, so a server flushing every 30 s would leave
thousands of small files a day; each costs a request (on S3) and a footer read per query. A merge
uses the flush's crash-safe protocol (flush.publish): the merged file is written, journaled and
published, then ONE transaction retires the inputs from the catalog and adds the output. Retired
inputs stay in the object store for a grace period (manifest.retire_files), so a query that
started on the older snapshot still finds them.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

import pyarrow.parquet as pq

from loglake.lake.flush import Step, publish
from loglake.lake.layout import app_logs_key, new_part_name
from loglake.lake.manifest import LakeFile, list_files, retire_files
from loglake.lake.objectstore import ObjectStore
from loglake.lake.parquet_objects import ParquetObjects
from loglake.lake.parts import file_name
from loglake.lake.query_views import sql_string
from loglake.lake.schema import LAKE_SCHEMA
from loglake.lake.scratch import new_work_folder
from loglake.lake.sorted_merge import (
    FINAL,
    MAX_FAN_IN,
    TIER,
    MergeStyle,
    background_duckdb,
    merge_in_memory,
    merge_sorted,
    start_merge_worker,
)
from loglake.lake.tables import APP_LOGS_TABLE
from loglake.lake.verify import damaged_files
from loglake.store.sqlite import SQLiteHotStore
from loglake.worker_processes import WORKER_IDLE_S, IdleExitingWorker

T = TypeVar("T")
log = logging.getLogger("loglake.lake")


@dataclass
class CompactReport:
    merged_files: int = 0
    rewritten_alone: int = 0  # of them, files given their final shape alone (final_groups)
    written_files: list[str] = field(default_factory=list)
    records: int = 0
    seconds: float = 0.0
    # Lake files found damaged (or gone from storage) by this turn, with what is wrong: their days merged without them.
    damaged: dict[str, str] = field(default_factory=dict)


class MergesFailed(Exception):
    """Some merges of a compaction failed (a part damaged outside loglake fails its day's merge every time): their
    files stay as they are, the other merges landed (`report`). The first failure is the cause."""

    def __init__(self, report: CompactReport, failed_groups: int, first: BaseException) -> None:
        super().__init__(
            f"{failed_groups} merge(s) failed, their files stay as they are (the first: {type(first).__name__}: "
            f"{str(first).strip()}); `loglake verify` names the lake files that are damaged"
        )
        self.report = report


# A day still being written to is merged by size tiers, the way LSM stores merge small parts: files
# whose sizes are within a factor TIER_BASE of each other merge once TIER_FILES of them are there, so
# a record is rewritten about once per tier (log base TIER_BASE of the day's size) rather than every
# time a new part arrives. TIER_FILES is above TIER_BASE, so a merge's output is never in the tier it
# came from (else it would be merged again with every few new parts).
TIER_BASE = 8
# A 1M-record bulk load over a week (B2) leaves about 14 parts a day: it ends before any merge, which
# would halve its rate on two cores (`flush --all`, or the day's final merge, compacts it after).
TIER_FILES = MAX_FAN_IN
# Merges of at most this many records sort in memory (about 100 MB at most): see merge_in_background.
IN_MEMORY_MERGE_RECORDS = 250_000
# What a stopping server gives a merge under way in the worker before it kills the worker: a merge is crash-safe
# (cut short, its inputs stay, and a later turn merges them again), and a stuck one held the server's stop for good.
MERGE_STOP_GRACE_S = 10.0


def tier_groups(files: list[LakeFile], target_bytes: int) -> Iterator[list[LakeFile]]:
    """Groups of TIER_FILES (or tier_merge_files) small files of one size tier (smallest to at most TIER_BASE
    times it), in time order, each near the target at most; other files and smaller tiers are left alone. A tier
    that grew while the worker was busy merges in several groups: each merge is one pass (TIER_FILES
    is at most sorted_merge.MAX_FAN_IN) and lands soon, where one wide merge would take long."""
    tiers: list[list[LakeFile]] = []
    for f in sorted((f for f in files if f.bytes < target_bytes // 2), key=lambda f: f.bytes):
        if not tiers or f.bytes > TIER_BASE * max(tiers[-1][0].bytes, 1):
            tiers.append([])
        tiers[-1].append(f)
    for tier in tiers:
        files = tier_merge_files(tier)
        yield from (group for group in merge_groups(tier, target_bytes, files) if len(group) == files)


def tier_merge_files(tier: list[LakeFile]) -> int:
    """How many of a tier's files one merge takes: TIER_FILES, or fewer (more than TIER_BASE, so that the output
    is in a higher tier) where TIER_FILES would be too many records to merge in memory and these are not
    (IN_MEMORY_MERGE_RECORDS): bulk parts of about 20,000 records (batches joined while a writer was at work)
    merged sixteen at a time went to the merge worker, whose ~140 MiB took a sustained 10M ingest's server past
    500 MiB with it; twelve at a time they merge on a thread, at no more CPU."""
    fit = IN_MEMORY_MERGE_RECORDS // max(1, max(f.records for f in tier))
    return fit if TIER_BASE < fit < TIER_FILES else TIER_FILES


def merge_groups(files: list[LakeFile], target_bytes: int, most: int | None = None) -> Iterator[list[LakeFile]]:
    """Groups of a day's small files (under half the target) that together stay near the target, of
    at most `most` files; a group of one is left alone. Big files are never rewritten."""
    small = sorted((f for f in files if f.bytes < target_bytes // 2), key=lambda f: f.min_ts)
    group: list[LakeFile] = []
    size = 0
    for f in small:
        if group and (size + f.bytes > target_bytes or len(group) == most):
            if len(group) > 1:
                yield group
            group, size = [], 0
        group.append(f)
        size += f.bytes
    if len(group) > 1:
        yield group


def final_groups(files: list[LakeFile], target_bytes: int) -> list[list[LakeFile]]:
    """A quiet day's merges into its final shape (FINAL: ZSTD, a service per row group): its small files in
    groups (merge_groups), and each file no final merge wrote that no group takes, rewritten alone: a flush
    round's or bulk batch's part alone in its day, or a tier merge's output, which tier merges may have left
    the day's only file or made big (Snappy, plain row groups: 1.7x the bytes, and a service's newest records
    spread over row groups)."""
    groups = list(merge_groups(files, target_bytes))
    grouped = {f.key for group in groups for f in group}
    return groups + [[f] for f in files if not f.final and f.key not in grouped]


class Background:
    """Where the server's merges run, off the threads that ingest and answer queries.

    A merge small enough to sort in memory (sorted_merge.merge_in_memory, up to IN_MEMORY_MERGE_RECORDS:
    the first tier merges of bulk parts) runs on a thread of this process: it is Arrow and Parquet
    work, outside the GIL, and in a worker process it cost more than itself (B2: the worker's own
    pyarrow took ~130-160 MiB RSS and multiprocessing's resource tracker 12 MiB, where the same merge
    adds ~50 MiB to this process, and ~1 s of CPU to start). That thread is niced on its own (Linux
    nices each thread) by BACKGROUND_NICENESS, so that ingest and queries come first; but when merges
    fall behind (Compactor: BEHIND_TIERS) they run BEHIND_MERGES at a time on threads at the server's
    priority, as LSM stores raise their compaction's share when small parts pile up. Niced throughout,
    they fell far behind sustained bulk ingest on two cores (10M records from 4 senders: 647 files at
    the end, Q3 right after 2.5x its time on the compacted lake); one at a time at the server's
    priority, the thread got a third of a core (py-spy), ~10 of the 16 parts a second that came in,
    and 362 files were left.

    Bigger merges stream (sorted_merge.merge_sorted, in bounded memory whatever their size) in one
    worker process, started on first use, whose Python work never holds the server's GIL. Spawned (this
    process runs threads), and it exits when this process dies (sorted_merge.start_merge_worker). It
    runs at the server's own priority: at nice 5 or 10 it fell behind sustained bulk ingest on two cores
    (270-470 files at the end against 110-200, Q3 right after 1.8-2.3x against 1.0-1.3x), while the
    ingest rate stayed within the noise either way; a single thread, it takes at most a core's share
    among the server's threads. As the flush's worker, it is started without a Ctrl-C at a terminal
    killing it or cutting into its start (worker_processes.started_without_ctrl_c), and it exits after
    `worker_idle_s` (WORKER_IDLE_S) without a merge (worker_processes.IdleExitingWorker). Closed, it gives a
    merge under way in the worker `stop_grace_s`, then kills the worker."""

    def __init__(self, worker_idle_s: float = WORKER_IDLE_S, stop_grace_s: float = MERGE_STOP_GRACE_S) -> None:
        self.worker = IdleExitingWorker(start_merge_worker, worker_idle_s, "merge worker")
        self.stop_grace_s = stop_grace_s
        self._threads: dict[bool, ThreadPoolExecutor] = {}  # by niced
        self._starting = threading.Lock()

    def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """fn(*args, **kwargs) in the worker process."""
        return self.worker.run(fn, *args, **kwargs)

    def run_in_thread(self, fn: Callable[..., T], *args: Any, niced: bool = True) -> T:
        """fn(*args) on the niced background thread of this process, or one of those at its priority."""
        with self._starting:
            if niced not in self._threads:
                if niced:
                    self._threads[niced] = ThreadPoolExecutor(1, "loglake-merge", initializer=_nice_this_thread)
                else:
                    self._threads[niced] = ThreadPoolExecutor(BEHIND_MERGES, "loglake-merge-behind")
            thread = self._threads[niced]
        return thread.submit(fn, *args).result()

    def close(self) -> None:
        """Stop the merges: one in the worker has stop_grace_s to land, then the worker is killed; those on threads
        (in memory, at most IN_MEMORY_MERGE_RECORDS records) are waited for."""
        self.worker.close(self.stop_grace_s)
        with self._starting:
            for thread in self._threads.values():
                thread.shutdown(wait=True, cancel_futures=True)
            self._threads.clear()


BACKGROUND_NICENESS = 10


# A turn that finds this many tier merges waiting is behind: it runs them at the server's priority.
BEHIND_TIERS = 2
# Tier merges run at once when behind: one a core here (two), as they are Arrow work outside the GIL.
BEHIND_MERGES = 2

# A quiet day's full merge waits while tier merges took more than this share of the last minute.
BUSY_SHARE = 0.5
BUSY_WINDOW_S = 60.0


def _nice_this_thread() -> None:
    """Lower the calling thread's priority only (Linux: a thread id names one thread to setpriority)."""
    if sys.platform != "linux":  # elsewhere a thread id may name some process
        return
    with contextlib.suppress(OSError):  # refused: the merges run at normal priority
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + BACKGROUND_NICENESS)


class Compactor:
    def __init__(
        self,
        store: SQLiteHotStore,
        lake: ObjectStore,
        *,
        target_bytes: int,
        grace_ms: int,
        clock: Callable[[], float] = time.time,
        on_step: Step | None = None,
        memory_mb: int = 256,
        background: Background | None = None,
    ) -> None:
        self.background = background  # None: merges run in this process
        store.use_schema(LAKE_SCHEMA)
        self.memory_mb = memory_mb
        self.store = store
        self.lake = lake
        self.target_bytes = target_bytes
        self.grace_ms = grace_ms
        self.clock = clock
        self.on_step = on_step or (lambda step: None)
        self._tier_merges: list[tuple[float, float]] = []  # (ended, seconds) by `clock`, the last minute's
        self._reporting = threading.Lock()
        # The lake files a merge found damaged or gone (_damaged_in), by key, with what is wrong: left out of every
        # merge for this process's life. Such a file does not mend itself: merged with the rest, it failed its
        # day's merge at every turn, which read it again and logged it again, its day never merged.
        self.damaged: dict[str, str] = {}
        self._objects = ParquetObjects(lake)

    def compact(self, written_since_ms: int | None = None, stop: threading.Event | None = None) -> CompactReport:
        """Merge each day's small files. With `written_since_ms`, a day that got a file since then is
        still being written to: it is merged by size tiers only (tier_groups), the others fully. Tier
        merges go first; a day's full merge (several times a tier merge's work: it compresses hard, and
        new parts wait for it) only once no new tier has filled and the tier merges left the worker
        idle for half of the last minute (BUSY_SHARE). Under sustained ingest the worker's CPU goes to
        keeping the number of files a query opens small; quiet days get their final shape as it eases.
        A turn that finds BEHIND_TIERS tier merges waiting runs them BEHIND_MERGES at a time at the
        server's priority (see Background). With `stop`, the turn ends at the next merge once it is set."""
        started = time.perf_counter()
        report = CompactReport()
        tiers, finals = self._plan(written_since_ms)
        behind = len(tiers) >= BEHIND_TIERS
        # A merge that fails changes nothing; the other groups still merge, and MergesFailed is raised once they
        # have. One that failed over a file damaged outside loglake (or gone from storage) is planned again
        # without it once the others are done (_damaged_in): not a failure, said once.
        failures: list[BaseException] = []

        def merge(group: list[LakeFile], style: MergeStyle, niced: bool = True) -> None:
            try:
                self._merge_into(report, group, style, niced=niced)
            except Exception as e:
                if stop is not None and stop.is_set():
                    raise
                if self._damaged_in(report, group):
                    return
                failures.append(e)
                keys = ", ".join(f.key for f in group)
                log.warning("merging %s files failed, they stay as they are (%s: %s)", keys, type(e).__name__, e)

        def merge_tier(group: list[LakeFile]) -> None:
            if stop is not None and stop.is_set():
                return  # a turn can be long (a backlog of merges): the server stops between two
            began = self.clock()
            merge(group, TIER, niced=not behind)
            ended = self.clock()
            self._tier_merges.append((ended, ended - began))

        with ThreadPoolExecutor(BEHIND_MERGES if behind else 1, "loglake-compact") as turn:
            list(turn.map(merge_tier, tiers))
        for group in finals:
            if stop is not None and stop.is_set():
                break
            if written_since_ms is not None and (self._plan(written_since_ms)[0] or self._busy_share() > BUSY_SHARE):
                break  # the next turn merges new tiers first, or comes back when ingest eases
            merge(group, FINAL)
        if report.damaged:  # the days of the damaged files, without them (once: they are left out from now on)
            days = {f.day for group in tiers + finals for f in group if f.key in report.damaged}
            again_tiers, again_finals = self._plan(written_since_ms)
            for group in again_tiers + again_finals:
                if group[0].day in days and not (stop is not None and stop.is_set()):
                    merge(group, TIER if group in again_tiers else FINAL)
        report.seconds = time.perf_counter() - started
        if failures:
            raise MergesFailed(report, len(failures), failures[0]) from failures[0]
        return report

    def _damaged_in(self, report: CompactReport, group: list[LakeFile]) -> bool:
        """After a merge of `group` failed: whether a file of it is damaged or gone (verify.damaged_files reads
        each whole), those being logged once, named with the way out, and left out of merges from now on."""
        found = damaged_files(self._objects, group)
        for key, problem in found.items():
            log.warning(
                "lake file %s is damaged (%s): its day is merged without it, which stays as it is; `loglake verify"
                " --quarantine` takes it out of the catalog (or restore it from a backup of the lake)",
                key,
                problem,
            )
        with self._reporting:
            self.damaged |= found
            report.damaged |= found
        return bool(found)

    def _busy_share(self) -> float:
        """The share of the last BUSY_WINDOW_S seconds the worker spent on tier merges."""
        since = self.clock() - BUSY_WINDOW_S
        self._tier_merges = [(ended, seconds) for ended, seconds in self._tier_merges if ended > since]
        return sum(min(seconds, ended - since) for ended, seconds in self._tier_merges) / BUSY_WINDOW_S

    def _plan(self, written_since_ms: int | None) -> tuple[list[list[LakeFile]], list[list[LakeFile]]]:
        """(tier groups of the days still written to, full merge groups of the other days)."""
        by_day: dict[str, list[LakeFile]] = {}
        for f in list_files(self.store.read, APP_LOGS_TABLE.name):
            if f.key not in self.damaged:
                by_day.setdefault(f.day, []).append(f)
        busy = set() if written_since_ms is None else self._days_written_since(written_since_ms)
        tiers = [g for day, files in by_day.items() if day in busy for g in tier_groups(files, self.target_bytes)]
        finals = [g for day, files in by_day.items() if day not in busy for g in final_groups(files, self.target_bytes)]
        return tiers, finals

    def _merge_into(self, report: CompactReport, group: list[LakeFile], style: MergeStyle, niced: bool = True) -> None:
        written = self._merge(group, style, niced)
        with self._reporting:  # tier merges that fell behind run at once
            report.written_files.append(written)
            report.merged_files += len(group)
            report.rewritten_alone += len(group) == 1
            report.records += sum(f.records for f in group)

    def _days_written_since(self, since_ms: int) -> set[str]:
        sql = "SELECT DISTINCT day FROM lake_files WHERE table_name = ? AND created_ms >= ?"
        return {day for (day,) in self.store.read(sql, (APP_LOGS_TABLE.name, since_ms))}

    def _merge(self, group: list[LakeFile], style: MergeStyle, niced: bool) -> str:
        now_ms = int(self.clock() * 1000)
        work = new_work_folder(self.store.path.parent, "compact-")
        try:
            key = app_logs_key(date.fromisoformat(group[0].day), new_part_name(now_ms))
            output = work / file_name(key)
            records = sum(f.records for f in group)
            merge_objects(
                self.lake,
                [f.key for f in group],
                output,
                work,
                self.memory_mb,
                records,
                style=style,
                background=self.background,
                niced=niced,
            )
            merged = LakeFile(
                key,
                APP_LOGS_TABLE.name,
                group[0].day,
                min(f.min_ts for f in group),
                max(f.max_ts for f in group),
                records,
                output.stat().st_size,
                final=style is FINAL,
            )
            self.on_step("written")
            retired = [f.key for f in group]
            publish(
                self.store,
                self.lake,
                work,
                [merged],
                now_ms,
                self.on_step,
                lambda conn: retire_files(conn, retired, now_ms + self.grace_ms),
            ).result()
            self.on_step("committed")
            return merged.key
        finally:
            shutil.rmtree(work, ignore_errors=True)


def merge_objects(
    lake: ObjectStore,
    keys: list[str],
    output: Path,
    work: Path,
    memory_mb: int,
    records: int | None = None,
    *,
    distinct_ids: bool = False,
    style: MergeStyle = FINAL,
    background: Background | None = None,
    niced: bool = True,
) -> int:
    """Download the lake objects `keys` into `work` and merge them into `output` (merge_in_background, in the
    `background` if given); raises, changing nothing, unless all `records` (default: their footers'
    count) made it. With `distinct_ids` a record stored twice (same log id) is written once, and
    `records` counts ids."""
    inputs = downloaded(lake, keys, work)
    if records is None and distinct_ids:
        records = count_distinct_ids(inputs, work / "spill", memory_mb)
    elif records is None:
        records = sum(pq.ParquetFile(path).metadata.num_rows for path in inputs)
    merge_in_background(
        background, inputs, output, work, memory_mb, distinct_ids=distinct_ids, style=style, niced=niced
    )
    written = pq.ParquetFile(output).metadata.num_rows
    if written != records:  # never retire inputs whose records did not all make it
        raise RuntimeError(f"compaction wrote {written} of {records} records of {output.name}; nothing changed")
    return written


def downloaded(lake: ObjectStore, keys: list[str], work: Path) -> list[Path]:
    """The lake objects `keys` as files in `work`, to merge."""
    inputs = []
    for key in keys:
        inputs.append(work / f"input-{len(inputs)}.parquet")
        lake.get_file(key, inputs[-1])
    return inputs


def merge_in_background(
    background: Background | None,
    inputs: list[Path],
    output: Path,
    work: Path,
    memory_mb: int,
    *,
    distinct_ids: bool,
    style: MergeStyle,
    niced: bool = True,
) -> None:
    """Merge the files `inputs` into `output` in the `background` (see Background; None: here): in
    memory up to IN_MEMORY_MERGE_RECORDS (half the time of a streamed merge of these few rows), on
    the `niced` thread or not, else streamed (sorted_merge.merge_sorted, which also drops duplicate
    ids with `distinct_ids`) in the worker."""
    in_thread = functools.partial(background.run_in_thread, niced=niced) if background is not None else _here
    in_worker = background.run if background is not None else _here
    if distinct_ids or not in_thread(merge_in_memory, inputs, output, style, IN_MEMORY_MERGE_RECORDS):
        in_worker(merge_sorted, inputs, output, work, memory_mb, distinct_ids=distinct_ids, style=style)


def _here(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return fn(*args, **kwargs)


def count_distinct_ids(inputs: list[Path], spill_dir: Path, memory_mb: int) -> int:
    files = ", ".join(sql_string(str(p)) for p in inputs)
    with background_duckdb(spill_dir, memory_mb) as con:
        ((count,),) = con.sql(f"SELECT count(DISTINCT log_id) FROM read_parquet([{files}])").fetchall()
    return count
