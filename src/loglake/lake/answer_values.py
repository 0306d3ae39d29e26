"""Values of a SQL answer that Python holds otherwise than the answer gives them, in the form every engine and edge
answers (query_answers.json_value writes them as JSON).

Dates and times exact for every one DuckDB (and Athena) holds:
ISO-8601 UTC text with a `Z`, its fraction in milliseconds, or in micro- or nanoseconds when it has them; a year
past 9999 or before year 1 with a sign and six digits, as ECMAScript writes one (`+010000-01-01T00:00:00.000Z`;
1 BC is year 0000, 2 BC -000001); an infinite one as DuckDB writes it, `infinity` or `-infinity`.

A 4-byte FLOAT (REAL) is answered as the fewest digits that are that float (`0.1::FLOAT` is 0.1, as DuckDB and
PostgreSQL show it): DuckDB gives Python its exact value as a double, which read 0.10000000149011612."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from typing import Any

from loglake.digits import single_float

# A date or time that datetime cannot hold, as DuckDB writes it (`10000-01-01 00:00:00.5`, `0045-03-15 (BC)`, a
# TIMESTAMPTZ's `+00` offset after it) or Trino does (a signed year, ` +02:00`, ` UTC`).
_TIME_TEXT = re.compile(
    r"([+-]?\d{4,})-(\d\d)-(\d\d)( \(BC\))?"
    r"(?:[ T](\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(?: ?([+-])(\d\d)(?::?(\d\d))?(?::(\d\d))?| UTC)?)?"
)
# The Gregorian calendar repeats every 400 years (146,097 days): a year datetime cannot hold is moved into its range
# by whole cycles, and back.
_CYCLE = 400


def time_text(value: datetime) -> str:
    """A datetime (UTC) as ISO-8601 text: milliseconds, or microseconds when it has them (they were cut off)."""
    return value.isoformat(timespec="milliseconds" if value.microsecond % 1000 == 0 else "microseconds") + "Z"


def text_as_iso(text: str) -> str | None:
    """DuckDB's (or Trino's) text of a date or a time as ISO-8601 (a time in UTC, with a `Z`); None if it is
    neither (`infinity`)."""
    match = _TIME_TEXT.fullmatch(text)
    if match is None:
        return None
    year_text, month, day, bc, hour, minute, second, fraction, sign, off_h, off_m, off_s = match.groups()
    year = 1 - int(year_text) if bc else int(year_text)  # (ISO counts 1 BC as year 0)
    shift = (year - 2000) // _CYCLE * _CYCLE
    try:
        moment = datetime(year - shift, int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0))
    except ValueError:
        return None
    if sign is not None:
        offset = timedelta(hours=int(off_h), minutes=int(off_m or 0), seconds=int(off_s or 0))
        moment -= offset if sign == "+" else -offset
    year = moment.year + shift
    year_shown = f"{year:04d}" if 0 <= year <= 9999 else f"{'+' if year > 0 else '-'}{abs(year):06d}"
    if hour is None:
        return f"{year_shown}-{moment:%m-%d}"
    digits = fraction or ""
    digits = digits.ljust(3 if len(digits) <= 3 else 6 if len(digits) <= 6 else 9, "0")
    return f"{year_shown}-{moment:%m-%dT%H:%M:%S}.{digits}Z"


# DuckDB's kinds of dates and times (DuckDBPyType.id) that answer_value looks at.
_TIME_KINDS = frozenset(
    ("date", "timestamp", "timestamp_s", "timestamp_ms", "timestamp_ns", "timestamp with time zone")
)
# DuckDB gives Python an infinite date or time as these very objects (a finite 9999-12-31 23:59:59.999999 is an
# object of its own, so `is` tells them apart).
_INFINITE = ((datetime.max, "infinity"), (datetime.min, "-infinity"), (date.max, "infinity"), (date.min, "-infinity"))


def needs_answering(kind: Any) -> bool:
    """Whether a column of this DuckDB type may hold dates, times or 4-byte floats (answer_value need only look at
    those)."""
    shown = str(kind)
    return "TIMESTAMP" in shown or "DATE" in shown or "FLOAT" in shown


def answer_value(value: Any, kind: Any) -> Any:
    """A value DuckDB gave Python, of the DuckDB type `kind`, with its dates and times that Python cannot hold as
    their answer's text (an infinite one, one past year 9999 or BC that DuckDB gave as its own text, a
    TIMESTAMP_NS read as text to keep its nanoseconds), and its 4-byte floats as their fewest digits: each is then
    the same for every engine and edge, however its rows travel (a query worker's are pickled, which makes
    datetime.max another object)."""
    if value is None:
        return None
    for infinite, text in _INFINITE:
        if value is infinite:
            return text
    kind_id = kind.id
    if kind_id == "float" and isinstance(value, float):
        return single_float(value)
    if kind_id in _TIME_KINDS:
        return (text_as_iso(value) or value) if isinstance(value, str) else value
    if kind_id in ("list", "array") and isinstance(value, list | tuple):
        child = kind.children[0][1]
        return [answer_value(v, child) for v in value]
    if kind_id == "struct" and isinstance(value, dict):
        fields = dict(kind.children)
        return {k: answer_value(v, fields[k]) if k in fields else v for k, v in value.items()}
    if kind_id == "map" and isinstance(value, dict):
        (_, key_kind), (_, value_kind) = kind.children
        return {answer_value(k, key_kind): answer_value(v, value_kind) for k, v in value.items()}
    return value
