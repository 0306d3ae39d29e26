"""Alerts as people see and change them: read from `alerts.db` (see db.py), listed with filters and
a cursor, counted, acknowledged and resolved.

Every function takes a connection from `open_alerts_db`. Status changes are the one write here: each
changes the alert and appends its event to `alert_events` in one write transaction (the caller's, when
it has one open: the engine auto-resolves inside the transaction of its rule run), so delivery never
sees a change that was not committed, nor misses one that was.
"""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from loglake.alerts.alert_ids import NoSuchAlert, find_alert_id
from loglake.alerts.db import ALERT_STATUSES, append_event
from loglake.alerts.evidence import with_attributes_decoded
from loglake.ids import UUID_PATTERN
from loglake.rules.model import LEVELS
from loglake.spelling import unknown_parameter
from loglake.sqlitedb import write_transaction
from loglake.times import TimeFormatError, format_datetime, parse_time

DEFAULT_PAGE_LIMIT = 50
MAX_PAGE_LIMIT = 500
MAX_NOTE_CHARS = 2000
LIST_PARAMS = ("status", "level", "rule", "since", "q", "limit", "cursor")

# The status each change leads to, and the statuses it may start from. An alert is never reopened by
# hand: a later match of its dedup key after it was resolved makes a new alert.
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "acknowledged": ("open",),
    "resolved": ("open", "acknowledged", "suppressed"),
}
# The alert_events kind (db.EVENT_KINDS) each change appends.
EVENT_OF = {"acknowledged": "acknowledge", "resolved": "resolve"}

_COLUMNS = (
    "id, rule_id, rule_title, title, level, tags, status, dedup_key, group_values, first_seen_ms, last_seen_ms,"
    " match_count, window_start_ms, window_end_ms, evidence, query, runbook, destinations, created_ms,"
    " updated_ms, status_by, status_note, status_ms"
)


class StatusConflict(ValueError):
    """The alert's status does not allow the change (resolving a resolved alert, ...); the message says why."""


class InvalidAlertQuery(ValueError):
    """Filters or paging that cannot be used; `problems` are (parameter, reason) pairs."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{name}: {reason}" for name, reason in problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class Alert:
    id: str
    rule_id: str
    rule_title: str
    title: str
    level: str
    tags: tuple[str, ...]
    status: str
    dedup_key: str
    group: dict[str, Any]
    first_seen_ms: int
    last_seen_ms: int
    match_count: int
    window_start_ms: int
    window_end_ms: int
    evidence: list[dict[str, Any]]
    query: str
    runbook: str | None
    destinations: tuple[str, ...] | None
    created_ms: int
    updated_ms: int
    status_by: str | None
    status_note: str | None
    status_ms: int | None

    @classmethod
    def from_row(cls, row: tuple) -> Alert:
        (id_, rule_id, rule_title, title, level, tags, status, dedup_key, group, first, last, count, start, end,
         evidence, query, runbook, destinations, created, updated, by, note, status_ms) = row  # fmt: skip
        return cls(
            id_,
            rule_id,
            rule_title,
            title,
            level,
            tuple(json.loads(tags)),
            status,
            dedup_key,
            json.loads(group),
            first,
            last,
            count,
            start,
            end,
            json.loads(evidence),
            query,
            runbook,
            None if destinations is None else tuple(json.loads(destinations)),
            created,
            updated,
            by,
            note,
            status_ms,
        )

    def to_dict(self, full: bool = True) -> dict[str, Any]:
        """The alert as the API answers it, times as ISO-8601 UTC; without `full`, as lists show it:
        no evidence records and no query, only how many records the evidence holds."""
        summary = {
            "id": self.id,
            "rule_id": self.rule_id,
            "rule_title": self.rule_title,
            "title": self.title,
            "level": self.level,
            "tags": list(self.tags),
            "status": self.status,
            "dedup_key": self.dedup_key,
            "group": self.group,
            "first_seen": format_datetime(self.first_seen_ms),
            "last_seen": format_datetime(self.last_seen_ms),
            "match_count": self.match_count,
            "window": {"start": format_datetime(self.window_start_ms), "end": format_datetime(self.window_end_ms)},
            "runbook": self.runbook,
            "destinations": None if self.destinations is None else list(self.destinations),
            "created": format_datetime(self.created_ms),
            "updated": format_datetime(self.updated_ms),
            "status_change": None
            if self.status_ms is None
            else {"by": self.status_by, "note": self.status_note, "at": format_datetime(self.status_ms)},
            "evidence_count": len(self.evidence),
        }
        if full:
            summary |= {"evidence": [with_attributes_decoded(r) for r in self.evidence], "query": self.query}
        return summary


@dataclass(frozen=True, slots=True)
class AlertQuery:
    """Which alerts to list: each filter is optional; `before_id` is the cursor (ids below it)."""

    statuses: tuple[str, ...] = ()
    levels: tuple[str, ...] = ()
    rule_id: str | None = None
    since_ms: int | None = None  # alerts with a match at or after it (last_seen)
    text: str | None = None  # in the title, the rule's title or the dedup key (ASCII case-insensitive)
    limit: int = DEFAULT_PAGE_LIMIT
    before_id: str | None = None


@dataclass(frozen=True, slots=True)
class AlertPage:
    alerts: list[Alert]
    next_cursor: str | None


def comma_separated(text: str) -> tuple[str, ...]:
    """The distinct values of a comma-separated parameter (`open,acknowledged`), lowercased, in order."""
    return tuple(dict.fromkeys(v.strip().lower() for v in text.split(",") if v.strip()))


def parse_alert_query(params: Mapping[str, str], now_ms: int) -> AlertQuery:
    """An AlertQuery from string parameters (HTTP query or CLI options), or InvalidAlertQuery naming
    every problem."""
    problems: list[tuple[str, str]] = []
    for name in params:
        if name not in LIST_PARAMS:
            problems.append((name, unknown_parameter(name, LIST_PARAMS)))
    chosen = {}
    for name, known in (("status", ALERT_STATUSES), ("level", LEVELS)):
        values = comma_separated(params.get(name, ""))
        if any(v not in known for v in values):
            problems.append((name, f"must be one or more (comma-separated) of {', '.join(known)}"))
        chosen[name] = values
    since = None
    if params.get("since"):
        try:
            since = parse_time(params["since"], now_ms)
        except TimeFormatError as e:
            problems.append(("since", str(e)))
    limit = DEFAULT_PAGE_LIMIT
    if params.get("limit"):
        try:
            limit = int(params["limit"])
        except ValueError:
            limit = 0
        if not 1 <= limit <= MAX_PAGE_LIMIT:
            problems.append(("limit", f"must be an integer from 1 to {MAX_PAGE_LIMIT}"))
    cursor = params.get("cursor") or None
    if cursor is not None and not is_alert_id(cursor):
        problems.append(("cursor", "is not a cursor this server issued; pass next_cursor back unchanged"))
    if problems:
        raise InvalidAlertQuery(problems)
    return AlertQuery(
        statuses=chosen["status"],
        levels=chosen["level"],
        rule_id=params.get("rule") or None,
        since_ms=since,
        text=params.get("q") or None,
        limit=limit,
        before_id=cursor.lower() if cursor else None,
    )


def list_alerts(conn: sqlite3.Connection, query: AlertQuery) -> AlertPage:
    """A page of alerts, newest first (by id: ids sort by creation), and the cursor of the next page."""
    where, params = _filters(query, ("status", "level", "rule", "since", "text"))
    if query.before_id is not None:
        where.append("id < ?")
        params.append(query.before_id)
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM alerts{_where(where)} ORDER BY id DESC LIMIT ?", [*params, query.limit + 1]
    ).fetchall()
    alerts = [Alert.from_row(row) for row in rows[: query.limit]]
    return AlertPage(alerts, alerts[-1].id if len(rows) > query.limit else None)


def list_answer(conn: sqlite3.Connection, query: AlertQuery) -> dict[str, Any]:
    """A page of alerts as GET /alerts answers it (and `loglake alerts list --data-dir` reads it): their
    summaries, the next page's cursor, and the counts per status and level."""
    page = list_alerts(conn, query)
    alerts = [alert.to_dict(full=False) for alert in page.alerts]
    return {
        "count": len(alerts),
        "alerts": alerts,
        "next_cursor": page.next_cursor,
        "counts": count_alerts(conn, query),
    }


def find_alert(conn: sqlite3.Connection, text: str) -> Alert:
    """The alert `text` names (find_alert_id)."""
    alert = get_alert(conn, find_alert_id(conn, text))
    if alert is None:  # found by its id a moment ago, and deleted since by retention (alerts/retention.py)
        raise NoSuchAlert(f"no alert with id {text!r}")
    return alert


def get_alert(conn: sqlite3.Connection, alert_id: str) -> Alert | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM alerts WHERE id = ?", (alert_id.lower(),)).fetchone()
    return None if row is None else Alert.from_row(row)


def count_alerts(conn: sqlite3.Connection, query: AlertQuery) -> dict[str, dict[str, int]]:
    """How many alerts each status and each level has, under the query's other filters: the status
    counts apply every filter but the status one, the level counts every one but the level one (the
    numbers a filter would give if it were changed)."""
    counts: dict[str, dict[str, int]] = {}
    for column, known, others in (
        ("status", ALERT_STATUSES, ("level", "rule", "since", "text")),
        ("level", LEVELS, ("status", "rule", "since", "text")),
    ):
        where, params = _filters(query, others)
        found = dict(conn.execute(f"SELECT {column}, count(*) FROM alerts{_where(where)} GROUP BY 1", params))
        counts[column] = {value: found.get(value, 0) for value in known}
    return counts


def change_status(
    conn: sqlite3.Connection, alert_id: str, status: str, by: str, note: str | None, now_ms: int
) -> Alert:
    """Acknowledge (`status="acknowledged"`) or resolve (`"resolved"`) an alert, recording who did it
    (a key's name, `rule` for an auto-resolve) and an optional note, and append its `acknowledge` or
    `resolve` event; returns the changed alert. Runs in the caller's transaction when one is open, else
    in a write transaction of its own. NoSuchAlert if there is no such alert, StatusConflict if its
    status does not allow the change (it is already resolved, say)."""
    allowed_from = TRANSITIONS.get(status)
    if allowed_from is None:
        raise ValueError(f"an alert can be changed to {' or '.join(TRANSITIONS)}, not {status!r}")
    if note is not None and len(note) > MAX_NOTE_CHARS:
        raise ValueError(f"the note is {len(note)} characters long; at most {MAX_NOTE_CHARS} are kept")
    # (a note of spaces alone, a note box left blank but for them, is no note: it showed as an empty "Note", and the
    # messages sent to destinations a "By" of "alice:   ")
    if note is not None:
        note = note.strip() or None
    with _transaction(conn):
        alert = get_alert(conn, alert_id)
        if alert is None:
            raise NoSuchAlert(f"no alert with id {alert_id!r}")
        if alert.status not in allowed_from:
            raise StatusConflict(_conflict(alert, status))
        conn.execute(
            "UPDATE alerts SET status = ?, status_by = ?, status_note = ?, status_ms = ?, updated_ms = ? WHERE id = ?",
            (status, by, note, now_ms, now_ms, alert.id),
        )
        append_event(conn, alert.id, EVENT_OF[status], now_ms)
        changed = get_alert(conn, alert.id)
    assert changed is not None
    return changed


def _conflict(alert: Alert, wanted: str) -> str:
    """Why the alert cannot take the status, with who changed it and when (two people on one alert)."""
    action = {"acknowledged": "acknowledge", "resolved": "resolve"}[wanted]
    how = f" by {alert.status_by}" if alert.status_by else ""
    when = f" at {format_datetime(alert.status_ms)}" if alert.status_ms is not None else ""
    if alert.status == wanted:
        return f"alert {alert.id} is already {wanted}{how}{when}; nothing to {action}"
    can = " or ".join(TRANSITIONS[wanted])
    return f"alert {alert.id} is {alert.status}{how}{when}: only an alert that is {can} can be {wanted}"


def _transaction(conn: sqlite3.Connection) -> contextlib.AbstractContextManager[Any]:
    """The caller's open transaction (which it commits or rolls back), or a write transaction of our own."""
    return contextlib.nullcontext() if conn.in_transaction else write_transaction(conn)


def _filters(query: AlertQuery, names: tuple[str, ...]) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    params: list[Any] = []
    if "status" in names and query.statuses:
        where.append(f"status IN ({', '.join('?' * len(query.statuses))})")
        params += query.statuses
    if "level" in names and query.levels:
        where.append(f"level IN ({', '.join('?' * len(query.levels))})")
        params += query.levels
    if "rule" in names and query.rule_id is not None:
        where.append("rule_id = ? COLLATE NOCASE")  # a UUID, as its rule file spells it
        params.append(query.rule_id)
    if "since" in names and query.since_ms is not None:
        where.append("last_seen_ms >= ?")
        params.append(query.since_ms)
    if "text" in names and query.text is not None:
        pattern = "%" + query.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        where.append("(title LIKE ? ESCAPE '\\' OR rule_title LIKE ? ESCAPE '\\' OR dedup_key LIKE ? ESCAPE '\\')")
        params += [pattern] * 3
    return where, params


def _where(conditions: list[str]) -> str:
    return " WHERE " + " AND ".join(conditions) if conditions else ""


_ALERT_ID = re.compile(UUID_PATTERN)


def is_alert_id(text: str) -> bool:
    """Whether `text` can be an alert's id (a UUID): what else comes after /alerts/ is no alert."""
    return _ALERT_ID.fullmatch(text) is not None
