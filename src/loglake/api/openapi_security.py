"""The OpenAPI description of how a caller authenticates (api/auth.py takes the key in each of these forms on every
route that needs one): the security schemes, the document's default, and each shipper endpoint's own list, its
clients' forms first, so /docs and generated clients (and their "Authorize" dialogs) can send what Promtail,
Beats, Logstash, Fluent Bit, Vector, the Elasticsearch clients and HEC clients send."""

from __future__ import annotations

from typing import Any

from loglake.api.openapi_ui import SECURITY_SCHEMES as UI_SCHEMES

SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    "bearer": {"type": "http", "scheme": "bearer", "description": "`Authorization: Bearer <api key>`"},
    "basic": {
        "type": "http",
        "scheme": "basic",
        "description": "HTTP Basic with the API key as the password and any user name (Promtail, Grafana Alloy, "
        "Fluent Bit, Beats, Logstash, Vector)",
    },
    "elasticApiKey": {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": "`ApiKey <api key>`, or `ApiKey base64(id:api key)` with any id, as Elasticsearch clients, "
        "Beats and Logstash send an API key",
    },
    "splunk": {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": "`Splunk <api key>`, as Splunk HTTP Event Collector clients send their token",
    },
    "sigv4": {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": "AWS4-HMAC-SHA256 with a key pair from `loglake keys create --sigv4`",
    },
    **UI_SCHEMES,
}
_KEY_FORMS = ("bearer", "basic", "elasticApiKey", "splunk", "sigv4")


def _first(*forms: str) -> list[dict[str, list]]:
    """Every form a key is taken in (any of them will do), these first."""
    return [{form: []} for form in (*forms, *(f for f in _KEY_FORMS if f not in forms))]


# The document's default: every form, ours first; the web UI's session cookie last.
DEFAULT = [*_first("bearer"), {"session": []}]
OTLP = _first("bearer", "basic")  # exporters' headers (Bearer); the Collector's basicauth extension
LOKI = _first("basic", "bearer")  # Promtail, Alloy and Fluent Bit's basic_auth; bearer_token
ELASTIC = _first("basic", "elasticApiKey", "bearer")  # Beats, Logstash, Vector; the clients' api_key
SPLUNK = _first("splunk")


def apply(paths: dict[str, dict[str, Any]], security: list[dict[str, list]]) -> dict[str, dict[str, Any]]:
    """The paths with `security` on each operation: on those that need a key, and after the empty requirement
    (`[{}]`) of those where a key is optional, but checked when sent; a public one keeps its empty list."""
    return {
        path: {method: _secured(operation, security) for method, operation in operations.items()}
        for path, operations in paths.items()
    }


def _secured(operation: dict[str, Any], security: list[dict[str, list]]) -> dict[str, Any]:
    required = operation.get("security")
    if required == []:
        return operation
    return {**operation, "security": [*(required or []), *security]}
