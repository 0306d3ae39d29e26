"""The guard over a model's answers: hostile and sloppy answers refused with a reason, the rest given
a LIMIT and the question's time range."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from loglake.ask.guard import Refusal, check_sql, implied_range, read_answer

TABLES = ("logs", "amplify_access", "alerts")
# 2026-11-04 05:30 UTC, a Wednesday; in Berlin 06:30.
NOW_MS = int(datetime(2026, 11, 4, 5, 30, tzinfo=UTC).timestamp() * 1000)


def checked(answer: str, question: str = "how many records?", zone: str = "UTC", max_rows: int = 100) -> str:
    sql = read_answer(answer).sql
    assert sql is not None
    return check_sql(sql, TABLES, max_rows, implied_range(question, NOW_MS, zone)).sql


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ("```sql\nCOPY logs TO '/tmp/out.csv'\n```", "only SELECT"),
        ("```sql\nSELECT * FROM read_csv('/etc/passwd')\n```", "read_csv() is not available"),
        ("```sql\nSELECT count(*) FROM logs; SELECT 1\n```", "exactly one statement"),
        ("```sql\nSELECT 1 FROM logs; DROP TABLE logs\n```", "exactly one statement"),
        ("DROP TABLE logs", "only SELECT"),
        ("```sql\nATTACH '/tmp/x.db' AS x\n```", "only SELECT"),
        ("```sql\nSELECT * FROM duckdb_settings()\n```", "duckdb_settings() is not available"),
        ("```sql\nSELECT * FROM secrets\n```", "'secrets' is not a table"),
        ("```sql\nSELECT current_setting('allowed_directories')\n```", "current_setting() is not available"),
        ("```sql\nSELECT 1\n```\nor\n```sql\nSELECT 2\n```", "2 SQL blocks"),
        ("```sql\nSELEC count(*) FROM logs\n```", "syntax error"),
    ],
)
def test_hostile_and_broken_answers_are_refused_with_the_reason(answer: str, reason: str) -> None:
    with pytest.raises(Refusal, match=reason.replace("(", r"\(").replace(")", r"\)")):
        checked(answer)


def test_an_answer_without_a_limit_gets_one_and_a_larger_limit_is_lowered() -> None:
    assert checked("```sql\nSELECT service FROM logs\n```").endswith("LIMIT 100")
    assert checked("```sql\nSELECT service FROM logs LIMIT 5000\n```").endswith("LIMIT 100")
    assert checked("```sql\nSELECT service FROM logs LIMIT 7\n```").endswith("LIMIT 7")


@pytest.mark.parametrize(
    "answer",
    [
        "```sql\nSELECT count(*) FROM logs\n",  # the fence never closed
        "```SQL SELECT count(*) FROM logs```",  # language in capitals, all on one line
        "Sure! Here it is:\n```\nSELECT count(*) FROM logs;\n```\nIt counts.",  # no language, a semicolon
        "SELECT count(*) FROM logs",  # no fence at all
    ],
)
def test_sloppy_fences_still_give_the_one_query(answer: str) -> None:
    assert checked(answer) == "SELECT\n  COUNT(*)\nFROM logs\nLIMIT 100"


def test_an_answer_without_sql_is_the_models_words() -> None:
    answer = read_answer("These tables hold no weather data, so I cannot answer that.")
    assert answer.sql is None and "no weather data" in answer.explanation


def test_an_answer_s_explanation_loses_its_label() -> None:
    answer = read_answer("```sql\nSELECT 1\n```\nExplanation: It selects one.")
    assert answer.explanation == "It selects one."


def test_the_question_s_time_range_is_added_in_the_user_s_zone() -> None:
    sql = checked("```sql\nSELECT count(*) FROM logs l WHERE severity = 'error'\n```", "errors today", "Europe/Berlin")
    # Berlin's day began at 2026-11-03 23:00 UTC; the range ends at the next whole second after now.
    assert "'2026-11-03 23:00:00'" in sql and "'2026-11-04 05:30:01'" in sql
    assert "BETWEEN CAST('2026-11-03' AS DATE) AND CAST('2026-11-04' AS DATE)" in sql
    assert "severity = 'error'" in sql


def test_the_range_is_added_under_an_alias_holding_a_double_quote() -> None:
    # The alias was put between double quotes as it was: sqlglot could not read the range (a 500 of /ask).
    sql = checked('```sql\nSELECT count(*) FROM logs AS "x""y"\n```', "errors today")
    assert '"x""y"."timestamp" >= CAST(\'2026-11-04 00:00:00\' AS TIMESTAMP)' in sql


def test_a_range_reaching_before_1970_is_added_from_1970() -> None:
    # It reached before the year 1, which no datetime holds: a 500 of /ask.
    sql = checked("```sql\nSELECT count(*) FROM logs\n```", "errors in the last 99999999 days")
    assert "'1970-01-01 00:00:00'" in sql and "BETWEEN CAST('1970-01-01' AS DATE)" in sql


def test_a_query_that_filters_on_time_keeps_its_own_range() -> None:
    answer = "```sql\nSELECT count(*) FROM logs WHERE timestamp >= TIMESTAMP '2026-11-04 00:00:00'\n```"
    sql = read_answer(answer).sql
    assert sql is not None
    result = check_sql(sql, TABLES, 100, implied_range("errors today", NOW_MS, "UTC"))
    assert not result.added_time_range and not result.warnings


def test_where_a_range_cannot_be_added_safely_it_is_a_warning() -> None:
    answer = "```sql\nSELECT count(*) FROM logs JOIN amplify_access USING (timestamp)\n```"
    sql = read_answer(answer).sql
    assert sql is not None
    result = check_sql(sql, TABLES, 100, implied_range("requests this week", NOW_MS, "UTC"))
    assert not result.added_time_range
    assert result.warnings == [
        "the question says 'this week' but the SQL filters on no time, and loglake could not add the range to it: "
        "it reads every day"
    ]


@pytest.mark.parametrize(
    "sample", ["FROM logs USING SAMPLE 10", "FROM logs TABLESAMPLE RESERVOIR(10 ROWS)", "FROM logs USING SAMPLE 5%"]
)
def test_a_sampled_query_gets_no_range_but_a_warning(sample: str) -> None:
    # DuckDB samples `logs` before its WHERE: the range ANDed kept the sample's records of today (none, mostly).
    result = check_sql(f"SELECT count(*) {sample}", TABLES, 100, implied_range("errors today", NOW_MS, "UTC"))
    assert not result.added_time_range and "TIMESTAMP" not in result.sql
    assert result.warnings and "could not add the range" in result.warnings[0]


@pytest.mark.parametrize(
    ("question", "since", "until"),
    [
        ("errors today?", "2026-11-04T00:00:00", "2026-11-04T05:30:01"),
        ("errors yesterday", "2026-11-03T00:00:00", "2026-11-04T00:00:00"),
        ("logins this week", "2026-11-02T00:00:00", "2026-11-04T05:30:01"),
        ("logins last week", "2026-10-26T00:00:00", "2026-11-02T00:00:00"),
        ("in the last 3 hours", "2026-11-04T02:30:00", "2026-11-04T05:30:01"),
        ("over the past hour", "2026-11-04T04:30:00", "2026-11-04T05:30:01"),
        ("this month", "2026-11-01T00:00:00", "2026-11-04T05:30:01"),
        ("in the last 99999999 days", "1970-01-01T00:00:00", "2026-11-04T05:30:01"),  # no record is older
    ],
)
def test_the_time_a_question_names(question: str, since: str, until: str) -> None:
    found = implied_range(question, NOW_MS, "UTC")
    assert found is not None
    shown = [
        datetime.fromtimestamp(ms / 1000, UTC).replace(tzinfo=None).isoformat()
        for ms in (found.since_ms, found.until_ms)
    ]
    assert shown == [since, until]


def test_a_question_naming_no_time_implies_none() -> None:
    assert implied_range("which services log the most errors?", NOW_MS, "UTC") is None


@pytest.mark.parametrize(
    "where", ["date IS NOT NULL", "timestamp IS NOT NULL", "timestamp >= TIMESTAMP '2026-11-04 00:00:00' OR true"]
)
def test_a_mention_of_time_that_bounds_nothing_gets_the_question_s_range(where: str) -> None:
    """'errors in the last 3 hours' answered with `WHERE date IS NOT NULL` counted every day, the range
    silently not added (the estimate meanwhile warned of no time filter)."""
    sql = checked(f"```sql\nSELECT count(*) FROM logs WHERE {where}\n```", "errors in the last 3 hours")
    assert "'2026-11-04 02:30:00'" in sql and "'2026-11-04 05:30:01'" in sql
