"""Schedules: intervals run at multiples of their length, cron expressions at their times (UTC)."""

from __future__ import annotations

import pytest

from loglake.rules.schedule import Cron, Interval, ScheduleError, parse_schedule
from loglake.times import parse_iso8601


def at(text: str) -> int:
    return parse_iso8601(text)


def test_an_interval_runs_at_multiples_of_its_length() -> None:
    schedule = parse_schedule("5m")
    assert schedule == Interval(300_000)
    assert schedule.next_after(at("2026-01-05T10:02:30Z")) == at("2026-01-05T10:05:00Z")
    assert schedule.next_after(at("2026-01-05T10:05:00Z")) == at("2026-01-05T10:10:00Z")


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("*/10 * * * *", "2026-01-05T10:02:30Z", "2026-01-05T10:10:00Z"),
        ("0 3 * * *", "2026-01-05T03:00:00Z", "2026-01-06T03:00:00Z"),
        ("30 9 * * mon-fri", "2026-01-09T10:00:00Z", "2026-01-12T09:30:00Z"),  # Friday after 9:30 -> Monday
        ("0 0 1 jan,jul *", "2026-01-05T00:00:00Z", "2026-07-01T00:00:00Z"),
        ("15 14 1 * 5", "2026-01-02T15:00:00Z", "2026-01-09T14:15:00Z"),  # the 1st or a Friday: Friday 9th
        ("0 12 * * 7", "2026-01-05T00:00:00Z", "2026-01-11T12:00:00Z"),  # 7 is Sunday too
        ("0 0 29 2 *", "2026-03-01T00:00:00Z", "2028-02-29T00:00:00Z"),
        ("5-10/5 1 * * *", "2026-01-05T01:05:00Z", "2026-01-05T01:10:00Z"),
    ],
)
def test_cron(expression: str, after: str, expected: str) -> None:
    schedule = parse_schedule(expression)
    assert isinstance(schedule, Cron)
    assert schedule.next_after(at(after)) == at(expected)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("5 minutes", r"has 2 fields; cron takes five: .* \(an interval is written 5m, 1h, 1d\)"),
        ("soon", "neither an interval"),
        ("500ms", "shorter than a second"),
        ("10000d", "'10000d' is longer than 366 d; for yearly runs write cron: 0 0 1 1 \\*"),
        ("61 * * * *", "minute '61' is not 0-59"),
        ("² * * * *", "'²' is not a value, range"),  # str.isdigit() says yes, int() refuses it
        ("* * * foo *", "month 'foo'"),
        ("10-5 * * * *", "runs backwards"),
        ("*/0 * * * *", "a step of 0"),
        ("*/61 * * * *", "a step of 61 takes only the first of 0-59"),  # (a new-user trial: accepted, hourly)
        ("0 0 */31 * *", "a step of 31 takes only the first of 1-31"),
        ("0 0 30 2 *", "never fires"),
    ],
)
def test_schedules_that_cannot_work(text: str, message: str) -> None:
    with pytest.raises(ScheduleError, match=message):
        parse_schedule(text)
