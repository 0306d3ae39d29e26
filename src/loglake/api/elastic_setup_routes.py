"""The Elasticsearch calls shippers make before they send (api/elastic_routes.py takes the bulks): the version
document at `/`, the license, X-Pack and cluster health, the setup of templates, policies and pipelines, and an
index's own calls. loglake keeps no indices (a bulk's index is its records' default log_type), so these are
answered as Elasticsearch would answer them for a cluster that needs nothing set up."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from loglake import __version__
from loglake.api.elastic_routes import ERROR_TYPES, PRODUCT, ElasticError, answer, checked_parameters
from loglake.api.http import ApiError, Request
from loglake.api.routes import Result
from loglake.api.ui_routes import ui_home
from loglake.protocols import elastic, elastic_params
from loglake.protocols.elastic_index_names import INVALID_INDEX_NAME, invalid_index_name

if TYPE_CHECKING:
    from loglake.api.app import LoglakeApp

SETUP_KINDS = tuple(elastic_params.SETUP_PARAMS)


# -- the version document and the calls made before sending ---------------------------------------


async def root(app: LoglakeApp, request: Request) -> Result:
    """Elasticsearch's version document (what shippers check on connecting); a browser goes to the web UI."""
    if "text/html" in request.header(b"accept"):  # its query goes along (a shared link's view, ui_home)
        return Result(302, b"", ((b"location", ui_home(request)), (b"content-type", b"text/plain")))
    if request.header(b"authorization"):
        # Credentials sent are checked, as Elasticsearch checks them here: GET / and HEAD / are the connection
        # check of Beats, Logstash and the clients' info() and ping(), and a wrong password must fail it, not
        # every bulk after it. (None sent: the version document, for a look with curl; the bulk asks for a key.)
        if request.body is None:
            request.body = b""  # (a SigV4 signature covers the body: a GET's is empty)
        app.auth.authenticate(request)
    pretty = checked_parameters(request, elastic_params.INFO_PARAMS)
    return answer(
        {
            "name": "loglake",
            "cluster_name": "loglake",
            "version": {
                "number": elastic.VERSION,
                "build_flavor": "default",
                "build_type": "loglake",
                "build_snapshot": False,
                "minimum_wire_compatibility_version": "8.0.0",
                "minimum_index_compatibility_version": "8.0.0",
            },
            "tagline": "loglake speaks the Elasticsearch bulk API for log shippers",
            "loglake": {"version": __version__},
            "docs": "/docs",
            "openapi": "/openapi.json",
        },
        pretty,
    )


async def license_info(app: LoglakeApp, request: Request) -> Result:
    """Logstash and Beats read the license to decide which features to use: a basic one, active."""
    pretty = checked_parameters(request, elastic_params.LICENSE_PARAMS)
    return answer({"license": {"status": "active", "type": "basic", "mode": "basic", "uid": "loglake"}}, pretty)


async def xpack_info(app: LoglakeApp, request: Request) -> Result:
    """Logstash asks whether index lifecycle management is there (ilm_enabled => auto): it is not."""
    pretty = checked_parameters(request, elastic_params.XPACK_PARAMS)
    return answer(
        {
            "build": {"hash": "loglake", "date": ""},
            "license": {"status": "active", "type": "basic", "mode": "basic", "uid": "loglake"},
            "features": {"ilm": {"available": False, "enabled": False}},
        },
        pretty,
    )


async def cluster_health(app: LoglakeApp, request: Request) -> Result:
    """Vector's health check: green while storage takes writes, red when it does not."""
    pretty = checked_parameters(request, elastic_params.CLUSTER_HEALTH_PARAMS)
    return answer(
        {
            "cluster_name": "loglake",
            "status": "green" if app.storage_error is None else "red",
            "timed_out": False,
            "number_of_nodes": 1,
            "number_of_data_nodes": 1,
        },
        pretty,
    )


async def cat_health(app: LoglakeApp, request: Request) -> Result:
    """rsyslog's health check (before it sends; its check failed on a 404): the cat API's line of the cluster's
    health, `status` as cluster_health's; its columns' names first with `v`, a JSON list of it with `format=json`."""
    pretty = checked_parameters(request, elastic_params.CAT_PARAMS)
    now = int(app.service.now_ms() // 1000)
    status = "green" if app.storage_error is None else "red"
    row = {"epoch": str(now), "timestamp": time.strftime("%H:%M:%S", time.gmtime(now)), "cluster": "loglake"}
    row |= {"status": status, "node.total": "1", "node.data": "1", "shards": "0", "pri": "0", "relo": "0"}
    row |= {"init": "0", "unassign": "0", "pending_tasks": "0", "max_task_wait_time": "-"}
    row |= {"active_shards_percent": "100.0%"}
    if request.query.get("format") == "json":
        return answer([row], pretty)
    lines = [" ".join(row), " ".join(row.values())] if "v" in request.query else [" ".join(row.values())]
    return Result(200, "".join(line + "\n" for line in lines).encode(), (_TEXT, PRODUCT))


_TEXT = (b"content-type", b"text/plain; charset=UTF-8")


async def refresh(app: LoglakeApp, request: Request, index: str | None = None) -> Result:
    """A refresh of every index or of one (the official clients' `helpers.bulk(refreshOnCompletion)` asks it once
    its documents are stored; a 404 made pino-elasticsearch's stream fail at its end): a record is searchable once
    its 201 is sent, so there is nothing to do."""
    pretty = checked_parameters(request, elastic_params.REFRESH_PARAMS)
    return answer({"_shards": {"total": 1, "successful": 1, "failed": 0}}, pretty)


async def setup_exists(app: LoglakeApp, request: Request, name: str) -> Result:
    """An index template, lifecycle policy or ingest pipeline (Beats and Logstash install them before
    sending unless told not to): each "exists", so they install nothing; loglake needs none. GET answers in the
    shape Elasticsearch gives that kind, an empty one (a script reading `index_templates` met a KeyError)."""
    kind = _setup_kind(request, name)
    taken, _ = elastic_params.SETUP_PARAMS[kind]
    return answer(_EXISTING[kind](name), checked_parameters(request, taken))


# What Elasticsearch answers a GET of each kind with, the thing itself empty.
_EXISTING: dict[str, Callable[[str], dict[str, Any]]] = {
    "_index_template": lambda name: {
        "index_templates": [{"name": name, "index_template": {"index_patterns": [], "composed_of": []}}]
    },
    "_template": lambda name: {name: {"order": 0, "index_patterns": [], "settings": {}, "mappings": {}, "aliases": {}}},
    "_component_template": lambda name: {
        "component_templates": [{"name": name, "component_template": {"template": {}}}]
    },
    "_ilm/policy": lambda name: {name: {"version": 1, "policy": {"phases": {}}}},
    "_ingest/pipeline": lambda name: {name: {"processors": []}},
}


async def setup_put(app: LoglakeApp, request: Request, name: str) -> Result:
    """Installing a template, policy or pipeline: acknowledged and ignored, loglake needs none."""
    _, taken = elastic_params.SETUP_PARAMS[_setup_kind(request, name)]
    return answer({"acknowledged": True}, checked_parameters(request, taken))


def _setup_kind(request: Request, name: str) -> str:
    """The SETUP_KINDS path of `/{kind}/{name}`."""
    return request.path[1 : -len(name) - 1]


# -- an index's own calls: loglake keeps no indices (a bulk's index is its records' default log_type) ---------


async def index_get(app: LoglakeApp, request: Request, index: str) -> Result:
    """`GET /{index}`, and `HEAD /{index}` (`indices.exists`): no index exists, as loglake keeps none, so the answer
    is Elasticsearch's 404 for a missing index. A script that creates its index when it is missing then calls
    `PUT /{index}`, which is acknowledged, and goes on; a mistyped loglake path (`GET /logz`) is not told that
    some index exists."""
    _index_call(request, index, elastic_params.INDEX_GET_PARAMS)
    reason = f"no such index [{index}]: {_NO_INDICES}{app.router.did_you_mean(request.path)}"
    raise ElasticError(404, "index_not_found_exception", reason, headers=[PRODUCT])


async def index_create(app: LoglakeApp, request: Request, index: str) -> Result:
    """`PUT /{index}` (`indices.create`): acknowledged and ignored, as installing a template is; refused with 400
    when Elasticsearch would refuse to create an index of that name (`Bad Name`)."""
    pretty = _index_call(request, index, elastic_params.INDEX_CREATE_PARAMS)
    if why := invalid_index_name(index):
        raise ElasticError(400, INVALID_INDEX_NAME, why, headers=[PRODUCT])
    return answer({"acknowledged": True, "shards_acknowledged": True, "index": index}, pretty)


async def index_refused(app: LoglakeApp, request: Request, index: str) -> Result:
    """`DELETE /{index}` (and `POST /{index}`, which Elasticsearch does not serve either): refused with 405, as
    Elasticsearch refuses a method an index does not take; acknowledging a delete would say records went that
    did not."""
    if request.method == "DELETE":
        _index_call(request, index, elastic_params.INDEX_DELETE_PARAMS)
        reason = f"loglake does not delete indices ({_NO_INDICES}); records leave once older than retention_days"
    else:
        _index_call(request, index, frozenset(request.query))  # any parameter: the method is what is wrong
        reason = f"Incorrect HTTP method for uri [{request.path}] and method [{request.method}], allowed: [{_ALLOW}]"
        reason += app.router.did_you_mean(request.path)  # (`POST /log`: loglake's own POST /logs was meant)
    raise ElasticError(405, ERROR_TYPES[405], reason, headers=[PRODUCT, (b"allow", _ALLOW.encode())])


# An index's calls: method, handler (HEAD is GET's, whose body the server drops).
INDEX_ROUTES = (("GET", index_get), ("PUT", index_create), ("DELETE", index_refused), ("POST", index_refused))
_NO_INDICES = "loglake keeps no indices: a bulk into one stores its records with the index's name as their log_type"
_ALLOW = "GET, HEAD, PUT"


def _index_call(request: Request, index: str, known: frozenset[str]) -> bool:
    """Whether to pretty-print the answer to a call on an index (its parameters checked); a 404 for the paths of
    APIs loglake does not serve (`/_nodes`), which `/{index}` would take too."""
    if index.startswith("_"):
        raise ApiError(404, "not_found", f"no route {request.path}; see /docs")
    return checked_parameters(request, known)
