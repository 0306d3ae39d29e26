"""Native JSON routes that take no query parameters refuse one (routes.refuse_parameters), as the routes that
take some refuse one they do not know: a misspelt filter quietly ignored would answer what was not asked."""

from __future__ import annotations

import httpx
import pytest

from loglake.api.app import LoglakeApp
from tests.conftest import asgi_client, key_for

TAKING_NONE = [
    ("POST", "/logs"),
    ("GET", "/tables"),
    ("GET", "/amplify/status"),
    ("GET", "/amplify/apps"),
    ("GET", "/rules"),
    ("GET", "/healthz"),
    ("GET", "/openapi.json"),
    ("GET", "/metrics"),
]


@pytest.mark.parametrize(("method", "path"), TAKING_NONE)
async def test_a_route_taking_no_parameters_refuses_one_naming_it(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    body = {"message": "sent with a parameter"} if method == "POST" else None
    assert (await client.request(method, path, json=body)).status_code in (200, 201)
    response = await client.request(method, path, params={"foo": "1"}, json=body)
    assert response.status_code == 400, response.text
    reason = f"unknown parameter; {method} {path} takes none"
    assert response.json() == {
        "error": {
            "code": "invalid_query",
            "message": f"foo: {reason}",
            "details": [{"index": None, "field": "foo", "reason": reason}],
        }
    }


ALERT = "0193a0b0-0000-7000-8000-000000000001"


@pytest.mark.parametrize(
    ("method", "template", "path", "body", "status_without"),
    [
        ("POST", "/query", "/query", {"sql": "SELECT 1"}, 200),
        ("POST", "/alerts/{alertId}/acknowledge", f"/alerts/{ALERT}/acknowledge", {}, 404),
        ("POST", "/alerts/{alertId}/resolve", f"/alerts/{ALERT}/resolve", {}, 404),
        ("POST", "/rules/{ruleId}/test", "/rules/none/test", None, 404),
        ("POST", "/rules/{ruleId}/backtest", "/rules/none/backtest", {"since": "1d"}, 404),
        ("POST", "/ask", "/ask", {"question": "how many errors?"}, 501),
        ("POST", "/ask/explain", "/ask/explain", {"sql": "SELECT 1"}, 501),
        ("POST", "/ask/{conversationId}/rule", f"/ask/{ALERT}/rule", {}, 501),
        ("GET", "/session", "/session", None, 401),
        ("DELETE", "/session", "/session", None, 204),
    ],
)
async def test_the_other_native_json_routes_taking_no_parameters_refuse_one_first(
    client: httpx.AsyncClient, method: str, template: str, path: str, body: dict | None, status_without: int
) -> None:
    response = await client.request(method, path, params={"foo": "1"}, json=body)
    assert response.status_code == 400, response.text
    reason = f"unknown parameter; {method} {template} takes none"
    assert response.json()["error"]["details"] == [{"index": None, "field": "foo", "reason": reason}]
    assert (await client.request(method, path, json=body)).status_code == status_without


@pytest.mark.parametrize(
    ("path", "params", "known"),
    [
        ("/amplify/reports", {"app": "a"}, "app, report, since, until"),
        ("/admin/keys", {}, "all"),
        ("/alerts/deliveries", {}, "alert, cursor, destination, limit, state"),
    ],
)
async def test_a_route_taking_parameters_refuses_one_it_does_not_know_as_the_others_do(
    client: httpx.AsyncClient, path: str, params: dict[str, str], known: str
) -> None:
    """The rule and code of GET /logs/recent and GET /alerts (recent_params.InvalidQuery), not a code of their own."""
    response = await client.get(path, params={**params, "foo": "1"})
    assert response.status_code == 400, response.text
    reason = f"unknown parameter; known: {known}"
    assert response.json() == {
        "error": {
            "code": "invalid_query",
            "message": f"foo: {reason}",
            "details": [{"index": None, "field": "foo", "reason": reason}],
        }
    }


@pytest.mark.parametrize(
    ("path", "params", "field", "reason"),
    [
        ("/amplify/reports", {}, "app", "is required: the appName to report on"),
        ("/admin/keys", {"all": "yes"}, "all", "must be true (include revoked keys) or false, not 'yes'"),
        (
            "/alerts/deliveries",
            {"state": "lost"},
            "state",
            "must be one or more (comma-separated) of pending, sending, sent, dead, not 'lost'",
        ),
        ("/alerts/deliveries", {"limit": "0"}, "limit", "must be a whole number 1-500, not '0'"),
    ],
)
async def test_a_parameter_whose_value_cannot_be_used_is_named_with_the_same_code(
    client: httpx.AsyncClient, path: str, params: dict[str, str], field: str, reason: str
) -> None:
    response = await client.get(path, params=params)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_query" and error["details"] == [{"index": None, "field": field, "reason": reason}]


async def test_key_changes_with_an_unknown_parameter_change_nothing(app: LoglakeApp, client: httpx.AsyncClient) -> None:
    refused = await client.post("/admin/keys", params={"scopes": "admin"}, json={"name": "ci"})
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "invalid_query"
    assert (await client.post("/admin/keys", json={"name": "ci"})).status_code == 201  # not made before: no 409
    refused = await client.delete("/admin/keys/ci", params={"force": "true"})
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "invalid_query"
    assert "ci" in {key.name for key in app.keystore.list()}


async def test_a_sign_in_with_an_unknown_parameter_is_refused(app: LoglakeApp) -> None:
    async with asgi_client(app) as anonymous:
        key = key_for(app, "read")
        refused = await anonymous.post("/session", params={"remember": "1"}, json={"key": key})
        assert refused.status_code == 400 and "set-cookie" not in refused.headers
        assert refused.json()["error"]["details"][0]["field"] == "remember"
        assert (await anonymous.post("/session", json={"key": key})).status_code == 200


async def test_a_batch_sent_with_an_unknown_parameter_is_not_stored(client: httpx.AsyncClient) -> None:
    response = await client.post("/logs", params={"service": "api"}, json=[{"message": "a"}, {"message": "b"}])
    assert response.status_code == 400
    assert [d["field"] for d in response.json()["error"]["details"]] == ["service"]
    assert (await client.get("/logs/recent")).json()["count"] == 0


@pytest.mark.parametrize(
    ("path", "misspelt", "meant", "known"),
    [
        ("/logs/recent", "sevrity", "severity or min_severity", "service, log_type, severity, min_severity, since"),
        ("/logs/search", "limt", "limit", "service, log_type, severity, min_severity, since"),
        ("/alerts", "stauts", "status", "status, level, rule, since, q, limit, cursor"),
        ("/alerts/deliveries", "status", "state", "alert, cursor, destination, limit, state"),
    ],
)
async def test_a_misspelt_parameter_is_told_the_one_likely_meant_first(
    client: httpx.AsyncClient, path: str, misspelt: str, meant: str, known: str
) -> None:
    """As the Elasticsearch routes say it ("did you mean"), before the list of every known one."""
    response = await client.get(path, params={misspelt: "error"})
    assert response.status_code == 400, response.text
    (detail,) = response.json()["error"]["details"]
    assert detail["field"] == misspelt
    assert detail["reason"].startswith(f"unknown parameter; did you mean {meant}? known: {known}"), detail


async def test_the_histogram_knows_its_own_parameters_and_refuses_paging(client: httpx.AsyncClient) -> None:
    """A new user's `intervl` was told the search's parameters (limit and cursor among them, not interval), and a
    limit was taken silently, though a histogram counts every match."""
    misspelt = await client.get("/logs/histogram", params={"q": "x", "intervl": "1h"})
    assert misspelt.status_code == 400
    [detail] = misspelt.json()["error"]["details"]
    assert detail["field"] == "intervl" and detail["reason"].startswith("unknown parameter; did you mean interval?")
    assert "buckets" in detail["reason"]
    for name, value in (("limit", "5"), ("cursor", "x")):
        paged = await client.get("/logs/histogram", params={"q": "x", name: value})
        assert paged.status_code == 400 and paged.json()["error"]["details"] == [
            {"index": None, "field": name, "reason": "does not apply to a histogram, which counts every match"}
        ]


@pytest.mark.parametrize(
    ("path", "known"),
    [
        ("/logs/histogram", "service, log_type, severity, min_severity, since, until, q, interval, buckets"),
        ("/logs/facets", "service, log_type, severity, min_severity, since, until, q, limit"),
        ("/logs/tail", "service, log_type, severity, min_severity, q"),
    ],
)
async def test_an_unknown_parameter_is_told_only_the_parameters_the_route_takes(
    client: httpx.AsyncClient, path: str, known: str
) -> None:
    """The tail listed since, until, limit and cursor as known, facets and the histogram cursor (and limit), and then
    refused each of them given."""
    response = await client.get(path, params={"foo": "1"})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["details"] == [
        {"index": None, "field": "foo", "reason": f"unknown parameter; known: {known}"}
    ]


async def test_an_empty_parameter_is_as_if_left_out_on_every_route(app: LoglakeApp, client: httpx.AsyncClient) -> None:
    """`?service=` (a form's field left blank) was left out on most routes, and refused on some (`after=` of a
    follow, `all=` of the keys, a live tail's `since=`): recent_params.given is the one rule."""
    assert (await client.post("/logs", json={"message": "one"})).status_code == 201
    document = (await client.get("/openapi.json")).json()
    tried = []
    for path, operations in document["paths"].items():
        parameters = [p["name"] for p in operations.get("get", {}).get("parameters", []) if p["in"] == "query"]
        if "{" in path or path.startswith("/amplify") or path == "/logs/tail" or not parameters:
            continue  # (amplify: not set up here; the tail streams: its parameters are checked below)
        without = await client.get(path)
        for name in parameters:
            empty = await client.get(path, params={name: ""})
            assert (empty.status_code, empty.json().keys()) == (without.status_code, without.json().keys()), (
                f"{path}?{name}=: {empty.text}"
            )
            tried.append(f"{path}?{name}=")
    assert {"/logs/recent?after=", "/logs/recent?follow=", "/admin/keys?all=", "/logs/search?q="} <= set(tried)
    follow = await client.get("/logs/recent", params={"after": "", "follow": ""})
    assert follow.status_code == 200 and "follow_cursor" not in follow.json()
    query, conditions = app.service.tail_query({"since": "", "until": "", "limit": "", "cursor": "", "service": ""})
    assert query.service is None and conditions == []
