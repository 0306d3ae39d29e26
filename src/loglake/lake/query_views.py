"""The views a query of the engine (query.py) reads: `logs` as the hot rows of one SQLite snapshot,
streamed in batches, UNION ALL the catalog's lake files of the same snapshot, and the other lake tables
over their files. A local lake is read by DuckDB's own Parquet reader, an S3 lake through a pyarrow
dataset that counts the files it opens (s3_dataset.py)."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from loglake.lake.file_columns import by_missing_columns
from loglake.lake.hot_rows import HotRowsStream
from loglake.lake.hot_top import HotTop
from loglake.lake.layout import partitions_of
from loglake.lake.manifest import LakeFile, list_files
from loglake.lake.objectstore import LocalObjectStore, ObjectStore, S3ObjectStore
from loglake.lake.query_answers import UNREADABLE_FILE
from loglake.lake.s3_dataset import CountedDataset, s3_dataset
from loglake.lake.tables import APP_LOGS_TABLE, LakeTable, partition_type, sql_type
from loglake.lake.verify import MISSING_FROM_STORAGE
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
        # A local lake's listed files that a query found gone from storage, or whose footer does not read (damaged
        # outside loglake), with why: DuckDB opens every file of a read_parquet list as the view is bound (and reads
        # the first one's footer), so one such file failed every SQL query, even one whose `date` filter leaves its
        # day out. The views read the others, and each of these through a stand-in (_unreadable_rows) that fails a
        # query naming it unless the query's filter on the partitions leaves it out. Looked at again at each
        # definition: a file restored is read again.
        self.unreadable: dict[str, str] = {}
        # Each connection's views' files read as files, not through a stand-in (find_unreadable).
        self._files: dict[duckdb.DuckDBPyConnection, list[LakeFile]] = {}
        self._searched: tuple[str, ...] = ()  # the files find_unreadable last found no footer damaged in

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
        for key in [key for key in list(self.unreadable) if self._footer_problem(key) is None]:
            self.unreadable.pop(key, None)  # (restored; list(): the query threads share the dict)
        unreadable = dict(self.unreadable)  # (one look: another query thread may add to it as this one defines)
        self._files[cursor] = [f for listed in files.values() for f in listed if f.key not in unreadable]
        defined = self._defined.setdefault(cursor, {})
        if APP_LOGS_TABLE in tables:
            self._define_hot_rows(cursor, snapshot, window, top, newest_first, defined)
        # The waiting bulk batches are in the view only while some wait in the window: an empty stream cost
        # each query about a millisecond, which a top-N over the lake notices.
        waiting = APP_LOGS_TABLE in tables and any_waiting(snapshot.read, window.since_ms, window.until_ms)
        for table in tables:
            readable = [f for f in files[table.name] if f.key not in unreadable]
            lost = [_unreadable_rows(table, f.key, unreadable[f.key]) for f in files[table.name] if f.key in unreadable]
            keys = tuple(f.key for f in readable) + tuple(lost)
            if table is APP_LOGS_TABLE and waiting:
                keys += (_WAITING_STREAM,)  # (no file's key)
            if defined.get(table.name) == keys:
                continue
            defined[table.name] = None  # until the view below is defined
            sources = [self._lake_source(cursor, table, readable)] if readable else []
            sources += [f"({rows})" for rows in lost]
            if table is APP_LOGS_TABLE:
                # The partition first in each branch: where a query needs no column of the union (count(*)
                # with a filter above it), DuckDB still reads the first one, and the date costs nothing in
                # Parquet (it is the folder) where a log id costs a string a record (Q2: 30 % more time).
                parts = [f'SELECT "date", {_COLUMNS} FROM {source}' for source in sources]
                parts += [f'SELECT "date", {_COLUMNS} FROM {_HOT_ROWS}'] + ([_ALL_WAITING_ROWS] if waiting else [])
                union = " UNION ALL ".join(parts)
                cursor.execute(f'CREATE OR REPLACE TEMP VIEW logs AS SELECT {_COLUMNS}, "date" FROM ({union})')
            else:
                if not sources:
                    sources = [f"_empty_{table.name}"]
                    cursor.register(sources[0], _dataset_schema(table).empty_table())
                names = ", ".join(f'"{name}"' for name in [*table.schema.names, *table.partitions])
                union = " UNION ALL ".join(f"SELECT {names} FROM {source}" for source in sources)
                cursor.execute(f'CREATE OR REPLACE TEMP VIEW "{table.name}" AS {union}')
            defined[table.name] = keys
        return files

    def find_unreadable(self, cursor: duckdb.DuckDBPyConnection, error: Exception) -> bool:
        """After a local lake's read failed with `error` (a query's, or a view's definition): whether it found a
        listed file of the cursor's views gone, or its footer damaged, that was not known yet (it is now, in
        `unreadable`: defined again, the views read around it). The file DuckDB's error names, else the first of
        the views' files whose footer does not read: DuckDB's errors for a damaged footer name no file."""
        if not isinstance(self.lake, LocalObjectStore) or UNREADABLE_FILE in str(error):
            return False
        files = self._files.get(cursor, [])  # (those its views read as files)
        if any(f.key in self.unreadable for f in files):
            return True  # another query found one of them since the views were defined: defined again, read around
        root = str(self.lake.root.resolve()) + "/"
        named = [f for f in files if root + f.key in str(error)]
        if not named and tuple(f.key for f in files) == self._searched:
            return False  # (their footers all read, the last time an error named none of them)
        for file in named or files:
            if (problem := self._footer_problem(file.key)) is not None:
                self.unreadable[file.key] = problem
                return True
        if not named:
            self._searched = tuple(f.key for f in files)
        return False

    def _footer_problem(self, key: str) -> str | None:
        """Why a local lake file's footer cannot be read (gone, or damaged), or None."""
        assert isinstance(self.lake, LocalObjectStore)
        path = self.lake.root / key
        try:
            if not stat.S_ISREG(path.stat().st_mode):  # (a FIFO, say: opening it would wait for a writer for good)
                return "not a file"
            pq.read_metadata(path)
        except FileNotFoundError:
            return MISSING_FROM_STORAGE
        except (OSError, ValueError) as e:  # (pyarrow: ArrowInvalid is a ValueError)
            return "damaged: " + (str(e).split("\n")[0] or type(e).__name__)
        return None

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


def _unreadable_rows(table: LakeTable, key: str, problem: str) -> str:
    """A SELECT standing for lake file `key`, which cannot be read (QueryViews.unreadable), in a table's view: one row
    of its partitions' values whose every column, and its WHERE, fail the query naming the file. A filter on the
    partitions alone (`date`) folds to false on its constants as DuckDB plans the query, which then never runs it;
    any other filter, or none, runs it (its records may be wanted): never a silent answer without them."""
    failure = f"error({sql_string(UNREADABLE_FILE + key + ': ' + problem)})"
    values = partitions_of(key)
    columns = [f'CAST({sql_string(values[p])} AS {sql_type(partition_type(p))}) AS "{p}"' for p in table.partitions]
    schema = _dataset_schema(table)
    columns += [f'CAST({failure} AS {sql_type(schema.field(n).type)}) AS "{n}"' for n in table.schema.names]
    return f"SELECT {', '.join(columns)} WHERE {failure}"


def _dataset_schema(table: LakeTable) -> pa.Schema:
    """A table's columns and partitions as SQL sees them. Timestamps read as microseconds, as DuckDB
    reads Parquet's (a pyarrow dataset would otherwise keep milliseconds: another SQL type)."""
    fields = [pa.field(f.name, pa.timestamp("us")) if f.type == pa.timestamp("ms") else f for f in table.schema]
    fields += [pa.field(p, partition_type(p)) for p in table.partitions]
    return pa.schema(fields)


def sql_string(text: str) -> str:
    """A SQL string literal (for what DuckDB takes no parameters for: file lists, paths in COPY)."""
    return "'" + text.replace("'", "''") + "'"
