"""Search, histogram and lookup by id on AWS: the service's RecordSearch as Athena SQL over the lake.

On AWS every record reaches the lake through the table's stream (aws/stream_flush.py) within the
stream's batching window, so the lake's `logs` table alone answers search; the DynamoDB hot store
still answers recent logs and ids first. One query per call (each Athena query costs a second or
more and is billed by bytes read), bounded by the `date` partitions of its window so Athena reads
only those days. The SQL is Trino's dialect; the tests run the very same text on DuckDB.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime

from loglake.aws.athena import AthenaQueryEngine
from loglake.ids import format_uuid, timestamp_of
from loglake.lake import reads as lake_reads
from loglake.lake.json_arrays import TRINO_JSON_TEXT
from loglake.lake.layout import day_of
from loglake.lake.query_views import sql_string
from loglake.lake.search_terms import Condition, Term, condition_sql, number_of
from loglake.lake.sql_guard import case_insensitive_regex
from loglake.lake.stop import Stop
from loglake.lake.tables import APP_LOGS_TABLE
from loglake.model import SEVERITY_NAMES, StoredRecord
from loglake.store.base import RecentQuery

# Milliseconds since the epoch in both Trino and DuckDB (Trino's to_unixtime has no DuckDB twin).
_EPOCH_MS = """date_diff('millisecond', TIMESTAMP '1970-01-01 00:00:00', "timestamp")"""
_RECORD_COLUMNS = (
    f"log_id, {_EPOCH_MS} AS ts, service, log_type, severity, message, attributes, client_id, trace_id, span_id"
)


class AthenaSearch:
    def __init__(self, engine: AthenaQueryEngine, table: str = APP_LOGS_TABLE.name) -> None:
        self.engine = engine
        self.table = table

    # Told to stop (`stop`: the client went away, the server is stopping), the query is cancelled in Athena
    # (AthenaQueryEngine.query), so nobody pays for the bytes of a search nobody reads.
    def search(
        self, query: RecentQuery, conditions: Sequence[Condition], stop: Stop | None = None
    ) -> list[StoredRecord]:
        sql = (
            f"SELECT {_RECORD_COLUMNS} FROM {self.table} WHERE {_conditions(query, conditions)}"
            f" ORDER BY log_id DESC LIMIT {query.limit:d}"
        )
        rows = self.engine.query(sql, limit=query.limit, stop=stop).rows
        return lake_reads.records_from_rows(rows, "the lake (Athena)")

    def histogram(
        self, query: RecentQuery, conditions: Sequence[Condition], interval_ms: int, stop: Stop | None = None
    ) -> list[dict]:
        bucket = f"CAST(floor({_EPOCH_MS} / {interval_ms:d}e0) AS BIGINT)"
        sql = (
            f"SELECT {bucket} AS bucket, severity, count(*) FROM {self.table}"
            f" WHERE {_conditions(replace(query, before_id=None), conditions)} GROUP BY 1, 2"
        )
        cap = lake_reads.MAX_BUCKETS * len(SEVERITY_NAMES)
        return lake_reads.histogram_buckets(self.engine.query(sql, limit=cap, stop=stop).rows, query, interval_ms)

    def get(self, log_id: bytes) -> StoredRecord | None:
        """By log id, in the one day its time names. Client ids are only kept while the hot store
        holds the record (their claims expire with it); finding one in the lake would read every day."""
        if not lake_reads.is_storable_id(log_id):
            return None
        ts = timestamp_of(log_id)
        sql = (
            f'SELECT {_RECORD_COLUMNS} FROM {self.table} WHERE "date" = {sql_string(_day(ts))}'
            f" AND log_id = {sql_string(format_uuid(log_id))} LIMIT 1"
        )
        rows = self.engine.query(sql, limit=1).rows
        return next(iter(lake_reads.records_from_rows(rows, "the lake (Athena)")), None)


def _conditions(query: RecentQuery, conditions: Sequence[Condition]) -> str:
    upper = query.until_ms
    if query.before_id is not None:
        after_cursor = timestamp_of(query.before_id) + 1
        upper = after_cursor if upper is None else min(upper, after_cursor)
    # The partition bounds first: with projection, Athena lists only these days' objects.
    where = [f'"date" >= {sql_string(_day(query.since_ms))}']
    if upper is not None:
        where.append(f'"date" <= {sql_string(_day(max(query.since_ms, upper - 1)))}')
    where.append(f'"timestamp" >= {_timestamp(query.since_ms)}')
    if upper is not None:
        where.append(f'"timestamp" < {_timestamp(upper)}')
    if query.before_id is not None:
        where.append(f"log_id < {sql_string(format_uuid(query.before_id))}")
    for column, value in (("service", query.service), ("log_type", query.log_type)):
        if value is not None:
            where.append(f"{column} = {sql_string(value)}")
    if query.severities is not None:
        names = ", ".join(sql_string(SEVERITY_NAMES[s]) for s in sorted(query.severities))
        where.append(f"severity IN ({names})")
    if query.contains:
        where.append(f"regexp_like(message, {sql_string(case_insensitive_regex(query.contains))})")
    where.extend(condition_sql(condition, _term_condition) for condition in conditions)
    return " AND ".join(where)


def _term_condition(term: Term) -> str:
    if term.paths:  # try(): attributes that are not JSON match nothing, as in the local search
        value = f"lower(try({_first_at('json_extract_scalar', term.paths)}))"
        wanted = f"lower({sql_string(term.value)})"
        number = number_of(term)
        if term.prefix:
            scalar, element = f"starts_with({value}, {wanted})", f"starts_with(lower(x), {wanted})"
        elif number is None:
            scalar, element = f"{value} = {wanted}", f"lower(x) = {wanted}"
        else:
            scalar = f"({value} = {wanted} OR try_cast({value} AS DOUBLE) = {number!r})"
            element = f"(lower(x) = {wanted} OR try_cast(x AS DOUBLE) = {number!r})"
        # An array's elements match one by one, as in the local search (json_extract_scalar of an array is null), each
        # as its text (an object or array among them as its JSON text: a cast to VARCHAR ARRAY fails on one)
        array = f"try(CAST({_first_at('json_extract', term.paths)} AS JSON ARRAY))"
        elements = f"transform({array}, x -> {TRINO_JSON_TEXT.format(json='x')})"
        return f"({scalar} OR any_match({elements}, x -> {element}))"
    if term.field is None:
        return f"regexp_like(message, {sql_string(case_insensitive_regex(term.value))})"
    if term.prefix:
        return f"starts_with({term.field}, {sql_string(term.value)})"
    return f"{term.field} = {sql_string(term.value)}"


def _first_at(function: str, paths: tuple[tuple[str, ...], ...]) -> str:
    """`function` (json_extract_scalar or json_extract) of the value at the first of the paths present."""
    at = ", ".join(f"{function}(attributes, {sql_string(_json_path(path))})" for path in paths)
    return at if len(paths) == 1 else f"coalesce({at})"


def _json_path(keys: Sequence[str]) -> str:
    return "$" + "".join(f'["{lake_reads.json_path_key(key)}"]' for key in keys)


def _timestamp(ms: int) -> str:
    moment = datetime.fromtimestamp(ms // 1000, UTC)
    return f"TIMESTAMP '{moment:%Y-%m-%d %H:%M:%S}.{ms % 1000:03d}'"


def _day(ms: int) -> str:
    return day_of(ms).isoformat()
