"""Bulk batches straight into the lake: a batch checked column-wise (ingest_columns) is written as one
Parquet part per UTC day it touches and published with the flush's crash-safe protocol (flush.publish:
journal, publish, then ONE transaction adds every part of the batch to the catalog). The answer waits
for that commit, so a 201 means the records are on disk, in files no later step rewrites in place,
and visible to every read at once; nothing is written to the hot store, read back and deleted.

Batches that arrive while the writers are busy wait, and the next free writer joins all that wait into
one write (a group commit, as the hot store commits records): one part per day for them all, one fsync,
one catalog commit, each batch answered once that commit is in. Shippers send small batches (Filebeat 1,600
documents, the OpenTelemetry SDK 512): one part each would cost a Parquet file, its fsync and its commit per
request, and compaction would then rewrite hundreds of tiny parts. So small batches wait for a writer at work
rather than start another, until they add up to WRITER_ROWS. A joined write is all or nothing like a
batch's, so each batch is still all in the lake or not at all.

Joined writes of small batches (each under WAIT_BELOW_ROWS, under WAITING_ROWS in all) do not become parts
at once: each is written to a file of its own and named in hot.db, durable when answered (lake/waiting.py),
and a mover thread writes the waiting batches as one part per day once MOVED_ROWS wait or the oldest waited
MOVE_AFTER_SECONDS, adding the parts and deleting the rows in one transaction. Past MAX_WAITING_ROWS or
MAX_WAITING_BYTES waiting (a mover falling behind), a batch becomes a part of its own again, so what waits,
and what every query reads of it, stays bounded.

Compaction later merges these parts into the day's large files, as it does the flush's. A batch's journal
entry names its writer, so that maintenance leaves a round under way alone (writers.py).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import pyarrow as pa

from loglake.lake.flush import Step, journal, publish
from loglake.lake.layout import app_logs_key, new_part_name
from loglake.lake.manifest import LakeFile, nobody_reading
from loglake.lake.objectstore import ObjectStore
from loglake.lake.parts import by_utc_day, write_part
from loglake.lake.repeated_failures import RepeatedFailures
from loglake.lake.scratch import new_work_folder
from loglake.lake.waiting import (
    BatchRow,
    BatchUnreadable,
    MovedElsewhere,
    batch_file_name,
    batch_row,
    delete_moved_batches,
    is_named,
    oldest_batches,
    read_batch_file,
    rows_of,
    store_batches,
    sweep,
    waiting,
    waiting_dir,
    write_batch_file,
)
from loglake.lake.writers import WriterLock
from loglake.store.sqlite import SQLiteHotStore

log = logging.getLogger("loglake.lake")

# Batches written at once: each is mostly Arrow and Parquet work, which runs outside the GIL, so one per
# core (up to 4); more only wait for a core while holding their batch's memory.
BULK_THREADS = min(4, os.cpu_count() or 1)
# Rows a write joins at most from the batches waiting: a part of the size a flush round writes.
JOINED_ROWS = 200_000
# Rows that must be waiting for another writer to start while one is at work; fewer wait for that one, which
# joins them. A part costs milliseconds of CPU to write, publish and later merge, whatever its size: Filebeat's
# bulks of 1,600 documents written a part each took 2 us of CPU per record more in the bulk and merge threads
# than the same records in 10 MB bulks (bench/protocols_ingest.py). At 8Ki (a row group's worth), each of the
# OpenTelemetry Collector's 8,192-record exports started a writer while one was at work and made a part of its
# own: 17 parts a day of the 1M bench set, and a tier merge of 16 of them each day during the run (0.5-0.75 us
# of CPU a record in the merge threads). Joined two by two or more, as POST /logs batches (at most 10,000
# records) now are too, they make half the parts: OTLP 0.66-0.67x -> 0.76-0.80x native's rate, OTLP/JSON
# 0.64-0.65x -> 0.68-0.71x, native itself no slower (alternated pairs, 4 senders), a sustained 10M ingest
# 354k -> 369k records/s.
WRITER_ROWS = 16 * 1024
# Small batches (each under WAIT_BELOW_ROWS) joined to fewer rows than this wait for the mover; more are a part.
WAITING_ROWS = 8 * 1024
# Rows a move joins into parts at most: writing a part holds its rows twice (read, then sorted), so 200,000
# of them (JOINED_ROWS) took the server past 300 MB of RSS in B2, and 100,000 to 356-380 MB in a sustained
# ingest of 1,600-record batches (against 198 MB); parts of 50,000 are still large from birth.
MOVED_ROWS = 50_000
# Batches of fewer rows, joined up to WAITING_ROWS, wait for the mover (see the module docstring); larger ones
# are parts at once.
# 10,000-record batches gained nothing by waiting: the same rate, and 0.9 us more CPU per record in the
# round (the file and the move, for merges of their parts saved later), so they stay parts of their own; so
# do Splunk HEC's ~8,000-event bodies: waiting cost them 0.2-1.0 us more server CPU per record (3 paired
# runs of 8,000-record batches), and Filebeat's 1,600 documents gain as much either way.
WAIT_BELOW_ROWS = 4 * 1024
# What may wait at most (rows, and bytes of Arrow files): past either, batches are parts of their own.
MAX_WAITING_ROWS = 8 * MOVED_ROWS
MAX_WAITING_BYTES = 256 * 2**20
# Waiting batches are moved once MOVED_ROWS wait, or about this long after the oldest was stored.
MOVE_AFTER_SECONDS = 2.0
# A batch whose file could not be read is passed over by the moves this long, then read again by the next: a file
# restored from a backup, as the warning advises, or one that failed for a passing cause (too many open files), was
# left waiting until the server was restarted.
UNREADABLE_RETRY_SECONDS = 600.0


class BulkWriter:
    def __init__(
        self,
        store: SQLiteHotStore,
        lake: ObjectStore,
        *,
        clock: Callable[[], float] = time.time,
        on_step: Step | None = None,
        on_published: Callable[[int], None] = lambda parts: None,
        wait_below_rows: int = WAIT_BELOW_ROWS,
    ) -> None:
        self.store = store
        self.on_published = on_published
        self.lake = lake
        self.clock = clock
        self.on_step = on_step or (lambda step: None)
        self._writer = WriterLock(store.path.parent)
        self._threads: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()  # guards what follows
        self._waiting: list[tuple[pa.Table, Future[list[LakeFile]]]] = []
        self._writing = 0  # writers at work (at most BULK_THREADS)
        self.wait_below_rows = wait_below_rows
        self._folder = waiting_dir(store.path.parent)
        self._files = 0  # batch files this writer wrote (their numbers)
        self._in_flight: set[str] = set()  # batch files being written and committed now
        self._rows_to_store: list[tuple[BatchRow, Future[None]]] = []  # for the hot store's writer's next commit
        self._stored: tuple[int, int] | None = None  # rows and bytes waiting (None: not looked yet)
        self._oldest_stored_at: float | None = None  # (time.monotonic) None: nothing waits that this process knows of
        self._mover: threading.Thread | None = None
        self._mover_wake = threading.Condition(self._lock)
        self._closing = False
        self._moving = threading.Lock()  # one move at a time in this process (another's is told apart on commit)
        # Waiting batch files found unreadable, and when (time.monotonic): passed over by the moves for a while
        self._unreadable: dict[str, float] = {}
        self._unreadable_rows = 0  # the records of those still waiting: never due for a move

    def submit(self, table: pa.Table) -> Future[list[LakeFile]]:
        """Start writing a batch; the future resolves once it is durable, in the catalog (with the parts
        of the write that took it, which may hold other batches too) or waiting in hot.db (no parts)."""
        done: Future[list[LakeFile]] = Future()
        with self._lock:
            self._waiting.append((table, done))
            if self._writing == BULK_THREADS or (self._writing and self._small_part_waits()):
                return done  # a writer at work takes it when it is done
            self._writing += 1
            if self._threads is None:
                self._threads = ThreadPoolExecutor(BULK_THREADS, thread_name_prefix="loglake-bulk")
            self._threads.submit(self._write_waiting)
        return done

    def _write_waiting(self) -> None:
        """Write the waiting batches, joined, until none waits."""
        while True:
            with self._lock:
                if not self._waiting:
                    self._writing -= 1
                    return
                joined = self._take_waiting()
            if not joined:  # (all of them cancelled)
                continue
            try:
                tables = [table for table, _ in joined]
                table = pa.concat_tables(tables)
                files = self._store_waiting(table) if self._may_wait(tables) else self.write(table)
            except BaseException as e:  # (each waiter gets it; this writer goes on)
                for _, done in joined:
                    done.set_exception(e)
            else:
                for _, done in joined:
                    done.set_result(files)

    def _small_part_waits(self) -> bool:
        """Whether the batches waiting for a writer would make a part smaller than WRITER_ROWS: they then wait
        for the writer at work rather than start another. Batches that will wait for the mover start another
        writer: their write is a file and a commit, whose fsyncs the writer at work would make them wait for.
        Called holding the lock."""
        tables = [table for table, _ in self._waiting]
        return sum(table.num_rows for table in tables) < WRITER_ROWS and not self._would_wait(tables)

    def _would_wait(self, tables: list[pa.Table]) -> bool:
        """Whether a write joining these batches waits for the mover (else it is a part): each of fewer
        than `wait_below_rows` rows, fewer than WAITING_ROWS in all, within what may wait. Called holding
        the lock. (Small batches joined while the writers are busy keep waiting up to WAITING_ROWS: as parts
        of 4,096-8,191 rows they took a sustained ingest of 1,600-record batches from 66 lake files to 112.)"""
        rows = sum(table.num_rows for table in tables)
        if rows >= WAITING_ROWS or max(table.num_rows for table in tables) >= self.wait_below_rows:
            return False
        if self._stored is None:  # (once: then kept up to date by this writer's stores and moves)
            self._stored = waiting(self.store.read)[1:3]
        stored_rows, stored_bytes = self._stored
        return stored_rows + rows <= MAX_WAITING_ROWS and stored_bytes <= MAX_WAITING_BYTES

    def _take_waiting(self) -> list[tuple[pa.Table, Future[list[LakeFile]]]]:
        """The waiting batches, oldest first, up to JOINED_ROWS (at least one); called holding the lock."""
        rows = count = 0
        for table, _ in self._waiting:
            if count and rows + table.num_rows > JOINED_ROWS:
                break
            rows += table.num_rows
            count += 1
        taken, self._waiting = self._waiting[:count], self._waiting[count:]
        return [(table, done) for table, done in taken if done.set_running_or_notify_cancel()]

    def _may_wait(self, tables: list[pa.Table]) -> bool:
        with self._lock:
            return self._would_wait(tables)

    def _store_waiting(self, table: pa.Table) -> list[LakeFile]:
        """Store a joined write for the mover (lake/waiting.py): its file, then its row; no parts yet."""
        owner = self._writer.hold()
        with self._lock:
            self._files += 1
            file = batch_file_name(owner, self._files)
            self._in_flight.add(file)
        try:
            size = write_batch_file(self._folder, file, table)
            self.on_step("batch file written")
            self._store_row(batch_row(table, file, size)).result()
        except BaseException:
            with contextlib.suppress(OSError):
                (self._folder / file).unlink()
            raise
        finally:
            with self._lock:
                self._in_flight.discard(file)
        with self._lock:
            rows, stored_bytes = self._stored or (0, 0)
            self._stored = (rows + table.num_rows, stored_bytes + size)
            if self._oldest_stored_at is None:
                self._oldest_stored_at = time.monotonic()
            if self._mover is None:
                self._mover = threading.Thread(target=self._move_when_due, name="loglake-bulk-move", daemon=True)
                self._mover.start()
            self._mover_wake.notify()
        return []

    def _store_row(self, row: BatchRow) -> Future[None]:
        """Queue a written batch's row for the hot store's writer; the future resolves once it is committed.
        Rows queued while a commit waits for that writer join it: one commit, and one fsync, for the batches
        whose files were written meanwhile, rather than one after another (the writer serves every write)."""
        stored: Future[None] = Future()
        with self._lock:
            self._rows_to_store.append((row, stored))
            first = len(self._rows_to_store) == 1  # else the commit queued for the first has not taken them yet
        taken: list[tuple[BatchRow, Future[None]]] = []

        def take() -> None:
            with self._lock:
                taken.extend(self._rows_to_store)
                self._rows_to_store.clear()

        def insert(conn: sqlite3.Connection) -> None:
            take()
            store_batches(conn, [row for row, _ in taken])

        def settle(committed: Future[None]) -> None:
            failed = committed.exception()
            if failed is not None and not taken:  # (failed before `insert` took them: no other commit comes)
                take()
            _settle(taken, failed)
            if failed is None:
                self.on_step(f"stored {len(taken)} batches")

        try:
            self.on_step("batch row queued")  # (a joining row may be committed now: a step to crash or wait at)
            if first:
                self.store.in_write_transaction(insert).add_done_callback(settle)
        except BaseException as e:  # the hot store is closed, say: no commit is queued for these rows
            if first:
                take()
                _settle(taken, e)
            raise
        return stored

    def _move_when_due(self) -> None:
        """The mover thread: moves the oldest waiting batches whenever a move is due, until closed."""
        failures = RepeatedFailures(log, "moving waiting bulk batches into the lake")
        while True:
            with self._lock:
                while not self._closing and not self._move_due():
                    due_in = None if self._oldest_stored_at is None else MOVE_AFTER_SECONDS
                    if due_in is not None:
                        due_in = max(0.0, self._oldest_stored_at + due_in - time.monotonic())
                    self._mover_wake.wait(due_in)
                if self._closing:
                    return
            try:
                self._move(everything=False)
                failures.succeeded()
            except Exception as e:  # the batches stay, durable and readable; the next turn tries again
                failures.failed(e, MOVE_AFTER_SECONDS)
                time.sleep(MOVE_AFTER_SECONDS)

    def _move_due(self) -> bool:
        """Called holding the lock."""
        if self._stored is not None and self._stored[0] - self._unreadable_rows >= MOVED_ROWS:
            return True
        return self._oldest_stored_at is not None and time.monotonic() - self._oldest_stored_at >= MOVE_AFTER_SECONDS

    def move_waiting(self, everything: bool = True) -> tuple[int, list[LakeFile]]:
        """Move every waiting batch into lake parts (`loglake flush --all`); returns the records moved and
        the parts written. Without `everything` (maintenance), only when this writer's mover is not running:
        batches left by an earlier process; else the mover moves them when due, in parts of MOVED_ROWS,
        where a maintenance turn woken by the mover's own parts would move the few just stored."""
        if not everything and self._mover is not None:
            return 0, []
        return self._move(everything=True)

    def _move(self, everything: bool) -> tuple[int, list[LakeFile]]:
        """Move the oldest waiting batches, MOVED_ROWS at a time, while a move is due (or all)."""
        moved, parts = 0, []
        with self._moving:
            now = time.monotonic()
            for file, since in list(self._unreadable.items()):
                if now - since >= UNREADABLE_RETRY_SECONDS:
                    del self._unreadable[file]  # (read again by this move)
            while True:
                ids, files, _ = oldest_batches(self.store.read, MOVED_ROWS, self._unreadable)
                if ids:
                    # A row gone at the commit: another process moved them; read what is left.
                    with contextlib.suppress(MovedElsewhere):
                        try:
                            table = pa.concat_tables([read_batch_file(self._folder, file) for file in files])
                        except BatchUnreadable as e:
                            self._pass_over(e)
                        else:
                            parts += self.write(table, lambda conn, ids=ids: delete_moved_batches(conn, ids))
                            moved += table.num_rows
                            del table  # (its files stay mapped while it lives: not while the next move reads)
                with self._lock:
                    self._stored = waiting(self.store.read)[1:3]
                    self._unreadable_rows = rows_of(self.store.read, self._unreadable) if self._unreadable else 0
                    # None to move (only batches passed over, if any, wait): no move is due until one comes, else
                    # the mover went round for good, a move due at once after each that found nothing
                    if self._stored[0] == self._unreadable_rows:
                        self._oldest_stored_at = None
                    elif ids or self._oldest_stored_at is None:
                        # The rest arrived after the batches read: as if now (a move's time early at most).
                        self._oldest_stored_at = time.monotonic()
                    if not ids or not (everything or self._move_due()):
                        break
            self._sweep()
        return moved, parts

    def _pass_over(self, error: BatchUnreadable) -> None:
        """A batch whose file cannot be read stays as it is, and the others move without it: read again at every
        move, it stopped every batch behind it for good (or, gone, a move that went round and round)."""
        if not is_named(self.store.read, error.file):
            return  # (another process moved it, and deleted its file, meanwhile)
        self._unreadable[error.file] = time.monotonic()
        log.warning(
            "%s: its batch stays waiting and the others move without it (a move reads it again in %d minutes); `loglake"
            " verify` names it: restore it from a backup of the data dir, or `loglake verify --quarantine` takes it"
            " out, its records with it",
            error.reason,
            UNREADABLE_RETRY_SECONDS // 60,
        )

    def passed_over(self) -> tuple[list[str], int]:
        """The files of the waiting batches the moves passed over as unreadable that still wait, and their records."""
        files = [file for file in sorted(self._unreadable) if is_named(self.store.read, file)]
        return files, rows_of(self.store.read, files) if files else 0

    def _sweep(self) -> None:
        """Delete the files of moved batches, and those left by writers that failed or died, unless a
        reader holds the catalog (then at a later move): a snapshot from before the move may name them."""
        if nobody_reading(self.store):
            sweep(self.store.read, self._folder, self.store.path.parent, self._writer.hold(), self._writing_files)

    def _writing_files(self) -> set[str]:
        with self._lock:
            return set(self._in_flight)

    def write(self, table: pa.Table, finish: Callable[[sqlite3.Connection], object] | None = None) -> list[LakeFile]:
        """Write and publish a batch (in the calling thread); returns its parts. The journal entry is
        committed while the parts are written: the keys are known before the bytes. `finish` is what the
        parts replace, in the catalog's transaction (waiting batches); by default nothing."""
        now_ms = int(self.clock() * 1000)
        days = list(by_utc_day(table))
        keys = [app_logs_key(day, new_part_name(now_ms)) for day, _ in days]
        owner = self._writer.hold()
        journaled = journal(self.store, keys, table.num_rows, now_ms, owner)
        work = new_work_folder(self.store.path.parent, "bulk-")
        try:
            files = [write_part(rows, key, work, by_service=False) for (_, rows), key in zip(days, keys, strict=True)]
            self.on_step("written")
            replaced = finish or _nothing
            publish(self.store, self.lake, work, files, now_ms, self.on_step, replaced, owner, journaled).result()
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
        with self._lock:
            self._closing = True
            self._mover_wake.notify()
        if self._mover is not None:
            self._mover.join()
        if self._threads is not None:
            self._threads.shutdown(wait=True)
        self._writer.release()


def _settle(rows: list[tuple[BatchRow, Future[None]]], failed: BaseException | None) -> None:
    """Tell the writers of stored rows that their commit is in (or why not)."""
    for _, done in rows:
        if failed is None:
            done.set_result(None)
        else:
            done.set_exception(failed)


def _nothing(conn: object) -> None:
    """A bulk batch replaces nothing: its commit only adds its parts to the catalog."""
