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
    # A resolve delivered after the trigger died (later events now wait behind a dead one, but one forgotten
    # meanwhile, or an outbox from before, may have let it go): the trigger now would reopen what was resolved.
    receiver.default = Answer(200)
    change_alert(alerts_db, alert["id"], "resolve")
    settle(delivery)
    alerts_db.execute("UPDATE deliveries SET state = 'sent', attempts = 1 WHERE kind = 'resolve'")
    alerts_db.commit()
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


def test_later_events_wait_behind_a_dead_one_and_go_after_it_once_it_is_retried(make_delivery, alerts_db, receiver):
    """A receiver told of a resolve (or an acknowledgement) of an incident it never heard of cannot open it: a
    new user's trial saw a dead trigger's acknowledge and resolve delivered, and the trigger then refused."""
    receiver.default = Answer(400, body=b"bad")
    delivery = make_delivery(hook(receiver))
    alert = insert_alert(alerts_db)
    settle(delivery)
    trigger = dead_id(alerts_db)
    receiver.default = Answer(200)
    change_alert(alerts_db, alert["id"], "acknowledge")
    change_alert(alerts_db, alert["id"], "resolve")
    settle(delivery)
    assert states(alerts_db) == [
        ("hook", "trigger", "dead", 1),
        ("hook", "acknowledge", "pending", 0),
        ("hook", "resolve", "pending", 0),
    ]
    waiting = [r[0] for r in alerts_db.execute("SELECT last_error FROM deliveries WHERE state = 'pending'")]
    assert waiting == [f"waits for the trigger of its alert, dead-lettered ({trigger}), to go first: retry that one"
                       f" (loglake alerts retry {trigger})"] * 2  # fmt: skip
    assert len(receiver.requests) == 1 and delivery.outbox.next_due_ms() is None  # (nothing due: no busy loop)
    delivery.retry(trigger)
    settle(delivery)
    assert [r.json()["event"] for r in receiver.requests[1:]] == ["trigger", "acknowledge", "resolve"]
    assert [state for _, _, state, _ in states(alerts_db)] == ["sent", "sent", "sent"]


def test_retrying_a_dead_event_retries_the_dead_ones_of_its_alert_before_it_first(
    make_delivery, alerts_db, receiver, rules_dir
):
    delivery = make_delivery(hook(receiver, name="other"))  # 'hook' not defined yet: dead as routed
    alert = insert_alert(alerts_db, destinations=["hook"])
    change_alert(alerts_db, alert["id"], "update")
    settle(delivery)
    assert states(alerts_db) == [("hook", "trigger", "dead", 0), ("hook", "update", "dead", 0)]
    (rules_dir / "alerting.yml").write_text(hook(receiver))
    newest = alerts_db.execute("SELECT id FROM deliveries WHERE kind = 'update'").fetchone()[0]
    delivery.retry(newest)  # the update, newest first in the list: its trigger goes before it
    settle(delivery)
    assert [r.json()["event"] for r in receiver.requests] == ["trigger", "update"]


def test_a_delivery_is_named_by_the_start_of_its_id_as_an_alert_by_a_part_of_its(make_delivery, alerts_db, receiver):
    """A new user's trial: `loglake alerts retry 5fe09025` (the start `alerts deliveries` shows) was 404."""
    receiver.default = Answer(400, body=b"bad")
    delivery = make_delivery(hook(receiver))
    insert_alert(alerts_db)
    insert_alert(alerts_db)
    settle(delivery)
    first, second = [row[0] for row in alerts_db.execute("SELECT id FROM deliveries ORDER BY event_seq")]
    alerts_db.execute("UPDATE deliveries SET id = 'abcd' || substr(id, 5)")  # both ids start alike now
    alerts_db.commit()
    first, second = "abcd" + first[4:], "abcd" + second[4:]
    with pytest.raises(NoSuchDelivery, match=r"'abcd' starts several deliveries' ids"):
        delivery.retry("abcd")
    assert delivery.retry(first[:13]).id == first
    with pytest.raises(NoSuchDelivery, match=r"no delivery with id 'ffff'"):
        delivery.retry("ffff")
    receiver.default = Answer(200)
    settle(delivery)
    assert [state for _, _, state, _ in states(alerts_db)] == ["sent", "dead"]


def test_a_delivery_waiting_behind_another_alerts_dead_one_names_that_alert(make_delivery, alerts_db, receiver, clock):
    """A new alert of a dedup key waits behind the dead trigger of the key's earlier alert: its last error said "the
    trigger of its alert", which its page did not show (the other alert's does, with its Retry)."""
    receiver.default = Answer(503, body=b"down")
    delivery = make_delivery(hook(receiver, extra=", attempts: 2"))
    first = insert_alert(alerts_db, dedup_key="auth-failures:shared")
    settle(delivery)  # its first attempt failed: due again
    second = insert_alert(alerts_db, dedup_key="auth-failures:shared")
    settle(delivery)
    clock.now += 2
    settle(delivery)  # the first one's trigger dead-lettered now, the second's behind it
    trigger = dead_id(alerts_db)
    [(alert_id, waiting)] = alerts_db.execute("SELECT alert_id, last_error FROM deliveries WHERE state = 'pending'")
    assert alert_id == second["id"]
    assert waiting == (
        f"waits for the trigger of alert {first['id']} (of the same dedup key), dead-lettered ({trigger}), to go"
        f" first: retry that one (loglake alerts retry {trigger})"
    )
    [pending] = delivery.outbox.page(states=["pending"])
    [ahead] = delivery.outbox.waiting_behind([pending]).values()
    assert (ahead.id, ahead.alert_id, ahead.kind) == (trigger, first["id"], "trigger")
