"""The OpenAPI 3.1 description of the HTTP API, and /docs: a self-contained page rendered from it
(no CDN: loglake's docs must work on a machine with no internet access)."""

from __future__ import annotations

import html
import re
from typing import TYPE_CHECKING, Any

from loglake import __version__
from loglake.alerts.db import ALERT_STATUSES
from loglake.alerts.store import DEFAULT_PAGE_LIMIT as DEFAULT_ALERT_PAGE
from loglake.alerts.store import MAX_NOTE_CHARS, TRANSITIONS
from loglake.alerts.store import MAX_PAGE_LIMIT as MAX_ALERT_PAGE
from loglake.api import (
    ask_routes,
    delivery_routes,
    elastic_routes,
    loki_routes,
    openapi_ui,
    otlp_routes,
    splunk_routes,
    ui_routes,
)
from loglake.api.routes import Result, refuse_parameters
from loglake.ids import UUID_PATTERN
from loglake.keys import SCOPES
from loglake.lake.reads import MAX_BUCKETS
from loglake.model import (
    DEFAULT_PAGE_LIMIT,
    MAX_PAGE_LIMIT,
    NAME_PATTERN,
    SEVERITY_ALIASES,
    SEVERITY_NAMES,
    SPAN_ID_HEX_DIGITS,
    TRACE_ID_HEX_DIGITS,
    Limits,
)
from loglake.rules.model import LEVELS
from loglake.service import DEFAULT_BUCKETS, HISTOGRAM_INTERVALS
from loglake.times import DAY_MS, FORMS, SMALLEST_PLAUSIBLE_MS

if TYPE_CHECKING:
    from loglake.api.app import LoglakeApp
    from loglake.api.http import Request


def _duration_text(ms: int) -> str:
    """1000 -> 1s, 300000 -> 5m, 86400000 -> 1d."""
    for unit, size in (("d", DAY_MS), ("h", 3_600_000), ("m", 60_000)):
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms // 1000}s"


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


ERRORS = {
    "400": _json(_ref("Error"), "Invalid input; details name each problem"),
    "401": _json(_ref("Error"), "Missing, invalid or revoked credentials"),
    "403": _json(_ref("Error"), "The key lacks the needed scope"),
    "429": _json(_ref("Error"), "Rate limited; see Retry-After"),
}


def _query(name: str, description: str, schema: dict | None = None) -> dict:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema or {"type": "string"},
    }


SEVERITY = {"type": "string", "enum": list(SEVERITY_NAMES)}
NAME = {"type": "string", "pattern": f"^{NAME_PATTERN.pattern}$"}
# The defaults; a server started with other limits enforces its own (loglake serve --help).
_LIMITS = Limits()
PAGE_LIMIT = _query(
    "limit",
    f"1-{MAX_PAGE_LIMIT}, default {DEFAULT_PAGE_LIMIT}",
    {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_LIMIT, "default": DEFAULT_PAGE_LIMIT},
)


def _any_case(words: list[str]) -> str:
    """A regex matching any of the words in any letter case (JSON Schema regexes have no (?i) flag)."""
    spelled = ("".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else re.escape(c) for c in w) for w in words)
    return "^(" + "|".join(spelled) + ")$"


TIME = FORMS

RECORD_IN = {
    "type": "object",
    "required": ["message"],
    "additionalProperties": False,
    "properties": {
        "message": {
            "type": "string",
            "minLength": 1,
            "description": f"at most {_LIMITS.max_message_bytes // 1024} KiB of UTF-8",
        },
        "timestamp": {
            "oneOf": [{"type": "integer", "minimum": SMALLEST_PLAUSIBLE_MS}, {"type": "string", "format": "date-time"}],
            "description": "epoch ms or ISO-8601 (without an offset: UTC); default: time received",
        },
        "service": {**NAME, "default": "default"},
        "log_type": {**NAME, "default": "application"},
        "severity": {
            "type": "string",
            "pattern": _any_case(sorted(SEVERITY_ALIASES)),
            "default": "info",
            "description": "debug, info, warning, error, critical (any case); aliases trace, notice, warn, err, fatal",
        },
        "attributes": {
            "type": "object",
            "description": f"at most {_LIMITS.max_attribute_keys} keys, depth {_LIMITS.max_attribute_depth}, "
            f"{_LIMITS.max_attribute_bytes // 1024} KiB as JSON",
        },
        "id": {
            "type": "string",
            "format": "uuid",
            "pattern": f"^{UUID_PATTERN}$",
            "description": "your own id: a retry with the same id stores one record",
        },
        "trace_id": {
            "type": "string",
            "pattern": f"^[0-9A-Fa-f]{{{TRACE_ID_HEX_DIGITS}}}$",
            "description": "W3C/OpenTelemetry trace id, stored in lowercase (all zeros is refused)",
        },
        "span_id": {
            "type": "string",
            "pattern": f"^[0-9A-Fa-f]{{{SPAN_ID_HEX_DIGITS}}}$",
            "description": "W3C/OpenTelemetry span id, stored in lowercase (all zeros is refused)",
        },
    },
}
PAGE = {
    "type": "object",
    "properties": {
        "count": {"type": "integer"},
        "logs": {"type": "array", "items": _ref("Record")},
        "next_cursor": {"type": ["string", "null"]},
    },
}
FOLLOW_PAGE = {
    "type": "object",
    "required": ["count", "logs", "next_cursor", "follow_cursor", "more", "gap"],
    "properties": {
        "count": {"type": "integer"},
        "logs": {
            "type": "array",
            "items": _ref("Record"),
            "description": "with follow=true the recent page, newest first; with after, what arrived since, "
            "in arrival order (after a restart: by time, oldest first)",
        },
        "next_cursor": {"type": ["string", "null"], "description": "the recent page's next page (follow=true only)"},
        "follow_cursor": {"type": "string", "description": "pass back as after"},
        "more": {"type": "boolean", "description": "more has arrived than this page holds: ask again at once"},
        "gap": {
            "type": ["object", "null"],
            "description": "records this follow cannot show: `overflow` (they arrived faster than it read them; "
            "missed says how many, of any filter) or `restart` (the cursor is from before a restart)",
            "properties": {
                "reason": {"type": "string", "enum": ["overflow", "restart"]},
                "missed": {"type": ["integer", "null"]},
                "message": {"type": "string"},
            },
        },
    },
}
RECORD_OUT = {
    "type": "object",
    "required": ["logId", "timestamp", "datetime", "service", "log_type", "severity", "message", "attributes"],
    "properties": {
        "logId": {"type": "string", "format": "uuid", "description": "UUIDv7; its time is the record's timestamp"},
        "timestamp": {"type": "integer", "description": "epoch ms"},
        "datetime": {"type": "string", "format": "date-time"},
        "service": {"type": "string"},
        "log_type": {"type": "string"},
        "severity": SEVERITY,
        "message": {"type": "string"},
        "attributes": {"type": "object"},
        "id": {"type": "string", "format": "uuid", "description": "present when the client sent one"},
        "trace_id": {"type": "string", "description": "present when the record has one (lowercase hex)"},
        "span_id": {"type": "string", "description": "present when the record has one (lowercase hex)"},
        "unreadable": {
            "type": "array",
            "description": "present when stored values could not be read: each field, and what is shown instead",
            "items": {
                "type": "object",
                "required": ["field", "reason"],
                "properties": {"field": {"type": "string"}, "reason": {"type": "string"}},
            },
        },
    },
}

_TIME_OUT = {"type": "string", "format": "date-time"}
ALERT_SUMMARY = {
    "type": "object",
    "required": ["id", "rule_id", "title", "level", "status", "dedup_key", "first_seen", "last_seen", "match_count"],
    "properties": {
        "id": {"type": "string", "format": "uuid", "description": "sorts by creation"},
        "rule_id": {"type": "string"},
        "rule_title": {"type": "string"},
        "title": {"type": "string", "description": "the rule's title template, rendered for this alert"},
        "level": {"type": "string", "enum": list(LEVELS)},
        "tags": {"type": "array", "items": {"type": "string"}},
        "status": {"type": "string", "enum": list(ALERT_STATUSES)},
        "dedup_key": {"type": "string"},
        "group": {"type": "object", "description": "the rule's group-by values"},
        "first_seen": {**_TIME_OUT, "description": "the earliest matching record"},
        "last_seen": {**_TIME_OUT, "description": "the latest matching record"},
        "match_count": {"type": "integer"},
        "window": {
            "type": "object",
            "description": "the windows evaluated, first start to last end (excluded)",
            "properties": {"start": _TIME_OUT, "end": _TIME_OUT},
        },
        "runbook": {"type": ["string", "null"]},
        "destinations": {"type": ["array", "null"], "items": {"type": "string"}},
        "created": _TIME_OUT,
        "updated": _TIME_OUT,
        "status_change": {
            "type": ["object", "null"],
            "description": "the last acknowledge or resolve: who (a key's name, `rule` for an auto-resolve), "
            "the note and when",
            "properties": {"by": {"type": "string"}, "note": {"type": ["string", "null"]}, "at": _TIME_OUT},
        },
        "evidence_count": {"type": "integer"},
    },
}
ALERT = {
    "allOf": [
        _ref("AlertSummary"),
        {
            "type": "object",
            "properties": {
                "evidence": {
                    "type": "array",
                    "items": {"type": "object"},
                    "description": "up to the rule's `evidence` matching records (their ids and fields)",
                },
                "query": {"type": "string", "description": "the SQL that found them"},
            },
        },
    ]
}
ALERT_ID = [
    {
        "name": "alertId",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "format": "uuid", "pattern": f"^{UUID_PATTERN}$"},
    }
]
_COUNTS = {"type": "object", "additionalProperties": {"type": "integer"}}
ALERT_PAGE = {
    "type": "object",
    "required": ["count", "alerts", "next_cursor", "counts"],
    "properties": {
        "count": {"type": "integer"},
        "alerts": {"type": "array", "items": _ref("AlertSummary")},
        "next_cursor": {"type": ["string", "null"], "description": "pass back as cursor for the next page"},
        "counts": {
            "type": "object",
            "description": "alerts per status under the other filters (all but status), and per level (all but level)",
            "properties": {"status": _COUNTS, "level": _COUNTS},
        },
    },
}


def _status_change(action: str, becomes: str) -> dict:
    allowed_from = ", ".join(TRANSITIONS[becomes])
    return {
        "post": {
            "summary": f"{action} an alert: it becomes {becomes}, recorded with the key's name as who did it and "
            f"the note (alerts or admin scope)",
            "description": f"Only an alert that is {allowed_from} can be {becomes}; anything else answers 409 "
            "with the alert's status, who set it and when. Each change appends an event that delivery follows.",
            "parameters": ALERT_ID,
            "requestBody": {
                "required": False,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {"note": {"type": ["string", "null"], "maxLength": MAX_NOTE_CHARS}},
                        }
                    }
                },
            },
            "responses": {
                "200": _json(_ref("Alert"), f"The alert, now {becomes}"),
                "404": _json(_ref("Error"), "No such alert"),
                "409": _json(_ref("Error"), f"The alert's status does not allow it (it is already {becomes}, ...)"),
                "415": _json(_ref("Error"), "A body that is not application/json"),
                "501": _json(_ref("Error"), "This deployment keeps no alerts"),
            },
        }
    }


FILTERS = [
    _query("service", "exact service name", NAME),
    _query("log_type", "exact log type", NAME),
    _query("severity", "one or more severities, comma-separated"),
    _query("min_severity", "this severity or worse", SEVERITY),
    _query("since", f"inclusive start: {TIME}"),
    _query("until", f"exclusive end: {TIME}"),
]

SPEC: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "loglake",
        "version": __version__,
        "description": "Durable log ingest, recent logs, search and SQL over the log lake. "
        "Authenticate with `Authorization: Bearer <key>` "
        "or AWS SigV4 (service execute-api).",
    },
    "components": {
        "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer"},
            "sigv4": {
                "type": "apiKey",
                "in": "header",
                "name": "Authorization",
                "description": "AWS4-HMAC-SHA256 with a key pair from `loglake keys create --sigv4`",
            },
        },
        "schemas": {
            "RecordIn": RECORD_IN,
            "Record": RECORD_OUT,
            "AlertSummary": ALERT_SUMMARY,
            "Alert": ALERT,
            "Error": {
                "type": "object",
                "properties": {
                    "error": {
                        "type": "object",
                        "properties": {
                            "code": {"type": "string"},
                            "message": {"type": "string"},
                            "details": {"type": "array", "items": {"type": "object"}},
                        },
                    }
                },
            },
        },
    },
    "security": [{"bearer": []}, {"sigv4": []}],
    "paths": {
        "/logs": {
            "post": {
                "summary": "Ingest one record, a JSON array or NDJSON (gzip accepted); 201 means durable",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {"oneOf": [_ref("RecordIn"), {"type": "array", "items": _ref("RecordIn")}]}
                        },
                        "application/x-ndjson": {"schema": {"type": "string"}},
                    },
                },
                "responses": {
                    "201": _json(
                        {
                            "oneOf": [
                                {
                                    "type": "object",
                                    "required": ["logId", "timestamp", "datetime"],
                                    "properties": {
                                        "logId": {"type": "string"},
                                        "timestamp": {"type": "integer"},
                                        "datetime": {"type": "string"},
                                    },
                                },
                                {
                                    "type": "object",
                                    "required": ["count", "logIds"],
                                    "properties": {
                                        "count": {"type": "integer"},
                                        "logIds": {"type": "array", "items": {"type": "string"}},
                                    },
                                },
                            ]
                        },
                        "Stored: one object for a single record, count and ids for a batch",
                    ),
                    "413": _json(_ref("Error"), "Body or batch too large"),
                    "415": _json(_ref("Error"), "Unsupported Content-Type or Content-Encoding"),
                    "503": _json(_ref("Error"), "Storage cannot accept writes; nothing was stored"),
                },
            }
        },
        "/logs/recent": {
            "get": {
                "summary": "Most recent records first (default window: the last 24 h), or follow them as they arrive",
                "description": "To follow (like tail -f), ask once with `follow=true`: the answer is the recent "
                "page plus a `follow_cursor`. Then ask with `after=<follow_cursor>` (and the same filters, "
                "without since, until and cursor) for what arrived since, in arrival order whatever its "
                "timestamp, and the next cursor. A record committed while the first page was read can be on "
                "it and again after its cursor: skip logIds already shown. The server keeps the latest "
                "arrivals while someone follows; `gap` says when a follow cannot show some records. Not "
                "available (501) where many processes write the store (the AWS deployment).",
                "parameters": [
                    *FILTERS,
                    _query("q", "case-insensitive substring of the message"),
                    PAGE_LIMIT,
                    _query("cursor", "next_cursor of the previous page"),
                    _query("follow", "true: also answer a follow_cursor", {"type": "string", "enum": ["true"]}),
                    _query("after", "follow_cursor of the previous answer: what arrived since"),
                ],
                "responses": {
                    "200": _json(
                        {"oneOf": [PAGE, FOLLOW_PAGE]}, "A page of records (with follow or after: a follow page)"
                    ),
                    "501": _json(_ref("Error"), "Following is not available on this deployment"),
                },
            }
        },
        "/logs/{logId}": {
            "get": {
                "summary": "One record by its logId (or by the id the client sent)",
                "parameters": [{"name": "logId", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {
                    "200": _json(_ref("Record"), "The record"),
                    "400": _json(_ref("Error"), "A query parameter: it takes none"),
                    "404": _json(_ref("Error"), "No such record"),
                },
            }
        },
        "/logs/search": {
            "get": {
                "summary": "Search messages across hot and lake records, newest first (default window: the last 24 h)",
                "description": '`q`: words (case-insensitive substrings of the message), "quoted phrases", '
                "`service:`, `severity:`, `log_type:` or any attribute key (`user:alice`, `http.status:500`) "
                "and `-term` to exclude; all terms must match.",
                "parameters": [
                    _query("q", "the search, e.g. timeout service:api -healthcheck"),
                    *FILTERS,
                    PAGE_LIMIT,
                    _query("cursor", "next_cursor of the previous page"),
                ],
                "responses": {"200": _json(PAGE, "A page of records, the same shape as /logs/recent")},
            }
        },
        "/logs/histogram": {
            "get": {
                "summary": "Record counts per time bucket and severity, for the same filters as search",
                "parameters": [
                    _query("q", "the search, as for /logs/search"),
                    *FILTERS,
                    _query("interval", "bucket size like 30s, 5m, 1h, 1d (or give buckets)"),
                    _query(
                        "buckets",
                        f"how many buckets at most, default {DEFAULT_BUCKETS}: their size is the smallest of "
                        f"{', '.join(_duration_text(i) for i in HISTOGRAM_INTERVALS)} that fits "
                        "(past a day, whole days)",
                        {"type": "integer", "minimum": 1, "maximum": MAX_BUCKETS, "default": DEFAULT_BUCKETS},
                    ),
                ],
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {
                                "since": {"type": "string", "format": "date-time"},
                                "until": {"type": "string", "format": "date-time"},
                                "bucket_seconds": {"type": "number", "description": "the buckets' size"},
                                "interval_ms": {"type": "integer", "description": "the same, in milliseconds"},
                                "total": {"type": "integer"},
                                "buckets": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "properties": {
                                            "start": {"type": "string", "format": "date-time"},
                                            "start_ms": {"type": "integer"},
                                            "total": {"type": "integer"},
                                            "counts": {"type": "object", "additionalProperties": {"type": "integer"}},
                                        },
                                    },
                                },
                            },
                        },
                        "Every bucket of the window, aligned to the epoch, with a count per severity",
                    )
                },
            }
        },
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
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
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
                                        "minimum": 0,
                                        "description": "row cap (the server caps it too)",
                                    },
                                    "timeout_seconds": {"type": ["number", "null"], "exclusiveMinimum": 0},
                                    "explain": {
                                        "type": ["boolean", "null"],
                                        "description": "return the executed plan instead of rows",
                                    },
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "200": _json(
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
                    "415": _json(_ref("Error"), "Not application/json"),
                    "503": _json(_ref("Error"), "Every query slot is busy; retry"),
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
                    {**_query("app", "the appName", NAME), "required": True},
                    _query("since", "start: epoch ms, ISO-8601 or an age like 7d (default 7d)", {"type": "string"}),
                    _query("until", "end, excluded (default now)", {"type": "string"}),
                    _query(
                        "report",
                        "comma-separated report names (default all): top_paths, status_classes, bytes_served, "
                        "cache_hit_ratio, edge_locations, top_referrers, bots_vs_humans",
                        {"type": "string"},
                    ),
                ],
                "responses": {"200": {"description": "one result per report, shaped like POST /query's"}},
            }
        },
        "/amplify/status": {
            "get": {
                "summary": "Amplify collection: each app's watermark, the last runs, the schedule (read scope)",
                "responses": {"200": {"description": "the collector's state"}},
            }
        },
        "/alerts": {
            "get": {
                "summary": "Alerts, newest first, with their counts per status and level (read scope)",
                "description": "Lists leave out each alert's evidence and query: GET /alerts/{alertId} has them.",
                "parameters": [
                    _query("status", f"one or more, comma-separated: {', '.join(ALERT_STATUSES)}"),
                    _query("level", f"one or more, comma-separated: {', '.join(LEVELS)}"),
                    _query("rule", "a rule's id"),
                    _query("since", f"alerts with a match at or after it (last_seen): {TIME}"),
                    _query("q", "text in the title, the rule's title or the dedup key (ASCII letters in any case)"),
                    _query(
                        "limit",
                        f"1-{MAX_ALERT_PAGE}, default {DEFAULT_ALERT_PAGE}",
                        {"type": "integer", "minimum": 1, "maximum": MAX_ALERT_PAGE, "default": DEFAULT_ALERT_PAGE},
                    ),
                    _query("cursor", "next_cursor of the previous page"),
                ],
                "responses": {
                    "200": _json(ALERT_PAGE, "A page of alerts"),
                    "501": _json(_ref("Error"), "This deployment keeps no alerts"),
                },
            }
        },
        "/alerts/{alertId}": {
            "get": {
                "summary": "One alert with its evidence and the query that found it (read scope)",
                "parameters": ALERT_ID,
                "responses": {
                    "200": _json(_ref("Alert"), "The alert"),
                    "400": _json(_ref("Error"), "A query parameter: it takes none"),
                    "404": _json(_ref("Error"), "No such alert"),
                    "501": _json(_ref("Error"), "This deployment keeps no alerts"),
                },
            }
        },
        "/alerts/{alertId}/acknowledge": _status_change("Acknowledge", "acknowledged"),
        "/alerts/{alertId}/resolve": _status_change("Resolve", "resolved"),
        **delivery_routes.OPENAPI,
        **ui_routes.OPENAPI,
        "/healthz": {
            "get": {
                "summary": "Liveness and storage health (no auth: status and reason; details with a read key)",
                "security": [],
                "responses": {
                    "200": {"description": "healthy"},
                    "400": _json(_ref("Error"), "A query parameter: it takes none"),
                    "503": {"description": "storage unwritable"},
                },
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics (read scope)",
                "responses": {"200": {"description": "text exposition format"}},
            }
        },
        "/admin/keys": {
            "get": {
                "summary": "List active API keys (admin scope; ?all=true includes revoked)",
                "responses": {"200": {"description": "keys, never their secrets"}},
            },
            "post": {
                "summary": "Create a key; the secret is in this response only (admin scope)",
                "requestBody": {
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "name": {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,64}$"},
                                    "scopes": {
                                        "type": "array",
                                        "minItems": 1,
                                        "items": {"type": "string", "enum": list(SCOPES)},
                                    },
                                    "sigv4": {"type": "boolean"},
                                    "rate_limit": {"type": "number", "exclusiveMinimum": 0},
                                    "rate_burst": {"type": "integer", "minimum": 1},
                                },
                            }
                        }
                    }
                },
                "responses": {
                    "201": {"description": "the new key and its secret"},
                    "409": _json(_ref("Error"), "An active key has that name (revoke it first or pick another)"),
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
                    "409": _json(_ref("Error"), "The last active admin key (revoke it from the CLI with --force)"),
                },
            },
        },
    },
}


SPEC["components"]["securitySchemes"].update(openapi_ui.SECURITY_SCHEMES)
SPEC["security"].append({"session": []})
SPEC["paths"].update(openapi_ui.paths(FILTERS))


def _document_common_errors(document: dict[str, Any]) -> None:
    """Every authenticated operation can answer 400, 401, 403 and 429; say so once, here."""
    for operations in document["paths"].values():
        for operation in operations.values():
            if operation.get("security") != []:
                operation["responses"] = {**ERRORS, **operation["responses"]}


SPEC["paths"].update(ask_routes.OPENAPI_PATHS)
_document_common_errors(SPEC)
# Errors of these take their protocol's form, auth and rate limits included: they describe all they answer.
SPEC["paths"].update(
    otlp_routes.OPENAPI | loki_routes.OPENAPI | elastic_routes.OPENAPI_PATHS | splunk_routes.OPENAPI_PATHS
)


async def spec(app: LoglakeApp, request: Request) -> Result:
    refuse_parameters(request, "GET /openapi.json")
    return Result(200, SPEC)


async def docs(app: LoglakeApp, request: Request) -> Result:
    return Result(200, _DOCS_HTML, ((b"content-type", b"text/html; charset=utf-8"),))


def _text(value: str) -> str:
    """Escaped text with `code` spans, the only markup the descriptions use."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(value))


# A file of its own, not a <style> element: the Content-Security-Policy (security_headers.py) lets pages
# use only styles loaded from the server.
DOCS_CSS_PATH = "/docs.css"
_DOCS_CSS = (
    b"body{font:15px system-ui,sans-serif;max-width:60em;margin:2em auto;padding:0 1em}"
    b"code,pre{background:#f4f4f4;padding:2px 4px}h2{margin-top:1.6em;font-family:monospace}"
    b"table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:4px 8px;text-align:left}"
)


async def docs_css(app: LoglakeApp, request: Request) -> Result:
    return Result(200, _DOCS_CSS, ((b"content-type", b"text/css; charset=utf-8"),))


def render_docs(document: dict[str, Any]) -> bytes:
    parts = [
        f"<!doctype html><meta charset=utf-8><title>loglake API</title><link rel=stylesheet href={DOCS_CSS_PATH}>",
        f"<h1>loglake API {html.escape(document['info']['version'])}</h1>",
        f"<p>{_text(document['info']['description'])}</p>",
        "<p>Machine-readable: <a href=/openapi.json>/openapi.json</a>. Errors are "
        '<code>{"error": {"code", "message", "details"}}</code>.</p>',
    ]
    for path, operations in document["paths"].items():
        for method, op in operations.items():
            parts.append(f"<h2>{method.upper()} {html.escape(path)}</h2><p>{_text(op['summary'])}</p>")
            params = op.get("parameters", [])
            if params:
                parts.append("<table><tr><th>parameter</th><th>in</th><th>meaning</th></tr>")
                parts.extend(
                    f"<tr><td><code>{html.escape(p['name'])}</code></td><td>{p['in']}</td>"
                    f"<td>{_text(p.get('description', ''))}</td></tr>"
                    for p in params
                )
                parts.append("</table>")
            statuses = ", ".join(
                f"<b>{code}</b> {html.escape(r.get('description', ''))}" for code, r in op["responses"].items()
            )
            parts.append(f"<p>Responses: {statuses}</p>")
    return "".join(parts).encode()


_DOCS_HTML = render_docs(SPEC)
