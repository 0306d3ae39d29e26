"""The query parameters of the Elasticsearch endpoints other than bulk (the version document, the calls
shippers make before sending, the single-document APIs): those Elasticsearch documents for each are taken,
what the shippers send among them, and any other is refused in Elasticsearch's words, as bulk refuses it."""

from __future__ import annotations

import httpx
import pytest

from tests.api.test_elastic_bulk_params import refusal, stored_messages

DOCUMENT = {"message": "order 42 paid"}
# Each endpoint, and the parameters Elasticsearch 9's REST API specification documents for it (as its official
# Python client 9.x sends them), besides error_trace, filter_path, format, human and pretty, which all take.
DOCUMENTED = [
    ("GET", "/", {}),
    ("HEAD", "/", {}),
    ("GET", "/_license", {"local": "true", "accept_enterprise": "true"}),
    ("GET", "/_xpack", {"categories": "license,features", "accept_enterprise": "true"}),
    (
        "GET",
        "/_cluster/health",
        {
            "expand_wildcards": "all",
            "level": "cluster",
            "local": "true",
            "master_timeout": "30s",
            "timeout": "30s",
            "wait_for_active_shards": "1",
            "wait_for_events": "normal",
            "wait_for_no_initializing_shards": "true",
            "wait_for_no_relocating_shards": "true",
            "wait_for_nodes": "1",
            "wait_for_status": "yellow",
        },
    ),
    ("GET", "/_index_template/logs", {"flat_settings": "true", "include_defaults": "true", "master_timeout": "1m"}),
    ("HEAD", "/_index_template/logs", {"local": "true"}),
    ("PUT", "/_index_template/logs", {"create": "false", "cause": "beats", "master_timeout": "1m"}),
    ("GET", "/_template/logs", {"flat_settings": "true", "local": "true", "master_timeout": "1m"}),
    ("PUT", "/_template/logs", {"order": "1", "create": "true", "cause": "x", "master_timeout": "1m"}),
    ("GET", "/_component_template/logs", {"include_defaults": "true", "settings_filter": "a", "local": "true"}),
    ("PUT", "/_component_template/logs", {"create": "true", "cause": "x", "master_timeout": "1m"}),
    ("GET", "/_ilm/policy/logs", {"master_timeout": "1m", "timeout": "1m"}),
    ("PUT", "/_ilm/policy/logs", {"master_timeout": "1m", "timeout": "1m"}),
    ("GET", "/_ingest/pipeline/logs", {"summary": "true", "master_timeout": "1m"}),
    ("PUT", "/_ingest/pipeline/logs", {"if_version": "1", "master_timeout": "1m", "timeout": "1m"}),
]
INDEX_DOCUMENTED = {
    "if_primary_term": "1",
    "if_seq_no": "1",
    "include_source_on_error": "true",
    "op_type": "index",
    "pipeline": "p",
    "refresh": "true",
    "require_alias": "false",
    "require_data_stream": "false",
    "routing": "u1",
    "timeout": "1m",
    "version": "1",
    "version_type": "internal",
    "wait_for_active_shards": "1",
}
COMMON = {"error_trace": "false", "filter_path": "status", "format": "json", "human": "false", "pretty": "false"}
# What shippers send on connecting (the clients' and Logstash's version check, Beats' license check, Vector's
# health check): a 400 here would cost them their connection (Beats would take the license for OSS).
ON_CONNECT = [
    ("GET", "/", {}),
    ("HEAD", "/", {}),
    ("GET", "/_license", {"human": "false"}),
    ("GET", "/_cluster/health", {}),
]


@pytest.mark.parametrize(("method", "path", "params"), DOCUMENTED + ON_CONNECT)
async def test_every_documented_parameter_is_taken(
    client: httpx.AsyncClient, method: str, path: str, params: dict[str, str]
) -> None:
    body = {} if method == "PUT" else None
    response = await client.request(method, path, params=params | COMMON, json=body)
    assert response.status_code == 200, response.text
    assert response.headers["x-elastic-product"] == "Elasticsearch"


@pytest.mark.parametrize(("method", "path", "params"), DOCUMENTED)
async def test_any_other_is_refused_in_elasticsearchs_words(
    client: httpx.AsyncClient, method: str, path: str, params: dict[str, str]
) -> None:
    body = {} if method == "PUT" else None
    response = await client.request(method, path, params=params | {"foo": "1"}, json=body)
    assert response.status_code == 400
    assert response.headers["x-elastic-product"] == "Elasticsearch"
    if method != "HEAD":
        assert response.json() == refusal(f"request [{path}] contains unrecognized parameter: [foo]")


async def test_a_name_close_to_a_known_one_is_named_with_it(client: httpx.AsyncClient) -> None:
    response = await client.get("/_cluster/health", params={"levl": "indices"})
    assert response.json() == refusal(
        "request [/_cluster/health] contains unrecognized parameter: [levl] -> did you mean [level]?"
    )


@pytest.mark.parametrize(
    ("method", "path", "taken"),
    [
        ("POST", "/app/_doc", INDEX_DOCUMENTED),
        ("PUT", "/app/_doc/order-42", INDEX_DOCUMENTED),
        ("PUT", "/app/_create/order-42", {k: v for k, v in INDEX_DOCUMENTED.items() if k != "op_type"}),
    ],
)
async def test_a_document_is_stored_with_the_parameters_documented_and_refused_with_another(
    client: httpx.AsyncClient, method: str, path: str, taken: dict[str, str]
) -> None:
    refused = await client.request(method, path, params={"foo": "1"}, json=DOCUMENT)
    assert refused.status_code == 400
    assert refused.json() == refusal(f"request [{path}] contains unrecognized parameter: [foo]")
    assert await stored_messages(client) == []  # nothing of it stored
    response = await client.request(method, path, params=taken | COMMON, json=DOCUMENT)
    assert response.status_code == 201, response.text
    assert await stored_messages(client) == ["order 42 paid"]


async def test_create_takes_no_op_type(client: httpx.AsyncClient) -> None:
    response = await client.put("/app/_create/order-42", params={"op_type": "create"}, json=DOCUMENT)
    assert response.json() == refusal("request [/app/_create/order-42] contains unrecognized parameter: [op_type]")


async def test_pretty_prints_these_answers_too(client: httpx.AsyncClient) -> None:
    response = await client.get("/_license", params={"pretty": ""})
    assert response.text == (
        '{\n  "license" : {\n    "status" : "active",\n    "type" : "basic",\n    "mode" : "basic",\n'
        '    "uid" : "loglake"\n  }\n}\n'
    )


async def test_a_browser_at_the_root_goes_to_the_ui_with_its_query(client: httpx.AsyncClient) -> None:
    """A shared link's view (`/?q=...`) is not an Elasticsearch parameter: the browser is sent on with it."""
    response = await client.get("/", params={"q": "timeout"}, headers={"accept": "text/html"})
    assert response.status_code == 302 and response.headers["location"] == "/ui/?q=timeout"
