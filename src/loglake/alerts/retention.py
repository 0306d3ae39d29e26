"""Alert retention: resolved alerts leave `alerts.db` once resolved before the retention's start
(`alerts_retention_days`), with what is theirs alone: their evidence (in the alert's row), their events and their
sent deliveries (with the alert copies those send and which destinations heard of them). Without it every alert
ever raised stayed for good, on a server that runs for years.

What is kept whatever its age: an alert not resolved (open, acknowledged or suppressed: a rule still joins new
matches to it), and one with a delivery waiting (pending, sending) or dead-lettered, which a person may retry
(the outbox forgets a dead one after delivery.KEEP_FINISHED_MS; its alert goes at a run after that).

Deleting goes in transactions of EXPIRE_BATCH alerts, so the rule runs, the delivery worker and people's changes
wait for the writer a few milliseconds at most, and a stop is heard between batches.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from loglake.alerts.db import ALERTS_DB, open_alerts_db
from loglake.alerts.outbox import SCHEMA as OUTBOX_SCHEMA
from loglake.sqlitedb import migrate_schema, write_transaction

EXPIRE_BATCH = 200  # alerts deleted per write transaction (each with up to 20 evidence records, its events, ...)

# The alerts retention deletes: resolved before the cutoff (a resolved alert changes no more: `updated_ms` is when it
# was resolved, and alerts_by_status finds them), with no delivery a person may still want.
_EXPIRED = (
    "FROM alerts a WHERE a.status = 'resolved' AND a.updated_ms < ? AND NOT EXISTS (SELECT 1 FROM deliveries d"
    " WHERE d.alert_id = a.id AND d.state IN ('pending', 'sending', 'dead'))"
)


def count_expired_alerts(data_dir: Path, before_ms: int) -> int:
    """How many alerts expire_alerts would delete (`loglake retention --dry-run`)."""
    with _expiring(data_dir, before_ms) as conn:
        return 0 if conn is None else conn.execute(f"SELECT count(*) {_EXPIRED}", (before_ms,)).fetchone()[0]


def expire_alerts(
    data_dir: Path, before_ms: int, stop: threading.Event | None = None, batch: int = EXPIRE_BATCH
) -> int:
    """Delete the resolved alerts of the data dir resolved before `before_ms` (0: none) and what is theirs alone
    (see the module doc), `batch` alerts a transaction, until none is left or `stop` is set; how many went. A data
    dir without alerts.db is left without one."""
    deleted = 0
    with _expiring(data_dir, before_ms) as conn:
        while conn is not None and (stop is None or not stop.is_set()):
            with write_transaction(conn):
                ids = [row[0] for row in conn.execute(f"SELECT a.id {_EXPIRED} LIMIT ?", (before_ms, batch))]
                _delete(conn, ids)
            deleted += len(ids)
            if len(ids) < batch:
                break
    return deleted


@contextmanager
def _expiring(data_dir: Path, before_ms: int) -> Iterator[sqlite3.Connection | None]:
    """alerts.db opened for a retention that keeps the alerts resolved from `before_ms` on; None when there is
    nothing to look at (no cutoff, or no alerts.db: none is made)."""
    if not before_ms or not (Path(data_dir) / ALERTS_DB).exists():
        yield None
        return
    conn = open_alerts_db(data_dir)
    try:
        migrate_schema(conn, OUTBOX_SCHEMA)  # (a data dir whose delivery never ran has no outbox yet)
        yield conn
    finally:
        conn.close()


def _delete(conn: sqlite3.Connection, ids: list[str]) -> None:
    if not ids:
        return
    marks = ", ".join("?" * len(ids))
    events = f"SELECT seq FROM alert_events WHERE alert_id IN ({marks})"
    # (only sent deliveries are left: _EXPIRED passed over the alerts with others)
    conn.execute(f"DELETE FROM deliveries WHERE alert_id IN ({marks})", ids)
    conn.execute(f"DELETE FROM delivery_alerts WHERE event_seq IN ({events})", ids)
    conn.execute(f"DELETE FROM delivery_told WHERE alert_id IN ({marks})", ids)
    # Events first (they reference their alert). An event not routed yet is passed over as any of a deleted alert
    # (Outbox.route), and AUTOINCREMENT never gives its seq again, so the outbox's cursor stays right.
    conn.execute(f"DELETE FROM alert_events WHERE alert_id IN ({marks})", ids)
    conn.execute(f"DELETE FROM alerts WHERE id IN ({marks})", ids)
