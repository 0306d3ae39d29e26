"""Request bodies to validated records: JSON object, JSON array or NDJSON. Pure, no I/O.

Two paths give the same answers. The fast path decodes straight into a typed struct (in C) and
accepts a batch only if every record is plainly valid; anything else (a syntax error, a wrong
type, a bad value) goes to the full path, which decodes generically and names every problem of
every record. Valid batches, the common case, never pay for the error reporting. A valid batch of at least
BULK_MIN_RECORDS records without client ids is checked column by column instead (ingest_columns) and
becomes one Arrow table, which the lake writes as Parquet parts with no Python object per value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec
import pyarrow as pa

from loglake import ids, ingest_arrow
from loglake.decode_errors import not_json_reason
from loglake.ingest_columns import plainly_valid_table
from loglake.model import (
    DEFAULT_LOG_TYPE,
    DEFAULT_SERVICE,
    SEVERITY_ALIASES,
    SPAN_ID_HEX_DIGITS,
    TRACE_ID_HEX_DIGITS,
    InvalidRecords,
    Limits,
    NewRecord,
    Problem,
    Severity,
    TimeBounds,
    hex_id,
    is_valid_name,
    validate_batch,
)
from loglake.times import SMALLEST_PLAUSIBLE_MS, parse_iso8601

MAX_DETAILS = 100
# From this many records a valid batch is checked column-wise and written as lake parts (when the
# caller can write those); below it the per-request cost of a Parquet file and its catalog entry
# outweighs the per-record savings, and records go to the hot store.
BULK_MIN_RECORDS = 1000
NO_ATTRIBUTES = msgspec.Raw(b"")
DECODE_PIECE_BYTES = 256 * 1024
# Bodies from this size may be read by Arrow (ingest_arrow) when others are being checked at the same time: its
# setting up and column work cost about a millisecond a body, which a body of thousands of records repays.
ARROW_READ_MIN_BYTES = 256 * 1024


class IncomingRecord(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    message: str
    timestamp: int | str | None = None
    service: str | None = None
    log_type: str | None = None
    severity: str | None = None
    attributes: msgspec.Raw = NO_ATTRIBUTES  # kept as the client's JSON bytes: no decode, no re-encode
    id: str | None = None
    trace_id: str | None = None
    span_id: str | None = None


class InvalidBody(ValueError):
    """The body as a whole cannot be used (not JSON, empty, too many records)."""

    def __init__(self, code: str, message: str, details: list[dict] | None = None, too_large: bool = False):
        super().__init__(message)
        self.code = code
        self.details = details or []
        self.too_large = too_large


_one_or_many = msgspec.json.Decoder(IncomingRecord | list[IncomingRecord])
_lines = msgspec.json.Decoder(IncomingRecord)
_generic = msgspec.json.Decoder()


# Not frozen: a frozen dataclass sets each field through object.__setattr__ (0.49 against ~0.15 us), and every
# request makes one.
@dataclass(slots=True)
class ParsedBody:
    """A request body's valid records, either as NewRecords or (a bulk batch) as one Arrow table with
    the lake's app_logs schema, in the body's order; `single` when the body was one object."""

    single: bool
    records: list[NewRecord] | None = None
    table: pa.Table | None = None

    @property
    def count(self) -> int:
        return self.table.num_rows if self.table is not None else len(self.records or ())


def parse_body(body: bytes, ndjson: bool, limits: Limits, now_ms: int) -> tuple[list[NewRecord], bool]:
    """Records with fresh ids, and whether the body was a single object (not an array or NDJSON).

    Raises InvalidBody, or model.InvalidRecords naming every bad record; nothing is partially accepted.
    """
    parsed = parse_batch(body, ndjson, limits, now_ms, bulk=False)
    assert parsed.records is not None
    return parsed.records, parsed.single


def parse_batch(
    body: bytes, ndjson: bool, limits: Limits, now_ms: int, *, bulk: bool, contended: bool = False
) -> ParsedBody:
    """parse_body, giving a bulk batch as a table when `bulk` (see BULK_MIN_RECORDS). `contended`: other bodies
    are being checked meanwhile; a big NDJSON body is then read by Arrow, outside the GIL (ingest_arrow)."""
    if contended and bulk and ndjson and len(body) >= ARROW_READ_MIN_BYTES:
        table = ingest_arrow.checked_table(body, limits, now_ms, BULK_MIN_RECORDS)
        if table is not None:
            return ParsedBody(False, table=table)
    try:
        decoded = _decode_lines(body) if ndjson else _one_or_many.decode(body)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        decoded = None
    if decoded is not None:
        single = type(decoded) is IncomingRecord
        items = [decoded] if single else decoded
        _check_count(len(items), limits)
        parsed = _plainly_valid(items, single, limits, now_ms, bulk)
        if parsed is not None:
            return parsed
    items, single = _decode_generic(body, ndjson, limits, now_ms)
    _check_count(len(items), limits)
    return ParsedBody(single, records=validate_batch(items, limits, now_ms))


def _plainly_valid(
    items: list[IncomingRecord], single: bool, limits: Limits, now_ms: int, bulk: bool
) -> ParsedBody | None:
    if bulk and len(items) >= BULK_MIN_RECORDS:
        table = plainly_valid_table(items, limits, now_ms)
        if table is not None:
            return ParsedBody(single, table=table)
    records = _accept_plainly_valid(items, limits, now_ms)
    return None if records is None else ParsedBody(single, records=records)


def check_records(items: list[IncomingRecord], limits: Limits, now_ms: int, *, bulk: bool) -> ParsedBody:
    """parse_batch for records another protocol's decoder built (protocols/): the same checks and the
    same fast paths; raises InvalidBody (none) or InvalidRecords naming every bad record.

    Not limits.max_records: that is POST /logs's contract with clients that choose their batches, while
    shippers batch by size (Promtail and Alloy send up to 1 MiB of lines, thousands more than 10,000
    short ones) and are bounded by the body size limit, as Loki and OTLP receivers bound them."""
    if not items:
        raise InvalidBody("empty_batch", "the batch holds no records")
    parsed = _plainly_valid(items, False, limits, now_ms, bulk)
    if parsed is not None:
        return parsed
    return ParsedBody(False, records=validate_batch([_as_dict(item) for item in items], limits, now_ms))


def check_valid_records(
    items: list[IncomingRecord], limits: Limits, now_ms: int, *, bulk: bool
) -> tuple[ParsedBody | None, list[Problem]]:
    """check_records for a protocol that stores the valid records of a batch and reports the others
    (OTLP's partial success): the valid ones (None if none is) and the problems of the others."""
    try:
        return check_records(items, limits, now_ms, bulk=bulk), []
    except InvalidRecords as e:
        problems = e.problems
    bad = {p.index for p in problems}
    valid = [item for index, item in enumerate(items) if index not in bad]
    return (check_records(valid, limits, now_ms, bulk=bulk) if valid else None), problems


def _as_dict(item: IncomingRecord) -> dict[str, Any]:
    """A record struct as the generic decoder would have given it, for model.validate_batch's reasons."""
    fields = {name: value for name in item.__struct_fields__ if (value := getattr(item, name)) is not None}
    attributes = bytes(item.attributes)
    if attributes:
        fields["attributes"] = _generic.decode(attributes)
    else:
        del fields["attributes"]
    return fields


def _decode_lines(body: bytes) -> list[IncomingRecord]:
    """The NDJSON lines as structs, decoded DECODE_PIECE_BYTES at a time: the decoder holds the GIL for
    as long as a call takes (~6 ms for 10,000 records), and between calls other threads get it (the
    event loop, the writers of other batches between their Arrow calls)."""
    if len(body) <= DECODE_PIECE_BYTES:
        return _lines.decode_lines(body)
    decoded: list[IncomingRecord] = []
    view = memoryview(body)
    start = 0
    while start < len(body):
        end = body.find(b"\n", start + DECODE_PIECE_BYTES)
        end = len(body) if end < 0 else end + 1  # whole lines only
        decoded += _lines.decode_lines(view[start:end])
        start = end
    return decoded


def _check_count(count: int, limits: Limits) -> None:
    if count == 0:
        raise InvalidBody("empty_batch", "the batch holds no records")
    if count > limits.max_records:
        raise InvalidBody(
            "too_many_records",
            f"{count} records in one request; the limit is {limits.max_records}, split the batch",
            too_large=True,
        )


def _accept_plainly_valid(items: list[IncomingRecord], limits: Limits, now_ms: int) -> list[NewRecord] | None:
    """NewRecords if every record passes every rule of model.validate_batch, else None."""
    _, earliest, max_ts = TimeBounds.of(limits, now_ms)
    min_ts = max(SMALLEST_PLAUSIBLE_MS, earliest)
    max_message = limits.max_message_bytes
    fields = []
    for item in items:
        message = item.message
        if not message or (len(message) * 4 > max_message and len(message.encode()) > max_message):
            return None
        ts = item.timestamp
        if ts is None:
            ts = now_ms
        elif type(ts) is str:
            try:
                ts = parse_iso8601(ts)
            except ValueError:
                return None
        if not min_ts <= ts <= max_ts:
            return None
        service = DEFAULT_SERVICE if item.service is None else item.service
        log_type = DEFAULT_LOG_TYPE if item.log_type is None else item.log_type
        if not (is_valid_name(service) and is_valid_name(log_type)):
            return None
        if item.severity is None:
            severity = Severity.INFO
        else:
            severity = SEVERITY_ALIASES.get(item.severity) or SEVERITY_ALIASES.get(item.severity.lower())
            if severity is None:
                return None
        attributes = _plain_attributes(item.attributes, limits)
        if attributes is False:
            return None
        client_id = None
        if item.id is not None:
            try:
                client_id = ids.parse_uuid(item.id)
            except ValueError:
                return None
        trace_id = span_id = None
        if item.trace_id is not None:
            trace_id = hex_id(item.trace_id, TRACE_ID_HEX_DIGITS)
            if trace_id is None:
                return None
        if item.span_id is not None:
            span_id = hex_id(item.span_id, SPAN_ID_HEX_DIGITS)
            if span_id is None:
                return None
        fields.append((ts, service, log_type, severity, message, attributes, client_id, trace_id, span_id))
    log_ids = ids.uuid7_many([f[0] for f in fields])
    return [NewRecord(log_id, *f) for log_id, f in zip(log_ids, fields, strict=True)]


def _plain_attributes(raw: msgspec.Raw, limits: Limits) -> bytes | bool | None:
    """The attributes' JSON bytes, None for none, False when the full check must decide."""
    data = bytes(raw)
    if not data or data == b"null":
        return None
    if data[:1] != b"{" or len(data) > limits.max_attribute_bytes:
        return False
    if not data.isascii():  # the struct decoder validated every field but this raw one
        try:
            data.decode()
        except UnicodeDecodeError:
            return False
    # Bracket and colon counts bound the nesting depth and key count from above (strings included),
    # so small attribute objects are accepted without decoding them.
    if data.count(b"{") + data.count(b"[") > limits.max_attribute_depth or data.count(b":") > limits.max_attribute_keys:
        return False
    return data


def _decode_generic(body: bytes, ndjson: bool, limits: Limits, now_ms: int) -> tuple[list[Any], bool]:
    if ndjson:
        return _decode_ndjson_lines(body, limits, now_ms), False
    try:
        decoded = _generic.decode(body)
    except RecursionError:
        raise InvalidBody("too_deep", too_deep(limits)) from None
    except (msgspec.DecodeError, UnicodeDecodeError) as e:
        raise InvalidBody(
            "invalid_json", f"the body is not valid JSON in UTF-8: {not_json_reason(e, body)}{_ndjson_hint(e, body)}"
        ) from None
    if type(decoded) is dict:
        return [decoded], True
    if type(decoded) is list:
        return decoded, False
    raise InvalidBody("invalid_json", "the body must be a record object or an array of record objects")


def too_deep(limits: Limits) -> str:
    """Why JSON nested past what the decoder follows (about a thousand levels) is refused, and the limit
    that matters: a record's attributes."""
    depth = limits.max_attribute_depth
    return f"the JSON nests too deeply to decode; a record's attributes may nest at most {depth} levels"


def _ndjson_hint(error: Exception, body: bytes) -> str:
    """For a JSON body that holds several JSON values, as NDJSON does: how to send NDJSON."""
    if "trailing characters" not in str(error):
        return ""
    try:
        _generic.decode_lines(body)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return ""
    return (
        "; the body holds several JSON values, as NDJSON does: send NDJSON with "
        "Content-Type: application/x-ndjson, or send one object or an array"
    )


def _decode_ndjson_lines(body: bytes, limits: Limits, now_ms: int) -> list[Any]:
    """The lines' values; when some are not JSON, InvalidBody naming those and, so that a client can
    fix the whole batch at once, the problems of the records on the other lines too."""
    try:
        return _generic.decode_lines(body)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        pass
    problems: list[Problem] = []
    decoded: list[tuple[int, Any]] = []  # (index, value) of the lines that are JSON
    index = 0
    for number, line in enumerate(body.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            decoded.append((index, _generic.decode(line)))
        except RecursionError:
            problems.append(Problem(index, "", f"line {number}: {too_deep(limits)}"))
        except (msgspec.DecodeError, UnicodeDecodeError) as e:
            problems.append(Problem(index, "", f"line {number} is not valid JSON in UTF-8: {not_json_reason(e, line)}"))
        index += 1
    unreadable = len(problems)
    try:
        validate_batch([value for _, value in decoded], limits, now_ms)
    except InvalidRecords as e:
        problems += [Problem(decoded[p.index][0], p.field, p.reason) for p in e.problems]
    problems.sort(key=lambda p: p.index)
    details = [p.as_dict() for p in problems[:MAX_DETAILS]]
    raise InvalidBody("invalid_json", f"{unreadable} NDJSON line(s) are not valid JSON", details)
