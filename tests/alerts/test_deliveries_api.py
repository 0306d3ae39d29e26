"""GET /alerts/deliveries and the delivery lines of /metrics, through the in-process app."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace

import httpx
import pytest

from loglake.alerts.db import open_alerts_db
from loglake.alerts.delivery import LOCK_FILE, AlertDelivery
from loglake.api import delivery_routes
from loglake.api.app import LoglakeApp
from loglake.api.operation_routes import DEAD_DELIVERY_DEGRADES_MS
from loglake.api.route_table import ROUTES, Route, Router
from loglake.locks import exclusive_lock
from tests.alerts.conftest import wait_idle, write_alerting
from tests.alerts.receivers import Answer, Receiver, insert_alert
from tests.conftest import asgi_client, key_for


@pytest.fixture
def delivered(app: LoglakeApp, settings, receiver: Receiver) -> Iterator[tuple[AlertDelivery, list[dict]]]:
    """Three alerts, each to `ok` (sent) and to `refused` (dead-lettered at once: a 400)."""
    receiver.answer_for = lambda r: Answer(400, body=b"no") if r.path == "/refused" else Answer()
    write_alerting(
        settings.rules_path,
        f"""
        destinations:
          ok: {{type: webhook, url: "{receiver.url}/ok"}}
          refused: {{type: webhook, url: "{receiver.url}/refused"}}
        routes: [{{to: [ok, refused]}}]
        """,
    )
    conn = open_alerts_db(settings.data_dir)
    alerts = [insert_alert(conn) for _ in range(3)]
    conn.close()
    delivery = app.runtime.delivery
    assert delivery is not None
    for _ in range(10):
        delivery.step()
        wait_idle(delivery)
        if not delivery.waiting():
            break
    yield delivery, alerts


async def test_deliveries_are_listed_newest_first_filtered_and_paged(client: httpx.AsyncClient, delivered):
    _, alerts = delivered
    everything = (await client.get("/alerts/deliveries")).json()
    assert [(d["destination"], d["state"]) for d in everything["deliveries"]] == [
        ("refused", "dead"),
        ("ok", "sent"),
    ] * 3
    assert everything["next_cursor"] is None and everything["routing_problems"] == []
    assert everything["worker_error"] is None
    first = everything["deliveries"][0]
    assert first["alert_id"] == alerts[2]["id"] and first["event"] == "trigger" and first["attempts"] == 1
    assert first["last_error"] == "HTTP 400: no" and first["last_status"] == 400 and first["next_attempt"] is None
    sent = everything["deliveries"][1]
    assert sent["last_error"] is None and sent["last_status"] == 200
    dead = (await client.get("/alerts/deliveries", params={"state": "dead"})).json()["deliveries"]
    assert {d["destination"] for d in dead} == {"refused"} and len(dead) == 3
    assert all(d["retryable"] for d in dead) and not any(d["retryable"] for d in everything["deliveries"][1::2])
    # several states, comma-separated, as GET /alerts takes its statuses (one only was taken: a new-user trial)
    either = (await client.get("/alerts/deliveries", params={"state": "pending, DEAD,sending"})).json()["deliveries"]
    assert [d["id"] for d in either] == [d["id"] for d in dead]
    ok = (await client.get("/alerts/deliveries", params={"destination": "ok"})).json()["deliveries"]
    assert {d["state"] for d in ok} == {"sent"} and len(ok) == 3
    one = (await client.get("/alerts/deliveries", params={"alert": alerts[0]["id"]})).json()["deliveries"]
    assert {d["alert_id"] for d in one} == {alerts[0]["id"]} and len(one) == 2
    pages, cursor = [], None
    while True:
        params = {"limit": 4} | ({"cursor": cursor} if cursor else {})
        page = (await client.get("/alerts/deliveries", params=params)).json()
        pages.append(len(page["deliveries"]))
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == [4, 2]


async def test_an_alert_is_named_as_the_alerts_commands_name_it(client: httpx.AsyncClient, app, settings, receiver):
    # `loglake alerts list` shows ids whose 4 digits before the last 8 name an alert (README); its deliveries
    # filtered by those answered none, as if it had gone nowhere.
    write_alerting(
        settings.rules_path,
        f'destinations: {{ok: {{type: webhook, url: "{receiver.url}/ok"}}}}\nroutes: [{{to: [ok]}}]\n',
    )
    conn = open_alerts_db(settings.data_dir)
    for alert_id in ("019a2446-a801-7123-8456-8016c0ffee01", "019a2446-a801-7123-8456-8017c0ffee01"):
        insert_alert(conn, id=alert_id)
    conn.close()
    delivery = app.runtime.delivery
    delivery.step()
    wait_idle(delivery)
    one = (await client.get("/alerts/deliveries", params={"alert": "8016"})).json()["deliveries"]
    assert [d["alert_id"] for d in one] == ["019a2446-a801-7123-8456-8016c0ffee01"]
    several = await client.get("/alerts/deliveries", params={"alert": "c0ffee01"})
    assert several.status_code == 400 and "8016 (019a2446" in several.json()["error"]["message"]
    none = await client.get("/alerts/deliveries", params={"alert": "9999"})
    assert none.status_code == 404 and "no alert with id '9999'" in none.json()["error"]["message"]
    documented = (await client.get("/openapi.json")).json()["paths"]["/alerts/deliveries"]["get"]["responses"]
    assert "404" in documented  # it was not listed


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"state": "lost"}, "state: must be one or more (comma-separated) of pending, sending, sent, dead, not 'lost'"),
        ({"limit": "0"}, "limit: must be a whole number 1-500, not '0'"),
        ({"limit": "many"}, "limit: must be a whole number 1-500"),
        ({"cursor": "-3"}, "cursor: must be a whole number 1 or more"),
        ({"cursor": "²"}, "cursor: must be a whole number 1 or more"),  # str.isdigit() says yes, int() no
        ({"status": "dead"}, "status: unknown parameter; did you mean state? known: alert, cursor, destination, limit"),
    ],
)
async def test_bad_parameters_are_a_400_that_says_what_to_send(client: httpx.AsyncClient, params, says):
    answer = await client.get("/alerts/deliveries", params=params)
    assert answer.status_code == 400
    assert says in answer.json()["error"]["message"]


async def test_reading_deliveries_needs_the_read_scope(app: LoglakeApp):
    async with asgi_client(app) as anonymous:
        assert (await anonymous.get("/alerts/deliveries")).status_code == 401
    async with asgi_client(app, key_for(app, "ingest")) as ingest_only:
        assert (await ingest_only.get("/alerts/deliveries")).status_code == 403
    async with asgi_client(app, key_for(app, "read")) as reader:
        assert (await reader.get("/alerts/deliveries")).status_code == 200


async def test_problems_of_alerting_yml_are_shown(client: httpx.AsyncClient, settings):
    write_alerting(settings.rules_path, "destinations: {a: {type: pigeon}}\n")
    answer = (await client.get("/alerts/deliveries")).json()
    assert answer["routing_problems"] == [
        "alerting.yml has problems and no version of it has loaded: alerts wait undelivered until it is fixed",
        f"{settings.rules_path / 'alerting.yml'}: destinations.a.type: 'pigeon' is not a destination type "
        "(one of: webhook, slack, teams, pagerduty, email, jira)",
    ]


async def test_a_broken_alerting_yml_is_said_apart_from_the_version_still_in_use(
    client: httpx.AsyncClient, settings, monkeypatch: pytest.MonkeyPatch
):
    """While a new alerting.yml has problems the last one that loaded routes the alerts: its unset secrets are
    that version's, and the answer says so (they read as the broken file's)."""
    monkeypatch.delenv("FIXD_UNSET_HOOK_SECRET", raising=False)
    write_alerting(
        settings.rules_path,
        "destinations: {hook: {type: webhook, url: 'http://127.0.0.1:9/', secret: {env: FIXD_UNSET_HOOK_SECRET}}}\n",
    )
    assert len((await client.get("/alerts/deliveries")).json()["routing_problems"]) == 1  # (the good one read)
    write_alerting(settings.rules_path, "destinations: {a: {type: pigeon}}\n")
    file = settings.rules_path / "alerting.yml"
    assert (await client.get("/alerts/deliveries")).json()["routing_problems"] == [
        "alerting.yml has problems: alerts are delivered as the last version of it that loaded says, until it is fixed",
        f"{file}: destinations.a.type: 'pigeon' is not a destination type (one of: webhook, slack, teams, pagerduty,"
        " email, jira)",
        f"{file} (the version in use): destinations.hook.secret: secret {{env: FIXD_UNSET_HOOK_SECRET}} is not set:"
        " set FIXD_UNSET_HOOK_SECRET in the server's environment and restart the server",
    ]


async def test_a_secret_in_a_variable_that_is_not_set_is_shown_with_the_problems(
    client: httpx.AsyncClient, settings, monkeypatch: pytest.MonkeyPatch
):
    """The file loads (the variable may be set later), but deliveries that need it wait: say why now."""
    monkeypatch.delenv("FIXD_UNSET_HOOK_SECRET", raising=False)
    monkeypatch.setenv("FIXD_SET_HOOK_URL", "http://127.0.0.1:9/hook")
    write_alerting(
        settings.rules_path,
        """
        destinations:
          hook: {type: webhook, url: {env: FIXD_SET_HOOK_URL}, secret: {env: FIXD_UNSET_HOOK_SECRET}}
        routes: [{to: [hook]}]
        """,
    )
    answer = (await client.get("/alerts/deliveries")).json()
    assert answer["routing_problems"] == [
        f"{settings.rules_path / 'alerting.yml'}: destinations.hook.secret: secret {{env: FIXD_UNSET_HOOK_SECRET}}"
        " is not set: set FIXD_UNSET_HOOK_SECRET in the server's environment and restart the server"
    ]
    monkeypatch.setenv("FIXD_UNSET_HOOK_SECRET", "now-set")
    assert (await client.get("/alerts/deliveries")).json()["routing_problems"] == []


def test_the_path_is_never_taken_for_an_alert_id():
    async def by_id(app: object, request: object, alert_id: str) -> None: ...

    router = Router([*ROUTES, Route("GET", "/alerts/{id}", by_id, "read")])
    assert router.match("GET", "/alerts/deliveries") == (
        next(r for r in ROUTES if r.template == delivery_routes.PATH),
        (),
    )
    assert router.match("GET", "/alerts/a1")[1] == ("a1",)


async def test_metrics_count_sent_failed_and_dead_lettered_per_destination(client: httpx.AsyncClient, delivered):
    text = (await client.get("/metrics")).text
    assert 'loglake_alert_deliveries_sent_total{destination="ok"} 3' in text
    assert 'loglake_alert_delivery_failed_attempts_total{destination="refused"} 3' in text
    assert 'loglake_alert_deliveries_dead_lettered_total{destination="refused"} 3' in text
    assert "# TYPE loglake_alert_deliveries_pending gauge" in text
    assert "loglake_alert_deliveries_pending{" not in text  # nothing waits


async def test_waiting_deliveries_show_in_the_pending_gauge(client: httpx.AsyncClient, app, settings, receiver):
    receiver.default = Answer(503)
    write_alerting(
        settings.rules_path, f'destinations: {{h: {{type: webhook, url: "{receiver.url}/"}}}}\nroutes: [{{to: [h]}}]\n'
    )
    conn = open_alerts_db(settings.data_dir)
    insert_alert(conn)
    insert_alert(conn)
    conn.close()
    delivery = app.runtime.delivery
    delivery.step()
    wait_idle(delivery)
    text = (await client.get("/metrics")).text
    assert 'loglake_alert_deliveries_pending{destination="h"} 2' in text
    assert 'loglake_alert_delivery_failed_attempts_total{destination="h"} 2' in text


async def test_a_delivery_that_cannot_run_says_why(client: httpx.AsyncClient, app: LoglakeApp, settings):
    delivery = app.runtime.delivery
    with exclusive_lock(settings.data_dir / LOCK_FILE):  # as another process delivering this data dir
        delivery.start()
        deadline = time.monotonic() + 20
        while delivery.last_error is None:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        answer = (await client.get("/alerts/deliveries")).json()
    assert answer["worker_error"] == "another process holds alert-delivery.lock and delivers this data dir's alerts"


async def test_a_dead_delivery_whose_destination_is_gone_is_not_retryable(
    client: httpx.AsyncClient, delivered, receiver, settings
):
    """A UI trial: the alert's page offered Retry for a delivery to a destination alerting.yml did not define, which
    could only be refused (409)."""
    write_alerting(settings.rules_path, f'destinations: {{ok: {{type: webhook, url: "{receiver.url}/ok"}}}}\n')
    dead = (await client.get("/alerts/deliveries", params={"state": "dead"})).json()["deliveries"]
    assert len(dead) == 3 and not any(d["retryable"] for d in dead)
    refused = await client.post(f"/alerts/deliveries/{dead[0]['id']}/retry")
    assert refused.status_code == 409 and "not defined in alerting.yml" in refused.json()["error"]["message"]


async def test_a_dead_delivery_is_retried_through_the_api_with_the_alerts_scope(
    app: LoglakeApp, client: httpx.AsyncClient, delivered, receiver: Receiver
):
    delivery, _ = delivered
    dead = (await client.get("/alerts/deliveries", params={"state": "dead"})).json()["deliveries"][0]
    path = f"/alerts/deliveries/{dead['id']}/retry"
    async with asgi_client(app, key_for(app, "read")) as reader:
        assert (await reader.post(path)).status_code == 403
    receiver.answer_for = None  # the receiver takes it now
    async with asgi_client(app, key_for(app, "alerts")) as oncall:
        answer = await oncall.post(path)
        assert answer.status_code == 200
        assert (answer.json()["id"], answer.json()["state"], answer.json()["attempts"]) == (dead["id"], "pending", 0)
        again = await oncall.post(path)
        assert again.status_code == 409 and again.json()["error"]["code"] == "not_retryable"
        assert "is pending, not dead" in again.json()["error"]["message"]
        missing = await oncall.post("/alerts/deliveries/no-such-id/retry")
        assert missing.status_code == 404 and "GET /alerts/deliveries?state=dead" in missing.json()["error"]["message"]
    delivery.step()
    wait_idle(delivery)
    after = (await client.get("/alerts/deliveries", params={"alert": dead["alert_id"]})).json()["deliveries"]
    assert {(d["destination"], d["state"], d["attempts"]) for d in after} == {("refused", "sent", 1), ("ok", "sent", 1)}
    sent_again = [r for r in receiver.requests if r.headers["idempotency-key"] == dead["id"]]
    assert [r.path for r in sent_again] == ["/refused", "/refused"]  # the dead-lettered attempt, then the retry


async def test_a_secret_a_destination_needs_that_is_not_set_degrades_healthz(
    app: LoglakeApp, settings, monkeypatch
) -> None:
    """It was said only by GET /alerts/deliveries, while /healthz said ok and each delivery failed for half an hour
    before it was dead-lettered (a new-user trial)."""
    monkeypatch.delenv("FIXD_UNSET_HOOK_URL", raising=False)
    write_alerting(settings.rules_path, "destinations: {hook: {type: webhook, url: {env: FIXD_UNSET_HOOK_URL}}}\n")
    async with asgi_client(app, key_for(app, "read")) as reader:
        detail = (await reader.get("/healthz")).json()
        assert (detail["status"], detail["reason"]) == (
            "degraded",
            "1 secret(s) that alert destinations need are not set: their deliveries fail",
        )
        assert detail["deliveries"]["routing_problems"] == [
            f"{settings.rules_path / 'alerting.yml'}: destinations.hook.url: secret {{env: FIXD_UNSET_HOOK_URL}} is"
            " not set: set FIXD_UNSET_HOOK_URL in the server's environment and restart the server"
        ]
        monkeypatch.setenv("FIXD_UNSET_HOOK_URL", "http://127.0.0.1:9/")
        assert (await reader.get("/healthz")).json()["status"] == "ok"


async def test_healthz_names_every_cause_gravest_first(app: LoglakeApp, settings, monkeypatch) -> None:
    """With dead deliveries, a broken rule file and alerting.yml's problems, /healthz named the deliveries alone (a
    new-user trial): each cause is named."""
    monkeypatch.delenv("FIXD_UNSET_HOOK_URL", raising=False)
    write_alerting(settings.rules_path, "destinations: {hook: {type: webhook, url: {env: FIXD_UNSET_HOOK_URL}}}\n")
    (settings.rules_path / "broken.yml").write_text("title: broken\n")
    assert app.runtime.rules is not None
    app.runtime.rules.folder.reload()
    async with asgi_client(app) as anonymous:
        answer = (await anonymous.get("/healthz")).json()
    assert answer["status"] == "degraded"
    assert answer["reason"] == (
        "1 problem(s) in the rule files or alerting.yml: what they hold does not run; "
        "1 secret(s) that alert destinations need are not set: their deliveries fail"
    )


async def test_dead_deliveries_are_a_gauge_and_degrade_healthz_after_a_restart(app: LoglakeApp, settings, delivered):
    app.close()  # a restart: this process's counters start again, the outbox's rows remain
    again = LoglakeApp.from_settings(settings)
    try:
        async with asgi_client(again, key_for(again, "read")) as reader:
            text = (await reader.get("/metrics")).text
            assert 'loglake_alert_deliveries_dead_lettered_total{destination="refused"}' not in text
            assert "# TYPE loglake_alert_deliveries_dead gauge" in text
            assert 'loglake_alert_deliveries_dead{destination="refused"} 3' in text
            assert 'loglake_alert_deliveries_dead{destination="ok"}' not in text
            health = await reader.get("/healthz")
        # Degraded, yet a 200: the server still takes logs, so a load balancer must not drop it.
        assert health.status_code == 200
        detail = health.json()
        assert detail["status"] == "degraded"
        assert detail["reason"] == "alert deliveries were dead-lettered in the last 24 h"
        assert detail["deliveries"]["dead"] == 3 and detail["deliveries"]["dead_by_destination"] == {"refused": 3}
        async with asgi_client(again) as anonymous:
            public = await anonymous.get("/healthz")
        assert public.status_code == 200
        assert public.json() == {"status": "degraded", "reason": "alert deliveries were dead-lettered in the last 24 h"}
    finally:
        again.close()


async def test_healthz_is_ok_again_when_the_dead_deliveries_are_older_than_a_day(app, settings, delivered) -> None:
    conn = open_alerts_db(settings.data_dir)
    conn.execute("UPDATE deliveries SET updated_ms = updated_ms - ? WHERE state = 'dead'", (DEAD_DELIVERY_DEGRADES_MS,))
    conn.close()
    async with asgi_client(app, key_for(app, "read")) as reader:
        detail = (await reader.get("/healthz")).json()
    assert detail["status"] == "ok" and detail["reason"] is None and detail["deliveries"]["dead"] == 3


def test_the_servers_public_url_reaches_the_delivery_worker(settings, receiver: Receiver) -> None:
    write_alerting(
        settings.rules_path, f'destinations: {{h: {{type: webhook, url: "{receiver.url}/"}}}}\nroutes: [{{to: [h]}}]\n'
    )
    conn = open_alerts_db(settings.data_dir)
    alert = insert_alert(conn)
    conn.close()
    app = LoglakeApp.from_settings(replace(settings, public_url="https://loglake.example.com"))
    try:
        delivery = app.runtime.delivery
        delivery.step()
        wait_idle(delivery)
    finally:
        app.close()
    [request] = receiver.requests
    assert request.json()["alert_url"] == f"https://loglake.example.com/ui/alerts/{alert['id']}"


async def test_an_outbox_that_cannot_be_read_degrades_healthz_and_leaves_metrics_answering(
    app: LoglakeApp, settings, delivered
) -> None:
    conn = open_alerts_db(settings.data_dir)
    conn.execute("DROP TABLE deliveries")  # as a damaged alerts.db would: every read of the outbox fails
    conn.close()
    async with asgi_client(app, key_for(app, "read")) as reader:
        health = await reader.get("/healthz")
        metrics = await reader.get("/metrics")
    assert health.status_code == 200
    detail = health.json()
    assert detail["status"] == "degraded" and detail["reason"] == "alert deliveries cannot be read"
    assert detail["deliveries"]["error"] == "alerts.db cannot be read: no such table: deliveries"
    assert metrics.status_code == 200
    assert 'loglake_alert_deliveries_sent_total{destination="ok"}' in metrics.text
    assert "loglake_alert_deliveries_dead{" not in metrics.text


async def test_a_delivery_waiting_behind_another_alerts_dead_one_names_that_alert_and_delivery(
    client: httpx.AsyncClient, app: LoglakeApp, settings, receiver: Receiver
):
    """A new alert of a dedup key whose earlier alert's trigger was dead-lettered waits behind that trigger: its
    page said "waits for the trigger of its alert" and offered no Retry, the dead one being the other alert's."""
    receiver.answer_for = lambda r: Answer(400, body=b"no")
    write_alerting(
        settings.rules_path,
        f'destinations: {{hook: {{type: webhook, url: "{receiver.url}/hook"}}}}\nroutes: [{{to: [hook]}}]\n',
    )
    delivery = app.runtime.delivery
    conn = open_alerts_db(settings.data_dir)
    try:
        first = insert_alert(conn, dedup_key="auth-failures:shared")
        delivery.step()
        wait_idle(delivery)
        [dead] = (await client.get("/alerts/deliveries", params={"state": "dead"})).json()["deliveries"]
        own = insert_alert(conn, dedup_key="auth-failures:shared")  # the first one's own update waits too
        conn.execute("INSERT INTO alert_events (alert_id, kind, at_ms) VALUES (?, 'update', 1)", (first["id"],))
        conn.commit()
    finally:
        conn.close()
    delivery.step()
    wait_idle(delivery)
    waiting = (await client.get("/alerts/deliveries", params={"state": "pending"})).json()["deliveries"]
    by_alert = {d["alert_id"]: d for d in waiting}
    blocker = {"id": dead["id"], "alert_id": first["id"], "event": "trigger"}
    assert [d["waits_for"] for d in waiting] == [blocker, blocker]
    assert by_alert[own["id"]]["last_error"] == (
        f"waits for the trigger of alert {first['id']} (of the same dedup key), dead-lettered ({dead['id']}), to go"
        f" first: retry that one (loglake alerts retry {dead['id']})"
    )
    assert by_alert[first["id"]]["last_error"].startswith("waits for the trigger of its alert, dead-lettered")
    assert dead["waits_for"] is None
