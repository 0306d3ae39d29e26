"""Alerts written straight into alerts.db, as the detection engine writes them (the schema of
loglake.alerts.db), so the API, the CLI and SQL can be tested on alerts with known values."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from loglake.ids import format_uuid, uuid7_bytes
from loglake.sqlitedb import write_transaction

T0 = 1_764_756_000_000  # 2025-12-03T10:00:00Z


def insert_alert(conn: sqlite3.Connection, created_ms: int = T0, **fields: Any) -> str:
    """One alert (with its trigger event), made at `created_ms`; `fields` replace the defaults. Its id."""
    row: dict[str, Any] = {
        "id": format_uuid(uuid7_bytes(created_ms)),
        "rule_id": "5f4c8e12-7a8b-4c2d-9e0f-1a2b3c4d5e6f",
        "rule_title": "Errors burst",
        "title": "Errors burst in api",
        "level": "high",
        "tags": ["attack.t1110", "attack.credential-access"],
        "status": "open",
        "dedup_key": "api",
        "group_values": {"service": "api"},
        "first_seen_ms": created_ms - 60_000,
        "last_seen_ms": created_ms - 1_000,
        "match_count": 3,
        "window_start_ms": created_ms - 300_000,
        "window_end_ms": created_ms,
        "evidence": [{"log_id": "0193a0b0-0000-7000-8000-000000000001", "message": "boom", "service": "api"}],
        "query": "SELECT * FROM logs WHERE severity = 'error'",
        "runbook": "https://runbooks.example/errors",
        "destinations": None,
        "created_ms": created_ms,
        "updated_ms": created_ms,
    } | fields
    for name in ("tags", "group_values", "evidence"):
        row[name] = json.dumps(row[name])
    if row["destinations"] is not None:
        row["destinations"] = json.dumps(row["destinations"])
    names = ", ".join(row)
    with write_transaction(conn):
        conn.execute(f"INSERT INTO alerts ({names}) VALUES ({', '.join('?' * len(row))})", list(row.values()))
        conn.execute(
            "INSERT INTO alert_events (alert_id, kind, at_ms) VALUES (?, 'trigger', ?)", (row["id"], created_ms)
        )
    return row["id"]


def events_of(conn: sqlite3.Connection, alert_id: str) -> list[tuple[str, int]]:
    return conn.execute("SELECT kind, at_ms FROM alert_events WHERE alert_id = ? ORDER BY seq", (alert_id,)).fetchall()
