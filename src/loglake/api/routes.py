"""Route handlers: each turns a Request into (status, payload) by calling LogService or the key store."""

from __future__ import annotations

import asyncio
from collections import Counter
from concurrent.futures import Future
from dataclasses import dataclass
from operator import itemgetter
from typing import TYPE_CHECKING, Any

import msgspec

from loglake import __version__
from loglake.amplify.collector import collection_status
from loglake.amplify.reports import UnknownReport, apps_with_rows, run_reports, unknown_app_message
from loglake.api.http import ApiError, Request, decode_content
from loglake.ids import format_uuid, timestamp_of
from loglake.ingest import MAX_DETAILS, InvalidBody
from loglake.keys import KeyStoreError, parse_scopes
from loglake.lake.query import QueryBusy, QueryError, result_to_dict
from loglake.model import InvalidRecords, format_datetime, record_to_dict
from loglake.service import InvalidQuery, RecentPage
from loglake.store.base import StoreUnavailable
from loglake.times import TimeFormatError, parse_time

if TYPE_CHECKING:
    from loglake.api.app import LoglakeApp

JSON_TYPES = frozenset({"", "application/json", "text/json"})
NDJSON_TYPES = frozenset(
    {
        "application/x-ndjson",
        "application/ndjson",
        "application/jsonl",
        "application/x-jsonlines",
        "application/jsonlines",
    }
)
_decoder = msgspec.json.Decoder()


@dataclass(frozen=True, slots=True)
class Result:
    status: int
    payload: Any
    headers: tuple[tuple[bytes, bytes], ...] = ()


# -- logs --------------------------------------------------------------------------------------


async def ingest(app: LoglakeApp, request: Request) -> Result:
    ndjson = _records_media_type(request)
    body = decode_content(request, request.body, app.settings.max_body_bytes)
    if not body.strip():
        raise ApiError(400, "empty_body", "the body is empty; send a record object, an array or NDJSON lines")
    try:
        records, single = app.service.parse(body, ndjson)
    except InvalidBody as e:
        app.metrics.rejected_bodies.inc((e.code,))
        raise ApiError(413 if e.too_large else 400, e.code, str(e), e.details) from None
    except InvalidRecords as e:
        raise _refused(app, e) from None
    try:
        log_ids = await _committed(app.service.submit(records))
    except StoreUnavailable as e:
        app.storage_error = str(e)
        app.metrics.rejected.inc(("storage_unavailable",), len(records))
        raise ApiError(503, "storage_unavailable", str(e), headers=[(b"retry-after", b"5")]) from None
    app.metrics.count_ingested(Counter(map(_SERVICE_AND_SEVERITY, records)))
    if single:
        ts = timestamp_of(log_ids[0])  # a retried client id answers the stored record's time
        return Result(201, {"logId": format_uuid(log_ids[0]), "timestamp": ts, "datetime": format_datetime(ts)})
    return Result(201, {"count": len(log_ids), "logIds": [format_uuid(i) for i in log_ids]})


_SERVICE_AND_SEVERITY = itemgetter(2, 4)


def _refused(app: LoglakeApp, error: InvalidRecords) -> ApiError:
    """The 400 naming every problem (up to MAX_DETAILS); each refused record counted once, by its first problem."""
    first_problem: dict[int, str] = {}
    for problem in error.problems:
        first_problem.setdefault(problem.index, problem.field or "not_an_object")
    for field in first_problem.values():
        app.metrics.rejected.inc((field,))
    details = [p.as_dict() for p in error.problems[:MAX_DETAILS]]
    if len(error.problems) > MAX_DETAILS:
        details.append({"index": -1, "field": "", "reason": f"... and {len(error.problems) - MAX_DETAILS} more"})
    return ApiError(400, "invalid_records", str(error), details)


def _committed(write: Future[list[bytes]]) -> asyncio.Future[list[bytes]]:
    """Await the store's thread-side future: a leaner bridge than asyncio.wrap_future, which
    costs a noticeable share of a single-record request."""
    loop = asyncio.get_running_loop()
    waiter = loop.create_future()
    write.add_done_callback(lambda done: loop.call_soon_threadsafe(_settle, waiter, done))
    return waiter


def _settle(waiter: asyncio.Future, done: Future) -> None:
    if waiter.cancelled():
        return
    error = done.exception()
    if error is not None:
        waiter.set_exception(error)
    else:
        waiter.set_result(done.result())


def _records_media_type(request: Request) -> bool:
    """True for NDJSON, False for JSON; 415 for anything else."""
    content_type = request.header(b"content-type").split(";", 1)[0].strip().lower()
    if content_type in NDJSON_TYPES:
        return True
    if content_type in JSON_TYPES:
        return False
    raise ApiError(
        415,
        "unsupported_media_type",
        f"Content-Type {content_type!r} is not accepted; send application/json or application/x-ndjson "
        "(with curl: -H 'Content-Type: application/json')",
    )


async def recent(app: LoglakeApp, request: Request) -> Result:
    query = _client_errors(app.service.recent_query)(request.query)
    return _page_result(await app.run_read(app.service.recent, query))


async def get_log(app: LoglakeApp, request: Request, log_id: str) -> Result:
    record = await app.run_read(_client_errors(app.service.get), log_id)
    if record is None:
        raise ApiError(404, "not_found", f"no log with id {log_id!r}")
    return Result(200, record_to_dict(record))


async def search(app: LoglakeApp, request: Request) -> Result:
    return _page_result(await app.run_read(_client_errors(app.service.search), request.query))


async def histogram(app: LoglakeApp, request: Request) -> Result:
    return Result(200, await app.run_read(_client_errors(app.service.histogram), request.query))


def _page_result(page: RecentPage) -> Result:
    logs = [record_to_dict(r) for r in page.records]
    return Result(200, {"count": len(logs), "logs": logs, "next_cursor": page.next_cursor})


def _client_errors(fn: Any) -> Any:
    """Run a service call; its InvalidQuery, QueryError and QueryBusy become 400s (503) naming the problem."""

    def run(*args: Any) -> Any:
        try:
            return fn(*args)
        except InvalidQuery as e:
            problems = [p.as_dict() | {"index": None} for p in e.problems]
            raise ApiError(400, "invalid_query", str(e), problems) from None
        except (QueryError, QueryBusy) as e:
            raise _query_error(e) from None

    return run


def _query_error(error: QueryError | QueryBusy) -> ApiError:
    if isinstance(error, QueryBusy):
        return ApiError(503, "busy", f"{error}; retry shortly", headers=[(b"retry-after", b"1")])
    return ApiError(400, error.code, error.message)


# -- SQL -----------------------------------------------------------------------------------------

QUERY_FIELDS = frozenset({"sql", "limit", "timeout_seconds", "explain"})


async def query(app: LoglakeApp, request: Request) -> Result:
    if app.lake is None:
        raise ApiError(501, "not_available", "SQL needs the lake, which this server's store does not have")
    spec = _json_object(app, request, '{"sql": "SELECT count(*) FROM logs", "limit": 100}')
    sql, limit, timeout, explain = query_spec(spec)
    engine = app.lake.engine
    try:
        result = await app.run_query(lambda: engine.query(sql, limit=limit, timeout_seconds=timeout, explain=explain))
    except (QueryError, QueryBusy) as e:
        app.metrics.queries.inc((e.code if isinstance(e, QueryError) else "busy",))
        raise _query_error(e) from None
    app.metrics.queries.inc(("ok",))
    return Result(200, result_to_dict(result))


def query_spec(spec: dict[str, Any]) -> tuple[str, int | None, float | None, bool]:
    """POST /query's fields (sql, limit, timeout_seconds, explain), checked: an ApiError 400 names the
    wrong one. The AWS query function checks its requests with it too."""
    unknown = spec.keys() - QUERY_FIELDS
    if unknown:
        raise ApiError(
            400,
            "invalid_request",
            f"unknown field(s) {', '.join(sorted(unknown))}; known: sql, limit, timeout_seconds, explain",
        )
    sql, limit, timeout = spec.get("sql"), spec.get("limit"), spec.get("timeout_seconds")
    if type(sql) is not str:
        raise ApiError(400, "invalid_request", 'send {"sql": "SELECT ..."}: sql must be a string')
    if limit is not None and (type(limit) is not int or limit < 0):
        raise ApiError(400, "invalid_request", "limit must be a non-negative integer")
    if timeout is not None and (type(timeout) not in (int, float) or not timeout > 0):
        raise ApiError(400, "invalid_request", "timeout_seconds must be a positive number")
    explain = spec.get("explain")
    if explain is None:
        explain = False
    if type(explain) is not bool:
        raise ApiError(400, "invalid_request", "explain must be true or false")
    return sql, limit, timeout, explain


async def tables(app: LoglakeApp, request: Request) -> Result:
    if app.lake is None:
        raise ApiError(501, "not_available", "tables need the lake, which this server's store does not have")
    return Result(200, {"tables": await app.run_read(app.lake.describe_tables)})


# -- Amplify access logs -----------------------------------------------------------------------

AMPLIFY_REPORT_PARAMS = frozenset({"app", "since", "until", "report"})


async def amplify_reports(app: LoglakeApp, request: Request) -> Result:
    """The saved reports on one app's traffic (loglake amplify report), for the UI."""
    if app.lake is None:
        raise ApiError(501, "not_available", "reports need the lake, which this server's store does not have")
    params = request.query
    unknown = params.keys() - AMPLIFY_REPORT_PARAMS
    if unknown:
        raise ApiError(400, "invalid_request", f"unknown parameter(s) {', '.join(sorted(unknown))}")
    if not params.get("app"):
        raise ApiError(400, "invalid_request", "app is required: the appName to report on")
    now_ms = int(app.service.clock() * 1000)
    bounds = {}
    for name, default in (("since", "7d"), ("until", "now")):
        try:
            bounds[name] = parse_time(params.get(name) or default, now_ms)
        except TimeFormatError as e:
            raise ApiError(400, "invalid_time", f"{name}: {e}") from None
    since, until = bounds["since"], bounds["until"]
    if until <= since:
        raise ApiError(400, "invalid_time", "until must be after since")
    names = [n.strip() for n in (params.get("report") or "").split(",") if n.strip()] or None
    known = await app.run_read(apps_with_rows, app.store.read)
    if params["app"] not in known:
        raise ApiError(404, "unknown_app", unknown_app_message(params["app"], known))
    engine = app.lake.engine
    try:
        reports = await app.run_query(lambda: run_reports(engine, params["app"], since, until, names))
    except UnknownReport as e:
        raise ApiError(400, "unknown_report", str(e)) from None
    except (QueryError, QueryBusy) as e:
        raise _query_error(e) from None
    return Result(
        200,
        {"app": params["app"], "since": format_datetime(since), "until": format_datetime(until), "reports": reports},
    )


async def amplify_status(app: LoglakeApp, request: Request) -> Result:
    """Each app's watermark, the last runs, and the schedule when this server collects."""

    def read() -> dict:
        marks, runs = collection_status(app.store, runs=10)
        return {
            "schedule": app.amplify.status() if app.amplify is not None else None,
            "apps": [{"app": name, "collected_until": format_datetime(until)} for name, until in marks],
            "runs": runs,
        }

    if app.lake is None:
        raise ApiError(
            501, "not_available", "the Amplify collector needs the lake, which this server's store does not have"
        )
    return Result(200, await app.run_read(read))


def _json_object(app: LoglakeApp, request: Request, example: str) -> dict:
    if _records_media_type(request):
        raise ApiError(415, "unsupported_media_type", "send application/json")
    try:
        spec = _decoder.decode(decode_content(request, request.body, app.settings.max_body_bytes) or b"null")
    except msgspec.DecodeError as e:
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {e}") from None
    if type(spec) is not dict:
        raise ApiError(400, "invalid_request", f"send a JSON object, e.g. {example}")
    return spec


# -- operations --------------------------------------------------------------------------------


async def index(app: LoglakeApp, request: Request) -> Result:
    return Result(200, {"name": "loglake", "version": __version__, "docs": "/docs", "openapi": "/openapi.json"})


async def healthz(app: LoglakeApp, request: Request) -> Result:
    writable = app.storage_error is None
    body = {
        "status": "ok" if writable else "degraded",
        "version": __version__,
        "store": {"writable": writable, "error": app.storage_error},
        "auth": app.auth.enabled,
    }
    if app.amplify is not None:
        body["amplify"] = app.amplify.status()
    if app.lake_jobs is not None:
        jobs = app.lake_jobs
        body["lake"] = {
            "maintenance_every_s": jobs.interval or None,
            "last_maintenance": format_datetime(jobs.last_run_ms) if jobs.last_run_ms else None,
            "error": jobs.last_error,
        }
    return Result(200 if writable else 503, body)


async def metrics(app: LoglakeApp, request: Request) -> Result:
    lake = await app.run_read(app.lake.state) if app.lake is not None else None
    return Result(200, app.metrics.render(lake), ((b"content-type", b"text/plain; version=0.0.4; charset=utf-8"),))


# -- admin: keys -------------------------------------------------------------------------------


async def list_keys(app: LoglakeApp, request: Request) -> Result:
    keys = await app.run_read(app.keystore.list, request.query.get("all") in ("1", "true"))
    return Result(200, {"keys": [k.as_dict() for k in keys]})


KEY_SPEC_FIELDS = frozenset({"name", "scopes", "sigv4", "rate_limit", "rate_burst"})


async def create_key(app: LoglakeApp, request: Request) -> Result:
    spec = _json_object(app, request, '{"name": "ci", "scopes": ["ingest"]}')
    if type(spec.get("name")) is not str:
        raise ApiError(400, "invalid_key_spec", 'send {"name": "...", "scopes": ["ingest", "read"], "sigv4": false}')
    unknown = spec.keys() - KEY_SPEC_FIELDS
    if unknown:
        raise ApiError(400, "invalid_key_spec", f"unknown field(s) {', '.join(sorted(unknown))}")
    scopes = spec.get("scopes", ["ingest"])
    if type(scopes) is str:
        scopes = [scopes]
    if type(scopes) is not list or not all(type(s) is str for s in scopes):
        raise ApiError(400, "invalid_key_spec", 'scopes must be a list of strings, e.g. ["ingest", "read"]')
    try:
        new = app.keystore.create(
            spec["name"],
            parse_scopes(",".join(scopes)),
            sigv4=bool(spec.get("sigv4", False)),
            rate_limit=_positive(spec.get("rate_limit"), "rate_limit"),
            rate_burst=_positive(spec.get("rate_burst"), "rate_burst"),
        )
    except KeyStoreError as e:
        raise ApiError(400, "invalid_key_spec", str(e)) from None
    body = new.key.as_dict() | {"secret": new.secret}
    if new.access_key_id:
        body["access_key_id"] = new.access_key_id
    return Result(201, body)


async def revoke_key(app: LoglakeApp, request: Request, name: str) -> Result:
    if name not in {k.name for k in app.keystore.list()}:
        raise ApiError(404, "not_found", f"no active key named {name!r}")
    try:
        app.keystore.revoke(name)
    except KeyStoreError as e:
        raise ApiError(409, "last_admin_key", str(e)) from None
    return Result(200, {"revoked": name})


def _positive(value: Any, name: str) -> Any:
    if value is None:
        return None
    if type(value) not in (int, float) or value <= 0:
        raise ApiError(400, "invalid_key_spec", f"{name} must be a positive number")
    return value
