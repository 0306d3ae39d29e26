"""The web UI's pages and assets through the UI function's handler, as API Gateway (REST, proxy
integration, binary media type */*) passes them: bytes base64-encoded when compressed or binary, the
cache and security headers of the local server."""

from __future__ import annotations

import base64
import gzip
import re
from pathlib import Path

import pytest

from loglake.api.auth import SESSION_COOKIE
from loglake.aws import handlers
from tests.aws.test_api_handler import CONTEXT, rest_event
from tests.aws.test_ui_sign_in import stand_in, ui_function  # noqa: F401 (fixtures)

STATIC = Path(__file__).resolve().parents[2] / "src" / "loglake" / "ui" / "static"
TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}
GZIP = {"Accept-Encoding": "gzip, deflate, br"}
pytestmark = pytest.mark.usefixtures("ui_function")  # the stack's UI function's environment


# A page is served to a browser holding a session cookie (whether the session is good is for the API calls
# its script makes); one without is sent to sign in (test_a_page_without_a_session_is_sent_to_sign_in).
SIGNED_IN = {"Cookie": f"{SESSION_COOKIE}=some-session"}


def get(path: str, headers: dict | None = None, signed_in: bool = True) -> dict:
    browser = {"Accept": "text/html", **(SIGNED_IN if signed_in else {}), **(headers or {})}
    return handlers.api(rest_event("GET", path, headers=browser), CONTEXT)


def body_bytes(response: dict) -> bytes:
    """The bytes API Gateway sends the browser (it decodes base64 bodies: */* is a binary media type)."""
    body = response["body"]
    return base64.b64decode(body) if response["isBase64Encoded"] else body.encode()


def header(response: dict, name: str) -> str:
    (value,) = response["multiValueHeaders"][name]
    return value


def assets_prefix() -> str:
    page = body_bytes(get("/ui/")).decode()
    return re.search(r'src="(/ui/assets/[0-9a-f]+)/app\.js"', page).group(1)


def test_the_pages_are_gzipped_base64_and_revalidated() -> None:
    for path in ("/ui/", "/ui/explore", "/ui/alerts/0193a0b0-0000-7000-8000-000000000000"):
        page = get(path, GZIP)
        assert page["statusCode"] == 200 and page["isBase64Encoded"]
        assert header(page, "content-encoding") == "gzip" and header(page, "cache-control") == "no-cache"
        assert header(page, "content-type") == "text/html; charset=utf-8"
        html = gzip.decompress(body_bytes(page)).decode()
        assert '<main id="main"' in html and "%ASSETS%" not in html
    plain = get("/ui/")
    assert not plain["isBase64Encoded"] and "content-encoding" not in plain["multiValueHeaders"]
    assert plain["body"].startswith("<!doctype html>")


def test_a_page_without_a_session_is_sent_to_sign_in_and_back() -> None:
    page = get("/ui/sql", signed_in=False)
    assert page["statusCode"] == 303
    assert header(page, "location") == "/login?next=%2Fui%2Fsql"


@pytest.mark.parametrize("name", sorted(p.name for p in STATIC.iterdir() if p.suffix in TYPES))
def test_each_asset_arrives_byte_for_byte_and_is_cached_for_good(name: str) -> None:
    prefix = assets_prefix()
    expected = (STATIC / name).read_bytes()
    zipped = get(f"{prefix}/{name}", GZIP)
    assert zipped["statusCode"] == 200 and zipped["isBase64Encoded"] and header(zipped, "content-encoding") == "gzip"
    assert gzip.decompress(body_bytes(zipped)) == expected
    assert header(zipped, "content-type") == TYPES[Path(name).suffix]
    cache = header(zipped, "cache-control")
    assert "immutable" in cache and "max-age=31536000" in cache and header(zipped, "vary") == "accept-encoding"

    plain = get(f"{prefix}/{name}", {"Accept-Encoding": "gzip;q=0"})
    assert body_bytes(plain) == expected and "content-encoding" not in plain["multiValueHeaders"]
    assert plain["isBase64Encoded"] == (Path(name).suffix == ".svg")  # text travels as text


def test_every_answer_carries_the_security_headers() -> None:
    prefix = assets_prefix()
    for path in ("/ui/", "/login", f"{prefix}/app.js", "/ui/assets/0000000000000000/app.js", "/session"):
        response = get(path, GZIP)
        csp = header(response, "content-security-policy")
        assert "default-src 'self'" in csp and "script-src 'self';" in csp and "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp and "http" not in csp
        assert header(response, "x-content-type-options") == "nosniff"
        assert header(response, "referrer-policy") == "same-origin"


def test_an_old_release_asset_is_a_404_that_says_to_reload() -> None:
    gone = get("/ui/assets/0000000000000000/app.js", GZIP)
    assert gone["statusCode"] == 404 and not gone["isBase64Encoded"]
    assert "reload /ui/" in gone["body"]


def test_a_browser_at_the_root_is_sent_to_the_ui() -> None:
    root = get("/", {"Accept": "text/html,application/xhtml+xml"})
    assert root["statusCode"] == 302 and header(root, "location") == "/ui/"
