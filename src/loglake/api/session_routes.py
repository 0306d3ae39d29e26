"""POST, GET and DELETE /session: the web UI's sign-in, an API key exchanged for a session cookie.

The sign-in page's form posts here (application/x-www-form-urlencoded) and is answered with a redirect:
to the UI page that was asked for (the form's `next`, a path under /ui/) when the key is good, back to
/login with the reason when it is not. A script (or the UI's
own code) posts JSON and gets JSON. Either way the answer sets the cookie and carries the CSRF token
the page sends back as X-CSRF-Token with every request that changes something.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

import msgspec

from loglake.api.ask_routes import ask_status
from loglake.api.auth import SESSION_COOKIE, from_another_site, session_token
from loglake.api.http import ApiError, Request, json_object, json_struct
from loglake.api.routes import JSON_TYPES, Result, refuse_parameters
from loglake.api.security_headers import NO_STORE
from loglake.keys import hash_secret
from loglake.sessions import Session
from loglake.times import format_datetime

if TYPE_CHECKING:
    from loglake.api.app import LoglakeApp
    from loglake.keys import ApiKey

SESSION_BODY_BYTES = 4096  # a key and a little form or JSON around it: the route is public
FORM_TYPE = "application/x-www-form-urlencoded"
UI_HOME = "/ui/"
LOGIN_PAGE = "/login"
_EXAMPLE = '{"key": "llk_..."}'


def login_url(next_path: str = "", error: str = "") -> str:
    """The sign-in page, saying why (error: a code of ui/sign_in.py) and where to go once signed in (next)."""
    fields = {"error": error, "next": next_path}
    query = urlencode({name: value for name, value in fields.items() if value}, quote_via=quote)
    return f"{LOGIN_PAGE}?{query}" if query else LOGIN_PAGE


def return_path(value: str) -> str:
    """Where a sign-in returns to: the UI page that was asked for, a path under /ui/ of this server;
    anything else is the UI's home. Another origin (`https://...`, `//host`, a backslash browsers read
    as a slash) would make the sign-in an open redirect, control characters would split the Location
    header, and dot segments would leave /ui/."""
    if not (value.startswith(UI_HOME) and value.isascii() and value.isprintable()) or any(c in value for c in " \\"):
        return UI_HOME
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or {".", ".."} & set(unquote(parts.path).split("/")):
        return UI_HOME
    return value


async def create_session(app: LoglakeApp, request: Request) -> Result:
    form = request.header(b"content-type").split(";", 1)[0].strip().lower() == FORM_TYPE
    try:
        return await _sign_in(app, request, form)
    except ApiError as e:
        if not form:
            raise
        next_path = _form_fields(request).get("next", "")
        location = login_url(return_path(next_path) if next_path else "", e.code)
        return Result(303, b"", ((b"location", location.encode()),))


async def _sign_in(app: LoglakeApp, request: Request, form: bool) -> Result:
    refuse_parameters(request, "POST /session")  # a sign-in form's error goes back to the sign-in page
    _refuse_other_sites(request)
    secret = _submitted_key(request, form)
    home = (b"location", return_path(_form_fields(request).get("next", "")).encode()) if form else None
    if not app.auth.enabled:  # a loopback server without auth: everyone is signed in already
        return Result(303, b"", (home,)) if home else _anonymous(app)
    key = app.auth.key_for_session(secret)
    app.rate_limit(key)
    new = await app.run_read(
        app.sessions.create, secret[:8], hash_secret(secret), key.name, app.settings.session_hours * 3600
    )
    cookie = (b"set-cookie", session_cookie(request, new.token, int(app.settings.session_hours * 3600)))
    if home:
        return Result(303, b"", (home, cookie))
    return Result(200, _describe(app, new.session, key), (cookie,))


def _refuse_other_sites(request: Request) -> None:
    """403 for a sign-in posted by another site's page: it would sign the browser in with the other
    site's key (login CSRF), and what the person then sends would go to that key's account. Browsers
    say where a request comes from (from_another_site)."""
    if from_another_site(request):
        raise ApiError(
            403, "cross_site_sign_in", "a sign-in must come from loglake's own sign-in page; open /login on this server"
        )


def _submitted_key(request: Request, form: bool) -> str:
    if form:
        key = _form_fields(request).get("key")
    else:
        content_type = request.header(b"content-type").split(";", 1)[0].strip().lower()
        if content_type not in JSON_TYPES:
            raise ApiError(
                415,
                "unsupported_media_type",
                f"Content-Type {content_type!r} is not accepted here; send {_EXAMPLE} as application/json, "
                f"or the sign-in form as {FORM_TYPE}",
            )
        key = json_struct(json_object(request.body, _EXAMPLE), _SignIn, _EXAMPLE).key
    if not isinstance(key, str) or not key.strip():
        raise ApiError(400, "invalid_request", f"send the API key to sign in with, e.g. {_EXAMPLE}")
    return key.strip()


class _SignIn(msgspec.Struct, forbid_unknown_fields=True):
    """A JSON sign-in's body: refused with the field named when it holds another (as every JSON body is)."""

    key: str = ""


def _form_fields(request: Request) -> dict[str, str]:
    return dict(parse_qsl(request.body.decode("latin-1"), keep_blank_values=True))


async def get_session(app: LoglakeApp, request: Request) -> Result:
    refuse_parameters(request, "GET /session")
    if not app.auth.enabled:
        return _anonymous(app)
    token = session_token(request)
    if not token:
        raise ApiError(401, "unauthorized", f"not signed in: sign in at {LOGIN_PAGE} (or POST /session {_EXAMPLE})")
    session, key = app.auth.signed_in(request, token)
    return Result(200, _describe(app, session, key), (NO_STORE,))  # (a public route: app.py does not add it)


async def delete_session(app: LoglakeApp, request: Request) -> Result:
    """Sign out. A session that is already over (or no cookie at all) is signed out too: 204 either way,
    the cookie cleared; a live session's sign-out needs its CSRF token like any other change."""
    refuse_parameters(request, "DELETE /session")
    token = session_token(request)
    if token and app.auth.enabled:
        try:
            app.auth.signed_in(request, token)
        except ApiError as e:
            if e.status != 401:
                raise
        await app.run_read(app.sessions.end, token)
    return Result(204, b"", ((b"set-cookie", session_cookie(request, "", 0)),))


def _describe(app: LoglakeApp, session: Session, key: ApiKey) -> dict:
    # the UI spaces its requests to fit the key's limits rather than learn them from 429s
    rate_limit, rate_burst = app.ratelimiter.limits(key.rate_limit, key.rate_burst)
    return {
        "key_name": key.name,
        "scopes": sorted(key.scopes),
        "rate_limit": rate_limit,
        "rate_burst": rate_burst,
        "csrf_token": session.csrf_token,
        "expires_at": format_datetime(int(session.expires_at * 1000)),
        "ask": ask_status(app),
    }


def _anonymous(app: LoglakeApp) -> Result:
    """Auth is off: the session of everyone, with nothing to guard against cross-site requests."""
    answer = {
        "key_name": "anonymous",
        "scopes": ["admin"],
        "csrf_token": "",
        "expires_at": None,
        "ask": ask_status(app),
    }
    return Result(200, answer)


def session_cookie(request: Request, value: str, max_age: int) -> bytes:
    """The session cookie: never readable by scripts, never sent by another site's pages, and only over
    TLS when the request came over TLS (a plain-HTTP server on a laptop must still be usable)."""
    secure = "; Secure" if request.scope.get("scheme") == "https" else ""
    return f"{SESSION_COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}{secure}".encode()
