"""A lookback longer than the schedule reads records again: after an alert the next runs cannot join (resolved
by a person or by `resolve_after`), the records it took in make no new alert, and a new alert counts and shows
only the records no earlier run read. Over the scheduler, a real data dir and alerts.db."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from loglake.alerts.store import change_status
from loglake.model import Limits, validate_batch
from loglake.times import DAY_MS
from tests.rules.conftest import write_rule
from tests.rules.test_scheduler import MIN, RULE_ID, T0, Clock, DataDir, rule_text


@pytest.fixture
def data(tmp_path: Path) -> Iterator[DataDir]:
    found = DataDir(tmp_path, Clock(T0))
    yield found
    found.close()


def resolve(data: DataDir, alert_id: str) -> None:
    """As `loglake alerts resolve ID --data-dir` does."""
    conn = data.db()
    try:
        change_status(conn, alert_id, "resolved", "ops", "handled", data.clock.ms)
    finally:
        conn.close()


def run_at(data: DataDir, ms: int, scheduler) -> None:
    data.clock.ms = ms
    assert [r.outcome for _, r in scheduler.run_round().runs] == ["ok"]


def messages(alert: dict) -> list[str]:
    return [row["message"] for row in json.loads(alert["evidence"])]


SQL_RULE = f"""
id: {RULE_ID}
title: Errors
level: high
schedule: 1m
delay: 0s
lookback: 10m
query: SELECT "timestamp", service, message FROM logs WHERE severity = 'error'
"""


def test_after_a_resolve_the_records_read_again_raise_no_alert_and_a_new_record_raises_one_of_its_own(
    data: DataDir,
) -> None:
    write_rule(data.rules, "errors.yml", SQL_RULE)
    scheduler = data.scheduler()
    data.add(T0 - 2 * MIN, count=2)
    run_at(data, T0, scheduler)  # reads 09:50-10:00
    [first] = data.alerts()
    assert first["match_count"] == 2
    resolve(data, first["id"])
    run_at(data, T0 + MIN, scheduler)  # reads 09:51-10:01: the same two records, nothing new
    assert [(a["id"], a["status"]) for a in data.alerts()] == [(first["id"], "resolved")]
    data.add(T0 + MIN + 30_000)
    run_at(data, T0 + 2 * MIN, scheduler)  # the two again, and one new
    [_, second] = data.alerts()
    assert (second["status"], second["match_count"], second["first_seen_ms"]) == ("open", 1, T0 + MIN + 30_000)
    assert messages(second) == [f"api {T0 + MIN + 30_000}"]
    assert [kind for _, kind in data.events()] == ["trigger", "resolve", "trigger"]


AGGREGATE_RULE = f"""
id: {RULE_ID}
title: Errors per service
level: high
schedule: 1m
delay: 0s
lookback: 5m
group_by: [service]
alert_title: "errors in {{service}}: {{n}}"
query: SELECT service, count(*) AS n FROM logs WHERE severity = 'error' GROUP BY service HAVING count(*) >= 3
"""


def test_an_aggregate_without_a_time_raises_no_alert_again_until_its_window_has_moved_past_the_resolved_one(
    data: DataDir,
) -> None:
    """The README's SQL rule shape: its rows have no "timestamp", so a run cannot tell new records from those read
    again. After a resolve, the runs whose window shares time with the alert's make no alert (each made a new
    one, every run, from the same records: found by a new-user trial); once the window has moved past, a match
    makes one again."""
    write_rule(data.rules, "errors.yml", AGGREGATE_RULE)
    scheduler = data.scheduler()
    data.add(T0 - 2 * MIN, count=4)
    run_at(data, T0, scheduler)  # reads 09:55-10:00
    [first] = data.alerts()
    assert first["title"] == "errors in api: 4"
    resolve(data, first["id"])
    for minute in range(1, 6):  # reads 09:56-10:01 ... 09:59-10:04: the same four records (then 10:00-10:05: none)
        run_at(data, T0 + minute * MIN, scheduler)
        assert [(a["id"], a["status"]) for a in data.alerts()] == [(first["id"], "resolved")]
    data.add(T0 + 5 * MIN + 10_000, count=3)
    run_at(data, T0 + 6 * MIN, scheduler)  # reads 10:01-10:06: past the alert's window, three new records
    [_, second] = data.alerts()
    assert (second["status"], second["title"]) == ("open", "errors in api: 3")


def test_a_group_whose_alert_was_resolved_counts_only_its_new_records_the_others_go_on(data: DataDir) -> None:
    write_rule(data.rules, "errors.yml", rule_text("lookback: 15m", threshold=2))
    scheduler = data.scheduler()
    data.add(T0 - 4 * MIN, count=2)
    data.add(T0 - 4 * MIN, service="web", count=2)
    run_at(data, T0, scheduler)
    api = next(a for a in data.alerts() if a["group_values"] == '{"service":"api"}')
    resolve(data, api["id"])
    run_at(data, T0 + 5 * MIN, scheduler)  # reads 09:50-10:05: both groups' records again
    assert sorted((a["group_values"], a["status"], a["match_count"]) for a in data.alerts()) == [
        ('{"service":"api"}', "resolved", 2),
        ('{"service":"web"}', "open", 2),
    ]
    data.add(T0 + 6 * MIN)
    run_at(data, T0 + 10 * MIN, scheduler)  # reads 09:55-10:10: api's two again (the threshold) and one new
    newest = data.alerts()[-1]
    assert (newest["group_values"], newest["status"], newest["match_count"]) == ('{"service":"api"}', "open", 1)
    assert messages(newest) == [f"api {T0 + 6 * MIN}"]


def test_after_resolve_after_a_new_alert_counts_only_the_records_no_earlier_run_read(data: DataDir) -> None:
    write_rule(data.rules, "errors.yml", rule_text("lookback: 15m", "resolve_after: 5m", threshold=2))
    scheduler = data.scheduler()
    data.add(T0 - 14 * MIN)
    data.add(T0 - 4 * MIN)
    run_at(data, T0, scheduler)  # reads 09:45-10:00: two records
    run_at(data, T0 + 5 * MIN, scheduler)  # reads 09:50-10:05: one, below the threshold; clear for 5m
    [first] = data.alerts()
    assert (first["status"], first["status_by"], first["match_count"]) == ("resolved", "rule", 2)
    data.add(T0 + 7 * MIN)
    run_at(data, T0 + 10 * MIN, scheduler)  # reads 09:55-10:10: 09:56 again and 10:07, new
    [_, second] = data.alerts()
    assert (second["status"], second["match_count"], second["first_seen_ms"]) == ("open", 1, T0 + 7 * MIN)
    assert messages(second) == [f"api {T0 + 7 * MIN}"]


def failed_logins_rule(timespan: str = "5m", least: int = 3, schedule: str = "1m", lookback: str = "10m") -> str:
    return f"""
title: Repeated failed logins
id: {RULE_ID}
level: high
correlation:
  type: event_count
  rules: [failed]
  group-by: [attributes.user]
  timespan: {timespan}
  condition: {{gte: {least}}}
loglake: {{schedule: {schedule}, lookback: {lookback}, delay: 0s}}
---
title: failed login
name: failed
logsource: {{product: loglake, service: app_logs}}
detection: {{sel: {{message|contains: login failed}}, condition: sel}}
"""


def failed_login(data: DataDir, at_ms: int) -> None:
    record = {"timestamp": at_ms, "service": "auth", "message": f"login failed {at_ms}", "attributes": {"user": "ann"}}
    data.store.submit(validate_batch([record], Limits(), data.clock.ms + DAY_MS)).result()


def test_a_correlation_raises_no_alert_again_from_the_events_of_a_resolved_one(data: DataDir) -> None:
    write_rule(data.rules, "logins.yml", failed_logins_rule())
    scheduler = data.scheduler()
    for minutes in (3, 2, 1):
        failed_login(data, T0 - minutes * MIN)
    run_at(data, T0, scheduler)
    [first] = data.alerts()
    assert first["match_count"] == 3
    resolve(data, first["id"])
    run_at(data, T0 + MIN, scheduler)  # the same three events within 5 minutes
    assert len(data.alerts()) == 1
    failed_login(data, T0 + MIN + 30_000)
    run_at(data, T0 + 2 * MIN, scheduler)
    [_, second] = data.alerts()
    # A correlation's count is its value (four within 5 minutes); its evidence, the event no alert showed.
    assert (second["status"], second["match_count"]) == ("open", 4)
    assert messages(second) == [f"login failed {T0 + MIN + 30_000}"]


def test_past_its_dedup_window_an_alert_s_records_read_again_raise_no_second_alert(data: DataDir) -> None:
    write_rule(data.rules, "errors.yml", rule_text("lookback: 15m", "dedup: {window: 10m}"))
    scheduler = data.scheduler()
    data.add(T0 - 4 * MIN, count=2)
    run_at(data, T0, scheduler)  # reads 09:45-10:00; the alert's first window began at 09:45
    run_at(data, T0 + 5 * MIN, scheduler)
    run_at(data, T0 + 10 * MIN, scheduler)  # reads 09:55-10:10, past the dedup window: the same two records
    [first] = data.alerts()
    assert (first["status"], first["match_count"]) == ("open", 2)
    data.add(T0 + 11 * MIN)
    run_at(data, T0 + 15 * MIN, scheduler)
    [_, second] = data.alerts()
    assert (second["match_count"], messages(second)) == (1, [f"api {T0 + 11 * MIN}"])


def test_a_timespan_read_again_by_the_next_window_counts_no_record_twice(data: DataDir) -> None:
    """Each run of a 10-minute timespan every 5 minutes reads the 5 minutes before its window again: the windows did
    not overlap, so the second run's count was added whole, and an alert counted 40 of 30 records (a UI trial)."""
    write_rule(data.rules, "logins.yml", failed_logins_rule(timespan="10m", least=5, schedule="5m", lookback="5m"))
    scheduler = data.scheduler()
    times = [T0 - 15 * MIN + i * 30_000 for i in range(40)]  # every 30 s from 09:45 to 10:04:30
    for at_ms in times:
        failed_login(data, at_ms)
    run_at(data, T0, scheduler)  # the window 09:55-10:00, read from 09:45
    run_at(data, T0 + 5 * MIN, scheduler)  # 10:00-10:05, read from 09:50: much of it again, and 10 new
    [alert] = data.alerts()
    # a correlation's count is its value, the larger run's: the most records 30 s apart a 10-minute timespan holds
    assert alert["match_count"] == 10 * 2 + 1
