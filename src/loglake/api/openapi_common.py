"""The pieces the OpenAPI description (api/openapi.py and the openapi_* modules) is built of: references,
responses, query parameters, and the schemas and filters many operations share."""

from __future__ import annotations

from loglake.config import JSON_BODY_SIZE
from loglake.ingest import MAX_DETAILS
from loglake.model import DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT, NAME_PATTERN, SEVERITY_NAMES
from loglake.times import FORMS


def ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def json_response(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def json_request(schema: dict, required: bool = True) -> dict:
    """A request body of JSON: `required` False for an operation that takes none as well."""
    return {"required": required, "content": {"application/json": {"schema": schema}}}


def error_response(description: str) -> dict:
    """A response whose body is loglake's error (ERROR, the components' Error)."""
    return json_response(ref("Error"), description)


ERROR = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "details": {
                    "type": "array",
                    "items": {"type": "object"},
                    "description": "each problem: index (of the record; -1 for none, as a query parameter's), field,"
                    f" reason; at most {MAX_DETAILS}, then one with index -1 saying how many more",
                },
            },
        }
    },
}
ERRORS = {
    "400": error_response("Invalid input; details name each problem"),
    "401": error_response("Missing, invalid or revoked credentials"),
    "403": error_response("The key lacks the needed scope"),
    "429": error_response("Rate limited; see Retry-After"),
}


TOO_LARGE = error_response(
    f"The body is larger than the route takes, after gzip decompression (max_body_bytes; {JSON_BODY_SIZE} for the "
    "JSON APIs)"
)
NOT_JSON = error_response("A body that is not application/json")


def query(name: str, description: str, schema: dict | None = None) -> dict:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema or {"type": "string"},
    }


SEVERITY = {"type": "string", "enum": list(SEVERITY_NAMES)}
NAME = {"type": "string", "pattern": f"^{NAME_PATTERN.pattern}$"}
PAGE_LIMIT = query(
    "limit",
    f"1-{MAX_PAGE_LIMIT}, default {DEFAULT_PAGE_LIMIT}",
    {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_LIMIT, "default": DEFAULT_PAGE_LIMIT},
)
TIME = FORMS
FILTERS = [
    query("service", "exact service name", NAME),
    query("log_type", "exact log type", NAME),
    query("severity", "one or more severities, comma-separated"),
    query("min_severity", "this severity or worse", SEVERITY),
    query("since", f"inclusive start: {TIME}"),
    query("until", f"exclusive end: {TIME}"),
]
