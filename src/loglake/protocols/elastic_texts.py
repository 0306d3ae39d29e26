"""JSON text of Arrow columns as a compact encoder writes it (elastic_columns' attributes): each row's object of
the members it has, keys and values as read, with JSON's escapes in its strings. Pure, no I/O."""

from __future__ import annotations

from array import array

import msgspec
import pyarrow as pa
import pyarrow.compute as pc

_TEXT = pa.string()
_encode = msgspec.json.Encoder().encode
# What JSON writes escaped in a string, as every encoder writes it: a bulk with another escape (`\\u`, `\\/`)
# goes to parse_bulk.
ESCAPES = {b"\\": "\\", b'"': '"', b"b": "\b", b"f": "\f", b"n": "\n", b"r": "\r", b"t": "\t"}
_ESCAPED = "[" + "".join(f"\\x{ord(character):02x}" for character in ESCAPES.values()) + "]"


# A member's `"name":value` text in each row: pieces for one join (literal texts and arrays of texts, none null)
# when every row has it; else one array of the texts, null where a row has none.
Member = list[str | pa.Array] | pa.Array


def member_texts(name: str, values: pa.Array, escaping: bool) -> Member:
    """Each row's `"name":value` text: in pieces when every row has a value (the object's one join then copies each
    text once, where joining it with its key first copied it twice; an object of such members likewise), else one
    array, null where a row has no value."""
    key = f"{_encode(name).decode()}:"
    kind = values.type
    if values.null_count:
        if pa.types.is_string(kind):  # (quoted with its key: one copy of the texts fewer)
            return pc.binary_join_element_wise(key + '"', _escaped(values) if escaping else values, '"', "")
        return keyed(name, _json_texts(values, escaping))
    if pa.types.is_string(kind):
        return [key + '"', _escaped(values) if escaping else values, '"']
    if pa.types.is_struct(kind) and kind.num_fields:
        children = zip(kind, values.flatten(), strict=True)
        members = [member_texts(field.name, child, escaping) for field, child in children]
        if all(type(member) is list for member in members):
            pieces = [piece for member in members for piece in _after_comma(member, True)]
            return [key + "{", *pieces[1:], "}"]  # (the first comma made the opening brace)
        return [key, json_object(members, values.is_valid())]
    return [key, _json_texts(values, escaping)]


def keyed(name: str, texts: pa.Array) -> pa.Array:
    """Each row's `"name":text`, null where it has no text."""
    return pc.binary_join_element_wise(f"{_encode(name).decode()}:", texts, "")


def json_object(members: list[Member], valid: pa.Array) -> pa.Array:
    """Each row's JSON object of the members it has, null where valid is false."""
    members = [member for member in members if type(member) is list or member.null_count < len(member)]
    if not members:  # (a member in no object is left out)
        return pc.if_else(valid, "{}", pa.scalar(None, _TEXT))
    absent = len(valid) - (pc.sum(valid).as_py() or 0)
    # (in every object: a member in pieces is in every row, and so is every object it is in)
    everywhere = [type(member) is list or member.null_count == absent for member in members]
    pieces: list[str | pa.Array] = []  # each member after a comma (nothing where it is not), for one join
    for member, always in zip(members, everywhere, strict=True):
        pieces += _after_comma(member, always)
    if everywhere[0]:  # its comma the opening brace
        joined = _joined(["{", *pieces[1:], "}"])
    else:  # the first comma made the opening brace
        joined = pc.binary_join_element_wise(pc.binary_replace_slice(_joined(pieces), 0, 1, "{"), "}", "")
    return pc.if_else(valid, joined, pa.scalar(None, _TEXT)) if absent else joined


def _after_comma(member: Member, everywhere: bool) -> list[str | pa.Array]:
    """A member's pieces after a comma; where it is not in every object, one array, null where it is not."""
    if type(member) is list:
        return [",", *member]
    return [",", member] if everywhere else [pc.binary_join_element_wise(",", member, "")]


def _joined(pieces: list[str | pa.Array]) -> pa.Array:
    """Each row's pieces joined (nulls as nothing), neighbouring literal texts joined first."""
    merged: list[str | pa.Array] = []
    for piece in pieces:
        if type(piece) is str and merged and type(merged[-1]) is str:
            merged[-1] += piece
        else:
            merged.append(piece)
    return pc.binary_join_element_wise(*merged, "", null_handling="replace")


def _json_texts(values: pa.Array, escaping: bool) -> pa.Array:
    """Each value's JSON text as a compact encoder writes it, null for none (_compact_length took the types)."""
    kind = values.type
    if pa.types.is_string(kind):
        return pc.binary_join_element_wise('"', _escaped(values) if escaping else values, '"', "")
    if pa.types.is_integer(kind) or pa.types.is_boolean(kind):
        return values.cast(_TEXT)
    if pa.types.is_null(kind):
        return pa.nulls(len(values), _TEXT)
    if pa.types.is_struct(kind):
        pairs = zip(kind, values.flatten(), strict=True)
        return json_object([member_texts(field.name, child, escaping) for field, child in pairs], values.is_valid())
    # A list (_compact_length took no other type): its items' texts, null ones as null.
    items = pc.fill_null(_json_texts(values.values, escaping), "null")
    listed = pa.ListArray.from_arrays(values.offsets, items, mask=values.is_null())
    return pc.binary_join_element_wise("[", pc.binary_join(listed, ","), "]", "")


def _escaped(values: pa.Array) -> pa.Array:
    """Texts as JSON writes them in a string: the few that hold a character it escapes escaped."""
    if not _any_escaped(values):
        return values
    escaping = pc.match_substring_regex(values, _ESCAPED)
    some = pc.filter(values, escaping)
    for escape, character in ESCAPES.items():  # (the backslash first: the others add backslashes)
        some = pc.replace_substring(some, character, "\\" + escape.decode())
    return pc.replace_with_mask(values, escaping, some)


def _any_escaped(values: pa.Array) -> bool:
    """Whether a text holds a character JSON escapes: one search over all their bytes at once, not one a text (an
    attribute's texts are short: the search of each costs more than its bytes)."""
    _, offsets, data = values.buffers()
    bounds = memoryview(offsets).cast("i")
    first, end = bounds[values.offset], bounds[values.offset + len(values)]
    if end == first:
        return False
    texts = [None, pa.py_buffer(array("i", [0, end - first])), data.slice(first, end - first)]
    return pc.any(pc.match_substring_regex(pa.Array.from_buffers(pa.binary(), 1, texts), _ESCAPED)).as_py()
