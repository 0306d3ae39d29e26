"""Moving records from the hot store into the lake, exactly once whatever moment the process dies.

One flush round, and what a crash after each step leaves:

1. read due records (oldest first) and write one ZSTD Parquet file per UTC date to a local temp
   folder                                    -> only temp files: removed on recovery, rows still hot
2. journal the round in hot.db (`flushes`: its object keys)
                                             -> recovery deletes those keys from the lake and the entry
3. publish each file to the object store (an atomic put each)
                                             -> same: published objects are deleted again
4. in ONE SQLite transaction, delete the round's rows, add its objects to the lake catalog
   (`lake_files`) and drop its journal entry
                                             -> done: rows are only in the lake

A query reads hot rows and `lake_files` in one SQLite snapshot, so while a round runs it counts each
record exactly once, from the hot store (published objects are not in the catalog yet); after step 4
it counts it from the lake. Exactly the rows read are deleted (as one id range only when no late
record arrived inside it since, else by id), so a late record stays in the hot store for the next round.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from loglake.lake.hot_rows import hot_rows_table
from loglake.lake.layout import app_logs_key, day_of, new_part_name, partitions_of
from loglake.lake.manifest import LakeFile, add_files
from loglake.lake.objectstore import ObjectStore
from loglake.lake.tables import APP_LOGS_TABLE
from loglake.model import DAY_MS
from loglake.store.sqlite import SQLiteHotStore
from loglake.store.sqlite_rows import COLUMNS

ROWS_PER_ROUND = 200_000
_DUE = f"SELECT {COLUMNS} FROM logs WHERE id_hi < ? ORDER BY id_hi, id_lo LIMIT ?"
_DUE_AFTER = f"SELECT {COLUMNS} FROM logs WHERE (id_hi, id_lo) > (?, ?) AND id_hi < ? ORDER BY id_hi, id_lo LIMIT ?"
_AS_COLUMNS = (
    "SELECT " + ", ".join(f"json_group_array({name.strip()})" for name in COLUMNS.split(",")) + " FROM ({rows})"
)

Step = Callable[[str], None]


@dataclass
class FlushReport:
    records: int = 0
    rounds: int = 0
    objects: list[str] = field(default_factory=list)
    seconds: float = 0.0


class Flusher:
    """Flush rounds for one hot store and one lake. `on_step` is called after each step (tests use it
    to kill the process there)."""

    def __init__(
        self,
        store: SQLiteHotStore,
        lake: ObjectStore,
        *,
        clock: Callable[[], float] = time.time,
        on_step: Step | None = None,
        rows_per_round: int = ROWS_PER_ROUND,
    ) -> None:
        self.store = store
        self.lake = lake
        self.clock = clock
        self.on_step = on_step or (lambda step: None)
        self.rows_per_round = rows_per_round

    def recover(self) -> int:
        """Undo rounds a crash interrupted (steps 2-3): their objects go, their rows stay hot."""
        pending = self.store.read("SELECT flush_id, objects FROM flushes")
        for flush_id, objects in pending:
            for key in json.loads(objects):
                self.lake.delete(key)
            self.store.run_in_writer(
                lambda conn, f=flush_id: conn.execute("DELETE FROM flushes WHERE flush_id = ?", (f,))
            )
        return len(pending)

    def flush(
        self, before_ms: int, max_rounds: int | None = None, progress: Callable[[int], None] | None = None
    ) -> FlushReport:
        """Move every record timestamped before `before_ms` into the lake, round by round
        (`progress` gets the number of records of each round).

        Rounds overlap: while one converts and writes its files, a thread reads the next round's rows
        (after the last id read) and the writer thread commits the previous round (SQLite and the
        Parquet writer work off the GIL). Records that arrive late, below the ids already read, are
        found by a last pass from the oldest id once the rest is moved."""
        started = time.perf_counter()
        report = FlushReport()
        after: tuple[int, int] | None = None
        committing: Future | None = None
        prefetched: Future | None = None
        with ThreadPoolExecutor(1, thread_name_prefix="loglake-flush-read") as reader:
            try:
                while max_rounds is None or report.rounds < max_rounds:
                    if prefetched is not None:
                        rows, prefetched = prefetched.result(), None
                    else:
                        if after is None and committing is not None:  # a pass from the oldest id: the
                            self._settle(committing)  # previous delete must be in first
                            committing = None
                        rows = self._due(before_ms, after)
                    if rows is None:
                        if after is None:
                            break
                        after = None  # one more pass from the start: records that arrived late
                        continue
                    after = rows.last_id
                    if max_rounds is None or report.rounds + 1 < max_rounds:
                        prefetched = reader.submit(self._due, before_ms, after)
                    objects, committing = self._round(rows, committing)
                    report.records += rows.count
                    report.objects.extend(objects)
                    report.rounds += 1
                    if progress is not None:
                        progress(rows.count)
            finally:
                if committing is not None:
                    self._settle(committing)
        report.seconds = time.perf_counter() - started
        return report

    def _due(self, before_ms: int, after: tuple[int, int] | None) -> HotColumns | None:
        """The next round's rows (the oldest due, or the oldest due after the id `after`) as columns.

        SQLite hands them over as one JSON array per column (json_group_array), decoded by msgspec:
        about 40% less time than sqlite3 building a tuple per row, which was most of a flush."""
        sql, params = (_DUE, [before_ms << 16]) if after is None else (_DUE_AFTER, [*after, before_ms << 16])
        params.append(self.rows_per_round)
        (arrays,) = self.store.read(_AS_COLUMNS.format(rows=sql), params)
        columns = HotColumns([_json_array(a) for a in arrays])
        return columns if columns.count else None

    def _settle(self, committing: Future) -> None:
        committing.result()
        self.on_step("committed")

    def _round(self, rows: HotColumns, committing: Future | None) -> tuple[list[str], Future]:
        """Write and publish one round; returns its object keys and its commit, under way."""
        now_ms = int(self.clock() * 1000)
        work = Path(tempfile.mkdtemp(prefix="loglake-flush-"))
        try:
            table = hot_rows_table(rows.columns)
            millis = table.column("timestamp").cast(pa.int64())
            days = pc.divide(millis, DAY_MS)  # integer division: days since the epoch, UTC
            files = []
            for day_number in pc.unique(days).to_pylist():
                key = app_logs_key(day_of(day_number * DAY_MS), new_part_name(now_ms))
                files.append(write_part(table.filter(pc.equal(days, day_number)), key, work))
            self.on_step("written")
            if committing is not None:
                self._settle(committing)  # the previous round's commit, before this one's journal
            commit = publish(self.store, self.lake, work, files, now_ms, self.on_step, lambda c: _delete_rows(c, rows))
            return [f.key for f in files], commit
        finally:
            shutil.rmtree(work, ignore_errors=True)


# How lake files are written (measured on the 10M-record bench set, see bench/README.md):
# - one service per row group, at most 8Ki rows: a service's newest records sit in one, which is all
#   "recent logs" reads (16Ki doubles that read; 4Ki costs Q2 25% and Q3 50% in per-row-group work);
# - ZSTD level 1 when flushing (fast: level 8 on the ids tripled the write time), and when compaction
#   rewrites a day in the background, level 8 for the log ids (neighbours share long prefixes:
#   8.8 -> 5 MB per 1M records) and 9 for the text (messages 8% smaller);
# - the timestamps delta-encoded (sorted per service: 4.9 -> 1.6 MB per 1M), everything short and
#   repetitive dictionary-encoded, messages not (most are distinct).
# Plain Parquet 1.0 pages with PLAIN, RLE_DICTIONARY and DELTA_BINARY_PACKED: Athena/Trino, DuckDB
# and Spark >= 3.3 read them.
ROW_GROUP_ROWS = 8 * 1024
# (ZSTD level of the log ids, of the text columns): fast when flushing, small when compacting.
FLUSH_LEVELS = (1, 1)
COMPACT_LEVELS = (8, 9)


def parquet_writer(path: Path, levels: tuple[int, int] = FLUSH_LEVELS) -> pq.ParquetWriter:
    id_level, text_level = levels
    by_column = {name: text_level for name in APP_LOGS_TABLE.schema.names} | {"log_id": id_level, "timestamp": 1}
    return pq.ParquetWriter(
        path,
        APP_LOGS_TABLE.schema,
        compression="zstd",
        compression_level=by_column,
        use_dictionary=["service", "log_type", "severity", "attributes", "client_id"],
        column_encoding={"timestamp": "DELTA_BINARY_PACKED"},
    )


class ServiceRowGroups:
    """Writes rows sorted by (service, timestamp) so that each row group holds one service only (at most
    ROW_GROUP_ROWS of it): a service filter then skips every other row group by its statistics, and a
    row group's time span is that service's alone, which "recent logs" relies on to read one."""

    def __init__(self, writer: pq.ParquetWriter) -> None:
        self.writer = writer
        self.pending: list[pa.Table] = []
        self.pending_rows = 0
        self.service: str | None = None

    def add(self, table: pa.Table) -> None:
        services = table.column("service")
        changes = pc.indices_nonzero(pc.not_equal(services.slice(1), services.slice(0, len(services) - 1)))
        start = 0
        for end in [*(i + 1 for i in changes.to_pylist()), table.num_rows]:
            if end > start:
                self._add_run(table.slice(start, end - start), services[start].as_py())
            start = end

    def _add_run(self, run: pa.Table, service: str) -> None:
        if service != self.service:
            self.flush()
            self.service = service
        self.pending.append(run)
        self.pending_rows += run.num_rows
        if self.pending_rows >= ROW_GROUP_ROWS:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            self.writer.write_table(pa.concat_tables(self.pending), row_group_size=ROW_GROUP_ROWS)
            self.pending, self.pending_rows = [], 0


def write_part(table: pa.Table, key: str, work: Path) -> LakeFile:
    """One day's records as a Parquet object-to-be in `work`, sorted by (service, timestamp)."""
    table = table.sort_by([("service", "ascending"), ("timestamp", "ascending")])
    path = work / _file_name(key)
    with parquet_writer(path) as writer:
        groups = ServiceRowGroups(writer)
        groups.add(table)
        groups.flush()
    span = pc.min_max(table.column("timestamp").cast(pa.int64()))
    day = partitions_of(key)["date"]
    return LakeFile(
        key, APP_LOGS_TABLE.name, day, span["min"].as_py(), span["max"].as_py(), table.num_rows, path.stat().st_size
    )


def _delete_rows(conn: sqlite3.Connection, rows: HotColumns) -> None:
    """Delete exactly the rows a round read (they were the oldest due). Unless a late record arrived
    among them since, that is the whole id range from the first to the last: a range delete, about
    three times faster than deleting row by row, which is the fallback."""
    highs, lows, client_ids = rows.columns[0], rows.columns[1], rows.columns[8]
    remember = [(c, hi, lo) for hi, lo, c in zip(highs, lows, client_ids, strict=True) if c is not None]
    conn.executemany("INSERT OR IGNORE INTO flushed_client_ids (client_id, id_hi, id_lo) VALUES (?, ?, ?)", remember)
    bounds = (*rows.first_id, *rows.last_id)
    in_range = "(id_hi, id_lo) >= (?, ?) AND (id_hi, id_lo) <= (?, ?)"
    if conn.execute(f"SELECT count(*) FROM logs WHERE {in_range}", bounds).fetchone()[0] == rows.count:
        conn.execute(f"DELETE FROM logs WHERE {in_range}", bounds)
    else:
        conn.executemany("DELETE FROM logs WHERE id_hi = ? AND id_lo = ?", zip(highs, lows, strict=True))


class HotColumns:
    """A round's rows as columns (sqlite_rows.COLUMNS order), with the id range they span."""

    def __init__(self, columns: list[list]) -> None:
        self.columns = columns
        self.count = len(columns[0])
        if self.count:
            ids = list(zip(columns[0], columns[1], strict=True))
            self.first_id, self.last_id = min(ids), max(ids)


_json_array = msgspec.json.Decoder(list).decode


def publish(
    store: SQLiteHotStore,
    lake: ObjectStore,
    work: Path,
    files: list[LakeFile],
    now_ms: int,
    on_step: Step,
    finish: Callable[[sqlite3.Connection], object],
) -> Future:
    """Steps 2-4 for files written to `work`: journal, publish, then in one transaction `finish` (what
    the files replace: hot rows, or older lake files) + add them to the catalog + drop the journal.
    The commit is queued on the store's writer thread; the returned future says when it is done."""
    flush_id = store.run_in_writer(
        lambda conn: _journal(conn, [f.key for f in files], sum(f.records for f in files), now_ms)
    )
    on_step("journaled")
    for number, lake_file in enumerate(files, start=1):
        lake.put_file(lake_file.key, work / _file_name(lake_file.key))
        on_step(f"published {number}")

    def commit(conn: sqlite3.Connection) -> None:
        finish(conn)
        add_files(conn, files, now_ms)
        conn.execute("DELETE FROM flushes WHERE flush_id = ?", (flush_id,))

    return store.in_write_transaction(commit)


def _file_name(key: str) -> str:
    return key.rsplit("/", 1)[1]


def _journal(conn: sqlite3.Connection, objects: list[str], records: int, now_ms: int) -> int:
    cursor = conn.execute(
        "INSERT INTO flushes (started_ms, objects, records) VALUES (?, ?, ?)", (now_ms, json.dumps(objects), records)
    )
    return cursor.lastrowid
