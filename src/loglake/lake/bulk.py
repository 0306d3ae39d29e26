"""Bulk batches straight into the lake: a batch checked column-wise (ingest_columns) is written as one
Parquet part per UTC day it touches and published with the flush's crash-safe protocol (flush.publish:
journal, publish, then ONE transaction adds every part of the batch to the catalog). The answer waits
for that commit, so a 201 means the records are on disk, in files no later step rewrites in place,
and visible to every read at once; nothing is written to the hot store, read back and deleted.

Compaction later merges these small parts into the day's large files, as it does the flush's. A
batch's journal entry names its writer, so that maintenance leaves a round under way alone (writers.py).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import pyarrow as pa

from loglake.lake.flush import Step, journal, publish
from loglake.lake.layout import app_logs_key, new_part_name
from loglake.lake.manifest import LakeFile
from loglake.lake.objectstore import ObjectStore
from loglake.lake.parts import by_utc_day, write_part
from loglake.lake.scratch import new_work_folder
from loglake.lake.writers import WriterLock
from loglake.store.sqlite import SQLiteHotStore

# Batches written at once: each is mostly Arrow and Parquet work, which runs outside the GIL, so one per
# core (up to 4); more only wait for a core while holding their batch's memory.
BULK_THREADS = min(4, os.cpu_count() or 1)


class BulkWriter:
    def __init__(
        self,
        store: SQLiteHotStore,
        lake: ObjectStore,
        *,
        clock: Callable[[], float] = time.time,
        on_step: Step | None = None,
        on_published: Callable[[int], None] = lambda parts: None,
    ) -> None:
        self.store = store
        self.on_published = on_published
        self.lake = lake
        self.clock = clock
        self.on_step = on_step or (lambda step: None)
        self._writer = WriterLock(store.path.parent)
        self._threads: ThreadPoolExecutor | None = None
        self._starting = threading.Lock()

    def submit(self, table: pa.Table) -> Future[list[LakeFile]]:
        """Start writing a batch; the future resolves once it is durable and in the catalog."""
        with self._starting:
            if self._threads is None:
                self._threads = ThreadPoolExecutor(BULK_THREADS, thread_name_prefix="loglake-bulk")
        return self._threads.submit(self.write, table)

    def write(self, table: pa.Table) -> list[LakeFile]:
        """Write and publish a batch (in the calling thread); returns its parts. The journal entry is
        committed while the parts are written: the keys are known before the bytes."""
        now_ms = int(self.clock() * 1000)
        days = list(by_utc_day(table))
        keys = [app_logs_key(day, new_part_name(now_ms)) for day, _ in days]
        owner = self._writer.hold()
        journaled = journal(self.store, keys, table.num_rows, now_ms, owner)
        work = new_work_folder(self.store.path.parent, "bulk-")
        try:
            files = [write_part(rows, key, work, by_service=False) for (_, rows), key in zip(days, keys, strict=True)]
            self.on_step("written")
            publish(self.store, self.lake, work, files, now_ms, self.on_step, _nothing, owner, journaled).result()
        except BaseException:
            self._undo(journaled, keys)
            raise
        finally:
            shutil.rmtree(work, ignore_errors=True)
        self.on_step("committed")
        self.on_published(len(files))
        return files

    def _undo(self, journaled: Future[int], keys: list[str]) -> None:
        """After a failed write, what recovery does for a crashed writer (this one is still running, so
        recovery leaves it alone): unless the commit went in, drop the journal entry and the objects."""
        with contextlib.suppress(Exception):  # else the entry stays, for recovery once this process ends
            flush_id = journaled.result()
            dropped = self.store.run_in_writer(
                lambda conn: conn.execute("DELETE FROM flushes WHERE flush_id = ?", (flush_id,)).rowcount
            )
            if dropped:
                for key in keys:
                    self.lake.delete(key)

    def close(self) -> None:
        if self._threads is not None:
            self._threads.shutdown(wait=True)
        self._writer.release()


def _nothing(conn: object) -> None:
    """A bulk batch replaces nothing: its commit only adds its parts to the catalog."""
