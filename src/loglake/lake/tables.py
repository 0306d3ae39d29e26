"""The tables of the lake: their columns, partitions and where their files live.

One registry serves every reader: the DuckDB query engine (`logs`), `GET /tables`, and the
Athena/Glue DDL, so a column added here appears everywhere at once. Later tables (Amplify access
logs) register the same way.

A LiveTable is not in the lake: the local engine reads it from its own database at each query (the
alerts of alerts.db), so it is always current; rules and Athena do not see it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import pyarrow as pa

from loglake.lake.layout import AMPLIFY_ACCESS, APP_LOGS

_SQL_TYPES = {
    "string": "VARCHAR",
    "int64": "BIGINT",
    "timestamp[ms]": "TIMESTAMP",
    "timestamp[us]": "TIMESTAMP",
    "list<item: string>": "VARCHAR[]",
    "double": "DOUBLE",
    "int32": "INTEGER",
    "date32[day]": "DATE",
}


def partition_type(key: str) -> pa.DataType:
    """How SQL sees a partition key's values: `date` as a DATE, any other (an Amplify app) as text."""
    return pa.date32() if key == "date" else pa.string()


def sql_type(arrow_type: pa.DataType) -> str:
    """The SQL (DuckDB) name of a column's type."""
    return _SQL_TYPES.get(str(arrow_type), str(arrow_type).upper())


@dataclass(frozen=True)
class Column:
    name: str
    type: pa.DataType
    description: str
    # Added after files were written without it: those files are read with nulls in its place.
    added_later: bool = False


@dataclass(frozen=True)
class LakeTable:
    name: str  # the SQL name
    directory: str  # the `type=` value of its objects
    columns: tuple[Column, ...]
    partitions: tuple[str, ...]  # Hive partition keys, outermost first; values are strings
    description: str

    @property
    def schema(self) -> pa.Schema:
        return pa.schema([(c.name, c.type) for c in self.columns])

    def with_added_columns(self, rows: pa.Table, wanted: Sequence[str] | None = None) -> pa.Table:
        """Rows read from one of the table's files, with nulls for the columns `added_later` (of those
        `wanted`, default all) that a file written before them lacks."""
        names = rows.schema.names
        for column in self.columns:
            if column.added_later and column.name not in names and (wanted is None or column.name in wanted):
                rows = rows.append_column(column.name, pa.nulls(rows.num_rows, column.type))
        return rows

    def conform(self, rows: pa.Table) -> pa.Table:
        """Rows read from one of the table's files with its columns in order, those `added_later` that
        an older file lacks filled with nulls (and cast to the table's types: ArrowInvalid if they cannot be)."""
        rows = self.with_added_columns(rows)
        if rows.schema == self.schema:
            return rows
        return rows.select(self.schema.names).cast(self.schema)


APP_LOGS_TABLE = LakeTable(
    name="logs",
    directory=APP_LOGS,
    columns=(
        Column("log_id", pa.string(), "UUIDv7 assigned at ingest; its time is the record's timestamp"),
        Column("timestamp", pa.timestamp("ms"), "event time, UTC, millisecond precision"),
        Column("service", pa.string(), "emitting service"),
        Column("log_type", pa.string(), "application, access, audit, ..."),
        Column("severity", pa.string(), "debug, info, warning, error or critical"),
        Column("message", pa.string(), "the log message"),
        Column("attributes", pa.string(), "JSON object of extra fields, or null"),
        Column("client_id", pa.string(), "the client's idempotency UUID, or null"),
        Column("trace_id", pa.string(), "W3C/OpenTelemetry trace id, 32 lowercase hex digits, or null", True),
        Column("span_id", pa.string(), "W3C/OpenTelemetry span id, 16 lowercase hex digits, or null", True),
    ),
    partitions=("date",),
    description="application logs sent to POST /logs, one row per record",
)


def _text(name: str, description: str) -> Column:
    return Column(name, pa.string(), description)


AMPLIFY_ACCESS_TABLE = LakeTable(
    name="amplify_access",
    directory=AMPLIFY_ACCESS,
    columns=(
        Column("timestamp", pa.timestamp("ms"), "when the edge served the request, UTC (date + time)"),
        _text("x_edge_location", "edge location (airport code and number, e.g. FRA56-P1)"),
        Column("sc_bytes", pa.int64(), "bytes served to the viewer, headers included"),
        _text("c_ip", "viewer IP address"),
        _text("cs_method", "HTTP method"),
        _text("cs_host", "CloudFront domain name of the distribution"),
        _text("cs_uri_stem", "path of the request"),
        Column("sc_status", pa.int32(), "HTTP status; null when the viewer left before the response"),
        _text("cs_referer", "Referer header"),
        _text("cs_user_agent", "User-Agent header, URL-decoded"),
        _text("cs_uri_query", "query string, URL-decoded, or null"),
        _text("cs_cookie", "Cookie header (when cookie logging is on)"),
        _text("x_edge_result_type", "Hit, RefreshHit, Miss, LimitExceeded, CapacityExceeded, Error, Redirect"),
        _text("x_edge_request_id", "CloudFront's unique request id (the de-duplication key)"),
        _text("x_host_header", "Host header the viewer sent (the app's domain)"),
        _text("cs_protocol", "http, https, ws or wss"),
        Column("cs_bytes", pa.int64(), "bytes of the viewer's request, headers included"),
        Column("time_taken", pa.float64(), "seconds from request to last byte, at the edge"),
        _text("x_forwarded_for", "X-Forwarded-For when the viewer came through a proxy"),
        _text("ssl_protocol", "TLS protocol, e.g. TLSv1.3"),
        _text("ssl_cipher", "TLS cipher"),
        _text("x_edge_response_result_type", "result type of the response to the viewer"),
        _text("cs_protocol_version", "HTTP/1.1, HTTP/2.0, HTTP/3.0"),
        _text("fle_status", "field-level encryption status"),
        _text("fle_encrypted_fields", "number of field-level encrypted fields"),
        Column("c_port", pa.int32(), "viewer port"),
        Column("time_to_first_byte", pa.float64(), "seconds to the first byte, at the edge"),
        _text("x_edge_detailed_result_type", "detailed result type (e.g. OriginShieldHit, MissGeneratedResponse)"),
        _text("sc_content_type", "Content-Type of the response"),
        Column("sc_content_len", pa.int64(), "Content-Length of the response"),
        Column("sc_range_start", pa.int64(), "start of a range request"),
        Column("sc_range_end", pa.int64(), "end of a range request"),
    ),
    partitions=("app", "date"),
    description="AWS Amplify Hosting access logs (CloudFront fields), one row per request, by app and event date",
)

TABLES: dict[str, LakeTable] = {t.name: t for t in (APP_LOGS_TABLE, AMPLIFY_ACCESS_TABLE)}


@dataclass(frozen=True)
class LiveTable:
    """A table the local query engine reads from its source at each scan: `batches` gives all of its
    rows afresh at each call, as record batches of `schema` (DuckDB scans a table once per mention)."""

    name: str
    columns: tuple[Column, ...]
    description: str
    batches: Callable[[], Iterator[pa.RecordBatch]] = field(compare=False, repr=False)

    @property
    def schema(self) -> pa.Schema:
        return pa.schema([(c.name, c.type) for c in self.columns])
