"""Detections end to end through a real `loglake serve`: records sent over HTTP fire a Sigma rule, a
Sigma correlation rule and a SQL rule on a 2-second schedule; each alert reaches the destinations its
routes name (real local receivers: one HTTP server standing for the webhook, Slack, Teams, PagerDuty
and Jira, and aiosmtpd for e-mail), each with the matching records as evidence; acknowledging and
resolving work over HTTP and through `loglake alerts ack|resolve`, and PagerDuty gets its `resolve`.
Every wait polls with a deadline; nothing depends on how long a step takes."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller

from tests.alerts.conftest import write_alerting
from tests.alerts.receivers import Answer, Received, Receiver
from tests.conftest import ServerProcess, free_port, poll, run_cli
from tests.e2e.test_rules_serve import query
from tests.rules.conftest import write_rule

pytestmark = pytest.mark.e2e

CRITICAL_ID = "aaaaaaaa-0000-4000-8000-000000000001"
FAILURES_ID = "aaaaaaaa-0000-4000-8000-000000000002"
SCANNER_ID = "aaaaaaaa-0000-4000-8000-000000000003"
RULES = {
    "critical.yml": f"""
        title: Critical record
        id: {CRITICAL_ID}
        level: critical
        logsource: {{product: loglake, service: app_logs}}
        detection: {{sel: {{severity: critical}}, condition: sel}}
        loglake: {{schedule: 2s, delay: 1s, group_by: [service], runbook: "https://runbooks.example/critical"}}
        """,
    "failures.yml": f"""
        title: Repeated login failures
        id: {FAILURES_ID}
        level: high
        tags: [attack.credential-access, attack.t1110]
        correlation:
          type: event_count
          rules: [login_failed]
          group-by: [attributes.user]
          timespan: 1m
          condition: {{gte: 3}}
        loglake: {{schedule: 2s, delay: 1s, alert_title: "{{count}} failed logins for {{attributes.user}}"}}
        ---
        title: A failed login
        name: login_failed
        logsource: {{product: loglake, service: app_logs}}
        detection: {{sel: {{message|contains: login failed}}, condition: sel}}
        """,
    "scanner.yml": f"""
        title: Secrets file probed
        id: {SCANNER_ID}
        level: medium
        tags: [attack.t1595]
        schedule: 2s
        delay: 1s
        query: >
          SELECT "timestamp", service, message, json_extract_string(attributes, '$.client') AS client
          FROM logs WHERE json_extract_string(attributes, '$.path') = '/.env'
        group_by: [client]
        """,
}
SECRETS = {"HOOK_SECRET": "whsec-e2e", "PD_KEY": "R0UTINGKEYE2E000000000000000000", "JIRA_TOKEN": "jira-e2e"}


@dataclass
class Mailbox:
    messages: list[Any] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        return "250 OK"


@pytest.fixture
def mailbox() -> Iterator[tuple[Controller, Mailbox]]:
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller, box
    controller.stop()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    issues = iter(range(1, 100))

    def answer(request: Received) -> Answer:
        if request.path == "/rest/api/2/issue":  # Jira: the issue it made
            return Answer(
                201, {"content-type": "application/json"}, json.dumps({"key": f"OPS-{next(issues)}"}).encode()
            )
        if request.path == "/v2/enqueue":  # PagerDuty Events API v2
            return Answer(202, {"content-type": "application/json"}, b'{"status":"success"}')
        return Answer()

    server.answer_for = answer
    yield server
    server.close()


def at(receiver: Receiver, path: str) -> list[Any]:
    """The JSON bodies the receiver got at `path`, in arrival order."""
    return [r.json() for r in list(receiver.requests) if r.path == path]


def test_records_fire_sigma_correlation_and_sql_rules_whose_alerts_reach_their_routes_and_are_acked_and_resolved(
    tmp_path: Path,
    server_factory: Callable[..., ServerProcess],
    admin_key_of: Callable[[ServerProcess], str],
    receiver: Receiver,
    mailbox: tuple[Controller, Mailbox],
) -> None:
    smtp, box = mailbox
    rules = tmp_path / "rules"
    for name, text in RULES.items():
        write_rule(rules, name, text)
    write_alerting(
        rules,
        f"""
        destinations:
          ops-hook: {{type: webhook, url: "{receiver.url}/hook", secret: {{env: HOOK_SECRET}}}}
          oncall: {{type: pagerduty, routing_key: {{env: PD_KEY}}, url: "{receiver.url}/v2/enqueue"}}
          chat: {{type: slack, url: "{receiver.url}/slack"}}
          team: {{type: teams, url: "{receiver.url}/teams"}}
          mail: {{type: email, smtp: "127.0.0.1:{smtp.port}", from: "loglake@example.test",
                  to: ["oncall@example.test"]}}
          tickets: {{type: jira, url: "{receiver.url}", project: OPS, user: bot@example.test,
                     token: {{env: JIRA_TOKEN}}}}
        routes:
          - {{match: {{level: [critical]}}, to: [oncall, chat, mail]}}
          - {{match: {{level: [high]}}, to: [team, tickets]}}
          - {{match: {{tags: ["attack.*"]}}, to: [ops-hook]}}
        """,
    )
    # A busy machine may fall behind a 2-second schedule: catching up must not skip the records' windows.
    server = server_factory(
        tmp_path / "data", "--rules-dir", str(rules), "--rules-catch-up-windows", "100000", extra_env=SECRETS
    )
    data = server.data_dir
    admin = {"authorization": f"Bearer {admin_key_of(server)}"}
    # A rule seen for the first time starts with its latest window: the records come after every rule's first.
    poll(
        lambda: len(query(data, "SELECT DISTINCT rule_id FROM rule_runs WHERE outcome = 'ok'")) == 3,
        "the first run of each rule",
    )
    with httpx.Client(base_url=server.url, timeout=10) as client:
        made = client.post("/admin/keys", headers=admin, json={"name": "oncall-bot", "scopes": ["read", "alerts"]})
        assert made.status_code == 201, made.text
        bot = {"authorization": f"Bearer {made.json()['secret']}"}
        records = [
            {"service": "db", "severity": "critical", "message": "disk /var/lib/db is gone"},
            *({"service": "auth", "severity": "warning", "message": "login failed", "attributes": {"user": "ann"}},)
            * 3,
            {"service": "auth", "severity": "warning", "message": "login failed", "attributes": {"user": "bob"}},
            {"service": "web", "message": "GET /.env 404", "attributes": {"path": "/.env", "client": "203.0.113.9"}},
        ]
        sent = client.post("/logs", headers=admin, json=records)
        assert sent.status_code == 201, sent.text

        def open_alerts() -> dict[str, dict] | None:
            found = client.get("/alerts", headers=bot, params={"status": "open"}).json()["alerts"]
            return {a["rule_id"]: a for a in found} if len(found) == 3 else None

        alerts = poll(open_alerts, "an alert of each rule")
        critical, failures, scanner = (alerts[i] for i in (CRITICAL_ID, FAILURES_ID, SCANNER_ID))
        assert (critical["title"], critical["group"], critical["match_count"]) == (
            "Critical record",
            {"service": "db"},
            1,
        )
        assert (failures["title"], failures["group"], failures["match_count"]) == (
            "3 failed logins for ann", {"attributes.user": "ann"}, 3
        )  # fmt: skip
        assert (scanner["level"], scanner["group"], scanner["match_count"]) == ("medium", {"client": "203.0.113.9"}, 1)

        # Each alert at its routes, with its evidence: critical to PagerDuty, Slack and e-mail; the high
        # correlation to Teams and Jira; the two ATT&CK-tagged ones to the webhook.
        receiver.wait_until(
            lambda r: (
                {q.path for q in r.requests} >= {"/v2/enqueue", "/slack", "/teams", "/rest/api/2/issue"}
                and sum(q.path == "/hook" for q in r.requests) >= 2
            )
        )
        poll(lambda: box.messages, "the e-mail")
        [trigger] = at(receiver, "/v2/enqueue")
        assert (trigger["event_action"], trigger["dedup_key"], trigger["routing_key"]) == (
            "trigger", critical["dedup_key"], SECRETS["PD_KEY"]
        )  # fmt: skip
        assert trigger["payload"]["severity"] == "critical" and trigger["payload"]["custom_details"]["matches"] == 1
        assert "disk /var/lib/db is gone" in trigger["payload"]["custom_details"]["evidence"][0]
        [slack] = at(receiver, "/slack")
        assert slack["text"] == "[CRITICAL] Critical record"
        assert "disk /var/lib/db is gone" in json.dumps(slack["blocks"])
        [mail] = box.messages
        assert mail["Subject"] == "[CRITICAL] Critical record" and mail["To"] == "oncall@example.test"
        assert "disk /var/lib/db is gone" in mail.get_body(("plain",)).get_content()
        [teams] = at(receiver, "/teams")
        card = teams["attachments"][0]["content"]
        assert card["body"][0]["text"] == "[HIGH] 3 failed logins for ann"
        assert json.dumps(card).count("login failed") == 3  # the three records of the evidence
        [issue] = at(receiver, "/rest/api/2/issue")
        assert issue["fields"]["summary"] == "[HIGH] 3 failed logins for ann"
        assert issue["fields"]["description"].count("auth warning login failed") == 3
        hooks = [r for r in receiver.requests if r.path == "/hook"]
        for request in hooks:  # signed as the README says: HMAC-SHA256 over "<timestamp>.<body>"
            signed = request.headers["x-loglake-timestamp"].encode() + b"." + request.body
            expected = hmac.new(SECRETS["HOOK_SECRET"].encode(), signed, hashlib.sha256).hexdigest()
            assert request.headers["x-loglake-signature"] == f"sha256={expected}"
        by_rule = {r.json()["alert"]["rule_id"]: r.json()["alert"] for r in hooks}
        assert set(by_rule) == {FAILURES_ID, SCANNER_ID}
        # the lake's attributes (JSON text in its rows) as the object GET /logs/{id} answers
        assert [e["attributes"] for e in by_rule[FAILURES_ID]["evidence"]] == [{"user": "ann"}] * 3
        assert by_rule[SCANNER_ID]["evidence"] == [
            {
                "timestamp": by_rule[SCANNER_ID]["first_seen"],
                "service": "web",
                "message": "GET /.env 404",
                "client": "203.0.113.9",
            }
        ]
        assert "json_extract_string(attributes, '$.path') = '/.env'" in by_rule[SCANNER_ID]["query"]
        assert not [r for r in receiver.requests if r.path not in {"/v2/enqueue", "/slack", "/teams", "/hook"}
                    and not r.path.startswith("/rest/api/2/issue")]  # fmt: skip

        # Acknowledge over HTTP, resolve with the CLI (through the server); and the other way round.
        acked = client.post(f"/alerts/{critical['id']}/acknowledge", headers=bot, json={"note": "on it"})
        assert acked.status_code == 200 and acked.json()["status"] == "acknowledged", acked.text
        resolved = run_cli(
            "alerts", "resolve", critical["id"], "--note", "disk replaced", "--url", server.url,
            "--api-key", bot["authorization"].removeprefix("Bearer "),
        )  # fmt: skip
        assert resolved.exit_code == 0, resolved.output
        assert resolved.output == f"resolved {critical['id']}: Critical record\n"
        acked_by_cli = run_cli(
            "alerts", "ack", scanner["id"], "--url", server.url, "--api-key", bot["authorization"][7:]
        )  # fmt: skip
        assert acked_by_cli.exit_code == 0, acked_by_cli.output
        assert client.post(f"/alerts/{scanner['id']}/resolve", headers=bot).status_code == 200
        assert client.post(f"/alerts/{scanner['id']}/resolve", headers=bot).status_code == 409  # resolved already
        for alert, note in ((critical, "disk replaced"), (scanner, None)):
            shown = client.get(f"/alerts/{alert['id']}", headers=bot).json()
            assert shown["status"] == "resolved"
            assert (shown["status_change"]["by"], shown["status_change"]["note"]) == ("oncall-bot", note)

        # PagerDuty: acknowledge, then resolve, on the alert's dedup key.
        receiver.wait_until(lambda r: len(at(r, "/v2/enqueue")) == 3)
        assert [(e["event_action"], e["dedup_key"]) for e in at(receiver, "/v2/enqueue")] == [
            ("trigger", critical["dedup_key"]),
            ("acknowledge", critical["dedup_key"]),
            ("resolve", critical["dedup_key"]),
        ]
        receiver.wait_until(lambda r: sum(q.path == "/hook" for q in r.requests) == 4)
        assert [r.json()["event"] for r in receiver.requests if r.path == "/hook"][2:] == ["acknowledge", "resolve"]
        poll(lambda: len(box.messages) == 2, "the e-mail of the resolution")
        assert box.messages[1]["Subject"] == "[CRITICAL] Critical record (resolved)"

        def all_delivered() -> dict | None:
            answer = client.get("/alerts/deliveries", headers=bot).json()
            return answer if {d["state"] for d in answer["deliveries"]} == {"sent"} else None

        deliveries = poll(all_delivered, "every delivery to be made")
        assert deliveries["routing_problems"] == [] and deliveries["worker_error"] is None
