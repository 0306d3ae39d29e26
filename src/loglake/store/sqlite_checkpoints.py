"""The SQLite hot store's checkpoints: a thread of its own folds the WAL back into the database, off the commit
path, and asks the writer thread, between two commits, to rewind or empty the WAL and to give free pages back
(sqlite_space.py). SQLiteHotStore runs it (WalCheckpoints is part of it: its connections, writer queue and
stopping event)."""

from __future__ import annotations

import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable

from loglake.store.sqlite_space import (
    RECLAIM_PAGES_PER_TURN,
    RECLAIM_SETTLE_SECONDS,
    LastChange,
    free_pages,
    give_back,
    reclaim_due,
)

BUSY_TIMEOUT_MS = 10_000  # how long a connection waits for a lock before "database is locked"
CHECKPOINT_SECONDS = 0.5
# Past this many WAL frames (64 MiB of 4 KiB pages) the checkpointer rewinds the WAL; see _checkpoint_loop.
WAL_RESTART_FRAMES = 16_384
WAL_IDLE_SECONDS = 1.0  # writes paused this long: the checkpointer empties the WAL file


def use_own_checkpoints(writer: sqlite3.Connection) -> None:
    """The writer's settings for checkpoints run by WalCheckpoints."""
    # Checkpoints (copying the WAL back into the database) run in their own thread, so a commit
    # never waits for one; see _checkpoint_loop.
    writer.execute("PRAGMA wal_autocheckpoint = 0")
    # A rewound WAL file is cut back to this size, not left at its largest.
    writer.execute(f"PRAGMA journal_size_limit = {WAL_RESTART_FRAMES * 4096}")


class WalCheckpoints:
    """The checkpoint thread's loop and the jobs it queues for the writer thread."""

    _writer: sqlite3.Connection
    _jobs: queue.SimpleQueue
    _stopping: threading.Event
    _rewind_queued: threading.Event
    _give_back_queued: threading.Event
    _connect: Callable[[], sqlite3.Connection]

    def _checkpoint_loop(self) -> None:
        """Fold the WAL back into the database every CHECKPOINT_SECONDS, off the commit path, and see
        whether the WAL or free pages should be given back.

        PASSIVE never blocks the writer or readers; if it cannot finish (a long read holds old
        pages) the next round continues. But it never rewinds the WAL either, and while writes keep
        coming the writer finds no moment to do it itself: the WAL only grows (1.7 GB after loading
        10M records), and every page lookup walks its index, one hash table per 4,096 frames, which
        made a lake flush's commits three times slower. So once the WAL is past WAL_RESTART_FRAMES,
        the writer thread is asked to rewind it between two commits (RESTART: the WAL file is then cut
        to journal_size_limit); once writes pause (no new frame for WAL_IDLE_SECONDS, all of them
        copied), to empty it (TRUNCATE: the file goes to zero bytes). Free pages go back in pieces
        (_give_back) when sqlite_space says so, once no more were freed for RECLAIM_SETTLE_SECONDS:
        not while a flush is still deleting, which would move pages it is about to free. Errors are
        left to the writer to report: a checkpoint that fails now (disk full) is simply retried."""
        conn = self._connect()
        wal_written, pages_freed = LastChange(), LastChange()
        try:
            while not self._stopping.wait(CHECKPOINT_SECONDS):
                with contextlib.suppress(sqlite3.Error):
                    _busy, wal_frames, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                    wal_quiet_s = wal_written.seconds_since(wal_frames)
                    if wal_frames > WAL_RESTART_FRAMES:
                        self._queue_once(self._rewind_queued, lambda: self._checkpoint_on_writer("RESTART"))
                    elif 0 < wal_frames == copied and wal_quiet_s >= WAL_IDLE_SECONDS:
                        self._queue_once(self._rewind_queued, lambda: self._checkpoint_on_writer("TRUNCATE"))
                    free, pages = free_pages(conn)
                    settled_s = pages_freed.seconds_since(free, rises_only=True)
                    if reclaim_due(free, pages) and settled_s >= RECLAIM_SETTLE_SECONDS:
                        self._queue_once(self._give_back_queued, self._give_back)
        finally:
            conn.close()

    def _queue_once(self, queued: threading.Event, job: Callable[[], None]) -> None:
        if not queued.is_set():
            queued.set()
            self._jobs.put(job)

    def _checkpoint_on_writer(self, mode: str) -> None:
        """On the writer thread, between commits: a RESTART or TRUNCATE checkpoint copies what PASSIVE
        has not yet and waits for readers of old frames, so that the next commit starts the WAL from
        its beginning. It waits at most 100 ms for them (writes wait meanwhile), else it is tried again."""
        try:
            with contextlib.suppress(sqlite3.Error):
                self._writer.execute("PRAGMA busy_timeout = 100")
                self._writer.execute(f"PRAGMA wal_checkpoint({mode})")
        finally:
            self._writer.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            self._rewind_queued.clear()

    def _give_back(self) -> None:
        """On the writer thread, between commits: give RECLAIM_PAGES_PER_TURN free pages back, then
        queue the next piece behind the writes that arrived meanwhile, until none is left."""
        left = 0
        with contextlib.suppress(sqlite3.Error):
            left = give_back(self._writer, RECLAIM_PAGES_PER_TURN)
        if left and not self._stopping.is_set():
            self._jobs.put(self._give_back)
        else:
            self._give_back_queued.clear()
