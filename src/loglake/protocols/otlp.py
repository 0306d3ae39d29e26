"""OTLP/HTTP logs (OpenTelemetry Protocol): ExportLogsServiceRequest, in protobuf or in OTLP's JSON
encoding, decoded with the official generated types (opentelemetry-proto) and mapped onto records.

The mapping, one LogRecord to one record:
- `service`: the resource's `service.name` (service_name() makes it a valid name; the default service without one)
- `timestamp`: `time_unix_nano`, else `observed_time_unix_nano`, else the time received (ms)
- `severity`: `severity_number` by OpenTelemetry's ranges (TRACE, DEBUG: debug; INFO: info; WARN: warning;
  ERROR: error; FATAL: critical), else `severity_text` when it names one (an alias counts), else info
- `message`: the body: a string as it is, any other value as JSON text; no body: the `event_name`
- `trace_id`, `span_id`: as lowercase hex; absent or all zeros: none
- `attributes`: the resource's other attributes, the scope's, then the record's (the later win on a
  clash), plus `otel.scope.name`/`otel.scope.version`, `event.name`, and `severity_text` when it says more
  than the severity; values as JSON (bytes as base64, as OTLP/JSON writes them).
"""

from __future__ import annotations

import base64
from typing import Any

import msgspec
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from google.protobuf.message import DecodeError
from google.rpc import code_pb2, status_pb2
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest, ExportLogsServiceResponse
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.resource.v1 import resource_pb2

from loglake.model import SEVERITY_ALIASES, SEVERITY_NAMES, Problem, Severity
from loglake.protocols.columns import RecordColumns
from loglake.protocols.mapping import rejection_message, service_name

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
# severity_number 1-24 in four steps per level: TRACE, DEBUG, INFO, WARN, ERROR, FATAL (logs data model).
_BY_NUMBER = [None, *(SEVERITY_NAMES[level] for level in (0, 0, 1, 2, 3, 4) for _ in range(4))]
_NO_ID = (b"", bytes(16), bytes(8))
_encode = msgspec.json.Encoder().encode
_decode_json = msgspec.json.Decoder().decode
_MADE_ATTRIBUTES = 10_000  # distinct sets of attributes made JSON once per scope


class MalformedRequest(ValueError):
    """The body is not an ExportLogsServiceRequest in the encoding its Content-Type names."""


def _request_read_type() -> Any:
    """ExportLogsServiceRequest as opentelemetry-proto's descriptors describe it, but with each LogRecord's
    attribute pairs left as their bytes (the KeyValue wire form, which that field carries either way). Each
    record's pairs are read with the official KeyValue once per distinct set (_pairs): a read of a protobuf
    field builds a Python object, and a record's pairs took most of those reads."""
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


def decode_request(body: bytes, json: bool) -> Any:
    """The request of a body in protobuf, or with `json` in OTLP/JSON (lowerCamelCase or the proto field
    names, 64-bit integers as strings or numbers, trace and span ids in hex), as _RequestRead; MalformedRequest
    if it is not one."""
    if not json:
        try:
            return _RequestRead.FromString(body)
        except (DecodeError, RecursionError) as e:
            raise MalformedRequest(f"the body is not an OTLP ExportLogsServiceRequest in protobuf: {e}") from None
    request = ExportLogsServiceRequest()
    try:
        decoded = _decode_json(body)
    except (msgspec.DecodeError, RecursionError) as e:
        raise MalformedRequest(f"the body is not valid JSON: {e}") from None
    if type(decoded) is not dict:
        raise MalformedRequest('the body must be a JSON object, an ExportLogsServiceRequest: {"resourceLogs": [...]}')
    try:
        _ids_as_base64(decoded)
        json_format.ParseDict(decoded, request)
    except (json_format.ParseError, ValueError, TypeError, RecursionError) as e:
        raise MalformedRequest(f"the body is not an OTLP ExportLogsServiceRequest in JSON: {e}") from None
    return _RequestRead.FromString(request.SerializeToString())


def _ids_as_base64(request: dict) -> None:
    """OTLP/JSON writes trace and span ids in hex where protobuf's JSON mapping has base64 for bytes:
    rewrite them so that json_format reads them (ValueError naming a record whose id is not hex)."""
    for resource_logs in _items(request, "resourceLogs", "resource_logs"):
        for scope_logs in _items(resource_logs, "scopeLogs", "scope_logs"):
            for record in _items(scope_logs, "logRecords", "log_records"):
                for key in ("traceId", "trace_id", "spanId", "span_id"):
                    value = record.get(key)
                    if type(value) is str:
                        try:
                            record[key] = base64.b64encode(bytes.fromhex(value)).decode()
                        except ValueError:
                            raise ValueError(f"{key} {value[:40]!r} is not hex") from None


def _items(parent: Any, *keys: str) -> list[Any]:
    """The list under the first of `keys` present (json_format names any other shape)."""
    if type(parent) is not dict:
        return []
    for key in keys:
        found = parent.get(key)
        if type(found) is list:
            return [item for item in found if type(item) is dict]
    return []


def columns(request: Any) -> RecordColumns:
    """Every LogRecord of the request as columns of records to check, in order (see the module's mapping)."""
    found = RecordColumns()
    for resource_logs in request.resource_logs:
        resource = _attributes(resource_logs.resource.attributes)
        named = resource.pop("service.name", None)
        service = service_name(named) if type(named) is str else None
        if service is not None and service != named:
            resource["service.name"] = named  # kept as sent: the service is only its nearest valid name
        for scope_logs in resource_logs.scope_logs:
            logs = scope_logs.log_records
            if not logs:
                continue
            scope = scope_logs.scope
            common = {**resource, **_attributes(scope.attributes)}
            if scope.name:
                common["otel.scope.name"] = scope.name
            if scope.version:
                common["otel.scope.version"] = scope.version
            _add_scope(found, logs, service, common)
    return found


def _add_scope(found: RecordColumns, log_records: Any, service: str | None, common: dict[str, Any]) -> None:
    """The log records of one scope, field by field: a read of a protobuf field builds a Python object, and
    so does each step over a repeated field, so the records are listed once and each field read once."""
    logs = list(log_records)
    count = len(logs)
    nanos = [log.time_unix_nano for log in logs]
    if 0 in nanos:
        nanos = [n or log.observed_time_unix_nano for n, log in zip(nanos, logs, strict=True)]
    found.timestamps += [n // 1_000_000 if n else None for n in nanos]
    found.services += [service] * count
    found.log_types += [None] * count
    levels = list(zip([log.severity_number for log in logs], [log.severity_text for log in logs], strict=True))
    known = {level: _severity(*level) for level in set(levels)}
    severities = [known[level] for level in levels]
    found.severities += [severity for severity, _ in severities]
    events = [log.event_name for log in logs]
    bodies = [log.body for log in logs]
    messages = [body.string_value for body in bodies]
    if "" in messages:  # no body, an empty string, or a value that is not a string
        messages = [m or _message(body, event) for m, body, event in zip(messages, bodies, events, strict=True)]
    found.messages += messages
    common_json = _encode(common) if common else b""
    # A scope's records repeat a few sets of attributes (and extras): each set is made JSON once.
    made: dict[tuple, bytes] = {}
    for pairs, event, (_, text), (_, says_more) in zip(
        [tuple(log.attributes) for log in logs], events, levels, severities, strict=True
    ):
        if not (pairs or event or says_more):
            found.attributes.append(common_json)
            continue
        key = (pairs, event, text if says_more else "")
        attributes = made.get(key)
        if attributes is None:
            attributes = _encode(_own(common, _pairs(pairs), event, text, says_more))
            if len(made) < _MADE_ATTRIBUTES:
                made[key] = attributes
        found.attributes.append(attributes)
    found.trace_ids += [None if i in _NO_ID else i.hex() for i in [log.trace_id for log in logs]]
    found.span_ids += [None if i in _NO_ID else i.hex() for i in [log.span_id for log in logs]]


def _pairs(wire: tuple[bytes, ...]) -> dict[str, Any]:
    """A record's attributes from their KeyValues' bytes (_RequestRead), read with the official type."""
    try:
        return _attributes([KeyValue.FromString(pair) for pair in wire])
    except DecodeError as e:
        raise MalformedRequest(f"the body is not an OTLP ExportLogsServiceRequest in protobuf: {e}") from None


def _severity(number: int, text: str) -> tuple[str, bool]:
    """The severity of a record's number and text, and whether the text says more than it (then kept)."""
    severity = _BY_NUMBER[number] if 0 < number < len(_BY_NUMBER) else _severity_of_text(text)
    return severity, bool(text) and SEVERITY_ALIASES.get(text.lower()) != SEVERITY_ALIASES[severity]


def _own(common: dict[str, Any], own: dict[str, Any], event: str, text: str, says_more: bool) -> dict[str, Any]:
    """A record's attributes: the resource's and scope's, its own (which win a clash), and the extras."""
    attributes = {**common, **own}
    if says_more:
        attributes["severity_text"] = text
    if event:
        attributes["event.name"] = event
    return attributes


def _message(body: AnyValue, event_name: str) -> str:
    """The message of a body that is not a non-empty string: the event name for none, JSON for a value."""
    kind = body.WhichOneof("value")
    if kind == "string_value":
        return ""  # an empty string: the check names it
    if kind is None:
        return event_name
    return _encode(_value(body, kind)).decode()


def _severity_of_text(text: str) -> str:
    found = SEVERITY_ALIASES.get(text.lower()) if text else None
    return (found or Severity.INFO).label


def _attributes(pairs: Any) -> dict[str, Any]:
    found = {}
    for pair in pairs:
        value = pair.value
        text = value.string_value  # the usual kind: when not empty, no need to ask which kind it is
        found[pair.key] = text if text else _value(value, value.WhichOneof("value"))
    return found


def _value(value: AnyValue, kind: str | None) -> Any:
    """An AnyValue (whose WhichOneof is `kind`) as JSON's value: bytes as base64 text, as OTLP/JSON writes
    them; none as null."""
    if kind == "string_value":
        return value.string_value
    if kind is None:
        return None
    if kind == "kvlist_value":
        return _attributes(value.kvlist_value.values)
    if kind == "array_value":
        return [_value(item, item.WhichOneof("value")) for item in value.array_value.values]
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    return getattr(value, kind)  # bool, int, double


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
    code = {400: code_pb2.INVALID_ARGUMENT, 413: code_pb2.RESOURCE_EXHAUSTED, 415: code_pb2.INVALID_ARGUMENT}
    return _serialized(status_pb2.Status(code=code.get(status, code_pb2.UNAVAILABLE), message=message), json)


def _serialized(message: Any, json: bool) -> bytes:
    if json:
        return json_format.MessageToJson(message, indent=None).encode()
    return message.SerializeToString()
