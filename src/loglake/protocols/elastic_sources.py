"""An Elasticsearch bulk's sources onto loglake records: the ECS mapping, source by source (add_ecs_record) or a
chunk of sources of a shipper's shape at a time (add_regular_sources), each field's value kept as its JSON text.
Pure, no I/O.

A source maps to a record: `@timestamp` (or `timestamp`) -> timestamp, `message` (or Fluent Bit's `log`, or
`msg`, or syslog-ng's `MESSAGE`) -> message, `log.level` -> severity, `service.name` -> service, `trace.id` and
`span.id` -> the trace context; nested (`{"log": {"level"}}`) or dotted (`"log.level"`) alike; everything else
into attributes as sent (the index is the log type: elastic).

A document's `_id` makes it stored once: a `create` of an id already stored is refused with 409, as
Elasticsearch refuses it; an `index` of one is answered 200 with result `noop` and stores nothing, since
loglake does not overwrite a record (Elasticsearch would replace the document).
"""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Callable, Iterable
from itertools import repeat
from operator import contains
from typing import TYPE_CHECKING, Any

import msgspec
from msgspec import Raw

from loglake import ecs, ids
from loglake.digits import is_ascii_digits
from loglake.field_names import SPAN_ID_FIELDS, TRACE_ID_FIELDS
from loglake.model import SPAN_ID_HEX_DIGITS, TRACE_ID_HEX_DIGITS, hex_id
from loglake.protocols.names import level_severity, logger_level_severity, safe_name
from loglake.times import parse_iso8601

if TYPE_CHECKING:
    from loglake.protocols.columns import RecordColumns
    from loglake.protocols.elastic import BulkItem

TIME_FIELDS = (ecs.TIMESTAMP, "timestamp")  # the first present is the record's time (Vector sends `timestamp`)
# The first of these that is a string is the record's message (Filebeat's `log` is an object, Fluent Bit's the line;
# syslog-ng's elasticsearch-http() sends its MESSAGE macro).
MESSAGE_FIELDS = ("message", "log", "msg", "MESSAGE")
_MESSAGE_NAMES = f"`{MESSAGE_FIELDS[0]}` (ECS), " + ", ".join(f"`{name}`" for name in MESSAGE_FIELDS[1:-1])
_MESSAGE_NAMES += f" or `{MESSAGE_FIELDS[-1]}`"
_encode = msgspec.json.Encoder().encode
# A source as its fields' JSON texts: the fields loglake does not map go into the attributes as sent, never
# decoded into Python objects (and never paid for by the garbage collector).
decode_source = msgspec.json.Decoder(dict[str, Raw]).decode
_decode_str = msgspec.json.Decoder(str).decode
_decode_time = msgspec.json.Decoder(int | float | str).decode
_NESTED_KNOWN = 1000  # distinct nested values remembered per bulk (Filebeat's `log` objects all differ)


# What _nested_value answered for a bulk's nested values (`{"log": {"level": "info"}}`), by (parent, JSON
# text): a bulk repeats a few of them.
Nested = dict[tuple[str, bytes], tuple[str | None, Raw | bool | None]]


def add_regular_sources(
    sources: list[bytes], items: list[BulkItem], doc_ids: bool, found: RecordColumns, nested: Nested
) -> bool:
    """Add the records of sources as add_ecs_record would (but their log types and trace and span ids), if
    each has a string `message` and a string `@timestamp` (or each `timestamp`), each rule over them all; else
    False (the sources it took apart are dropped: the caller maps each again, as add_ecs_record maps it)."""
    try:
        # Each source decoded on its own: decode_lines would take two values on one line for two sources.
        docs = list(map(decode_source, sources))
        messages = _decode_strings(_joined(map(dict.pop, docs, repeat("message"))))
        times: list[int | str] = _decode_strings(_joined(map(dict.pop, docs, repeat(_time_field(docs)))))
    except (KeyError, TypeError, msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return False
    if any(map(str.isdigit, times)):
        times = list(map(_epoch_ms, times))
    keys = set().union(*docs)  # (what any source has: one pass, not one per name asked)
    if has_flat_fields(keys) or (FLAT_SERVICE in keys and any(_is_text(doc.get(FLAT_SERVICE)) for doc in docs)):
        return False
    assert found.ids is not None
    if doc_ids:
        pairs = zip(items, docs, strict=True)
        found.ids += [None if item.doc_id is None else _client_id(doc, item.index, item.doc_id) for item, doc in pairs]
    else:
        found.ids += [None] * len(docs)
    found.severities += _pop_strings(docs, keys, ecs.LOG_LEVEL, take_severity, nested)
    found.services += _pop_strings(docs, keys, ecs.SERVICE_NAME, take_service, nested)
    found.trace_ids += _pop_strings(docs, keys, ecs.TRACE_ID, take_trace_id, nested)
    found.span_ids += _pop_strings(docs, keys, ecs.SPAN_ID, take_span_id, nested)
    found.messages += messages
    found.timestamps += times
    found.attributes += map(_encode, docs) if all(docs) else [_encode(doc) if doc else b"" for doc in docs]
    return True


def _time_field(docs: list[dict[str, Raw]]) -> str:
    """The field of TIME_FIELDS the sources' times are in: the first when any has it, else the other (a shipper
    names it alike in all it sends; a source without it makes the bulk go item by item)."""
    first, then = TIME_FIELDS
    if any(map(contains, docs, repeat(first))):
        return first
    return then


def _joined(values: Any) -> bytes:
    """JSON values (msgspec.Raw) as the text of one JSON array; TypeError when one is missing (None)."""
    return b"[%b]" % b",".join(values)


_decode_strings = msgspec.json.Decoder(list[str]).decode
_DISTINCT_NESTED = 64  # distinct nested values a chunk's sources may hold and still be read once each


def _pop_strings(
    docs: list[dict[str, Raw]],
    keys: set[str],
    field: ecs.Field,
    convert: Callable[[str], tuple[str | None, bool]],
    nested: Nested,
) -> list[str | None]:
    """_pop_string over every source (keys: each name any of them has, or had before another field was taken
    out, whose names differ from this one's): when none has the dotted name and each has the parent holding only
    the field, as a string that convert takes (`"log": {"level": "info"}` throughout), each distinct parent's
    text read once (a bulk repeats a few levels and services: their texts, split out of one join, are looked
    up, where decoding every source's parent cost more)."""
    dotted, parent, child = field
    if dotted not in keys:
        if parent not in keys:  # (most sources have no trace, say)
            return [None] * len(docs)
        try:  # (a source line holds no newline, so neither does a value in it)
            texts = b"\n".join(map(dict.get, docs, repeat(parent))).split(b"\n")
        except TypeError:  # a source without it
            texts = []
        distinct = set(texts)
        if len(texts) == len(docs) and len(distinct) <= _DISTINCT_NESTED:
            read = {text: _nested_value(Raw(text), child, convert) for text in distinct}
            if all(rest is None for _, rest in read.values()):  # (nothing is left of any)
                deque(map(dict.pop, docs, repeat(parent)), 0)
                made = {text: value for text, (value, _) in read.items()}
                return list(map(made.__getitem__, texts))
    return [_pop_string(doc, field, convert, nested) for doc in docs]


def add_ecs_record(
    source: dict[str, Raw], index: str, doc_id: str | None, found: RecordColumns, nested: Nested
) -> tuple[str, str] | None:
    """Add the loglake record an ECS document (each field's value as JSON text) maps to, or say why it
    cannot be one: (the record field at fault, the reason). The source dict is taken apart."""
    text = _pop_message(source)
    if text is None:
        if "message" in source:
            if bytes(source["message"]).startswith(b'"'):  # text that did not decode
                return "message", "`message` is not valid UTF-8: send the log line as text in UTF-8"
            # (an object: a structured log whose line is elsewhere)
            return "message", f"`message` must be a string: send the log line as text in {_MESSAGE_NAMES}"
        return "message", f"the document has no message: send it as a string in {_MESSAGE_NAMES}"
    timestamp = _pop_first(source, TIME_FIELDS)
    try:
        when = _pop_flat_time(source) if timestamp is None else _epoch_ms(_decode_time(timestamp))
    except msgspec.DecodeError:
        return "timestamp", "`@timestamp` must be a date (ISO-8601) or epoch milliseconds"
    client_id = None if doc_id is None else _client_id(source, index, doc_id)
    # (each ECS field, else the flat name loggers and shippers give it: pino's, Fluent Bit's, winston's)
    severity = _pop_string(source, ecs.LOG_LEVEL, take_severity, nested)
    if severity is None:
        severity = _pop_flat(source, FLAT_LEVELS, _flat_severity, _decode_level)
    found.severities.append(severity)
    service = _pop_string(source, ecs.SERVICE_NAME, take_service, nested)
    found.services.append(_pop_flat(source, (FLAT_SERVICE,), take_service) if service is None else service)
    found.messages.append(text)
    found.timestamps.append(when)
    found.log_types.append(safe_name(index))
    trace_id = _pop_string(source, ecs.TRACE_ID, take_trace_id, nested)
    found.trace_ids.append(_pop_flat(source, FLAT_TRACE_IDS, take_trace_id) if trace_id is None else trace_id)
    span_id = _pop_string(source, ecs.SPAN_ID, take_span_id, nested)
    found.span_ids.append(_pop_flat(source, FLAT_SPAN_IDS, take_span_id) if span_id is None else span_id)
    found.attributes.append(_encode(source) if source else b"")  # (a Raw value is written as it is)
    assert found.ids is not None
    found.ids.append(client_id)
    return None


def _client_id(source: dict[str, Raw], index: str | None, doc_id: str) -> str:
    """A document id as the record's client id, so that a document sent again with the same id is stored once
    (the store answers the first record's id, and elastic_routes a `create` conflict). A UUID is the client id
    as sent; any other id names a document of its index, as in Elasticsearch: the client id is a UUID made of
    the index and the id, and the id goes into the attributes as `_id`."""
    if _is_uuid(doc_id):
        return doc_id
    source["_id"] = Raw(_encode(doc_id))
    return str(uuid.uuid5(_DOCUMENT_IDS, f"{index}\n{doc_id}"))


_DOCUMENT_IDS = uuid.UUID("5f0c2a36-61e4-4c55-9d0a-2b8f7e3c41d9")  # the namespace of the client ids made of _ids


def _pop_message(source: dict[str, Raw]) -> str | None:
    """The first of `message`, `log` and `msg` that is a string, taken out of the source (Filebeat's `log`
    is an object of file details, Fluent Bit's the line itself)."""
    for name in MESSAGE_FIELDS:
        if name in source:
            try:
                text = _decode_str(source[name])
            except msgspec.DecodeError:
                continue
            del source[name]
            return text
    return None


# The flat names loggers and shippers give a record's fields where a document has no ECS one: pino's and winston's
# `level` (a word, or pino's number) and `time`, Fluent Bit's `level` and `service`, OpenTelemetry's log
# correlation's `trace_id` and `span_id` (field_names: what `loglake send` reads). Each is taken only when its value
# is one (a `level` that names no severity, a `time` that is no time, an id that is none, stay attributes).
FLAT_LEVELS = ("level", "severity")
FLAT_SERVICE = "service"  # (a string: ECS's `service` is an object)
FLAT_TIME = "time"
FLAT_TRACE_IDS = tuple(name for name in TRACE_ID_FIELDS if type(name) is str)  # (ECS's `trace.id` is read above)
FLAT_SPAN_IDS = tuple(name for name in SPAN_ID_FIELDS if type(name) is str)
FLAT_NAMES = frozenset({*FLAT_LEVELS, FLAT_TIME, *FLAT_TRACE_IDS, *FLAT_SPAN_IDS})  # (and a string `service`)
_decode_level = msgspec.json.Decoder(str | int).decode  # (pino's levels are numbers)


def has_flat_fields(names: Iterable[str]) -> bool:
    """Whether sources with these names hold a flat field to map (but `service`, which is one when it is text): the
    column-wise mappings leave such a bulk to add_ecs_record."""
    return not FLAT_NAMES.isdisjoint(names)


def _is_text(raw: Raw | None) -> bool:
    return raw is not None and bytes(raw)[:1] == b'"'


def _pop_flat(
    source: dict[str, Raw],
    names: tuple[str, ...],
    convert: Callable[[Any], tuple[str | None, bool]],
    decode: Callable[[Raw], Any] = _decode_str,
) -> Any:
    """The first of the flat fields `names` (each read by `decode`) that convert takes, taken out of the
    attributes."""
    for name in names:
        raw = source.get(name)
        if raw is not None:
            try:
                value, take = convert(decode(raw))
            except msgspec.DecodeError:  # another type: left in the attributes as sent
                continue
            if take:
                del source[name]
            if value is not None:
                return value
    return None


def _flat_severity(level: str | int) -> tuple[str | None, bool]:
    """A `level` word, or pino's and bunyan's number, as the record's severity."""
    severity = logger_level_severity(level)
    return severity, severity is not None


def _pop_flat_time(source: dict[str, Raw]) -> int | str | None:
    """A flat `time` as the record's time, when it is one: epoch milliseconds (pino's), or ISO-8601 text."""
    raw = source.get(FLAT_TIME)
    if raw is None:
        return None
    try:
        value = _decode_time(raw)
    except msgspec.DecodeError:
        return None
    if type(value) is str:
        try:
            parse_iso8601(value)
        except ValueError:
            return None
    del source[FLAT_TIME]
    return _epoch_ms(value)


def _pop_first(source: dict[str, Raw], names: tuple[str, ...]) -> Raw | None:
    """The first of names with a value, taken out, and those before it that are null: Elasticsearch indexes a null
    as no value (a document with `"@timestamp": null` is stored), so it is none here too (the time received)."""
    for name in names:
        if name in source:
            value = source.pop(name)
            if bytes(value) != b"null":
                return value
    return None


def _epoch_ms(value: int | float | str) -> int | str:
    """Elasticsearch's default date formats: ISO-8601 text (left for the record's check, which names what
    is wrong with it), epoch milliseconds as a number or as digits."""
    if type(value) is str:
        return int(value) if is_ascii_digits(value) else value
    return int(value)


def _pop_string(
    source: dict[str, Raw],
    field: ecs.Field,
    convert: Callable[[str], tuple[str | None, bool]],
    nested: Nested,
) -> str | None:
    """The value of a field sent dotted (`log.level`) or nested (`{"log": {"level"}}`) as convert makes it,
    taken out of the attributes when convert says so. A value convert gives None for stays."""
    dotted, parent, child = field
    raw = source.get(dotted)
    if raw is not None:
        value, take = _converted(raw, convert)
        if take:
            del source[dotted]
        return value
    raw = source.get(parent)
    if raw is None:
        return None
    key = (parent, bytes(raw))
    answer = nested.get(key)
    if answer is None:
        answer = _nested_value(raw, child, convert)
        if len(nested) < _NESTED_KNOWN:
            nested[key] = answer
    value, rest = answer
    if rest is None:
        del source[parent]
    elif rest is not True:
        source[parent] = rest
    return value


def _nested_value(
    raw: Raw, child: str, convert: Callable[[str], tuple[str | None, bool]]
) -> tuple[str | None, Raw | bool | None]:
    """The value of a nested field as convert makes it, and what becomes of its parent: the parent without
    it, None when nothing is left, True when it stays as sent."""
    try:
        fields = decode_source(raw)
    except msgspec.DecodeError:  # not an object
        return None, True
    if child not in fields:
        return None, True
    value, take = _converted(fields[child], convert)
    if not take:
        return value, True
    del fields[child]
    return value, Raw(_encode(fields)) if fields else None


def _converted(raw: Raw, convert: Callable[[str], tuple[str | None, bool]]) -> tuple[str | None, bool]:
    try:
        return convert(_decode_str(raw))
    except msgspec.DecodeError:  # not a string: left in the attributes as sent
        return None, False


def take_severity(level: str) -> tuple[str | None, bool]:
    """A log.level as the record's severity, taken out of the attributes when it names one."""
    severity = level_severity(level)
    return severity, severity is not None


def take_trace_id(value: str) -> tuple[str | None, bool]:
    """An ECS trace.id as the record's trace id (OpenTelemetry's, lowercase hex), taken out of the attributes
    when it is one; anything else stays there."""
    found = hex_id(value, TRACE_ID_HEX_DIGITS)
    return found, found is not None


def take_span_id(value: str) -> tuple[str | None, bool]:
    """An ECS span.id as the record's span id, as take_trace_id takes a trace id."""
    found = hex_id(value, SPAN_ID_HEX_DIGITS)
    return found, found is not None


def take_service(name: str) -> tuple[str | None, bool]:
    """A service.name as the record's service: taken out of the attributes when it is a valid name as
    sent, made into one (and left in the attributes as sent) when it is not."""
    if not name:
        return None, False
    service = safe_name(name)
    return service, service == name


def _is_uuid(text: str) -> bool:
    try:
        ids.parse_uuid(text)
    except ValueError:
        return False
    return True
