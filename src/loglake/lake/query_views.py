"""The views a query of the engine (query.py) reads: `logs` as the hot rows of one SQLite snapshot,
streamed in batches, UNION ALL the catalog's lake files of the same snapshot, and the other lake tables
over their files. A local lake is read by DuckDB's own Parquet reader, an S3 lake through a pyarrow
dataset that counts the files it opens (s3_dataset.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa

from loglake.lake.file_columns import by_missing_columns
from loglake.lake.hot_rows import HotRowsStream
from loglake.lake.hot_top import HotTop
from loglake.lake.manifest import LakeFile, list_files
from loglake.lake.objectstore import LocalObjectStore, ObjectStore, S3ObjectStore
from loglake.lake.s3_dataset import CountedDataset, s3_dataset
from loglake.lake.tables import APP_LOGS_TABLE, LakeTable, partition_type, sql_type
from loglake.lake.waiting import WaitingStream, any_waiting
from loglake.store.sqlite_reads import Snapshot

if TYPE_CHECKING:
    from loglake.lake.query import TimeRange

# Hot rows reach DuckDB in batches of about this many bytes (as Python objects, then as Arrow).
HOT_BATCH_BYTES = 8 * 2**20
_HOT_STREAM = "_hot_stream"  # the hot rows as read from the store (HotRowsStream)
_HOT_ROWS = "_hot_logs"  # the view of them the `logs` view reads: all of them, or those a top-N can use
# The bulk batches waiting in hot.db (lake/waiting.py): few enough to be read whole, so never cut by a top-N
# (their rows come in no time order with the hot rows').
_WAITING_STREAM = "_waiting_stream"
_COLUMNS = ", ".join(f'"{c.name}"' for c in APP_LOGS_TABLE.columns)
# DuckDB reads Parquet TIMESTAMP(MILLIS) as TIMESTAMP and Arrow timestamp[ms] as TIMESTAMP_MS: one type for
# both, so `typeof` and arithmetic do not depend on where a record is.
_ALL_HOT_ROWS = (
    'SELECT CAST("timestamp" AS DATE) AS "date", '
    + _COLUMNS.replace('"timestamp"', 'CAST("timestamp" AS TIMESTAMP) AS "timestamp"')
    + f" FROM {_HOT_STREAM}"
)
_ALL_WAITING_ROWS = _ALL_HOT_ROWS.replace(_HOT_STREAM, _WAITING_STREAM)


class QueryViews:
    """Defines the tables' views on the engine's connections. What each connection was last given is
    kept, so a view is defined anew only when its files changed."""

    def __init__(self, lake: ObjectStore, waiting_folder: Path) -> None:
        self.lake = lake
        self.waiting_folder = waiting_folder  # the bulk batches waiting to be moved (lake/waiting.py)
        self._arrow_fs: Any = None  # made on first use: S3 lakes only
        self._s3_datasets: dict[duckdb.DuckDBPyConnection, CountedDataset] = {}  # each connection's latest
        # Per connection, the files each of its views was last defined with (define), and the SQL of
        # its view of the hot rows.
        self._defined: dict[duckdb.DuckDBPyConnection, dict[str, tuple[str, ...] | None]] = {}
        # Each connection's hot rows and waiting bulk batches, registered once.
        self._hot_rows: dict[duckdb.DuckDBPyConnection, tuple[QueryHotRows, QueryHotRows]] = {}

    def s3_files_read(self, cursor: duckdb.DuckDBPyConnection) -> tuple[int, int]:
        """The S3 lake files the connection's queries read so far and their bytes (DuckDB's profile counts
        none of them; the bytes are the files' sizes, see s3_dataset.py)."""
        dataset = self._s3_datasets.get(cursor)
        return (0, 0) if dataset is None else (dataset.files_read, dataset.bytes_read)

    def define(
        self,
        cursor: duckdb.DuckDBPyConnection,
        snapshot: Snapshot,
        window: TimeRange,
        tables: tuple[LakeTable, ...],
        top: HotTop | None = None,
        newest_first: bool = False,
    ) -> dict[str, list[LakeFile]]:
        """Define `tables` on this cursor from one SQLite snapshot of hot rows + catalog, each with
        the files of `window`: `logs` is the hot rows of `window`, read in batches while the query runs
        (newest first if asked; only those `top` can use, if given), the bulk batches waiting in hot.db
        (lake/waiting.py) and its lake files; the others
        (Amplify access logs) only files. A view is defined anew only when its files changed since this
        cursor last defined it: a definition costs a few milliseconds, which an aggregate over a million
        records notices. The hot rows are registered once per cursor too (QueryHotRows).
        Returns the files of each table."""
        files = {t.name: list_files(snapshot.read, t.name, window.since_ms, window.until_ms) for t in tables}
        defined = self._defined.setdefault(cursor, {})
        if APP_LOGS_TABLE in tables:
            self._define_hot_rows(cursor, snapshot, window, top, newest_first, defined)
        # The waiting bulk batches are in the view only while some wait in the window: an empty stream cost
        # each query about a millisecond, which a top-N over the lake notices.
        waiting = APP_LOGS_TABLE in tables and any_waiting(snapshot.read, window.since_ms, window.until_ms)
        for table in tables:
            keys = tuple(f.key for f in files[table.name])
            if table is APP_LOGS_TABLE and waiting:
                keys += (_WAITING_STREAM,)  # (no file's key)
            if defined.get(table.name) == keys:
                continue
            defined[table.name] = None  # until the view below is defined
            source = self._lake_source(cursor, table, files[table.name]) if files[table.name] else None
            if table is APP_LOGS_TABLE:
                # The partition first in each branch: where a query needs no column of the union (count(*)
                # with a filter above it), DuckDB still reads the first one, and the date costs nothing in
                # Parquet (it is the folder) where a log id costs a string a record (Q2: 30 % more time).
                parts = [f'SELECT "date", {_COLUMNS} FROM {_HOT_ROWS}'] + ([_ALL_WAITING_ROWS] if waiting else [])
                if source is not None:
                    parts.insert(0, f'SELECT "date", {_COLUMNS} FROM {source}')
                union = " UNION ALL ".join(parts)
                cursor.execute(f'CREATE OR REPLACE TEMP VIEW logs AS SELECT {_COLUMNS}, "date" FROM ({union})')
            else:
                if source is None:
                    source = f"_empty_{table.name}"
                    cursor.register(source, _dataset_schema(table).empty_table())
                names = ", ".join(f'"{name}"' for name in [*table.schema.names, *table.partitions])
                cursor.execute(f'CREATE OR REPLACE TEMP VIEW "{table.name}" AS SELECT {names} FROM {source}')
            defined[table.name] = keys
        return files

    def _define_hot_rows(
        self,
        cursor: duckdb.DuckDBPyConnection,
        snapshot: Snapshot,
        window: TimeRange,
        top: HotTop | None,
        newest_first: bool,
        defined: dict[str, tuple[str, ...] | None],
    ) -> None:
        """Register the hot rows of `window` as a stream, and define the view `logs` reads them through:
        the first a top-N (`top`) can use, in its time order, else all of them, oldest first or newest first
        (the view is defined anew when it changes). A predicate of the query's that cannot be bound (the
        query's own error) gets all rows: the query then fails with its error as usual."""
        if top is not None:
            newest_first = top.newest_first
        # Only a LIMIT over the stream needs each batch's rows in order: a sort puts them in its own.
        time_order = None if top is None else "descending" if newest_first else "ascending"

        def batches() -> Iterator[list[list]]:
            return snapshot.column_batches(window.since_ms, window.until_ms, HOT_BATCH_BYTES, newest_first)

        registered = self._hot_rows.get(cursor)
        if registered is None:
            registered = self._hot_rows[cursor] = (QueryHotRows(), QueryHotRows())
            cursor.register(_HOT_STREAM, registered[0])
            cursor.register(_WAITING_STREAM, registered[1])
        hot_rows, waiting_rows = registered
        hot_rows.stream = HotRowsStream(batches, time_order=time_order)
        waiting_rows.stream = WaitingStream(snapshot.read, self.waiting_folder, window.since_ms, window.until_ms)
        view = top.view(_ALL_HOT_ROWS) if top is not None else _ALL_HOT_ROWS
        if defined.get(_HOT_ROWS) == (view,):
            return
        defined[_HOT_ROWS] = None  # until the view below is defined
        try:
            cursor.execute(f"CREATE OR REPLACE TEMP VIEW {_HOT_ROWS} AS {view}")
        except duckdb.Error:
            if top is None:
                raise
            view = _ALL_HOT_ROWS
            cursor.execute(f"CREATE OR REPLACE TEMP VIEW {_HOT_ROWS} AS {view}")
        defined[_HOT_ROWS] = (view,)

    def _lake_source(self, cursor: duckdb.DuckDBPyConnection, table: LakeTable, files: list[LakeFile]) -> str:
        """A table's lake part over `files` (at least one): DuckDB's own Parquet reader on a local lake
        (it prunes by the partition folders and row-group statistics and counts the bytes it reads); on
        S3, a pyarrow dataset over the same objects, to which DuckDB pushes its filters and projections
        (s3_dataset.py)."""
        schema = _dataset_schema(table)
        if isinstance(self.lake, LocalObjectStore):
            root = self.lake.root.resolve()
            types = ", ".join(f"{sql_string(p)}: {sql_type(partition_type(p))}" for p in table.partitions)
            reads = []  # files written before a column was added lack it: read apart, with nulls (file_columns.py)
            for missing, group in by_missing_columns(table, [str(root / f.key) for f in files]).items():
                paths = ", ".join(map(sql_string, group))
                read = f"read_parquet([{paths}], hive_partitioning = true, hive_types = {{{types}}})"
                if missing:
                    nulls = "".join(f', CAST(NULL AS {sql_type(schema.field(n).type)}) AS "{n}"' for n in missing)
                    read = f"(SELECT *{nulls} FROM {read})"
                reads.append(read)
            if len(reads) == 1:
                return reads[0]
            return "(" + " UNION ALL BY NAME ".join(f"SELECT * FROM {read}" for read in reads) + ")"
        assert isinstance(self.lake, S3ObjectStore)
        if self._arrow_fs is None:
            self._arrow_fs = self.lake.arrow_filesystem()
        dataset = s3_dataset(
            self._arrow_fs,
            {self.lake.arrow_path(f.key): f.bytes for f in files},
            schema,
            table.partitions,
            self.lake.arrow_path(f"type={table.directory}"),
        )
        self._s3_datasets[cursor] = dataset
        cursor.register(f"_lake_{table.name}", dataset)
        return f"_lake_{table.name}"


class QueryHotRows:
    """The hot rows of the query a connection runs, registered with DuckDB once per connection: a
    registration changes DuckDB's catalog, which cost each query 0.5-1 ms (more than DuckDB's own work in
    a query over `logs` that reads nothing). Each query sets `stream` (of its own snapshot) before it
    runs, and DuckDB asks for a new stream at each scan (hot_rows.HotRowsStream, or waiting.WaitingStream
    for the bulk batches waiting in hot.db); before the first query, DuckDB asks only for the schema."""

    def __init__(self) -> None:
        self.stream: HotRowsStream | WaitingStream | None = None

    def __arrow_c_stream__(self, requested_schema: object = None) -> object:
        if self.stream is None:
            return APP_LOGS_TABLE.schema.empty_table().__arrow_c_stream__(requested_schema)
        return self.stream.__arrow_c_stream__(requested_schema)


def _dataset_schema(table: LakeTable) -> pa.Schema:
    """A table's columns and partitions as SQL sees them. Timestamps read as microseconds, as DuckDB
    reads Parquet's (a pyarrow dataset would otherwise keep milliseconds: another SQL type)."""
    fields = [pa.field(f.name, pa.timestamp("us")) if f.type == pa.timestamp("ms") else f for f in table.schema]
    fields += [pa.field(p, partition_type(p)) for p in table.partitions]
    return pa.schema(fields)


def sql_string(text: str) -> str:
    """A SQL string literal (for what DuckDB takes no parameters for: file lists, paths in COPY)."""
    return "'" + text.replace("'", "''") + "'"
