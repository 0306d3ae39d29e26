"""Elasticsearch's answers to the bulk and single-document APIs and its error form, as Elasticsearch 8 and 9
give them (elastic maps the requests). Pure, no I/O."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import groupby, repeat
from operator import attrgetter
from typing import Any

import msgspec
import pyarrow as pa
import pyarrow.compute as pc

from loglake.protocols.elastic import CREATED_STATUS, BulkItem, ItemsAlike, actions_of

_SHARDS = {"total": 1, "successful": 1, "failed": 0}
_encode = msgspec.json.Encoder().encode


@dataclass(frozen=True, slots=True)
class AnswerFilter:
    """The parts of a bulk answer a client asked for with `filter_path`: the top-level keys, and the fields of
    each item's entry (None: all). Beats and Logstash ask for `errors,items.*.error,items.*.status`: an entry
    of a stored item is then the same few bytes for every item, where the whole one (its id, version,
    shards...) made the answer to a 10 MB bulk some 7 MB to write and for the client to read."""

    top: frozenset[str]
    item_fields: frozenset[str] | None


def answer_filter(filter_path: str) -> AnswerFilter | None:
    """The filter a bulk's `filter_path` names, None for the whole answer: when there is none, or it is of a
    form loglake does not apply (wildcards elsewhere, exclusions), whose answer would then hold more than
    asked, never less."""
    top: set[str] = set()
    fields: set[str] = set()
    whole_items = False
    for path in filter(None, (part.strip() for part in filter_path.split(","))):
        if path in _TOP_KEYS:
            top.add(path)
            whole_items = whole_items or path == "items"
        elif field := _ITEM_FIELD.fullmatch(path):
            top.add("items")
            fields.add(field[1])
        else:
            return None
    if not top:
        return None
    return AnswerFilter(frozenset(top), None if whole_items else frozenset(fields))


_TOP_KEYS = ("errors", "took", "items")
_ITEM_FIELD = re.compile(r"items\.\*\.(\w+)")  # a field of every item's entry (`items.*.status`)


def bulk_answer(
    items: Sequence[BulkItem], took_ms: int, keep: AnswerFilter | None = None, ids: pa.StringArray | None = None
) -> bytes:
    """Elasticsearch's bulk response as JSON: one entry per action in the request's order, `errors` when any
    failed; with `keep`, only what it names (an entry left with nothing is left out, as Elasticsearch
    leaves it). Stored items come in runs of one action, index and status, whose entries are the same text
    but for their ids: a run is that text joined around its ids, and the answer one join of the runs' pieces;
    a bulk that is one run (all stored alike, the usual answer) is one join of its ids, the answer's start and
    end around them, with no copy of the run's text to copy again. (A dict per item, encoded, took more of the
    event loop than the rest of the request; then an entry text per item, and the answer copied whole three
    times, 0.7 us an item; then 0.4 us with a run's text copied into the answer: a 10 MB bulk's answer is some
    7 MB, and making it twice, fresh memory each, cost more than the rest of it.) ids: every item's `_id` in
    order, when each was stored with its record's logId as its id (UUID text, which JSON does not escape), for
    Arrow to join without a Python object per id; else each item's doc_id is its `_id`."""
    fields = None if keep is None else keep.item_fields
    stored: dict[tuple[str, str | None, int], tuple[bytes, bytes | None]] = {}
    # An item's entry, or a run of stored items' in pieces; a run's ids are encoded, to be joined (_IdRun).
    entries: list[tuple[bytes, ...] | _IdRun] = []
    errors = False
    first = 0  # the run's first item
    for (action, index, status, error), run in _runs(items, every_created=ids is not None):
        if error is None:
            key = (action, index, status)
            around = stored.get(key)
            if around is None:
                around = stored[key] = _stored_entry(*key, fields)
            before, after = around
            if after is not None:
                run_ids = list(map(_encode, map(_DOC_ID, run))) if ids is None else ids.slice(first, len(run))
                entries.append(_IdRun(before, run_ids, after))
            elif before:
                entries.append((b",".join(repeat(before, len(run))),))
        else:
            errors = True
            error_type, reason = error
            for item in run:
                # (Elasticsearch answers a failed item the id it generated for it: clients key retries by it)
                doc_id = item.doc_id if item.doc_id is not None else str(uuid.uuid4())
                entry = {"_index": item.index, "_id": doc_id, "status": item.status}
                entry["error"] = {"type": error_type, "reason": reason}
                if kept := _kept(entry, fields):
                    entries.append((_encode({item.action: kept}),))
        first += len(run)
    return _answer(errors, took_ms, keep, entries)


def created_answer(items: Sequence[BulkItem], took_ms: int, keep: AnswerFilter | None) -> bytes | None:
    """bulk_answer's text for a bulk whose every item was stored as a new record (status 201, no error: each
    stored as a checked table's row), when the answer keeps neither `_index` nor `_id` of its entries (Beats'
    and Logstash's filter_path) and the items share one action: every entry is then the same text, and the
    answer is that text repeated, after one pass over the items (their actions) where bulk_answer groups them
    into runs (Filebeat's 1,600 documents: 0.04 against 0.11 us a document). None for any other bulk (bulk_answer
    answers it)."""
    fields = None if keep is None else keep.item_fields
    if fields is None or "_index" in fields or "_id" in fields:
        return None
    actions = actions_of(items)
    if len(actions) != 1:
        return None
    (action,) = actions
    entry, _ = _stored_entry(action, None, CREATED_STATUS, fields)
    return _answer(False, took_ms, keep, [(b",".join(repeat(entry, len(items))),)] if entry else [])


def _answer(errors: bool, took_ms: int, keep: AnswerFilter | None, entries: list[tuple[bytes, ...] | _IdRun]) -> bytes:
    """The answer's text around its item entries (those the filter keeps), in one join."""
    answer = {"errors": b"true" if errors else b"false", "took": b"%d" % took_ms}
    if keep is not None:
        answer = {name: text for name, text in answer.items() if name in keep.top}
    head = b",".join(b'"%b":%b' % (name.encode(), text) for name, text in answer.items())
    if not entries or (keep is not None and "items" not in keep.top):
        return b"{%b}\n" % head
    start = b"".join([b"{", head, b',"items":[' if head else b'"items":['])
    if len(entries) == 1 and type(entries[0]) is _IdRun:
        return entries[0].joined(start, b"]}\n")
    pieces = [start]
    for entry in entries:
        if len(pieces) > 1:
            pieces.append(b",")
        pieces += (entry.joined(),) if type(entry) is _IdRun else entry
    return b"".join([*pieces, b"]}\n"])


@dataclass(slots=True)
class _IdRun:
    """A run of stored items whose entries differ only in their ids: each entry is before, its id, after."""

    before: bytes
    ids: list[bytes] | pa.StringArray  # (JSON text; or UUID text, which JSON writes as it is, quoted)
    after: bytes

    def joined(self, start: bytes = b"", end: bytes = b"") -> bytes:
        """The run's entries, comma-separated, after start and before end, in one join."""
        ids = self.ids
        between = self.after + b"," + self.before
        if isinstance(ids, pa.Array):
            listed = pa.ListArray.from_arrays(pa.array([0, len(ids)], pa.int32()), ids)
            inner = pc.binary_join(listed, f'"{between.decode()}"')[0].as_buffer()
            return b"".join((start, self.before, b'"', inner, b'"', self.after, end))
        ids[0] = start + self.before + ids[0]
        ids[-1] += self.after + end
        return between.join(ids)


def _runs(items: Sequence[BulkItem], every_created: bool) -> Iterable[tuple[_Outcome, Sequence[BulkItem]]]:
    """The items in runs of one outcome (action, index, status, error), in order. `every_created`: each was stored
    as a new record (201): then items made alike are one run, with no pass over them."""
    if every_created and type(items) is ItemsAlike:
        return [((items.action, items.index, CREATED_STATUS, None), items)]
    return ((outcome, list(same)) for outcome, same in groupby(items, _OUTCOME))


_Outcome = tuple[str, str | None, int, tuple[str, str] | None]
_OUTCOME = attrgetter("action", "index", "status", "error")
_DOC_ID = attrgetter("doc_id")


# What Elasticsearch says of a stored document after its _index and _id (a bulk item adds its status), and
# of one whose _id was stored already, kept as it was (KEPT: loglake does not overwrite a record).
_CREATED = {"_version": 1, "result": "created", "_shards": _SHARDS, "_seq_no": 0, "_primary_term": 1}
_KEPT = _CREATED | {"result": "noop"}
KEPT_STATUS = 200


def _stored_entry(
    action: str, index: str | None, status: int, fields: frozenset[str] | None
) -> tuple[bytes, bytes | None]:
    """The text of a stored item's entry before and after its `_id`; when the id is not among the fields
    kept, all of it and None (b"" when nothing is kept)."""
    told = _KEPT if status == KEPT_STATUS else _CREATED
    entry = _kept({"_index": index, "_id": None, **told, "status": status}, fields)
    if not entry:
        return b"", None
    text = _encode({action: entry})
    if "_id" not in entry:
        return text, None
    before, after = text.split(b'"_id":null', 1)
    return before + b'"_id":', after


def _kept(entry: dict[str, Any], fields: frozenset[str] | None) -> dict[str, Any]:
    return entry if fields is None else {name: value for name, value in entry.items() if name in fields}


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
