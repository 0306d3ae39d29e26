"""The alert store over a real alerts.db: values, filters, paging, counts and status changes."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from loglake.alerts.db import open_alerts_db
from loglake.alerts.store import (
    MAX_NOTE_CHARS,
    MAX_PAGE_LIMIT,
    AlertQuery,
    InvalidAlertQuery,
    NoSuchAlert,
    StatusConflict,
    change_status,
    count_alerts,
    get_alert,
    list_alerts,
    parse_alert_query,
)
from loglake.sqlitedb import write_transaction
from tests.alerts.rows import T0, events_of, insert_alert

MINUTE = 60_000


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    db = open_alerts_db(tmp_path)
    yield db
    db.close()


def test_an_alert_reads_back_with_its_json_fields_decoded(conn: sqlite3.Connection) -> None:
    alert_id = insert_alert(conn, destinations=["oncall"], group_values={"service": "api", "user": "bob"})
    alert = get_alert(conn, alert_id)
    assert alert is not None
    assert alert.tags == ("attack.t1110", "attack.credential-access")
    assert alert.group == {"service": "api", "user": "bob"}
    assert alert.evidence[0]["message"] == "boom"
    assert alert.destinations == ("oncall",)
    shown = alert.to_dict()
    assert shown["first_seen"] == "2025-12-03T09:59:00.000Z"
    assert shown["window"] == {"start": "2025-12-03T09:55:00.000Z", "end": "2025-12-03T10:00:00.000Z"}
    assert shown["status_change"] is None
    assert shown["evidence_count"] == 1 and shown["evidence"] == alert.evidence
    assert shown["query"].startswith("SELECT")
    listed = alert.to_dict(full=False)
    assert "evidence" not in listed and "query" not in listed and listed["evidence_count"] == 1


def test_get_takes_an_id_in_any_case_and_answers_none_for_an_unknown_one(conn: sqlite3.Connection) -> None:
    alert_id = insert_alert(conn)
    assert get_alert(conn, alert_id.upper()).id == alert_id
    assert get_alert(conn, "0193a0b0-0000-7000-8000-000000000000") is None


def test_the_list_is_newest_first_and_paging_gives_each_alert_once(conn: sqlite3.Connection) -> None:
    made = [insert_alert(conn, T0 + i * MINUTE) for i in range(7)]
    seen: list[str] = []
    cursor = None
    while True:
        page = list_alerts(conn, AlertQuery(limit=3, before_id=cursor))
        seen += [a.id for a in page.alerts]
        cursor = page.next_cursor
        if cursor is None:
            break
        insert_alert(conn, T0 + 100 * MINUTE + len(seen))  # new alerts meanwhile never shift later pages
    assert seen == made[::-1]


def test_a_page_that_ends_the_list_has_no_cursor(conn: sqlite3.Connection) -> None:
    for i in range(3):
        insert_alert(conn, T0 + i)
    assert list_alerts(conn, AlertQuery(limit=3)).next_cursor is None
    assert list_alerts(conn, AlertQuery(limit=2)).next_cursor is not None


def test_filters_combine(conn: sqlite3.Connection) -> None:
    other_rule = "0b7e0a3c-1111-4222-8333-444455556666"
    old = insert_alert(conn, T0, level="low", last_seen_ms=T0 - 10 * MINUTE)
    acked = insert_alert(conn, T0 + 1, status="acknowledged", title="Login failures for bob", dedup_key="bob")
    critical = insert_alert(conn, T0 + 2, level="critical", rule_id=other_rule, title="Disk 100% full")

    def ids(**params: str) -> list[str]:
        return [a.id for a in list_alerts(conn, parse_alert_query(params, T0)).alerts]

    assert ids(status="open") == [critical, old]
    assert ids(status="open,acknowledged", level="high") == [acked]
    assert ids(level="LOW") == [old]
    assert ids(rule=other_rule) == [critical]
    assert ids(rule=other_rule.upper()) == [critical]
    assert ids(since="5m") == [critical, acked]
    assert ids(q="LOGIN") == [acked]  # the title, any case
    assert ids(q="bob") == [acked]  # and the dedup key
    assert ids(q="100%") == [critical]  # LIKE's wildcards are plain characters
    assert ids(q="1_0") == []


def test_counts_per_status_and_level_apply_the_other_filters(conn: sqlite3.Connection) -> None:
    insert_alert(conn, T0, level="low")
    insert_alert(conn, T0 + 1, status="resolved")
    insert_alert(conn, T0 + 2, level="critical", status="acknowledged")
    counts = count_alerts(conn, parse_alert_query({"status": "open", "level": "low,high"}, T0))
    # per status: low or high alerts (the level filter); per level: open alerts (the status filter)
    assert counts["status"] == {"open": 1, "acknowledged": 0, "resolved": 1, "suppressed": 0}
    assert counts["level"] == {"informational": 0, "low": 1, "medium": 0, "high": 0, "critical": 0}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "closed"}, "status"),
        ({"level": "urgent"}, "level"),
        ({"since": "yesterday"}, "since"),
        ({"limit": "0"}, "limit"),
        ({"limit": str(MAX_PAGE_LIMIT + 1)}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"severity": "high"}, "severity"),
    ],
)
def test_bad_parameters_are_named(params: dict[str, str], field: str) -> None:
    with pytest.raises(InvalidAlertQuery) as raised:
        parse_alert_query(params, T0)
    assert [name for name, _ in raised.value.problems] == [field]


def test_every_problem_is_named_at_once() -> None:
    with pytest.raises(InvalidAlertQuery) as raised:
        parse_alert_query({"status": "x", "limit": "-1"}, T0)
    assert [name for name, _ in raised.value.problems] == ["status", "limit"]


def test_acknowledge_then_resolve_records_who_and_appends_the_events(conn: sqlite3.Connection) -> None:
    alert_id = insert_alert(conn)
    acked = change_status(conn, alert_id, "acknowledged", "alice", "looking", T0 + MINUTE)
    assert (acked.status, acked.status_by, acked.status_note, acked.status_ms) == (
        "acknowledged",
        "alice",
        "looking",
        T0 + MINUTE,
    )
    assert acked.updated_ms == T0 + MINUTE
    resolved = change_status(conn, alert_id, "resolved", "bob", None, T0 + 2 * MINUTE)
    assert (resolved.status, resolved.status_by, resolved.status_note) == ("resolved", "bob", None)
    assert events_of(conn, alert_id) == [("trigger", T0), ("acknowledge", T0 + MINUTE), ("resolve", T0 + 2 * MINUTE)]


def test_an_open_alert_can_be_resolved_at_once(conn: sqlite3.Connection) -> None:
    alert_id = insert_alert(conn)
    assert change_status(conn, alert_id, "resolved", "rule", "clear for 15m", T0 + 1).status == "resolved"


@pytest.mark.parametrize(
    ("status", "change", "says"),
    [
        ("resolved", "resolved", "is already resolved by carol at 2025-12-03T10:00:00.000Z; nothing to resolve"),
        ("acknowledged", "acknowledged", "is already acknowledged by carol"),
        # (who and when, as for a change already made: it said neither)
        ("resolved", "acknowledged", "is resolved by carol at 2025-12-03T10:00:00.000Z: only an alert that is open"),
        ("suppressed", "acknowledged", "is suppressed by carol at 2025-12-03T10:00:00.000Z: only an alert that is"),
    ],
)
def test_a_change_the_status_does_not_allow_is_a_conflict_and_changes_nothing(
    conn: sqlite3.Connection, status: str, change: str, says: str
) -> None:
    alert_id = insert_alert(conn, status=status, status_by="carol", status_ms=T0, status_note="done")
    with pytest.raises(StatusConflict, match=says):
        change_status(conn, alert_id, change, "dave", "again", T0 + MINUTE)
    alert = get_alert(conn, alert_id)
    assert (alert.status, alert.status_by, alert.status_note) == (status, "carol", "done")
    assert events_of(conn, alert_id) == [("trigger", T0)]


def test_a_suppressed_alert_can_be_resolved(conn: sqlite3.Connection) -> None:
    alert_id = insert_alert(conn, status="suppressed")
    assert change_status(conn, alert_id, "resolved", "eve", None, T0 + 1).status == "resolved"


def test_unknown_alerts_statuses_and_long_notes_are_refused(conn: sqlite3.Connection) -> None:
    alert_id = insert_alert(conn)
    with pytest.raises(NoSuchAlert):
        change_status(conn, "0193a0b0-0000-7000-8000-000000000000", "resolved", "x", None, T0)
    with pytest.raises(ValueError, match="acknowledged or resolved"):
        change_status(conn, alert_id, "open", "x", None, T0)
    with pytest.raises(ValueError, match=f"at most {MAX_NOTE_CHARS}"):
        change_status(conn, alert_id, "resolved", "x", "n" * (MAX_NOTE_CHARS + 1), T0)
    assert change_status(conn, alert_id, "resolved", "x", "n" * MAX_NOTE_CHARS, T0).status_note == "n" * MAX_NOTE_CHARS
    assert get_alert(conn, alert_id).status == "resolved"


def test_inside_the_callers_transaction_the_change_commits_or_rolls_back_with_it(conn: sqlite3.Connection) -> None:
    alert_id = insert_alert(conn)
    with pytest.raises(RuntimeError), write_transaction(conn):
        change_status(conn, alert_id, "resolved", "rule", None, T0 + 1)
        raise RuntimeError("the rule run failed after the change")
    assert get_alert(conn, alert_id).status == "open"
    assert events_of(conn, alert_id) == [("trigger", T0)]
    with write_transaction(conn):
        change_status(conn, alert_id, "resolved", "rule", None, T0 + 2)
    assert events_of(conn, alert_id) == [("trigger", T0), ("resolve", T0 + 2)]
