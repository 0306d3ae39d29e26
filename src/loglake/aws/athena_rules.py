"""Running a bundled rule with Athena: its SQL in Trino's dialect (rules/bundle.py, rules/dialect.py)
over the Glue tables, the answer read back as the local engine's (rules/run.py makes the matches and
their evidence).

The engine reads Athena's text back as the local engine's values (times as times, aws/athena.py), so a
match's first and last seen and its evidence's times are what the local engine gives.
"""

from __future__ import annotations

from dataclasses import replace

from loglake.aws.athena import AthenaQueryEngine
from loglake.lake.query_answers import QueryBusy
from loglake.lake.sql_guard import QueryError
from loglake.rules.bundle import fill_window
from loglake.rules.model import Rule
from loglake.rules.run import RuleRunError, RunResult, result_of


def run_rule_on_athena(
    rule: Rule,
    engine: AthenaQueryEngine,
    since_ms: int,
    until_ms: int,
    now_ms: int | None = None,
    fresh_since_ms: int | None = None,
) -> RunResult:
    """The matches of a rule of a bundle (load_bundle) over [since_ms, until_ms), as run_rule gives them
    locally; the result's `sql` is the SQL Athena ran (what an alert shows as the query that found it)."""
    sql = fill_window(rule.plan.sql, rule.plan.reach_ms, since_ms, until_ms, fresh_since_ms)
    try:
        result = engine.query(sql, limit=engine.limits.max_rows)
    except QueryError as e:
        raise RuleRunError(f"rule {rule.id} ({rule.path}): {e.message}") from None
    except QueryBusy as e:
        raise RuleRunError(f"rule {rule.id}: {e}") from None
    return replace(result_of(rule, since_ms, until_ms, result, now_ms), sql=sql)
