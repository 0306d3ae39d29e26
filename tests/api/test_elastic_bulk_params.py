"""Elasticsearch bulk's query parameters, in process: those Elasticsearch documents are taken, any other is
refused in Elasticsearch's words (nothing of the bulk stored), and `pretty` prints the answer as it does."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from loglake.protocols.elastic_params import BULK_PARAMS, COMMON_PARAMS, pretty

NDJSON = {"content-type": "application/x-ndjson"}
BULK = b'{"create": {"_index": "app"}}\n{"message": "order 42 paid"}\n'
# Elasticsearch 9's bulk API reference, and the parameters every Elasticsearch API takes.
DOCUMENTED = {
    "include_source_on_error": "true",
    "list_executed_pipelines": "false",
    "pipeline": "my-pipeline",
    "refresh": "wait_for",
    "require_alias": "false",
    "require_data_stream": "false",
    "routing": "user1",
    "_source": "false",
    "_source_excludes": "a",
    "_source_includes": "b",
    "timeout": "1m",
    "wait_for_active_shards": "1",
    "error_trace": "true",
    "filter_path": "errors",
    "format": "json",
    "human": "true",
    "pretty": "false",
}


async def stored_messages(client: httpx.AsyncClient) -> list[str]:
    response = await client.get("/logs/recent", params={"since": "0"})
    return [log["message"] for log in response.json()["logs"]]


def refusal(reason: str) -> dict:
    cause = {"type": "illegal_argument_exception", "reason": reason}
    return {"error": {"root_cause": [cause], **cause}, "status": 400}


async def test_an_unknown_parameter_is_refused_in_elasticsearchs_words(client: httpx.AsyncClient) -> None:
    response = await client.post("/_bulk?foo=1", content=BULK, headers=NDJSON)
    assert response.status_code == 400
    assert response.headers["x-elastic-product"] == "Elasticsearch"
    assert response.json() == refusal("request [/_bulk] contains unrecognized parameter: [foo]")
    assert await stored_messages(client) == []


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("zzz=1&refesh=true", "contains unrecognized parameters: [refesh] -> did you mean [refresh]?, [zzz]"),
        (
            "waitForActiveShards=1",
            "contains unrecognized parameter: [waitForActiveShards] -> did you mean [wait_for_active_shards]?",
        ),
        (
            "_source_include=a",
            "contains unrecognized parameter: [_source_include] -> did you mean any of "
            "[_source_includes, _source_excludes]?",
        ),
    ],
)
async def test_an_unknown_parameter_near_a_known_one_is_named_with_it(
    client: httpx.AsyncClient, query: str, reason: str
) -> None:
    response = await client.post(f"/app/_bulk?{query}", content=BULK, headers=NDJSON)
    assert response.status_code == 400
    assert response.json() == refusal(f"request [/app/_bulk] {reason}")


async def test_every_documented_parameter_is_taken(client: httpx.AsyncClient) -> None:
    response = await client.post("/_bulk", params=DOCUMENTED, content=BULK, headers=NDJSON)
    assert response.status_code == 200, response.text
    assert response.json() == {"errors": False}  # filter_path applied
    assert await stored_messages(client) == ["order 42 paid"]


@pytest.mark.parametrize("query", ["pretty", "pretty=true"])
async def test_pretty_prints_the_answer_as_elasticsearch_does(client: httpx.AsyncClient, query: str) -> None:
    response = await client.post(f"/_bulk?{query}&filter_path=errors,items.*.status", content=BULK, headers=NDJSON)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.text == (
        '{\n  "errors" : false,\n  "items" : [\n    {\n      "create" : {\n        "status" : 201\n'
        "      }\n    }\n  ]\n}\n"
    )
    plain = await client.post("/_bulk?pretty=false&filter_path=errors", content=BULK, headers=NDJSON)
    assert plain.content == b'{"errors":false}\n'


async def test_pretty_prints_errors_too_and_a_pretty_that_is_no_boolean_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.post("/_bulk?pretty", content=b"not json\n", headers=NDJSON)
    assert response.status_code == 400
    assert response.text.startswith('{\n  "error" : {\n    "root_cause" : [\n      {\n')
    assert response.text.endswith('\n  "status" : 400\n}\n')
    reason = json.loads(response.text)["error"]["reason"]
    assert reason.startswith("Malformed action/metadata line [1]")
    response = await client.post("/_bulk?pretty=yes", content=BULK, headers=NDJSON)
    assert response.status_code == 400
    assert response.json() == refusal("Failed to parse value [yes] as only [true] or [false] are allowed.")
    assert await stored_messages(client) == []


async def test_an_answer_in_another_format_than_json_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.post("/_bulk?format=yaml", content=BULK, headers=NDJSON)
    assert response.status_code == 400
    assert "JSON only" in response.json()["error"]["reason"]
    assert await stored_messages(client) == []


def test_empty_objects_and_arrays_are_printed_as_jacksons_printer_does() -> None:
    assert pretty({"items": [], "shards": {}, "ok": True, "text": "a\nb"}) == (
        b'{\n  "items" : [ ],\n  "shards" : { },\n  "ok" : true,\n  "text" : "a\\nb"\n}\n'
    )


def test_the_readme_names_the_parameters_taken() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    paragraph = readme[readme.index("The bulk API takes the query parameters") :].split("\n\n", 1)[0]
    assert {name for name in BULK_PARAMS | COMMON_PARAMS if f"`{name}" not in paragraph} == set()
