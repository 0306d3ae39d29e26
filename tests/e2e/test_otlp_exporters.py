"""The OpenTelemetry Python SDK's own OTLP/HTTP log exporters (protobuf and JSON) against a real
`loglake serve`: records emitted through the SDK inside a span reach loglake with the span's trace and
span ids, the resource's service and the call's attributes. The SDK's exporters read nothing of a 200
answer, so the partial success is checked over plain HTTP."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from google.protobuf import json_format
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.json.http._log_exporter import OTLPLogExporter as JsonLogExporter
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as ProtobufLogExporter
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest, ExportLogsServiceResponse
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, LogRecordExportResult, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from loglake.config import Settings
from loglake.ingest import BULK_MIN_RECORDS
from tests.conftest import ServerProcess, free_port

pytestmark = pytest.mark.e2e
PROTOBUF, JSON = "application/x-protobuf", "application/json"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, str]]:
    folder: Path = tmp_path_factory.mktemp("otlp")
    started = ServerProcess(folder / "data", free_port(), folder / "server.log").start()
    key = started.admin_key()
    yield started, key
    started.stop()


def logged_records(service: str) -> list:
    """Three log records emitted through the SDK's Logs API, the last two inside a span, as the SDK
    hands them to an exporter; and the span's context."""
    provider = LoggerProvider(resource=Resource.create({"service.name": service, "deployment.environment": "test"}))
    captured = InMemoryLogRecordExporter()
    provider.add_log_record_processor(SimpleLogRecordProcessor(captured))
    logger = provider.get_logger(f"tests.otlp.{service}", "1.0")
    tracer = TracerProvider().get_tracer("tests.otlp")
    try:
        logger.emit(body="cart opened", severity_number=SeverityNumber.INFO, severity_text="INFO")
        with tracer.start_as_current_span("checkout") as span:
            logger.emit(
                body="card declined",
                severity_number=SeverityNumber.WARN,
                severity_text="WARNING",
                attributes={"order.id": 42, "amount": 9.5},
            )
            try:
                raise ValueError("no funds")
            except ValueError as e:
                logger.emit(body="payment failed", severity_number=SeverityNumber.ERROR, exception=e)
        context = span.get_span_context()
    finally:
        provider.shutdown()
    return [captured.get_finished_logs(), context]


def search(server: ServerProcess, key: str, q: str) -> list[dict]:
    params = {"q": q, "since": "2000-01-01T00:00:00Z", "limit": "100"}
    found = httpx.get(f"{server.url}/logs/search", params=params, headers={"authorization": f"Bearer {key}"})
    assert found.status_code == 200, found.text
    return found.json()["logs"]


@pytest.mark.parametrize(
    "exporter",
    [
        lambda url, key: ProtobufLogExporter(f"{url}/v1/logs", headers={"Authorization": f"Bearer {key}"}),
        lambda url, key: ProtobufLogExporter(
            f"{url}/v1/logs", headers={"Authorization": f"Bearer {key}"}, compression=Compression.Gzip
        ),
        lambda url, key: JsonLogExporter(f"{url}/v1/logs", headers={"Authorization": f"Bearer {key}"}),
    ],
    ids=["protobuf", "protobuf-gzip", "json"],
)
def test_the_sdks_exporters_deliver_logs_with_their_trace_context(
    server: tuple[ServerProcess, str], exporter, request: pytest.FixtureRequest
) -> None:
    process, key = server
    service = f"shop-{request.node.callspec.id}"
    records, span = logged_records(service)
    sender = exporter(process.url, key)
    try:
        assert sender.export(records) == LogRecordExportResult.SUCCESS
    finally:
        sender.shutdown()
    by_message = {r["message"]: r for r in search(process, key, f"service:{service}")}
    assert {m: r["severity"] for m, r in by_message.items()} == {
        "cart opened": "info",
        "card declined": "warning",
        "payment failed": "error",
    }
    opened, declined, failed = (by_message[m] for m in ("cart opened", "card declined", "payment failed"))
    assert "trace_id" not in opened
    trace_id, span_id = f"{span.trace_id:032x}", f"{span.span_id:016x}"
    assert (declined["trace_id"], declined["span_id"]) == (failed["trace_id"], failed["span_id"]) == (trace_id, span_id)
    assert search(process, key, f"trace_id:{trace_id} severity:error") == [failed]
    assert declined["attributes"]["order.id"] == 42 and declined["attributes"]["amount"] == 9.5
    assert declined["attributes"]["deployment.environment"] == "test"
    assert declined["attributes"]["otel.scope.name"] == f"tests.otlp.{service}"
    assert (
        failed["attributes"]["exception.type"] == "ValueError"
        and "no funds" in failed["attributes"]["exception.message"]
    )


def test_a_wrong_key_fails_the_export(server: tuple[ServerProcess, str]) -> None:
    process, _ = server
    records, _ = logged_records("shop-unauthorized")
    sender = ProtobufLogExporter(f"{process.url}/v1/logs", headers={"Authorization": "Bearer llk_wrong"}, timeout=5)
    try:
        assert sender.export(records) == LogRecordExportResult.FAILURE
    finally:
        sender.shutdown()


@pytest.mark.parametrize("encoding", ["protobuf", "json"])
def test_a_partial_success_names_the_refused_records_and_stores_the_rest(
    server: tuple[ServerProcess, str], encoding: str
) -> None:
    """A bulk-sized export (lake parts when all are valid) with two records that cannot be stored, over
    real HTTP: the answer's partial_success counts and names them, and every other record is stored."""
    process, key = server
    service = f"partial-{encoding}"
    now_ns = time.time_ns()
    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    resource_logs.resource.attributes.add(key="service.name").value.string_value = service
    logs = resource_logs.scope_logs.add().log_records
    for i in range(BULK_MIN_RECORDS + 200):
        logs.add(time_unix_nano=now_ns - i * 1_000_000, severity_number=9).body.string_value = f"record {i}"
    too_large = "x" * (Settings().max_message_bytes + 1)
    logs[5].body.string_value = logs[700].body.string_value = too_large
    logs[9].time_unix_nano = 1_000  # 1970: no clock's time, stored at its arrival with the time it carried
    headers = {"authorization": f"Bearer {key}"}
    if encoding == "json":
        body = json.dumps(json_format.MessageToDict(request)).encode()
        response = httpx.post(f"{process.url}/v1/logs", content=body, headers={**headers, "content-type": JSON})
        assert response.status_code == 200 and response.headers["content-type"] == JSON, response.text
        partial = response.json()["partialSuccess"]
        rejected, message = int(partial["rejectedLogRecords"]), partial["errorMessage"]
    else:
        body = request.SerializeToString()
        response = httpx.post(f"{process.url}/v1/logs", content=body, headers={**headers, "content-type": PROTOBUF})
        assert response.status_code == 200 and response.headers["content-type"] == PROTOBUF, response.content
        partial_success = ExportLogsServiceResponse.FromString(response.content).partial_success
        rejected, message = partial_success.rejected_log_records, partial_success.error_message
    assert rejected == 2
    refused = "record 6 (resourceLogs[0].scopeLogs[0].logRecords[5]): message is larger than"
    assert message.startswith(f"2 of {BULK_MIN_RECORDS + 200} log record(s) refused: {refused}")
    assert "record 701 (resourceLogs[0].scopeLogs[0].logRecords[700]): message is larger than" in message
    sql = f"SELECT count(*), count(DISTINCT message) FROM logs WHERE service = '{service}'"
    counted = httpx.post(f"{process.url}/query", json={"sql": sql}, headers=headers)
    assert counted.json()["rows"] == [[BULK_MIN_RECORDS + 198, BULK_MIN_RECORDS + 198]], counted.text
    stored = search(process, key, f"service:{service} record")
    assert "record 5" not in {r["message"] for r in stored} and "record 4" in {r["message"] for r in stored}
    restamped = [r for r in stored if r["message"] == "record 9"]
    assert restamped and restamped[0]["attributes"] == {"time_sent": 0}  # (1,000 ns: 0 ms)
