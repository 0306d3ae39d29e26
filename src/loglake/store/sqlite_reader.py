"""hot.db as a process that only reads it sees it: the query engine's store in a query worker
(lake/query_workers.py). No writer, no checkpoints, no schema changes: the server that writes the file keeps
its tables and its WAL; this opens connections that cannot write (query_only), one per thread, and reads
in snapshots as SQLiteHotStore.snapshot does."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from loglake.sqlitedb import Schema
from loglake.store.sqlite import reader_connection
from loglake.store.sqlite_reads import ReaderConnections, Snapshot, snapshot_of


class HotStoreReader:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._readers = ReaderConnections(functools.partial(reader_connection, self.path))

    def use_schema(self, schema: Schema) -> None:
        """Nothing to do: the server that writes the file brought its tables up to date before reading them."""

    @contextmanager
    def snapshot(self) -> Iterator[Snapshot]:
        with snapshot_of(self._readers.get()) as held:
            yield held

    def close(self) -> None:
        self._readers.close()
