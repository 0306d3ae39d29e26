"""The tables of the lake: their columns, partitions and where their files live.

One registry serves every reader: the DuckDB query engine (`logs`), `GET /tables`, and the
Athena/Glue DDL, so a column added here appears everywhere at once. Later tables (Amplify access
logs) register the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from loglake.lake.layout import APP_LOGS


@dataclass(frozen=True)
class Column:
    name: str
    type: pa.DataType
    description: str


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
    ),
    partitions=("date",),
    description="application logs sent to POST /logs, one row per record",
)

TABLES: dict[str, LakeTable] = {t.name: t for t in (APP_LOGS_TABLE,)}
