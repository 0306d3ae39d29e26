"""One SQL over everything: DuckDB over the hot store and the lake's Parquet objects, read-only.

Each query gets the table `logs`: the hot rows and the catalog's lake files read from ONE SQLite
snapshot (so a flush committing meanwhile shows no record twice and loses none), joined with UNION ALL.
The hot rows are read in batches as DuckDB scans them, so a query's memory does not grow with them; a
top-N by time reads them newest first and only as many as it can use (hot_top.py), so neither does its time.
The lake part is `read_parquet` over the catalog's file list with Hive partitioning, so a predicate on
`date` skips whole files and one on `timestamp` skips row groups by their statistics.

Users' queries also see the engine's live tables (the alerts of alerts.db): read from their own
database at each scan, never copied into the lake.

The sandbox, in layers:
- only one statement, and it must be a SELECT (WITH ... SELECT parses as one);
- DuckDB's own file access is switched off except the lake folder (`allowed_directories` +
  `enable_external_access=false`), extensions cannot be installed or loaded, and the configuration
  is then locked, so a query cannot SET its way out;
- every query runs with a timeout (DuckDB's interrupt) and returns at most a row cap and an answer
  size cap; it runs on a bounded number of threads, in bounded memory, and spills to a bounded part
  of the data dir's disk (never the space the hot store needs to take records).
Settings cannot change after the lock, so the few connections the engine uses are opened (and
their profiling turned on, for bytes scanned) before it; queries borrow one from a pool, which also
bounds how many run at once.
"""

from __future__ import annotations

import contextlib
import json
import queue
import re
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import pyarrow as pa

from loglake.lake.answer_values import answer_value, needs_answering
from loglake.lake.arrow_answers import fetch_arrow_within
from loglake.lake.hot_top import HotTop, hot_top
from loglake.lake.manifest import LakeFile, reading
from loglake.lake.objectstore import LocalObjectStore, ObjectStore, S3ObjectStore
from loglake.lake.query_answers import UNREADABLE_FILE, LakeUnreadable, QueryBusy, QueryResult, fetch_within
from loglake.lake.query_limits import QueryLimits, default_spill_mb
from loglake.lake.query_views import QueryViews
from loglake.lake.schema import LAKE_SCHEMA
from loglake.lake.scratch import folder_of_this_process
from loglake.lake.sql_guard import QueryError, checked_select, client_error, nested_too_deep
from loglake.lake.stop import Stop
from loglake.lake.tables import APP_LOGS_TABLE, TABLES, LakeTable, LiveTable
from loglake.lake.waiting import waiting_dir
from loglake.lake.watchdog import QueryWatchdog
from loglake.private_files import private_dir
from loglake.store.sqlite import SQLiteHotStore

INTERNAL_CONNECTIONS = 2
# Rows of a result with nested values read as one Arrow batch (_fetch_nested): DuckDB's vector, which it holds
# anyway. Each batch is one more relation to make its rows Python, ~0.15 ms: 10,000 rows of short lists took
# 1.6 s in batches of 4, 124 ms in batches of 64, 32 ms in these (12 ms as flat rows are fetched).
ARROW_BATCH_ROWS = 2048
# A DuckDB value past what Python holds, met as the rows are fetched (OverflowError): the SQL's, not the server's.
VALUE_OUT_OF_RANGE = (
    "a value of the answer is too large to be given (an INTERVAL of more than 999,999,999 days, or of more months"
    " than 32 bits hold): give it as text (CAST(... AS VARCHAR))"
)
# What DuckDB adds to the error of an Arrow stream whose Python code raised: that code's traceback.
_PYTHON_DETAIL = ". Detail: Python exception"
# DuckDB's error when the Arrow stream of a lake read through pyarrow (an S3 lake's files) fails with an I/O error
# (a storage that is down or slow) or finds an object that is no Parquet file (`Invalid`: one cut short), which a
# 400 (query_failed) blamed on the query.
_ARROW_READ_FAILED = re.compile(r"reading the stream registered as .* failed: (IOError|OSError|Invalid)")
# DuckDB's errors for a local lake file damaged outside loglake: Thrift's, decoding a page header overwritten
# (they name no file), and DuckDB's own naming the file (cut short, pages that do not decompress). A user's SQL
# reads no other file (external access is off), so they are the lake's, not the query's.
_PAGE_HEADER_DAMAGED = re.compile(r"(TProtocolException|don't know what type|Out of buffer)")


@dataclass(frozen=True)
class TimeRange:
    """Optional bounds (epoch ms, until exclusive) the engine's own callers know in advance: they
    narrow what is read from the hot store and which lake days are listed."""

    since_ms: int | None = None
    until_ms: int | None = None


class QueryEngine:
    def __init__(
        self,
        store: SQLiteHotStore,
        lake: ObjectStore,
        work_dir: Path,
        limits: QueryLimits | None = None,
        live_tables: Iterable[LiveTable] = (),
    ) -> None:
        store.use_schema(LAKE_SCHEMA)
        self.store = store
        self.lake = lake
        self.limits = limits or QueryLimits()
        self.live_tables = tuple(live_tables)
        # What users' queries may read (the sandbox's list): the lake's tables and the live ones.
        self.table_names = (*TABLES, *(t.name for t in self.live_tables))
        private_dir(work_dir)
        # DuckDB would spill up to 90 % of the free disk: the space the hot store needs to take records.
        self.spill_mb = self.limits.spill_mb or default_spill_mb(work_dir)
        config: dict[str, Any] = {
            "memory_limit": f"{self.limits.memory_mb}MiB",
            "threads": self.limits.threads,
            "temp_directory": str(folder_of_this_process(work_dir)),
            "max_temp_directory_size": f"{self.spill_mb}MiB",
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            "python_enable_replacements": False,  # a table name never reaches for a Python variable
            # What a big query freed goes back to the system within seconds: without jemalloc's background
            # threads, DuckDB's allocator kept it (a refused 3 GB query left the server at 1.2 GiB for good).
            "allocator_background_threads": True,
            # DuckDB's own types stay themselves through Arrow (a UUID, a HUGEINT, a BIT): _fetch_nested's rows
            # come back from Arrow as the values DuckDB gives Python.
            "arrow_lossless_conversion": True,
        }
        self._db = duckdb.connect(config=config)
        # Server paths in DuckDB's errors and plans (the lake's files, the spill folder) shown without
        # the folders they are in: lake files by their keys, as the catalog names them.
        self._server_paths = [(str(work_dir.resolve()), "tmp/duckdb")]
        if isinstance(lake, LocalObjectStore):
            self._server_paths.insert(0, (str(lake.root.resolve()) + "/", ""))
        elif isinstance(lake, S3ObjectStore):  # (pyarrow's errors name an object as bucket/prefix/key)
            self._server_paths.insert(0, (f"{lake.bucket}/{lake.prefix}type=", "type="))
        self._views = QueryViews(lake, waiting_dir(store.path.parent))
        self._watchdog = QueryWatchdog("loglake-query-timeout")
        # Users' SQL and the server's own reads (search, histogram, a flushed record) draw on separate
        # connections, so a slow user query never holds up the API's reads.
        self._pool = self._connections(self.limits.concurrency, self.live_tables)
        self._internal_pool = self._connections(INTERNAL_CONNECTIONS)
        readable = [str(lake.root.resolve())] if isinstance(lake, LocalObjectStore) else []
        self._db.execute("SET allowed_directories = $dirs", {"dirs": readable})
        self._db.execute("SET enable_external_access = false")
        # GLOBAL: a plain SET is the session's, and the queries run on cursors (other sessions), which then
        # read every footer again at each query (the 10M set's 64 files: 4.8 MB a query).
        self._db.execute("SET GLOBAL parquet_metadata_cache = true")  # lake files never change once published
        self._db.execute("SET lock_configuration = true")

    # -- public ---------------------------------------------------------------------------------

    def query(
        self,
        sql: str,
        *,
        limit: int | None = None,
        timeout_seconds: float | None = None,
        explain: bool = False,
        stop: Stop | None = None,
        checked: tuple[dict, str] | None = None,
    ) -> QueryResult:
        """Run one read-only SELECT over `logs` (and the other lake and live tables); fetch at most `limit`
        rows. Told to stop (`stop`), it is interrupted and raises Stopped. `checked`: checked_select's answer
        for `sql`, when the caller has it already."""
        tree, sql = checked or checked_select(sql, self.table_names)
        cap = self.limits.rows_for(limit)
        timeout = self.limits.seconds_for(timeout_seconds)
        top = hot_top(tree, cap)
        text = f"EXPLAIN ANALYZE {sql}" if explain else sql
        max_bytes = self.limits.max_response_mb * 1024 * 1024
        tables = tuple(TABLES.values())
        return self._run(
            self._pool,
            text,
            cap,
            timeout,
            TimeRange(),
            tables,
            explain=explain,
            max_bytes=max_bytes,
            top=top,
            stop=stop,
        )

    def plan(self, sql: str) -> tuple[list[dict[str, Any]], dict[str, list[LakeFile]]]:
        """DuckDB's plan of a user's query (EXPLAIN, nothing runs), with the views `query` defines, and
        the catalog's files of each lake table it was planned over (the same snapshot)."""
        sql = checked_select(sql, self.table_names)[1]  # as `query` runs it
        rows, files = _around_unreadable(lambda: self._plan_once(sql))
        try:
            return json.loads(rows[0][1]), files
        except RecursionError:  # a plan of hundreds of operators inside one another
            raise nested_too_deep() from None

    def _plan_once(self, sql: str) -> tuple[list[tuple], dict[str, list[LakeFile]]]:
        with (
            self._cursor(self._pool, self.limits.timeout_seconds) as cursor,
            reading(self.store),
            self.store.snapshot() as snapshot,
        ):
            tables = tuple(TABLES.values())
            try:
                files = self._views.define(cursor, snapshot, TimeRange(), tables)
                return cursor.execute(f"EXPLAIN (FORMAT json) {sql}").fetchall(), files
            except (duckdb.IOException, OSError) as e:  # a listed lake file gone or damaged, as in _run_once
                raise self._unreadable(e, cursor) from None
            except duckdb.Error as e:
                if self._damaged_lake_file(e):
                    raise self._unreadable(e, cursor) from None
                error = client_error(e)
                raise QueryError(error.code, self._hide_server_paths(error.message)) from None

    def run_internal(
        self,
        sql: str,
        params: list[Any] | dict[str, Any],
        window: TimeRange,
        cap: int,
        tables: tuple[LakeTable, ...] = (APP_LOGS_TABLE,),
        newest_first: bool = False,
        stop: Stop | None = None,
    ) -> QueryResult:
        """A query the server itself wrote for its own reads (search, histogram, a record by id), with
        parameters, over `tables` (only those are defined), on connections users' SQL never holds.
        `newest_first` streams the hot rows newest first, for a query sorted that way: its top-N then
        keeps the first rows that match, and no later (older) row enters it, however many are hot.
        `stop` as for `query`."""
        timeout = self.limits.timeout_seconds
        return self._run(
            self._internal_pool, sql, cap, timeout, window, tables, params=params, newest_first=newest_first, stop=stop
        )

    def run_saved(
        self,
        sql: str,
        params: dict[str, Any],
        window: TimeRange,
        cap: int,
        tables: tuple[LakeTable, ...],
        stop: Stop | None = None,
    ) -> QueryResult:
        """A saved query a user asked for (an Amplify report, a rule), with parameters like run_internal,
        but on the users' query connections: long reports wait their turn with users' SQL and never take
        the connections search and lookups need. `stop` as for `query`; past its budget, OutOfTime."""
        timeout = self.limits.timeout_seconds
        return self._run(self._pool, sql, cap, timeout, window, tables, params=params, stop=stop)

    def close(self) -> None:
        self._watchdog.close()
        for pool in (self._pool, self._internal_pool):
            while not pool.empty():
                pool.get_nowait().close()
        self._db.close()

    # -- internals ------------------------------------------------------------------------------

    def _connections(
        self, count: int, live_tables: tuple[LiveTable, ...] = ()
    ) -> queue.Queue[duckdb.DuckDBPyConnection]:
        """`count` connections, each with `live_tables` (once: each scan reads them afresh)."""
        pool: queue.Queue[duckdb.DuckDBPyConnection] = queue.Queue()
        for _ in range(count):
            cursor = self._db.cursor()
            cursor.execute("PRAGMA enable_profiling = 'no_output'")
            for table in live_tables:
                cursor.register(table.name, LiveRows(table))
            pool.put(cursor)
        return pool

    @contextmanager
    def _cursor(self, pool: queue.Queue, timeout: float) -> Iterator[duckdb.DuckDBPyConnection]:
        try:
            cursor = pool.get(timeout=timeout)
        except queue.Empty:
            raise QueryBusy(f"every query connection stayed busy for {timeout:g} s") from None
        try:
            yield cursor
        finally:
            with contextlib.suppress(duckdb.Error):
                cursor.abort()  # drop rows past the cap or a failed result: the next query needs it idle
            pool.put(cursor)

    def _run(self, *args: Any, **kwargs: Any) -> QueryResult:
        return _around_unreadable(lambda: self._run_once(*args, **kwargs))

    def _run_once(
        self,
        pool: queue.Queue,
        sql: str,
        cap: int,
        timeout: float,
        window: TimeRange,
        tables: tuple[LakeTable, ...],
        *,
        params: list[Any] | dict[str, Any] | None = None,
        explain: bool = False,
        max_bytes: int | None = None,
        top: HotTop | None = None,
        newest_first: bool = False,
        stop: Stop | None = None,
    ) -> QueryResult:
        started = time.perf_counter()
        deadline = started + timeout
        if stop is not None:
            stop.check()
            if stop.deadline is not None:
                deadline = min(deadline, stop.deadline)
        # The snapshot lasts until the answer is fetched: DuckDB reads hot rows as it goes (HotRowsStream).
        with self._cursor(pool, timeout) as cursor, reading(self.store), self.store.snapshot() as snapshot:
            try:
                self._views.define(cursor, snapshot, window, tables, top, newest_first)
            except (duckdb.Error, OSError) as e:  # DuckDB reads a local file's schema here; pyarrow lists S3's
                raise self._unreadable(e, cursor) from None  # (only loglake's SQL runs here: not the query's fault)
            s3_before = self._views.s3_files_read(cursor)
            with (
                self._watchdog.watching(cursor, deadline) as interrupt,
                contextlib.nullcontext() if stop is None else stop.watched_by(interrupt),
            ):
                try:
                    result = cursor.execute(sql, params) if params else cursor.execute(sql)
                    columns = [(d[0], type_name(d[1])) for d in (result.description or [])]
                    rows = result.fetchall() if explain else self._fetch(cursor, result, sql, params, cap, max_bytes)
                except duckdb.InterruptException:
                    if stop is not None:
                        stop.check()  # Stopped or OutOfTime, when that is why it was interrupted
                    raise QueryError(
                        "query_timeout",
                        f"the query ran longer than {timeout:g} s and was stopped; narrow it (a date or timestamp "
                        f"range reads fewer files), or allow more time (timeout_seconds / --timeout, at most the "
                        f"server's query_timeout_seconds, {self.limits.timeout_seconds:g} s)",
                    ) from None
                except duckdb.OutOfMemoryException as e:
                    raise self._too_large(e) from None
                except OverflowError:  # DuckDB's value past what Python holds, met as its rows are fetched
                    raise QueryError("value_out_of_range", VALUE_OUT_OF_RANGE) from None
                except duckdb.IOException as e:  # the users' SQL reaches no files but the lake's (no external access)
                    raise self._unreadable(e, cursor) from None
                except duckdb.Error as e:
                    if _ARROW_READ_FAILED.search(str(e)) or self._damaged_lake_file(e):  # storage, not SQL
                        raise self._unreadable(e, cursor) from None
                    error = client_error(e)
                    raise QueryError(error.code, self._hide_server_paths(error.message)) from None
            try:
                profile = json.loads(cursor.get_profiling_information(format="json") or "{}")
            except RecursionError:  # a plan of hundreds of operators inside one another (WITH clauses)
                raise nested_too_deep() from None
            s3_after = self._views.s3_files_read(cursor)
        elapsed_ms = (time.perf_counter() - started) * 1000
        s3_files, s3_bytes = (after - before for after, before in zip(s3_after, s3_before, strict=True))
        bytes_scanned = s3_bytes + int(profile.get("io", {}).get("total_bytes_read", 0))
        files = s3_files + sum(_files_read(op) for op in profile.get("operator", []))
        if explain:
            plan = self._hide_server_paths("\n".join(str(row[-1]) for row in rows), keep_width=True)
            return QueryResult([], [], False, elapsed_ms, bytes_scanned, files, plan=plan)
        scanned_rows = int(profile.get("query", {}).get("total_rows_scanned", 0))
        scanned_rows += sum(_arrow_rows(op) for op in profile.get("operator", []))
        return QueryResult(
            columns, rows[:cap], len(rows) > cap, elapsed_ms, bytes_scanned, files, rows_scanned=scanned_rows
        )

    def _fetch(
        self,
        cursor: duckdb.DuckDBPyConnection,
        result: duckdb.DuckDBPyConnection,
        sql: str,
        params: list[Any] | dict[str, Any] | None,
        cap: int,
        max_bytes: int | None,
    ) -> list[tuple]:
        """The rows of a query's result, none fetched yet: within max_bytes of answer when given (else cap + 1
        rows), nested values as _fetch_nested fetches them; run again, once, with its INTERVAL columns as text
        when it has some (_columns_as_text). A user's answer (max_bytes given) also has its TIMESTAMP_NS and
        TIME_NS columns read as text (Python's times stop at microseconds), and its dates and times that Python
        cannot hold as their answer's text (answer_value)."""
        description = result.description or []
        as_text = _columns_as_text(sql, description, _TEXT_KINDS if max_bytes is None else _ANSWER_TEXT_KINDS)
        if max_bytes is not None and any(_is_nested(d[1]) for d in description):
            rows = self._fetch_nested(cursor, as_text or sql, params, cap, max_bytes)  # (which runs it again)
        else:
            if as_text is not None:
                cursor.abort()
                result = cursor.execute(as_text, params) if params else cursor.execute(as_text)
            if max_bytes is None:
                return result.fetchmany(cap + 1)
            rows = fetch_within(result, cap, max_bytes)
        kinds = [d[1] if needs_answering(d[1]) else None for d in description]
        if not any(kinds):
            return rows
        return [tuple(v if k is None else answer_value(v, k) for v, k in zip(row, kinds, strict=False)) for row in rows]

    def _fetch_nested(
        self,
        cursor: duckdb.DuckDBPyConnection,
        sql: str,
        params: list[Any] | dict[str, Any] | None,
        cap: int,
        max_bytes: int,
    ) -> list[tuple]:
        """fetch_arrow_within of a result with nested values. Its rows must come as Arrow batches, which DuckDB's
        DB-API result makes of every row at once: the result is dropped before any row of it was fetched and the
        query run again as a relation, whose rows stream as Arrow (a query whose first chunk took long, such as
        a big aggregate, takes that long twice: the price of rows that may each hold millions of values). Each
        slice is made Python rows by DuckDB again, on a connection of its own: with arrow_lossless_conversion
        they are the values fetchmany gives."""
        cursor.abort()
        relation = cursor.sql(sql, params=params).limit(cap + 1)
        converter = self._db.cursor()
        try:
            try:
                batches = relation.to_arrow_reader(ARROW_BATCH_ROWS)
            except pa.ArrowInvalid as e:
                if "Recursion level" not in str(e):
                    raise
                raise nested_too_deep() from None  # Arrow's types nest at most 64 deep
            return fetch_arrow_within(batches, lambda batch: converter.from_arrow(batch).fetchall(), cap, max_bytes)
        finally:
            converter.close()

    def _unreadable(self, error: Exception, cursor: duckdb.DuckDBPyConnection) -> LakeUnreadable | _FoundUnreadable:
        """A lake file the catalog listed could not be read: removed or damaged outside loglake, or the storage
        failed. Not the query's fault: 503 naming it, unless it is one the views can now read around (_run)."""
        if self._views.find_unreadable(cursor, error):
            return _FoundUnreadable()
        text = str(error).split("\n\nLINE")[0]
        if UNREADABLE_FILE in text:  # (the views' stand-in for a file known to be unreadable: it says which)
            text = text.split(UNREADABLE_FILE, 1)[1]
        text = text.split(_PYTHON_DETAIL, 1)[0]  # (a stream's error, a waiting batch's: no traceback for the user)
        return LakeUnreadable(self._hide_server_paths(text))

    def _damaged_lake_file(self, error: duckdb.Error) -> bool:
        text = str(error)
        names_a_lake_file = isinstance(error, duckdb.InvalidInputException) and any(
            path in text for path, shown in self._server_paths if shown == ""
        )
        return names_a_lake_file or _PAGE_HEADER_DAMAGED.match(text) is not None or UNREADABLE_FILE in text

    def _too_large(self, error: duckdb.OutOfMemoryException) -> QueryError:
        """The query needed more memory, and then more spill space, than the server allows. DuckDB's
        own advice (SET memory_limit, threads, ...) is for its operator, not for the query's author."""
        if "max_temp_directory_size" in str(error):
            needed = f"more disk to spill to than the {self.spill_mb:,} MiB the server allows (query_spill_mb)"
        else:
            needed = f"more than the {self.limits.memory_mb:,} MiB of memory the server allows (query_memory_mb)"
        return QueryError(
            "query_too_large",
            f"the query needed {needed}, shared by the queries running at once; narrow it (a date or "
            "timestamp range), aggregate before sorting or joining, select fewer columns, or retry later",
        )

    def _hide_server_paths(self, text: str, *, keep_width: bool = False) -> str:
        """`text` with the engine's folders left out (lake files by their keys); with `keep_width`,
        each path keeps its width (padded after it), so the boxes of a plan stay aligned."""
        for path, shown in self._server_paths:
            if keep_width:
                pad = " " * (len(path) - len(shown))
                text = re.sub(re.escape(path) + r"(\S*)", lambda m, s=shown, p=pad: s + m.group(1) + p, text)
            else:
                text = text.replace(path, shown)
        return text


T = TypeVar("T")


class _FoundUnreadable(Exception):
    """A query met a lake file that cannot be read, which the views now read around: run it again."""


def _around_unreadable(attempt: Callable[[], T]) -> T:
    """`attempt` (a query's run or plan), again each time it found a lake file that cannot be read
    (QueryViews.find_unreadable): the views then read around it, and a query whose filter leaves its day out
    answers. (Each such file is found once: the attempts end.)"""
    while True:
        try:
            return attempt()
        except _FoundUnreadable:
            continue


class LiveRows:
    """A live table for DuckDB as an Arrow stream (the PyCapsule stream protocol): each scan asks for a
    new stream, which reads the table's source afresh. Asking for the schema alone reads nothing."""

    def __init__(self, table: LiveTable) -> None:
        self._table = table

    def __arrow_c_stream__(self, requested_schema: object = None) -> object:
        reader = pa.RecordBatchReader.from_batches(self._table.schema, self._table.batches())
        return reader.__arrow_c_stream__(requested_schema)


def _arrow_rows(operator: dict) -> int:
    """The rows Arrow scans (hot rows, live tables, an S3 lake's dataset) gave the query: DuckDB counts
    only its own scans' in `total_rows_scanned`."""
    own = int(operator.get("intermediate_rows", 0)) if "ARROW_SCAN" in operator.get("name", "") else 0
    return own + sum(_arrow_rows(child) for child in operator.get("children", []))


def _files_read(operator: dict) -> int:
    own = int(operator.get("extra_info", {}).get("Total Files Read", 0) or 0)
    return own + sum(_files_read(child) for child in operator.get("children", []))


# The columns _columns_as_text reads as text: DuckDB gives Python an interval as a timedelta, a month as 30 days,
# which then read `30 days, 0:00:00`; and, in a user's answer, a TIMESTAMP_NS or TIME_NS as a datetime or time,
# which hold microseconds (answer_values.answer_value writes a TIMESTAMP_NS's text as ISO-8601).
_TEXT_KINDS = frozenset({"interval"})
_ANSWER_TEXT_KINDS = _TEXT_KINDS | {"timestamp_ns", "time_ns"}


def _columns_as_text(sql: str, description: list[tuple], kinds: frozenset[str]) -> str | None:
    """The query again with its columns of `kinds` as DuckDB's text of them ('1 month 2 days', '-01:30:00'), when
    it has some (None otherwise, or when two columns share a name). Run again, a query whose first chunk took long
    (an aggregate) takes that long twice; a column's type stays what it is in the answer, as Trino's text of an
    INTERVAL."""
    names = [d[0] for d in description]
    chosen = [name for name, kind, *_ in description if kind.id in kinds]
    if not chosen or len(set(names)) != len(names):
        return None
    quoted = ['"' + name.replace('"', '""') + '"' for name in chosen]
    replaced = ", ".join(f"CAST({name} AS VARCHAR) AS {name}" for name in quoted)
    return f"SELECT * REPLACE ({replaced}) FROM (\n{sql}\n) AS answer"  # (newlines: a trailing -- comment ends)


def _is_nested(duckdb_type: duckdb.DuckDBPyType) -> bool:
    """Whether a result column's values may each hold many (see fetch_arrow_within)."""
    return duckdb_type.id in ("list", "array", "struct", "map", "union")


def type_name(duckdb_type: object) -> str:
    """A result column's SQL type as a person reads it: DuckDB writes the type of a bare NULL as the
    quoted identifier `"NULL"` (also inside others: `"NULL"[]`); quoted struct field names stay."""
    return str(duckdb_type).replace('"NULL"', "NULL")
