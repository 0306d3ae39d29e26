"""The record reads of the API over hot + lake: recent logs, one log by id, search and histogram.

Each reads the hot store and the lake's catalog from one SQLite snapshot, so a flush committing
meanwhile never shows a record twice or loses it. Recent logs merge the hot store's answer with the
lake's newest matches (recent_reader); the others are SQL over the engine's `logs` view, which holds
every record exactly once.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import duckdb

from loglake import readback
from loglake.ids import LAST_STORABLE_MS, format_uuid, timestamp_of
from loglake.lake.json_arrays import any_element
from loglake.lake.manifest import files_span, list_files, newest_file_ms, reading
from loglake.lake.query import QueryEngine, TimeRange
from loglake.lake.query_views import sql_string
from loglake.lake.recent_reader import LakeRecentReader
from loglake.lake.search_terms import Condition, Term, condition_sql, number_of
from loglake.lake.sql_guard import case_insensitive_regex
from loglake.lake.stop import Stop
from loglake.lake.tables import APP_LOGS_TABLE
from loglake.lake.waiting import waiting, waiting_dir, waiting_records
from loglake.model import SEVERITY_NAMES, Severity, StoredRecord
from loglake.store.base import RecentQuery
from loglake.store.sqlite import SQLiteHotStore
from loglake.times import format_datetime

MAX_BUCKETS = 10_000
FACET_SAMPLE = 10_000  # records whose attribute keys a facets answer counts
_RECORD_COLUMNS = (
    'log_id, epoch_ms("timestamp") AS ts, service, log_type, severity, message, attributes, client_id, trace_id,'
    " span_id"
)


class EngineSearch:
    """The service's RecordSearch on the local engine (DuckDB over hot + lake)."""

    def __init__(self, engine: QueryEngine) -> None:
        self.engine = engine

    def search(
        self, query: RecentQuery, conditions: Sequence[Condition], stop: Stop | None = None
    ) -> list[StoredRecord]:
        return search(self.engine, query, conditions, stop)

    def histogram(
        self, query: RecentQuery, conditions: Sequence[Condition], interval_ms: int, stop: Stop | None = None
    ) -> list[dict]:
        return histogram(self.engine, query, conditions, interval_ms, stop)

    def get(self, log_id: bytes) -> StoredRecord | None:
        return get(self.engine, log_id)


def recent(store: SQLiteHotStore, reader: LakeRecentReader, query: RecentQuery) -> list[StoredRecord]:
    """Recent logs over hot and lake: the hot store's answer, the bulk batches waiting in hot.db and the
    catalog from one snapshot (so each record counts once), then the lake's newest matches when they
    could be among the page."""
    with reading(store):
        with store.snapshot():
            waiting_now = waiting_records(store.read, waiting_dir(store.path.parent), query)
            near = _newest(store.recent(query) + waiting_now, query.limit)
            files = list_files(store.read, APP_LOGS_TABLE.name, query.since_ms, query.until_ms)
        if not files or (len(near) >= query.limit and near[-1].timestamp > max(f.max_ts for f in files)):
            return near
        lake = reader.recent(files, query)
    return _newest(near + lake, query.limit)


def _newest(records: list[StoredRecord], limit: int) -> list[StoredRecord]:
    records.sort(key=lambda r: r.log_id, reverse=True)
    return records[:limit]


def search(
    engine: QueryEngine, query: RecentQuery, conditions: Sequence[Condition] = (), stop: Stop | None = None
) -> list[StoredRecord]:
    """The newest `query.limit` records matching the filters and search conditions, newest (highest id) first;
    told to stop (`stop`), its running query is interrupted and it raises Stopped."""
    return [record for step in search_steps(engine, query, conditions, stop) for record in step.records]


@dataclass(frozen=True)
class SearchStep:
    """One slice of time a search read, and the matches it found there."""

    since_ms: int
    until_ms: int
    records: list[StoredRecord]


def search_steps(
    engine: QueryEngine, query: RecentQuery, conditions: Sequence[Condition] = (), stop: Stop | None = None
) -> Iterator[SearchStep]:
    """The slices `search` reads, newest first, until they found `query.limit` records or reached its start.

    Asked for the newest 100 of a day, DuckDB would read the whole day (of every matching service) to
    sort it; stepping back from the newest time in growing slices reads only the slices it needs, as
    a row group holds a short stretch of one service's time, and the hot store streams only the rows
    of the slice. The first slice is sized to hold about four pages if every record matched
    (_first_step_ms); each next slice is eight times longer."""
    upper = _newest_possible_ms(engine, query)
    if upper is None:
        return
    wanted = query.limit
    step = _first_step_ms(engine, query, upper)
    while upper > query.since_ms and wanted > 0:
        lower = max(query.since_ms, upper - step)
        found = _recent_in(engine, replace(query, since_ms=lower, until_ms=upper, limit=wanted), conditions, stop)
        yield SearchStep(lower, upper, found)
        wanted -= len(found)
        upper, step = lower, step * 8


def _newest_possible_ms(engine: QueryEngine, query: RecentQuery) -> int | None:
    """The exclusive upper end of the search: the window's end, the cursor, or just past the newest record."""
    bounds = [query.until_ms] if query.until_ms is not None else []
    if query.before_id is not None:
        bounds.append(timestamp_of(query.before_id) + 1)
    with engine.store.snapshot():
        newest_hot = engine.store.newest_ms()  # the key alone: no record is built for its time
        newest_waiting = waiting(engine.store.read).newest_ms
        newest_flushed = newest_file_ms(engine.store.read, APP_LOGS_TABLE.name)
    newest = max((t for t in (newest_hot, newest_waiting, newest_flushed) if t is not None), default=None)
    if newest is None:
        return None
    return min([newest + 1, *bounds])


def _first_step_ms(engine: QueryEngine, query: RecentQuery, upper: int) -> int:
    """A slice ending at `upper` that holds about four pages: back to the hot store's `4 * limit`-th
    newest record before `upper`, or as long as the catalog's records per ms say, whichever is shorter
    (each alone holds them); the whole window when neither knows (fewer records than that)."""
    records = 4 * query.limit
    steps = []
    oldest_hot = engine.store.newest_ms(skip=records - 1, before_ms=upper)
    if oldest_hot is not None and oldest_hot >= query.since_ms:
        steps.append(upper - oldest_hot)
    flushed, first, last = files_span(engine.store.read, APP_LOGS_TABLE.name, query.since_ms, upper)
    if flushed and last > first:
        steps.append(int(records * (last - first) / flushed))
    return max(1000, min(steps)) if steps else upper - query.since_ms


def _recent_in(
    engine: QueryEngine, query: RecentQuery, conditions: Sequence[Condition], stop: Stop | None
) -> list[StoredRecord]:
    where, params = _conditions(query, conditions)
    sql = f"SELECT {_RECORD_COLUMNS} FROM logs WHERE {where} ORDER BY log_id DESC LIMIT {query.limit:d}"
    window = TimeRange(query.since_ms, query.until_ms)
    rows = engine.run_internal(sql, params, window, query.limit, newest_first=True, stop=stop).rows
    return records_from_rows(rows, "the lake")


def histogram(
    engine: QueryEngine, query: RecentQuery, conditions: Sequence[Condition], interval_ms: int, stop: Stop | None = None
) -> list[dict]:
    """Counts per time bucket (aligned to the epoch) and severity, every bucket of the window present."""
    where, params = _conditions(replace(query, before_id=None), conditions)
    sql = (
        f'SELECT epoch_ms("timestamp") // {interval_ms:d} AS bucket, severity, count(*) FROM logs WHERE {where}'
        " GROUP BY ALL"
    )
    window = TimeRange(query.since_ms, query.until_ms)
    rows = engine.run_internal(sql, params, window, MAX_BUCKETS * len(SEVERITY_NAMES), stop=stop).rows
    return histogram_buckets(rows, query, interval_ms)


def histogram_buckets(rows: Sequence[tuple[int, str, int]], query: RecentQuery, interval_ms: int) -> list[dict]:
    """The histogram's answer from (bucket number, severity, count) rows: every bucket of the window."""
    counts: dict[int, dict[str, int]] = {}
    for bucket, severity, n in rows:
        # A severity that cannot be read is counted as the record shows it: info (readback.py).
        name = severity if severity in SEVERITY_NAMES else Severity.INFO.label
        by_name = counts.setdefault(bucket, {})
        by_name[name] = by_name.get(name, 0) + n
    assert query.until_ms is not None
    first, last = query.since_ms // interval_ms, (query.until_ms - 1) // interval_ms
    buckets = []
    for bucket in range(first, last + 1):
        by_severity = {name: counts.get(bucket, {}).get(name, 0) for name in SEVERITY_NAMES}
        start = bucket * interval_ms
        buckets.append(
            {
                "start": format_datetime(start),
                "start_ms": start,
                "total": sum(by_severity.values()),
                "counts": by_severity,
            }
        )
    return buckets


def arrived_matches(
    db: duckdb.DuckDBPyConnection, query: RecentQuery, conditions: Sequence[Condition], after: int
) -> list[StoredRecord]:
    """The records of the table `arrived` (arrivals, each numbered in `arrival`) after number `after`
    that match the search, in arrival order, whatever their time: the conditions of search, so a live
    tail shows what a search would."""
    where, params = _conditions(replace(query, since_ms=0, until_ms=None, before_id=None), conditions)
    sql = f"SELECT {_RECORD_COLUMNS} FROM arrived WHERE arrival > ? AND {where} ORDER BY arrival"
    return records_from_rows(db.execute(sql, [after, *params]).fetchall(), "the arrivals")


def facets(
    engine: QueryEngine, query: RecentQuery, conditions: Sequence[Condition], limit: int, stop: Stop | None = None
) -> dict[str, Any]:
    """The most common services, severities and log types of the matching records with their counts (one
    scan), and the most common attribute keys among up to FACET_SAMPLE of them (parsing every record's
    attributes would take seconds over a day of a busy server)."""
    where, params = _conditions(replace(query, before_id=None), conditions)
    window = TimeRange(query.since_ms, query.until_ms)
    sql = (
        "SELECT grouping(service, severity, log_type) AS facet, coalesce(service, severity, log_type) AS value,"
        f" count(*) AS n FROM logs WHERE {where} GROUP BY GROUPING SETS ((service), (severity), (log_type), ())"
        f" QUALIFY row_number() OVER (PARTITION BY facet ORDER BY n DESC, value) <= {limit:d}"
    )
    found: dict[str, dict[str, int]] = {"service": {}, "severity": {}, "log_type": {}}
    total = 0
    for facet, value, n in engine.run_internal(sql, params, window, 3 * limit + 1, stop=stop).rows:
        name = _FACET_BY_GROUPING[facet]
        if name == "total":
            total = n
            continue
        if name == "severity" and value not in SEVERITY_NAMES:  # counted as the record shows it (readback.py)
            value = Severity.INFO.label
        found[name][value] = found[name].get(value, 0) + n
    sampled = min(FACET_SAMPLE, total)
    keys_sql = (
        f"SELECT key, count(*) AS n FROM (SELECT unnest(try(json_keys(attributes))) AS key FROM"
        f" (SELECT attributes FROM logs WHERE {where} LIMIT {FACET_SAMPLE:d})) GROUP BY key"
        f" ORDER BY n DESC, key LIMIT {limit:d}"
    )
    keys = engine.run_internal(keys_sql, params, window, limit, stop=stop).rows if sampled else []
    answer: dict[str, Any] = {
        name: [{"value": v, "count": n} for v, n in sorted(counts.items(), key=lambda c: (-c[1], c[0]))]
        for name, counts in found.items()
    }
    answer["attribute_keys"] = [{"value": key, "count": n} for key, n in keys]
    answer["attribute_keys_sampled"] = sampled
    return answer


# grouping(service, severity, log_type) of each grouping set: a bit set for each column left out
_FACET_BY_GROUPING = {0b011: "service", 0b101: "severity", 0b110: "log_type", 0b111: "total"}


def _conditions(query: RecentQuery, conditions: Sequence[Condition]) -> tuple[str, list[Any]]:
    where = ['"timestamp" >= epoch_ms(?::BIGINT)']
    params: list[Any] = [query.since_ms]
    if query.until_ms is not None:
        where.append('"timestamp" < epoch_ms(?::BIGINT)')
        params.append(query.until_ms)
    if query.before_id is not None:
        where.append("log_id < ?")
        params.append(format_uuid(query.before_id))
    if query.service is not None:
        where.append("service = ?")
        params.append(query.service)
    if query.log_type is not None:
        where.append("log_type = ?")
        params.append(query.log_type)
    if query.severities is not None:
        where.append("list_contains(?, severity)")
        params.append([SEVERITY_NAMES[s] for s in sorted(query.severities)])
    if query.contains:
        where.append("regexp_matches(message, ?)")
        params.append(case_insensitive_regex(query.contains))

    def term_sql(term: Term) -> str:  # called in the order of the SQL text, so its values are the ?s in order
        condition, values = _term_condition(term)
        params.extend(values)
        return condition

    where.extend(condition_sql(condition, term_sql) for condition in conditions)
    return " AND ".join(where), params


def _term_condition(term: Term) -> tuple[str, list[Any]]:
    if term.paths:  # try(): attributes that are not JSON (a row written by hand) match nothing, not fail
        paths = [sql_string(_json_path(path)) for path in term.paths]
        value = f"lower(try({_first_at('json_extract_string', paths)}))"
        number = number_of(term)
        if term.prefix:
            scalar, element, values = f"starts_with({value}, lower(?))", "starts_with(lower(x), lower(?))", [term.value]
        elif number is None:
            scalar, element, values = f"{value} = lower(?)", "lower(x) = lower(?)", [term.value]
        else:
            scalar = f"({value} = lower(?) OR try_cast({value} AS DOUBLE) = ?)"
            element, values = "(lower(x) = lower(?) OR try_cast(x AS DOUBLE) = ?)", [term.value, number]
        # An array's elements match one by one (json_arrays; a string that looks like an array is no array: its
        # JSON is quoted).
        return f"({scalar} OR {any_element(_first_at('json_extract', paths), element)})", values + values
    if term.field is None:  # RE2's case-insensitive search: about twice as fast as lower() + contains
        return "regexp_matches(message, ?)", [case_insensitive_regex(term.value)]  # (mess* is mess: anywhere)
    return (f"starts_with({term.field}, ?)" if term.prefix else f"{term.field} = ?"), [term.value]


def _first_at(function: str, paths: list[str]) -> str:
    """`function` (json_extract_string or json_extract) of the value at the first of the paths present
    (Term.paths): any_value over the list in order is its first non-null; one call with a list of paths parses
    the JSON once, where coalesce() would for each path."""
    if len(paths) == 1:
        return f"{function}(attributes, {paths[0]})"
    return f"list_aggregate({function}(attributes, [{', '.join(paths)}]), 'any_value')"


def _json_path(keys: Sequence[str]) -> str:
    return "$" + "".join(f'."{json_path_key(key)}"' for key in keys)


def json_path_key(key: str) -> str:
    """A key as written inside a double-quoted JSON path step (DuckDB's and Athena's alike)."""
    return key.replace("\\", "\\\\").replace('"', '\\"')


def get(engine: QueryEngine, log_id: bytes) -> StoredRecord | None:
    """A flushed record by its log id, or by the client id it was sent with (the flush keeps a map
    of those), each looked up in its own day's files only."""
    if not is_storable_id(log_id):
        real_id = engine.store.flushed_id_of(log_id)
        if real_id is None:
            return None
        log_id = real_id
    ts = timestamp_of(log_id)
    found = engine.run_internal(
        f"SELECT {_RECORD_COLUMNS} FROM logs WHERE log_id = ? LIMIT 1", [format_uuid(log_id)], TimeRange(ts, ts + 1), 1
    ).rows
    if not found:
        real_id = engine.store.flushed_id_of(log_id)
        return get(engine, real_id) if real_id is not None and real_id != log_id else None
    return next(iter(records_from_rows(found, "the lake")), None)


def is_storable_id(log_id: bytes) -> bool:
    """Whether this could be one of our ids: UUIDv7 with a time a store can hold."""
    return log_id[6] >> 4 == 7 and timestamp_of(log_id) <= LAST_STORABLE_MS


def records_from_rows(rows: Iterable[tuple], where: str) -> list[StoredRecord]:
    """StoredRecords from rows of RECORD_COLUMNS (log_id text, epoch ms, ..., client_id text), their
    unreadable values named (readback.py); a row whose log id cannot be read is left out."""
    found = []
    for log_id, *values in rows:
        raw_id = readback.stored_id(log_id, where)
        if raw_id is not None:
            found.append(readback.record(raw_id, *values))
    return found
