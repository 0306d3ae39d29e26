"""SQLite plumbing shared by the hot store and the key store: connections and schema migrations."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator, Sequence


def migrate(conn: sqlite3.Connection, migrations: Sequence[str]) -> None:
    """Apply the migrations this database has not seen yet, each in its own transaction.

    The version is read again under the write lock, so two processes opening a new database at once
    apply each migration once. A migration is split into statements at ';', so its comments must not
    contain one."""
    while (version := _version(conn, migrations)) < len(migrations):
        with write_transaction(conn):
            version = _version(conn, migrations)
            if version == len(migrations):
                break
            for statement in migrations[version].split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {version + 1}")


def _version(conn: sqlite3.Connection, migrations: Sequence[str]) -> int:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > len(migrations):
        raise RuntimeError(
            f"{_db_name(conn)} has schema version {version}, newer than this loglake knows ({len(migrations)}); "
            "upgrade loglake"
        )
    return version


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


def _db_name(conn: sqlite3.Connection) -> str:
    return conn.execute("PRAGMA database_list").fetchone()[2] or "database"
