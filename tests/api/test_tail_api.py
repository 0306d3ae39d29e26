"""GET /logs/tail in process: its refusals, which come before any stream opens, and how a stream ends (the streams
themselves are tested against a real server in tests/e2e/test_tail.py)."""

from __future__ import annotations

import asyncio
import signal

import httpx
import pytest

from loglake.api import tail_routes
from loglake.api.app import LoglakeApp
from loglake.server import LoglakeServer, uvicorn_config
from loglake.store.base import RecentQuery
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


def tail_scope(key: str, query: bytes) -> dict:
    """The ASGI scope of a GET /logs/tail with `key`: driven as ASGI directly, as httpx's in-process transport waits
    for a response's end."""
    return {
        "type": "http",
        "method": "GET",
        "path": "/logs/tail",
        "query_string": query,
        "headers": [(b"authorization", f"Bearer {key}".encode()), (b"host", b"loglake.test")],
        "scheme": "http",
    }


async def test_a_quiet_tail_sends_heartbeats_and_ends_when_its_client_leaves(
    app: LoglakeApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Driven as ASGI directly (httpx's in-process transport waits for a response's end): comments keep
    a quiet stream open, and the tail is released once the client disconnects."""
    monkeypatch.setattr(tail_routes, "HEARTBEAT_SECONDS", 0.01)
    scope = tail_scope(key_for(app, "read", "quiet"), b"q=quiet")
    left = asyncio.Event()
    requested = False

    async def receive() -> dict:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await left.wait()
        return {"type": "http.disconnect"}

    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)
        if sum(m.get("body") == b": keep-alive\n\n" for m in sent) == 2:
            left.set()

    await asyncio.wait_for(app(scope, receive, send), 10)
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 200
    assert [m["body"] for m in sent[1:3]] == [b": keep-alive\n\n"] * 2
    assert sent[-1] == {"type": "http.response.body", "body": b"", "more_body": False}
    assert app.tails is not None
    for _ in range(app.settings.max_tails_per_key):  # every slot of the key is free again
        app.tails.open("quiet", RecentQuery(since_ms=0), [])


async def test_a_stopping_server_opens_no_tail(app: LoglakeApp, client: httpx.AsyncClient) -> None:
    """A tail opened while the server stops (`loglake tail` reconnecting at once) held the stop up for uvicorn's
    whole graceful timeout, ended with an error line; a 503 makes the client wait for the server to be back."""
    app.stopping()
    refused = await asyncio.wait_for(client.get("/logs/tail"), 10)  # (a tail opened instead never ends)
    assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
    assert refused.json()["error"]["code"] == "server_stopping"


async def test_a_tail_the_server_stops_before_its_first_wait_still_ends_with_the_end_event(app: LoglakeApp) -> None:
    """uvicorn calls its SIGTERM handler from a Python signal handler, which may run at any point of the stream's
    loop: stopped between two waits (here: as its head is sent), the stream left its loop and ended without the
    `end` event, and `loglake tail` took the server for gone, not stopping (a flaky e2e test)."""
    scope = tail_scope(key_for(app, "read", "stopped"), b"")
    requested = False
    never = asyncio.Event()

    async def receive() -> dict:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await never.wait()  # the client stays
        return {"type": "http.disconnect"}

    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)
        if message["type"] == "http.response.start":
            app.stopping()

    await asyncio.wait_for(app(scope, receive, send), 10)
    bodies = b"".join(m.get("body", b"") for m in sent[1:])
    assert bodies == b'event: end\ndata: {"reason":"the server is stopping"}\n\n', sent


async def test_the_servers_stop_signal_reaches_the_app_as_a_callback_of_the_event_loop(app: LoglakeApp) -> None:
    """uvicorn runs its SIGTERM handler from a signal handler, in the middle of whatever the loop's thread runs:
    the app's stopping (which ends the tails) goes to the loop, to run between two of its steps."""
    server = LoglakeServer(uvicorn_config(app), app)
    server.handle_exit(signal.SIGTERM, None)
    assert server.should_exit and not app.is_stopping
    await asyncio.sleep(0)
    assert app.is_stopping
