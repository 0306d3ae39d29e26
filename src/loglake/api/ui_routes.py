"""The web UI over HTTP: its pages (`/login`, and `/ui/...`, where every client-side route gets the
same document) and its assets under `/ui/assets/<version>/`, gzipped when the browser takes gzip."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING
from urllib.parse import quote

from loglake.amplify.reports import apps_with_rows
from loglake.api import rule_routes
from loglake.api.auth import session_token
from loglake.api.http import ApiError, Request
from loglake.api.routes import Result, refuse_parameters
from loglake.api.session_routes import login_url, return_path
from loglake.ui.assets import Assets, File

if TYPE_CHECKING:
    from loglake.api.app import LoglakeApp

# A versioned asset never changes; a page names the current version, so it is checked on every load.
IMMUTABLE = b"public, max-age=31536000, immutable"
REVALIDATE = b"no-cache"
ICON = "icon.svg"
FAVICON_PATH = "/favicon.ico"


@functools.cache
def assets() -> Assets:
    return Assets()


async def login_page(app: LoglakeApp, request: Request) -> Result:
    """The sign-in page; for a browser signed in already (and no refusal to show), the page it asked for, or the
    UI's home (it showed the form to someone signed in)."""
    token = session_token(request) if app.auth.enabled and not request.query.get("error") else ""
    if token:
        try:
            app.auth.signed_in(request, token)
        except ApiError:  # (over: the form it is)
            pass
        else:
            location = return_path(request.query.get("next", "")).encode()
            return Result(303, b"", ((b"location", location), (b"cache-control", REVALIDATE)))
    return _send(request, assets().pages["login.html"], REVALIDATE)


async def index(app: LoglakeApp, request: Request, *route: str) -> Result:
    """The single page of the UI, for `/ui/` and each of its client-side routes (`/ui/sql`, `/ui/alerts/<id>`).
    A browser with no session is sent to sign in first, and then back to the page it asked for (its
    script would only meet a 401).

    Except when it came from another site (a link in a chat or an alert e-mail, Cognito's redirect
    back): browsers withhold a SameSite=Strict cookie from such a navigation, so its absence says
    nothing. The page is served, and its script's own request for the session carries the cookie."""
    if route[:1] == ("assets",):
        raise ApiError(404, "not_found", f"no asset {request.path}; reload /ui/ for the current version")
    cross_site = request.header(b"sec-fetch-site") == "cross-site"
    if app.auth.enabled and not session_token(request) and not cross_site:
        query = request.scope.get("query_string", b"").decode("latin-1")
        asked = quote(request.path) + (f"?{query}" if query else "")
        return Result(303, b"", ((b"location", login_url(asked).encode()), (b"cache-control", REVALIDATE)))
    return _send(request, assets().pages["index.html"], REVALIDATE)


def ui_home(request: Request) -> bytes:
    """The UI's home page with the request's query string: a shared link's view (`?q=...`) survives the
    redirect to it."""
    query = request.scope.get("query_string", b"")
    return b"/ui/" + (b"?" + query if query else b"")


async def to_index(app: LoglakeApp, request: Request) -> Result:
    return Result(308, b"", ((b"location", ui_home(request)),))


async def asset(app: LoglakeApp, request: Request, version: str, name: str) -> Result:
    found = assets()
    file = found.files.get(name)
    if file is None or version != found.version:
        raise ApiError(404, "not_found", f"no asset {version}/{name}; reload /ui/ for the current version")
    return _send(request, file, IMMUTABLE)


async def favicon(app: LoglakeApp, request: Request) -> Result:
    """The UI's icon where browsers look for one unasked (`/favicon.ico`, e.g. on /docs): without this route
    the request met Elasticsearch's `GET /{index}` and a 401. An SVG under that name is shown by browsers,
    which go by the content type."""
    return _send(request, assets().files[ICON], REVALIDATE)


async def amplify_apps(app: LoglakeApp, request: Request) -> Result:
    """The apps whose access logs are in the lake (collected or imported): the reports' choices."""
    refuse_parameters(request, "GET /amplify/apps")
    if app.lake is None:
        raise ApiError(501, "not_available", "Amplify reports need the lake, which this server's store does not have")
    return Result(200, {"apps": await app.run_read(apps_with_rows, app.store.read)})


def _send(request: Request, file: File, cache_control: bytes) -> Result:
    headers = [
        (b"content-type", file.content_type.encode()),
        (b"cache-control", cache_control),
        (b"vary", b"accept-encoding"),
    ]
    if _takes_gzip(request.header(b"accept-encoding")):
        return Result(200, file.gzipped, (*headers, (b"content-encoding", b"gzip")))
    return Result(200, file.body, tuple(headers))


def _takes_gzip(accept_encoding: str) -> bool:
    """Whether Accept-Encoding allows gzip: named (or `*`) without `q=0`."""
    for part in accept_encoding.split(","):
        coding, _, params = part.partition(";")
        if coding.strip().lower() in ("gzip", "*"):
            name, _, value = params.strip().partition("=")
            try:
                return name.strip().lower() != "q" or float(value) > 0
            except ValueError:
                return False
    return False


# (method, template, handler, scope); route_table.py makes them Routes. The UI's pages are public: they hold no
# data, and their scripts sign in before they ask for any. They are not part of the API's description.
PAGES = [
    ("GET", "/login", login_page, None),
    ("GET", "/ui", to_index, None),
    ("GET", "/ui/", index, None),
    ("GET", "/ui/{page}", index, None),
    ("GET", "/ui/{page}/{item}", index, None),
    ("GET", "/ui/assets/{version}/{name}", asset, None),
    ("GET", FAVICON_PATH, favicon, None),
]
# The reads only the UI needs, described in the OpenAPI document.
READS = [("GET", "/amplify/apps", amplify_apps, "read")]
ROUTES = PAGES + READS + rule_routes.ROUTES
OPENAPI = {
    "/amplify/apps": {
        "get": {
            "summary": "The Amplify apps whose access logs are in the lake (read scope)",
            "responses": {"200": {"description": "apps: their names, sorted"}, "501": {"description": "no lake"}},
        }
    },
    **rule_routes.OPENAPI,
}
