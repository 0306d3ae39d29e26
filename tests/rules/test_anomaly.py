"""Anomaly rules: load-time problems with file and field, the seasonal baseline computed from the lake
(samples, zeros, history the lake does not hold, min_volume), the evidence, inline tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from loglake.rules.backtest import WINDOWS, backtest
from loglake.rules.run import run_rule
from loglake.rules.testing import Placed, ScratchLake, run_tests
from loglake.times import DAY_MS, parse_iso8601
from tests.rules.conftest import load_one, problems_of
from tests.rules.test_cli_rules import rules

WEEK, HOUR, MINUTE = 7 * DAY_MS, 3_600_000, 60_000
QUIET = """
title: A service logs far less than usual
id: 99999999-8888-4999-8aaa-bbbbbbbbbbbb
level: medium
type: anomaly
schedule: 1h
delay: 0s
group_by: [service]
metric: {table: logs}
baseline: {period: 1w, history: 3w, min_samples: 2}
direction: down
min_volume: 5
sensitivity: 3
alert_title: "{service} went quiet"
"""


def _records(lake: ScratchLake, at_ms: int, service: str, count: int) -> None:
    events = [Placed(i, at_ms + i * 1000, {"service": service, "message": f"{service} {i}"}) for i in range(count)]
    lake.add("logs", events, at_ms + DAY_MS)


def test_the_window_is_compared_with_the_same_hour_of_earlier_weeks(scratch: ScratchLake, tmp_path: Path) -> None:
    rule = load_one(tmp_path, QUIET)
    now = parse_iso8601("2026-03-02T10:00:00Z")  # a Monday, 10:00-11:00
    for weeks_back, count in ((1, 20), (2, 22), (3, 18)):
        _records(scratch, now - weeks_back * WEEK + 5 * MINUTE, "api", count)  # 0 now: quiet
        _records(scratch, now - weeks_back * WEEK + 6 * MINUTE, "cron", 3)  # too few to judge
    for weeks_back in (1, 2):
        _records(scratch, now - weeks_back * WEEK + 7 * MINUTE, "web", 10)
    _records(scratch, now + 7 * MINUTE, "web", 9)
    _records(scratch, now - WEEK + 8 * MINUTE, "db", 8)  # only once: 8, 0, 0 on average 2.7 records
    _records(scratch, now - WEEK - HOUR, "api", 50)  # the hour before a week ago: not a sample
    result = run_rule(rule, scratch.engine, now, now + HOUR, now_ms=now + HOUR)
    assert [m.title for m in result.matches] == ["api went quiet"]
    (facts,) = result.matches[0].evidence
    # mean 20; standard deviation sqrt(8/3) = 1.63 under the square root of the mean, 4.472
    assert {k: facts[k] for k in ("service", "value", "volume", "baseline", "spread", "deviation", "samples")} == {
        "service": "api",
        "value": 0,
        "volume": 0,
        "baseline": 20.0,
        "spread": 4.472,
        "deviation": -4.47,
        "samples": 3,
    }
    assert result.matches[0].group == {"service": "api"}
    # a backtest runs it window by window: only 10:00-11:00 is quiet (nothing was logged at 11 before)
    report = backtest(rule, scratch.engine, now - HOUR, now + 2 * HOUR)
    assert (report.method, report.windows, report.alerts) == (WINDOWS, 3, 1)
    assert report.days[0].examples[0].until_ms == now + HOUR


def test_no_alert_until_enough_earlier_periods_hold_data(scratch: ScratchLake, tmp_path: Path) -> None:
    rule = load_one(tmp_path, QUIET)
    now = parse_iso8601("2026-06-01T10:00:00Z")
    _records(scratch, now - WEEK + 5 * MINUTE, "api", 20)  # the lake holds nothing two and three weeks back
    assert run_rule(rule, scratch.engine, now, now + HOUR, now_ms=now + HOUR).matches == []  # 1 sample of 2
    _records(scratch, now - 2 * WEEK + 5 * MINUTE, "api", 22)
    (match,) = run_rule(rule, scratch.engine, now, now + HOUR, now_ms=now + HOUR).matches
    # three weeks back is left out (the lake holds nothing then), not counted as 0
    assert (match.evidence[0]["samples"], match.evidence[0]["baseline"]) == (2, 21.0)


SPIKE = """
title: Errors far above usual
id: 99999999-8888-4999-8aaa-cccccccccccc
level: high
type: anomaly
schedule: 30m
delay: 0s
group_by: [service]
metric: {table: logs, where: "severity IN ('error', 'critical')"}
baseline: {period: 1d, history: 2d}
min_volume: 10
tests:
  - name: a spike fires
    events:
      - {service: api, severity: error, message: x, at: -1d, repeat: 3}
      - {service: api, severity: error, message: x, at: -2d, repeat: 5}
      - {service: api, severity: error, message: x, at: 1m, repeat: 30}
    match: true
    group: {service: api}
  - name: the usual level does not
    events:
      - {service: api, severity: error, message: x, at: -1d, repeat: 20}
      - {service: api, severity: error, message: x, at: -2d, repeat: 24}
      - {service: api, severity: info, message: x, at: 1m, repeat: 100}
      - {service: api, severity: error, message: x, at: 1m, repeat: 25}
    match: false
"""


def test_inline_tests_run_against_the_history_they_place(tmp_path: Path) -> None:
    rule = load_one(tmp_path, SPIKE)
    assert rule.kind == "anomaly" and rule.plan.reach_ms == 2 * DAY_MS
    shown = rules("show", "99999999-8888-4999-8aaa-cccccccccccc", "--rules-dir", str(tmp_path))
    assert (
        "threshold:    a deviation from the seasonal baseline (the file's metric and baseline), per service"
        in shown.stdout
    )
    assert [o.failures for o in run_tests([rule])] == [(), ()]
    wrong = load_one(tmp_path, SPIKE.replace("min_volume: 10", "min_volume: 31"), "wrong.yml")
    assert run_tests([wrong])[0].failures == ("expected a match, got none",)


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ("metric: {table: logs}", "metric", "unknown field 'valu' (did you mean 'value'?)"),
        ("metric: {table: logs, value: count(nothing)}", "metric.value", "nothing"),
        ("metric: {table: logs, where: 'nothing = 1'}", "metric.where", "nothing"),
        ("metric: {table: logs, value: 'max(service)'}", "metric.value", "gives VARCHAR: a metric is a number"),
        ("metric: {table: logs, value: 'sum(length(message)) / 2'}", "", ""),
        ("metric: {table: alerts}", "metric.table", "logs or amplify_access"),
        ("baseline: {period: 1w, history: 10d}", "baseline.history", "whole number of periods"),
        ("baseline: {period: 30m, history: 1d}", "baseline.period", "shorter than the window"),
        ("baseline: {period: 1w, history: 2w, min_samples: 3}", "baseline.min_samples", "2 period(s)"),
        ("direction: sideways", "direction", "up, down or both"),
        ("threshold: 5", "threshold", "does not apply"),
        ("type: anomalous", "type", "anomaly"),
    ],
)
def test_problems_name_the_file_and_the_field(tmp_path: Path, change: str, field: str, message: str) -> None:
    key = change.split(":")[0]
    lines = [line for line in QUIET.splitlines() if not line.startswith(key + ":")]
    text = "\n".join([*lines, change.replace("{table: logs}", "{table: logs, valu: count(*)}")]) + "\n"
    if not field:  # a valid value expression: the rule loads
        load_one(tmp_path, text)
        return
    problems = problems_of(tmp_path, text)
    assert [(p.file, p.field) for p in problems] == [(str(tmp_path / "bad.yml"), field)], problems
    assert message in problems[0].message
