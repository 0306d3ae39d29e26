"""SigV4 through the whole app: requests signed by botocore's own signer, as awscurl and SDKs send them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from loglake.api.app import LoglakeApp
from tests.conftest import asgi_client

BASE = "http://loglake.test"


@pytest.fixture
def key_pair(app: LoglakeApp) -> tuple[str, str]:
    new = app.keystore.create("signer", frozenset({"ingest", "read"}), sigv4=True)
    assert new.access_key_id and new.access_key_id.startswith("LLAK")
    return new.access_key_id, new.secret


def sign(
    method: str,
    url: str,
    body: bytes,
    key_pair: tuple[str, str],
    region: str = "us-east-1",
    service: str = "execute-api",
    headers: dict | None = None,
) -> dict[str, str]:
    request = AWSRequest(method=method, url=url, data=body, headers=headers or {})
    SigV4Auth(Credentials(*key_pair), service, region).add_auth(request)
    return dict(request.headers.items())


async def send(app: LoglakeApp, method: str, url: str, body: bytes, headers: dict) -> httpx.Response:
    async with asgi_client(app) as client:
        return await client.request(method, url, content=body, headers=headers)


async def test_botocore_signed_requests_pass(app: LoglakeApp, key_pair: tuple[str, str]) -> None:
    body = json.dumps({"message": "signed hello", "service": "aws"}).encode()
    headers = sign("POST", f"{BASE}/logs", body, key_pair, headers={"Content-Type": "application/json"})
    response = await send(app, "POST", f"{BASE}/logs", body, headers)
    assert response.status_code == 201, response.text

    url = f"{BASE}/logs/recent?service=aws&since=2h&limit=5"
    response = await send(app, "GET", url, b"", sign("GET", url, b"", key_pair))
    assert response.status_code == 200, response.text
    assert [r["message"] for r in response.json()["logs"]] == ["signed hello"]


@pytest.mark.parametrize("tamper", ["body", "path", "query", "header", "region", "service", "secret"])
async def test_tampering_is_401(app: LoglakeApp, key_pair: tuple[str, str], tamper: str) -> None:
    body = json.dumps({"message": "original"}).encode()
    url = f"{BASE}/logs?x=1"
    headers = sign(
        "POST",
        url,
        body,
        (key_pair[0], "wrong-secret") if tamper == "secret" else key_pair,
        region="eu-west-1" if tamper == "region" else "us-east-1",
        service="s3" if tamper == "service" else "execute-api",
        headers={"Content-Type": "application/json", "X-Team": "a"},
    )
    if tamper == "body":
        body = json.dumps({"message": "forged"}).encode()
    elif tamper == "path":
        url = f"{BASE}/logs/recent?x=1"
    elif tamper == "query":
        url = f"{BASE}/logs?x=2"
    elif tamper == "header":
        headers["X-Team"] = "b"
    method = "GET" if tamper == "path" else "POST"
    response = await send(app, method, url, body, headers)
    assert response.status_code == 401, (tamper, response.text)
    assert response.json()["error"]["code"] == "unauthorized"


@pytest.mark.parametrize("skew", [timedelta(minutes=-6), timedelta(minutes=6)])
async def test_replay_outside_the_window_is_401(
    app: LoglakeApp, key_pair: tuple[str, str], skew: timedelta, monkeypatch: pytest.MonkeyPatch
) -> None:
    import botocore.auth

    signed_at = datetime.now(UTC) + skew
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: signed_at.replace(tzinfo=None))
    body = json.dumps({"message": "old"}).encode()
    headers = sign("POST", f"{BASE}/logs", body, key_pair, headers={"Content-Type": "application/json"})
    response = await send(app, "POST", f"{BASE}/logs", body, headers)
    assert response.status_code == 401


async def test_revoked_or_unknown_key_pair_is_401(app: LoglakeApp, key_pair: tuple[str, str]) -> None:
    body = b'{"message": "x"}'
    unknown = ("LLAK" + "X" * 16, key_pair[1])
    response = await send(app, "POST", f"{BASE}/logs", body, sign("POST", f"{BASE}/logs", body, unknown))
    assert response.status_code == 401 and "access key" in response.json()["error"]["message"]
    app.keystore.revoke("signer")
    response = await send(app, "POST", f"{BASE}/logs", body, sign("POST", f"{BASE}/logs", body, key_pair))
    assert response.status_code == 401 and "access key" in response.json()["error"]["message"]


async def test_scopes_apply_to_sigv4_keys(app: LoglakeApp) -> None:
    new = app.keystore.create("ingest-signer", frozenset({"ingest"}), sigv4=True)
    url = f"{BASE}/logs/recent"
    response = await send(app, "GET", url, b"", sign("GET", url, b"", (new.access_key_id, new.secret)))
    assert response.status_code == 403


def test_sigv4_secret_is_not_stored_in_plain_text(app: LoglakeApp) -> None:
    new = app.keystore.create("at-rest", frozenset({"read"}), sigv4=True)
    assert new.secret.encode() not in (app.settings.data_dir / "keys.db").read_bytes()
    assert (app.settings.data_dir / "master.key").stat().st_mode & 0o077 == 0
