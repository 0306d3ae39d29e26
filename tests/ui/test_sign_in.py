"""Signing in comes back to the page that was asked for, and only to a page of the UI on this server;
a page asked for without a session goes to sign in first (its script would only meet a 401); the
session says whether questions can be asked here and the key's rate limit; the first start says how
to point the CLI at a server off the default address."""

from __future__ import annotations

import io
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from loglake.api.app import LoglakeApp
from loglake.config import Settings
from loglake.server import ensure_first_key
from tests.conftest import key_for

COOKIE = "loglake_session"


def browser(app: LoglakeApp) -> httpx.AsyncClient:
    """A client like a browser's first visit: no key, no cookie."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://loglake.test")


async def test_a_ui_page_without_a_session_goes_to_sign_in_and_carries_the_page(app: LoglakeApp) -> None:
    async with browser(app) as b:
        answer = await b.get("/ui/sql?sql=SELECT%201&x=a%26b")
        assert answer.status_code == 303
        location = urlsplit(answer.headers["location"])
        assert location.path == "/login"
        assert parse_qs(location.query) == {"next": ["/ui/sql?sql=SELECT%201&x=a%26b"]}
        home = await b.get("/ui/")
        assert parse_qs(urlsplit(home.headers["location"]).query) == {"next": ["/ui/"]}
        # with a session cookie the page is served (its script checks the session)
        page = await b.get("/ui/sql", headers={"cookie": f"{COOKIE}=anything"})
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        # so is a navigation from another site, from which browsers withhold the SameSite=Strict cookie
        linked = await b.get("/ui/sql", headers={"sec-fetch-site": "cross-site", "sec-fetch-mode": "navigate"})
        assert linked.status_code == 200 and "text/html" in linked.headers["content-type"]
        typed = await b.get("/ui/sql", headers={"sec-fetch-site": "none", "sec-fetch-mode": "navigate"})
        assert typed.status_code == 303  # typed or bookmarked: the cookie would have come


async def test_signing_in_goes_to_the_page_that_was_asked_for(app: LoglakeApp) -> None:
    secret = key_for(app, "read")
    async with browser(app) as b:
        good = await b.post("/session", data={"key": secret, "next": "/ui/sql?sql=SELECT%201"})
        assert good.status_code == 303 and good.headers["location"] == "/ui/sql?sql=SELECT%201"
        assert good.headers["set-cookie"].startswith(f"{COOKIE}=")
        # a refused key goes back to the sign-in page, which still knows where to go afterwards
        bad = await b.post("/session", data={"key": "llk_not-a-key", "next": "/ui/alerts/a1"})
        query = parse_qs(urlsplit(bad.headers["location"]).query)
        assert query["next"] == ["/ui/alerts/a1"] and query["error"] == ["unauthorized"]


async def test_the_sign_in_page_sends_a_browser_signed_in_already_on(app: LoglakeApp) -> None:
    """It showed the form to someone signed in; a session that is over, or a refusal to show, still gets it."""
    secret = key_for(app, "read")
    async with browser(app) as b:
        signed = await b.post("/session", data={"key": secret})
        cookie = {"cookie": signed.headers["set-cookie"].split(";")[0]}
        b.cookies.clear()  # (each request below says its own)
        onward = await b.get("/login?next=/ui/sql", headers=cookie)
        assert onward.status_code == 303 and onward.headers["location"] == "/ui/sql"
        elsewhere = await b.get("/login?next=https://evil.example/", headers=cookie)
        assert elsewhere.headers["location"] == "/ui/"  # (only a page of the UI)
        for shown in (await b.get("/login?error=session_ended", headers=cookie), await b.get("/login")):
            assert shown.status_code == 200 and "text/html" in shown.headers["content-type"]
        over = await b.get("/login", headers={"cookie": f"{COOKIE}=not-a-session"})
        assert over.status_code == 200


@pytest.mark.parametrize(
    "next_path",
    [
        "https://evil.example/ui/",
        "//evil.example/ui/",
        "/\\evil.example/ui/",
        "/ui/\\\\evil.example",
        "javascript:alert(1)",
        "/login",
        "/uix/",
        "/ui/../admin/keys",
        "/ui/%2e%2e/admin/keys",
        "/ui/x\r\nset-cookie: loglake_session=stolen",
        "/ui/\u00e9",
    ],
)
async def test_signing_in_never_goes_elsewhere(app: LoglakeApp, next_path: str) -> None:
    async with browser(app) as b:
        good = await b.post("/session", data={"key": key_for(app, "read"), "next": next_path})
        assert good.status_code == 303 and good.headers["location"] == "/ui/"
        assert "stolen" not in good.headers["set-cookie"]
        bad = await b.post("/session", data={"key": "llk_not-a-key", "next": next_path})
        assert parse_qs(urlsplit(bad.headers["location"]).query)["next"] == ["/ui/"]


async def test_the_session_says_whether_questions_can_be_asked(app: LoglakeApp, tmp_path: Path) -> None:
    async with browser(app) as b:
        await b.post("/session", json={"key": key_for(app, "read")})
        ask = (await b.get("/session")).json()["ask"]
    assert ask["configured"] is False and "--llm-provider" in ask["how"]
    configured = LoglakeApp.from_settings(
        Settings(data_dir=tmp_path / "other", access_log="off", llm_provider="openai", llm_model="llama3.1")
    )
    try:
        async with browser(configured) as b:
            await b.post("/session", json={"key": key_for(configured, "read")})
            ask = (await b.get("/session")).json()["ask"]
    finally:
        configured.close()
    assert ask == {"configured": True, "provider": "openai", "model": "llama3.1"}


async def test_the_session_gives_the_keys_rate_limit_else_the_servers(app: LoglakeApp) -> None:
    """The UI spaces its requests to fit them."""
    async with browser(app) as b:
        await b.post("/session", json={"key": key_for(app, "read", rate_limit=2)})
        own = (await b.get("/session")).json()
        await b.post("/session", json={"key": key_for(app, "read")})
        servers = (await b.get("/session")).json()
    assert (own["rate_limit"], own["rate_burst"]) == (2, 2)  # a rate without a burst: one second's worth
    assert (servers["rate_limit"], servers["rate_burst"]) == (app.settings.rate_limit, app.settings.rate_burst)


@pytest.mark.parametrize(
    ("host", "port", "told"),
    [
        ("127.0.0.1", 9123, "export LOGLAKE_URL=http://127.0.0.1:9123"),
        ("::1", 8080, "export LOGLAKE_URL=http://[::1]:8080"),
        ("127.0.0.1", 8080, None),  # the commands' default: nothing to set
        # a wildcard bind is reached at loopback (http://0.0.0.0:9123 was printed: no address to send to)
        ("0.0.0.0", 9123, "export LOGLAKE_URL=http://127.0.0.1:9123"),
        ("::", 8080, "export LOGLAKE_URL=http://[::1]:8080"),
    ],
)
def test_the_first_start_says_how_to_point_the_cli_at_the_server(
    tmp_path: Path, host: str, port: int, told: str | None
) -> None:
    out = io.StringIO()
    assert ensure_first_key(Settings(data_dir=tmp_path, host=host, port=port), out) is not None
    banner = out.getvalue()
    assert (told in banner) if told else ("LOGLAKE_URL" not in banner)
    reached = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    assert f"{reached if ':' not in reached else f'[{reached}]'}:{port}/ui/ in a browser" in banner
    assert "0.0.0.0" not in banner and "[::]" not in banner
