"""Splunk's HTTP Event Collector (HEC) onto loglake records: batched events, raw text, Splunk's status
codes. Pure, no I/O.

An event body is one or more JSON event objects, concatenated with or without whitespace between them
(`{"event": "a"}{"event": "b"}`). Each maps to a record:

- `event` -> message: a string as it is; an object's `message` (or `msg`), its `severity` (or `level`)
  -> severity and the rest into attributes; any other value (an object without a message too) as the
  JSON text;
- `time` (epoch seconds, decimals for fractions) -> timestamp (one in a finer unit: the time received, the time
  sent kept as attribute `time_sent`); `sourcetype` -> log_type;
- `host`, `source`, `sourcetype` and `index` (each, when the event gives none, the query's) into attributes;
- `fields` (Splunk's indexed fields) into attributes, their `severity` (or `level`) -> severity,
  `service.name` (or `service`) -> service, `trace_id` and `span_id` (where OpenTelemetry's Splunk HEC
  exporter puts them) -> trace_id and span_id when they are ids (mapping.take_ids; others stay attributes).

Other top-level keys are ignored, as Splunk ignores them. (splunk_fields.py holds the rules for `fields` and the
fast path for events as shippers send them.) A batch is all-or-nothing, as in Splunk: one
bad event refuses the request, naming the event's number.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import msgspec

from loglake.decode_errors import in_words, lone_surrogates_replaced, not_json_reason, split_error
from loglake.protocols.columns import TIME_SENT, RecordColumns
from loglake.protocols.mapping import SECONDS_EXAMPLE, take_ids
from loglake.protocols.names import safe_name
from loglake.protocols.splunk_fields import (
    FINER_THAN_SECONDS,
    METADATA,
    plain_columns,
    take_service,
    take_severity,
)

_encode = msgspec.json.Encoder().encode
_raw_decode = json.JSONDecoder().raw_decode


class HecError(ValueError):
    """A refusal in Splunk's terms: its status code (which implies the HTTP status) and text, the number
    of the event at fault (from 0) when one is, the record field it fails ("" for an event that is no JSON object),
    by which it is counted as POST /logs counts a refused record, and how many events the refused batch holds
    (as far as read)."""

    def __init__(self, code: int, reason: str, event_number: int | None = None, field: str = "") -> None:
        super().__init__(reason)
        self.code = code
        self.event_number = event_number
        self.field = field
        self.events = 1 if event_number is None else event_number + 1


def event_name(number: int) -> str:
    """An event as the answers name it: by its number from 0, as Splunk's `invalid-event-number` counts."""
    return f"event {number} (counted from 0, as Splunk does)"


# The record field each of an event's keys fills, for counting an event refused for one.
_RECORD_FIELDS = {"event": "message", "time": "timestamp", "sourcetype": "log_type"}


def _field_at(error: msgspec.ValidationError) -> str:
    """The record field of the event's key a validation error names (the others go into the attributes)."""
    key = split_error(str(error))[1].split(".", 1)[0].split("[", 1)[0]
    return _RECORD_FIELDS.get(key, "attributes") if key else ""


# Splunk's status codes: (HTTP status, text), https://docs.splunk.com "Troubleshoot HTTP Event Collector".
STATUS = {
    0: (200, "Success"),
    2: (401, "Token is required"),
    3: (401, "Invalid authorization"),
    4: (403, "Invalid token"),
    5: (400, "No data"),
    6: (400, "Invalid data format"),
    9: (503, "Server is busy"),
    12: (400, "Event field is required"),
    13: (400, "Event field cannot be blank"),
    14: (400, "ACK is disabled"),
    15: (400, "Error in handling indexed fields"),
    17: (200, "HEC is healthy"),
    18: (503, "HEC is unhealthy, queues are full"),
}


def answer(code: int, reason: str = "", event_number: int | None = None) -> tuple[int, dict[str, Any]]:
    """The HTTP status and body Splunk answers with for a status code; loglake adds its reason, which says
    what to do next, beside Splunk's fixed text."""
    status, text = STATUS[code]
    body: dict[str, Any] = {"text": text, "code": code}
    if event_number is not None:
        body["invalid-event-number"] = event_number
    if reason:
        body["reason"] = reason
    return status, body


class HecEvent(msgspec.Struct, gc=False):
    """One event as Splunk takes it; other top-level keys are ignored, as Splunk ignores them."""

    event: Any = msgspec.UNSET
    time: int | float | str | None = None  # (an integer as such: a float keeps 16 digits of an ns time_sent)
    host: str | None = None
    source: str | None = None
    sourcetype: str | None = None
    index: str | None = None
    fields: dict[str, Any] | None = None


_decode_events = msgspec.json.Decoder(HecEvent).decode_lines
_decode_event = msgspec.json.Decoder(HecEvent).decode


def event_columns(body: bytes, params: dict[str, str] | None = None) -> RecordColumns:
    """The records of an event body, or HecError naming the first event at fault. The query's host, source,
    sourcetype and index (`params`) are those of the events that give none, as Splunk takes them."""
    if not body.strip():
        raise HecError(5, "the body is empty: send one or more JSON event objects")
    defaults = tuple((params or {}).get(name) or None for name in METADATA)
    plain = plain_columns(body, defaults)
    if plain is not None:
        return plain
    events = _events(body)
    try:
        return _columns(events, defaults)
    except HecError as e:
        e.events = len(events)
        raise


def _events(body: bytes) -> list[HecEvent]:
    # Clients concatenate events with no separator: a line break between `}{` makes them NDJSON. A `}{`
    # inside a string becomes a raw line break there, which no JSON string may hold, so such a body
    # fails this fast decode and takes the exact one, which also names the event at fault.
    try:
        return _decode_events(body.replace(b"}{", b"}\n{"))
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        pass
    fixed = lone_surrogates_replaced(body)  # (U+FFFD, as Splunk and the OpenTelemetry Collector read them)
    if fixed is not None:
        return _events(fixed)
    try:
        text = body.decode()
    except UnicodeDecodeError:
        raise HecError(6, "the body is not UTF-8") from None
    events: list[HecEvent] = []
    position = 0
    while True:
        while position < len(text) and text[position].isspace():
            position += 1
        if position == len(text):
            return events
        number, start = len(events), position
        try:
            _, position = _raw_decode(text, start)  # where this event ends
            events.append(_decode_event(text[start:position]))
        except (json.JSONDecodeError, RecursionError) as e:
            raise HecError(6, f"{event_name(number)} is not JSON: {e}", number, "") from None
        except msgspec.ValidationError as e:
            raise HecError(6, f"{event_name(number)}: {in_words(e, whole='the event')}", number, _field_at(e)) from None
        except msgspec.DecodeError as e:  # (what Python's reader takes and msgspec does not: never a 500)
            reason = not_json_reason(e, text[start:position].encode())
            raise HecError(6, f"{event_name(number)} is not JSON: {reason}", number, "") from None


def _columns(events: list[HecEvent], defaults: tuple[str | None, ...]) -> RecordColumns:
    found = RecordColumns()
    sourcetypes = []
    messages, times, severities, services = found.messages, found.timestamps, found.severities, found.services
    metadata: dict[tuple[str | None, ...], dict[str, str]] = {}  # a batch's events share a few host/source sets
    for number, event in enumerate(events):
        own: dict[str, Any] = {}
        body = event.event
        own_service = own_ids = None
        if type(body) is str and body:
            messages.append(body)
            severity = None
        else:
            message, severity, own_service, own_ids = _message(number, body, own)
            messages.append(message)
        timestamp = None if event.time is None else _epoch_ms(event.time, number)
        times.append(timestamp)
        sent = (event.host, event.source, event.sourcetype, event.index)
        given = tuple(default if value is None else value for value, default in zip(sent, defaults, strict=True))
        sourcetypes.append(given[2])
        named = metadata.get(given)
        if named is None:
            pairs = zip(METADATA, given, strict=True)
            named = metadata[given] = {name: value for name, value in pairs if value is not None}
        own |= named
        service = trace_id = span_id = None
        if event.fields is not None:
            service, level, trace_id, span_id = _take_fields(number, event.fields, own)
            severity = severity or level
        service = service or own_service  # (the indexed fields', else the event object's own)
        if own_ids is not None and trace_id is None and span_id is None:
            trace_id, span_id = own_ids
        severities.append(severity)
        services.append(service)
        found.trace_ids.append(trace_id)
        found.span_ids.append(span_id)
        if timestamp is None and event.time is not None:
            own[TIME_SENT] = _time_sent(event.time)
        found.attributes.append(_encode(own) if own else b"")
    names = {given: None if given is None else safe_name(given) for given in set(sourcetypes)}
    found.log_types = [names[given] for given in sourcetypes]
    return found


def _message(
    number: int, body: Any, attributes: dict[str, Any]
) -> tuple[str, str | None, str | None, tuple[str | None, str | None] | None]:
    """The message, severity, service and trace and span ids of an `event`: a string as it is; an object's
    `message` (or `msg`), its `severity` (or `level`), `service` (or `service.name`), `trace_id` and `span_id`,
    the rest into attributes (as the indexed `fields` give them: a logger without `fields`, as splunk-logging,
    names them in the event); any other value as JSON text."""
    if type(body) is str and body:
        return body, None, None, None
    if body is msgspec.UNSET:
        raise HecError(12, f"{event_name(number)} has no `event` field: put the log line in it", number, "message")
    if body is None or body == "":
        raise HecError(13, f"{event_name(number)} has a blank `event`", number, "message")
    if type(body) is dict:
        for key in ("message", "msg"):
            if type(body.get(key)) is str:
                message = body.pop(key)
                severity, service, ids = take_severity(body), take_service(body), take_ids(body)
                attributes |= body
                return message, severity, service, ids
    return _encode(body).decode(), None, None, None


def _take_fields(
    number: int, fields: dict[str, Any], attributes: dict[str, Any]
) -> tuple[str | None, str | None, str | None, str | None]:
    """Splunk's indexed fields (flat: each a string, a number or a list of them) into the attributes; their
    service, severity, trace id and span id, when they name them."""
    if dict in map(type, fields.values()):
        raise HecError(
            15, f"{event_name(number)}: `fields` must be a flat object (values strings or lists)", number, "attributes"
        )
    severity = take_severity(fields)
    service = take_service(fields)
    trace_id, span_id = take_ids(fields)
    attributes |= fields
    return service, severity, trace_id, span_id


def _ms(seconds: float) -> int:
    """Splunk's `time`, epoch seconds with decimals for fractions, as epoch ms."""
    return round(seconds * 1000)


def _epoch_ms(value: int | float | str, number: int) -> int | None:
    """Splunk's `time`: epoch seconds as a number or as text, with decimals for fractions of a second; None for a
    time in a finer unit (past the year 5000 in seconds: a unit gone wrong), which the record keeps as sent
    (_time_sent) and is stored at its arrival, as the other times no clock could mean are (columns.TIME_SENT):
    Splunk stores such an event, and a batch refused for it is lost whole by shippers that take a refusal for
    delivered (Fluent Bit)."""
    try:
        # (text only as a number is written: float() also reads "1_796_651_454", which Splunk refuses, and
        # spaces around it, or digits of other scripts)
        seconds = float(value) if type(value) is not str or _SECONDS_TEXT.fullmatch(value) else math.nan
    except (ValueError, OverflowError):  # (OverflowError: an integer past any float)
        seconds = math.nan
    if not math.isfinite(seconds):
        raise HecError(
            6, f"{event_name(number)}: `time` must be epoch seconds, like {SECONDS_EXAMPLE}", number, "timestamp"
        )
    return None if seconds >= FINER_THAN_SECONDS else _ms(seconds)


_SECONDS_TEXT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def _time_sent(value: int | float | str) -> float | int | str:
    """A `time` as the shipper sent it, for TIME_SENT: a whole number decoded as a float as its digits, when a float
    holds them all (1e300 stays 1e300, not 301 digits of which 285 were never sent)."""
    whole = type(value) is float and value.is_integer() and abs(value) < _EXACT_IN_A_FLOAT
    return int(value) if whole else value


_EXACT_IN_A_FLOAT = 2.0**53


def raw_columns(body: bytes, params: dict[str, str]) -> RecordColumns:
    """The records of a raw body: each non-blank line one event, with the query's host, source,
    sourcetype, index and time."""
    try:
        text = body.decode()
    except UnicodeDecodeError:
        raise HecError(6, "the body is not UTF-8 text") from None
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise HecError(5, "the body is empty: send the log lines, one per line")
    count = len(lines)
    timestamp = _epoch_ms(params["time"], 0) if "time" in params else None
    attributes = {name: params[name] for name in METADATA if params.get(name)}
    if timestamp is None and "time" in params:
        attributes[TIME_SENT] = params["time"]
    log_type = safe_name(params["sourcetype"]) if params.get("sourcetype") else None
    nothing = [None] * count
    return RecordColumns(
        lines,
        [timestamp] * count,
        nothing,
        [log_type] * count,
        nothing,
        [_encode(attributes) if attributes else b""] * count,
        nothing,
        nothing,
    )
