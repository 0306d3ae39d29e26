"""What loglake.logging's background thread makes of a queued log call: its id and its POST /logs line.

A log call captures what it must at once and nothing more (loglake.logging): a LogRecord's fields as a
dict, or a structlog event as an `Event`. The message is formatted here, on the handler's thread, when
its arguments are plain values (a str, a number...) that cannot change meanwhile; the handler formats
others at the call. Here too come the id, the exception's traceback, a stack_info=True call's stack, the `extra=`
fields and the fit to the server's limits (record_fit, as `loglake send` fits a line): nothing is dropped, what is
cut is marked.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
import traceback
from collections.abc import Callable
from typing import Any, NamedTuple

import msgspec

from loglake.ids import format_uuid, uuid7_bytes
from loglake.model import SPAN_ID_HEX_DIGITS, TRACE_ID_HEX_DIGITS, Limits, hex_id
from loglake.record_fit import INVALID_UTF8, fit_attributes_json, fit_message

# A LogRecord's own fields: anything else in its __dict__ came with `extra=` (or a filter).
RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}
# Arguments of these types cannot change after the call: formatting them later gives the same text.
PLAIN_ARGUMENTS = frozenset({str, int, float, bool, type(None), bytes})
_LIMITS = Limits()  # a server's defaults: what a record must fit so that it is not refused
_encode = msgspec.json.Encoder(enc_hook=str).encode
_encode_valid = msgspec.json.Encoder(enc_hook=lambda value: valid_text(str(value))).encode  # (for LineMaker.line)
# Levels of an extra= value looked into (bytes made text, text made valid): well below Python's recursion limit.
_DEEPEST_LOOKED_INTO = 100
_SEVERITIES = ((logging.CRITICAL, "critical"), (logging.ERROR, "error"), (logging.WARNING, "warning"))
_SEVERITIES += ((logging.INFO, "info"),)
# A traceback's last line: the exception's (module-qualified) type name, and its message after ": ".
_EXCEPTION_LINE = re.compile(r"(?P<type>[A-Za-z_][\w.]*)(?:: (?P<message>.*))?")


class Event(NamedTuple):
    """A log call that is not a LogRecord (the structlog processor's), stamped when it was made; its
    exception is made at the call (exception_of, or exception_from_text: structlog may have formatted it)."""

    created: float
    level: int
    logger: str
    message: str
    attributes: dict | None
    exception: dict[str, str] | None = None


class _Line(msgspec.Struct, omit_defaults=True):
    """A record as POST /logs takes it, with the handler's own id (a retry is then stored once)."""

    id: str
    timestamp: int
    service: str
    log_type: str
    severity: str
    message: str
    attributes: msgspec.Raw
    trace_id: str | None = None
    span_id: str | None = None


# Where a log call's trace context comes from, by the record field it fills: `extra=` under loglake's name, or
# OpenTelemetry's logging instrumentation's (LoggingInstrumentor sets otelTraceID and otelSpanID on each record);
# else the OpenTelemetry span current at the call (loglake.logging.with_current_trace).
# (line_records.ID_FIELDS's shape: a line's names are other loggers' own)
TRACE_FIELDS = {
    "trace_id": (("trace_id", "otelTraceID"), TRACE_ID_HEX_DIGITS),
    "span_id": (("span_id", "otelSpanID"), SPAN_ID_HEX_DIGITS),
}


def message_of(msg: Any, args: Any) -> tuple[str, bool]:
    """LogRecord.getMessage's text, and whether the arguments fitted the format (else the format and the
    arguments as text: a bad log call must not lose the record)."""
    try:
        text = str(msg)
        return (text % args if args else text), True
    except Exception:
        return f"{msg} {args!r}", False


class LineMaker:
    """Queued entries as (id, JSON line) for one handler's service and log type; `on_error()` hears each
    log call whose arguments did not fit its format."""

    def __init__(self, service: str, log_type: str, on_error: Callable[[], None]) -> None:
        self.service = service
        self.log_type = log_type
        self.on_error = on_error

    def line(self, entry: dict | Event) -> tuple[str, bytes]:
        """The entry's id and its line, made once: a retry sends the same bytes."""
        if type(entry) is dict:
            message, fitted = message_of(entry["msg"], entry["args"])
            if not fitted:
                self.on_error()
            created, level, logger = entry["created"], entry["levelno"], entry["name"]
            exc_info = entry["exc_info"]
            exception = exception_of(exc_info) if exc_info and exc_info[1] is not None else None
            stack = entry["stack_info"]  # a stack_info=True call's (a record field: never one of the extra= fields)
            extra_names = [name for name in entry if name not in RECORD_FIELDS]  # in the caller's order
            extra = {name: entry[name] for name in extra_names} if extra_names else None
        else:
            created, level, logger, message, extra, exception = entry  # type: ignore[misc]
            stack = None  # (structlog's StackInfoRenderer makes its own `stack` key, an attribute as any other)
        ids = take_trace_ids(extra) if extra else {}
        if extra:
            extra = {name: _bytes_as_text(value) for name, value in extra.items()}
        # The logger, the exception and the stack first: attributes beyond the limits overflow from the last.
        logged: dict[str, Any] = {}  # what the call logged besides extra=, rather than an extra of its name
        if exception is not None:
            logged["exception"] = exception
        if stack:
            logged["stack"] = stack
        attributes: dict[str, Any] = {"logger": logger} | logged
        if extra:
            attributes |= extra
            attributes |= logged
        timestamp = int(created * 1000)
        record_id = format_uuid(uuid7_bytes(timestamp))
        try:
            line = self._line(record_id, timestamp, level, logger, message, attributes, ids, {}, _encode)
        except UnicodeEncodeError:
            # Text with lone surrogates, which no UTF-8 holds: bytes that were no UTF-8, as os.fsdecode, sys.argv
            # and os.environ keep them (a file name, say). Replaced by U+FFFD and marked, as `loglake send` does.
            marks = {INVALID_UTF8: True}
            logger, message, attributes = valid_text(logger), valid_text(message), valid_text(attributes)
            line = self._line(record_id, timestamp, level, logger, message, attributes, ids, marks, _encode_valid)
        return record_id, line

    def _line(
        self,
        record_id: str,
        timestamp: int,
        level: int,
        logger: str,
        message: str,
        attributes: dict[str, Any],
        ids: dict[str, str],
        marks: dict[str, Any],
        encode: Callable[[Any], bytes],
    ) -> bytes:
        message, marks = fit_message(message, marks, _LIMITS, []) if message else ("(empty message)", marks)
        line = _Line(
            record_id,
            timestamp,
            self.service,
            self.log_type,
            severity(level),
            message,
            msgspec.Raw(_fit_attributes(attributes, marks, logger, encode)),
            **ids,
        )
        return _encode(line)


def _bytes_as_text(value: Any, depth: int = 0) -> Any:
    """The value with bytes in it as their str() (`b'GET /'`), as other values JSON cannot hold and as `%s` shows
    them in a message: msgspec writes bytes as base64 (`R0VUIC8=`), which nobody reads in a log. Dicts, lists and
    tuples are looked into, to a depth well below Python's recursion limit (a value that holds itself stays no
    JSON); the value itself when it holds no bytes."""
    kind = type(value)
    if kind is bytes or kind is bytearray or kind is memoryview:
        return str(value if kind is not memoryview else bytes(value))
    if depth == _DEEPEST_LOOKED_INTO:
        return value
    if kind is dict:
        made = {name: _bytes_as_text(item, depth + 1) for name, item in value.items()}
        return value if all(made[name] is item for name, item in value.items()) else made
    if kind is list or kind is tuple:
        items = [_bytes_as_text(item, depth + 1) for item in value]
        return value if all(a is b for a, b in zip(items, value, strict=True)) else items
    return value


def take_trace_ids(extra: dict[str, Any]) -> dict[str, str]:
    """The record's trace_id and span_id, taken out of the `extra=` fields that give them (TRACE_FIELDS) as hex
    text of their length; any other value stays an attribute, as the server would keep it (model.hex_id)."""
    ids: dict[str, str] = {}
    for field, (names, digits) in TRACE_FIELDS.items():
        for name in names:
            if (found := hex_id(extra.get(name), digits)) is not None:
                ids[field] = found
                del extra[name]
                break
    return ids


def severity(level: int) -> str:
    for floor, name in _SEVERITIES:
        if level >= floor:
            return name
    return "debug"


def exception_of(exc_info: Any) -> dict[str, str]:
    """A logged exception as the `exception` attribute: its type, message and traceback."""
    kind, value, trace = exc_info
    return {
        "type": kind.__name__ if kind is not None else "",
        "message": str(value),
        "traceback": "".join(traceback.format_exception(kind, value, trace)),
    }


def exception_from_text(text: str) -> dict[str, str] | None:
    """The `exception` attribute of a traceback already formatted (by structlog's format_exc_info, which
    keeps no exception object), or None when the text is no traceback. The exception being handled gives
    the type and message when the text ends with it, as a `.exception()` call's does; else they are read
    from the text's last line (the exception's own, unless its message has more than one line, or notes)."""
    current = sys.exception()
    if current is not None and text.rstrip().endswith("".join(traceback.format_exception_only(current)).rstrip()):
        kind, message = type(current).__name__, str(current)
    elif text.startswith("Traceback (most recent call last):"):
        last = _EXCEPTION_LINE.fullmatch(text.rstrip().rsplit("\n", 1)[-1])
        if last is None:
            return None
        kind, message = last["type"].rsplit(".", 1)[-1], last["message"] or ""
    else:
        return None
    return {"type": kind, "message": message, "traceback": text if text.endswith("\n") else text + "\n"}


def _fit_attributes(attributes: dict[str, Any], marks: dict[str, Any], logger: str, encode: Callable) -> bytes:
    """The attributes and marks as JSON within the server's limits; a value that is no JSON (its str() raises, it
    holds itself) as a text saying why; the logger's name and why alone when a key is not text."""
    try:
        return fit_attributes_json(attributes, marks, _LIMITS, [], encode)
    except Exception as e:
        if type(e) is UnicodeEncodeError and encode is _encode:
            raise  # text that no UTF-8 holds: LineMaker.line makes it valid, and marks it
        why = e
    # Each value that is no JSON said so in its place, the others kept: one such `extra=` value (an object whose
    # str() raises, a dict that holds itself) dropped every attribute of its record, the logger's name aside.
    with contextlib.suppress(Exception):  # (a key that is not text: no attribute can be told apart from it)
        return fit_attributes_json(_json_values(attributes, encode), marks, _LIMITS, [], encode)
    return encode({"logger": logger, "attributes_dropped": valid_text(f"not JSON: {why}"), **marks})


def _json_values(attributes: dict[str, Any], encode: Callable) -> dict[str, Any]:
    """The attributes, each value that `encode` cannot make JSON of as a text saying why."""
    kept: dict[str, Any] = {}
    for name, value in attributes.items():
        try:
            encode({name: value})
        except Exception as e:
            value = valid_text(f"not JSON: {e}")
        kept[name] = value
    return kept


def valid_text(value: Any, depth: int = 0) -> Any:
    """`value` with each lone surrogate in its text (and in a dict's, a list's or a set's, to a depth well below
    Python's recursion limit: a value that holds itself stays no JSON) as U+FFFD, one for each byte when it
    stands for one (os.fsdecode's U+DC80-U+DCFF), as `loglake send` reads bytes that are no UTF-8."""
    if type(value) is str:
        try:
            data = value.encode("utf-8", "surrogateescape")  # the bytes the surrogates stand for
        except UnicodeEncodeError:
            data = value.encode("utf-8", "surrogatepass")  # other lone surrogates (from a JSON escape, say)
        return data.decode("utf-8", "replace")
    if depth == _DEEPEST_LOOKED_INTO:
        return value
    if isinstance(value, dict):
        return {valid_text(name, depth + 1): valid_text(item, depth + 1) for name, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [valid_text(item, depth + 1) for item in value]
    return value
