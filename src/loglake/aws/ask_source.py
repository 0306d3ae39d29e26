"""Asking on AWS: the prompt for Athena's SQL over the Glue tables, and what a query would scan there,
from the sizes of the lake's S3 objects, with no DuckDB.

The prompt describes the tables as the Glue catalog declares them (both come from the table registry,
lake/catalog.py), with real values as locally: the partitions' (the Amplify apps, listed in S3) and
the footers' smallest and largest values of the newest day's files (footers.py, read once per file
and function instance).

Athena reads, and bills, whole objects of the partitions a query keeps (partition projection turns
the predicates on `date`, and on an Amplify `app`, into the prefixes it lists); predicates on other
columns do not spare an object from being opened. So the estimate is the predicates on partition keys
of each scan's WHERE (those ANDed at its top: an OR keeps everything), applied to the partition
prefixes listed in S3 (one LIST per level), and the sizes of the objects under the prefixes kept.
Athena reads only the columns and row groups a query needs out of them, so it bills at most that.

The price is Athena's list price for SQL queries (https://aws.amazon.com/athena/pricing/): USD 5 per
TB scanned, each query rounded up to a whole MB with a 10 MB minimum (decimal units).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlglot
from sqlglot import exp

from loglake.ask.estimate import NO_TIME_FILTER, VERY_LARGE, VERY_LARGE_SCAN_BYTES, Condition, Estimate, human_bytes
from loglake.ask.footers import Footers
from loglake.ask.prompt import DIALECTS, MAX_SAMPLES, SAMPLED_COLUMNS, SAMPLED_FILES, Prompt, column_lines, listing
from loglake.ask.time_bounds import conjuncts, time_bounds
from loglake.lake.catalog import DATE_KEY, hive_type
from loglake.lake.layout import partitions_of
from loglake.lake.objectstore import S3ObjectStore
from loglake.lake.sql_guard import QueryError, check_select
from loglake.lake.tables import TABLES, LakeTable
from loglake.model import SEVERITY_NAMES

DIALECT = "athena"  # sqlglot's name of Athena's SQL
USD_PER_TB = 5.0
BILLED_UNIT_BYTES = 10**6  # a query's bytes are rounded up to whole MB
MIN_BILLED_BYTES = 10 * 10**6
PRICE_BASIS = (
    "Athena's list price (aws.amazon.com/athena/pricing): USD 5 per TB scanned, at least 10 MB per query, "
    "rounded up to whole MB; of the whole objects of the partitions kept, so Athena bills at most this"
)
NO_DATE_FILTER = (
    "the query filters on timestamp but not on date: Athena reads every day of {tables}; add a date range, "
    "e.g. \"date\" BETWEEN '2026-12-01' AND '2026-12-02'"
)
INJECTED = "{table} must be filtered on {key} with = or IN on Athena (its {key} values are not listed in advance)"

_RULES = """\
Answer with exactly one read-only SQL SELECT statement in Athena's SQL (Trino) in a ```sql fenced block,
then one or two sentences that explain what it returns. Rules:
- Read only the tables listed here; no other tables, files, URLs or settings.
- Write times as UTC literals computed from the current time above, e.g. "timestamp" >= TIMESTAMP
  '2026-12-01 00:00:00' (not now() arithmetic). A day in the user's time zone starts at its local
  midnight; convert it to UTC.
- Athena reads, and bills, whole days: whenever the question names a time, also filter on "date" with
  text literals, e.g. "date" BETWEEN '2026-12-01' AND '2026-12-02'.
- amplify_access must be filtered on app with = or IN.
- Quote the columns "timestamp" and "date". JSON fields: json_extract_scalar(attributes, '$.user');
  patterns: regexp_like(message, 'timeout').
- Always end with a LIMIT (at most {max_rows})."""


class AthenaSource:
    """The lake on S3 as Athena reads it (ask/service.py's Source)."""

    dialect = DIALECT

    def __init__(self, lake: S3ObjectStore, max_rows: int, very_large_bytes: int = VERY_LARGE_SCAN_BYTES) -> None:
        self.lake = lake
        self.max_rows = max_rows
        self.table_names = tuple(TABLES)
        self.very_large_bytes = very_large_bytes
        self.footers = Footers(lake)

    # -- the prompt -------------------------------------------------------------------------------

    def prompt(self, now_ms: int, time_zone: str) -> Prompt:
        schema = "\n\n".join(self._describe(t) for t in TABLES.values())
        now = datetime.fromtimestamp(now_ms / 1000, UTC)
        local = now.astimezone(ZoneInfo(time_zone))
        system = (
            f"You write {DIALECTS[DIALECT]} SQL over loglake, a log platform, for the user's questions.\n"
            f"Current time: {now:%Y-%m-%d %H:%M:%S} UTC ({local:%Y-%m-%d %H:%M:%S %Z} in the user's time zone, "
            f"{time_zone}; a week starts on Monday).\n\n{schema}\n\n" + _RULES.format(max_rows=self.max_rows)
        )
        shape = "|".join(
            f"{t.name}:{','.join(f'{c.name} {hive_type(c.type)}' for c in t.columns)}:{','.join(t.partitions)}"
            for t in TABLES.values()
        )  # the schema's version changes with a table, column or type, not with the data's values
        return Prompt(system, hashlib.sha256(f"{DIALECT}|{shape}".encode()).hexdigest()[:16])

    def _describe(self, table: LakeTable) -> str:
        samples = self._samples(table)
        lines = [f"Table {table.name}: {table.description}", column_lines(table.columns, samples, hive_type)]
        for key in table.partitions:
            if key == DATE_KEY:
                lines.append(f"- {key} string: partition key, the record's UTC day as 'YYYY-MM-DD'")
            else:
                apps = self._children(f"type={table.directory}/")[:MAX_SAMPLES]
                values = listing([_value_of(key, p) for p in apps])
                lines.append(
                    f"- {key} string: partition key, filter it with = or IN" + (f"; values: {values}" if apps else "")
                )
        if table.name == "logs":
            lines.append(f"  severity values: {', '.join(SEVERITY_NAMES)}; attributes is JSON text")
        return "\n".join(lines)

    def _samples(self, table: LakeTable) -> dict[str, list]:
        """Values of the columns questions name, from the footers of the newest day's files (of a table
        partitioned by day alone: an Amplify table's days are per app)."""
        wanted = [c for c in SAMPLED_COLUMNS.get(table.name, ()) if c not in table.partitions]
        if table.partitions != (DATE_KEY,) or not wanted:
            return {}
        days = self._children(f"type={table.directory}/")
        newest = [key for key, _ in self._objects(days[-1])][-SAMPLED_FILES:] if days else []
        found: dict[str, set] = {c: set() for c in wanted}
        for key in newest:
            for group in self.footers.of(key):
                for column in wanted:
                    found[column].update(group.bounds.get(column, ()))
        return {c: sorted(v for v in values if v is not None)[:MAX_SAMPLES] for c, values in found.items()}

    # -- the estimate -----------------------------------------------------------------------------

    def estimate(self, sql: str, now_ms: int | None = None) -> Estimate:
        check_select(sql, self.table_names)
        try:
            tree = sqlglot.parse_one(sql, read=DIALECT)
        except sqlglot.errors.ParseError as e:
            raise QueryError("invalid_sql", f"Athena's SQL does not parse: {str(e).splitlines()[0]}") from None
        scans = list(_scans(tree))
        found = Estimate(sorted({t.name for t, _ in scans}), total_files=None, total_bytes=None)
        days: set[date] = set()
        for table, conditions in scans:
            for key in (k for k in table.partitions if k != DATE_KEY):  # projected as `injected`
                if not any(c.column == key and c.op in ("=", "in") for c in conditions):
                    raise QueryError("invalid_sql", INJECTED.format(table=table.name, key=key))
            for key, size in self._kept(f"type={table.directory}/", table.partitions, conditions):
                found.files += 1
                found.bytes += size
                day = _value_of(DATE_KEY, f"{DATE_KEY}={partitions_of(key).get(DATE_KEY, '')}")
                if isinstance(day, date):
                    days.add(day)
        if days:
            found.data_since_ms = _ms(min(days))
            found.data_until_ms = _ms(max(days) + timedelta(days=1))
        bounds = time_bounds(tree, now_ms)
        found.time_filtered = bounds.bounded
        found.range_since_ms, found.range_until_ms = bounds.since_ms, bounds.until_ms
        found.range_relative = bounds.relative
        if not found.time_filtered:
            found.warnings.append(NO_TIME_FILTER.format(tables=", ".join(found.tables)))
        elif not all(any(c.column == DATE_KEY for c in conditions) for _, conditions in scans):
            found.warnings.append(NO_DATE_FILTER.format(tables=", ".join(found.tables)))
        if found.bytes >= self.very_large_bytes:
            found.warnings.append(VERY_LARGE.format(size=human_bytes(found.bytes)))
        found.price = athena_price(found.bytes) if scans else None
        return found

    def _kept(self, prefix: str, keys: tuple[str, ...], conditions: list[Condition]) -> Iterator[tuple[str, int]]:
        """(key, size) of the objects under `prefix` whose partitions (`keys`, outermost first) the
        conditions may keep: a level is listed only where a condition on it or below may prune."""
        if not any(c.column in keys for c in conditions):
            yield from self._objects(prefix)
            return
        key = keys[0]
        on_key = [c for c in conditions if c.column == key]
        kept = [child for child in self._children(prefix) if _holds(on_key, _value_of(key, child))]
        if any(c.column in keys[1:] for c in conditions):
            for child in kept:
                yield from self._kept(child, keys[1:], conditions)
        elif kept:  # nothing prunes below: the kept children's objects, in one listing from the first to the last
            wanted = set(kept)
            for found, size in self._objects(prefix, start_after=kept[0]):
                child = prefix + found[len(prefix) :].split("/", 1)[0] + "/"
                if child > kept[-1]:
                    return
                if child in wanted:
                    yield found, size

    def _objects(self, prefix: str, start_after: str = "") -> Iterator[tuple[str, int]]:
        """(key, size) of the objects Athena reads under `prefix`, in key order, after `start_after`."""
        paginator = self.lake.client.get_paginator("list_objects_v2")
        pages = paginator.paginate(
            Bucket=self.lake.bucket,
            Prefix=self.lake.prefix + prefix,
            StartAfter=self.lake.prefix + start_after if start_after else "",
        )
        for page in pages:
            for item in page.get("Contents", []):
                found = item["Key"][len(self.lake.prefix) :]
                if _read_by_athena(found):
                    yield found, item["Size"]

    def _children(self, prefix: str) -> list[str]:
        """The `name=value/` prefixes right under `prefix` (relative to the store), sorted."""
        found = []
        paginator = self.lake.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.lake.bucket, Prefix=self.lake.prefix + prefix, Delimiter="/"):
            found += [p["Prefix"][len(self.lake.prefix) :] for p in page.get("CommonPrefixes", [])]
        return sorted(p for p in found if "=" in p.rsplit("/", 2)[-2])


def athena_price(scanned_bytes: int) -> dict[str, Any]:
    """What Athena bills for a query that scans `scanned_bytes` (see the module doc)."""
    billed = max(MIN_BILLED_BYTES, math.ceil(scanned_bytes / BILLED_UNIT_BYTES) * BILLED_UNIT_BYTES)
    return {"usd": billed * USD_PER_TB / 10**12, "billed_bytes": billed, "basis": PRICE_BASIS}


def _scans(tree: exp.Expression) -> Iterator[tuple[LakeTable, list[Condition]]]:
    """Each read of a lake table with the conditions on its partition keys that its query's WHERE ANDs."""
    ctes = {c.alias_or_name.lower() for c in tree.find_all(exp.CTE)}
    for node in tree.find_all(exp.Table):
        table = TABLES.get(node.name.lower())
        if table is None or node.name.lower() in ctes:
            continue
        select = node.find_ancestor(exp.Select)
        where = select.args.get("where") if select is not None else None
        names = {"", node.alias_or_name.lower()}
        conditions = []
        for part in conjuncts(where.this) if where is not None else []:
            conditions += _conditions_of(part, table, names)
        yield table, conditions


_FLIPPED = {exp.EQ: "=", exp.GT: "<", exp.GTE: "<=", exp.LT: ">", exp.LTE: ">="}
_OPS = {exp.EQ: "=", exp.GT: ">", exp.GTE: ">=", exp.LT: "<", exp.LTE: "<="}


def _conditions_of(part: exp.Expression, table: LakeTable, names: set[str]) -> list[Condition]:
    """The conditions of one conjunct on a partition key of `table` (by a name in `names`)."""

    def key_of(node: exp.Expression) -> str | None:
        if isinstance(node, exp.Column) and node.name in table.partitions and node.table.lower() in names:
            return node.name
        return None

    if type(part) in _OPS:
        left, right = part.left, part.right
        if key_of(left) and (value := _literal(key_of(left), right)) is not None:
            return [Condition(key_of(left), _OPS[type(part)], (value,))]
        if key_of(right) and (value := _literal(key_of(right), left)) is not None:
            return [Condition(key_of(right), _FLIPPED[type(part)], (value,))]
    elif isinstance(part, exp.Between) and (key := key_of(part.this)):
        low, high = _literal(key, part.args["low"]), _literal(key, part.args["high"])
        if low is not None and high is not None:
            return [Condition(key, ">=", (low,)), Condition(key, "<=", (high,))]
    elif isinstance(part, exp.In) and (key := key_of(part.this)) and not part.args.get("query"):
        values = [_literal(key, v) for v in part.expressions]
        if values and None not in values:
            return [Condition(key, "in", tuple(values))]
    return []


def _literal(key: str, node: exp.Expression) -> Any:
    """A literal's value as the partition's (a `date` as a date), or None if it is not one."""
    if isinstance(node, exp.Cast) and isinstance(node.this, exp.Literal):  # DATE '2026-12-01'
        node = node.this
    if not isinstance(node, exp.Literal) or not node.is_string:
        return None
    return _value_of(key, f"{key}={node.this}/")


def _value_of(key: str, prefix: str) -> Any:
    """The value of a `key=value/` prefix (its last part): a date for `date` when it reads as one."""
    text = prefix.rstrip("/").rsplit("/", 1)[-1].partition("=")[2]
    if key == DATE_KEY:
        try:
            return date.fromisoformat(text)
        except ValueError:
            return text
    return text


def _holds(conditions: list[Condition], value: Any) -> bool:
    return all(c.may_hold(value, value) for c in conditions)


def _read_by_athena(key: str) -> bool:
    """Athena skips objects whose name starts with _ or . (Hive's hidden files)."""
    return not key.rsplit("/", 1)[-1].startswith(("_", "."))


def _ms(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)
