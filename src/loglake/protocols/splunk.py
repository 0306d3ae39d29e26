"""Splunk's HTTP Event Collector (HEC) onto loglake records: batched events, raw text, Splunk's status
codes. Pure, no I/O.

An event body is one or more JSON event objects, concatenated with or without whitespace between them
(`{"event": "a"}{"event": "b"}`). Each maps to a record: `event` -> message (a string as it is; an
object's `message` (or `msg`) with the rest of the object into attributes, or the whole object as JSON
text when it has none), `time` (epoch seconds, decimals for sub-seconds) -> timestamp, `sourcetype` ->
log_type, `host`, `source`, `sourcetype` and `index` into attributes, `fields` (Splunk's indexed fields)
into attributes, a `severity` or `level` of the event object or of `fields` -> severity, `service.name`
or `service` of `fields` -> service. Other top-level keys are ignored, as Splunk ignores them. A batch
is all-or-nothing, as in Splunk: one bad event refuses the request, naming the event's number.
"""

from __future__ import annotations

import json
import math
from typing import Any

import msgspec

from loglake.protocols.names import level_severity, safe_name

METADATA = ("host", "source", "sourcetype", "index")
_decode_lines = msgspec.json.Decoder().decode_lines
_encode = msgspec.json.Encoder().encode
_raw_decode = json.JSONDecoder().raw_decode


class HecError(ValueError):
    """A refusal in Splunk's terms: its status code (which implies the HTTP status) and text, the number
    of the event at fault (from 0) when one is, and how many events the refused batch holds (as far as read)."""

    def __init__(self, code: int, reason: str, event_number: int | None = None) -> None:
        super().__init__(reason)
        self.code = code
        self.event_number = event_number
        self.events = 1 if event_number is None else event_number + 1


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


def event_records(body: bytes) -> list[dict[str, Any]]:
    """The records of an event body, or HecError naming the first event at fault."""
    if not body.strip():
        raise HecError(5, "the body is empty: send one or more JSON event objects")
    events = _events(body)
    try:
        return [_event_record(number, event) for number, event in enumerate(events)]
    except HecError as e:
        e.events = len(events)
        raise


def _events(body: bytes) -> list[Any]:
    # Clients concatenate events with no separator: a line break between `}{` makes them NDJSON. A `}{`
    # inside a string becomes a raw line break there, which no JSON string may hold, so such a body
    # fails this fast decode and takes the exact one.
    try:
        return _decode_lines(body.replace(b"}{", b"}\n{"))
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        pass
    try:
        text = body.decode()
    except UnicodeDecodeError:
        raise HecError(6, "the body is not UTF-8") from None
    events: list[Any] = []
    position = 0
    while True:
        while position < len(text) and text[position].isspace():
            position += 1
        if position == len(text):
            return events
        try:
            event, position = _raw_decode(text, position)
        except (json.JSONDecodeError, RecursionError) as e:
            raise HecError(6, f"event {len(events)} is not JSON: {e}", len(events)) from None
        events.append(event)


def _event_record(number: int, event: Any) -> dict[str, Any]:
    if type(event) is not dict:
        raise HecError(6, f"event {number} is not a JSON object", number)
    if "event" not in event:
        raise HecError(12, f"event {number} has no `event` field: put the log line in it", number)
    body = event["event"]
    if body == "" or body is None:
        raise HecError(13, f"event {number} has a blank `event`", number)
    record: dict[str, Any] = {}
    attributes: dict[str, Any] = {}
    if type(body) is str:
        record["message"] = body
    elif type(body) is dict and type(body.get("message", body.get("msg"))) is str:
        body = dict(body)
        record["message"] = body.pop("message") if type(body.get("message")) is str else body.pop("msg")
        _take_severity(body, record)
        attributes |= body
    else:
        record["message"] = _encode(body).decode()
    if "time" in event:
        record["timestamp"] = _epoch_ms(event["time"], number)
    for name in METADATA:
        value = event.get(name)
        if value is not None:
            if type(value) is not str:
                raise HecError(6, f"event {number}: `{name}` must be a string", number)
            attributes[name] = value
    if "sourcetype" in attributes:
        record["log_type"] = safe_name(attributes["sourcetype"])
    fields = event.get("fields")
    if fields is not None:
        _take_fields(number, fields, record, attributes)
    if attributes:
        record["attributes"] = attributes
    return record


def _take_fields(number: int, fields: Any, record: dict[str, Any], attributes: dict[str, Any]) -> None:
    """Splunk's indexed fields: flat, each a string, a number or a list of them."""
    if type(fields) is not dict or any(type(v) is dict for v in fields.values()):
        raise HecError(15, f"event {number}: `fields` must be a flat object (values strings or lists)", number)
    fields = dict(fields)
    _take_severity(fields, record)
    for key in ("service.name", "service"):
        name = fields.get(key)
        if type(name) is str and name:
            record["service"] = safe_name(name)
            if record["service"] == name:
                del fields[key]
            break
    attributes |= fields


def _take_severity(source: dict[str, Any], record: dict[str, Any]) -> None:
    """A `severity` or `level` naming a severity becomes the record's (and leaves the attributes)."""
    for key in ("severity", "level"):
        severity = level_severity(source.get(key))
        if severity is not None and "severity" not in record:
            record["severity"] = severity
            del source[key]


def _epoch_ms(value: Any, number: int) -> int:
    """Splunk's `time`: epoch seconds as a number or as text, with decimals for fractions of a second."""
    seconds = value
    if type(value) is str:
        try:
            seconds = float(value)
        except ValueError:
            seconds = None
    if type(seconds) not in (int, float) or not math.isfinite(seconds):
        raise HecError(6, f"event {number}: `time` must be epoch seconds, like 1426279439.123", number)
    return round(seconds * 1000)


def raw_records(body: bytes, params: dict[str, str]) -> list[dict[str, Any]]:
    """The records of a raw body: each non-blank line one event, with the query's host, source,
    sourcetype, index and time."""
    try:
        text = body.decode()
    except UnicodeDecodeError:
        raise HecError(6, "the body is not UTF-8 text") from None
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise HecError(5, "the body is empty: send the log lines, one per line")
    template: dict[str, Any] = {}
    if "time" in params:
        template["timestamp"] = _epoch_ms(params["time"], 0)
    attributes = {name: params[name] for name in METADATA if params.get(name)}
    if "sourcetype" in attributes:
        template["log_type"] = safe_name(attributes["sourcetype"])
    if attributes:
        template["attributes"] = attributes
    return [template | {"message": line} for line in lines]
