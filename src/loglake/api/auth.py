"""Who is calling: Bearer API keys or AWS SigV4 signatures, checked against the live key ring."""

from __future__ import annotations

import time
from collections.abc import Callable

from loglake.api import sigv4
from loglake.api.http import ApiError, Request
from loglake.keys import ApiKey, KeyRing

# With auth disabled (loopback only) every caller is this key.
ANONYMOUS = ApiKey(name="anonymous", kind="none", scopes=frozenset({"admin"}), hint="", created_at=0)
_CHALLENGE = [(b"www-authenticate", b'Bearer realm="loglake"')]


def unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, headers=_CHALLENGE)


class Authenticator:
    def __init__(self, keyring: KeyRing | None, region: str, clock: Callable[[], float] = time.time) -> None:
        self.keyring = keyring
        self.region = region
        self.clock = clock

    @property
    def enabled(self) -> bool:
        return self.keyring is not None

    def needs_body(self, request: Request) -> bool:
        """SigV4 signs the body, so it can only be checked once the body has been read."""
        return self.keyring is not None and sigv4.is_sigv4(request.header(b"authorization"))

    def check_before_body(self, request: Request) -> None:
        """For a SigV4 request, ApiError 401 for what is wrong before the body is read: a malformed
        header, an unknown access key, a stale or misaddressed signature, a missing signed header."""
        self._sigv4_key(request)

    def authenticate(self, request: Request) -> ApiKey:
        """The caller's key, or ApiError 401. For SigV4 the raw body must already be in request.body."""
        if self.keyring is None:
            return ANONYMOUS
        header = request.header(b"authorization")
        if not header:
            raise unauthorized("missing credentials: send 'Authorization: Bearer <api key>' or a SigV4 signature")
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "bearer":
            key = self.keyring.bearer(token.strip())
            if key is None:
                raise unauthorized("invalid or revoked API key")
            return key
        if sigv4.is_sigv4(header):
            return self._sigv4(request)
        shown = f" {scheme!r}" if scheme.isalpha() and len(scheme) <= 20 else ""  # never echo a secret back
        raise unauthorized(f"unsupported authorization scheme{shown}; send 'Authorization: Bearer <api key>' or SigV4")

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
                raise unauthorized("unknown or revoked access key id")
            sigv4.check_before_body(
                _raw_path(request), request.raw_headers, credential, region=self.region, now=self.clock()
            )
        except sigv4.SigV4Error as e:
            raise unauthorized(str(e)) from None
        return credential, *found


def _raw_path(request: Request) -> bytes:
    return request.scope.get("raw_path") or request.path.encode()


def require_scope(key: ApiKey, scope: str) -> None:
    if not key.allows(scope):
        raise ApiError(403, "forbidden", f"the key {key.name!r} lacks the {scope!r} scope")
