"""JSON lines read by Arrow (in C++, without the GIL), and JSON text written from Arrow columns as a compact
encoder writes it: each row's object of the members it has, keys and values as read, with JSON's escapes in its
strings. What the bulk paths that read a body whole by Arrow share (ingest_arrow.py, protocols/elastic_columns.py),
each proving in its own way that what Arrow read is the text as sent. Pure, no I/O."""

from __future__ import annotations

import contextlib
from array import array

import msgspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

_TEXT = pa.string()
_encode = msgspec.json.Encoder().encode
_READ = pj.ReadOptions(use_threads=False)  # (a body is read on an ingest thread: one core each)
# What JSON writes escaped in a string, as every encoder writes it: a body with another escape (`\\u`, `\\/`)
# takes the exact path.
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
    """Each value's JSON text as a compact encoder writes it, null for none (compact_length took the types)."""
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
    # A list (compact_length took no other type): its items' texts, null ones as null.
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


# -- reading -----------------------------------------------------------------------------------------------


def has_blank_line(body: bytes) -> bool:
    """Whether a line of the body is empty. The reader skips such a line, and reads a line of two objects
    (`{..}{..}`) as two rows: a body holding both has as many rows as lines, and the text's length, but its rows
    are not its lines (a row per line is what columns_as_sent proves only without blank lines). Searched by RE2
    in C++ without the GIL, at memchr's pace: 0.02 us a document of an Elasticsearch bulk, where Python's re took
    0.09 holding the GIL (`b"\\n\\n" in body` 0.25)."""
    return body.startswith(b"\n") or pc.match_substring_regex(texts_of(body, [0, len(body)]), "\n\n")[0].as_py()


def texts_of(body: bytes, bounds: list[int]) -> pa.LargeBinaryArray:
    """The pieces of body between consecutive bounds as an Arrow array over the body's own memory (no copy), for
    Arrow's compute functions, which run without the GIL."""
    offsets = pa.py_buffer(array("q", bounds))
    return pa.Array.from_buffers(pa.large_binary(), len(bounds) - 1, [None, offsets, pa.py_buffer(body)])


def count_escapes(body: bytes) -> int | None:
    """How many escapes the body's strings hold, each one character more than the character it stands for; None
    when one is not as every encoder writes it."""
    escapes = 0
    at = body.find(b"\\")
    while at >= 0:  # (a handful in a body: a quote or a tab in a line now and then)
        if body[at + 1 : at + 2] not in ESCAPES:
            return None
        escapes += 1
        at = body.find(b"\\", at + 2)
    return escapes


# A body is read in two steps: the fields a sample of its lines names (SAMPLE_BYTES of them from its start), then
# the whole body with those fields alone. Read at once, Arrow makes a column of every field any line names and a
# value (a null) of it in every row, so lines that each name fields of their own cost rows times fields: a POST /logs
# body of 1,000 records with 100 attributes each of their own (1.4 MB) took 32 s and 2.2 GB, an Elasticsearch bulk
# of 400 sources with 200 fields each (1.3 MB) 10 s and 800 MiB (an adversarial trial), both growing with the square
# of the body. Read with its samples' fields, a body costs at most a value per byte of it (checked first), a sample
# at most its own bytes squared. A body whose later lines name another field (a shipper's records vary: an `error`
# object now and then) is sampled again, LATER_SAMPLES spread over it, and read with the fields of all; still short of
# one, it is left to the exact path, as a body Arrow cannot read is.
SAMPLE_BYTES = 16 * 1024
LATER_SAMPLES = 3


def read_lines(body: bytes) -> pa.Table | None:
    """The body's lines (JSON objects) as rows, in C++ without the GIL, texts that Arrow would take for times kept as
    texts; None when Arrow cannot read it (a line that is no object, a key twice), a text is not UTF-8, or its lines
    name fields its samples do not (or so many that reading them would cost more than a value per byte of the
    body): the exact path says what is wrong, or reads it."""
    try:
        if len(body) <= SAMPLE_BYTES:
            return _read(body, None)
        fields = _sampled_fields(body, [0])
        if fields is None:
            return None
        lines = pc.count_substring_regex(texts_of(body, [0, len(body)]), "\n")[0].as_py() + 1  # (RE2, no GIL)
        for later in (False, True):
            if later:
                spread = len(body) // (LATER_SAMPLES + 1)
                more = _sampled_fields(body, [spread * number for number in range(1, LATER_SAMPLES + 1)])
                if more is None:
                    return None
                fields = pa.unify_schemas([fields, more])
            if _values_per_row(fields) * lines > len(body):
                return None
            with contextlib.suppress(pa.ArrowInvalid):  # (a later line names another field)
                return _read(body, fields)
    except (pa.ArrowException, UnicodeDecodeError):  # (fields of one name and two types in two samples, too)
        pass
    return None


def _sampled_fields(body: bytes, starts: list[int]) -> pa.Schema | None:
    """The fields named by the lines of SAMPLE_BYTES from each of these places of the body (the line there on); None
    when a sample's lines name so many fields of their own that reading them took more values than its bytes."""
    schemas = []
    for start in starts:
        if start:
            start = body.find(b"\n", start) + 1  # (the next whole line)
            if not start:
                continue
        end = body.rfind(b"\n", start, start + SAMPLE_BYTES)
        if end < 0:
            end = body.find(b"\n", start)  # (the line alone is longer)
        lines = body[start : len(body) if end < 0 else end + 1]
        sample = _read(lines, None)
        if _values_per_row(sample.schema) * sample.num_rows > len(lines):
            return None
        schemas.append(sample.schema)
    return pa.unify_schemas(schemas) if schemas else None


def _read(body: bytes, fields: pa.Schema | None) -> pa.Table:
    """Arrow's read of the body, with these fields alone (a line naming another is ArrowInvalid) or those it finds;
    texts that Arrow would take for times kept as texts."""
    buffer = pa.py_buffer(body)
    if fields is not None:
        parse = pj.ParseOptions(explicit_schema=fields, unexpected_field_behavior="error")
        table = pj.read_json(buffer, read_options=_READ, parse_options=parse)
    else:
        table = pj.read_json(buffer, read_options=_READ)
        if _has_timestamps(table.schema):  # a text Arrow took for a time: read it as text, as sent
            as_text = pa.schema([field.with_type(_without_timestamps(field.type)) for field in table.schema])
            parse = pj.ParseOptions(explicit_schema=as_text, unexpected_field_behavior="infer")
            table = pj.read_json(buffer, read_options=_READ, parse_options=parse)
    if not body.isascii():  # the reader keeps a string's bytes unchecked: stored, they broke every read of them
        table.validate(full=True)  # (~0.1 ms a MB)
    return table


def _values_per_row(fields: pa.Schema | pa.StructType) -> int:
    """The values a row holds of these fields: one each, an object's one of each of its fields."""
    return sum(_values_per_row(field.type) if pa.types.is_struct(field.type) else 1 for field in fields)


def columns_as_sent(body: bytes, table: pa.Table, escapes: int) -> dict[str, pa.Array] | None:
    """The columns of what read_lines read of `body` (each one array), when the body is exactly the compact JSON text
    of those values (compact_length) with its `escapes` (count_escapes), a line each, each line ended by a newline
    but maybe the last: then every value is the one sent. None otherwise."""
    columns = {name: table.column(name).combine_chunks() for name in table.column_names}
    length = compact_length(pa.StructArray.from_arrays(list(columns.values()), list(columns)))
    newlines = table.num_rows - (not body.endswith(b"\n"))
    return None if length is None or length + newlines + escapes != len(body) else columns


def _has_timestamps(schema: pa.Schema) -> bool:
    return any(_without_timestamps(field.type) != field.type for field in schema)


def _without_timestamps(kind: pa.DataType) -> pa.DataType:
    if pa.types.is_timestamp(kind):
        return _TEXT
    if pa.types.is_struct(kind):
        return pa.struct([field.with_type(_without_timestamps(field.type)) for field in kind])
    if pa.types.is_list(kind):
        return pa.list_(_without_timestamps(kind.value_type))
    return kind


def nesting_depth(kind: pa.DataType) -> int:
    """How deep a value of this type nests objects and lists (a scalar 0, a flat object 1), as model's check
    counts them."""
    if pa.types.is_struct(kind):
        return 1 + max((nesting_depth(field.type) for field in kind), default=0)
    if pa.types.is_list(kind):
        return 1 + nesting_depth(kind.value_type)
    return 0


def compact_length(values: pa.Array) -> int | None:
    """The bytes of the valid values' JSON texts as a compact encoder writes them, but for their escapes; None
    for values whose text Arrow does not keep (a double's form, a time's). A body whose length this accounts for,
    each of its lines and escapes counted, holds no space, explicit null or other escape: its values were read as
    sent, but for the order of an object's keys, which Arrow gives in the order it first met them."""
    kind = values.type
    valid = len(values) - values.null_count
    if pa.types.is_string(kind):
        return (pc.sum(pc.binary_length(values)).as_py() or 0) + 2 * valid
    if pa.types.is_integer(kind):
        return pc.sum(pc.binary_length(values.cast(_TEXT))).as_py() or 0
    if pa.types.is_boolean(kind):
        true = pc.sum(values).as_py() or 0
        return 4 * true + 5 * (valid - true)
    if pa.types.is_null(kind):
        return 0
    if pa.types.is_struct(kind):
        children = values.flatten()  # (null where the object is)
        length = 2 * valid
        members = 0
        for field, child in zip(kind, children, strict=True):
            child_length = compact_length(child)
            if child_length is None:
                return None
            present = len(child) - child.null_count
            length += child_length + present * (len(field.name.encode()) + 3)  # (its escapes are in escapes)
            members += present
        return length + members - _holding_any(children)  # (the commas)
    if pa.types.is_list(kind):
        items = pc.list_flatten(values)
        items_length = compact_length(items)
        if items_length is None:
            return None
        holding = pc.sum(pc.greater(pc.list_value_length(values), 0)).as_py() or 0
        return 2 * valid + items_length + 4 * items.null_count + len(items) - holding
    return None


def _holding_any(children: list[pa.Array]) -> int:
    """How many rows hold at least one of the children."""
    if not children:
        return 0
    holding = children[0].is_valid()
    for child in children[1:]:
        holding = pc.or_(holding, child.is_valid())
    return pc.sum(holding).as_py() or 0
