"""What a query would scan, before it runs: files and bytes after partition and row-group pruning.

DuckDB's own plan of the query (EXPLAIN, over the same views POST /query defines) says, for each
Parquet scan, the columns it reads and the filters it pushes into the scan: those on partition keys
drop whole files, the others drop row groups by the statistics in the files' footers. The estimate
applies those filters to the catalog's files and to the footers (footers.py) the way the scan does,
and adds the compressed sizes of the columns read in the row groups kept: the bytes DuckDB reports
reading once it has the footers cached (as a running server has). Filters it cannot read (a function
of a column, `now() - INTERVAL ...`, which DuckDB does not push down either) prune nothing, so the
estimate errs on the large side.

On an S3 lake the engine scans through pyarrow datasets, whose plan shows no pushed filters: there
the estimate is every file of the tables read, and says so.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from loglake.ask.footers import Footers, RowGroup
from loglake.ask.time_bounds import TimeBounds, time_bounds_of
from loglake.lake.layout import partitions_of
from loglake.lake.manifest import LakeFile
from loglake.lake.objectstore import LocalObjectStore
from loglake.lake.query import QueryEngine
from loglake.lake.sql_guard import check_select
from loglake.lake.tables import TABLES, LakeTable
from loglake.lake.verify import MISSING_FROM_STORAGE
from loglake.lake.waiting import waiting_rows_in
from loglake.rules.plan import tables_of
from loglake.store.sqlite import SQLiteHotStore
from loglake.times import format_datetime

VERY_LARGE_SCAN_BYTES = 1024**3
HOT_TABLE = "logs"  # the table whose records wait in the hot store before the lake (lake/query.py)
NO_TIME_FILTER = (
    "no time filter: the query reads every day of {tables}; add a range on timestamp (or date) to read less"
)
NOW_PRUNES_NOTHING = (
    "the query compares timestamp with a time computed from now(), which prunes no lake files: every file of"
    " {tables} is opened to test it; a literal time (such as {literal}) or a range on date reads only the days"
    " in range"
)
VERY_LARGE = "a very large scan: {size} of the lake would be read; narrow the time range or the columns"
UNREADABLE = (
    "the lake file {key} cannot be read ({problem}): a query that reads its day answers 503 until it is restored;"
    " `loglake verify` names such files and `loglake verify --quarantine` takes them out"
)


@dataclass
class Estimate:
    tables: list[str]
    files: int = 0  # lake files with at least one row group read
    bytes: int = 0  # compressed bytes of the columns read in those row groups
    row_groups: int = 0
    rows: int = 0  # rows in the row groups read: an upper bound of the rows the scans give the query
    total_files: int | None = 0  # of the tables read, for scale (None: not listed, on AWS)
    total_bytes: int | None = 0
    data_since_ms: int | None = None  # the time span of the lake's row groups read (not the query's range)
    data_until_ms: int | None = None
    time_filtered: bool = False  # every read of a lake table filters on its time (time_bounds.py)
    range_since_ms: int | None = None  # the range its time predicates name (None: open on that side)
    range_until_ms: int | None = None
    range_relative: bool = False  # the range is computed from now() (time_bounds.py): as of when it was asked
    hot_records: int | None = None  # records not yet in the lake it reads too, not in `bytes` (None: none read)
    pruned: bool = True  # False: the plan showed no pruning (an S3 lake): every file counted whole
    price: dict[str, Any] | None = None  # what the scan costs where it is billed by bytes (Athena)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "tables": self.tables,
            "files": self.files,
            "bytes": self.bytes,
            "row_groups": self.row_groups,
            "rows": self.rows,
            "total_files": self.total_files,
            "total_bytes": self.total_bytes,
            "data_since": _formatted(self.data_since_ms),
            "data_until": _formatted(self.data_until_ms),
            "hot_records": self.hot_records,
            "time_filtered": self.time_filtered,
            "pruned": self.pruned,
            "price": self.price,
        }

    def time_range(self) -> dict[str, str | None]:
        """The range the query's time predicates name, whatever data there is."""
        return {
            "since": _formatted(self.range_since_ms),
            "until": _formatted(self.range_until_ms),
            "relative_to_now": self.range_relative,
        }


def _range_literal(bounds: TimeBounds) -> str:
    """The query's range as a literal condition on timestamp, as now() makes it now."""
    if bounds.since_ms is not None:
        return f"timestamp >= '{format_datetime(bounds.since_ms)}'"
    if bounds.until_ms is not None:
        return f"timestamp < '{format_datetime(bounds.until_ms)}'"
    return "timestamp >= '2026-01-01T00:00:00Z'"  # no bound reads as a time: the form is the point


def _formatted(ms: int | None) -> str | None:
    return format_datetime(ms) if ms is not None else None


@dataclass(frozen=True)
class Scan:
    """One Parquet scan of the plan: the columns it reads and the filters pushed into it."""

    columns: frozenset[str]  # all it reads, with those it only filters by
    projected: frozenset[str]  # those it gives the query
    filters: tuple[str, ...]
    opaque: frozenset[str]  # columns of filters the estimate cannot apply: always read


class Estimator:
    def __init__(self, engine: QueryEngine, footers: Footers, very_large_bytes: int = VERY_LARGE_SCAN_BYTES) -> None:
        self.engine = engine
        self.footers = footers
        self.very_large_bytes = very_large_bytes

    def estimate(self, sql: str, now_ms: int | None = None) -> Estimate:
        """The estimate of a user's query (QueryError if the sandbox refuses it), its now() read as `now_ms`."""
        read = tables_of(check_select(sql, self.engine.table_names))
        plan, files = self.engine.plan(sql)
        found = Estimate([t.name for t in read])
        found.total_files = sum(len(files[t.name]) for t in read)
        found.total_bytes = sum(f.bytes for t in read for f in files[t.name])
        if not isinstance(self.engine.lake, LocalObjectStore):
            found.pruned = False
            found.files, found.bytes = found.total_files, found.total_bytes
            found.rows = sum(f.records for t in read for f in files[t.name])
        else:
            for scan in scans_of(plan):
                table = _table_of(scan, read)
                if table is not None:
                    self._add(found, scan, table, files[table.name])
        bounds = time_bounds_of(sql, "duckdb", now_ms)
        found.time_filtered = bounds.bounded
        found.range_since_ms, found.range_until_ms = bounds.since_ms, bounds.until_ms
        found.range_relative = bounds.relative
        if bounds.now_on_timestamp and found.pruned:
            found.warnings.append(
                NOW_PRUNES_NOTHING.format(tables=", ".join(found.tables), literal=_range_literal(bounds))
            )
        if any(t.name == HOT_TABLE for t in read):
            found.hot_records = _hot_records(self.engine.store, bounds.since_ms, bounds.until_ms)
        if read and not found.time_filtered:
            found.warnings.append(NO_TIME_FILTER.format(tables=", ".join(found.tables)))
        if found.bytes >= self.very_large_bytes:
            found.warnings.append(VERY_LARGE.format(size=human_bytes(found.bytes)))
        return found

    def _add(self, found: Estimate, scan: Scan, table: LakeTable, files: list[LakeFile]) -> None:
        conditions = [c for text in scan.filters for c in conditions_of(text)]
        on_partitions = [c for c in conditions if c.column in table.partitions]
        on_columns = [c for c in conditions if c.column not in table.partitions]
        projected = scan.projected - set(table.partitions)
        alone = len(files) == 1
        for file in files:
            values = _partition_values(file)
            if not all(c.may_hold(values.get(c.column), values.get(c.column)) for c in on_partitions):
                continue
            try:
                groups = self.footers.of(file.key)
            except (OSError, ValueError) as e:  # gone or damaged outside loglake (pyarrow: ArrowInvalid a ValueError)
                problem = MISSING_FROM_STORAGE if isinstance(e, FileNotFoundError) else "damaged"
                found.warnings.append(UNREADABLE.format(key=file.key, problem=problem))  # (no path of the server's)
                continue
            kept = [g for g in groups if _may_match(g, on_columns)]
            if not kept:
                continue
            found.files += 1
            found.row_groups += len(kept)
            for group in kept:
                found.rows += group.rows
                # A filter column is read, unless the scan has one file and the statistics say its filters
                # hold for every row (over several files DuckDB reads it anyway).
                read = projected | scan.opaque | {c.column for c in on_columns if not (alone and _always(group, c))}
                found.bytes += group.bytes_read(read)
                span = group.bounds.get("timestamp")
                if span is not None:
                    first, last = _ms(span[0]), _ms(span[1]) + 1
                    found.data_since_ms = first if found.data_since_ms is None else min(found.data_since_ms, first)
                    found.data_until_ms = last if found.data_until_ms is None else max(found.data_until_ms, last)


def _hot_records(store: SQLiteHotStore, since_ms: int | None, until_ms: int | None) -> int:
    """The hot store's records in [since, until), by its time index (two counts, not a scan of rows), and
    those of the bulk batches waiting to be moved into the lake (lake/waiting.py)."""
    upto = store.count() if until_ms is None else store.count_before(until_ms)
    hot = max(0, upto - (store.count_before(since_ms) if since_ms is not None else 0))
    return hot + waiting_rows_in(store.read, since_ms, until_ms)


def scans_of(plan: list[dict[str, Any]]) -> Iterator[Scan]:
    """The Parquet scans of an EXPLAIN (FORMAT json) plan."""
    stack = list(plan)
    while stack:
        node = stack.pop()
        stack.extend(node.get("children", []))
        if node.get("name") != "READ_PARQUET":
            continue
        info = node.get("extra_info", {})
        filters = (*_listed(info.get("File Filters")), *_listed(info.get("Filters")))
        projected = frozenset(_listed(info.get("Projections")))
        filtered = {name for text in filters for name in _columns_in(text)}
        opaque = {
            name for text in filters for part in _conjuncts_of(text) if not _parsed(part) for name in _columns_in(part)
        }
        yield Scan(projected | filtered, projected, filters, frozenset(opaque))


def _columns_in(text: str) -> set[str]:
    return {name for name in _WORD.findall(_STRING.sub("''", text)) if name in _COLUMN_NAMES}


def _listed(value: Any) -> list[str]:
    if not value:
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _table_of(scan: Scan, read: tuple[LakeTable, ...]) -> LakeTable | None:
    """Which of the tables read this scan is: the one whose columns it reads (a scan of columns that
    several share, `timestamp` and `date` alone, goes to the first, in the registry's order)."""
    for table in read:
        if scan.columns <= {*table.schema.names, *table.partitions}:
            return table
    return None


def _partition_values(file: LakeFile) -> dict[str, Any]:
    values: dict[str, Any] = dict(partitions_of(file.key))
    if "date" in values:
        values["date"] = date.fromisoformat(values["date"])
    return values


def _may_match(group: RowGroup, conditions: list[Condition]) -> bool:
    for condition in conditions:
        bounds = group.bounds.get(condition.column)
        if bounds is not None and not condition.may_hold(*bounds):
            return False
    return True


def _always(group: RowGroup, condition: Condition) -> bool:
    bounds = group.bounds.get(condition.column)
    return bounds is not None and condition.always_holds(*bounds)


def _ms(value: Any) -> int:
    if isinstance(value, datetime):
        return int((value - datetime(1970, 1, 1)).total_seconds() * 1000)
    return int(value)


def human_bytes(size: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:,.0f} {unit}" if unit == "bytes" else f"{size:,.1f} {unit}"
        size /= 1024
    raise AssertionError


# -- the filters of a plan ---------------------------------------------------------------------

_STRING = re.compile(r"'(?:[^']|'')*'")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Words of a filter that name columns (DuckDB prints columns as named, types and keywords in capitals).
_COLUMN_NAMES = frozenset(name for t in TABLES.values() for name in (*t.schema.names, *t.partitions))
_COMPARISON = re.compile(r'"?(?P<column>[A-Za-z_]\w*)"? (?P<op>=|<=|>=|<|>) (?P<value>.+)', re.DOTALL)
_IN_LIST = re.compile(r'"?(?P<column>[A-Za-z_]\w*)"? IN \((?P<values>.+)\)', re.DOTALL)
_LITERAL = re.compile(r"'(?P<text>(?:[^']|'')*)'(?:::(?P<type>[A-Z][A-Z ]*))?|(?P<number>-?\d+(?:\.\d+)?)")


@dataclass(frozen=True)
class Condition:
    """`column op value` (or `column IN values`), which a file or row group whose values of the
    column lie within [low, high] can satisfy only if may_hold says so."""

    column: str
    op: str
    values: tuple[Any, ...]

    def may_hold(self, low: Any, high: Any) -> bool:
        if low is None or high is None:
            return True
        try:
            if self.op == "in":
                return any(low <= v <= high for v in self.values)
            value = self.values[0]
            return {
                "=": low <= value <= high,
                "<": low < value,
                "<=": low <= value,
                ">": high > value,
                ">=": high >= value,
            }[self.op]
        except TypeError:  # a value of another type than the column's: prune nothing
            return True

    def always_holds(self, low: Any, high: Any) -> bool:
        """Whether every value within [low, high] satisfies it (then DuckDB need not read the column)."""
        try:
            if self.op == "in":
                return low == high and low in self.values
            value = self.values[0]
            return {
                "=": low == high == value,
                "<": high < value,
                "<=": high <= value,
                ">": low > value,
                ">=": low >= value,
            }[self.op]
        except TypeError:
            return False


def conditions_of(text: str) -> list[Condition]:
    """The conditions a pushed filter's text ANDs together that the estimate can apply; the others
    (OR, functions, casts of columns) are left out: they prune nothing."""
    return [c for part in _conjuncts_of(text) if (c := _parsed(part)) is not None]


def _conjuncts_of(text: str) -> list[str]:
    """The parts a filter ANDs together, nested ANDs flattened; a part where an OR joins others is one."""
    text = _unwrap(text.strip().removeprefix("optional: "))
    parts = _split_top(text, " AND ")
    if len(parts) <= 1:
        return [text]
    return [conjunct for part in parts for conjunct in _conjuncts_of(part)]


def _parsed(part: str) -> Condition | None:
    match = _IN_LIST.fullmatch(part)
    if match:
        values = [_literal(v.strip()) for v in _split_top(match["values"], ",")]
        return Condition(match["column"], "in", tuple(values)) if values and None not in values else None
    match = _COMPARISON.fullmatch(part)
    if match:
        value = _literal(match["value"].strip())
        return Condition(match["column"], match["op"], (value,)) if value is not None else None
    return None


def _literal(text: str) -> Any:
    match = _LITERAL.fullmatch(_unwrap(text))
    if match is None:
        return None
    if match["number"] is not None:
        return float(match["number"]) if "." in match["number"] else int(match["number"])
    value, kind = match["text"].replace("''", "'"), match["type"]
    try:
        if kind == "TIMESTAMP":
            return datetime.fromisoformat(value)
        if kind == "DATE":
            return date.fromisoformat(value)
    except ValueError:
        return None
    return value if kind in (None, "VARCHAR") else None


def _unwrap(text: str) -> str:
    """`text` without parentheses around all of it."""
    text = text.strip()
    while text.startswith("(") and text.endswith(")") and _closing(text) == len(text) - 1:
        text = text[1:-1].strip()
    return text


def _unquoted(text: str) -> Iterator[tuple[int, str, int]]:
    """(index, character, parentheses open after it) of each character of `text` outside '...' quotes."""
    depth, quoted = 0, False
    for i, c in enumerate(text):
        if c == "'":
            quoted = not quoted
        elif not quoted:
            if c == "(":
                depth += 1
            elif c == ")":
                depth -= 1
            yield i, c, depth


def _closing(text: str) -> int:
    """Where the parenthesis `text` opens with closes; -1 when it does not."""
    return next((i for i, c, depth in _unquoted(text) if c == ")" and depth == 0), -1)


def _split_top(text: str, separator: str) -> list[str]:
    """`text` split at `separator` outside parentheses and quotes (none where an OR joins parts)."""
    parts, start = [], 0
    for i, c, depth in _unquoted(text):
        if depth or c in "()" or i < start:  # (i < start: inside the separator just found)
            continue
        if text.startswith(" OR ", i):
            return []
        if text.startswith(separator, i):
            parts.append(text[start:i])
            start = i + len(separator)
    parts.append(text[start:])
    return parts
