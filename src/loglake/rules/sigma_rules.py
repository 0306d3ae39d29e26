"""A Sigma rule file as SQL: checked part by part so that each problem names its field, then parsed
and converted by pySigma with loglake's pipeline and backend (sigma_backend.py).

A file holds one rule; a correlation rule comes with the rules it correlates, as further YAML
documents of the same file (`---`), which are its parts and not rules of their own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, get_args, get_type_hints

from pyparsing import ParseException
from sigma.collection import SigmaCollection
from sigma.correlations import SigmaCorrelationRule
from sigma.exceptions import (
    SigmaConditionError,
    SigmaCorrelationConditionError,
    SigmaCorrelationTypeError,
    SigmaError,
    SigmaRuleNotFoundError,
    SigmaTimespanError,
    SigmaTypeError,
)
from sigma.modifiers import modifier_mapping
from sigma.policy import SigmaPolicy
from sigma.policy.regex_engine import RE2RegexEngine, RegexPattern
from sigma.rule import SigmaDetectionItem, SigmaDetections, SigmaLogSource, SigmaRule
from sigma.types import SigmaBool, SigmaNumber, SigmaRegularExpression, SigmaString

from loglake.digits import same_as_double
from loglake.rules.correlation import SUPPORTED, CorrelationProblem, Part, correlation_sql
from loglake.rules.model import CORRELATION, LOGLAKE_KEYS, SIGMA_KEYS, Options
from loglake.rules.plan import rows_plan
from loglake.rules.sigma_backend import TABLE_STATE, DuckDBBackend, loglake_pipeline
from loglake.rules.sources import BY_TABLE, SOURCES, Source, UnknownField, in_groups, quote_name
from loglake.spelling import alike


class QuietRE2(RE2RegexEngine):
    """RE2 (which runs the rules' regexes in DuckDB too) as pySigma's check of a rule's regexes, without the
    lines RE2 itself writes to stderr on a bad one, and with its message as text (RE2 gives it as bytes)."""

    def compile(self, pattern: str, flags: int = 0) -> RegexPattern:
        options = self._re2.Options()
        options.log_errors = False
        inline = "".join(letter for flag, letter in _INLINE_FLAGS.items() if flags & flag)  # as RE2RegexEngine
        try:
            return self._re2.compile(f"(?{inline}){pattern}" if inline else pattern, options)  # type: ignore[no-any-return]
        except self._re2.error as e:
            message = e.args[0] if e.args else ""
            text = message.decode(errors="replace") if isinstance(message, bytes) else str(message)
            raise self._re2.error(f"{text}; {RE2_LIMITS}") from None


# what a regex from elsewhere (PCRE, Python) most often has that RE2, for its linear time, does not
RE2_LIMITS = "loglake's regexes are RE2, which has no lookaround (such as (?=x) or (?!x)) and no backreferences (\\1)"
_INLINE_FLAGS = {re.IGNORECASE: "i", re.MULTILINE: "m", re.DOTALL: "s"}
POLICY = SigmaPolicy(regex_engine=QuietRE2())  # pySigma's default (SafePolicy), quiet
_RULES_IN_THE_FILE = "a correlation's rules must be in its file, as YAML documents (---), each with the name it lists"
UNSUPPORTED_MODIFIERS = {"expand": "placeholders need values loglake does not have: write the values out"}
TAKEN_MODIFIERS = sorted(set(modifier_mapping) - set(UNSUPPORTED_MODIFIERS))
_PLAIN_STRING_MODIFIERS = {"contains", "startswith", "endswith", "cased", "all"}
# What each modifier takes, the type pySigma checks its value against (one type, or a union of them)
_TAKEN_TYPES = {name: get_type_hints(modifier.modify)["val"] for name, modifier in modifier_mapping.items()}
# |gt and the like, |minute and the like: the modifiers that take a number only
_NUMBER_MODIFIERS = {name for name, taken in _TAKEN_TYPES.items() if taken is SigmaNumber}
NULL_KEYWORD = (
    "a value without a field cannot be null: give the selection `field: value` pairs (`field: null` matches"
    " records without the field), or the keywords to look for"
)
EMPTY_SELECTION = "empty: give the `field: value` pairs it matches, or the keywords to look for"
KEYWORD_VALUES = "a value without a field (a keyword) is text, a number or a |re: name the field this one is about"
V1_AGGREGATION = "Sigma v1 aggregations are not supported: write a correlation rule"


class SigmaProblems(ValueError):
    """Problems of a Sigma file, as (field, message) pairs."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{f}: {m}" for f, m in problems))
        self.problems = problems


@dataclass(frozen=True)
class SigmaQuery:
    kind: str  # "sigma" or "sigma correlation"
    sql: str  # the SQL of a run, with the window views (plan.py)
    query: str  # the rule's own query, for people to read
    group_fields: tuple[str, ...]
    reach_ms: int


def primary_document(documents: list[dict[str, Any]]) -> tuple[int, list[tuple[str, str]]]:
    """Which document is the rule (the correlation, or the only one), and the problems of the file's
    layout and keys."""
    correlations = [i for i, d in enumerate(documents) if "correlation" in d]
    problems = []
    if len(correlations) > 1:
        problems.append(("correlation", "a file holds one rule: put each correlation in its own file"))
    if not correlations and len(documents) > 1:
        problems.append(("", "a file holds one rule; only a correlation rule brings its rules along (---)"))
    primary = correlations[0] if correlations else 0
    for i, document in enumerate(documents):
        allowed = SIGMA_KEYS | LOGLAKE_KEYS if i == primary else SIGMA_KEYS
        for key in sorted(set(document) - allowed, key=str):
            if key in LOGLAKE_KEYS:
                problems.append(
                    (_where(i, primary, key), "belongs to the file's rule (the correlation), not its parts")
                )
            else:
                problems.append(
                    (_where(i, primary, str(key)), f"unknown field (Sigma's fields: {', '.join(sorted(SIGMA_KEYS))})")
                )
    return primary, problems


def _where(index: int, primary: int, field: str) -> str:
    return field if index == primary else f"document {index + 1}: {field}"


def source_of(logsource: Any) -> Source | None:
    """The source whose logsource (one of them) the rule's logsource is, as the pipeline decides it
    (pySigma's containment: the fields a source names must be the rule's)."""
    try:
        given = SigmaLogSource.from_dict(logsource)
    except (SigmaError, AttributeError, TypeError):
        return None
    for source in SOURCES:
        if any(given in SigmaLogSource(**wanted) for wanted in source.logsources):
            return source
    return None


def detection_problems(documents: list[dict[str, Any]], primary: int) -> list[tuple[str, str]]:
    """Each rule document's logsource, fields and modifiers, checked before pySigma sees them, so that
    each problem names its field (`detection.selection.user|foo: unknown modifier`)."""
    problems = []
    for i, document in enumerate(documents):
        if "correlation" in document:
            continue
        source = source_of(document.get("logsource"))
        if source is None:
            known = "; ".join(s.describe() for s in SOURCES)
            given = document.get("logsource")
            said = "missing" if given is None else f"{given!r} is not a source loglake holds"
            problems.append((_where(i, primary, "logsource"), f"{said} (one of: {known})"))
        detection = document.get("detection")
        if not isinstance(detection, dict):
            problems.append(
                (_where(i, primary, "detection"), "missing, or not a mapping of named selections and a condition")
            )
            continue
        for name, selection in detection.items():
            if name in ("condition", "timeframe"):
                continue
            if selection == [] or selection == {}:  # (pySigma: "Detection is empty", or "Null value must be bound")
                problems.append((_where(i, primary, f"detection.{name}"), EMPTY_SELECTION))
                continue
            maps = selection if isinstance(selection, list) else [selection]
            for item in maps:
                if isinstance(item, dict):
                    for key, value in item.items():
                        where = _where(i, primary, f"detection.{name}.{key}")
                        if not isinstance(key, str):  # (YAML's 5: or true: is no text; pySigma failed on it)
                            problems.append((where, f"a field's name is text: quote it ('{key}')"))
                            continue
                        problems += [(where, m) for m in _item_problems(key, value, source)]
                elif item is None:  # pySigma takes it as a keyword it cannot convert (a TypeError, not its error)
                    problems.append((_where(i, primary, f"detection.{name}"), NULL_KEYWORD))
        condition_problem = _condition_problem(detection)
        if condition_problem:
            problems.append((_where(i, primary, "detection.condition"), condition_problem))
        if "timeframe" in detection and condition_problem != V1_AGGREGATION:
            problems.append((_where(i, primary, "detection.timeframe"), V1_AGGREGATION))
    return problems


def detection_warnings(documents: list[dict[str, Any]], primary: int) -> list[tuple[str, str]]:
    """Detection items that test nothing: a value that matches any text (`|contains: ''`), which makes
    its selection match every record that has the field (a selection meant to narrow, likely left empty)."""
    warnings = []
    for i, document in enumerate(documents):
        detection = document.get("detection")
        if not isinstance(detection, dict):
            continue
        for name, selection in detection.items():
            if name in ("condition", "timeframe"):
                continue
            for item in selection if isinstance(selection, list) else [selection]:
                if isinstance(item, str) and not item.strip("*"):  # a keyword is looked for anywhere in the text
                    warnings.append(
                        (
                            _where(i, primary, f"detection.{name}"),
                            f"the keyword {item!r} is in every record: give the text to look for",
                        )
                    )
                if not isinstance(item, dict):
                    continue
                for key, value in item.items():
                    field, *modifiers = str(key).split("|")
                    values = value if isinstance(value, list) else [value]
                    if any(_matches_any_text(v, modifiers) for v in values):
                        warnings.append(
                            (
                                _where(i, primary, f"detection.{name}.{key}"),
                                f"{value!r} matches any {field or 'text'}: this selection matches every record"
                                " that has it; give the text to look for",
                            )
                        )
    return warnings


def _matches_any_text(value: Any, modifiers: list[str]) -> bool:
    """Whether a string matches any text: nothing, or wildcards alone, with |contains, |startswith or |endswith
    (a bare `*` is Sigma's way to say the field is there, as SigmaHQ's filters use it: not warned of)."""
    if not isinstance(value, str) or value.strip("*") or not set(modifiers) <= _PLAIN_STRING_MODIFIERS:
        return False
    return bool(set(modifiers) & {"contains", "startswith", "endswith"})


def _condition_problem(detection: dict[str, Any]) -> str | None:
    """What is wrong with the condition itself (its syntax, a selection it names that is not there), checked
    against stand-ins of the selections so that their own problems do not hide it. A v1 aggregation
    (`sel | count() by user > 5`) is named as loglake names it: pySigma's own words on the pipe are about itself."""
    condition = detection.get("condition")
    conditions = [] if condition is None else condition if isinstance(condition, list) else [condition]
    if not all(isinstance(c, str) for c in conditions):
        return "is not text such as `selection and not filter`, or a list of such texts"
    if any("|" in c for c in conditions):
        return V1_AGGREGATION
    stand_ins: dict[str, Any] = {str(name): {"_": "_"} for name in detection if name not in ("condition", "timeframe")}
    try:
        detections = SigmaDetections.from_dict(
            stand_ins if condition is None else {**stand_ins, "condition": condition}
        )
        for parsed in detections.parsed_condition:
            try:
                parsed.parse()
            except SigmaConditionError as e:
                if isinstance(e.__context__, ParseException):  # (pyparsing's words: "Expected {{{'1' | ...")
                    return _syntax_problem(parsed.condition, e.__context__)
                raise
    except SigmaError as e:
        message = _sigma_message(e)
        undefined = _UNDEFINED.fullmatch(message)
        if undefined is None:
            return message
        name = undefined.group(1)
        close = alike(name, list(stand_ins))
        meant = f"did you mean {' or '.join(close)}? " if close else ""
        return f"names {name!r}, which is no selection of the detection ({meant}selections: {', '.join(stand_ins)})"
    return None


_UNDEFINED = re.compile(r"Detection '(.*)' not defined in detections")  # (pySigma's words)
_CONDITION_TOKEN = re.compile(r"[()]|[A-Za-z0-9_*-]+|[^\sA-Za-z0-9_*()-]+")
_CONDITION_SYNTAX = "selections joined with and, or, not and parentheses; `1 of sel*`, `all of them`"


def _syntax_problem(condition: str, error: ParseException) -> str:
    """What is wrong with a condition pySigma could not parse, at which column of it (pyparsing's message lists
    its grammar, as it expected it at the point where it gave up)."""
    tokens = [(m.group(), m.start() + 1) for m in _CONDITION_TOKEN.finditer(condition)]
    said = f"{condition!r} is no condition"
    opened: list[int] = []  # the columns of the open parentheses
    operand = True  # whether a selection (or `not`, `(`, `1 of`) comes next
    previous = ""
    i = 0
    while i < len(tokens):
        token, column = tokens[i]
        following = tokens[i + 1][0] if i + 1 < len(tokens) else ""
        at = f"at column {column}"
        if not re.fullmatch(r"[()]|[A-Za-z0-9_*-]+", token):
            return f"{said}: {token!r} ({at}) is not part of one ({_CONDITION_SYNTAX})"
        if token.lower() in ("and", "or", "not") and token != token.lower():
            return f"{said}: {token!r} ({at}) is written in lower case: {token.lower()}"
        if following == "of" and token not in ("1", "any", "all"):
            if token.isdigit():
                return (
                    f"{said}: '{token} of' ({at}): Sigma says `1 of`, `any of` or `all of` selections, not how many"
                    " (to count events, write a correlation rule)"
                )
            return f"{said}: 'of' (column {tokens[i + 1][1]}) comes after 1, any or all, not after {token!r}"
        if operand:
            if token == "(":
                opened.append(column)
            elif token in ("and", "or"):
                before = f"between {previous!r} and it" if previous and previous != "(" else "before it"
                return f"{said}: {token!r} ({at}) has no selection {before}"
            elif token == ")":
                return f"{said}: ')' ({at}) comes where a selection is expected"
            elif token == "of":
                return f"{said}: 'of' ({at}) comes after 1, any or all (`1 of sel*`)"
            elif following == "of":  # 1, any or all
                if i + 2 >= len(tokens) or not re.fullmatch(r"[A-Za-z0-9_*]+", tokens[i + 2][0]):
                    return (
                        f"{said}: '{token} of' ({at}) needs the selections after it: a name, a pattern (sel*) or them"
                    )
                operand, previous, i = False, tokens[i + 2][0], i + 3
                continue
            elif "*" in token:
                return f"{said}: {token!r} ({at}) is a pattern: write `1 of {token}` or `all of {token}`"
            elif token != "not":
                operand = False
        elif token in ("and", "or"):
            operand = True
        elif token == ")":
            if not opened:
                return f"{said}: ')' ({at}) closes no '('"
            opened.pop()
        else:
            return f"{said}: {token!r} ({at}) follows {previous!r} without and or or between them"
        previous = token
        i += 1
    if not tokens:
        return f"is empty: name the selections it matches ({_CONDITION_SYNTAX})"
    if operand:
        return f"{said}: it ends after {previous!r}, where a selection must follow"
    if opened:
        return f"{said}: the '(' at column {opened[-1]} is not closed"
    return f"{said}: it cannot be read from column {error.loc + 1} ({_CONDITION_SYNTAX})"


def _item_problems(key: str, value: Any, source: Source | None) -> list[str]:
    field, *modifiers = key.split("|")
    found = [f"|{m} is not supported: {UNSUPPORTED_MODIFIERS[m]}" for m in modifiers if m in UNSUPPORTED_MODIFIERS]
    # What pySigma takes without a word, and then matched something else or nothing: a key of nothing (a keyword
    # search), a pattern of null (the text 'None'), a dotted name with an empty key (a JSON path DuckDB refuses).
    if not key:
        found.append("the field's name is empty: name the field, or list the text to look for as keywords")
    if "re" in modifiers and (value is None or (isinstance(value, list) and None in value)):
        found.append("a |re needs a pattern: null is none (`field: null` matches records without the field)")
    if "" in field.split(".") and field not in ("", "."):
        found.append(f"the name {field!r} has an empty key between two dots: name each key")
    unknown = [_unknown_modifier(m) for m in modifiers if m not in modifier_mapping]
    found += unknown
    if not unknown:  # pySigma's own words on one would only repeat it, barer
        try:
            SigmaDetectionItem.from_mapping(key, value, policy=POLICY)
        except SigmaError as e:
            found.append(_value_problem(field, modifiers, value) or _sigma_message(e))
    # |fieldref's values are field names too: a typo there (`fieldref: sevrity`) would read an attribute no record has
    referenced = [v for v in (value if isinstance(value, list) else [value]) if isinstance(v, str)]
    names = [field, *referenced] if "fieldref" in modifiers else [field]
    for name in names:
        if not name or source is None:
            continue
        try:
            source.field(name)
        except UnknownField as e:
            found.append(str(e))
    return found


# what a modifier takes, by the type pySigma checks
_TAKES = {
    SigmaString: "text",
    SigmaNumber: "a number",
    SigmaBool: "true or false",
    SigmaRegularExpression: "a |re before it",
}


def _value_problem(field: str, modifiers: list[str], value: Any) -> str | None:
    """What pySigma refused of a value, in the rule's words (None: its own words say it): a modifier's refusal
    named its class and the value's Python form (`Modifier SigmaContainsModifier incompatible to value type of
    '<sigma.types.SigmaNull object at 0x7f...>'`), a mapping as a value its Python type."""
    for raw in value if isinstance(value, list) else [value]:
        if isinstance(raw, (dict, list)):
            return (
                f"{_given(raw)} is no value: a value is text, a number, true, false or null (nested keys are one"
                " dotted name: `user.name: alice`)"
            )
        for n in range(1, len(modifiers) + 1):  # the first modifier that refuses it
            try:
                SigmaDetectionItem.from_mapping("|".join([field, *modifiers[:n]]), raw, policy=POLICY)
            except SigmaTypeError as e:
                if not str(e).startswith("Modifier "):  # (an invalid CIDR, in its own words)
                    return None
                taken = _TAKEN_TYPES[modifiers[n - 1]]
                takes = next((_TAKES[t] for t in (get_args(taken) or (taken,)) if t in _TAKES), None)
                if takes is None:
                    return None
                given = _given(raw) if n == 1 else f"what |{modifiers[n - 2]} makes of the value"
                quoted = isinstance(raw, str) and takes == "a number" and _is_number(raw)
                return f"|{modifiers[n - 1]} takes {takes}, not {given}" + (": write it unquoted" if quoted else "")
            except (SigmaError, TypeError, ValueError):  # (pySigma's other refusals, in its words)
                return None
    return None


def _given(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return f"the text {value!r}"
    if isinstance(value, (dict, list)):
        return "a mapping" if isinstance(value, dict) else "a list"
    return f"the number {value}"


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _unknown_modifier(modifier: str) -> str:
    close = alike(modifier, TAKEN_MODIFIERS)
    meant = f"did you mean |{' or |'.join(close)}? " if close else ""
    return f"unknown modifier |{modifier}: {meant}loglake takes |{', |'.join(TAKEN_MODIFIERS)}"


def convert(documents: list[dict[str, Any]], primary: int, options: Options) -> SigmaQuery:
    """The rule's SQL, or SigmaProblems."""
    try:
        collection = SigmaCollection.from_dicts(
            [_exact_whole_numbers(d) for d in documents], collect_errors=True, policy=POLICY
        )
    except SigmaRuleNotFoundError as e:
        raise SigmaProblems([("correlation.rules", f"{_sigma_message(e)}: {_RULES_IN_THE_FILE}")]) from None
    except SigmaError as e:
        raise SigmaProblems([("", _sigma_message(e))]) from None
    # Each rule's errors, named by the rule in a file of several; the collection's list holds them too (each
    # was said twice), and those of documents that are no rule.
    problems = []
    for rule in collection.rules:
        label = f"rule {rule.name or rule.title!r}" if len(documents) > 1 else ""
        problems += [_sigma_problem(label, e) for e in rule.errors]
    ruled = {id(e) for rule in collection.rules for e in rule.errors}
    problems = [_sigma_problem("", e) for e in collection.errors if id(e) not in ruled] + problems
    if problems:
        raise SigmaProblems(problems)
    try:
        collection.resolve_rule_references()
    except SigmaError as e:
        raise SigmaProblems([("correlation.rules", f"{_sigma_message(e)}: {_RULES_IN_THE_FILE}")]) from None
    backend = DuckDBBackend(loglake_pipeline())
    backend.init_processing_pipeline()
    correlation = next((r for r in collection.rules if isinstance(r, SigmaCorrelationRule)), None)
    if correlation is None:
        source, condition = _condition(backend, collection.rules[0], "")
        return _plain(source, condition, options)
    if not correlation.rules:  # (pySigma takes it; its SQL would be no query at all)
        empty = f"empty: list the names of the rules it correlates; {_RULES_IN_THE_FILE}"
        raise SigmaProblems([("correlation.rules", empty)])
    if options.group_by or options.threshold != 1:
        raise SigmaProblems(
            [("loglake", "group_by and threshold do not apply to a correlation: its condition and group-by decide")]
        )
    parts = []
    for reference in correlation.rules:
        if isinstance(reference.rule, SigmaCorrelationRule):
            raise SigmaProblems(
                [
                    (
                        "correlation.rules",
                        f"{reference.reference!r} is a correlation: loglake correlates rules, not correlations",
                    )
                ]
            )
        source, condition = _condition(backend, reference.rule, f"rule {reference.reference!r} ")
        parts.append(Part(reference.reference, reference.rule, source, condition))
    try:
        sql, groups = correlation_sql(correlation, parts, options.evidence)
    except CorrelationProblem as e:
        raise SigmaProblems([(e.field, str(e))]) from None
    return SigmaQuery(CORRELATION, sql, sql, groups, correlation.timespan.seconds * 1000)


def _exact_whole_numbers(document: dict[str, Any]) -> dict[str, Any]:
    """The document with each whole number of its detection that a double cannot hold (past 2**53) as its digits:
    pySigma keeps such a number as the nearest double, so `order: 9007199254740993` matched 9007199254740992. The
    backend compares such a number by its digits anyway (text, or a numeric column as text); modifiers that take
    numbers only (|gt, |hour, ...) keep it, as a double."""
    detection = document.get("detection")
    if not isinstance(detection, dict):
        return document

    def exact(value: Any) -> Any:
        if isinstance(value, list):
            return [exact(v) for v in value]
        whole = isinstance(value, int) and not isinstance(value, bool)
        return str(value) if whole and not same_as_double(value) else value

    def selection(value: Any) -> Any:
        if isinstance(value, dict):
            return {
                key: item if _NUMBER_MODIFIERS & set(str(key).split("|")[1:]) else exact(item)
                for key, item in value.items()
            }
        if isinstance(value, list):
            return [selection(v) if isinstance(v, dict) else exact(v) for v in value]
        return exact(value)

    named = {
        name: value if name in ("condition", "timeframe") else selection(value) for name, value in detection.items()
    }
    return {**document, "detection": named}


def _condition(backend: DuckDBBackend, rule: SigmaRule, label: str) -> tuple[Source, str]:
    """The rule's table and its condition as SQL (several conditions: any of them); `label` names the
    rule in problems when it is a correlation's."""
    try:
        backend.convert_rule(rule)
        conditions = rule.get_conversion_result()
        table = rule.get_conversion_states()[0].processing_state.get(TABLE_STATE)
    except SigmaError as e:
        raise SigmaProblems([(label + "detection", _sigma_message(e))]) from None
    except TypeError as e:  # pySigma's backend on a field-less value it has no conversion for (`'|gt': 5`)
        message = str(e).split(" (while converting")[0]
        raise SigmaProblems([(label + "detection", f"{message}: {KEYWORD_VALUES}")]) from None
    if table not in BY_TABLE:
        raise SigmaProblems([(label + "logsource", "is not a source loglake holds")])
    if not conditions:
        raise SigmaProblems([(label + "detection.condition", "gives no query")])
    condition = " OR ".join(f"({c})" for c in conditions) if len(conditions) > 1 else conditions[0]
    return BY_TABLE[table], condition


def _plain(source: Source, condition: str, options: Options) -> SigmaQuery:
    """A detection: its matching events, grouped by the options' group_by for the threshold."""
    extra = []
    grouped = []
    for name in options.group_by:
        try:
            field = source.field(name)
        except UnknownField as e:
            raise SigmaProblems([("loglake.group_by", str(e))]) from None
        grouped.append(field.sql)
        if field.sql != quote_name(name):
            extra.append(f"{field.sql} AS {quote_name(name)}")
    columns = ", ".join(["*", *extra])
    where = in_groups(condition, grouped) if grouped else condition
    query = f"SELECT {columns} FROM {quote_name(source.table.name)} WHERE {where}"
    groups = tuple(options.group_by)
    sql = rows_plan(query, (source.table,), groups, options.threshold, options.evidence, timed=True)
    return SigmaQuery("sigma", sql, query, groups, 0)


# The field of a correlation's errors pySigma names none for, and what it takes.
_CORRELATION_FIELDS: dict[type[SigmaError], tuple[str, str]] = {
    SigmaCorrelationTypeError: ("correlation.type", "loglake runs " + ", ".join(t.name.lower() for t in SUPPORTED)),
    SigmaTimespanError: ("correlation.timespan", "a number and a unit: 30s, 5m, 1h, 1d (s, m, h, d, w, M, y)"),
    SigmaCorrelationConditionError: ("correlation.condition", "e.g. {gte: 10}"),
}


def _sigma_problem(label: str, error: SigmaError) -> tuple[str, str]:
    """A pySigma error as (field, message): the field it is about, after the rule's label if any."""
    field, takes = _CORRELATION_FIELDS.get(type(error), ("", ""))
    where = ", ".join(part for part in (label, field) if part)
    message = _sigma_message(error)
    return where, f"{message.rstrip('.')}; {takes}" if takes else message


def _sigma_message(error: SigmaError) -> str:
    """pySigma's message without the location it appends (the problem names the file already)."""
    return str(error).split(" in file ")[0].split(" in line ")[0].strip()
