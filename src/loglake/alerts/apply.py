"""A rule run's matches made alerts, in the caller's write transaction (the one that moves the rule's
window, see rules/scheduler.py), each change with its `alert_events` row.

- The threshold is the rule's SQL's (run.py: a group matches with at least `threshold` rows).
- Dedup: a match joins the alert of its rule and dedup key whose first window started less than the
  rule's dedup window before the match's window, unless it was resolved. It updates the alert's count,
  last seen, window and evidence (the newest `evidence` rows) and appends an `update` event when the
  match brings records the alert has not seen; otherwise the alert only notes that its condition still
  held (its window end). A match with no alert to join makes one and appends a `trigger` event.
- Count: the sum of the matches' counts; when what a run reads overlaps the alert's window (a lookback longer
  than the schedule, or a Sigma rule's timespan, reads the same records again: read_since), only the match's
  records that no earlier run read
  (its `fresh` rows) are added, so a burst across windows counts whole and no record counts twice.
  A correlation's count is a value of the correlation, not of records: for those (and SQL rules whose
  rows have no timestamp) the overlapping run's count replaces the alert's when it is larger.
- After an alert it cannot join (resolved by a person or by `resolve_after`, suppressed, or past its
  dedup window), a run whose window overlaps that alert's reads the records it took in again: they
  make no new alert. A match with records later than the alert's last makes one from the records no
  earlier run read (unread_part): its count and first seen are theirs, its evidence leaves out the
  rows that alert shows (a correlation's count stays its value). A match whose rows have no time (a SQL
  rule's aggregate without a "timestamp" column) makes one only once its window starts at or after that
  alert's last seen: until then the run cannot tell new records from those read again.
- Suppression: a suppressed match makes (or joins) an alert of status `suppressed`, without events.
- Auto-resolve: with the rule's `resolve_after`, an open or acknowledged alert whose condition has
  not held (no match of its key) for that long in the rule's windows is resolved.
- A rule that keeps failing raises an alert of its own (`rule_failing`), resolved when it runs again (its note
  says whether over the window it failed on, or past it: that range skipped); while it fails, its alert follows
  each failure but is sent again only once per the rule's dedup window.
Status changes go through the alert store's `change_status`, which appends their events.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import msgspec

from loglake.alerts.db import MAX_TITLE_CHARS, append_event
from loglake.alerts.store import change_status
from loglake.ids import format_uuid, uuid7_bytes
from loglake.rules.model import Rule
from loglake.rules.run import Match, RunResult
from loglake.shorten import shortened
from loglake.times import format_datetime, parse_duration

if TYPE_CHECKING:
    from loglake.rules.scheduler import Window

FAILING_LEVEL = "high"
FAILING_TAG = "loglake.rule-failing"
BY_RULE = "rule"  # who changed an alert's status when the engine did it (as the alert store names it)
_OPEN = ("open", "acknowledged")
DISABLED_NOTE = "the rule was disabled"  # why a disabled rule's failing alert was resolved (no run of it will)


def apply_matches(conn: sqlite3.Connection, rule: Rule, result: RunResult, now_ms: int) -> int:
    """Make or update the alerts of a run's matches (see the module's notes); how many alerts it made."""
    made = 0
    for match in result.matches:
        found = _joinable(conn, rule, match, result.since_ms)
        if found is not None:
            _update(conn, rule, found, match, result, now_ms)
            continue
        unread = unread_part(match, result, _overlapped(conn, rule, match, rule.plan.read_since(result.since_ms)))
        if unread is not None:
            _insert(conn, rule, unread, result, now_ms)
            made += 1
    return made


@dataclass(frozen=True)
class Overlapped:
    """What a run needs of an earlier alert of its match's key whose windows reach into the run's."""

    last_seen_ms: int
    evidence: list[dict[str, Any]]


def unread_part(match: Match, result: RunResult, earlier: Overlapped | None) -> Match | None:
    """The match as a new alert takes it, after an `earlier` alert of its key that it cannot join and whose
    windows reach into the run's (None: there is none, the match is whole): nothing (None) if its records
    are no later than that alert's, else the records no earlier run read (see the module's notes)."""
    if earlier is None:
        return match
    first, last = seen_span(match, result)
    count = merged_count(0, match, overlaps=True)
    if _read_before(match, last, earlier.last_seen_ms) or count == 0:
        return None
    if match.last_ms is None and result.since_ms < earlier.last_seen_ms:
        # Rows without a time (a SQL rule's aggregate): which of its records are new, the run cannot tell, so
        # those its window shares with the alert's count as read until the window has moved past the alert's.
        return None
    shown = {_text(row) for row in earlier.evidence}
    return replace(
        match,
        count=count,
        title=match.titled(count),
        first_ms=first if match.fresh_first_ms is None else match.fresh_first_ms,
        evidence=[row for row in match.evidence if _text(row) not in shown],
    )


def failing_key(rule_id: str) -> str:
    return f"loglake:rule-failing:{rule_id}"


def failing_told_again(rule: Rule, told_ms: int, now_ms: int) -> bool:
    """Whether a failure of a rule whose failing alert was last told of (its last event) at `told_ms` tells of it
    again: once that is the rule's dedup window ago, as a match past its dedup window alerts again (Alertmanager's
    repeat_interval). Between, a failure updates the alert without an event: a rule failing at every run sent an
    update (a PagerDuty trigger, a Jira comment) at each, all night. Its error's text is no sign of a new problem:
    it may quote the failing value or a storage request's id, which differ at each run."""
    return now_ms - told_ms >= rule.dedup_window_ms


def rule_failing(
    conn: sqlite3.Connection, rule: Rule, error: str, failures: int, since_ms: int, until_ms: int, now_ms: int
) -> None:
    """Raise (or update) the rule's own alert: it failed `failures` runs in a row. Each failure shows in the
    alert (its count, and its error in the evidence); only the first and those failing_told_again are sent."""
    evidence = [{"error": error, "failures": failures, "file": str(rule.path), "at_ms": now_ms}]
    found = conn.execute(
        "SELECT id, evidence, (SELECT max(at_ms) FROM alert_events WHERE alert_id = alerts.id) FROM alerts"
        " WHERE rule_id = ? AND dedup_key = ? AND status IN (?, ?)",
        (rule.id, failing_key(rule.id), *_OPEN),
    ).fetchone()
    if found is None:
        alert_id = _new_alert(
            conn,
            rule,
            status="open",
            title=shortened(f"Rule failing: {rule.title}", MAX_TITLE_CHARS),
            level=FAILING_LEVEL,
            tags=[FAILING_TAG],
            dedup_key=failing_key(rule.id),
            group={"rule_id": rule.id},
            seen=(since_ms, until_ms),
            count=failures,
            window=(since_ms, until_ms),
            evidence=evidence,
            destinations=None,
            now_ms=now_ms,
        )
        append_event(conn, alert_id, "trigger", now_ms)
        return
    kept = (_json(found[1]) + evidence)[-rule.options.evidence :]
    conn.execute(
        "UPDATE alerts SET match_count = ?, last_seen_ms = ?, window_end_ms = ?, evidence = ?, updated_ms = ?"
        " WHERE id = ?",
        (failures, until_ms, until_ms, _text(kept), now_ms, found[0]),
    )
    if failing_told_again(rule, found[2], now_ms):
        append_event(conn, found[0], "update", now_ms)


def rule_recovered(conn: sqlite3.Connection, rule: Rule, now_ms: int, skipped: Window | None = None) -> None:
    """Resolve the rule's failing alert (if one is open): it ran again (see recovered_note for `skipped`)."""
    found = conn.execute(
        "SELECT id FROM alerts WHERE rule_id = ? AND dedup_key = ? AND status IN (?, ?)",
        (rule.id, failing_key(rule.id), *_OPEN),
    ).fetchone()
    if found is not None:
        change_status(conn, found[0], "resolved", BY_RULE, recovered_note(skipped), now_ms)


def recovered_note(skipped: Window | None) -> str:
    """Why a rule's failing alert was resolved by its run: it ran again, over the window it failed on, or past it:
    `skipped` is the range the catch-up bound left out, whose records were never checked. (Saying
    only "the rule ran again" then told a reader that what it failed on had been evaluated.)"""
    if skipped is None:
        return "the rule ran again"
    return (
        f"the rule ran again, but not over the range it failed on: {format_datetime(skipped.since_ms)} to"
        f" {format_datetime(skipped.until_ms)} was skipped (past the catch-up bound), its records not checked"
    )


def resolve_failing_of_stopped_rules(
    conn: sqlite3.Connection, loaded: list[Rule], unloadable_files: set[str], now_ms: int
) -> None:
    """Resolve the failing alerts of rules that no longer run, as no run of theirs will: the rule disabled, or gone
    from the folder (its file removed, or the rule taken out of it). A rule whose file does not load keeps its
    alert: it still fails to run (its file's problem says why)."""
    enabled = {rule.id for rule in loaded if rule.enabled}
    disabled = {rule.id for rule in loaded if not rule.enabled}
    found = conn.execute(
        "SELECT id, rule_id, evidence FROM alerts WHERE dedup_key = ? || rule_id AND status IN (?, ?)",
        (failing_key(""), *_OPEN),
    ).fetchall()
    for alert_id, rule_id, evidence in found:
        if rule_id in enabled or {row.get("file") for row in _json(evidence)} & unloadable_files:
            continue
        note = DISABLED_NOTE if rule_id in disabled else "the rule was removed from the rules folder"
        change_status(conn, alert_id, "resolved", BY_RULE, note, now_ms)


def resolve_cleared(conn: sqlite3.Connection, rule: Rule, until_ms: int, now_ms: int) -> None:
    """With the rule's `resolve_after`: resolve its open and acknowledged alerts whose condition last
    held (the end of the last window that matched) that long before `until_ms`."""
    if rule.options.resolve_after is None:
        return
    clear_ms = parse_duration(rule.options.resolve_after)
    found = conn.execute(
        "SELECT id FROM alerts WHERE rule_id = ? AND status IN (?, ?) AND dedup_key != ? AND window_end_ms <= ?",
        (rule.id, *_OPEN, failing_key(rule.id), until_ms - clear_ms),
    ).fetchall()
    note = f"its condition has been clear for {rule.options.resolve_after}"
    for (alert_id,) in found:
        change_status(conn, alert_id, "resolved", BY_RULE, note, now_ms)


def _joinable(conn: sqlite3.Connection, rule: Rule, match: Match, since_ms: int) -> tuple | None:
    statuses = ("suppressed",) if match.suppressed else _OPEN
    marks = ", ".join("?" * len(statuses))
    return conn.execute(
        "SELECT id, status, match_count, first_seen_ms, last_seen_ms, window_start_ms, window_end_ms, evidence"
        f" FROM alerts WHERE rule_id = ? AND dedup_key = ? AND status IN ({marks}) AND window_start_ms > ?"
        " ORDER BY window_start_ms DESC LIMIT 1",
        (rule.id, match.dedup_key, *statuses, since_ms - rule.dedup_window_ms),
    ).fetchone()


def _overlapped(conn: sqlite3.Connection, rule: Rule, match: Match, since_ms: int) -> Overlapped | None:
    """The newest alert of the rule and the match's key (whatever its status) whose windows end after the
    run's window starts: the run reads records again that it took in."""
    found = conn.execute(
        "SELECT last_seen_ms, evidence FROM alerts WHERE rule_id = ? AND dedup_key = ? AND window_end_ms > ?"
        " ORDER BY window_end_ms DESC LIMIT 1",
        (rule.id, match.dedup_key, since_ms),
    ).fetchone()
    return None if found is None else Overlapped(found[0], _json(found[1]))


def _insert(conn: sqlite3.Connection, rule: Rule, match: Match, result: RunResult, now_ms: int) -> None:
    first, last = seen_span(match, result)
    alert_id = _new_alert(
        conn,
        rule,
        status="suppressed" if match.suppressed else "open",
        title=match.title,
        level=rule.level,
        tags=list(rule.tags),
        dedup_key=match.dedup_key,
        group=match.group,
        seen=(first, last),
        count=match.count,
        window=(result.since_ms, result.until_ms),
        evidence=match.evidence[-rule.options.evidence :],
        destinations=list(rule.options.destinations) or None,
        now_ms=now_ms,
        query=result.sql,
        note=match.suppressed,
    )
    if not match.suppressed:
        append_event(conn, alert_id, "trigger", now_ms)


def _update(conn: sqlite3.Connection, rule: Rule, found: tuple, match: Match, result: RunResult, now_ms: int) -> None:
    alert_id, status, count, first_seen, last_seen, window_start, window_end, evidence = found
    first, last = seen_span(match, result)
    if _read_before(match, last, last_seen):  # the same records again (an overlapping lookback): held till here
        still = "UPDATE alerts SET window_end_ms = max(window_end_ms, ?) WHERE id = ?"
        conn.execute(still, (result.until_ms, alert_id))
        return
    overlaps = rule.plan.read_since(result.since_ms) < window_end
    kept = merged_evidence(_json(evidence), match.evidence, rule.options.evidence)
    merged = merged_count(count, match, overlaps)
    conn.execute(
        "UPDATE alerts SET match_count = ?, first_seen_ms = ?, last_seen_ms = ?, window_start_ms = ?,"
        " window_end_ms = ?, evidence = ?, title = ?, updated_ms = ? WHERE id = ?",
        (
            merged,
            min(first_seen, first),
            max(last_seen, last),
            min(window_start, result.since_ms),
            max(window_end, result.until_ms),
            _text(kept),
            match.titled(merged),
            now_ms,
            alert_id,
        ),
    )
    if status != "suppressed":
        append_event(conn, alert_id, "update", now_ms)


def merged_count(count: int, match: Match, overlaps: bool) -> int:
    """The alert's count once it takes in the match (see the module's notes)."""
    if not overlaps:
        return count + match.count
    return max(count, match.count) if match.fresh is None else count + match.fresh


def merged_evidence(old: list[dict[str, Any]], new: list[dict[str, Any]], keep: int) -> list[dict[str, Any]]:
    """The newest `keep` rows of both, each once (an overlapping lookback returns rows already kept)."""
    seen = {_text(row) for row in old}
    return (old + [row for row in new if _text(row) not in seen])[-keep:]


def seen_span(match: Match, result: RunResult) -> tuple[int, int]:
    """The match's first and last record, or its window when its rows have no time."""
    first = result.since_ms if match.first_ms is None else match.first_ms
    last = result.until_ms if match.last_ms is None else match.last_ms
    return first, last


def _new_alert(
    conn: sqlite3.Connection,
    rule: Rule,
    *,
    status: str,
    title: str,
    level: str,
    tags: list[str],
    dedup_key: str,
    group: dict[str, Any],
    seen: tuple[int, int],
    count: int,
    window: tuple[int, int],
    evidence: list[dict[str, Any]],
    destinations: list[str] | None,
    now_ms: int,
    query: str | None = None,
    note: str | None = None,
) -> str:
    alert_id = format_uuid(uuid7_bytes(now_ms))
    conn.execute(
        "INSERT INTO alerts (id, rule_id, rule_title, title, level, tags, status, dedup_key, group_values,"
        " first_seen_ms, last_seen_ms, match_count, window_start_ms, window_end_ms, evidence, query, runbook,"
        " destinations, created_ms, updated_ms, status_by, status_note, status_ms)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            alert_id,
            rule.id,
            rule.title,
            title,
            level,
            _text(tags),
            status,
            dedup_key,
            _text(group),
            *seen,
            count,
            *window,
            _text(evidence),
            rule.plan.sql if query is None else query,
            rule.options.runbook,
            None if destinations is None else _text(destinations),
            now_ms,
            now_ms,
            BY_RULE if note else None,
            note,
            now_ms if note else None,
        ),
    )
    return alert_id


def _text(value: Any) -> str:
    return msgspec.json.encode(value).decode()


def _json(text: str) -> list[dict[str, Any]]:
    return msgspec.json.decode(text)


def _read_before(match: Match, last_ms: int, alert_last_seen_ms: int) -> bool:
    """Whether a match holds only records an earlier run read: none later than the alert's last, and none fresh
    (rows no earlier run read are new however early: another group of a shared dedup key has its own)."""
    return last_ms <= alert_last_seen_ms and not match.fresh
