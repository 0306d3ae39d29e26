"""Tables with the `logs` columns (lake row groups, fresh arrivals) as records, and which of their rows match a
RecentQuery."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from loglake import readback
from loglake.ids import format_uuid
from loglake.model import SEVERITY_NAMES, StoredRecord
from loglake.store.base import RecentQuery

_MS = pa.timestamp("ms")


def matches(table: pa.Table, query: RecentQuery) -> pa.ChunkedArray | pa.Array:
    """Which rows of a table of `logs` columns (those the query filters on suffice) match the query's
    filters and id range: true, false, or null for a row with a null in a filtered column."""
    ts = table.column("timestamp")
    keep = pc.greater_equal(ts, pa.scalar(query.since_ms, _MS).cast(ts.type))
    if query.until_ms is not None:
        keep = pc.and_(keep, pc.less(ts, pa.scalar(query.until_ms, _MS).cast(ts.type)))
    if query.before_id is not None:
        keep = pc.and_(keep, pc.less(table.column("log_id"), format_uuid(query.before_id)))
    if query.service is not None:
        keep = pc.and_(keep, pc.equal(table.column("service"), query.service))
    if query.log_type is not None:
        keep = pc.and_(keep, pc.equal(table.column("log_type"), query.log_type))
    if query.severities is not None:
        names = pa.array([SEVERITY_NAMES[s] for s in query.severities])
        keep = pc.and_(keep, pc.is_in(table.column("severity"), value_set=names))
    if query.contains:
        keep = pc.and_(keep, pc.match_substring(table.column("message"), query.contains, ignore_case=True))
    return keep


def table_records(table: pa.Table) -> list[StoredRecord]:
    """The records of a table with the `logs` columns, in its order (see _record)."""
    return [r for r in map(stored_record, _rows(table)) if r is not None]


def _rows(table: pa.Table) -> list[dict]:
    """The rows of a table with the `logs` columns as dicts, the timestamp as epoch ms under "ts"."""
    millis = table.column("timestamp").cast(pa.int64())
    return table.set_column(table.schema.get_field_index("timestamp"), "ts", millis).to_pylist()


def log_id_text(row: dict) -> str:
    return row["log_id"] or ""  # a file written by another tool may hold a null


def stored_record(row: dict) -> StoredRecord | None:
    """The row's record, its unreadable values named (readback.py); None when its log id is unreadable."""
    log_id = readback.stored_id(row["log_id"], "the lake")
    if log_id is None:
        return None
    return readback.record(
        log_id,
        row["ts"],
        row["service"],
        row["log_type"],
        row["severity"],
        row["message"],
        row["attributes"],
        row["client_id"],
        row["trace_id"],
        row["span_id"],
    )
