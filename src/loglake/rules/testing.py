"""A rule's inline tests, run for real: the sample events go into a throwaway loglake (a SQLite hot
store and a lake folder, queried by the same DuckDB engine over both), and the rule runs over them
exactly as it runs over the data.

All tests share one throwaway loglake: each gets its own stretch of time (starting at a midnight,
UTC, after the previous test's window, and after what a correlation reads before its window), so no
test sees another's events. An event's `at` (a duration) places it after its window's start, or with
a minus before it (what a correlation reads before its window); the n-th event without one comes n
seconds after the start; `repeat: n` stores n copies of an event at its time. Application log
events are records as `POST /logs` takes them (their `timestamp` is the window's, not theirs to
give); Amplify access events are rows of `amplify_access` by column (`cs_uri_stem`) or CloudFront
name (`cs-uri-stem`), `app` defaulting to `app`.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pyarrow as pa

from loglake.amplify.lake_rows import store_rows
from loglake.amplify.parse import Malformed, ParsedLog
from loglake.amplify.run_reports import AppReport
from loglake.lake.objectstore import LocalObjectStore
from loglake.lake.query import QueryEngine
from loglake.lake.query_limits import QueryLimits
from loglake.lake.stop import Stop
from loglake.lake.tables import AMPLIFY_ACCESS_TABLE, APP_LOGS_TABLE
from loglake.model import InvalidRecords, Limits, validate_batch
from loglake.rules.model import Rule, RuleTest
from loglake.rules.plan import finish, rows_plan
from loglake.rules.run import Match, RuleRunError, run_rule
from loglake.rules.sources import BY_TABLE
from loglake.store.sqlite import SQLiteHotStore
from loglake.times import DAY_MS, TimeFormatError, format_duration, parse_duration, parse_iso8601

FIRST_DAY_MS = parse_iso8601("2026-01-05T00:00:00Z")  # a Monday: tests of weekdays and hours read plainly
MAX_REPEAT = 100_000
_LIMITS = QueryLimits(concurrency=1, threads=1, memory_mb=256, spill_mb=256)


@dataclass(frozen=True)
class Outcome:
    rule: Rule
    test: RuleTest
    failures: tuple[str, ...]  # what differed; none: the test passed

    @property
    def passed(self) -> bool:
        return not self.failures


@dataclass(frozen=True)
class Placed:
    """A test's event where it goes: its number in the test, its time, its fields, and its test's
    number in the rule."""

    index: int
    at_ms: int
    fields: dict[str, Any]
    test: int = 0

    @property
    def name(self) -> str:
        """How a problem names it: which test too, as a rule file's field (`tests[1].events[0]`)."""
        return _event_name(self.test, self.index)


class BadEvent(ValueError):
    """A test's event that cannot be stored; the message names it."""


class ScratchLake:
    """A throwaway loglake in a folder: a hot store, a lake folder and the query engine over both."""

    def __init__(self, folder: Path) -> None:
        self.store = SQLiteHotStore(folder / "hot.db", durability="process")
        self.objects = LocalObjectStore(folder / "lake")
        self.engine = QueryEngine(self.store, self.objects, folder / "tmp" / "duckdb", _LIMITS)

    def add(self, table: str, events: list[Placed], now_ms: int) -> None:
        """Store a test's events in a table; BadEvent naming one that cannot be."""
        if table == APP_LOGS_TABLE.name:
            self._add_records(events, now_ms)
        else:
            self._add_access_rows(events, now_ms)

    def _add_records(self, events: list[Placed], now_ms: int) -> None:
        try:
            records = validate_batch([{**e.fields, "timestamp": e.at_ms} for e in events], Limits(), now_ms)
        except InvalidRecords as e:
            problems = [f"{events[p.index].name}.{p.field}: {p.reason}" for p in e.problems]
            raise BadEvent("; ".join(dict.fromkeys(problems))) from None
        self.store.submit(records).result()

    def _add_access_rows(self, events: list[Placed], now_ms: int) -> None:
        source = BY_TABLE[AMPLIFY_ACCESS_TABLE.name]
        by_app: dict[str, list[dict[str, Any]]] = {}
        for event in events:
            row: dict[str, Any] = {"timestamp": event.at_ms, "x_edge_request_id": uuid.uuid4().hex}
            app = "app"
            for name, value in event.fields.items():
                column = source.column_of(name)
                if name == "app":
                    app = str(value)
                elif column is None or column in ("date", "timestamp"):
                    raise BadEvent(f"{event.name}.{name}: not a column of amplify_access (`at` places one)")
                else:
                    row[column] = value
            by_app.setdefault(app, []).append(row)
        for app, rows in by_app.items():
            try:
                table = pa.Table.from_pylist(rows, schema=AMPLIFY_ACCESS_TABLE.schema)
            except (pa.ArrowException, TypeError, ValueError) as e:
                raise BadEvent(
                    f"tests[{events[0].test}].events: a value does not fit its amplify_access column: {e}"
                ) from None
            store_rows(
                self.store, self.objects, app, [ParsedLog(table, len(rows), Malformed())], AppReport(app), now_ms
            )

    def close(self) -> None:
        self.engine.close()
        self.store.close()


@contextmanager
def scratch_lake() -> Iterator[ScratchLake]:
    with tempfile.TemporaryDirectory(prefix="loglake-rules-test-") as folder:
        lake = ScratchLake(Path(folder))
        try:
            yield lake
        finally:
            lake.close()


def run_tests(rules: list[Rule], stop: Stop | None = None) -> list[Outcome]:
    """Every test of every rule, each over its own stretch of time in one throwaway loglake; Stopped
    when told to stop (`stop`) first."""
    outcomes = []
    start = FIRST_DAY_MS
    with scratch_lake() as lake:
        for rule in rules:
            for number, test in enumerate(rule.tests):
                window_start = -(-(start + rule.plan.reach_ms) // DAY_MS) * DAY_MS
                failures = _run_one(lake, rule, test, number, window_start, stop)
                outcomes.append(Outcome(rule, test, tuple(failures)))
                start = window_start + rule.lookback_ms
    return outcomes


def _run_one(lake: ScratchLake, rule: Rule, test: RuleTest, number: int, since_ms: int, stop: Stop | None) -> list[str]:
    until_ms = since_ms + rule.lookback_ms
    try:
        for table, events in _placed(rule, test, number, since_ms).items():
            lake.add(table, events, until_ms)
        result = run_rule(rule, lake.engine, since_ms, until_ms, now_ms=until_ms, stop=stop)
        found = _differences(test, result.matches)
        if test.match and not result.matches and rule.options.threshold > 1:
            found = [f"{found[0]}: {_short_of_threshold(lake, rule, since_ms, until_ms, stop)}"]
    except BadEvent as e:
        return [str(e)]
    except RuleRunError as e:
        return [f"the rule failed to run: {e}"]
    return found


def _short_of_threshold(lake: ScratchLake, rule: Rule, since_ms: int, until_ms: int, stop: Stop | None) -> str:
    """How far the window's groups fell short of the rule's threshold: the rule run again with a threshold
    of 1 (and one row of evidence per group), each group with its count of matching rows."""
    sql = rows_plan(rule.plan.query, rule.plan.tables, rule.plan.group_fields, 1, 1, timed=False)
    plan = finish(sql, rule.plan.query, rule.plan.reach_ms, rule.plan.group_fields)
    groups = run_rule(replace(rule, plan=plan), lake.engine, since_ms, until_ms, now_ms=until_ms, stop=stop).matches
    most = max((g.count for g in groups), default=0)
    per = f" per {', '.join(rule.plan.group_fields)}" if rule.plan.group_fields else ""
    at_most = "at most " if per and len(groups) > 1 else ""
    return f"{at_most}{most} matching row(s){per}, below the rule's threshold of {rule.options.threshold}"


def _placed(rule: Rule, test: RuleTest, number: int, since_ms: int) -> dict[str, list[Placed]]:
    """The events of the rule's test `number` by table, each with its time (and `repeat` times if it
    says so)."""
    tables = [t.name for t in rule.plan.tables]
    placed: dict[str, list[Placed]] = {}
    for index, event in enumerate(test.events):
        name = _event_name(number, index)
        fields = dict(event)
        if "timestamp" in fields:
            raise BadEvent(f"{name}.timestamp: place an event with `at` (e.g. at: 90s after the window's start)")
        try:
            at = _offset(fields.pop("at")) if "at" in fields else index * 1000
        except TimeFormatError as e:
            raise BadEvent(f"{name}.at: {e}") from None
        if not -rule.plan.reach_ms <= at < rule.lookback_ms:
            before = f", or up to {format_duration(rule.plan.reach_ms)} before it" if rule.plan.reach_ms else ""
            raise BadEvent(
                f"{name}.at: {event.get('at')} is outside what a run reads: the window's"
                f" {format_duration(rule.lookback_ms)}{before}"
            )
        table = str(fields.pop("table", tables[0]))
        if table not in tables:
            raise BadEvent(f"{name}.table: the rule reads {', '.join(tables)}, not {table!r}")
        copies = fields.pop("repeat", 1)
        if type(copies) is not int or not 1 <= copies <= MAX_REPEAT:
            raise BadEvent(f"{name}.repeat: {copies!r} is not a number of copies from 1 to {MAX_REPEAT:,}")
        placed.setdefault(table, []).extend([Placed(index, since_ms + at, fields, number)] * copies)
    return placed


def _event_name(test: int, index: int) -> str:
    return f"tests[{test}].events[{index}]"


def _offset(value: Any) -> int:
    """`at` in ms: a duration after the window's start, or before it with a minus (`-2m`)."""
    text = str(value).strip()
    return -parse_duration(text[1:]) if text.startswith("-") else parse_duration(text)


def _differences(test: RuleTest, matches: list[Match]) -> list[str]:
    if not test.match:
        return [f"expected no match, got {_described(matches)}"] if matches else []
    if not matches:
        return ["expected a match, got none"]
    found = []
    if test.matches is not None and len(matches) != test.matches:
        found.append(f"expected {test.matches} match(es), got {_described(matches)}")
    wanted = {
        "count": test.count,
        "title": test.title,
        "dedup_key": test.dedup_key,
        "group": test.group,
    }
    wanted = {k: v for k, v in wanted.items() if v is not None}
    if wanted and not any(all(_value_of(m, k) == v for k, v in wanted.items()) for m in matches):
        expected = ", ".join(f"{k} {v!r}" for k, v in wanted.items())
        got = "; ".join(", ".join(f"{k} {_value_of(m, k)!r}" for k in wanted) for m in matches)
        found.append(f"expected a match with {expected}; got {got}")
    return found


def _value_of(match: Match, name: str) -> Any:
    return getattr(match, name)


def _described(matches: list[Match]) -> str:
    shown = [f"{m.title!r} (dedup key {m.dedup_key!r}, count {m.count}, first event {_first(m)})" for m in matches[:3]]
    more = f" and {len(matches) - 3} more" if len(matches) > 3 else ""
    return f"{len(matches)}: " + "; ".join(shown) + more


def _first(match: Match) -> str:
    if not match.evidence:
        return "none"
    row = match.evidence[0]
    keep = {k: v for k, v in row.items() if v is not None and k not in ("log_id", "date", "x_edge_request_id")}
    return str(keep)[:200]
