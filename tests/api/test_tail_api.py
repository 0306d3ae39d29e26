"""GET /logs/tail's refusals, in process: they come before any stream opens (the streams themselves are
tested against a real server in tests/e2e/test_tail.py)."""

from __future__ import annotations

import httpx
import pytest

from loglake.api.app import LoglakeApp
from tests.conftest import asgi_client, key_for


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"since": "1h"}, "since"),
        ({"until": "now"}, "until"),
        ({"limit": "10"}, "limit"),
        ({"cursor": "x"}, "cursor"),
        ({"q": '"unclosed'}, "q"),
        ({"severity": "loud"}, "severity"),
        ({"bogus": "1"}, "bogus"),
    ],
)
async def test_a_tail_that_cannot_be_followed_is_a_400_naming_the_parameter(
    client: httpx.AsyncClient, params: dict, field: str
) -> None:
    response = await client.get("/logs/tail", params=params)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["details"][0]["field"] == field


async def test_a_tail_needs_a_key_with_the_read_scope(app: LoglakeApp) -> None:
    async with asgi_client(app) as anonymous:
        assert (await anonymous.get("/logs/tail")).status_code == 401
    async with asgi_client(app, key_for(app, "ingest")) as shipper:
        refused = await shipper.get("/logs/tail")
        assert refused.status_code == 403 and "'read' scope" in refused.json()["error"]["message"]


async def test_head_answers_the_stream_headers_without_opening_a_tail(client: httpx.AsyncClient) -> None:
    response = await client.head("/logs/tail", params={"q": "timeout"})
    assert response.status_code == 200 and response.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert response.content == b""
