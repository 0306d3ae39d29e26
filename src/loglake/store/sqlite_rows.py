"""The hot store's schema, its SQL and row codec: NewRecords to the JSON rows SQLite inserts, rows to StoredRecords."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from typing import Any

import msgspec

from loglake import readback
from loglake.ids import (
    HIGH_TIME_SHIFT,
    format_uuid,
    is_stored_split,
    join_id,
    lower_bound,
    smallest_high,
    split_id,
)
from loglake.model import NewRecord, StoredRecord
from loglake.store.base import RecentQuery, ScanKey

# The hot store's schema history: append, never edit; user_version counts the steps applied. Steps 2, 3
# and 5 created the lake's and the Amplify collector's tables before each package kept its own schema
# (lake/schema.py, amplify/schema.py, applied through SQLiteHotStore.use_schema); they stay, empty, so
# that the steps of databases made before keep their numbers.
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
    "",
    "",
    """
    -- Client ids of records the flush moved to the lake, so that a retry with the same id still
    -- answers the stored record (and stores nothing) after its row left this database.
    CREATE TABLE flushed_client_ids (
        client_id TEXT PRIMARY KEY,
        id_hi     INTEGER NOT NULL,
        id_lo     INTEGER NOT NULL
    ) WITHOUT ROWID;
    """,
    "",
    """
    -- OpenTelemetry/W3C trace context (lowercase hex), so logs can be joined with traces.
    ALTER TABLE logs ADD COLUMN trace_id TEXT;
    ALTER TABLE logs ADD COLUMN span_id TEXT;
    """,
    # A group's records are spread over many services, and each service's entry of the index went to a
    # page of its own: 16 single-record requests of a commit changed ~26 pages (~105 KiB of WAL, each
    # page written by a system call, checksummed, fsynced and later copied back), 15 of them this index's.
    # A service's newest records are found by the id order instead (SQLiteHotStore.SERVICE_KEY): quick
    # for any service that is among the recent records, a scan of the hot rows for one that is not.
    "DROP INDEX IF EXISTS logs_by_service;",
]

INT64_LIMIT = 1 << 63  # ids we mint start with a 48-bit time: their high half is below this
COLUMNS = "id_hi, id_lo, timestamp, service, log_type, severity, message, attributes, client_id, trace_id, span_id"
INDEX_FOR_KEY = {"log_type": "logs_by_log_type", "severity": "logs_by_severity"}
# A partial index is only used when the query repeats its condition literally.
SPARSE_CONDITION = {"log_type": "log_type != 'application'", "severity": "severity != 1"}


# A whole group of records goes in as ONE statement. sqlite3 releases the GIL around each statement
# step, and each time the writer must win it back from the busy event loop (up to the 5 ms switch
# interval): executemany, one step per row, starves the writer. A small group (single-record requests:
# B1's groups are up to its 32 connections) binds its values to one multi-row VALUES statement; a
# larger one is a JSON array that SQLite unpacks (too many values to bind, too many statement texts
# to keep prepared). Unpacking costs ~0.4 us of C a field, so a JSON row carries only what it must:
# the timestamp is the top of id_hi. Both are for records without a client id.
INSERT_JSON_ROWS = (
    f"INSERT INTO logs ({COLUMNS}) SELECT value->>0, value->>1, (value->>0) >> {HIGH_TIME_SHIFT}, value->>2, value->>3,"
    " value->>4, value->>5, value->>6, NULL, value->>7, value->>8 FROM json_each(?)"
)
# Binding a value that is not exactly an int, float, str or bytes (None, an IntEnum) makes sqlite3 look for
# an adapter and fail, ~3,300 instructions; so the VALUES rows bind "" for a missing text (never a valid
# attributes object, trace or span id) and the severity as an int. With a group of 17 rows they took
# 3.8 us of CPU a row where the JSON array took 7.0 (writer and caller together).
VALUES_MAX_ROWS = 32
_VALUES_ROW = "(?, ?, ?, ?, ?, ?, ?, NULLIF(?, ''), NULL, NULLIF(?, ''), NULLIF(?, ''))"
# Records with a client id, or a NUL character in a JSON array (which SQLite's JSON functions cannot
# carry into TEXT), are rare and go in row by row.
INSERT_ONE_ROW = f"INSERT INTO logs ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
_encode_rows = msgspec.json.Encoder().encode


def row_values(r: NewRecord) -> tuple:
    hi, lo = split_id(r.log_id)
    attributes = r.attributes.decode() if r.attributes else None
    client_id = format_uuid(r.client_id) if r.client_id else None
    trace = r.trace_id, r.span_id
    return hi, lo, r.timestamp, r.service, r.log_type, r.severity, r.message, attributes, client_id, *trace


def insert_statement(records: Sequence[NewRecord]) -> tuple[str, Sequence[Any]] | None:
    """ONE statement (SQL and parameters) that inserts records without client ids; None when a NUL
    character keeps them out of a JSON array (then they go in row by row, INSERT_ONE_ROW)."""
    if len(records) > VALUES_MAX_ROWS:
        rows = _json_rows(records)
        return None if rows is None else (INSERT_JSON_ROWS, (rows,))
    values: list[Any] = []
    for r in records:
        hi, lo = split_id(r.log_id)
        attributes = r.attributes.decode() if r.attributes else ""
        values += (hi, lo, r.timestamp, r.service, r.log_type, int(r.severity), r.message, attributes)
        values += (r.trace_id or "", r.span_id or "")
    return _insert_values(len(records)), values


@functools.cache
def _insert_values(rows: int) -> str:
    return f"INSERT INTO logs ({COLUMNS}) VALUES " + ", ".join([_VALUES_ROW] * rows)


def _json_rows(records: Iterable[NewRecord]) -> bytes | None:
    """The JSON array INSERT_JSON_ROWS reads; None when a NUL character keeps a record out of it."""
    rows = []
    for r in records:
        hi, lo = split_id(r.log_id)
        attributes = msgspec.Raw(r.attributes or b"null")
        rows.append((hi, lo, r.service, r.log_type, r.severity, r.message, attributes, r.trace_id, r.span_id))
    encoded = _encode_rows(rows)
    return None if b"\\u0000" in encoded else encoded


def stored(row: tuple) -> StoredRecord | None:
    """The record of a row (COLUMNS order), its unreadable values named (readback.py); None when
    its id is not two 64-bit integers, as no row that ingest wrote can be."""
    hi, lo, *values = row
    if not is_stored_split(hi, lo):
        readback.unreadable_id((hi, lo), "the hot store")
        return None
    return readback.record(join_id(hi, lo), *values)


# -- the lake's reads and writes of hot rows (SQLiteHotStore's methods run these) ----------------

ROWS_AS_JSON_ARRAYS = (
    "SELECT " + ", ".join(f"json_group_array({name.strip()})" for name in COLUMNS.split(",")) + " FROM ({rows})"
)
FLUSHED_CLIENT_ID = "SELECT id_hi, id_lo FROM flushed_client_ids WHERE client_id = ?"


# Only a hand-made row can have an id that is not two integers: it is never read as a record by id order,
# since it could be neither written to the lake nor paged past.
_INTEGER_IDS = "typeof(id_hi) = 'integer' AND typeof(id_lo) = 'integer'"


def rows_in_id_order(
    since_ms: int | None,
    until_ms: int | None,
    after: tuple[int, int] | None,
    limit: int,
    newest_first: bool = False,
) -> tuple[str, list[Any]]:
    """Up to `limit` rows (COLUMNS) of records timestamped in [since, until), either bound optional, in id
    order (descending if `newest_first`), after the id (id_hi, id_lo) `after` in that order if given: the
    pages of a read of many rows, along the primary key either way."""
    where, params = [_INTEGER_IDS], []
    # The range's bound in the direction of the read: once past a row, `after` is within it already.
    start = (until_ms, "<") if newest_first else (since_ms, ">=")
    end = (since_ms, ">=") if newest_first else (until_ms, "<")
    if after is not None:
        where.append(f"(id_hi, id_lo) {'<' if newest_first else '>'} (?, ?)")
        params.extend(after)
    elif start[0] is not None:
        where.append(f"(id_hi, id_lo) {start[1]} (?, ?)")
        params.extend(split_id(lower_bound(start[0])))
    if end[0] is not None:
        where.append(f"(id_hi, id_lo) {end[1]} (?, ?)")
        params.extend(split_id(lower_bound(end[0])))
    order = "id_hi DESC, id_lo DESC" if newest_first else "id_hi, id_lo"
    sql = f"SELECT {COLUMNS} FROM logs WHERE {' AND '.join(where)} ORDER BY {order} LIMIT ?"
    return sql, [*params, limit]


def due_rows(before_ms: int, after: tuple[int, int] | None, limit: int) -> tuple[str, list[int]]:
    """Up to `limit` rows of records timestamped before `before_ms`, the oldest first, after the id
    (id_hi, id_lo) `after` if given: one flush round, read by the store's connections or by a worker
    process's own driver (lake/flush_rounds.py)."""
    where = f"id_hi < ? AND {_INTEGER_IDS}"
    if after is not None:
        where = f"(id_hi, id_lo) > (?, ?) AND {where}"
    return (
        f"SELECT {COLUMNS} FROM logs WHERE {where} ORDER BY id_hi, id_lo LIMIT ?",
        [*(after or ()), smallest_high(before_ms), limit],
    )


def recent_rows(key: ScanKey, query: RecentQuery) -> tuple[str, list]:
    """The SQL and parameters of a store scan (HotStore.scan): the newest records matching the query, through
    the index of `key` when it names one."""
    where = ["(id_hi, id_lo) >= (?, ?)"]
    params: list = [*split_id(lower_bound(query.since_ms))]
    upper = query.before_id
    if query.until_ms is not None:
        until = lower_bound(query.until_ms)
        upper = until if upper is None else min(upper, until)
    if upper is not None:
        where.append("(id_hi, id_lo) < (?, ?)")
        params.extend(split_id(upper))
    else:  # SQLite orders text after every number: a row given a text id by hand is not the newest
        where.append("id_hi <= ?")
        params.append(INT64_LIMIT - 1)
    source = "logs"
    if key.index is not None:
        source = f"logs INDEXED BY {INDEX_FOR_KEY[key.index]}"
        where.append(f"{key.index} = ?")
        params.append(key.value)
        if key.index in SPARSE_CONDITION:
            where.append(SPARSE_CONDITION[key.index])
    if query.service is not None and key.index != "service":
        where.append("service = ?")
        params.append(query.service)
    if query.log_type is not None and key.index != "log_type":
        where.append("log_type = ?")
        params.append(query.log_type)
    if query.severities is not None and key.index != "severity":
        where.append(f"severity IN ({', '.join('?' * len(query.severities))})")
        params.extend(sorted(query.severities))
    if query.contains:
        # SQLite's lower() folds ASCII only; the lake and DynamoDB fold every letter. A Python function
        # per row costs ~1.5x, so only a needle with other letters pays for it.
        lower = "lower" if query.contains.isascii() else "unicode_lower"
        where.append(f"instr({lower}(message), ?) > 0")
        params.append(query.contains.lower())
    order = "ORDER BY id_hi DESC, id_lo DESC"
    params.append(query.limit)
    return f"SELECT {COLUMNS} FROM {source} WHERE {' AND '.join(where)} {order} LIMIT ?", params
