"""A regular Elasticsearch bulk read by Arrow: the bulk shippers send (create or index actions, each followed by
its source) read whole by Arrow's JSON reader, in C++ and without the GIL, and mapped column by column, with no
Python object per document. Pure, no I/O.

The mapping is elastic_sources' (its module says it), and elastic.parse_bulk stays the reference: this path takes
a bulk only when it can show that its records are the ones parse_bulk gives, and answers None otherwise.
- Every value's text must be the one a compact JSON encoder writes, since an attribute's value is kept as sent:
  the body must be exactly as long as those texts make it (arrow_json.columns_as_sent), and its escapes those an encoder
  writes (arrow_json.count_escapes), and a row per line. A text written otherwise is longer (a space between
  tokens, an explicit null, `\\u00e9` for é, `-0`), except a double's (1e3 is shorter than 1000.0) and a time
  Arrow read as one, which send the bulk to parse_bulk; a blank line and a line of two objects (`{..}{..}`, which
  the reader takes for two rows) go there too, as does what the reader refuses (a key twice, a line that is no
  object, a control character in a string, text that is not UTF-8).
- A mapped field that parse_bulk would leave in the attributes (an unknown level, an invalid service name, a
  trace id that is none), a time of digits, an _id, a message in some sources only: parse_bulk, which says it
  source by source.
The attributes' keys come in the order the reader met them (that of the first source holding each), which is
the order sent when every source sends its fields in one order, as Vector and Fluent Bit do; Beats write
their maps' keys in Go's random order, so theirs may come in another order, with the same values as sent.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pyarrow as pa
import pyarrow.compute as pc

from loglake import ecs
from loglake.arrow_json import (
    columns_as_sent,
    count_escapes,
    has_blank_line,
    json_object,
    keyed,
    member_texts,
    nesting_depth,
    read_lines,
    texts_of,
)
from loglake.protocols import elastic, elastic_sources
from loglake.protocols.columns import RecordColumns
from loglake.protocols.names import safe_name

# Below, parse_bulk costs less. The reader takes about 0.25 ms a bulk and 1.1 us a source, the column work about
# 1 ms a bulk; CPU per source in process (the action lines taken out), parse_bulk against this path: 500
# documents (150 KB) 3.1 against 4.4 us, Filebeat's 1,600 (470 KB) 1.8 against 2.7, 4,000 2.0 against 2.3. Yet in
# the server Filebeat's bulks went faster this way (bench/protocols_ingest.py, elasticsearch-1600, alternated:
# 146,000 and 186,000 against 115,000 and 133,000 records/s, server CPU 9.8 and 7.8 against 10.4 and 9.0 us a
# record): the reader runs without the GIL, which parse_bulk holds throughout while the event loop and the
# writers wait for it.
_MIN_BYTES = 256 * 1024
_TEXT = pa.string()


def bulk_records(body: bytes, path_index: str | None) -> tuple[Sequence[elastic.BulkItem], RecordColumns]:
    """elastic.parse_bulk's answer for a bulk body, read by Arrow when it is a regular bulk of some size."""
    if len(body) >= _MIN_BYTES:
        read = read_regular_bulk(body, path_index)
        if read is not None:
            return read
    return elastic.parse_bulk(body, path_index)


def read_regular_bulk(
    body: bytes, path_index: str | None, lines: int | None = None
) -> tuple[Sequence[elastic.BulkItem], RecordColumns] | None:
    """parse_bulk's items and records for a regular bulk, read by Arrow; None for any other (see the module).
    `lines`: the body's newlines, when the caller counted them already (only a bulk whose action lines Arrow reads
    too needs them)."""
    if not body.endswith(b"\n"):
        return None  # (parse_bulk refuses it)
    if has_blank_line(body):  # (parse_bulk pairs the lines up: see has_blank_line)
        return None
    alike = _sources_of_one_action(body, path_index)
    if alike is None:
        return _read_actions_and_sources(body, lines, path_index)
    action, index, sources, count = alike
    escapes = count_escapes(sources)
    table = None if escapes is None else read_lines(sources)
    if table is not None and table.num_rows > count:  # other action lines left (a bulk into two indices): read whole
        return _read_actions_and_sources(body, lines, path_index)
    if table is None or table.num_rows != count:
        return None
    columns = columns_as_sent(sources, table, escapes)  # (and so a row per line: the body's lines are 2 * count)
    found = None if columns is None else _mapped(columns, escapes > 0)
    if found is None:
        return None
    found.log_types = pa.repeat(pa.scalar(safe_name(index), _TEXT), count)
    found.ids = [None] * count
    return elastic.items_alike(action, index, None, range(count)), found


def _sources_of_one_action(body: bytes, path_index: str | None) -> tuple[str, str, bytes, int] | None:
    """(action, index, the lines left, n) of a bulk whose every action line is its first, adding a document to an
    index it names (or path_index) without an _id: the bulk shippers send, whose action lines Arrow then need not
    read (a third of its reading, and the masks that took the sources out). None otherwise. The lines left are
    the sources when they are n lines (the caller reads them: a row per line), the body's lines then 2n.

    The action lines are taken out by _without_lines, each `\n<action>\n` left to right, and n is how many were
    (the first line, then each match). A match takes its line's newline with it, so the line after a removed one
    is never removed: of the 2n lines, the removed ones are lines equal to the action, no two adjacent, the first
    line among them. When n are removed and the last line is not one of them, they are the even lines exactly: n
    non-adjacent lines of the first 2n - 1 can only be the even ones. (The body's newlines are not counted: that
    held the GIL for 0.13 us a document.)"""
    first = body[: body.find(b"\n")]
    try:
        action, index, doc_id = elastic.read_action(1, first, path_index)
    except elastic.BulkRefused:
        return None  # (parse_bulk names what is wrong with it)
    if action not in elastic.ADDING_ACTIONS or index is None or doc_id is not None:
        return None
    line = b"\n" + first + b"\n"
    sources = _without_lines(body, len(line) - 1, line)  # (after the first line, whose newline a match would take)
    if sources is None or body.endswith(line):
        return None
    removed, rest = divmod(len(body) - len(sources), len(line) - 1)  # (each removed line: its text and a newline)
    return None if rest else (action, index, sources, removed)


# Bytes of a body Arrow's replace_substring is given as one value: it took 0.17-0.19 us a document on values of
# 0.5-2 MB, 0.55 on one of 8 MB, against bytes.replace's 0.29-0.38.
_PIECE_BYTES = 1 << 20


def _without_lines(body: bytes, start: int, line: bytes) -> bytes | None:
    """body[start:] with each `line` (`\n...\n`, a whole line with the newlines around it) left to right made one
    newline, as bytes.replace makes them, but in C++ without the GIL, which bytes.replace held for 0.3-0.4 us a
    document while the event loop waited (a seventh of the GIL's time with Filebeat's bulks). The text is cut into
    pieces at matches, each piece a value of one Arrow array over the body's own memory; None (the caller's other
    path) when a cut falls where the match before it overlaps it (two such lines in a row), which a cut would
    change."""
    cuts = [start]
    while (cut := body.find(line, cuts[-1] + _PIECE_BYTES)) > 0:
        if body[cut - len(line) + 1 : cut + 1] == line:
            return None
        cuts.append(cut)
    made = pc.replace_substring(texts_of(body, [*cuts, len(body)]), line, b"\n")
    ends = memoryview(made.buffers()[1]).cast("q")  # (the pieces made lie end to end: one text)
    first, last = ends[made.offset], ends[made.offset + len(made)]
    return made.buffers()[2].slice(first, last - first).to_pybytes()


def _read_actions_and_sources(
    body: bytes, lines: int | None, path_index: str | None
) -> tuple[Sequence[elastic.BulkItem], RecordColumns] | None:
    """read_regular_bulk of a bulk whose action lines are not all its first (into more than one index, say), or whose
    first is not one _sources_of_one_action takes: its action lines read by Arrow too. `lines`: its newlines (None:
    counted here)."""
    if lines is None:
        lines = body.count(b"\n")
    escapes = count_escapes(body)
    table = None if escapes is None else read_lines(body)
    # (a row per line: `{..} {..}` is two rows on one line, as long as two lines)
    if table is None or table.num_rows % 2 or not table.num_rows or table.num_rows != lines:
        return None
    count = table.num_rows // 2
    actions = [name for name in table.column_names if name in elastic.ADDING_ACTIONS + elastic.REFUSED_ACTIONS]
    if len(actions) != 1 or actions[0] not in elastic.ADDING_ACTIONS:
        return None  # (parse_bulk refuses update and delete item by item, and names a bad action line)
    action = actions[0]
    rows = columns_as_sent(body, table, escapes)
    if rows is None or not _alternate(rows, action):
        return None
    even = _even(2 * count)
    indexes = _indexes(pc.filter(rows.pop(action), even), path_index)
    if indexes is None:
        return None
    sources = pc.invert(even)
    found = _mapped({name: pc.filter(values, sources) for name, values in rows.items()}, escapes > 0)
    if found is None:
        return None
    distinct = indexes.dictionary_encode()
    names = distinct.dictionary.to_pylist()
    found.log_types = pa.array(list(map(safe_name, names)), _TEXT).take(distinct.indices)
    found.ids = [None] * count
    if len(names) == 1:  # (a shipper's bulk into one index)
        return elastic.items_alike(action, names[0], None, range(count)), found
    rows_of = enumerate(distinct.indices.to_pylist())
    return [elastic.BulkItem(action, names[index], None, row) for row, index in rows_of], found


def _even(rows: int) -> pa.BooleanArray:
    """A mask of rows, true on the even ones."""
    return pa.Array.from_buffers(pa.bool_(), rows, [None, pa.py_buffer(b"\x55" * ((rows + 7) // 8))])


def _alternate(columns: dict[str, pa.Array], action: str) -> bool:
    """Whether the rows alternate: the action alone on each even row (the action lines), never on an odd one."""
    even = _even(len(columns[action]))
    if not pc.all(pc.equal(columns[action].is_valid(), even)).as_py():
        return False
    others = (values for name, values in columns.items() if name != action)
    return not any(pc.any(pc.and_(values.is_valid(), even)).as_py() for values in others)


def _indexes(actions: pa.StructArray, path_index: str | None) -> pa.Array | None:
    """Each action's index; None when an action names an _id (parse_bulk's client ids), an op_type (which may make
    an index a create: read_action) or no index, or names it otherwise than as text."""
    kind = actions.type
    for name in ("_id", "op_type"):
        if kind.get_field_index(name) >= 0 and actions.field(name).null_count != len(actions):
            return None
    if kind.get_field_index("_index") < 0:
        indexes = pa.nulls(len(actions), _TEXT)
    elif pa.types.is_string(kind.field("_index").type):
        indexes = actions.field("_index")
    else:
        return None
    if indexes.null_count:
        if path_index is None:
            return None
        indexes = pc.fill_null(indexes, path_index)
    return indexes


# -- the mapping -------------------------------------------------------------------------------------------


def _mapped(columns: dict[str, pa.Array], escaping: bool) -> RecordColumns | None:
    """The sources' records, as elastic_sources.add_ecs_record maps them; None where it would map one otherwise than
    column-wise (see the module)."""
    count = len(next(iter(columns.values())))
    service = columns.get(elastic_sources.FLAT_SERVICE)
    if elastic_sources.has_flat_fields(columns) or (service is not None and not pa.types.is_struct(service.type)):
        return None  # (mapped source by source: see elastic_sources.FLAT_LEVELS)
    kept = dict(columns)
    made: dict[str, pa.Array] = {}  # the texts of the nested objects a field was taken out of
    messages = _first_text(columns, elastic_sources.MESSAGE_FIELDS)
    times = _first_present(columns, elastic_sources.TIME_FIELDS)
    if messages is None or times is False:
        return None
    if times is None:
        timestamps = pa.nulls(count, pa.int64())  # (the time received)
    elif pc.any(pc.match_substring_regex(columns[times], "^[0-9]+$")).as_py():  # epoch ms as digits
        return None
    else:
        timestamps = kept.pop(times)
    found = RecordColumns(messages=kept.pop(messages), timestamps=timestamps)
    for into, (dotted, parent, child), convert in _MAPPED:
        values = _take_field(columns, kept, made, dotted, parent, child, convert, escaping)
        if values is None:
            return None
        setattr(found, into, pa.nulls(count, _TEXT) if values is False else values)
    members = [
        keyed(name, made[name]) if name in made else member_texts(name, values, escaping)
        for name, values in kept.items()
    ]
    attributes = json_object(members, pa.nulls(count, pa.bool_()).is_null())
    if all(type(member) is not list and member.null_count for member in members):  # (a source may have none left)
        attributes = pc.if_else(pc.equal(attributes, "{}"), "", attributes)
    found.attributes = attributes.cast(pa.binary())
    # (a nested object a field was taken out of nests no deeper than its type says)
    found.attributes_within = (
        1 + max(map(nesting_depth, (values.type for values in kept.values())), default=0),
        len(kept),
    )
    return found


def _first_text(columns: dict[str, pa.Array], names: tuple[str, ...]) -> str | None:
    """The first of names that is text in every source; None when none is, or one is text in some sources only
    (parse_bulk looks at each)."""
    for name in names:
        values = columns.get(name)
        if values is None or not pa.types.is_string(values.type) or values.null_count == len(values):
            continue  # (a field of another type is no text in any source)
        return name if values.null_count == 0 else None
    return None


def _first_present(columns: dict[str, pa.Array], names: tuple[str, ...]) -> str | bool | None:
    """The first of names that every source has, when it is text; None when none is in any; False otherwise (a
    number, or in some sources only: parse_bulk takes each as it is)."""
    for name in names:
        values = columns.get(name)
        if values is None or values.null_count == len(values):
            continue
        return name if values.null_count == 0 and pa.types.is_string(values.type) else False
    return None


def _take_field(
    columns: dict[str, pa.Array],
    kept: dict[str, pa.Array],
    made: dict[str, pa.Array],
    dotted: str,
    parent: str,
    child: str,
    convert: Callable[[str], tuple[str | None, bool]],
    escaping: bool,
) -> pa.Array | bool | None:
    """elastic_sources._pop_string column-wise: the values of a field sent dotted or nested (null where none), as
    convert makes them, taken out of what is kept (made gets the texts of a nested object without it); False when no
    source has it; None when convert would leave one in the attributes, or it comes in both forms, or not as text."""
    flat = columns.get(dotted)
    nested = columns.get(parent)
    if nested is not None and (not pa.types.is_struct(nested.type) or nested.type.get_field_index(child) < 0):
        nested = None  # (Fluent Bit's `log` line, say: no level in it)
    if flat is not None and flat.null_count != len(flat):
        in_both = nested is not None and nested.flatten()[nested.type.get_field_index(child)].null_count < len(nested)
        if in_both or not pa.types.is_string(flat.type):
            return None
        del kept[dotted]
        return _converted(flat, convert)
    if nested is None:
        return False
    children = nested.flatten()
    index = nested.type.get_field_index(child)
    values = children[index]
    if not pa.types.is_string(values.type):
        return None
    others = [member_texts(field.name, children[i], escaping) for i, field in enumerate(nested.type) if i != index]
    rest = json_object(others, nested.is_valid())  # (where the child is not, the object as sent)
    emptied = pc.and_(values.is_valid(), pc.equal(rest, "{}"))
    made[parent] = pc.if_else(emptied, pa.scalar(None, _TEXT), rest)
    return _converted(values, convert)


def _converted(values: pa.Array, convert: Callable[[str], tuple[str | None, bool]]) -> pa.Array | None:
    """Values as convert makes each distinct one, None when convert leaves one in the attributes."""
    distinct = values.dictionary_encode()
    made = []
    for value in distinct.dictionary.to_pylist():
        converted, take = convert(value)
        if not take:
            return None
        made.append(converted)
    return pa.array(made, _TEXT).take(distinct.indices)


# The record columns filled from sources' fields: (column, ECS field, conversion).
_MAPPED = (
    ("severities", ecs.LOG_LEVEL, elastic_sources.take_severity),
    ("services", ecs.SERVICE_NAME, elastic_sources.take_service),
    ("trace_ids", ecs.TRACE_ID, elastic_sources.take_trace_id),
    ("span_ids", ecs.SPAN_ID, elastic_sources.take_span_id),
)
