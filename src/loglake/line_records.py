"""One line of a log stream as a loglake record, for `loglake send` and other shippers. No I/O.

A line is one of two things:
- a JSON object: a loglake record, or a structured log line from another logger (pino, bunyan, winston,
  logrus, zap, slog, Serilog, python-json-logger, ECS loggers, GCP, `journalctl -o json`), both read by
  the same rule. Its message, level and time become the record's (and its id, service and log_type);
  every other field is kept as an attribute, and so is any of those fields whose value cannot be used
  (an unknown level, a number that is not a time, a service that is no valid name).
- plain text (anything else, JSON that is not an object included): the whole line is the message.

The default service, severity and log type (`--service`, ...) fill what a line does not give, and a
line without a usable time gets `now_ms`, the time it was read. The record is then made to fit the
server's default limits (record_fit.py), so that the server takes every line.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import msgspec

from loglake import ecs
from loglake.field_names import (
    MESSAGE_FIELDS,
    NAME_FIELDS,
    SEVERITY_FIELDS,
    SPAN_ID_FIELDS,
    TIME_FIELDS,
    TRACE_ID_FIELDS,
    FieldName,
)
from loglake.model import SPAN_ID_HEX_DIGITS, TRACE_ID_HEX_DIGITS, Limits, hex_id, is_valid_name
from loglake.protocols.names import logger_level_severity
from loglake.record_fit import INVALID_UTF8, fit_record
from loglake.times import SMALLEST_PLAUSIBLE_MS, format_datetime, parse_iso8601

ID_FIELDS: dict[str, tuple[tuple[FieldName, ...], int]] = {  # each kept when it is a valid id
    "trace_id": (TRACE_ID_FIELDS, TRACE_ID_HEX_DIGITS),
    "span_id": (SPAN_ID_FIELDS, SPAN_ID_HEX_DIGITS),
}

# journald's PRIORITY: syslog severities 0 (emerg) to 7 (debug).
SYSLOG_PRIORITIES = ["critical", "critical", "critical", "error", "warning", "info", "info", "debug"]

LIMITS = Limits()  # the server's defaults (a server with smaller ones may still refuse a record: it is reported)
_DIGITS = re.compile(r"\d+")
_decode = msgspec.json.decode
_encode = msgspec.json.encode


def line_to_record(
    line: str,
    defaults: Mapping[str, str],
    now_ms: int,
    invalid_utf8: bool = False,
    notes: list[str] | None = None,
) -> dict[str, Any] | None:
    """The record a line of a log stream stands for, with the defaults filled in; None for a blank line.
    invalid_utf8: the line was decoded with replacement characters (the record says so). What had to be
    changed for the record to fit the limits, or a time sent that is not the record's, is said in `notes`."""
    text = line.rstrip("\r\n")
    if not text.strip():
        return None
    parsed = _json_object(text)
    notes = notes if notes is not None else []
    fields = {"message": text} if parsed is None else structured_fields(parsed, text, now_ms, notes)
    marks = {INVALID_UTF8: True} if invalid_utf8 else {}
    fitted = fit_record(fields, marks, LIMITS, now_ms, notes)
    return {**defaults, "timestamp": now_ms, **fitted}


def structured_fields(parsed: dict[str, Any], text: str, now_ms: int, notes: list[str]) -> dict[str, Any]:
    """The record fields of a JSON line: message, severity, timestamp (each only when found; a time field
    that gives no usable time is said in `notes`, as the record then has the time it was read), service
    (else ECS's service.name) and log_type (when valid names), trace_id and span_id (else ECS's trace.id and
    span.id; when valid ids), id (a string: record_fit keeps it as an attribute unless it is a UUID), and the
    rest as attributes. A level that names no severity (GCP's DEFAULT, "no level given") stays an attribute."""
    rest = dict(parsed)
    found: dict[str, Any] = {}
    message = _take(rest, MESSAGE_FIELDS, lambda _, v: v if type(v) is str and v else None)
    found["message"] = message if message is not None else text
    severity = _take(rest, SEVERITY_FIELDS, _severity)
    if severity is not None:
        found["severity"] = severity
    timestamp = _take(rest, TIME_FIELDS, lambda _, v: _epoch_ms(v, now_ms))
    if timestamp is not None:
        found["timestamp"] = timestamp
    else:
        unusable = next((name for name in TIME_FIELDS if name in rest), None)
        if unusable is not None:
            notes.append(_restamped(unusable, rest[unusable], now_ms))
    for field, names in NAME_FIELDS.items():
        value = _take(rest, names, _valid_name)
        if value is not None:
            found[field] = value
    for field, (names, digits) in ID_FIELDS.items():
        value = _take(rest, names, lambda _, v, digits=digits: hex_id(v, digits))
        if value is not None:
            found[field] = value
    client_id = _take(rest, ("id",), lambda _, v: v if type(v) is str else None)
    if client_id is not None:
        found["id"] = client_id
    given = rest.get("attributes")
    if type(given) is dict and not given.keys() & rest.keys():  # merged only when no name clashes
        del rest["attributes"]
        rest = {**given, **rest}
    if rest:
        found["attributes"] = rest
    return found


def _json_object(text: str) -> dict[str, Any] | None:
    if not text.lstrip().startswith("{"):
        return None
    try:
        parsed = _decode(text)
    except (msgspec.DecodeError, RecursionError):  # not JSON, or nested too deep to read: plain text
        return None
    return parsed if type(parsed) is dict else None


def _take(fields: dict[str, Any], names: tuple[FieldName, ...], convert: Any) -> Any:
    """The converted value of the first of `names` that converts (removed from `fields`), else None."""
    for name in names:
        if type(name) is not str:
            dotted, parent, _ = name
            if dotted not in fields and parent not in fields:  # (as most lines: no call for nothing)
                continue
            value = _take_ecs(fields, name, convert)
        elif name in fields:  # (inline, not a call per name: it is asked ~20 times a line)
            value = convert(name, fields[name])
            if value is not None:
                del fields[name]
        else:
            continue
        if value is not None:
            return value
    return None


def _take_ecs(fields: dict[str, Any], field: ecs.Field, convert: Any) -> Any:
    """_take for an ECS field sent dotted or nested: nested, its parent keeps its other fields (or goes
    when there are none left)."""
    dotted, parent_name, child = field
    value = _take(fields, (dotted,), convert)
    parent = fields.get(parent_name)
    if value is not None or type(parent) is not dict or child not in parent:
        return value
    value = convert(dotted, parent[child])
    if value is not None:
        others = {name: other for name, other in parent.items() if name != child}
        if others:
            fields[parent_name] = others
        else:
            del fields[parent_name]
    return value


def _valid_name(_: str, value: Any) -> str | None:
    return value if type(value) is str and is_valid_name(value) else None


def _severity(name: str, value: Any) -> str | None:
    if name == "PRIORITY":
        number = int(value) if type(value) is str and _DIGITS.fullmatch(value) else value
        return SYSLOG_PRIORITIES[number] if type(number) is int and 0 <= number <= 7 else None
    return logger_level_severity(value)


def _epoch_ms(value: Any, now_ms: int) -> int | None:
    """The time `value` gives (_read_ms), or None unless it is between 1973 and a day from now."""
    ms = _read_ms(value)
    return ms if ms is not None and SMALLEST_PLAUSIBLE_MS <= ms <= now_ms + LIMITS.max_future_ms else None


def _read_ms(value: Any) -> int | None:
    """Epoch ms from an ISO-8601 text or a number (or digits) of epoch seconds, ms, us or ns, told apart
    by size (below 10^11: seconds, 10^14: ms, 10^17: us); None when it is no time."""
    if type(value) is str and _DIGITS.fullmatch(value):
        value = int(value)
    if type(value) is str:
        try:
            ms = parse_iso8601(value)
        except ValueError:
            return None
    elif type(value) is int or type(value) is float:
        magnitude = abs(value)
        if magnitude < 1e11:
            value = value * 1000  # seconds (as zap's `ts`)
        elif magnitude >= 1e17:
            value = value // 1_000_000  # nanoseconds
        elif magnitude >= 1e14:
            value = value // 1000  # microseconds (as journald's __REALTIME_TIMESTAMP); else ms (as pino's `time`)
        ms = math.floor(value)  # truncated to the millisecond, as ISO-8601 times are
    else:
        return None
    return ms


def _restamped(name: str, value: Any, now_ms: int) -> str:
    """What `loglake send` says of a line whose time field `name` gives no time it can use."""
    ms = _read_ms(value)
    if ms is None:
        why = "is no time (ISO-8601, or epoch seconds, ms, us or ns)"
    elif ms < SMALLEST_PLAUSIBLE_MS:
        why = "is before 1973"
    else:
        why = f"is more than {LIMITS.max_future_ms // 3_600_000} h ahead of this machine's clock"
    sent = _encode(value).decode()
    return f"{name} {sent} {why}: stamped with the time read, {format_datetime(now_ms)} ({name} kept as an attribute)"
