"""Auth off (--no-auth, loopback only): every caller is an admin, so only this machine's own clients may call.

A security review found two ways in from a page the machine's browser shows: a cross-site post of records in a form a
page may send without asking (Splunk HEC took text/plain), and DNS rebinding (the page's own name pointed at
127.0.0.1), which made an admin key that stayed once auth was turned back on."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import httpx
import pytest

from loglake.api.app import LoglakeApp
from loglake.config import Settings
from tests.conftest import asgi_client, key_for

REBOUND = {"host": "rebind.evil.example:8080", "origin": "http://rebind.evil.example:8080"}


@pytest.fixture
async def open_app(settings: Settings) -> AsyncIterator[LoglakeApp]:
    app = LoglakeApp.from_settings(replace(settings, auth=False, cors_allow_origins="http://localhost:3000"))
    try:
        yield app
    finally:
        app.close()


async def stored_messages(client: httpx.AsyncClient) -> list[str]:
    recent = await client.get("/logs/recent", params={"since": "1h"})
    assert recent.status_code == 200, recent.text
    return [record["message"] for record in recent.json()["logs"]]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/admin/keys", {"name": "evil", "scopes": ["admin"]}),
        ("GET", "/admin/keys", None),
        ("GET", "/logs/recent", None),
        ("POST", "/query", {"sql": "SELECT count(*) FROM logs"}),
        ("POST", "/logs", {"message": "rebound"}),
    ],
)
async def test_a_request_addressed_to_another_name_is_refused(
    open_app: LoglakeApp, method: str, path: str, body: dict | None
) -> None:
    async with asgi_client(open_app) as client:
        refused = await client.request(method, path, json=body, headers=REBOUND)
        assert refused.status_code == 403, refused.text
        error = refused.json()["error"]
        assert error["code"] == "host_not_allowed"
        assert "'rebind.evil.example:8080'" in error["message"] and "keep auth on" in error["message"]
        assert (await client.get("/admin/keys")).json()["keys"] == []  # no key was made
        assert await stored_messages(client) == []


@pytest.mark.parametrize(
    "host", ["localhost:8080", "LOCALHOST", "127.0.0.1:8080", "127.0.0.2", "[::1]:8080", "[::1]", ""]
)
async def test_loopback_names_are_served(open_app: LoglakeApp, host: str) -> None:
    async with asgi_client(open_app) as client:
        sent = await client.post("/logs", json={"message": f"to {host}"}, headers={"host": host})
        assert sent.status_code == 201, sent.text
        assert await stored_messages(client) == [f"to {host}"]


@pytest.mark.parametrize(
    ("path", "content_type", "body"),
    [
        ("/services/collector/event", "text/plain", b'{"event":"forged"}'),
        ("/services/collector/raw", "application/x-www-form-urlencoded", b"forged"),
        ("/logs", "application/json", b'{"message":"forged"}'),
    ],
)
@pytest.mark.parametrize("origin", ["https://evil.example", "null", "http://localhost:9999"])
async def test_a_page_of_another_origin_changes_nothing(
    open_app: LoglakeApp, path: str, content_type: str, body: bytes, origin: str
) -> None:
    async with asgi_client(open_app) as client:
        headers = {"content-type": content_type, "origin": origin, "sec-fetch-site": "cross-site"}
        refused = await client.post(path, content=body, headers=headers)
        assert refused.status_code == 403, refused.text
        assert "may not change anything" in refused.text and "keep auth on" in refused.text
        assert await stored_messages(client) == []


async def test_its_own_pages_and_allowed_origins_may_post_and_any_page_may_read(open_app: LoglakeApp) -> None:
    async with asgi_client(open_app) as client:
        own = {"host": "localhost:8080", "origin": "http://localhost:8080"}
        assert (await client.post("/logs", json={"message": "from the UI"}, headers=own)).status_code == 201
        # a browser's word that the request is same-origin stands whatever the Origin (a sandboxed frame's "null")
        ui = {"origin": "null", "sec-fetch-site": "same-origin"}
        assert (await client.post("/logs", json={"message": "from the UI's page"}, headers=ui)).status_code == 201
        allowed = {"origin": "http://localhost:3000", "sec-fetch-site": "same-site"}  # (cors_allow_origins)
        assert (await client.post("/logs", json={"message": "from a page allowed"}, headers=allowed)).status_code == 201
        # A read from another page goes through: without CORS headers the browser keeps the answer from it.
        read = await client.get("/logs/recent", params={"since": "1h"}, headers={"origin": "https://evil.example"})
        assert read.status_code == 200 and "access-control-allow-origin" not in read.headers
        assert sorted(await stored_messages(client)) == ["from a page allowed", "from the UI", "from the UI's page"]


async def test_with_auth_on_a_key_is_taken_at_any_name(app: LoglakeApp) -> None:
    """The names are checked only with auth off: with it on, a page without the key can do nothing anyway."""
    async with asgi_client(app, key_for(app)) as client:
        sent = await client.post("/logs", json={"message": "via a proxy"}, headers={"host": "logs.example.com"})
        assert sent.status_code == 201, sent.text
