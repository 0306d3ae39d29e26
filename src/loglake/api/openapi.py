"""The OpenAPI 3.1 description of the HTTP API (GET /openapi.json), put together from the openapi_* modules and
the routes' own entries, and /docs rendered from it (openapi_docs.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from loglake import __version__
from loglake.api import (
    ask_routes,
    delivery_routes,
    loki_routes,
    openapi_elastic,
    openapi_security,
    openapi_ui,
    otlp_routes,
    splunk_routes,
    ui_routes,
)
from loglake.api.openapi_alerts import ALERT, ALERT_PATHS, ALERT_SUMMARY
from loglake.api.openapi_common import (
    ERROR,
    ERRORS,
    FILTERS,
    NAME,
    NOT_JSON,
    TOO_LARGE,
    error_response,
    json_request,
    json_response,
    query,
)
from loglake.api.openapi_docs import render_docs
from loglake.api.openapi_logs import LOG_PATHS, RECORD_IN, RECORD_OUT
from loglake.api.routes import Result, refuse_parameters
from loglake.keys import KEY_NAME_PATTERN, MAX_RATE_BURST, MAX_RATE_LIMIT, MIN_RATE_LIMIT, SCOPES
from loglake.lake.query_limits import MIN_TIMEOUT_SECONDS

if TYPE_CHECKING:
    from loglake.api.app import LoglakeApp
    from loglake.api.http import Request


_TRUE_OR_FALSE = {"type": "string", "enum": ["true", "1", "false", "0"]}
_KEY = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "kind": {"type": "string", "enum": ["bearer", "sigv4"]},
        "scopes": {"type": "array", "items": {"type": "string", "enum": list(SCOPES)}},
        "hint": {"type": "string", "description": "the secret's first characters (or the access key id's)"},
        "created_at": {"type": "integer", "description": "epoch seconds"},
        "revoked_at": {"type": ["integer", "null"], "description": "epoch seconds; null while active"},
        "rate_limit": {"type": ["number", "null"], "description": "its own requests/s; null: the server's"},
        "rate_burst": {"type": ["integer", "null"], "description": "its own burst; null: the server's"},
    },
}
_KEYS_ANSWER = {"type": "object", "properties": {"keys": {"type": "array", "items": _KEY}}}
_NEW_KEY = {
    **_KEY,
    "properties": {
        **_KEY["properties"],
        "secret": {"type": "string", "description": "shown only in this answer: only its hash is kept"},
        "access_key_id": {"type": "string", "description": "a SigV4 key's (with the secret as its secret key)"},
    },
}
_HEALTH = {
    "type": "object",
    "required": ["status", "reason"],
    "properties": {
        "status": {"type": "string", "enum": ["ok", "degraded"]},
        "reason": {"type": ["string", "null"], "description": "why it is degraded (null: ok)"},
    },
    "description": "with a read key, also version, store, auth, deliveries, amplify, rules and lake",
}

SPEC: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "loglake",
        "version": __version__,
        "description": "Durable log ingest, recent logs, search and SQL over the log lake. "
        "Authenticate with `Authorization: Bearer <key>`, or the key in the form your shipper sends it "
        "(Basic with the key as the password, `ApiKey <key>`, `Splunk <key>`), or AWS SigV4 (service execute-api).",
    },
    "components": {
        "securitySchemes": openapi_security.SECURITY_SCHEMES,
        "schemas": {
            "RecordIn": RECORD_IN,
            "Record": RECORD_OUT,
            "AlertSummary": ALERT_SUMMARY,
            "Alert": ALERT,
            "Error": ERROR,
        },
    },
    "security": openapi_security.DEFAULT,
    "paths": {
        **LOG_PATHS,
        "/query": {
            "post": {
                "summary": "One read-only SQL SELECT (DuckDB) over `logs`, hot and lake records each once (read scope)",
                "description": "Columns: log_id, timestamp (UTC), service, log_type, severity, message, attributes "
                "(JSON text), client_id, trace_id, span_id, and the partition `date`: filter on `date` or "
                "`timestamp` to read fewer files. The other tables: `amplify_access`, and `alerts`, read from the "
                "alerts database at each query (always current); GET /tables lists every table's columns. Only "
                "those tables and the query's own WITH names can be read: files, URLs, settings, "
                "the engine's catalog and extensions are not reachable; COPY, ATTACH, SET, PRAGMA and everything "
                "but one SELECT are refused with 400, as is an answer larger than the server's "
                "query_max_response_mb (response_too_large: ask for a smaller limit or fewer columns).",
                "requestBody": json_request(
                    {
                        "type": "object",
                        "required": ["sql"],
                        "additionalProperties": False,
                        "properties": {
                            "sql": {
                                "type": "string",
                                "minLength": 1,
                                "example": "SELECT severity, count(*) FROM logs GROUP BY ALL",
                            },
                            "limit": {
                                "type": ["integer", "null"],
                                "minimum": 1,
                                "description": "row cap (the server caps it too)",
                            },
                            "timeout_seconds": {"type": ["number", "null"], "minimum": MIN_TIMEOUT_SECONDS},
                            "explain": {
                                "type": ["boolean", "null"],
                                "description": "return the executed plan instead of rows",
                            },
                        },
                    }
                ),
                "responses": {
                    "200": json_response(
                        {
                            "type": "object",
                            "properties": {
                                "columns": {"type": "array", "items": {"type": "object"}},
                                "rows": {"type": "array", "items": {"type": "array"}},
                                "row_count": {"type": "integer"},
                                "truncated": {"type": "boolean"},
                                "elapsed_ms": {"type": "number"},
                                "bytes_scanned": {
                                    "type": "integer",
                                    "description": "Bytes read from lake files (hot records are in memory); on "
                                    "an S3 lake, the sizes of the files the query opened, an upper bound",
                                },
                                "files_scanned": {"type": "integer", "description": "Lake files the query read"},
                                "plan": {"type": "string"},
                            },
                        },
                        "Columns and rows (times as ISO-8601 UTC), or the plan with explain",
                    ),
                    "503": error_response(
                        "Every query slot is busy (`busy`: retry), or a lake file the catalog lists could not be read "
                        "from storage (`lake_unreadable`: `loglake verify` names it; asking again does not mend it)"
                    ),
                },
            }
        },
        "/tables": {
            "get": {
                "summary": "The tables SQL can query: columns, partition keys, partitions and sizes (read scope)",
                "responses": {"200": {"description": "the tables"}},
            }
        },
        "/amplify/reports": {
            "get": {
                "summary": "Saved reports on one Amplify app's traffic: top paths, status classes, bytes, cache hits, "
                "edges, referrers, bots (read scope)",
                "parameters": [
                    {**query("app", "the appName", NAME), "required": True},
                    query("since", "start: epoch ms, ISO-8601 or an age like 7d (default 7d)", {"type": "string"}),
                    query("until", "end, excluded (default now)", {"type": "string"}),
                    query(
                        "report",
                        "comma-separated report names (default all): top_paths, status_classes, bytes_served, "
                        "cache_hit_ratio, edge_locations, top_referrers, bots_vs_humans",
                        {"type": "string"},
                    ),
                ],
                "responses": {
                    "200": {"description": "one result per report, shaped like POST /query's"},
                    "404": error_response("`app` names no Amplify app of the collector's configuration (unknown_app)"),
                },
            }
        },
        "/amplify/status": {
            "get": {
                "summary": "Amplify collection: each app's watermark, the last runs, the schedule and the setting that "
                "sets it (read scope)",
                "responses": {"200": {"description": "the collector's state"}},
            }
        },
        **ALERT_PATHS,
        **delivery_routes.OPENAPI,
        **ui_routes.OPENAPI,
        "/healthz": {
            "get": {
                "summary": "Liveness and storage health (no auth: status and reason; details with a read key). "
                "`degraded` with a 200 while alert deliveries dead-lettered in the last 24 h remain, or while "
                "alerts.db cannot be read",
                "security": [],
                "responses": {
                    "200": {
                        "description": "healthy (`ok`), or working with a problem to look at (`degraded`)",
                        "content": {"application/json": {"schema": _HEALTH}},
                    },
                    "400": error_response("A query parameter: it takes none"),
                    "503": {
                        "description": "storage unwritable (`degraded`, its reason says so)",
                        "content": {"application/json": {"schema": _HEALTH}},
                    },
                },
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics (read scope)",
                "responses": {
                    "200": {
                        "description": "text exposition format",
                        "content": {"text/plain; version=0.0.4": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        "/admin/keys": {
            "get": {
                "summary": "List active API keys (admin scope; ?all=true includes revoked)",
                "parameters": [
                    query("all", "true: revoked keys too (false, the default: active ones)", _TRUE_OR_FALSE),
                ],
                "responses": {
                    "200": {
                        "description": "keys, never their secrets",
                        "content": {"application/json": {"schema": _KEYS_ANSWER}},
                    }
                },
            },
            "post": {
                "summary": "Create a key; the secret is in this response only (admin scope)",
                "requestBody": {
                    "required": True,  # its name: without a body the answer is 400
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["name"],
                                "additionalProperties": False,
                                "properties": {
                                    "name": {"type": "string", "pattern": f"^{KEY_NAME_PATTERN}$"},
                                    "scopes": {
                                        "type": "array",
                                        "minItems": 1,
                                        "items": {"type": "string", "enum": list(SCOPES)},
                                        "default": ["ingest"],
                                    },
                                    "sigv4": {"type": "boolean", "default": False},
                                    "rate_limit": {
                                        "type": ["number", "null"],
                                        "minimum": MIN_RATE_LIMIT,
                                        "maximum": MAX_RATE_LIMIT,
                                        "description": "requests/s; none: the server's",
                                    },
                                    "rate_burst": {
                                        "type": ["integer", "null"],
                                        "minimum": 1,
                                        "maximum": MAX_RATE_BURST,
                                        "description": "none: a second's worth of rate_limit, else the server's",
                                    },
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "201": {
                        "description": "the new key and its secret (and a SigV4 key's access_key_id)",
                        "content": {"application/json": {"schema": _NEW_KEY}},
                    },
                    "409": error_response("An active key has that name (revoke it first or pick another)"),
                },
            },
        },
        "/admin/keys/{name}": {
            "delete": {
                "summary": "Revoke a key at once (admin scope)",
                "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {
                    "200": {"description": "revoked"},
                    "404": {"description": "no such key"},
                    "409": error_response("The last active admin key (revoke it from the CLI with --force)"),
                },
            },
        },
    },
}


SPEC["paths"].update(openapi_ui.paths(FILTERS))


def _document_common_errors(document: dict[str, Any]) -> None:
    """Every authenticated operation can answer 400, 401, 403 and 429, and every one that takes a body 413, and 415
    for a media type it does not take (routes.json_body); say so once, here (tests/api/test_openapi_routes.py calls
    each route to check it)."""
    for operations in document["paths"].values():
        for operation in operations.values():
            if operation.get("security") != []:
                operation["responses"] = {**ERRORS, **operation["responses"]}
            if "requestBody" in operation:
                operation["responses"] = {"413": TOO_LARGE, "415": NOT_JSON, **operation["responses"]}


SPEC["paths"].update(ask_routes.OPENAPI_PATHS)
_document_common_errors(SPEC)
# Errors of these take their protocol's form, auth and rate limits included: they describe all they answer.
# Each in the auth forms its clients send first (openapi_security.py).
for _paths, _security in (
    (otlp_routes.OPENAPI, openapi_security.OTLP),
    (loki_routes.OPENAPI, openapi_security.LOKI),
    (openapi_elastic.OPENAPI_PATHS, openapi_security.ELASTIC),
    (splunk_routes.OPENAPI_PATHS, openapi_security.SPLUNK),
):
    SPEC["paths"].update(openapi_security.apply(_paths, _security))


async def spec(app: LoglakeApp, request: Request) -> Result:
    refuse_parameters(request, "GET /openapi.json")
    return Result(200, SPEC)


async def docs(app: LoglakeApp, request: Request) -> Result:
    return Result(200, _DOCS_HTML, ((b"content-type", b"text/html; charset=utf-8"),))


_DOCS_HTML = render_docs(SPEC)
