"""Who is calling: API keys, AWS SigV4 signatures or a web UI session's cookie, checked against the
live key ring.

A key comes in the form each kind of client sends it: `Bearer <key>` (ours, OTLP exporters),
`Basic` with the key as the password and any user name (Promtail, Fluent Bit, Beats, Vector),
`ApiKey <key>` or `ApiKey base64(id:key)` (Elasticsearch clients), `Splunk <key>` (HEC clients).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import time
from collections.abc import Callable
from typing import Literal

from loglake.api import cors, sigv4
from loglake.api.http import ApiError, Request
from loglake.config import is_loopback
from loglake.key_ring import KeyRing
from loglake.keys import BEARER_PREFIX, ApiKey
from loglake.sessions import Session, SessionStore

# With auth disabled (loopback only) every caller is this key.
ANONYMOUS = ApiKey(name="anonymous", kind="none", scopes=frozenset({"admin"}), hint="", created_at=0)
_CHALLENGE = [(b"www-authenticate", b'Bearer realm="loglake"')]
SESSION_COOKIE = "loglake_session"
CSRF_HEADER = b"x-csrf-token"
# A browser sends cookies with every request to the server, whichever page made it: only these,
# which change nothing, are taken on the cookie alone.
_SAFE_METHODS = frozenset({"GET", "HEAD"})


FORMS = "'Authorization: Bearer <api key>' (or Basic with the key as password, 'ApiKey <key>', 'Splunk <key>') or SigV4"
# The header was well formed but its key is not one of ours: saying how to send a key would mislead.
UNKNOWN_KEY = "invalid or revoked API key: the key is not known; check it, or create one with `loglake keys create`"
REVOKED_KEY = "revoked API key: this key was revoked; use an active key, or create one with `loglake keys create`"
SESSION_OVER = "the session has expired or was signed out; sign in again at /login"
REVOKED_ACCESS_KEY = (
    "revoked access key id: this key pair was revoked; use an active one, or create one with "
    "`loglake keys create --sigv4`"
)
UNKNOWN_ACCESS_KEY = (
    "unknown or revoked access key id: the key is not known; check it, or create a key pair with "
    "`loglake keys create --sigv4`"
)


class Unauthorized(ApiError):
    """A 401, with why: no credentials, a header that does not hold a key in a form we take (an unknown
    scheme, no key, Basic that is not base64 of user:key), or a key that is not (or no longer) valid; the
    protocols that answer each case differently (Splunk HEC) tell them apart by it."""

    def __init__(self, message: str, why: Literal["missing", "malformed", "invalid"]) -> None:
        super().__init__(401, "unauthorized", message, headers=_CHALLENGE)
        self.why = why


def unauthorized(message: str) -> ApiError:
    return Unauthorized(message, "invalid")


class Authenticator:
    def __init__(
        self,
        keyring: KeyRing | None,
        region: str,
        clock: Callable[[], float] = time.time,
        sessions: SessionStore | None = None,
        cors_origins: tuple[str, ...] = (),
        loopback_only: bool = True,
    ) -> None:
        self.keyring = keyring
        self.region = region
        self.clock = clock
        self.sessions = sessions
        self.cors_origins = cors_origins  # (the pages of other origins allowed to call the API: cors.py)
        # Without a keyring: whether callers are this machine's (auth off), not ones let in before (AWS: IAM)
        self.loopback_only = loopback_only

    @property
    def enabled(self) -> bool:
        return self.keyring is not None

    def needs_body(self, request: Request) -> bool:
        """SigV4 signs the body, so it can only be checked once the body has been read."""
        return self.keyring is not None and sigv4.is_sigv4(request.header(b"authorization"))

    def is_active(self, key: ApiKey) -> bool:
        """Whether the key a request was let in with is active still (always, without auth)."""
        return self.keyring is None or key is ANONYMOUS or self.keyring.is_active(key)

    def check_before_body(self, request: Request) -> None:
        """For a SigV4 request, ApiError 401 for what is wrong before the body is read: a malformed
        header, an unknown access key, a stale or misaddressed signature, a missing signed header."""
        self._sigv4_key(request)

    def authenticate(self, request: Request) -> ApiKey:
        """The caller's key, or ApiError 401. For SigV4 the raw body must already be in request.body."""
        if self.keyring is None:
            return self._anonymous(request) if self.loopback_only else ANONYMOUS
        header = request.header(b"authorization")
        if not header:
            token = session_token(request)
            if token:
                return self.signed_in(request, token)[1]
            raise Unauthorized(f"missing credentials: send {FORMS}, or sign in to the web UI at /login", "missing")
        scheme, _, token = header.partition(" ")
        scheme = scheme.lower()
        token = token.strip()
        if scheme not in ("bearer", "splunk", "basic", "apikey"):
            if sigv4.is_sigv4(header):  # (asked only here: a SigV4 header's scheme is none of those)
                return self._sigv4(request)
            shown = f" {scheme!r}" if scheme.isalpha() and len(scheme) <= 20 else ""  # never echo a secret back
            raise Unauthorized(f"unsupported authorization scheme{shown}; send {FORMS}", "malformed")
        if not token:
            raise Unauthorized(f"the {scheme.title()} authorization holds no key; send {FORMS}", "malformed")
        if scheme == "basic":
            user, password = _colon_pair(token)
            if not password:
                if user.startswith(BEARER_PREFIX):  # (`curl -u "$KEY:"`)
                    wrong = "hold the API key as the user name: proxies write user names to their access logs"
                else:
                    wrong = "hold no password" if user else "are not base64 of user:key"
                raise Unauthorized(
                    f"the Basic credentials {wrong} (any user name, the API key as the password); send {FORMS}",
                    "malformed",
                )
            tried = [password]
        elif scheme == "apikey":
            tried = [token, _colon_pair(token)[1]]
        else:
            tried = [token]
        for candidate in tried:
            key = self.keyring.bearer(candidate)
            if key is not None:
                return key
        revoked = any(self.keyring.was_revoked(t) for t in tried)
        raise unauthorized(REVOKED_KEY if revoked else UNKNOWN_KEY)

    def _anonymous(self, request: Request) -> ApiKey:
        """ANONYMOUS, for a request that can only come from this machine's own clients: auth is off only on a
        loopback address, which the machine's browser reaches too, on behalf of any page it shows. A page of
        another site could then send records in a form it may post without asking (Splunk HEC takes
        text/plain), and a page whose name its DNS then points at 127.0.0.1 (DNS rebinding) is that site's own
        origin for the browser: it could read logs and make itself an admin key, kept once auth is back on.
        So the request must be addressed to a loopback name, and a browser's change must come from the
        server's own pages (or an origin cors_allow_origins lets in)."""
        host = request.header(b"host")
        if host and not is_loopback(_host_name(host)):  # (a browser always sends one; an HTTP/1.0 client may not)
            raise ApiError(
                403,
                "host_not_allowed",
                f"this server runs with auth off and answers only requests addressed to it by a loopback name "
                f"(localhost, 127.0.0.1, [::1]), not {host[:100]!r}; to serve other names, keep auth on",
            )
        origin = request.header(b"origin")
        changes = request.method not in _SAFE_METHODS
        if changes and from_another_site(request) and not cors.allows(origin, self.cors_origins):
            raise ApiError(
                403,
                "origin_not_allowed",
                f"this server runs with auth off: a page of {origin[:100]!r} may not change anything on it from a "
                "browser (only its own pages and the origins of cors_allow_origins may); keep auth on and send a key",
            )
        return ANONYMOUS

    def key_for_session(self, secret: str) -> ApiKey:
        """The bearer key a sign-in presents, or ApiError 401."""
        assert self.keyring is not None
        key = self.keyring.bearer(secret.strip())
        if key is None:
            raise unauthorized("invalid or revoked API key: sign in with an active key (llk_...)")
        return key

    def signed_in(self, request: Request, token: str) -> tuple[Session, ApiKey]:
        """The session of a cookie's token and its key; ApiError 401 when the session is over (expired,
        signed out, its key revoked), 403 when the request changes something without the session's
        CSRF token."""
        assert self.keyring is not None
        session = self.sessions.find(token) if self.sessions is not None else None
        if session is None:
            raise unauthorized(SESSION_OVER)
        key = self.keyring.bearer_by_hash(session.key_hint, session.key_hash)
        if key is None:
            raise unauthorized("the API key of this session was revoked; sign in again at /login with an active key")
        require_csrf_token(request, session.csrf_token)
        return session, key

    def _sigv4(self, request: Request) -> ApiKey:
        credential, key, secret = self._sigv4_key(request)
        signed = sigv4.SignedRequest(
            method=request.method,
            raw_path=_raw_path(request),
            query_string=request.scope.get("query_string", b""),
            headers=request.raw_headers,
            body=request.body,
        )
        try:
            sigv4.verify(signed, credential, secret, region=self.region, now=self.clock())
        except sigv4.SigV4Error as e:
            raise unauthorized(str(e)) from None
        return key

    def _sigv4_key(self, request: Request) -> tuple[sigv4.Credential, ApiKey, str]:
        """The parsed credential, the key it names and its secret, once every check but the signature passed."""
        assert self.keyring is not None
        try:
            credential = sigv4.parse_authorization(request.header(b"authorization"))
            found = self.keyring.sigv4(credential.access_key_id)
            if found is None:
                revoked = self.keyring.access_key_was_revoked(credential.access_key_id)
                raise unauthorized(REVOKED_ACCESS_KEY if revoked else UNKNOWN_ACCESS_KEY)
            sigv4.check_before_body(
                _raw_path(request), request.raw_headers, credential, region=self.region, now=self.clock()
            )
        except sigv4.SigV4Error as e:
            raise unauthorized(str(e)) from None
        return credential, *found


def require_csrf_token(request: Request, csrf_token: str) -> None:
    """ApiError 403 when a request signed in by a session cookie changes something without the
    session's CSRF token (another site's page can make the browser send the cookie, not the token)."""
    if request.method not in _SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, b"")
        if not hmac.compare_digest(sent, csrf_token.encode()):
            what = "a different one" if sent else "none"
            raise ApiError(
                403,
                "csrf_token_invalid",
                f"a {request.method} signed in by the session cookie must send the header X-CSRF-Token with "
                f"the session's csrf_token (from POST or GET /session); this request sent {what}",
            )


def from_another_site(request: Request) -> bool:
    """Whether a browser says the request comes from another site's page: in Sec-Fetch-Site, or in an Origin that
    is not the server's. An Origin "null" (an opaque origin: a sandboxed frame, or a page whose Referrer-Policy is
    no-referrer) is another site's unless Sec-Fetch-Site says otherwise: the server's own pages send their origin
    (their Referrer-Policy is same-origin), and a browser without Sec-Fetch-Site (Safari before 16.4) let another
    site's no-referrer page sign it in with that site's key."""
    origin = request.header(b"origin")
    fetch_site = request.header(b"sec-fetch-site")
    if fetch_site in ("cross-site", "same-site"):
        return True
    if origin == "null":
        return not fetch_site
    return origin != "" and origin.partition("://")[2].lower() != request.header(b"host").lower()


def session_token(request: Request) -> str:
    """The value of the session cookie ('' when the request has none)."""
    return cookie_value(request, SESSION_COOKIE)


def cookie_value(request: Request, name: str) -> str:
    """The value of one cookie of the request ('' when it has none)."""
    cookies = request.header(b"cookie")
    if name not in cookies:  # the usual case (API clients send no cookies): no parsing
        return ""
    for part in cookies.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value.strip()
    return ""


def _colon_pair(token: str) -> tuple[str, str]:
    """What comes before and after the first colon of base64 text: the user and password of HTTP basic credentials,
    the id and key of an Elasticsearch API key credential (id:key, what Beats and Logstash send for `api_key: id:key`
    and the Python client for `api_key=(id, key)`); ("", "") when the token is not base64 of such text."""
    try:
        before, colon, after = base64.b64decode(token, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return "", ""
    return (before, after) if colon else ("", "")


def _host_name(host: str) -> str:
    """The name in a Host header (`name`, `name:port`, `[v6 address]:port`), lower case."""
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0].lower() if host.count(":") == 1 else host.lower()


def _raw_path(request: Request) -> bytes:
    return request.scope.get("raw_path") or request.path.encode()


def require_scope(key: ApiKey, scope: str) -> None:
    if not key.allows(scope):
        raise ApiError(
            403,
            "forbidden",
            f"the key {key.name!r} lacks the {scope!r} scope: use a key that has it (`loglake keys create --name NAME "
            f"--scopes {scope}` on the server's data dir makes one, as does POST /admin/keys with an admin key)",
        )
