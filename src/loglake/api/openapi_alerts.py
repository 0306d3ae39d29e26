"""The OpenAPI description of the alert endpoints: the list, one alert, acknowledge and resolve; and the
schemas of an alert."""

from __future__ import annotations

from loglake.alerts.db import ALERT_STATUSES
from loglake.alerts.store import DEFAULT_PAGE_LIMIT as DEFAULT_ALERT_PAGE
from loglake.alerts.store import MAX_NOTE_CHARS, TRANSITIONS
from loglake.alerts.store import MAX_PAGE_LIMIT as MAX_ALERT_PAGE
from loglake.api.openapi_common import TIME, error_response, json_request, json_response, query, ref
from loglake.rules.model import LEVELS

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
        ref("AlertSummary"),
        {
            "type": "object",
            "properties": {
                "evidence": {
                    "type": "array",
                    "items": {"type": "object"},
                    "description": "up to the rule's `evidence` matching records (their ids and fields; `attributes` "
                    "an object)",
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
        "description": "the alert's id, or a part of it (its start, its end, 4 digits) that no other alert's id holds",
        "schema": {"type": "string", "pattern": "^[0-9a-fA-F-]{1,36}$"},
    }
]
_COUNTS = {"type": "object", "additionalProperties": {"type": "integer"}}
ALERT_PAGE = {
    "type": "object",
    "required": ["count", "alerts", "next_cursor", "counts"],
    "properties": {
        "count": {"type": "integer"},
        "alerts": {"type": "array", "items": ref("AlertSummary")},
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
            "requestBody": json_request(
                {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"note": {"type": ["string", "null"], "maxLength": MAX_NOTE_CHARS}},
                },
                required=False,
            ),
            "responses": {
                "200": json_response(ref("Alert"), f"The alert, now {becomes}"),
                "400": error_response("A bad note, or a part of several alerts' ids (ambiguous_alert_id)"),
                "404": error_response("No such alert"),
                "409": error_response(f"The alert's status does not allow it (it is already {becomes}, ...)"),
                "501": error_response("This deployment keeps no alerts"),
            },
        }
    }


ALERT_PATHS = {
    "/alerts": {
        "get": {
            "summary": "Alerts, newest first, with their counts per status and level (read scope)",
            "description": "Lists leave out each alert's evidence and query: GET /alerts/{alertId} has them.",
            "parameters": [
                query("status", f"one or more, comma-separated: {', '.join(ALERT_STATUSES)}"),
                query("level", f"one or more, comma-separated: {', '.join(LEVELS)}"),
                query(
                    "rule",
                    "a rule's id, the start of one that no other loaded rule's id starts with, or its file's name",
                ),
                query("since", f"alerts with a match at or after it (last_seen): {TIME}"),
                query("q", "text in the title, the rule's title or the dedup key (ASCII letters in any case)"),
                query(
                    "limit",
                    f"1-{MAX_ALERT_PAGE}, default {DEFAULT_ALERT_PAGE}",
                    {"type": "integer", "minimum": 1, "maximum": MAX_ALERT_PAGE, "default": DEFAULT_ALERT_PAGE},
                ),
                query("cursor", "next_cursor of the previous page"),
            ],
            "responses": {
                "200": json_response(ALERT_PAGE, "A page of alerts"),
                "400": error_response("A bad filter (invalid_query), or the start of several rules' ids"),
                "404": error_response("`rule` names no loaded rule (a whole id is taken as it is)"),
                "501": error_response("This deployment keeps no alerts"),
            },
        }
    },
    "/alerts/{alertId}": {
        "get": {
            "summary": "One alert with its evidence and the query that found it (read scope)",
            "parameters": ALERT_ID,
            "responses": {
                "200": json_response(ref("Alert"), "The alert"),
                "400": error_response(
                    "A query parameter: it takes none; or a part of several alerts' ids (ambiguous_alert_id)"
                ),
                "404": error_response("No such alert"),
                "501": error_response("This deployment keeps no alerts"),
            },
        }
    },
    "/alerts/{alertId}/acknowledge": _status_change("Acknowledge", "acknowledged"),
    "/alerts/{alertId}/resolve": _status_change("Resolve", "resolved"),
}
