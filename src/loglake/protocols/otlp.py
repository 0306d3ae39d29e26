"""OTLP/HTTP logs (OpenTelemetry Protocol): ExportLogsServiceRequest, in protobuf (read with the official
generated types, opentelemetry-proto) or in OTLP's JSON encoding (otlp_json.py), mapped onto records
(otlp_mapping.py); and the answers, ExportLogsServiceResponse or google.rpc.Status, in either encoding.
"""

from __future__ import annotations

import base64
from collections.abc import Hashable
from operator import attrgetter
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from google.protobuf.message import DecodeError
from google.rpc import code_pb2, status_pb2
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest, ExportLogsServiceResponse
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.resource.v1 import resource_pb2

from loglake import content_encoding, decode_workers
from loglake.model import Problem
from loglake.protocols import otlp_json, otlp_mapping
from loglake.protocols.columns import RecordColumns
from loglake.protocols.mapping import rejection_message
from loglake.protocols.otlp_mapping import MalformedRequest

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
_ATTRIBUTES = attrgetter("attributes")


def _read_type(merged: bool) -> Any:
    """ExportLogsServiceRequest as opentelemetry-proto's descriptors describe it, but with each LogRecord's
    attribute pairs left as their bytes (the KeyValue wire form, which that field carries either way). Each
    record's pairs are read with the official KeyValue once per distinct set (_Protobuf): a read of a
    protobuf field builds a Python object, and a record's pairs took most of those reads.

    `merged`: each scope's log_records read as one LogRecord (a message field sent more than once is
    merged), whose length-delimited fields (_MERGED) are repeated, so each holds every record's value in one
    list: a column read in one step instead of one Python object per record (see _merged)."""
    pool = descriptor_pool.DescriptorPool()
    for module in (common_pb2, resource_pb2, logs_pb2, logs_service_pb2):
        file = descriptor_pb2.FileDescriptorProto()
        module.DESCRIPTOR.CopyToProto(file)
        for message in file.message_type:
            fields = {field.name: field for field in message.field}
            if message.name == "LogRecord":
                fields["attributes"].type = fields["attributes"].TYPE_BYTES
                fields["attributes"].ClearField("type_name")
            if merged and message.name == "ScopeLogs":
                fields["log_records"].label = fields["log_records"].LABEL_OPTIONAL
            for name in _MERGED.get(message.name, ()) if merged else ():
                fields[name].label = fields[name].LABEL_REPEATED
                fields[name].ClearField("oneof_index")  # (AnyValue's string_value: a repeated field is in no oneof)
        pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(ExportLogsServiceRequest.DESCRIPTOR.full_name))


# The fields read as columns from the merged reading: only length-delimited ones, which a sender cannot send
# in a form one reading takes as the field and the other not (a number could come packed, which a repeated
# field reads as values and a single one as an unknown field).
_MERGED = {"LogRecord": ("severity_text", "event_name", "trace_id", "span_id"), "AnyValue": ("string_value",)}
_RequestRead = _read_type(merged=False)
_MergedRead = _read_type(merged=True)


def columns(body: bytes, json: bool) -> RecordColumns:
    """Every LogRecord of a body in protobuf, or with `json` in OTLP/JSON, as columns of records to check;
    MalformedRequest if it is not an ExportLogsServiceRequest."""
    if json:
        return otlp_json.columns(body)
    try:
        request = _RequestRead.FromString(body)
        merged = _MergedRead.FromString(body) if _merged(request, body) else None
    except (DecodeError, RecursionError) as e:
        raise MalformedRequest(f"the body is not an OTLP ExportLogsServiceRequest in protobuf: {e}") from None
    return otlp_mapping.columns(request, _PROTOBUF, merged)


def worker_decoded(body: bytes, json: bool, gzip: bool, max_body_bytes: int) -> tuple | str | None:
    """In a decode worker (decode_workers): the export's columns (decode_workers.packed), the MalformedRequest's
    message, or None when the body does not inflate (the in-process path answers that error)."""
    try:
        body = content_encoding.decoded(body, gzip, max_body_bytes)
    except content_encoding.NotInflated:
        return None
    try:
        return decode_workers.packed(columns(body, json))
    except MalformedRequest as e:
        return str(e)


def _merged(request: Any, body: bytes) -> bool:
    """Whether the merged reading's columns line up with `request`'s records (a column with as many values
    as there are records has one per record): when no record sent a field twice, which protobuf reads as its
    last value (a message field: the two merged) and the merged reading as two. Protobuf's encoding of what
    it read is never longer than the body and is shorter when a field came twice, its earlier value dropped
    (a body in a non-canonical form is shorter too: it is then read record by record).

    Encoded per ResourceLogs (the request's one field, each with its tag and length; any other field sent makes
    the sum short): the whole request encoded at once is a fresh buffer of the body's size, whose pages took
    the kernel longer to fault in than the encoding took (780 faults for an export of 8,192 records)."""
    return sum(map(_field_size, request.resource_logs)) == len(body)


def _field_size(message: Any) -> int:
    """The size of a message as a length-delimited field: its tag (one byte, field numbers up to 15), its
    length as a varint, and itself."""
    size = message.ByteSize()
    return 1 + max(1, (size.bit_length() + 6) // 7) + size


class _Protobuf:
    """otlp_mapping.Encoding of a _RequestRead."""

    def value(self, value: AnyValue) -> Any:
        kind = value.WhichOneof("value")
        if kind == "string_value":
            return value.string_value
        if kind is None:
            return None
        if kind == "kvlist_value":
            return otlp_mapping.attributes(value.kvlist_value.values, self)
        if kind == "array_value":
            return [self.value(item) for item in value.array_value.values]
        if kind == "bytes_value":
            return base64.b64encode(value.bytes_value).decode()
        return getattr(value, kind)  # bool, int, double

    def is_text(self, value: AnyValue) -> bool:
        return value.WhichOneof("value") == "string_value"

    def attribute_sets(self, logs: list[Any]) -> list[Hashable]:
        # The pairs' bytes; a slice copies the repeated field in one step, where tuple() would take each.
        return [tuple(pairs[:]) for pairs in map(_ATTRIBUTES, logs)]

    def record_attributes(self, attribute_set: Hashable) -> dict[str, Any]:
        try:
            pairs = [KeyValue.FromString(pair) for pair in attribute_set]  # type: ignore[attr-defined]
        except DecodeError as e:
            raise MalformedRequest(f"the body is not an OTLP ExportLogsServiceRequest in protobuf: {e}") from None
        return otlp_mapping.attributes(pairs, self)

    def severity_number(self, number: int) -> int:
        return number

    def id_texts(self, ids: list[Any]) -> list[str]:
        return list(map(bytes.hex, ids))


_PROTOBUF = _Protobuf()


def response(rejected: list[Problem], found: RecordColumns, json: bool) -> bytes:
    """The ExportLogsServiceResponse: empty when every record was stored, else with partial_success
    counting the refused records and naming the first problems."""
    answer = ExportLogsServiceResponse()
    if rejected:
        answer.partial_success.rejected_log_records = len({p.index for p in rejected})
        answer.partial_success.error_message = rejection_message(rejected, len(found), found.name)
    return _serialized(answer, json)


def error_status(status: int, message: str, json: bool) -> bytes:
    """The body of a failed export: a google.rpc.Status, as OTLP/HTTP answers its 4xx and 5xx."""
    code = {
        400: code_pb2.INVALID_ARGUMENT,
        401: code_pb2.UNAUTHENTICATED,
        403: code_pb2.PERMISSION_DENIED,
        413: code_pb2.RESOURCE_EXHAUSTED,
        415: code_pb2.INVALID_ARGUMENT,
        429: code_pb2.RESOURCE_EXHAUSTED,
    }
    return _serialized(status_pb2.Status(code=code.get(status, code_pb2.UNAVAILABLE), message=message), json)


def _serialized(message: Any, json: bool) -> bytes:
    if json:
        return json_format.MessageToJson(message, indent=None).encode()
    return message.SerializeToString()
