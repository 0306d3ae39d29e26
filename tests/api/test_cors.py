"""Browsers on the allowed origins may call the API: preflights answered before auth, answers marked."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest

from loglake.api.app import LoglakeApp
from loglake.config import ConfigError, Settings
from tests.conftest import asgi_client, key_for

UI = "https://ui.example.com"


@pytest.fixture
def cors_app(settings: Settings) -> Iterator[LoglakeApp]:
    application = LoglakeApp.from_settings(replace(settings, cors_allow_origins=f"{UI}, http://localhost:5173"))
    yield application
    application.close()


async def test_a_preflight_from_an_allowed_origin_needs_no_key(cors_app: LoglakeApp) -> None:
    async with asgi_client(cors_app) as client:  # no key: browsers never sign preflights
        headers = {
            "origin": UI,
            "access-control-request-method": "POST",
            "access-control-request-headers": "authorization",
        }
        answer = await client.options("/logs", headers=headers)
        assert answer.status_code == 204
        assert answer.headers["access-control-allow-origin"] == UI
        assert "POST" in answer.headers["access-control-allow-methods"]
        assert "authorization" in answer.headers["access-control-allow-headers"]
        refused = await client.options("/logs", headers=headers | {"origin": "https://evil.example"})
        assert refused.status_code == 403 and "access-control-allow-origin" not in refused.headers


async def test_a_preflight_allows_every_request_header_the_api_reads(cors_app: LoglakeApp) -> None:
    """A page sending `Prefer: return=minimal` to POST /logs, or signing with the AWS SDK's SigV4 signer (which
    adds x-amz-content-sha256), failed its preflight: the browser never sent the request."""
    read = "authorization, content-type, content-encoding, prefer, x-amz-content-sha256, x-amz-date, x-request-id"
    headers = {"origin": UI, "access-control-request-method": "POST", "access-control-request-headers": read}
    async with asgi_client(cors_app) as client:
        answer = await client.options("/logs", headers=headers)
    assert answer.status_code == 204
    allowed = {name.strip() for name in answer.headers["access-control-allow-headers"].split(",")}
    assert {name.strip() for name in read.split(",")} <= allowed


async def test_answers_to_allowed_origins_say_so_errors_included(cors_app: LoglakeApp) -> None:
    async with asgi_client(cors_app, key_for(cors_app, "admin")) as client:
        sent = await client.post("/logs", json={"message": "from the browser"}, headers={"origin": UI})
        assert sent.status_code == 201 and sent.headers["access-control-allow-origin"] == UI
        assert "x-request-id" in sent.headers["access-control-expose-headers"]
        bad = await client.post("/logs", json={"message": ""}, headers={"origin": UI})
        assert bad.status_code == 400 and bad.headers["access-control-allow-origin"] == UI
        other = await client.get("/logs/recent", headers={"origin": "https://evil.example"})
        assert other.status_code == 200 and "access-control-allow-origin" not in other.headers
        # (a cache between must not give one origin's answer, or a page-less client's, to another)
        assert other.headers["vary"] == "origin"
        assert (await client.get("/logs/recent")).headers["vary"] == "origin"
    async with asgi_client(cors_app) as anonymous:
        unauthorized = await anonymous.get("/logs/recent", headers={"origin": UI})
        assert unauthorized.status_code == 401 and unauthorized.headers["access-control-allow-origin"] == UI


async def test_without_the_setting_no_origin_is_allowed(app: LoglakeApp) -> None:
    async with asgi_client(app) as client:
        headers = {"origin": UI, "access-control-request-method": "GET"}
        refused = await client.options("/logs/recent", headers=headers)
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "origin_not_allowed"
        assert "vary" not in refused.headers  # (no origin is allowed: every answer is the same to all)
        assert "--cors-allow-origins" in refused.json()["error"]["message"]


def test_a_bad_origin_is_refused_with_its_name(settings: Settings) -> None:
    with pytest.raises(ConfigError, match=r"cors_allow_origins: 'ui\.example\.com' is not an origin"):
        replace(settings, cors_allow_origins="ui.example.com").check()
