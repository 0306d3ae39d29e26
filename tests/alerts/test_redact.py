"""Redaction per destination: e-mail addresses, IP addresses, tokens and custom patterns are replaced
in what leaves the machine, never in alerts.db."""

from __future__ import annotations

import pytest

from loglake.alerts.redact import CustomPattern, Redactor
from tests.alerts.conftest import settle
from tests.alerts.receivers import insert_alert


@pytest.mark.parametrize(
    ("items", "text", "expected"),
    [
        (["email"], "login failed for alice.o'neil@corp.example.com", "login failed for [email]"),
        (["email"], "to bob+alerts@example.io and x@y", "to [email] and x@y"),
        (["email"], "user='carol@example.org'", "user='[email]'"),
        (["ip"], "from 203.0.113.9:443 via 10.0.0.1", "from [ip]:443 via [ip]"),
        (["ip"], "client 2001:db8::8a2e:370:7334 and ::1", "client [ip] and [ip]"),
        (
            ["ip"],
            "at 10:00:00 on 2026-12-03, version 1.2.3.4.5, 256.1.1.1",
            "at 10:00:00 on 2026-12-03, version 1.2.3.4.5, 256.1.1.1",
        ),
        (["token"], "Authorization: Bearer abcdefgh12345678", "Authorization: Bearer [token]"),
        (["token"], 'password=hunter2&user=bob, "api_key": "k-123"', 'password=[token]&user=bob, "api_key": "[token]"'),
        (["token"], "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig_nature", "jwt [token]"),
        (["token"], "key AKIAIOSFODNN7EXAMPLE here", "key [token] here"),
        (["token"], "ghp_16C7e42F292c6912E7710c838347Ae178B4a used", "[token] used"),
        (["token"], "id 0193a1b2-0000-7000-8000-000000000001 stays", "id 0193a1b2-0000-7000-8000-000000000001 stays"),
        ([CustomPattern(pattern=r"acct-\d+", replace="acct-#")], "account acct-123456 locked", "account acct-# locked"),
    ],
)
def test_patterns(items, text, expected):
    assert Redactor(items).text(text) == expected


def test_the_alerts_data_is_redacted_and_a_changed_dedup_key_is_sent_as_its_hash():
    alert = {
        "title": "Failures for bob@example.com",
        "group_values": {"user": "bob@example.com"},
        "evidence": [{"message": "from 203.0.113.9", "attributes": {"203.0.113.9": "bob@example.com"}, "n": 3}],
        "status_note": None,
        "dedup_key": "auth:bob@example.com",
        "query": "SELECT 1",
    }
    redacted = Redactor(["email", "ip"]).alert(alert)
    assert redacted["title"] == "Failures for [email]"
    assert redacted["group_values"] == {"user": "[email]"}
    assert redacted["evidence"] == [{"message": "from [ip]", "attributes": {"[ip]": "[email]"}, "n": 3}]
    other = Redactor(["email"]).alert(alert | {"dedup_key": "auth:eve@example.com"})
    assert redacted["dedup_key"].startswith("sha256:") and redacted["dedup_key"] != other["dedup_key"]
    assert Redactor(["email"]).alert(alert | {"dedup_key": "auth"})["dedup_key"] == "auth"
    assert alert["title"] == "Failures for bob@example.com"  # the caller's copy is left alone


def test_redaction_applies_before_sending_and_only_for_its_destination(make_delivery, alerts_db, receiver):
    delivery = make_delivery(
        f"""
        destinations:
          outside: {{type: webhook, url: "{receiver.url}/outside", redact: [email, ip]}}
          inside: {{type: webhook, url: "{receiver.url}/inside"}}
        routes: [{{to: [outside, inside]}}]
        """
    )
    alert = insert_alert(alerts_db, title="Failures for ann@example.com")
    settle(delivery)
    by_path = {r.path: r.body.decode() for r in receiver.requests}
    assert "ann@example.com" not in by_path["/outside"] and "203.0.113.9" not in by_path["/outside"]
    assert "Failures for [email]" in by_path["/outside"] and "from [ip]" in by_path["/outside"]
    assert "ann@example.com" in by_path["/inside"] and "203.0.113.9" in by_path["/inside"]
    stored = alerts_db.execute("SELECT title FROM alerts WHERE id = ?", (alert["id"],)).fetchone()
    assert stored == ("Failures for ann@example.com",)
