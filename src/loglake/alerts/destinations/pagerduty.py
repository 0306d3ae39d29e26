"""PagerDuty, through its Events API v2: `trigger` with the alert's dedup key as `dedup_key` (an
update triggers again with the same key, which PagerDuty folds into the open incident), `acknowledge`
and `resolve` with the same key. The endpoint is `url` (the EU service region, or a local receiver)."""

from __future__ import annotations

import hashlib
from typing import Any, ClassVar

from loglake.alerts.db import EVENT_KINDS
from loglake.alerts.destinations.base import DestinationConfig, Notice, SendContext, json_body, url_problem
from loglake.alerts.secrets import SecretRef
from loglake.times import format_datetime

EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
SEVERITIES = {"critical": "critical", "high": "error", "medium": "warning", "low": "info", "informational": "info"}
ACTIONS = {"trigger": "trigger", "update": "trigger", "acknowledge": "acknowledge", "resolve": "resolve"}
MAX_SUMMARY = 1024  # PagerDuty's limits on payload.summary and dedup_key
MAX_DEDUP_KEY = 255
EVIDENCE_LINES = 10


class PagerDuty(DestinationConfig, frozen=True, forbid_unknown_fields=True, kw_only=True):
    type_name: ClassVar[str] = "pagerduty"
    default_events: ClassVar[tuple[str, ...]] = EVENT_KINDS

    routing_key: SecretRef  # the integration key of an Events API v2 integration
    url: str = EVENTS_URL
    source: str = "loglake"  # payload.source: where the problem is

    def problems(self) -> list[tuple[str, str]]:
        problem = url_problem(self.url)
        found = [("url", problem)] if problem else []
        if not self.source.strip():  # (PagerDuty refuses an event whose payload.source is blank: every one, 400)
            found.append(("source", "is empty: name where the problem is (default: loglake)"))
        return found

    def send(self, notice: Notice, context: SendContext) -> str | None:
        event = pagerduty_event(notice, context.secret(self.routing_key), self.source)
        context.post(self.url, json_body(event), {"content-type": "application/json"})
        return None


def dedup_key(key: str) -> str:
    """The alert's dedup key, or a hash of it when it is longer than PagerDuty takes."""
    if len(key) <= MAX_DEDUP_KEY:
        return key
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def pagerduty_event(notice: Notice, routing_key: str, source: str) -> dict[str, Any]:
    alert = notice.alert
    action = ACTIONS[notice.kind]
    event: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": action,
        "dedup_key": dedup_key(alert["dedup_key"]),
    }
    if action != "trigger":
        return event
    lines = notice.evidence_lines(EVIDENCE_LINES)
    event["client"] = "loglake"
    event["payload"] = {
        "summary": alert["title"][:MAX_SUMMARY],
        "source": source,
        "severity": SEVERITIES[alert["level"]],
        "timestamp": format_datetime(alert["last_seen_ms"]),
        "class": alert["rule_title"],
        "group": alert["rule_id"],
        "custom_details": {
            "alert_id": alert["id"],
            "rule": f"{alert['rule_title']} ({alert['rule_id']})",
            "level": alert["level"],
            "matches": alert["match_count"],
            "first_seen": format_datetime(alert["first_seen_ms"]),
            "last_seen": format_datetime(alert["last_seen_ms"]),
            "group": alert["group_values"],
            "tags": alert["tags"],
            "evidence": lines,
            "evidence_kept": len(alert["evidence"]),
            "query": alert["query"],
        },
    }
    links = []
    if notice.link:
        event["client_url"] = notice.link
        links.append({"href": notice.link, "text": "Alert in loglake"})
    if alert["runbook"]:
        links.append({"href": alert["runbook"], "text": "Runbook"})
    if links:
        event["links"] = links
    return event
