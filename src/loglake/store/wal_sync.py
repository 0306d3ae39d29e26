"""Durable commits without a commit waiting for the previous one's fsync.

With `PRAGMA synchronous = FULL`, SQLite fsyncs the WAL inside every COMMIT, and the single writer
can start the next transaction only once that fsync returns. Under many small concurrent requests
(32 clients, one record each) that splits the clients into two alternating cohorts: those whose
records arrive during a commit wait for it to end, then for their own commit, two fsyncs in all.

So the writer commits with `synchronous = NORMAL` (SQLite's WAL stays corruption-proof: it still syncs
the WAL header on a restart, and the WAL and the database around checkpoints), and hands each
committed group to a WalSync, whose few threads each run `fdatasync` on the WAL file for every group
committed before that call began: data written before an fdatasync starts is on disk when it
returns, whichever descriptor of the file it is called on. A group is acknowledged only then, so a
201 still means on disk; and the fdatasyncs overlap, so a group committed while one is under way
starts its own at once instead of waiting for it.

A failed fdatasync leaves committed rows whose durability is unknown (after an fsync error the
kernel may have dropped the pages): their requests fail, and so does every write after, until the
store is opened again, as PostgreSQL stops on an fsync error.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

# fdatasyncs in flight at once: one for each of two groups of clients, and one spare, so that a commit
# rarely waits for a free thread.
SYNC_THREADS = 3

Done = Callable[[OSError | None], None]


class WalSync:
    """Tells each caller of after_commit when what it committed is on disk (see the module docstring)."""

    def __init__(self, database: Path, threads: int = SYNC_THREADS) -> None:
        self.wal = Path(f"{database}-wal")
        self.failure: OSError | None = None
        self._fds: list[int] = []  # the WAL file's descriptor (one more, should SQLite ever replace it)
        self._inode: tuple[int, int] | None = None
        self._waiting: list[Done] = []
        self._stopping = False
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)
        self._finishing = threading.Lock()  # one batch's callbacks at a time: they update shared counters
        self._threads = [
            threading.Thread(target=self._loop, name=f"loglake-wal-sync-{n}", daemon=True) for n in range(threads)
        ]
        for thread in self._threads:
            thread.start()

    def after_commit(self, done: Done) -> None:
        """Call done(None) once what the caller has committed is on disk, or done(error) if that failed."""
        with self._work:
            self._waiting.append(done)
            self._work.notify()

    def close(self) -> None:
        """Sync what is waiting, then stop the threads."""
        with self._work:
            self._stopping = True
            self._work.notify_all()
        for thread in self._threads:
            thread.join()
        for fd in self._fds:
            os.close(fd)
        self._fds.clear()

    def _loop(self) -> None:
        while True:
            with self._work:
                while not self._waiting and not self._stopping:
                    self._work.wait()
                if not self._waiting:
                    return
                batch, self._waiting = self._waiting, []
            error = self._sync()
            with self._finishing:
                for done in batch:
                    done(error)

    def _sync(self) -> OSError | None:
        if self.failure is not None:
            return self.failure
        try:
            os.fdatasync(self._wal_fd())
        except OSError as e:
            self.failure = e
            return e
        return None

    def _wal_fd(self) -> int:
        """A descriptor of the WAL file SQLite writes now. SQLite keeps one WAL file while any connection
        is open (ours are), but should it ever make a new one, syncing the old would sync nothing."""
        with self._lock:
            found = os.stat(self.wal)
            if (found.st_dev, found.st_ino) != self._inode:
                fd = os.open(self.wal, os.O_RDONLY)  # the old one stays open: another thread may be syncing it
                self._fds.append(fd)
                opened = os.fstat(fd)
                self._inode = (opened.st_dev, opened.st_ino)
            return self._fds[-1]
