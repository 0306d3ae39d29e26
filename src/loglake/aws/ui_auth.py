"""The web UI on AWS: the app of `loglake serve`, signed in through the deployment's Cognito user pool.

The UI function answers the UI's own API (behind API Gateway with no IAM authorization, on the UI's
domain): the same pages, assets and reads as locally, with one credential, the session cookie.
- `GET /login`: "Sign in with Cognito" (API keys are not taken here: the deployment keeps no key ring,
  and API clients call the IAM-authorized API with SigV4).
- `GET /auth/login`: a new sign-in: state, nonce and PKCE verifier remembered in the sessions table
  (aws/ui_sessions.py), the state also in a short-lived cookie of this browser; then the hosted UI.
- `GET /auth/callback`: the state checked against the cookie and taken (once), the code exchanged with
  the verifier, the ID token verified (aws/cognito.py), the person's groups mapped to scopes, and the
  same session cookie as locally (HttpOnly, SameSite=Strict, Secure).
- `GET`, `DELETE /session`: as locally; DELETE also answers Cognito's sign-out address, where the page
  goes next so that the hosted UI's own session ends too.
- `POST /query` (the SQL page): the local route, its SQL run by Athena in the stack's workgroup; `GET
  /tables`: the lake's tables as the catalog gives them to Athena.
Ingest and the API-key administration are not offered here: they belong to the IAM-authorized API.
"""

from __future__ import annotations

import hmac
import html
import os
import secrets
from typing import Any
from urllib.parse import quote

import boto3

from loglake.api import session_routes
from loglake.api.app import LoglakeApp
from loglake.api.auth import Unauthorized, cookie_value, require_csrf_token, session_token
from loglake.api.http import ApiError, Request
from loglake.api.route_table import ROUTES, Route, Router
from loglake.api.routes import Result, refuse_parameters
from loglake.api.session_routes import UI_HOME
from loglake.api.ui_routes import REVALIDATE, assets
from loglake.aws.athena_search import AthenaSearch
from loglake.aws.cognito import Cognito, SignInRefused, code_verifier, scopes_of_groups
from loglake.aws.ui_sessions import DynamoDBSessions, NewUiSession, SignInAttempt, UiSession
from loglake.extensions import SqlEngine
from loglake.keys import ApiKey
from loglake.lake.lake import described_columns
from loglake.lake.tables import TABLES
from loglake.runtime import Runtime
from loglake.ui.sign_in import reason_message

SIGN_IN_COOKIE = "loglake_sign_in"
SIGN_IN_SECONDS = 600  # from "Sign in with Cognito" to the callback: the hosted UI's form is filled in between
_NO_STORE = (b"cache-control", b"no-store")
_MAX_NEXT = 2048
_MAX_USER = 256


class SessionCookieAuth:
    """The UI function's authenticator (the interface of api.auth.Authenticator the app uses): the
    session cookie is the only credential, its scopes those the person's groups gave at sign-in."""

    enabled = True

    def __init__(self, sessions: DynamoDBSessions) -> None:
        self.sessions = sessions

    def needs_body(self, request: Request) -> bool:
        return False  # nothing here is signed over the body (so check_before_body is never asked for)

    def authenticate(self, request: Request) -> ApiKey:
        if request.header(b"authorization"):
            raise Unauthorized(
                "this address takes the web UI's session cookie only: sign in at /login; API clients call the "
                "IAM-authorized API (the stack's ApiEndpoint output) with SigV4",
                "malformed",
            )
        token = session_token(request)
        if not token:
            raise Unauthorized("not signed in: sign in with Cognito at /login", "missing")
        return self.signed_in(request, token)[1]

    def signed_in(self, request: Request, token: str) -> tuple[UiSession, ApiKey]:
        session = self.sessions.find(token)
        if session is None:
            raise Unauthorized("the session has expired or was signed out; sign in again at /login", "invalid")
        require_csrf_token(request, session.csrf_token)
        return session, session.key


class CognitoUiApp(LoglakeApp):
    """The app with Cognito sign-in, sessions in DynamoDB and the UI function's routes. Configured from
    the environment the stack gives the UI function (aws/infra/ui.py) unless given its parts."""

    def __init__(self, runtime: Runtime, cognito: Cognito | None = None, sessions: DynamoDBSessions | None = None):
        super().__init__(runtime)  # its local sessions.db store stays unopened: replaced below
        self.cognito = cognito or Cognito.from_environment(os.environ, runtime.clock)
        table = os.environ.get("LOGLAKE_UI_SESSIONS_TABLE", "")
        self.sessions = sessions or DynamoDBSessions(boto3.client("dynamodb"), table, runtime.clock)
        self.auth = SessionCookieAuth(self.sessions)
        self.router = Router(UI_FUNCTION_ROUTES)

    @property
    def sql_engine(self) -> SqlEngine | None:
        """Athena, which answers the searches (aws/athena_search.py), answers the SQL page too."""
        search = self.service.record_search
        return search.engine if isinstance(search, AthenaSearch) else None


# -- pages ------------------------------------------------------------------------------------------

_LOGIN_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in · loglake</title>
<link rel="icon" href="{assets}/icon.svg" type="image/svg+xml">
<link rel="stylesheet" href="{assets}/app.css">
</head>
<body class="login-page">
<main id="main" class="login">
  <h1>loglake</h1>
  {message}<p><a id="cognito" class="primary" href="{sign_in}">Sign in with Cognito</a></p>
  <p class="muted small">Sign in with your user of the deployment's Cognito user pool; your groups there
  decide what you may do. API clients call the IAM-authorized API with SigV4.</p>
</main>
</body>
</html>
"""


def _page(status: int, message: str = "", next_path: str = UI_HOME, *headers: tuple[bytes, bytes]) -> Result:
    """The sign-in page, with `message` (escaped) shown as an error: no script, so nothing to run."""
    shown = f'<p class="error" role="alert">{html.escape(message)}</p>\n  ' if message else ""
    sign_in = "/auth/login" if next_path == UI_HOME else f"/auth/login?next={quote(next_path, safe='/')}"
    body = _LOGIN_PAGE.format(assets=assets().prefix, message=shown, sign_in=html.escape(sign_in))
    cache = (b"cache-control", REVALIDATE) if status == 200 else _NO_STORE
    return Result(status, body.encode(), ((b"content-type", b"text/html; charset=utf-8"), cache, *headers))


def _safe_next(value: str) -> str:
    """Where to land after signing in: the local sign-in's rule (session_routes.return_path), and short
    enough to keep with the sign-in attempt in DynamoDB."""
    return session_routes.return_path(value) if len(value) <= _MAX_NEXT else UI_HOME


async def login_page(app: CognitoUiApp, request: Request) -> Result:
    return _page(200, reason_message(request.query.get("error", "")), _safe_next(request.query.get("next", "")))


async def start_sign_in(app: CognitoUiApp, request: Request) -> Result:
    """A new sign-in: remembered under its state (single use, SIGN_IN_SECONDS), then the hosted UI."""
    state, nonce, verifier = secrets.token_urlsafe(32), secrets.token_urlsafe(32), code_verifier()
    attempt = SignInAttempt(verifier, nonce, _safe_next(request.query.get("next", "")))
    await app.run_read(app.sessions.remember_sign_in, state, attempt, SIGN_IN_SECONDS)
    location = app.cognito.authorize_url(state, nonce, verifier)
    return Result(302, b"", ((b"location", location.encode()), (b"set-cookie", _sign_in_cookie(state)), _NO_STORE))


async def finish_sign_in(app: CognitoUiApp, request: Request) -> Result:
    """The hosted UI's redirect back: a session for a person of a mapped group, else the reason."""
    ended = (b"set-cookie", _sign_in_cookie("", 0))
    try:
        attempt = await _taken_attempt(app, request)
        id_token = await app.cognito.exchange(request.query.get("code", ""), attempt.code_verifier)
        claims = await app.cognito.verify(id_token, attempt.nonce)
        session = await _new_session(app, claims)
    except SignInRefused as e:
        return _page(e.status, e.message, UI_HOME, ended)
    cookie = session_routes.session_cookie(
        request, session.token, int(session.session.expires_at - app.runtime.clock())
    )
    location = attempt.next_path.encode()
    return Result(303, b"", ((b"location", location), (b"set-cookie", cookie), ended, _NO_STORE))


async def _taken_attempt(app: CognitoUiApp, request: Request) -> SignInAttempt:
    """The sign-in this callback finishes: started in this browser (login CSRF: another person's code
    must not sign this browser in), not answered before, not too old."""
    query = request.query
    if query.get("error"):
        why = (query.get("error_description") or query["error"])[:300]
        raise SignInRefused(403 if query["error"] == "access_denied" else 400, f"Cognito did not sign you in: {why}")
    state, started = query.get("state", ""), cookie_value(request, SIGN_IN_COOKIE)
    if not state or not query.get("code"):
        raise SignInRefused(400, "this address is where Cognito sends you back after signing in: start at /login")
    if not started or not hmac.compare_digest(state.encode(), started.encode()):
        raise SignInRefused(
            400, "this sign-in was not started in this browser, or took too long: sign in again from this page"
        )
    attempt = await app.run_read(app.sessions.take_sign_in, state)
    if attempt is None:
        raise SignInRefused(400, "this sign-in was already used or has expired: sign in again")
    return attempt


async def _new_session(app: CognitoUiApp, claims: dict[str, Any]) -> NewUiSession:
    groups = claims.get("cognito:groups") or []
    groups = [g for g in groups if isinstance(g, str)] if isinstance(groups, list) else []
    user = str(claims.get("email") or claims.get("cognito:username") or claims.get("sub") or "?")[:_MAX_USER]
    scopes = scopes_of_groups(groups, app.cognito.group_scopes)
    if not scopes:
        mapped = ", ".join(sorted(app.cognito.group_scopes)) or "(none configured)"
        raise SignInRefused(
            403,
            f"{user} is signed in to Cognito but in no group that gives access to loglake ({mapped}): "
            "ask an administrator of the user pool to add you to one, then sign in again",
        )
    lifetime = app.settings.session_hours * 3600
    return await app.run_read(app.sessions.create, user, scopes, lifetime)


async def api_key_sign_in(app: CognitoUiApp, request: Request) -> Result:
    raise ApiError(
        501,
        "not_available",
        "on AWS the web UI signs in with Cognito: open /login (the deployment keeps no API keys; API clients "
        "call the IAM-authorized API with SigV4)",
    )


async def athena_tables(app: CognitoUiApp, request: Request) -> Result:
    """GET /tables for the SQL page: the lake's tables as Athena has them (the catalog's Glue tables,
    whose partitions are projected, so none are listed)."""
    refuse_parameters(request, "GET /tables")
    tables = [
        {
            "name": table.name,
            "description": table.description,
            "columns": described_columns(table),
            "partition_keys": list(table.partitions),
            "partitions": [],
        }
        for table in TABLES.values()
    ]
    return Result(200, {"tables": tables})


async def sign_out(app: CognitoUiApp, request: Request) -> Result:
    """As locally (the session ended, the cookie cleared), and where to go next: Cognito's sign-out."""
    ended = await session_routes.delete_session(app, request)
    return Result(200, {"sign_out_url": app.cognito.logout_url()}, ended.headers)


def _sign_in_cookie(state: str, max_age: int = SIGN_IN_SECONDS) -> bytes:
    """The browser's half of a sign-in's state. SameSite=Lax, not Strict: the hosted UI's redirect back
    is a navigation from Cognito's site, which a Strict cookie would not be sent with."""
    return f"{SIGN_IN_COOKIE}={state}; HttpOnly; Secure; SameSite=Lax; Path=/auth/callback; Max-Age={max_age}".encode()


# What the UI function answers: the app's routes but ingest (IAM's API takes it) and API keys (there
# are none), with the sign-in above in place of the local one.
_REPLACED = {("GET", "/login"), ("POST", "/session"), ("DELETE", "/session"), ("GET", "/tables")}
UI_FUNCTION_ROUTES = [
    route
    for route in ROUTES
    if route.scope != "ingest"
    and not route.template.startswith("/admin/keys")
    and (route.method, route.template) not in _REPLACED
] + [
    Route("GET", "/login", login_page, None),
    Route("GET", "/auth/login", start_sign_in, None),
    Route("GET", "/auth/callback", finish_sign_in, None),
    Route("POST", "/session", api_key_sign_in, None),
    Route("DELETE", "/session", sign_out, None),
    Route("GET", "/tables", athena_tables, "read"),
]
