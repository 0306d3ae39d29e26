"""Giving the space the hot store frees back to the file system.

Records only pass through hot.db: a flush deletes them by the hundred thousand, and SQLite keeps the
pages they took inside the file, as free pages for later inserts, so the file stayed at its largest
(256 MB after 1M records, all of them since moved to a 25 MB lake). With `auto_vacuum = INCREMENTAL`
the file keeps a map of its pages, and `PRAGMA incremental_vacuum(N)` moves up to N pages from its end
into free ones and cuts the end off, a bounded piece of work at a time (SQLiteHotStore runs one piece
per writer job, between group commits).

When: only once at least half of the file is free (RECLAIM_SHARE). While records come and go at a
steady rate, a flush frees pages that the next inserts take again, and moving pages out of the way
would only be undone; once the hot store has shrunk (a backlog moved to the lake, ingest stopped),
its pages go back.

A database made before this was created without the page map; it gets one by a VACUUM (a rewrite of
the whole file) the first time this version opens it. The WAL is cut back by SQLiteHotStore's
checkpoints (to nothing once writes pause).
"""

from __future__ import annotations

import logging
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("loglake.store")

INCREMENTAL = 2  # PRAGMA auto_vacuum's value for INCREMENTAL
RECLAIM_SHARE = 0.5
RECLAIM_MIN_PAGES = 1024  # 4 MiB of 4 KiB pages: below this, not worth moving pages for
# One writer job's work: with 4 KiB pages, 4 MiB moved or cut off, tens of milliseconds.
RECLAIM_PAGES_PER_TURN = 1024
RECLAIM_SETTLE_SECONDS = 2.0
# A database rewrite (the one-time VACUUM) this large is announced: it takes seconds.
ANNOUNCE_REWRITE_BYTES = 64 * 2**20


def use_incremental_vacuum(conn: sqlite3.Connection, path: Path) -> None:
    """At open, before the schema's tables: a new database gets the page map from its first table on,
    one made before it by a VACUUM, once. When that cannot be done now (another process is writing,
    the disk has no room for the copy a VACUUM makes), the database is used as it is and the next
    open tries again."""
    if conn.execute("PRAGMA auto_vacuum").fetchone()[0] == INCREMENTAL:
        return
    conn.execute("PRAGMA auto_vacuum = INCREMENTAL")  # enough while the database has no table yet
    if not conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
        return
    size = path.stat().st_size
    if size >= ANNOUNCE_REWRITE_BYTES:
        log.warning(
            "%s: rewriting it once (%d MB) so that the space of records moved to the lake goes back to the "
            "disk; this takes a few seconds per 100 MB and needs as much free disk meanwhile",
            path.name,
            size // 10**6,
        )
    started = time.perf_counter()
    try:
        conn.execute("VACUUM")
    except sqlite3.Error as e:
        log.warning("%s: not rewritten now (%s); it keeps its freed space until a later start", path.name, e)
        return
    if size >= ANNOUNCE_REWRITE_BYTES:
        log.warning("%s: rewritten in %.1f s", path.name, time.perf_counter() - started)


def reclaim_due(free_pages: int, page_count: int) -> bool:
    """Whether enough of the file is free to give it back (see the module's description)."""
    return free_pages >= max(RECLAIM_MIN_PAGES, page_count * RECLAIM_SHARE)


def free_pages(conn: sqlite3.Connection) -> tuple[int, int]:
    """The database's free pages and all its pages."""
    return conn.execute("PRAGMA freelist_count").fetchone()[0], conn.execute("PRAGMA page_count").fetchone()[0]


def give_back(conn: sqlite3.Connection, pages: int) -> int:
    """Give up to `pages` free pages back to the file system, as one transaction of its own (no
    transaction may be open on `conn`); returns how many free pages are left. The pragma frees one
    page per step, and sqlite3's execute() takes one step of a statement without result columns:
    executescript() runs it to the end."""
    conn.executescript(f"PRAGMA incremental_vacuum({pages:d})")
    return free_pages(conn)[0]


@dataclass
class LastChange:
    """When a number watched round after round last changed (or, with `rises_only`, last grew)."""

    value: int = 0
    at: float = field(default_factory=time.monotonic)

    def seconds_since(self, value: int, rises_only: bool = False) -> float:
        """Take the number's new value; how long it has kept still since (0 when it just changed)."""
        if value > self.value or (value != self.value and not rises_only):
            self.at = time.monotonic()
        self.value = value
        return time.monotonic() - self.at
