"""Signing in to the web UI through a Cognito user pool: OAuth 2.0's authorization code flow with PKCE
(S256) against the pool's hosted UI, and the check of the ID token it returns.

The addresses and claims are Cognito's documented ones:
- authorize `{domain}/oauth2/authorize`, token `{domain}/oauth2/token`, sign out `{domain}/logout`;
- the pool's keys at `{issuer}/.well-known/jwks.json`, where the issuer is
  `https://cognito-idp.{region}.amazonaws.com/{userPoolId}`;
- an ID token is RS256-signed with `iss` the issuer, `aud` the app client's id, `token_use` "id",
  `exp`, the `nonce` sent to authorize, and the user's groups in `cognito:groups`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from loglake.keys import SCOPES

CALLBACK_PATH = "/auth/callback"
SIGNED_OUT_PATH = "/login"  # where Cognito's /logout sends the browser back (a sign-out URL of the client)
OAUTH_SCOPES = "openid email profile"
CLOCK_SKEW_SECONDS = 60  # between Cognito's clock and the function's, on `exp`
HTTP_TIMEOUT_SECONDS = 10  # API Gateway gives the whole callback 29 s


class SignInRefused(Exception):
    """A sign-in that must not go on; `status` and `message` are what the person is shown."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def code_verifier() -> str:
    """PKCE's secret (RFC 7636): 43 characters of base64url, 256 random bits."""
    return secrets.token_urlsafe(32)


def code_challenge(verifier: str) -> str:
    """PKCE's S256 challenge: base64url of the verifier's SHA-256, without padding."""
    return _b64url(hashlib.sha256(verifier.encode("ascii")).digest())


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def scopes_of_groups(groups: list[str], group_scopes: Mapping[str, frozenset[str]]) -> frozenset[str]:
    """The scopes a person's groups give (the union); empty when no group of theirs is mapped."""
    return frozenset().union(*(group_scopes.get(g, frozenset()) for g in groups))


def parse_group_scopes(text: str) -> dict[str, frozenset[str]]:
    """LOGLAKE_COGNITO_GROUPS: a JSON object of group name -> list of loglake scopes."""
    try:
        document = json.loads(text)
    except ValueError:
        document = None
    if not isinstance(document, dict) or not all(
        isinstance(scopes, list) and scopes and set(scopes) <= set(SCOPES) for scopes in document.values()
    ):
        raise ValueError(
            f"LOGLAKE_COGNITO_GROUPS must be a JSON object of group -> scopes ({', '.join(SCOPES)}), "
            f'e.g. {{"loglake-admin": ["admin"]}}, got {text!r}'
        )
    return {group: frozenset(scopes) for group, scopes in document.items()}


@dataclass
class Cognito:
    """One user pool's app client, as the UI function reaches it. `ui_url` is the UI's own origin
    (https://logs.example.com), which the client's callback and sign-out URLs are made of."""

    domain: str  # the hosted UI, https://<prefix>.auth.<region>.amazoncognito.com
    issuer: str
    client_id: str
    ui_url: str
    group_scopes: dict[str, frozenset[str]]
    clock: Callable[[], float]
    _keys: dict[str, rsa.RSAPublicKey] = field(default_factory=dict)  # the pool's, by kid, per container

    @classmethod
    def from_environment(cls, environ: Mapping[str, str], clock: Callable[[], float]) -> Cognito:
        names = ("LOGLAKE_COGNITO_DOMAIN", "LOGLAKE_COGNITO_ISSUER", "LOGLAKE_COGNITO_CLIENT_ID", "LOGLAKE_UI_URL")
        missing = [name for name in names if not environ.get(name)]
        if missing:
            raise RuntimeError(f"set {', '.join(missing)} (the stack's UI function has them)")
        return cls(
            domain=environ["LOGLAKE_COGNITO_DOMAIN"].rstrip("/"),
            issuer=environ["LOGLAKE_COGNITO_ISSUER"].rstrip("/"),
            client_id=environ["LOGLAKE_COGNITO_CLIENT_ID"],
            ui_url=environ["LOGLAKE_UI_URL"].rstrip("/"),
            group_scopes=parse_group_scopes(environ.get("LOGLAKE_COGNITO_GROUPS", "{}")),
            clock=clock,
        )

    @property
    def redirect_uri(self) -> str:
        return self.ui_url + CALLBACK_PATH

    def authorize_url(self, state: str, nonce: str, verifier: str) -> str:
        query = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "scope": OAUTH_SCOPES,
            "state": state,
            "nonce": nonce,
            "code_challenge": code_challenge(verifier),
            "code_challenge_method": "S256",
        }
        return f"{self.domain}/oauth2/authorize?{urlencode(query)}"

    def logout_url(self) -> str:
        """Cognito's sign-out, which ends the hosted UI's own session and comes back to /login."""
        query = {"client_id": self.client_id, "logout_uri": self.ui_url + SIGNED_OUT_PATH}
        return f"{self.domain}/logout?{urlencode(query)}"

    async def exchange(self, code: str, verifier: str) -> str:
        """The ID token for an authorization code (the token endpoint checks the verifier against the
        challenge sent to authorize); SignInRefused when the pool refuses or cannot be reached."""
        form = {
            "grant_type": "authorization_code",
            "client_id": self.client_id,
            "code": code,
            "redirect_uri": self.redirect_uri,
            "code_verifier": verifier,
        }
        answer = await self._http("POST", f"{self.domain}/oauth2/token", data=form)
        if answer.status_code in (400, 401):
            reason = _oauth_error(answer)
            raise SignInRefused(
                400, f"Cognito refused the sign-in's code ({reason}); it may have expired or been used: sign in again"
            )
        if answer.status_code != 200:
            raise SignInRefused(503, f"Cognito's token endpoint answered HTTP {answer.status_code}; retry shortly")
        try:
            token = answer.json()["id_token"]
        except (ValueError, KeyError, TypeError):
            raise SignInRefused(503, "Cognito's token endpoint answered without an ID token; retry shortly") from None
        if not isinstance(token, str):
            raise SignInRefused(503, "Cognito's token endpoint answered without an ID token; retry shortly")
        return token

    async def verify(self, id_token: str, nonce: str) -> dict[str, Any]:
        """The claims of an ID token issued to this client for this sign-in; SignInRefused otherwise."""
        header, claims, signed, signature = _parts(id_token)
        if header.get("alg") != "RS256":
            raise _bad_token(f"it is signed with {header.get('alg')!r}, not RS256")
        key = await self._key(str(header.get("kid", "")))
        try:
            key.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            raise _bad_token("its signature does not match the pool's key") from None
        expected = {"iss": self.issuer, "aud": self.client_id, "token_use": "id", "nonce": nonce}
        for claim, value in expected.items():
            if claims.get(claim) != value:
                raise _bad_token(f"its {claim} is not this sign-in's")
        expires = claims.get("exp")
        if not isinstance(expires, int | float) or expires + CLOCK_SKEW_SECONDS <= self.clock():
            raise SignInRefused(401, "the sign-in took too long (Cognito's token has expired): sign in again")
        return claims

    async def _key(self, kid: str) -> rsa.RSAPublicKey:
        """The pool's signing key `kid`, fetching the pool's keys again when it is new (keys rotate)."""
        if kid not in self._keys:
            answer = await self._http("GET", f"{self.issuer}/.well-known/jwks.json")
            try:
                self._keys = {k["kid"]: _rsa_key(k) for k in answer.json()["keys"] if k.get("kty") == "RSA"}
            except (ValueError, KeyError, TypeError):
                raise SignInRefused(503, "the user pool's signing keys could not be read; retry shortly") from None
        if kid not in self._keys:
            raise _bad_token("it names a key the user pool does not have")
        return self._keys[kid]

    async def _http(self, method: str, url: str, **request: Any) -> httpx.Response:
        try:
            async with httpx.AsyncClient(timeout=HTTP_TIMEOUT_SECONDS) as client:
                return await client.request(method, url, **request)
        except httpx.HTTPError as e:
            raise SignInRefused(503, f"Cognito could not be reached ({type(e).__name__}); retry shortly") from None


def _parts(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes]:
    """A compact JWS's header, claims, signed bytes and signature."""
    pieces = token.split(".")
    if len(pieces) != 3:
        raise _bad_token("it is not a signed JWT")
    try:
        header, claims = (json.loads(_b64url_decode(p)) for p in pieces[:2])
        signature = _b64url_decode(pieces[2])
        signed = f"{pieces[0]}.{pieces[1]}".encode("ascii")
    except (ValueError, binascii.Error):  # UnicodeError too
        raise _bad_token("it is not a signed JWT") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise _bad_token("it is not a signed JWT")
    return header, claims, signed, signature


def _rsa_key(jwk: dict[str, Any]) -> rsa.RSAPublicKey:
    number = lambda name: int.from_bytes(_b64url_decode(jwk[name]), "big")  # noqa: E731
    return rsa.RSAPublicNumbers(number("e"), number("n")).public_key()


def _bad_token(why: str) -> SignInRefused:
    return SignInRefused(401, f"the sign-in's ID token was refused: {why}; sign in again")


def _oauth_error(answer: httpx.Response) -> str:
    try:
        error = answer.json().get("error")
    except (ValueError, AttributeError):
        error = None
    return error if isinstance(error, str) and error.isascii() and len(error) < 64 else f"HTTP {answer.status_code}"
