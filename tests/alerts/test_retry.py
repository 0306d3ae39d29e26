"""Retrying a dead-lettered delivery: it goes through the same worker once more, its attempts reset and
its idempotency key the same; what cannot be retried (not dead, a destination the file no longer
defines, a later event of its key already delivered) is refused with the reason."""

from __future__ import annotations

import pytest

from loglake.alerts.outbox import NoSuchDelivery, RetryRefused
from tests.alerts.conftest import settle, states
from tests.alerts.receivers import Answer, change_alert, insert_alert
from tests.alerts.test_delivery import hook


def dead_id(conn) -> str:
    (found,) = conn.execute("SELECT id FROM deliveries WHERE state = 'dead'").fetchall()
    return found[0]


def test_a_dead_delivery_retried_is_sent_once_with_its_key_and_its_attempts_reset(
    make_delivery, alerts_db, receiver, clock
):
    receiver.default = Answer(503, body=b"down")
    delivery = make_delivery(hook(receiver, extra=", attempts: 2"))
    insert_alert(alerts_db)
    settle(delivery)
    clock.now += 2
    settle(delivery)
    assert states(alerts_db) == [("hook", "trigger", "dead", 2)]
    assert delivery.dead()["hook"].count == 1
    receiver.default = Answer(202)
    clock.now += 60
    retried = delivery.retry(dead_id(alerts_db))
    assert (retried.state, retried.attempts, retried.next_attempt_ms) == ("pending", 0, clock.ms)
    assert delivery.dead() == {}
    with pytest.raises(RetryRefused, match=r"is pending, not dead"):  # a second retry: it goes once
        delivery.retry(retried.id)
    settle(delivery)
    assert states(alerts_db) == [("hook", "trigger", "sent", 1)]
    assert len(receiver.requests) == 3
    assert {r.headers["idempotency-key"] for r in receiver.requests} == {retried.id}
    with pytest.raises(RetryRefused, match=r"is sent, not dead"):
        delivery.retry(retried.id)


def test_a_retry_that_cannot_be_made_is_refused_with_the_reason(make_delivery, alerts_db, receiver, rules_dir):
    receiver.default = Answer(400, body=b"bad")
    delivery = make_delivery(hook(receiver))
    with pytest.raises(NoSuchDelivery):
        delivery.retry("no-such-delivery")
    alert = insert_alert(alerts_db)
    settle(delivery)
    trigger = dead_id(alerts_db)
    # The resolve went through after the trigger died: the trigger now would reopen what was resolved.
    receiver.default = Answer(200)
    change_alert(alerts_db, alert["id"], "resolve")
    settle(delivery)
    assert states(alerts_db) == [("hook", "trigger", "dead", 1), ("hook", "resolve", "sent", 1)]
    with pytest.raises(RetryRefused, match="a later resolve of the same alert was already delivered to 'hook'"):
        delivery.retry(trigger)
    # A destination taken out of the file: nothing would ever send it.
    receiver.default = Answer(400, body=b"bad")
    insert_alert(alerts_db)
    settle(delivery)
    newest = alerts_db.execute("SELECT id FROM deliveries WHERE state = 'dead' ORDER BY event_seq DESC").fetchone()[0]
    (rules_dir / "alerting.yml").write_text(hook(receiver, name="other"))
    with pytest.raises(RetryRefused, match=r"'hook' is not defined in alerting\.yml"):
        delivery.retry(newest)
    assert alerts_db.execute("SELECT state FROM deliveries WHERE id = ?", (newest,)).fetchone() == ("dead",)
