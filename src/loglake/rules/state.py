"""What the scheduler remembers per rule, in the detections database (alerts.db, see alerts/db.py):
where its last evaluated window ended, how many runs in a row failed and when the last of them did,
and a record of every run.

A run is recorded twice: `claim` inserts it as `running` before the rule's SQL starts (a process
killed during the run leaves it so, and the next round marks it `interrupted`), and `finish` writes
its outcome in the transaction that also moves the window (`advance`) or counts a failure
(`count_failure`) and changes the alerts. Those take the window's end as it was when the run was
planned and change nothing if it has moved since (a compare-and-set), so two processes on one data
dir can never both commit a window.

Run records are kept per rule up to KEEP_RUNS, the newest. A failed run that repeats the rule's
previous record (a failure with the same error) replaces it and counts one more attempt, so a rule
that keeps failing the same way keeps one record of it, not a list of copies pushing the others out.
Failures in a row are of one window (the window moves only with a good run), but the range they read
moves past the catch-up bound (the first window kept moves at each firing): the record spans them all.
"""

from __future__ import annotations

import os
import socket
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

from loglake.alerts.db import ALERTS_DB, open_alerts_db
from loglake.sqlitedb import Schema, migrate_schema

T = TypeVar("T")
KEEP_RUNS = 500  # run records kept per rule
OUTCOMES = ("running", "ok", "error", "interrupted", "skipped", "superseded")

RULES_SCHEMA = Schema(
    "rules",
    (
        """
        CREATE TABLE rule_state (
            rule_id TEXT PRIMARY KEY,
            window_end_ms INTEGER NOT NULL,    -- end (exclusive) of the last window evaluated (or start of the first)
            failures INTEGER NOT NULL          -- runs in a row that failed
        ) WITHOUT ROWID;
        CREATE TABLE rule_runs (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            rule_id TEXT NOT NULL,
            outcome TEXT NOT NULL,             -- one of OUTCOMES
            since_ms INTEGER NOT NULL,         -- the range evaluated (skipped: the range left out)
            until_ms INTEGER NOT NULL,
            started_ms INTEGER NOT NULL,
            finished_ms INTEGER,
            duration_ms REAL,
            rows_scanned INTEGER,
            bytes_scanned INTEGER,
            files_scanned INTEGER,
            matches INTEGER,
            new_alerts INTEGER,
            error TEXT,
            runner TEXT NOT NULL               -- the process: pid@host
        );
        CREATE INDEX rule_runs_by_rule ON rule_runs (rule_id, id)
        """,
        """
        -- when the last failed run ended (NULL: none since the window moved)
        ALTER TABLE rule_state ADD COLUMN failed_ms INTEGER;
        -- the failed runs of one window, one after the other with one error, that this record stands for
        ALTER TABLE rule_runs ADD COLUMN attempts INTEGER NOT NULL DEFAULT 1
        """,
        """
        -- of several attempts: when the first of them started (started_ms: the last)
        ALTER TABLE rule_runs ADD COLUMN first_started_ms INTEGER
        """,
    ),
)


@dataclass(frozen=True)
class RuleState:
    window_end_ms: int | None
    failures: int
    failed_ms: int | None = None  # when the last of the failures ended: the window is tried again at the next firing


@dataclass(frozen=True)
class RunRecord:
    """One run of a rule over a window, as recorded (and as the scheduler reports it)."""

    id: int
    rule_id: str
    outcome: str
    since_ms: int
    until_ms: int
    started_ms: int
    finished_ms: int | None = None
    duration_ms: float | None = None
    rows_scanned: int | None = None
    bytes_scanned: int | None = None
    files_scanned: int | None = None
    matches: int | None = None
    new_alerts: int | None = None
    error: str | None = None
    attempts: int = 1  # an error: the runs in a row that failed with it (since_ms to until_ms: what they read)
    first_started_ms: int | None = None  # of several attempts: when the first started (started_ms: the last)


@dataclass(frozen=True)
class RuleSummary:
    """What `loglake rules list` shows of a rule's runs."""

    last_run: RunRecord | None  # the latest finished run (not skipped)
    failures: int
    runs: int  # runs kept
    window_end_ms: int | None


def state_of(conn: sqlite3.Connection, rule_id: str) -> RuleState:
    found = conn.execute(
        "SELECT window_end_ms, failures, failed_ms FROM rule_state WHERE rule_id = ?", (rule_id,)
    ).fetchone()
    return RuleState(None, 0) if found is None else RuleState(*found)


def interrupt_unfinished(conn: sqlite3.Connection, now_ms: int) -> int:
    """Mark the runs still `running` as interrupted: called by the holder of the rules lock, so no run
    can be under way (their process died during the run; the window was not moved and runs again)."""
    return conn.execute(
        "UPDATE rule_runs SET outcome = 'interrupted', finished_ms = ?,"
        " error = 'the process stopped during the run; the window runs again' WHERE outcome = 'running'",
        (now_ms,),
    ).rowcount


def claim(
    conn: sqlite3.Connection, rule_id: str, expected_end_ms: int | None, since_ms: int, until_ms: int, now_ms: int
) -> int | None:
    """Record a run as started, if the rule's window still ends at `expected_end_ms` (None: the rule
    never ran; its first window's start becomes where its windows begin, so a first run that fails is
    tried again rather than passed over); its id, or None when another process moved the window since.
    In the caller's write transaction."""
    if expected_end_ms is None:
        expected_end_ms = since_ms
        conn.execute(
            "INSERT OR IGNORE INTO rule_state (rule_id, window_end_ms, failures) VALUES (?, ?, 0)", (rule_id, since_ms)
        )
    if state_of(conn, rule_id).window_end_ms != expected_end_ms:
        return None
    return conn.execute(
        "INSERT INTO rule_runs (rule_id, outcome, since_ms, until_ms, started_ms, runner)"
        " VALUES (?, 'running', ?, ?, ?, ?)",
        (rule_id, since_ms, until_ms, now_ms, _runner()),
    ).lastrowid


def advance(conn: sqlite3.Connection, rule_id: str, expected_end_ms: int, until_ms: int) -> bool:
    """Move the window's end to `until_ms` and clear the failures, if it still ends at `expected_end_ms`."""
    return (
        conn.execute(
            "UPDATE rule_state SET window_end_ms = ?, failures = 0, failed_ms = NULL"
            " WHERE rule_id = ? AND window_end_ms = ?",
            (until_ms, rule_id, expected_end_ms),
        ).rowcount
        == 1
    )


def count_failure(conn: sqlite3.Connection, rule_id: str, expected_end_ms: int, now_ms: int) -> int | None:
    """One more failed run, ended at `now_ms` (the window stays where it is); the failures in a row, or
    None when another process moved the window since."""
    found = conn.execute(
        "UPDATE rule_state SET failures = failures + 1, failed_ms = ? WHERE rule_id = ? AND window_end_ms = ?"
        " RETURNING failures",
        (now_ms, rule_id, expected_end_ms),
    ).fetchone()
    return None if found is None else found[0]


def finish(conn: sqlite3.Connection, record: RunRecord) -> RunRecord:
    """Write a claimed run's outcome and figures (a failure that repeats the rule's previous record
    replaces it, one more attempt), and drop the rule's oldest records past KEEP_RUNS; the record as
    written."""
    if record.outcome == "error":
        record = _folded(conn, record)
    conn.execute(
        "UPDATE rule_runs SET outcome = ?, finished_ms = ?, duration_ms = ?, rows_scanned = ?, bytes_scanned = ?,"
        " files_scanned = ?, matches = ?, new_alerts = ?, error = ?, attempts = ?, first_started_ms = ?,"
        " since_ms = ? WHERE id = ?",
        (
            record.outcome,
            record.finished_ms,
            record.duration_ms,
            record.rows_scanned,
            record.bytes_scanned,
            record.files_scanned,
            record.matches,
            record.new_alerts,
            record.error,
            record.attempts,
            record.first_started_ms,
            record.since_ms,
            record.id,
        ),
    )
    conn.execute(
        "DELETE FROM rule_runs WHERE rule_id = ? AND id <= "
        "(SELECT id FROM rule_runs WHERE rule_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?)",
        (record.rule_id, record.rule_id, KEEP_RUNS),
    )
    return record


def _folded(conn: sqlite3.Connection, record: RunRecord) -> RunRecord:
    """A failed run with the attempts of the rule's previous record added, that record deleted, when
    that one failed with the same error: from its first attempt and the start of what it read. (Matching
    the window too kept a record per failure past the catch-up bound, where the window read moves at
    each firing: a 1m rule failing for hours filled the kept records with one error.)"""
    previous = conn.execute(
        "SELECT id, outcome, error, attempts, since_ms, started_ms, first_started_ms FROM rule_runs"
        " WHERE rule_id = ? AND id < ? ORDER BY id DESC LIMIT 1",
        (record.rule_id, record.id),
    ).fetchone()
    if previous is None or previous[1:3] != ("error", record.error):
        return record
    conn.execute("DELETE FROM rule_runs WHERE id = ?", (previous[0],))
    since, started, first_started = previous[4:]
    return replace(
        record,
        attempts=previous[3] + 1,
        since_ms=min(since, record.since_ms),
        first_started_ms=started if first_started is None else first_started,
    )


def record_skipped(
    conn: sqlite3.Connection, rule_id: str, since_ms: int, until_ms: int, now_ms: int, why: str
) -> RunRecord:
    """A range the rule will never evaluate (left behind the catch-up bound by downtime or failed runs), visible
    with its runs; `why` says which. The record as written."""
    run_id = conn.execute(
        "INSERT INTO rule_runs (rule_id, outcome, since_ms, until_ms, started_ms, finished_ms, error, runner)"
        " VALUES (?, 'skipped', ?, ?, ?, ?, ?, ?)",
        (rule_id, since_ms, until_ms, now_ms, now_ms, why, _runner()),
    ).lastrowid
    assert run_id is not None
    return RunRecord(run_id, rule_id, "skipped", since_ms, until_ms, now_ms, now_ms, error=why)


_RUN_COLUMNS = (
    "id, rule_id, outcome, since_ms, until_ms, started_ms, finished_ms, duration_ms, rows_scanned, bytes_scanned,"
    " files_scanned, matches, new_alerts, error, attempts, first_started_ms"
)


def runs_of(conn: sqlite3.Connection, rule_id: str, limit: int = KEEP_RUNS) -> list[RunRecord]:
    """A rule's run records, newest first."""
    rows = conn.execute(
        f"SELECT {_RUN_COLUMNS} FROM rule_runs WHERE rule_id = ? ORDER BY id DESC LIMIT ?", (rule_id, limit)
    )
    return [RunRecord(*row) for row in rows]


def summaries(conn: sqlite3.Connection) -> dict[str, RuleSummary]:
    """Every rule's state and latest finished run, by rule id."""
    last = {
        row[1]: RunRecord(*row)
        for row in conn.execute(
            f"SELECT {_RUN_COLUMNS} FROM rule_runs WHERE id IN (SELECT max(id) FROM rule_runs"
            " WHERE outcome IN ('ok', 'error') GROUP BY rule_id)"
        )
    }
    counts = dict(conn.execute("SELECT rule_id, count(*) FROM rule_runs GROUP BY rule_id").fetchall())
    return {
        rule_id: RuleSummary(last.get(rule_id), failures, counts.get(rule_id, 0), end)
        for rule_id, end, failures in conn.execute("SELECT rule_id, window_end_ms, failures FROM rule_state")
    }


def open_state(data_dir: Path) -> sqlite3.Connection:
    """The data dir's alerts.db with these tables in it."""
    conn = open_alerts_db(data_dir)
    migrate_schema(conn, RULES_SCHEMA)
    return conn


def read_summaries(data_dir: Path) -> dict[str, RuleSummary]:
    """`summaries` of a data dir (none, without creating alerts.db, when no rule ever ran there)."""
    return _read(data_dir, summaries, {})


def read_runs(data_dir: Path, rule_id: str, limit: int) -> list[RunRecord]:
    """`runs_of` a rule in a data dir (none, without creating alerts.db, when no rule ever ran there)."""
    return _read(data_dir, lambda conn: runs_of(conn, rule_id, limit), [])


def failed_until(data_dir: Path, rule_id: str) -> int | None:
    """The end of the window the rule's latest run failed over (None: it did not fail, or is running)."""
    latest = read_runs(data_dir, rule_id, 1)
    return latest[0].until_ms if latest and latest[0].outcome == "error" else None


def _read(data_dir: Path, read: Callable[[sqlite3.Connection], T], nothing: T) -> T:
    if not (Path(data_dir) / ALERTS_DB).exists():
        return nothing
    conn = open_state(data_dir)
    try:
        return read(conn)
    finally:
        conn.close()


def _runner() -> str:
    return f"{os.getpid()}@{socket.gethostname()}"
