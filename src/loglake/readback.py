"""Records read back from storage, whatever the storage holds.

Ingest refuses bad records, yet a store can hold values ingest would refuse today: written by an older
loglake (one accepted the client id "0123456789abcdef0123456789abcd  " and stored 15 bytes of it), by
another tool writing into the lake folder, or by hand. One such value must not fail every page it is
on, so every reader (hot store rows, lake Parquet rows, DynamoDB items, Athena rows) builds its records
here. A value that cannot be used is replaced by what the record can still say (the time in its log id,
severity info, no attributes, no client id, bytes or numbers as text) and the record names the field in
`unreadable`, which answers show as `"unreadable": [{"field", "reason"}]`. A record whose log id cannot
be read is left out, as it can be neither fetched nor paged past. Both are logged, once per record.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

import msgspec

from loglake import ids
from loglake.model import (
    SEVERITY_ALIASES,
    SEVERITY_NAMES,
    SPAN_ID_HEX_DIGITS,
    TRACE_ID_HEX_DIGITS,
    NewRecord,
    Severity,
    StoredRecord,
    hex_id,
)
from loglake.times import LATEST_MS

log = logging.getLogger("loglake.readback")

_check_json = msgspec.json.Decoder(msgspec.Raw).decode
_JSON_SPACE = b" \t\r\n"
_SHOWN_CHARS = 60  # of a bad value, quoted in the reason
_REPORTED_MAX = 10_000  # records already logged, remembered so a page read every second logs once
_reported: set[Any] = set()
_SEVERITY_OF_NAME = {name: int(severity) for name, severity in SEVERITY_ALIASES.items()}
_SEVERITIES = len(SEVERITY_NAMES)


def stored_id(value: Any, where: str) -> bytes | None:
    """A log id as stored (canonical UUID text or 16 bytes), or None, logged, when it is neither."""
    if type(value) is bytes and len(value) == 16:
        return value
    try:
        return ids.parse_uuid(value)
    except ValueError:
        unreadable_id(value, where)
        return None


def unreadable_id(value: Any, where: str) -> None:
    """Log (once) a record left out because its log id cannot be read."""
    _report_once(
        ("log id", where, repr(value)), "left out a record in %s: its log id %s is not a UUID", where, _shown(value)
    )


def record(
    log_id: bytes,
    timestamp: Any,
    service: Any,
    log_type: Any,
    severity: Any,
    message: Any,
    attributes: Any,
    client_id: Any,
    trace_id: Any = None,
    span_id: Any = None,
) -> StoredRecord:
    """A record from its stored values: timestamp in epoch ms, texts, severity a number (0-4) or a name,
    attributes a JSON object as text, client_id a canonical UUID as text or 16 bytes, trace and span ids
    as lowercase hex; None for none."""
    # The checks of the common case inline (a page can hold a thousand records); anything else is
    # sorted out field by field in _salvaged.
    level = severity if type(severity) is int else _SEVERITY_OF_NAME.get(severity) if type(severity) is str else None
    if (
        type(timestamp) is int
        and 0 <= timestamp < LATEST_MS
        and type(service) is str
        and type(log_type) is str
        and type(message) is str
        and level is not None
        and 0 <= level < _SEVERITIES
        and (trace_id is None or hex_id(trace_id, TRACE_ID_HEX_DIGITS) == trace_id)
        and (span_id is None or hex_id(span_id, SPAN_ID_HEX_DIGITS) == span_id)
    ):
        try:
            if attributes is not None:
                attributes = _attributes(attributes)
            if client_id is not None and not (type(client_id) is bytes and len(client_id) == 16):
                client_id = ids.parse_uuid(client_id)
        except ValueError:
            pass
        else:
            return NewRecord(
                log_id, timestamp, service, log_type, level, message, attributes, client_id, trace_id, span_id
            )
    return _salvaged(log_id, timestamp, service, log_type, severity, message, attributes, client_id, trace_id, span_id)


def _salvaged(
    log_id: bytes,
    timestamp: Any,
    service: Any,
    log_type: Any,
    severity: Any,
    message: Any,
    attributes: Any,
    client_id: Any,
    trace_id: Any,
    span_id: Any,
) -> StoredRecord:
    """The slow path: each field on its own, replaced and named when it cannot be read."""
    problems: list[tuple[str, str]] = []

    def read(field: str, value: Any, check: Callable[[Any], Any], instead: Any) -> Any:
        try:
            return check(value)
        except (ValueError, TypeError) as e:
            problems.append((field, str(e)))
            return instead

    fields = (
        read("timestamp", timestamp, _timestamp, ids.timestamp_of(log_id)),
        read("service", service, _text, as_text(service)),
        read("log_type", log_type, _text, as_text(log_type)),
        read("severity", severity, _severity, Severity.INFO),
        read("message", message, _text, as_text(message)),
        read("attributes", attributes, _attributes, None),
        read("id", client_id, _client_id, None),
        read("trace_id", trace_id, functools.partial(_hex_id, TRACE_ID_HEX_DIGITS), None),
        read("span_id", span_id, functools.partial(_hex_id, SPAN_ID_HEX_DIGITS), None),
    )
    found = tuple(problems)
    _report_once(
        log_id, "record %s has unreadable values: %s", ids.format_uuid(log_id), "; ".join(f"{f}: {r}" for f, r in found)
    )
    return NewRecord(log_id, *fields, unreadable=found)


def _timestamp(value: Any) -> int:
    if type(value) is int and 0 <= value < LATEST_MS:
        return value
    raise ValueError(f"{_shown(value)} is not a time in epoch milliseconds; the time in the logId is shown")


def _text(value: Any) -> str:
    if type(value) is str:
        return value
    raise ValueError(f"{_shown(value)} is not text; shown as text")


def _severity(value: Any) -> int:
    if type(value) is int and 0 <= value < len(SEVERITY_NAMES):
        return value
    found = SEVERITY_ALIASES.get(value) if type(value) is str else None
    if found is None:
        raise ValueError(f"{_shown(value)} is not a severity; shown as info")
    return int(found)


def _attributes(value: Any) -> bytes | None:
    if value is None:
        return None
    data = value.encode() if type(value) is str else value
    if type(data) is not bytes:
        raise ValueError(f"{_shown(value)} is not a JSON object; left out")
    try:
        _check_json(data)
    except msgspec.DecodeError as e:
        raise ValueError(f"is not valid JSON ({e}); left out") from None
    if data.lstrip(_JSON_SPACE)[:1] != b"{":
        raise ValueError(f"{_shown(value)} is not a JSON object; left out")
    return data


def _client_id(value: Any) -> bytes | None:
    if value is None or (type(value) is bytes and len(value) == 16):
        return value
    try:
        return ids.parse_uuid(value)
    except ValueError:
        raise ValueError(f"{_shown(value)} is not a UUID; left out") from None


def _hex_id(digits: int, value: Any) -> str | None:
    if value is None:
        return None
    found = hex_id(value, digits)
    if found != value:
        raise ValueError(f"{_shown(value)} is not {digits} lowercase hex digits; left out")
    return found


def as_text(value: Any) -> str:
    """Any stored value as text: bytes decoded (bad UTF-8 replaced), None as ""."""
    if value is None:
        return ""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 3] + "..."


def _report_once(key: Any, message: str, *args: Any) -> None:
    if key in _reported:
        return
    if len(_reported) >= _REPORTED_MAX:
        _reported.clear()
    _reported.add(key)
    log.warning(message, *args)
