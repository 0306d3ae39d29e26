"""A rules folder as rules and problems: every `*.yml` / `*.yaml` file under it (but `alerting.yml`,
the routing of alerts, and hidden files) is one rule, Sigma (`detection:` or `correlation:`) or SQL (`query:`).

A file that cannot load gives problems, each naming the file and the field (or line), and never
keeps the other files from loading. Loading checks everything that can be checked before a run: the
YAML, every field and option, the Sigma conversion, the sandbox, and the SQL bound against empty
copies of the tables (a column that does not exist is a problem now, not at 3 a.m.).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import yaml

from loglake.config_files import ROOT, problems_of, readable_part
from loglake.lake.sql_guard import QueryError, check_select
from loglake.lake.tables import TABLES, LakeTable
from loglake.rules.anomaly import NUMBER_TYPE, AnomalyBody, AnomalyProblem, group_columns, metric_query, samples_of
from loglake.rules.files import ROUTING_FILE, UniqueKeys
from loglake.rules.model import Options, Problem, Rule, RuleMeta, RuleTest, SqlRuleBody
from loglake.rules.plan import (
    QUERY_PARAMETERS,
    RESERVED_PREFIX,
    Binder,
    Plan,
    binder,
    finish,
    parameters_of,
    rows_plan,
    tables_of,
)
from loglake.rules.schedule import Interval, Schedule, ScheduleError, parse_schedule
from loglake.rules.sigma_rules import SigmaProblems, convert, detection_problems, primary_document
from loglake.rules.sources import BY_TABLE, quote_name
from loglake.rules.templates import RULE_VALUES, placeholders, template_syntax_problem
from loglake.times import parse_duration

MAX_FILE_BYTES = 1024 * 1024

T = TypeVar("T")


class _Problems(Exception):
    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems


@dataclass
class RuleSet:
    rules: list[Rule] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def rule_files(path: Path) -> list[Path]:
    """The rule files of a folder (recursively, in name order), or the file itself."""
    if path.is_file():
        return [path]
    return sorted(
        p
        for p in path.rglob("*")
        if p.suffix in (".yml", ".yaml") and p.is_file() and p.name != ROUTING_FILE and not p.name.startswith(".")
    )


def load_rules(path: Path) -> RuleSet:
    """Every rule under `path` (a folder or one file) that loads, and the problems of those that do not."""
    found = RuleSet()
    if not path.exists():
        found.problems.append(Problem(str(path), "", "does not exist: create it, or `loglake rules init` it"))
        return found
    for file in rule_files(path):
        loaded = load_file(file, binder())
        if isinstance(loaded, Rule):
            twin = next((r for r in found.rules if r.id == loaded.id), None)
            if twin is None:
                found.rules.append(loaded)
            else:
                problem = f"{loaded.id} is the id of {twin.path} too; give each rule its own"
                found.problems.append(Problem(str(file), "id", problem))
        else:
            found.problems.extend(loaded)
    return found


def load_file(path: Path, binder: Binder) -> Rule | list[Problem]:
    """One rule file as a Rule, or its problems."""
    name = str(path)
    try:
        documents = _read_yaml(path)
        return _rule_of(documents, path, binder)
    except _Problems as e:
        return [Problem(name, f, m) for f, m in e.problems]


def _read_yaml(path: Path) -> list[dict[str, Any]]:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise _Problems([("", f"cannot be read: {e.strerror}")]) from None
    if len(data) > MAX_FILE_BYTES:
        raise _Problems([("", f"is larger than {MAX_FILE_BYTES // 1024} KiB; a rule file holds one rule")])
    try:
        documents = [d for d in yaml.load_all(data, Loader=UniqueKeys) if d is not None]
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise _Problems([(where, f"not valid YAML: {e.problem or e.context}")]) from None
    except yaml.YAMLError as e:
        raise _Problems([("", f"not valid YAML: {e}")]) from None
    if not documents:
        raise _Problems([("", "is empty")])
    if not all(isinstance(d, dict) for d in documents):
        raise _Problems([("", "is not a rule: a rule is a YAML mapping (title: ..., id: ..., ...)")])
    return documents


def _rule_of(documents: list[dict[str, Any]], path: Path, binder: Binder) -> Rule:
    if any("type" in d for d in documents):
        if len(documents) > 1:
            raise _Problems([("", "an anomaly rule is one YAML document")])
        return _anomaly_rule(documents[0], path, binder)
    if any("query" in d for d in documents):
        if len(documents) > 1:
            raise _Problems([("", "a SQL rule is one YAML document")])
        return _sql_rule(documents[0], path, binder)
    if any("detection" in d or "correlation" in d for d in documents):
        return _sigma_rule(documents, path, binder)
    raise _Problems([("", "is neither a Sigma rule (detection: or correlation:) nor a SQL rule (query:)")])


def _sigma_rule(documents: list[dict[str, Any]], path: Path, binder: Binder) -> Rule:
    primary, problems = primary_document(documents)
    document = documents[primary]
    meta_doc = {k: v for k, v in document.items() if k in _META_FIELDS}
    meta, options, tests, more = _common(meta_doc, document.get("loglake") or {}, document.get("tests", []), "loglake")
    problems += more + detection_problems(documents, primary)
    if problems or meta is None or options is None:
        raise _Problems(problems)
    try:
        converted = convert(documents, primary, options)
    except SigmaProblems as e:
        raise _Problems(e.problems) from None
    plan = _checked(converted.sql, converted.query, converted.reach_ms, converted.group_fields, binder, "detection")
    return _build(meta, options, tests, plan, converted.kind, path, "loglake.")


def _flat_parts(
    document: dict[str, Any], body_type: type[T]
) -> tuple[RuleMeta | None, Options | None, list[RuleTest], T | None, list[tuple[str, str]]]:
    """A flat rule file's (SQL, anomaly) facts, options, inline tests and body, read side by side from
    its top level, and every problem of any part (unknown fields too); a part with problems is None."""
    option_fields = _fields_of(Options)
    body_fields = _fields_of(body_type) - {"tests"}
    known = _META_FIELDS | option_fields | body_fields | {"tests"}
    problems = [(str(k), f"unknown field ({', '.join(sorted(known))})") for k in sorted(set(document) - known, key=str)]
    meta, options, tests, more = _common(
        _part(document, _META_FIELDS), _part(document, option_fields), document.get("tests", []), ""
    )
    body_doc = _part(document, body_fields)
    body_problems = _problems_at(body_doc, body_type, "")
    body = None if body_problems else msgspec.convert(body_doc, body_type)
    return meta, options, tests, body, problems + more + body_problems


def _sql_rule(document: dict[str, Any], path: Path, binder: Binder) -> Rule:
    """A SQL rule: its facts, options and body are three Structs side by side at the top level. The
    query is checked even when the other parts have problems, so that a file's problems come at once."""
    meta, options, tests, body, problems = _flat_parts(document, SqlRuleBody)
    checked = None
    if body is not None:
        try:
            checked = _checked_query(body.query, binder)
        except _Problems as e:
            problems += e.problems
    if checked is not None and options is not None:
        missing = [g for g in options.group_by if g not in checked.columns]
        if missing:
            known = ", ".join(checked.columns)
            problems.append(("group_by", f"{missing[0]!r} is not a column of the query's rows ({known})"))
    if problems or meta is None or options is None or checked is None:
        raise _Problems(problems)
    query, tables, columns = checked.query, checked.tables, checked.columns
    groups = tuple(options.group_by)
    sql = rows_plan(query, tables, groups, options.threshold, options.evidence, timed="timestamp" in columns)
    plan = _checked(sql, query, 0, groups, binder, "query")
    return _build(meta, options, tests, plan, "sql", path, "")


@dataclass(frozen=True)
class _CheckedQuery:
    query: str  # without its trailing semicolon
    tables: tuple[LakeTable, ...]
    columns: list[str]


def _checked_query(text: str, binder: Binder) -> _CheckedQuery:
    """A SQL rule's query, once the guard, its parameters and the tables' columns allow it."""
    query = text.strip().rstrip(";").rstrip()
    try:
        tree = check_select(query)
    except QueryError as e:
        raise _Problems([("query", e.message)]) from None
    tables = tables_of(tree)
    if not tables:
        raise _Problems([("query", "reads none of the lake's tables (logs, amplify_access)")])
    unknown_parameters = sorted(parameters_of(tree) - set(QUERY_PARAMETERS))
    if unknown_parameters:
        raise _Problems(
            [("query", f"${unknown_parameters[0]} is not a parameter a rule gets ($since and $until: the window)")]
        )
    try:
        columns = binder.columns(query, parameters_of(tree))
    except QueryError as e:
        raise _Problems([("query", e.message)]) from None
    return _CheckedQuery(query, tables, columns)


def _anomaly_rule(document: dict[str, Any], path: Path, binder: Binder) -> Rule:
    """An anomaly rule (anomaly.py): like a SQL rule, its facts, options and body side by side."""
    meta, options, tests, body, problems = _flat_parts(document, AnomalyBody)
    if problems or meta is None or options is None or body is None:
        raise _Problems(problems)
    if options.threshold != 1:
        raise _Problems([("threshold", "does not apply to an anomaly rule: sensitivity and min_volume decide")])
    lookback_ms = _lookback_ms(options)
    try:
        period_ms, samples = samples_of(body, lookback_ms)
        groups = group_columns(BY_TABLE[body.metric.table], options.group_by)
    except AnomalyProblem as e:
        raise _Problems([(e.field, str(e))]) from None
    table = quote_name(body.metric.table)
    for where, sql in (
        ("metric.where", f"SELECT 1 FROM {table} WHERE {body.metric.where}" if body.metric.where else None),
        ("metric.value", f"SELECT {', '.join([*groups, f'({body.metric.value}) AS value'])} FROM {table} GROUP BY ALL"),
    ):
        if sql is not None:
            try:
                types = binder.types(sql, parameters_of(check_select(sql)))
            except QueryError as e:
                raise _Problems([(where, e.message)]) from None
            if where == "metric.value" and not NUMBER_TYPE.fullmatch(types["value"]):
                raise _Problems([(where, f"gives {types['value']}: a metric is a number, such as count(*)")])
    query = metric_query(body, options.group_by, period_ms, samples)
    tables = (TABLES[body.metric.table],)
    sql = rows_plan(query, tables, tuple(options.group_by), 1, options.evidence, timed=True)
    plan = _checked(sql, query, period_ms * samples, tuple(options.group_by), binder, "metric")
    return _build(meta, options, tests, plan, "anomaly", path, "")


def _lookback_ms(options: Options) -> int:
    """The lookback as _build reads it (0 when it cannot tell: _build names the problem)."""
    if options.lookback is not None:
        return parse_duration(options.lookback)
    try:
        schedule = parse_schedule(options.schedule)
    except ScheduleError:
        return 0
    return schedule.ms if isinstance(schedule, Interval) else 0


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
    meta_problems = _problems_at(meta_doc, RuleMeta, "")
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
    meta: RuleMeta, options: Options, tests: list[RuleTest], plan: Plan, kind: str, path: Path, prefix: str
) -> Rule:
    """The rule, once its options agree with its SQL (templates and suppressions name its groups)."""
    schedule, lookback_ms, problems = _timing(options, prefix)
    known = set(plan.group_fields) | set(RULE_VALUES)
    for where, template in (("alert_title", options.alert_title), ("dedup.key", options.dedup.key)):
        for name in placeholders(template or ""):
            if name not in known:
                problems.append((prefix + where, f"{{{name}}} is not a value of a match ({_known(plan.group_fields)})"))
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
    names = [*groups, *(RULE_VALUES if values else ())]
    return "known: " + ", ".join(names) if names else "the rule has no group-by fields"
