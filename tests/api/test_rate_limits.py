"""A key's rate limit bounds what it sends, not only how often: a request costs one token per 64 KiB of its body
started (ratelimit.request_units), on every ingest protocol, whatever the body's framing (Content-Length or
chunked): let in for one token, the rest taken once the body is read. Trial s15 T6: a key limited to 1 request/s
sent three 9.5 MB bulks in three seconds, while four single records at once were refused."""

from __future__ import annotations

import json

import pytest

from loglake.api.app import LoglakeApp
from loglake.api.ratelimit import REQUEST_UNIT_BYTES, request_units
from tests.conftest import asgi_client, key_for

SLOW = 0.01  # tokens a second: none comes back while a test runs
NDJSON = {"content-type": "application/x-ndjson"}


def _records(units: int) -> list[str]:
    """Messages that make a body of a little under `units` units (64 KiB each)."""
    return [f"{n} " + "x" * (REQUEST_UNIT_BYTES - 300) for n in range(units)]


def _ndjson(messages: list[str]) -> bytes:
    return b"".join(json.dumps({"message": m}).encode() + b"\n" for m in messages)


def _loki(messages: list[str]) -> bytes:
    values = [[str(1_796_400_000_000_000_000 + n), m] for n, m in enumerate(messages)]
    return json.dumps({"streams": [{"stream": {"job": "j"}, "values": values}]}).encode()


def _bulk(messages: list[str]) -> bytes:
    return b"".join(b'{"create": {}}\n' + json.dumps({"message": m}).encode() + b"\n" for m in messages)


# (path, content type, body of N units, success status, the rate limit's status)
WAYS = {
    "native": ("/logs", "application/x-ndjson", lambda n: _ndjson(_records(n)), 201, 429),
    "loki": ("/loki/api/v1/push", "application/json", lambda n: _loki(_records(n)), 204, 429),
    "elasticsearch": ("/app/_bulk", "application/x-ndjson", lambda n: _bulk(_records(n)), 200, 429),
    "splunk": ("/services/collector/raw", "text/plain", lambda n: "\n".join(_records(n)).encode(), 200, 503),
}


def test_a_request_costs_one_unit_per_64_kib_of_body_started() -> None:
    assert [request_units(n) for n in (0, 1, 65_536, 65_537, 10_000_000)] == [1, 1, 1, 2, 153]


@pytest.mark.parametrize("way", list(WAYS))
async def test_a_big_body_spends_the_keys_rate_as_its_size_says(app: LoglakeApp, way: str) -> None:
    path, content_type, body, ok, limited = WAYS[way]
    big = body(8)
    assert request_units(len(big)) == 8
    async with asgi_client(app, key_for(app, "ingest", rate_limit=SLOW, rate_burst=10)) as client:
        sent = await client.post(path, content=big, headers={"content-type": content_type})
        assert sent.status_code == ok, sent.text
        small = [await client.post(path, content=body(1), headers={"content-type": content_type}) for _ in range(3)]
    assert [r.status_code for r in small] == [ok, ok, limited]  # 10 tokens: 8, then 1 and 1, then none
    assert int(small[2].headers["retry-after"]) >= 1


async def test_a_body_bigger_than_the_burst_is_taken_and_the_key_then_waits(app: LoglakeApp) -> None:
    """Any body the route takes can be sent: it leaves the bucket in debt, and the key waits as long as its rate
    needs to pay it back."""
    async with asgi_client(app, key_for(app, "ingest", rate_limit=SLOW, rate_burst=2)) as client:
        sent = await client.post(
            "/logs", content=_ndjson(_records(5)), headers={"content-type": "application/x-ndjson"}
        )
        assert sent.status_code == 201, sent.text
        refused = await client.post("/logs", json={"message": "one"})
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) >= 3 / SLOW  # 2 - 5 = -3 tokens, and one more to take
    assert "one per 64 KiB" in refused.json()["error"]["message"]


async def test_a_chunked_body_is_charged_once_read(app: LoglakeApp) -> None:
    """Without a Content-Length, charged as any body: once read."""
    body = _ndjson(_records(8))

    async def chunks():
        for start in range(0, len(body), 50_000):
            yield body[start : start + 50_000]

    async with asgi_client(app, key_for(app, "ingest", rate_limit=SLOW, rate_burst=10)) as client:
        request = client.build_request(
            "POST", "/logs", content=chunks(), headers={"content-type": "application/x-ndjson"}
        )
        assert "content-length" not in request.headers
        sent = await client.send(request)
        assert sent.status_code == 201, sent.text
        small = [(await client.post("/logs", json={"message": "one"})).status_code for _ in range(3)]
    assert small == [201, 201, 429]


async def test_requests_without_a_body_still_cost_one(app: LoglakeApp) -> None:
    async with asgi_client(app, key_for(app, "read", rate_limit=SLOW, rate_burst=2)) as client:
        statuses = [(await client.get("/logs/recent")).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
