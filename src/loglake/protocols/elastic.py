"""Elasticsearch's bulk API onto loglake records: the NDJSON action/source pairs, the ECS mapping and the
bulk answer, as Elasticsearch 8 and 9 give them. Pure, no I/O.

Only `create` and `index` add documents; loglake keeps logs append-only, so `update` and `delete`
are refused item by item, as Elasticsearch refuses an item it cannot apply. A source maps to a record:
`@timestamp` (or `timestamp`) -> timestamp, `message` (or Fluent Bit's `log`, or `msg`) -> message,
`log.level` -> severity, `service.name` -> service, the index -> log_type; nested (`{"log": {"level"}}`)
or dotted (`"log.level"`) alike; everything else into attributes as sent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec
from msgspec import Raw

from loglake import ids
from loglake.protocols.columns import RecordColumns
from loglake.protocols.names import level_severity, safe_name

VERSION = "9.0.0"  # the Elasticsearch version loglake answers as: the 9.x clients and Beats accept it
ADDING_ACTIONS = ("create", "index")
REFUSED_ACTIONS = ("update", "delete")
DOCUMENT_ERROR = "document_parsing_exception"  # Elasticsearch's error type for a source it cannot take
_SHARDS = {"total": 1, "successful": 1, "failed": 0}
_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode
_decode_fields = msgspec.json.Decoder(dict[str, Raw]).decode
_decode_str = msgspec.json.Decoder(str).decode
_decode_time = msgspec.json.Decoder(int | float | str).decode
_NESTED_KNOWN = 1000  # distinct nested values remembered per bulk (Filebeat's `log` objects all differ)


class BulkRefused(ValueError):
    """The request as a whole is malformed (Elasticsearch answers it with a single error)."""

    def __init__(self, reason: str, status: int = 400, error_type: str = "illegal_argument_exception") -> None:
        super().__init__(reason)
        self.status = status
        self.error_type = error_type


@dataclass(slots=True)
class BulkItem:
    """One action of a bulk request and, once decided, its outcome."""

    action: str
    index: str | None
    doc_id: str | None
    row: int | None = None  # where its source's record is in the bulk's columns, while it may be stored
    status: int = 201
    error: tuple[str, str] | None = None  # (Elasticsearch error type, reason) of a refused item

    def refuse(self, reason: str, error_type: str = DOCUMENT_ERROR, status: int = 400) -> None:
        self.row = None
        self.status = status
        self.error = (error_type, reason)


# What _nested_value answered for a bulk's nested values (`{"log": {"level": "info"}}`), by (parent, JSON
# text): a bulk repeats a few of them.
_Nested = dict[tuple[str, bytes], tuple[str | None, Raw | bool | None]]


def parse_bulk(body: bytes, path_index: str | None) -> tuple[list[BulkItem], RecordColumns]:
    """The items of a bulk body, each with its record's row in the columns or the reason it is refused;
    BulkRefused when the body is not a bulk request at all (an action line that is not one, a missing source
    line, no final newline)."""
    if not body.endswith(b"\n"):
        raise BulkRefused("The bulk request must be terminated by a newline [\\n]")
    lines = body.split(b"\n")
    actions: dict[bytes, tuple[str, str | None, str | None]] = {}  # clients repeat one action line
    items: list[BulkItem] = []
    found = RecordColumns(ids=[])
    nested: _Nested = {}
    number = 0
    while number < len(lines):
        line = lines[number]
        number += 1
        if not line or line.isspace():
            continue
        item = _action(number, line, path_index, actions)
        if item.action == "delete":
            item.refuse(_not_append_only("delete"), "illegal_argument_exception")
        else:
            while number < len(lines) and (not lines[number] or lines[number].isspace()):
                number += 1
            if number == len(lines):
                raise BulkRefused(f"the {item.action} action on line {number} has no source line after it")
            number += 1
            _map_source(item, lines[number - 1], found, nested)
        items.append(item)
    if not items:
        raise BulkRefused("Validation Failed: 1: no requests added;", error_type="action_request_validation_exception")
    return items, found


def _action(
    number: int, line: bytes, path_index: str | None, known: dict[bytes, tuple[str, str | None, str | None]]
) -> BulkItem:
    found = known.get(line)
    if found is None:
        found = known[line] = _read_action(number, line, path_index)
    return BulkItem(*found)


def _read_action(number: int, line: bytes, path_index: str | None) -> tuple[str, str | None, str | None]:
    malformed = f"Malformed action/metadata line [{number}]"
    try:
        decoded = _decode(line)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        raise BulkRefused(f"{malformed}, expected an object with one action: it is not JSON") from None
    if type(decoded) is not dict or len(decoded) != 1:
        raise BulkRefused(f"{malformed}, expected an object with one action")
    ((action, meta),) = decoded.items()
    if action not in ADDING_ACTIONS and action not in REFUSED_ACTIONS:
        raise BulkRefused(f"{malformed}, expected one of [create, delete, index, update] but found [{action}]")
    if type(meta) is not dict:
        raise BulkRefused(f"{malformed}, expected an object after [{action}]")
    index = meta.get("_index", path_index)
    doc_id = meta.get("_id")
    if doc_id is not None and type(doc_id) is not str:
        raise BulkRefused(f"{malformed}, _id must be a string")
    return action, index if type(index) is str else None, doc_id


def _not_append_only(action: str) -> str:
    return f"loglake keeps logs append-only: the {action} action is not supported; send create or index actions"


def _map_source(item: BulkItem, line: bytes, found: RecordColumns, nested: _Nested) -> None:
    if item.action == "update":
        item.refuse(_not_append_only("update"), "illegal_argument_exception")
    elif item.index is None:
        item.refuse(
            "index is missing: name one in the action (_index) or the path (/{index}/_bulk)",
            "action_request_validation_exception",
        )
    else:
        try:
            # Each field's value stays JSON text: the fields loglake does not map go into the attributes
            # as sent, never decoded into Python objects (and never paid for by the garbage collector).
            source = _decode_fields(line)
        except RecursionError:
            item.refuse("failed to parse the source: it nests too deeply")
            return
        except (msgspec.DecodeError, UnicodeDecodeError) as e:
            item.refuse(f"failed to parse the source: it is not a JSON object in UTF-8: {e}")
            return
        problem = add_ecs_record(source, item.index, item.doc_id, found, nested)
        if problem:
            item.refuse(problem)
        else:
            item.row = len(found) - 1


def add_ecs_record(
    source: dict[str, Raw], index: str, doc_id: str | None, found: RecordColumns, nested: _Nested
) -> str:
    """Add the loglake record an ECS document (each field's value as JSON text) maps to, or say why it
    cannot be one. The source dict is taken apart."""
    text = _pop_message(source)
    if text is None:
        return "the document has no message: send it as a string in `message` (ECS), `log` or `msg`"
    timestamp = _pop_first(source, ("@timestamp", "timestamp"))
    try:
        when = None if timestamp is None else _epoch_ms(_decode_time(timestamp))
    except msgspec.DecodeError:
        return "`@timestamp` must be a date (ISO-8601) or epoch milliseconds"
    client_id = None
    if doc_id is not None:
        if _is_uuid(doc_id):
            client_id = doc_id  # the record's client id: a retried document is stored once
        else:
            source["_id"] = Raw(_encode(doc_id))
    found.severities.append(_pop_string(source, "log.level", "log", "level", _severity, nested))
    found.services.append(_pop_string(source, "service.name", "service", "name", _valid_or_safe_name, nested))
    found.messages.append(text)
    found.timestamps.append(when)
    found.log_types.append(safe_name(index))
    found.attributes.append(_encode(source) if source else b"")  # (a Raw value is written as it is)
    found.trace_ids.append(None)
    found.span_ids.append(None)
    assert found.ids is not None
    found.ids.append(client_id)
    return ""


def _pop_message(source: dict[str, Raw]) -> str | None:
    """The first of `message`, `log` and `msg` that is a string, taken out of the source (Filebeat's `log`
    is an object of file details, Fluent Bit's the line itself)."""
    for name in ("message", "log", "msg"):
        if name in source:
            try:
                text = _decode_str(source[name])
            except msgspec.DecodeError:
                continue
            del source[name]
            return text
    return None


def _pop_first(source: dict[str, Raw], names: tuple[str, ...]) -> Raw | None:
    for name in names:
        if name in source:
            return source.pop(name)
    return None


def _epoch_ms(value: int | float | str) -> int | str:
    """Elasticsearch's default date formats: ISO-8601 text (left for the record's check, which names what
    is wrong with it), epoch milliseconds as a number or as digits."""
    if type(value) is str:
        return int(value) if value.isdigit() else value
    return int(value)


def _pop_string(
    source: dict[str, Raw],
    dotted: str,
    parent: str,
    child: str,
    convert: Callable[[str], tuple[str | None, bool]],
    nested: _Nested,
) -> str | None:
    """The value of a field sent dotted (`log.level`) or nested (`{"log": {"level"}}`) as convert makes it,
    taken out of the attributes when convert says so. A value convert gives None for stays."""
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
        fields = _decode_fields(raw)
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


def _severity(level: str) -> tuple[str | None, bool]:
    """A log.level as the record's severity, taken out of the attributes when it names one."""
    severity = level_severity(level)
    return severity, severity is not None


def _valid_or_safe_name(name: str) -> tuple[str | None, bool]:
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


def bulk_answer(items: list[BulkItem], took_ms: int) -> bytes:
    """Elasticsearch's bulk response as JSON: one entry per action in the request's order, `errors` when any
    failed. A stored item's entry is the same text but for its id, made once per action and index: a dict
    per item, encoded, took more of the event loop than the rest of the request."""
    stored: dict[tuple[str, str | None], tuple[bytes, bytes]] = {}
    entries = []
    errors = False
    for item in items:
        if item.error is None:
            around = stored.get((item.action, item.index))
            if around is None:
                around = stored[item.action, item.index] = _stored_entry(item.action, item.index)
            entries.append(around[0] + _encode(item.doc_id) + around[1])
        else:
            errors = True
            error_type, reason = item.error
            entry = {"_index": item.index, "_id": item.doc_id, "status": item.status}
            entries.append(_encode({item.action: entry | {"error": {"type": error_type, "reason": reason}}}))
    flag = b"true" if errors else b"false"
    return b'{"errors":%b,"took":%d,"items":[%b]}\n' % (flag, took_ms, b",".join(entries))


# What Elasticsearch says of a stored document after its _index and _id (a bulk item adds its status).
_CREATED = {"_version": 1, "result": "created", "_shards": _SHARDS, "_seq_no": 0, "_primary_term": 1}


def _stored_entry(action: str, index: str | None) -> tuple[bytes, bytes]:
    """The text of a stored item's entry before and after its `_id`."""
    before = b'{%b:{"_index":%b,"_id":' % (_encode(action), _encode(index))
    after = b',%b,"status":201}}' % _encode(_CREATED)[1:-1]
    return before, after


def document_bulk(action: str, index: str, doc_id: str | None, body: bytes) -> bytes:
    """The single-document APIs (`PUT /{index}/_doc/{id}`, `POST /{index}/_doc`, `PUT /{index}/_create/{id}`)
    as the one-action bulk they amount to. A document may span lines; JSON holds no raw newline inside a
    string, so they can all become spaces."""
    meta = {"_index": index} if doc_id is None else {"_index": index, "_id": doc_id}
    return b"%b\n%b\n" % (_encode({action: meta}), body.replace(b"\n", b" "))


def document_answer(item: BulkItem) -> dict[str, Any]:
    """Elasticsearch's answer to a stored single document."""
    return {"_index": item.index, "_id": item.doc_id, **_CREATED}


def error_body(status: int, error_type: str, reason: str) -> dict[str, Any]:
    """Elasticsearch's form of an error answered to a whole request."""
    cause = {"type": error_type, "reason": reason}
    return {"error": {"root_cause": [cause], **cause}, "status": status}
