"""The HTTP API's route table (each route's method, path template, handler, scope, body and error form) and
the Router that finds a request's route in it; app.py serves them, aws/ui_auth.py serves a part of them."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from operator import attrgetter
from typing import TYPE_CHECKING

from loglake.api import (
    alert_routes,
    amplify_routes,
    ask_routes,
    delivery_routes,
    elastic_routes,
    elastic_setup_routes,
    key_routes,
    loki_routes,
    openapi,
    openapi_docs,
    operation_routes,
    otlp_routes,
    routes,
    session_routes,
    splunk_routes,
    sql_routes,
    tail_routes,
    ui_routes,
)
from loglake.api.http import ApiError, Request
from loglake.spelling import typo_of

if TYPE_CHECKING:
    from loglake.config import Settings

Handler = Callable[..., Awaitable[routes.Result]]


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    template: str
    handler: Handler
    scope: str | None  # None: public
    reads_body: bool = False
    body_limit: Callable[[Settings], int] = attrgetter("max_body_bytes")  # bytes of body the route takes
    # Turns the route's errors (auth and rate limits included) into its protocol's own form.
    error_form: Callable[[ApiError, Request], ApiError] | None = None  # the error in the protocol's own form

    @property
    def takes_records(self) -> bool:
        """Whether its body is records (the ingest routes'), which can be sent in smaller batches."""
        return self.scope == "ingest"


_ES = elastic_routes.elastic_error
_JSON = routes.json_body_limit  # (the JSON APIs' bodies: config.JSON_BODY_BYTES)
ROUTES = [
    Route("GET", "/", elastic_setup_routes.root, None, error_form=_ES),
    Route("POST", "/logs", routes.ingest, "ingest", reads_body=True),
    Route(
        "POST", otlp_routes.PATH, otlp_routes.export_logs, "ingest", reads_body=True, error_form=otlp_routes.otlp_error
    ),
    Route("POST", loki_routes.PATH, loki_routes.push, "ingest", reads_body=True, error_form=loki_routes.loki_error),
    Route("GET", loki_routes.READY_PATH, loki_routes.ready, None),
    Route("GET", "/logs/recent", routes.recent, "read"),
    Route("GET", "/logs/{logId}", routes.get_log, "read"),
    Route("GET", "/logs/search", routes.search, "read"),
    Route("GET", "/logs/histogram", routes.histogram, "read"),
    Route("GET", "/logs/facets", routes.facets, "read"),
    Route("GET", "/logs/tail", tail_routes.tail, "read"),
    Route("POST", "/query", sql_routes.query, "read", reads_body=True, body_limit=_JSON),
    Route("GET", "/tables", sql_routes.tables, "read"),
    Route("GET", "/amplify/reports", amplify_routes.amplify_reports, "read"),
    Route("GET", "/amplify/status", amplify_routes.amplify_status, "read"),
    Route("GET", "/alerts", alert_routes.list_alerts_route, "read"),
    Route("GET", "/alerts/{alertId}", alert_routes.get_alert_route, "read"),
    Route(
        "POST", "/alerts/{alertId}/acknowledge", alert_routes.acknowledge, "alerts", reads_body=True, body_limit=_JSON
    ),
    Route("POST", "/alerts/{alertId}/resolve", alert_routes.resolve, "alerts", reads_body=True, body_limit=_JSON),
    # An exact path: the router tries exact paths before `/alerts/{id}` templates, so it is never taken for an id.
    Route("GET", delivery_routes.PATH, delivery_routes.list_deliveries, "read"),
    Route("POST", delivery_routes.RETRY_PATH, delivery_routes.retry_delivery, "alerts"),
    Route("GET", "/ask", ask_routes.status, "read"),
    Route("POST", "/ask", ask_routes.ask, "read", reads_body=True, body_limit=_JSON),
    Route("POST", "/ask/explain", ask_routes.explain, "read", reads_body=True, body_limit=_JSON),
    Route("POST", "/ask/{conversationId}/rule", ask_routes.rule, "read", reads_body=True, body_limit=_JSON),
    Route("GET", "/healthz", operation_routes.healthz, None),
    Route("GET", "/metrics", operation_routes.metrics, "read"),
    Route("GET", "/openapi.json", openapi.spec, None),
    Route("GET", "/docs", openapi.docs, None),
    Route("GET", openapi_docs.DOCS_CSS_PATH, openapi_docs.docs_css, None),
    Route("GET", "/admin/keys", key_routes.list_keys, "admin"),
    Route("POST", "/admin/keys", key_routes.create_key, "admin", reads_body=True, body_limit=_JSON),
    Route("DELETE", "/admin/keys/{name}", key_routes.revoke_key, "admin"),
    # Public: the sign-in checks the key it is sent; the others check the session cookie.
    Route(
        "POST",
        "/session",
        session_routes.create_session,
        None,
        reads_body=True,
        body_limit=lambda _: session_routes.SESSION_BODY_BYTES,
    ),
    Route("GET", "/session", session_routes.get_session, None),
    Route("DELETE", "/session", session_routes.delete_session, None),
    # Elasticsearch's bulk API and what shippers ask before sending (api/elastic_routes.py, elastic_setup_routes.py).
    *(
        Route(
            method,
            path,
            elastic_routes.bulk,
            "ingest",
            reads_body=True,
            body_limit=elastic_routes.BULK_BODY_LIMIT,
            error_form=_ES,
        )
        for path in ("/_bulk", "/{index}/_bulk")
        for method in ("POST", "PUT")
    ),
    *(
        Route(method, template, handler, "ingest", reads_body=True, error_form=_ES)
        for template, handler, methods in elastic_routes.DOCUMENT_ROUTES
        for method in methods
    ),
    Route("GET", "/_license", elastic_setup_routes.license_info, "ingest", error_form=_ES),
    Route("GET", "/_xpack", elastic_setup_routes.xpack_info, "ingest", error_form=_ES),
    Route("GET", "/_cluster/health", elastic_setup_routes.cluster_health, "ingest", error_form=_ES),
    Route("GET", "/_cat/health", elastic_setup_routes.cat_health, "ingest", error_form=_ES),
    *(
        Route(method, path, elastic_setup_routes.refresh, "ingest", error_form=_ES)
        for path in ("/_refresh", "/{index}/_refresh")
        for method in ("GET", "POST")
    ),
    *(
        Route(method, f"/{kind}/{{name}}", handler, "ingest", reads_body=method == "PUT", error_form=_ES)
        for kind in elastic_setup_routes.SETUP_KINDS
        for method, handler in (("GET", elastic_setup_routes.setup_exists), ("PUT", elastic_setup_routes.setup_put))
    ),
    *(
        Route(method, "/{index}", handler, "ingest", reads_body=method == "PUT", error_form=_ES)
        for method, handler in elastic_setup_routes.INDEX_ROUTES
    ),
    # Splunk's HTTP Event Collector (api/splunk_routes.py).
    *(
        Route("POST", path, handler, "ingest", reads_body=True, error_form=splunk_routes.hec_error)
        for paths, handler in (
            (splunk_routes.EVENT_PATHS, splunk_routes.event),
            (splunk_routes.RAW_PATHS, splunk_routes.raw),
            (splunk_routes.ACK_PATHS, splunk_routes.ack),
        )
        for path in paths
    ),
    *(Route("GET", path, splunk_routes.health, None) for path in splunk_routes.HEALTH_PATHS),
    *(Route(*route) for route in ui_routes.ROUTES),  # the web UI and the reads only it needs
]


class Router:
    """Exact paths by dict lookup, first; then templates whose `{param}` segments each match one path
    segment (`/logs/{logId}`, `/alerts/{alertId}/resolve`). So an exact path beside a template of the
    same shape (`/logs/recent` beside `/logs/{logId}`) is never taken for a parameter's value."""

    def __init__(self, table: list[Route]) -> None:
        self.exact: dict[str, dict[str, Route]] = {}
        templated: dict[str, dict[str, Route]] = {}
        for route in table:
            by_template = templated if "{" in route.template else self.exact
            by_template.setdefault(route.template, {})[route.method] = route
        self.templated = [(_template_pattern(template), routes) for template, routes in templated.items()]

    def did_you_mean(self, path: str) -> str:
        """ " (did you mean /logs?)" for a path one or two typos from one of loglake's own exact paths (`/metric`,
        `/logs/recentt`), else "": said where a mistyped path reached a template instead (an Elasticsearch index,
        a log id) or no route at all."""
        meant = typo_of(path, self.exact)
        return f" (did you mean {meant[0]}?)" if meant else ""

    def match(self, method: str, path: str) -> tuple[Route, tuple[str, ...]]:
        method = "GET" if method == "HEAD" else method  # the server drops a HEAD's body
        by_method = self.exact.get(path)
        params: tuple[str, ...] = ()
        if by_method is None:
            # The first template that matches with this method; else the first that matches, for its 405
            # (`POST /logs/_bulk` is a bulk into the index `logs`, `GET /logs/_bulk` a record's id).
            for pattern, routes in self.templated:
                found = pattern.fullmatch(path)
                if found is not None and (by_method is None or method in routes):
                    by_method, params = routes, found.groups()
                    if method in routes:
                        break
            if by_method is None:
                raise ApiError(404, "not_found", f"no route {path}{self.did_you_mean(path)}; see /docs")
        route = by_method.get(method)
        if route is None:
            allow = ", ".join(sorted(by_method)).encode()
            hint = _POSTED_TO_ROOT if path == "/" and method in ("POST", "PUT") else ""
            raise ApiError(
                405, "method_not_allowed", f"{method} is not allowed on {path}{hint}", headers=[(b"allow", allow)]
            )
        return route, params


# (a shipper given the server's address where its endpoint belongs: OTEL_EXPORTER_OTLP_LOGS_ENDPOINT, say)
_POSTED_TO_ROOT = (
    f"; send records to an endpoint: POST /logs (loglake's own), {otlp_routes.PATH} (OTLP), /_bulk (Elasticsearch),"
    f" {loki_routes.PATH} (Loki), {splunk_routes.EVENT_PATHS[0]} (Splunk HEC)"
)


def _template_pattern(template: str) -> re.Pattern[str]:
    """A route template as a regex: each `{name}` one non-empty path segment, the rest literal."""
    return re.compile(re.sub(r"\\\{\w+\\\}", "([^/]+)", re.escape(template)))
