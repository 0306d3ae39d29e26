"""A generic webhook: the alert as JSON, signed so the receiver can tell it came from us, and when.

Headers (README, "Alert delivery"):
- `X-Loglake-Timestamp`: seconds since the epoch when this attempt was sent;
- `X-Loglake-Signature`: `sha256=` and the hex HMAC-SHA256, keyed with the destination's `secret`, of
  the timestamp, a `.`, and the body's bytes (only when a secret is set);
- `Idempotency-Key`: the same on every attempt of one delivery, so a receiver drops repeats;
- `X-Loglake-Event`: trigger, update, acknowledge or resolve.
A receiver recomputes the signature, compares it in constant time, and rejects a timestamp older than
a few minutes (a replay) and a key it has already seen (a retry it already handled).
"""

from __future__ import annotations

import hashlib
import hmac
from typing import ClassVar

from loglake.alerts.db import EVENT_KINDS
from loglake.alerts.destinations.base import (
    DestinationConfig,
    Notice,
    SendContext,
    alert_document,
    json_body,
    url_problem,
)
from loglake.alerts.secrets import SecretRef, TextOrSecret

PAYLOAD_VERSION = 1


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """The X-Loglake-Signature value of a body sent at `timestamp` (what a receiver recomputes)."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


class Webhook(DestinationConfig, frozen=True, forbid_unknown_fields=True, kw_only=True):
    type_name: ClassVar[str] = "webhook"
    default_events: ClassVar[tuple[str, ...]] = EVENT_KINDS  # a program decides for itself what to ignore

    url: TextOrSecret
    secret: SecretRef | None = None

    def problems(self) -> list[tuple[str, str]]:
        problem = url_problem(self.url)
        return [("url", problem)] if problem else []

    def send(self, notice: Notice, context: SendContext) -> str | None:
        url = context.url(self.url, "url")
        body = json_body(
            {
                "version": PAYLOAD_VERSION,
                "event": notice.kind,
                "event_id": notice.seq,
                "idempotency_key": notice.key,
                "alert": alert_document(notice.alert),
                "alert_url": notice.link,
            }
        )
        timestamp = str(int(context.clock()))
        headers = {
            "content-type": "application/json",
            "idempotency-key": notice.key,
            "x-loglake-event": notice.kind,
            "x-loglake-timestamp": timestamp,
        }
        if self.secret is not None:
            headers["x-loglake-signature"] = signature(context.secret(self.secret), timestamp, body)
        context.post(url, body, headers)
        return None
