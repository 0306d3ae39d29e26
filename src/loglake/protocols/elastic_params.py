"""The query parameters of the Elasticsearch APIs loglake serves (bulk, the single-document APIs, the version
document and the calls shippers make before sending), checked as Elasticsearch checks them, and its `pretty`
form of an answer. Pure, no I/O.

Elasticsearch refuses a parameter an API does not document (400 illegal_argument_exception, "request
[/_bulk] contains unrecognized parameter: [foo]", with the known ones a name is close to), so a shipper
misconfigured against loglake hears of it as it would from Elasticsearch. The documented ones are taken;
loglake needs none of them but filter_path, pretty and format (a single node has no shards to wait for, no
refresh to make, no pipelines, routing or aliases; a stored record is durable and readable at once).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

from loglake.spelling import alike

# Elasticsearch 9's bulk API (its REST API specification, bulk.json, and the API reference), and the
# parameters every Elasticsearch API takes.
BULK_PARAMS = frozenset(
    {
        "include_source_on_error",
        "list_executed_pipelines",
        "pipeline",
        "refresh",
        "require_alias",
        "require_data_stream",
        "routing",
        "_source",
        "_source_excludes",
        "_source_includes",
        "timeout",
        "wait_for_active_shards",
    }
)
COMMON_PARAMS = frozenset({"error_trace", "filter_path", "format", "human", "pretty"})
# The other APIs, from Elasticsearch 9's REST API specification (as its official Python client 9.x sends them).
# What shippers send on connecting is among them: Beats `GET /_license?human=false` (a 400 there would make
# it fall back to the OSS license), Vector `GET /_cluster/health`, the clients and Logstash `GET /` bare.
INFO_PARAMS: frozenset[str] = frozenset()  # GET / (and HEAD /)
LICENSE_PARAMS = frozenset({"accept_enterprise", "local"})
XPACK_PARAMS = frozenset({"accept_enterprise", "categories"})
CLUSTER_HEALTH_PARAMS = frozenset(
    {
        "expand_wildcards",
        "level",
        "local",
        "master_timeout",
        "timeout",
        "wait_for_active_shards",
        "wait_for_events",
        "wait_for_no_initializing_shards",
        "wait_for_no_relocating_shards",
        "wait_for_nodes",
        "wait_for_status",
    }
)
REFRESH_PARAMS = frozenset({"allow_no_indices", "expand_wildcards", "ignore_unavailable"})
CAT_PARAMS = frozenset({"format", "h", "help", "local", "master_timeout", "s", "time", "ts", "v"})  # the cat APIs'
# The index API (`/{index}/_doc`), and the create API (`/{index}/_create/{id}`), which takes the same but op_type.
INDEX_PARAMS = frozenset(
    {
        "if_primary_term",
        "if_seq_no",
        "include_source_on_error",
        "op_type",
        "pipeline",
        "refresh",
        "require_alias",
        "require_data_stream",
        "routing",
        "timeout",
        "version",
        "version_type",
        "wait_for_active_shards",
    }
)
CREATE_PARAMS = INDEX_PARAMS - {"op_type"}
# An index's own APIs, `/{index}`: get (GET, and HEAD: exists), create (PUT) and delete (DELETE).
INDEX_GET_PARAMS = frozenset(
    {
        "allow_no_indices",
        "expand_wildcards",
        "features",
        "flat_settings",
        "ignore_unavailable",
        "include_defaults",
        "local",
        "master_timeout",
    }
)
INDEX_CREATE_PARAMS = frozenset({"master_timeout", "timeout", "wait_for_active_shards"})
INDEX_DELETE_PARAMS = frozenset(
    {"allow_no_indices", "expand_wildcards", "ignore_unavailable", "master_timeout", "timeout"}
)
# What Beats and Logstash install before sending, by path: the parameters of its GET (and HEAD), and of its PUT.
SETUP_PARAMS = {
    "_index_template": (
        frozenset({"flat_settings", "include_defaults", "local", "master_timeout"}),
        frozenset({"cause", "create", "master_timeout"}),
    ),
    "_template": (
        frozenset({"flat_settings", "local", "master_timeout"}),
        frozenset({"cause", "create", "master_timeout", "order"}),
    ),
    "_component_template": (
        frozenset({"flat_settings", "include_defaults", "local", "master_timeout", "settings_filter"}),
        frozenset({"cause", "create", "master_timeout"}),
    ),
    "_ilm/policy": (frozenset({"master_timeout", "timeout"}), frozenset({"master_timeout", "timeout"})),
    "_ingest/pipeline": (
        frozenset({"master_timeout", "summary"}),
        frozenset({"if_version", "master_timeout", "timeout"}),
    ),
}


class RefusedParameter(ValueError):
    """A request's query parameter Elasticsearch would refuse: its message is Elasticsearch's reason."""


def check(path: str, query: Mapping[str, str], known: frozenset[str]) -> bool:
    """Whether the answer is to be pretty-printed; RefusedParameter when a parameter is not among `known` and
    COMMON_PARAMS, when `pretty` is neither true nor false, or `format` asks for other than JSON."""
    unknown = sorted(query.keys() - known - COMMON_PARAMS)
    if unknown:
        raise RefusedParameter(unrecognized(path, unknown, known | COMMON_PARAMS))
    if query.get("format", "json").lower() not in ("json", ""):
        raise RefusedParameter(f"format [{query['format']}]: loglake answers in JSON only (format=json, or none)")
    pretty = query.get("pretty", "false")
    if pretty not in ("", "true", "false"):  # a bare ?pretty means true, as in Elasticsearch
        raise RefusedParameter(f"Failed to parse value [{pretty}] as only [true] or [false] are allowed.")
    return pretty != "false"


def unrecognized(path: str, names: list[str], candidates: Iterable[str]) -> str:
    """Elasticsearch's reason for unknown parameters (`names`, sorted): each followed by the candidates more
    than half alike (Lucene's Levenshtein similarity, as Elasticsearch ranks them), the likest first."""
    described = []
    for name in names:
        close = alike(name, candidates)
        if not close:
            described.append(f"[{name}]")
        else:
            any_of = "any of " if len(close) > 1 else ""
            described.append(f"[{name}] -> did you mean {any_of}[{', '.join(close)}]?")
    plural = "s" if len(names) > 1 else ""
    return f"request [{path}] contains unrecognized parameter{plural}: {', '.join(described)}"


def pretty(answer: bytes | dict[str, Any]) -> bytes:
    """A JSON answer as Elasticsearch pretty-prints it (Jackson's printer: two spaces a level, `"key" : value`,
    `[ ]` and `{ }` when empty, a newline at the end)."""
    value = msgspec.json.decode(answer) if isinstance(answer, bytes) else answer
    return (_pretty(value, "\n") + "\n").encode()


def _pretty(value: Any, newline: str) -> str:
    inner = newline + "  "
    if type(value) is dict:
        fields = [f"{msgspec.json.encode(key).decode()} : {_pretty(item, inner)}" for key, item in value.items()]
        return "{" + inner + ("," + inner).join(fields) + newline + "}" if fields else "{ }"
    if type(value) is list:
        items = [_pretty(item, inner) for item in value]
        return "[" + inner + ("," + inner).join(items) + newline + "]" if items else "[ ]"
    return msgspec.json.encode(value).decode()
