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

from loglake.model import Problem
from loglake.protocols import otlp_json, otlp_mapping
from loglake.protocols.columns import RecordColumns
from loglake.protocols.mapping import rejection_message
from loglake.protocols.otlp_mapping import MalformedRequest

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
_ATTRIBUTES = attrgetter("attributes")


def _request_read_type() -> Any:
    """ExportLogsServiceRequest as opentelemetry-proto's descriptors describe it, but with each LogRecord's
    attribute pairs left as their bytes (the KeyValue wire form, which that field carries either way). Each
    record's pairs are read with the official KeyValue once per distinct set (_Protobuf): a read of a
    protobuf field builds a Python object, and a record's pairs took most of those reads."""
    pool = descriptor_pool.DescriptorPool()
    for module in (common_pb2, resource_pb2, logs_pb2, logs_service_pb2):
        file = descriptor_pb2.FileDescriptorProto()
        module.DESCRIPTOR.CopyToProto(file)
        for message in file.message_type:
            if message.name == "LogRecord":
                attributes = next(field for field in message.field if field.name == "attributes")
                attributes.type = attributes.TYPE_BYTES
                attributes.ClearField("type_name")
        pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(ExportLogsServiceRequest.DESCRIPTOR.full_name))


_RequestRead = _request_read_type()


def columns(body: bytes, json: bool) -> RecordColumns:
    """Every LogRecord of a body in protobuf, or with `json` in OTLP/JSON, as columns of records to check;
    MalformedRequest if it is not an ExportLogsServiceRequest."""
    if json:
        return otlp_json.columns(body)
    try:
        request = _RequestRead.FromString(body)
    except (DecodeError, RecursionError) as e:
        raise MalformedRequest(f"the body is not an OTLP ExportLogsServiceRequest in protobuf: {e}") from None
    return otlp_mapping.columns(request, _PROTOBUF)


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


def response(rejected: list[Problem], total: int, json: bool) -> bytes:
    """The ExportLogsServiceResponse: empty when every record was stored, else with partial_success
    counting the refused records and naming the first problems."""
    answer = ExportLogsServiceResponse()
    if rejected:
        answer.partial_success.rejected_log_records = len({p.index for p in rejected})
        answer.partial_success.error_message = rejection_message(rejected, total)
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
