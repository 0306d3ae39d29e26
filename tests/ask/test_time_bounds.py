"""Whether a query's reads of the lake are bounded in time, and the range it names: from the SQL alone."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from loglake.ask.time_bounds import TimeBounds, time_bounds_of


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


@pytest.mark.parametrize(
    ("where", "since", "until"),
    [
        ("date = '2026-12-04'", "2026-12-04", "2026-12-05"),  # a day is the whole UTC day
        ("date BETWEEN DATE '2026-12-01' AND DATE '2026-12-03'", "2026-12-01", "2026-12-04"),
        ("date IN (DATE '2026-12-01', DATE '2026-12-03')", "2026-12-01", "2026-12-04"),
        ("date > DATE '2026-12-01'", "2026-12-02", None),
        (
            "timestamp >= TIMESTAMP '2026-12-04 08:00:00' AND timestamp < TIMESTAMP '2026-12-04 09:00:00'"
            " AND date = DATE '2026-12-04'",
            "2026-12-04 08:00:00",
            "2026-12-04 09:00:00",
        ),
        ("TIMESTAMP '2026-12-04 08:00:00' > timestamp", None, "2026-12-04 08:00:00"),  # the literal first
    ],
)
def test_the_range_its_time_predicates_name(where: str, since: str | None, until: str | None) -> None:
    expected = TimeBounds(True, since and ms(since), until and ms(until))
    assert time_bounds_of(f"SELECT count(*) FROM logs WHERE {where}", "duckdb") == expected


def test_a_bound_that_is_no_literal_bounds_with_no_range_known() -> None:
    assert time_bounds_of("SELECT 1 FROM logs WHERE timestamp > now() - INTERVAL 1 HOUR", "duckdb") == TimeBounds(True)
    months = "SELECT 1 FROM logs WHERE timestamp > now() - INTERVAL 1 MONTH"  # of no fixed length
    assert time_bounds_of(months, "duckdb", ms("2026-12-05 07:00:00")) == TimeBounds(True)


NOW = "2026-12-05 07:00:00"


@pytest.mark.parametrize(
    ("where", "since", "until", "on_timestamp"),
    [
        ("timestamp >= now() - INTERVAL 1 HOUR", "2026-12-05 06:00:00", None, True),
        ("timestamp >= current_timestamp - INTERVAL '90 minutes'", "2026-12-05 05:30:00", None, True),
        (
            "timestamp BETWEEN now() - INTERVAL 2 DAY AND now() - INTERVAL 1 DAY",
            "2026-12-03 07:00:00",
            "2026-12-04 07:00:00.001",
            True,
        ),
        ("date >= current_date - 1", "2026-12-04", None, False),  # a day: DuckDB prunes files by it
        ("date = CAST(now() AS DATE)", "2026-12-05", "2026-12-06", False),
    ],
)
def test_the_range_of_predicates_on_now_as_of_when_asked(
    where: str, since: str, until: str | None, on_timestamp: bool
) -> None:
    expected = TimeBounds(True, ms(since), until and ms(until), relative=True, now_on_timestamp=on_timestamp)
    assert time_bounds_of(f"SELECT count(*) FROM logs WHERE {where}", "duckdb", ms(NOW)) == expected


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT count(*) FROM logs",
        "SELECT count(*) FROM logs WHERE severity = 'error' OR date = DATE '2026-12-04'",
        "SELECT count(*) FROM logs a JOIN logs b USING (log_id) WHERE a.date = DATE '2026-12-04'",
        "SELECT count(*) FROM logs WHERE date_trunc('day', timestamp) = DATE '2026-12-04'",
        "SELECT $$ FROM",  # sqlglot cannot tell: taken as unbounded, so it is warned about
    ],
)
def test_a_read_without_a_time_predicate_is_unbounded(sql: str) -> None:
    assert not time_bounds_of(sql, "duckdb").bounded


def test_every_read_counts_and_the_range_spans_them_all() -> None:
    sql = (
        "SELECT * FROM logs WHERE date = DATE '2026-12-01' UNION ALL"
        " SELECT * FROM logs WHERE \"timestamp\" BETWEEN '2026-12-03 00:00:00' AND '2026-12-03 01:00:00'"
    )
    assert time_bounds_of(sql, "athena") == TimeBounds(True, ms("2026-12-01"), ms("2026-12-03 01:00:00") + 1)
    assert time_bounds_of("SELECT 1", "duckdb") == TimeBounds(True)  # no lake table read
