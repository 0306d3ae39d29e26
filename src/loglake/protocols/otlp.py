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
import functools
from typing import Any

import msgspec
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from google.rpc import code_pb2, status_pb2
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest, ExportLogsServiceResponse
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from loglake.ingest import IncomingRecord
from loglake.model import SEVERITY_ALIASES, SEVERITY_NAMES, Problem, Severity
from loglake.protocols.mapping import rejection_message, service_name

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
# severity_number 1-24 in four steps per level: TRACE, DEBUG, INFO, WARN, ERROR, FATAL (logs data model).
_BY_NUMBER = [None, *(SEVERITY_NAMES[level] for level in (0, 0, 1, 2, 3, 4) for _ in range(4))]
_NO_ID = (b"", bytes(16), bytes(8))
_NO_ATTRIBUTES = msgspec.Raw(b"")
_encode = msgspec.json.Encoder().encode
_decode_json = msgspec.json.Decoder().decode


class MalformedRequest(ValueError):
    """The body is not an ExportLogsServiceRequest in the encoding its Content-Type names."""


def decode_request(body: bytes, json: bool) -> ExportLogsServiceRequest:
    """The request of a body in protobuf, or with `json` in OTLP/JSON (lowerCamelCase or the proto field
    names, 64-bit integers as strings or numbers, trace and span ids in hex); MalformedRequest if not."""
    request = ExportLogsServiceRequest()
    if not json:
        try:
            request.ParseFromString(body)
        except (DecodeError, RecursionError) as e:
            raise MalformedRequest(f"the body is not an OTLP ExportLogsServiceRequest in protobuf: {e}") from None
        return request
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
    return request


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


def records(request: ExportLogsServiceRequest) -> list[IncomingRecord]:
    """Every LogRecord of the request as a record to check, in order (see the module's mapping)."""
    found: list[IncomingRecord] = []
    for resource_logs in request.resource_logs:
        resource = _attributes(resource_logs.resource.attributes)
        named = resource.pop("service.name", None)
        service = service_name(named) if type(named) is str else None
        if service is not None and service != named:
            resource["service.name"] = named  # kept as sent: the service is only its nearest valid name
        for scope_logs in resource_logs.scope_logs:
            scope = scope_logs.scope
            common = {**resource, **_attributes(scope.attributes)}
            if scope.name:
                common["otel.scope.name"] = scope.name
            if scope.version:
                common["otel.scope.version"] = scope.version
            common_raw = msgspec.Raw(_encode(common)) if common else _NO_ATTRIBUTES
            found.extend(_record(log, service, common, common_raw) for log in scope_logs.log_records)
    return found


def _record(log: Any, service: str | None, common: dict[str, Any], common_raw: msgspec.Raw) -> IncomingRecord:
    # Each field read once: a read of a protobuf field builds a Python object each time.
    nanos = log.time_unix_nano or log.observed_time_unix_nano
    number, text, event_name = log.severity_number, log.severity_text, log.event_name
    severity = _BY_NUMBER[number] if 0 < number < len(_BY_NUMBER) else _severity_of_text(text)
    pairs = log.attributes
    text_says_more = bool(text) and _says_more(severity, text)
    raw = common_raw
    if pairs or event_name or text_says_more:
        attributes = {**common, **_attributes(pairs)} if pairs else dict(common)
        if text_says_more:
            attributes["severity_text"] = text
        if event_name:
            attributes["event.name"] = event_name
        raw = msgspec.Raw(_encode(attributes))
    body = log.body
    kind = body.WhichOneof("value")
    if kind == "string_value":
        message = body.string_value
    elif kind is None:
        message = event_name
    else:
        message = _encode(_value(body, kind)).decode()
    trace_id, span_id = log.trace_id, log.span_id
    return IncomingRecord(
        message,
        nanos // 1_000_000 if nanos else None,
        service,
        None,
        severity,
        raw,
        None,
        None if trace_id in _NO_ID else trace_id.hex(),
        None if span_id in _NO_ID else span_id.hex(),
    )


def _severity_of_text(text: str) -> str:
    found = SEVERITY_ALIASES.get(text.lower()) if text else None
    return (found or Severity.INFO).label


@functools.lru_cache(maxsize=1024)
def _says_more(severity: str, text: str) -> bool:
    """Whether a severity_text says more than the severity loglake keeps (`Information`, not `INFO`)."""
    return SEVERITY_ALIASES.get(text.lower()) != SEVERITY_ALIASES[severity]


def _attributes(pairs: Any) -> dict[str, Any]:
    found = {}
    for pair in pairs:
        value = pair.value
        kind = value.WhichOneof("value")
        found[pair.key] = value.string_value if kind == "string_value" else _value(value, kind)
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
