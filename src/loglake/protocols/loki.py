"""Loki push (`POST /loki/api/v1/push`): JSON, and protobuf in a snappy block as Promtail, Grafana Alloy
and Fluent Bit's loki output send it, mapped onto records.

The protobuf messages are described here from Loki's published push format (logproto.PushRequest:
streams of a label set in Prometheus text form and entries of a timestamp, a line and structured
metadata), built with descriptor_pb2 and decoded by the protobuf runtime: no generated code is copied.

The mapping, one entry to one record (the stream's labels, then the entry's structured metadata):
- `service`: the first of `service_labels` present (service_name(): a valid name); none: the default
- `severity`: the first of `level`, `severity`, `detected_level` present that names one (an alias counts)
- `log_type`: the `log_type` label
- `trace_id`, `span_id`: the `trace_id` and `span_id` labels (as Loki's own OTLP ingestion names them in
  structured metadata) when they are ids as the record keeps them (model.hex_id: 32 and 16 hex digits, not
  all zeros; stored in lowercase); any other value stays an attribute, as sent
- `timestamp`: the entry's time (ms); `message`: its line (an empty one: EMPTY_LINE)
- `attributes`: every other label and structured metadata pair, and a label used above whose value
  had to change (a service name made valid, a level loglake does not know) as it was sent

Streams and entries are counted from 1 in errors, as a reader counts them.
"""

from __future__ import annotations

import bisect
import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from operator import attrgetter
from typing import Any, NamedTuple

import cramjam
import msgspec
import pyarrow as pa
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, timestamp_pb2
from google.protobuf.message import DecodeError

from loglake import decode_workers
from loglake.decode_errors import in_words, lone_surrogates_replaced, not_json_reason
from loglake.digits import is_ascii_digits
from loglake.ingest import InvalidBody
from loglake.model import SEVERITY_ALIASES, Problem, is_valid_name
from loglake.protocols.columns import RecordColumns
from loglake.protocols.mapping import (
    ID_FIELDS,
    NANOS_EXAMPLE,
    SMALLEST_PLAUSIBLE_NANOS,
    nanos_advice,
    service_name,
    take_ids,
)

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
DEFAULT_SERVICE_LABELS = ("service_name", "service", "app", "job")
SEVERITY_LABELS = ("level", "severity", "detected_level")
LOG_TYPE_LABEL = "log_type"
# The message of an entry whose line is empty: Loki stores such an entry (a blank line of a tailed file), and a
# record needs a message (as OTLP's NO_BODY); refused, it failed the push's answer, which Promtail counts whole dropped.
EMPTY_LINE = "(empty line)"
# A label set as Prometheus writes it: {name="value", ...}, values with \\, \" and \n escaped.
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_.]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)')  # $: the closing brace
_ESCAPE = re.compile(r"\\(.)")
_encode = msgspec.json.Encoder().encode


class MalformedPush(ValueError):
    """The body is not a Loki push request in the encoding its Content-Type names."""


@dataclass(frozen=True, slots=True)
class Entry:
    """Where a record came from in the push, counted from 1: for naming it in an error."""

    stream: int
    entry: int

    def __str__(self) -> str:
        return f"stream {self.stream}, entry {self.entry}"


def _push_request_types() -> tuple[Any, Any, Any, Any, Any]:
    """logproto.PushRequest as message classes, described field by field (Loki's push.proto): as it is, the
    same read with each entry's structured metadata pairs left as their bytes (a LabelPairAdapter's wire
    form, which the same field carries either way), LabelPairAdapter to read those bytes, and the read form with
    the labels and lines as bytes too (for text that is not UTF-8, which the proto3 strings refuse)."""
    file = descriptor_pb2.FileDescriptorProto(
        name="loglake/loki_push.proto",
        package="logproto",
        syntax="proto3",
        dependency=["google/protobuf/timestamp.proto"],
    )

    def message(name: str, *fields: tuple[str, int, int, str | None, bool]) -> None:
        described = file.message_type.add(name=name)
        for field_name, number, kind, type_name, repeated in fields:
            field = described.field.add(name=field_name, number=number, type=kind, json_name=field_name)
            field.label = field.LABEL_REPEATED if repeated else field.LABEL_OPTIONAL
            if type_name:
                field.type_name = type_name

    t = descriptor_pb2.FieldDescriptorProto
    forms = (
        ("", (t.TYPE_MESSAGE, ".logproto.LabelPairAdapter"), t.TYPE_STRING),
        ("Read", (t.TYPE_BYTES, None), t.TYPE_STRING),
        ("Bytes", (t.TYPE_BYTES, None), t.TYPE_BYTES),
    )
    for suffix, pair, text in forms:
        message(f"PushRequest{suffix}", ("streams", 1, t.TYPE_MESSAGE, f".logproto.StreamAdapter{suffix}", True))
        message(
            f"StreamAdapter{suffix}",
            ("labels", 1, text, None, False),
            ("entries", 2, t.TYPE_MESSAGE, f".logproto.EntryAdapter{suffix}", True),
            ("hash", 3, t.TYPE_UINT64, None, False),
        )
        message(
            f"EntryAdapter{suffix}",
            ("timestamp", 1, t.TYPE_MESSAGE, ".google.protobuf.Timestamp", False),
            ("line", 2, text, None, False),
            ("structuredMetadata", 3, *pair, True),
        )
    for suffix, text in (("", t.TYPE_STRING), ("Bytes", t.TYPE_BYTES)):
        message(f"LabelPairAdapter{suffix}", ("name", 1, text, None, False), ("value", 2, text, None, False))
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(timestamp_pb2.DESCRIPTOR.serialized_pb)
    pool.Add(file)
    return tuple(
        message_factory.GetMessageClass(pool.FindMessageTypeByName(f"logproto.{name}"))
        for name in ("PushRequest", "PushRequestRead", "LabelPairAdapter", "PushRequestBytes", "LabelPairAdapterBytes")
    )


PushRequest, _PushRequestRead, _LabelPair, _PushRequestBytes, _LabelPairBytes = _push_request_types()


class _JsonStream(msgspec.Struct):
    # (`values` required: a stream without it, `value` misspelt or the old `entries`, was answered 204 and dropped)
    values: list[list[str | int | dict[str, str]]]
    stream: dict[str, str] = {}


class _JsonPush(msgspec.Struct):
    streams: list[_JsonStream]


_decode_json_push = msgspec.json.Decoder(_JsonPush).decode


def _as_is(pair: tuple[str, str]) -> tuple[str, str]:
    return pair


_TIMESTAMP = attrgetter("timestamp")
_SECONDS = attrgetter("seconds")
_NANOS = attrgetter("nanos")
_LINE = attrgetter("line")
_METADATA = attrgetter("structuredMetadata")


def _label_pair(wire: bytes) -> tuple[str, str]:
    """_read_label_pair's, kept for later pushes when the pair is small: a shipper's entries repeat a few pairs
    (a component, an event, a user), each read once, not once per distinct set of an entry's pairs in a stream."""
    return _kept_label_pair(wire) if len(wire) <= _KEPT_PAIR_BYTES else _read_label_pair(wire)


def _read_label_pair(wire: bytes) -> tuple[str, str]:
    """A structured metadata pair from its protobuf wire form; text that is not UTF-8 with each such byte made
    U+FFFD, as the labels and lines are (_text_replaced): refused, the whole push was."""
    try:
        pair = _LabelPair.FromString(wire)
    except DecodeError:  # (the push was read with the pairs left as bytes)
        try:
            raw = _LabelPairBytes.FromString(wire)
        except DecodeError as e:
            raise MalformedPush(f"a structured metadata pair is not a LabelPairAdapter in protobuf: {e}") from None
        return raw.name.decode(errors="replace"), raw.value.decode(errors="replace")
    return pair.name, pair.value


_kept_label_pair = functools.lru_cache(maxsize=4096)(_read_label_pair)
_KEPT_PAIR_BYTES = 512  # at most, of a pair kept: the 4096 kept hold about 12 MB at worst, far less as sent


@dataclass(slots=True)
class Stream:
    """One stream of a push: its labels and its entries' times (ms), lines and structured metadata: each
    entry's pairs (empty for none) in some form, and `pair` to make one a (name, value)."""

    labels: dict[str, str]
    times: list[int]
    lines: list[str]
    metadata: list[tuple]
    pair: Callable[[Any], tuple[str, str]] = _as_is
    refused: dict[int, Problem] = field(default_factory=dict)  # entries refused as read (by index, from 0)


def _text_replaced(raw: bytes) -> Any:
    """A push whose labels or lines are not UTF-8 (winston-loki's protobufjs writes half an emoji so), read with
    each such byte made U+FFFD, as Loki takes the text as it is: refused whole, it was resent for ever."""
    try:
        read = _PushRequestBytes.FromString(raw)
    except (DecodeError, RecursionError) as e:
        raise MalformedPush(f"the body is not a Loki PushRequest in protobuf: {e}") from None
    request = _PushRequestRead()
    for stream in read.streams:
        copy = request.streams.add(labels=stream.labels.decode(errors="replace"), hash=stream.hash)
        for entry in stream.entries:
            line = entry.line.decode(errors="replace")
            copy.entries.add(timestamp=entry.timestamp, line=line, structuredMetadata=entry.structuredMetadata)
    return request


def decode_push(body: bytes, json: bool, max_bytes: int | None = None) -> list[Stream]:
    """The push's streams. A protobuf body is a snappy block, as Loki's clients send it; MalformedPush when
    it cannot be read, InvalidBody (too_large) when its block inflates past max_bytes (the body limit after
    decompression), said by the block's header before any of it is inflated: a block inflates up to ~21 times its
    size, and a 10 MiB one held the server's memory at 1.1 GiB."""
    if json:
        if not body or body.isspace():  # (not strip(): a copy of the body)
            raise MalformedPush('the body is empty: send {"streams": [{"stream": {...}, "values": [[ns, line]]}]}')
        return _json_streams(body)
    try:
        if max_bytes is not None and (size := cramjam.snappy.decompress_raw_len(body)) > max_bytes:
            raise InvalidBody(
                "payload_too_large",
                f"the push's snappy block inflates to {size} bytes, more than the {max_bytes} a body may be after"
                " decompression; send less in one push",
                too_large=True,
            )
        raw = bytes(cramjam.snappy.decompress_raw(body))
        request = _PushRequestRead.FromString(raw)
    except cramjam.DecompressionError as e:
        raise MalformedPush(f"the body is not snappy-compressed (as Loki's protobuf push is): {e}") from None
    except (DecodeError, RecursionError) as e:
        if "UTF-8" not in str(e):
            raise MalformedPush(f"the body is not a Loki PushRequest in protobuf: {e}") from None
        request = _text_replaced(raw)
    streams = []
    for number, stream in enumerate(request.streams, start=1):
        # Each field read once per entry, over one list of them: a read of a protobuf field builds a Python
        # object, and so does each step over the entries. The metadata pairs stay bytes until _add_stream.
        entries = list(stream.entries)
        stamps = list(map(_TIMESTAMP, entries))
        streams.append(
            Stream(
                parse_labels(stream.labels, number),
                # (s * 10^9 + n) // 10^6
                [s * 1000 + n // 1_000_000 for s, n in zip(map(_SECONDS, stamps), map(_NANOS, stamps), strict=True)],
                list(map(_LINE, entries)),
                [tuple(pairs[:]) for pairs in map(_METADATA, entries)],  # a slice copies them in one step
                _label_pair,
            )
        )
    return streams


def _counted_from_one(words: str) -> str:
    """A decode error's place as Loki's other errors name it (`stream 1, entry 2, the line`, `stream 1, the
    labels`), not as a path counted from 0 (`streams[0].values[1][1]`, `streams[0].stream`)."""
    found = _PLACE.match(words)
    if found is None:
        return words
    stream, entry, part, rest = found.groups()
    place = [f"stream {int(stream) + 1}"]
    if entry is not None:
        place.append(f"entry {int(entry) + 1}")
    if part is not None:
        place.append(_ENTRY_PARTS.get(int(part), f"element {int(part) + 1}"))
    if rest.startswith(".stream"):
        place.append("the labels")
        rest = rest.removeprefix(".stream")
    return ", ".join(place) + rest


_PLACE = re.compile(r"streams\[(\d+)\](?:\.values\[(\d+)\](?:\[(\d+)\])?)?(.*)", re.DOTALL)
_ENTRY_PARTS = {0: "the timestamp", 1: "the line", 2: "the structured metadata"}


def _json_streams(body: bytes) -> list[Stream]:
    try:
        push = _decode_json_push(body)
    except (msgspec.DecodeError, RecursionError) as e:
        fixed = None if isinstance(e, msgspec.ValidationError) else lone_surrogates_replaced(body)
        if fixed is not None:  # (U+FFFD, as Loki's reader takes them)
            return _json_streams(fixed)
        reason = in_words(e) if isinstance(e, msgspec.ValidationError) else not_json_reason(e, body)
        raise MalformedPush(
            f'the body is not a Loki push in JSON ({{"streams": [{{"stream": {{...}}, "values": [[ns, line]]}}]}}): '
            f"{_counted_from_one(reason)}"
        ) from None
    streams = []
    for number, stream in enumerate(push.streams, start=1):
        found = Stream(stream.stream, [], [], [])
        for index, value in enumerate(stream.values, start=1):
            nanos, line, metadata = _json_entry(value, number, index)
            if nanos < SMALLEST_PLAUSIBLE_NANOS:  # refused alone (the records' check would name the time in ms)
                reason = f"{value[0]!r} is before 1973-03-03: {nanos_advice(nanos)}"
                found.refused[index - 1] = Problem(index - 1, "timestamp", reason)
            found.times.append(nanos // 1_000_000)
            found.lines.append(line)
            found.metadata.append(tuple(metadata.items()))
        streams.append(found)
    return streams


def _json_entry(value: list[Any], stream: int, index: int) -> tuple[int, str, dict[str, str]]:
    where = f"stream {stream}, entry {index}"
    if len(value) not in (2, 3):
        raise MalformedPush(f"{where}: an entry is [timestamp, line] or [timestamp, line, {{metadata}}]")
    sent, line, *rest = value
    nanos = int(sent) if type(sent) is str and is_ascii_digits(sent) else sent
    if type(nanos) is not int:
        raise MalformedPush(f"{where}: the timestamp must be a string of Unix nanoseconds, like {NANOS_EXAMPLE}")
    if type(line) is not str:
        raise MalformedPush(f"{where}: the line must be a string")
    metadata = rest[0] if rest else {}
    if type(metadata) is not dict:
        raise MalformedPush(f"{where}: structured metadata is an object of strings")
    return nanos, line, metadata


def parse_labels(text: str, stream: int = 1) -> dict[str, str]:
    """A label set in Prometheus text form, `{job="api", level="info"}`; MalformedPush if it is not one."""
    inner = text.strip()
    if not (inner.startswith("{") and inner.endswith("}")):
        raise MalformedPush(f'stream {stream}: labels {text[:80]!r} are not of the form {{name="value", ...}}')
    labels: dict[str, str] = {}
    position, end = 1, len(inner) - 1
    while position < end and inner[position:end].strip():
        found = _LABEL.match(inner, position, end)
        if found is None:
            raise MalformedPush(f'stream {stream}: cannot read labels {text[:80]!r}; write {{name="value", ...}}')
        name = found.group(1)
        if name in labels:  # (as Loki refuses it: which value is the stream's?)
            raise MalformedPush(f"stream {stream}: labels {text[:80]!r} name {name!r} twice; name each once")
        labels[name] = _ESCAPE.sub(_unescape, found.group(2))
        position = found.end()
    return labels


def _unescape(escaped: re.Match[str]) -> str:
    char = escaped.group(1)
    return "\n" if char == "n" else char


def worker_decoded(
    body: bytes, json: bool, service_labels: Sequence[str], max_bytes: int | None = None
) -> tuple[Any, list[int]] | str:
    """In a decode worker (decode_workers): the push's columns packed (decode_workers.packed) and where each stream
    starts among them; or the MalformedPush's message (an InvalidBody is raised: the server's process answers it)."""
    try:
        found, starts = columns(decode_push(body, json, max_bytes), service_labels)
    except MalformedPush as e:
        return str(e)
    return decode_workers.packed(found), starts


def worker_unpacked(decoded: tuple[Any, list[int]] | str) -> tuple[RecordColumns, list[int]]:
    """In the server: what worker_decoded answered, as columns(decode_push(...)) answers it (MalformedPush too)."""
    if isinstance(decoded, str):
        raise MalformedPush(decoded)
    packed, starts = decoded
    return decode_workers.unpacked(packed), starts


def columns(
    streams: list[Stream], service_labels: Sequence[str] = DEFAULT_SERVICE_LABELS
) -> tuple[RecordColumns, list[int]]:
    """Every entry of every stream as columns of records to check, in order, and where each stream starts
    among them (for entry_of)."""
    found = RecordColumns()
    starts = []
    special = {*service_labels, *SEVERITY_LABELS, LOG_TYPE_LABEL, *(name for name, _ in ID_FIELDS)}
    texts: list[bytes] = []  # the attributes of each distinct (stream, structured metadata) of the push
    sets: list[_Fields] = []  # and what else it gives its entries
    rows: list[int] = []  # each entry's
    for stream in streams:
        starts.append(len(found))
        start = starts[-1]
        found.refused |= {start + i: replace(problem, index=start + i) for i, problem in stream.refused.items()}
        found.messages += [line or EMPTY_LINE for line in stream.lines] if "" in stream.lines else stream.lines
        found.timestamps += stream.times
        rows += _stream_rows(stream, service_labels, special, texts, sets)
    found.attributes = list(map(texts.__getitem__, rows))
    if sets:  # the other fields as Arrow arrays, taken from the sets' (no Python object per entry)
        numbers = pa.array(rows, pa.int32())
        found.services, found.severities, found.log_types, found.trace_ids, found.span_ids = (
            pa.array(column, pa.string()).take(numbers) for column in list(zip(*sets, strict=True))[:5]
        )
    return found, starts


def _stream_rows(
    stream: Stream, service_labels: Sequence[str], special: set[str], texts: list[bytes], sets: list[_Fields]
) -> list[int]:
    """The set (of `texts` and `sets`, added to) of each entry of the stream."""
    # A label of an empty value is none, as Loki reads a label set (`{service_name="", app="web"}` is web's)
    labels = {name: value for name, value in stream.labels.items() if value}
    fields = _fields(labels, service_labels)
    plain = _encode(fields.attributes) if fields.attributes else b""
    if not any(stream.metadata):
        texts.append(plain)
        sets.append(fields)
        return [len(sets) - 1] * len(stream.lines)
    # The entries of a stream repeat a few sets of metadata (a component, an event): each set is mapped once.
    numbers: dict[tuple, int] = {}
    for pairs in dict.fromkeys(stream.metadata):
        text, own = (
            _with_metadata(labels, fields, dict(map(stream.pair, pairs)), service_labels, special)
            if pairs
            else (plain, fields)
        )
        numbers[pairs] = len(sets)
        texts.append(text)
        sets.append(own)
    return list(map(numbers.__getitem__, stream.metadata))


def _with_metadata(
    labels: dict[str, str], fields: _Fields, metadata: dict[str, str], service_labels: Sequence[str], special: set[str]
) -> tuple[bytes, _Fields]:
    """An entry's attributes with its structured metadata, and its fields (the stream's, of its labels): the stream's
    unless the metadata changes them."""
    if special.isdisjoint(metadata):  # the usual metadata (users, request ids): attributes only
        return _encode({**fields.attributes, **metadata} if fields.attributes else metadata), fields
    own = _fields({**labels, **metadata}, service_labels)  # metadata naming the level, service or a trace
    return (_encode(own.attributes) if own.attributes else b""), own


def entry_of(index: int, starts: list[int]) -> Entry:
    """Where the record at `index` of columns() came from."""
    stream = bisect.bisect_right(starts, index)
    return Entry(stream, index - starts[stream - 1] + 1)


class _Fields(NamedTuple):
    """What a label set says of its records."""

    service: str | None
    severity: str | None
    log_type: str | None
    trace_id: str | None
    span_id: str | None
    attributes: dict[str, str]


def _fields(labels: dict[str, str], service_labels: Sequence[str]) -> _Fields:
    attributes = dict(labels)
    service = severity = log_type = None
    for name in service_labels:
        if name in attributes:
            given = attributes.pop(name)
            service = service_name(given)
            if service != given:
                attributes[name] = given
            break
    for name in SEVERITY_LABELS:
        if name in attributes:
            found = SEVERITY_ALIASES.get(attributes[name].lower())
            if found is not None:
                severity = found.label
                del attributes[name]
                break
    if LOG_TYPE_LABEL in attributes and is_valid_name(attributes[LOG_TYPE_LABEL]):
        log_type = attributes.pop(LOG_TYPE_LABEL)
    trace_id, span_id = take_ids(attributes)
    return _Fields(service, severity, log_type, trace_id, span_id, attributes)
