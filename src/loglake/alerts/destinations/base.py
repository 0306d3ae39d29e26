"""What every destination shares: its settings in alerting.yml, the notice it formats, and how a send fails.

A destination type is a config Struct (its fields in alerting.yml, its default events) with a `send`
method that formats one notice in the service's own format and hands it over. A send either returns,
or raises DeliveryFailed saying whether a later attempt may succeed (a timeout, a 429 or a 5xx) or
cannot (a 400: the payload or the credentials are wrong, and retrying would only repeat it).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, ClassVar
from urllib.parse import quote

import msgspec

from loglake import __version__
from loglake.alerts.db import EVENT_KINDS
from loglake.alerts.evidence import raw_decoded, with_attributes_decoded
from loglake.alerts.redact import RedactItem
from loglake.alerts.secrets import SecretRef, Secrets, TextOrSecret
from loglake.http_call import Connection
from loglake.retry import retry_after_seconds
from loglake.rules.model import Duration
from loglake.shorten import shortened
from loglake.times import format_datetime
from loglake.urls import is_http_url

if TYPE_CHECKING:
    import httpx

EventKind = Annotated[
    str,
    msgspec.Meta(pattern=r"\A(?:" + "|".join(EVENT_KINDS) + r")\Z", description=f"one of {', '.join(EVENT_KINDS)}"),
]
# Statuses that mean "try again later" (RFC 9110: 408, 429 and the 5xx family; 501 and 505 will not change).
RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504, 507, 509})
MAX_ERROR_TEXT = 300
MAX_REPLY_BYTES = 64 * 1024  # of a receiver's answer, read at most (_start_of)
# Characters of a fact's value (a group value may be a 64 KiB attribute) and of an evidence record (a message may be
# 256 KiB) in a notice's text: Teams refuses a message over 28 KB, Jira a description or comment over 32,767
# characters (the webhook's JSON carries them whole).
MAX_FACT = 1000
MAX_EVIDENCE_LINE = 500
ALERT_PAGE = "/ui/alerts/"  # the web UI's page of an alert: this and its id
USER_AGENT = f"loglake/{__version__}"  # on every destination's requests: receivers may allow-list by it


class DestinationConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The settings every destination has, beside its type's own."""

    type_name: ClassVar[str]
    default_events: ClassVar[tuple[str, ...]]

    redact: list[RedactItem] = msgspec.field(default_factory=list)  # before anything leaves the machine
    events: list[EventKind] | None = None  # which alert events it gets; None: its type's default_events
    timeout: Duration = "10s"  # per attempt: over HTTP all of it, over SMTP its connect and each read or write
    concurrency: Annotated[int, msgspec.Meta(ge=1, le=32)] = 2  # attempts in flight at once
    # then dead-lettered. 12: pauses of up to 2 s, 4 s, ... 10 min (BACKOFF, full jitter) of up to 37 min in all,
    # ~18 on average, past a receiver's restart or a short outage; 8 spent theirs in ~2 min (a new user's trial: a
    # receiver down for a few minutes dead-lettered its triggers).
    attempts: Annotated[int, msgspec.Meta(ge=1, le=50)] = 12

    def takes(self, kind: str) -> bool:
        return kind in (self.default_events if self.events is None else self.events)

    def problems(self) -> list[tuple[str, str]]:
        """Problems msgspec cannot see (field, message): URLs written in the file, and the like."""
        return []

    def send(self, notice: Notice, context: SendContext) -> str | None:
        """Deliver the notice; returns what to remember for later notices (a Jira issue key) or None."""
        raise NotImplementedError


def url_problem(value: TextOrSecret, what: str = "an http(s) URL") -> str | None:
    """Why a URL written in the file is not one (a reference is checked when it is resolved)."""
    if isinstance(value, SecretRef):
        return None
    return None if is_http_url(value) else f"is not {what}"


@dataclass(frozen=True)
class Notice:
    """One alert event for one destination: what the payload is made of. `alert` is the alerts row as a
    dict (JSON columns decoded), already redacted for this destination; `key` is the delivery's
    idempotency key, the same on every attempt."""

    key: str
    destination: str
    kind: str  # one of EVENT_KINDS
    seq: int
    at_ms: int
    alert: dict[str, Any]
    attempt: int  # 0 on the first attempt
    remembered: str | None = None  # what an earlier send to this destination returned for this dedup key
    public_url: str = ""  # the web UI's address as people open it (the server's --public-url); "" = no links

    @property
    def link(self) -> str | None:
        """The alert's page in the web UI, when the server knows its public address."""
        if not self.public_url:
            return None
        return f"{self.public_url.rstrip('/')}{ALERT_PAGE}{quote(self.alert['id'], safe='')}"

    @property
    def headline(self) -> str:
        """`[HIGH] Brute force on alice (resolved)`: level, title and what happened."""
        after = {"trigger": "", "update": " (updated)", "acknowledge": " (acknowledged)", "resolve": " (resolved)"}
        title = " ".join(self.alert["title"].split())  # one line: it becomes a mail subject, a Jira summary
        return f"[{self.alert['level'].upper()}] {title}{after[self.kind]}"

    def facts(self) -> list[tuple[str, str]]:
        """The alert's facts as (label, text), in the order every chat and mail format shows them, each text of
        MAX_FACT characters at most."""
        alert = self.alert
        facts = [
            ("Level", alert["level"]),
            ("Status", alert["status"]),
            ("Rule", f"{alert['rule_title']} ({alert['rule_id']})"),
            ("Matches", str(alert["match_count"])),
            ("First seen", format_datetime(alert["first_seen_ms"])),
            ("Last seen", format_datetime(alert["last_seen_ms"])),
        ]
        if alert["group_values"]:
            facts.append(("Group", ", ".join(f"{k}={v}" for k, v in alert["group_values"].items())))
        if alert["tags"]:
            facts.append(("Tags", ", ".join(alert["tags"])))
        # Who changed the status, if this event is that change (an event keeps the status it made; one
        # written before events kept it is routed with the alert's later status, and names nobody).
        if alert.get("status_by") and _STATUS_OF_EVENT.get(self.kind) == alert["status"]:
            note = f": {alert['status_note']}" if alert.get("status_note") else ""
            facts.append(("By", f"{alert['status_by']}{note}"))
        facts.append(("Dedup key", alert["dedup_key"]))
        return [(label, shortened(text, MAX_FACT)) for label, text in facts]

    def evidence_lines(self, limit: int) -> list[str]:
        """The first `limit` evidence records, one compact line each, of MAX_EVIDENCE_LINE characters at most."""
        return [shortened(_evidence_line(record), MAX_EVIDENCE_LINE) for record in self.alert["evidence"][:limit]]


_STATUS_OF_EVENT = {"acknowledge": "acknowledged", "resolve": "resolved"}


def _evidence_line(record: Any) -> str:
    if not isinstance(record, dict):
        return json.dumps(record, ensure_ascii=False, default=str)
    when = record.get("datetime") or (
        format_datetime(record["timestamp"]) if isinstance(record.get("timestamp"), int) else ""
    )
    head = " ".join(str(record[k]) for k in ("service", "severity") if record.get(k) is not None)
    message = record.get("message")
    if message is None:
        message = json.dumps(
            {k: v for k, v in record.items() if k not in ("datetime", "timestamp")},
            ensure_ascii=False,
            default=raw_decoded,
        )
    return " ".join(part for part in (when, head, str(message)) if part)


class DeliveryFailed(Exception):
    """A send that did not go through. `retryable`: a later attempt may succeed; `retry_after`: the
    least wait the receiver asked for (seconds); `status`: the HTTP or SMTP reply code, if any."""

    def __init__(
        self, message: str, *, retryable: bool, retry_after: float | None = None, status: int | None = None
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after
        self.status = status


@dataclass
class SendContext:
    """What a send may use: secrets, the destination's HTTP client (made on first use) and the clock."""

    secrets: Secrets
    http: Callable[[], httpx.Client]
    clock: Callable[[], float]
    timeout: float  # seconds: the limit of each HTTP request, whole, and of each SMTP connect, read or write
    resolved: list[str] = field(default_factory=list)  # setting values this send used, to scrub from errors
    status: int | None = None  # the receiver's reply code to the send's last request, once it succeeded
    warning: str | None = None  # what went wrong in a send that went through (a recipient refused), kept as its error

    def secret(self, ref: TextOrSecret) -> str:
        value = self.secrets.value(ref)
        self.resolved.append(value)  # a URL written in the file is a credential too (Slack's, Teams')
        return value

    def url(self, ref: TextOrSecret, what: str) -> str:
        """A URL setting's value, checked: one kept in a secret is seen only now."""
        value = self.secret(ref)
        if not is_http_url(value):
            raise DeliveryFailed(f"the {what} in {ref} is not an http(s) URL", retryable=False)
        return value

    def post(self, url: str, body: bytes, headers: dict[str, str], auth: tuple[str, str] | None = None) -> Reply:
        """POST as loglake (USER_AGENT), all of it within the timeout, reading at most MAX_REPLY_BYTES of the reply;
        a failed answer or transport error is DeliveryFailed (retryable or not). The client keeps no connection
        between attempts (http_call: the deadline shuts the attempt's own)."""
        import httpx

        connection = Connection()
        deadline = connection.deadline(self.timeout)
        try:
            deadline.start()
            request = self.http().stream(
                "POST",
                url,
                content=body,
                headers={"user-agent": USER_AGENT, **headers},
                auth=auth,
                extensions={"trace": connection.trace},
            )
            with request as response:
                reply = Reply(response.status_code, _start_of(response))
                encoding = response.encoding or "utf-8"
        except httpx.HTTPError as e:
            if isinstance(e, httpx.TimeoutException) or connection.timed_out:
                raise DeliveryFailed("timed out", retryable=True) from None
            raise DeliveryFailed(f"{type(e).__name__}: {e}", retryable=True) from None
        finally:
            deadline.cancel()
        if response.is_success:
            self.status = response.status_code
            return reply
        text = " ".join(reply.content[: MAX_ERROR_TEXT * 4].decode(encoding, "replace")[:MAX_ERROR_TEXT].split())
        if response.has_redirect_location:  # (an http:// URL of a service on https://, most often)
            where = " ".join(response.headers["location"][:MAX_ERROR_TEXT].split())
            text = f"a redirect to {where}, which delivery does not follow: make that the url"
        message = f"HTTP {response.status_code}" + (f": {text}" if text else "")
        retryable = response.status_code in RETRYABLE_STATUSES
        retry_after = retry_after_seconds(response.headers.get("retry-after"), self.clock()) if retryable else None
        raise DeliveryFailed(message, retryable=retryable, retry_after=retry_after, status=response.status_code)


@dataclass(frozen=True)
class Reply:
    """A receiver's answer to a send: its status, and the start of its body (MAX_REPLY_BYTES at most)."""

    status: int
    content: bytes


def _start_of(response: httpx.Response) -> bytes:
    """The first MAX_REPLY_BYTES of a reply's body, the rest never read: what a send needs of it (an error's
    text, a new Jira issue's key) is far less, and a broken or hostile receiver's endless answer would otherwise
    be held in memory whole."""
    content = bytearray()
    for chunk in response.iter_bytes():
        content += chunk
        if len(content) >= MAX_REPLY_BYTES:
            break
    return bytes(content[:MAX_REPLY_BYTES])


# (msgspec: evidence attributes, msgspec.Raw, are sent as the JSON text the lake keeps, their numbers as sent)
_encode_body = msgspec.json.Encoder(enc_hook=str).encode


def json_body(value: Any) -> bytes:
    return _encode_body(value)


def alert_document(alert: dict[str, Any]) -> dict[str, Any]:
    """The alert as JSON for other systems (the webhook body, PagerDuty's custom details): times as ISO-8601."""
    return {
        "id": alert["id"],
        "rule_id": alert["rule_id"],
        "rule_title": alert["rule_title"],
        "title": alert["title"],
        "level": alert["level"],
        "tags": alert["tags"],
        "status": alert["status"],
        "dedup_key": alert["dedup_key"],
        "group": alert["group_values"],
        "first_seen": format_datetime(alert["first_seen_ms"]),
        "last_seen": format_datetime(alert["last_seen_ms"]),
        "match_count": alert["match_count"],
        "window": {"start": format_datetime(alert["window_start_ms"]), "end": format_datetime(alert["window_end_ms"])},
        "runbook": alert["runbook"],
        "status_by": alert["status_by"],
        "status_note": alert["status_note"],
        "evidence": [with_attributes_decoded(record) for record in alert["evidence"]],
        "query": alert["query"],
    }
