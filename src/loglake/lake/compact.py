"""Compaction: merge a day's small lake files into files of about the target size.

Each flush round adds one file per day it touches, so a server flushing every 30 s would leave
thousands of small files a day; each costs a request (on S3) and a footer read per query. A merge
uses the flush's crash-safe protocol (flush.publish): the merged file is written, journaled and
published, then ONE transaction retires the inputs from the catalog and adds the output. Retired
inputs stay in the object store for a grace period (manifest.retire_files), so a query that
started on the older snapshot still finds them.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from loglake.lake.flush import Step, publish
from loglake.lake.layout import app_logs_key, new_part_name
from loglake.lake.manifest import LakeFile, list_files, retire_files
from loglake.lake.objectstore import ObjectStore
from loglake.lake.parts import COMPACT_LEVELS, ROW_GROUP_ROWS, ServiceRowGroups, file_name, parquet_writer
from loglake.lake.query import sql_string
from loglake.lake.schema import LAKE_SCHEMA
from loglake.lake.tables import APP_LOGS_TABLE
from loglake.store.sqlite import SQLiteHotStore


@dataclass
class CompactReport:
    merged_files: int = 0
    written_files: list[str] = field(default_factory=list)
    records: int = 0
    seconds: float = 0.0


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
    ) -> None:
        store.use_schema(LAKE_SCHEMA)
        self.memory_mb = memory_mb
        self.store = store
        self.lake = lake
        self.target_bytes = target_bytes
        self.grace_ms = grace_ms
        self.clock = clock
        self.on_step = on_step or (lambda step: None)

    def compact(self) -> CompactReport:
        started = time.perf_counter()
        report = CompactReport()
        files = list_files(self.store.read, APP_LOGS_TABLE.name)
        by_day: dict[str, list[LakeFile]] = {}
        for f in files:
            by_day.setdefault(f.day, []).append(f)
        for day_files in by_day.values():
            for group in merge_groups(day_files, self.target_bytes):
                report.written_files.append(self._merge(group))
                report.merged_files += len(group)
                report.records += sum(f.records for f in group)
        report.seconds = time.perf_counter() - started
        return report

    def _merge(self, group: list[LakeFile]) -> str:
        now_ms = int(self.clock() * 1000)
        work = Path(tempfile.mkdtemp(prefix="loglake-compact-"))
        try:
            key = app_logs_key(date.fromisoformat(group[0].day), new_part_name(now_ms))
            output = work / file_name(key)
            records = sum(f.records for f in group)
            merge_objects(self.lake, [f.key for f in group], output, work, self.memory_mb, records)
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
) -> int:
    """Download the lake objects `keys` into `work` and merge them into `output` (merge_sorted);
    raises, changing nothing, unless all `records` (default: their footers' count) made it. With
    `distinct_ids` a record stored twice (same log id) is written once, and `records` counts ids."""
    inputs = []
    for key in keys:
        inputs.append(work / f"input-{len(inputs)}.parquet")
        lake.get_file(key, inputs[-1])
    if records is None and distinct_ids:
        records = count_distinct_ids(inputs, work / "spill", memory_mb)
    elif records is None:
        records = sum(pq.ParquetFile(path).metadata.num_rows for path in inputs)
    merge_sorted(inputs, output, work / "spill", memory_mb, distinct_ids=distinct_ids)
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
    return duckdb.connect(
        config={
            "threads": 1,
            "memory_limit": f"{memory_mb}MiB",
            "temp_directory": str(spill_dir),
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
        }
    )


def merge_sorted(
    inputs: list[Path], output: Path, spill_dir: Path, memory_mb: int, *, distinct_ids: bool = False
) -> None:
    """Merge sorted Parquet files into one sorted by (service, timestamp), in bounded memory: DuckDB
    sorts (spilling to `spill_dir` beyond `memory_mb`) and hands the rows over a batch at a time to
    the same Parquet writer the flush uses, where reading all inputs into Arrow would need several
    times their size. With `distinct_ids`, one row per log id (at-least-once writers' duplicates)."""
    files = ", ".join(sql_string(str(p)) for p in inputs)
    rows = f"read_parquet([{files}], hive_partitioning = false)"
    if distinct_ids:
        rows = f"(SELECT DISTINCT ON (log_id) * FROM {rows})"
    con = _background_duckdb(spill_dir, memory_mb)
    schema = APP_LOGS_TABLE.schema
    try:
        ordered = con.sql(f'SELECT * FROM {rows} ORDER BY service, "timestamp"')
        with parquet_writer(output, COMPACT_LEVELS) as writer:
            groups = ServiceRowGroups(writer)
            for batch in ordered.to_arrow_reader(ROW_GROUP_ROWS):
                groups.add(pa.Table.from_batches([batch.cast(schema)]))
            groups.finish()
    finally:
        con.close()
