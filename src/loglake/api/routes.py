"""Route handlers of records: each turns a Request into (status, payload) by calling LogService or the lake;
and what the other routes share (Result, reading a body, counting refusals, parameter errors). SQL is in
sql_routes.py, health and metrics in operation_routes.py, the Amplify routes in amplify_routes.py, the key admin
routes in key_routes.py."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass
from operator import itemgetter
from typing import TYPE_CHECKING, Any, TypeVar

import pyarrow as pa
import pyarrow.compute as pc

from loglake.api.http import (
    JSON_HEADERS,
    ApiError,
    Request,
    decode_content,
    json_object,
    quoted,
    storage_unavailable,
)
from loglake.api.joined_checks import JOIN_BELOW_BYTES
from loglake.config import JSON_BODY_BYTES
from loglake.follow import FollowQuery, follow, follow_query
from loglake.ids import format_uuid, parse_uuid, timestamp_of
from loglake.ingest import MAX_DETAILS, InvalidBody, ParsedBody
from loglake.lake.query import QueryError
from loglake.lake.query_answers import LakeUnreadable, QueryBusy
from loglake.model import (
    RECORD_FIELDS,
    SEVERITY_ALIASES,
    InvalidRecords,
    NewRecord,
    Problem,
    record_to_dict,
)
from loglake.recent_params import InvalidQuery
from loglake.service import RecentPage
from loglake.spelling import unknown_parameter
from loglake.store.base import StoreUnavailable
from loglake.times import format_datetime

if TYPE_CHECKING:
    from loglake.api.app import LoglakeApp
    from loglake.config import Settings

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


# Not frozen: a frozen dataclass sets each field through object.__setattr__ (0.36 against 0.12 us), and every
# request makes one.
@dataclass(slots=True)
class Result:
    status: int
    payload: Any
    headers: tuple[tuple[bytes, bytes], ...] = ()


# -- logs --------------------------------------------------------------------------------------


async def ingest(app: LoglakeApp, request: Request) -> Result:
    refuse_parameters(request, "POST /logs")
    try:
        ndjson = _records_media_type(request)
        if ndjson and app.service.lake is not None and joinable(request):
            body = decode_content(request, request.body, app.settings.max_body_bytes)  # (a BOM dropped)
            parsed, counts = await app.run_joined(app.ndjson_checks, body)
        else:
            parsed, counts = await checked_body(app, request, lambda body: _checked(app, body, ndjson))
    except InvalidBody as e:
        count_refused_body(app, e.code)
        raise ApiError(413 if e.too_large else 400, e.code, str(e), e.details) from None
    except InvalidRecords as e:
        raise _refused(app, request, e) from None
    except ApiError as e:
        if e.code in _REFUSED_BODIES:  # (the HTTP toolkit's refusals are counted by the app, HTTP_BODY_REFUSALS)
            count_refused_body(app, e.code)
        raise
    log_ids = await store(app, parsed, counts)
    if wants_minimal_answer(request):
        return Result(201, {"count": parsed.count})
    if parsed.table is not None:
        return Result(201, _bulk_answer(parsed.table.column("log_id")), _JSON)
    # Records whose client id was stored already (by an earlier request or earlier in this one) are stored once,
    # and answered the stored record's id: said, since what they held this time was not stored (a new-user trial
    # sent an id again with another message and was told nothing).
    assert parsed.records is not None  # (not a bulk table: that answered above)
    duplicates = len(stored_before(parsed.records, log_ids))
    if parsed.single:
        ts = timestamp_of(log_ids[0])  # a retried client id answers the stored record's time
        answer = {"logId": format_uuid(log_ids[0]), "timestamp": ts, "datetime": format_datetime(ts)}
        return Result(201, answer | ({"duplicate": True} if duplicates else {}))
    answer = {"count": len(log_ids), "logIds": [format_uuid(i) for i in log_ids]}
    return Result(201, answer | ({"duplicates": duplicates} if duplicates else {}))


def wants_minimal_answer(request: Request) -> bool:
    """`Prefer: return=minimal` (RFC 7240): the count alone, not every record's id. A client that reads a
    few KiB of an answer (Fluent Bit's http output: 4 KiB) failed on a big batch's ids, and sent the stored
    batch again."""
    prefer = request.headers.get(b"prefer")
    if prefer is None:  # (the usual request: nothing more on the path of every single record)
        return False
    return "return=minimal" in (part.strip() for part in prefer.decode("latin-1").lower().split(","))


async def store(app: LoglakeApp, parsed: ParsedBody, counts: dict[tuple[str, int], int]) -> list[bytes]:
    """Write checked records durably, as every ingest route does: the stored ids (none for a bulk
    table, whose ids are its `log_id` column) once they are on disk; ApiError 503 when storage cannot
    take them. `counts` (ingest_counts) go to the metrics once they are stored."""
    try:
        if parsed.table is not None:
            await app.service.write_table(parsed.table)
            app.storage_accepted()  # (a hot store commit says so in on_commit; a bulk batch commits no rows)
            log_ids = []
        else:
            assert parsed.records is not None
            log_ids = await app.service.write(parsed.records)
            counts = _without(counts, stored_before(parsed.records, log_ids))
    except StoreUnavailable as e:
        app.storage_refused(e)
        app.metrics.rejected.inc(("storage_unavailable",), parsed.count)
        if app.runtime.self_events is not None:
            app.runtime.self_events.storage_unavailable(parsed.count)
        raise storage_unavailable(str(e)) from None
    app.metrics.count_ingested(counts)
    return log_ids


def stored_before(records: list[NewRecord], log_ids: list[bytes]) -> list[NewRecord]:
    """The records whose client id was stored before (by an earlier request or earlier in this one): the store
    answered the stored record's id for each (`log_ids`, as app.service.write answers) and stored nothing."""
    return [record for record, stored in zip(records, log_ids, strict=True) if stored != record.log_id]


def _without(counts: dict[tuple[str, int], int], duplicates: list[NewRecord]) -> dict[tuple[str, int], int]:
    """ingest_counts less records stored before: stored once, they are counted once, when first stored."""
    if not duplicates:
        return counts
    left = dict(counts)
    for key in map(_SERVICE_AND_SEVERITY, duplicates):
        left[key] -= 1
    return {key: count for key, count in left.items() if count}


Checked = tuple[ParsedBody, dict[tuple[str, int], int]]


def _checked(app: LoglakeApp, body: bytes, ndjson: bool) -> Checked:
    """The body's valid records (LogService.parse) and ingest_counts of them."""
    if not body or body.isspace():  # (not strip(): that copies a body of megabytes)
        raise ApiError(400, "empty_body", "the body is empty; send a record object, an array or NDJSON lines")
    # (a job besides this one, a body waiting beside it for the joining thread too: the bodies then take turns on
    # the GIL, see ingest_arrow)
    parsed = app.service.parse(body, ndjson, contended=app.ingest_jobs > 1)
    return parsed, ingest_counts(parsed)


def checked_ndjson(app: LoglakeApp, body: bytes) -> Checked:
    """_checked of an NDJSON body, as app.ndjson_checks checks one alone."""
    return _checked(app, body, True)


def checked_ndjson_joined(app: LoglakeApp, bodies: list[bytes]) -> list[Checked] | None:
    """_checked of each NDJSON body, checked together (LogService.parse_joined); None when they are not."""
    tables = app.service.parse_joined(bodies)
    if tables is None:
        return None
    return [(parsed, ingest_counts(parsed)) for parsed in (ParsedBody(False, table=table) for table in tables)]


def ingest_counts(parsed: ParsedBody) -> dict[tuple[str, int], int]:
    """How many checked records per (service, severity), for the metrics once they are stored: counted
    where the check runs (a bulk batch's off the event loop)."""
    if parsed.table is not None:
        return _table_counts(parsed.table)
    assert parsed.records is not None
    return _by_service_and_severity(parsed.records)


_JSON = tuple(JSON_HEADERS)


def _bulk_answer(log_ids: pa.ChunkedArray) -> bytes:
    """A bulk batch's answer, {"count": N, "logIds": [...]} as send_json writes it, joined by Arrow
    without a Python string per id (a quarter of the time; UUID text needs no JSON escaping)."""
    ids = log_ids.combine_chunks()
    listed = pa.ListArray.from_arrays(pa.array([0, len(ids)], pa.int32()), ids)
    joined = pc.binary_join(listed, '","')[0].as_buffer()
    return b'{"count":%d,"logIds":["%b"]}\n' % (len(ids), joined)


def _table_counts(table: pa.Table) -> dict[tuple[str, int], int]:
    """A bulk batch's records per (service, severity), as metrics.count_ingested takes them."""
    counts = table.group_by(["service", "severity"], use_threads=False).aggregate([([], "count_all")]).to_pylist()
    return {(c["service"], SEVERITY_ALIASES[c["severity"]]): c["count_all"] for c in counts}


_SERVICE_AND_SEVERITY = itemgetter(2, 4)
# Bodies from this size are checked on the ingest threads: a batch of thousands of records takes
# milliseconds, which on the event loop would hold up every other request.
OFF_LOOP_BODY_BYTES = 256 * 1024
T = TypeVar("T")
# A compressed body from this size is inflated there too: log records inflate 5-10 times, and inflating
# gives up the GIL and waits to take it back after each piece (an OTLP export's 250 KiB of gzip: ~1 ms of
# work that held up the event loop for several, with ingest threads running).
OFF_LOOP_COMPRESSED_BYTES = OFF_LOOP_BODY_BYTES // 8


async def checked_body(app: LoglakeApp, request: Request, check: Callable[[bytes], T]) -> T:
    """check(body) of the request's body with its Content-Encoding undone (http.decode_content, whose ApiError
    it raises): on the event loop for a small body, else on the ingest threads (see OFF_LOOP_BODY_BYTES)."""
    limit = app.settings.max_body_bytes
    if inflated_off_loop(request) or len(request.body) >= OFF_LOOP_BODY_BYTES:
        return await app.run_ingest(lambda: check(decode_content(request, request.body, limit)))
    body = decode_content(request, request.body, limit)
    return check(body) if len(body) < OFF_LOOP_BODY_BYTES else await app.run_ingest(check, body)


def joinable(request: Request) -> bool:
    """Whether the request's body is checked with those waiting beside it (joined_checks): one of the ingest
    threads' size, under JOIN_BELOW_BYTES, as sent (a compressed body's size says little of what it inflates to,
    and it is inflated on the ingest threads: checked as before)."""
    return OFF_LOOP_BODY_BYTES <= len(request.body) < JOIN_BELOW_BYTES and b"content-encoding" not in request.headers


def inflated_off_loop(request: Request) -> bool:
    """Whether the request's body is compressed and big enough to be inflated off the event loop (see
    OFF_LOOP_COMPRESSED_BYTES)."""
    return b"content-encoding" in request.headers and len(request.body) >= OFF_LOOP_COMPRESSED_BYTES


async def decoded_by_worker(
    app: LoglakeApp, protocol: str, decode: Callable[..., Any], body: bytes, *args: Any, **limits: Any
) -> Any:
    """decode(body, *args), a protocol's entry point for the decode workers, run by one when they take the body
    (decode_workers.DecodeWorkers.submit: `limits` its gzip and min_bytes), and what it answered; None: decode the
    body in the server's process, as before. Counted by where it was decoded."""
    decoding = app.decode_workers.submit(decode, body, *args, **limits)
    decoded = None
    if decoding is not None:
        # (its outcome, an error too, is result()'s; a worker that does not answer in time is given up on)
        waiting = asyncio.wrap_future(decoding)
        waiting.add_done_callback(_failure_read)
        done, _ = await asyncio.wait([waiting], timeout=app.decode_workers.most_seconds)
        if done:
            decoded = app.decode_workers.result(decoding)
        else:
            waiting.cancel()  # (no longer waited for)
            app.decode_workers.gave_up_on(decoding)
    app.metrics.bodies_decoded.inc((protocol, "server" if decoded is None else "worker"))
    return decoded


def _failure_read(waited: asyncio.Future) -> None:
    """The event loop's copy of a worker's outcome: result() reads the worker's own future, so a failure here is
    nobody's to read; unread, it would be an error line ('exception was never retrieved') when collected."""
    if not waited.cancelled():
        waited.exception()


def _by_service_and_severity(records: list[NewRecord]) -> dict[tuple[str, int], int]:
    if len(records) == 1:  # a request's single record: building a Counter cost more than the rest of counting
        return {_SERVICE_AND_SEVERITY(records[0]): 1}
    return Counter(map(_SERVICE_AND_SEVERITY, records))


def _refused(app: LoglakeApp, request: Request, error: InvalidRecords) -> ApiError:
    """The 400 naming every problem (up to MAX_DETAILS); each refused record counted once, by its first problem."""
    count_refused(app, request, error.problems, NATIVE)
    details = [p.as_dict() for p in error.problems[:MAX_DETAILS]]
    if len(error.problems) > MAX_DETAILS:
        details.append({"index": -1, "field": "", "reason": f"... and {len(error.problems) - MAX_DETAILS} more"})
    return ApiError(400, "invalid_records", str(error), details)


def count_refused_body(app: LoglakeApp, code: str) -> None:
    """Count a request body refused as a whole (it is not the protocol's request, or it holds too many records),
    by the error code that says why: each ingest route counts its own refusals so, whatever the protocol."""
    app.metrics.rejected_bodies.inc((code,))


NATIVE = "native"  # POST /logs, as loglake's own events name its protocol beside the shipper protocols
# POST /logs's own refusals of a body as a whole, besides InvalidBody's.
_REFUSED_BODIES = frozenset({"empty_body", "unsupported_media_type"})
# The refusals of a body as a whole that the HTTP toolkit makes before a route reads it (http.read_body and
# decode_content: too large, not gzip, another encoding; the app's body budget: no room for it), whatever the route.
HTTP_BODY_REFUSALS = frozenset({"payload_too_large", "bad_gzip", "unsupported_encoding", "server_busy"})


def count_if_body_refused(app: LoglakeApp, error: ApiError) -> None:
    """count_refused_body for an error of the HTTP toolkit that refuses the body (HTTP_BODY_REFUSALS)."""
    if error.code in HTTP_BODY_REFUSALS:
        count_refused_body(app, error.code)


def count_refused(app: LoglakeApp, request: Request, problems: list[Problem], protocol: str) -> None:
    """Count each refused record once in the metrics (and loglake's own events, with the protocol, the request's
    key and the first problem's reason), by its first problem."""
    first_problem: dict[int, Problem] = {}
    for problem in problems:
        first_problem.setdefault(problem.index, problem)
    events = app.runtime.self_events
    key = None if request.principal is None else request.principal.name
    for problem in first_problem.values():
        field = _rejection_reason(problem.field)
        app.metrics.rejected.inc((field,))
        if events is not None:
            events.rejected(field, protocol, key, problem.reason)


def _rejection_reason(field: str) -> str:
    """The metric label of a refused record: a record field, or `unknown_field` for the names of
    fields the model does not have (clients choose those: as labels they would grow /metrics without
    bound), or `record` for the record as a whole (no JSON, JSON too deep, not an object: it was
    `not_an_object` for all three, which a new user took for what was wrong with invalid JSON)."""
    if not field:
        return "record"
    return field if field in RECORD_FIELDS else "unknown_field"


def json_media_type(request: Request) -> str:
    """The body's media type, lowercase, without its parameters; 415 when it names a charset other than UTF-8 (JSON
    is UTF-8, RFC 8259: a Latin-1 body was read as UTF-8 and refused as "not valid JSON in UTF-8")."""
    media_type, _, parameters = request.header(b"content-type").partition(";")
    charset = _CHARSET.search(parameters)
    if charset is not None and charset[1].strip('"').lower() not in _UTF8_NAMES:
        raise ApiError(
            415,
            "unsupported_media_type",
            f"charset {charset[1]} is not accepted: JSON is UTF-8; send the body in UTF-8 (charset=utf-8, or none)",
        )
    return media_type.strip().lower()


_CHARSET = re.compile(r"(?i)\bcharset\s*=\s*(\"[^\"]*\"|[^;\s]*)")
_UTF8_NAMES = frozenset({"utf-8", "utf8", "us-ascii"})  # (ASCII is UTF-8)


def _records_media_type(request: Request) -> bool:
    """True for NDJSON, False for JSON; 415 for anything else."""
    content_type = json_media_type(request)
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
    wanted = client_errors(follow_query)(request.query, app.service.now_ms())
    if wanted is not None:
        return await _follow(app, wanted)
    query = client_errors(app.service.recent_query)(request.query)
    return _page_result(await app.run_read(client_errors(app.service.recent), query))


async def _follow(app: LoglakeApp, wanted: FollowQuery) -> Result:
    arrivals = app.service.arrivals
    if arrivals is None:
        raise ApiError(
            501,
            "not_available",
            "following by arrival needs the server that takes the records (loglake serve); this deployment's "
            "store is written by many processes: poll GET /logs/recent with since instead",
        )
    page = await app.run_read(client_errors(follow), app.service, arrivals, wanted)
    logs = [record_to_dict(r) for r in page.records]
    return Result(
        200,
        {
            "count": len(logs),
            "logs": logs,
            "next_cursor": page.next_cursor,
            "follow_cursor": page.follow_cursor,
            "more": page.more,
            "gap": page.gap,
        },
    )


async def get_log(app: LoglakeApp, request: Request, log_id: str) -> Result:
    refuse_parameters(request, "GET /logs/{logId}")
    record = await app.run_read(client_errors(app.service.get), log_id)
    if record is None:
        try:
            parse_uuid(log_id)
        except ValueError:  # names no record: a 404 (DESIGN.md section 4), saying why
            raise ApiError(
                404,
                "not_found",
                f"no log with id {quoted(log_id)}: it is not a log id ({len(log_id)} characters); log ids are"
                f" UUIDs, 36 characters (a logId, or the id its client sent){app.router.did_you_mean(request.path)}",
            ) from None
        raise ApiError(404, "not_found", f"no log with id {quoted(log_id)}")
    return Result(200, record_to_dict(record))


def refuse_parameters(request: Request, route: str, known: Collection[str] = ()) -> None:
    """A route refuses a query parameter it does not take (`known`; none: any), as the service's queries refuse
    one (InvalidQuery): a misspelt one quietly ignored would answer what was not asked. 400 invalid_query
    naming each."""
    query = request.query
    if not query:  # most requests (every POST /logs asks): nothing to look through
        return
    unknown = [name for name in query if name not in known]
    if unknown:
        reasons = [
            unknown_parameter(name, sorted(known)) if known else f"unknown parameter; {route} takes none"
            for name in unknown
        ]
        raise invalid_query(InvalidQuery([Problem(-1, n, r) for n, r in zip(unknown, reasons, strict=True)]))


def bad_parameter(name: str, reason: str) -> ApiError:
    """The 400 invalid_query of a query parameter whose value cannot be used, as invalid_query names one."""
    return invalid_query(InvalidQuery([Problem(-1, name, reason)]))


async def search(app: LoglakeApp, request: Request) -> Result:
    return _page_result(
        await app.run_search(client_errors(lambda stop: app.service.search(request.query, stop)), request)
    )


async def histogram(app: LoglakeApp, request: Request) -> Result:
    return Result(
        200, await app.run_search(client_errors(lambda stop: app.service.histogram(request.query, stop)), request)
    )


async def facets(app: LoglakeApp, request: Request) -> Result:
    return Result(
        200, await app.run_search(client_errors(lambda stop: app.service.facets(request.query, stop)), request)
    )


def _page_result(page: RecentPage) -> Result:
    logs = [record_to_dict(r) for r in page.records]
    return Result(200, {"count": len(logs), "logs": logs, "next_cursor": page.next_cursor})


def client_errors(fn: Any) -> Any:
    """Run a service call; its InvalidQuery, QueryError and QueryBusy become 400s (503) naming the problem."""

    def run(*args: Any) -> Any:
        try:
            return fn(*args)
        except InvalidQuery as e:
            raise invalid_query(e) from None
        except (QueryError, QueryBusy) as e:
            raise query_error(e) from None

    return run


def invalid_query(error: InvalidQuery) -> ApiError:
    """A 400 naming each parameter at fault and why (details: one per problem)."""
    return ApiError(400, "invalid_query", str(error), [p.as_dict() | {"index": None} for p in error.problems])


def query_error(error: QueryError | QueryBusy) -> ApiError:
    if isinstance(error, LakeUnreadable):  # the storage's, not the server's load: no Retry-After, its message says
        return ApiError(503, "lake_unreadable", str(error))  # what to do (a damaged file does not come back)
    if isinstance(error, QueryBusy):
        return ApiError(503, "busy", f"{error}; retry shortly", headers=[(b"retry-after", b"1")])
    details = [{"field": error.field, "reason": error.message}] if error.field else None
    return ApiError(400, error.code, error.message, details)


def json_body_limit(settings: Settings) -> int:
    """The bytes a JSON API request's body may hold (config.JSON_BODY_BYTES, the route table's body_limit of those
    routes)."""
    return min(settings.max_body_bytes, JSON_BODY_BYTES)


def json_body(app: LoglakeApp, request: Request, example: str) -> dict:
    """The body as one JSON object: 415 if it is not sent as JSON, 400 (with `example`) if it is not one, 413 past
    json_body_limit once inflated."""
    return json_request_object(request, json_body_limit(app.settings), example)


def json_request_object(request: Request, max_bytes: int, example: str) -> dict:
    """json_body for a request read without the app (the AWS query function's): `max_bytes` once inflated."""
    content_type = json_media_type(request)
    if content_type not in JSON_TYPES:
        raise ApiError(
            415,
            "unsupported_media_type",
            f"Content-Type {content_type!r} is not accepted here; send one JSON object as application/json "
            "(with curl: -H 'Content-Type: application/json')",
        )
    return json_object(decode_content(request, request.body, max_bytes), example)
