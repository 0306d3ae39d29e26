"""A native NDJSON bulk body (POST /logs) read whole by Arrow's JSON reader, in C++ without the GIL, and checked
column by column into the lake's table: the path of a body that arrives while other bodies are being checked.

msgspec decodes a record in less CPU than Arrow reads one, but holding the GIL, which the event loop, the other
bodies' checks and the bulk writers all need. With 4 senders the server's threads took turns on it and left about
a quarter of the 2 cores idle (bench/protocols_ingest.py: machine idle 24-28 %); with the bodies read by Arrow the
idle share fell to 10-14 % and the rate rose by 10-15 % (12 paired rounds: median 478k -> 548k records/s), for
~0.3 us more CPU a record. A body checked alone (one sender) is decoded by msgspec, the quicker read when nothing
waits for the GIL (ingest.parse_batch decides).

What Arrow read is proven to be what was sent (arrow_json.columns_as_sent): the body must be exactly as long as the
compact JSON of the values read, with only the escapes every encoder writes, so that each value is the one sent, and
the attributes are written again from them as a compact encoder writes them: the same text as sent, but for the
order of an object's keys, given as the body's first record holding them gives it (as a bulk of 256 KiB or more
to _bulk is read; JSON objects are unordered). Anything else gives None, and the caller takes the exact path, which
names every problem: a space between tokens, an explicit null, a double (whose digits Arrow does not keep), an
escape such as `\\u00e9`, a field that is not a record's, a client id (the store deduplicates those), a value the
column check refuses.
"""

from __future__ import annotations

import itertools

import pyarrow as pa
import pyarrow.compute as pc

from loglake.arrow_json import (
    columns_as_sent,
    count_escapes,
    has_blank_line,
    json_object,
    member_texts,
    nesting_depth,
    read_lines,
)
from loglake.ingest_columns import valid_columns_table
from loglake.model import RECORD_FIELDS, Limits

TEXT_FIELDS = ("service", "log_type", "severity", "message", "trace_id", "span_id")
_READ_FIELDS = frozenset(RECORD_FIELDS) - {"id"}  # (a client id takes the exact path: the store deduplicates)
_TEXT = pa.string()


def checked_table(body: bytes, limits: Limits, now_ms: int, least_records: int) -> pa.Table | None:
    """The body's records as a checked app_logs table (ingest_columns.valid_columns_table), when the body is at
    least `least_records` lines of plainly valid records, as sent (see the module); else None."""
    return _checked_lines(body, limits, now_ms, least_records, limits.max_records)


def checked_tables(bodies: list[bytes], limits: Limits, now_ms: int, least_records: int) -> list[pa.Table] | None:
    """checked_table of each body, the bodies read and checked as one (their lines joined), each body's table a
    slice of that one: a body's fixed costs (the reader's setting up, some sixty column calls of a millisecond in
    all) are paid once for them all. None unless every body would be a table of its own."""
    lines = [body.count(b"\n") + (not body.endswith(b"\n")) for body in bodies]
    if min(lines) < least_records or max(lines) > limits.max_records:
        return None
    joined = b"".join(body if body.endswith(b"\n") else body + b"\n" for body in bodies)
    table = _checked_lines(joined, limits, now_ms, sum(lines), sum(lines))
    if table is None:
        return None
    starts = [0, *itertools.accumulate(lines)]
    return [table.slice(start, count) for start, count in zip(starts, lines, strict=False)]


def _checked_lines(body: bytes, limits: Limits, now_ms: int, least_records: int, most_records: int) -> pa.Table | None:
    if has_blank_line(body):  # (its rows may not be its lines: see has_blank_line)
        return None
    escapes = count_escapes(body)
    table = None if escapes is None else read_lines(body)
    if table is None or not least_records <= table.num_rows <= most_records:
        return None
    if not _READ_FIELDS.issuperset(table.column_names):
        return None
    columns = columns_as_sent(body, table, escapes)
    if columns is None:
        return None
    if any(name in columns and not pa.types.is_string(columns[name].type) for name in TEXT_FIELDS):
        return None
    times = columns.get("timestamp")
    if times is not None and not (pa.types.is_int64(times.type) or pa.types.is_string(times.type)):
        return None
    attributes = columns.get("attributes")
    if attributes is not None and not pa.types.is_struct(attributes.type):
        return None  # (attributes are an object: the exact path names anything else)
    escaping = escapes > 0
    attribute_texts = None
    if attributes is not None:
        pairs = zip(attributes.type, attributes.flatten(), strict=True)
        members = [member_texts(field.name, child, escaping) for field, child in pairs]
        attribute_texts = json_object(members, attributes.is_valid())
    count = table.num_rows
    texts = {name: columns[name] if name in columns else pa.nulls(count, _TEXT) for name in TEXT_FIELDS}
    return valid_columns_table(
        times if times is not None else pa.nulls(count, pa.int64()),
        texts["service"],
        texts["log_type"],
        texts["severity"],
        texts["message"],
        _binary(attribute_texts, count),
        limits,
        now_ms,
        trace_ids=texts["trace_id"],
        span_ids=texts["span_id"],
        # (an object nests as deep as its type, and holds at most as many keys as the type has fields)
        attributes_within=None if attributes is None else (nesting_depth(attributes.type), attributes.type.num_fields),
    )


def _binary(texts: pa.Array | None, count: int) -> pa.Array:
    """Attribute texts as valid_columns_table takes them from Arrow: binary, b"" for none."""
    if texts is None:
        return pa.repeat(pa.scalar(b"", pa.binary()), count)
    return pc.fill_null(texts, "").cast(pa.binary())
