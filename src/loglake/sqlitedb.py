"""SQLite plumbing shared by the hot store and the key store: connections and schema migrations."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence


def migrate(conn: sqlite3.Connection, migrations: Sequence[str]) -> None:
    """Apply the migrations this database has not seen yet, each in its own transaction.

    A migration is split into statements at ';', so its comments must not contain one."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > len(migrations):
        raise RuntimeError(
            f"{_db_name(conn)} has schema version {version}, newer than this loglake knows ({len(migrations)}); "
            "upgrade loglake"
        )
    for number, script in enumerate(migrations[version:], start=version + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in script.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


def _db_name(conn: sqlite3.Connection) -> str:
    return conn.execute("PRAGMA database_list").fetchone()[2] or "database"
