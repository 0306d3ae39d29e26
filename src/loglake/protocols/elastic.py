"""Elasticsearch's bulk API onto loglake records: the NDJSON action/source pairs, the ECS mapping and the
bulk answer, as Elasticsearch 8 and 9 give them. Pure, no I/O.

Only `create` and `index` add documents; loglake keeps logs append-only, so `update` and `delete`
are refused item by item, as Elasticsearch refuses an item it cannot apply. A source maps to a record:
`@timestamp` (or `timestamp`) -> timestamp, `message` (or Fluent Bit's `log`, or `msg`) -> message,
`log.level` -> severity, `service.name` -> service, the index -> log_type; nested (`{"log": {"level"}}`)
or dotted (`"log.level"`) alike; everything else into attributes as sent.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import msgspec

from loglake import ids
from loglake.protocols.names import level_severity, safe_name

VERSION = "9.0.0"  # the Elasticsearch version loglake answers as: the 9.x clients and Beats accept it
ADDING_ACTIONS = ("create", "index")
REFUSED_ACTIONS = ("update", "delete")
DOCUMENT_ERROR = "document_parsing_exception"  # Elasticsearch's error type for a source it cannot take
_SHARDS = {"total": 1, "successful": 1, "failed": 0}
_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode
_decode_lines = msgspec.json.Decoder().decode_lines


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
    record: dict[str, Any] | None = None  # the loglake record its source maps to, while it may be stored
    status: int = 201
    error: tuple[str, str] | None = None  # (Elasticsearch error type, reason) of a refused item

    def refuse(self, reason: str, error_type: str = DOCUMENT_ERROR, status: int = 400) -> None:
        self.record = None
        self.status = status
        self.error = (error_type, reason)


def parse_bulk(body: bytes, path_index: str | None) -> list[BulkItem]:
    """The items of a bulk body, each with its record or the reason it is refused; BulkRefused when the body
    is not a bulk request at all (an action line that is not one, a missing source line, no final newline)."""
    if not body.endswith(b"\n"):
        raise BulkRefused("The bulk request must be terminated by a newline [\\n]")
    numbered = None
    if b"\n\n" not in body:  # no blank line: the n-th value is on line n
        with contextlib.suppress(msgspec.DecodeError, UnicodeDecodeError, RecursionError):
            numbered = list(enumerate(_decode_lines(body), start=1))
    if numbered is None:
        numbered = _lines_one_by_one(body)
    items: list[BulkItem] = []
    position = 0
    while position < len(numbered):
        number, action_line = numbered[position]
        item = _action(number, action_line, path_index)
        position += 1
        if item.action == "delete":
            item.refuse(_not_append_only("delete"), "illegal_argument_exception")
        else:
            if position == len(numbered):
                raise BulkRefused(f"the {item.action} action on line {number} has no source line after it")
            _, source = numbered[position]
            position += 1
            _map_source(item, source)
        items.append(item)
    if not items:
        raise BulkRefused("Validation Failed: 1: no requests added;", error_type="action_request_validation_exception")
    return items


class _Unreadable(str):
    """A line that is not JSON, with the decoder's reason (a source line so gives its item's error)."""


def _lines_one_by_one(body: bytes) -> list[tuple[int, Any]]:
    numbered: list[tuple[int, Any]] = []
    for number, line in enumerate(body.split(b"\n"), start=1):
        if line.strip():
            try:
                numbered.append((number, _decode(line)))
            except RecursionError:
                numbered.append((number, _Unreadable("it nests too deeply to decode")))
            except (msgspec.DecodeError, UnicodeDecodeError) as e:
                numbered.append((number, _Unreadable(f"it is not JSON in UTF-8: {e}")))
    return numbered


def _action(number: int, line: Any, path_index: str | None) -> BulkItem:
    if type(line) is not dict or len(line) != 1:
        raise BulkRefused(f"Malformed action/metadata line [{number}], expected an object with one action")
    ((action, meta),) = line.items()
    if action not in ADDING_ACTIONS and action not in REFUSED_ACTIONS:
        raise BulkRefused(
            f"Malformed action/metadata line [{number}], expected one of [create, delete, index, update] "
            f"but found [{action}]"
        )
    if type(meta) is not dict:
        raise BulkRefused(f"Malformed action/metadata line [{number}], expected an object after [{action}]")
    index = meta.get("_index", path_index)
    doc_id = meta.get("_id")
    item = BulkItem(action, index if type(index) is str else None, doc_id if type(doc_id) is str else None)
    if doc_id is not None and item.doc_id is None:
        raise BulkRefused(f"Malformed action/metadata line [{number}], _id must be a string")
    return item


def _not_append_only(action: str) -> str:
    return f"loglake keeps logs append-only: the {action} action is not supported; send create or index actions"


def _map_source(item: BulkItem, source: Any) -> None:
    if item.action == "update":
        item.refuse(_not_append_only("update"), "illegal_argument_exception")
    elif item.index is None:
        item.refuse(
            "index is missing: name one in the action (_index) or the path (/{index}/_bulk)",
            "action_request_validation_exception",
        )
    elif type(source) is _Unreadable:
        item.refuse(f"failed to parse the source: {source}")
    elif type(source) is not dict:
        item.refuse("failed to parse the source: it must be a JSON object")
    else:
        record, problem = ecs_record(source, item.index, item.doc_id)
        if problem:
            item.refuse(problem)
        else:
            item.record = record


def ecs_record(source: dict[str, Any], index: str, doc_id: str | None) -> tuple[dict[str, Any], str]:
    """The loglake record an ECS document maps to (the source dict is taken apart), or the reason it
    cannot be one."""
    record: dict[str, Any] = {"log_type": safe_name(index)}
    message = _pop_first(source, ("message", "log", "msg"))
    if message is None:
        return record, "the document has no message: send it in `message` (ECS), `log` or `msg`"
    record["message"] = message
    timestamp = _pop_first(source, ("@timestamp", "timestamp"))
    if timestamp is not None:
        record["timestamp"] = _epoch_ms(timestamp)
    severity = _pop_level(source)
    if severity is not None:
        record["severity"] = severity
    service = _pop_service(source)
    if service is not None:
        record["service"] = service
    if doc_id is not None:
        if _is_uuid(doc_id):
            record["id"] = doc_id  # the record's client id: a retried document is stored once
        else:
            source["_id"] = doc_id
    if source:
        record["attributes"] = source
    return record, ""


def _pop_first(source: dict[str, Any], names: tuple[str, ...]) -> Any:
    for name in names:
        if name in source:
            return source.pop(name)
    return None


def _epoch_ms(value: Any) -> Any:
    """Elasticsearch's default date formats: ISO-8601 text (kept for the record's check), epoch
    milliseconds as a number or as digits."""
    if type(value) is str and value.isdigit():
        return int(value)
    if type(value) is float and value.is_integer():
        return int(value)
    return value


def _pop_level(source: dict[str, Any]) -> str | None:
    """The severity of `log.level` (dotted or nested), taken out of the source when it names one."""
    severity = level_severity(source.get("log.level"))
    if severity is not None:
        del source["log.level"]
        return severity
    log = source.get("log")
    if type(log) is dict:
        severity = level_severity(log.get("level"))
        if severity is not None:
            del log["level"]
            if not log:
                del source["log"]
    return severity


def _pop_service(source: dict[str, Any]) -> str | None:
    """The service of `service.name` (dotted or nested): taken out of the source when it is a valid
    name as sent, made into one (and left in the attributes as sent) when it is not."""
    name = source.get("service.name")
    parent: dict[str, Any] = source
    key = "service.name"
    if name is None and type(source.get("service")) is dict:
        parent, key = source["service"], "name"
        name = parent.get(key)
    if type(name) is not str or not name:
        return None
    service = safe_name(name)
    if service == name:
        del parent[key]
        if parent is not source and not parent:
            del source["service"]
    return service


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


def _stored_entry(action: str, index: str | None) -> tuple[bytes, bytes]:
    """The text of a stored item's entry before and after its `_id`."""
    before = b'{%b:{"_index":%b,"_id":' % (_encode(action), _encode(index))
    after = b',"_version":1,"result":"created","_shards":%b,"_seq_no":0,"_primary_term":1,"status":201}}' % (
        _encode(_SHARDS)
    )
    return before, after


def error_body(status: int, error_type: str, reason: str) -> dict[str, Any]:
    """Elasticsearch's form of an error answered to a whole request."""
    cause = {"type": error_type, "reason": reason}
    return {"error": {"root_cause": [cause], **cause}, "status": status}
