"""hot.db as a process that only reads it sees it: the query engine's store in a query worker
(lake/query_workers.py). No writer, no checkpoints, no schema changes: the server that writes the file keeps
its tables and its WAL; this opens connections that cannot write (query_only), one per thread, and reads
in snapshots as SQLiteHotStore.snapshot does."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from loglake.sqlitedb import Schema
from loglake.store.sqlite import reader_connection
from loglake.store.sqlite_reads import Snapshot, snapshot_of


class HotStoreReader:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def use_schema(self, schema: Schema) -> None:
        """Nothing to do: the server that writes the file brought its tables up to date before reading them."""

    @contextmanager
    def snapshot(self) -> Iterator[Snapshot]:
        with snapshot_of(self._reader()) as held:
            yield held

    def close(self) -> None:
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()

    def _reader(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = reader_connection(self.path)
            with self._lock:
                self._connections.append(conn)
        return conn
