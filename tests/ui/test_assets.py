"""The UI's files as served: one document for every client-side route, versioned assets cached for
good, gzip when asked for, a small total, and every file shipped as package data."""

from __future__ import annotations

import gzip
import re

import httpx

from loglake.api import ui_routes
from loglake.ui.assets import STATIC, Assets

BUDGET_GZIPPED = 300 * 1024  # the ceiling for all assets together


def test_the_assets_stay_under_the_size_budget_and_ship_in_the_package() -> None:
    assets = Assets()
    assert assets.files and assets.pages
    assert assets.gzipped_size() < BUDGET_GZIPPED
    # every file of the folder is served (tests/test_package_files.py checks they are package data)
    assert {p.name for p in STATIC.iterdir()} == set(assets.files) | set(assets.pages)


def test_the_version_changes_with_any_file(tmp_path) -> None:
    (tmp_path / "index.html").write_text('<script src="%ASSETS%/app.js"></script>')
    (tmp_path / "login.html").write_text("")
    (tmp_path / "app.js").write_text("one")
    first = Assets(tmp_path)
    assert first.pages["index.html"].body == f'<script src="/ui/assets/{first.version}/app.js"></script>'.encode()
    (tmp_path / "app.js").write_text("two")
    assert Assets(tmp_path).version != first.version


async def test_every_ui_route_gets_the_document_and_assets_are_immutable(client: httpx.AsyncClient) -> None:
    version = ui_routes.assets().version
    signed_in = {"accept-encoding": "identity", "cookie": "loglake_session=a-session"}  # else: to /login first
    for path in ("/ui/", "/ui/explore", "/ui/alerts/some-id", "/ui/no-such-page"):
        answer = await client.get(path, headers=signed_in)
        assert answer.status_code == 200, path
        assert answer.headers["content-type"] == "text/html; charset=utf-8"
        assert answer.headers["cache-control"] == "no-cache"
        assert f'src="/ui/assets/{version}/app.js"' in answer.text
    login = await client.get("/login")
    assert 'action="/session"' in login.text and f"/ui/assets/{version}/login.js" in login.text
    redirect = await client.get("/ui")
    assert (redirect.status_code, redirect.headers["location"]) == (308, "/ui/")
    # a shared link keeps its view through the redirects to the home page
    redirect = await client.get("/ui?q=timeout%20service%3Aapi&range=24h")
    assert (redirect.status_code, redirect.headers["location"]) == (308, "/ui/?q=timeout%20service%3Aapi&range=24h")
    from_root = await client.get("/?q=timeout", headers={"accept": "text/html"})
    assert (from_root.status_code, from_root.headers["location"]) == (302, "/ui/?q=timeout")

    script = await client.get(f"/ui/assets/{version}/app.js", headers={"accept-encoding": "identity"})
    assert script.status_code == 200
    assert script.headers["content-type"] == "text/javascript; charset=utf-8"
    assert "immutable" in script.headers["cache-control"]
    assert "content-encoding" not in script.headers
    assert script.content == (STATIC / "app.js").read_bytes()


async def test_assets_are_gzipped_for_browsers_that_take_gzip(client: httpx.AsyncClient) -> None:
    version = ui_routes.assets().version
    for accept, gzipped in [
        ("gzip, deflate, br", True),
        ("br;q=1, gzip;q=0", False),
        ("gzip;q=0.000", False),
        ("gzip; q=0.5", True),
        ("*", True),
        ("identity", False),
    ]:
        raw = await client.send(
            client.build_request("GET", f"/ui/assets/{version}/app.css", headers={"accept-encoding": accept}),
            stream=True,
        )
        body = b"".join([part async for part in raw.aiter_raw()])  # the bytes as sent, not decoded by httpx
        await raw.aclose()
        assert (raw.headers.get("content-encoding") == "gzip") is gzipped, accept
        assert raw.headers["vary"] == "accept-encoding"
        assert (gzip.decompress(body) if gzipped else body) == (STATIC / "app.css").read_bytes()


async def test_an_unknown_or_stale_asset_is_a_404_naming_what_to_do(client: httpx.AsyncClient) -> None:
    version = ui_routes.assets().version
    for path in (f"/ui/assets/{version}/nope.js", "/ui/assets/0123456789abcdef/app.js", "/ui/assets/app.js"):
        answer = await client.get(path)
        assert answer.status_code == 404, path
        assert re.search("reload /ui/", answer.json()["error"]["message"])
