"""Elasticsearch's bulk API onto loglake records: the NDJSON action/source pairs, as Elasticsearch 8 and 9 take
them (elastic_sources maps each source, elastic_answers gives the answers). Pure, no I/O.

Only `create` and `index` add documents; loglake keeps logs append-only, so `update` and `delete`
are refused item by item, as Elasticsearch refuses an item it cannot apply.

A bulk of some size that shippers write regularly is read by Arrow instead (elastic_columns), to the same
records; parse_bulk stays the reference for every bulk.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from itertools import repeat
from operator import attrgetter
from typing import overload

import msgspec

from loglake.decode_errors import not_json_reason
from loglake.protocols.columns import RecordColumns
from loglake.protocols.elastic_sources import Nested, add_ecs_record, add_regular_sources, decode_source
from loglake.protocols.names import safe_name

VERSION = "9.0.0"  # the Elasticsearch version loglake answers as: the 9.x clients and Beats accept it
ADDING_ACTIONS = ("create", "index")
REFUSED_ACTIONS = ("update", "delete")
DOCUMENT_ERROR = "document_parsing_exception"  # Elasticsearch's error type for a source it cannot take
EMPTY_ID = "if _id is specified it must not be empty: leave it out, and the document is given an id"
MAX_ID_BYTES = 512  # Elasticsearch's limit of an _id
CREATED_STATUS = 201  # a stored item's, unless its id was stored before (elastic_answers.KEPT_STATUS)
_decode = msgspec.json.Decoder().decode
_JSON_ARRAY = re.compile(rb"\s*\[")  # (matched, not body.lstrip(): that copies a body of megabytes)


class BulkRefused(ValueError):
    """The request as a whole is malformed (Elasticsearch answers it with a single error)."""

    def __init__(self, reason: str, status: int = 400, error_type: str = "illegal_argument_exception") -> None:
        super().__init__(reason)
        self.status = status
        self.error_type = error_type


class BulkItem(msgspec.Struct, gc=False):
    """One action of a bulk request and, once decided, its outcome. A struct, not a dataclass: a bulk's tens of
    thousands are made in C in about half the time, and none is tracked by the garbage collector (they hold
    only text and numbers, no cycle)."""

    action: str
    index: str | None
    doc_id: str | None
    row: int | None = None  # where its source's record is in the bulk's columns, while it may be stored
    status: int = CREATED_STATUS
    error: tuple[str, str] | None = None  # (Elasticsearch error type, reason) of a refused item
    # The record field at fault of a refused document ("" for a source that is no JSON object, or an action that
    # adds none; log_type for its index), by which it is counted as POST /logs counts a refused record; None for an
    # item refused otherwise: its document stored before (409), or storage refusing it (counted as such).
    field: str | None = None

    def refuse(
        self, reason: str, error_type: str = DOCUMENT_ERROR, status: int = 400, field: str | None = None
    ) -> None:
        self.row = None
        self.status = status
        self.error = (error_type, reason)
        self.field = field


def parse_bulk(body: bytes, path_index: str | None) -> tuple[list[BulkItem], RecordColumns]:
    """The items of a bulk body, each with its record's row in the columns or the reason it is refused;
    BulkRefused when the body is not a bulk request at all (an action line that is not one, a missing source
    line, no final newline)."""
    if not body:
        raise BulkRefused(
            "request body is required: send an action line and a source line per document", 400, "parse_exception"
        )
    if _JSON_ARRAY.match(body):  # (told of the newline first, a sender adding one was refused again)
        raise BulkRefused(
            'a bulk request is NDJSON, not a JSON array: an action line ({"create":{}}) and then the document\'s'
            " line, for each document, each line ended by a newline"
        )
    if not body.endswith(b"\n"):
        raise BulkRefused("The bulk request must be terminated by a newline [\\n]")
    lines = body.split(b"\n")
    regular = _regular_bulk(lines, path_index)
    if regular is not None:
        return regular
    actions: dict[bytes, tuple[str, str | None, str | None]] = {}  # clients repeat one action line
    items: list[BulkItem] = []
    found = RecordColumns(ids=[])
    nested: Nested = {}
    number = 0
    while number < len(lines):
        line = lines[number]
        number += 1
        if not line or line.isspace():
            continue
        item = _action(number, line, path_index, actions)
        if item.action == "delete":
            item.refuse(_not_append_only("delete"), "illegal_argument_exception", field="")
        else:
            action_line = number
            while number < len(lines) and (not lines[number] or lines[number].isspace()):
                number += 1
            if number == len(lines):
                raise BulkRefused(f"the {item.action} action on line {action_line} has no source line after it")
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
        found = known[line] = read_action(number, line, path_index)
    return BulkItem(*found)


def read_action(number: int, line: bytes, path_index: str | None) -> tuple[str, str | None, str | None]:
    """(action, index, _id) of an action line, the line's `number` naming it when it is malformed (BulkRefused)."""
    malformed = f"Malformed action/metadata line [{number}]"
    try:
        decoded = _decode(line)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        raise BulkRefused(f"{malformed}, expected an object with one action: it is not JSON") from None
    if type(decoded) is not dict or not decoded:
        raise BulkRefused(f"{malformed}, expected an object with one action")
    # The first key is the action; keys after it are ignored, as Elasticsearch's API 8 ignores them (with a
    # deprecation warning): winston-elasticsearch writes {"index": {...}, "attempts": 0}, and a 400 crashed the app.
    action, meta = next(iter(decoded.items()))
    if action not in ADDING_ACTIONS and action not in REFUSED_ACTIONS:
        raise BulkRefused(f"{malformed}, expected one of [create, delete, index, update] but found [{action}]")
    if type(meta) is not dict:
        raise BulkRefused(f"{malformed}, expected an object after [{action}]")
    if action == "index" and meta.get("op_type") == "create":
        action = "create"  # (as Elasticsearch takes it: an _id stored before is then a 409, not an overwrite)
    index, doc_id = _text(meta.get("_index", path_index)), _text(meta.get("_id"))
    for name, value in (("_index", index), ("_id", doc_id)):
        if value is not None and type(value) is not str:
            raise BulkRefused(f"{malformed}, {name} must be a string or a number")
    return action, index, doc_id


def _text(value: object) -> object:
    """An action's `_index` or `_id` as Elasticsearch reads it (its parser's text()): a number as its digits,
    so that ids taken from a database's rows (`helpers.bulk` sends them as JSON numbers) name documents."""
    return str(value) if type(value) in (int, float) else value


def _regular_bulk(lines: list[bytes], path_index: str | None) -> tuple[list[BulkItem], RecordColumns] | None:
    """parse_bulk for the bulk shippers send: create or index actions into a known index, each followed by its
    source on the next line; None for any other bulk, which parse_bulk maps item by item. Where each of a few
    hundred sources has a string `message` and a string `@timestamp` (or each `timestamp`), each rule runs
    over them all (a C call decodes a field's values of them all) rather than field by field per source, while
    they stay in the CPU's cache; other sources are mapped one by one, as parse_bulk maps them."""
    if len(lines) % 2 == 0:  # action and source lines in pairs, and the empty piece after the final newline
        return None
    actions, sources = lines[0:-1:2], lines[1::2]
    known: dict[bytes, tuple[str, str | None, str | None]] = {}
    log_types: dict[bytes, str] = {}
    # (a shipper writes one action line throughout: compared with the first, not each hashed into a set)
    for line in (actions[0],) if actions.count(actions[0]) == len(actions) else set(actions):
        try:
            action, index, doc_id = known[line] = read_action(0, line, path_index)  # (parse_bulk names a bad one)
        except BulkRefused:
            return None
        if action not in ADDING_ACTIONS or index is None or id_refusal(doc_id):
            return None
        log_types[line] = safe_name(index)
    items: list[BulkItem] = []
    found = RecordColumns(ids=[])
    doc_ids = any(doc_id is not None for _, _, doc_id in known.values())
    nested: Nested = {}
    for start in range(0, len(sources), _CHUNK):
        chunk = slice(start, start + _CHUNK)
        lines = sources[chunk]
        added = _items(actions[chunk], known, len(found))
        if add_regular_sources(lines, added, doc_ids, found, nested):
            if len(log_types) == 1:
                found.log_types += [*log_types.values()] * len(lines)
            else:
                found.log_types += map(log_types.__getitem__, actions[chunk])
        elif all(map(bytes.strip, lines)):  # a source of another shape among them: each mapped as parse_bulk does
            for item, line in zip(added, lines, strict=True):
                _map_source(item, line, found, nested)
        else:  # a blank line: parse_bulk finds which lines pair up
            return None
        items += added
    return items, found


_CHUNK = 500  # sources mapped at a time: a few hundred KiB of objects


def _items(actions: list[bytes], known: dict[bytes, tuple[str, str | None, str | None]], first: int) -> list[BulkItem]:
    """The items of action lines (known: each distinct line read), their rows counted from first."""
    if len(known) == 1:  # (a shipper writes one action line throughout)
        return items_alike(*next(iter(known.values())), range(first, first + len(actions))).made()
    return [BulkItem(*known[line], row) for row, line in enumerate(actions, first)]


class ItemsAlike(Sequence[BulkItem]):
    """The items of one action line (items_alike): one action, index and doc_id, at rows ascending one by one. While
    none is refused, what holds of one holds of all, and the bulk route passes over them once, not item by item: its
    passes that learnt this from each item (their indices, which are storable, their rows, how many were refused, the
    answer's runs) held the GIL for ~0.25 us an item, a sixth of the time it was held with 10 MB bulks (py-spy --gil,
    4 senders); without them, those bulks went in 1.3x faster (bench/protocols_ingest.py). Nor is a BulkItem made
    for each until one is asked for (to refuse it, say): making them held the GIL for a tenth of the time of the
    thread that checks Filebeat's bulks joined (joined_checks). A part shares its items with the whole."""

    __slots__ = ("_made", "_whole", "action", "doc_id", "index", "rows")

    def __init__(
        self, action: str, index: str | None, doc_id: str | None, rows: range, whole: ItemsAlike | None = None
    ) -> None:
        self.action, self.index, self.doc_id, self.rows = action, index, doc_id, rows
        self._whole = whole  # (a part's: its items are the whole's at its rows)
        self._made: list[BulkItem] | None = None

    def __len__(self) -> int:
        return len(self.rows)

    @overload
    def __getitem__(self, at: int) -> BulkItem: ...
    @overload
    def __getitem__(self, at: slice) -> list[BulkItem]: ...
    def __getitem__(self, at: int | slice) -> BulkItem | list[BulkItem]:
        return self.made()[at]

    def __iter__(self) -> Iterator[BulkItem]:
        return iter(self.made())

    def part(self, start: int, stop: int) -> ItemsAlike:
        """self[start:stop], alike too, its items (once made) these."""
        return ItemsAlike(self.action, self.index, self.doc_id, self.rows[start:stop], self)

    def none_made(self) -> bool:
        """Whether no item was made (for this part or the whole): none can have been refused then."""
        return self._made is None and (self._whole is None or self._whole._made is None)

    def made(self) -> list[BulkItem]:
        """The items, made at the first call."""
        if self._made is None:
            if self._whole is None:
                many = len(self.rows)
                action, index, doc_id = repeat(self.action, many), repeat(self.index, many), repeat(self.doc_id, many)
                self._made = list(map(BulkItem, action, index, doc_id, self.rows))  # (in one C loop)
            else:
                first = self.rows.start - self._whole.rows.start
                self._made = self._whole.made()[first : first + len(self.rows)]
        return self._made


def items_alike(action: str, index: str | None, doc_id: str | None, rows: range) -> ItemsAlike:
    """The items of one action line, at rows."""
    return ItemsAlike(action, index, doc_id, rows)


# What the bulk route and its answer ask of a bulk's items, made alike or a plain list: items made alike answer
# at once, without their items (see ItemsAlike); a list, by a pass over them.


def actions_of(items: Sequence[BulkItem]) -> set[str]:
    """The actions the items take."""
    return {items.action} if type(items) is ItemsAlike else set(map(_ACTION_OF, items))


def indices_of(items: Sequence[BulkItem]) -> set[str | None]:
    """The indices the items name."""
    return {items.index} if type(items) is ItemsAlike else set(map(_INDEX_OF, items))


def rows_of(items: Sequence[BulkItem]) -> Sequence[int]:
    """The items' rows in their bulk's columns (each item storable)."""
    return items.rows if type(items) is ItemsAlike else list(map(_ROW_OF, items))


def part_of(items: Sequence[BulkItem], start: int, stop: int) -> Sequence[BulkItem]:
    """items[start:stop], made alike when they were."""
    return items.part(start, stop) if type(items) is ItemsAlike else items[start:stop]


def storable_of(items: Sequence[BulkItem]) -> Sequence[BulkItem]:
    """The items whose record may be stored (not refused), in order: items made alike, all of them while none was
    made (refused, say)."""
    if type(items) is ItemsAlike and items.none_made():
        return items
    return [item for item in items if item.row is not None]


_ACTION_OF = attrgetter("action")
_INDEX_OF = attrgetter("index")
_ROW_OF = attrgetter("row")


def id_refusal(doc_id: str | None) -> str | None:
    """Why Elasticsearch refuses an `_id` (as it says it), None when it takes it (or none is given): an empty one
    (stored with the client id "", it made every later document sent so a duplicate of it), or one over
    MAX_ID_BYTES."""
    if doc_id is None:
        return None
    if not doc_id:
        return EMPTY_ID
    size = len(doc_id.encode())
    if size > MAX_ID_BYTES:
        return f"id [{doc_id[:40]}...] is too long, must be no longer than {MAX_ID_BYTES} bytes but was: {size}"
    return None


def _not_append_only(action: str) -> str:
    return f"loglake keeps logs append-only: the {action} action is not supported; send create or index actions"


def _map_source(item: BulkItem, line: bytes, found: RecordColumns, nested: Nested) -> None:
    if item.action == "update":
        item.refuse(_not_append_only("update"), "illegal_argument_exception", field="")
        return
    if refusal := id_refusal(item.doc_id):
        item.refuse(refusal, "action_request_validation_exception", field="id")
        return
    try:
        source = decode_source(line)
    except RecursionError:
        item.refuse("failed to parse the source: it nests too deeply", field="attributes")
        return
    except (msgspec.DecodeError, UnicodeDecodeError) as e:
        item.refuse(
            f"failed to parse the source: it is not a JSON object in UTF-8: {not_json_reason(e, line)}", field=""
        )
        return
    if item.index is None:
        item.refuse(
            "index is missing: name one in the action (_index) or the path (/{index}/_bulk)",
            "action_request_validation_exception",
            field="log_type",  # (the index is the record's log type)
        )
    else:
        problem = add_ecs_record(source, item.index, item.doc_id, found, nested)
        if problem is not None:
            field, reason = problem
            item.refuse(reason, field=field)
        else:
            item.row = len(found) - 1
