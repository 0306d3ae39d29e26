"""The headers every answer carries, so a browser never runs script or loads anything from elsewhere in
loglake's pages, never guesses a type, never frames them and never sends their addresses on; and the one of
what credentials read, so a browser never keeps it."""

from __future__ import annotations

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),  # (their own origin in Origin: auth.from_another_site)
    (b"x-frame-options", b"DENY"),
]
# On a GET or HEAD answered to credentials (records, keys, alerts, a session's CSRF token): without it, a browser
# keeps the answer in its cache on disk, readable after signing out by whoever uses the machine next. (Answers to
# other methods are never kept; the UI's pages and assets hold no data, and keep their own caching.)
NO_STORE = (b"cache-control", b"no-store")
