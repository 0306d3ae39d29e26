"""SigV4 through the whole app: requests signed by botocore's own signer, as awscurl and SDKs send them."""

from __future__ import annotations

import json
import re
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
    assert "loglake keys create --sigv4" in response.json()["error"]["message"]  # what to do next
    assert "not known" in response.json()["error"]["message"]
    app.keystore.revoke("signer")
    response = await send(app, "POST", f"{BASE}/logs", body, sign("POST", f"{BASE}/logs", body, key_pair))
    assert response.status_code == 401
    assert response.json()["error"]["message"].startswith("revoked access key id: this key pair was revoked")


async def test_scopes_apply_to_sigv4_keys(app: LoglakeApp) -> None:
    new = app.keystore.create("ingest-signer", frozenset({"ingest"}), sigv4=True)
    url = f"{BASE}/logs/recent"
    response = await send(app, "GET", url, b"", sign("GET", url, b"", (new.access_key_id, new.secret)))
    assert response.status_code == 403


def test_sigv4_secret_is_not_stored_in_plain_text(app: LoglakeApp) -> None:
    new = app.keystore.create("at-rest", frozenset({"read"}), sigv4=True)
    assert new.secret.encode() not in (app.settings.data_dir / "keys.db").read_bytes()
    assert (app.settings.data_dir / "master.key").stat().st_mode & 0o077 == 0


# -- what is checked before the body is read -------------------------------------------------------


async def post_raw(app: LoglakeApp, headers: dict[str, str], body: bytes | None) -> tuple[int, list[str]]:
    """POST /logs through the raw ASGI interface; the events in order. With body None the client never
    sends the body it announced (it gives up when answered), so only an answer before reading ends the call."""
    events: list[str] = []
    status = 0

    async def receive() -> dict:
        events.append("receive")
        if body is None:
            return {"type": "http.disconnect"}
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict) -> None:
        nonlocal status
        status = message.get("status", status)
        events.append(message["type"])

    raw_headers = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    if body is None:
        raw_headers.append((b"content-length", str(5 * 1024 * 1024).encode()))
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/logs",
        "raw_path": b"/logs",
        "query_string": b"",
        "headers": [(b"host", b"loglake.test"), *raw_headers],
    }
    await app(scope, receive, send)
    return status, events


@pytest.mark.parametrize("wrong", ["unknown key", "stale date", "other region", "malformed", "unsigned host"])
async def test_bad_signature_parts_are_refused_before_the_body_is_read(
    app: LoglakeApp, key_pair: tuple[str, str], wrong: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import botocore.auth

    if wrong == "stale date":
        signed_at = datetime.now(UTC) - timedelta(minutes=10)
        monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: signed_at.replace(tzinfo=None))
    pair = ("LLAK" + "Z" * 16, key_pair[1]) if wrong == "unknown key" else key_pair
    region = "eu-west-1" if wrong == "other region" else "us-east-1"
    headers = sign(
        "POST", f"{BASE}/logs", b'{"message": "x"}', pair, region, headers={"Content-Type": "application/json"}
    )
    headers.pop("host", None)
    if wrong == "malformed":
        headers["Authorization"] = "AWS4-HMAC-SHA256 Credential=only"
    if wrong == "unsigned host":
        headers["Authorization"] = re.sub(
            r"SignedHeaders=[^,]*", "SignedHeaders=content-type;x-amz-date", headers["Authorization"]
        )
    status, events = await post_raw(app, headers, body=None)
    assert status == 401
    assert events[:2] == ["http.response.start", "http.response.body"], events


async def test_a_good_signature_still_reads_and_checks_the_body(app: LoglakeApp, key_pair: tuple[str, str]) -> None:
    body = b'{"message": "signed, read after the header checks"}'
    headers = sign("POST", f"{BASE}/logs", body, key_pair, headers={"Content-Type": "application/json"})
    headers.pop("host", None)
    status, events = await post_raw(app, headers | {"Content-Length": str(len(body))}, body)
    assert status == 201 and events[0] == "receive"
    forged = b'{"message": "forged after signing"}'
    status, _ = await post_raw(app, headers | {"Content-Length": str(len(forged))}, forged)
    assert status == 401
