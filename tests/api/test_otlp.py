"""POST /v1/logs: OTLP/HTTP logs in protobuf and JSON, each mapping rule, partial success and OTLP's
error answers, against the in-process app; messages built with the official generated types."""

from __future__ import annotations

import gzip
import json
import math
import os
from typing import Any

import httpx
import pytest
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from google.rpc import code_pb2, status_pb2
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest, ExportLogsServiceResponse
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from loglake.api.app import LoglakeApp
from loglake.api.routes import OFF_LOOP_COMPRESSED_BYTES
from loglake.config import Settings
from loglake.ingest import BULK_MIN_RECORDS
from loglake.protocols import otlp, otlp_mapping
from tests.conftest import asgi_client, key_for

NOW_MS = 1_793_577_600_000  # 2026-11-02T00:00:00Z
NANOS = 1_000_000
TRACE = bytes.fromhex("5b8efff798038103d269b633813fc60c")
SPAN = bytes.fromhex("eee19b7ec3c1b174")
PROTOBUF = {"content-type": "application/x-protobuf"}


pytestmark = pytest.mark.clock_at(NOW_MS)  # the `app` fixture's: the bodies' times are placed from it


def text(value: str) -> AnyValue:
    return AnyValue(string_value=value)


def pairs(**values: AnyValue) -> list[KeyValue]:
    return [KeyValue(key=key.replace("__", "."), value=value) for key, value in values.items()]


def export(*logs: LogRecord, resource: dict[str, AnyValue] | None = None, scope: dict | None = None) -> bytes:
    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    resource = {"service__name": text("checkout")} if resource is None else resource
    resource_logs.resource.attributes.extend(pairs(**resource))
    scope_logs = resource_logs.scope_logs.add()
    for key, value in (scope or {}).items():
        if key == "attributes":
            scope_logs.scope.attributes.extend(pairs(**value))
        else:
            setattr(scope_logs.scope, key, value)
    scope_logs.log_records.extend(logs)
    return request.SerializeToString()


def log(message: str = "paid", at_ms: int = NOW_MS - 1000, body: AnyValue | None = None, **fields: Any) -> LogRecord:
    """A log record of `message` (none: no body) unless `body` is given."""
    return LogRecord(time_unix_nano=at_ms * NANOS, body=body or (text(message) if message else None), **fields)


async def post(client: httpx.AsyncClient, body: bytes, headers: dict[str, str] = PROTOBUF) -> httpx.Response:
    return await client.post("/v1/logs", content=body, headers=headers)


async def stored(client: httpx.AsyncClient, **params: str) -> list[dict]:
    page = await client.get("/logs/recent", params={"since": "2026-10-01T00:00:00Z", "limit": "1000", **params})
    assert page.status_code == 200, page.text
    return page.json()["logs"]


def answer(response: httpx.Response) -> ExportLogsServiceResponse:
    assert response.status_code == 200, response.content
    assert response.headers["content-type"] == "application/x-protobuf"
    return ExportLogsServiceResponse.FromString(response.content)


def failure(response: httpx.Response, status: int) -> status_pb2.Status:
    assert response.status_code == status, response.content
    assert response.headers["content-type"] == "application/x-protobuf"
    return status_pb2.Status.FromString(response.content)


async def test_a_record_maps_field_by_field(client: httpx.AsyncClient) -> None:
    body = export(
        log(
            "card declined",
            severity_number=17,
            severity_text="ERROR",
            trace_id=TRACE,
            span_id=SPAN,
            attributes=pairs(order__id=AnyValue(int_value=42), region=text("log wins")),
        ),
        resource={
            "service__name": text("checkout"),
            "host__name": text("web-1"),
            "region": text("resource"),
            "deployment": text("resource"),
        },
        scope={"name": "shop.payments", "version": "1.2", "attributes": {"deployment": text("scope wins")}},
    )
    response = answer(await post(client, body))
    assert not response.HasField("partial_success")
    [record] = await stored(client)
    assert record["service"] == "checkout" and record["log_type"] == "application"
    assert (record["severity"], record["message"], record["timestamp"]) == ("error", "card declined", NOW_MS - 1000)
    assert (record["trace_id"], record["span_id"]) == (TRACE.hex(), SPAN.hex())
    assert record["attributes"] == {
        "host.name": "web-1",
        "region": "log wins",
        "deployment": "scope wins",
        "otel.scope.name": "shop.payments",
        "otel.scope.version": "1.2",
        "order.id": 42,
    }


# OpenTelemetry's severity numbers: TRACE 1-4, DEBUG 5-8, INFO 9-12, WARN 13-16, ERROR 17-20, FATAL 21-24.
SEVERITY_OF_NUMBER = {1: "debug", 4: "debug", 5: "debug", 8: "debug", 9: "info", 12: "info", 13: "warning"}
SEVERITY_OF_NUMBER |= {16: "warning", 17: "error", 20: "error", 21: "critical", 24: "critical"}


@pytest.mark.parametrize(("number", "expected"), sorted(SEVERITY_OF_NUMBER.items()))
async def test_the_severity_number_gives_the_severity(client: httpx.AsyncClient, number: int, expected: str) -> None:
    answer(await post(client, export(log(severity_number=number))))
    assert [r["severity"] for r in await stored(client)] == [expected]


@pytest.mark.parametrize(
    ("text_", "expected", "kept"),
    [
        ("WARN", "warning", False),
        ("fatal", "critical", False),
        ("DEBUG", "debug", False),
        ("trace", "debug", False),
        ("Information", "info", False),  # Serilog's word for info
        ("AUDIT", "info", True),  # a text no severity names: kept
        ("", "info", False),
    ],
)
async def test_without_a_number_the_severity_text_decides_or_is_kept(
    client: httpx.AsyncClient, text_: str, expected: str, kept: bool
) -> None:
    answer(await post(client, export(log(severity_text=text_))))
    [record] = await stored(client)
    assert record["severity"] == expected
    assert record["attributes"].get("severity_text") == (text_ if kept else None)


@pytest.mark.parametrize("encoding", ["protobuf", "json"])
async def test_a_severity_number_outside_the_data_models_is_unspecified_and_kept(
    client: httpx.AsyncClient, encoding: str
) -> None:
    """The data model gives 1-24 a meaning and 0 none (unspecified): another number is unspecified too (the
    severity_text decides, else loglake's default), and kept in the attributes, which would lose it."""
    body = export(
        log("ninety-nine", severity_number=99),
        log("negative", severity_number=-3),
        log("named by its text", severity_number=99, severity_text="ERROR"),
        log("in range", severity_number=24, attributes=pairs(user=text("ann"))),
    )
    if encoding == "json":
        as_json = json_format.MessageToJson(ExportLogsServiceRequest.FromString(body), use_integers_for_enums=True)
        response = await post(client, as_json.encode(), {"content-type": "application/json"})
        assert response.status_code == 200 and response.json() == {}, response.text
    else:
        assert not answer(await post(client, body)).HasField("partial_success")
    found = {r["message"]: (r["severity"], r.get("attributes")) for r in await stored(client)}
    assert found == {
        "ninety-nine": ("info", {"severity_number": 99}),
        "negative": ("info", {"severity_number": -3}),
        "named by its text": ("error", {"severity_number": 99}),
        "in range": ("critical", {"user": "ann"}),
    }


async def test_records_sharing_attributes_keep_their_own_extras(client: httpx.AsyncClient) -> None:
    shared = pairs(user=text("ann"))
    body = export(
        log("plain", attributes=shared),
        log("an event", attributes=shared, event_name="login"),
        log("says more", attributes=shared, severity_number=9, severity_text="AUDIT"),
        log("plain too", attributes=shared),
    )
    answer(await post(client, body))
    attributes = {r["message"]: r["attributes"] for r in await stored(client)}
    assert attributes == {
        "plain": {"user": "ann"},
        "an event": {"user": "ann", "event.name": "login"},
        "says more": {"user": "ann", "severity_text": "AUDIT"},
        "plain too": {"user": "ann"},
    }


async def test_times_bodies_and_ids(client: httpx.AsyncClient) -> None:
    structured = AnyValue(
        kvlist_value=KeyValueList(
            values=pairs(
                user=text("ann"), tags=AnyValue(array_value=ArrayValue(values=[text("a"), AnyValue(bool_value=True)]))
            )
        )
    )
    body = export(
        LogRecord(observed_time_unix_nano=(NOW_MS - 5000) * NANOS, body=text("observed only")),
        LogRecord(body=text("no time at all"), trace_id=bytes(16), span_id=bytes(8)),
        log(body=structured, event_name="user.login"),
        log("", event_name="cart.emptied"),
        log(body=AnyValue(bytes_value=b"\x00\xff")),
        log(body=AnyValue(double_value=1.5), trace_id=TRACE),
    )
    answer(await post(client, body))
    by_message = {r["message"]: r for r in await stored(client)}
    assert by_message["observed only"]["timestamp"] == NOW_MS - 5000
    assert by_message["no time at all"]["timestamp"] == NOW_MS
    assert "trace_id" not in by_message["no time at all"] and "span_id" not in by_message["no time at all"]
    assert json.loads(next(m for m in by_message if m.startswith("{"))) == {"user": "ann", "tags": ["a", True]}
    assert by_message["cart.emptied"]["attributes"] == {"event.name": "cart.emptied"}
    assert '"AP8="' in by_message  # bytes as base64, as OTLP/JSON writes them
    assert by_message["1.5"]["trace_id"] == TRACE.hex() and "span_id" not in by_message["1.5"]


async def test_a_double_that_is_no_number_is_kept_as_otlp_json_writes_it(client: httpx.AsyncClient) -> None:
    """NaN and the infinities have no JSON number: they were stored as null (an adversarial trial)."""
    body = export(
        log(body=AnyValue(double_value=math.nan)),
        log("inf", attributes=pairs(ratio=AnyValue(double_value=math.inf), low=AnyValue(double_value=-math.inf))),
    )
    answer(await post(client, body))
    by_message = {r["message"]: r for r in await stored(client)}
    assert '"NaN"' in by_message
    assert by_message["inf"]["attributes"] == {"ratio": "Infinity", "low": "-Infinity"}


def length_delimited(field: int, payload: bytes) -> bytes:
    """A protobuf field of wire type LEN: its tag, the payload's length (a varint), the payload."""
    head, size = bytearray([field << 3 | 2]), len(payload)
    while size > 0x7F:
        head.append(size & 0x7F | 0x80)
        size >>= 7
    return bytes(head + bytes([size]) + payload)


async def test_a_field_sent_twice_in_a_record_is_read_as_protobuf_reads_it(client: httpx.AsyncClient) -> None:
    """A record may carry a field twice (an encoder's concatenated messages): protobuf keeps the last value,
    merging a message field's two, and the records beside it keep their own (they are read as columns
    only when each record gives each column at most one value)."""
    twice = log("first").SerializeToString() + LogRecord(body=text("second"), trace_id=TRACE).SerializeToString()
    no_body = log("", event_name="cart.emptied", trace_id=TRACE[::-1]).SerializeToString()
    scope_logs = length_delimited(2, twice) + length_delimited(2, no_body)  # ScopeLogs.log_records
    resource = ExportLogsServiceRequest.FromString(export()).resource_logs[0].resource.SerializeToString()
    body = length_delimited(1, length_delimited(1, resource) + length_delimited(2, scope_logs))
    answer(await post(client, body))
    by_message = {r["message"]: r for r in await stored(client)}
    assert by_message.keys() == {"second", "cart.emptied"}
    assert by_message["second"]["trace_id"] == TRACE.hex()
    assert by_message["cart.emptied"]["trace_id"] == TRACE[::-1].hex()


@pytest.mark.parametrize("field", ["time_unix_nano", "severity_number"])
async def test_a_number_sent_packed_is_an_unknown_field_as_protobuf_reads_it(
    client: httpx.AsyncClient, field: str
) -> None:
    """A number sent packed (wire type LEN) in a record is a field protobuf does not take for a single number:
    the record has none (its observed time, no severity number), and the records beside it keep their own
    (their numbers are read as columns only when no record sent one packed)."""
    if field == "time_unix_nano":  # two times, fixed64 each
        packed = length_delimited(1, b"".join(((NOW_MS - n) * NANOS).to_bytes(8, "little") for n in (9000, 8000)))
    else:  # two severity numbers, a varint each
        packed = length_delimited(2, bytes([17, 21]))
    observed = {"observed_time_unix_nano": (NOW_MS - 5000) * NANOS}
    sent_packed = LogRecord(body=text("packed"), **observed).SerializeToString() + packed
    beside = LogRecord(body=text("beside"), severity_text="debug", **observed).SerializeToString()
    scope_logs = length_delimited(2, sent_packed) + length_delimited(2, beside)  # ScopeLogs.log_records
    resource = ExportLogsServiceRequest.FromString(export()).resource_logs[0].resource.SerializeToString()
    body = length_delimited(1, length_delimited(1, resource) + length_delimited(2, scope_logs))
    assert getattr(LogRecord.FromString(sent_packed), field) == 0  # (protobuf's own reading of it)
    answer(await post(client, body))
    by_message = {r["message"]: r for r in await stored(client)}
    assert by_message["packed"]["timestamp"] == by_message["beside"]["timestamp"] == NOW_MS - 5000
    assert by_message["packed"]["severity"] == "info" and by_message["beside"]["severity"] == "debug"


async def test_a_service_name_that_is_not_a_valid_name_is_made_one(client: httpx.AsyncClient) -> None:
    answer(await post(client, export(log(), resource={"service__name": text("unknown_service:python")})))
    answer(await post(client, export(log("no resource"), resource={})))
    by_message = {r["message"]: r for r in await stored(client)}
    assert by_message["paid"]["service"] == "unknown_service_python"
    assert by_message["paid"]["attributes"] == {"service.name": "unknown_service:python"}
    assert by_message["no resource"]["service"] == "default"


OTLP_JSON_EXAMPLE = {  # OTLP's own example (examples/logs.json): lowerCamelCase, hex ids, int64 as strings
    "resourceLogs": [
        {
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "my.service"}}]},
            "scopeLogs": [
                {
                    "scope": {
                        "name": "my.library",
                        "version": "1.0.0",
                        "attributes": [{"key": "my.scope.attribute", "value": {"stringValue": "some scope attribute"}}],
                    },
                    "logRecords": [
                        {
                            "timeUnixNano": str((NOW_MS - 2000) * NANOS),
                            "observedTimeUnixNano": str((NOW_MS - 1000) * NANOS),
                            "severityNumber": 10,
                            "severityText": "Information",
                            "traceId": "5B8EFFF798038103D269B633813FC60C",
                            "spanId": "EEE19B7EC3C1B174",
                            "body": {"stringValue": "Example log record"},
                            "attributes": [
                                {"key": "string.attribute", "value": {"stringValue": "some string"}},
                                {"key": "boolean.attribute", "value": {"boolValue": True}},
                                {"key": "int.attribute", "value": {"intValue": "10"}},
                                {"key": "double.attribute", "value": {"doubleValue": 637.704}},
                                {
                                    "key": "array.attribute",
                                    "value": {"arrayValue": {"values": [{"stringValue": "many"}, {"stringValue": "values"}]}},  # noqa: E501
                                },
                                {
                                    "key": "map.attribute",
                                    "value": {"kvlistValue": {"values": [{"key": "some.map.key", "value": {"stringValue": "some value"}}]}},  # noqa: E501
                                },
                            ],
                        }
                    ],
                }
            ],
        }
    ]
}  # fmt: skip


@pytest.mark.parametrize("gzipped", [False, True], ids=["plain", "gzip"])
async def test_otlp_json_as_the_specification_gives_it(client: httpx.AsyncClient, gzipped: bool) -> None:
    body = json.dumps(OTLP_JSON_EXAMPLE).encode()
    headers = {"content-type": "application/json"}
    if gzipped:
        body, headers = gzip.compress(body), {**headers, "content-encoding": "gzip"}
    response = await post(client, body, headers)
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    assert response.json() == {}
    [record] = await stored(client)
    assert (record["service"], record["severity"], record["message"]) == ("my.service", "info", "Example log record")
    assert record["timestamp"] == NOW_MS - 2000
    assert (record["trace_id"], record["span_id"]) == ("5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174")
    assert record["attributes"] == {
        "my.scope.attribute": "some scope attribute",
        "otel.scope.name": "my.library",
        "otel.scope.version": "1.0.0",
        "string.attribute": "some string",
        "boolean.attribute": True,
        "int.attribute": 10,
        "double.attribute": 637.704,
        "array.attribute": ["many", "values"],
        "map.attribute": {"some.map.key": "some value"},
    }


async def test_json_with_the_proto_field_names_is_read_too(client: httpx.AsyncClient) -> None:
    body = {
        "resource_logs": [
            {"scope_logs": [{"log_records": [{"time_unix_nano": (NOW_MS - 1) * NANOS, "body": {"string_value": "x"}}]}]}
        ]
    }
    response = await post(client, json.dumps(body).encode(), {"content-type": "application/json"})
    assert response.status_code == 200, response.text
    assert [r["timestamp"] for r in await stored(client)] == [NOW_MS - 1]


async def test_records_that_cannot_be_stored_are_a_partial_success_the_rest_is_stored(
    client: httpx.AsyncClient,
) -> None:
    too_large = "x" * (Settings().max_message_bytes + 1)
    body = export(log("fine"), log(too_large), log(too_large, at_ms=NOW_MS - 2), log("fine too"))
    response = answer(await post(client, body))
    assert response.partial_success.rejected_log_records == 2
    message = response.partial_success.error_message
    assert message.startswith(  # counted from 1, as every protocol's errors count (the 2nd and 3rd here)
        "2 of 4 log record(s) refused: record 2 (resourceLogs[0].scopeLogs[0].logRecords[1]): message is larger"
    )
    assert "; record 3 (resourceLogs[0].scopeLogs[0].logRecords[2]): message " in message
    assert sorted(r["message"] for r in await stored(client)) == ["fine", "fine too"]
    metrics = (await client.get("/metrics")).text
    assert 'loglake_protocol_records_total{protocol="otlp",outcome="accepted"} 2' in metrics
    assert 'loglake_protocol_records_total{protocol="otlp",outcome="rejected"} 2' in metrics


async def test_a_record_timed_where_no_clock_could_be_is_stored_at_its_arrival_with_the_time_it_carried(
    client: httpx.AsyncClient,
) -> None:
    """A Collector stores it; a partial success here lost it, as Fluent Bit's opentelemetry output ignores
    partial_success (a real-shipper trial). Milliseconds sent for nanoseconds are such a time (1970)."""
    body = export(
        log("fine"),
        log("from the future", at_ms=NOW_MS + 2 * 86_400_000, attributes=pairs(kept=text("too"))),
        LogRecord(time_unix_nano=NOW_MS, body=text("in ms")),
    )
    assert not answer(await post(client, body)).HasField("partial_success")
    records = {r["message"]: r for r in await stored(client)}
    assert records["fine"]["timestamp"] == NOW_MS - 1000 and "time_sent" not in records["fine"]["attributes"]
    assert records["from the future"]["timestamp"] == NOW_MS
    assert records["from the future"]["attributes"] == {"kept": "too", "time_sent": NOW_MS + 2 * 86_400_000}
    assert (records["in ms"]["timestamp"], records["in ms"]["attributes"]) == (NOW_MS, {"time_sent": NOW_MS // NANOS})


async def test_an_invalid_trace_or_span_id_is_no_id_and_its_record_is_stored_with_what_was_sent(
    client: httpx.AsyncClient,
) -> None:
    """The logs data model: an id of another length than 16 (8) bytes, or all zeros, is invalid, and a receiver
    SHOULD take the record as not associated with a trace (or span)."""
    body = export(
        log("short trace", trace_id=b"\x01" * 15, span_id=SPAN),
        log("long span", trace_id=TRACE, span_id=b"\x02" * 9),
        log("zeros", trace_id=bytes(16), span_id=bytes(8)),
        log("own attribute", trace_id=b"\x03", attributes=pairs(trace_id=text("mine"))),
        log("both", trace_id=b"\x04", span_id=b"\x05", attributes=pairs(kept=text("too"))),
    )
    response = answer(await post(client, body))
    assert not response.HasField("partial_success")
    records = {r["message"]: r for r in await stored(client)}
    both = records.pop("both")
    assert [(records[m].get("trace_id"), records[m].get("span_id")) for m in records] == [
        (None, None),
        (None, None),
        (TRACE.hex(), None),
        (None, SPAN.hex()),
    ]
    assert records["short trace"]["attributes"] == {"trace_id": "01" * 15}
    assert records["long span"]["attributes"] == {"span_id": "02" * 9}
    assert records["zeros"].get("attributes", {}) == {}
    assert records["own attribute"]["attributes"] == {"trace_id": "mine"}  # the record's own attribute wins
    assert (both.get("trace_id"), both.get("span_id")) == (None, None)
    assert both["attributes"] == {"trace_id": "04", "span_id": "05", "kept": "too"}


async def test_a_refused_record_is_named_by_where_it_is_in_the_export(client: httpx.AsyncClient) -> None:
    def record(message: str) -> dict:
        """A record of `message`; none: one too large, which is refused."""
        body = message or "x" * (Settings().max_message_bytes + 1)
        return {"timeUnixNano": str((NOW_MS - 1) * NANOS), "body": {"stringValue": body}}

    body = {
        "resourceLogs": [
            {"scopeLogs": [{"logRecords": [record("a")]}, {}, {"logRecords": [record("b"), record("")]}]},
            {"scopeLogs": [{"logRecords": [record("")]}]},
        ]
    }
    response = await post(client, json.dumps(body).encode(), {"content-type": "application/json"})
    assert response.status_code == 200, response.text
    larger = f"message is larger than {Settings().max_message_bytes} bytes of UTF-8"
    assert response.json()["partialSuccess"]["errorMessage"] == (
        f"2 of 4 log record(s) refused: record 3 (resourceLogs[0].scopeLogs[2].logRecords[1]): {larger};"
        f" record 4 (resourceLogs[1].scopeLogs[0].logRecords[0]): {larger}"
    )


async def test_a_partial_success_in_json(client: httpx.AsyncClient) -> None:
    body = json.loads(json.dumps(OTLP_JSON_EXAMPLE))
    too_large = {"stringValue": "x" * (Settings().max_message_bytes + 1)}
    body["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]["body"] = too_large
    response = await post(client, json.dumps(body).encode(), {"content-type": "application/json"})
    assert response.status_code == 200
    partial = response.json()["partialSuccess"]
    assert partial["rejectedLogRecords"] == "1"  # int64 as a string, as OTLP/JSON writes it
    assert "message is larger than" in partial["errorMessage"]
    assert await stored(client) == []


async def test_a_bulk_sized_export_is_written_as_lake_parts(app: LoglakeApp, client: httpx.AsyncClient) -> None:
    count = BULK_MIN_RECORDS + 10
    logs = [log(f"bulk {i}", at_ms=NOW_MS - i, trace_id=TRACE, span_id=SPAN) for i in range(count)]
    answer(await post(client, export(*logs)))
    assert app.runtime.store.count() == 0
    query = await client.post("/query", json={"sql": "SELECT count(*), min(trace_id), min(service) FROM logs"})
    assert query.json()["rows"] == [[count, TRACE.hex(), "checkout"]]


async def test_a_big_gzipped_export_is_inflated_and_stored_and_its_faults_answered(
    app: LoglakeApp, client: httpx.AsyncClient
) -> None:
    """A gzipped body big enough to be inflated off the event loop (as the Collector sends its batches): stored,
    and one that is not gzip or inflates past the limit answered as a small one is."""
    count = BULK_MIN_RECORDS + 10
    logs = [log(f"bulk {i} {os.urandom(24).hex()}", at_ms=NOW_MS - i) for i in range(count)]
    body = gzip.compress(export(*logs))
    assert len(body) >= OFF_LOOP_COMPRESSED_BYTES
    answer(await post(client, body, {**PROTOBUF, "content-encoding": "gzip"}))
    query = await client.post("/query", json={"sql": "SELECT count(*), min(service) FROM logs"})
    assert query.json()["rows"] == [[count, "checkout"]]
    not_gzip = b"\x1f\x8b\x00" + bytes(OFF_LOOP_COMPRESSED_BYTES)  # (method 0: no such method)
    assert (
        "not valid gzip" in failure(await post(client, not_gzip, {**PROTOBUF, "content-encoding": "gzip"}), 400).message
    )
    bomb = gzip.compress(os.urandom(OFF_LOOP_COMPRESSED_BYTES) + b"\x00" * app.settings.max_body_bytes)
    too_large = failure(await post(client, bomb, {**PROTOBUF, "content-encoding": "gzip"}), 413)
    assert too_large.code == code_pb2.RESOURCE_EXHAUSTED and "after decompression" in too_large.message


async def test_an_empty_export_is_a_success(client: httpx.AsyncClient) -> None:
    assert not answer(await post(client, b"")).HasField("partial_success")
    response = await post(client, b"{}", {"content-type": "application/json"})
    assert (response.status_code, response.json()) == (200, {})


@pytest.mark.parametrize(
    ("body", "content_type", "status", "reason"),
    [
        (b"\x0a\xff\xff\xff", "application/x-protobuf", 400, "not an OTLP ExportLogsServiceRequest in protobuf"),
        (b"[1, 2]", "application/json", 400, "must be a JSON object"),
        (b"{\"resourceLogs\": 5}", "application/json", 400, "not an OTLP ExportLogsServiceRequest in JSON"),
        (b"{not json", "application/json", 400, "not valid JSON"),
        (b"message=hi", "text/plain", 415, "is not OTLP/HTTP"),
    ],
)  # fmt: skip
async def test_a_malformed_export_gets_a_status_and_stores_nothing(
    app: LoglakeApp, client: httpx.AsyncClient, body: bytes, content_type: str, status: int, reason: str
) -> None:
    response = await post(client, body, {"content-type": content_type})
    assert response.status_code == status
    if content_type == "application/x-protobuf":
        error = status_pb2.Status.FromString(response.content)
        assert (error.code, reason in error.message) == (code_pb2.INVALID_ARGUMENT, True), error.message
    else:
        assert response.headers["content-type"] == "application/json"
        error = response.json()
        assert error["code"] == code_pb2.INVALID_ARGUMENT and reason in error["message"], error
    assert app.runtime.store.count() == 0


def _length_delimited(number: int, payload: bytes) -> bytes:
    assert len(payload) < 128  # a one-byte length
    return bytes([number << 3 | 2, len(payload)]) + payload


async def test_an_attribute_that_is_not_a_keyvalue_gets_a_status_and_stores_nothing(
    app: LoglakeApp, client: httpx.AsyncClient
) -> None:
    """Attribute pairs are read after the rest of the request: one that the official types cannot read still
    refuses the request whole, as when the request was read in one go."""
    bad_pair = _length_delimited(6, b"\x0a\x05ab")  # attributes: a key longer than what follows it
    record = log("paid").SerializeToString() + bad_pair
    body = _length_delimited(1, _length_delimited(2, _length_delimited(2, record)))
    with pytest.raises(DecodeError):
        ExportLogsServiceRequest.FromString(body)
    error = failure(await post(client, body), 400)
    assert error.code == code_pb2.INVALID_ARGUMENT and "not an OTLP ExportLogsServiceRequest" in error.message
    assert app.runtime.store.count() == 0


def _text_marked(body: bytes, marks: dict[bytes, bytes]) -> bytes:
    """An export whose marker texts (each as long as its bytes) are replaced by those bytes, which no protobuf
    encoder of ours writes into a string."""
    for mark, raw in marks.items():
        assert len(mark) == len(raw) and body.count(mark) == 1
        body = body.replace(mark, raw)
    return body


async def test_text_that_is_not_utf8_is_read_with_u_fffd_and_the_export_stored(
    app: LoglakeApp, client: httpx.AsyncClient
) -> None:
    """The Collector passes text that is no UTF-8 on as it read it (its protobuf code does not check it, a filelog
    or syslog receiver reads such bytes): the whole export was refused as "Wire format was corrupt", which the
    Collector takes as permanent and drops, every record of the batch with it."""
    body = _text_marked(
        export(
            log("BODYX and the rest", severity_text="SEVX", attributes=pairs(KEYX=text("VALX"))),
            log("fine"),
            resource={"service__name": text("check"), "host": text("HSTX")},
            scope={"name": "SCOPEX"},
        ),
        {b"BODYX": b"b\xffody", b"SEVX": b"\xc3(\xa9x", b"KEYX": b"k\xe2\x82y", b"VALX": b"\xf0\x9f\x98v",
         b"HSTX": b"h\x80st", b"SCOPEX": b"s\xffcope"},
    )  # fmt: skip
    with pytest.raises(DecodeError):
        ExportLogsServiceRequest.FromString(body)
    assert not answer(await post(client, body)).HasField("partial_success")
    by_message = {r["message"]: r for r in await stored(client)}
    assert by_message.keys() == {"b\ufffdody and the rest", "fine"}
    record = by_message["b\ufffdody and the rest"]
    assert record["service"] == "check" and record["severity"] == "info"
    assert record["attributes"] == {
        "host": "h\ufffdst",
        "otel.scope.name": "s\ufffdcope",
        "k\ufffdy": "\ufffdv",
        "severity_text": "\ufffd(\ufffdx",
    }


async def test_bad_gzip_and_too_large_bodies_get_a_status(app: LoglakeApp, client: httpx.AsyncClient) -> None:
    bad = await post(client, b"not gzip", {**PROTOBUF, "content-encoding": "gzip"})
    assert "not valid gzip" in failure(bad, 400).message
    bomb = gzip.compress(export(log("x" * 1000)) * 0 + b"\x00" * (app.settings.max_body_bytes + 1))
    too_large = failure(await post(client, bomb, {**PROTOBUF, "content-encoding": "gzip"}), 413)
    assert too_large.code == code_pb2.RESOURCE_EXHAUSTED and "after decompression" in too_large.message


async def test_exports_need_an_ingest_key_as_post_logs_does(app: LoglakeApp) -> None:
    """Refused in OTLP/HTTP's form (a google.rpc.Status in the request's encoding), as every 4xx of it is."""
    body = export(log())
    async with asgi_client(app) as anonymous:
        missing = failure(await post(anonymous, body), 401)
        assert missing.code == code_pb2.UNAUTHENTICATED and "missing credentials" in missing.message
        as_json = await post(anonymous, b"{}", {"content-type": "application/json"})
        assert as_json.status_code == 401 and as_json.headers["content-type"] == "application/json"
        assert as_json.json()["code"] == code_pb2.UNAUTHENTICATED and as_json.headers["www-authenticate"]
    async with asgi_client(app, key_for(app, "read")) as reader:
        assert failure(await post(reader, body), 403).code == code_pb2.PERMISSION_DENIED
    async with asgi_client(app, key_for(app, "ingest", rate_limit=1, rate_burst=1)) as limited:
        assert (await post(limited, body)).status_code == 200
        refused = await post(limited, body)
        assert failure(refused, 429).code == code_pb2.RESOURCE_EXHAUSTED and refused.headers["retry-after"]
    assert app.runtime.store.count() == 1


def test_the_memo_of_attribute_sets_keeps_only_small_ones() -> None:
    """Repeated attribute sets are made JSON once across exports; a sender of large, ever-different sets
    must not make that memo hold them all (up to 4,096 of 64 KiB each)."""
    otlp_mapping._MADE.clear()
    small = export(log("a", attributes=pairs(k=text("v"))))
    large = export(*(log("b", attributes=pairs(k=text(f"{n}" + "x" * 4096))) for n in range(20)))
    otlp.columns(small, json=False)
    assert len(otlp_mapping._MADE) == 1
    found = otlp.columns(large, json=False)
    assert len(set(found.attributes)) == 20 and len(otlp_mapping._MADE) == 1


@pytest.mark.parametrize("encoding", ["protobuf", "json"])
async def test_a_record_without_a_body_or_with_an_empty_one_is_stored(client: httpx.AsyncClient, encoding: str) -> None:
    """Both are valid in OpenTelemetry's logs data model (an event may say all in its attributes), and a Collector
    retries nothing of a partial success: they were refused, so lost (trial s14 T8)."""
    request = ExportLogsServiceRequest.FromString(
        export(
            log("", attributes=pairs(user=text("ann"))),  # no body
            log(body=text(""), attributes=pairs(cart=AnyValue(int_value=3))),  # an empty one
            log(body=text(""), event_name="cart.emptied"),
            log("", event_name="user.login"),
        )
    )
    if encoding == "json":
        body, headers = json_format.MessageToJson(request).encode(), {"content-type": "application/json"}
    else:
        body, headers = request.SerializeToString(), PROTOBUF
    response = await post(client, body, headers)
    assert response.status_code == 200, response.content
    assert b"rejected" not in response.content.lower() and b"partial" not in response.content.lower()
    records = sorted(((r["message"], r.get("attributes")) for r in await stored(client)), key=json.dumps)
    assert records == [
        (otlp_mapping.NO_BODY, {"cart": 3}),
        (otlp_mapping.NO_BODY, {"user": "ann"}),
        ("cart.emptied", {"event.name": "cart.emptied"}),
        ("user.login", {"event.name": "user.login"}),
    ]
