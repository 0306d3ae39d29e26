"""Cross-origin requests from browsers (a web UI served elsewhere): the origins allowed by
`cors_allow_origins` get the headers that let their pages call the API; everyone else gets none, and
the browser keeps the answer from the page. Preflights (OPTIONS with Access-Control-Request-Method)
are answered before authentication, as browsers never sign them.
"""

from __future__ import annotations

Headers = list[tuple[bytes, bytes]]
# Every request header the API reads that a page may send: a preflight asking for one not named here fails, and
# the browser never sends the request (`Prefer: return=minimal` on POST /logs, and x-amz-content-sha256, which
# the AWS SDK's SigV4 signer adds, were left out).
ALLOWED_HEADERS = (
    b"authorization, content-type, content-encoding, prefer, x-amz-content-sha256, x-amz-date, "
    b"x-amz-security-token, x-request-id"
)
EXPOSED_HEADERS = b"x-request-id, retry-after"


def allows(origin: str, allowed: tuple[str, ...]) -> bool:
    """Whether `allowed` (cors_allow_origins) lets pages of `origin` call the API."""
    return bool(origin) and ("*" in allowed or origin in allowed)


def response_headers(origin: str, allowed: tuple[str, ...]) -> Headers:
    """What an answer to a request from `origin` carries: for an origin not allowed, only `Vary: Origin` when some
    are (a cache between must not give one origin's answer to another), else nothing."""
    if not allows(origin, allowed):
        return [(b"vary", b"origin")] if allowed else []
    return [
        (b"access-control-allow-origin", origin.encode("latin-1")),
        (b"access-control-expose-headers", EXPOSED_HEADERS),
        (b"vary", b"origin"),
    ]


def preflight_headers(origin: str, allowed: tuple[str, ...]) -> Headers:
    """The answer to a preflight from an allowed origin (empty: not allowed)."""
    if not allows(origin, allowed):
        return []
    return [
        *response_headers(origin, allowed),
        (b"access-control-allow-methods", b"GET, POST, DELETE, OPTIONS"),
        (b"access-control-allow-headers", ALLOWED_HEADERS),
        (b"access-control-max-age", b"600"),
    ]
