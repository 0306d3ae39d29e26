"""The alert routes over the in-process app and a real alerts.db: scopes, filters and paging, status
changes recorded with the key's name, and every refusal with its status."""

from __future__ import annotations

import gzip
import re
import sqlite3
from collections.abc import Iterator

import httpx
import pytest

from loglake.alerts.db import open_alerts_db
from loglake.alerts.store import MAX_NOTE_CHARS
from loglake.api.app import LoglakeApp
from loglake.config import Settings
from loglake.sqlitedb import SharedConnection
from tests.alerts.rows import T0, events_of, insert_alert
from tests.conftest import asgi_client, key_for

UNKNOWN = "0193a0b0-0000-7000-8000-000000000000"


@pytest.fixture
def alerts(settings: Settings) -> Iterator[sqlite3.Connection]:
    """The data dir's alerts.db, written beside the app as the detection engine writes it."""
    conn = open_alerts_db(settings.data_dir)
    yield conn
    conn.close()


async def test_lists_are_newest_first_without_evidence_with_counts_and_pages(
    client: httpx.AsyncClient, alerts: sqlite3.Connection
) -> None:
    made = [insert_alert(alerts, T0 + i, level="critical" if i == 2 else "high") for i in range(5)]
    first = (await client.get("/alerts", params={"limit": 3})).json()
    assert [a["id"] for a in first["alerts"]] == made[:1:-1]
    assert first["count"] == 3 and "evidence" not in first["alerts"][0]
    assert first["alerts"][0]["evidence_count"] == 1
    assert first["counts"]["status"]["open"] == 5 and first["counts"]["level"] == {
        "informational": 0,
        "low": 0,
        "medium": 0,
        "high": 4,
        "critical": 1,
    }
    rest = (await client.get("/alerts", params={"limit": 3, "cursor": first["next_cursor"]})).json()
    assert [a["id"] for a in rest["alerts"]] == made[1::-1] and rest["next_cursor"] is None
    critical = (await client.get("/alerts", params={"level": "critical"})).json()
    assert [a["id"] for a in critical["alerts"]] == [made[2]]


async def test_filters_reach_the_store(client: httpx.AsyncClient, alerts: sqlite3.Connection) -> None:
    rule = "0b7e0a3c-1111-4222-8333-444455556666"
    mine = insert_alert(alerts, T0, rule_id=rule, status="acknowledged")
    insert_alert(alerts, T0 + 1)
    found = (await client.get("/alerts", params={"rule": rule, "status": "acknowledged,open", "q": "errors"})).json()
    assert [a["id"] for a in found["alerts"]] == [mine]


@pytest.mark.parametrize(
    ("params", "field"),
    [({"status": "closed"}, "status"), ({"limit": "501"}, "limit"), ({"since": "soon"}, "since"), ({"x": "1"}, "x")],
)
async def test_bad_list_parameters_are_400_naming_them(client: httpx.AsyncClient, params: dict, field: str) -> None:
    response = await client.get("/alerts", params=params)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_query" and [d["field"] for d in error["details"]] == [field]


async def test_one_alert_has_its_evidence_and_query(client: httpx.AsyncClient, alerts: sqlite3.Connection) -> None:
    alert_id = insert_alert(alerts)
    alert = (await client.get(f"/alerts/{alert_id}")).json()
    assert alert["id"] == alert_id and alert["evidence"][0]["message"] == "boom"
    assert alert["query"].startswith("SELECT") and alert["group"] == {"service": "api"}


async def test_evidence_attributes_are_the_object_get_logs_answers(client: httpx.AsyncClient, alerts) -> None:
    """The lake keeps attributes as JSON text; a reader (and the alert page, which shows them as Explore does)
    gets the object, as webhooks do; a SQL rule's own `attributes` column that is not JSON stays as it is."""
    evidence = [{"message": "boom", "attributes": '{"ip":"198.51.100.50","http":{"status":500}}'},
                {"message": "a SQL rule's own column", "attributes": "not json"}]  # fmt: skip
    alert = (await client.get(f"/alerts/{insert_alert(alerts, evidence=evidence)}")).json()
    assert [record["attributes"] for record in alert["evidence"]] == [
        {"ip": "198.51.100.50", "http": {"status": 500}},
        "not json",
    ]


async def test_evidence_attributes_keep_their_numbers_as_sent(client: httpx.AsyncClient, alerts) -> None:
    """A UI trial: the attributes were decoded and encoded again, so 1.50 reached the API (and the alert's page)
    as 1.5, 1E2 as 100.0; they are the lake's JSON text, as GET /logs/{id} answers them."""
    stored = '{"ratio":1.50,"n":1E2,"x":2.0,"id":12345678901234567890}'
    alert_id = insert_alert(alerts, evidence=[{"message": "boom", "attributes": stored}])
    assert f'"attributes":{stored}' in (await client.get(f"/alerts/{alert_id}")).text


@pytest.mark.parametrize("path", [f"/alerts/{UNKNOWN}", "/alerts/not-an-id"])
async def test_an_unknown_alert_is_404(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 404 and "GET /alerts lists them" in response.json()["error"]["message"]


async def test_an_alert_is_named_by_the_start_of_its_id_and_the_start_of_several_is_a_400_naming_them(
    client: httpx.AsyncClient, alerts: sqlite3.Connection
) -> None:
    first, second = insert_alert(alerts, T0), insert_alert(alerts, T0 + 1)
    shared = next(first[:i] for i, (a, b) in enumerate(zip(first, second, strict=True)) if a != b)
    mine = first[: len(shared) + 1]
    for start in (mine, mine.upper()):
        shown = await client.get(f"/alerts/{start}")
        assert shown.status_code == 200 and shown.json()["id"] == first
    acked = await client.post(f"/alerts/{mine}/acknowledge")
    assert acked.status_code == 200 and acked.json()["id"] == first and acked.json()["status"] == "acknowledged"
    for answer in (await client.get(f"/alerts/{shared}"), await client.post(f"/alerts/{shared}/resolve")):
        assert answer.status_code == 400
        error = answer.json()["error"]
        assert error["code"] == "ambiguous_alert_id"
        parts = re.search(
            rf"{shared!r} is part of 2 alerts' ids: (\w+) \({first}\), (\w+) \({second}\);", error["message"]
        )
        assert parts and parts[1] in first and parts[2] in second, error["message"]
    assert [kind for kind, _ in events_of(alerts, first)] == ["trigger", "acknowledge"]
    assert [kind for kind, _ in events_of(alerts, second)] == ["trigger"]


async def test_a_long_alert_id_is_not_echoed_whole_and_unknown_parameters_are_refused(
    client: httpx.AsyncClient, alerts: sqlite3.Connection
) -> None:
    message = (await client.get(f"/alerts/{'a' * 5000}")).json()["error"]["message"]
    assert "a" * 64 + "..." in message and "a" * 65 not in message
    response = await client.get(f"/alerts/{insert_alert(alerts)}", params={"evidence": "0"})
    assert response.status_code == 400 and response.json()["error"]["details"][0]["field"] == "evidence"


async def test_acknowledge_and_resolve_record_the_keys_name_and_the_note(
    app: LoglakeApp, alerts: sqlite3.Connection
) -> None:
    alert_id = insert_alert(alerts)
    async with asgi_client(app, key_for(app, "read,alerts", "oncall-alice")) as alice:
        acked = await alice.post(f"/alerts/{alert_id}/acknowledge", json={"note": "on it"})
        assert acked.status_code == 200, acked.text
        assert acked.json()["status"] == "acknowledged"
        assert acked.json()["status_change"]["by"] == "oncall-alice"
        assert acked.json()["status_change"]["note"] == "on it"
        resolved = await alice.post(f"/alerts/{alert_id}/resolve")  # no body: no note
        assert resolved.status_code == 200 and resolved.json()["status"] == "resolved"
        assert resolved.json()["status_change"]["note"] is None
        assert (await alice.get(f"/alerts/{alert_id}")).json()["status"] == "resolved"
    assert [kind for kind, _ in events_of(alerts, alert_id)] == ["trigger", "acknowledge", "resolve"]


async def test_a_note_of_spaces_is_no_note_and_a_notes_own_spaces_around_it_go(
    app: LoglakeApp, alerts: sqlite3.Connection
) -> None:
    alert_id = insert_alert(alerts)
    async with asgi_client(app, key_for(app, "read,alerts", "oncall-alice")) as alice:
        acked = await alice.post(f"/alerts/{alert_id}/acknowledge", json={"note": "   "})
        assert acked.status_code == 200 and acked.json()["status_change"]["note"] is None, acked.text
        resolved = await alice.post(f"/alerts/{alert_id}/resolve", json={"note": "  restarted the worker \n"})
        assert resolved.json()["status_change"]["note"] == "restarted the worker"


async def test_the_change_is_stamped_with_the_servers_clock(settings: Settings, alerts: sqlite3.Connection) -> None:
    alert_id = insert_alert(alerts)
    app = LoglakeApp.from_settings(settings, clock=lambda: (T0 + 5_000) / 1000)
    try:
        async with asgi_client(app, key_for(app, "admin")) as admin:
            answer = (await admin.post(f"/alerts/{alert_id}/resolve", json={"note": None})).json()
    finally:
        app.close()
    assert (
        answer["status_change"]["at"] == "2025-12-03T10:00:05.000Z"
        and answer["updated"] == answer["status_change"]["at"]
    )
    assert events_of(alerts, alert_id)[-1] == ("resolve", T0 + 5_000)


async def test_a_change_the_status_does_not_allow_is_409(client: httpx.AsyncClient, alerts: sqlite3.Connection) -> None:
    alert_id = insert_alert(alerts)
    assert (await client.post(f"/alerts/{alert_id}/resolve")).status_code == 200
    again = await client.post(f"/alerts/{alert_id}/resolve")
    assert again.status_code == 409 and again.json()["error"]["code"] == "status_conflict"
    assert "is already resolved by test-admin" in again.json()["error"]["message"]
    late = await client.post(f"/alerts/{alert_id}/acknowledge")
    assert late.status_code == 409 and "is resolved by test-admin at " in late.text
    assert "only an alert that is open can be acknowledged" in late.text
    assert [kind for kind, _ in events_of(alerts, alert_id)] == ["trigger", "resolve"]


@pytest.mark.parametrize("path", [f"/alerts/{UNKNOWN}/resolve", "/alerts/nope/acknowledge"])
async def test_changing_an_unknown_alert_is_404(client: httpx.AsyncClient, path: str) -> None:
    assert (await client.post(path)).status_code == 404


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        (b'{"note": 5}', {"content-type": "application/json"}, 400),
        (b'{"comment": "x"}', {"content-type": "application/json"}, 400),
        (b'{"note": "' + b"n" * (MAX_NOTE_CHARS + 1) + b'"}', {"content-type": "application/json"}, 400),
        (b"[1]", {"content-type": "application/json"}, 400),
        (b"{not json", {"content-type": "application/json"}, 400),
        (b"fixed", {"content-type": "text/plain"}, 415),
    ],
)
async def test_a_bad_body_is_refused_and_changes_nothing(
    client: httpx.AsyncClient, alerts: sqlite3.Connection, body: bytes, headers: dict, status: int
) -> None:
    alert_id = insert_alert(alerts)
    response = await client.post(f"/alerts/{alert_id}/resolve", content=body, headers=headers)
    assert response.status_code == status, response.text
    assert (await client.get(f"/alerts/{alert_id}")).json()["status"] == "open"


async def test_a_gzipped_note_is_read(client: httpx.AsyncClient, alerts: sqlite3.Connection) -> None:
    alert_id = insert_alert(alerts)
    body = gzip.compress(b'{"note": "zipped"}')
    headers = {"content-type": "application/json", "content-encoding": "gzip"}
    response = await client.post(f"/alerts/{alert_id}/acknowledge", content=body, headers=headers)
    assert response.json()["status_change"]["note"] == "zipped"


async def test_reading_needs_read_and_changing_needs_alerts_or_admin(
    app: LoglakeApp, alerts: sqlite3.Connection
) -> None:
    alert_id = insert_alert(alerts)
    async with asgi_client(app) as nobody:
        assert (await nobody.get("/alerts")).status_code == 401
        assert (await nobody.post(f"/alerts/{alert_id}/resolve")).status_code == 401
    async with asgi_client(app, key_for(app, "read")) as reader:
        assert (await reader.get("/alerts")).status_code == 200
        assert (await reader.get(f"/alerts/{alert_id}")).status_code == 200
        refused = await reader.post(f"/alerts/{alert_id}/acknowledge", json={"note": "x"})
        assert refused.status_code == 403 and "lacks the 'alerts' scope" in refused.json()["error"]["message"]
    async with asgi_client(app, key_for(app, "alerts")) as changer:
        assert (await changer.get("/alerts")).status_code == 403
        assert (await changer.post(f"/alerts/{alert_id}/acknowledge")).status_code == 200
    async with asgi_client(app, key_for(app, "ingest")) as shipper:
        assert (await shipper.post(f"/alerts/{alert_id}/resolve")).status_code == 403
    async with asgi_client(app, key_for(app, "admin")) as admin:
        assert (await admin.post(f"/alerts/{alert_id}/resolve")).status_code == 200


async def test_the_alerts_scope_can_be_given_over_the_admin_api(client: httpx.AsyncClient) -> None:
    made = await client.post("/admin/keys", json={"name": "pager", "scopes": ["read", "alerts"]})
    assert made.status_code == 201 and made.json()["scopes"] == ["alerts", "read"]


async def test_documented_alert_page_limit_is_the_one_enforced(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    limit = next(p for p in spec["paths"]["/alerts"]["get"]["parameters"] if p["name"] == "limit")
    assert (await client.get("/alerts", params={"limit": limit["schema"]["maximum"]})).status_code == 200
    assert (await client.get("/alerts", params={"limit": limit["schema"]["maximum"] + 1})).status_code == 400


async def test_a_change_while_another_process_holds_the_write_lock_is_503_then_works(
    app: LoglakeApp, client: httpx.AsyncClient, alerts: sqlite3.Connection, settings: Settings
) -> None:
    alert_id = insert_alert(alerts)
    # The app's own connection, with a busy timeout of 0.1 s instead of 10 s, so the test need not wait.
    path = str(settings.data_dir / "alerts.db")
    app.runtime.alerts_db = SharedConnection(
        lambda: sqlite3.connect(path, timeout=0.1, isolation_level=None, check_same_thread=False)
    )
    alerts.execute("BEGIN IMMEDIATE")  # a rule run writing its window's alerts
    busy = await client.post(f"/alerts/{alert_id}/resolve")
    assert busy.status_code == 503 and busy.headers["retry-after"] == "1"
    assert (await client.get(f"/alerts/{alert_id}")).json()["status"] == "open"  # readers are not held up
    alerts.execute("COMMIT")
    assert (await client.post(f"/alerts/{alert_id}/resolve")).status_code == 200
