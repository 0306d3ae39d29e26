"""The record reads of the API (recent logs, one log by id) answered over hot + lake with SQL.

The hot store answers these alone while its records are all that matter: the newest records are
hot, and the lake only holds what the flush moved out. These functions are for the rest: a window
reaching into flushed time, an id whose record was flushed. They query the engine's `logs` view,
which holds every record exactly once, so hot and lake results never need merging by hand.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from loglake.ids import format_uuid, parse_uuid, timestamp_of
from loglake.lake.query import QueryEngine, TimeRange, sql_string
from loglake.lake.search_terms import Term
from loglake.model import SEVERITY_ALIASES, SEVERITY_NAMES, StoredRecord, format_datetime
from loglake.store.base import RecentQuery

MAX_BUCKETS = 10_000
_YEAR_10000_MS = 253_402_300_800_000
_RECORD_COLUMNS = 'log_id, epoch_ms("timestamp") AS ts, service, log_type, severity, message, attributes, client_id'


def newest_flushed_ms(engine: QueryEngine, since_ms: int) -> int | None:
    """The newest timestamp in the lake at or after since_ms (None if the lake has nothing there)."""
    rows = engine.store.read("SELECT max(max_ts) FROM lake_files WHERE max_ts >= ?", (since_ms,))
    return rows[0][0] if rows else None


def recent(engine: QueryEngine, query: RecentQuery, terms: Sequence[Term] = ()) -> list[StoredRecord]:
    """The newest `query.limit` records matching the filters (and search terms), newest (highest id) first."""
    where, params = _conditions(query, terms)
    sql = f"SELECT {_RECORD_COLUMNS} FROM logs WHERE {where} ORDER BY log_id DESC LIMIT {query.limit:d}"
    window = TimeRange(query.since_ms, query.until_ms)
    return [_record(row) for row in engine.run_internal(sql, params, window, query.limit).rows]


def histogram(engine: QueryEngine, query: RecentQuery, terms: Sequence[Term], interval_ms: int) -> list[dict]:
    """Counts per time bucket (aligned to the epoch) and severity, every bucket of the window present."""
    where, params = _conditions(replace(query, before_id=None), terms)
    sql = (
        f'SELECT epoch_ms("timestamp") // {interval_ms:d} AS bucket, severity, count(*) FROM logs WHERE {where}'
        " GROUP BY ALL"
    )
    window = TimeRange(query.since_ms, query.until_ms)
    counts: dict[int, dict[str, int]] = {}
    for bucket, severity, n in engine.run_internal(sql, params, window, MAX_BUCKETS * len(SEVERITY_NAMES)).rows:
        counts.setdefault(bucket, {})[severity] = n
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


def _conditions(query: RecentQuery, terms: Sequence[Term]) -> tuple[str, list[Any]]:
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
        where.append("contains(lower(message), ?)")
        params.append(query.contains.lower())
    for term in terms:
        condition, value = _term_condition(term)
        where.append(f"NOT coalesce({condition}, false)" if term.negated else condition)
        params.append(value)
    return " AND ".join(where), params


def _term_condition(term: Term) -> tuple[str, Any]:
    if term.field is None:
        return "contains(lower(message), ?)", term.value.lower()
    if term.field in ("service", "log_type"):
        return f"{term.field} = ?", term.value
    if term.field == "severity":
        return "severity = ?", term.value
    path = "$." + ".".join(f'"{part}"' for part in term.field.split("."))
    return f"lower(json_extract_string(attributes, {sql_string(path)})) = ?", term.value.lower()


def get(engine: QueryEngine, log_id: bytes) -> StoredRecord | None:
    """A flushed record by its log id, or by the client id it was sent with."""
    ts = timestamp_of(log_id)
    text = format_uuid(log_id)
    found = []
    if log_id[6] >> 4 == 7 and ts < _YEAR_10000_MS:  # one of our UUIDv7 ids: look in its own day only
        found = engine.run_internal(
            f"SELECT {_RECORD_COLUMNS} FROM logs WHERE log_id = ? LIMIT 1", [text], TimeRange(ts, ts + 1), 1
        ).rows
    if not found:  # not one of our ids at that time: perhaps a client id (any time; its column is mostly null)
        found = engine.run_internal(
            f"SELECT {_RECORD_COLUMNS} FROM logs WHERE client_id = ? LIMIT 1", [text], TimeRange(), 1
        ).rows
    return _record(found[0]) if found else None


def _record(row: tuple) -> StoredRecord:
    log_id, ts, service, log_type, severity, message, attributes, client_id = row
    return StoredRecord(
        parse_uuid(log_id),
        ts,
        service,
        log_type,
        int(SEVERITY_ALIASES[severity]),
        message,
        attributes.encode() if attributes is not None else None,
        parse_uuid(client_id) if client_id is not None else None,
    )
