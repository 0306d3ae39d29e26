"""Running a rule once over a window of a real loglake: records in the lake's Parquet files and in the
hot store, the window as a time predicate (other days' files are not read), groups and thresholds,
evidence, titles, dedup keys and suppressions."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from loglake.lake.lake import Lake
from loglake.lake.objectstore import LocalObjectStore
from loglake.lake.tables import APP_LOGS_TABLE
from loglake.model import Limits, validate_batch
from loglake.rules.run import RuleRunError, run_rule
from loglake.rules.testing import Placed, ScratchLake
from loglake.store.sqlite import SQLiteHotStore
from loglake.times import DAY_MS, parse_iso8601
from tests.rules.conftest import load_one

DAY1 = parse_iso8601("2026-05-04T00:00:00Z")
DAY2, DAY3 = DAY1 + DAY_MS, DAY1 + 2 * DAY_MS
HOUR = 3_600_000


def _records(day: int, service: str, severity: str, count: int, minute: int = 0) -> list[dict]:
    return [
        {
            "timestamp": day + (minute + i) * 60_000,
            "service": service,
            "severity": severity,
            "message": f"{service} {i}",
        }
        for i in range(count)
    ]


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lake]:
    """Days 1 and 2 in the lake's files, day 3 in a file and in the hot store."""
    folder = tmp_path_factory.mktemp("data")
    store = SQLiteHotStore(folder / "hot.db", durability="process")
    lake = Lake(store, LocalObjectStore(folder / "lake"), folder, clock=lambda: (DAY3 + DAY_MS) / 1000)
    flushed = (
        _records(DAY1, "api", "error", 4)
        + _records(DAY2, "api", "error", 7)
        + _records(DAY2, "web", "error", 2)
        + _records(DAY2, "web", "info", 5)
        + _records(DAY3, "api", "error", 1)
    )
    store.submit(validate_batch(flushed, Limits(), DAY3 + DAY_MS)).result()
    assert lake.flush(everything=True).records == len(flushed)
    store.submit(validate_batch(_records(DAY3, "api", "error", 2, minute=30), Limits(), DAY3 + DAY_MS)).result()
    yield lake
    lake.close()
    store.close()


ERRORS = """
title: Errors
id: 77777777-8888-4999-8aaa-bbbbbbbbbbbb
level: high
logsource: {product: loglake, service: app_logs}
detection: {sel: {severity: error}, condition: sel}
loglake:
  schedule: 1d
  threshold: 3
  group_by: [service]
  evidence: 5
  alert_title: "{count} errors in {service}"
  suppress:
    - {where: {service: web}, until: 2026-05-05T12:00:00Z, reason: web is being moved}
"""


def test_a_run_reads_only_the_files_of_its_window(lake: Lake, tmp_path: Path) -> None:
    rule = load_one(tmp_path, ERRORS)
    result = run_rule(rule, lake.engine, DAY2, DAY3, now_ms=DAY3)
    assert [(m.group, m.count) for m in result.matches] == [({"service": "api"}, 7)]
    assert result.files_scanned == 1  # the lake holds three days' files
    assert 0 < result.rows_scanned <= 14 and result.bytes_scanned > 0
    whole = run_rule(rule, lake.engine, DAY1, DAY3 + DAY_MS, now_ms=DAY3)
    assert whole.files_scanned == 3 and whole.bytes_scanned > result.bytes_scanned


def test_records_in_the_hot_store_and_in_the_lake_both_count(lake: Lake, tmp_path: Path) -> None:
    rule = load_one(tmp_path, ERRORS)
    result = run_rule(rule, lake.engine, DAY3, DAY3 + DAY_MS, now_ms=DAY3)
    assert [(m.group, m.count) for m in result.matches] == [({"service": "api"}, 3)]
    assert sorted(row["message"] for row in result.matches[0].evidence) == ["api 0", "api 0", "api 1"]


def test_a_match_has_its_evidence_title_and_dedup_key(lake: Lake, tmp_path: Path) -> None:
    rule = load_one(tmp_path, ERRORS)
    [match] = run_rule(rule, lake.engine, DAY2, DAY3, now_ms=DAY3).matches
    assert match.title == "7 errors in api"
    assert match.dedup_key == "77777777-8888-4999-8aaa-bbbbbbbbbbbb:api"
    assert [row["message"] for row in match.evidence] == ["api 0", "api 1", "api 2", "api 3", "api 4"]
    assert match.evidence[0]["timestamp"] == "2026-05-05T00:00:00.000Z"
    assert set(match.evidence[0]) == {"log_id", "timestamp", "service", "log_type", "severity", "message",
                                      "attributes", "client_id", "trace_id", "span_id", "date"}  # fmt: skip
    assert (match.first_ms, match.last_ms) == (DAY2, DAY2 + 6 * 60_000)
    assert match.suppressed is None


def test_groups_of_one_dedup_key_are_one_match(lake: Lake, tmp_path: Path) -> None:
    """One alert a run: the key's groups' records counted together, their span, evidence from each in turn."""
    unsuppressed = ERRORS.split("  suppress:")[0].replace("threshold: 3", "threshold: 2")
    by_service = unsuppressed.replace("group_by: [service]", "group_by: [service, severity]")
    rule = load_one(tmp_path, by_service + "  dedup: {key: '{severity}'}\n")
    [match] = run_rule(rule, lake.engine, DAY2, DAY3, now_ms=DAY3).matches
    assert (match.dedup_key, match.count, match.group) == ("error", 9, {"severity": "error"})
    assert match.title == "9 errors in api"  # (the first group's values)
    assert (match.first_ms, match.last_ms) == (DAY2, DAY2 + 6 * 60_000)
    assert sorted(row["message"] for row in match.evidence) == ["api 0", "api 1", "api 2", "web 0", "web 1"]


def test_records_without_a_group_by_field_are_in_no_group(scratch: ScratchLake, tmp_path: Path) -> None:
    rule = load_one(tmp_path, ERRORS.split("  group_by:")[0] + "  group_by: [attributes.user]\n")
    # Errors that name no user are no user's three errors (Splunk's `stats count by user` leaves them out too):
    # grouped under null, they fired.
    events = [{"service": "api", "severity": "error", "message": f"e{i}"} for i in range(3)]
    events.append({"service": "api", "severity": "error", "message": "e", "attributes": {"user": "ann"}})
    scratch.add(APP_LOGS_TABLE.name, [Placed(i, DAY1 + i, e) for i, e in enumerate(events)], DAY2)
    assert run_rule(rule, scratch.engine, DAY1, DAY2, now_ms=DAY2).matches == []


def test_a_suppression_holds_back_its_groups_until_its_time(lake: Lake, tmp_path: Path) -> None:
    rule = load_one(tmp_path, ERRORS.replace("threshold: 3", "threshold: 2"))
    before = {m.group["service"]: m.suppressed for m in run_rule(rule, lake.engine, DAY2, DAY3, now_ms=DAY2).matches}
    assert before == {"api": None, "web": "web is being moved (until 2026-05-05T12:00:00.000Z)"}
    after = run_rule(rule, lake.engine, DAY2, DAY3, now_ms=DAY2 + 12 * HOUR)
    assert {m.group["service"]: m.suppressed for m in after.matches} == {"api": None, "web": None}


def test_a_sql_rule_gets_the_window_and_reads_nothing_outside_it(lake: Lake, tmp_path: Path) -> None:
    rule = load_one(
        tmp_path,
        """
        id: 88888888-9999-4aaa-8bbb-cccccccccccc
        title: Window
        level: low
        schedule: 1h
        query: SELECT $since AS since, $until AS until, count(*) AS records, min("timestamp") AS "timestamp" FROM logs
        """,
    )
    [match] = run_rule(rule, lake.engine, DAY2 + HOUR, DAY2 + 2 * HOUR, now_ms=DAY3).matches
    assert match.evidence[0]["since"] == "2026-05-05T01:00:00.000Z"
    assert match.evidence[0]["until"] == "2026-05-05T02:00:00.000Z"
    assert match.evidence[0]["records"] == 0  # the day's records are all in its first minutes
    whole_day = run_rule(rule, lake.engine, DAY2, DAY3, now_ms=DAY3).matches[0]
    assert whole_day.evidence[0]["records"] == 14 and whole_day.first_ms == DAY2


def test_a_sql_rules_title_shows_the_numbers_its_query_computed(lake: Lake, tmp_path: Path) -> None:
    """{count} is the match's rows (one per group when the query aggregates), {n} the query's own number."""
    rule = load_one(
        tmp_path,
        """
        id: 47cf545e-7577-4b37-9231-a297322c3fc2
        title: Many errors per service
        level: critical
        schedule: 1d
        group_by: [service]
        alert_title: "errors in {service}: {n} ({count} row)"
        query: |
          SELECT service, count(*) AS n, max("timestamp") AS "timestamp" FROM logs
          WHERE severity = 'error' GROUP BY service HAVING count(*) >= 3
        """,
    )
    [match] = run_rule(rule, lake.engine, DAY2, DAY3, now_ms=DAY3).matches
    assert match.title == "errors in api: 7 (1 row)"
    assert match.dedup_key == "47cf545e-7577-4b37-9231-a297322c3fc2:api"


def test_a_run_that_fails_names_the_rule(lake: Lake, tmp_path: Path) -> None:
    rule = load_one(
        tmp_path,
        """
        id: 99999999-aaaa-4bbb-8ccc-dddddddddddd
        title: Broken
        level: low
        query: SELECT CAST(message AS INTEGER) AS n FROM logs
        """,
    )
    with pytest.raises(RuleRunError, match=r"rule 99999999-aaaa-4bbb-8ccc-dddddddddddd .*Could not convert"):
        run_rule(rule, lake.engine, DAY2, DAY3)


def test_a_window_must_not_be_empty(lake: Lake, tmp_path: Path) -> None:
    rule = load_one(tmp_path, ERRORS)
    with pytest.raises(ValueError, match="must end after it starts"):
        run_rule(rule, lake.engine, DAY2, DAY2)
