"""SQLite hot store: WAL, one writer thread with group commit, reader connections per thread.

Every write goes through one thread that drains all pending requests into a single transaction,
so N concurrent requests cost one commit (and one fsync with durability "full"), and a request's
future resolves only after COMMIT returns. With durability "full" SQLite fsyncs the WAL inside
COMMIT (synchronous FULL), before the transaction counts as committed. A kill -9 at any moment
therefore loses nothing that was acknowledged, nor does a power cut with durability "full": SQLite's
WAL either has the committed transaction or rolls the partial one back.

Why the fsync is SQLite's, inside COMMIT, although the next commit then waits for it: the commit and
its fsync are then one call that runs without the GIL, and the writer needs the GIL once per group.
Syncing after COMMIT on threads of its own (so that commits need not wait for syncs) took three more
threads and GIL hand-offs per group, each waiting for the event loop to let go of the GIL: under 32
single-record clients (B1) a group's median time from commit to acknowledgement was ~1 ms for a
0.17 ms fdatasync, and the server needed ~7% more CPU and twice the thread wake-ups per request, for
no more requests answered. (On a disk whose fsync is much slower than a commit, overlapping syncs
would pay again.)

A failed fsync fails its COMMIT, whose transaction SQLite then does not count as committed (nor shows
to readers): the group's requests get an error, and what was acknowledged before was synced before.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

from loglake.ids import format_uuid, join_id, smallest_high, split_id, timestamp_of_high
from loglake.model import NewRecord, StoredRecord
from loglake.private_files import private_database
from loglake.sqlitedb import Schema, migrate, migrate_schema, telling_damage, use_wal
from loglake.store.base import HotStore, RecentQuery, ScanKey, StoreUnavailable, refused_write
from loglake.store.sqlite_checkpoints import BUSY_TIMEOUT_MS, WalCheckpoints, use_own_checkpoints
from loglake.store.sqlite_jobs import WriteJob, fail, settle, write_group
from loglake.store.sqlite_reads import ReaderConnections, Snapshot, read_columns, read_rows, snapshot_of
from loglake.store.sqlite_rows import (
    COLUMNS,
    FLUSHED_CLIENT_ID,
    INT64_LIMIT,
    MIGRATIONS,
    due_rows,
    recent_rows,
    stored,
)
from loglake.store.sqlite_space import (
    RECLAIM_PAGES_PER_TURN,
    free_pages,
    give_back,
    reclaim_due,
    use_incremental_vacuum,
)

T = TypeVar("T")
MAX_ROWS_PER_COMMIT = 50_000
_STOP = object()
_SQLITE_MAX_PAGE_COUNT = 4294967294

# SQLite conditions that mean "cannot write now" rather than "bad request" or a bug.
_UNAVAILABLE = {
    "SQLITE_FULL": "the disk or the hot store's size cap (max_store_mb) is full: free space on the data dir's disk, or "
    "raise max_store_mb",
    "SQLITE_READONLY": "the database is read-only",
    "SQLITE_CANTOPEN": "the database file cannot be opened",
    "SQLITE_BUSY": "the database is locked by another process",
    "SQLITE_IOERR": "the disk reported an I/O error",
}


def unavailable_reason(error: sqlite3.Error) -> str | None:
    name = getattr(error, "sqlite_errorname", "") or ""
    for prefix, reason in _UNAVAILABLE.items():
        if name.startswith(prefix):
            return reason
    text = str(error).lower()
    if "disk is full" in text or "readonly" in text or "disk i/o" in text:
        return str(error)
    return None


def write_refusal(error: BaseException) -> str | None:
    """Why a SQLite database (keys, sessions, alerts...) or a file refused a write, when that means "not now";
    None for any other error."""
    if isinstance(error, sqlite3.Error):
        return unavailable_reason(error)
    if isinstance(error, OSError):
        return refused_write(error)
    return None


class SQLiteHotStore(WalCheckpoints, HotStore):
    SERVICE_KEY = False  # no index by service: why in sqlite_rows.MIGRATIONS, its last step

    def __init__(
        self,
        path: Path,
        *,
        durability: str = "full",
        max_size_bytes: int = 0,
        on_commit: Callable[[int, float], None] | None = None,
    ) -> None:
        self.path = Path(path)
        private_database(self.path)
        self._synchronous = "FULL" if durability == "full" else "NORMAL"  # see the module docstring
        self._max_size_bytes = max_size_bytes
        self._on_commit = on_commit
        self._schemas: set[str] = set()  # guest schemas brought up to date (use_schema)
        self._readers = ReaderConnections(functools.partial(reader_connection, self.path))
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()  # lists of write jobs, tasks, _STOP
        self._loop_jobs: list[WriteJob] = []  # the event loop's writes not yet handed over
        with telling_damage(self.path):  # (the first statement reads its first page)
            self._writer = self._connect()
        use_incremental_vacuum(self._writer, self.path)
        use_wal(self._writer)
        use_own_checkpoints(self._writer)
        migrate(self._writer, MIGRATIONS)
        self._apply_size_cap()
        self._thread = threading.Thread(target=self._write_loop, name="loglake-sqlite-writer", daemon=True)
        self._thread.start()
        self._stopping = threading.Event()
        self._rewind_queued = threading.Event()
        self._give_back_queued = threading.Event()
        self._checkpointer = threading.Thread(
            target=self._checkpoint_loop, name="loglake-sqlite-checkpoint", daemon=True
        )
        self._checkpointer.start()

    # -- connections ---------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        conn = _connection(self.path)
        conn.execute(f"PRAGMA synchronous = {self._synchronous}")
        return conn

    def _apply_size_cap(self) -> None:
        page_size = self._writer.execute("PRAGMA page_size").fetchone()[0]
        pages = max(1, self._max_size_bytes // page_size) if self._max_size_bytes else _SQLITE_MAX_PAGE_COUNT
        self._writer.execute(f"PRAGMA max_page_count = {pages}")

    def use_schema(self, schema: Schema) -> None:
        """Bring another package's tables in this database up to date (the lake's catalog, the Amplify
        collector's state), once per store: each package that keeps tables here asks before using them."""
        if schema.name not in self._schemas:
            self.run_in_writer(lambda conn: migrate_schema(conn, schema))
            self._schemas.add(schema.name)

    def set_max_size(self, max_size_bytes: int) -> None:
        """Change the size cap at run time (0 = none), before the next write."""
        self._max_size_bytes = max_size_bytes
        self.run_in_writer(lambda conn: self._apply_size_cap())

    def run_in_writer(self, task: Callable[[sqlite3.Connection], T]) -> T:
        """Run task(connection) on the writer thread, between group commits, and return its result:
        other write paths (the lake flush) stay serialized with ingest without a second writer."""
        return self.queue_for_writer(task).result()

    def in_write_transaction(self, task: Callable[[sqlite3.Connection], T]) -> Future[T]:
        """Queue task(connection) for the writer thread inside one transaction (rolled back if it raises)."""

        def transaction(conn: sqlite3.Connection) -> T:
            conn.execute("BEGIN IMMEDIATE")
            result = task(conn)
            conn.execute("COMMIT")
            return result

        return self.queue_for_writer(transaction)

    def probe_write(self) -> Future[None]:
        """HotStore.probe_write: the schema's version written again as it is, a page through the WAL and a commit,
        which a full disk, a quota or a read-only file system refuses as it refuses records."""

        def same_version(conn: sqlite3.Connection) -> None:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            conn.execute(f"PRAGMA user_version = {int(version)}")

        return self.in_write_transaction(same_version)

    def queue_for_writer(self, task: Callable[[sqlite3.Connection], T]) -> Future[T]:
        """run_in_writer without waiting: these tasks run in the order they are queued (ingest jobs
        gathered into the same group may commit after them)."""
        done: Future[T] = Future()

        def run() -> None:
            try:
                done.set_result(task(self._writer))
            except BaseException as e:
                self._rollback()
                done.set_exception(self._unavailable(e) if isinstance(e, sqlite3.Error) else e)

        if not self._thread.is_alive():
            raise StoreUnavailable("the hot store is closed")
        self._jobs.put(run)
        return done

    def read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        """A read-only query on this thread's reader connection (one consistent snapshot)."""
        return read_rows(self._readers.get(), sql, params)

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[Snapshot]:
        """Reads on this thread inside the block, and through the Snapshot it gives from any thread, see
        ONE snapshot of the database (a read transaction), e.g. hot rows and the lake catalog: a flush
        committing meanwhile cannot show a record twice."""
        with snapshot_of(self._readers.get()) as held:
            yield held

    # -- writes --------------------------------------------------------------------------------

    def submit(self, records: Sequence[NewRecord]) -> Future[list[bytes]]:
        job = WriteJob(records)
        self._queue([job])
        assert job.future is not None
        return job.future

    def write(self, records: Sequence[NewRecord]) -> asyncio.Future[list[bytes]]:
        loop = asyncio.get_running_loop()
        job = WriteJob(records, loop.create_future())
        if not self._loop_jobs:
            loop.call_soon(self._hand_over_loop_jobs)
        self._loop_jobs.append(job)
        assert job.waiter is not None
        return job.waiter

    def _hand_over_loop_jobs(self) -> None:
        """The writes the event loop's requests asked for in one round of it, handed to the writer as one item:
        a hand-over wakes the writer's thread, a system call made with the GIL held (6 % of the event loop's
        time in B1 when each request handed its own)."""
        jobs, self._loop_jobs = self._loop_jobs, []
        if jobs:  # (none when close() handed them over first)
            self._queue(jobs)

    def _queue(self, jobs: list[WriteJob]) -> None:
        if not self._thread.is_alive():
            fail(jobs, StoreUnavailable("the hot store is closed"))
        else:
            self._jobs.put(jobs)

    def _write_loop(self) -> None:
        jobs = self._jobs
        while True:
            first = jobs.get()
            if first is _STOP:
                return
            if callable(first):
                first()
                continue
            group: list[WriteJob] = first
            rows, stop = sum(len(job.records) for job in group), False
            while rows < MAX_ROWS_PER_COMMIT:
                try:
                    job = jobs.get_nowait()
                except queue.Empty:
                    break
                if job is _STOP:
                    stop = True
                    break
                if callable(job):
                    job()
                    continue
                group += job
                rows += sum(len(one.records) for one in job)
            self._commit_group(group)
            if stop:
                return

    def _commit_group(self, group: list[WriteJob]) -> None:
        started = time.perf_counter()
        try:
            results = write_group(self._writer, group, self._rollback)
        except sqlite3.IntegrityError:
            if len(group) == 1:
                fail(group, RuntimeError("duplicate log id; retry the request"))
                return
            for job in group:  # isolate the one job that collides, the rest still land
                self._commit_group([job])
            return
        except sqlite3.Error as e:
            fail(group, self._unavailable(e))
            return
        if self._on_commit is not None:
            self._on_commit(sum(len(j.records) for j in group), time.perf_counter() - started)
        settle(group, results)

    def _rollback(self) -> None:
        try:
            if self._writer.in_transaction:
                self._writer.execute("ROLLBACK")
        except sqlite3.Error:
            # A connection that cannot roll back is not trusted again: reopen it (the WAL recovers).
            self._writer.close()
            self._writer = self._connect()
            self._apply_size_cap()

    def _unavailable(self, error: sqlite3.Error) -> Exception:
        reason = unavailable_reason(error)
        if reason is None:
            return error
        return StoreUnavailable(f"the hot store cannot accept writes: {reason}; nothing was written", str(self.path))

    # -- reads ---------------------------------------------------------------------------------

    def flushed_id_of(self, client_id: bytes) -> bytes | None:
        """The log id of a record sent with this client id and since moved to the lake, if any."""
        found = self.read(FLUSHED_CLIENT_ID, (format_uuid(client_id),))
        return join_id(*found[0]) if found else None

    def get(self, log_id: bytes) -> StoredRecord | None:
        high, low = split_id(log_id)
        rows = []
        if high < INT64_LIMIT:  # else not an id we minted (those start with a 48-bit time); maybe a client id
            rows = self.read(f"SELECT {COLUMNS} FROM logs WHERE id_hi = ? AND id_lo = ?", (high, low))
        if not rows:
            rows = self.read(
                f"SELECT {COLUMNS} FROM logs INDEXED BY logs_by_client_id"
                " WHERE client_id = ? AND client_id IS NOT NULL",
                (format_uuid(log_id),),
            )
        return stored(rows[0]) if rows else None

    def scan(self, key: ScanKey, query: RecentQuery) -> Iterator[StoredRecord]:
        return (r for r in map(stored, self.read(*recent_rows(key, query))) if r is not None)

    def count(self) -> int:
        return self._readers.get().execute("SELECT count(*) FROM logs").fetchone()[0]

    # -- the lake's reads and writes of hot rows -------------------------------------------------
    # SQLite-specific on purpose: the lake moves and queries rows by the hundred thousand, as columns.

    def due_columns(self, before_ms: int, after: tuple[int, int] | None, limit: int) -> list[list] | None:
        """One flush round (sqlite_rows.due_rows) as one list per column, None when nothing is due."""
        return read_columns(self._readers.get(), *due_rows(before_ms, after, limit))

    def count_before(self, before_ms: int, at_most: int | None = None) -> int:
        """How many records are timestamped before `before_ms` (counting stops at `at_most`)."""
        sql = "SELECT count(*) FROM (SELECT 1 FROM logs WHERE id_hi <= ? LIMIT ?)"
        # (<= the one below: a time past every id's, as an ask's `date <= '9999-12-31'` ends, is all of them)
        highest = min(smallest_high(before_ms), INT64_LIMIT) - 1
        return self.read(sql, (highest, -1 if at_most is None else at_most))[0][0]

    def newest_ms(self, skip: int = 0, before_ms: int | None = None) -> int | None:
        """The time of the newest record (timestamped before `before_ms`, if given) after the `skip`
        newest, None when there are no more."""
        # As in scan(): not a text id written by hand.
        below = INT64_LIMIT if before_ms is None else min(smallest_high(before_ms), INT64_LIMIT)
        found = self.read(
            "SELECT id_hi FROM logs WHERE id_hi <= ? ORDER BY id_hi DESC, id_lo DESC LIMIT 1 OFFSET ?",
            (below - 1, skip),
        )
        return timestamp_of_high(int(found[0][0])) if found else None

    def close(self) -> None:
        self._stopping.set()
        self._checkpointer.join()
        if self._thread.is_alive():
            self._hand_over_loop_jobs()  # (writes asked for before the close are written)
            self._jobs.put(_STOP)
            self._thread.join()
        with contextlib.suppress(sqlite3.Error):
            free, pages = free_pages(self._writer)
            if reclaim_due(free, pages):  # e.g. `loglake flush --all` ends here
                for _ in range(free // RECLAIM_PAGES_PER_TURN + 1):  # in pieces: a server may be writing
                    if not give_back(self._writer, RECLAIM_PAGES_PER_TURN):
                        break
            self._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._writer.close()
        self._readers.close()


def _connection(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000, cached_statements=64
    )
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    return conn


def reader_connection(path: Path) -> sqlite3.Connection:
    """A connection that reads the hot store and cannot write it, with the functions its reads call."""
    conn = _connection(path)
    conn.execute("PRAGMA query_only = 1")
    conn.create_function("unicode_lower", 1, _unicode_lower, deterministic=True)
    return conn


def _unicode_lower(text: str | None) -> str | None:
    return None if text is None else text.lower()
