"""Index names Elasticsearch refuses (`PUT /Bad Name`, a bulk into one) are refused as it refuses them: loglake
keeps no indices, but a shipper told that such a name works would fail once it moves to a real cluster."""

from __future__ import annotations

import json
from urllib.parse import quote

import httpx
import pytest

from loglake.protocols.elastic_index_names import invalid_index_name

NDJSON = {"content-type": "application/x-ndjson"}
# Elasticsearch's reasons, as its InvalidIndexNameException and MetadataCreateIndexService word them.
CHARACTERS = 'must not contain the following characters [ , ", *, \\, <, |, ,, >, /, ?]'
REFUSED = [
    ("Bad Name", CHARACTERS),
    ("Logs", "must be lowercase"),
    ("logs-App", "must be lowercase"),
    ("a\\b", CHARACTERS),
    ("a*b", CHARACTERS),
    ("a?b", CHARACTERS),
    ('a"b', CHARACTERS),
    ("a<b", CHARACTERS),
    ("a>b", CHARACTERS),
    ("a|b", CHARACTERS),
    ("a,b", CHARACTERS),
    ("a#b", "must not contain '#'"),
    ("app:one", "must not contain ':'"),
    ("-logs", "must not start with '_', '-', or '+'"),
    ("+logs", "must not start with '_', '-', or '+'"),
    ("a" * 256, "index name is too long, (256 > 255)"),
    ("é" * 128, "index name is too long, (256 > 255)"),  # bytes, not characters
]
TAKEN = ["app-logs", "filebeat-9.0.0", "logstash-2026.12.05", "a_b", "ünïcode", ".hidden", "a" * 255, "é" * 127]


@pytest.mark.parametrize(("index", "why"), [*REFUSED, ("", "must not be empty"), (".", "must not be '.' or '..'")])
def test_the_names_elasticsearch_refuses_are_refused_with_its_reason(index: str, why: str) -> None:
    assert invalid_index_name(index) == f"Invalid index name [{index}], {why}"


@pytest.mark.parametrize("index", [*TAKEN, "..a", "a..b"])
def test_the_names_elasticsearch_takes_are_taken(index: str) -> None:
    assert invalid_index_name(index) is None


async def test_creating_an_index_elasticsearch_would_refuse_is_its_400(client: httpx.AsyncClient) -> None:
    for index, why in REFUSED:
        refused = await client.put(f"/{quote(index, safe='')}")
        assert refused.status_code == 400, (index, refused.text)
        assert refused.headers["x-elastic-product"] == "Elasticsearch"
        cause = {"type": "invalid_index_name_exception", "reason": f"Invalid index name [{index}], {why}"}
        assert refused.json() == {"error": {"root_cause": [cause], **cause}, "status": 400}, index
    for index in TAKEN:
        created = await client.put(f"/{quote(index, safe='')}")
        assert created.status_code == 200, (index, created.text)
        assert created.json() == {"acknowledged": True, "shards_acknowledged": True, "index": index}
    assert (await client.put("/_nodes")).status_code == 404  # an API's path, as before: not an index's


async def test_a_bulk_into_an_index_elasticsearch_would_refuse_fails_its_items_and_stores_the_rest(
    client: httpx.AsyncClient,
) -> None:
    """As Elasticsearch answers such a bulk: 200, each item into the refused index failed with 400, the others
    stored (an action's own _index counts, as the path's)."""
    body = b"".join(
        json.dumps(line).encode() + b"\n"
        for line in (
            {"create": {}},
            {"message": "into the path's index"},
            {"create": {"_index": "good"}},
            {"message": "into a good index"},
            {"index": {"_index": "Also Bad"}},
            {"message": "into another refused index"},
        )
    )
    answer = await client.post(f"/{quote('Bad Name')}/_bulk", content=body, headers=NDJSON)
    assert answer.status_code == 200, answer.text
    assert answer.json()["errors"] is True
    first, second, third = (next(iter(item.values())) for item in answer.json()["items"])
    assert (first["_index"], first["status"]) == ("Bad Name", 400)
    assert first["error"] == {
        "type": "invalid_index_name_exception",
        "reason": f"Invalid index name [Bad Name], {CHARACTERS}",
    }
    assert (second["_index"], second["status"]) == ("good", 201)
    assert (third["_index"], third["status"], third["error"]["reason"]) == (
        "Also Bad",
        400,
        f"Invalid index name [Also Bad], {CHARACTERS}",
    )
    logs = (await client.get("/logs/recent", params={"since": "0"})).json()["logs"]
    assert [(log["message"], log["log_type"]) for log in logs] == [("into a good index", "good")]


async def test_a_document_into_an_index_elasticsearch_would_refuse_is_its_400(client: httpx.AsyncClient) -> None:
    for method, path in (("POST", "/Logs/_doc"), ("PUT", "/Logs/_doc/1"), ("PUT", "/Logs/_create/1")):
        refused = await client.request(method, path, json={"message": "m"})
        assert refused.status_code == 400, (path, refused.text)
        error = refused.json()["error"]
        assert (error["type"], error["reason"]) == (
            "invalid_index_name_exception",
            "Invalid index name [Logs], must be lowercase",
        )
    assert (await client.get("/logs/recent", params={"since": "0"})).json()["logs"] == []
