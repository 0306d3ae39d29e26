"""Chat destinations: Slack (an incoming webhook, Block Kit) and Microsoft Teams (a Workflows or
incoming-webhook URL, an Adaptive Card). Both get the events a person wants to read in a channel:
an alert raised, acknowledged or resolved; not every update of a running alert's count."""

from __future__ import annotations

from typing import Any, ClassVar

from loglake.alerts.destinations.base import (
    MAX_FACT,
    DestinationConfig,
    Notice,
    SendContext,
    json_body,
    url_problem,
)
from loglake.alerts.secrets import TextOrSecret
from loglake.shorten import shortened

CHAT_EVENTS = ("trigger", "acknowledge", "resolve")
EVIDENCE_LINES = 5
# Slack's limits (Block Kit reference): header text 150 characters, a section's text 3000, its fields 10
# of 2000 each; a message past them is refused with `invalid_blocks`.
SLACK_HEADER = 150
SLACK_TEXT = 3000
SLACK_FIELDS = 10
SLACK_FIELD = 2000


def _slack_escape(text: str) -> str:
    """Slack's mrkdwn reads &, < and > as markup (links, mentions): escape them as its docs say."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class Slack(DestinationConfig, frozen=True, forbid_unknown_fields=True, kw_only=True):
    type_name: ClassVar[str] = "slack"
    default_events: ClassVar[tuple[str, ...]] = CHAT_EVENTS

    url: TextOrSecret  # the incoming webhook's URL, itself the credential: best kept by reference

    def problems(self) -> list[tuple[str, str]]:
        problem = url_problem(self.url)
        return [("url", problem)] if problem else []

    def send(self, notice: Notice, context: SendContext) -> str | None:
        url = context.url(self.url, "url")
        context.post(url, json_body(slack_message(notice)), {"content-type": "application/json"})
        return None


def slack_message(notice: Notice) -> dict[str, Any]:
    facts = notice.facts()
    fields = [
        {"type": "mrkdwn", "text": shortened(f"*{label}*\n{_slack_escape(text)}", SLACK_FIELD)}
        for label, text in facts[:SLACK_FIELDS]
    ]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": shortened(notice.headline, SLACK_HEADER)}},
        {"type": "section", "fields": fields},
    ]
    lines = notice.evidence_lines(EVIDENCE_LINES)
    if lines:
        code = _slack_escape("\n".join(lines)).replace("```", "'''")
        text = (
            shortened(f"*Evidence* ({len(notice.alert['evidence'])} records kept)\n```{code}", SLACK_TEXT - 3) + "```"
        )
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text}})
    buttons = [
        {"type": "button", "text": {"type": "plain_text", "text": text}, "url": url}
        for text, url in (("Open in loglake", notice.link), ("Runbook", notice.alert["runbook"]))
        if url
    ]
    if buttons:
        blocks.append({"type": "actions", "elements": buttons})
    context_text = f"loglake alert {notice.alert['id']} · {notice.kind}"
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": _slack_escape(context_text)}]})
    return {"text": _slack_escape(notice.headline), "blocks": blocks}


class Teams(DestinationConfig, frozen=True, forbid_unknown_fields=True, kw_only=True):
    type_name: ClassVar[str] = "teams"
    default_events: ClassVar[tuple[str, ...]] = CHAT_EVENTS

    url: TextOrSecret  # a Workflows ("post to a channel when a webhook request is received") URL

    def problems(self) -> list[tuple[str, str]]:
        problem = url_problem(self.url)
        return [("url", problem)] if problem else []

    def send(self, notice: Notice, context: SendContext) -> str | None:
        url = context.url(self.url, "url")
        context.post(url, json_body(teams_message(notice)), {"content-type": "application/json"})
        return None


_TEAMS_COLORS = {"critical": "Attention", "high": "Attention", "medium": "Warning"}


def teams_message(notice: Notice) -> dict[str, Any]:
    """A message with one Adaptive Card attachment (schema 1.4, what Teams renders)."""
    color = "Good" if notice.kind == "resolve" else _TEAMS_COLORS.get(notice.alert["level"], "Default")
    body: list[dict[str, Any]] = [
        {
            "type": "TextBlock",
            "text": shortened(notice.headline, MAX_FACT),  # (the title may hold a 64 KiB group value)
            "weight": "Bolder",
            "size": "Medium",
            "color": color,
            "wrap": True,
        },
        {"type": "FactSet", "facts": [{"title": label, "value": text} for label, text in notice.facts()]},
    ]
    lines = notice.evidence_lines(EVIDENCE_LINES)
    if lines:
        body.append({"type": "TextBlock", "text": "Evidence", "weight": "Bolder", "wrap": True})
        body.extend(
            {"type": "TextBlock", "text": line, "fontType": "Monospace", "size": "Small", "wrap": True}
            for line in lines
        )
    card: dict[str, Any] = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
    }
    actions = [
        {"type": "Action.OpenUrl", "title": title, "url": url}
        for title, url in (("Open in loglake", notice.link), ("Runbook", notice.alert["runbook"]))
        if url
    ]
    if actions:
        card["actions"] = actions
    return {
        "type": "message",
        "attachments": [
            {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": card}
        ],
    }
