"""Backtests over a real loglake (records in the lake's Parquet files and in the hot store): the windows
the scheduler would evaluate, dedup and suppressions as the engine applies them, and the grouped
query giving exactly what running the rule window by window gives."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from loglake.lake import watchdog
from loglake.lake.lake import Lake
from loglake.lake.objectstore import LocalObjectStore
from loglake.lake.query_limits import QueryLimits
from loglake.model import Limits, validate_batch
from loglake.rules.backtest import (
    GROUPED,
    WINDOWS,
    WITH_RECORDS,
    Backtest,
    backtest,
    grouped_sql,
    method_of,
    windows,
)
from loglake.rules.run import RuleTimedOut
from loglake.store.sqlite import SQLiteHotStore
from loglake.times import DAY_MS, parse_iso8601
from tests.rules.conftest import load_one, write_rule
from tests.rules.test_cli_rules import rules

DAY1 = parse_iso8601("2026-05-04T00:00:00Z")
DAY2, DAY3 = DAY1 + DAY_MS, DAY1 + 2 * DAY_MS
MINUTE, HOUR = 60_000, 3_600_000


def _record(at_ms: int, service: str, severity: str = "error", user: str | None = None) -> dict:
    record = {"timestamp": at_ms, "service": service, "severity": severity, "message": f"{service} at {at_ms}"}
    if user is not None:
        record["attributes"] = {"user": user}
    return record


def _lake(folder: Path, flushed: list[dict], hot: list[dict]) -> Lake:
    store = SQLiteHotStore(folder / "hot.db", durability="process")
    lake = Lake(store, LocalObjectStore(folder / "lake"), folder, clock=lambda: (DAY3 + DAY_MS) / 1000)
    limits = Limits()
    store.submit(validate_batch(flushed, limits, DAY3 + DAY_MS)).result()
    assert lake.flush(everything=True).records == len(flushed)
    if hot:
        store.submit(validate_batch(hot, limits, DAY3 + DAY_MS)).result()
    return lake


@pytest.fixture(scope="module")
def hand_made(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lake]:
    """api: 2 errors in hour 0, 2 in hour 1, 2 in hour 4 of day 1 and 2 in hour 0 of day 2 (hot);
    web: one error an hour; db: infos only."""
    folder = tmp_path_factory.mktemp("hand")
    flushed = [
        _record(DAY1 + 10 * MINUTE, "api"),
        _record(DAY1 + 20 * MINUTE, "api"),
        _record(DAY1 + HOUR + 30 * MINUTE, "api"),
        _record(DAY1 + HOUR + 40 * MINUTE, "api"),
        _record(DAY1 + 4 * HOUR + 5 * MINUTE, "api"),
        _record(DAY1 + 4 * HOUR + 6 * MINUTE, "api"),
        *(_record(DAY1 + h * HOUR, "web") for h in range(24)),
        *(_record(DAY1 + h * HOUR, "db", "info") for h in range(24)),
    ]
    hot = [_record(DAY2 + 30 * MINUTE, "api"), _record(DAY2 + 31 * MINUTE, "api")]
    lake = _lake(folder, flushed, hot)
    yield lake
    lake.close()
    lake.store.close()


HOURLY = """
title: Errors
id: 77777777-8888-4999-8aaa-bbbbbbbbbbbb
level: high
logsource: {product: loglake, service: app_logs}
detection: {sel: {severity: error}, condition: sel}
loglake:
  schedule: 1h
  delay: 0s
  threshold: 2
  group_by: [service]
  alert_title: "{count} errors in {service}"
  dedup: {window: 3h}
"""


def test_the_windows_are_the_schedulers_shifted_by_the_delay(tmp_path: Path) -> None:
    rule = load_one(tmp_path, HOURLY.replace("delay: 0s", "lookback: 2h\n  delay: 10m"))
    assert list(windows(rule, DAY1, DAY1 + 3 * HOUR)) == [
        (DAY1 - 70 * MINUTE, DAY1 + 50 * MINUTE),
        (DAY1 - 10 * MINUTE, DAY1 + 110 * MINUTE),
        (DAY1 + 50 * MINUTE, DAY1 + 170 * MINUTE),
    ]


@pytest.mark.parametrize("method", [GROUPED, WINDOWS])
def test_alerts_per_day_with_dedup(hand_made: Lake, tmp_path: Path, method: str) -> None:
    rule = load_one(tmp_path, HOURLY)
    report = backtest(rule, hand_made.engine, DAY1, DAY3, method=method)
    assert [(d.day, d.windows, d.matches, d.alerts) for d in report.days] == [
        ("2026-05-04", 24, 3, 2),  # hour 1's match updates hour 0's alert (within 3 h); hour 4's opens one
        ("2026-05-05", 24, 1, 1),
    ]
    assert report.method == method and report.alerts == 3
    first = report.days[0].examples[0]
    assert (first.since_ms, first.until_ms, first.match.title, first.match.count) == (
        DAY1,
        DAY1 + HOUR,
        "2 errors in api",
        2,
    )
    # the example's evidence is the records of its window, whichever way the matches were found
    assert [row["message"] for row in first.match.evidence] == [
        f"api at {DAY1 + 10 * MINUTE}",
        f"api at {DAY1 + 20 * MINUTE}",
    ]
    assert report.days[0].examples[1].until_ms == DAY1 + 5 * HOUR
    assert report.rows_scanned > 0
    assert report.queries == (2 if method == GROUPED else 48) + (3 if method == GROUPED else 0)


@pytest.mark.parametrize("method", [GROUPED, WINDOWS])
def test_past_the_dedup_window_records_a_longer_lookback_reads_again_open_no_alert(
    hand_made: Lake, tmp_path: Path, method: str
) -> None:
    # Hourly windows reading back 2 h, dedup 1 h; api's errors at 00:10, 00:20, 01:30, 01:40, 04:05, 04:06.
    text = HOURLY.replace("{severity: error}", "{severity: error, service: api}").replace("window: 3h", "window: 1h")
    rule = load_one(tmp_path, text.replace("schedule: 1h", "schedule: 1h\n  lookback: 2h"))
    report = backtest(rule, hand_made.engine, DAY1, DAY2 - HOUR, method=method)
    [day] = report.days
    # Matches in the windows ending 01:00, 02:00, 03:00 (01:30 and 01:40 again), 05:00 and 06:00 (04:05 and 04:06
    # again); the windows ending 03:00 and 06:00 hold no record their key's last alert had not taken in.
    assert (day.matches, day.alerts) == (5, 3)
    assert [e.until_ms for e in day.examples] == [DAY1 + HOUR, DAY1 + 2 * HOUR, DAY1 + 5 * HOUR]


def test_the_grouped_method_is_one_query_per_day_and_only_for_plain_sigma_rules(tmp_path: Path) -> None:
    rule = load_one(tmp_path, HOURLY)
    assert method_of(rule) == GROUPED
    assert "unnest($window_since)" in grouped_sql(rule)
    sql_rule = load_one(
        tmp_path,
        """
        title: Errors by SQL
        id: 77777777-8888-4999-8aaa-cccccccccccc
        level: high
        schedule: 1h
        delay: 0s
        query: SELECT service, "timestamp" FROM logs WHERE severity = 'error'
        """,
        "sql.yml",
    )
    assert method_of(sql_rule) == WINDOWS
    with pytest.raises(ValueError, match="window by window"):
        backtest(sql_rule, None, DAY1, DAY2, method=GROUPED)  # type: ignore[arg-type]


def test_suppressions_are_judged_when_the_run_would_have_happened(hand_made: Lake, tmp_path: Path) -> None:
    text = HOURLY + "  suppress: [{where: {service: api}, until: 2026-05-04T03:00:00Z, reason: deploy}]\n"
    rule = load_one(tmp_path, text)
    report = backtest(rule, hand_made.engine, DAY1, DAY2)
    # hours 0 and 1 held back; hour 4 (run at 05:00) alerts: nothing was opened before it
    assert (report.days[0].matches, report.days[0].suppressed, report.days[0].alerts) == (3, 2, 1)


SLIDING = """
title: Errors per user
id: 77777777-8888-4999-8aaa-dddddddddddd
level: medium
logsource: {product: loglake, service: app_logs}
detection: {sel: {severity: [error, critical]}, quiet: {service: noise}, condition: sel and not quiet}
loglake:
  schedule: 10m
  lookback: 35m
  delay: 3m
  threshold: 3
  group_by: [service, attributes.user]
  dedup: {window: 50m}
  suppress: [{where: {service: web}, until: 2026-05-05T12:00:00Z}]
"""


@pytest.fixture(scope="module")
def random_lake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lake]:
    """Two and a half days of errors and infos in bursts, some without a user; the last day in the hot store."""
    rng = random.Random(13)
    records = []
    for _ in range(160):
        start = DAY1 + rng.randrange(0, 60 * 60) * MINUTE
        service = rng.choice(["api", "web", "noise", "db"])
        user = rng.choice(["alice", "bob", None])
        for _ in range(rng.randrange(1, 7)):
            at = start + rng.randrange(0, 40) * MINUTE + rng.randrange(0, 60_000)
            records.append(_record(at, service, rng.choice(["error", "error", "critical", "info"]), user))
    folder = tmp_path_factory.mktemp("random")
    lake = _lake(folder, [r for r in records if r["timestamp"] < DAY3], [r for r in records if r["timestamp"] >= DAY3])
    yield lake
    lake.close()
    lake.store.close()


@pytest.mark.parametrize("dedup", ["{window: 50m}", "{key: '{service}', window: 50m}"])
def test_grouped_equals_window_by_window_with_overlapping_windows_delay_and_suppression(
    random_lake: Lake, tmp_path: Path, dedup: str
) -> None:
    """Also with a dedup key of fewer fields than the groups, whose groups of a window are one match."""
    rule = load_one(tmp_path, SLIDING.replace("{window: 50m}", dedup))
    since, until = DAY2 + 5 * HOUR, DAY3 + 7 * HOUR  # lake files, then the hot store
    grouped = backtest(rule, random_lake.engine, since, until, method=GROUPED, examples=1000)
    one_by_one = backtest(rule, random_lake.engine, since, until, method=WINDOWS, examples=1000)

    assert _facts(grouped) == _facts(one_by_one)
    assert (
        grouped.alerts > 10 and grouped.suppressed > 0 and grouped.matches > grouped.alerts
    )  # the data exercised it all
    examples = sum(len(d.examples) for d in grouped.days)
    assert (grouped.queries - examples, one_by_one.queries) == (2, 26 * 6)  # a query per day, per window


CORRELATION = """
title: Errors of a service within 10 minutes
id: 99999999-8888-4777-8666-555555555555
level: high
correlation:
  type: event_count
  rules: [an_error]
  group-by: [service]
  timespan: 10m
  condition: {%s}
loglake: {schedule: 5m, lookback: 15m, delay: 1m, dedup: {window: 20m}}
---
title: An error
name: an_error
logsource: {product: loglake, service: app_logs}
detection: {sel: {severity: [error, critical]}, condition: sel}
"""


@pytest.mark.parametrize("condition", ["gte: 3", "lt: 2"])
def test_a_correlation_runs_only_the_windows_with_records_and_answers_as_window_by_window(
    random_lake: Lake, tmp_path: Path, condition: str
) -> None:
    rule = load_one(tmp_path, CORRELATION % condition)
    assert method_of(rule) == WITH_RECORDS
    since, until = DAY2 + 18 * HOUR, DAY3 + 24 * HOUR  # lake files, the hot store, then 11 quiet hours
    with_records = backtest(rule, random_lake.engine, since, until, examples=1000)
    one_by_one = backtest(rule, random_lake.engine, since, until, method=WINDOWS, examples=1000)
    assert with_records.method == WITH_RECORDS and _facts(with_records) == _facts(one_by_one)
    assert with_records.alerts > 5 and with_records.matches > with_records.alerts  # the data exercised it
    assert one_by_one.queries == with_records.windows == 12 * 30
    assert with_records.queries < one_by_one.queries - 12 * 10  # the quiet hours' windows were not run


def test_a_correlation_over_busy_logs_runs_only_the_windows_with_its_events(tmp_path: Path) -> None:
    """Logs every minute all day (none of them the correlation's), and one burst of errors: the days'
    queries find the few windows that hold the burst's events, not the 288 that hold records."""
    busy = [_record(DAY1 + m * MINUTE, "web", "info") for m in range(24 * 60)]
    burst = [_record(DAY1 + 10 * HOUR + s * 20_000, "api") for s in range(4)]
    lake = _lake(tmp_path / "lake", busy + burst, [])
    try:
        rule = load_one(tmp_path, CORRELATION % "gte: 3")
        with_events = backtest(rule, lake.engine, DAY1, DAY2, examples=10)
        one_by_one = backtest(rule, lake.engine, DAY1, DAY2, method=WINDOWS, examples=10)
        assert _facts(with_events) == _facts(one_by_one)
        assert with_events.alerts == 1 and one_by_one.queries == 288
        assert with_events.queries <= 1 + 4  # the day's query, then the windows the burst is in
    finally:
        lake.close()
        lake.store.close()


def _facts(report: Backtest) -> list:
    return [
        (
            d.day,
            d.windows,
            d.matches,
            d.alerts,
            d.suppressed,
            [(e.until_ms, e.match.dedup_key, e.match.count, e.match.first_ms, e.match.last_ms) for e in d.examples],
        )
        for d in report.days
    ]


def test_progress_is_reported_per_day(hand_made: Lake, tmp_path: Path) -> None:
    seen = []
    backtest(
        load_one(tmp_path, HOURLY),
        hand_made.engine,
        DAY1 + HOUR,
        DAY3,
        progress=lambda d, n, t: seen.append((d.day, n, t)),
    )
    assert seen == [("2026-05-04", 1, 2), ("2026-05-05", 2, 2)]


def test_the_cli_prints_alerts_per_day_with_examples(tmp_path: Path) -> None:
    folder = tmp_path / "rules"
    write_rule(folder, "errors.yml", HOURLY)
    data = tmp_path / "data"
    store = SQLiteHotStore(data / "hot.db")
    today = int(time.time() * 1000) // DAY_MS * DAY_MS
    yesterday = today - DAY_MS
    records = [_record(yesterday + 10 * MINUTE, "api"), _record(yesterday + 11 * MINUTE, "api")]
    store.submit(validate_batch(records, Limits(), today)).result()
    store.close()
    args = ["--rules-dir", str(folder), "--data-dir", str(data)]
    result = rules("backtest", "77777777", "--since", str(today - 2 * DAY_MS), "--until", str(today), *args)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("Errors (77777777-8888-4999-8aaa-bbbbbbbbbbbb) from ") and "48 windows" in lines[0]
    assert lines[1].split() == ["DAY", "WINDOWS", "MATCHES", "ALERTS", "SUPPRESSED"]
    assert lines[3].split() == [_day(yesterday), "24", "1", "1", "0"]
    assert lines[4].split()[1:4] == ["2", "errors", "in"]  # the example: its window's end, title, count and key
    assert f'"message": "api at {yesterday + 10 * MINUTE}"' in lines[5]
    assert f"backtest: {_day(yesterday)} done (2/2 days, 1 alert(s)" in result.stderr
    assert "1 match(es), 1 alert(s), 0 suppressed; 3 queries (grouped)" in result.stderr
    as_json = json.loads(
        rules("backtest", "77777777", "--since", str(today - 2 * DAY_MS), "--until", str(today), "--json", *args).stdout
    )
    assert (as_json["alerts"], as_json["days"][1]["examples"][0]["group"]) == (1, {"service": "api"})
    bad = rules("backtest", "77777777", "--since", "1d", "--until", "2d", *args)  # usage errors: exit 2
    assert bad.exit_code == 2 and "Invalid value for --since: must be before --until (" in bad.stderr
    unread = rules("backtest", "77777777", "--since", "bogus", *args)
    assert unread.exit_code == 2 and "Invalid value for --since: 'bogus' is not a time" in unread.stderr
    past_retention = rules("backtest", "77777777", "--since", "400d", *args)  # the default retention: 365 days
    assert past_retention.exit_code == 2
    assert "Invalid value for --since: " in past_retention.stderr
    assert "is older than the 365 days the lake keeps" in past_retention.stderr
    assert "backtest at most 365d, from " in past_retention.stderr


def test_the_cli_backtest_has_no_time_limit_as_the_readme_says(tmp_path: Path, monkeypatch) -> None:
    """It stopped at the server's query timeout (a new-user trial: "backtest ... also stopped at 30 s")."""
    folder, data = tmp_path / "rules", tmp_path / "data"
    write_rule(folder, "errors.yml", HOURLY)
    store = SQLiteHotStore(data / "hot.db")
    today = int(time.time() * 1000) // DAY_MS * DAY_MS
    records = [_record(today - DAY_MS + 10 * MINUTE, "api"), _record(today - DAY_MS + 11 * MINUTE, "api")]
    store.submit(validate_batch(records, Limits(), today)).result()
    store.close()
    monkeypatch.setenv("LOGLAKE_QUERY_TIMEOUT_SECONDS", "0.0001")  # (no DuckDB query ends this soon)
    args = ["--since", str(today - DAY_MS), "--until", str(today), "--rules-dir", str(folder), "--data-dir", str(data)]
    result = rules("backtest", "77777777", *args)
    assert result.exit_code == 0, result.output
    assert "1 match(es), 1 alert(s), 0 suppressed" in result.stderr


@pytest.mark.parametrize("method", [GROUPED, WINDOWS])
def test_a_query_past_the_servers_timeout_is_told_as_a_rules_not_with_the_options_of_query(
    hand_made: Lake, tmp_path: Path, method: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The grouped query's timeout named /query's options (timeout_seconds / --timeout), which a backtest lacks
    (the rules trial); POST /rules/{id}/backtest answers a RuleTimedOut as its own timeout."""
    # An interrupt that lands before DuckDB starts the query is lost and comes again RETRY_SECONDS later: a query
    # of this small lake could end first (1 run in 8 did not raise). Again at once, it is stopped wherever it is.
    monkeypatch.setattr(watchdog, "RETRY_SECONDS", 0.00001)
    quick = Lake(
        hand_made.store,
        hand_made.objects,
        tmp_path,
        clock=hand_made.clock,
        limits=QueryLimits(timeout_seconds=0.0001),  # (no DuckDB query ends this soon)
    )
    try:
        with pytest.raises(RuleTimedOut) as caught:
            backtest(load_one(tmp_path, HOURLY), quick.engine, DAY1, DAY3, method=method)
    finally:
        quick.close()
    assert "the server's query_timeout_seconds" in str(caught.value) and "--timeout" not in str(caught.value)


def _day(ms: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(ms / 1000))
