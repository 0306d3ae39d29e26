"""The OpenAPI description of the Elasticsearch endpoints (api/elastic_routes.py, elastic_setup_routes.py): the
bulk API, single documents, index calls and what shippers ask before sending (api/openapi.py joins it to the
others)."""

from __future__ import annotations

from loglake.api.elastic_routes import BULK_TYPES, DOCUMENT_ROUTES, VENDOR_TYPES, index_document
from loglake.api.elastic_setup_routes import SETUP_KINDS
from loglake.protocols import elastic

# What these endpoints answer besides success, in Elasticsearch's form (auth and rate limits included, which
# is why openapi.py adds none of the common errors to them); tests/api/test_protocol_statuses.py provokes each.
_ES_ERROR = {"description": "An error in Elasticsearch's form: {error: {root_cause, type, reason}, status}"}
_KEY_ERRORS = {status: _ES_ERROR for status in ("401", "403", "429")}
_BULK_ERRORS = _KEY_ERRORS | {
    "400": _ES_ERROR | {"description": f"Not a bulk request, or a parameter it lacks. {_ES_ERROR['description']}"},
    "406": _ES_ERROR | {"description": f"A Content-Type other than (x-)ndjson or json. {_ES_ERROR['description']}"},
    "413": _ES_ERROR | {"description": f"The body is too large. {_ES_ERROR['description']}"},
    "415": _ES_ERROR | {"description": f"A Content-Encoding other than gzip. {_ES_ERROR['description']}"},
}
_FILTER_PATH = {
    "name": "filter_path",
    "in": "query",
    "required": False,
    "description": "The parts of the answer to give, as Elasticsearch's filter_path: top-level keys and "
    "`items.*.<field>` (Beats and Logstash send `errors,items.*.error,items.*.status`); other forms get the whole",
    "schema": {"type": "string"},
}
_PRETTY = {
    "name": "pretty",
    "in": "query",
    "required": False,
    "description": "The answer printed as Elasticsearch prints it (`?pretty` alone, or true). Elasticsearch's other "
    "bulk parameters (refresh, pipeline, routing, timeout, wait_for_active_shards...) are taken and change "
    "nothing here; any other is refused with 400, as Elasticsearch refuses it",
    "schema": {"type": "string", "enum": ["", "true", "false"]},
}
_BULK = {
    "summary": "Elasticsearch bulk ingest: NDJSON action/source pairs (create and index), gzip accepted; "
    "each item answered on its own, stored items are durable. Bearer, Basic (the key as password), "
    "ApiKey or SigV4; ingest scope",
    "parameters": [_FILTER_PATH, _PRETTY],
    # Filebeat sends application/json, the 8.x and 9.x clients their vendor type (with `compatible-with=N`).
    "requestBody": {
        "required": True,
        "content": {kind: {"schema": {"type": "string"}} for kind in (*sorted(BULK_TYPES - {""}), *VENDOR_TYPES)},
    },
    "responses": {
        "200": {
            "description": "{errors, took, items: [{create|index: {_index, _id, status, error?}}]}: an item that "
            "cannot be stored fails alone, with 400 (the document, or an index name Elasticsearch refuses), 409 (a "
            "create of an _id stored before) or 503 (storage cannot take writes; retry it); an index of an _id stored "
            "before is answered 200, result noop"
        }
    },
}
_DOCUMENT = {
    "summary": "Elasticsearch's single-document index/create: one JSON document, stored as a bulk of one action "
    "(the same mapping); durable once answered. Bearer, Basic (the key as password), ApiKey or SigV4; ingest scope",
    "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}},
    "responses": {
        "201": {"description": '{_index, _id, _version, result: "created", _shards, _seq_no, _primary_term}'},
        "200": {"description": 'An index of an _id stored before: kept as it was, result "noop"'},
    },
}
_DOCUMENT_ERRORS = _BULK_ERRORS | {
    "400": _ES_ERROR
    | {
        "description": "No document, one that cannot be stored, or a query parameter the API does not take. "
        f"{_ES_ERROR['description']}"
    },
    "409": _ES_ERROR | {"description": f"A create of an _id stored before. {_ES_ERROR['description']}"},
    "503": _ES_ERROR
    | {
        "description": "Storage cannot take writes, or the server holds as many bodies as it may; retry. "
        f"{_ES_ERROR['description']}"
    },
}
_PROBE = {"responses": {"200": {"description": "what the shippers check before sending"}}}
# What a setup call sends (a template, a policy, an index's settings): read, and ignored.
_IGNORED_BODY = {"required": False, "content": {"application/json": {"schema": {"type": "object"}}}}
_TOO_LARGE = {"413": _BULK_ERRORS["413"]}
# What the endpoints besides bulk answer for a query parameter Elasticsearch does not document for their API.
_PARAMETER_ERROR = {
    "400": _ES_ERROR
    | {"description": f"A query parameter Elasticsearch does not take here. {_ES_ERROR['description']}"}
}
_SETUP = {
    "get": {
        "summary": "Reported as existing, so Beats and Logstash install nothing (ingest scope)",
        "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
        "responses": {"200": {"description": "{}"}},
    },
    "put": {
        "summary": "Acknowledged and ignored (ingest scope)",
        "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
        "requestBody": _IGNORED_BODY,
        "responses": {"200": {"description": '{"acknowledged": true}'}, **_TOO_LARGE},
    },
}
_INDEX = [{"name": "index", "in": "path", "required": True, "schema": {"type": "string"}}]
_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
_OP_TYPE = {
    "name": "op_type",
    "in": "query",
    "description": "create: answered 409 if the id was stored before, as a create is",
    "schema": {"type": "string", "enum": list(elastic.ADDING_ACTIONS), "default": "index"},
}


_PROBE_ERRORS = _KEY_ERRORS | _PARAMETER_ERROR


def _with_errors(operation: dict, errors: dict) -> dict:
    return operation | {"responses": errors | operation["responses"]}


OPENAPI_PATHS: dict[str, dict] = {
    "/": {
        method: {
            "summary": summary,
            # No credentials needed; credentials sent are checked, as Elasticsearch checks them (api/openapi.py
            # adds the forms they are taken in after the empty requirement that makes them optional).
            "security": [{}],
            "responses": {
                "200": {"description": answer},
                "302": {"description": "/ui/"},
                "401": _ES_ERROR | {"description": f"Credentials sent and not valid. {_ES_ERROR['description']}"},
                **_PARAMETER_ERROR,
            },
        }
        for method, summary, answer in (
            (
                "get",
                "Elasticsearch's version document (what shippers check on connecting); "
                "with Accept: text/html a redirect to the web UI",
                "{name, version: {number}, tagline}",
            ),
            (
                "head",
                "The connection check of Beats, Logstash and the clients' ping(): GET / without its body",
                "no body",
            ),
        )
    },
    "/_bulk": {"post": _with_errors(_BULK, _BULK_ERRORS), "put": _with_errors(_BULK, _BULK_ERRORS)},
    "/{index}/_bulk": {
        method: _with_errors(
            _BULK
            | {
                "parameters": [*_INDEX, _FILTER_PATH, _PRETTY],
                "summary": f"{_BULK['summary']}; the index is the default log_type",
            },
            _BULK_ERRORS,
        )
        for method in ("post", "put")
    },
    **{
        template: {
            method.lower(): _with_errors(
                _DOCUMENT
                | {
                    "parameters": _INDEX
                    + ([_ID] if "{id}" in template else [])
                    + ([_OP_TYPE] if handler is index_document else [])
                },
                _DOCUMENT_ERRORS,
            )
            for method in methods
        }
        for template, handler, methods in DOCUMENT_ROUTES
    },
    "/_license": {
        "get": _with_errors(_PROBE | {"summary": "A basic license, active (Logstash, Beats)"}, _PROBE_ERRORS)
    },
    "/_xpack": {"get": _with_errors(_PROBE | {"summary": "No index lifecycle management (Logstash)"}, _PROBE_ERRORS)},
    "/_cluster/health": {
        "get": _with_errors(_PROBE | {"summary": "green while storage takes writes (Vector)"}, _PROBE_ERRORS)
    },
    **{
        path: {
            method: _with_errors(
                _PROBE
                | {"summary": "Acknowledged: a record is searchable once stored (the clients' bulk helper)"}
                | ({"parameters": _INDEX} if "{index}" in path else {}),
                _PROBE_ERRORS,
            )
            for method in ("get", "post")
        }
        for path in ("/_refresh", "/{index}/_refresh")
    },
    "/_cat/health": {
        "get": _with_errors(
            _PROBE | {"summary": "The same as the cat API's text line (`format=json`: a JSON list) (rsyslog)"},
            _PROBE_ERRORS,
        )
    },
    **{f"/{kind}/{{name}}": {m: _with_errors(op, _PROBE_ERRORS) for m, op in _SETUP.items()} for kind in SETUP_KINDS},
    "/{index}": {
        "get": _with_errors(
            {
                "summary": "An index (HEAD: `indices.exists`): loglake keeps none, so none exists, though a bulk into "
                "any is taken (ingest scope)",
                "parameters": _INDEX,
                "responses": {
                    "404": _ES_ERROR
                    | {"description": f"index_not_found_exception, whatever the name. {_ES_ERROR['description']}"}
                },
            },
            _PROBE_ERRORS,
        ),
        "put": _with_errors(
            {
                "summary": "Creating an index: acknowledged and ignored (ingest scope); a name Elasticsearch refuses "
                '(capitals, spaces, \\ / * ? " < > | , # :, a leading _ - +) is its 400 invalid_index_name_exception',
                "parameters": _INDEX,
                "requestBody": _IGNORED_BODY,
                "responses": {
                    "200": {"description": '{"acknowledged": true, "shards_acknowledged": true, index}'},
                    **_TOO_LARGE,
                },
            },
            _PROBE_ERRORS,
        ),
        **{
            method: _with_errors(
                {
                    "summary": summary,
                    "parameters": _INDEX,
                    "responses": {"405": _ES_ERROR | {"description": f"Refused. {_ES_ERROR['description']}"}},
                },
                errors,
            )
            for method, summary, errors in (
                (
                    "delete",
                    "Deleting an index: refused, loglake keeps none (records leave by retention_days)",
                    _PROBE_ERRORS,
                ),
                (
                    "post",
                    "Not an Elasticsearch API: refused as Elasticsearch refuses it, whatever its parameters",
                    _KEY_ERRORS,
                ),
            )
        },
    },
}
