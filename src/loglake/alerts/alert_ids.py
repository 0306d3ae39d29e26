"""Naming an alert as people do: by its id, or by a part of it no other alert's id holds.

An alert's id is a UUIDv7 (loglake.ids): its start is the time it was raised, the same for the alerts one rule
run raises, and its last 8 digits are the raising process's node, the same for all its alerts. What tells
alerts apart is the counter between them, usually in the 4 digits before the node: so any part of an id names
an alert (its start, its end, or those 4 digits), and text that names several is refused, naming each by the
shortest part that names it alone.
"""

from __future__ import annotations

import re
import sqlite3

from loglake.ids import UUID_PATTERN, AmbiguousId

SHORTEST_PART = 4  # characters: the fewest offered to name an alert (git abbreviates to at least 4 too)
_ALERT_ID = re.compile(UUID_PATTERN)
_ID_PART = re.compile("[0-9a-f-]{1,36}")
_SHOWN = AmbiguousId.SHOWN


class NoSuchAlert(LookupError):
    """No alert has the id."""


class AmbiguousAlert(LookupError):
    """Several alerts' ids hold the text given: the first of them, each said with the shortest part of its id
    that names it alone."""

    def __init__(self, text: str, candidates: list[str], parts: list[str], total: int) -> None:
        named = ", ".join(f"{part} ({alert_id})" for part, alert_id in zip(parts, candidates, strict=True))
        more = f" and {total - len(candidates)} more" if total > len(candidates) else ""
        super().__init__(f"{text!r} is part of {total} alerts' ids: {named}{more}; give one of those parts")


def find_alert_id(conn: sqlite3.Connection, text: str) -> str:
    """The id of the alert `text` names: its id, or a part of it (its start, its end, any part) that no other
    alert's id holds; NoSuchAlert when none does, AmbiguousAlert naming them when several do."""
    named = text.lower()
    if _ALERT_ID.fullmatch(named):  # a whole id: found by the index, not by a scan of the ids
        row = conn.execute("SELECT id FROM alerts WHERE id = ?", (named,)).fetchone()
        if row is not None:
            return row[0]
    elif _ID_PART.fullmatch(named):
        holding = "FROM alerts WHERE instr(id, ?) > 0"  # a scan of the ids' index: ~10 ms for 100,000 alerts
        first = [row[0] for row in conn.execute(f"SELECT id {holding} ORDER BY id LIMIT {_SHOWN}", (named,))]
        if len(first) == 1:
            return first[0]
        if first:
            total = conn.execute(f"SELECT count(*) {holding}", (named,)).fetchone()[0]
            raise AmbiguousAlert(text, first, shortest_parts(conn, first), total)
    raise NoSuchAlert(f"no alert with id {text!r}")


def shortest_parts(conn: sqlite3.Connection, alert_ids: list[str]) -> list[str]:
    """For each of these alerts' ids, its shortest part without a dash (SHORTEST_PART characters at least, the
    leftmost of that length) that no other alert's id holds; the whole id when none does."""
    every = "\n".join(row[0] for row in conn.execute("SELECT id FROM alerts"))  # one scan, then searched in memory
    parts = []
    for alert_id in alert_ids:
        others = every.replace(alert_id, "")  # (ids are unique, and none holds another)
        groups = alert_id.split("-")
        found = (
            group[start : start + length]
            for length in range(SHORTEST_PART, max(map(len, groups)) + 1)
            for group in groups
            for start in range(len(group) - length + 1)
            if group[start : start + length] not in others
        )
        parts.append(next(found, alert_id))
    return parts
