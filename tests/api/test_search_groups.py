"""OR, NOT and groups in a search over HTTP: search, histogram and facets over hot and lake records answer
the records a plain Python filter over the test's own records picks."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from loglake.api.app import LoglakeApp
from tests.api.test_lake_api import NOW_MS, flush_all, rec, send

pytestmark = pytest.mark.clock_at(NOW_MS)  # the `app` fixture's: records are placed from it


# 36 records, one a minute from a minute ago, each message numbered so the answers can be compared in order.
RECORDS = [
    rec(
        m + 1,
        f"#{m} " + ("ERROR timeout talking to db", "connection refused", "request ok", "Retry OR give up")[m % 4],
        service=("api", "web", "db")[m % 3],
        severity=("error", "warning", "info", "info", "debug", "info")[m % 6],
        attributes={"user": f"U{m % 5}", "http": {"status": 500 if m % 7 == 0 else 200}} if m % 2 else None,
    )
    for m in range(36)
]


def has(record: dict, word: str) -> bool:
    return word.lower() in record["message"].lower()


def attribute(record: dict, *path: str) -> str | None:
    value = record.get("attributes")
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return None if value is None else str(value).lower()


# Each search with what it means, written here as Python over the records sent.
SEARCHES: list[tuple[str, Callable[[dict], bool]]] = [
    ("error OR refused", lambda r: has(r, "error") or has(r, "refused")),
    ("service:api (timeout OR refused)", lambda r: r["service"] == "api" and (has(r, "timeout") or has(r, "refused"))),
    ("timeout OR refused service:db", lambda r: has(r, "timeout") or (has(r, "refused") and r["service"] == "db")),
    (
        "timeout AND service:web OR severity:debug",
        lambda r: (has(r, "timeout") and r["service"] == "web") or r["severity"] == "debug",
    ),
    (
        "-(severity:info OR severity:debug) request",
        lambda r: r["severity"] not in ("info", "debug") and has(r, "request"),
    ),
    ("NOT (service:web refused)", lambda r: not (r["service"] == "web" and has(r, "refused"))),
    ("user:u1 OR http.status:500", lambda r: attribute(r, "user") == "u1" or attribute(r, "http", "status") == "500"),
    (
        "-(user:u1 OR http.status:500)",
        lambda r: not (attribute(r, "user") == "u1" or attribute(r, "http", "status") == "500"),
    ),
    ('"OR" -service:api', lambda r: has(r, "or") and r["service"] != "api"),
    (
        "(error service:db) OR (ok -(service:api OR severity:debug))",
        lambda r: (
            (has(r, "error") and r["service"] == "db")
            or (has(r, "ok") and not (r["service"] == "api" or r["severity"] == "debug"))
        ),
    ),
]


@pytest.fixture
async def sent(client: httpx.AsyncClient) -> None:
    await send(client, RECORDS)


def expected(matches: Callable[[dict], bool]) -> list[str]:
    """The matching records' messages, newest (smallest m) first."""
    return [r["message"] for r in RECORDS if matches(r)]


@pytest.mark.usefixtures("sent")
async def test_grouped_searches_find_what_they_mean_in_hot_and_lake(app: LoglakeApp, client: httpx.AsyncClient) -> None:
    for where in ("hot", "lake"):
        for q, matches in SEARCHES:
            response = await client.get("/logs/search", params={"q": q, "since": "1h", "limit": 100})
            assert response.status_code == 200, response.text
            want = expected(matches)
            assert want and len(want) < len(RECORDS), q  # the search tells records apart
            assert [r["message"] for r in response.json()["logs"]] == want, (where, q)
        if where == "hot":
            assert flush_all(app) == len(RECORDS)


@pytest.mark.usefixtures("sent")
async def test_histogram_and_facets_count_a_grouped_search(app: LoglakeApp, client: httpx.AsyncClient) -> None:
    q, matches = SEARCHES[1]
    want = [r for r in RECORDS if matches(r)]
    for where in ("hot", "lake"):
        histogram = (await client.get("/logs/histogram", params={"q": q, "since": "1h", "interval": "1h"})).json()
        assert histogram["total"] == len(want), where
        facets = (await client.get("/logs/facets", params={"q": q, "since": "1h"})).json()
        by_severity = {f["value"]: f["count"] for f in facets["severity"]}
        assert by_severity == {s: sum(r["severity"] == s for r in want) for s in {r["severity"] for r in want}}
        if where == "hot":
            flush_all(app)


@pytest.mark.parametrize(
    ("q", "said"),
    [
        ("(timeout OR refused", "the ( at character 1 is never closed"),
        ("timeout OR", "OR at character 9 needs a term after it"),
        ("a ()", "the group at character 3 is empty"),
        ("-", "the - at character 1 leaves out nothing: write what to leave out right after it, as in -healthcheck"),
    ],
)
async def test_a_search_that_cannot_be_read_is_a_400_naming_q_and_where(
    client: httpx.AsyncClient, q: str, said: str
) -> None:
    for path in ("/logs/search", "/logs/histogram", "/logs/facets", "/logs/tail"):
        response = await client.get(path, params={"q": q})
        assert response.status_code == 400, (path, response.text)
        (problem,) = response.json()["error"]["details"]
        assert problem["field"] == "q" and said in problem["reason"], path


async def test_a_number_finds_an_attribute_holding_it_written_otherwise(
    app: LoglakeApp, client: httpx.AsyncClient
) -> None:
    """A float is stored as sent (2.0, as Python's json writes it) and read back by the JSON reader in its own form
    (1e+21 as 1e21): `took:2`, the web UI's filter for a record's value (JavaScript writes 2.0 as 2), found nothing.
    A number matches the attribute holding it in any form, as a rule's does; other values stay text."""
    attributes = {"took": 2.0, "huge": 1e21, "tiny": 1.5e-7, "code": "401", "name": "2.0", "id": 12345678901234567890}
    other = {"took": 3, "id": 12345678901234567891}  # (the same double as the first's id)
    await send(client, [rec(1, "timed", attributes=attributes), rec(2, "other", attributes=other)])
    searches = {
        "took:2": ["timed"],
        "took:2.0": ["timed"],
        "huge:1e+21": ["timed"],  # (JavaScript's text of it)
        "huge:1e21": ["timed"],
        "tiny:1.5e-7": ["timed"],
        "code:401.0": ["timed"],
        "name:2": ["timed"],
        "-took:2": ["other"],
        "took:2*": ["timed"],  # a prefix is text
        "took:20": [],
        "id:12345678901234567891": ["other"],  # past 2**53 a whole number is its text alone
    }
    await _found_hot_and_flushed(app, client, searches, sent=2)


# Arrays of values, a text that only looks like one, a nested array: records and the searches that find them.
ARRAY_RECORDS = [
    rec(1, "tagged", attributes={"tags": ["Red", "blue"], "ports": [80, 443.0], "deep": {"ids": ["a-1", "b-2"]}}),
    rec(2, "other", attributes={"tags": ["green"], "ports": [8080], "deep": {"ids": [["a-1"]]}}),
    rec(3, "text", attributes={"tags": '["red"]', "ports": "[80]"}),
    rec(4, "scalar", attributes={"tags": "red"}),
    rec(5, "mixed", attributes={"tags": ["red", {"k": 1}], "ports": [[1], 443]}),  # (objects and arrays among items)
]
ARRAY_SEARCHES = {
    "tags:red": ["mixed", "scalar", "tagged"],
    "tags:BLUE": ["tagged"],
    "tags:bl*": ["tagged"],
    "-tags:red": ["other", "text"],
    "ports:443": ["mixed", "tagged"],
    "ports:80.0": ["tagged"],
    "deep.ids:a-1": ["tagged"],
    "deep.ids:b-2": ["tagged"],
    "tags:purple": [],
}


async def test_an_array_attribute_is_found_by_any_of_its_elements(app: LoglakeApp, client: httpx.AsyncClient) -> None:
    """`tags:red` finds a record whose tags are ["red", "blue"], as Elasticsearch finds a keyword array by any of its
    values (it matched the array's JSON text alone, so a search for one tag found nothing): each element as a value
    of its own, case and number forms alike, prefixes too; a text that only looks like an array is a value."""
    await send(client, ARRAY_RECORDS)
    await _found_hot_and_flushed(app, client, ARRAY_SEARCHES, sent=len(ARRAY_RECORDS))


async def _found_hot_and_flushed(
    app: LoglakeApp, client: httpx.AsyncClient, searches: dict[str, list[str]], sent: int
) -> None:
    """Each search finds the messages given, of the `sent` records in the hot store, then once they are flushed."""
    for where in ("hot", "lake"):
        for q, messages in searches.items():
            response = await client.get("/logs/search", params={"q": q, "since": "1h"})
            assert response.status_code == 200, response.text
            assert sorted(r["message"] for r in response.json()["logs"]) == messages, (where, q)
        if where == "hot":
            assert flush_all(app) == sent
