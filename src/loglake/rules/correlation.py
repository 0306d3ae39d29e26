"""Sigma correlation rules (event_count, value_count, temporal, temporal_ordered) as one DuckDB SELECT.

The events are those of the correlation's rules (each rule's condition from the backend, over its
table), with their `group-by` values (through `aliases` where the rules name a field differently).
A timespan is a sliding window: at each event, the correlation's value over the events of its group
at most `timespan` earlier (that one included):

- event_count: how many events;
- value_count: how many distinct values of the condition's `field`;
- temporal: how many of the rules matched;
- temporal_ordered: all of them if they matched in the order listed (a chain: each rule's event no
  later than the next one's, the first at most `timespan` before the last), else 0.

A group matches when its highest value, among the events of the window (`$since` on; events up to a
timespan earlier are read so that a window's first events see their past), meets the condition: `gte:
10` is "at some moment, 10 events within the timespan", `lt: 3` is "never as many as 3". The
evidence is the group's events in the timespan that ended at that highest value, earliest first; for
temporal and temporal_ordered, the latest event of each of its rules is always among them (a login
after 30 failures is the record the alert is about, though `evidence` keeps 20), and an event two of
its rules match is shown once.
"""

from __future__ import annotations

from dataclasses import dataclass

from sigma.correlations import (
    SigmaCorrelationConditionOperator,
    SigmaCorrelationRule,
    SigmaCorrelationType,
    SigmaRuleReference,
)

from loglake.rules.plan import COUNT, FIRST, LAST, RANK, partition, window_views
from loglake.rules.sources import Source, UnknownField, in_groups, quote_name

SUPPORTED = {
    SigmaCorrelationType.EVENT_COUNT: "count(*)",
    SigmaCorrelationType.VALUE_COUNT: "count(DISTINCT _loglake_value_of)",
    SigmaCorrelationType.TEMPORAL: "count(DISTINCT _loglake_rule)",
    SigmaCorrelationType.TEMPORAL_ORDERED: None,  # the chain below
}
_OPERATORS = {
    SigmaCorrelationConditionOperator.LT: "<",
    SigmaCorrelationConditionOperator.LTE: "<=",
    SigmaCorrelationConditionOperator.GT: ">",
    SigmaCorrelationConditionOperator.GTE: ">=",
    SigmaCorrelationConditionOperator.EQ: "=",
    SigmaCorrelationConditionOperator.NEQ: "<>",
}


class CorrelationProblem(ValueError):
    """What cannot be converted, with the field of the correlation it is about."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Part:
    """One rule of a correlation: its name there, its table and its condition as SQL."""

    reference: str
    rule: object  # the pySigma rule, to find it in the correlation's aliases
    source: Source
    condition: str


def correlation_sql(correlation: SigmaCorrelationRule, parts: list[Part], evidence: int) -> tuple[str, tuple[str, ...]]:
    """(the SQL, the group columns) of a correlation over its rules' parts (see the module's notes)."""
    kind = correlation.type
    if kind not in SUPPORTED:
        supported = ", ".join(t.name.lower() for t in SUPPORTED)
        raise CorrelationProblem("correlation.type", f"{kind.name.lower()} is not supported (supported: {supported})")
    if correlation.timespan is None:
        raise CorrelationProblem("correlation.timespan", "missing: say within what time the events must fall (10m)")
    if correlation.generate:
        raise CorrelationProblem("correlation.generate", "alerts of the correlation's own rules are not supported")
    groups = tuple(correlation.group_by or ())
    seconds = correlation.timespan.seconds
    condition = correlation.condition
    if kind is SigmaCorrelationType.TEMPORAL_ORDERED and not (
        condition.op is SigmaCorrelationConditionOperator.GTE and condition.count == len(parts)
    ):
        raise CorrelationProblem(
            "correlation.condition", "temporal_ordered takes no condition: all its rules, in order"
        )
    if kind is SigmaCorrelationType.VALUE_COUNT and not condition.fieldref:
        raise CorrelationProblem("correlation.condition.field", "value_count needs the field whose values it counts")
    if kind is SigmaCorrelationType.VALUE_COUNT and not isinstance(condition.fieldref, str):
        raise CorrelationProblem(
            "correlation.condition.field",
            "loglake's value_count counts the values of one field: give one (the others may go in group-by)",
        )
    # event_count and value_count count events: one that several of the rules match is one event (the first rule's,
    # whose group it is in); temporal counts the rules that matched, each by the events it matched
    once = kind in (SigmaCorrelationType.EVENT_COUNT, SigmaCorrelationType.VALUE_COUNT)
    selects, taken = [], []
    for i, part in enumerate(parts):
        select, where = _events(i, part, correlation, groups, [w for t, w in taken if t == part.source.table.name])
        selects.append(select)
        if once:
            taken.append((part.source.table.name, where))
    events = "\nUNION ALL BY NAME\n".join(selects)
    ctes = [window_views(s.table for s in _distinct_sources(parts)), f"_loglake_events AS (\n{events}\n)"]
    group = partition(groups)
    frame = f'ORDER BY "timestamp" RANGE BETWEEN INTERVAL {seconds} SECOND PRECEDING AND CURRENT ROW'
    if kind is SigmaCorrelationType.TEMPORAL_ORDERED:
        ctes += _chain(len(parts), group, seconds)
    else:
        ctes.append(
            f"_loglake_scored AS (SELECT *, {SUPPORTED[kind]} OVER ({group}{frame}) AS _loglake_value"
            " FROM _loglake_events)"
        )
    names = ", ".join(quote_name(g) for g in groups)
    ctes.append(
        f'_loglake_peaks AS (SELECT {names + ", " if names else ""}"timestamp" AS _loglake_at, _loglake_value'
        f' FROM _loglake_scored WHERE "timestamp" >= $since'
        f' QUALIFY row_number() OVER ({group}ORDER BY _loglake_value DESC, "timestamp") = 1)'
    )
    meets = f"{_OPERATORS[condition.op]} {condition.count}"
    ctes.append(f"_loglake_fired AS (SELECT * FROM _loglake_peaks WHERE _loglake_value {meets})")
    joined = " AND ".join(f"e.{quote_name(g)} IS NOT DISTINCT FROM f.{quote_name(g)}" for g in groups) or "true"
    of_group = _partition_of("e", groups)
    in_span = (
        f" FROM _loglake_events e JOIN _loglake_fired f ON {joined}"
        f' AND e."timestamp" BETWEEN f._loglake_at - INTERVAL {seconds} SECOND AND f._loglake_at'
    )
    if kind in (SigmaCorrelationType.TEMPORAL, SigmaCorrelationType.TEMPORAL_ORDERED):
        # the evidence holds the latest event of each rule first (the login that followed 30 failures
        # is the record the alert is about), then the earliest of the others; shown in time order
        of_rule = _partition_of("e", (*groups, "_loglake_rule"))
        ctes.append(
            f"_loglake_spanned AS (SELECT e.*, f._loglake_value AS {COUNT}, f._loglake_at AS {LAST},"
            f' min(e."timestamp") OVER ({of_group}) AS {FIRST},'
            f' row_number() OVER ({of_rule}ORDER BY e."timestamp" DESC) AS _loglake_recent{in_span})'
        )
        # An event several of the rules match is counted for each (one row each), but it is one record: shown once
        # (its copy as the latest event of a rule, if it is one). Its rows differ only in the rule: by all else.
        columns = sorted({name for source in _distinct_sources(parts) for name in source.columns})
        each_event = partition(dict.fromkeys([*groups, *columns]))
        ctes.append(
            "_loglake_shown AS (SELECT * FROM _loglake_spanned"
            f" QUALIFY row_number() OVER ({each_event}ORDER BY _loglake_recent) = 1)"
        )
        select = (
            f'SELECT *, row_number() OVER ({partition(groups)}ORDER BY _loglake_recent > 1, "timestamp") AS {RANK}'
            f" FROM _loglake_shown QUALIFY {RANK} <= {evidence}"
            f""" ORDER BY {", ".join([*(quote_name(g) for g in groups), '"timestamp"', RANK])}"""
        )
        return "WITH " + ",\n".join(ctes) + "\n" + select, groups
    select = (
        f'SELECT e.*, f._loglake_value AS {COUNT}, row_number() OVER ({of_group}ORDER BY e."timestamp") AS {RANK},'
        f' min(e."timestamp") OVER ({of_group}) AS {FIRST}, f._loglake_at AS {LAST}{in_span}'
        f" QUALIFY {RANK} <= {evidence} ORDER BY {', '.join([*(f'e.{quote_name(g)}' for g in groups), RANK])}"
    )
    return "WITH " + ",\n".join(ctes) + "\n" + select, groups


def with_events(sql: str) -> str:
    """The start of a correlation's SQL (correlation_sql's) up to its events: `WITH <the window
    views>,\n_loglake_events AS (...)`, to which a query of the events can be added. What follows the
    events is made here, holding no text of the rule, so its first clause is found from the end."""
    start = sql.index(",\n_loglake_events AS (\n")
    end = max(sql.rfind("\n),\n_loglake_scored AS ("), sql.rfind("\n),\n_loglake_chain0 AS ("))
    if not sql.startswith("WITH ") or end < start:
        raise ValueError("not the SQL of a correlation")
    return sql[: end + len("\n)")]


def _partition_of(alias: str, groups: tuple[str, ...]) -> str:
    return f"PARTITION BY {', '.join(f'{alias}.{quote_name(g)}' for g in groups)} " if groups else ""


def _distinct_sources(parts: list[Part]) -> list[Source]:
    seen: dict[str, Source] = {}
    for part in parts:
        seen.setdefault(part.source.table.name, part.source)
    return list(seen.values())


def _events(
    index: int, part: Part, correlation: SigmaCorrelationRule, groups: tuple[str, ...], taken: list[str]
) -> tuple[str, str]:
    """The events of one rule, with the rule's number and the group (and counted) values by name, but those of
    `taken` (earlier rules' conditions over its table); and its own condition."""
    extra = [f"{index} AS _loglake_rule"]
    grouped = []
    for name in groups:
        field = _field_in(part, correlation, name, "correlation.group-by")
        grouped.append(field)
        if field != quote_name(name):
            extra.append(f"{field} AS {quote_name(name)}")
    if correlation.type is SigmaCorrelationType.VALUE_COUNT:
        counted = _field_in(part, correlation, correlation.condition.fieldref, "correlation.condition.field")
        extra.append(f"{counted} AS _loglake_value_of")
    table = quote_name(part.source.table.name)
    where = in_groups(part.condition, grouped)
    others = "".join(f" AND NOT coalesce(({condition}), false)" for condition in taken)
    return f"SELECT *, {', '.join(extra)} FROM {table} WHERE {where}{others}", where


def _field_in(part: Part, correlation: SigmaCorrelationRule, name: str, where: str) -> str:
    """The SQL of a field as one rule's events hold it (through the aliases, if `name` is one)."""
    alias = correlation.aliases.aliases.get(name)
    if alias is not None:
        named = [field for reference, field in alias.mapping.items() if _names(reference, part)]
        if not named:
            raise CorrelationProblem(f"correlation.aliases.{name}", f"says nothing of rule {part.reference!r}")
        name = named[0]
    try:
        return part.source.field(name).sql
    except UnknownField as e:
        raise CorrelationProblem(where, f"{e} (in the events of rule {part.reference!r})") from None


def _names(reference: SigmaRuleReference, part: Part) -> bool:
    """Whether an alias's rule reference is the part's rule (by the name written, or resolved)."""
    return reference.reference == part.reference or getattr(reference, "rule", None) is part.rule


def _chain(count: int, group: str, seconds: int) -> list[str]:
    """temporal_ordered: `_loglake_start<k>` at an event of rule k is the latest start (the first
    rule's time) of a chain of rules 0..k ending there; the value is `count` where the chain through
    the last rule started at most the timespan earlier."""
    ctes = ["_loglake_chain0 AS (SELECT *, CASE WHEN _loglake_rule = 0 THEN \"timestamp\" END AS _loglake_start0"
            " FROM _loglake_events)"]  # fmt: skip
    for k in range(1, count):
        ctes.append(
            f"_loglake_chain{k} AS (SELECT *, CASE WHEN _loglake_rule = {k} THEN max(_loglake_start{k - 1}) OVER"
            f' ({group}ORDER BY "timestamp", _loglake_rule ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) END'
            f" AS _loglake_start{k} FROM _loglake_chain{k - 1})"
        )
    last = count - 1
    ctes.append(
        f'_loglake_scored AS (SELECT *, CASE WHEN _loglake_start{last} >= "timestamp" - INTERVAL {seconds} SECOND'
        f" THEN {count} ELSE 0 END AS _loglake_value FROM _loglake_chain{last})"
    )
    return ctes
