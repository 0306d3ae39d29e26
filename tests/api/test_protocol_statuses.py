"""Each shipper protocol's endpoint answers exactly the statuses its OpenAPI description lists, in the form it
describes: every status is provoked here (success, a malformed body, no key, a key without the ingest scope,
a body too large, an unsupported encoding or media type, the key's rate limit, storage that cannot take
writes) and the set answered is compared with the set documented."""

from __future__ import annotations

import gzip
import json
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, replace

import httpx
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from loglake.api import splunk_routes
from loglake.api.app import LoglakeApp
from loglake.api.openapi import SPEC
from loglake.config import Settings
from loglake.protocols import splunk
from tests.conftest import asgi_client, key_for

NOW_MS = 1_793_577_600_000  # 2026-11-02T00:00:00Z


def _otlp_export() -> bytes:
    request = ExportLogsServiceRequest()
    log = request.resource_logs.add().scope_logs.add().log_records.add(time_unix_nano=(NOW_MS - 1000) * 1_000_000)
    log.body.string_value = "paid"
    return request.SerializeToString()


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    template: str  # as the OpenAPI document names it
    content_type: str | None = None  # None: the endpoint takes no body
    good: bytes = b""
    malformed: bytes | None = None  # a body the protocol refuses whole
    foreign_type: str | None = None  # a Content-Type the endpoint refuses
    stores: bool = True  # False: it reads a body but stores nothing, so full storage does not refuse it
    # The n-th good body other than `good`, for a protocol that answers a body sent again as it answered it,
    # without storing it (Loki): a body stored once would never meet the full store.
    again: Callable[[int], bytes] | None = None

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def _loki_push(line: str) -> bytes:
    return json.dumps({"streams": [{"stream": {"job": "a"}, "values": [[str((NOW_MS - 1) * 10**6), line]]}]}).encode()


NDJSON = "application/x-ndjson"
BULK = b'{"create": {"_index": "app"}}\n{"message": "stored"}\n'
ENDPOINTS = [
    Endpoint("POST", "/v1/logs", "/v1/logs", "application/x-protobuf", _otlp_export(), b"\x0a\xff\xff", "text/plain"),
    Endpoint(
        "POST",
        "/loki/api/v1/push",
        "/loki/api/v1/push",
        "application/json",
        _loki_push("x"),
        b'{"streams": 1}',
        "text/plain",
        again=lambda n: _loki_push(f"x{n}"),
    ),
    *(Endpoint(m, "/_bulk", "/_bulk", NDJSON, BULK, b"not json\n", "text/plain") for m in ("POST", "PUT")),
    *(Endpoint(m, "/app/_bulk", "/{index}/_bulk", NDJSON, BULK, b"not json\n", "text/plain") for m in ("POST", "PUT")),
    *(Endpoint("GET", path, path) for path in ("/_license", "/_xpack", "/_cluster/health")),
    *(Endpoint(method, "/newidx", "/{index}") for method in ("GET", "DELETE", "POST")),
    Endpoint("PUT", "/newidx", "/{index}", "application/json", b"{}", stores=False),  # (its settings: ignored)
    *(
        Endpoint("POST", path, path, "application/json", b'{"event": "x"}', b'{"event": "x"}{"event": ""}')
        for path in splunk_routes.EVENT_PATHS
    ),
    *(Endpoint("POST", path, path, "text/plain", b"a line\n", b"\n") for path in splunk_routes.RAW_PATHS),
    *(
        Endpoint("POST", path, path, "application/json", b'{"acks": [0]}', stores=False)
        for path in splunk_routes.ACK_PATHS
    ),
]


@pytest.fixture
def app(settings: Settings) -> Iterator[LoglakeApp]:
    application = LoglakeApp.from_settings(replace(settings, max_store_mb=1), clock=lambda: NOW_MS / 1000)
    yield application
    application.close()


async def _fill_the_store(app: LoglakeApp) -> None:
    """Write ever smaller records until the 1 MiB store has no room left for even a short one."""
    async with asgi_client(app, key_for(app, "ingest")) as shipper:
        for size in (200_000, 20_000, 2_000, 200, 20, 1):
            for _ in range(50):
                if (await shipper.post("/logs", json=[{"message": "z" * size}] * 4)).status_code == 503:
                    break
            else:
                pytest.fail(f"the 1 MiB store never refused records of {size} bytes")


async def _answers(app: LoglakeApp, endpoint: Endpoint) -> list[httpx.Response]:
    """The endpoint's answer to each way of provoking a status it may have."""
    ingest = key_for(app, "ingest")

    async def call(
        key: str | None = ingest, body: bytes | None = None, query: dict[str, str] | None = None, **headers: str
    ) -> httpx.Response:
        if key is not None:
            headers["authorization"] = f"Bearer {key}"
        if endpoint.content_type is not None:
            headers.setdefault("content-type", endpoint.content_type)
            body = endpoint.good if body is None else body
        async with asgi_client(app) as client:
            return await client.request(endpoint.method, endpoint.path, content=body, headers=headers, params=query)

    answers = [await call(), await call(None), await call(key_for(app, "read"))]
    if endpoint.template.startswith(("/_", "/{index}")):  # Elasticsearch's: a parameter it does not document
        answers.append(await call(query={"foo": "1"}))
    if endpoint.content_type is not None:
        largest = max(app.settings.max_body_bytes, app.settings.max_bulk_body_bytes)  # (a bulk's is the larger)
        bomb = gzip.compress(b"\0" * (largest + 1))
        answers += [await call(body=bomb, **{"content-encoding": "gzip"}), await call(**{"content-encoding": "br"})]
        answers.append(await call(body=b" " * (largest + 1)))  # (refused unread, by its Content-Length)
    if endpoint.malformed is not None:
        answers.append(await call(body=endpoint.malformed))
    if endpoint.foreign_type is not None:
        answers.append(await call(**{"content-type": endpoint.foreign_type}))
    limited = key_for(app, "ingest", rate_limit=0.5, rate_burst=1)
    answers += [await call(limited), await call(limited)]
    if endpoint.content_type is not None and endpoint.stores:
        answers.append(await _refused_for_storage(app, call, endpoint.again))
    return answers


async def _refused_for_storage(
    app: LoglakeApp, call: Callable[..., Awaitable[httpx.Response]], again: Callable[[int], bytes] | None = None
) -> httpx.Response:
    """The answer once the store cannot take the request's records (a write it refused may free a little room,
    so a short one may pass first)."""
    await _fill_the_store(app)
    for attempt in range(10):
        answer = await (call() if again is None else call(body=again(attempt)))
        if answer.status_code == 503 or b'"status":503' in answer.content:  # a bulk item fails alone
            return answer
    pytest.fail("the full store kept taking records")


def _in_its_form(endpoint: Endpoint, response: httpx.Response, documented: dict) -> None:
    """The answer has the form the document gives its status."""
    content_type = response.headers.get("content-type", "").split(";")[0]
    if "content" in documented:
        assert content_type in documented["content"], (response.status_code, content_type)
    if endpoint.path.startswith("/services/collector"):
        answer = response.json()
        assert answer["text"] == splunk.STATUS[answer["code"]][1], answer
    elif endpoint.template.startswith("/_") or endpoint.template.startswith("/{index}"):
        assert response.headers["x-elastic-product"] == "Elasticsearch"
        if response.status_code >= 400:
            assert response.json()["status"] == response.status_code and response.json()["error"]["type"]
    elif endpoint.path.startswith("/loki") and response.status_code in (400, 413, 415, 503):
        assert content_type == "text/plain"


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=str)
async def test_an_endpoint_answers_exactly_the_statuses_it_documents(app: LoglakeApp, endpoint: Endpoint) -> None:
    responses = SPEC["paths"][endpoint.template][endpoint.method.lower()]["responses"]
    answers = await _answers(app, endpoint)
    assert {str(a.status_code) for a in answers} == set(responses), [(a.status_code, a.text[:100]) for a in answers]
    for answer in answers:
        _in_its_form(endpoint, answer, responses[str(answer.status_code)])


async def test_a_bulk_item_fails_with_503_when_storage_cannot_take_writes_as_documented(app: LoglakeApp) -> None:
    async with asgi_client(app, key_for(app, "ingest")) as client:
        response = await _refused_for_storage(
            app, lambda: client.post("/_bulk", content=BULK, headers={"content-type": NDJSON})
        )
    assert response.status_code == 200 and response.json()["items"][0]["create"]["status"] == 503
    assert "503 (storage cannot take writes" in SPEC["paths"]["/_bulk"]["post"]["responses"]["200"]["description"]


@pytest.mark.parametrize("path", splunk_routes.HEALTH_PATHS)
async def test_hec_health_answers_the_statuses_it_documents(app: LoglakeApp, path: str) -> None:
    async with asgi_client(app) as anonymous:
        healthy = await anonymous.get(path)
        await _fill_the_store(app)  # (a write refused: unhealthy until one passes)
        unhealthy = await anonymous.get(path)
    assert {str(healthy.status_code), str(unhealthy.status_code)} == set(SPEC["paths"][path]["get"]["responses"])
    assert (healthy.json()["code"], unhealthy.json()["code"]) == (17, 18)


async def test_lokis_ready_probe_answers_the_statuses_it_documents(app: LoglakeApp) -> None:
    """Loki's `GET /ready` (no auth): `ready` as Loki answers it, which clients and probes ask before pushing (it was
    a 404), and 503 while storage cannot take writes."""
    async with asgi_client(app) as anonymous:
        ready = await anonymous.get("/ready")
        await _fill_the_store(app)
        full = await anonymous.get("/ready")
    assert (ready.status_code, ready.text, full.status_code) == (200, "ready\n", 503)
    assert ready.headers["content-type"] == "text/plain; charset=utf-8"
    assert {str(ready.status_code), str(full.status_code)} == set(SPEC["paths"]["/ready"]["get"]["responses"])


@pytest.mark.parametrize("path", ["/ready", splunk_routes.HEALTH_PATHS[0]])
async def test_a_probe_checks_storage_again_once_it_refused_writes(app: LoglakeApp, path: str) -> None:
    """A balancer that stops sending to a server whose probe says unhealthy sends no write that would clear a storage
    error: HEC's health said code 18 for good, where /healthz checks the store again."""
    app.storage_error, app.storage_checked_at = "the disk was full", 0.0  # (room again since)
    async with asgi_client(app) as anonymous:
        assert (await anonymous.get(path)).status_code == 200
