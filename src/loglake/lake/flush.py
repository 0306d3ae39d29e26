"""Moving records from the hot store into the lake, exactly once whatever moment the process dies.

One flush round, and what a crash after each step leaves:

1. read due records (oldest first) and write one Parquet file per UTC date (Snappy: compaction rewrites it)
   to a local temp folder                    -> only temp files: removed on recovery, rows still hot
2. journal the round in hot.db (`flushes`: its object keys)
                                             -> recovery deletes those keys from the lake and the entry
3. publish each file to the object store (an atomic put each)
                                             -> same: published objects are deleted again
4. in ONE SQLite transaction, delete the round's rows, add its objects to the lake catalog
   (`lake_files`) and drop its journal entry
                                             -> done: rows are only in the lake

A query reads hot rows and `lake_files` in one SQLite snapshot, so while a round runs it counts each
record exactly once, from the hot store (published objects are not in the catalog yet); after step 4
it counts it from the lake. Exactly the rows read are deleted (as one id range only when no late
record arrived inside it since, else by id), so a late record stays in the hot store for the next round.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from loglake.lake import writers
from loglake.lake.flush_rounds import (
    RoundRows,
    WrittenRound,
    read_and_write_in_worker,
    read_round,
    write_round,
)
from loglake.lake.manifest import LakeFile, add_files
from loglake.lake.objectstore import ObjectStore
from loglake.lake.parts import file_name
from loglake.lake.schema import LAKE_SCHEMA
from loglake.store.sqlite import SQLiteHotStore
from loglake.store.sqlite_moved import delete_moved
from loglake.worker_processes import spawned_pool, started_without_ctrl_c, stop_pool

ROWS_PER_ROUND = 200_000
# A flush with more rounds due than this reads and writes them in a worker process (flush_rounds):
# starting one costs about a second, which a backlog repays many times over.
WORKER_MIN_ROUNDS = 2
# What a round under way in the flush's worker process has to land when the flusher is closed, before the
# worker is killed: a stuck one held the flush, and with it the server's stop, for good. A round cut short
# is not lost: its rows stay hot, moved by a later flush.
FLUSH_STOP_GRACE_S = 10.0

Step = Callable[[str], None]


@dataclass
class FlushReport:
    records: int = 0
    rounds: int = 0
    objects: list[str] = field(default_factory=list)
    seconds: float = 0.0


class Flusher:
    """Flush rounds for one hot store and one lake. `on_step` is called after each step (tests use it
    to kill the process there)."""

    def __init__(
        self,
        store: SQLiteHotStore,
        lake: ObjectStore,
        *,
        clock: Callable[[], float] = time.time,
        on_step: Step | None = None,
        rows_per_round: int = ROWS_PER_ROUND,
        worker_process: bool | None = None,
    ) -> None:
        store.use_schema(LAKE_SCHEMA)
        self.store = store
        self.lake = lake
        self.clock = clock
        self.on_step = on_step or (lambda step: None)
        self.rows_per_round = rows_per_round
        self.worker_process = worker_process  # None: a worker process for a backlog only
        self.stop_grace_s = FLUSH_STOP_GRACE_S
        self._lock = threading.Lock()  # guards what follows
        self._worker: ProcessPoolExecutor | None = None  # the flush under way's, if in a worker process
        self._closed = False

    def close(self) -> None:
        """Stop a flush under way in a worker process: its round has stop_grace_s to land, then the worker is
        killed and that flush fails (its rows stay hot). No flush starts a worker after this."""
        with self._lock:
            self._closed = True
            worker = self._worker
        if worker is not None:
            stop_pool(worker, self.stop_grace_s, "flush worker")

    def recover(self) -> int:
        """Undo rounds a crash interrupted (steps 2-3): their objects go, their rows stay hot. A bulk
        batch's round is undone only once its writer is gone (lake/bulk.py): the client had no answer."""
        undone = 0
        data_dir = self.store.path.parent
        for flush_id, objects, owner in self.store.read("SELECT flush_id, objects, owner FROM flushes"):
            if owner is not None and writers.is_running(data_dir, owner):
                continue
            for key in json.loads(objects):
                self.lake.delete(key)
            self.store.run_in_writer(
                lambda conn, f=flush_id: conn.execute("DELETE FROM flushes WHERE flush_id = ?", (f,))
            )
            if owner is not None:
                writers.forget(data_dir, owner)
            undone += 1
        writers.forget_the_dead(data_dir, time.time())
        return undone

    def flush(
        self, before_ms: int, max_rounds: int | None = None, progress: Callable[[int], None] | None = None
    ) -> FlushReport:
        """Move every record timestamped before `before_ms` into the lake, round by round
        (`progress` gets the number of records of each round).

        Rounds overlap: while one is published and committed (on the store's writer thread), the next
        is read and written (after the last id read) by a thread, or by a worker process when more
        than WORKER_MIN_ROUNDS rounds are due (see flush_rounds). Records that arrive late, below the
        ids already read, are found by a last pass from the oldest id once the rest is moved."""
        started = time.perf_counter()
        report = FlushReport()
        committing: Future | None = None
        pending: Future | None = None
        with self._round_writer(before_ms) as next_round:
            try:
                after: tuple[int, int] | None = None
                pending = next_round(after)
                while pending is not None:
                    written, pending = pending.result(), None
                    if written is None:
                        if after is None:
                            break
                        after = None  # one more pass from the start: records that arrived late, but
                        if committing is not None:  # only once the previous delete is in
                            self._settle(committing)
                            committing = None
                        pending = next_round(after)
                        continue
                    after = written.rows.last_id
                    if max_rounds is None or report.rounds + 1 < max_rounds:
                        pending = next_round(after)
                    committing = self._publish(written, committing)
                    report.records += written.rows.count
                    report.objects.extend(f.key for f in written.files)
                    report.rounds += 1
                    if progress is not None:
                        progress(written.rows.count)
            finally:
                if pending is not None:  # a round read ahead that will not be published now
                    _discard(pending)
                if committing is not None:
                    self._settle(committing)
        report.seconds = time.perf_counter() - started
        return report

    @contextmanager
    def _round_writer(self, before_ms: int) -> Iterator[Callable[[tuple[int, int] | None], Future]]:
        """A function that starts reading and writing the round after a given id (None: from the
        oldest due), in a worker process for a backlog, else in a thread."""
        now_ms = int(self.clock() * 1000)
        limit = self.rows_per_round
        if self._backlog(before_ms):
            with self._lock:
                if self._closed:
                    raise RuntimeError("the lake is closing: no flush starts now")
                worker = self._worker = spawned_pool(1)
            try:
                path = str(self.store.path)
                yield lambda after: started_without_ctrl_c(
                    lambda: worker.submit(read_and_write_in_worker, path, before_ms, after, limit, now_ms)
                )
            finally:
                with self._lock:
                    self._worker = None
                    closed = self._closed
                # Idle by now, unless close() stopped it (its workers are killed, or gone: nothing to wait for).
                worker.shutdown(wait=not closed, cancel_futures=True)
        else:
            with ThreadPoolExecutor(1, thread_name_prefix="loglake-flush-read") as reader:
                yield lambda after: reader.submit(
                    lambda: write_round(read_round(self.store, before_ms, after, limit), now_ms, self.store.path.parent)
                )

    def _backlog(self, before_ms: int) -> bool:
        if self.worker_process is not None:
            return self.worker_process
        rounds_of_rows = WORKER_MIN_ROUNDS * self.rows_per_round
        return self.store.count_before(before_ms, at_most=rounds_of_rows + 1) > rounds_of_rows

    def _settle(self, committing: Future) -> None:
        committing.result()
        self.on_step("committed")

    def _publish(self, written: WrittenRound, committing: Future | None) -> Future:
        """Publish one written round; returns its commit, under way."""
        try:
            self.on_step("written")
            if committing is not None:
                self._settle(committing)  # the previous round's commit, before this one's journal
            now_ms = int(self.clock() * 1000)
            return publish(
                self.store,
                self.lake,
                written.work,
                written.files,
                now_ms,
                self.on_step,
                lambda conn: _delete_rows(conn, written.rows),
            )
        finally:
            shutil.rmtree(written.work, ignore_errors=True)


def _delete_rows(conn: sqlite3.Connection, rows: RoundRows) -> None:
    """Delete exactly the rows a round read (they were the oldest due)."""
    delete_moved(conn, rows.first_id, rows.last_id, rows.count, rows.ids(), rows.client_ids)


def publish(
    store: SQLiteHotStore,
    lake: ObjectStore,
    work: Path,
    files: list[LakeFile],
    now_ms: int,
    on_step: Step,
    finish: Callable[[sqlite3.Connection], object],
    owner: str | None = None,
    journaled: Future[int] | None = None,
) -> Future:
    """Steps 2-4 for files written to `work`: journal, publish (a local lake moves them out of `work`),
    then in one transaction `finish` (what the files replace: hot rows, or older lake files) + add them
    to the catalog + drop the journal.
    The commit is queued on the store's writer thread; the returned future says when it is done.
    `owner` names a writer that runs outside the maintenance lock (lake/bulk.py); `journaled` is the
    journal entry (`journal`) of a writer that made it while it wrote the files."""
    if journaled is None:
        journaled = journal(store, [f.key for f in files], sum(f.records for f in files), now_ms, owner)
    flush_id = journaled.result()
    on_step("journaled")
    for number, lake_file in enumerate(files, start=1):
        lake.publish_file(lake_file.key, work / file_name(lake_file.key))
        on_step(f"published {number}")

    def commit(conn: sqlite3.Connection) -> None:
        finish(conn)
        add_files(conn, files, now_ms)
        conn.execute("DELETE FROM flushes WHERE flush_id = ?", (flush_id,))

    return store.in_write_transaction(commit)


def journal(store: SQLiteHotStore, objects: list[str], records: int, now_ms: int, owner: str | None) -> Future[int]:
    """Step 2, queued on the store's writer: the round's object keys, so that recovery can undo it."""

    def insert(conn: sqlite3.Connection) -> int:
        cursor = conn.execute(
            "INSERT INTO flushes (started_ms, objects, records, owner) VALUES (?, ?, ?, ?)",
            (now_ms, json.dumps(objects), records, owner),
        )
        return cursor.lastrowid

    return store.queue_for_writer(insert)


def _discard(pending: Future) -> None:
    written = None if pending.cancel() else pending.result()
    if written is not None:
        shutil.rmtree(written.work, ignore_errors=True)
