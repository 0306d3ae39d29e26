"""SQLite plumbing shared by the hot store and the key store: schema migrations.

A database has an owner, whose steps `PRAGMA user_version` counts (the hot store in hot.db, the key
store in keys.db), and may hold other packages' tables beside the owner's: each of those packages keeps
its own Schema next to its code, and its steps are counted per name in `schema_versions`.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Schema:
    """A package's tables in a database it does not own: its migrations, appended to, never edited."""

    name: str
    migrations: Sequence[str]


class SharedConnection:
    """One connection for a process's threads, opened on first use and used by one thread at a time:
    the transactions of an autocommit connection must not interleave (another thread's statements
    would run inside them)."""

    def __init__(self, connect: Callable[[], sqlite3.Connection]) -> None:
        self._connect = connect
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def use(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._conn is None:
                self._conn = self._connect()
            yield self._conn

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


# SQLite's words for a database file it cannot read as one: damaged, or cut short (its errors name no file).
_DAMAGED = ("database disk image is malformed", "file is not a database")
# What to do about one, wherever it is met (a command, the server's answer, /healthz).
RESTORE_FROM_BACKUP = (
    'stop loglake and restore the data dir from a backup (the README\'s "Where the data lives" says how one is taken)'
)


class DamagedDatabase(sqlite3.DatabaseError):
    """A database of the data dir that SQLite finds damaged when it opens it, with the file's path."""

    def __init__(self, path: str, error: sqlite3.DatabaseError) -> None:
        super().__init__(f"{path} is damaged (SQLite: {error})")
        self.path = path


class NewerSchema(RuntimeError):
    """A database of the data dir that a newer loglake migrated past the steps this one knows (a downgrade):
    refused before anything is read or written, since this loglake cannot tell what the newer steps changed."""


def use_wal(conn: sqlite3.Connection, timeout_seconds: float = 10.0) -> None:
    """Put the database in WAL mode. Switching takes an exclusive lock and SQLite answers "database is
    locked" at once, without its busy timeout, when another process holds the database right then (two
    processes opening a new database at the same moment): retry until `timeout_seconds` have passed.
    Every database of the data dir is opened so, so a damaged one is told here (DamagedDatabase)."""
    deadline = time.monotonic() + timeout_seconds
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)
        except sqlite3.DatabaseError as e:
            if not is_damaged(e):
                raise
            ((_, _, path),) = [row for row in conn.execute("PRAGMA database_list") if row[1] == "main"]
            raise DamagedDatabase(path, e) from None


@contextlib.contextmanager
def telling_damage(path: str | Path) -> Iterator[None]:
    """Opening the database at `path`: SQLite's error for a damaged file, which names none, as DamagedDatabase."""
    try:
        yield
    except sqlite3.DatabaseError as e:
        if not is_damaged(e):
            raise
        raise DamagedDatabase(str(path), e) from None


def integrity_problem(conn: sqlite3.Connection) -> str | None:
    """What SQLite's quick_check finds wrong with its database (its first PROBLEM_LINES faults), or None."""
    try:
        lines = [line for (said,) in conn.execute("PRAGMA quick_check") for line in said.splitlines()]
    except sqlite3.DatabaseError as e:  # (not a database at all, or its header damaged)
        return str(e)
    if lines == ["ok"]:
        return None
    more = len(lines) - PROBLEM_LINES
    return "; ".join(lines[:PROBLEM_LINES]) + (f" (and {more} more)" if more > 0 else "")


# Lines of `PRAGMA quick_check` kept for a damaged database (it lists every fault it finds).
PROBLEM_LINES = 5


def is_damaged(error: BaseException) -> bool:
    """Whether the error is SQLite's for a database file it cannot read as one (damaged, or cut short)."""
    return isinstance(error, sqlite3.DatabaseError) and str(error) in _DAMAGED


def migrate(conn: sqlite3.Connection, migrations: Sequence[str]) -> None:
    """Apply the owner's migrations this database has not seen yet, each in its own transaction."""
    _apply(conn, migrations, _user_version, _set_user_version)


def migrate_schema(conn: sqlite3.Connection, schema: Schema) -> None:
    """Apply a guest package's migrations this database has not seen yet, each in its own transaction."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_versions (name TEXT PRIMARY KEY, version INTEGER NOT NULL) WITHOUT ROWID"
    )

    def version(conn: sqlite3.Connection) -> int:
        found = conn.execute("SELECT version FROM schema_versions WHERE name = ?", (schema.name,)).fetchone()
        return found[0] if found else 0

    def set_version(conn: sqlite3.Connection, number: int) -> None:
        conn.execute(
            "INSERT INTO schema_versions (name, version) VALUES (?, ?)"
            " ON CONFLICT (name) DO UPDATE SET version = excluded.version",
            (schema.name, number),
        )

    _apply(conn, schema.migrations, version, set_version, f"its {schema.name} tables")


def _apply(
    conn: sqlite3.Connection,
    migrations: Sequence[str],
    version: Callable[[sqlite3.Connection], int],
    set_version: Callable[[sqlite3.Connection, int], None],
    what: str = "its schema",
) -> None:
    """Each step in a transaction that first reads the version, so that two processes opening the
    database at once apply every step once. A step is split into statements at ';', so its comments
    must not contain one. A step that fails on a database quick_check finds damaged is DamagedDatabase: a damaged
    page can read as a version never applied (schema_versions read empty), and the step's own error ("duplicate
    column name") was a traceback that named no file."""
    try:
        _apply_steps(conn, migrations, version, set_version, what)
    except sqlite3.DatabaseError as e:
        if isinstance(e, DamagedDatabase) or (problem := integrity_problem(conn)) is None:
            raise
        raise DamagedDatabase(_db_name(conn), sqlite3.DatabaseError(problem)) from None


def _apply_steps(
    conn: sqlite3.Connection,
    migrations: Sequence[str],
    version: Callable[[sqlite3.Connection], int],
    set_version: Callable[[sqlite3.Connection, int], None],
    what: str,
) -> None:
    """Apply the migrations this database has not seen yet, one step a transaction."""
    while True:
        with write_transaction(conn):
            done = version(conn)
            if done > len(migrations):
                raise NewerSchema(
                    f"{_db_name(conn)} has {what} at version {done}, newer than this loglake knows "
                    f"({len(migrations)}); upgrade loglake"
                )
            if done == len(migrations):
                return
            for statement in migrations[done].split(";"):
                if statement.strip():
                    conn.execute(statement)
            set_version(conn, done + 1)


@contextlib.contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A transaction that takes the database's write lock at once (BEGIN IMMEDIATE), so what it reads
    cannot change before it writes, in this process or another; rolled back if the block raises.
    The connection must be in autocommit mode (isolation_level=None)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _user_version(conn: sqlite3.Connection) -> int:
    return conn.execute("PRAGMA user_version").fetchone()[0]


def _set_user_version(conn: sqlite3.Connection, number: int) -> None:
    conn.execute(f"PRAGMA user_version = {number:d}")


def _db_name(conn: sqlite3.Connection) -> str:
    return conn.execute("PRAGMA database_list").fetchone()[2] or "database"
