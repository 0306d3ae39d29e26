"""A dotted key in a search reaches OpenTelemetry's flat dotted attributes (host.name, as OTLP stores the
OpenTelemetry SDK's resource) and an Elasticsearch document's nested objects alike, in the hot rows and
in the lake; quoted, it is the one key; negated, it leaves out either form."""

from __future__ import annotations

import json
from contextlib import nullcontext

import httpx
import pytest
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import get_current_span

from loglake.api.app import LoglakeApp
from tests.api.test_lake_api import flush_all


def sdk_export(host: str, *messages: str, traced: bool = False) -> tuple[bytes, str]:
    """An OTLP/protobuf export of records emitted through the OpenTelemetry SDK on `host`, all inside one
    span when `traced`; and that span's trace id ("" without one)."""
    resource = Resource.create({"service.name": "shop", "host.name": host, "service.version": "1.4.2"})
    provider = LoggerProvider(resource=resource)
    captured = InMemoryLogRecordExporter()
    provider.add_log_record_processor(SimpleLogRecordProcessor(captured))
    logger = provider.get_logger("tests.search")
    with TracerProvider().get_tracer("tests.search").start_as_current_span("checkout") if traced else nullcontext():
        for message in messages:
            logger.emit(body=message, severity_number=SeverityNumber.INFO)
        trace_id = f"{get_current_span().get_span_context().trace_id:032x}" if traced else ""
    provider.shutdown()
    return encode_logs(captured.get_finished_logs()).SerializeToString(), trace_id


@pytest.fixture
async def stored(client: httpx.AsyncClient) -> None:
    for host, message in (("web-7", "otel on web-7"), ("web-8", "otel on web-8")):
        sent = await client.post(
            "/v1/logs", content=sdk_export(host, message)[0], headers={"content-type": "application/x-protobuf"}
        )
        assert sent.status_code == 200, sent.text
    documents = [{"message": "es on web-7", "host": {"name": "web-7"}}, {"message": "es on web-9", "host": "web-9"}]
    body = "".join(json.dumps({"create": {"_index": "shop"}}) + "\n" + json.dumps(d) + "\n" for d in documents)
    bulk = await client.post("/_bulk", content=body, headers={"content-type": "application/x-ndjson"})
    assert bulk.status_code == 200 and not bulk.json()["errors"], bulk.text


async def found(client: httpx.AsyncClient, q: str) -> list[str]:
    response = await client.get("/logs/search", params={"q": q, "since": "1h"})
    assert response.status_code == 200, response.text
    return sorted(r["message"] for r in response.json()["logs"])


@pytest.mark.usefixtures("stored")
async def test_a_dotted_key_finds_otlps_flat_attributes_and_nested_objects(
    app: LoglakeApp, client: httpx.AsyncClient
) -> None:
    [otel_record] = (await client.get("/logs/search", params={"q": '"otel on web-7"', "since": "1h"})).json()["logs"]
    assert otel_record["attributes"]["host.name"] == "web-7"  # flat, as OTLP stores it
    searches = {
        "host.name:web-7": ["es on web-7", "otel on web-7"],
        "host.name:WEB-7 service.version:1.4.2": ["otel on web-7"],
        "on -host.name:web-7": ["es on web-9", "otel on web-8"],  # either form left out; no host.name: kept
        '"host.name":web-7': ["otel on web-7"],  # quoted: the one key with the dot
        '-"host.name":web-7 host.name:web-7': ["es on web-7"],
        "host.name:web*": ["es on web-7", "otel on web-7", "otel on web-8"],
        "on -host.name:*": ["es on web-9"],
    }
    for where in ("hot", "lake"):
        for q, messages in searches.items():
            assert await found(client, q) == messages, (where, q)
        if where == "hot":
            assert flush_all(app) == 4
