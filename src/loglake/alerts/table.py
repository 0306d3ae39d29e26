"""The alerts as the SQL table `alerts` of `POST /query` and `loglake query`: read from alerts.db at
each query (a LiveTable), so it is always current and never a copy that goes stale.

Each scan reads through its own read-only connection, in one SQLite snapshot (one SELECT), a batch at
a time: a query holds one batch of alerts in memory, and never waits for (or holds up) the engine's
or the API's writes. Times are TIMESTAMPs (UTC), tags and destinations lists of text, the group
values and the evidence JSON text (DuckDB's `->>` and json_* functions read them).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa

from loglake.lake.tables import Column, LiveTable

BATCH_ROWS = 1000
_TEXT = pa.string()
_TIME = pa.timestamp("us")  # what DuckDB reads as TIMESTAMP, the type of `logs.timestamp`
_TEXTS = pa.list_(pa.string())

# Each column of the table: (SQL column, alerts.db column, type, description).
_COLUMNS = (
    ("id", "id", _TEXT, "the alert's id (a UUID that sorts by creation)"),
    ("rule_id", "rule_id", _TEXT, "the id of the rule that raised it"),
    ("rule_title", "rule_title", _TEXT, "the rule's title"),
    ("title", "title", _TEXT, "the alert's title (the rule's title template, rendered)"),
    ("level", "level", _TEXT, "informational, low, medium, high or critical"),
    ("tags", "tags", _TEXTS, "the rule's tags (attack.t1110, ...)"),
    ("status", "status", _TEXT, "open, acknowledged, resolved or suppressed"),
    ("dedup_key", "dedup_key", _TEXT, "one alert per dedup key per dedup window"),
    ("group_values", "group_values", _TEXT, "JSON object: the rule's group-by values"),
    ("first_seen", "first_seen_ms", _TIME, "the earliest matching record, UTC"),
    ("last_seen", "last_seen_ms", _TIME, "the latest matching record, UTC"),
    ("match_count", "match_count", pa.int64(), "how many records matched"),
    ("window_start", "window_start_ms", _TIME, "the start of the first window evaluated, UTC"),
    ("window_end", "window_end_ms", _TIME, "the end of the last window evaluated (excluded), UTC"),
    ("evidence", "evidence", _TEXT, "JSON array: up to the rule's `evidence` matching records"),
    ("query", "query", _TEXT, "the SQL that found them"),
    ("runbook", "runbook", _TEXT, "the rule's runbook URL, or null"),
    ("destinations", "destinations", _TEXTS, "the rule's own destinations, or null for the routes"),
    ("created", "created_ms", _TIME, "when the alert was raised, UTC"),
    ("updated", "updated_ms", _TIME, "when it last changed, UTC"),
    ("status_by", "status_by", _TEXT, "who last acknowledged or resolved it (a key's name, `rule`), or null"),
    ("status_note", "status_note", _TEXT, "their note, or null"),
    ("status_at", "status_ms", _TIME, "when, UTC, or null"),
)
COLUMNS = tuple(Column(name, kind, description) for name, _, kind, description in _COLUMNS)
SCHEMA = pa.schema([(c.name, c.type) for c in COLUMNS])
_SELECT = f"SELECT {', '.join(stored for _, stored, _, _ in _COLUMNS)} FROM alerts"
_TIME_COLUMNS = frozenset(i for i, (_, _, kind, _) in enumerate(_COLUMNS) if kind == _TIME)
_LIST_COLUMNS = frozenset(i for i, (_, _, kind, _) in enumerate(_COLUMNS) if kind == _TEXTS)


def alerts_table(data_dir: Path) -> LiveTable:
    """The table `alerts` over `<data_dir>/alerts.db` (empty while the file does not exist)."""
    path = Path(data_dir) / "alerts.db"
    return LiveTable(
        "alerts",
        COLUMNS,
        "the alerts detection rules raised, read from alerts.db at each query (always current)",
        lambda: _batches(path),
    )


def _batches(path: Path) -> Iterator[pa.RecordBatch]:
    if not path.exists():
        return
    # Read-only: a query can never change an alert, whatever the SQL sandbox lets through.
    conn = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True, check_same_thread=False)
    try:
        rows = conn.execute(_SELECT)
        while batch := rows.fetchmany(BATCH_ROWS):
            yield _record_batch(batch)
    finally:
        conn.close()


def _record_batch(rows: list[tuple]) -> pa.RecordBatch:
    columns = list(zip(*rows, strict=True))
    arrays = []
    for i, (_, _, kind, _) in enumerate(_COLUMNS):
        values = columns[i]
        if i in _TIME_COLUMNS:
            arrays.append(pa.array(values, pa.int64()).cast(pa.timestamp("ms")).cast(_TIME))
        elif i in _LIST_COLUMNS:
            arrays.append(pa.array([None if v is None else json.loads(v) for v in values], kind))
        else:
            arrays.append(pa.array(values, kind))
    return pa.RecordBatch.from_arrays(arrays, schema=SCHEMA)
