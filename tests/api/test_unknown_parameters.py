"""Native JSON routes that take no query parameters refuse one (routes.refuse_parameters), as the routes that
take some refuse one they do not know: a misspelt filter quietly ignored would answer what was not asked."""

from __future__ import annotations

import httpx
import pytest

TAKING_NONE = [
    ("POST", "/logs"),
    ("GET", "/tables"),
    ("GET", "/amplify/status"),
    ("GET", "/amplify/apps"),
    ("GET", "/rules"),
    ("GET", "/healthz"),
    ("GET", "/openapi.json"),
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


async def test_a_batch_sent_with_an_unknown_parameter_is_not_stored(client: httpx.AsyncClient) -> None:
    response = await client.post("/logs", params={"service": "api"}, json=[{"message": "a"}, {"message": "b"}])
    assert response.status_code == 400
    assert [d["field"] for d in response.json()["error"]["details"]] == ["service"]
    assert (await client.get("/logs/recent")).json()["count"] == 0
