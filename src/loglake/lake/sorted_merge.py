"""Merging lake files, each sorted by (service, timestamp), into one sorted file, in bounded memory.

Every lake file's rows are sorted (parts.SORT_ORDER), so a merge never needs all of its rows at once:
each input is read a batch at a time, and the rows of every input up to the smallest "last row read"
of any input (the frontier) can go out, sorted among themselves, since nothing read later sorts
before them. Memory is then a page or so per column of each input and a few thousand rows, and at
most MAX_FAN_IN inputs are read at once: more are merged a group at a time first. The worker that
merges while ingest goes on stays small (sorting a day's 1.4M records in DuckDB took ~400 MiB with a
256 MiB limit; streamed, ~150-200 MiB, 65 of it the libraries), at the speed of sorting in Arrow.

A merge of few rows (the first tier merges of bulk parts) is quicker read whole and sorted at once
(merge_in_memory), on a thread of the server (compact.Background). This module is all the merge
worker imports; DuckDB, which sorts what cannot stream, only when that happens.
"""

from __future__ import annotations

import bisect
import contextlib
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from loglake.lake.parts import (
    FAST,
    READ_CHECKED,
    ROW_GROUP_ROWS,
    SMALL,
    SORT_ORDER,
    Codec,
    ServiceRowGroups,
    parquet_writer,
)
from loglake.lake.tables import APP_LOGS_TABLE
from loglake.worker_processes import exit_with_parent


@dataclass(frozen=True)
class MergeStyle:
    """How a merge writes: its codec (parts.parquet_writer), and whether one service per row group."""

    codec: Codec
    by_service: bool


# A day's last merge compresses hard and splits row groups by service; the merges before it are fast,
# as the last one rewrites their output anyway (Snappy and plain row groups: see parts.py).
FINAL = MergeStyle(SMALL, by_service=True)
TIER = MergeStyle(FAST, by_service=False)

# Inputs read at once by a merge: ~1.5 MB each (a decoded row group), and each batch read costs a
# binary search in every input. A wider merge first merges groups of this many into work files.
MAX_FAN_IN = 16

# Rows buffered across all inputs (about 6 MB of log records); a batch per input is this divided by
# the number of inputs, but never under MIN_BATCH_ROWS: below that, per-batch work outweighs the rows.
# Sixteen bulk parts merged with 16Ki, 32Ki, 64Ki: 2.2, 1.8, 1.7 us of CPU a row, peak RSS of the
# worker 133, 152, 183 MiB (reading Parquet 1Ki rows at a time costs 1.1 us a row, 16Ki at a time 0.65).
BUFFERED_ROWS = 32 * 1024
MIN_BATCH_ROWS = 1024

# Each input read through a 64 KiB buffer, a page at a time, rather than its row group's column chunks
# fetched whole beforehand (pyarrow's default): ~3 MiB less per input, as fast.
READ_OPTIONS: dict[str, Any] = {"buffer_size": 64 * 1024, "pre_buffer": False, **READ_CHECKED}

_SCHEMA = APP_LOGS_TABLE.schema
Key = tuple[str, int]  # (service, epoch ms): how lake rows are sorted


class NotStreamable(Exception):
    """An input this merge cannot stream: rows out of order, a key that is null, or other column types
    (a file of another tool's making); the caller sorts everything instead."""


class _SortedInput:
    """One input, read a batch at a time: `rows[taken:]` are those read and not yet merged. Their keys
    are kept as Python values for binary searches (microseconds, where an Arrow compute call costs tens
    of them, and a merge makes one per input per batch read): the services of the batch's runs of one
    service and where each run ends, and the timestamps. A string per row would cost a third of the
    merge; a run per service, a few dozen strings a batch."""

    def __init__(self, file: pq.ParquetFile, batch_rows: int) -> None:
        self._batches = file.iter_batches(batch_size=batch_rows)
        self.rows = _SCHEMA.empty_table()
        self.services: list[str] = []  # of each run
        self.run_ends: list[int] = []
        self.ms: list[int] = []
        self.taken = 0

    def fill(self) -> bool:
        """Read the next batch once every row read is merged; False when the file is done."""
        while self.taken == self.rows.num_rows:
            batch = next(self._batches, None)
            if batch is None:
                return False
            rows = pa.Table.from_batches([batch])
            if rows.schema != _SCHEMA:  # a lake file's are: no copy then
                try:
                    rows = APP_LOGS_TABLE.conform(rows)
                except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError) as e:
                    raise NotStreamable(f"other column types: {e}") from None
            if rows.num_rows:
                self._index(rows)
            self.rows, self.taken = rows, 0
        return True

    def _index(self, rows: pa.Table) -> None:
        services, run_ends, times = service_runs(rows)
        ms = times.to_pylist()
        if self.services and (services[0], ms[0]) < self.last:
            raise NotStreamable("rows not sorted by (service, timestamp)")
        self.services, self.run_ends, self.ms = services, run_ends, ms

    @property
    def last(self) -> Key:
        return self.services[-1], self.ms[-1]

    def take_through(self, frontier: Key) -> pa.Table:
        """The rows read and not yet merged that sort at or before `frontier` (a prefix of them)."""
        service, ms = frontier
        run = bisect.bisect_right(self.services, service)  # runs [0, run) have services <= the frontier's
        if run == 0:
            end = 0
        elif self.services[run - 1] < service:
            end = self.run_ends[run - 1]
        else:  # within the frontier's service, by time
            start = self.run_ends[run - 2] if run > 1 else 0
            end = bisect.bisect_right(self.ms, ms, start, self.run_ends[run - 1])
        end = max(end, self.taken)
        taken, self.taken = self.rows.slice(self.taken, end - self.taken), end
        return taken


def service_runs(rows: pa.Table) -> tuple[list[str], list[int], pa.Array]:
    """The services of the runs of one service in `rows`, where each run ends, and the timestamps as
    int64; raises NotStreamable unless the rows are sorted by (service, timestamp) with no null key.
    Checked on whole columns: a Python value per run, none per row."""
    service, ms = rows.column("service").combine_chunks(), rows.column("timestamp").combine_chunks()
    if service.null_count or ms.null_count:
        raise NotStreamable("a null service or timestamp")
    runs = pc.run_end_encode(service)
    services, run_ends = runs.values.to_pylist(), runs.run_ends.to_pylist()
    times = ms.cast(pa.int64())
    back_in_time = pc.indices_nonzero(pc.less(times.slice(1), times.slice(0, len(times) - 1))).to_pylist()
    in_order = all(a < b for a, b in itertools.pairwise(services)) and set(run_ends).issuperset(
        i + 1
        for i in back_in_time  # time may only go back where a new service begins
    )
    if not in_order:
        raise NotStreamable("rows not sorted by (service, timestamp)")
    return services, run_ends, times


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
    with parquet_writer(output, style.codec) as writer, contextlib.ExitStack() as files:
        groups = ServiceRowGroups(writer, style.by_service)
        opened = [files.enter_context(pq.ParquetFile(path, **READ_OPTIONS)) for path in inputs]
        batch_rows = max(MIN_BATCH_ROWS, BUFFERED_ROWS // max(1, len(inputs)))
        readers = [_SortedInput(file, batch_rows) for file in opened]
        ready: list[pa.Table] = []  # sorted among themselves once they make a row group: one sort, not many
        ready_rows = 0
        while live := [reader for reader in readers if reader.fill()]:
            frontier = min(reader.last for reader in live)
            for reader in live:
                if (rows := reader.take_through(frontier)).num_rows:
                    ready.append(rows)
                    ready_rows += rows.num_rows
            if ready_rows >= ROW_GROUP_ROWS:
                groups.add(pa.concat_tables(ready).sort_by(SORT_ORDER))
                ready, ready_rows = [], 0
        if ready:
            groups.add(pa.concat_tables(ready).sort_by(SORT_ORDER))
        groups.finish()


def merge_in_memory(inputs: list[Path], output: Path, style: MergeStyle, most_records: int) -> bool:
    """Merge `inputs` into `output` sorted by (service, timestamp), all rows read into Arrow at once
    (for a few rows, half the time of a streamed merge): if they hold at most `most_records` and have
    the lake's types; False (nothing written) if not. Inputs are read on the calling thread only
    (Arrow's own threads would not run at a niced caller's priority)."""
    if sum(pq.read_metadata(p).num_rows for p in inputs) > most_records:
        return False
    try:
        tables = [APP_LOGS_TABLE.conform(pq.ParquetFile(p, **READ_CHECKED).read(use_threads=False)) for p in inputs]
    except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError):
        return False  # a file of another tool's making, with other types: merge_sorted converts them
    with parquet_writer(output, style.codec) as writer:
        groups = ServiceRowGroups(writer, style.by_service)
        try:
            pieces = _slices_in_order(tables)
        except NotStreamable:
            pieces = _sorted_a_row_group_at_a_time(tables)
        for piece in pieces:
            groups.add(piece)
        groups.finish()
    return True


def _slices_in_order(tables: list[pa.Table]) -> list[pa.Table]:
    """The rows of `tables`, each sorted by (service, timestamp), as slices of them in that order: a
    service at a time, its runs in the tables ordered by time. Bulk parts of a stream of records
    hold a service's rows of one stretch of time each, so their runs follow one another and no row is
    sorted or copied (a tier merge's sort and take were a fifth of its CPU); a service whose runs
    overlap in time is sorted on its own. Raises NotStreamable for a table not sorted that way."""
    by_service: dict[str, list[tuple[int, int, pa.Table]]] = {}
    for rows in tables:
        if not rows.num_rows:
            continue
        services, run_ends, times = service_runs(rows)
        starts = [0, *run_ends[:-1]]
        firsts = times.take(starts).to_pylist()
        lasts = times.take([end - 1 for end in run_ends]).to_pylist()
        for service, start, end, first, last in zip(services, starts, run_ends, firsts, lasts, strict=True):
            by_service.setdefault(service, []).append((first, last, rows.slice(start, end - start)))
    pieces = []
    for service in sorted(by_service):
        runs = sorted(by_service[service], key=lambda run: run[:2])
        if all(before[1] <= after[0] for before, after in itertools.pairwise(runs)):
            pieces += [run for _, _, run in runs]
        else:
            pieces.append(pa.concat_tables([run for _, _, run in runs]).sort_by("timestamp"))
    return pieces


def _sorted_a_row_group_at_a_time(tables: list[pa.Table]) -> Iterator[pa.Table]:
    """The rows of `tables` sorted by (service, timestamp): sorted at once, then taken a row group at
    a time, so the sorted rows are never all beside the read ones."""
    rows = _joined(tables)
    order = pc.sort_indices(rows, SORT_ORDER)
    for start in range(0, len(order), ROW_GROUP_ROWS):
        yield rows.take(order.slice(start, ROW_GROUP_ROWS))


def _joined(tables: list[pa.Table]) -> pa.Table:
    """The tables' rows as one table, a single chunk per column: joined a column at a time, each
    column's pieces let go once joined, so at most one column is held twice (`tables` is emptied: the
    caller's list is the last reference to them)."""
    pieces = [[chunk for table in tables for chunk in table.column(name).chunks] for name in _SCHEMA.names]
    tables.clear()
    columns = []
    for number, column_type in enumerate(_SCHEMA.types):
        columns.append(pa.chunked_array(pieces[number], column_type).combine_chunks())
        pieces[number] = []
    return pa.table(columns, schema=_SCHEMA)


def _merge_by_duckdb(
    inputs: list[Path], output: Path, work: Path, memory_mb: int, distinct_ids: bool, style: MergeStyle
) -> None:
    from loglake.lake.query_views import sql_string  # DuckDB, loaded for the few merges that need it

    files = ", ".join(sql_string(str(p)) for p in inputs)
    rows_sql = f"read_parquet([{files}], hive_partitioning = false, union_by_name = true)"  # older files lack some
    if distinct_ids:
        rows_sql = f"(SELECT DISTINCT ON (log_id) * FROM {rows_sql})"
    con = background_duckdb(work / "spill", memory_mb)
    try:
        ordered = con.sql(f'SELECT * FROM {rows_sql} ORDER BY service, "timestamp"')
        with parquet_writer(output, style.codec) as writer:
            groups = ServiceRowGroups(writer, style.by_service)
            for batch in ordered.to_arrow_reader(ROW_GROUP_ROWS):
                groups.add(APP_LOGS_TABLE.conform(pa.Table.from_batches([batch])))
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
            "allocator_background_threads": True,  # (what a merge freed goes back to the system: query.py)
        }
    )
    con.execute("SET enable_progress_bar = false")  # else drawn on the output for a merge past 2 s
    return con
