"""Small bulk batches waiting in hot.db (`bulk_batches`) until they add up to a lake part of a flush round's size.

A part per small batch (Filebeat's 1,600 documents, the OpenTelemetry SDK's 512) cost a Parquet file, its
fsync and catalog commit per request, then merges that rewrote every record again: twice the CPU per record
of 10,000-record batches. So such a batch is stored as one row here, its checked table as an Arrow IPC
stream (LZ4: a third of the bytes for a few percent of the CPU), committed by the hot store's writer (the
answer waits for its fsync), and lake/bulk.py moves the rows into parts later, with the flush's protocol:
the parts are added to the catalog and the rows deleted in ONE transaction (`delete_moved_batches`).

Readers take these batches from the same SQLite snapshot as the hot rows and the catalog, so each record is
read exactly once whether it waits here or was moved: SQL over `logs` (query_views.py), recent logs and the
search's bounds (reads.py), the counts of records not in the lake yet (lake.py).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

import pyarrow as pa
import pyarrow.compute as pc

from loglake.lake.table_records import matches, table_records
from loglake.lake.tables import APP_LOGS_TABLE
from loglake.model import StoredRecord
from loglake.store.base import RecentQuery

Read = Callable[[str, Sequence[Any]], list[tuple]]

_IPC_OPTIONS = pa.ipc.IpcWriteOptions(compression="lz4")
_MS = pa.timestamp("ms")
_MAX_INT64 = 2**63 - 1


class Waiting(NamedTuple):
    batches: int
    rows: int
    bytes: int
    newest_ms: int | None


def store_batch(conn: sqlite3.Connection, table: pa.Table, blob: bytes) -> None:
    """Add a batch (`blob` is `encoded(table)`, made before the writer's turn) to those waiting."""
    span = pc.min_max(table.column("timestamp").cast(pa.int64()))
    conn.execute(
        "INSERT INTO bulk_batches (rows, min_ts, max_ts, arrow) VALUES (?, ?, ?, ?)",
        (table.num_rows, span["min"].as_py(), span["max"].as_py(), blob),
    )


def encoded(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema, options=_IPC_OPTIONS) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def decoded(blob: bytes) -> pa.Table:
    return pa.ipc.open_stream(pa.py_buffer(blob)).read_all()


def waiting(read: Read) -> Waiting:
    """How many batches wait, their records and bytes, and the newest record's time (None: none waits)."""
    batches, rows, size, newest = read(
        "SELECT count(*), coalesce(sum(rows), 0), coalesce(sum(length(arrow)), 0), max(max_ts) FROM bulk_batches", ()
    )[0]
    return Waiting(batches, rows, size, newest)


def waiting_tables(read: Read, since_ms: int | None = None, until_ms: int | None = None) -> Iterator[pa.Table]:
    """The waiting records timestamped in [since, until) (either bound optional), a table per batch, each
    read as it is asked for."""
    since = -_MAX_INT64 if since_ms is None else since_ms
    until = _MAX_INT64 if until_ms is None else until_ms
    found = read("SELECT batch_id FROM bulk_batches WHERE max_ts >= ? AND min_ts < ? ORDER BY batch_id", (since, until))
    for (batch_id,) in found:
        ((blob,),) = read("SELECT arrow FROM bulk_batches WHERE batch_id = ?", (batch_id,))  # in the reader's snapshot
        table = decoded(blob)
        del blob
        ts = table.column("timestamp")
        keep = pc.and_(pc.greater_equal(ts, pa.scalar(since, _MS)), pc.less(ts, pa.scalar(until, _MS)))
        yield table if pc.all(keep).as_py() else table.filter(keep)


class WaitingStream:
    """The waiting records of [since, until) for DuckDB as an Arrow stream (the PyCapsule stream protocol),
    read from the snapshot (`read`) batch by batch as DuckDB pulls them, afresh at each scan."""

    def __init__(self, read: Read, since_ms: int | None, until_ms: int | None) -> None:
        self._read = read
        self._window = (since_ms, until_ms)

    def __arrow_c_stream__(self, requested_schema: object = None) -> object:
        batches = (b for table in waiting_tables(self._read, *self._window) for b in table.to_batches())
        return pa.RecordBatchReader.from_batches(APP_LOGS_TABLE.schema, batches).__arrow_c_stream__(requested_schema)


def waiting_records(read: Read, query: RecentQuery) -> list[StoredRecord]:
    """The newest `query.limit` waiting records matching the query's filters, newest (highest id) first."""
    found = []
    for table in waiting_tables(read, query.since_ms, query.until_ms):
        matching = table.filter(matches(table, query))
        found.append(matching.sort_by([("log_id", "descending")]).slice(0, query.limit))
    if not found:
        return []
    newest = pa.concat_tables(found).sort_by([("log_id", "descending")]).slice(0, query.limit)
    return table_records(newest)


def oldest_batches(read: Read, max_rows: int) -> tuple[list[int], list[pa.Table]]:
    """The oldest waiting batches (ids and tables) up to `max_rows` records (at least one batch)."""
    ids, tables, rows = [], [], 0
    for batch_id, count in read("SELECT batch_id, rows FROM bulk_batches ORDER BY batch_id", ()):
        if ids and rows + count > max_rows:
            break
        ids.append(batch_id)
        rows += count
    if ids:
        marks = ", ".join("?" * len(ids))
        blobs = read(f"SELECT arrow FROM bulk_batches WHERE batch_id IN ({marks}) ORDER BY batch_id", ids)
        if len(blobs) != len(ids):
            raise MovedElsewhere(f"{len(ids) - len(blobs)} of {len(ids)} waiting batches were moved meanwhile")
        tables = [decoded(blob) for (blob,) in blobs]
    return ids, tables


class MovedElsewhere(Exception):
    """Batches a move read were moved meanwhile by another process (`loglake flush` beside a server)."""


def delete_moved_batches(conn: sqlite3.Connection, batch_ids: list[int]) -> None:
    """In the transaction that adds their parts to the catalog: the batches go. If one is gone already,
    another mover took it, and the transaction must roll back (else its records would be in two parts)."""
    marks = ", ".join("?" * len(batch_ids))
    deleted = conn.execute(f"DELETE FROM bulk_batches WHERE batch_id IN ({marks})", batch_ids).rowcount
    if deleted != len(batch_ids):
        raise MovedElsewhere(f"{len(batch_ids) - deleted} of {len(batch_ids)} waiting batches were moved meanwhile")
