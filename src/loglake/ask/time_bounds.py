"""Whether a query's reads of the lake's tables are bounded in time, and the time range its predicates
name: read from the SQL itself (sqlglot), whatever data there is or the scans prune.

Each read of a lake table (all are partitioned by day) is bounded when the WHERE of its SELECT ANDs a
comparison of the table's time (`timestamp`, or the `date` partition) with something else. The range is
what the literals of those comparisons say (a `date` is the whole UTC day), or, given the moment the
query is asked, what `now()` (`current_timestamp`, `current_date`) plus or minus an INTERVAL says then
(`relative`: the query computes it afresh at each run); a read bounded by something else is bounded with
no range known.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime

import sqlglot
from sqlglot import exp

from loglake.ask.guard import TIME_COLUMNS
from loglake.lake.tables import TABLES

_DAY_MS = 86_400_000
_COMPARISONS = (exp.EQ, exp.GT, exp.GTE, exp.LT, exp.LTE)
_FLIPPED = {exp.EQ: exp.EQ, exp.GT: exp.LT, exp.GTE: exp.LTE, exp.LT: exp.GT, exp.LTE: exp.GTE}


@dataclass(frozen=True)
class TimeBounds:
    bounded: bool  # every read of a lake table filters on its time
    since_ms: int | None = None  # the earliest time a read may return (None: not bounded by a literal)
    until_ms: int | None = None  # the end (exclusive) of the latest
    relative: bool = False  # a bound is computed from now(): as of the moment asked
    # `timestamp` compared with a time computed from now(), which DuckDB pushes into no scan (it prunes nothing)
    now_on_timestamp: bool = False


def time_bounds(tree: exp.Expression, now_ms: int | None = None) -> TimeBounds:
    """The bounds of a parsed query (see the module doc), `now()` read as `now_ms` (None: not read); a query
    reading no lake table is bounded."""
    reads = list(_reads(tree, now_ms))
    if not reads:
        return TimeBounds(True)
    sinces = [since for _, since, _ in reads]
    untils = [until for _, _, until in reads]
    return TimeBounds(
        all(filtered for filtered, _, _ in reads),
        None if None in sinces else _a_datetime(min(s for s in sinces if s is not None)),
        None if None in untils else _a_datetime(max(u for u in untils if u is not None)),
        now_ms is not None and any(_from_now(n, now_ms) is not None for n in _compared_with(tree, TIME_COLUMNS)),
        now_ms is not None and any(_from_now(n, now_ms) is not None for n in _compared_with(tree, {"timestamp"})),
    )


def _a_datetime(ms: int) -> int:
    """A bound within the times a datetime holds (years 1 to 9999), which the answer writes: `date <= '9999-12-31'`
    ends in the year 10000, `now() - INTERVAL 99999999 DAY` starts before the year 1 (they were a 500 of /ask)."""
    return max(_FIRST_MS, min(ms, _LAST_MS))


_FIRST_MS = int(datetime(1, 1, 1, tzinfo=UTC).timestamp() * 1000)
_LAST_MS = int(datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC).timestamp() * 1000)


def time_bounds_of(sql: str, dialect: str, now_ms: int | None = None) -> TimeBounds:
    """The bounds of `sql`; SQL sqlglot cannot parse (DuckDB's own syntax) is taken as unbounded: warned about."""
    try:
        return time_bounds(sqlglot.parse_one(sql, read=dialect), now_ms)
    except sqlglot.errors.SqlglotError:
        return TimeBounds(False)


def _reads(tree: exp.Expression, now_ms: int | None) -> Iterator[tuple[bool, int | None, int | None]]:
    """(filtered on time, since, until) of each read of a lake table."""
    ctes = {c.alias_or_name.lower() for c in tree.find_all(exp.CTE)}
    for node in tree.find_all(exp.Table):
        name = node.name.lower()
        if name not in TABLES or name in ctes or node.args.get("db"):
            continue
        select = node.find_ancestor(exp.Select)
        where = select.args.get("where") if select is not None else None
        qualifiers = {"", node.alias_or_name.lower()}
        filtered, since, until = False, None, None
        for part in conjuncts(where.this) if where is not None else []:
            for low, high in _ranges(part, qualifiers, now_ms):
                filtered = True
                since = low if since is None or (low is not None and low > since) else since
                until = high if until is None or (high is not None and high < until) else until
        yield filtered, since, until


def conjuncts(node: exp.Expression) -> list[exp.Expression]:
    """The parts a condition ANDs together, parentheses and nested ANDs flattened."""
    while isinstance(node, exp.Paren):
        node = node.this
    if isinstance(node, exp.And):
        return [*conjuncts(node.left), *conjuncts(node.right)]
    return [node]


def _ranges(part: exp.Expression, qualifiers: set[str], now_ms: int | None) -> list[tuple[int | None, int | None]]:
    """The (since, until) a conjunct on the read's time holds its rows to (None where no literal says)."""
    if isinstance(part, _COMPARISONS):
        for column, other, kind in ((part.left, part.right, type(part)), (part.right, part.left, _FLIPPED[type(part)])):
            if (name := _time_column(column, qualifiers)) is not None:
                return [_compared(kind, _span(name, other, now_ms))]
    elif isinstance(part, exp.Between) and (name := _time_column(part.this, qualifiers)) is not None:
        low, high = _span(name, part.args["low"], now_ms), _span(name, part.args["high"], now_ms)
        return [(low[0] if low else None, high[1] if high else None)]
    elif isinstance(part, exp.In) and (name := _time_column(part.this, qualifiers)) is not None:
        spans = [_span(name, v, now_ms) for v in part.expressions]
        if spans and all(spans):
            return [(min(s[0] for s in spans if s), max(s[1] for s in spans if s))]
        return [(None, None)]
    return []


def _compared(kind: type, span: tuple[int, int] | None) -> tuple[int | None, int | None]:
    """What `time <kind> value` (a value covering [start, end)) bounds."""
    if span is None:
        return None, None
    start, end = span
    return {
        exp.EQ: (start, end),
        exp.GT: (end, None),
        exp.GTE: (start, None),
        exp.LT: (None, start),
        exp.LTE: (None, end),
    }[kind]


def _time_column(node: exp.Expression, qualifiers: set[str]) -> str | None:
    while isinstance(node, exp.Cast | exp.Paren):  # CAST(date AS DATE) is still the date
        node = node.this
    if isinstance(node, exp.Column) and node.name in TIME_COLUMNS and node.table.lower() in qualifiers:
        return node.name
    return None


def _span(column: str, node: exp.Expression, now_ms: int | None) -> tuple[int, int] | None:
    """The [start, end) in ms a time or day covers (a timestamp: its millisecond; a date: its day): a literal,
    or one computed from now()."""
    while isinstance(node, exp.Cast | exp.Paren):  # TIMESTAMP '...', DATE '...'
        node = node.this
    moment_ms = _from_now(node, now_ms) if now_ms is not None else None
    if moment_ms is not None:
        if column == "date":
            start = moment_ms - moment_ms % _DAY_MS
            return start, start + _DAY_MS
        return moment_ms, moment_ms + 1
    if not isinstance(node, exp.Literal) or not node.is_string:
        return None
    text = node.this.strip()
    try:
        if column == "date" or len(text) == 10:
            day = date.fromisoformat(text)
            start = int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)
            return (start, start + _DAY_MS) if column == "date" else (start, start + 1)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    start = int(moment.timestamp() * 1000)
    return start, start + 1


def _compared_with(tree: exp.Expression, columns: Collection[str]) -> Iterator[exp.Expression]:
    """What the query compares these columns with, anywhere."""
    for comparison in tree.find_all(*_COMPARISONS, exp.Between):
        if isinstance(comparison, exp.Between):
            if isinstance(comparison.this, exp.Column) and comparison.this.name in columns:
                yield from (comparison.args["low"], comparison.args["high"])
            continue
        for column, other in ((comparison.left, comparison.right), (comparison.right, comparison.left)):
            if isinstance(column, exp.Column) and column.name in columns:
                yield other


def _from_now(node: exp.Expression, now_ms: int) -> int | None:
    """The moment (ms) `now()`, `current_timestamp` or `current_date` (taken as the UTC day: DuckDB's is its time
    zone's, the same on a server in UTC), plus or minus INTERVALs (or days, on a date), is at `now_ms`; None for
    anything else."""
    while isinstance(node, exp.Cast | exp.Paren):
        node = node.this
    if isinstance(node, exp.CurrentTimestamp) or (isinstance(node, exp.Anonymous) and node.name.lower() == "now"):
        return now_ms
    if isinstance(node, exp.CurrentDate):
        return now_ms - now_ms % _DAY_MS
    if isinstance(node, exp.Add | exp.Sub):
        start = _from_now(node.this, now_ms)
        length = _interval_ms(node.expression)
        if start is None or length is None:
            return None
        return start + length if isinstance(node, exp.Add) else start - length
    return None


def _interval_ms(node: exp.Expression) -> int | None:
    """An INTERVAL's length (`INTERVAL 1 HOUR`, `INTERVAL '90 minutes'`), or a whole number of days; None for
    months and years (of no fixed length) or anything else."""
    if isinstance(node, exp.Literal) and not node.is_string and node.this.isdigit():
        return int(node.this) * _DAY_MS
    if not isinstance(node, exp.Interval):
        return None
    unit = node.args.get("unit")
    text = f"{node.this.name if node.this is not None else ''} {unit.name if unit is not None else ''}"
    found = _INTERVAL.fullmatch(text.strip().lower())
    if found is None:
        return None
    return int(found.group(1)) * _UNIT_MS[found.group(2)]


_UNIT_MS = {"millisecond": 1, "second": 1000, "minute": 60_000, "hour": 3_600_000, "day": _DAY_MS, "week": 7 * _DAY_MS}
_INTERVAL = re.compile(rf"(\d+)\s*({'|'.join(_UNIT_MS)})s?")
