"""Reads of the SQLite hot store: rows and columns from a connection, and snapshots other threads read in.

A snapshot is one read transaction: every read inside it sees the database as it was at its first read,
whatever commits meanwhile (a flush moving rows into the lake's catalog). SQL over hot + lake needs that
for as long as DuckDB pulls hot rows, from its own threads, batch by batch, so a Snapshot is an object
those threads share (serialized by a lock), not a transaction tied to the thread that opened it.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import msgspec

from loglake.store.sqlite_rows import ROWS_AS_JSON_ARRAYS, rows_in_id_order

_json_array = msgspec.json.Decoder(list).decode
FIRST_BATCH_ROWS = 64
# What a row costs in memory besides its message and attributes: nine Python objects, then Arrow.
ROW_OVERHEAD_BYTES = 600
_MESSAGE, _ATTRIBUTES = 6, 7  # positions in COLUMNS


def _lenient_text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


def read_rows(conn: sqlite3.Connection, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
    """A query's rows. Ingest only stores valid UTF-8; should the file hold anything else, the query is
    answered again with undecodable bytes replaced, rather than failing (the fast path decodes in C)."""
    try:
        return conn.execute(sql, params).fetchall()
    except sqlite3.OperationalError as e:
        if "decode" not in str(e):
            raise
        conn.text_factory = _lenient_text
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            conn.text_factory = str


def read_columns(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> list[list] | None:
    """The rows of `sql` (sqlite_rows.COLUMNS) as one list per column, None when there are none. Each
    column comes as one JSON array, decoded by msgspec: about 40% less time than sqlite3 building a
    tuple per row. JSON cannot hold a BLOB (which only a hand-made row can have): then row by row."""
    try:
        arrays = list(read_rows(conn, ROWS_AS_JSON_ARRAYS.format(rows=sql), params)[0])
        columns = [_json_array(arrays.pop(0)) for _ in range(len(arrays))]  # each array's text freed once decoded
    except sqlite3.OperationalError as e:
        if "BLOB" not in str(e):
            raise
        columns = [list(column) for column in zip(*read_rows(conn, sql, params), strict=True)]
    return columns if columns and columns[0] else None


class SnapshotEnded(RuntimeError):
    """A read after the snapshot's transaction ended: it would see another state of the database."""


class Snapshot:
    """One read transaction on `conn`, readable from any thread until `end()` (one read at a time)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._lock = threading.Lock()
        self._open = True

    def read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        with self._lock:
            self._check_open()
            return read_rows(self._conn, sql, params)

    def column_batches(
        self, since_ms: int | None, until_ms: int | None, batch_bytes: int, newest_first: bool = False
    ) -> Iterator[list[list]]:
        """The rows of the records timestamped in [since, until) (either bound optional), oldest first (or
        newest first), as columns (read_columns), in batches of about `batch_bytes` in memory: each batch
        is a query of its own, after the last id of the one before, so nothing is held open between
        batches, and a reader that stops early reads no more. A message can be 1,000 times longer than a
        typical one, so the batches start small and are sized by the bytes per row of the one before
        (growing at most fourfold from one batch to the next)."""
        after: tuple[int, int] | None = None
        rows = FIRST_BATCH_ROWS
        last_of = min if newest_first else max  # SQL leaves a JSON array's order open: the batch's last id
        while True:
            with self._lock:
                self._check_open()
                columns = read_columns(self._conn, *rows_in_id_order(since_ms, until_ms, after, rows, newest_first))
            if columns is None:
                return
            last = len(columns[0]) < rows
            after = last_of(zip(columns[0], columns[1], strict=True))
            row_bytes = ROW_OVERHEAD_BYTES + _text_bytes(columns) / rows
            rows = max(1, min(4 * rows, int(batch_bytes / row_bytes)))
            yield columns
            del columns  # not held while the next batch is read
            if last:
                return

    def end(self) -> None:
        """No read after this one (waits for a read under way)."""
        with self._lock:
            self._open = False

    def _check_open(self) -> None:
        if not self._open:
            raise SnapshotEnded("the hot store snapshot of this query has ended; run the query again")


class ReaderConnections:
    """One reading connection per thread, made by `connect` at the thread's first read; close() closes them all.

    Threads come and go (each flush reads on a thread of its own): making a connection closes those of
    the threads that ended, so a server that runs for months holds one per live thread, not one per
    thread it ever had (two open files and a page cache each)."""

    def __init__(self, connect: Callable[[], sqlite3.Connection]) -> None:
        self._connect = connect
        self._local = threading.local()
        self._made: dict[threading.Thread, sqlite3.Connection] = {}
        self._lock = threading.Lock()

    def get(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
            with self._lock:
                for thread in [t for t in self._made if not t.is_alive()]:
                    self._made.pop(thread).close()
                self._made[threading.current_thread()] = conn
        return conn

    def close(self) -> None:
        with self._lock:
            for conn in self._made.values():
                conn.close()
            self._made.clear()


@contextmanager
def snapshot_of(conn: sqlite3.Connection) -> Iterator[Snapshot]:
    """A snapshot on `conn` (a reader's) for the block: its read transaction ends with it."""
    conn.execute("BEGIN")
    held = Snapshot(conn)
    try:
        yield held
    finally:
        held.end()
        conn.execute("COMMIT")


def _text_bytes(columns: list[list]) -> int:
    """About how many bytes the messages and attributes of a batch hold (they make most of a row)."""
    return sum(len(v) for c in (_MESSAGE, _ATTRIBUTES) for v in columns[c] if type(v) is str or type(v) is bytes)
