"""What a refused key is told, in every protocol's form of the header: a header that holds no key in a
form we take is told how to send one; a well-formed header with a key we do not know is told that the
key is unknown and how to get one (not how to send it, which it did)."""

from __future__ import annotations

import base64

import pytest

from loglake.api.app import LoglakeApp
from loglake.api.splunk_routes import ACK_PATHS
from tests.api.test_protocol_statuses import ENDPOINTS, NOW_MS, Endpoint
from tests.conftest import asgi_client, key_for

NOT_A_KEY = "llk_not-a-key"
BODIES = [e for e in ENDPOINTS if e.content_type is not None and e.method == "POST" and e.path not in ACK_PATHS]


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def every_form(key: str) -> list[str]:
    """The Authorization headers of the protocols' clients, holding key."""
    return [
        f"Bearer {key}",
        f"Splunk {key}",
        f"ApiKey {key}",
        f"ApiKey {b64('some-id:' + key)}",
        f"Basic {b64('promtail:' + key)}",
    ]


MALFORMED = {
    "Splunk": "Splunk authorization holds no key",
    "Bearer ": "Bearer authorization holds no key",
    "Basic not-base64!": "not base64 of user:key",
    f"Basic {b64('only-a-user')}": "not base64 of user:key",
    f"Basic {b64('elastic:')}": "the Basic credentials hold no password (any user name, the API key as the password)",
    # (curl -u "$KEY:": refused with what to do, not taken: proxies write user names to their access logs)
    f"Basic {b64(NOT_A_KEY + ':')}": "hold the API key as the user name: proxies write user names to their access logs",
    "Token abc": "unsupported authorization scheme 'token'",
}


pytestmark = pytest.mark.clock_at(NOW_MS)  # the `app` fixture's: the bodies' times are placed from it


async def _answer(app: LoglakeApp, endpoint: Endpoint, authorization: str) -> tuple[int, str]:
    headers = {"authorization": authorization, "content-type": endpoint.content_type or ""}
    async with asgi_client(app) as client:
        answer = await client.request(endpoint.method, endpoint.path, content=endpoint.good, headers=headers)
    return answer.status_code, answer.text


@pytest.mark.parametrize("endpoint", BODIES, ids=str)
async def test_an_unknown_key_is_told_it_is_unknown_not_how_to_send_it(app: LoglakeApp, endpoint: Endpoint) -> None:
    for authorization in every_form(NOT_A_KEY):
        status, text = await _answer(app, endpoint, authorization)
        assert status in (401, 403), (authorization, text)  # Splunk answers an unknown token 403
        assert "the key is not known" in text and "loglake keys create" in text, (authorization, text)
        assert "send 'Authorization" not in text, (authorization, text)


@pytest.mark.parametrize("endpoint", BODIES, ids=str)
async def test_a_revoked_key_is_told_it_was_revoked(app: LoglakeApp, endpoint: Endpoint) -> None:
    key = key_for(app, "ingest", "soon-revoked")
    app.keystore.revoke("soon-revoked")
    for authorization in every_form(key):
        status, text = await _answer(app, endpoint, authorization)
        assert status in (401, 403), (authorization, text)
        assert "this key was revoked" in text and "not known" not in text, (authorization, text)


@pytest.mark.parametrize("endpoint", BODIES, ids=str)
async def test_a_header_without_a_key_in_a_form_we_take_is_told_how_to_send_one(
    app: LoglakeApp, endpoint: Endpoint
) -> None:
    splunk = endpoint.path.startswith("/services/collector")
    for authorization, why in MALFORMED.items():
        status, text = await _answer(app, endpoint, authorization)
        assert status == 401, (authorization, text)
        assert "not known" not in text, (authorization, text)
        # Splunk HEC answers its own hint; the others say what is wrong with the header
        assert ("Authorization: Splunk <api key>" if splunk else why) in text, (authorization, text)


async def test_the_right_key_in_each_form_is_taken(app: LoglakeApp) -> None:
    key = key_for(app, "ingest")
    for endpoint in BODIES:
        for authorization in every_form(key):
            status, text = await _answer(app, endpoint, authorization)
            assert status < 300, (endpoint, authorization, text)
