"""Backtesting a rule: the alerts it would have raised over the lake's history, day by day, so that it
is tuned before it pages anyone.

The windows are the scheduler's: each time the rule's schedule fires (t), a run evaluates
[t - delay - lookback, t - delay). A backtest of [since, until) takes every such window that ends
within (since, until] and applies to its matches what the engine applies: the threshold (in the
rule's SQL), suppressions (judged when the run would have happened, t) and dedup: a match whose key
has an alert opened less than the dedup window before (by window end) updates that alert; past it, a
match whose records are no later than that alert's, read again by a lookback longer than the schedule,
opens none (alerts/apply.py: no record counts twice); any other match opens an alert. The alerts are
counted by the day their window ends (UTC).

Three ways to get the same matches:
- grouped, for a plain Sigma rule (its query keeps or drops each event on its own): ONE query per
  day of windows joins the matching events with that day's windows and counts them per window and
  group (an event in several overlapping windows counts in each), instead of a query per window;
- windows with records, for a Sigma correlation: a correlation matches at one of its events, in the
  window ([$since, $until)), so a window without an event of the correlation (a record one of its
  rules matches) cannot match. ONE query per day finds the day's windows with events, and `run_rule`
  runs over those only (a 5-minute rule over a day of busy logs holding one burst: a query per day
  and a few windows instead of 288);
- window by window, for everything else (SQL rules, anomaly rules, which may match where nothing
  was logged): `run_rule` over each window, exactly as the scheduler.
Each is tested to give the same answer as window by window on crafted data.

Memory and output stay bounded: a day's matches at a time, at most `examples` alerts per day with
a few of their evidence rows, and dedup state only for keys whose dedup window is still open. So does
the period, to the lake's retention (older records are deleted), and, given a Stop, the time: a
backtest stops at the end of its budget or when told to (its caller went away), mid-query too.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from loglake.lake.query import QueryEngine, TimeRange
from loglake.lake.query_answers import QueryBusy, QueryResult, json_value
from loglake.lake.sql_guard import QueryError
from loglake.lake.stop import Stop
from loglake.model import retention_start_ms
from loglake.rules.backtest_limits import EXAMPLES
from loglake.rules.model import CORRELATION, Rule
from loglake.rules.plan import COUNT, FIRST, LAST, finish, window_views
from loglake.rules.run import (
    Match,
    RuleRunError,
    RuleTimedOut,
    epoch_ms,
    iso,
    joined_by_key,
    match_of,
    naive_utc,
    run_rule,
    timed_out,
)
from loglake.rules.sources import quote_name
from loglake.times import DAY_MS

EXAMPLE_ROWS = 3  # evidence rows kept per example alert
GROUPED, WITH_RECORDS, WINDOWS = "grouped", "windows with records", "window by window"
_WINDOW_SINCE, _WINDOW_UNTIL = "_loglake_window_since", "_loglake_window_until"


@dataclass(frozen=True)
class Example:
    """An alert the rule would have raised: the run's window and the match that opened it."""

    since_ms: int
    until_ms: int
    match: Match

    @property
    def last_ms(self) -> int:
        """The match's last record, or its window's end when its rows have no time (as alerts/apply.py)."""
        return self.until_ms if self.match.last_ms is None else self.match.last_ms

    def to_dict(self) -> dict[str, Any]:
        found = self.match.to_dict()
        found["evidence"] = found["evidence"][:EXAMPLE_ROWS]
        return {"window": {"since": iso(self.since_ms), "until": iso(self.until_ms)}, **found}


@dataclass
class Day:
    """What the runs whose windows end on one UTC day would have done."""

    day: str  # YYYY-MM-DD
    windows: int = 0
    matches: int = 0  # groups that met the condition, summed over the windows
    alerts: int = 0  # new alerts (the other matches updated an open alert of their dedup key)
    suppressed: int = 0  # matches a suppression held back
    examples: list[Example] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "day": self.day,
            "windows": self.windows,
            "matches": self.matches,
            "alerts": self.alerts,
            "suppressed": self.suppressed,
            "examples": [e.to_dict() for e in self.examples],
        }


@dataclass
class Backtest:
    rule_id: str
    since_ms: int
    until_ms: int
    method: str  # GROUPED, WITH_RECORDS or WINDOWS
    days: list[Day]
    queries: int = 0
    rows_scanned: int = 0
    bytes_scanned: int = 0
    truncated: bool = False  # a query returned more rows than the engine's cap: some matches are missing
    elapsed_ms: float = 0.0

    @property
    def windows(self) -> int:
        return sum(d.windows for d in self.days)

    @property
    def alerts(self) -> int:
        return sum(d.alerts for d in self.days)

    @property
    def matches(self) -> int:
        return sum(d.matches for d in self.days)

    @property
    def suppressed(self) -> int:
        return sum(d.suppressed for d in self.days)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule_id": self.rule_id,
            "since": iso(self.since_ms),
            "until": iso(self.until_ms),
            "method": self.method,
            "windows": self.windows,
            "matches": self.matches,
            "alerts": self.alerts,
            "suppressed": self.suppressed,
            "queries": self.queries,
            "rows_scanned": self.rows_scanned,
            "bytes_scanned": self.bytes_scanned,
            "truncated": self.truncated,
            "elapsed_ms": round(self.elapsed_ms, 1),
            "days": [d.to_dict() for d in self.days],
        }


Progress = Callable[[Day, int, int], None]  # a day done, how many days are done, how many there are


def windows(rule: Rule, since_ms: int, until_ms: int) -> Iterator[tuple[int, int]]:
    """The windows the scheduler evaluates that end within (since_ms, until_ms], in time order."""
    fires = rule.schedule.next_after(since_ms + rule.delay_ms)
    while fires - rule.delay_ms <= until_ms:
        end = fires - rule.delay_ms
        yield end - rule.lookback_ms, end
        fires = rule.schedule.next_after(fires)


class PeriodError(ValueError):
    """A period a backtest refuses: its start is older than the lake keeps records."""


def refuse_past_retention(since_ms: int, now_ms: int, retention_days: int) -> None:
    """PeriodError when [since_ms, ...) starts before the oldest day the lake's retention keeps: its
    records are deleted, so a backtest could only report nothing there (and a longer run)."""
    kept_from = retention_start_ms(now_ms, retention_days)
    if since_ms < kept_from:
        raise PeriodError(
            f"since {iso(since_ms)} is older than the {retention_days} days the lake keeps (retention_days):"
            f" backtest at most {retention_days}d, from {iso(kept_from)} on"
        )


def method_of(rule: Rule) -> str:
    """GROUPED where a window's matches are the sum of its events' (a plain Sigma rule), WITH_RECORDS
    where a window without records cannot match (a correlation), else WINDOWS."""
    return {"sigma": GROUPED, CORRELATION: WITH_RECORDS}.get(rule.kind, WINDOWS)


def backtest(
    rule: Rule,
    engine: QueryEngine,
    since_ms: int,
    until_ms: int,
    *,
    examples: int = EXAMPLES,
    method: str | None = None,
    progress: Progress | None = None,
    stop: Stop | None = None,
    failed_until_ms: int | None = None,
) -> Backtest:
    """What `rule` would have raised over [since_ms, until_ms); RuleRunError if a query fails; Stopped
    or OutOfTime (lake/stop.py) when `stop` ends it first. `failed_until_ms`: the end of the window the
    rule's latest run on schedule failed over (state.failed_until), which runs first (_fails_first)."""
    if until_ms <= since_ms:
        raise ValueError(f"the period must end after it starts ({since_ms} >= {until_ms})")
    started = time.perf_counter()
    chosen = method or method_of(rule)
    if chosen != WINDOWS and chosen != method_of(rule):
        raise ValueError(f"a {rule.kind} rule is backtested {method_of(rule)}, or window by window")
    report = Backtest(rule.id, since_ms, until_ms, chosen, [])
    if failed_until_ms is not None:
        _fails_first(rule, engine, since_ms, until_ms, failed_until_ms, report, stop)
    alerts = _Alerts(rule.dedup_window_ms, rule.lookback_ms)
    by_day = _by_day(windows(rule, since_ms, until_ms))
    total = _days_between(since_ms, until_ms)
    for day, day_windows in by_day:
        tally = Day(day, len(day_windows))
        if chosen == GROUPED:
            found = _grouped(rule, engine, day_windows, report, stop)
        elif chosen == WITH_RECORDS:
            found = _one_by_one(rule, engine, _with_events(rule, engine, day_windows, report, stop), report, stop)
        else:
            found = _one_by_one(rule, engine, day_windows, report, stop)
        for since, until, matches in found:
            for match in matches:
                _count(tally, alerts, Example(since, until, match), examples)
        if chosen == GROUPED:
            tally.examples = [_with_evidence(rule, engine, e, report, stop) for e in tally.examples]
        report.days.append(tally)
        alerts.forget_before(day_windows[-1][1])
        if progress is not None:
            progress(tally, len(report.days), total)
    report.elapsed_ms = (time.perf_counter() - started) * 1000
    return report


@dataclass
class _Alert:
    opened_ms: int  # the end of the window that opened it
    last_ms: int  # its last record
    until_ms: int  # the end of the last window that matched its key


class _Alerts:
    """The dedup keys whose last alert a later window may still join (its dedup window is open) or read
    the records of again (its windows end less than a lookback before)."""

    def __init__(self, window_ms: int, lookback_ms: int) -> None:
        self.window_ms = window_ms
        self.lookback_ms = lookback_ms
        self.opened: dict[str, _Alert] = {}

    def opens(self, key: str, since_ms: int, until_ms: int, last_ms: int) -> bool:
        """Whether a match of `key` in the window [since_ms, until_ms) whose last record is at `last_ms`
        opens an alert (else it updates one, or holds only records an alert took in)."""
        alert = self.opened.get(key)
        if alert is not None and until_ms < alert.opened_ms + self.window_ms:
            alert.last_ms, alert.until_ms = max(alert.last_ms, last_ms), until_ms
            return False
        if alert is not None and since_ms < alert.until_ms and last_ms <= alert.last_ms:
            return False
        self.opened[key] = _Alert(until_ms, last_ms, until_ms)
        return True

    def forget_before(self, at_ms: int) -> None:
        """Drop the keys whose alerts no window ending at `at_ms` or later can update or read again."""
        self.opened = {
            k: a
            for k, a in self.opened.items()
            if at_ms < a.opened_ms + self.window_ms or at_ms - self.lookback_ms < a.until_ms
        }


def _count(tally: Day, alerts: _Alerts, found: Example, examples: int) -> None:
    tally.matches += 1
    if found.match.suppressed:
        tally.suppressed += 1
    elif alerts.opens(found.match.dedup_key, found.since_ms, found.until_ms, found.last_ms):
        tally.alerts += 1
        if len(tally.examples) < examples:
            tally.examples.append(found)


def _one_by_one(
    rule: Rule, engine: QueryEngine, day_windows: list[tuple[int, int]], report: Backtest, stop: Stop | None
) -> Iterator[tuple[int, int, list[Match]]]:
    for since, until in day_windows:
        result = run_rule(rule, engine, since, until, now_ms=until + rule.delay_ms, stop=stop)
        _account(report, result.rows_scanned, result.bytes_scanned, result.truncated)
        yield since, until, sorted(result.matches, key=_group_order)


def _fails_first(
    rule: Rule, engine: QueryEngine, since_ms: int, until_ms: int, failed_ms: int, report: Backtest, stop: Stop | None
) -> None:
    """The period's window that ends at `failed_ms`, if it has one, run before the others: a rule that fails there
    (RuleRunError) would fail the backtest when it got there, and says why at once, not after the windows before
    it (1,440 a day of a 1-minute rule, which a backtest over HTTP ran out of time for: a trial's rule failing on
    schedule over recent records got a timeout instead of its error)."""
    fires = failed_ms + rule.delay_ms
    if since_ms < failed_ms <= until_ms and rule.schedule.next_after(fires - 1) == fires:
        result = run_rule(rule, engine, failed_ms - rule.lookback_ms, failed_ms, now_ms=fires, stop=stop)
        _account(report, result.rows_scanned, result.bytes_scanned, result.truncated)


def _with_events(
    rule: Rule, engine: QueryEngine, day_windows: list[tuple[int, int]], report: Backtest, stop: Stop | None
) -> list[tuple[int, int]]:
    """The day's windows that hold an event of the correlation (a record one of its rules matches), by
    one query (see the module's notes): a lake that logs all the time has records in every window."""
    from loglake.rules.correlation import with_events  # (pySigma's: imported by servers that hold a Sigma rule only)

    sql = (
        f"{with_events(rule.plan.sql)},\n"
        f"_loglake_windows AS (SELECT unnest($window_since) AS {_WINDOW_SINCE},"
        f" unnest($window_until) AS {_WINDOW_UNTIL})\n"
        f"SELECT DISTINCT w.{_WINDOW_UNTIL} FROM _loglake_events r JOIN _loglake_windows w\n"
        f'  ON r."timestamp" >= w.{_WINDOW_SINCE} AND r."timestamp" < w.{_WINDOW_UNTIL}'
    )
    sql = finish(sql, rule.plan.query, 0, rule.plan.group_fields).executed
    result = _over_the_day(rule, engine, sql, day_windows, len(day_windows), report, stop)
    busy = {epoch_ms(until) for (until,) in result.rows}
    return [window for window in day_windows if window[1] in busy]


def _grouped(
    rule: Rule, engine: QueryEngine, day_windows: list[tuple[int, int]], report: Backtest, stop: Stop | None
) -> Iterator[tuple[int, int, list[Match]]]:
    """One query for the day's windows: the events of each window, counted per group."""
    result = _over_the_day(rule, engine, grouped_sql(rule), day_windows, engine.limits.max_rows, report, stop)
    names = [name for name, _ in result.columns]
    by_window: dict[int, list[Match]] = {}
    for row in result.rows:
        record = dict(zip(names, row, strict=True))
        until = epoch_ms(record[_WINDOW_UNTIL])
        key = tuple(json_value(record[g]) for g in rule.plan.group_fields)
        by_window.setdefault(until, []).append(match_of(rule, key, [record], until + rule.delay_ms))
    for since, until in day_windows:
        yield since, until, joined_by_key(rule, sorted(by_window.get(until, []), key=_group_order))


def _over_the_day(
    rule: Rule,
    engine: QueryEngine,
    sql: str,
    day_windows: list[tuple[int, int]],
    cap: int,
    report: Backtest,
    stop: Stop | None,
) -> QueryResult:
    """A query over all the day's windows, given as the lists $window_since and $window_until (the
    tables' window views read from the first one's start, $read_since, to the last one's end)."""
    params = {
        "read_since": naive_utc(day_windows[0][0]),
        "until": naive_utc(day_windows[-1][1]),
        "window_since": [naive_utc(s) for s, _ in day_windows],
        "window_until": [naive_utc(u) for _, u in day_windows],
    }
    period = TimeRange(day_windows[0][0], day_windows[-1][1])
    try:
        result = engine.run_saved(sql, params, period, cap, rule.plan.tables, stop)
    except (QueryError, QueryBusy) as e:
        if isinstance(e, QueryError) and e.code == "query_timeout":  # (its message names /query's timeout options)
            raise RuleTimedOut(timed_out(rule, engine.limits.timeout_seconds)) from None
        raise RuleRunError(f"rule {rule.id} ({rule.path}): {getattr(e, 'message', e)}") from None
    _account(report, result.rows_scanned, result.bytes_scanned, result.truncated)
    return result


def grouped_sql(rule: Rule) -> str:
    """A plain Sigma rule's matches for many windows at once: per window (given as the lists
    $window_since and $window_until) and group, the count and time span of its events, where the
    count meets the threshold. The window views read from $read_since (the first window's start)."""
    groups = [quote_name(g) for g in rule.plan.group_fields]
    select = ", ".join([f"w.{_WINDOW_SINCE}", f"w.{_WINDOW_UNTIL}", *(f"r.{g}" for g in groups)])
    sql = (
        f"WITH {window_views(rule.plan.tables)},\n_loglake_rows AS (\n{rule.plan.query}\n),\n"
        f"_loglake_windows AS (SELECT unnest($window_since) AS {_WINDOW_SINCE},"
        f" unnest($window_until) AS {_WINDOW_UNTIL})\n"
        f'SELECT {select}, count(*) AS {COUNT}, min(r."timestamp") AS {FIRST}, max(r."timestamp") AS {LAST}\n'
        f"FROM _loglake_rows r JOIN _loglake_windows w\n"
        f'  ON r."timestamp" >= w.{_WINDOW_SINCE} AND r."timestamp" < w.{_WINDOW_UNTIL}\n'
        f"GROUP BY {select}\nHAVING count(*) >= {rule.options.threshold}\nORDER BY w.{_WINDOW_UNTIL}"
    )
    return finish(sql, rule.plan.query, 0, rule.plan.group_fields).executed


def _with_evidence(rule: Rule, engine: QueryEngine, example: Example, report: Backtest, stop: Stop | None) -> Example:
    """An example found by the grouped query, with its evidence from a run over its window."""
    now_ms = example.until_ms + rule.delay_ms
    result = run_rule(rule, engine, example.since_ms, example.until_ms, now_ms=now_ms, stop=stop)
    _account(report, result.rows_scanned, result.bytes_scanned, result.truncated)
    same = next((m for m in result.matches if m.dedup_key == example.match.dedup_key), example.match)
    return Example(example.since_ms, example.until_ms, same)


def _account(report: Backtest, rows: int, bytes_read: int, truncated: bool) -> None:
    report.queries += 1
    report.rows_scanned += rows
    report.bytes_scanned += bytes_read
    report.truncated |= truncated


def _group_order(match: Match) -> str:
    return match.dedup_key


def _by_day(found: Iterator[tuple[int, int]]) -> Iterator[tuple[str, list[tuple[int, int]]]]:
    """Windows in runs of the UTC day their end falls in (a window ending at midnight: the day before)."""
    day, batch = None, []
    for window in found:
        this = iso(window[1] - 1)[:10]
        if batch and this != day:
            yield day, batch
            batch = []
        day = this
        batch.append(window)
    if batch:
        yield day, batch


def _days_between(since_ms: int, until_ms: int) -> int:
    return (until_ms - 1) // DAY_MS - since_ms // DAY_MS + 1
