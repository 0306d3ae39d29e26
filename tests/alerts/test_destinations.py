"""Each destination's payload, as its service documents it, received by real local servers (HTTP and
SMTP), and which alert events each type gets."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from loglake import __version__
from loglake.alerts.store import change_status
from tests.alerts.conftest import settle, states
from tests.alerts.receivers import Answer, Receiver, change_alert, insert_alert
from tests.certificates import Certificates
from tests.conftest import free_port


def only(name: str, spec: str) -> str:
    return f"destinations:\n  {name}: {spec}\nroutes:\n  - {{to: [{name}]}}\n"


# -- webhook -----------------------------------------------------------------------------------


def test_webhook_body_and_signature_verify_as_the_readme_says(make_delivery, alerts_db, receiver, clock, monkeypatch):
    monkeypatch.setenv("HOOK_SECRET", "whsec-test-1")
    delivery = make_delivery(only("hook", f'{{type: webhook, url: "{receiver.url}/in", secret: {{env: HOOK_SECRET}}}}'))
    alert = insert_alert(alerts_db, level="critical")
    settle(delivery)
    (request,) = receiver.requests
    timestamp = request.headers["x-loglake-timestamp"]
    assert timestamp == str(int(clock.now))
    # What a receiver does: HMAC-SHA256 over "<timestamp>.<body>" with the shared secret.
    expected = hmac.new(b"whsec-test-1", timestamp.encode() + b"." + request.body, hashlib.sha256).hexdigest()
    assert request.headers["x-loglake-signature"] == f"sha256={expected}"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-loglake-event"] == "trigger"
    body = request.json()
    assert body["version"] == 1 and body["event"] == "trigger" and body["event_id"] == 1
    assert body["idempotency_key"] == request.headers["idempotency-key"]
    assert body["alert"]["id"] == alert["id"]
    assert body["alert"]["dedup_key"] == alert["dedup_key"]
    assert body["alert"]["level"] == "critical"
    assert body["alert"]["first_seen"] == "2025-12-02T18:26:40.000Z"
    assert body["alert"]["evidence"] == alert["evidence"]
    assert body["alert"]["group"] == {"user": alert["group_values"]["user"]}


def test_webhook_without_a_secret_is_sent_unsigned_and_gets_every_event(make_delivery, alerts_db, receiver):
    delivery = make_delivery(only("hook", f'{{type: webhook, url: "{receiver.url}/in"}}'))
    alert = insert_alert(alerts_db)
    for kind in ("update", "acknowledge", "resolve"):
        change_alert(alerts_db, alert["id"], kind)
    settle(delivery)
    assert [r.json()["event"] for r in receiver.requests] == ["trigger", "update", "acknowledge", "resolve"]
    assert "x-loglake-signature" not in receiver.requests[0].headers


def every_http_destination(receiver) -> str:
    """alerting.yml routing every alert to a webhook, Slack, Teams and PagerDuty at `receiver` (PD_KEY set)."""
    return f"""
        destinations:
          hook: {{type: webhook, url: "{receiver.url}/hook"}}
          chat: {{type: slack, url: "{receiver.url}/slack"}}
          teams: {{type: teams, url: "{receiver.url}/teams"}}
          oncall: {{type: pagerduty, routing_key: {{env: PD_KEY}}, url: "{receiver.url}/pd"}}
        routes: [{{to: [hook, chat, teams, oncall]}}]
        """


def test_every_http_destination_says_it_is_loglake_and_evidence_attributes_are_an_object(
    make_delivery, alerts_db, receiver, monkeypatch
):
    """A receiver may allow-list by User-Agent (a trial found Slack and PagerDuty sent httpx's), and the
    lake's attributes (JSON text in its rows, NULL for a record sent without) reach a webhook as the object
    GET /logs/{id} answers."""
    monkeypatch.setenv("PD_KEY", "k")
    delivery = make_delivery(every_http_destination(receiver))
    attributes = '{"ip":"198.51.100.50","tries":3,"ratio":1.50}'  # (its numbers as sent: 1.50 was 1.5)
    record = {"service": "auth", "message": "login failed", "attributes": attributes}
    without = {"service": "auth", "message": "sent without attributes", "attributes": None}  # (NULL in the lake)
    evidence = [record, {"message": "a SQL rule's own column", "attributes": "not json"}, without, {"n": 3}]
    insert_alert(alerts_db, evidence=evidence)
    settle(delivery)
    agents = {r.path: r.headers["user-agent"] for r in receiver.requests}
    assert agents == dict.fromkeys(["/hook", "/slack", "/teams", "/pd"], f"loglake/{__version__}")
    [hook] = [r.json() for r in receiver.requests if r.path == "/hook"]
    first, second, third, fourth = hook["alert"]["evidence"]
    assert first["attributes"] == {"ip": "198.51.100.50", "tries": 3, "ratio": 1.5}
    assert second["attributes"] == "not json"
    assert third["attributes"] == {}  # as GET /logs/{id} answers a record sent without any
    assert fourth == {"n": 3}  # (a SQL rule's row without the column: none added)
    [body] = [r.body.decode() for r in receiver.requests if r.path == "/hook"]
    assert f'"attributes":{attributes}' in body


# -- Slack and Teams -----------------------------------------------------------------------------


def test_slack_gets_block_kit_for_raised_acknowledged_and_resolved_alerts(make_delivery, alerts_db, receiver):
    delivery = make_delivery(only("chat", f'{{type: slack, url: "{receiver.url}/services/T0/B0/x"}}'))
    alert = insert_alert(alerts_db, title="Failures for <@channel> & co")
    change_alert(alerts_db, alert["id"], "update")  # not for a channel: each run of the rule would post
    change_alert(alerts_db, alert["id"], "acknowledge", status_by="alice", status_note="looking")
    settle(delivery)
    change_alert(alerts_db, alert["id"], "resolve")
    settle(delivery)
    assert [kind for _, kind, _, _ in states(alerts_db)] == ["trigger", "acknowledge", "resolve"]
    trigger, acknowledged, resolved = (r.json() for r in receiver.requests)
    assert trigger["text"] == "[HIGH] Failures for &lt;@channel&gt; &amp; co"
    header, facts, evidence, actions, context = trigger["blocks"]
    assert header == {"type": "header", "text": {"type": "plain_text", "text": "[HIGH] Failures for <@channel> & co"}}
    assert facts["type"] == "section" and len(facts["fields"]) <= 10
    assert facts["fields"][0] == {"type": "mrkdwn", "text": "*Level*\nhigh"}
    assert evidence["type"] == "section" and "login failed for" in evidence["text"]["text"]
    assert evidence["text"]["text"].endswith("```")
    assert actions["elements"][0]["url"] == alert["runbook"]
    assert context["type"] == "context"
    assert acknowledged["blocks"][0]["text"]["text"].endswith("(acknowledged)")
    assert {"type": "mrkdwn", "text": "*By*\nalice: looking"} in acknowledged["blocks"][1]["fields"]
    assert resolved["blocks"][0]["text"]["text"].endswith("(resolved)")


def test_teams_gets_an_adaptive_card(make_delivery, alerts_db, receiver, monkeypatch):
    monkeypatch.setenv("TEAMS_URL", f"{receiver.url}/workflows/run")
    delivery = make_delivery(only("team", "{type: teams, url: {env: TEAMS_URL}}"))
    insert_alert(alerts_db, level="critical")
    settle(delivery)
    (request,) = receiver.requests
    assert request.path == "/workflows/run"
    message = request.json()
    assert message["type"] == "message"
    (attachment,) = message["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard" and card["version"] == "1.4"
    assert card["$schema"] == "http://adaptivecards.io/schemas/adaptive-card.json"
    title, facts, *rest = card["body"]
    assert title["type"] == "TextBlock" and title["text"].startswith("[CRITICAL] ") and title["color"] == "Attention"
    assert facts["type"] == "FactSet" and facts["facts"][0] == {"title": "Level", "value": "critical"}
    assert rest[0]["text"] == "Evidence" and "login failed" in rest[1]["text"]
    assert card["actions"] == [
        {"type": "Action.OpenUrl", "title": "Runbook", "url": "https://runbooks.example/auth-failures"}
    ]


# -- PagerDuty -----------------------------------------------------------------------------------


def test_pagerduty_events_v2_trigger_update_acknowledge_resolve_share_the_dedup_key(
    make_delivery, alerts_db, receiver, monkeypatch
):
    monkeypatch.setenv("PD_KEY", "R0UTINGKEY0000000000000000000000")
    receiver.default = Answer(202, {"content-type": "application/json"}, b'{"status":"success"}')
    delivery = make_delivery(
        only("oncall", f'{{type: pagerduty, routing_key: {{env: PD_KEY}}, url: "{receiver.url}/v2/enqueue"}}')
    )
    alert = insert_alert(alerts_db)
    for kind in ("update", "acknowledge", "resolve"):
        change_alert(alerts_db, alert["id"], kind)
    settle(delivery)
    trigger, update, acknowledge, resolve = (r.json() for r in receiver.requests)
    assert {r.path for r in receiver.requests} == {"/v2/enqueue"}
    assert trigger["routing_key"] == "R0UTINGKEY0000000000000000000000"
    assert trigger["event_action"] == "trigger" and trigger["dedup_key"] == alert["dedup_key"]
    payload = trigger["payload"]
    assert payload["summary"] == alert["title"]
    assert payload["severity"] == "error"  # high
    assert payload["source"] == "loglake"
    assert payload["timestamp"] == "2025-12-02T18:27:40.000Z"
    details = payload["custom_details"]
    assert details["matches"] == 7 and details["alert_id"] == alert["id"]
    assert "login failed for" in details["evidence"][0]
    assert trigger["links"] == [{"href": alert["runbook"], "text": "Runbook"}]
    assert update["event_action"] == "trigger" and update["dedup_key"] == alert["dedup_key"]
    key = "R0UTINGKEY0000000000000000000000"
    assert acknowledge == {"routing_key": key, "event_action": "acknowledge", "dedup_key": alert["dedup_key"]}
    assert resolve == {"routing_key": key, "event_action": "resolve", "dedup_key": alert["dedup_key"]}


@pytest.mark.parametrize(
    ("level", "severity"),
    [("critical", "critical"), ("high", "error"), ("medium", "warning"), ("low", "info"), ("informational", "info")],
)
def test_pagerduty_severity_follows_the_level(make_delivery, alerts_db, receiver, monkeypatch, level, severity):
    monkeypatch.setenv("PD_KEY", "k")
    delivery = make_delivery(
        only("oncall", f'{{type: pagerduty, routing_key: {{env: PD_KEY}}, url: "{receiver.url}/"}}')
    )
    insert_alert(alerts_db, level=level)
    settle(delivery)
    assert receiver.requests[0].json()["payload"]["severity"] == severity


# -- e-mail --------------------------------------------------------------------------------------


@dataclass
class Mailbox:
    messages: list[Any] = field(default_factory=list)
    logins: list[tuple[bytes, bytes]] = field(default_factory=list)
    reply: str = "250 OK"

    refused: tuple[str, ...] = ()  # recipients refused at RCPT TO

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if address in self.refused:
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.reply.startswith("250"):
            self.messages.append((envelope.mail_from, envelope.rcpt_tos, envelope.content))
        return self.reply


@pytest.fixture
def smtp_server() -> Iterator[tuple[Controller, Mailbox]]:
    mailbox = Mailbox()

    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"loglake", b"mail-pass")
        if ok:
            mailbox.logins.append((data.login, data.password))
        return AuthResult(success=ok)

    controller = Controller(
        mailbox, hostname="127.0.0.1", port=free_port(), authenticator=authenticate, auth_require_tls=False
    )
    controller.start()
    yield controller, mailbox
    controller.stop()


def mail_spec(controller: Controller) -> str:
    return (
        f'{{type: email, smtp: "127.0.0.1:{controller.port}", username: loglake, password: {{env: SMTP_PASS}},'
        ' from: "loglake@example.test", to: ["oncall@example.test", "sec@example.test"]}'
    )


def test_email_has_text_and_html_the_level_and_title_in_its_subject_and_logs_in(
    make_delivery, alerts_db, smtp_server, monkeypatch
):
    controller, mailbox = smtp_server
    monkeypatch.setenv("SMTP_PASS", "mail-pass")
    delivery = make_delivery(only("mail", mail_spec(controller)))
    alert = insert_alert(alerts_db, level="critical", title="Disk <full>\n on db1")  # a subject is one line
    change_alert(alerts_db, alert["id"], "update")  # not mailed
    change_alert(alerts_db, alert["id"], "resolve")
    settle(delivery)
    assert mailbox.logins == [(b"loglake", b"mail-pass")] * 2  # one session per message
    (sender, recipients, raw), (_, _, resolved_raw) = mailbox.messages
    assert sender == "loglake@example.test"
    assert recipients == ["oncall@example.test", "sec@example.test"]
    message = message_from_bytes(raw, policy=policy.default)
    assert message["Subject"] == "[CRITICAL] Disk <full> on db1"
    key = alerts_db.execute("SELECT id FROM deliveries WHERE kind = 'trigger'").fetchone()[0]
    assert message["Message-ID"] == f"<{key}@loglake>"
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(("plain",)).get_content()
    markup = message.get_body(("html",)).get_content()
    assert "Level: critical" in text and "login failed for" in text and alert["runbook"] in text
    assert "<h2>[CRITICAL] Disk &lt;full&gt; on db1</h2>" in markup
    assert (
        message_from_bytes(resolved_raw, policy=policy.default)["Subject"] == "[CRITICAL] Disk <full> on db1 (resolved)"
    )


@pytest.mark.parametrize(("reply", "state"), [("451 4.3.0 try later", "pending"), ("554 5.7.1 rejected", "dead")])
def test_an_smtp_4xx_is_retried_and_a_5xx_is_not(make_delivery, alerts_db, smtp_server, monkeypatch, reply, state):
    controller, mailbox = smtp_server
    mailbox.reply = reply
    monkeypatch.setenv("SMTP_PASS", "mail-pass")
    delivery = make_delivery(only("mail", mail_spec(controller)))
    insert_alert(alerts_db)
    settle(delivery)
    assert states(alerts_db) == [("mail", "trigger", state, 1)]
    assert alerts_db.execute("SELECT last_status FROM deliveries").fetchone() == (int(reply[:3]),)


def test_a_recipient_the_smtp_server_refuses_is_said_though_the_others_got_the_mail(
    make_delivery, alerts_db, smtp_server, monkeypatch, caplog
):
    """smtplib raises only when every recipient is refused: one refused of two was a delivery "sent" with no error
    anywhere, and that recipient never heard of the alert."""
    controller, mailbox = smtp_server
    mailbox.refused = ("sec@example.test",)
    monkeypatch.setenv("SMTP_PASS", "mail-pass")
    delivery = make_delivery(only("mail", mail_spec(controller)))
    insert_alert(alerts_db)
    settle(delivery)
    assert [recipients for _, recipients, _ in mailbox.messages] == [["oncall@example.test"]]
    assert states(alerts_db) == [("mail", "trigger", "sent", 1)]  # (sent again, it would repeat to the others)
    (error,) = alerts_db.execute("SELECT last_error FROM deliveries").fetchone()
    assert error == "the SMTP server refused 1 of 2 recipients, who did not get it: sec@example.test (550)"
    assert error in caplog.text


@pytest.mark.parametrize("mode", ["starttls", "ssl"])
def test_email_over_starttls_or_implicit_tls_trusts_the_configured_ca(
    make_delivery, alerts_db, certificates: Certificates, monkeypatch, mode
):
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(certificates.cert, certificates.key)
    mailbox = Mailbox()
    tls = {"tls_context": server_tls, "require_starttls": True} if mode == "starttls" else {"ssl_context": server_tls}
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port(), **tls)
    controller.start()
    try:
        spec = (
            f'{{type: email, smtp: "127.0.0.1:{controller.port}", {mode}: true, ca_file: "{certificates.ca}",'
            ' from: "loglake@example.test", to: ["oncall@example.test"]}'
        )
        delivery = make_delivery(only("mail", spec))
        insert_alert(alerts_db)
        settle(delivery)
    finally:
        controller.stop()
    assert states(alerts_db) == [("mail", "trigger", "sent", 1)]
    assert len(mailbox.messages) == 1


def test_email_refuses_a_server_certificate_it_cannot_verify(make_delivery, alerts_db, certificates: Certificates):
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(certificates.cert, certificates.key)
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port(), tls_context=server_tls)
    controller.start()
    try:
        spec = (
            f'{{type: email, smtp: "127.0.0.1:{controller.port}", starttls: true, from: "a@b.test", to: ["c@d.test"]}}'
        )
        delivery = make_delivery(only("mail", spec))
        insert_alert(alerts_db)
        settle(delivery)
    finally:
        controller.stop()
    assert mailbox.messages == []
    state, error = alerts_db.execute("SELECT state, last_error FROM deliveries").fetchone()
    assert state == "pending" and "CERTIFICATE_VERIFY_FAILED" in error


# -- Jira ----------------------------------------------------------------------------------------


def jira_answers(receiver: Receiver) -> None:
    numbers = iter(range(7, 100))

    def answer(request: Any) -> Answer:
        if request.path == "/rest/api/2/issue":
            return Answer(
                201, {"content-type": "application/json"}, json.dumps({"key": f"OPS-{next(numbers)}"}).encode()
            )
        return Answer(201, {"content-type": "application/json"}, b'{"id": "1"}')

    receiver.answer_for = answer


def test_jira_makes_one_issue_per_dedup_key_and_comments_the_later_events(
    make_delivery, alerts_db, receiver, monkeypatch
):
    monkeypatch.setenv("JIRA_TOKEN", "jira-token-1")
    jira_answers(receiver)
    spec = f'{{type: jira, url: "{receiver.url}", project: OPS, user: bot@example.test, token: {{env: JIRA_TOKEN}}'
    delivery = make_delivery(only("tickets", spec + ", concurrency: 1}"))  # one at a time: a known order
    first = insert_alert(alerts_db, dedup_key="scanner:203.0.113.9")
    change_alert(alerts_db, first["id"], "update")
    change_alert(alerts_db, first["id"], "resolve")
    again = insert_alert(alerts_db, dedup_key="scanner:203.0.113.9")  # the same key, a later window: the same issue
    insert_alert(alerts_db, dedup_key="scanner:198.51.100.4")
    settle(delivery)
    issue, comment = "/rest/api/2/issue", "/rest/api/2/issue/OPS-7/comment"
    assert [r.path for r in receiver.requests] == [issue, comment, comment, comment, issue]
    fields = receiver.requests[0].json()["fields"]
    assert fields["project"] == {"key": "OPS"} and fields["issuetype"] == {"name": "Task"}
    assert fields["labels"] == ["loglake"] and fields["summary"] == f"[HIGH] {first['title']}"
    assert "{noformat}" in fields["description"] and "login failed for" in fields["description"]
    assert [r.json()["body"].splitlines()[0] for r in receiver.requests[1:4]] == [
        f"*[HIGH] {first['title']} (updated)*",
        f"*[HIGH] {first['title']} (resolved)*",
        f"*[HIGH] {again['title']}*",
    ]
    auth = base64.b64encode(b"bot@example.test:jira-token-1").decode()
    assert {r.headers["authorization"] for r in receiver.requests} == {f"Basic {auth}"}
    remembered = alerts_db.execute("SELECT dedup_key, value FROM delivery_memory ORDER BY dedup_key").fetchall()
    assert remembered == [("scanner:198.51.100.4", "OPS-8"), ("scanner:203.0.113.9", "OPS-7")]


def test_teams_and_jira_get_alerts_of_huge_records_within_their_services_limits(
    make_delivery, alerts_db, receiver, monkeypatch
):
    # A record's message may be 256 KiB and an attribute 64 KiB: Teams refuses a message over 28 KB and Jira a
    # description or comment over 32,767 characters, so the alert (and its later events, held behind it) died.
    monkeypatch.setenv("TEAMS_URL", f"{receiver.url}/workflows/run")
    monkeypatch.setenv("JIRA_TOKEN", "jira-token-1")
    jira_answers(receiver)
    jira = f'{{type: jira, url: "{receiver.url}", project: OPS, user: bot@example.test, token: {{env: JIRA_TOKEN}}}}'
    delivery = make_delivery(
        f"""
        destinations:
          team: {{type: teams, url: {{env: TEAMS_URL}}}}
          tickets: {jira}
        routes: [{{to: [team, tickets]}}]
        """
    )
    huge = "x" * 64_000
    evidence = [{"timestamp": 1_764_700_000_000, "service": "api", "message": "y" * 256_000} for _ in range(20)]
    alert = insert_alert(alerts_db, title=f"errors for {huge}", group_values={"user": huge}, evidence=evidence)
    change_alert(alerts_db, alert["id"], "resolve")
    settle(delivery)
    teams = [r for r in receiver.requests if r.path == "/workflows/run"]
    assert len(teams) == 2 and all(len(r.body) < 28_000 for r in teams)
    issue, comment = [r.json() for r in receiver.requests if r.path.startswith("/rest/")]
    assert len(issue["fields"]["description"]) <= 32_767 and len(comment["body"]) <= 32_767
    assert issue["fields"]["description"].rstrip().endswith("{noformat}")  # the evidence block closed
    assert "yyyy" in issue["fields"]["description"] and "xxxx" in comment["body"]


def test_acknowledge_and_resolve_through_the_alert_store_reach_pagerduty_and_chat(
    make_delivery, alerts_db, receiver, monkeypatch, clock
):
    monkeypatch.setenv("PD_KEY", "k")
    delivery = make_delivery(
        f"""
        destinations:
          oncall: {{type: pagerduty, routing_key: {{env: PD_KEY}}, url: "{receiver.url}/pd"}}
          chat: {{type: slack, url: "{receiver.url}/slack"}}
        routes: [{{to: [oncall, chat]}}]
        """
    )
    alert = insert_alert(alerts_db)
    change_status(alerts_db, alert["id"], "acknowledged", "alice", "on it", clock.ms)
    settle(delivery)
    change_status(alerts_db, alert["id"], "resolved", "bob", None, clock.ms)
    second = insert_alert(alerts_db)
    change_status(alerts_db, second["id"], "acknowledged", "carol", None, clock.ms)
    change_status(alerts_db, second["id"], "resolved", "dave", None, clock.ms)  # before delivery saw the ack
    settle(delivery)
    for one in (alert, second):
        pd = [r.json()["event_action"] for r in receiver.requests if r.json().get("dedup_key") == one["dedup_key"]]
        assert pd == ["trigger", "acknowledge", "resolve"]  # in order within a dedup key
    by = {}
    for request in receiver.requests:
        if request.path == "/slack":
            blocks = request.json()["blocks"]
            alert_id = blocks[-1]["elements"][0]["text"].split()[2]
            said = next((f["text"] for f in blocks[1]["fields"] if f["text"].startswith("*By*")), None)
            by.setdefault(alert_id, []).append((blocks[0]["text"]["text"].rsplit(" ", 1)[-1], said))
    assert by[alert["id"]] == [
        (alert["title"].rsplit(" ", 1)[-1], None),
        ("(acknowledged)", "*By*\nalice: on it"),
        ("(resolved)", "*By*\nbob"),
    ]
    # The second alert's acknowledgement was routed after its resolution: it still names who acknowledged it.
    assert by[second["id"]] == [
        (second["title"].rsplit(" ", 1)[-1], None),
        ("(acknowledged)", "*By*\ncarol"),
        ("(resolved)", "*By*\ndave"),
    ]


def test_an_acknowledgement_resolved_before_it_is_routed_is_delivered_as_it_was_made(
    make_delivery, alerts_db, receiver, clock
):
    delivery = make_delivery(
        f"""
        destinations:
          hook: {{type: webhook, url: "{receiver.url}/hook"}}
          chat: {{type: slack, url: "{receiver.url}/slack"}}
        routes: [{{to: [hook, chat]}}]
        """
    )
    alert = insert_alert(alerts_db)
    settle(delivery)
    change_status(alerts_db, alert["id"], "acknowledged", "oncall", "looking", clock.ms)
    change_status(alerts_db, alert["id"], "resolved", "oncall", None, clock.ms + 300)  # before delivery routes
    settle(delivery)
    hooks = [r for r in receiver.requests if r.path == "/hook"]
    described = [
        (r.headers["x-loglake-event"], r.json()["alert"]["status"], r.json()["alert"]["status_note"]) for r in hooks
    ]
    assert described == [
        ("trigger", "open", None),
        ("acknowledge", "acknowledged", "looking"),
        ("resolve", "resolved", None),
    ]
    acknowledged = [r.json() for r in receiver.requests if r.path == "/slack"][1]
    assert {"type": "mrkdwn", "text": "*Status*\nacknowledged"} in acknowledged["blocks"][1]["fields"]
    assert {"type": "mrkdwn", "text": "*By*\noncall: looking"} in acknowledged["blocks"][1]["fields"]


def test_with_a_public_url_every_destination_links_to_the_alerts_page(make_delivery, alerts_db, receiver, monkeypatch):
    monkeypatch.setenv("PD_KEY", "k")
    delivery = make_delivery(
        every_http_destination(receiver),
        public_url="https://loglake.example.com/",
    )
    alert = insert_alert(alerts_db)
    settle(delivery)
    page = f"https://loglake.example.com/ui/alerts/{alert['id']}"
    sent = {r.path: r.json() for r in receiver.requests}
    assert sent["/hook"]["alert_url"] == page
    assert sent["/pd"]["client_url"] == page
    assert sent["/pd"]["links"] == [
        {"href": page, "text": "Alert in loglake"},
        {"href": alert["runbook"], "text": "Runbook"},
    ]
    [actions] = [b for b in sent["/slack"]["blocks"] if b["type"] == "actions"]
    assert [(e["text"]["text"], e["url"]) for e in actions["elements"]] == [
        ("Open in loglake", page),
        ("Runbook", alert["runbook"]),
    ]
    card = sent["/teams"]["attachments"][0]["content"]
    assert [(a["title"], a["url"]) for a in card["actions"]] == [
        ("Open in loglake", page),
        ("Runbook", alert["runbook"]),
    ]


def test_without_a_public_url_nothing_links_back(make_delivery, alerts_db, receiver, monkeypatch):
    monkeypatch.setenv("PD_KEY", "k")
    delivery = make_delivery(
        f"""
        destinations:
          hook: {{type: webhook, url: "{receiver.url}/hook"}}
          oncall: {{type: pagerduty, routing_key: {{env: PD_KEY}}, url: "{receiver.url}/pd"}}
        routes: [{{to: [hook, oncall]}}]
        """
    )
    insert_alert(alerts_db, runbook=None)
    settle(delivery)
    sent = {r.path: r.json() for r in receiver.requests}
    assert sent["/hook"]["alert_url"] is None
    assert "client_url" not in sent["/pd"] and "links" not in sent["/pd"]
