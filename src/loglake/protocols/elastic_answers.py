"""Elasticsearch's answers to the bulk and single-document APIs and its error form, as Elasticsearch 8 and 9
give them (elastic maps the requests). Pure, no I/O."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

if TYPE_CHECKING:
    from loglake.protocols.elastic import BulkItem

_SHARDS = {"total": 1, "successful": 1, "failed": 0}
_encode = msgspec.json.Encoder().encode


def bulk_answer(items: list[BulkItem], took_ms: int) -> bytes:
    """Elasticsearch's bulk response as JSON: one entry per action in the request's order, `errors` when any
    failed. A stored item's entry is the same text but for its id, made once per action and index: a dict
    per item, encoded, took more of the event loop than the rest of the request."""
    stored: dict[tuple[str, str | None, int], tuple[bytes, bytes]] = {}
    entries = []
    errors = False
    for item in items:
        if item.error is None:
            key = (item.action, item.index, item.status)
            around = stored.get(key)
            if around is None:
                around = stored[key] = _stored_entry(*key)
            entries.append(around[0] + _encode(item.doc_id) + around[1])
        else:
            errors = True
            error_type, reason = item.error
            entry = {"_index": item.index, "_id": item.doc_id, "status": item.status}
            entries.append(_encode({item.action: entry | {"error": {"type": error_type, "reason": reason}}}))
    flag = b"true" if errors else b"false"
    return b'{"errors":%b,"took":%d,"items":[%b]}\n' % (flag, took_ms, b",".join(entries))


# What Elasticsearch says of a stored document after its _index and _id (a bulk item adds its status), and
# of one whose _id was stored already, kept as it was (KEPT: loglake does not overwrite a record).
_CREATED = {"_version": 1, "result": "created", "_shards": _SHARDS, "_seq_no": 0, "_primary_term": 1}
_KEPT = _CREATED | {"result": "noop"}
KEPT_STATUS = 200


def _stored_entry(action: str, index: str | None, status: int) -> tuple[bytes, bytes]:
    """The text of a stored item's entry before and after its `_id`."""
    before = b'{%b:{"_index":%b,"_id":' % (_encode(action), _encode(index))
    after = b',%b,"status":%d}}' % (_encode(_KEPT if status == KEPT_STATUS else _CREATED)[1:-1], status)
    return before, after


def conflict_reason(doc_id: str | None) -> str:
    """Elasticsearch's reason for a `create` of a document id already stored (version_conflict_engine_exception)."""
    return f"[{doc_id}]: version conflict, document already exists (current version [1])"


def document_bulk(action: str, index: str, doc_id: str | None, body: bytes) -> bytes:
    """The single-document APIs (`PUT /{index}/_doc/{id}`, `POST /{index}/_doc`, `PUT /{index}/_create/{id}`)
    as the one-action bulk they amount to. A document may span lines; JSON holds no raw newline inside a
    string, so they can all become spaces."""
    meta = {"_index": index} if doc_id is None else {"_index": index, "_id": doc_id}
    return b"%b\n%b\n" % (_encode({action: meta}), body.replace(b"\n", b" "))


def document_answer(item: BulkItem) -> dict[str, Any]:
    """Elasticsearch's answer to a stored single document (its status is the item's)."""
    return {"_index": item.index, "_id": item.doc_id, **(_KEPT if item.status == KEPT_STATUS else _CREATED)}


def error_body(status: int, error_type: str, reason: str) -> dict[str, Any]:
    """Elasticsearch's form of an error answered to a whole request."""
    cause = {"type": error_type, "reason": reason}
    return {"error": {"root_cause": [cause], **cause}, "status": status}
