"""The detections database of a data dir, `<data-dir>/alerts.db`: alerts and the events that change them.

One SQLite file holds everything the detection engine must keep consistent across a crash: the
alerts, the append-only `alert_events` log that delivery follows, and (as guest tables with their
own `Schema`, next to their code) the rules' run state and the delivery outbox. A rule run advances
its window, changes its alerts and appends their events in ONE transaction, so a restart neither
repeats nor loses a window or an alert; delivery then reads `alert_events` after its own cursor
(the transactional-outbox pattern), so an event is never delivered unless the change that made it
was committed.

Times are integer milliseconds since the epoch (UTC); lists and objects are JSON text.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from loglake.private_files import private_database
from loglake.sqlitedb import migrate, use_wal

ALERTS_DB = "alerts.db"
ALERT_STATUSES = ("open", "acknowledged", "resolved", "suppressed")
# An alert's title is cut to this (with an ellipsis) where it is made: a rule's `alert_title` may show a
# whole record's message, and a title is a list's line, a mail's subject, a webhook's field.
MAX_TITLE_CHARS = 256
# What happened to an alert; each is one row of `alert_events`, in commit order (`seq`).
EVENT_KINDS = ("trigger", "update", "acknowledge", "resolve")

MIGRATIONS = (
    """
    CREATE TABLE alerts (
        id TEXT PRIMARY KEY,               -- unique, sortable by creation (see loglake.ids)
        rule_id TEXT NOT NULL,
        rule_title TEXT NOT NULL,
        title TEXT NOT NULL,               -- the rule's title template, rendered for this alert
        level TEXT NOT NULL,               -- informational, low, medium, high, critical
        tags TEXT NOT NULL,                -- JSON array of the rule's tags
        status TEXT NOT NULL,              -- one of ALERT_STATUSES
        dedup_key TEXT NOT NULL,
        group_values TEXT NOT NULL,        -- JSON object: the rule's group-by values
        first_seen_ms INTEGER NOT NULL,    -- earliest matching record
        last_seen_ms INTEGER NOT NULL,     -- latest matching record
        match_count INTEGER NOT NULL,
        window_start_ms INTEGER NOT NULL,  -- the windows evaluated, first start to last end (exclusive)
        window_end_ms INTEGER NOT NULL,
        evidence TEXT NOT NULL,            -- JSON array: up to the rule's `evidence` matching records
        query TEXT NOT NULL,               -- the SQL that found them
        runbook TEXT,
        destinations TEXT,                 -- JSON array: the rule's override of the routes, or NULL
        created_ms INTEGER NOT NULL,
        updated_ms INTEGER NOT NULL,
        status_by TEXT,                    -- who last changed the status (a key name, "rule", ...)
        status_note TEXT,
        status_ms INTEGER
    );
    CREATE INDEX alerts_by_dedup_key ON alerts (rule_id, dedup_key, last_seen_ms);
    CREATE INDEX alerts_by_status ON alerts (status, updated_ms);
    CREATE TABLE alert_events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        alert_id TEXT NOT NULL REFERENCES alerts (id),
        kind TEXT NOT NULL,                -- one of EVENT_KINDS
        at_ms INTEGER NOT NULL
    );
    CREATE INDEX alert_events_by_alert ON alert_events (alert_id, seq)
    """,
    # What the event's alert said of its status when the event was made: a delivery routed after a
    # later change (an acknowledge resolved within a second) still describes its own event. NULL on
    # events written before this column existed (their delivery reads the alert's).
    """
    ALTER TABLE alert_events ADD COLUMN status TEXT;
    ALTER TABLE alert_events ADD COLUMN status_by TEXT;
    ALTER TABLE alert_events ADD COLUMN status_note TEXT;
    ALTER TABLE alert_events ADD COLUMN status_ms INTEGER
    """,
)
# The alert columns each event keeps as they were when it was made.
EVENT_STATUS_COLUMNS = ("status", "status_by", "status_note", "status_ms")


def append_event(conn: sqlite3.Connection, alert_id: str, kind: str, now_ms: int) -> None:
    """Append an `alert_events` row for the alert's change just written (in the caller's transaction),
    with the alert's status, who set it and the note as they are now."""
    columns = ", ".join(EVENT_STATUS_COLUMNS)
    conn.execute(
        f"INSERT INTO alert_events (alert_id, kind, at_ms, {columns}) SELECT id, ?, ?, {columns} FROM alerts"
        " WHERE id = ?",
        (kind, now_ms, alert_id),
    )


BUSY_TIMEOUT_S = 10.0  # how long a write waits for another process's write (then "database is locked")


def open_alerts_db(data_dir: Path) -> sqlite3.Connection:
    """A connection to the data dir's detections database (made 0600, WAL, fully synced commits:
    an alert acknowledged to a user or a window marked done must survive a power cut).
    Autocommit mode: write through `loglake.sqlitedb.write_transaction`."""
    path = private_database(Path(data_dir) / ALERTS_DB)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_S)
    use_wal(conn)
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    migrate(conn, MIGRATIONS)
    return conn
