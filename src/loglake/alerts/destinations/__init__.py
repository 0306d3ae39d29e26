"""The destination types alerts can go to, by their `type:` in alerting.yml."""

from __future__ import annotations

from loglake.alerts.destinations.base import DestinationConfig
from loglake.alerts.destinations.chat import Slack, Teams
from loglake.alerts.destinations.email import Email
from loglake.alerts.destinations.jira import Jira
from loglake.alerts.destinations.pagerduty import PagerDuty
from loglake.alerts.destinations.webhook import Webhook

TYPES: dict[str, type[DestinationConfig]] = {
    kind.type_name: kind for kind in (Webhook, Slack, Teams, PagerDuty, Email, Jira)
}
