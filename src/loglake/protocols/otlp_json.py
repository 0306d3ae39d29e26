"""OTLP/JSON (the SDKs' `http/json` exporters): an ExportLogsServiceRequest in OTLP's JSON encoding, read
straight into structs that mirror the official messages field for field, then mapped as protobuf is
(otlp_mapping.py: these structs carry the proto's field names as attributes).

Why not protobuf's own JSON parser (json_format) on the official types, as the protobuf path reads them:
OTLP/JSON is not protobuf's JSON mapping (trace and span ids are hex where protobuf's mapping has base64
for bytes, so a request needed rewriting before json_format would read it), and json_format reads about
75 us of Python per record, 30 times what the rest of an export costs. msgspec reads these structs in C.

What is read as protobuf's JSON parsers read it: lowerCamelCase field names (as OTLP/JSON requires) and
the proto names (`time_unix_nano`), 64-bit integers as strings or numbers, enums (`severityNumber`) as
numbers or names, `null` for a field's default, doubles as "NaN"/"Infinity" too, bytes (`bytesValue`) in
base64 of either alphabet, padded or not. Fields this version does not know are ignored, as OTLP/JSON
receivers must. The fast path reads lowerCamelCase only (what exporters send); a body it refuses is read
again as generic JSON, put in that form (_canonical, by the official descriptors) and read once more, so
only a body that is still refused is malformed.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Hashable
from operator import attrgetter
from typing import Annotated, Any

import msgspec
from google.protobuf.descriptor import Descriptor
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.logs.v1 import logs_pb2

from loglake.decode_errors import in_words, lone_surrogates_replaced, not_json_reason
from loglake.protocols import otlp_mapping
from loglake.protocols.columns import RecordColumns
from loglake.protocols.otlp_mapping import MalformedRequest

_U64 = Annotated[int, msgspec.Meta(ge=0)]  # (msgspec bounds stop at int64; a later check refuses such times)
_I64 = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
_U32 = Annotated[int, msgspec.Meta(ge=0, le=2**32 - 1)]
_I32 = Annotated[int, msgspec.Meta(ge=-(2**31), le=2**31 - 1)]


class _Message(msgspec.Struct, rename="camel", forbid_unknown_fields=True, gc=False):
    """A protobuf message in OTLP/JSON: fields in lowerCamelCase, each its proto3 default when absent
    (an unknown one refuses the fast path, see the module). A decoded tree holds no cycles: left out of
    the garbage collector's tracking, as ingest.IncomingRecord is."""


class AnyValue(_Message):
    string_value: str | None = None  # None where protobuf has "": a body of "" is a value, not none
    bool_value: bool | None = None
    int_value: _I64 | None = None
    double_value: float | None = None
    array_value: ArrayValue | None = None
    kvlist_value: KeyValueList | None = None
    bytes_value: str | None = None
    string_value_strindex: _I32 | None = None


class ArrayValue(_Message):
    values: list[AnyValue] = []


class KeyValue(_Message):
    key: str = ""
    value: AnyValue = msgspec.field(default_factory=AnyValue)
    key_strindex: _I32 = 0


class KeyValueList(_Message):
    values: list[KeyValue] = []


class EntityRef(_Message):
    schema_url: str = ""
    type: str = ""
    id_keys: list[str] = []
    description_keys: list[str] = []


class Resource(_Message):
    attributes: list[KeyValue] = []
    dropped_attributes_count: _U32 = 0
    entity_refs: list[EntityRef] = []


class InstrumentationScope(_Message):
    name: str = ""
    version: str = ""
    attributes: list[KeyValue] = []
    dropped_attributes_count: _U32 = 0


class LogRecord(_Message):
    time_unix_nano: _U64 = 0
    observed_time_unix_nano: _U64 = 0
    severity_number: int | str = 0  # a number, or a SeverityNumber name
    severity_text: str = ""
    body: AnyValue = msgspec.field(default_factory=AnyValue)
    attributes: msgspec.Raw = msgspec.Raw()  # read once per distinct set (_Json.record_attributes)
    dropped_attributes_count: _U32 = 0
    flags: _U32 = 0
    trace_id: str = ""  # hex
    span_id: str = ""
    event_name: str = ""


class ScopeLogs(_Message):
    scope: InstrumentationScope = msgspec.field(default_factory=InstrumentationScope)
    log_records: list[LogRecord] = []
    schema_url: str = ""


class ResourceLogs(_Message):
    resource: Resource = msgspec.field(default_factory=Resource)
    scope_logs: list[ScopeLogs] = []
    schema_url: str = ""


class ExportLogsServiceRequest(_Message):
    resource_logs: list[ResourceLogs] = []


# strict=False: numbers given as strings ("123", "NaN") are read as numbers, as OTLP/JSON writes 64-bit integers.
_REQUEST = msgspec.json.Decoder(ExportLogsServiceRequest, strict=False)
_PAIRS = msgspec.json.Decoder(list[KeyValue], strict=False)
_generic = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode
_ATTRIBUTES = attrgetter("attributes")
_SEVERITY_NUMBERS = dict(logs_pb2.SeverityNumber.items())


def columns(body: bytes) -> RecordColumns:
    """Every LogRecord of an OTLP/JSON body as columns of records to check; MalformedRequest if it is not
    an ExportLogsServiceRequest."""
    if not body or body.isspace():  # (in protobuf an empty request; in JSON no text is no request; isspace: no copy)
        raise MalformedRequest('the body is empty: send an ExportLogsServiceRequest, {"resourceLogs": [...]}')
    request = _read(body, _REQUEST, logs_service_pb2.ExportLogsServiceRequest.DESCRIPTOR)
    keys = [list(map(bytes, map(_ATTRIBUTES, s.log_records))) for r in request.resource_logs for s in r.scope_logs]
    return otlp_mapping.columns(request, _JSON, keys)  # (each record's attributes: the pairs' JSON text)


def _read(body: bytes, decoder: msgspec.json.Decoder, message: Descriptor, root: str = "") -> Any:
    """The body read by `decoder` (a `message`, or a list of them), or, when that refuses it, read again
    in _canonical form (see the module); MalformedRequest if that too is refused, saying where (under `root`,
    the name of what `body` is, when it is not the request)."""
    try:
        return decoder.decode(body)
    except msgspec.ValidationError:
        pass  # maybe proto names, nulls or fields of a later version: read below
    except (msgspec.DecodeError, RecursionError) as e:
        fixed = lone_surrogates_replaced(body)  # (U+FFFD, as the OpenTelemetry Collector reads them)
        if fixed is not None:
            return _read(fixed, decoder, message, root)
        raise MalformedRequest(f"the body is not valid JSON in UTF-8: {not_json_reason(e, body)}") from None
    try:
        generic = _generic(body)
    except (msgspec.DecodeError, RecursionError) as e:
        raise MalformedRequest(f"the body is not valid JSON in UTF-8: {not_json_reason(e, body)}") from None
    if decoder is _REQUEST and type(generic) is not dict:
        raise MalformedRequest('the body must be a JSON object, an ExportLogsServiceRequest: {"resourceLogs": [...]}')
    if decoder is _REQUEST and generic and not any(map(_field_named(message), generic)):
        # (unknown fields are ignored, as OTLP says; a body of nothing else, a loglake record say, was answered 200
        # and dropped: a new-user trial)
        raise MalformedRequest(
            "the body is not an OTLP ExportLogsServiceRequest: it has no `resourceLogs`, only "
            f"{', '.join(repr(key[:80]) for key in list(generic)[:5])}; POST /v1/logs takes OTLP, loglake's own"
            " records go to POST /logs"
        )
    try:
        return decoder.decode(_encode(_canonical(generic, message)))
    except (msgspec.DecodeError, RecursionError) as e:
        # (an integer may come as a string: only one that is not digits is refused)
        raise _malformed(_NOT_DIGITS.sub(r"\1, a number or a string of digits", in_words(e, root))) from None


_NOT_DIGITS = re.compile(r"(must be an integer(?: or null)?), not a string")


def _malformed(reason: str) -> MalformedRequest:
    return MalformedRequest(f"the body is not an OTLP ExportLogsServiceRequest in JSON: {reason}")


def _field_named(message: Descriptor) -> Any:
    """The field of `message` a JSON key names (its lowerCamelCase or its proto name), None for none."""
    return lambda key: message.fields_by_camelcase_name.get(key) or message.fields_by_name.get(key)


def _canonical(value: Any, message: Descriptor) -> Any:
    """A `message` (or a list of them) read as generic JSON, put as the fast path reads it: each field
    under its lowerCamelCase name, fields that are null or unknown left out; anything else as it is (the
    decoder names what is wrong with it)."""
    if type(value) is list:
        return [_canonical(item, message) for item in value]
    if type(value) is not dict:
        return value
    found = {}
    named = _field_named(message)
    for key, item in value.items():
        field = named(key)
        if field is None or item is None:
            continue
        found[field.json_name] = item if field.message_type is None else _canonical(item, field.message_type)
    return found


class _Json:
    """otlp_mapping.Encoding of an ExportLogsServiceRequest read by _REQUEST."""

    def value(self, value: AnyValue) -> Any:
        if value.string_value is not None:
            return value.string_value
        if value.bool_value is not None:
            return value.bool_value
        if value.int_value is not None:
            return value.int_value
        if value.double_value is not None:
            return otlp_mapping.double(value.double_value)
        if value.kvlist_value is not None:
            return otlp_mapping.attributes(value.kvlist_value.values, self)
        if value.array_value is not None:
            return [self.value(item) for item in value.array_value.values]
        if value.bytes_value is not None:
            return base64.b64encode(_base64(value.bytes_value)).decode()  # as the protobuf path gives bytes
        return value.string_value_strindex

    def is_text(self, value: AnyValue) -> bool:
        return value.string_value is not None

    def record_attributes(self, attribute_set: Hashable) -> dict[str, Any]:
        pairs = _read(attribute_set, _PAIRS, common_pb2.KeyValue.DESCRIPTOR, "a logRecord's attributes")  # type: ignore[arg-type]
        return otlp_mapping.attributes(pairs, self)

    def severity_number(self, number: int | str) -> int:
        return _severity_number(number) if type(number) is str else number

    def id_texts(self, ids: list[Any]) -> list[str]:
        return ids  # (OTLP/JSON's ids are hex)


_JSON = _Json()


def _severity_number(name: str) -> int:
    """A severityNumber given as text: a SeverityNumber name, or a number in a string."""
    number = _SEVERITY_NUMBERS.get(name)
    if number is None:
        try:
            number = int(name)
        except ValueError:
            raise _malformed(f"severityNumber {name[:40]!r} is not a SeverityNumber") from None
    return number


def _base64(text: str) -> bytes:
    """bytesValue's base64, in either alphabet (+/ or -_), padded or not, as protobuf's JSON parsers read it."""
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise _malformed(f"bytesValue {text[:40]!r} is not base64") from None
