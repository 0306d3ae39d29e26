"""Why a sign-in page says it was sent back: a reason code in `/login?error=<code>`, each shown as a fixed
message. A code, not text, so a link cannot make loglake's own sign-in page say what its author likes
("paste your key at https://evil.example")."""

from __future__ import annotations

SIGN_IN_REASONS = {
    "unauthorized": "That key is not valid, or was revoked: sign in with an active key (llk_…).",
    "invalid_request": "Enter an API key to sign in.",
    "rate_limited": "Too many sign-ins with this key: wait a few seconds, then try again.",
    "cross_site_sign_in": "A sign-in must come from this page: type your key here.",
    "session_ended": "Your session has ended; sign in again.",
}
# Any other code: the sign-in did not go through, without repeating what the link said.
UNKNOWN_REASON = "Signing in did not succeed; try again."


def reason_message(code: str) -> str:
    """The message a sign-in page shows for ?error=code ("" for none)."""
    return SIGN_IN_REASONS.get(code, UNKNOWN_REASON) if code else ""
