"""A local stand-in for a Cognito user pool's hosted UI, token endpoint and keys: a real HTTP server
that signs ID tokens with a test RSA key (joserfc, not loglake's code) and checks what a client sends
as Cognito does: the client id, the registered callback, PKCE's S256 verifier against the challenge,
a code used once."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import html
import json
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from joserfc import jwt
from joserfc.jwk import RSAKey

POOL_ID = "eu-west-1_TestPool1"
CLIENT_ID = "loglakeuiclient0test"
UI_URL = "https://logs.example.com"
KID = "test-key-1"


@dataclass
class Person:
    """Who signs in at the hosted UI, and anything the test wants wrong with the token they get."""

    email: str
    groups: list[str]
    claims: dict[str, Any] = field(default_factory=dict)  # replaces the issued token's claims
    signing_key: RSAKey | None = None  # another key than the pool's (a forgery)
    header: dict[str, Any] | None = None
    unsigned: bool = False  # a token with alg "none" and no signature


@dataclass
class StandIn:
    url: str
    key: RSAKey
    ui_url: str = UI_URL  # the UI's origin, of the client's callback and sign-out URLs
    sign_in_form: bool = False  # authorize shows a page whose button signs in (for a browser), not a redirect
    person: Person | None = None  # who "types their password" at the next authorize
    codes: dict[str, dict[str, str]] = field(default_factory=dict)
    authorizations: list[dict[str, str]] = field(default_factory=list)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    logouts: list[dict[str, str]] = field(default_factory=list)
    failing: bool = False  # the token endpoint answers 500 (Cognito having a bad moment)

    @property
    def issuer(self) -> str:
        return f"{self.url}/{POOL_ID}"

    def environment(self) -> dict[str, str]:
        """What the stack gives the UI function, pointed here."""
        return {
            "LOGLAKE_COGNITO_DOMAIN": self.url,
            "LOGLAKE_COGNITO_ISSUER": self.issuer,
            "LOGLAKE_COGNITO_CLIENT_ID": CLIENT_ID,
            "LOGLAKE_UI_URL": self.ui_url,
            "LOGLAKE_COGNITO_GROUPS": json.dumps({"loglake-admin": ["admin"], "loglake-readers": ["read"]}),
        }


def _challenge(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def _handler(stand_in: StandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _answer(self, status: int, body: Any = None, location: str | None = None) -> None:
            data = json.dumps(body).encode() if body is not None else b""
            self.send_response(status)
            if location:
                self.send_header("Location", location)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            if url.path == f"/{POOL_ID}/.well-known/jwks.json":
                self._answer(200, {"keys": [stand_in.key.as_dict(private=False, kid=KID, alg="RS256", use="sig")]})
            elif url.path == "/oauth2/authorize" and stand_in.sign_in_form:
                self._sign_in_page(url.query)
            elif url.path == "/oauth2/authorize":
                self._authorize(query)
            elif url.path == "/logout":
                stand_in.logouts.append(query)
                ok = query.get("client_id") == CLIENT_ID and query.get("logout_uri") == f"{stand_in.ui_url}/login"
                if ok:
                    self._answer(302, None, query["logout_uri"])
                else:
                    self._answer(400, {"error": "invalid logout"})
            else:
                self._answer(404, {"error": "not found"})

        def _sign_in_page(self, query: str) -> None:
            """The hosted UI's page: the person's button posts the authorize request back."""
            action = f"/oauth2/authorize?{html.escape(query)}"
            page = (
                f'<!doctype html><title>Sign in</title><form method="post" action="{action}">'
                '<button type="submit">Sign in</button></form>'
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def _authorize(self, query: dict[str, str]) -> None:
            wanted = {
                "response_type": "code",
                "client_id": CLIENT_ID,
                "redirect_uri": f"{stand_in.ui_url}/auth/callback",
                "code_challenge_method": "S256",
            }
            wrong = [name for name, value in wanted.items() if query.get(name) != value]
            if wrong or "openid" not in query.get("scope", "").split() or not query.get("code_challenge"):
                self._answer(400, {"error": "invalid_request", "wrong": wrong})
                return
            code = secrets.token_urlsafe(16)
            stand_in.codes[code] = query
            stand_in.authorizations.append(query)
            callback = f"{query['redirect_uri']}?{urlencode({'code': code, 'state': query['state']})}"
            self._answer(302, None, callback)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            url = urlsplit(self.path)
            if url.path == "/oauth2/authorize":  # the sign-in page's button
                self._authorize({k: v[0] for k, v in parse_qs(url.query).items()})
                return
            if url.path != "/oauth2/token":
                self._answer(404, {"error": "not found"})
                return
            stand_in.token_requests.append(form)
            if stand_in.failing:
                self._answer(500, {"error": "internal"})
                return
            authorized = stand_in.codes.pop(form.get("code", ""), None)  # a code is good once
            if (
                authorized is None
                or form.get("grant_type") != "authorization_code"
                or form.get("client_id") != CLIENT_ID
                or form.get("redirect_uri") != authorized["redirect_uri"]
                or _challenge(form.get("code_verifier", "")) != authorized["code_challenge"]
            ):
                self._answer(400, {"error": "invalid_grant"})
                return
            self._answer(
                200, {"id_token": _id_token(stand_in, authorized), "access_token": "x", "token_type": "Bearer"}
            )

    return Handler


def _id_token(stand_in: StandIn, authorized: dict[str, str]) -> str:
    person = stand_in.person
    assert person is not None, "the test says who signs in (stand_in.person) before following the redirect"
    now = int(time.time())
    claims = {
        "sub": "4f0c6a1e-0000-4000-8000-000000000001",
        "iss": stand_in.issuer,
        "aud": CLIENT_ID,
        "token_use": "id",
        "auth_time": now,
        "iat": now,
        "exp": now + 3600,
        "nonce": authorized["nonce"],
        "email": person.email,
        "cognito:username": person.email.split("@")[0],
        "cognito:groups": person.groups,
        **person.claims,
    }
    if person.unsigned:
        part = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()  # noqa: E731
        return f"{part({'alg': 'none', 'kid': KID})}.{part(claims)}."
    header = person.header or {"alg": "RS256", "kid": KID}
    return jwt.encode(header, claims, person.signing_key or stand_in.key)


@contextlib.contextmanager
def running_stand_in(**options: Any) -> Iterator[StandIn]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    stand_in = StandIn(f"http://127.0.0.1:{server.server_address[1]}", RSAKey.generate_key(2048), **options)
    server.RequestHandlerClass = _handler(stand_in)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield stand_in
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
