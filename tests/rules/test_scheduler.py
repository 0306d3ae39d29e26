"""The scheduler over a real data dir (a SQLite hot store, a lake folder, alerts.db), driven by a clock
the tests move: contiguous windows, catch-up after downtime (bounded, the gap recorded), no window
twice across a restart, late records inside `delay`, lookback pruning, dedup / threshold /
suppression, a bad rule file beside good ones, the failing-rule alert."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from loglake.alerts.db import open_alerts_db
from loglake.alerts.delivery import AlertDelivery
from loglake.lake.lake import Lake
from loglake.lake.layout import app_logs_key
from loglake.lake.manifest import LakeFile, add_files
from loglake.lake.objectstore import LocalObjectStore
from loglake.lake.query_limits import QueryLimits
from loglake.lake.tables import APP_LOGS_TABLE
from loglake.locks import exclusive_lock
from loglake.model import Limits, validate_batch
from loglake.rules import state
from loglake.rules.scheduler import LOCK_FILE, CatchUp, RuleFolder, RuleScheduler, Window, due_windows
from loglake.sqlitedb import write_transaction
from loglake.store.sqlite import SQLiteHotStore
from loglake.times import DAY_MS, parse_iso8601
from tests.alerts.conftest import settle, write_alerting
from tests.alerts.receivers import Receiver
from tests.conftest import threads_waiting_for_a_fifo_writer
from tests.rules.conftest import load_one, write_rule

T0 = parse_iso8601("2026-06-01T10:00:00Z")
MIN = 60_000
HOUR = 60 * MIN
RULE_ID = "11111111-2222-4333-8444-555555555555"


class Clock:
    def __init__(self, ms: int) -> None:
        self.ms = ms

    def __call__(self) -> float:
        return self.ms / 1000


def rule_text(*options: str, threshold: int = 1, rule_id: str = RULE_ID) -> str:
    if not any(o.startswith("delay:") for o in options):  # windows end at the firings, as the tests' times assume
        options = ("delay: 0s", *options)
    lines = "\n".join(f"  {o}" for o in options)
    return f"""
title: Errors
id: {rule_id}
level: high
tags: [attack.t1110]
logsource: {{product: loglake, service: app_logs}}
detection: {{sel: {{severity: error}}, condition: sel}}
loglake:
  schedule: 5m
  group_by: [service]
  threshold: {threshold}
  runbook: https://runbooks.example/errors
  destinations: [chat]
{lines}
"""


class DataDir:
    """A data dir with the rules folder in it; `scheduler()` is a new one each time (a restart)."""

    def __init__(self, folder: Path, clock: Clock) -> None:
        self.folder = folder
        self.clock = clock
        self.rules = folder / "rules"
        self.store = SQLiteHotStore(folder / "hot.db", durability="process")
        self.lake = Lake(self.store, LocalObjectStore(folder / "lake"), folder, clock=clock)
        self.schedulers: list[RuleScheduler] = []

    def add(self, at_ms: int, service: str = "api", severity: str = "error", count: int = 1) -> None:
        records = [
            {"timestamp": at_ms + i, "service": service, "severity": severity, "message": f"{service} {at_ms + i}"}
            for i in range(count)
        ]
        self.store.submit(validate_batch(records, Limits(), self.clock.ms + DAY_MS)).result()

    def scheduler(self, **options: object) -> RuleScheduler:
        scheduler = RuleScheduler(RuleFolder(self.rules), self.lake.engine, self.folder, clock=self.clock, **options)
        scheduler.reload()
        self.schedulers.append(scheduler)
        return scheduler

    def db(self) -> sqlite3.Connection:
        return open_alerts_db(self.folder)

    def alerts(self) -> list[dict]:
        conn = self.db()
        conn.row_factory = sqlite3.Row
        try:
            return [dict(r) for r in conn.execute("SELECT * FROM alerts ORDER BY created_ms, id")]
        finally:
            conn.close()

    def events(self) -> list[tuple[str, str]]:
        conn = self.db()
        try:
            return conn.execute("SELECT alert_id, kind FROM alert_events ORDER BY seq").fetchall()
        finally:
            conn.close()

    def runs(self, rule_id: str = RULE_ID) -> list:
        conn = self.db()
        try:
            return list(reversed(state.runs_of(conn, rule_id)))
        finally:
            conn.close()

    def close(self) -> None:
        for scheduler in self.schedulers:
            scheduler.stop()
        self.lake.close()
        self.store.close()


@pytest.fixture
def data(tmp_path: Path) -> Iterator[DataDir]:
    found = DataDir(tmp_path, Clock(T0))
    yield found
    found.close()


# -- the windows, as plain values ---------------------------------------------------------------


def test_windows_follow_the_schedule_less_the_delay_and_start_where_the_last_ended(tmp_path: Path) -> None:
    rule = load_one(tmp_path, rule_text("delay: 1m"))
    assert due_windows(rule, None, T0 + 2 * MIN, CatchUp()).windows == [Window(T0 - 6 * MIN, T0 - MIN)]
    due = due_windows(rule, T0 - MIN, T0 + 17 * MIN, CatchUp())
    assert due.windows == [
        Window(T0 - MIN, T0 + 4 * MIN),
        Window(T0 + 4 * MIN, T0 + 9 * MIN),
        Window(T0 + 9 * MIN, T0 + 14 * MIN),
    ]
    assert due.skipped is None
    assert due_windows(rule, T0 + 14 * MIN, T0 + 19 * MIN, CatchUp()).windows == []  # 10:20 has not come


def test_a_lookback_longer_than_the_schedule_reads_back_that_far(tmp_path: Path) -> None:
    rule = load_one(tmp_path, rule_text("lookback: 1h"))
    assert due_windows(rule, T0, T0 + 5 * MIN, CatchUp()).windows == [Window(T0 + 5 * MIN - HOUR, T0 + 5 * MIN)]


def test_a_cron_gap_longer_than_the_lookback_is_read_whole(tmp_path: Path) -> None:
    rule = load_one(tmp_path, rule_text().replace("schedule: 5m", 'schedule: "0 9 * * 1"\n  lookback: 1h'))
    monday = parse_iso8601("2026-06-08T09:00:00Z")
    due = due_windows(rule, monday - 7 * DAY_MS, monday, CatchUp(max_age_ms=8 * DAY_MS))
    assert due.windows == [Window(monday - 7 * DAY_MS, monday)]


def test_catch_up_is_bounded_by_windows_and_the_gap_is_named(tmp_path: Path) -> None:
    rule = load_one(tmp_path, rule_text())
    due = due_windows(rule, T0, T0 + 3 * HOUR, CatchUp(windows=4))
    end = T0 + 3 * HOUR
    assert due.windows == [Window(end - (4 - i) * 5 * MIN, end - (3 - i) * 5 * MIN) for i in range(4)]
    assert due.skipped == Window(T0, T0 + 3 * HOUR - 20 * MIN)


def test_catch_up_is_bounded_by_age(tmp_path: Path) -> None:
    rule = load_one(tmp_path, rule_text())
    due = due_windows(rule, T0, T0 + 30 * DAY_MS, CatchUp(windows=1000, max_age_ms=HOUR))
    assert len(due.windows) == 13  # the windows that ended in the last hour, the first of them an hour ago
    assert due.windows[0] == Window(T0 + 30 * DAY_MS - HOUR - 5 * MIN, T0 + 30 * DAY_MS - HOUR)
    assert due.skipped == Window(T0, T0 + 30 * DAY_MS - HOUR - 5 * MIN)


# -- rounds over a real data dir ---------------------------------------------------------------


def test_rounds_evaluate_contiguous_windows_and_a_restart_repeats_none(data: DataDir) -> None:
    write_rule(data.rules, "errors.yml", rule_text())
    data.add(T0 - 2 * MIN)
    first = data.scheduler()
    [(_, record)] = first.run_round().runs
    assert (record.outcome, record.since_ms, record.until_ms, record.matches, record.new_alerts) == (
        "ok", T0 - 5 * MIN, T0, 1, 1
    )  # fmt: skip
    assert first.run_round().runs == []  # nothing due until 10:05
    data.clock.ms = T0 + 11 * MIN
    assert [(r.since_ms, r.until_ms) for _, r in first.run_round().runs] == [
        (T0, T0 + 5 * MIN),
        (T0 + 5 * MIN, T0 + 10 * MIN),
    ]
    first.stop()
    restarted = data.scheduler()
    assert restarted.run_round().runs == []
    assert [r.until_ms for r in data.runs()] == [T0, T0 + 5 * MIN, T0 + 10 * MIN]
    assert len(data.alerts()) == 1 and [kind for _, kind in data.events()] == ["trigger"]


def test_after_downtime_the_rule_catches_up_within_the_bound_and_records_the_gap(data: DataDir) -> None:
    write_rule(data.rules, "errors.yml", rule_text())
    scheduler = data.scheduler(catch_up=CatchUp(windows=3))
    scheduler.run_round()
    data.add(T0 + 30 * MIN)  # in the skipped range: never evaluated
    data.add(T0 + 52 * MIN)  # in the last windows
    data.clock.ms = T0 + HOUR
    runs = [r for _, r in scheduler.run_round().runs]
    assert [(r.outcome, r.since_ms, r.until_ms) for r in runs] == [
        ("skipped", T0, T0 + 45 * MIN),  # told with the runs (run-due prints it, the server logs it)
        ("ok", T0 + 45 * MIN, T0 + 50 * MIN),
        ("ok", T0 + 50 * MIN, T0 + 55 * MIN),
        ("ok", T0 + 55 * MIN, T0 + HOUR),
    ]
    skipped = [r for r in data.runs() if r.outcome == "skipped"]
    assert [(r.since_ms, r.until_ms) for r in skipped] == [(T0, T0 + 45 * MIN)]
    assert "catch-up bound (at most 3 windows" in skipped[0].error
    [alert] = data.alerts()
    assert alert["first_seen_ms"] == T0 + 52 * MIN


def test_after_a_start_the_rules_that_ran_wait_for_what_shippers_held_while_the_server_was_down(
    data: DataDir,
) -> None:
    write_rule(data.rules, "errors.yml", rule_text())
    data.scheduler().run_round()  # the rule ran before: its window ends at 10:00
    data.clock.ms = T0 + 20 * MIN  # the server starts again after 20 minutes down
    new_rule = "22222222-3333-4444-8555-666666666666"
    write_rule(data.rules, "new.yml", rule_text(rule_id=new_rule).replace("5m", "30s"))
    restarted = data.scheduler(catch_up=CatchUp(wait_after_start_ms=MIN))
    restarted.wait_for_backlogs()
    assert [rule.id for rule, _ in restarted.run_round().runs] == [new_rule]  # new here: nothing held for it
    assert restarted.status()["resumes"] == "2026-06-01T10:21:00.000Z"
    assert restarted.next_due_ms() == T0 + 20 * MIN + 30_000  # the new rule's next firing, then the wait's end
    data.clock.ms = T0 + 20 * MIN + 30_000
    assert [rule.id for rule, _ in restarted.run_round().runs] == [new_rule]  # it goes on; the other waits
    assert restarted.next_due_ms() == T0 + 21 * MIN
    data.add(T0 + 12 * MIN)  # a shipper's retry, half a minute after the start, sends what it held
    data.clock.ms = T0 + 21 * MIN
    runs = [r for rule, r in restarted.run_round().runs if rule.id == RULE_ID]
    assert [(r.since_ms, r.until_ms) for r in runs] == [(T0 + m * MIN, T0 + (m + 5) * MIN) for m in (0, 5, 10, 15)]
    assert [(a["rule_id"], a["first_seen_ms"]) for a in data.alerts()] == [(RULE_ID, T0 + 12 * MIN)]
    assert restarted.status()["resumes"] is None


def test_records_arriving_late_within_the_delay_are_found(data: DataDir) -> None:
    write_rule(data.rules, "late.yml", rule_text("delay: 2m"))
    write_rule(data.rules, "prompt.yml", rule_text(rule_id="22222222-3333-4444-8555-666666666666"))
    scheduler = data.scheduler()
    scheduler.run_round()
    data.clock.ms = T0 + 5 * MIN  # both fire; the record of 10:04:30 has not arrived yet
    scheduler.run_round()
    data.add(T0 + 4 * MIN + 30_000)  # arrives at 10:05:40, a minute late
    data.clock.ms = T0 + 10 * MIN
    scheduler.run_round()
    assert [a["rule_id"] for a in data.alerts()] == [RULE_ID]  # the rule without a delay had read past it
    assert [(r.since_ms, r.until_ms, r.matches) for r in data.runs()][-1] == (T0 + 3 * MIN, T0 + 8 * MIN, 1)


def test_by_default_a_record_a_shipper_batched_across_a_windows_end_is_found(data: DataDir) -> None:
    """Shippers send about every second: a record stamped just before a firing arrives after it. The default
    delay (3 s) ends each window that long before its firing; with none, the firing had read past the record
    before it arrived, and no later window holds it."""
    write_rule(data.rules, "default.yml", rule_text().replace("  delay: 0s\n", ""))
    write_rule(data.rules, "none.yml", rule_text(rule_id="22222222-3333-4444-8555-666666666666"))
    scheduler = data.scheduler()
    scheduler.run_round()
    data.clock.ms = T0 + 5 * MIN  # both fire: one reads up to 10:05:00, the default one up to 10:04:57
    scheduler.run_round()
    data.clock.ms = T0 + 5 * MIN + 1_000
    data.add(T0 + 5 * MIN - 500)  # stamped 10:04:59.5, arrives at 10:05:01 in a shipper's batch
    data.clock.ms = T0 + 10 * MIN
    scheduler.run_round()
    assert [a["rule_id"] for a in data.alerts()] == [RULE_ID]
    assert [(r.since_ms, r.until_ms, r.matches) for r in data.runs()][-1] == (
        T0 + 5 * MIN - 3_000,
        T0 + 10 * MIN - 3_000,
        1,
    )


def test_the_lookback_keeps_runs_from_reading_older_partitions(data: DataDir) -> None:
    for day in range(3):
        data.add(T0 - (3 - day) * DAY_MS, count=50)
    data.add(T0 - 3 * MIN)
    assert data.lake.flush(everything=True).records == 151
    write_rule(data.rules, "errors.yml", rule_text())
    write_rule(data.rules, "week.yml", rule_text("lookback: 7d", rule_id="22222222-3333-4444-8555-666666666666"))
    runs = {rule.id: record for rule, record in data.scheduler().run_round().runs}
    recent, week = runs[RULE_ID], runs["22222222-3333-4444-8555-666666666666"]
    assert (recent.files_scanned, recent.matches) == (1, 1)  # today's file only, of four days' files
    assert week.files_scanned == 4 and week.bytes_scanned > 3 * recent.bytes_scanned


def test_threshold_dedup_and_suppression_make_alerts_and_events(data: DataDir) -> None:
    write_rule(
        data.rules,
        "errors.yml",
        rule_text("dedup: {window: 15m}", "suppress: [{where: {service: web}, reason: noisy}]", threshold=3),
    )
    scheduler = data.scheduler()
    data.add(T0 - 4 * MIN, count=2)  # under the threshold
    data.add(T0 - 4 * MIN, service="web", count=5)
    scheduler.run_round()
    [suppressed] = data.alerts()
    assert (suppressed["status"], suppressed["status_note"], suppressed["match_count"]) == ("suppressed", "noisy", 5)
    assert data.events() == []
    data.clock.ms = T0 + 5 * MIN
    data.add(T0 + MIN, count=3)
    scheduler.run_round()
    data.clock.ms = T0 + 10 * MIN
    data.add(T0 + 6 * MIN, count=4)
    scheduler.run_round()
    api = [a for a in data.alerts() if a["status"] == "open"]
    assert len(api) == 1
    alert = api[0]
    assert alert["match_count"] == 7
    assert (alert["first_seen_ms"], alert["last_seen_ms"]) == (T0 + MIN, T0 + 6 * MIN + 3)
    assert (alert["window_start_ms"], alert["window_end_ms"]) == (T0, T0 + 10 * MIN)
    assert len(json.loads(alert["evidence"])) == 7
    assert alert["runbook"] == "https://runbooks.example/errors" and json.loads(alert["destinations"]) == ["chat"]
    assert json.loads(alert["tags"]) == ["attack.t1110"] and alert["level"] == "high"
    assert data.events() == [(alert["id"], "trigger"), (alert["id"], "update")]
    data.clock.ms = T0 + 20 * MIN  # the windows from 10:15 are past the dedup window of 10:00's alert
    data.add(T0 + 16 * MIN, count=3)
    scheduler.run_round()
    opened = [a for a in data.alerts() if a["status"] == "open"]
    assert len(opened) == 2 and opened[1]["match_count"] == 3
    assert [kind for _, kind in data.events()] == ["trigger", "update", "trigger"]


def test_groups_of_one_dedup_key_each_add_their_records_to_its_alert(data: DataDir) -> None:
    """A key coarser than the groups (one alert per rule): the group whose records are no later than the alert's
    last seen brings records of its own, not the same ones again (they were dropped: a count and evidence short)."""
    write_rule(
        data.rules, "errors.yml", rule_text("dedup: {key: '{rule_id}', window: 1h}", "alert_title: '{count} errors'")
    )
    scheduler = data.scheduler()
    data.add(T0 - 3 * MIN, service="api", count=3)
    data.add(T0 - 4 * MIN, service="web", count=2)  # earlier than api's, whose match comes first
    scheduler.run_round()
    # One alert, one notification a run: the groups of one key are one match (each updated the alert before).
    [alert] = data.alerts()
    assert (alert["title"], alert["match_count"], alert["first_seen_ms"]) == ("5 errors", 5, T0 - 4 * MIN)
    assert [kind for _, kind in data.events()] == ["trigger"]
    data.clock.ms = T0 + 5 * MIN
    data.add(T0 + 2 * MIN, service="api", count=1)
    data.add(T0 + MIN, service="db", count=4)
    scheduler.run_round()
    [alert] = data.alerts()
    assert (alert["title"], alert["match_count"]) == ("10 errors", 10)
    assert [kind for _, kind in data.events()] == ["trigger", "update"]
    services = sorted(row["service"] for row in json.loads(alert["evidence"]))
    assert services == ["api"] * 4 + ["db"] * 4 + ["web"] * 2


def test_a_suppressed_group_does_not_hide_another_groups_match_of_its_key(data: DataDir) -> None:
    write_rule(
        data.rules,
        "errors.yml",
        rule_text("dedup: {key: '{rule_id}'}", "suppress: [{where: {service: api}, reason: noisy}]"),
    )
    scheduler = data.scheduler()
    data.add(T0 - 2 * MIN, service="api", count=2)
    data.add(T0 - 4 * MIN, service="web", count=3)  # earlier than the suppressed group's
    scheduler.run_round()
    assert sorted((a["status"], a["match_count"]) for a in data.alerts()) == [("open", 3), ("suppressed", 2)]


def test_evidence_stays_bounded_keeping_the_newest_rows(data: DataDir) -> None:
    write_rule(data.rules, "errors.yml", rule_text("evidence: 4"))
    scheduler = data.scheduler()
    data.add(T0 - 4 * MIN, count=3)
    scheduler.run_round()
    data.clock.ms = T0 + 5 * MIN
    data.add(T0 + MIN, count=3)
    scheduler.run_round()
    [alert] = data.alerts()
    kept = [row["timestamp"] for row in json.loads(alert["evidence"])]
    assert len(kept) == 4 and alert["match_count"] == 6
    assert kept[-1] == "2026-06-01T10:01:00.002Z" and kept[0] == "2026-06-01T09:56:00.002Z"


def test_an_overlapping_lookback_does_not_count_records_twice(data: DataDir) -> None:
    write_rule(data.rules, "errors.yml", rule_text("lookback: 15m"))
    scheduler = data.scheduler()
    data.add(T0 - 4 * MIN, count=2)
    scheduler.run_round()
    data.clock.ms = T0 + 5 * MIN  # reads 09:50-10:05: the same two records
    scheduler.run_round()
    [alert] = data.alerts()
    assert alert["match_count"] == 2 and alert["window_end_ms"] == T0 + 5 * MIN
    assert [kind for _, kind in data.events()] == ["trigger"]


def test_a_burst_across_the_windows_of_a_longer_lookback_is_counted_whole(data: DataDir) -> None:
    # Each run reads 15 minutes; the burst's records keep coming for 20 minutes. Each run adds the
    # records no earlier run read, so the alert counts each record once, all of them.
    write_rule(data.rules, "errors.yml", rule_text("lookback: 15m", "dedup: {window: 1h}"))
    scheduler = data.scheduler()
    for minute, count in ((-4, 2), (2, 3), (7, 4), (12, 5)):
        data.add(T0 + minute * MIN, count=count)
    counts = []
    for end in (0, 5, 10, 15):
        data.clock.ms = T0 + end * MIN
        scheduler.run_round()
        [alert] = data.alerts()
        counts.append(alert["match_count"])
    assert counts == [2, 5, 9, 14]  # the last run read 10:00-10:15: 12 records, 5 of them new
    assert [kind for _, kind in data.events()] == ["trigger", "update", "update", "update"]


def test_a_bad_rule_file_is_reported_and_the_others_run(data: DataDir) -> None:
    write_rule(data.rules, "errors.yml", rule_text())
    write_rule(data.rules, "broken.yml", "title: [unclosed\n")
    write_rule(data.rules, "unknown.yml", rule_text("colour: red", rule_id="22222222-3333-4444-8555-666666666666"))
    data.add(T0 - MIN)
    scheduler = data.scheduler()
    assert sorted((Path(p.file).name, p.field) for p in scheduler.folder.problems) == [
        ("broken.yml", "line 2, column 1"),
        ("unknown.yml", "loglake"),
    ]
    assert "colour" in str(scheduler.folder.problems[1])
    assert [rule.id for rule, _ in scheduler.run_round().runs] == [RULE_ID]
    assert len(data.alerts()) == 1


def test_the_folder_is_loaded_again_when_a_file_changes(data: DataDir) -> None:
    scheduler = data.scheduler()
    assert scheduler.folder.rules == []
    path = write_rule(data.rules, "errors.yml", rule_text())
    assert scheduler.reload() and [r.id for r in scheduler.folder.rules] == [RULE_ID]
    assert not scheduler.reload()
    path.write_text(path.read_text().replace("level: high", "level: critical"))
    assert scheduler.reload() and scheduler.folder.rules[0].level == "critical"
    path.unlink()
    assert scheduler.reload() and scheduler.folder.rules == []


FAILING_SQL = f"""
id: {RULE_ID}
title: Numbers
level: low
schedule: 5m
delay: 0s
query: SELECT {{cast}}(message AS INTEGER) AS n, "timestamp" FROM logs
"""


def test_a_rule_that_keeps_failing_raises_its_own_alert_resolved_when_it_runs_again(data: DataDir) -> None:
    path = write_rule(data.rules, "numbers.yml", FAILING_SQL.replace("{cast}", "CAST"))
    data.add(T0 - MIN)  # "api ..." is not a number
    scheduler = data.scheduler(failing_after=2)
    for minute in (0, 5, 10):
        data.clock.ms = T0 + minute * MIN
        runs = [r for _, r in scheduler.run_round().runs]
        assert [r.outcome for r in runs] == ["error"]  # the failed window first, again: it is not skipped
        assert runs[0].since_ms == T0 - 5 * MIN
    [failing] = data.alerts()
    assert (failing["title"], failing["level"], failing["status"], failing["match_count"]) == (
        "Rule failing: Numbers", "high", "open", 3
    )  # fmt: skip
    assert "Could not convert string" in json.loads(failing["evidence"])[-1]["error"]
    path.write_text(FAILING_SQL.replace("{cast}", "TRY_CAST"))
    scheduler.reload()
    data.clock.ms = T0 + 15 * MIN  # the next firing
    runs = [r for _, r in scheduler.run_round().runs]
    assert [(r.outcome, r.since_ms) for r in runs] == [("ok", T0 + m * MIN) for m in (-5, 0, 5, 10)]
    resolved = next(a for a in data.alerts() if a["id"] == failing["id"])
    assert (resolved["status"], resolved["status_by"], resolved["status_note"]) == (
        "resolved",
        "rule",
        "the rule ran again",
    )
    # (its third failure, within the rule's dedup window, updated the alert without sending it again)
    assert [kind for alert_id, kind in data.events() if alert_id == failing["id"]] == ["trigger", "resolve"]


def test_a_failing_rule_is_sent_once_again_only_after_its_dedup_window_and_its_recovery_once(
    data: DataDir, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rule failing every run sent an update (a webhook call, a PagerDuty trigger, a Jira comment) at each failed
    run: one failing every minute paged all night. The alert still follows every run (its count and error)."""
    monkeypatch.setenv("PD_KEY", "R0UTINGKEY00000000000000000000")
    receiver = Receiver()
    delivery = AlertDelivery(data.folder, data.rules, clock=data.clock)
    try:
        write_alerting(
            data.rules,
            f"""
            destinations:
              hook: {{type: webhook, url: "{receiver.url}/hook"}}
              oncall: {{type: pagerduty, routing_key: {{env: PD_KEY}}, url: "{receiver.url}/pd"}}
            routes:
              - {{to: [hook, oncall]}}
            """,
        )
        path = write_rule(data.rules, "numbers.yml", FAILING_SQL.replace("{cast}", "CAST") + "dedup: {window: 30m}\n")
        data.add(T0 - MIN)  # "api ..." is not a number
        scheduler = data.scheduler(failing_after=1)

        def sent() -> list[tuple[str, str]]:
            settle(delivery)
            found = [(r.path, r.json()) for r in receiver.requests]
            receiver.requests.clear()
            # (sorted: each destination is sent to by a thread of its own)
            return sorted((where, body.get("event") or body["event_action"]) for where, body in found)

        data.clock.ms = T0
        scheduler.run_round()
        assert sent() == [("/hook", "trigger"), ("/pd", "trigger")]
        for minute in range(5, 30, 5):  # failing every run within the dedup window: the alert follows, silently
            data.clock.ms = T0 + minute * MIN
            assert [r.outcome for _, r in scheduler.run_round().runs] == ["error"]
            assert sent() == []
            [alert] = data.alerts()
            assert (alert["match_count"], alert["updated_ms"]) == (minute // 5 + 1, data.clock.ms)
            assert "Could not convert string" in json.loads(alert["evidence"])[-1]["error"]
        data.clock.ms = T0 + 30 * MIN  # still failing, its dedup window after it was sent: sent again
        scheduler.run_round()
        assert sent() == [("/hook", "update"), ("/pd", "trigger")]
        data.clock.ms = T0 + 35 * MIN
        scheduler.run_round()
        assert sent() == []
        path.write_text(FAILING_SQL.replace("{cast}", "TRY_CAST").replace("FROM logs", "FROM logs WHERE n > 0"))
        scheduler.reload()
        data.clock.ms = T0 + 40 * MIN
        scheduler.run_round()
        assert sent() == [("/hook", "resolve"), ("/pd", "resolve")]
    finally:
        delivery.stop()
        receiver.close()


def test_a_failing_rules_alert_is_resolved_once_the_rule_is_disabled_or_removed_not_while_its_file_is_broken(
    data: DataDir,
) -> None:
    failing = FAILING_SQL.replace("{cast}", "CAST")
    path = write_rule(data.rules, "numbers.yml", failing)
    data.add(T0 - MIN)  # "api ..." is not a number
    scheduler = data.scheduler(failing_after=1)

    def alert_after(change: str) -> dict:
        path.write_text(change)
        os.utime(path, ns=(time.time_ns(), time.time_ns() + 1000))  # (a change the folder sees at once)
        scheduler.reload()
        [alert] = [a for a in data.alerts() if a["title"] == "Rule failing: Numbers"][-1:]
        return alert

    data.clock.ms = T0
    scheduler.run_round()
    assert alert_after("title: [not closed")["status"] == "open"  # broken: it still does not run
    assert alert_after(failing.replace("delay: 0s", "delay: 0s\nenabled: false"))["status"] == "resolved"
    disabled = data.alerts()[-1]
    assert (disabled["status_by"], disabled["status_note"]) == ("rule", "the rule was disabled")

    path.write_text(failing)
    scheduler.reload()
    data.clock.ms = T0 + 5 * MIN
    scheduler.run_round()  # it fails again: a new alert
    assert [a["status"] for a in data.alerts()] == ["resolved", "open"]
    path.unlink()
    scheduler.reload()
    removed = data.alerts()[-1]
    assert (removed["status"], removed["status_note"]) == ("resolved", "the rule was removed from the rules folder")
    assert [kind for _, kind in data.events()] == ["trigger", "resolve", "trigger", "resolve"]


def test_loading_a_folder_without_rules_makes_no_alerts_db(data: DataDir) -> None:
    """(The reload that resolves the failing alerts of stopped rules opened alerts.db, making it where no rule ran.)"""
    data.rules.mkdir()
    scheduler = data.scheduler()
    assert scheduler.run_round().runs == []
    assert not (data.folder / "alerts.db").exists()


def test_a_failed_window_waits_for_the_next_firing_and_its_repeated_failures_keep_one_record(data: DataDir) -> None:
    write_rule(data.rules, "numbers.yml", FAILING_SQL.replace("{cast}", "CAST"))
    data.add(T0 - MIN)  # "api ..." is not a number
    scheduler = data.scheduler()
    for minute in (0, 5, 10):
        data.clock.ms = T0 + minute * MIN
        assert [(r.outcome, r.until_ms) for _, r in scheduler.run_round().runs] == [("error", T0)]
        for seconds in (5, 10, 299):  # the server's rounds between two firings of the 5m rule
            data.clock.ms = T0 + minute * MIN + seconds * 1000
            assert scheduler.run_round().runs == []
    [run] = data.runs()  # the same window, the same error: one record of three attempts
    assert (run.outcome, run.since_ms, run.until_ms, run.attempts) == ("error", T0 - 5 * MIN, T0, 3)
    assert (run.first_started_ms, run.started_ms) == (T0, T0 + 10 * MIN) and "Could not convert string" in run.error
    assert [a["match_count"] for a in data.alerts()] == [3]  # Rule failing, after three firings
    data.clock.ms = T0 + 15 * MIN
    assert [(r.outcome, r.until_ms) for _, r in scheduler.run_round().runs] == [("error", T0)]  # kept, not skipped


def test_a_window_that_failed_until_past_the_catch_up_bound_is_named_skipped_for_its_failures(data: DataDir) -> None:
    """Its skipped run said "down longer than the catch-up bound" of a server that never was (a trial): the rule
    failed. Its retries read the same window, not a longer one, however long it fails. Its failing alert's resolve
    said "the rule ran again", as if that window had been evaluated."""
    write_rule(data.rules, "numbers.yml", FAILING_SQL.replace("{cast}", "CAST"))
    data.add(T0 - MIN)  # "api ..." is not a number
    scheduler = data.scheduler(catch_up=CatchUp(windows=3))
    for minute in (0, 5, 10):
        data.clock.ms = T0 + minute * MIN
        assert [(r.outcome, r.since_ms, r.until_ms) for _, r in scheduler.run_round().runs] == [
            ("error", T0 - 5 * MIN, T0)
        ]
    data.clock.ms = T0 + 15 * MIN  # the failed window is past the bound: the 3 windows after it run
    runs = [(r.outcome, r.since_ms) for _, r in scheduler.run_round().runs]
    assert runs == [("skipped", T0 - 5 * MIN), *[("ok", T0 + m * MIN) for m in (0, 5, 10)]]
    [skipped] = [r for r in data.runs() if r.outcome == "skipped"]
    assert (skipped.since_ms, skipped.until_ms) == (T0 - 5 * MIN, T0)
    assert skipped.error == (
        "not evaluated: the rule's runs of this range failed (the last at 2026-06-01T10:10:00.000Z) until it was past"
        " the catch-up bound (at most 3 windows, none older than 24 h); these records were not checked"
    )
    assert "down" not in skipped.error
    # Its failing alert is resolved, but not as if the failed window had run at last: its records were not checked.
    [failing] = data.alerts()
    assert (failing["status"], failing["status_note"]) == (
        "resolved",
        "the rule ran again, but not over the range it failed on: 2026-06-01T09:55:00.000Z to"
        " 2026-06-01T10:00:00.000Z was skipped (past the catch-up bound), its records not checked",
    )


def test_a_round_waits_its_turn_while_another_process_holds_the_rules(data: DataDir) -> None:
    write_rule(data.rules, "errors.yml", rule_text())
    scheduler = data.scheduler()
    with exclusive_lock(data.folder / LOCK_FILE):
        report = scheduler.run_round()
    assert report.busy and report.runs == []
    assert len(scheduler.run_round().runs) == 1


def test_a_window_moved_by_another_process_is_not_committed_again(data: DataDir) -> None:
    write_rule(data.rules, "errors.yml", rule_text())
    data.add(T0 - MIN)
    data.scheduler().run_round()
    stale = data.scheduler()
    conn = data.db()
    with write_transaction(conn):  # as if it had planned the window before the first one committed it
        assert state.claim(conn, RULE_ID, T0 - 5 * MIN, T0 - 5 * MIN, T0, T0) is None
        assert not state.advance(conn, RULE_ID, T0 - 5 * MIN, T0)
    conn.close()
    assert stale.run_round().runs == []
    assert len(data.alerts()) == 1


def test_an_alert_whose_condition_stays_clear_is_resolved_after_resolve_after(data: DataDir) -> None:
    write_rule(data.rules, "errors.yml", rule_text("resolve_after: 15m", "dedup: {window: 1d}"))
    scheduler = data.scheduler()
    data.add(T0 - MIN)
    data.add(T0 - MIN, service="web")
    scheduler.run_round()  # both open, their condition held in the window ending 10:00
    for minute in (5, 10):
        data.clock.ms = T0 + minute * MIN
        data.add(T0 + (minute - 1) * MIN, service="web")  # web's condition keeps holding
        scheduler.run_round()
    assert {a["group_values"]: a["status"] for a in data.alerts()} == {
        '{"service":"api"}': "open",
        '{"service":"web"}': "open",
    }
    data.clock.ms = T0 + 15 * MIN  # api has been clear for 15 minutes (10:00 to 10:15)
    scheduler.run_round()
    by_service = {json.loads(a["group_values"])["service"]: a for a in data.alerts()}
    api, web = by_service["api"], by_service["web"]
    assert (api["status"], api["status_by"], api["status_note"]) == (
        "resolved", "rule", "its condition has been clear for 15m"
    )  # fmt: skip
    assert web["status"] == "open"
    assert [kind for alert_id, kind in data.events() if alert_id == api["id"]] == ["trigger", "resolve"]
    data.clock.ms = T0 + 20 * MIN
    data.add(T0 + 16 * MIN)  # api again: a new alert, the resolved one is not reopened
    scheduler.run_round()
    assert sorted((json.loads(a["group_values"])["service"], a["status"]) for a in data.alerts()) == [
        ("api", "open"),
        ("api", "resolved"),
        ("web", "open"),
    ]  # fmt: skip  web was last seen in the window ending 10:10: clear for 10 minutes only


def test_a_run_whose_window_another_process_moved_meanwhile_commits_nothing(data: DataDir) -> None:
    # The run's query blocks opening a lake file that is a FIFO; meanwhile "another process" (one that
    # did not take the rules lock, say on a file system without flock) evaluates the window.
    write_rule(data.rules, "errors.yml", rule_text())
    scheduler = data.scheduler()
    scheduler.run_round()  # the windows start at 10:00
    day = datetime.fromtimestamp(T0 / 1000, UTC).date()
    key = app_logs_key(day, "part-blocking.parquet")
    fifo = data.lake.objects.root / key
    fifo.parent.mkdir(parents=True)
    os.mkfifo(fifo)
    listed = LakeFile(key, APP_LOGS_TABLE.name, day.isoformat(), T0 + MIN, T0 + MIN, 1, 1)
    data.store.in_write_transaction(lambda conn: add_files(conn, [listed], T0)).result()
    data.clock.ms = T0 + 5 * MIN
    running = threading.Thread(target=lambda: reports.append(scheduler.run_round()))
    reports: list = []
    running.start()
    try:
        for _ in range(400):
            if threads_waiting_for_a_fifo_writer() == 1:
                break
            time.sleep(0.05)
        assert threads_waiting_for_a_fifo_writer() == 1, "the run did not reach its lake file"
        conn = data.db()
        with write_transaction(conn):
            assert state.advance(conn, RULE_ID, T0, T0 + 5 * MIN)
        conn.close()
    finally:
        writer = os.open(fifo, os.O_RDWR)  # lets the query go on (and fail on what is no Parquet file)
        fifo.unlink()
        os.close(writer)
        running.join()
    [(_, record)] = reports[0].runs
    assert (record.outcome, record.error) == ("superseded", "another process evaluated this window")
    conn = data.db()
    assert state.state_of(conn, RULE_ID) == state.RuleState(T0 + 5 * MIN, 0)  # no failure counted either
    conn.close()


def test_run_records_are_kept_up_to_a_bound_per_rule(data: DataDir, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(state, "KEEP_RUNS", 3)
    write_rule(data.rules, "errors.yml", rule_text())
    scheduler = data.scheduler()
    scheduler.run_round()
    data.clock.ms = T0 + 30 * MIN
    assert len(scheduler.run_round().runs) == 6
    assert [(r.outcome, r.until_ms) for r in data.runs()] == [("ok", T0 + m * MIN) for m in (20, 25, 30)]


WARNINGS_ID = "22222222-3333-4444-8555-666666666666"
NUMBERS_ID = "33333333-4444-4555-8666-777777777777"


class Runs:
    """The scheduler's edge as the server has one: what it is told of each run."""

    def __init__(self) -> None:
        self.told: list[tuple[str, str]] = []

    def on_rule_run(self, rule: object, record: state.RunRecord) -> None:
        self.told.append((record.rule_id, record.outcome))

    def on_rules_loaded(self, rules: list, problems: list) -> None:
        pass


@pytest.mark.parametrize("shared", [True, False])
def test_a_rule_whose_rows_hold_a_value_python_cannot_fails_alone(data: DataDir, shared: bool) -> None:
    """An INTERVAL past Python's timedelta (in a list: a column of them is answered as text) raised OverflowError as
    the rows were fetched: out of the round, whose other rules did not run either (each round failed so)."""
    write_rule(data.rules, "errors.yml", rule_text())
    huge = FAILING_SQL.replace(RULE_ID, NUMBERS_ID).replace("{cast}(message AS INTEGER)", "[INTERVAL 1000000000 DAY]")
    if not shared:  # (a rule reading more than the shared span reads the lake on its own)
        huge = huge.replace("delay: 0s", "delay: 0s\nlookback: 1d")
    write_rule(data.rules, "huge.yml", huge)
    data.add(T0 - MIN)
    report = data.scheduler().run_round()
    assert [(rule.id, r.outcome) for rule, r in report.runs] == [(RULE_ID, "ok"), (NUMBERS_ID, "error")]
    assert report.shared == (2 if shared else 0)
    assert "too large to be given" in report.runs[1][1].error


def test_rules_of_a_round_share_one_scan_and_keep_their_own_windows_records_and_failures(data: DataDir) -> None:
    write_rule(data.rules, "errors.yml", rule_text())
    warnings = rule_text(rule_id=WARNINGS_ID).replace("title: Errors", "title: Warnings")
    write_rule(data.rules, "warnings.yml", warnings.replace("severity: error", "severity: warning"))
    write_rule(data.rules, "numbers.yml", FAILING_SQL.replace("{cast}", "CAST").replace(RULE_ID, NUMBERS_ID))
    data.add(T0 - MIN)  # "api ..." is not a number: the SQL rule fails on it
    observer = Runs()
    scheduler = data.scheduler(failing_after=2, observer=observer)
    first = scheduler.run_round()
    assert first.shared == 3 and [r.outcome for _, r in first.runs] == ["ok", "error", "ok"]  # in file order
    data.add(T0 + 7 * MIN)
    data.add(T0 + 12 * MIN, service="web", severity="warning")
    data.clock.ms = T0 + 15 * MIN  # three windows due for each rule: the failing one stops at its first
    caught_up = scheduler.run_round()
    assert caught_up.shared == 3 + 2 + 2
    assert [(rule.id, r.outcome, r.until_ms) for rule, r in caught_up.runs] == [
        (RULE_ID, "ok", T0 + 5 * MIN),
        (NUMBERS_ID, "error", T0),
        (WARNINGS_ID, "ok", T0 + 5 * MIN),
        (RULE_ID, "ok", T0 + 10 * MIN),
        (WARNINGS_ID, "ok", T0 + 10 * MIN),
        (RULE_ID, "ok", T0 + 15 * MIN),
        (WARNINGS_ID, "ok", T0 + 15 * MIN),
    ]
    for rule_id in (RULE_ID, WARNINGS_ID):
        runs = data.runs(rule_id)
        assert [(r.since_ms, r.until_ms) for r in runs] == [(T0 + m * MIN, T0 + (m + 5) * MIN) for m in (-5, 0, 5, 10)]
        assert [r.finished_ms for r in runs] == [T0, *[T0 + 15 * MIN] * 3]
        assert all(r.duration_ms is not None for r in runs)
    # One scan for the step: 09:55-10:05, as the failing rule's window starts at 09:55. Its record of
    # 09:59 was read for the other two as well, whose own windows (10:00-10:05) hold none.
    step = [r for _, r in caught_up.runs[:3]]
    assert [r.rows_scanned for r in step] == [1, None, 1]
    assert [(r.outcome, r.since_ms, r.attempts) for r in data.runs(NUMBERS_ID)] == [("error", T0 - 5 * MIN, 2)]
    assert sorted((a["rule_id"], a["title"], a["match_count"]) for a in data.alerts()) == [
        (RULE_ID, "Errors", 2),  # the records of 09:59 and 10:07, within the dedup window
        (WARNINGS_ID, "Warnings", 1),
        (NUMBERS_ID, "Rule failing: Numbers", 2),
    ]
    assert observer.told == [(rule.id, r.outcome) for report in (first, caught_up) for rule, r in report.runs]


SLOW_SQL = f"""
id: {NUMBERS_ID}
title: Slow
level: low
schedule: 5m
delay: 0s
query: >
  SELECT a."timestamp", a.service FROM logs a, logs b, logs c, logs d, logs e
  WHERE a.message < b.message AND c.message < d.message AND e.message <> a.message
"""


def rule_timed_out(seconds: float) -> str:
    return (
        f"its query ran longer than {seconds:g} s (the server's query_timeout_seconds) and was stopped; narrow it: a"
        " shorter lookback, or conditions that read fewer records"
    )


def test_a_rule_alone_stopped_at_the_query_timeout_is_told_what_rules_can_do(data: DataDir) -> None:
    """It was told to "allow more time (timeout_seconds / --timeout)", options of /query that rules lack."""
    write_rule(data.rules, "slow.yml", SLOW_SQL)
    data.add(T0 - 3 * MIN, count=200)
    lake = Lake(data.store, data.lake.objects, data.folder, clock=data.clock, limits=QueryLimits(timeout_seconds=0.5))
    scheduler = RuleScheduler(RuleFolder(data.rules), lake.engine, data.folder, clock=data.clock)
    try:
        scheduler.reload()
        [(_, record)] = scheduler.run_round().runs
        assert (record.outcome, record.error.endswith(f"slow.yml): {rule_timed_out(0.5)}")) == ("error", True), record
    finally:
        scheduler.stop()
        lake.close()


def test_a_rule_sharing_a_scan_is_stopped_at_the_engines_query_timeout_as_alone(data: DataDir) -> None:
    write_rule(data.rules, "errors.yml", rule_text())
    write_rule(data.rules, "slow.yml", SLOW_SQL)  # 200 records: 200^5 rows to join
    data.add(T0 - 3 * MIN, count=200)
    # (3 s: the shared fetch of 200 records fits in it on a busy machine, where 0.5 s timed it out once in CI and each
    # rule ran alone; the slow rule's 200^5 rows do not)
    lake = Lake(data.store, data.lake.objects, data.folder, clock=data.clock, limits=QueryLimits(timeout_seconds=3))
    scheduler = RuleScheduler(RuleFolder(data.rules), lake.engine, data.folder, clock=data.clock)
    scheduler.reload()
    reports: list = []
    running = threading.Thread(target=lambda: reports.append(scheduler.run_round()), daemon=True)
    running.start()
    running.join(120)  # a deadline, not a measure: without the timeout the join runs for hours
    try:
        assert not running.is_alive(), "the slow rule was not stopped"
        [report] = reports
        assert report.shared == 2
        outcomes = {rule.title: (record.outcome, record.error) for rule, record in report.runs}
        assert outcomes["Errors"] == ("ok", None)
        assert outcomes["Slow"][0] == "error"
        assert outcomes["Slow"][1].endswith(f"slow.yml): {rule_timed_out(3)}")
    finally:
        scheduler.stop()
        lake.close()


def test_a_rule_failing_past_the_catch_up_bound_keeps_one_record_of_its_failures(
    data: DataDir, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the bound its failed window moves at each firing: each failure was a record of its own, and a 1m rule
    failing for hours filled the kept records with copies of one error, pushing out every run before them."""
    monkeypatch.setattr(state, "KEEP_RUNS", 3)
    path = write_rule(data.rules, "numbers.yml", FAILING_SQL.replace("{cast}", "TRY_CAST"))
    scheduler = data.scheduler(catch_up=CatchUp(windows=2))
    assert [r.outcome for _, r in scheduler.run_round().runs] == ["ok"]
    path.write_text(FAILING_SQL.replace("{cast}", "CAST"))
    scheduler.reload()
    records = [{"timestamp": T0 + m * MIN, "service": "api", "message": "down"} for m in range(0, 40, 5)]
    data.store.submit(validate_batch(records, Limits(), T0 + DAY_MS)).result()  # not a number, in every window
    for minute in range(5, 45, 5):
        data.clock.ms = T0 + minute * MIN
        assert [r.outcome for _, r in scheduler.run_round().runs] == ["error"]
    ok, failed = data.runs()  # the good run is kept; 8 failures, from the first window tried to the last
    assert (ok.outcome, ok.until_ms) == ("ok", T0)
    assert (failed.outcome, failed.attempts, failed.since_ms, failed.until_ms) == ("error", 8, T0, T0 + 35 * MIN)
    assert (failed.first_started_ms, failed.started_ms) == (T0 + 5 * MIN, T0 + 40 * MIN)
    assert "Could not convert string" in failed.error


def test_a_rule_failing_alone_and_sharing_a_scan_fails_with_one_error(data: DataDir) -> None:
    """A run on the shared records said the first line of DuckDB's error, a run of its own all of it: a 5m rule beside
    a 10m one failed with two texts in turn, each failure a run record of its own and a changed error in its alert."""
    write_rule(data.rules, "numbers.yml", FAILING_SQL.replace("{cast}", "CAST"))
    write_rule(data.rules, "errors.yml", rule_text(rule_id=WARNINGS_ID).replace("schedule: 5m", "schedule: 10m"))
    data.add(T0 - MIN)  # "api ..." is not a number
    scheduler = data.scheduler()
    errors = []
    for minute in (0, 5, 10):  # with the 10m rule, alone, with it
        data.clock.ms = T0 + minute * MIN
        report = scheduler.run_round()
        errors += [r.error for rule, r in report.runs if rule.id == RULE_ID]
        assert report.shared == (0 if minute == 5 else 2)
    assert len(set(errors)) == 1 and "Could not convert string" in errors[0]
    [run] = data.runs()
    assert run.attempts == 3
