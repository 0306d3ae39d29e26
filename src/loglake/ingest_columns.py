"""A batch of decoded records checked column by column into the lake's `app_logs` table. Pure, no I/O.

The record-by-record check (ingest._accept_plainly_valid) costs a few microseconds per record in
Python; here each rule runs once per column in Arrow's C++ kernels, and the names (services, log
types, severities) are checked once per distinct value. It accepts exactly what that check accepts
and nothing more: a batch it cannot vouch for (a bad or unusual value anywhere, an ISO time that does
not parse, a client id, which needs the store's deduplication) gives None, and the caller takes the
record-by-record path, which names every problem or deduplicates.

The ids are the ids module's UUIDv7 (its counter and node), computed as two int64 columns.
"""

from __future__ import annotations

import array
from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from msgspec.structs import astuple

from loglake import ids
from loglake.lake.hot_rows import int64_bytes, uuid_strings
from loglake.lake.tables import APP_LOGS_TABLE
from loglake.model import (
    DEFAULT_LOG_TYPE,
    DEFAULT_SERVICE,
    SEVERITY_ALIASES,
    SEVERITY_NAMES,
    SPAN_ID_HEX_DIGITS,
    TRACE_ID_HEX_DIGITS,
    Limits,
    Severity,
    TimeBounds,
    is_valid_name,
)
from loglake.times import SMALLEST_PLAUSIBLE_MS, parse_iso8601

_MS = pa.timestamp("ms")
_NS = pa.timestamp("ns")
_NS_UTC = pa.timestamp("ns", "UTC")
# Up to nanoseconds (Vector, Go and OpenTelemetry write 9 digits), which Arrow reads into timestamp[ns] and
# _iso_times truncates to the record's milliseconds, as parse_iso8601 does.
_ISO_NAIVE = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?$"
_ISO_ZONED = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$"
_NULL = b"null"
_ZERO = pa.array([0], pa.int32())


def plainly_valid_table(items: Sequence[Any], limits: Limits, now_ms: int) -> pa.Table | None:
    """The records (ingest.IncomingRecord) as an app_logs table with fresh ids, in their order, if every
    one passes every rule of model.validate_batch and none carries a client id; else None."""

    # Each record's fields as one tuple (msgspec's astuple, in C), then one tuple per field (zip): a sixth
    # less time than taking each field out of every record with map + attrgetter, once per field.
    field = dict(zip(items[0].__struct_fields__, zip(*map(astuple, items), strict=True), strict=True))
    client_ids = field["id"]
    if client_ids.count(None) != len(client_ids):
        return None
    return valid_columns_table(
        field["timestamp"],
        field["service"],
        field["log_type"],
        field["severity"],
        field["message"],
        field["attributes"],
        limits,
        now_ms,
        trace_ids=field["trace_id"],
        span_ids=field["span_id"],
    )


def valid_columns_table(
    timestamps: list[Any],
    services: list[str | None],
    log_types: list[str | None],
    severities: list[str | None],
    messages: list[str],
    attributes: list[Any] | pa.DictionaryArray,
    limits: Limits,
    now_ms: int,
    *,
    trace_ids: list[str | None] | None = None,
    span_ids: list[str | None] | None = None,
    attributes_within: tuple[int, int] | None = None,
) -> pa.Table | None:
    """Records given as columns (Python lists of one field each; attributes as JSON bytes, empty or b"null"
    for none; no trace_ids/span_ids: none has one) as an app_logs table with fresh ids, if every one
    passes every rule of model.validate_batch; else None. What plainly_valid_table checks once it has
    the columns: protocol adapters that decode into columns themselves (protocols/) call it directly.
    attributes_within: the deepest nesting and most keys of any record's attributes, when the caller knows
    them (see _attributes)."""
    count = len(messages)
    times = _timestamps(timestamps, limits, now_ms)
    if times is None:
        return None
    texts = pa.array(messages, pa.string())
    sizes = pc.binary_length(texts)
    if pc.min(sizes).as_py() < 1 or pc.max(sizes).as_py() > limits.max_message_bytes:
        return None
    service = _names(services, DEFAULT_SERVICE)
    log_type = _names(log_types, DEFAULT_LOG_TYPE)
    severity = _severities(severities)
    attribute_texts = _attributes(attributes, limits, attributes_within)
    if service is None or log_type is None or severity is None or attribute_texts is None:
        return None
    trace_id = _hex_ids(trace_ids, TRACE_ID_HEX_DIGITS) if trace_ids is not None else pa.nulls(count, pa.string())
    span_id = _hex_ids(span_ids, SPAN_ID_HEX_DIGITS) if span_ids is not None else pa.nulls(count, pa.string())
    if trace_id is None or span_id is None:
        return None
    high, low = _id_halves(times)
    columns = [
        uuid_strings(int64_bytes(high), int64_bytes(low)),
        times.cast(_MS),
        service,
        log_type,
        severity,
        texts,
        attribute_texts,
        pa.nulls(count, pa.string()),
        trace_id,
        span_id,
    ]
    return pa.table(columns, schema=APP_LOGS_TABLE.schema)


def _timestamps(values: list[Any], limits: Limits, now_ms: int) -> pa.Array | None:
    """Epoch ms per record (now for none), None if one is out of the allowed range or not a time."""
    if isinstance(values, pa.Array) and pa.types.is_string(values.type):  # (texts, as a list of them is taken:
        times = _iso_times(values)  # a cast to int64 would parse every one of them before failing)
    else:
        try:
            times = pa.array(values, pa.int64())
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):
            times = _iso_times(values)
    if times is None:
        try:  # ISO-8601 text in other forms, mixed with numbers (or a value the record-by-record path will name)
            times = pa.array([parse_iso8601(v) if type(v) is str else v for v in values], pa.int64())
        except (ValueError, pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):
            return None
    if times.null_count:
        times = pc.fill_null(times, now_ms)
    _, earliest, latest = TimeBounds.of(limits, now_ms)
    span = pc.min_max(times)
    if span["min"].as_py() < max(SMALLEST_PLAUSIBLE_MS, earliest) or span["max"].as_py() > latest:
        return None
    return times


def _iso_times(values: list[Any]) -> pa.Array | None:
    """ISO-8601 texts (or none) as epoch ms, parsed by Arrow, when every one is in a form that Arrow and
    parse_iso8601 read alike (_ISO_ZONED, or _ISO_NAIVE: UTC); else None."""
    try:
        texts = pa.array(values, pa.string())
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None
    if pc.all(pc.match_substring_regex(texts, _ISO_ZONED)).as_py():
        parsed_as = _NS_UTC
    elif pc.all(pc.match_substring_regex(texts, _ISO_NAIVE)).as_py():
        parsed_as = _NS
    else:
        return None
    try:
        nanos = texts.cast(parsed_as).cast(pa.int64())  # (a day that does not exist, a year past 2262: not cast)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    return pc.divide(nanos, 1_000_000)  # truncated, which is floored for every time after 1970, the only ones kept


def _names(values: list[str | None], default: str) -> pa.Array | None:
    """Service or log type names (the default for none), None if one is not a valid name."""
    names = pa.array(values, pa.string())
    if names.null_count:
        names = pc.fill_null(names, default)
    if not all(is_valid_name(name) for name in pc.unique(names).to_pylist()):
        return None
    return names


def _severities(values: list[str | None]) -> pa.Array | None:
    """Canonical severity names (info for none), each distinct alias looked up once; None if one is unknown."""
    given = pa.array(values, pa.string())
    if given.null_count:
        given = pc.fill_null(given, Severity.INFO.label)
    encoded = given.dictionary_encode()
    canonical = []
    for alias in encoded.dictionary.to_pylist():
        severity = SEVERITY_ALIASES.get(alias) or SEVERITY_ALIASES.get(alias.lower())
        if severity is None:
            return None
        canonical.append(SEVERITY_NAMES[severity])
    return pa.array(canonical, pa.string()).take(encoded.indices)


def _attributes(raw: list[Any] | pa.Array, limits: Limits, within: tuple[int, int] | None = None) -> pa.Array | None:
    """The attributes' JSON text as sent (null for none), None when the record-by-record check must
    decide: not an object, too large, not UTF-8, or more brackets or colons than the depth and key
    limits allow (counted over the text, strings included: an upper bound, as in ingest.py), unless
    `within` (deepest nesting, most keys) says they are within those limits. Given as a
    dictionary array (a decoder's distinct texts, protocols/columns.py): each distinct text checked once;
    as a binary array (a decoder's texts made by Arrow, b"" for none): checked as the list of them is."""
    if isinstance(raw, pa.DictionaryArray):
        distinct = _attributes(raw.dictionary.to_pylist(), limits, within)
        return None if distinct is None else distinct.take(raw.indices)
    count = len(raw)
    if isinstance(raw, pa.Array):
        data, joined = _compact(raw)
        separated = None  # (joined after a NUL each: made for the bracket count, when it is needed)
    else:
        split = _split_texts(raw)
        if split is None:
            return None
        data, separated = split
        joined = separated  # (a NUL is ASCII: all of them are ASCII as they are with NULs)
    sizes = pc.binary_length(data)
    absent = None
    if pc.min(sizes).as_py() <= len(_NULL):  # else no value is empty or null
        absent = pc.or_(pc.equal(sizes, 0), pc.equal(data, _NULL))
        if pc.all(absent).as_py():
            return pa.nulls(count, pa.string())
        objects = pc.filter(data, pc.invert(absent))
    else:
        objects = data
    if not pc.all(pc.starts_with(objects, "{")).as_py():
        return None
    object_sizes = pc.binary_length(objects)
    if pc.max(object_sizes).as_py() > limits.max_attribute_bytes:
        return None
    depth = limits.max_attribute_depth
    if within is None or within[0] > depth:
        if separated is None:
            if b"\0" in joined:  # (see _split_texts)
                return None
            separated = b"\0".join(filter(None, data.to_pylist()))  # (None or b"": no brackets)
        if _more_brackets(separated, depth):
            return None
    if within is None or within[1] > limits.max_attribute_keys:
        # Each key takes at least 5 bytes ("":0,), so only longer objects can hold too many keys.
        long = pc.filter(objects, pc.greater(object_sizes, 5 * limits.max_attribute_keys + 1))
        if len(long) and pc.max(pc.count_substring(long, ":")).as_py() > limits.max_attribute_keys:
            return None
    if joined.isascii():  # valid UTF-8 as it is: no need for the cast's check
        text = data.view(pa.string())
    else:
        try:
            text = data.cast(pa.string())  # checks UTF-8, which the struct decoder left to this raw field
        except pa.ArrowInvalid:
            return None
    return text if absent is None else pc.if_else(absent, pa.scalar(None, pa.string()), text)


def _more_brackets(separated: bytes, most: int) -> bool:
    """Whether one of the texts, joined after a NUL each (`separated`), may hold more than `most` brackets ({ and [).
    Every byte but brackets and NULs is deleted and [ made {: a text's brackets are a run that one search finds
    (Arrow's count of a character in each text took some three times the time; counting the brackets of all the
    texts first, to look at none when there are few, cost more than this whenever every text holds a nested object,
    as every Elasticsearch source with `host.name` does, and no less otherwise)."""
    return b"{" * (most + 1) in separated.translate(_BRACES, _NOT_BRACKETS)


_BRACES = bytes.maketrans(b"[", b"{")
_NOT_BRACKETS = bytes(byte for byte in range(256) if byte not in b"{[\0")


def _split_texts(values: Sequence[Any]) -> tuple[pa.Array, bytes] | None:
    """Byte strings (or msgspec.Raw: anything with the buffer protocol) as one Arrow binary array, and all of them
    joined after a NUL each (what the bracket count reads); None when one of them holds a NUL, which no JSON text
    does: the record check then names it. Joined once in Python and split by Arrow, outside the GIL: joining them
    twice (with NULs and without) and taking each one's length made parse_batch of a 10,000-record body 11,001
    instructions a record against 10,282 (callgrind, the server's GC settings), ~400 of them now Arrow's split."""
    separated = b"\0".join(values)
    offsets = pa.py_buffer(array.array("i", (0, len(separated))))  # (a body is far below 2 GiB)
    whole = pa.Array.from_buffers(pa.binary(), 1, [None, offsets, pa.py_buffer(separated)])
    texts = pc.split_pattern(whole, b"\0").values
    return (texts, separated) if len(texts) == len(values) else None  # (more: a NUL in a text)


def binary_array(values: Sequence[Any]) -> tuple[pa.Array, bytes]:
    """Byte strings (or msgspec.Raw: anything with the buffer protocol) as one Arrow binary array, with no Python
    object per value, and the one copy of them all that it holds."""
    count = len(values)
    joined = b"".join(values)
    sizes = pa.Array.from_buffers(pa.int32(), count, [None, pa.py_buffer(array.array("i", map(len, values)))])
    offsets = pa.concat_arrays([_ZERO, pc.cumulative_sum(sizes)]).buffers()[1]  # a body is far below 2 GiB
    return pa.Array.from_buffers(pa.binary(), count, [None, offsets, pa.py_buffer(joined)]), joined


def _compact(texts: pa.Array) -> tuple[pa.Array, bytes]:
    """A binary array's texts in fresh buffers, from their start (a slice's offsets start further on), and the
    one copy of them all that it holds."""
    data = pa.concat_arrays([texts])
    _, offsets, values = data.buffers()
    size = memoryview(offsets).cast("i")[len(data)]
    return data, bytes(memoryview(values)[:size]) if size else b""


def _hex_ids(values: list[str | None], digits: int) -> pa.Array | None:
    """Trace or span ids as sent (null for none), None when one is not already what model.hex_id
    stores (lowercase, `digits` hex digits, not all zeros): the record-by-record check normalises or names it."""
    given = pa.array(values, pa.string())
    if given.null_count == len(given):
        return given
    if not pc.all(pc.match_substring_regex(given, f"^[0-9a-f]{{{digits}}}$")).as_py():
        return None
    if pc.any(pc.equal(given, "0" * digits)).as_py():
        return None
    return given


def _id_halves(timestamps: pa.Array) -> tuple[pa.Array, pa.Array]:
    """ids.split_id's halves of a fresh UUIDv7 per time: the same bits uuid7_many gives, column-wise."""
    count = len(timestamps)
    first, node = ids.reserve_counters(count)
    consecutive = pc.cumulative_sum(pa.repeat(pa.scalar(1, pa.int64()), count), start=first - 1)
    counters = pc.bit_wise_and(consecutive, ids.COUNTER_MASK)
    rand_a = pc.shift_right(counters, ids.RAND_B_COUNTER_BITS)
    high = pc.bit_wise_or(pc.shift_left(timestamps, ids.HIGH_TIME_SHIFT), pc.bit_wise_or(rand_a, ids.VERSION_7_HIGH))
    low = pc.bit_wise_or(pc.shift_left(pc.bit_wise_and(counters, ids.RAND_B_COUNTER_MASK), ids.NODE_BITS), node)
    return high, low
