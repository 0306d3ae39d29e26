"""What a Splunk HEC event's host, source, sourcetype, index and `fields` give its record (the rules both of
splunk.py's paths apply), and the fast path for events as shippers send them (PlainEvent): each rule run over a
batch's events at once, each distinct set of those values mapped once. Pure, no I/O."""

from __future__ import annotations

import functools
from operator import attrgetter
from typing import Annotated, Any, NamedTuple

import msgspec
import pyarrow as pa
import pyarrow.compute as pc

from loglake.ingest_columns import binary_array
from loglake.protocols.columns import RecordColumns
from loglake.protocols.mapping import take_ids
from loglake.protocols.names import level_severity, logger_level_severity, otel_severity, safe_name

METADATA = ("host", "source", "sourcetype", "index")
SEVERITY_FIELDS = ("severity", "level")  # the first that names a severity is the record's
# Else the severity the OpenTelemetry Collector's splunk_hec exporter sends in `fields` (its otel_to_hec_fields
# defaults), the number first, as OTLP maps a record's.
OTEL_SEVERITY_NUMBER, OTEL_SEVERITY_TEXT = "otel.log.severity.number", "otel.log.severity.text"
SERVICE_FIELDS = ("service.name", "service")
_encode = msgspec.json.Encoder().encode

# Epoch seconds from here are past the year 5000: such a `time` is in a finer unit, which a shipper sent by
# mistake; the record is kept at its arrival with the time as sent (splunk._epoch_ms), not made ms past int64.
FINER_THAN_SECONDS = 1e11


class PlainEvent(msgspec.Struct, gc=False):
    """An event as shippers send it: the log line a string, `time` a number, `fields` flat. Its fields take
    the values HecEvent's would, and the same rules map it, over a batch's events at a time (plain_columns).
    `fields` stays JSON text here: a batch's events repeat a few sets of them (and of host, source,
    sourcetype and index), each read and mapped once (_plain_mapped)."""

    event: Annotated[str, msgspec.Meta(min_length=1)]
    time: float | None = None
    host: str | None = None
    source: str | None = None
    sourcetype: str | None = None
    index: str | None = None
    fields: msgspec.Raw = msgspec.Raw(b"")


_decode_plain_events = msgspec.json.Decoder(PlainEvent).decode_lines
_decode_plain_fields = msgspec.json.Decoder(dict[str, str | int | float | bool | list | None] | None).decode


def take_severity(fields: dict[str, Any]) -> str | None:
    """A `severity` or `level` naming a severity becomes the record's (and leaves the attributes): a word, or for
    `level` pino's and bunyan's number (50 is error), as Elasticsearch bulk's sources map them; else the
    OpenTelemetry Collector's severity number or text."""
    for key in SEVERITY_FIELDS:
        value = fields.get(key)
        severity = logger_level_severity(value) if key == "level" else level_severity(value)
        if severity is not None:
            del fields[key]
            return severity
    by_number = otel_severity(fields.get(OTEL_SEVERITY_NUMBER))
    by_text = level_severity(fields.get(OTEL_SEVERITY_TEXT))
    severity = by_number or by_text
    if by_number is not None:
        del fields[OTEL_SEVERITY_NUMBER]
    if by_text is not None and by_text == severity:  # (a text saying another severity than its number is kept)
        del fields[OTEL_SEVERITY_TEXT]
    return severity


def take_service(fields: dict[str, Any]) -> str | None:
    """The service a `service.name` (or `service`) names, made a valid name; it leaves the attributes when
    it was one as sent."""
    for key in SERVICE_FIELDS:
        name = fields.get(key)
        if type(name) is str and name:
            service = safe_name(name)
            if service == name:
                del fields[key]
            return service
    return None


def plain_columns(body: bytes, defaults: tuple[str | None, ...] = (None,) * len(METADATA)) -> RecordColumns | None:
    """splunk._columns for events as shippers send them (PlainEvent), each rule run over the batch's events at
    once, what an event's host, source, sourcetype, index (each of METADATA, else its `defaults`) and fields give
    mapped once per distinct set of them (a batch's events repeat a few). None for other events (for
    splunk._columns, which names an event at fault)."""
    try:
        messages, seconds, metadata, fields = _plain_values(body)
        for column, default in zip(metadata, defaults, strict=True):
            if default is not None:
                column[:] = [default if value is None else value for value in column]
        times = _plain_times(seconds)
        if times is None:
            return None  # (splunk._columns says what the time looks like)
        sets, rows = _distinct_sets(metadata, fields)
        mapped = [_plain_mapped(*given) for given in sets]
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError, ValueError):  # (pa.ArrowInvalid too)
        return None
    attributes, *texts = zip(*mapped, strict=True)
    services, severities, log_types, trace_ids, span_ids = (
        pa.array(column, pa.string()).take(rows) for column in texts
    )
    # (the distinct texts as a dictionary: the column check checks each once, with no Python object per event)
    attributes = pa.DictionaryArray.from_arrays(rows, pa.array(attributes, pa.binary()))
    return RecordColumns(messages, times, services, log_types, severities, attributes, trace_ids, span_ids)


def _plain_values(body: bytes) -> tuple[list[str], list[float | None], list[list[str | None]], list[msgspec.Raw]]:
    """The events' messages, times, hosts, sources, sourcetypes and indexes (a list of each, METADATA's order) and
    fields, decoded _PIECE_BYTES at a time, each piece split between two events: after a `}{` or a line break. One
    inside a string makes the piece fail to decode (msgspec.DecodeError), and the body take splunk._columns."""
    messages: list[str] = []
    times: list[float | None] = []
    metadata: list[list[str | None]] = [[] for _ in METADATA]
    fields: list[msgspec.Raw] = []
    view = memoryview(body)
    start = 0
    while start < len(body):
        end = len(body)
        for between in (b"}{", b"\n"):
            found = body.find(between, start + _PIECE_BYTES, start + 2 * _PIECE_BYTES)
            if found >= 0:
                end = found + 1
                break
        # decode_lines reads values one after another, with or without whitespace between them.
        events = _decode_plain_events(view[start:end])
        # (each value read while the piece's events are still in the CPU's cache)
        messages += map(_EVENT, events)
        times += map(_TIME, events)
        for column, read in zip(metadata, _METADATA_READS, strict=True):
            column += map(read, events)
        fields += map(_FIELDS, events)
        start = end
    return messages, times, metadata, fields


_PIECE_BYTES = 64 * 1024  # of events decoded at a time: a few hundred, which the CPU's cache holds


def _plain_times(seconds: list[float | None]) -> pa.Array | None:
    """Epoch seconds as epoch ms, rounded as _ms rounds them (half to even, as Python's round), in one pass;
    None when one looks finer than seconds. ValueError for one past what epoch ms can be."""
    ms = pc.round(pc.multiply(pa.array(seconds, pa.float64()), 1000), round_mode="half_to_even")
    if (pc.max(ms).as_py() or 0) >= FINER_THAN_SECONDS * 1000:  # (an infinity too: 1e999 reads as one)
        return None
    return ms.cast(pa.int64())


_TIME = attrgetter("time")
_FIELDS = attrgetter("fields")
_EVENT = attrgetter("event")
_METADATA_READS = [attrgetter(name) for name in METADATA]


def _distinct_sets(
    columns: list[list[str | None]], fields: list[msgspec.Raw]
) -> tuple[list[tuple[tuple[str | None, ...], bytes]], pa.Array]:
    """The distinct pairs of (host, source, sourcetype, index) and `fields` text, and which of them each event
    has: the fields told apart by Arrow over all of their text at once, not one Python object each; the hosts,
    sources, sourcetypes and indexes (`columns`) each seen to be one value by comparing, in the usual batch (from
    one host), with no tuple of them made (and hashed) per event."""
    encoded = binary_array(fields)[0].dictionary_encode()
    field_texts = encoded.dictionary.to_pylist()
    if columns[0] and all(column.count(column[0]) == len(column) for column in columns):
        given = tuple(column[0] for column in columns)
        return [(given, text) for text in field_texts], encoded.indices
    metadata = list(zip(*columns, strict=True))
    metadata_numbers = {given: number for number, given in enumerate(dict.fromkeys(metadata))}
    sets = pc.add(
        pc.multiply(encoded.indices.cast(pa.int64()), len(metadata_numbers)),
        pa.array(map(metadata_numbers.__getitem__, metadata), pa.int64()),
    ).dictionary_encode()
    distinct_metadata = list(metadata_numbers)
    return [
        (distinct_metadata[number % len(distinct_metadata)], field_texts[number // len(distinct_metadata)])
        for number in sets.dictionary.to_pylist()
    ], sets.indices


class _Mapped(NamedTuple):
    """What an event's host, source, sourcetype, index and fields give its record."""

    attributes: bytes
    service: str | None
    severity: str | None
    log_type: str | None
    trace_id: str | None
    span_id: str | None


def _plain_mapped(metadata: tuple[str | None, ...], fields: bytes) -> _Mapped:
    """_map_plain's, kept for later batches when the set is small: a shipper's batches repeat the same sets (its
    hosts, services, levels), which are then mapped once, not once a batch."""
    if len(fields) + sum(map(len, filter(None, metadata))) > _KEPT_SET_SIZE:
        return _map_plain(metadata, fields)
    return _kept_plain(metadata, fields)


# Bytes and characters of a set's values, at most, for it to be kept: the 4096 sets kept hold about 25 MB at worst
# (values of 4-byte characters), about 1 MB as shippers send them.
_KEPT_SET_SIZE = 512


def _map_plain(metadata: tuple[str | None, ...], fields: bytes) -> _Mapped:
    """splunk._columns' rules for one event's (host, source, sourcetype, index) and `fields` (JSON text, b""
    for none)."""
    own = (_decode_plain_fields(fields) if fields else None) or {}
    severity = take_severity(own)
    service = take_service(own)
    trace_id, span_id = take_ids(own)
    attributes = _named(metadata) | own
    log_type = None if metadata[2] is None else safe_name(metadata[2])
    return _Mapped(_encode(attributes) if attributes else b"", service, severity, log_type, trace_id, span_id)


_kept_plain = functools.lru_cache(maxsize=4096)(_map_plain)


@functools.lru_cache(maxsize=256)  # asked per distinct set of fields, of the few host, source... sets of a batch
def _named(metadata: tuple[str | None, ...]) -> dict[str, str]:
    """The attributes a (host, source, sourcetype, index) gives, those sent; shared: not to be changed."""
    return {name: value for name, value in zip(METADATA, metadata, strict=True) if value is not None}
