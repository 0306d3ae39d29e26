"""The OpenAPI document describes exactly the API the app serves, with the limits it enforces."""

from __future__ import annotations

import re
import time

import httpx
import jsonschema
import pytest

from loglake.api import ui_routes
from loglake.api.app import LoglakeApp
from loglake.api.route_table import ROUTES
from loglake.config import Settings
from loglake.ui.assets import STATIC
from tests.conftest import asgi_client

# Served but not described: the description itself and the page rendered from it, and the web UI's pages.
UNDOCUMENTED = {("GET", "/openapi.json"), ("GET", "/docs"), ("GET", "/docs.css")} | {
    (method, template) for method, template, *_ in ui_routes.PAGES
}


def test_every_route_is_documented_and_every_documented_path_is_served() -> None:
    from loglake.api.openapi import SPEC

    # (HEAD is served wherever GET is: a HEAD documented is a GET's, test_openapi_routes.py checks which)
    documented = {(method.upper(), path) for path, ops in SPEC["paths"].items() for method in ops if method != "head"}
    served = {(route.method, route.template) for route in ROUTES}
    assert documented == served - UNDOCUMENTED


def test_every_path_parameter_of_a_template_is_declared_in_each_of_its_operations() -> None:
    """/{index}/_refresh declared no `index`: an OpenAPI 3 document must, and generated clients and fuzzers
    refused the operation."""
    from loglake.api.openapi import SPEC

    for path, operations in SPEC["paths"].items():
        for method, operation in operations.items():
            declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path" and p["required"]}
            assert declared == set(re.findall(r"\{(\w+)\}", path)), (method, path)


async def test_documented_limits_are_the_ones_enforced(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    limit = next(p for p in spec["paths"]["/logs/recent"]["get"]["parameters"] if p["name"] == "limit")
    maximum = limit["schema"]["maximum"]
    assert (await client.get("/logs/recent", params={"limit": maximum})).status_code == 200
    assert (await client.get("/logs/recent", params={"limit": maximum + 1})).status_code == 400

    record = spec["components"]["schemas"]["RecordIn"]["properties"]
    kib = Settings().max_message_bytes // 1024
    assert f"at most {kib} KiB" in record["message"]["description"]
    too_long = {"message": "x" * (kib * 1024 + 1)}
    assert (await client.post("/logs", json=too_long)).status_code == 400
    assert (await client.post("/logs", json={"message": "x" * (kib * 1024)})).status_code == 201


async def test_documented_scopes_are_the_ones_a_key_can_have(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    schema = spec["paths"]["/admin/keys"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    documented = schema["properties"]["scopes"]["items"]["enum"]
    accepted = []
    for scope in ["ingest", "read", "alerts", "admin", "write", "delete"]:
        made = await client.post("/admin/keys", json={"name": f"scope-{scope}", "scopes": [scope]})
        assert made.status_code in (201, 400), made.text
        if made.status_code == 201:
            accepted.append(scope)
    assert documented == accepted


async def test_a_new_keys_body_is_documented_as_required(client: httpx.AsyncClient) -> None:
    """POST /admin/keys documented its body as optional, and answered 400 without one (a key needs its name)."""
    spec = (await client.get("/openapi.json")).json()
    assert spec["paths"]["/admin/keys"]["post"]["requestBody"]["required"] is True
    assert (await client.post("/admin/keys")).status_code == 400


async def test_the_docs_page_styles_itself_within_the_content_security_policy(client: httpx.AsyncClient) -> None:
    """The policy allows styles from the server only: an inline <style> would leave the page unstyled."""
    page = await client.get("/docs")
    assert "style-src 'self'" in page.headers["content-security-policy"]
    assert "<style" not in page.text and "<script" not in page.text and " style=" not in page.text
    stylesheet = await client.get("/docs.css")
    assert "<link rel=stylesheet href=/docs.css>" in page.text
    assert stylesheet.status_code == 200 and stylesheet.headers["content-type"] == "text/css; charset=utf-8"
    assert "font:15px system-ui" in stylesheet.text


async def test_the_icon_browsers_ask_for_unasked_is_served_without_a_key(app: LoglakeApp) -> None:
    """A browser on /docs asks for /favicon.ico by itself: it met Elasticsearch's `GET /{index}` and a 401."""
    async with asgi_client(app) as anonymous:
        icon = await anonymous.get("/favicon.ico")
        page = await anonymous.get("/docs")
    assert icon.status_code == 200 and icon.headers["content-type"] == "image/svg+xml"
    assert icon.content == (STATIC / "icon.svg").read_bytes()
    assert "<link rel=icon href=/favicon.ico type=image/svg+xml>" in page.text


def _schema(spec: dict, path: str, method: str, status: str) -> dict:
    return spec["paths"][path][method]["responses"][status]["content"]["application/json"]["schema"]


async def test_the_answers_of_keys_and_health_are_as_documented(client: httpx.AsyncClient, app: LoglakeApp) -> None:
    """Their schemas were missing (and the key spec's required name and closed fields unsaid): checked against
    what the server answers and refuses, by a JSON Schema validator."""
    spec = (await client.get("/openapi.json")).json()
    created = await client.post("/admin/keys", json={"name": "documented", "scopes": ["read"], "rate_limit": 2})
    jsonschema.validate(created.json(), _schema(spec, "/admin/keys", "post", "201"))
    listed = await client.get("/admin/keys", params={"all": "true"})
    jsonschema.validate(listed.json(), _schema(spec, "/admin/keys", "get", "200"))
    health = (await client.get("/healthz")).json()
    assert set(health) > {"status", "reason", "version"}  # (with a read key: the details)
    jsonschema.validate(health, _schema(spec, "/healthz", "get", "200"))
    async with asgi_client(app, None) as anonymous:
        jsonschema.validate((await anonymous.get("/healthz")).json(), _schema(spec, "/healthz", "get", "200"))
    body = spec["paths"]["/admin/keys"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    for refused in ({"scopes": ["read"]}, {"name": "x", "owner": "me"}, {"name": "x", "rate_limit": 1e10}):
        assert (await client.post("/admin/keys", json=refused)).status_code == 400
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(refused, body)


async def test_recent_answers_one_of_its_documented_pages(client: httpx.AsyncClient) -> None:
    """A follow page matched the plain page's schema too, which oneOf forbids (the schemathesis trial)."""
    spec = (await client.get("/openapi.json")).json()
    schema = {**_schema(spec, "/logs/recent", "get", "200"), "components": spec["components"]}  # (its $refs)
    assert (await client.post("/logs", json={"message": "m"})).status_code == 201
    for params in ({}, {"follow": "true"}):
        jsonschema.validate((await client.get("/logs/recent", params=params)).json(), schema)


async def test_the_record_schema_takes_the_records_the_server_takes(client: httpx.AsyncClient) -> None:
    """A null field and a date alone were taken by the server but not by the schema (date-time, string)."""
    record = (await client.get("/openapi.json")).json()["components"]["schemas"]["RecordIn"]
    taken = [
        {"message": "m", "service": None, "log_type": None, "severity": None, "attributes": None, "timestamp": None},
        {"message": "m", "timestamp": "2026-12-01"},
        {"message": "m", "timestamp": "2026-12-01T10:00:00"},
        {"message": "m", "id": None, "trace_id": None, "span_id": None},
        {"message": "m", "trace_id": "0" * 31 + "A", "span_id": "0" * 15 + "1"},
    ]
    for sent in taken:
        assert (await client.post("/logs", json=sent)).status_code == 201, sent
        jsonschema.validate(sent, record)
    refusals = [{"message": "m", "extra": 1}, {"message": ""}, {"service": "api"}]
    refusals += [
        {"message": "m", "trace_id": "0" * 32},
        {"message": "m", "span_id": "0" * 16},
    ]  # (the schema took them)
    for refused in refusals:
        assert (await client.post("/logs", json=refused)).status_code == 400, refused
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(refused, record)


async def test_the_loki_json_schema_takes_the_pushes_the_server_takes(client: httpx.AsyncClient) -> None:
    """The schema was an object with `streams`: {"streams": null} and entries no push holds were valid to it."""
    operation = (await client.get("/openapi.json")).json()["paths"]["/loki/api/v1/push"]["post"]
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    now = f"{time.time_ns()}"
    taken = [
        {"streams": []},
        {"streams": [{"stream": {"app": "web"}, "values": [[now, "line"], [now, "line", {"user": "u1"}]]}]},
        {"streams": [{"values": [[int(now), "no labels, the time a number"]]}]},
    ]
    for sent in taken:
        assert (await client.post("/loki/api/v1/push", json=sent)).status_code == 204, sent
        jsonschema.validate(sent, schema)
    for refused in (
        {"streams": None},
        {"streams": [None]},
        {"streams": [{"stream": {"app": "web"}}]},
        {"streams": [{"stream": {"app": 1}, "values": []}]},
        {"streams": [{"values": [[now]]}]},
        {"streams": [{"values": [[now, "line", {}, "more"]]}]},
        {"streams": [{"values": [["soon", "line"]]}]},
        {"streams": [{"values": [[now, 7]]}]},
        {"streams": [{"values": [[now, "line", {"user": 1}]]}]},
    ):
        assert (await client.post("/loki/api/v1/push", json=refused)).status_code == 400, refused
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(refused, schema)
