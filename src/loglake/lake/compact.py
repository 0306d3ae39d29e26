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
import multiprocessing
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from loglake.lake.flush import Step, publish
from loglake.lake.flush_rounds import exit_with_parent
from loglake.lake.layout import app_logs_key, new_part_name
from loglake.lake.manifest import LakeFile, list_files, retire_files
from loglake.lake.objectstore import ObjectStore
from loglake.lake.parts import (
    COMPACT_LEVELS,
    FLUSH_LEVELS,
    ROW_GROUP_ROWS,
    SORT_ORDER,
    ServiceRowGroups,
    file_name,
    parquet_writer,
)
from loglake.lake.query import sql_string
from loglake.lake.schema import LAKE_SCHEMA
from loglake.lake.scratch import new_work_folder
from loglake.lake.tables import APP_LOGS_TABLE
from loglake.store.sqlite import SQLiteHotStore

T = TypeVar("T")


@dataclass
class CompactReport:
    merged_files: int = 0
    written_files: list[str] = field(default_factory=list)
    records: int = 0
    seconds: float = 0.0


# A day still being written to is merged by size tiers, the way LSM stores merge small parts: files
# whose sizes are within a factor TIER_BASE of each other merge once TIER_FILES of them are there, so
# a record is rewritten about once per tier (log base TIER_BASE of the day's size) rather than every
# time a new part arrives. TIER_FILES is above TIER_BASE, so a merge's output is never in the tier it
# came from (else it would be merged again with every few new parts).
TIER_BASE = 8
# A 1M-record bulk load over a week (B2) leaves about 14 parts a day: it ends before any merge, which
# would halve its rate on two cores (`flush --all`, or the day's final merge, compacts it after).
TIER_FILES = 16
# Merges of at most this many records sort in Arrow, in memory (about 100 MB at most): see merge_sorted.
IN_MEMORY_MERGE_RECORDS = 250_000


@dataclass(frozen=True)
class MergeStyle:
    """How a merge writes: ZSTD levels (parts.parquet_writer), and whether one service per row group."""

    levels: tuple[int, int]
    by_service: bool


# A day's last merge compresses hard and splits row groups by service; the merges before it are fast,
# as the last one rewrites their output anyway (plain row groups: half the write time, see parts.py).
FINAL = MergeStyle(COMPACT_LEVELS, by_service=True)
TIER = MergeStyle(FLUSH_LEVELS, by_service=False)


def tier_groups(files: list[LakeFile], target_bytes: int) -> Iterator[list[LakeFile]]:
    """Groups of TIER_FILES or more small files of one size tier (smallest to at most TIER_BASE times
    it), in time order, each near the target at most; other files and smaller tiers are left alone."""
    tiers: list[list[LakeFile]] = []
    for f in sorted((f for f in files if f.bytes < target_bytes // 2), key=lambda f: f.bytes):
        if not tiers or f.bytes > TIER_BASE * max(tiers[-1][0].bytes, 1):
            tiers.append([])
        tiers[-1].append(f)
    for tier in tiers:
        if len(tier) >= TIER_FILES:
            yield from merge_groups(tier, target_bytes)


def merge_groups(files: list[LakeFile], target_bytes: int) -> Iterator[list[LakeFile]]:
    """Groups of a day's small files (under half the target) that together stay near the target;
    a group of one is left alone. Big files are never rewritten."""
    small = sorted((f for f in files if f.bytes < target_bytes // 2), key=lambda f: f.min_ts)
    group: list[LakeFile] = []
    size = 0
    for f in small:
        if group and size + f.bytes > target_bytes:
            if len(group) > 1:
                yield group
            group, size = [], 0
        group.append(f)
        size += f.bytes
    if len(group) > 1:
        yield group


class Background:
    """Where the server's merges run, at a lower CPU priority (nice BACKGROUND_NICENESS): the CPU goes to
    ingest and queries first, compaction gets what they leave.

    A merge small enough to sort in memory (merge_in_memory: the tier merges of bulk parts) runs on one
    thread of this process, niced on its own (Linux nices each thread): it is Arrow and Parquet work,
    outside the GIL. In a worker process such a merge cost more than itself: the worker holds its own
    pyarrow and DuckDB (B2: the worker peaked at ~160 MiB RSS and multiprocessing's resource tracker
    took 12 MiB, where the same merge adds ~50 MiB to this process) and took ~1 s of CPU to start.
    Bigger merges (DuckDB, which may take `memory_mb` and spill) run in one worker process, started on
    first use, so that the memory they take is the worker's. Spawned (this process runs threads), and it
    exits when this process dies (flush_rounds.exit_with_parent)."""

    def __init__(self) -> None:
        self._pool: ProcessPoolExecutor | None = None
        self._thread: ThreadPoolExecutor | None = None
        self._starting = threading.Lock()

    def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """fn(*args, **kwargs) in the worker process."""
        with self._starting:
            if self._pool is None:
                spawn = multiprocessing.get_context("spawn")
                self._pool = ProcessPoolExecutor(1, spawn, initializer=_in_background, initargs=(os.getpid(),))
        return self._pool.submit(fn, *args, **kwargs).result()

    def run_in_thread(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """fn(*args, **kwargs) on the background thread of this process."""
        with self._starting:
            if self._thread is None:
                self._thread = ThreadPoolExecutor(1, "loglake-merge", initializer=_nice_this_thread)
        return self._thread.submit(fn, *args, **kwargs).result()

    def close(self) -> None:
        with self._starting:
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)
                self._pool = None
            if self._thread is not None:
                self._thread.shutdown(wait=True, cancel_futures=True)
                self._thread = None


BACKGROUND_NICENESS = 10


def _in_background(parent_pid: int) -> None:
    os.nice(BACKGROUND_NICENESS)
    exit_with_parent(parent_pid)


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

    def compact(self, written_since_ms: int | None = None) -> CompactReport:
        """Merge each day's small files. With `written_since_ms`, a day that got a file since then is
        still being written to: it is merged by size tiers only (tier_groups), the others fully."""
        started = time.perf_counter()
        report = CompactReport()
        files = list_files(self.store.read, APP_LOGS_TABLE.name)
        by_day: dict[str, list[LakeFile]] = {}
        for f in files:
            by_day.setdefault(f.day, []).append(f)
        busy = set() if written_since_ms is None else self._days_written_since(written_since_ms)
        for day, day_files in by_day.items():
            if day in busy:
                groups, style = tier_groups(day_files, self.target_bytes), TIER
            else:
                groups, style = merge_groups(day_files, self.target_bytes), FINAL
            for group in groups:
                report.written_files.append(self._merge(group, style))
                report.merged_files += len(group)
                report.records += sum(f.records for f in group)
        report.seconds = time.perf_counter() - started
        return report

    def _days_written_since(self, since_ms: int) -> set[str]:
        sql = "SELECT DISTINCT day FROM lake_files WHERE table_name = ? AND created_ms >= ?"
        return {day for (day,) in self.store.read(sql, (APP_LOGS_TABLE.name, since_ms))}

    def _merge(self, group: list[LakeFile], style: MergeStyle) -> str:
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
            )
            merged = LakeFile(
                key,
                APP_LOGS_TABLE.name,
                group[0].day,
                min(f.min_ts for f in group),
                max(f.max_ts for f in group),
                records,
                output.stat().st_size,
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
) -> int:
    """Download the lake objects `keys` into `work` and merge them into `output` (merge_sorted, in the
    `background` if given); raises, changing nothing, unless all `records` (default: their footers'
    count) made it. With `distinct_ids` a record stored twice (same log id) is written once, and
    `records` counts ids."""
    inputs = []
    for key in keys:
        inputs.append(work / f"input-{len(inputs)}.parquet")
        lake.get_file(key, inputs[-1])
    if records is None and distinct_ids:
        records = count_distinct_ids(inputs, work / "spill", memory_mb)
    elif records is None:
        records = sum(pq.ParquetFile(path).metadata.num_rows for path in inputs)
    merge_sorted(
        inputs, output, work / "spill", memory_mb, distinct_ids=distinct_ids, style=style, background=background
    )
    written = pq.ParquetFile(output).metadata.num_rows
    if written != records:  # never retire inputs whose records did not all make it
        raise RuntimeError(f"compaction wrote {written} of {records} records of {output.name}; nothing changed")
    return written


def count_distinct_ids(inputs: list[Path], spill_dir: Path, memory_mb: int) -> int:
    files = ", ".join(sql_string(str(p)) for p in inputs)
    with _background_duckdb(spill_dir, memory_mb) as con:
        ((count,),) = con.sql(f"SELECT count(DISTINCT log_id) FROM read_parquet([{files}])").fetchall()
    return count


def _background_duckdb(spill_dir: Path, memory_mb: int) -> duckdb.DuckDBPyConnection:
    """A DuckDB for maintenance in the background: one thread (ingest and queries keep the other
    cores), `memory_mb` of memory and its spill in the job's own folder (DuckDB's defaults would take
    every core, 80 % of the memory and a `.tmp` folder in whatever directory the server started in)."""
    con = duckdb.connect(
        config={
            "threads": 1,
            "memory_limit": f"{memory_mb}MiB",
            "temp_directory": str(spill_dir),
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
        }
    )
    con.execute("SET enable_progress_bar = false")  # else drawn on the output for a merge past 2 s
    return con


def merge_sorted(
    inputs: list[Path],
    output: Path,
    spill_dir: Path,
    memory_mb: int,
    *,
    distinct_ids: bool = False,
    style: MergeStyle = FINAL,
    background: Background | None = None,
) -> None:
    """Merge sorted Parquet files into one sorted by (service, timestamp), in bounded memory: up to
    IN_MEMORY_MERGE_RECORDS in Arrow (merge_in_memory: half DuckDB's time for the small merges bulk
    ingest causes), more by DuckDB (merge_by_duckdb). With `distinct_ids`, one row per log id
    (at-least-once writers' duplicates), by DuckDB. In the `background` if given (see Background)."""
    in_thread = background.run_in_thread if background is not None else _here
    in_worker = background.run if background is not None else _here
    if distinct_ids or not in_thread(merge_in_memory, inputs, output, style):
        in_worker(merge_by_duckdb, inputs, output, spill_dir, memory_mb, distinct_ids=distinct_ids, style=style)


def _here(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return fn(*args, **kwargs)


def merge_in_memory(inputs: list[Path], output: Path, style: MergeStyle) -> bool:
    """merge_sorted in Arrow, if the inputs hold at most IN_MEMORY_MERGE_RECORDS and have the lake's
    types; False (nothing written) if not."""
    if sum(pq.ParquetFile(p).metadata.num_rows for p in inputs) > IN_MEMORY_MERGE_RECORDS:
        return False
    try:
        rows = _read_joined(inputs)
    except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError):
        return False  # a file of another tool's making, with other types: DuckDB converts them
    order = pc.sort_indices(rows, SORT_ORDER)
    # Taken a row group at a time: the sorted rows are never all in memory beside the read ones.
    in_order = (rows.take(order.slice(start, ROW_GROUP_ROWS)) for start in range(0, len(order), ROW_GROUP_ROWS))
    with parquet_writer(output, style.levels) as writer:
        _write_sorted(in_order, writer, style)
    return True


def _read_joined(inputs: list[Path]) -> pa.Table:
    """The files' rows as one table with the lake's types, a single chunk per column: joined a column
    at a time, each column's pieces let go once joined, so at most one column is held twice. Read on
    the calling thread only (Arrow's own threads would not run at the background's priority)."""
    tables = [pq.read_table(p, use_threads=False).cast(APP_LOGS_TABLE.schema) for p in inputs]
    schema = APP_LOGS_TABLE.schema
    pieces = [[chunk for table in tables for chunk in table.column(name).chunks] for name in schema.names]
    del tables
    columns = []
    for number, column_type in enumerate(schema.types):
        columns.append(pa.chunked_array(pieces[number], column_type).combine_chunks())
        pieces[number] = []
    return pa.table(columns, schema=schema)


def merge_by_duckdb(
    inputs: list[Path], output: Path, spill_dir: Path, memory_mb: int, *, distinct_ids: bool, style: MergeStyle
) -> None:
    """merge_sorted by DuckDB, which sorts (spilling to `spill_dir` beyond `memory_mb`) and hands the
    rows over a batch at a time, where reading all inputs into Arrow would need several times their size."""
    files = ", ".join(sql_string(str(p)) for p in inputs)
    rows_sql = f"read_parquet([{files}], hive_partitioning = false)"
    if distinct_ids:
        rows_sql = f"(SELECT DISTINCT ON (log_id) * FROM {rows_sql})"
    con = _background_duckdb(spill_dir, memory_mb)
    schema = APP_LOGS_TABLE.schema
    try:
        ordered = con.sql(f'SELECT * FROM {rows_sql} ORDER BY service, "timestamp"')
        batches = (pa.Table.from_batches([b.cast(schema)]) for b in ordered.to_arrow_reader(ROW_GROUP_ROWS))
        with parquet_writer(output, style.levels) as writer:
            _write_sorted(batches, writer, style)
    finally:
        con.close()


def _write_sorted(tables: Iterable[pa.Table], writer: pq.ParquetWriter, style: MergeStyle) -> None:
    """Sorted rows into the writer's row groups (one service each, or plain runs: ServiceRowGroups)."""
    groups = ServiceRowGroups(writer, style.by_service)
    for rows in tables:
        groups.add(rows)
    groups.finish()
