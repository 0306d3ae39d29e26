"""The hot store's schema and row codec: NewRecords to the JSON rows SQLite inserts, rows to StoredRecords."""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from loglake.ids import format_uuid, join_id, parse_uuid, split_id
from loglake.model import NewRecord, StoredRecord

# Schema history: append, never edit. user_version counts the steps applied.
MIGRATIONS = [
    """
    CREATE TABLE logs (
        id_hi      INTEGER NOT NULL,   -- the UUIDv7 log id as two integers (ids.split_id): its first 64
        id_lo      INTEGER NOT NULL,   -- bits start with the timestamp, so id order is time order
        timestamp  INTEGER NOT NULL,   -- epoch ms
        service    TEXT NOT NULL,
        log_type   TEXT NOT NULL,
        severity   INTEGER NOT NULL,   -- 0 debug .. 4 critical
        message    TEXT NOT NULL,
        attributes TEXT,               -- JSON object
        client_id  TEXT,               -- the client's UUID, for idempotent retries
        PRIMARY KEY (id_hi, id_lo)
    ) WITHOUT ROWID;
    CREATE INDEX logs_by_service ON logs (service, id_hi, id_lo);
    -- Sparse, like DynamoDB sparse GSIs: the common value (log_type 'application', severity info)
    -- is served by the id order itself, so most records cost two b-tree inserts, not four.
    CREATE INDEX logs_by_log_type ON logs (log_type, id_hi, id_lo) WHERE log_type != 'application';
    CREATE INDEX logs_by_severity ON logs (severity, id_hi, id_lo) WHERE severity != 1;
    CREATE UNIQUE INDEX logs_by_client_id ON logs (client_id) WHERE client_id IS NOT NULL;
    """,
    """
    -- Lake flushes under way: their objects may be in the lake while their rows are still here.
    -- A query skips these objects. A flush deletes its rows and its row here in one transaction.
    CREATE TABLE flushes (
        flush_id   INTEGER PRIMARY KEY,
        started_ms INTEGER NOT NULL,
        objects    TEXT NOT NULL,      -- JSON array of lake keys
        records    INTEGER NOT NULL
    );
    """,
    """
    -- The lake's catalog: every lake object a query reads. A flush adds its objects here in the
    -- transaction that deletes their rows, so one snapshot of logs + lake_files holds each record
    -- exactly once, without listing the object store.
    CREATE TABLE lake_files (
        key        TEXT PRIMARY KEY,   -- object key, e.g. type=app_logs/date=2026-11-01/part-<uuid7>.parquet
        table_name TEXT NOT NULL,      -- the SQL table it belongs to (lake.tables)
        day        TEXT NOT NULL,      -- its date partition, YYYY-MM-DD
        min_ts     INTEGER NOT NULL,   -- epoch ms of its oldest and newest record
        max_ts     INTEGER NOT NULL,
        records    INTEGER NOT NULL,
        bytes      INTEGER NOT NULL,
        created_ms INTEGER NOT NULL
    );
    CREATE INDEX lake_files_by_day ON lake_files (table_name, day);
    -- Objects that compaction replaced or retention dropped: no longer in lake_files, deleted from
    -- the object store once no query that started before can still be reading them.
    CREATE TABLE lake_garbage (
        key             TEXT PRIMARY KEY,
        delete_after_ms INTEGER NOT NULL
    );
    """,
    """
    -- Client ids of records the flush moved to the lake, so that a retry with the same id still
    -- answers the stored record (and stores nothing) after its row left this database.
    CREATE TABLE flushed_client_ids (
        client_id TEXT PRIMARY KEY,
        id_hi     INTEGER NOT NULL,
        id_lo     INTEGER NOT NULL
    ) WITHOUT ROWID;
    """,
    """
    -- Amplify access-log collection: per app, the end of the last window collected in full (every
    -- window before it succeeded), and the report of each run.
    CREATE TABLE amplify_watermarks (
        app        TEXT PRIMARY KEY,   -- the configuration's appName
        until_ms   INTEGER NOT NULL,   -- epoch ms, exclusive
        updated_ms INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE amplify_runs (
        run_id      INTEGER PRIMARY KEY,
        started_ms  INTEGER NOT NULL,
        finished_ms INTEGER NOT NULL,
        report      TEXT NOT NULL      -- JSON: per app windows, rows, bytes, retries, errors, duration
    );
    """,
]

COLUMNS = "id_hi, id_lo, timestamp, service, log_type, severity, message, attributes, client_id"
INDEX_FOR_KEY = {"service": "logs_by_service", "log_type": "logs_by_log_type", "severity": "logs_by_severity"}
# A partial index is only used when the query repeats its condition literally.
SPARSE_CONDITION = {"log_type": "log_type != 'application'", "severity": "severity != 1"}


# A whole group of records goes in as ONE statement over a JSON array. sqlite3 releases the GIL
# around each statement step, and each time the writer must win it back from the busy event loop
# (up to the 5 ms switch interval): executemany, one step per row, starves the writer. One step per
# group also leaves SQLite's C code to unpack the rows, off the GIL, in parallel with request parsing.
# Field extraction is most of that C time (~0.4 us a field), so a row carries only what it must:
# the timestamp is the top of id_hi, and this path is for records without a client id.
INSERT_JSON_ROWS = (
    f"INSERT INTO logs ({COLUMNS}) SELECT value->>0, value->>1, (value->>0) >> 16, value->>2, value->>3,"
    " value->>4, value->>5, value->>6, NULL FROM json_each(?)"
)
# Records with a client id, or a NUL character (which SQLite's JSON functions cannot carry into
# TEXT), are rare and go in row by row.
INSERT_ONE_ROW = f"INSERT INTO logs ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
_encode_rows = msgspec.json.Encoder().encode


def row_values(r: NewRecord) -> tuple:
    hi, lo = split_id(r.log_id)
    attributes = r.attributes.decode() if r.attributes else None
    client_id = format_uuid(r.client_id) if r.client_id else None
    return hi, lo, r.timestamp, r.service, r.log_type, r.severity, r.message, attributes, client_id


def encode_rows(records: Iterable[NewRecord]) -> bytes | None:
    """The JSON array INSERT_JSON_ROWS reads, built by the caller's thread, not the writer's; None
    when a record needs INSERT_ONE_ROW (a client id or a NUL character)."""
    rows = []
    for r in records:
        if r.client_id is not None:
            return None
        hi, lo = split_id(r.log_id)
        rows.append((hi, lo, r.service, r.log_type, r.severity, r.message, msgspec.Raw(r.attributes or b"null")))
    encoded = _encode_rows(rows)
    return None if b"\\u0000" in encoded else encoded


def join_arrays(arrays: list[bytes]) -> bytes:
    if len(arrays) == 1:
        return arrays[0]
    return b"[" + b",".join(a[1:-1] for a in arrays if len(a) > 2) + b"]"


def stored(row: tuple) -> StoredRecord:
    hi, lo, ts, service, log_type, severity, message, attributes, client_id = row
    return StoredRecord(
        join_id(hi, lo),
        ts,
        service,
        log_type,
        severity,
        message,
        attributes.encode() if attributes is not None else None,
        parse_uuid(client_id) if client_id is not None else None,
    )
