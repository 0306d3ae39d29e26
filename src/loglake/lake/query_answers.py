"""What a SQL query is asked and what it answers, for every engine (DuckDB here, Athena on AWS) and
every edge (HTTP, Lambda, CLI): the checked request, the result, its JSON form, and fetching a result
within the answer's size cap."""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as dt_time
from typing import Any

import msgspec

from loglake.lake.answer_values import time_text
from loglake.lake.query_limits import MIN_TIMEOUT_SECONDS
from loglake.lake.sql_guard import QueryError


class QueryBusy(Exception):
    """Every query slot stayed taken for the whole timeout (HTTP 503)."""


# How a lake file that cannot be read fails a query that reads it (query_views.QueryViews.unreadable's stand-in, and
# a waiting batch's stream): the engine finds the file's name after it.
UNREADABLE_FILE = "lake file unreadable: "


class LakeUnreadable(QueryBusy):
    """A lake file the catalog lists could not be read from storage (HTTP 503). A storage outage passes, but a file
    damaged or removed outside loglake does not come back: the message says what to do rather than to retry."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(
            f"a lake file could not be read from storage ({reason}). Unless the storage itself is failing, a file"
            " the lake's catalog lists was damaged, or removed from its storage, outside loglake, and asking again"
            " will not mend it: `loglake verify` names the damaged files; restore them from a backup of the lake,"
            " or `loglake verify --quarantine` takes them out of the catalog, their records with them"
        )


@dataclass
class QueryResult:
    columns: list[tuple[str, str]]  # (name, DuckDB type)
    rows: list[tuple]
    truncated: bool  # more rows than the cap
    elapsed_ms: float
    bytes_scanned: int  # bytes DuckDB read from lake files (hot rows are in memory)
    files_scanned: int
    plan: str | None = None
    rows_scanned: int = 0  # rows the scans gave the query (after the filters they apply), hot rows included


@dataclass(frozen=True, slots=True)
class QueryRequest:
    """What a user asks of POST /query (and of the AWS query function), checked."""

    sql: str
    limit: int | None = None
    timeout_seconds: float | None = None
    explain: bool = False

    def options(self) -> dict[str, Any]:
        """As the keyword arguments of an engine's `query`."""
        return {"sql": self.sql, "limit": self.limit, "timeout_seconds": self.timeout_seconds, "explain": self.explain}


QUERY_REQUEST_FIELDS = ("sql", "limit", "timeout_seconds", "explain")


def parse_query_request(spec: dict[str, Any]) -> QueryRequest:
    """A decoded JSON object as a QueryRequest; QueryError invalid_request naming the wrong field."""

    def refuse(field: str, message: str) -> QueryError:
        return QueryError("invalid_request", message, field)

    unknown = spec.keys() - set(QUERY_REQUEST_FIELDS)
    if unknown:
        first = min(unknown)
        raise refuse(first, f"unknown field(s) {', '.join(sorted(unknown))}; known: {', '.join(QUERY_REQUEST_FIELDS)}")
    sql, limit, timeout = spec.get("sql"), spec.get("limit"), spec.get("timeout_seconds")
    if type(sql) is not str:
        raise refuse("sql", 'send {"sql": "SELECT ..."}: sql must be a string')
    if limit is not None and (type(limit) is not int or limit < 1):  # 0 rows of a query are no answer to it
        sent = (
            "at least 1"
            if type(limit) is int
            else "a number, not a string"
            if type(limit) is str
            else f"a whole number, not {_encode(limit).decode():.40}"  # true, 2.5: "not a string" misled
        )
        raise refuse("limit", f"limit must be a positive integer ({sent})")
    if timeout is not None and (type(timeout) not in (int, float) or not timeout >= MIN_TIMEOUT_SECONDS):
        least = f"at least {MIN_TIMEOUT_SECONDS:g}"
        raise refuse("timeout_seconds", f"timeout_seconds must be a number of seconds, {least}")
    explain = spec.get("explain")
    if explain is not None and type(explain) is not bool:
        raise refuse("explain", "explain must be true or false")
    return QueryRequest(sql, limit, timeout, bool(explain))


_encode = msgspec.json.Encoder().encode


def fetch_within(result: Any, cap: int, max_bytes: int) -> list[tuple]:
    """From a DuckDB result: up to cap + 1 rows (one more tells the answer was truncated), a chunk at a
    time, counting the JSON the first `cap` of them make in the answer: past max_bytes, QueryError,
    before the rest is fetched (or held in memory). Chunks shrink as the budget runs out."""
    rows: list[tuple] = []
    size = 0
    chunk = 64
    while len(rows) <= cap:
        batch = result.fetchmany(min(chunk, cap + 1 - len(rows)))
        if not batch:
            break
        for row in batch:
            if len(rows) < cap:
                size = counted_row(row, size, len(rows), max_bytes)
            rows.append(row)
        chunk = max(1, min(2048, (max_bytes - size) * len(rows) // max(1, size)))
    return rows


def counted_row(row: tuple, size: int, before: int, max_bytes: int) -> int:
    """The answer's JSON size with `row` (after `before` rows) added; QueryError past max_bytes."""
    size += len(_encode([json_value(v) for v in row])) + 1
    if size > max_bytes:
        raise answer_too_large(max_bytes, before)
    return size


def answer_too_large(max_bytes: int, before: int) -> QueryError:
    return QueryError(
        "response_too_large",
        f"the answer passed {max_bytes / 2**20:g} MiB of JSON (the server's query_max_response_mb)"
        f" at row {before + 1:,}: ask for fewer rows (limit), fewer or shorter columns"
        " (e.g. left(message, 200)), or aggregate in SQL",
    )


def json_value(value: Any) -> Any:
    """A DuckDB result value as JSON: times as ISO-8601 UTC text (answer_values), decimals as text (exact), bytes as
    base64, a double's NaN and infinities, which JSON has no number for, as the text Trino's answers give them
    ("NaN", "Infinity", "-Infinity"; they were null, which read as SQL's NULL: `0/0` is not NULL)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "NaN" if math.isnan(value) else "Infinity" if value > 0 else "-Infinity"
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return time_text(value)
    if isinstance(value, date | dt_time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, dict):
        return {_member_name(k): json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_value(v) for v in value]
    if isinstance(value, timedelta):
        return _interval_text(value)
    return str(value)  # Decimal, UUID, ...


def _member_name(key: Any) -> str:
    """A MAP's key as its JSON object's member name: its text in the answer (a time in ISO-8601, bytes in base64),
    or the JSON of a value that is not text there (`true`, `1.5`), where Python's str wrote `True`, `b'1'` and
    `2026-01-01 00:00:00.500000`."""
    name = json_value(key)
    return name if isinstance(name, str) else _encode(name).decode()


def _interval_text(delta: timedelta) -> str:
    """An interval DuckDB gave Python as a timedelta (one inside a list or a struct: a column of them is DuckDB's
    own text, see query._intervals_as_text) as DuckDB writes one: `2 days 01:30:00`, `-01:30:00`, where str()
    wrote `-1 day, 22:30:00`. Its months are gone already (DuckDB made each 30 days)."""
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    sign = "-" if micros < 0 else ""
    days, micros = divmod(abs(micros), 86_400_000_000)
    seconds, fraction = divmod(micros, 1_000_000)
    parts = [f"{sign}{days} day{'' if days == 1 else 's'}"] if days else []
    if seconds or fraction or not days:
        time_text = f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
        parts.append(sign + time_text + (f".{fraction:06d}".rstrip("0") if fraction else ""))
    return " ".join(parts)


def result_to_dict(result: QueryResult) -> dict[str, Any]:
    if result.plan is not None:
        return {"plan": result.plan, "elapsed_ms": round(result.elapsed_ms, 3)}
    return {
        "columns": [{"name": name, "type": kind} for name, kind in result.columns],
        "rows": [[json_value(v) for v in row] for row in result.rows],
        "row_count": len(result.rows),
        "truncated": result.truncated,
        "elapsed_ms": round(result.elapsed_ms, 3),
        "bytes_scanned": result.bytes_scanned,
        "files_scanned": result.files_scanned,
    }
