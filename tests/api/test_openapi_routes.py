"""The OpenAPI document against the route table, route by route: each operation names every form a key is taken in
(as api/auth.py takes them: any of them works on every route that needs a key), and lists every status the route
answers to the usual ways of calling it wrong (no key, a wrong one, one without the scope, over its rate, an unknown
parameter, a body too large, none, an empty object, one in a media type the route does not take).
test_protocol_statuses.py provokes the shipper endpoints' statuses in full."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace

import httpx
import pytest

from loglake.api.app import LoglakeApp
from loglake.api.openapi import SPEC
from loglake.api.route_table import ROUTES, Route
from loglake.config import Settings
from tests.api.test_openapi import UNDOCUMENTED
from tests.api.test_protocol_auth import every_form
from tests.conftest import asgi_client, key_for

DOCUMENTED = [r for r in ROUTES if (r.method, r.template) not in UNDOCUMENTED]
# A live tail's answer never ends (tests/api/test_tail_api.py checks its statuses).
CALLED = [r for r in DOCUMENTED if r.template != "/logs/tail"]
KEY_FORMS = {"bearer", "basic", "elasticApiKey", "splunk", "sigv4"}  # (sigv4: tests/api/test_auth_sigv4.py)
# The scheme each of every_form()'s headers is: Bearer, Splunk, ApiKey twice, Basic.
FORM_SCHEMES = ["bearer", "splunk", "elasticApiKey", "elasticApiKey", "basic"]


def _operation(route: Route) -> dict:
    return SPEC["paths"][route.template][route.method.lower()]


def _schemes(operation: dict) -> set[str]:
    return {name for requirement in operation.get("security", SPEC["security"]) for name in requirement}


def _path(route: Route) -> str:
    return re.sub(r"\{\w+\}", "nothing-here", route.template)


@pytest.fixture
def app(settings: Settings) -> Iterator[LoglakeApp]:
    application = LoglakeApp.from_settings(replace(settings, max_body_bytes=64 * 1024, max_bulk_body_bytes=64 * 1024))
    yield application
    application.close()


def test_every_operation_that_takes_a_key_names_every_form_it_is_taken_in() -> None:
    """Basic, ApiKey and Splunk were missing: /docs' Authorize dialog and generated clients could not send what
    Promtail, Beats or a HEC client send."""
    assert KEY_FORMS | {"session"} <= set(SPEC["components"]["securitySchemes"])
    for route in DOCUMENTED:
        if route.scope is not None or route.template == "/":
            assert _schemes(_operation(route)) >= KEY_FORMS, (route.method, route.template)


@pytest.mark.parametrize(
    ("template", "first"),
    [
        ("/_bulk", "basic"),
        ("/loki/api/v1/push", "basic"),
        ("/services/collector/event", "splunk"),
        ("/v1/logs", "bearer"),
        ("/logs", "bearer"),
    ],
)
def test_a_shipper_endpoint_names_its_clients_form_first(template: str, first: str) -> None:
    assert next(iter(SPEC["paths"][template]["post"].get("security", SPEC["security"])[0])) == first


async def test_each_form_a_route_documents_is_taken_there(app: LoglakeApp) -> None:
    admin = key_for(app, "admin,ingest,read,alerts")
    async with asgi_client(app) as client:
        for route in CALLED:
            if route.scope is None:
                continue
            documented = _schemes(_operation(route))
            for header, scheme in zip(every_form(admin), FORM_SCHEMES, strict=True):
                assert scheme in documented
                answer = await client.request(
                    route.method, _path(route), headers={"authorization": header, "content-type": "application/json"}
                )
                assert answer.status_code not in (401, 403), (route.method, route.template, header[:7], answer.text)


def test_head_is_documented_where_shippers_send_it_and_only_on_what_is_served() -> None:
    """HEAD / is the connection check of Beats, Logstash and the clients' ping(); HEAD /{index} indices.exists."""
    served_get = {route.template for route in ROUTES if route.method == "GET"}
    heads = {path for path, operations in SPEC["paths"].items() if "head" in operations}
    assert "/" in heads and heads <= served_get


async def test_head_of_the_root_answers_as_documented(app: LoglakeApp) -> None:
    documented = SPEC["paths"]["/"]["head"]["responses"]
    async with asgi_client(app) as anonymous:
        answers = [
            await anonymous.head("/"),
            await anonymous.head("/", headers={"authorization": "Bearer llk_wrong"}),
            await anonymous.head("/", params={"nope": "1"}),
            await anonymous.head("/", headers={"accept": "text/html"}),
        ]
    assert {str(a.status_code) for a in answers} == set(documented)


async def test_a_bulk_documents_the_media_types_shippers_send(app: LoglakeApp) -> None:
    """Filebeat sends application/json; the 8.x and 9.x clients their vendor type."""
    documented = SPEC["paths"]["/_bulk"]["post"]["requestBody"]["content"]
    assert {"application/json", "application/x-ndjson", "application/vnd.elasticsearch+x-ndjson"} <= set(documented)
    body = b'{"create": {"_index": "app"}}\n{"message": "stored"}\n'
    async with asgi_client(app, key_for(app, "ingest")) as client:
        for media_type in documented:
            answer = await client.post("/_bulk", content=body, headers={"content-type": media_type})
            assert answer.status_code == 200 and not answer.json()["errors"], (media_type, answer.text)


async def _answers(app: LoglakeApp, route: Route) -> list[httpx.Response]:
    """The route's answers to the usual ways of calling it, right and wrong."""
    admin = key_for(app, "admin,ingest,read,alerts")
    # A key without the route's scope (admin holds every scope, so that one is refused to a read key).
    other = key_for(app, "read" if route.scope in ("ingest", "admin", "alerts") else "ingest")
    limited = key_for(app, "admin,ingest,read,alerts", rate_limit=0.5, rate_burst=1)
    path = _path(route)
    calls: list[tuple[str | None, dict]] = [
        (None, {}),
        ("Bearer llk_not-a-key", {}),
        (f"Bearer {other}", {}),
        (f"Bearer {limited}", {}),
        (f"Bearer {limited}", {}),
        (f"Bearer {admin}", {"params": {"not_a_parameter": "1"}}),
        (f"Bearer {admin}", {}),
    ]
    if route.reads_body:
        too_large = b"[" + b" " * route.body_limit(app.settings) + b"]"
        calls += [
            (f"Bearer {admin}", {"content": b"{}"}),
            (f"Bearer {admin}", {"content": too_large}),
            (f"Bearer {admin}", {"content": b"{}", "headers": {"content-type": "text/plain"}}),
        ]
    answers = []
    async with asgi_client(app) as client:
        for authorization, extra in calls:
            extra = dict(extra)
            headers = {"content-type": "application/json", **extra.pop("headers", {})}
            if authorization is not None:
                headers["authorization"] = authorization
            answers.append(await client.request(route.method, path, headers=headers, **extra))
    return answers


@pytest.mark.parametrize("route", CALLED, ids=lambda r: f"{r.method} {r.template}")
async def test_a_route_answers_only_statuses_its_document_lists(app: LoglakeApp, route: Route) -> None:
    documented = set(_operation(route)["responses"])
    answers = await _answers(app, route)
    undocumented = {(a.status_code, a.text[:120]) for a in answers if str(a.status_code) not in documented}
    assert not undocumented, sorted(documented)
