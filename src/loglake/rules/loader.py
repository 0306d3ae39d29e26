"""A rules folder as rules and problems: every `*.yml` / `*.yaml` file under it (but `alerting.yml`,
the routing of alerts, and hidden files and folders) is one rule, Sigma (`detection:` or `correlation:`)
or SQL (`query:`).

A file that cannot load gives problems, each naming the file and the field (or line), and never
keeps the other files from loading. Loading checks everything that can be checked before a run: the
YAML, every field and option, the Sigma conversion, the sandbox, and the SQL bound against empty
copies of the tables (a column that does not exist is a problem now, not at 3 a.m.). Here: the files
and the kinds of rule; the checks of the parts every kind has, and the Rule built: rule_parts.py.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import yaml

from loglake.lake.sql_guard import QueryError, check_select
from loglake.lake.tables import TABLES, LakeTable
from loglake.rules.anomaly import NUMBER_TYPE, AnomalyBody, AnomalyProblem, group_columns, metric_query, samples_of
from loglake.rules.files import ROUTING_FILE, UniqueKeys
from loglake.rules.model import SIGMA_DEFAULT_LEVEL, Options, Problem, Rule, RuleMeta, RuleTest, SqlRuleBody
from loglake.rules.plan import QUERY_PARAMETERS, Binder, binder, parameters_of, rows_plan, tables_of
from loglake.rules.rule_parts import (
    _META_FIELDS,
    _build,
    _checked,
    _common,
    _fields_of,
    _part,
    _Problems,
    _problems_at,
)
from loglake.rules.schedule import Interval, ScheduleError, parse_schedule
from loglake.rules.sigma_rules import (
    SigmaProblems,
    convert,
    detection_problems,
    detection_warnings,
    primary_document,
)
from loglake.rules.sources import BY_TABLE, quote_name
from loglake.rules.templates import dedup_key_shape
from loglake.times import parse_duration

MAX_FILE_BYTES = 1024 * 1024
RULE_SUFFIXES = (".yml", ".yaml")  # what a folder's rule files are named

T = TypeVar("T")


@dataclass
class RuleSet:
    rules: list[Rule] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def rule_files(path: Path) -> list[Path]:
    """The rule files of a folder (recursively, in name order), or the file itself. Hidden files and
    what hidden folders hold are no rules: a rules folder kept in git has its CI's `.github/workflows/*.yml`."""
    if path.is_file():
        return [path]
    return sorted(
        p
        for p in path.rglob("*")
        if p.suffix in RULE_SUFFIXES
        and p.is_file()
        and p.name != ROUTING_FILE
        and not any(part.startswith(".") for part in p.relative_to(path).parts)
    )


def _not_there(path: Path) -> str:
    """What to do about a rule file or folder that does not exist: `rules init` copies the starter pack into a
    folder, and makes no file of a name."""
    if path.suffix in RULE_SUFFIXES:
        return "does not exist: check its path (`loglake rules show ID` names the file of a rule the folder holds)"
    init = f"loglake rules init --rules-dir {shlex.quote(str(path))}"
    return f"does not exist: create the folder, or `{init}` to start it with the starter pack"


def load_rules(path: Path) -> RuleSet:
    """Every rule under `path` (a folder or one file) that loads, and the problems of those that do not."""
    found = RuleSet()
    if not path.exists():
        found.problems.append(Problem(str(path), "", _not_there(path)))
        return found
    loaded_rules = []
    for file in rule_files(path):
        loaded = load_file(file, binder())
        if isinstance(loaded, Rule):
            loaded_rules.append(loaded)
        else:
            found.problems.extend(loaded)
    # Two files with one id: neither is the rule, since which one was meant (and whose alerts those are) is
    # not for loglake to guess; each file is named with the others.
    for rule in loaded_rules:
        twins = [str(r.path) for r in loaded_rules if r.id == rule.id and r is not rule]
        if twins:
            found.problems.append(
                Problem(str(rule.path), "id", f"{rule.id} is the id of {', '.join(twins)} too; give each rule its own")
            )
        else:
            found.rules.append(rule)
    found.rules = _warned_of_shared_dedup_keys(found.rules)
    return found


def _warned_of_shared_dedup_keys(rules: list[Rule]) -> list[Rule]:
    """The rules, each whose dedup key other rules' alerts can have too (a key without {rule_id}) warned of it: each
    rule keeps its own alerts, but destinations take a key for one alert (PagerDuty one incident, which either
    rule's resolve closes; a Jira issue; a key's deliveries in order, behind each other's dead ones)."""
    shapes: dict[str, list[Rule]] = {}
    for rule in rules:
        shapes.setdefault(dedup_key_shape(rule), []).append(rule)
    warned = []
    for rule in rules:
        others = [str(other.path) for other in shapes[dedup_key_shape(rule)] if other is not rule]
        if others:
            where = ("" if rule.kind in ("sql", "anomaly") else "loglake.") + "dedup.key"
            warning = Problem(
                str(rule.path),
                where,
                f"{rule.options.dedup.key!r} can be the dedup key of the alerts of {', '.join(others)} too:"
                " destinations take them for one alert (one PagerDuty incident, which either rule's resolve"
                " closes); put {rule_id} in the key",
            )
            rule = replace(rule, warnings=(*rule.warnings, warning))
        warned.append(rule)
    return warned


def load_file(path: Path, binder: Binder) -> Rule | list[Problem]:
    """One rule file as a Rule, or its problems."""
    name = str(path)
    try:
        documents = _read_yaml(path)
        return _rule_of(documents, path, binder)
    except _Problems as e:
        return [Problem(name, f, m) for f, m in e.problems]
    except Exception as e:  # what the checks missed (pySigma failing on a shape of rule): this file's problem, so
        # that the folder's other rules still load (the scheduler would otherwise run none)
        return [Problem(name, "", f"could not be loaded: {type(e).__name__}: {e} (please report it with the file)")]


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
    if meta_doc.get("level") is None:  # optional in Sigma (SigmaHQ's rules from elsewhere may leave it out)
        meta_doc["level"] = SIGMA_DEFAULT_LEVEL
    meta, options, tests, more = _common(meta_doc, document.get("loglake") or {}, document.get("tests", []), "loglake")
    problems += more + detection_problems(documents, primary)
    if problems or meta is None or options is None:
        raise _Problems(problems)
    try:
        converted = convert(documents, primary, options)
    except SigmaProblems as e:
        raise _Problems(e.problems) from None
    plan = _checked(converted.sql, converted.query, converted.reach_ms, converted.group_fields, binder, "detection")
    warnings = tuple(detection_warnings(documents, primary))
    return _build(meta, options, tests, plan, converted.kind, path, "loglake.", warnings=warnings)


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
    return _build(meta, options, tests, plan, "sql", path, "", tuple(columns))


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
