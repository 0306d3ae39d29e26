"""The rules over HTTP, for the web UI: the server's rules with their last runs, one rule with its
source, SQL and recent runs, its inline tests run on demand, and a backtest over a chosen period."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from loglake.api.http import ApiError, Request, quoted
from loglake.api.routes import Result, json_body, json_body_limit, query_error, refuse_parameters
from loglake.lake.query_answers import QueryBusy
from loglake.lake.stop import OutOfTime, Stop
from loglake.rules.backtest import Backtest, PeriodError, backtest, refuse_past_retention
from loglake.rules.backtest_limits import EXAMPLES, MAX_EXAMPLES
from loglake.rules.model import AmbiguousRule, NoSuchRule, Rule, find_rule
from loglake.rules.run import RuleRunError, RuleTimedOut
from loglake.rules.state import failed_until, read_runs, read_summaries
from loglake.rules.summary import rule_facts, run_facts, runs_facts
from loglake.rules.testing import run_tests
from loglake.times import TimeFormatError, parse_time

if TYPE_CHECKING:
    from loglake.api.app import LoglakeApp
    from loglake.rules.scheduler import RuleScheduler

SHOWN_RUNS = 20
_BACKTEST_EXAMPLE = '{"since": "7d", "until": "now", "examples": 3}'


def _scheduler(app: LoglakeApp) -> RuleScheduler:
    if app.runtime.rules is None:
        raise ApiError(501, "not_available", "rules need the lake, which this server's store does not have")
    return app.runtime.rules


def _rule(app: LoglakeApp, rule_id: str) -> Rule:
    """The rule `rule_id` names as the CLI takes it: its id, the start of one, or its file's name."""
    with rule_lookup_errors(rule_id):
        return find_rule(_scheduler(app).folder.rules, rule_id)


@contextmanager
def rule_lookup_errors(rule_id: str) -> Iterator[None]:
    """find_rule's refusals as the API answers them: 404 for no such rule, 400 for the start of several ids."""
    try:
        yield
    except NoSuchRule:
        raise ApiError(
            404, "not_found", f"no rule with id {quoted(rule_id)} is loaded; GET /rules lists them"
        ) from None
    except AmbiguousRule as e:
        raise ApiError(400, "ambiguous_rule_id", f"{e}; GET /rules lists them") from None


async def list_rules(app: LoglakeApp, request: Request) -> Result:
    refuse_parameters(request, "GET /rules")
    scheduler = _scheduler(app)
    folder = scheduler.folder
    runs = await app.run_read(read_summaries, scheduler.data_dir)
    return Result(
        200,
        {
            "folder": str(folder.path),
            "rules": [rule_facts(rule) | runs_facts(runs.get(rule.id)) for rule in folder.rules],
            "problems": [str(p) for p in folder.problems],
        },
    )


async def get_rule(app: LoglakeApp, request: Request, rule_id: str) -> Result:
    refuse_parameters(request, "GET /rules/{ruleId}")
    rule = _rule(app, rule_id)
    data_dir = _scheduler(app).data_dir

    def read() -> dict[str, Any]:
        summary = read_summaries(data_dir).get(rule.id)
        return (
            rule_facts(rule)
            | runs_facts(summary)
            | {
                "description": rule.description,
                "sql": rule.plan.sql,
                "source": rule.path.read_text(errors="replace"),
                "runs": [run_facts(run) for run in read_runs(data_dir, rule.id, SHOWN_RUNS)],
            }
        )

    return Result(200, await app.run_read(read))


async def test_rule(app: LoglakeApp, request: Request, rule_id: str) -> Result:
    """The rule's inline tests, in a throwaway loglake (as `loglake rules test`), all of them within the
    server's query timeout: a rule with many tests holds its query slot no longer than one query may."""
    refuse_parameters(request, "POST /rules/{ruleId}/test")
    rule = _rule(app, rule_id)
    budget_s = app.settings.query_timeout_seconds
    try:
        outcomes = await app.run_query(lambda stop: run_tests([rule], stop), request, budget_s)
    except QueryBusy as e:
        raise query_error(e) from None
    except OutOfTime:
        raise ApiError(
            400,
            "test_timeout",
            f"the rule's {len(rule.tests)} tests ran longer than {budget_s:g} s (the server's query_timeout_seconds) "
            "and were stopped; run them with `loglake rules test`, which has no time limit",
        ) from None
    return Result(
        200,
        {
            "tests": [{"name": o.test.name, "passed": o.passed, "failures": list(o.failures)} for o in outcomes],
            "passed": sum(o.passed for o in outcomes),
            "failed": sum(not o.passed for o in outcomes),
        },
    )


async def backtest_rule(app: LoglakeApp, request: Request, rule_id: str) -> Result:
    """What the rule would have raised over a period of the lake's history, per day (as `loglake rules backtest`)."""
    refuse_parameters(request, "POST /rules/{ruleId}/backtest")
    rule = _rule(app, rule_id)
    body = json_body(app, request, _BACKTEST_EXAMPLE)
    unknown = sorted(body.keys() - {"since", "until", "examples"})
    if unknown:
        message = f"unknown field(s) {', '.join(unknown)}; send e.g. {_BACKTEST_EXAMPLE}"
        raise ApiError(400, "invalid_request", message, [{"field": unknown[0], "reason": "unknown field"}])
    now_ms = app.service.now_ms()
    bounds = {}
    for name, default in (("since", None), ("until", "now")):
        text = body.get(name, default)
        if type(text) is not str:
            reason = "must be a time as a string"
            raise ApiError(
                400, "invalid_request", f"{name} {reason}; send e.g. {_BACKTEST_EXAMPLE}", _field(name, reason)
            )
        try:
            bounds[name] = parse_time(text, now_ms)
        except TimeFormatError as e:
            raise ApiError(400, "invalid_request", f"{name}: {e}", _field(name, str(e))) from None
    examples = body.get("examples", EXAMPLES)
    if type(examples) is not int or not 0 <= examples <= MAX_EXAMPLES:
        reason = f"must be a whole number 0-{MAX_EXAMPLES}"
        raise ApiError(
            400, "invalid_request", f"examples {reason}; send e.g. {_BACKTEST_EXAMPLE}", _field("examples", reason)
        )
    if bounds["until"] <= bounds["since"]:
        raise ApiError(400, "invalid_request", "until must be after since", _field("until", "must be after since"))
    try:
        refuse_past_retention(bounds["since"], now_ms, app.settings.retention_days)
    except PeriodError as e:
        raise ApiError(400, "invalid_request", str(e), _field("since", str(e))) from None
    scheduler = _scheduler(app)
    budget_s = app.settings.query_timeout_seconds

    def run(stop: Stop) -> Backtest:
        since, until = bounds["since"], bounds["until"]
        failed = failed_until(scheduler.data_dir, rule.id)  # (its error comes before the windows up to it)
        return backtest(rule, scheduler.engine, since, until, examples=examples, stop=stop, failed_until_ms=failed)

    try:
        report = await app.run_query(run, request, budget_s)
    except RuleTimedOut:  # (one of its queries ran out of the same time: the backtest's answer says what to do)
        raise _backtest_timeout(budget_s) from None
    except RuleRunError as e:
        raise ApiError(400, "rule_failed", f"{e}; check the rule with loglake rules validate") from None
    except QueryBusy as e:
        raise query_error(e) from None
    except OutOfTime:
        raise _backtest_timeout(budget_s) from None
    return Result(200, report.to_dict())


def _backtest_timeout(budget_s: float) -> ApiError:
    return ApiError(
        400,
        "backtest_timeout",
        f"the backtest ran longer than {budget_s:g} s (the server's query_timeout_seconds) and was stopped; "
        "backtest a shorter period, or run `loglake rules backtest` on the server's data dir: it shows its "
        "progress and has no time limit",
    )


def _field(name: str, reason: str) -> list[dict[str, str]]:
    """An error's details naming the body's field, as `invalid_query` answers name a query parameter: a body's
    bad field is `invalid_request` (the README keeps `invalid_query` for query parameters)."""
    return [{"field": name, "reason": reason}]


# (method, template, handler, scope, reads_body, body_limit)
ROUTES = [
    ("GET", "/rules", list_rules, "read"),
    ("GET", "/rules/{ruleId}", get_rule, "read"),
    ("POST", "/rules/{ruleId}/test", test_rule, "read"),
    ("POST", "/rules/{ruleId}/backtest", backtest_rule, "read", True, json_body_limit),
]

_RULE_ID = {
    "name": "ruleId",
    "in": "path",
    "required": True,
    "description": "the rule's id, the start of one that no other id starts with, or its file's name",
    "schema": {"type": "string"},
}
_NO_RULES = {"501": {"description": "this server has no lake, so no rules"}}
OPENAPI = {
    "/rules": {
        "get": {
            "summary": "The server's rules with their last run, failures in a row and where their windows end, "
            "and the problems of rule files that did not load (read scope)",
            "responses": {"200": {"description": "folder, rules, problems"}, **_NO_RULES},
        }
    },
    "/rules/{ruleId}": {
        "get": {
            "summary": "One rule: its facts, description, the SQL of a run, its file's source and its last runs",
            "parameters": [_RULE_ID],
            "responses": {
                "200": {"description": "the rule"},
                "400": {"description": "a query parameter (it takes none), or the start of several rules' ids"},
                "404": {"description": "no such rule"},
                **_NO_RULES,
            },
        }
    },
    "/rules/{ruleId}/test": {
        "post": {
            "summary": "Run the rule's inline tests in a throwaway loglake (as loglake rules test)",
            "parameters": [_RULE_ID],
            "responses": {
                "200": {"description": "tests (name, passed, failures), passed, failed"},
                "400": {
                    "description": "tests that together ran past the server's query_timeout_seconds (test_timeout), "
                    "or the start of several rules' ids (ambiguous_rule_id)"
                },
                "404": {"description": "no such rule"},
                "503": {"description": "all SQL query slots are busy, or the server is stopping"},
                **_NO_RULES,
            },
        }
    },
    "/rules/{ruleId}/backtest": {
        "post": {
            "summary": "What the rule would have raised over a period of the lake's history, per UTC day",
            "parameters": [_RULE_ID],
            "requestBody": {
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["since"],
                            "properties": {
                                "since": {"type": "string", "description": "ISO-8601, epoch ms or an age (7d)"},
                                "until": {"type": "string", "default": "now"},
                                "examples": {
                                    "type": "integer",
                                    "minimum": 0,
                                    "maximum": MAX_EXAMPLES,
                                    "default": EXAMPLES,
                                    "description": "example alerts per day, with their evidence",
                                },
                            },
                        }
                    }
                }
            },
            "responses": {
                "200": {"description": "the report: totals and days"},
                "400": {
                    "description": "a bad period or one that starts before the lake's retention (invalid_request), a "
                    "rule that failed, a backtest that ran past the server's query_timeout_seconds "
                    "(backtest_timeout), or the start of several rules' ids (ambiguous_rule_id)"
                },
                "404": {"description": "no such rule"},
                "503": {"description": "all SQL query slots are busy, or the server is stopping"},
                **_NO_RULES,
            },
        }
    },
}
