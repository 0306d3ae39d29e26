"""POST /v1/logs in OTLP/JSON (protocols/otlp_json.py, its own decoder): the same requests stored as the
protobuf path stores them, in each form protobuf's JSON writers give them (lowerCamelCase or proto names,
64-bit integers as strings or numbers, enums as names or numbers), and its malformed bodies refused whole.
The JSON is written from the official generated types by protobuf's own json_format, ids then put in hex
as OTLP/JSON has them."""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from google.protobuf import json_format
from google.rpc import code_pb2
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest, ExportLogsServiceResponse
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValueList
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from loglake.api.app import LoglakeApp
from loglake.config import Settings
from loglake.ingest import BULK_MIN_RECORDS
from tests.api.test_otlp import NANOS, NOW_MS, OTLP_JSON_EXAMPLE, SPAN, TRACE, pairs, post, stored, text

JSON = {"content-type": "application/json"}


pytestmark = pytest.mark.clock_at(NOW_MS)  # the `app` fixture's: the bodies' times are placed from it


def every_rule() -> ExportLogsServiceRequest:
    """A request with a record for each mapping rule, and three records that cannot be stored."""
    request = ExportLogsServiceRequest()
    shop = request.resource_logs.add()
    shop.resource.attributes.extend(
        pairs(service__name=text("checkout"), host__name=text("web-1"), region=text("resource"))
    )
    scope_logs = shop.scope_logs.add()
    scope_logs.scope.name, scope_logs.scope.version = "shop.payments", "1.2"
    scope_logs.scope.attributes.extend(pairs(region=text("scope wins"), deployment=text("scope")))
    at = (NOW_MS - 1000) * NANOS
    structured = AnyValue(
        kvlist_value=KeyValueList(
            values=pairs(
                user=text("ann"),
                tags=AnyValue(array_value=ArrayValue(values=[text("a"), AnyValue(bool_value=True)])),
                raw=AnyValue(bytes_value=b"\x00\xff\xfe"),
                big=AnyValue(int_value=-(2**62)),
                ratio=AnyValue(double_value=0.25),
            )
        )
    )
    every_value = pairs(
        s=text("x"),
        empty=text(""),
        i=AnyValue(int_value=2**60),
        d=AnyValue(double_value=637.704),
        nan=AnyValue(double_value=math.nan),  # (no JSON number: "NaN", as OTLP/JSON writes it)
        low=AnyValue(double_value=-math.inf),
        b=AnyValue(bool_value=False),
        raw=AnyValue(bytes_value=b"\xfb\xff"),
        list=AnyValue(array_value=ArrayValue(values=[AnyValue(int_value=1), text("two")])),
        map=AnyValue(kvlist_value=KeyValueList(values=pairs(deployment=text("record wins")))),
        none=AnyValue(),
    )
    scope_logs.log_records.extend(
        [
            LogRecord(time_unix_nano=at, severity_number=17, severity_text="ERROR", body=text("card declined"),
                      trace_id=TRACE, span_id=SPAN, attributes=every_value),
            LogRecord(observed_time_unix_nano=at - 5, severity_number=9, severity_text="Information",
                      body=text("observed only")),
            LogRecord(body=text("no time"), severity_text="WARN", trace_id=bytes(16), span_id=bytes(8)),
            LogRecord(time_unix_nano=at, severity_text="fatal", body=structured, event_name="user.login"),
            LogRecord(time_unix_nano=at, event_name="cart.emptied", attributes=every_value),
            LogRecord(time_unix_nano=at, severity_number=1, body=AnyValue(bytes_value=b"\x00\xff")),
            LogRecord(time_unix_nano=at, severity_number=24, body=AnyValue(double_value=1.5), trace_id=TRACE),
            LogRecord(time_unix_nano=at, severity_number=13, body=AnyValue(int_value=-7)),
            LogRecord(time_unix_nano=at, severity_number=5, body=AnyValue(bool_value=True), span_id=SPAN),
            LogRecord(time_unix_nano=at, severity_number=11,
                      body=AnyValue(array_value=ArrayValue(values=[text("a"), AnyValue(double_value=2.0)]))),
            LogRecord(time_unix_nano=at, severity_text="Information", body=text("says more")),
            LogRecord(time_unix_nano=(NOW_MS + 2 * 86_400_000) * NANOS, body=text("from the future")),  # restamped
            LogRecord(time_unix_nano=at, body=text("x" * (Settings().max_message_bytes + 1))),  # refused
            LogRecord(time_unix_nano=at, body=text("")),  # an empty message: NO_BODY
            LogRecord(time_unix_nano=at, attributes=pairs(only=text("attributes"))),  # none: NO_BODY too
            LogRecord(time_unix_nano=at, body=text("short trace"), trace_id=b"\x01" * 15),
        ]
    )  # fmt: skip
    odd = request.resource_logs.add()
    odd.resource.attributes.extend(pairs(service__name=text("unknown_service:python")))
    odd.scope_logs.add().log_records.add(time_unix_nano=at, body=text("odd service"))
    request.resource_logs.add().scope_logs.add().log_records.add(time_unix_nano=at, body=text("no resource"))
    return request


def _hex_ids(value: Any, uppercase: bool) -> Any:
    """json_format's dict with each record's ids in hex (OTLP/JSON), where protobuf's JSON has base64."""
    if isinstance(value, list):
        return [_hex_ids(item, uppercase) for item in value]
    if not isinstance(value, dict):
        return value
    found = {}
    for key, item in value.items():
        if key in ("traceId", "spanId", "trace_id", "span_id"):
            hex_id = base64.b64decode(item).hex()
            item = hex_id.upper() if uppercase else hex_id
        found[key] = _hex_ids(item, uppercase)
    return found


def _numbers_and_url_safe_bytes(value: Any) -> Any:
    """64-bit integers as JSON numbers where json_format writes strings, and bytes in URL-safe base64
    without padding (both read by protobuf's JSON parsers)."""
    if isinstance(value, list):
        return [_numbers_and_url_safe_bytes(item) for item in value]
    if not isinstance(value, dict):
        return value
    found = {}
    for key, item in value.items():
        if key in ("time_unix_nano", "observed_time_unix_nano", "int_value"):
            item = int(item)
        elif key == "bytes_value":
            item = base64.urlsafe_b64encode(base64.b64decode(item)).decode().rstrip("=")
        found[key] = _numbers_and_url_safe_bytes(item)
    return found


OTLP_JSON_FORMS: dict[str, Callable[[ExportLogsServiceRequest], Any]] = {
    "camel-case, int64 strings, enum names, uppercase hex": lambda r: _hex_ids(json_format.MessageToDict(r), True),
    "camel-case, enum numbers": lambda r: _hex_ids(json_format.MessageToDict(r, use_integers_for_enums=True), False),
    "proto names, int64 numbers, URL-safe bytes": lambda r: _numbers_and_url_safe_bytes(
        _hex_ids(json_format.MessageToDict(r, preserving_proto_field_name=True, use_integers_for_enums=True), False)
    ),
}


def _without_ids(records: list[dict]) -> list[str]:
    return sorted(json.dumps({k: v for k, v in r.items() if k != "logId"}, sort_keys=True) for r in records)


@pytest.mark.parametrize("form", OTLP_JSON_FORMS)
async def test_json_stores_what_protobuf_stores(client: httpx.AsyncClient, form: str) -> None:
    request = every_rule()
    by_protobuf = await post(client, request.SerializeToString())
    assert by_protobuf.status_code == 200, by_protobuf.content
    from_protobuf = await stored(client)
    body = json.dumps(OTLP_JSON_FORMS[form](request)).encode()
    by_json = await post(client, body, JSON)
    assert by_json.status_code == 200 and by_json.headers["content-type"] == "application/json", by_json.text

    protobuf_answer = ExportLogsServiceResponse.FromString(by_protobuf.content).partial_success
    assert protobuf_answer.rejected_log_records == 1  # the large one (a short trace id is none, no body NO_BODY)
    assert by_json.json()["partialSuccess"] == {
        "rejectedLogRecords": "1",
        "errorMessage": protobuf_answer.error_message,
    }
    seen = {r["logId"] for r in from_protobuf}
    from_json = [r for r in await stored(client) if r["logId"] not in seen]
    assert len(from_protobuf) == 17  # the short trace id's record too, without it; both without a body
    assert _without_ids(from_json) == _without_ids(from_protobuf)


async def test_a_bulk_sized_json_export_is_stored_as_protobuf_is(app: LoglakeApp, client: httpx.AsyncClient) -> None:
    """From BULK_MIN_RECORDS records, the columns are checked whole (ingest_columns) into lake parts."""
    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    resource_logs.resource.attributes.extend(pairs(service__name=text("bulk")))
    logs = resource_logs.scope_logs.add()
    for i in range(BULK_MIN_RECORDS + 10):
        logs.log_records.add(
            time_unix_nano=(NOW_MS - i) * NANOS,
            severity_number=9 + 4 * (i % 3),
            body=text(f"record {i}"),
            attributes=pairs(n=AnyValue(int_value=i % 7)),
            trace_id=TRACE,
        )
    assert (await post(client, request.SerializeToString())).status_code == 200
    body = json.dumps(_hex_ids(json_format.MessageToDict(request), False)).encode()
    assert (await post(client, body, JSON)).json() == {}
    assert app.runtime.store.count() == 0  # both written as lake parts
    sql = "SELECT timestamp, severity, message, attributes, trace_id, count(*) FROM logs GROUP BY ALL"
    sql += " HAVING count(*) <> 2"
    assert (await client.post("/query", json={"sql": sql})).json()["rows"] == []  # each record twice, alike
    count = await client.post("/query", json={"sql": "SELECT count(*), count(DISTINCT message) FROM logs"})
    assert count.json()["rows"] == [[2 * (BULK_MIN_RECORDS + 10), BULK_MIN_RECORDS + 10]]


async def test_unknown_fields_and_nulls_are_ignored(client: httpx.AsyncClient) -> None:
    """OTLP/JSON receivers must ignore fields they do not know (a later version's); null is a default."""
    body = json.loads(json.dumps(OTLP_JSON_EXAMPLE))
    body["someFutureField"] = {"x": [1]}
    resource_logs = body["resourceLogs"][0]
    resource_logs["resource"]["entityRefs"] = [{"type": "service", "idKeys": ["service.name"]}]
    record = resource_logs["scopeLogs"][0]["logRecords"][0]
    record |= {"flags": 1, "droppedAttributesCount": 0, "newField": "x", "eventName": None, "spanId": None}
    record["attributes"][0]["value"]["unknownValue"] = 5
    response = await post(client, json.dumps(body).encode(), JSON)
    assert (response.status_code, response.json()) == (200, {})
    [stored_record] = await stored(client)
    assert stored_record["message"] == "Example log record" and "span_id" not in stored_record
    assert stored_record["attributes"]["string.attribute"] == "some string"


async def test_a_lone_surrogate_is_read_as_u_fffd_as_the_collector_reads_it(client: httpx.AsyncClient) -> None:
    """JavaScript's JSON.stringify writes `\\ud83d` for a string cut in the middle of an emoji: the whole export was
    refused (400), and the OpenTelemetry JS exporter dropped it without a word (the Node.js trial)."""
    body = json.loads(json.dumps(OTLP_JSON_EXAMPLE))
    record = body["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]
    record["body"] = {"stringValue": "Launch \ud83d"}  # (as JSON text: the escape alone)
    record["attributes"] = [{"key": "k", "value": {"stringValue": "\udc00 and \ud83d\ude80"}}]
    response = await post(client, json.dumps(body).encode(), JSON)
    assert (response.status_code, response.json()) == (200, {})
    [stored_record] = await stored(client)
    assert stored_record["message"] == "Launch \ufffd"
    assert stored_record["attributes"]["k"] == "\ufffd and \U0001f680"


def _record(**fields: Any) -> bytes:
    """An export of one record (fields in OTLP/JSON) beside a good one."""
    good = {"timeUnixNano": str((NOW_MS - 1) * NANOS), "body": {"stringValue": "good"}}
    logs = [good, {"timeUnixNano": str((NOW_MS - 1) * NANOS), "body": {"stringValue": "bad"}} | fields]
    return json.dumps({"resourceLogs": [{"scopeLogs": [{"logRecords": logs}]}]}).encode()


def _attribute(value: Any) -> dict:
    return {"attributes": [{"key": "k", "value": value}]}


async def test_an_id_that_is_not_hex_or_not_16_bytes_is_no_id_and_its_record_is_stored(
    client: httpx.AsyncClient,
) -> None:
    """As the protobuf path takes an id of the wrong length (test_otlp), OTLP/JSON takes one that is not hex:
    the record stored without it, what was sent kept in its attributes."""
    for fields in ({"traceId": "5b8efff798038103d269b633813fc6zz"}, {"traceId": "5b8e"}, {"spanId": "eee19b7e-c3c1"}):
        response = await post(client, _record(**fields), JSON)
        assert response.status_code == 200 and response.json() == {}, response.text
    bad = [r for r in await stored(client) if r["message"] == "bad"]
    assert [(r.get("trace_id"), r.get("span_id"), r["attributes"]) for r in bad] == [
        (None, None, {"span_id": "eee19b7e-c3c1"}),
        (None, None, {"trace_id": "5b8e"}),
        (None, None, {"trace_id": "5b8efff798038103d269b633813fc6zz"}),
    ]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (_record(timeUnixNano=True),
         "resourceLogs[0].scopeLogs[0].logRecords[1].timeUnixNano: must be an integer, not a boolean"),
        (_record(timeUnixNano="-5"), "logRecords[1].timeUnixNano: must be an integer >= 0"),
        (_record(timeUnixNano="soon"), "timeUnixNano: must be an integer, a number or a string of digits"),
        (_record(severityText=5), "severityText: must be a string, not an integer"),
        (_record(body="bad"), "logRecords[1].body: must be an object, not a string"),
        (_record(severityNumber="SEVERITY_NUMBER_LOUD"), "severityNumber 'SEVERITY_NUMBER_LOUD' is not a Severity"),
        (_record(severityNumber=[9]), "severityNumber: must be an integer or a string, not an array"),
        (_record(traceId=42), "traceId: must be a string, not an integer"),
        (_record(body={"bytesValue": "AP8*"}), "bytesValue 'AP8*' is not base64"),
        (_record(**_attribute({"bytesValue": "not base64!"})), "bytesValue 'not base64!' is not base64"),
        (_record(**_attribute({"intValue": "ten"})),
         "a logRecord's attributes[0].value.intValue: must be an integer or null, a number or a string of digits"),
        (_record(**_attribute({"intValue": str(2**63)})), "intValue: must be an integer <= 9223372036854775807"),
        (_record(**_attribute({"kvlistValue": {"values": [{"key": 1}]}})),
         "values[0].key: must be a string, not an integer"),
        (_record(attributes={"k": "v"}), "a logRecord's attributes: must be an array, not an object"),
        (json.dumps({"resourceLogs": [{"scopeLogs": {"logRecords": []}}]}).encode(),
         "resourceLogs[0].scopeLogs: must be an array, not an object"),
        (json.dumps({"resource_logs": [{"scope_logs": [{"log_records": [{"time_unix_nano": "x"}]}]}]}).encode(),
         "resourceLogs[0].scopeLogs[0].logRecords[0].timeUnixNano: must be an integer, a number or a string of digits"),
        (b'{"resourceLogs": [{"scopeLogs": 5}], ', "not valid JSON"),
        (b'{"resourceLogs": [', "not valid JSON in UTF-8: it ends before the JSON does (was it cut short?)"),
        (b'"resourceLogs"', "must be a JSON object"),
        (b" \n", 'the body is empty: send an ExportLogsServiceRequest, {"resourceLogs": [...]}'),
        # (unknown fields are ignored, but a body of nothing else, a loglake record say, was answered 200 and dropped)
        (b'{"message": "hi", "service": "web"}',
         "it has no `resourceLogs`, only 'message', 'service'; POST /v1/logs takes OTLP, loglake's own records go"),
        (b'{"' + b"k" * 100_000 + b'": 1}', "only '" + "k" * 80 + "'; POST"),  # (a key said in part)
    ],
)  # fmt: skip
async def test_a_malformed_json_export_gets_a_status_and_stores_nothing(
    app: LoglakeApp, client: httpx.AsyncClient, body: bytes, reason: str
) -> None:
    response = await post(client, body, JSON)
    assert response.status_code == 400 and response.headers["content-type"] == "application/json"
    error = response.json()
    assert error["code"] == code_pb2.INVALID_ARGUMENT and reason in error["message"], error
    assert any(said in error["message"] for said in ("the body is not", "must be", "the body is empty"))
    assert app.runtime.store.count() == 0
    assert (await post(client, _record(), JSON)).json() == {}  # the same export without the fault is stored
    assert sorted(r["message"] for r in await stored(client)) == ["bad", "good"]


@pytest.mark.parametrize("nanos", [2**64 - 1, 2**64, 10**25])
async def test_a_time_past_what_64_bits_hold_is_stored_at_its_arrival_with_the_time_it_carried(
    client: httpx.AsyncClient, nanos: int
) -> None:
    """OTLP/JSON's integers are unbounded: a time that no uint64 holds, like the last one that does, is no
    clock's time; its record is stored as any such record is (README), the export's other record too."""
    response = await post(client, _record(timeUnixNano=str(nanos)), JSON)
    assert response.status_code == 200 and response.json() == {}, response.text
    records = {r["message"]: r for r in await stored(client)}
    assert sorted(records) == ["bad", "good"]
    assert records["bad"]["attributes"]["time_sent"] == nanos // 1_000_000
