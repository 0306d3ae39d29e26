"""Running a rule once over a window: its matches, each with its evidence, and what the run read.

A match is a group (the rule's group-by values; one group when it has none) that met the rule's
condition in the window: its count, its time span, its title and dedup key (the rule's templates),
up to `evidence` of its rows (JSON values: times as ISO-8601 UTC text), and whether a suppression
holds it back. Groups of one run whose dedup key is the same (a key of fewer fields than the group-by)
are one match (joined_by_key), as they are one alert: each run of the rule raises or updates it once.
The scheduler, `loglake rules run`, backtests and the inline tests all run rules through here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from itertools import zip_longest
from typing import Any

from loglake.alerts.db import MAX_TITLE_CHARS
from loglake.alerts.evidence import with_attributes_decoded
from loglake.lake.query import QueryEngine, TimeRange
from loglake.lake.query_answers import QueryBusy, QueryResult, json_value
from loglake.lake.sql_guard import QueryError
from loglake.lake.stop import Stop
from loglake.rules.model import CORRELATION, Rule
from loglake.rules.plan import COUNT, FIRST, FRESH, FRESH_FIRST, LAST, RESERVED_PREFIX, window_moments
from loglake.rules.templates import default_dedup_key, fill, render, shown_values
from loglake.shorten import shortened


class RuleRunError(Exception):
    """The engine could not run the rule (its SQL failed, timed out, or found no free connection)."""


class RuleTimedOut(RuleRunError):
    """The rule's query ran past the server's query timeout (timed_out says so) and was stopped."""


def run_failure(rule: Rule, error: Exception) -> RuleRunError:
    """What stopped a rule's run, as its failure: a RuleRunError as it is, anything else (a defect met by one rule,
    an engine's call failing otherwise) logged with its traceback and named. The rule's failure, not its round's:
    the other rules run, and its failures count towards its own alert."""
    if isinstance(error, RuleRunError):
        return error
    logging.getLogger("loglake.rules").error("rule %s failed", rule.id, exc_info=error)
    return RuleRunError(f"{type(error).__name__}: {error}")


@dataclass(frozen=True)
class Match:
    rule_id: str
    title: str
    dedup_key: str
    group: dict[str, Any]
    count: int
    first_ms: int | None
    last_ms: int | None
    evidence: list[dict[str, Any]]
    suppressed: str | None = None  # why, when a suppression of the rule holds it back
    fresh: int | None = None  # of `count`, the rows no earlier window held (None: the rule cannot tell)
    fresh_first_ms: int | None = None  # the time of the first of those
    # The title's template and the values it shows but the count, to title an alert of another count (an
    # update's count is the alert's, a new alert after a resolve counts only the records no run read); None:
    # the title is as it is whatever the count.
    title_template: tuple[str, dict[str, Any]] | None = field(default=None, compare=False, repr=False)

    def titled(self, count: int) -> str:
        """The match's title for an alert of `count` records."""
        return self.title if self.title_template is None else _title(self.title_template, count)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule_id": self.rule_id,
            "title": self.title,
            "dedup_key": self.dedup_key,
            "group": self.group,
            "count": self.count,
            "first_seen": iso(self.first_ms),
            "last_seen": iso(self.last_ms),
            "suppressed": self.suppressed,
            "evidence": [with_attributes_decoded(record) for record in self.evidence],  # (as alerts show them)
        }


@dataclass(frozen=True)
class RunResult:
    rule_id: str
    since_ms: int
    until_ms: int  # exclusive
    matches: list[Match]
    rows_scanned: int
    bytes_scanned: int
    files_scanned: int
    elapsed_ms: float
    truncated: bool  # the evidence passed the engine's row cap: some groups may be missing
    sql: str = field(repr=False)


def run_rule(
    rule: Rule,
    engine: QueryEngine,
    since_ms: int,
    until_ms: int,
    now_ms: int | None = None,
    fresh_since_ms: int | None = None,
    stop: Stop | None = None,
) -> RunResult:
    """The rule's matches over [since_ms, until_ms); suppressions are judged at `now_ms` (default: now);
    a match's `fresh` rows are those from `fresh_since_ms` (the end of the rule's previous window;
    default: the whole window). Told to stop (`stop`), Stopped; past its budget, OutOfTime."""
    params, window = run_parameters(rule, since_ms, until_ms, fresh_since_ms)
    try:
        result = engine.run_saved(rule.plan.executed, params, window, engine.limits.max_rows, rule.plan.tables, stop)
    except QueryError as e:
        if e.code == "query_timeout":  # (the engine's message names the timeout settings of /query, which rules lack)
            raise RuleTimedOut(timed_out(rule, engine.limits.timeout_seconds)) from None
        raise RuleRunError(f"rule {rule.id} ({rule.path}): {e.message}") from None
    except QueryBusy as e:
        raise RuleRunError(f"rule {rule.id}: {e}") from None
    return result_of(rule, since_ms, until_ms, result, now_ms)


def timed_out(rule: Rule, seconds: float) -> str:
    """Why a run of `rule` stopped at the query timeout, and what to do."""
    return (
        f"rule {rule.id} ({rule.path}): its query ran longer than {seconds:g} s (the server's query_timeout_seconds)"
        " and was stopped; narrow it: a shorter lookback, or conditions that read fewer records"
    )


def run_parameters(
    rule: Rule, since_ms: int, until_ms: int, fresh_since_ms: int | None = None
) -> tuple[dict[str, datetime], TimeRange]:
    """The parameters of a run's SQL over [since_ms, until_ms), and the time it reads."""
    values = window_moments(rule.plan.reach_ms, since_ms, until_ms, fresh_since_ms)
    return {name: naive_utc(values[name]) for name in rule.plan.parameters}, TimeRange(values["read_since"], until_ms)


def result_of(rule: Rule, since_ms: int, until_ms: int, result: QueryResult, now_ms: int | None) -> RunResult:
    """A run's matches from the rows its SQL answered."""
    names = [name for name, _ in result.columns]
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for row in result.rows:
        record = dict(zip(names, row, strict=True))
        groups.setdefault(tuple(json_value(record[g]) for g in rule.plan.group_fields), []).append(record)
    now = int(time.time() * 1000) if now_ms is None else now_ms
    matches = joined_by_key(rule, [match_of(rule, key, rows, now) for key, rows in groups.items()])
    return RunResult(
        rule.id,
        since_ms,
        until_ms,
        matches,
        result.rows_scanned,
        result.bytes_scanned,
        result.files_scanned,
        result.elapsed_ms,
        result.truncated,
        rule.plan.sql,
    )


def match_of(rule: Rule, key: tuple, rows: list[dict[str, Any]], now_ms: int) -> Match:
    """The match of a group (`key`: its values) from its rows of a run's SQL (each with the count,
    first and last columns of plan.py); suppressions judged at `now_ms`."""
    group = dict(zip(rule.plan.group_fields, key, strict=True))
    count = int(rows[0][COUNT])
    evidence = [{k: json_value(v) for k, v in r.items() if not k.startswith(RESERVED_PREFIX)} for r in rows]
    # a SQL rule's title may show its query's columns (loading checks it names only those): the first row's
    title_template = (rule.options.alert_title or rule.title, shown_values(rule, {**evidence[0], **group}))
    dedup_key = render(rule.options.dedup.key or default_dedup_key(rule.plan.group_fields), rule, group, count)
    suppressed = next((s for s in rule.options.suppress if s.applies(group, now_ms)), None)
    return Match(
        rule.id,
        _title(title_template, count),
        dedup_key,
        group,
        count,
        epoch_ms(rows[0][FIRST]),
        epoch_ms(rows[0][LAST]),
        evidence,
        None if suppressed is None else (suppressed.reason or "suppressed") + _until(suppressed.until_ms()),
        None if rows[0].get(FRESH) is None else int(rows[0][FRESH]),
        epoch_ms(rows[0].get(FRESH_FIRST)),
        title_template,
    )


def joined_by_key(rule: Rule, matches: list[Match]) -> list[Match]:
    """The matches with one match for the groups that share a dedup key (and whether they are suppressed),
    in the order of their first: one alert, one trigger or update a run, where each group's match updated
    the alert the one before it made (a notification each, the title the last group's)."""
    by_key: dict[tuple[str, bool], list[Match]] = {}
    for match in matches:
        by_key.setdefault((match.dedup_key, match.suppressed is not None), []).append(match)
    return [_joined(rule, alike) if len(alike) > 1 else alike[0] for alike in by_key.values()]


def _joined(rule: Rule, alike: list[Match]) -> Match:
    """One match of groups sharing a dedup key: their records' count (a correlation's: the largest of its
    values, which are not records), time span and evidence (taken from each group in turn, up to the rule's
    `evidence`); the group values they all share; the first group's title values."""
    first = alike[0]
    counts = [m.count for m in alike]
    count = max(counts) if rule.kind == CORRELATION else sum(counts)
    fresh = None if any(m.fresh is None for m in alike) else sum(m.fresh or 0 for m in alike)
    shared = {name: value for name, value in first.group.items() if all(m.group.get(name) == value for m in alike)}
    turns = zip_longest(*(m.evidence for m in alike))
    evidence = [row for turn in turns for row in turn if row is not None][: rule.options.evidence]
    return replace(
        first,
        title=first.titled(count),
        group=shared,
        count=count,
        first_ms=_least(m.first_ms for m in alike),
        last_ms=max((m.last_ms for m in alike if m.last_ms is not None), default=None),
        evidence=evidence,
        fresh=fresh,
        fresh_first_ms=_least(m.fresh_first_ms for m in alike),
    )


def _least(values: Iterable[int | None]) -> int | None:
    return min((v for v in values if v is not None), default=None)


def _title(template: tuple[str, dict[str, Any]], count: int) -> str:
    text, values = template
    return shortened(fill(text, count, values), MAX_TITLE_CHARS)


def naive_utc(ms: int) -> datetime:
    """As DuckDB's TIMESTAMP columns compare: UTC without a zone."""
    return datetime.fromtimestamp(ms / 1000, UTC).replace(tzinfo=None)


def epoch_ms(value: datetime | None) -> int | None:
    return None if value is None else int(value.replace(tzinfo=UTC).timestamp() * 1000)


def iso(ms: int | None) -> str | None:
    return None if ms is None else json_value(naive_utc(ms))


def _until(ms: int | None) -> str:
    return "" if ms is None else f" (until {iso(ms)})"
