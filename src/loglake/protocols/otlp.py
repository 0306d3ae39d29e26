"""OTLP/HTTP logs (OpenTelemetry Protocol): ExportLogsServiceRequest, in protobuf (read with the official
generated types, opentelemetry-proto) or in OTLP's JSON encoding (otlp_json.py), mapped onto records
(otlp_mapping.py); and the answers, ExportLogsServiceResponse or google.rpc.Status, in either encoding.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Hashable
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from google.protobuf.message import DecodeError
from google.rpc import code_pb2, status_pb2
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest, ExportLogsServiceResponse
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.resource.v1 import resource_pb2

from loglake import content_encoding, decode_workers
from loglake.model import Problem
from loglake.protocols import otlp_json, otlp_mapping
from loglake.protocols.columns import RecordColumns
from loglake.protocols.mapping import rejection_message
from loglake.protocols.otlp_mapping import MalformedRequest

PROTOBUF = "application/x-protobuf"
JSON = "application/json"


def _read_type(merged: bool) -> Any:
    """ExportLogsServiceRequest as opentelemetry-proto's descriptors describe it, but with each LogRecord's
    attribute pairs left as their bytes (the KeyValue wire form, which that field carries either way): a
    record's pairs are read with the official types once per distinct set (_Protobuf.record_attributes).

    `merged`: each scope's log_records read as one LogRecord (a message field sent more than once is
    merged), whose fields in _MERGED are repeated, so each holds every record's value in one list: a column
    read in one step instead of one Python object per record (see _merged_fields)."""

    def change(message: descriptor_pb2.DescriptorProto) -> None:
        fields = {field.name: field for field in message.field}
        if message.name == "LogRecord":
            _as_bytes(fields["attributes"])
        if merged and message.name == "ScopeLogs":
            fields["log_records"].label = fields["log_records"].LABEL_OPTIONAL
        for name in _MERGED.get(message.name, ()) if merged else ():
            fields[name].label = fields[name].LABEL_REPEATED
            fields[name].ClearField("oneof_index")  # (AnyValue's string_value: a repeated field is in no oneof)

    return _changed_request(change)


def _attributes_type(kind: str) -> Any:
    """ExportLogsServiceRequest with only what leads to each LogRecord's attributes (as their pairs' bytes) and its
    numbers sent packed (_PACKED), the rest unknown fields. `kind`: "attributes", that; "records", each LogRecord as
    its bytes; "packed", each scope's LogRecords merged into one. A body read as "attributes", its unknown fields
    dropped and encoded again, then read as "records", gives each record's attribute pairs (their wire form) as one
    bytes object, every one made in C (_attribute_keys): read through the records' Python objects, a record's set
    took ~380 ns (its LogRecord's object, the repeated field's, the pairs')."""

    def change(message: descriptor_pb2.DescriptorProto) -> None:
        kept = {"ResourceLogs": "scope_logs", "ScopeLogs": "log_records", "LogRecord": "attributes"}.get(message.name)
        if kept is None:
            return
        field = descriptor_pb2.FieldDescriptorProto()
        field.CopyFrom(next(f for f in message.field if f.name == kept))
        del message.field[:]
        message.ClearField("oneof_decl")
        message.field.append(field)
        if message.name == "LogRecord":
            _as_bytes(message.field[0])
            for name, number in _PACKED.items():
                message.field.add(name=name, number=number, type=field.TYPE_BYTES, label=field.LABEL_REPEATED)
        if kind == "records" and message.name == "ScopeLogs":
            _as_bytes(message.field[0])
        if kind == "packed" and message.name == "ScopeLogs":
            message.field[0].label = field.LABEL_OPTIONAL

    return _changed_request(change)


def _as_bytes(field: descriptor_pb2.FieldDescriptorProto) -> None:
    field.type = field.TYPE_BYTES
    field.ClearField("type_name")


def _changed_request(change: Callable[[descriptor_pb2.DescriptorProto], None]) -> Any:
    """The ExportLogsServiceRequest class of opentelemetry-proto's descriptors, each message changed by `change`."""
    pool = descriptor_pool.DescriptorPool()
    for module in (common_pb2, resource_pb2, logs_pb2, logs_service_pb2):
        file = descriptor_pb2.FileDescriptorProto()
        module.DESCRIPTOR.CopyToProto(file)
        for message in file.message_type:
            change(message)
        pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(ExportLogsServiceRequest.DESCRIPTOR.full_name))


# The fields read as columns from the merged reading. The length-delimited ones line up with the records whenever
# no record sent a field twice; the numbers only when no field was sent in a form its declaration does not take,
# too (an unknown field): a number sent packed is an unknown field of a single one, but a repeated field reads it
# as values (see _merged_fields).
_TEXTS = ("severity_text", "event_name", "trace_id", "span_id")
_NUMBERS = ("time_unix_nano", "observed_time_unix_nano", "severity_number")
_MERGED = {"LogRecord": (*_TEXTS, *_NUMBERS), "AnyValue": ("string_value",)}
_TEXT_FIELDS = frozenset((*_TEXTS, "body.string_value"))
_ALL_FIELDS = _TEXT_FIELDS | frozenset(_NUMBERS)
# The numbers read as columns (fixed64 and an enum), by field number: a length-delimited field of one of them can
# only be the number sent packed (see _attribute_keys).
_PACKED = {name: LogRecord.DESCRIPTOR.fields_by_name[name].number for name in _NUMBERS}
_RequestRead = _read_type(merged=False)
_MergedRead = _read_type(merged=True)
_AttributesRead, _RecordsRead, _PackedRead = map(_attributes_type, ("attributes", "records", "packed"))
_RECORD_ATTRIBUTES = LogRecord  # (a record's pairs with their tags: a LogRecord of attributes only)


def columns(body: bytes, json: bool) -> RecordColumns:
    """Every LogRecord of a body in protobuf, or with `json` in OTLP/JSON, as columns of records to check;
    MalformedRequest if it is not an ExportLogsServiceRequest."""
    if json:
        return otlp_json.columns(body)
    try:
        return _protobuf_columns(body)
    except MalformedRequest:
        replaced = _text_replaced(body)
        if replaced is None:
            raise
        return _protobuf_columns(replaced)


def _protobuf_columns(body: bytes) -> RecordColumns:
    try:
        request = _RequestRead.FromString(body)
        keys, numbers_packed = _attribute_keys(body)
        fields = _merged_fields(request, body, numbers_packed)
        merged = _MergedRead.FromString(body) if fields else None
    except (DecodeError, RecursionError) as e:
        raise MalformedRequest(f"the body is not an OTLP ExportLogsServiceRequest in protobuf: {e}") from None
    return otlp_mapping.columns(request, _PROTOBUF, keys, merged, fields)


def _texts_as_bytes(message: descriptor_pb2.DescriptorProto) -> None:
    for field in message.field:
        if field.type == field.TYPE_STRING:
            field.type = field.TYPE_BYTES


_TextsAsBytes = _changed_request(_texts_as_bytes)


def _text_replaced(body: bytes) -> bytes | None:
    """The export encoded again with each byte of its text that is no UTF-8 made U+FFFD, as the JSON forms' lone
    surrogates and Loki's protobuf text are read: the Collector's protobuf code passes such text on as its receivers
    read it (a file or syslog in another encoding), and the proto3 strings refuse it, the whole export with it.
    None when the body is no export even read so, or its text was all UTF-8 (the fault is another)."""
    try:
        read = _TextsAsBytes.FromString(body)
    except (DecodeError, RecursionError):
        return None
    request = ExportLogsServiceRequest()
    _copy_replaced(read, request)
    replaced = request.SerializeToString()
    return None if replaced == read.SerializeToString() else replaced


def _copy_replaced(read: Any, into: Any) -> None:
    """`read` (a message of _TextsAsBytes) into `into`, its official form, each text field's bytes decoded."""
    for field, value in read.ListFields():
        name = field.name
        if field.type == field.TYPE_MESSAGE:
            if field.is_repeated:
                for item in value:
                    _copy_replaced(item, getattr(into, name).add())
            else:
                getattr(into, name).SetInParent()  # (an empty message set, such as a oneof's, stays set)
                _copy_replaced(value, getattr(into, name))
        elif into.DESCRIPTOR.fields_by_name[name].type == field.TYPE_STRING:
            setattr(into, name, value.decode(errors="replace"))
        elif field.is_repeated:
            getattr(into, name).extend(value)
        else:
            setattr(into, name, value)


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


def _merged_fields(request: Any, body: bytes, numbers_packed: bool) -> frozenset[str]:
    """The fields whose merged reading's columns line up with `request`'s records (a column with as many values
    as there are records has one per record): the texts when no record sent a field twice, which protobuf reads
    as its last value (a message field: the two merged) and the merged reading as two; the numbers too when none
    was sent packed (`numbers_packed`), which a single field takes as an unknown one and a repeated field as values.
    Protobuf's encoding of what it read is never longer than the body and is shorter when a field came twice, its
    earlier value dropped (a body in a non-canonical form is shorter too: it is then read record by record).

    Encoded per ResourceLogs (the request's one field, each with its tag and length; any other field sent makes
    the sum short): the whole request encoded at once is a fresh buffer of the body's size, whose pages took
    the kernel longer to fault in than the encoding took (780 faults for an export of 8,192 records). (Dropping
    the request's unknown fields to tell a packed number by the size took longer than the encoding: 150 ns a record.)"""
    if _encoded_size(request) != len(body):
        return frozenset()
    return _TEXT_FIELDS if numbers_packed else _ALL_FIELDS


def _encoded_size(request: Any) -> int:
    return sum(map(_field_size, request.resource_logs))


def _field_size(message: Any) -> int:
    """The size of a message as a length-delimited field: its tag (one byte, field numbers up to 15), its
    length as a varint, and itself."""
    size = message.ByteSize()
    return 1 + max(1, (size.bit_length() + 6) // 7) + size


def _attribute_keys(body: bytes) -> tuple[list[list[bytes]], bool]:
    """Each scope's records' attribute pairs, a bytes object per record (b"" for none), in the request's order of
    scopes (empty ones too), see _attributes_type; and whether a record sent one of the _PACKED numbers packed
    (kept beside its pairs then: LogRecord's own reading of them, record_attributes, takes it as an unknown field)."""
    attributes = _AttributesRead.FromString(body)
    attributes.DiscardUnknownFields()
    wire = attributes.SerializeToString()
    scopes = [
        scope.log_records for resource in _PackedRead.FromString(wire).resource_logs for scope in resource.scope_logs
    ]
    packed = any(getattr(records, name) for records in scopes for name in _PACKED)
    keys = [
        scope.log_records[:]
        for resource in _RecordsRead.FromString(wire).resource_logs
        for scope in resource.scope_logs
    ]
    return keys, packed


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
        if kind == "double_value":
            return otlp_mapping.double(value.double_value)
        return getattr(value, kind)  # bool, int

    def is_text(self, value: AnyValue) -> bool:
        return value.WhichOneof("value") == "string_value"

    def record_attributes(self, attribute_set: Hashable) -> dict[str, Any]:
        try:
            pairs = _RECORD_ATTRIBUTES.FromString(attribute_set).attributes  # type: ignore[arg-type]
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
