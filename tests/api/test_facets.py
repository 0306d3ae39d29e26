"""GET /logs/facets: the top values of a search's records over hot and lake, for the UI's side panel."""

from __future__ import annotations

import httpx
import pytest

from loglake.api.app import LoglakeApp
from tests.api.test_lake_api import NOW_MS, flush_all, rec, send

pytestmark = pytest.mark.clock_at(NOW_MS)  # the `app` fixture's: records are placed from it


# 12 records: services api x6, web x4, db x2; severities error x3, warning x2, info x7; two log types;
# attribute keys user (x9), http (x5), trace (x1), none on 2.
RECORDS = [
    rec(1, "timeout a", service="api", severity="error", attributes={"user": "u1", "http": {"status": 500}}),
    rec(2, "timeout b", service="api", severity="error", attributes={"user": "u2", "http": {"status": 504}}),
    rec(3, "ok c", service="api", severity="info", attributes={"user": "u1"}),
    rec(4, "ok d", service="api", severity="info", attributes={"user": "u3", "trace": "t"}),
    rec(5, "ok e", service="api", severity="warning", log_type="audit", attributes={"user": "u1"}),
    rec(6, "ok f", service="api", severity="info"),
    rec(7, "timeout g", service="web", severity="error", attributes={"http": {"status": 502}}),
    rec(8, "ok h", service="web", severity="info", attributes={"user": "u4", "http": {"status": 200}}),
    rec(9, "ok i", service="web", severity="warning", attributes={"user": "u5"}),
    rec(10, "ok j", service="web", severity="info", log_type="audit", attributes={"user": "u6"}),
    rec(11, "ok k", service="db", severity="info", attributes={"http": {"status": 200}}),
    rec(12, "ok l", service="db", severity="info"),
]


def counts(facet: list[dict]) -> list[tuple[str, int]]:
    return [(f["value"], f["count"]) for f in facet]


@pytest.mark.parametrize("where", ["hot", "lake", "both"])
async def test_facets_count_every_matching_record_wherever_it_is(
    app: LoglakeApp, client: httpx.AsyncClient, where: str
) -> None:
    if where == "hot":
        await send(client, RECORDS)
    elif where == "lake":
        await send(client, RECORDS)
        assert flush_all(app) == 12
    else:
        await send(client, RECORDS[:6])
        assert flush_all(app) == 6
        await send(client, RECORDS[6:])
    response = await client.get("/logs/facets", params={"since": "1h"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert counts(body["service"]) == [("api", 6), ("web", 4), ("db", 2)]
    assert counts(body["severity"]) == [("info", 7), ("error", 3), ("warning", 2)]
    assert counts(body["log_type"]) == [("application", 10), ("audit", 2)]
    assert counts(body["attribute_keys"]) == [("user", 8), ("http", 5), ("trace", 1)]
    assert body["attribute_keys_sampled"] == 12


async def test_facets_are_of_the_search_and_its_filters(client: httpx.AsyncClient) -> None:
    await send(client, RECORDS)
    body = (await client.get("/logs/facets", params={"q": "timeout -service:web", "since": "1h"})).json()
    assert counts(body["service"]) == [("api", 2)]
    assert counts(body["severity"]) == [("error", 2)]
    assert counts(body["attribute_keys"]) == [("http", 2), ("user", 2)]  # ties by name
    assert body["attribute_keys_sampled"] == 2
    filtered = (await client.get("/logs/facets", params={"service": "web", "min_severity": "warning"})).json()
    assert counts(filtered["service"]) == [("web", 2)]
    assert counts(filtered["severity"]) == [("error", 1), ("warning", 1)]
    window = (await client.get("/logs/facets", params={"since": "4m"})).json()  # since is inclusive: 4 records
    assert counts(window["service"]) == [("api", 4)]


async def test_facets_keep_the_top_values_up_to_the_limit(client: httpx.AsyncClient) -> None:
    await send(client, RECORDS)
    body = (await client.get("/logs/facets", params={"limit": "2"})).json()
    assert counts(body["service"]) == [("api", 6), ("web", 4)]
    assert counts(body["severity"]) == [("info", 7), ("error", 3)]
    assert counts(body["attribute_keys"]) == [("user", 8), ("http", 5)]
    assert body["attribute_keys_sampled"] == 12  # every record, not the sum of the top severities shown


async def test_facets_of_nothing_are_empty(client: httpx.AsyncClient) -> None:
    body = (await client.get("/logs/facets")).json()
    assert body == {
        "service": [],
        "severity": [],
        "log_type": [],
        "attribute_keys": [],
        "attribute_keys_sampled": 0,
    }


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"cursor": "abc"}, "cursor"),
        ({"q": '"unclosed'}, "q"),
        ({"since": "yesterday"}, "since"),
        ({"bogus": "1"}, "bogus"),
    ],
)
async def test_bad_facet_queries_are_400s_naming_the_parameter(
    client: httpx.AsyncClient, params: dict, field: str
) -> None:
    response = await client.get("/logs/facets", params=params)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["details"][0]["field"] == field
