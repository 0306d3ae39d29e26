"""The OpenAPI entries of what the web UI uses beyond the rest of the API: sessions (api/session_routes.py)
the facets of a search and the live tail."""

from __future__ import annotations

from typing import Any

from loglake.api.auth import CSRF_HEADER, SESSION_COOKIE
from loglake.api.openapi_common import error_response, json_response, query
from loglake.config import REQUEST_UNIT
from loglake.lake.reads import FACET_SAMPLE
from loglake.service import DEFAULT_FACETS, MAX_FACETS

SECURITY_SCHEMES = {
    "session": {
        "type": "apiKey",
        "in": "cookie",
        "name": SESSION_COOKIE,
        "description": "the web UI's session from POST /session; a request other than GET or HEAD must also send "
        f"the header {CSRF_HEADER.decode()} with the session's csrf_token",
    }
}
SESSION = {
    "type": "object",
    "required": ["key_name", "scopes", "csrf_token", "expires_at"],
    "properties": {
        "key_name": {"type": "string", "description": "the key signed in with"},
        "scopes": {"type": "array", "items": {"type": "string"}},
        "rate_limit": {
            "type": "number",
            "description": f"the key's requests per second (its own, else the server's; a request counts "
            f"{REQUEST_UNIT}); absent without auth",
        },
        "rate_burst": {"type": "integer", "description": "the key's burst: requests it may make at once"},
        "csrf_token": {
            "type": "string",
            "description": f"send as {CSRF_HEADER.decode()} with every request that changes something "
            "(empty when the server runs without auth)",
        },
        "expires_at": {"type": ["string", "null"], "format": "date-time"},
        "ask": {
            "type": "object",
            "description": "whether questions can be asked (POST /ask): configured, with provider and model, "
            "or how to configure a language model",
        },
    },
}
_SESSION_ANSWER = json_response(SESSION, "the session")
_COUNTS = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["value", "count"],
        "properties": {"value": {"type": "string"}, "count": {"type": "integer"}},
    },
    "description": "most common first",
}
FACETS = {
    "type": "object",
    "required": ["service", "severity", "log_type", "attribute_keys", "attribute_keys_sampled"],
    "properties": {
        "service": _COUNTS,
        "severity": _COUNTS,
        "log_type": _COUNTS,
        "attribute_keys": {**_COUNTS, "description": "top-level attribute keys, counted in the sampled records"},
        "attribute_keys_sampled": {
            "type": "integer",
            "description": f"how many of the matching records (at most {FACET_SAMPLE:,}) attribute_keys counts",
        },
    },
}


def paths(filters: list[dict]) -> dict[str, Any]:
    """The entries; `filters` are the query parameters /logs/search shares with /logs/recent."""
    return {**PATHS, "/logs/facets": _facets(filters), "/logs/tail": _tail(filters)}


def _tail(filters: list[dict]) -> dict:
    return {
        "get": {
            "summary": "Live tail: each new record matching the search, as server-sent events",
            "description": "`event: record` carries a record as /logs/search shows it, as soon as it is acknowledged, "
            'whatever its timestamp; `event: dropped` with `{"count": n}` says n records were not sent because the '
            "client read too slowly; a comment every 15 s keeps the stream open; `event: end` says the server is "
            "stopping; `event: error` ends a tail whose search failed, whose key was revoked or whose browser session "
            "ended (within a second). "
            "A key holds at most max_tails_per_key tails.",
            "parameters": [
                query("q", "the search, as for /logs/search"),
                *(f for f in filters if f["name"] not in ("since", "until")),
            ],
            "responses": {
                "200": {
                    "description": "the event stream",
                    "content": {"text/event-stream": {"schema": {"type": "string"}}},
                },
                "429": error_response("The key holds its limit of live tails (or its rate limit)"),
                "501": error_response("This deployment keeps no arrivals (poll /logs/search)"),
                "503": error_response("The server is stopping: retry once it is back (Retry-After)"),
            },
        }
    }


def _facets(filters: list[dict]) -> dict:
    limit = {"type": "integer", "minimum": 1, "maximum": MAX_FACETS, "default": DEFAULT_FACETS}
    return {
        "get": {
            "summary": "The top services, severities, log types and attribute keys of a search's records, with counts",
            "parameters": [
                query("q", "the search, as for /logs/search"),
                *filters,
                query("limit", "values per facet", limit),
            ],
            "responses": {"200": json_response(FACETS, "the facets")},
        }
    }


PATHS: dict[str, Any] = {
    "/session": {
        "post": {
            "summary": "Sign in to the web UI: exchange an API key for a session cookie (HttpOnly, SameSite=Strict)",
            "description": "Sent as JSON, answered with the session. Sent as the sign-in form "
            "(application/x-www-form-urlencoded, field `key`, optional `next`: the UI page to return to, a path "
            "under /ui/), answered 303 to that page (else /ui/), or to /login?error=...&next=... saying why the key "
            "was refused. The session lasts the server's session_hours.",
            "security": [],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {"type": "object", "required": ["key"], "properties": {"key": {"type": "string"}}}
                    },
                    "application/x-www-form-urlencoded": {
                        "schema": {
                            "type": "object",
                            "required": ["key"],
                            "properties": {"key": {"type": "string"}, "next": {"type": "string"}},
                        }
                    },
                },
            },
            "responses": {
                "200": _SESSION_ANSWER,
                "303": {"description": "the form's answer: to `next` (else /ui/) if signed in, else /login?error=..."},
                "400": error_response("No key sent, or a query parameter: it takes none"),
                "401": error_response("The key is invalid or revoked"),
                "413": error_response("The body is larger than a sign-in needs"),
                "415": error_response("Neither JSON nor the form"),
                "429": error_response("The key's rate limit"),
            },
        },
        "get": {
            "summary": "The session of the cookie: its key, scopes, CSRF token and expiry",
            "security": [],
            "responses": {
                "200": _SESSION_ANSWER,
                "400": error_response("A query parameter: it takes none"),
                "401": error_response("Not signed in, or the session is over"),
            },
        },
        "delete": {
            "summary": "Sign out: end the session and clear the cookie (with the session's X-CSRF-Token)",
            "security": [],
            "responses": {
                "204": {"description": "signed out (also when the session was already over)"},
                "400": error_response("A query parameter: it takes none"),
                "403": error_response("A live session's sign-out without its CSRF token"),
            },
        },
    },
}
