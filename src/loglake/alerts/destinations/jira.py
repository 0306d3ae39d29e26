"""Jira (REST API v2, Cloud and Data Center): one issue per dedup key, made by the first event of
it, and every later event (an update, an acknowledgement, a resolution, or a new alert with the
same key) as a comment on that issue. The issue's key is kept in the outbox's tables.

Jira has no idempotency key: a process killed after Jira made an issue but before loglake recorded
it makes a second issue on the retry (README). Comments carry the delivery's key, so a repeat is
recognisable."""

from __future__ import annotations

import json
from typing import Annotated, ClassVar

import msgspec

from loglake.alerts.db import EVENT_KINDS
from loglake.alerts.destinations.base import (
    MAX_FACT,
    DeliveryFailed,
    DestinationConfig,
    Notice,
    SendContext,
    json_body,
    url_problem,
)
from loglake.alerts.secrets import SecretRef, TextOrSecret
from loglake.config_files import whole
from loglake.shorten import shortened

MAX_SUMMARY = 255
EVIDENCE_LINES = 20
ProjectKey = Annotated[str, msgspec.Meta(pattern=whole(r"[A-Z][A-Z0-9_]{0,49}"), description="a Jira project key")]


class Jira(DestinationConfig, frozen=True, forbid_unknown_fields=True, kw_only=True):
    type_name: ClassVar[str] = "jira"
    default_events: ClassVar[tuple[str, ...]] = EVENT_KINDS

    url: str  # the site, such as https://example.atlassian.net
    project: ProjectKey
    user: TextOrSecret  # the account's e-mail address (Cloud) or user name
    token: SecretRef  # its API token
    issue_type: str = "Task"
    labels: list[str] = msgspec.field(default_factory=lambda: ["loglake"])

    def problems(self) -> list[tuple[str, str]]:
        problem = url_problem(self.url)
        return [("url", problem)] if problem else []

    def send(self, notice: Notice, context: SendContext) -> str | None:
        auth = (context.secret(self.user), context.secret(self.token))
        base = self.url.rstrip("/") + "/rest/api/2/issue"
        headers = {"content-type": "application/json", "accept": "application/json"}
        if notice.remembered:
            comment = {"body": _text(notice) + f"\n\n(loglake delivery {notice.key})"}
            context.post(f"{base}/{notice.remembered}/comment", json_body(comment), headers, auth)
            return notice.remembered
        fields = {
            "project": {"key": self.project},
            "summary": notice.headline.replace("\n", " ")[:MAX_SUMMARY],
            "description": _text(notice),
            "issuetype": {"name": self.issue_type},
            "labels": self.labels,
        }
        answer = context.post(base, json_body({"fields": fields}), headers, auth)
        try:
            key = json.loads(answer.content)["key"]
        except (ValueError, KeyError, TypeError):
            raise DeliveryFailed("Jira's answer to the new issue has no issue key", retryable=False) from None
        if not isinstance(key, str):
            raise DeliveryFailed("Jira's answer to the new issue has no issue key", retryable=False)
        return key


def _text(notice: Notice) -> str:
    """Jira wiki markup: the facts, the runbook and the evidence in a {noformat} block."""
    parts = [f"*{shortened(notice.headline, MAX_FACT)}*", ""]  # (the title may hold a 64 KiB group value)
    parts += [f"*{label}:* {value}" for label, value in notice.facts()]
    if notice.alert["runbook"]:
        parts.append(f"*Runbook:* {notice.alert['runbook']}")
    lines = notice.evidence_lines(EVIDENCE_LINES)
    if lines:
        body = "\n".join(lines).replace("{noformat}", "{ noformat}")
        parts += ["", f"*Evidence* ({len(notice.alert['evidence'])} records kept):", "{noformat}", body, "{noformat}"]
    return "\n".join(parts)
