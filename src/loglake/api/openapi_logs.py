"""The OpenAPI description of the log endpoints: ingest (POST /logs), recent records and following them,
one record, search and the histogram; and the schemas of a record as sent and as read."""

from __future__ import annotations

import re

from loglake.api.openapi_common import (
    FILTERS,
    NAME,
    PAGE_LIMIT,
    SEVERITY,
    error_response,
    json_response,
    query,
    ref,
)
from loglake.ids import UUID_PATTERN
from loglake.lake.reads import MAX_BUCKETS
from loglake.lake.search_terms import MAX_GROUP_DEPTH, MAX_TERMS
from loglake.model import SEVERITY_ALIASES, SPAN_ID_HEX_DIGITS, TRACE_ID_HEX_DIGITS, Limits
from loglake.service import DEFAULT_BUCKETS, HISTOGRAM_INTERVALS
from loglake.times import DAY_MS, SMALLEST_PLAUSIBLE_MS

# The defaults; a server started with other limits enforces its own (loglake serve --help).
_LIMITS = Limits()


def _duration_text(ms: int) -> str:
    """1000 -> 1s, 300000 -> 5m, 86400000 -> 1d."""
    for unit, size in (("d", DAY_MS), ("h", 3_600_000), ("m", 60_000)):
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms // 1000}s"


def _any_case(words: list[str]) -> str:
    """A regex matching any of the words in any letter case (JSON Schema regexes have no (?i) flag)."""
    spelled = ("".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else re.escape(c) for c in w) for w in words)
    return "^(" + "|".join(spelled) + ")$"


def _nullable(field: dict) -> dict:
    """A field's schema that takes null too (what it says of the field stays beside the alternatives)."""
    said = {key: field[key] for key in ("default", "description") if key in field}
    rest = {key: value for key, value in field.items() if key not in said}
    return {"oneOf": [rest, {"type": "null"}], **said}


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
            # (not format date-time: RFC 3339 wants an offset, and a date alone or a time without one is taken)
            "oneOf": [{"type": "integer", "minimum": SMALLEST_PLAUSIBLE_MS}, {"type": "string"}],
            "description": "epoch ms or ISO-8601: a date-time with or without an offset (none: UTC), or a date "
            "alone (its midnight UTC); null or none: the time received",
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
            "pattern": f"^(?!0+$)[0-9A-Fa-f]{{{TRACE_ID_HEX_DIGITS}}}$",  # (all zeros: no id, refused)
            "description": "W3C/OpenTelemetry trace id, stored in lowercase (all zeros is refused)",
        },
        "span_id": {
            "type": "string",
            "pattern": f"^(?!0+$)[0-9A-Fa-f]{{{SPAN_ID_HEX_DIGITS}}}$",
            "description": "W3C/OpenTelemetry span id, stored in lowercase (all zeros is refused)",
        },
    },
}
# Every field but the message may be sent as null: the same as leaving it out (its default).
RECORD_IN["properties"] = {
    name: field if name == "message" else _nullable(field) for name, field in RECORD_IN["properties"].items()
}
PAGE = {
    "type": "object",
    "required": ["count", "logs", "next_cursor"],
    "properties": {
        "count": {"type": "integer"},
        "logs": {"type": "array", "items": ref("Record")},
        "next_cursor": {"type": ["string", "null"]},
    },
    "additionalProperties": False,  # (a follow page is no page: the answer is one of the two, as oneOf says)
}
FOLLOW_PAGE = {
    "type": "object",
    "required": ["count", "logs", "next_cursor", "follow_cursor", "more", "gap"],
    "properties": {
        "count": {"type": "integer"},
        "logs": {
            "type": "array",
            "items": ref("Record"),
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
                "since": {
                    "type": ["string", "null"],
                    "format": "date-time",
                    "description": "GET /logs/recent with since= this (and the follow's filters) lists them by time",
                },
                "until": {
                    "type": ["string", "null"],
                    "format": "date-time",
                    "description": "GET /logs/recent with until= this (and the follow's filters) lists them by time",
                },
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

LOG_PATHS = {
    "/logs": {
        "post": {
            "summary": "Ingest one record, a JSON array or NDJSON (gzip accepted); 201 means durable",
            "parameters": [
                {
                    "name": "Prefer",
                    "in": "header",
                    "required": False,
                    "description": "`return=minimal` (RFC 7240): the answer is the count alone, not every "
                    "record's id (for clients that read only a few KiB of an answer, as Fluent Bit's http output)",
                    "schema": {"type": "string"},
                }
            ],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {"oneOf": [ref("RecordIn"), {"type": "array", "items": ref("RecordIn")}]}
                    },
                    "application/x-ndjson": {"schema": {"type": "string"}},
                },
            },
            "responses": {
                "201": json_response(
                    {
                        "oneOf": [
                            {
                                "type": "object",
                                "required": ["logId", "timestamp", "datetime"],
                                "properties": {
                                    "logId": {"type": "string"},
                                    "timestamp": {"type": "integer"},
                                    "datetime": {"type": "string"},
                                    "duplicate": {
                                        "type": "boolean",
                                        "description": "true when its client id was stored already: this one "
                                        "was not stored again",
                                    },
                                },
                            },
                            {
                                "type": "object",
                                "required": ["count", "logIds"],
                                "properties": {
                                    "count": {"type": "integer"},
                                    "logIds": {"type": "array", "items": {"type": "string"}},
                                    "duplicates": {
                                        "type": "integer",
                                        "description": "records whose client id was stored already (absent: none)",
                                    },
                                },
                            },
                            {
                                "type": "object",
                                "required": ["count"],
                                "properties": {"count": {"type": "integer"}},
                                "additionalProperties": False,
                            },
                        ]
                    },
                    "Stored: one object for a single record, count and ids for a batch, the count alone with "
                    "Prefer: return=minimal",
                ),
                "413": error_response("Body or batch too large"),
                "415": error_response("Unsupported Content-Type or Content-Encoding"),
                "503": error_response(
                    "Storage cannot accept writes (`storage_unavailable`), or the server holds as many request bodies"
                    " as it may (`server_busy`, with Retry-After); nothing was stored"
                ),
            },
        }
    },
    "/logs/recent": {
        "get": {
            "summary": "Most recent records first (default window: the last 24 h), or follow them as they arrive",
            "description": "To follow (like tail -f), ask once with `follow=true` (`since` says where the follow "
            "starts; no `until`: a follow has no end): the answer is the recent page plus a `follow_cursor`. "
            "Then ask with `after=<follow_cursor>` (and the same filters, "
            "without since, until and cursor) for what arrived since, in arrival order whatever its "
            "timestamp, and the next cursor. A record committed while the first page was read can be on "
            "it and again after its cursor: skip logIds already shown. The server keeps the latest "
            "arrivals while someone follows; `gap` says when a follow cannot show some records. Not "
            "available (501) where many processes write the store (the AWS deployment).",
            "parameters": [
                *FILTERS,
                query("q", "case-insensitive substring of the message"),
                PAGE_LIMIT,
                query("cursor", "next_cursor of the previous page"),
                query(
                    "follow",
                    "true: also answer a follow_cursor (false, as without it: not)",
                    {"type": "string", "enum": ["true", "false"]},
                ),
                query("after", "follow_cursor of the previous answer: what arrived since"),
            ],
            "responses": {
                "200": json_response(
                    {"oneOf": [PAGE, FOLLOW_PAGE]}, "A page of records (with follow or after: a follow page)"
                ),
                "501": error_response("Following is not available on this deployment"),
            },
        }
    },
    "/logs/{logId}": {
        "get": {
            "summary": "One record by its logId (or by the id the client sent)",
            "parameters": [{"name": "logId", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {
                "200": json_response(ref("Record"), "The record"),
                "400": error_response("A query parameter: it takes none"),
                "404": error_response("No such record"),
            },
        }
    },
    "/logs/search": {
        "get": {
            "summary": "Search messages across hot and lake records, newest first (default window: the last 24 h)",
            "description": '`q`: words (case-insensitive substrings of the message), "quoted phrases", '
            "`service:`, `severity:`, `log_type:` or any attribute key (`user:alice`, `http.status:500`: "
            "nested keys, or else the one key with the dots, as OTLP's `host.name`) and `-term` to exclude; "
            "`*` alone matches every record, `field:*` a field that is there, a trailing `*` a value's start "
            "(`service:web*`; words match anywhere, so `mess*` is `mess`), a `*` elsewhere is refused (quoted, "
            "it is text); terms side by side must all match (`AND` may be written). `a OR b` "
            "matches either (`OR` in capitals; AND binds tighter), parentheses group, and `-( ... )` or "
            f"`NOT` excludes a group: `service:api (timeout OR refused)`. At most {MAX_TERMS} terms, groups "
            f"nested at most {MAX_GROUP_DEPTH} deep; quote a word holding a parenthesis.",
            "parameters": [
                query("q", "the search, e.g. service:api (timeout OR refused) -healthcheck"),
                *FILTERS,
                PAGE_LIMIT,
                query("cursor", "next_cursor of the previous page"),
            ],
            "responses": {"200": json_response(PAGE, "A page of records, the same shape as /logs/recent")},
        }
    },
    "/logs/histogram": {
        "get": {
            "summary": "Record counts per time bucket and severity, for the same filters as search",
            "parameters": [
                query("q", "the search, as for /logs/search"),
                *FILTERS,
                query("interval", "bucket size like 30s, 5m, 1h, 1d (or give buckets)"),
                query(
                    "buckets",
                    f"about how many buckets, default {DEFAULT_BUCKETS}: their size is the smallest of "
                    f"{', '.join(_duration_text(i) for i in HISTOGRAM_INTERVALS)} of which this many span the "
                    "window (past a day, whole days); aligned to the epoch, they may be one more",
                    {"type": "integer", "minimum": 1, "maximum": MAX_BUCKETS, "default": DEFAULT_BUCKETS},
                ),
            ],
            "responses": {
                "200": json_response(
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
}
