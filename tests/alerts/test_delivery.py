"""The outbox and its worker against real receivers: recorded before sent, retried with backoff and
Retry-After under the same idempotency key, dead-lettered, isolated per destination, in order per key."""

from __future__ import annotations

import logging
import threading
import time

from loglake.alerts.db import open_alerts_db
from loglake.alerts.delivery import AlertDelivery
from loglake.alerts.destinations.base import MAX_ERROR_TEXT
from loglake.alerts.outbox import SCHEMA, Outbox
from loglake.alerts.routing import EMPTY_SETTLES_NS
from loglake.sqlitedb import Schema, migrate_schema
from tests.alerts.conftest import settle, states, wait_idle, write_alerting
from tests.alerts.receivers import Answer, Received, Receiver, change_alert, insert_alert


def hook(receiver: Receiver, name: str = "hook", extra: str = "", path: str = "/hook") -> str:
    return f"""
    destinations:
      {name}: {{type: webhook, url: "{receiver.url}{path}"{extra}}}
    routes:
      - {{to: [{name}]}}
    """


def test_a_delivery_is_recorded_before_it_is_attempted_and_only_once_per_event_and_destination(
    make_delivery, alerts_db, receiver, clock
):
    delivery = make_delivery(hook(receiver))
    insert_alert(alerts_db)
    routing = delivery.routing_file.current()
    assert routing is not None
    assert delivery.outbox.route(routing, clock.ms) == 1
    assert states(alerts_db) == [("hook", "trigger", "pending", 0)]
    assert receiver.requests == []
    # Routing the same event again (a crash before the cursor moved would) adds no second row.
    alerts_db.execute("UPDATE delivery_cursor SET seq = 0")
    assert delivery.outbox.route(routing, clock.ms) == 1
    assert states(alerts_db) == [("hook", "trigger", "pending", 0)]
    settle(delivery)
    assert states(alerts_db) == [("hook", "trigger", "sent", 1)]
    assert len(receiver.requests) == 1


def test_429_waits_for_retry_after_and_retries_with_the_same_idempotency_key(make_delivery, alerts_db, receiver, clock):
    receiver.answers = [Answer(429, {"retry-after": "120"}, b"slow down")]
    receiver.default = Answer(202)
    delivery = make_delivery(hook(receiver))
    insert_alert(alerts_db)
    settle(delivery)
    row = alerts_db.execute(
        "SELECT state, attempts, next_attempt_ms, last_status, last_error FROM deliveries"
    ).fetchone()
    # The jitter's bound after a first failure is 2 s; the receiver asked for 120 s, a floor.
    assert row == ("pending", 1, clock.ms + 120_000, 429, "HTTP 429: slow down")
    clock.now += 119
    settle(delivery)
    assert len(receiver.requests) == 1
    clock.now += 1
    settle(delivery)
    first, second = receiver.requests
    assert first.headers["idempotency-key"] == second.headers["idempotency-key"]
    assert first.body == second.body
    assert states(alerts_db) == [("hook", "trigger", "sent", 2)]
    # The answer to the attempt that went through, not the failure before it.
    assert alerts_db.execute("SELECT last_status, last_error FROM deliveries").fetchone() == (202, None)


def test_a_retry_after_longer_than_the_longest_pause_waits_the_longest_pause(make_delivery, alerts_db, receiver, clock):
    # A receiver (or a proxy before it) asking for a day, or for 10**20 s, cannot hold the alert, and every later
    # event of its key behind it, that long: the ask is a floor up to the backoff's longest pause (10 min).
    receiver.answers = [
        Answer(429, headers={"retry-after": "86400"}),
        Answer(503, headers={"retry-after": "100000000000000000000"}),
    ]
    receiver.default = Answer(202)
    delivery = make_delivery(hook(receiver))
    insert_alert(alerts_db)
    for _ in range(2):
        settle(delivery)
        state, due = alerts_db.execute("SELECT state, next_attempt_ms FROM deliveries").fetchone()
        assert (state, due) == ("pending", clock.ms + 600_000)
        clock.now = due / 1000
    settle(delivery)
    assert states(alerts_db) == [("hook", "trigger", "sent", 3)]


def test_backoff_doubles_up_to_the_cap_and_the_last_attempt_dead_letters(make_delivery, alerts_db, receiver, clock):
    receiver.default = Answer(503, body=b"down")
    delivery = make_delivery(hook(receiver, extra=", attempts: 5"))
    insert_alert(alerts_db)
    pauses = []
    for _ in range(4):
        settle(delivery)
        due = alerts_db.execute("SELECT next_attempt_ms FROM deliveries").fetchone()[0]
        pauses.append((due - clock.ms) / 1000)
        clock.now = due / 1000
    settle(delivery)
    assert pauses == [2.0, 4.0, 8.0, 16.0]
    assert states(alerts_db) == [("hook", "trigger", "dead", 5)]
    assert len({r.headers["idempotency-key"] for r in receiver.requests}) == 1
    assert len(receiver.requests) == 5
    counts = delivery.counts["hook"]
    assert (counts.sent, counts.failed_attempts, counts.dead_lettered) == (0, 5, 1)


def test_by_default_a_receiver_down_for_twenty_minutes_still_gets_its_delivery(
    make_delivery, alerts_db, receiver, clock
):
    """A new user's trial: the default 8 attempts were spent in ~2 minutes (a receiver's restart dead-lettered
    its triggers). With the pauses at their longest (this clock's jitter), 12 attempts last 37 min."""
    receiver.default = Answer(503, body=b"down")
    delivery = make_delivery(hook(receiver))  # (the default attempts)
    insert_alert(alerts_db)
    started = clock.now
    while clock.now - started < 20 * 60:
        settle(delivery)
        assert states(alerts_db)[0][2] == "pending"
        clock.now = alerts_db.execute("SELECT next_attempt_ms FROM deliveries").fetchone()[0] / 1000
    receiver.default = Answer(202)
    settle(delivery)
    assert states(alerts_db) == [("hook", "trigger", "sent", 11)]


def test_a_refusal_that_retrying_cannot_fix_is_dead_lettered_at_once(make_delivery, alerts_db, receiver):
    receiver.default = Answer(400, body=b"invalid_payload")
    delivery = make_delivery(hook(receiver))
    insert_alert(alerts_db)
    settle(delivery)
    assert states(alerts_db) == [("hook", "trigger", "dead", 1)]
    assert alerts_db.execute("SELECT last_error FROM deliveries").fetchone() == ("HTTP 400: invalid_payload",)


def test_a_redirect_is_dead_lettered_naming_where_it_leads(make_delivery, alerts_db, receiver):
    # http:// where the service answers on https:// (a 301): "HTTP 301" alone left the fix to be guessed.
    receiver.default = Answer(301, body=b"", headers={"location": "https://hooks.example/loglake"})
    delivery = make_delivery(hook(receiver))
    insert_alert(alerts_db)
    settle(delivery)
    assert states(alerts_db) == [("hook", "trigger", "dead", 1)]
    assert alerts_db.execute("SELECT last_error FROM deliveries").fetchone() == (
        "HTTP 301: a redirect to https://hooks.example/loglake, which delivery does not follow: make that the url",
    )


def test_failed_attempts_and_dead_letters_are_in_the_servers_log(make_delivery, alerts_db, receiver, clock, caplog):
    """A new user's trial: 44 failed attempts and 4 dead letters, and not a line in the server's log (its
    warnings go to the access log)."""
    receiver.default = Answer(503, body=b"down")
    delivery = make_delivery(hook(receiver, extra=", attempts: 2"))
    alert = insert_alert(alerts_db)
    with caplog.at_level("WARNING", logger="loglake.alerts"):
        settle(delivery)
        clock.now += 2
        settle(delivery)
    (delivery_id,) = alerts_db.execute("SELECT id FROM deliveries").fetchone()
    said = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "loglake.alerts"]
    first = f"the trigger of alert {alert['id']} to 'hook' (delivery {delivery_id})"
    assert said[0][0] == "WARNING" and said[0][1].startswith(f"{first} failed (attempt 1 of 2): HTTP 503: down;")
    assert said[1] == (
        "WARNING",
        f"{first} dead-lettered after 2 attempt(s): HTTP 503: down; once the destination takes it: loglake alerts"
        f" retry {delivery_id}",
    )


def test_a_receiver_slower_than_the_timeout_is_a_failed_attempt_retried_later(make_delivery, alerts_db, receiver):
    receiver.answers = [Answer(delay=2.0)]
    delivery = make_delivery(hook(receiver, extra=", timeout: 200ms"))
    insert_alert(alerts_db)
    settle(delivery)
    assert alerts_db.execute("SELECT state, attempts, last_error FROM deliveries").fetchone() == (
        "pending",
        1,
        "timed out",
    )


def test_a_receiver_that_trickles_its_answer_times_out_at_the_attempts_timeout(make_delivery, alerts_db, receiver):
    # Each byte comes well within the timeout, the answer not: the attempt ends at its timeout, not when the
    # receiver is done (which would hold a sending thread, and the server's stop, as long as it likes).
    receiver.answers = [Answer(body=b"x" * 100, trickle=0.05)]
    delivery = make_delivery(hook(receiver, extra=", timeout: 500ms"))
    insert_alert(alerts_db)
    started = time.monotonic()
    settle(delivery)
    assert time.monotonic() - started < 3
    assert alerts_db.execute("SELECT state, attempts, last_error FROM deliveries").fetchone() == (
        "pending",
        1,
        "timed out",
    )


def test_an_endless_answer_is_read_no_further_than_its_start(make_delivery, alerts_db, receiver):
    receiver.answers = [Answer(status=200, endless=True), Answer(status=503, endless=True)]
    delivery = make_delivery(hook(receiver))
    insert_alert(alerts_db)
    insert_alert(alerts_db)
    settle(delivery)
    assert sorted((s, a) for _, _, s, a in states(alerts_db)) == [("pending", 1), ("sent", 1)]
    error = alerts_db.execute("SELECT last_error FROM deliveries WHERE state = 'pending'").fetchone()[0]
    assert error == "HTTP 503: " + "x" * MAX_ERROR_TEXT
    assert receiver.endless_sent < 32 * 1024 * 1024  # what socket buffers hold; the client read 64 KiB


def test_a_stuck_destination_never_delays_another(make_delivery, alerts_db, receiver):
    release = threading.Event()
    receiver.answer_for = lambda r: Answer(hold=release) if r.path == "/stuck" else Answer()
    delivery = make_delivery(
        f"""
        destinations:
          stuck: {{type: webhook, url: "{receiver.url}/stuck", timeout: 30s}}
          quick: {{type: webhook, url: "{receiver.url}/quick"}}
        routes:
          - {{to: [stuck, quick]}}
        """
    )
    for _ in range(3):
        insert_alert(alerts_db)
    try:
        # Every delivery to `quick` goes while `stuck` holds its first two (its concurrency is 2).
        deadline = time.monotonic() + 20
        delivery.step()
        while [s for d, _, s, _ in states(alerts_db) if d == "quick"] != ["sent"] * 3:
            assert time.monotonic() < deadline, states(alerts_db)
            time.sleep(0.01)
            delivery.step()
        assert sorted(r.path for r in receiver.requests) == ["/quick"] * 3 + ["/stuck"] * 2
        assert [s for d, _, s, _ in states(alerts_db) if d == "stuck"] == ["sending", "sending", "pending"]
    finally:
        release.set()
    wait_idle(delivery)
    settle(delivery)
    assert [s for _, _, s, _ in states(alerts_db)] == ["sent"] * 6


def test_at_most_concurrency_attempts_are_under_way_per_destination(make_delivery, alerts_db, receiver):
    release = threading.Event()
    receiver.default = Answer(hold=release)
    delivery = make_delivery(hook(receiver, extra=", concurrency: 3"))
    for _ in range(7):
        insert_alert(alerts_db)
    delivery.step()
    receiver.wait_for(3)
    delivery.step()
    delivery.step()
    under_way = [s for _, _, s, _ in states(alerts_db)]
    assert under_way.count("sending") == 3 and under_way.count("pending") == 4
    assert len(receiver.requests) == 3
    release.set()
    settle(delivery)
    assert len(receiver.requests) == 7


def test_a_destination_with_no_room_for_its_due_deliveries_is_not_polled_in_a_busy_loop(
    make_delivery, alerts_db, receiver
):
    release = threading.Event()
    receiver.default = Answer(hold=release)
    delivery = make_delivery(hook(receiver, extra=", concurrency: 1"))
    insert_alert(alerts_db)
    insert_alert(alerts_db)
    try:
        delivery.step()
        receiver.wait_for(1)
        # The second is due but must wait for the first's attempt, whose end wakes the worker: no reason to look
        # again at once (the worker would spin on the database for as long as a slow receiver takes).
        assert delivery.step() == delivery.poll_seconds
        assert [s for _, _, s, _ in states(alerts_db)] == ["sending", "pending"]
    finally:
        release.set()
    settle(delivery)
    assert len(receiver.requests) == 2


def test_a_resolve_never_overtakes_the_trigger_of_its_dedup_key(make_delivery, alerts_db, receiver, clock):
    delivery = make_delivery(hook(receiver))
    alert = insert_alert(alerts_db)
    other = insert_alert(alerts_db)
    failures = [Answer(500)]

    def fail_first_of_alert(request: Received) -> Answer:
        mine = request.json()["alert"]["id"] == alert["id"]
        return failures.pop() if mine and failures else Answer()

    receiver.answer_for = fail_first_of_alert
    change_alert(alerts_db, alert["id"], "resolve")
    settle(delivery)
    # The trigger failed and waits; the other alert went; the resolve waits behind its trigger.
    assert states(alerts_db) == [
        ("hook", "trigger", "pending", 1),
        ("hook", "trigger", "sent", 1),
        ("hook", "resolve", "pending", 0),
    ]
    clock.now += 2
    settle(delivery)
    events = [(r.json()["alert"]["id"], r.json()["event"]) for r in receiver.requests]
    assert sorted(events[:2]) == [(alert["id"], "trigger"), (other["id"], "trigger")]  # together
    assert events[2:] == [(alert["id"], "trigger"), (alert["id"], "resolve")]


def test_a_rule_naming_an_undefined_destination_dead_letters_with_the_reason(make_delivery, alerts_db, receiver):
    delivery = make_delivery(hook(receiver))
    insert_alert(alerts_db, destinations=["pager"])
    settle(delivery)
    assert states(alerts_db) == [("pager", "trigger", "dead", 0)]
    error = alerts_db.execute("SELECT last_error FROM deliveries").fetchone()[0]
    assert "'pager' is not defined in alerting.yml" in error
    assert receiver.requests == []


def test_waiting_deliveries_to_a_destination_taken_out_of_the_file_are_dead_lettered(
    make_delivery, alerts_db, receiver, rules_dir
):
    receiver.default = Answer(500)
    delivery = make_delivery(hook(receiver))
    insert_alert(alerts_db)
    settle(delivery)
    assert states(alerts_db) == [("hook", "trigger", "pending", 1)]
    (rules_dir / "alerting.yml").write_text(hook(receiver, name="other"))
    settle(delivery)
    # (the open alert is told to the destination that takes its place, tried once so far)
    assert states(alerts_db) == [("hook", "trigger", "dead", 1), ("other", "trigger", "pending", 1)]


def test_a_delivery_made_pending_to_a_destination_the_file_does_not_define_is_dead_lettered_without_a_busy_loop(
    make_delivery, alerts_db, receiver, clock, data_dir
):
    """`loglake alerts retry --data-dir` reading another alerting.yml than the server's (one defining 'pager')
    made it pending: it stayed so for good, and every later round of the worker came at once (a busy loop)."""
    delivery = make_delivery(hook(receiver))
    insert_alert(alerts_db, destinations=["pager"])
    settle(delivery)
    assert states(alerts_db) == [("pager", "trigger", "dead", 0)]
    other = Outbox(data_dir)  # the command's
    other.retry(alerts_db.execute("SELECT id FROM deliveries").fetchone()[0], ["pager"], clock.ms)
    other.close()
    assert delivery.step() == delivery.poll_seconds
    assert states(alerts_db) == [("pager", "trigger", "dead", 0)]
    assert (
        "'pager' is not defined in alerting.yml" in alerts_db.execute("SELECT last_error FROM deliveries").fetchone()[0]
    )


def test_deliveries_waiting_when_alerting_yml_is_removed_are_kept_until_a_file_routes_them(
    make_delivery, alerts_db, receiver, rules_dir, clock
):
    """With no alerting.yml alerts are kept (README): the deliveries waiting then were dead-lettered as to a destination
    "not defined in alerting.yml", and once the file was back each later event of their alerts (a PagerDuty resolve)
    waited behind them for a retry by hand."""
    receiver.default = Answer(500)
    delivery = make_delivery(hook(receiver))
    alert = insert_alert(alerts_db)
    settle(delivery)
    assert states(alerts_db) == [("hook", "trigger", "pending", 1)]
    (rules_dir / "alerting.yml").unlink()
    delivery.step()
    delivery.routing_file._missing_since -= EMPTY_SETTLES_NS  # gone for good, not between an editor's writes
    clock.now += 600
    assert delivery.step() == delivery.poll_seconds  # (nothing can go: no hurry, rather than a busy loop)
    wait_idle(delivery)
    assert states(alerts_db) == [("hook", "trigger", "pending", 1)]
    receiver.default = Answer()
    (rules_dir / "alerting.yml").write_text(hook(receiver))
    change_alert(alerts_db, alert["id"], "resolve")
    settle(delivery)
    assert states(alerts_db) == [("hook", "trigger", "sent", 2), ("hook", "resolve", "sent", 1)]


def test_while_alerting_yml_has_problems_events_wait_for_a_good_version(make_delivery, alerts_db, receiver, rules_dir):
    delivery = make_delivery("destinations: {hook: {type: webhook}}\n")
    insert_alert(alerts_db)
    settle(delivery)
    assert states(alerts_db) == []
    assert [p.field for p in delivery.routing_file.problems] == ["destinations.hook.url"]  # (the missing field's)
    (rules_dir / "alerting.yml").write_text(hook(receiver))
    settle(delivery)
    assert states(alerts_db) == [("hook", "trigger", "sent", 1)]


def test_without_alerting_yml_alerts_are_kept_and_sent_nowhere(make_delivery, alerts_db):
    delivery = make_delivery()
    insert_alert(alerts_db)
    settle(delivery)
    assert states(alerts_db) == []
    assert alerts_db.execute("SELECT seq FROM delivery_cursor").fetchone() == (1,)


def test_alerts_raised_without_alerting_yml_are_told_to_their_destinations_once_it_is_written(
    make_delivery, alerts_db, receiver, rules_dir
):
    """They were never sent, and their acknowledgement and resolve later went to receivers that had never heard
    of them (a new-user trial: PagerDuty was told to acknowledge an incident it never had)."""
    delivery = make_delivery()
    opened = insert_alert(alerts_db)
    acknowledged = insert_alert(alerts_db)
    change_alert(alerts_db, acknowledged["id"], "acknowledge")
    resolved = insert_alert(alerts_db)
    change_alert(alerts_db, resolved["id"], "resolve")
    settle(delivery)
    assert states(alerts_db) == []
    write_alerting(rules_dir, hook(receiver))
    settle(delivery)
    told = {(r.json()["alert"]["id"], r.json()["event"], r.json()["alert"]["status"]) for r in receiver.requests}
    assert told == {(opened["id"], "trigger", "open"), (acknowledged["id"], "trigger", "acknowledged")}
    # what follows goes as usual, once; a worker started again tells nothing twice
    change_alert(alerts_db, opened["id"], "resolve")
    settle(delivery)
    delivery.stop()
    settle(make_delivery())
    assert [(r.json()["alert"]["id"], r.json()["event"]) for r in receiver.requests[2:]] == [(opened["id"], "resolve")]


def test_a_destination_that_never_heard_of_an_alert_hears_first_its_trigger_and_never_a_resolve_alone(
    make_delivery, alerts_db, receiver, rules_dir
):
    """A route added to alerting.yml while alerts are open (as Alertmanager tells a new receiver of what fires)."""
    other = Receiver()
    try:
        delivery = make_delivery(hook(receiver))
        first = insert_alert(alerts_db)
        settle(delivery)
        write_alerting(
            rules_dir,
            f"""
            destinations:
              hook: {{type: webhook, url: "{receiver.url}/hook"}}
              new: {{type: webhook, url: "{other.url}/new"}}
            routes:
              - {{to: [hook, new]}}
            """,
        )
        change_alert(alerts_db, first["id"], "update")
        settle(delivery)
        assert [r.json()["event"] for r in receiver.requests] == ["trigger", "update"]
        assert [r.json()["event"] for r in other.requests] == ["trigger"]  # (the update, as its first word of it)
        change_alert(alerts_db, first["id"], "resolve")
        settle(delivery)
        assert [r.json()["event"] for r in other.requests] == ["trigger", "resolve"]
    finally:
        other.close()


def test_the_later_events_of_an_alert_go_where_its_trigger_went_whatever_the_routes_say_now(
    make_delivery, alerts_db, receiver, rules_dir
):
    """A route edited while an alert is open (as Alertmanager and Grafana send an alert's resolve where its firing
    went): its PagerDuty incident was never resolved, the resolve following the new routes only."""
    other = Receiver()
    try:
        delivery = make_delivery(
            f"""
            destinations:
              pager: {{type: webhook, url: "{receiver.url}/pager"}}
              chat: {{type: webhook, url: "{other.url}/chat"}}
            routes:
              - {{match: {{level: [high]}}, to: [pager]}}
            """
        )
        alert = insert_alert(alerts_db)
        settle(delivery)
        write_alerting(
            rules_dir,
            f"""
            destinations:
              pager: {{type: webhook, url: "{receiver.url}/pager"}}
              chat: {{type: webhook, url: "{other.url}/chat"}}
            routes:
              - {{match: {{level: [critical]}}, to: [pager]}}
              - {{match: {{level: [high]}}, to: [chat]}}
            """,
        )
        settle(delivery)
        change_alert(alerts_db, alert["id"], "acknowledge")
        change_alert(alerts_db, alert["id"], "resolve")
        settle(delivery)
        assert [r.json()["event"] for r in receiver.requests] == ["trigger", "acknowledge", "resolve"]
        assert [r.json()["event"] for r in other.requests] == ["trigger", "acknowledge", "resolve"]  # (told at once)
        # A destination taken out of the file hears no more of it (its deliveries could only be dead-lettered).
        second = insert_alert(alerts_db, dedup_key="db", level="critical")
        settle(delivery)
        write_alerting(
            rules_dir,
            f"""
            destinations:
              chat: {{type: webhook, url: "{other.url}/chat"}}
            routes:
              - {{to: [chat]}}
            """,
        )
        change_alert(alerts_db, second["id"], "resolve")
        settle(delivery)
        assert alerts_db.execute(
            "SELECT destination, kind, state FROM deliveries WHERE alert_id = ? ORDER BY rowid", (second["id"],)
        ).fetchall() == [("pager", "trigger", "sent")]  # (and chat, never told of it, not of its resolve alone)
    finally:
        other.close()


def test_a_destination_that_takes_no_triggers_gets_the_events_it_takes(make_delivery, alerts_db, receiver):
    # It is never told of an alert by a trigger, so the events it asked for are its first word of it.
    delivery = make_delivery(hook(receiver, extra=", events: [acknowledge, resolve]"))
    alert = insert_alert(alerts_db)
    settle(delivery)
    change_alert(alerts_db, alert["id"], "acknowledge")
    change_alert(alerts_db, alert["id"], "resolve")
    settle(delivery)
    assert [r.json()["event"] for r in receiver.requests] == ["acknowledge", "resolve"]


def test_alerts_routed_before_the_told_table_are_not_told_again(make_delivery, alerts_db, receiver, data_dir):
    """Their deliveries may have been forgotten since: an upgrade must not send their triggers a second time."""
    migrate_schema(alerts_db, Schema(SCHEMA.name, SCHEMA.migrations[:1]))  # the outbox as it was
    routed, waiting = insert_alert(alerts_db), insert_alert(alerts_db)
    alerts_db.execute("INSERT INTO delivery_cursor (name, seq) VALUES ('alert_events', 1)")  # the first routed
    settle(make_delivery(hook(receiver)))
    assert [(r.json()["alert"]["id"], r.json()["event"]) for r in receiver.requests] == [(waiting["id"], "trigger")]
    assert routed["id"] != waiting["id"]


def test_an_attempt_cut_short_by_a_crash_is_due_again_with_its_key(make_delivery, alerts_db, receiver, clock):
    delivery = make_delivery(hook(receiver))
    insert_alert(alerts_db)
    routing = delivery.routing_file.current()
    assert routing is not None
    delivery.outbox.route(routing, clock.ms)
    (claimed,) = delivery.outbox.claim("hook", 5, clock.ms)  # then the process dies
    restarted: AlertDelivery = make_delivery()
    assert restarted.outbox.recover(clock.ms) == 1
    settle(restarted)
    assert receiver.requests[0].headers["idempotency-key"] == claimed.row.id
    assert states(alerts_db) == [("hook", "trigger", "sent", 1)]


def test_finished_deliveries_are_forgotten_after_the_keeping_time(make_delivery, alerts_db, receiver, clock):
    delivery = make_delivery(hook(receiver))
    insert_alert(alerts_db)
    settle(delivery)
    assert delivery.outbox.prune(clock.ms) == 0
    assert delivery.outbox.prune(clock.ms + 1) == 1
    assert alerts_db.execute("SELECT count(*) FROM delivery_alerts").fetchone() == (0,)


def test_one_process_delivers_per_data_dir_and_another_takes_over_when_it_stops(make_delivery, alerts_db, receiver):
    first = make_delivery(hook(receiver), poll_seconds=0.05)
    first.start()
    insert_alert(alerts_db)
    receiver.wait_for(1)
    second = make_delivery(poll_seconds=0.05)
    second.start()
    deadline = time.monotonic() + 20
    while second.last_error is None:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert "another process holds alert-delivery.lock" in second.last_error
    first.stop()
    second.wake()
    insert_alert(alerts_db)
    receiver.wait_for(2)
    assert [r.json()["event_id"] for r in receiver.requests] == [1, 2]


def test_an_event_whose_alert_is_gone_is_passed_over(make_delivery, alerts_db, receiver, data_dir):
    delivery = make_delivery(hook(receiver))
    insert_alert(alerts_db)
    loose = open_alerts_db(data_dir)
    loose.execute("PRAGMA foreign_keys = OFF")  # as a tool that deleted alerts without their events would
    loose.execute("INSERT INTO alert_events (alert_id, kind, at_ms) VALUES ('deleted', 'update', 1)")
    loose.close()
    settle(delivery)
    assert alerts_db.execute("SELECT seq FROM delivery_cursor").fetchone() == (2,)
    assert states(alerts_db) == [("hook", "trigger", "sent", 1)]


def test_an_attempt_whose_outcome_cannot_be_recorded_is_sent_again_once_it_can(
    make_delivery, alerts_db, receiver, clock, data_dir, monkeypatch
):
    """The receiver took it, then the alerts database refused the record (another process holding it, a full
    disk): the delivery stayed `sending`, unsaid, until a restart. It is due again once the database takes writes,
    with its idempotency key (a receiver drops the repeat, as after a crash)."""
    monkeypatch.setattr("loglake.alerts.db.BUSY_TIMEOUT_S", 0.2)
    answered = threading.Event()
    receiver.answers = [Answer(200, hold=answered)]
    delivery = make_delivery(hook(receiver))
    insert_alert(alerts_db)
    delivery.step()  # the attempt is under way, the receiver holding its answer
    receiver.wait_for(1)
    holder = open_alerts_db(data_dir)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        answered.set()
        wait_idle(delivery)
        assert "database is locked" in (delivery.last_error or "")
    finally:
        holder.rollback()
        holder.close()
    delivery.step()  # due again after a pause
    assert states(alerts_db) == [("hook", "trigger", "pending", 0)]
    clock.now += 600
    settle(delivery)
    assert states(alerts_db) == [("hook", "trigger", "sent", 1)]
    first, second = receiver.requests
    assert first.headers["idempotency-key"] == second.headers["idempotency-key"]


def test_the_worker_s_failures_are_logged_once_not_at_every_round_and_its_recovery(
    make_delivery, alerts_db, receiver, data_dir, monkeypatch, caplog
):
    """The alerts database locked (or full) failed every round of the worker: no alert went out, and the log said
    nothing of it (only /healthz's worker_error did). The first failure is logged, with its traceback, not each
    round's; the worker's recovery too."""
    monkeypatch.setattr("loglake.alerts.db.BUSY_TIMEOUT_S", 0.01)
    caplog.set_level(logging.INFO, logger="loglake.alerts")
    delivery = make_delivery(hook(receiver), poll_seconds=0.01)
    insert_alert(alerts_db)
    rounds, recover = [0], delivery.outbox.recover

    def counted(now_ms: int) -> int:
        rounds[0] += 1
        return recover(now_ms)

    monkeypatch.setattr(delivery.outbox, "recover", counted)
    holder = open_alerts_db(data_dir)
    holder.execute("BEGIN EXCLUSIVE")  # (another process writing, for as long as it takes)
    try:
        delivery.start()
        deadline = time.monotonic() + 20
        while rounds[0] < 5:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert "database is locked" in (delivery.last_error or "")
    finally:
        holder.rollback()
        holder.close()
    receiver.wait_for(1)

    def said() -> list[tuple[str, str, bool]]:
        return [(r.levelname, r.getMessage(), bool(r.exc_info)) for r in caplog.records if r.name == "loglake.alerts"]

    while len(said()) < 2:  # (the round that worked says so once it has ended: maybe after the receiver's answer)
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert said() == [
        ("ERROR", "alert delivery failed; retrying in 0.01 s", True),
        ("INFO", f"alert delivery works again, after {rounds[0] - 1} failures", False),
    ]
