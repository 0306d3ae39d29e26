"""The parts every rule file has, checked on their own and together (the loader reads the files and the
kinds of rule): the rule's facts (RuleMeta), options and inline tests, each problem with its field; the
schedule and lookback; the templates; the SQL plan bound against empty tables; and the Rule, built once
its options agree with its SQL (templates and suppressions name its groups).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec

from loglake.config_files import ROOT, problems_of, readable_part
from loglake.lake.sql_guard import QueryError
from loglake.rules.model import RULE_ID_EXAMPLE, RULE_ID_TEXT, Options, Problem, Rule, RuleMeta, RuleTest
from loglake.rules.plan import RESERVED_PREFIX, Binder, Plan, finish
from loglake.rules.schedule import Interval, Schedule, ScheduleError, parse_schedule
from loglake.rules.templates import RULE_VALUES, placeholders, template_syntax_problem
from loglake.times import DAY_MS, format_duration, parse_duration

LOOKBACK_WARNING_RATIO = 24  # runs a record is read by, beyond which (and a day) a lookback is warned of


class _Problems(Exception):
    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems


def _fields_of(kind: type[msgspec.Struct]) -> set[str]:
    return {f.encode_name for f in msgspec.structs.fields(kind)}


def _part(document: dict[str, Any], names: set[str] | frozenset[str]) -> dict[str, Any]:
    return {k: v for k, v in document.items() if k in names}


_META_FIELDS = frozenset(_fields_of(RuleMeta))


def _common(
    meta_doc: Any, options_doc: Any, tests_doc: Any, options_path: str
) -> tuple[RuleMeta | None, Options | None, list[RuleTest], list[tuple[str, str]]]:
    """The rule's facts, options and tests (each None or empty if it has a problem), and every problem:
    options that read are checked on their own too (schedule, lookback, templates), whatever else is wrong,
    and the caller checks what the options must agree with (the query's columns) however the facts are."""
    meta_problems = _meta_problems(meta_doc)
    meta = None if meta_problems else msgspec.convert(meta_doc, RuleMeta)
    option_problems = _problems_at(options_doc, Options, options_path)
    options = None if option_problems else msgspec.convert(options_doc, Options)
    fields = [f for f, _ in option_problems]
    readable = readable_part(options_doc, Options, fields, options_path) if isinstance(options_doc, dict) else None
    if readable is not None:
        prefix = f"{options_path}." if options_path else ""
        unread = {name for name in ("schedule", "lookback") if prefix + name in fields}
        option_problems += _timing(readable, prefix, unread)[2] + _template_problems(readable, prefix)
    test_problems = _problems_at(tests_doc, list[RuleTest], "tests")
    tests = [] if test_problems else msgspec.convert(tests_doc, list[RuleTest])
    return meta, options, tests, meta_problems + option_problems + test_problems


def _meta_problems(meta_doc: Any) -> list[tuple[str, str]]:
    """The facts' problems; a missing id says what an id is (a bare "missing field id" leaves a first rule's
    author guessing), and the other fields are checked as if it were there."""
    if not isinstance(meta_doc, dict) or "id" in meta_doc:
        return _problems_at(meta_doc, RuleMeta, "")
    return [
        ("id", f"missing: a rule's id is {RULE_ID_TEXT}"),
        *_problems_at({**meta_doc, "id": RULE_ID_EXAMPLE}, RuleMeta, ""),
    ]


def _problems_at(value: Any, kind: Any, path: str) -> list[tuple[str, str]]:
    """config_files' problems as (field, message), under `path`."""
    found = []
    for text in problems_of(value, kind, path):
        where, _, message = text.partition(": ")
        found.append(("" if where == ROOT else where, message))
    return found


def _checked(sql: str, query: str, reach_ms: int, groups: tuple[str, ...], binder: Binder, field: str) -> Plan:
    try:
        plan = finish(sql, query, reach_ms, groups)
        binder.columns(plan.executed, plan.parameters)
    except QueryError as e:
        raise _Problems([(field, f"the SQL it makes is refused: {e.message}")]) from None
    return plan


def _build(
    meta: RuleMeta,
    options: Options,
    tests: list[RuleTest],
    plan: Plan,
    kind: str,
    path: Path,
    prefix: str,
    columns: tuple[str, ...] = (),
    warnings: tuple[tuple[str, str], ...] = (),
) -> Rule:
    """The rule, once its options agree with its SQL (templates and suppressions name its groups).
    `columns`: a SQL rule's query's, which its alert_title may show too (a match's first row's values);
    not its dedup key, which a number the query computes would make a new key at every run. `warnings`:
    the kind of rule's own, as (field, message), beside the timing's."""
    schedule, lookback_ms, problems = _timing(options, prefix)
    for where, template, shown in (
        ("alert_title", options.alert_title, (*plan.group_fields, *columns)),
        ("dedup.key", options.dedup.key, plan.group_fields),
    ):
        for name in placeholders(template or ""):
            if name not in set(shown) | set(RULE_VALUES):
                problems.append((prefix + where, f"{{{name}}} is not a value of a match ({_known(shown)})"))
    for i, suppression in enumerate(options.suppress):
        for name in suppression.where:
            if name not in plan.group_fields:
                problems.append(
                    (
                        f"{prefix}suppress[{i}].where.{name}",
                        f"is not a group-by field ({_known(plan.group_fields, False)});"
                        " filter events in the rule itself",
                    )
                )
    if any(g.startswith(RESERVED_PREFIX) for g in plan.group_fields):
        problems.append((prefix + "group_by", f"names starting with {RESERVED_PREFIX} are loglake's"))
    if problems or schedule is None:
        raise _Problems(problems)
    timing_warning = _lookback_warning(schedule, lookback_ms, prefix)
    found = [*warnings, *([timing_warning] if timing_warning else [])]
    return Rule(
        id=meta.id.lower(),
        title=meta.title,
        level=meta.level,
        status=meta.status,
        description=meta.description,
        tags=tuple(meta.tags),
        kind=kind,
        path=path,
        options=options,
        schedule=schedule,
        lookback_ms=lookback_ms,
        delay_ms=parse_duration(options.delay),
        tests=tuple(tests),
        plan=plan,
        warnings=tuple(Problem(str(path), field, message) for field, message in found),
    )


def _lookback_warning(schedule: Schedule, lookback_ms: int, prefix: str) -> tuple[str, str] | None:
    """A lookback of more than a day and LOOKBACK_WARNING_RATIO runs: each run reads it all again (a year every
    minute reads the whole lake each minute), likely a lookback meant for another schedule."""
    first = schedule.next_after(0)
    period_ms = schedule.next_after(first) - first
    if lookback_ms <= DAY_MS or lookback_ms <= LOOKBACK_WARNING_RATIO * period_ms:
        return None
    return (
        prefix + "lookback",
        f"{format_duration(lookback_ms)} is {lookback_ms // period_ms:,} times the schedule ({schedule}): each run"
        f" reads it all again; a lookback near the schedule reads each record about once",
    )


def _timing(
    options: Options, prefix: str, unread: set[str] | frozenset[str] = frozenset()
) -> tuple[Schedule | None, int, list[tuple[str, str]]]:
    """The options' schedule (None if it does not read) and lookback in ms, and their problems. `unread`: which
    of schedule and lookback the file gives with a wrong type (reported as such), here at their defaults: the
    other is not measured against a value the file does not say."""
    problems = []
    try:
        schedule = parse_schedule(options.schedule)
    except ScheduleError as e:
        schedule = None
        problems.append((prefix + "schedule", str(e)))
    if options.lookback is not None:
        lookback_ms = parse_duration(options.lookback)
    elif isinstance(schedule, Interval):
        lookback_ms = schedule.ms
    else:
        lookback_ms = 0
        if schedule is not None and "lookback" not in unread:
            problems.append((prefix + "lookback", "missing: a cron schedule needs the window each run evaluates (1h)"))
    if options.lookback is not None and lookback_ms == 0:
        problems.append((prefix + "lookback", "must be longer than 0"))
    elif isinstance(schedule, Interval) and lookback_ms < schedule.ms and "schedule" not in unread:
        problems.append(
            (
                prefix + "lookback",
                f"{options.lookback} leaves records between two runs unread: make it {options.schedule} or more",
            )
        )
    return schedule, lookback_ms, problems


def _template_problems(options: Options, prefix: str) -> list[tuple[str, str]]:
    """Templates whose braces do not pair: rendered, a stray brace would show as it is."""
    return [
        (prefix + where, f"{problem}: write each value as {{name}}")
        for where, template in (("alert_title", options.alert_title), ("dedup.key", options.dedup.key))
        if (problem := template_syntax_problem(template or ""))
    ]


def _known(groups: tuple[str, ...], values: bool = True) -> str:
    names = list(dict.fromkeys([*groups, *(RULE_VALUES if values else ())]))
    return "known: " + ", ".join(names) if names else "the rule has no group-by fields"
