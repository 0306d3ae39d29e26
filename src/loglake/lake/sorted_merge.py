"""Merging lake files, each sorted by (service, timestamp), into one sorted file, in bounded memory.

Every lake file's rows are sorted (parts.SORT_ORDER), so a merge never needs all of its rows at once:
each input is read a batch at a time, and the rows of every input up to the smallest "last row read"
of any input (the frontier) can go out, sorted among themselves, since nothing read later sorts
before them. Memory is then a page or so per column of each input and a few thousand rows, and at
most MAX_FAN_IN inputs are read at once: more are merged a group at a time first. The worker that
merges while ingest goes on stays small (sorting a day's 1.4M records in DuckDB took ~400 MiB with a
256 MiB limit; streamed, ~125-195 MiB, 65 of it the libraries), at the speed of sorting in Arrow.

This module is all the merge worker (compact.BackgroundProcess) imports; DuckDB, which sorts what
cannot stream, only when that happens.
"""

from __future__ import annotations

import bisect
import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from loglake.lake.flush_rounds import exit_with_parent
from loglake.lake.parts import (
    COMPACT_LEVELS,
    FLUSH_LEVELS,
    ROW_GROUP_ROWS,
    SORT_ORDER,
    ServiceRowGroups,
    parquet_writer,
)
from loglake.lake.tables import APP_LOGS_TABLE


@dataclass(frozen=True)
class MergeStyle:
    """How a merge writes: ZSTD levels (parts.parquet_writer), and whether one service per row group."""

    levels: tuple[int, int]
    by_service: bool


# A day's last merge compresses hard and splits row groups by service; the merges before it are fast,
# as the last one rewrites their output anyway (plain row groups: half the write time, see parts.py).
FINAL = MergeStyle(COMPACT_LEVELS, by_service=True)
TIER = MergeStyle(FLUSH_LEVELS, by_service=False)

# Inputs read at once by a merge: ~1.5 MB each (a decoded row group), and each batch read costs a
# binary search in every input. A wider merge first merges groups of this many into work files.
MAX_FAN_IN = 16

# Rows buffered across all inputs (about 3 MB of log records); a batch per input is this divided by
# the number of inputs, but never under MIN_BATCH_ROWS: below that, per-batch work outweighs the rows.
# A day's merge took as long with 16Ki as with 64Ki, and its peak RSS went from ~160 to ~125 MiB.
BUFFERED_ROWS = 16 * 1024
MIN_BATCH_ROWS = 1024

# Each input read through a 64 KiB buffer, a page at a time, rather than its row group's column chunks
# fetched whole beforehand (pyarrow's default): ~3 MiB less per input, as fast.
READ_OPTIONS: dict[str, Any] = {"buffer_size": 64 * 1024, "pre_buffer": False}

Key = tuple[str, int]  # (service, epoch ms): how lake rows are sorted


class NotStreamable(Exception):
    """An input this merge cannot stream: rows out of order, a key that is null, or other column types
    (a file of another tool's making); the caller sorts everything instead."""


class _SortedInput:
    """One input, read a batch at a time: `rows[taken:]` are those read and not yet merged, `keys`
    their sort keys as Python values (a binary search among them costs microseconds, where one
    Arrow compute call costs tens of them, and a merge makes one per input per batch)."""

    def __init__(self, file: pq.ParquetFile, batch_rows: int) -> None:
        self._batches = file.iter_batches(batch_size=batch_rows)
        self.rows = APP_LOGS_TABLE.schema.empty_table()
        self.keys: list[Key] = []
        self.taken = 0

    def fill(self) -> bool:
        """Read the next batch once every row read is merged; False when the file is done."""
        while self.taken == len(self.keys):
            batch = next(self._batches, None)
            if batch is None:
                return False
            try:
                rows = pa.Table.from_batches([batch]).cast(APP_LOGS_TABLE.schema)
            except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError) as e:
                raise NotStreamable(f"other column types: {e}") from None
            service, ms = rows.column("service"), rows.column("timestamp")
            if service.null_count or ms.null_count:
                raise NotStreamable("a null service or timestamp")
            keys = list(zip(service.to_pylist(), ms.cast(pa.int64()).to_pylist(), strict=True))
            if keys != sorted(keys) or (self.keys and keys and keys[0] < self.keys[-1]):
                raise NotStreamable("rows not sorted by (service, timestamp)")
            self.rows, self.keys, self.taken = rows, keys, 0
        return True

    @property
    def last(self) -> Key:
        return self.keys[-1]

    def take_through(self, frontier: Key) -> pa.Table:
        """The rows read and not yet merged that sort at or before `frontier` (a prefix of them)."""
        end = bisect.bisect_right(self.keys, frontier, lo=self.taken)
        taken, self.taken = self.rows.slice(self.taken, end - self.taken), end
        return taken


def merge_sorted(
    inputs: list[Path],
    output: Path,
    work: Path,
    memory_mb: int,
    *,
    distinct_ids: bool = False,
    style: MergeStyle = FINAL,
) -> None:
    """Merge Parquet files into `output`, sorted by (service, timestamp), in bounded memory: as a
    stream when each input is sorted that way (every lake file is), MAX_FAN_IN inputs at a time
    (wider merges go through files in `work`, written fast: TIER); else (a file of another tool's
    making), and with `distinct_ids` (one row per log id: at-least-once writers' duplicates), by
    DuckDB, which sorts, spilling to `work` beyond `memory_mb`, and hands rows over a batch at a time."""
    if not distinct_ids:
        try:
            _merge_by_fan_in(inputs, output, work, style)
            return
        except NotStreamable:
            output.unlink(missing_ok=True)  # and sort it all below
    _merge_by_duckdb(inputs, output, work, memory_mb, distinct_ids, style)


def _merge_by_fan_in(inputs: list[Path], output: Path, work: Path, style: MergeStyle) -> None:
    level = 0
    while len(inputs) > MAX_FAN_IN:
        merged = []
        for start in range(0, len(inputs), MAX_FAN_IN):
            merged.append(work / f"merged-{level}-{len(merged)}.parquet")
            _merge_streaming(inputs[start : start + MAX_FAN_IN], merged[-1], TIER)
        if level:
            for path in inputs:  # work files of the level before
                path.unlink()
        inputs, level = merged, level + 1
    _merge_streaming(inputs, output, style)
    if level:
        for path in inputs:
            path.unlink()


def _merge_streaming(inputs: list[Path], output: Path, style: MergeStyle) -> None:
    """Write the rows of `inputs` (each sorted by SORT_ORDER) to `output` in that order; raises
    NotStreamable (having written part of `output`) for an input that is not sorted that way."""
    with parquet_writer(output, style.levels) as writer, contextlib.ExitStack() as files:
        groups = ServiceRowGroups(writer, style.by_service)
        opened = [files.enter_context(pq.ParquetFile(path, **READ_OPTIONS)) for path in inputs]
        batch_rows = max(MIN_BATCH_ROWS, BUFFERED_ROWS // max(1, len(inputs)))
        readers = [_SortedInput(file, batch_rows) for file in opened]
        while live := [reader for reader in readers if reader.fill()]:
            frontier = min(reader.last for reader in live)
            taken = [rows for reader in live if (rows := reader.take_through(frontier)).num_rows]
            groups.add(pa.concat_tables(taken).sort_by(SORT_ORDER))
        groups.finish()


def _merge_by_duckdb(
    inputs: list[Path], output: Path, work: Path, memory_mb: int, distinct_ids: bool, style: MergeStyle
) -> None:
    from loglake.lake.query import sql_string  # DuckDB, loaded for the few merges that need it

    files = ", ".join(sql_string(str(p)) for p in inputs)
    rows_sql = f"read_parquet([{files}], hive_partitioning = false)"
    if distinct_ids:
        rows_sql = f"(SELECT DISTINCT ON (log_id) * FROM {rows_sql})"
    con = background_duckdb(work / "spill", memory_mb)
    schema = APP_LOGS_TABLE.schema
    try:
        ordered = con.sql(f'SELECT * FROM {rows_sql} ORDER BY service, "timestamp"')
        with parquet_writer(output, style.levels) as writer:
            groups = ServiceRowGroups(writer, style.by_service)
            for batch in ordered.to_arrow_reader(ROW_GROUP_ROWS):
                groups.add(pa.Table.from_batches([batch.cast(schema)]))
            groups.finish()
    finally:
        con.close()


def start_merge_worker(parent_pid: int) -> None:
    """The merge worker's initializer: gone when the process it merges for dies, and Arrow's memory
    from jemalloc, set to give freed pages back at once. A merge frees as much as it allocates, batch
    after batch, and the C library's malloc (the server's pool, see loglake/__init__.py) kept ~40 MiB
    more resident than Arrow held; where pyarrow comes without jemalloc, the default pool stays."""
    exit_with_parent(parent_pid)
    with contextlib.suppress(NotImplementedError):
        pa.set_memory_pool(pa.jemalloc_memory_pool())
        pa.jemalloc_set_decay_ms(0)


def background_duckdb(spill_dir: Path, memory_mb: int) -> Any:
    """A DuckDB for maintenance in the background: one thread (ingest and queries keep the other
    cores), `memory_mb` of memory and its spill in the job's own folder (DuckDB's defaults would take
    every core, 80 % of the memory and a `.tmp` folder in whatever directory the server started in)."""
    import duckdb

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
