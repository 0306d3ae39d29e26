"""Web UI sessions: an API key exchanged for an HttpOnly cookie and a CSRF token, honoured by every
route with the key's scopes and rate limits, ended by sign-out, expiry, revocation; never by restart."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from loglake.api.app import LoglakeApp
from loglake.ask.providers import NOT_CONFIGURED_ON_SERVER
from loglake.config import ConfigError, Settings
from loglake.config_load import load_settings
from loglake.sessions import MAX_SESSIONS_PER_KEY
from tests.conftest import Clock, asgi_client, key_for

COOKIE = "loglake_session"


@pytest.fixture
def clock() -> Clock:
    return Clock(time.time())


@pytest.fixture
def app(settings: Settings, clock: Clock) -> Iterator[LoglakeApp]:
    application = LoglakeApp.from_settings(settings, clock=clock)
    yield application
    application.close()


def anonymous(app: LoglakeApp, base_url: str = "http://loglake.test") -> httpx.AsyncClient:
    """A browser-like client: no key, keeps the cookies it is given."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url)


async def sign_in(browser: httpx.AsyncClient, secret: str) -> dict:
    response = await browser.post("/session", json={"key": secret})
    assert response.status_code == 200, response.text
    return response.json()


async def test_signing_in_sets_a_strict_httponly_cookie_and_answers_the_session(app: LoglakeApp, clock: Clock) -> None:
    secret = key_for(app, "read,ingest", "ui-user")
    async with anonymous(app) as browser:
        response = await browser.post("/session", json={"key": secret})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["key_name"] == "ui-user" and body["scopes"] == ["ingest", "read"]
    assert len(body["csrf_token"]) >= 32
    expires = datetime.fromisoformat(body["expires_at"].replace("Z", "+00:00")).timestamp()
    assert abs(expires - (clock.now + 12 * 3600)) < 0.001
    cookie = response.headers["set-cookie"]
    attributes = [part.strip() for part in cookie.split(";")]
    assert attributes[0].startswith(f"{COOKIE}=") and len(attributes[0]) > len(COOKIE) + 32
    assert {"HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"} <= set(attributes)
    assert "Secure" not in attributes  # plain HTTP on a laptop: a Secure cookie would never come back
    assert secret not in cookie


async def test_a_sign_in_over_tls_sets_a_secure_cookie(app: LoglakeApp) -> None:
    async with anonymous(app, "https://loglake.test") as browser:
        response = await browser.post("/session", json={"key": key_for(app, "read")})
        assert "Secure" in [p.strip() for p in response.headers["set-cookie"].split(";")]
        assert (await browser.get("/logs/recent")).status_code == 200


async def test_the_cookie_stands_for_the_key_with_its_scopes(app: LoglakeApp) -> None:
    async with anonymous(app) as browser:
        await sign_in(browser, key_for(app, "read", "reader"))
        assert (await browser.get("/logs/recent")).status_code == 200
        refused = await browser.get("/admin/keys")
        assert refused.status_code == 403 and "'reader' lacks the 'admin' scope" in refused.json()["error"]["message"]


async def test_a_change_by_cookie_needs_the_csrf_token(app: LoglakeApp) -> None:
    record = {"service": "web", "message": "hello"}
    async with anonymous(app) as browser:
        session = await sign_in(browser, key_for(app, "ingest,read"))
        missing = await browser.post("/logs", json=record)
        assert missing.status_code == 403
        error = missing.json()["error"]
        assert error["code"] == "csrf_token_invalid" and "X-CSRF-Token" in error["message"]
        assert "sent none" in error["message"]
        wrong = await browser.post("/logs", json=record, headers={"x-csrf-token": session["csrf_token"][:-1] + "x"})
        assert wrong.status_code == 403 and "a different one" in wrong.json()["error"]["message"]
        assert (await browser.get("/logs/recent")).json()["count"] == 0  # nothing was stored
        right = await browser.post("/logs", json=record, headers={"x-csrf-token": session["csrf_token"]})
        assert right.status_code == 201, right.text
        assert (await browser.get("/logs/recent")).json()["count"] == 1


async def test_bearer_requests_need_no_csrf_token_even_with_a_cookie_beside(app: LoglakeApp) -> None:
    secret = key_for(app, "ingest")
    async with anonymous(app) as browser:
        await sign_in(browser, key_for(app, "read"))
        sent = await browser.post("/logs", json={"message": "by key"}, headers={"authorization": f"Bearer {secret}"})
        assert sent.status_code == 201, sent.text


async def test_the_sign_in_form_redirects_to_the_ui_or_back_to_login_with_the_reason(app: LoglakeApp) -> None:
    async with anonymous(app) as browser:
        bad = await browser.post("/session", data={"key": "llk_not-a-key"})
        assert bad.status_code == 303 and "set-cookie" not in bad.headers
        assert bad.headers["location"] == "/login?error=unauthorized"  # a reason code, shown as a fixed message
        empty = await browser.post("/session", data={"key": ""})
        assert empty.status_code == 303 and empty.headers["location"] == "/login?error=invalid_request"
        good = await browser.post("/session", data={"key": key_for(app, "read")})
        assert good.status_code == 303 and good.headers["location"] == "/ui/"
        assert good.headers["set-cookie"].startswith(f"{COOKIE}=")
        assert (await browser.get("/logs/recent")).status_code == 200


async def test_get_session_answers_the_session_until_sign_out_clears_it(app: LoglakeApp) -> None:
    async with anonymous(app) as browser:
        assert (await browser.get("/session")).status_code == 401
        signed = await sign_in(browser, key_for(app, "read", "who"))
        assert (await browser.get("/session")).json() == signed
        refused = await browser.delete("/session")  # signing out changes something too
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "csrf_token_invalid"
        out = await browser.delete("/session", headers={"x-csrf-token": signed["csrf_token"]})
        assert out.status_code == 204
        assert out.headers["set-cookie"].startswith(f"{COOKIE}=;") and "Max-Age=0" in out.headers["set-cookie"]
        assert (await browser.get("/session")).status_code == 401
        assert (await browser.delete("/session")).status_code == 204  # signed out already: still signed out
    async with anonymous(app) as replay:  # the old cookie, kept by someone, no longer works
        token = out.request.headers["cookie"].split("=", 1)[1]
        gone = await replay.get("/logs/recent", headers={"cookie": f"{COOKIE}={token}"})
        assert gone.status_code == 401 and "sign in again at /login" in gone.json()["error"]["message"]


async def test_revoking_the_key_ends_its_sessions_at_once(app: LoglakeApp) -> None:
    async with anonymous(app) as browser:
        await sign_in(browser, key_for(app, "read", "leaver"))
        assert (await browser.get("/logs/recent")).status_code == 200
        app.keystore.revoke("leaver")
        ended = await browser.get("/logs/recent")
        assert ended.status_code == 401 and "was revoked" in ended.json()["error"]["message"]
        assert (await browser.get("/session")).status_code == 401


async def test_a_new_key_of_a_revoked_name_does_not_revive_its_sessions(app: LoglakeApp) -> None:
    async with anonymous(app) as browser:
        await sign_in(browser, key_for(app, "read", "reused"))
        app.keystore.revoke("reused")
        key_for(app, "read", "reused")
        assert (await browser.get("/logs/recent")).status_code == 401


async def test_a_session_expires_after_the_session_hours_setting(data_dir: Path, clock: Clock) -> None:
    settings = Settings(data_dir=data_dir, access_log="off", session_hours=2)
    application = LoglakeApp.from_settings(settings, clock=clock)
    try:
        async with anonymous(application) as browser:
            response = await browser.post("/session", json={"key": key_for(application, "read")})
            assert "Max-Age=7200" in response.headers["set-cookie"]
            clock.now += 2 * 3600 - 1
            assert (await browser.get("/logs/recent")).status_code == 200
            clock.now += 1
            expired = await browser.get("/logs/recent")
            assert expired.status_code == 401 and "has expired" in expired.json()["error"]["message"]
    finally:
        application.close()


async def test_sessions_survive_a_restart_stored_hashed_in_a_private_file(settings: Settings, clock: Clock) -> None:
    first = LoglakeApp.from_settings(settings, clock=clock)
    try:
        async with anonymous(first) as browser:
            signed = await sign_in(browser, key_for(first, "read"))
            token = browser.cookies[COOKIE]
    finally:
        first.close()
    database = settings.data_dir / "sessions.db"
    assert stat.S_IMODE(os.stat(database).st_mode) == 0o600
    stored = b"".join(p.read_bytes() for p in settings.data_dir.glob("sessions.db*"))
    assert token.encode() not in stored
    second = LoglakeApp.from_settings(settings, clock=clock)
    try:
        async with anonymous(second) as browser:
            again = await browser.get("/session", headers={"cookie": f"{COOKIE}={token}"})
            assert again.status_code == 200 and again.json() == signed
    finally:
        second.close()


async def test_cookie_requests_count_against_the_keys_rate_limit(app: LoglakeApp) -> None:
    async with anonymous(app) as browser:
        await sign_in(browser, key_for(app, "read", "slow", rate_limit=0.001, rate_burst=3))
        assert (await browser.get("/logs/recent")).status_code == 200
        assert (await browser.get("/logs/recent")).status_code == 200
        limited = await browser.get("/logs/recent")  # the sign-in took the first of three
        assert limited.status_code == 429 and "'slow'" in limited.json()["error"]["message"]


@pytest.mark.parametrize(
    ("headers", "body", "status", "code"),
    [
        ({"content-type": "text/plain"}, b"llk_x", 415, "unsupported_media_type"),
        ({"content-type": "application/json"}, b"{", 400, "invalid_json"),
        ({"content-type": "application/json"}, b'["llk_x"]', 400, "invalid_request"),
        ({"content-type": "application/json"}, b'{"key": 5}', 400, "invalid_request"),
        ({"content-type": "application/json"}, b'{"key": "llk_nope"}', 401, "unauthorized"),
        ({"content-type": "application/json"}, b'{"key": "' + b"x" * 5000 + b'"}', 413, "payload_too_large"),
    ],
)
async def test_a_bad_sign_in_is_a_clear_json_error(
    app: LoglakeApp, headers: dict, body: bytes, status: int, code: str
) -> None:
    async with anonymous(app) as browser:
        response = await browser.post("/session", content=body, headers=headers)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code and "set-cookie" not in response.headers


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b'{"key": 5}', "key: must be a string, not an integer"),
        (b'{"key": "k", "colour": 1}', "unknown field `colour`"),
    ],
)
async def test_a_sign_in_body_of_the_wrong_shape_is_named(app: LoglakeApp, body: bytes, words: str) -> None:
    """As every JSON body is: a field of another type, or one it does not take (it was ignored)."""
    async with anonymous(app) as browser:
        response = await browser.post("/session", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400 and words in response.json()["error"]["message"]


async def test_a_key_keeps_at_most_its_newest_sessions(app: LoglakeApp) -> None:
    secret = key_for(app, "read")
    tokens = []
    async with anonymous(app) as browser:
        for _ in range(MAX_SESSIONS_PER_KEY + 1):
            await sign_in(browser, secret)
            tokens.append(browser.cookies[COOKIE])
        answers = [(await browser.get("/session", headers={"cookie": f"{COOKIE}={t}"})).status_code for t in tokens]
    assert answers == [401] + [200] * MAX_SESSIONS_PER_KEY


async def test_without_auth_everyone_has_the_anonymous_session(data_dir: Path) -> None:
    application = LoglakeApp.from_settings(Settings(data_dir=data_dir, access_log="off", auth=False))
    try:
        async with anonymous(application) as browser:
            expected = {"key_name": "anonymous", "scopes": ["admin"], "csrf_token": "", "expires_at": None}
            expected["ask"] = {"configured": False, "how": NOT_CONFIGURED_ON_SERVER}
            assert (await browser.get("/session")).json() == expected
            assert (await browser.post("/session", json={"key": "anything"})).json() == expected
            form = await browser.post("/session", data={"key": "anything"})
            assert form.status_code == 303 and form.headers["location"] == "/ui/"
    finally:
        application.close()


def test_session_hours_is_a_setting_with_bounds(tmp_path: Path) -> None:
    config = tmp_path / "loglake.toml"
    config.write_text("session_hours = 1.5\n")
    assert load_settings(config_file=config, environ={}).session_hours == 1.5
    assert load_settings(environ={"LOGLAKE_SESSION_HOURS": "3"}).session_hours == 3
    assert load_settings({"session_hours": 4}, environ={"LOGLAKE_SESSION_HOURS": "3"}).session_hours == 4
    for bad in ("0", "-1", "100000"):
        with pytest.raises(ConfigError, match="LOGLAKE_SESSION_HOURS must be more than 0 and at most 8784"):
            load_settings(environ={"LOGLAKE_SESSION_HOURS": bad})
    with pytest.raises(ConfigError, match="LOGLAKE_SESSION_HOURS must be a finite number, got 'nan'"):
        load_settings(environ={"LOGLAKE_SESSION_HOURS": "nan"})


@pytest.mark.parametrize(
    ("method", "path", "headers"),
    [
        ("GET", "/healthz", {}),
        ("GET", "/logs/recent", {}),  # 401
        ("GET", "/no/such/route", {}),  # 404
        ("POST", "/session", {"content-type": "text/plain"}),  # 415
        ("OPTIONS", "/logs", {"origin": "https://x.example", "access-control-request-method": "POST"}),  # 403
    ],
)
async def test_every_answer_carries_the_security_headers(
    app: LoglakeApp, method: str, path: str, headers: dict
) -> None:
    async with asgi_client(app) as c:
        response = await c.request(method, path, headers=headers)
    assert response.headers["content-security-policy"] == (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "same-origin"
    assert response.headers["x-frame-options"] == "DENY"


async def test_what_a_key_or_session_reads_is_never_kept_by_a_browsers_cache(app: LoglakeApp) -> None:
    """A browser keeps an answer that says nothing of caching on its disk: the records, keys and CSRF token a
    signed-in page read stayed there after signing out, for whoever used the machine next."""
    secret = key_for(app, "admin", "cached")
    reads = ("/session", "/logs/recent", "/admin/keys", "/alerts", "/rules", "/metrics", "/tables")
    async with anonymous(app) as browser, asgi_client(app, secret) as bearer:
        await sign_in(browser, secret)
        for client, path in [*((browser, path) for path in reads), *((bearer, path) for path in reads[1:])]:
            response = await client.get(path)
            assert response.status_code == 200, (path, response.text)
            assert response.headers.get_list("cache-control") == ["no-store"], path
        # (the UI's pages and assets hold no data: their own caching stands)
        assert (await browser.get("/login")).headers.get_list("cache-control") == ["no-cache"]


@pytest.mark.parametrize(
    "headers",
    [
        {"sec-fetch-site": "cross-site"},
        {"sec-fetch-site": "same-site"},
        {"origin": "https://evil.example"},
        {"origin": "http://loglake.test:8080"},
        # A page whose Referrer-Policy is no-referrer, or a sandboxed frame, in a browser without Sec-Fetch-Site
        # (Safari before 16.4): the server's own pages send their origin.
        {"origin": "null"},
        {"origin": "null", "sec-fetch-site": "cross-site"},
    ],
)
async def test_a_sign_in_posted_by_another_site_is_refused(app: LoglakeApp, headers: dict) -> None:
    """Another site's page could sign the browser in with its own key (login CSRF)."""
    async with anonymous(app) as browser:
        response = await browser.post("/session", data={"key": key_for(app, "read")}, headers=headers)
        assert response.status_code == 303 and "set-cookie" not in response.headers
        assert response.headers["location"] == "/login?error=cross_site_sign_in"
        refused = await browser.post("/session", json={"key": key_for(app, "read")}, headers=headers)
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "cross_site_sign_in"


@pytest.mark.parametrize(
    "headers",
    [
        {"sec-fetch-site": "same-origin", "origin": "http://loglake.test"},
        {"origin": "http://loglake.test"},  # the sign-in page in a browser without Sec-Fetch-Site
        {"sec-fetch-site": "none"},  # typed into the address bar, or a tool
    ],
)
async def test_a_sign_in_from_the_servers_own_page_is_taken(app: LoglakeApp, headers: dict) -> None:
    async with anonymous(app) as browser:
        response = await browser.post("/session", data={"key": key_for(app, "read")}, headers=headers)
        assert response.status_code == 303 and response.headers["location"] == "/ui/"


async def test_a_made_up_cookie_is_refused_from_memory_without_making_the_sessions_file(app: LoglakeApp) -> None:
    """Anyone can send a cookie: on a server nobody signed in to, none reaches for the disk."""
    async with anonymous(app) as browser:
        for cookie in ("made-up", "", "x" * 4000):
            refused = await browser.get("/logs/recent", headers={"cookie": f"other=1; {COOKIE}={cookie}"})
            assert refused.status_code == 401
    assert not (app.settings.data_dir / "sessions.db").exists()
