"""Loki push (`POST /loki/api/v1/push`): JSON, and protobuf in a snappy block as Promtail, Grafana Alloy
and Fluent Bit's loki output send it, mapped onto records.

The protobuf messages are described here from Loki's published push format (logproto.PushRequest:
streams of a label set in Prometheus text form and entries of a timestamp, a line and structured
metadata), built with descriptor_pb2 and decoded by the protobuf runtime: no generated code is copied.

The mapping, one entry to one record (the stream's labels, then the entry's structured metadata):
- `service`: the first of `service_labels` present (service_name(): a valid name); none: the default
- `severity`: the first of `level`, `severity`, `detected_level` present that names one (an alias counts)
- `log_type`: the `log_type` label
- `timestamp`: the entry's time (ms); `message`: its line
- `attributes`: every other label and structured metadata pair, and a label used above whose value
  had to change (a service name made valid, a level loglake does not know) as it was sent
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cramjam
import msgspec
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, timestamp_pb2
from google.protobuf.message import DecodeError

from loglake.ingest import IncomingRecord
from loglake.model import SEVERITY_ALIASES, is_valid_name
from loglake.protocols.mapping import service_name

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
DEFAULT_SERVICE_LABELS = ("service_name", "service", "app", "job")
SEVERITY_LABELS = ("level", "severity", "detected_level")
LOG_TYPE_LABEL = "log_type"
# A label set as Prometheus writes it: {name="value", ...}, values with \\, \" and \n escaped.
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_.]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)')  # $: the closing brace
_ESCAPE = re.compile(r"\\(.)")
_encode = msgspec.json.Encoder().encode
_NO_ATTRIBUTES = msgspec.Raw(b"")


class MalformedPush(ValueError):
    """The body is not a Loki push request in the encoding its Content-Type names."""


@dataclass(frozen=True, slots=True)
class Entry:
    """Where a record came from in the push: for naming it in an error."""

    stream: int
    entry: int


def _push_request_type() -> Any:
    """logproto.PushRequest as a message class, described field by field (Loki's push.proto)."""
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
    message("PushRequest", ("streams", 1, t.TYPE_MESSAGE, ".logproto.StreamAdapter", True))
    message(
        "StreamAdapter",
        ("labels", 1, t.TYPE_STRING, None, False),
        ("entries", 2, t.TYPE_MESSAGE, ".logproto.EntryAdapter", True),
        ("hash", 3, t.TYPE_UINT64, None, False),
    )
    message(
        "EntryAdapter",
        ("timestamp", 1, t.TYPE_MESSAGE, ".google.protobuf.Timestamp", False),
        ("line", 2, t.TYPE_STRING, None, False),
        ("structuredMetadata", 3, t.TYPE_MESSAGE, ".logproto.LabelPairAdapter", True),
    )
    message("LabelPairAdapter", ("name", 1, t.TYPE_STRING, None, False), ("value", 2, t.TYPE_STRING, None, False))
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(timestamp_pb2.DESCRIPTOR.serialized_pb)
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("logproto.PushRequest"))


PushRequest = _push_request_type()


class _JsonStream(msgspec.Struct):
    stream: dict[str, str] = {}
    values: list[list[str | int | dict[str, str]]] = []


class _JsonPush(msgspec.Struct):
    streams: list[_JsonStream]


_decode_json_push = msgspec.json.Decoder(_JsonPush).decode


def decode_push(body: bytes, json: bool) -> list[tuple[dict[str, str], list[tuple[int, str, dict[str, str]]]]]:
    """The push's streams: each its labels and its entries (time in ns, line, structured metadata).
    A protobuf body is a snappy block, as Loki's clients send it; MalformedPush when it cannot be read."""
    if json:
        return _json_streams(body)
    try:
        request = PushRequest.FromString(bytes(cramjam.snappy.decompress_raw(body)))
    except cramjam.DecompressionError as e:
        raise MalformedPush(f"the body is not snappy-compressed (as Loki's protobuf push is): {e}") from None
    except (DecodeError, RecursionError) as e:
        raise MalformedPush(f"the body is not a Loki PushRequest in protobuf: {e}") from None
    streams = []
    for number, stream in enumerate(request.streams):
        labels = parse_labels(stream.labels, number)
        entries = [
            (
                entry.timestamp.seconds * 1_000_000_000 + entry.timestamp.nanos,
                entry.line,
                {pair.name: pair.value for pair in entry.structuredMetadata},
            )
            for entry in stream.entries
        ]
        streams.append((labels, entries))
    return streams


def _json_streams(body: bytes) -> list[tuple[dict[str, str], list[tuple[int, str, dict[str, str]]]]]:
    try:
        push = _decode_json_push(body)
    except (msgspec.DecodeError, RecursionError) as e:
        raise MalformedPush(
            f'the body is not a Loki push in JSON ({{"streams": [{{"stream": {{...}}, "values": [[ns, line]]}}]}}): {e}'
        ) from None
    streams = []
    for number, stream in enumerate(push.streams):
        entries = []
        for index, value in enumerate(stream.values):
            nanos, line, metadata = _json_entry(value, number, index)
            entries.append((nanos, line, metadata))
        streams.append((stream.stream, entries))
    return streams


def _json_entry(value: list[Any], stream: int, index: int) -> tuple[int, str, dict[str, str]]:
    where = f"stream {stream}, entry {index}"
    if len(value) not in (2, 3):
        raise MalformedPush(f"{where}: an entry is [timestamp, line] or [timestamp, line, {{metadata}}]")
    nanos, line, *rest = value
    if type(nanos) is str and nanos.isdigit():
        nanos = int(nanos)
    if type(nanos) is not int or type(line) is not str:
        raise MalformedPush(f"{where}: the timestamp is Unix nanoseconds as a string and the line a string")
    metadata = rest[0] if rest else {}
    if type(metadata) is not dict:
        raise MalformedPush(f"{where}: structured metadata is an object of strings")
    return nanos, line, metadata


def parse_labels(text: str, stream: int = 0) -> dict[str, str]:
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
        labels[found.group(1)] = _ESCAPE.sub(_unescape, found.group(2))
        position = found.end()
    return labels


def _unescape(escaped: re.Match[str]) -> str:
    char = escaped.group(1)
    return "\n" if char == "n" else char


def records(
    streams: list[tuple[dict[str, str], list[tuple[int, str, dict[str, str]]]]],
    service_labels: Sequence[str] = DEFAULT_SERVICE_LABELS,
) -> tuple[list[IncomingRecord], list[Entry]]:
    """Every entry of every stream as a record to check, in order, and where each came from."""
    found: list[IncomingRecord] = []
    origins: list[Entry] = []
    special = {*service_labels, *SEVERITY_LABELS, LOG_TYPE_LABEL}  # labels that are more than attributes
    for number, (labels, entries) in enumerate(streams):
        service, severity, log_type, attributes = _fields(labels, service_labels)
        plain = msgspec.Raw(_encode(attributes)) if attributes else _NO_ATTRIBUTES
        for index, (nanos, line, metadata) in enumerate(entries):
            if not metadata:
                found.append(IncomingRecord(line, nanos // 1_000_000, service, log_type, severity, plain))
            elif special.isdisjoint(metadata):  # the usual metadata (trace ids, users): attributes only
                raw = msgspec.Raw(_encode({**attributes, **metadata}))
                found.append(IncomingRecord(line, nanos // 1_000_000, service, log_type, severity, raw))
            else:  # metadata naming the level or the service overrides the stream's
                own = _fields({**labels, **metadata}, service_labels)
                raw = msgspec.Raw(_encode(own[3])) if own[3] else _NO_ATTRIBUTES
                found.append(IncomingRecord(line, nanos // 1_000_000, own[0], own[2], own[1], raw))
            origins.append(Entry(number, index))
    return found, origins


def _fields(labels: dict[str, str], service_labels: Sequence[str]) -> tuple[str | None, str | None, str | None, dict]:
    """(service, severity, log type, attributes) of a label set."""
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
    return service, severity, log_type, attributes
