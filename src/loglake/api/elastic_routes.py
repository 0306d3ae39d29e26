"""The Elasticsearch endpoints log shippers use: bulk ingest, the version document at `/`, and the few
calls Beats, Logstash, Fluent Bit, Vector and the official clients make before they send.

Every answer carries `X-Elastic-Product: Elasticsearch`: the official clients refuse a server without
it. Errors take Elasticsearch's form (`{"error": {"root_cause", "type", "reason"}, "status"}`), auth
failures included, so a shipper logs them as it would an Elasticsearch cluster's.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from operator import attrgetter
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from loglake.api.auth import Unauthorized
from loglake.api.http import JSON_HEADERS, ApiError, EncodedApiError, Request, decode_content, quoted
from loglake.api.joined_checks import JOIN_BELOW_BYTES
from loglake.api.routes import (
    OFF_LOOP_BODY_BYTES,
    Result,
    count_refused,
    count_refused_body,
    inflated_off_loop,
    ingest_counts,
    store,
)
from loglake.ids import format_uuid
from loglake.ingest import BULK_MIN_RECORDS, ParsedBody
from loglake.model import InvalidRecords, NewRecord, Problem
from loglake.protocols import columns, elastic, elastic_answers, elastic_columns, elastic_params
from loglake.protocols.columns import RecordColumns
from loglake.protocols.elastic_index_names import INVALID_INDEX_NAME, invalid_index_name

if TYPE_CHECKING:
    from loglake.api.app import LoglakeApp

PROTOCOL = "elasticsearch"
PRODUCT = (b"x-elastic-product", b"Elasticsearch")
_HEADERS = (PRODUCT,)
_JSON_HEADERS = (*JSON_HEADERS, PRODUCT)
# What the bulk API takes: JSON and NDJSON, and the versioned types of the 8.x and 9.x clients
# (application/vnd.elasticsearch+x-ndjson; compatible-with=9).
BULK_TYPES = frozenset({"", "application/json", "application/x-ndjson", "application/ndjson"})
VENDOR_TYPES = ("application/vnd.elasticsearch+json", "application/vnd.elasticsearch+x-ndjson")
# Elasticsearch's error type for each status an answer of ours can have.
ERROR_TYPES = {
    400: "illegal_argument_exception",
    401: "security_exception",
    403: "security_exception",
    404: "resource_not_found_exception",
    405: "illegal_argument_exception",
    406: "media_type_header_exception",
    413: "content_too_long_exception",
    415: "media_type_header_exception",
    429: "es_rejected_execution_exception",
    503: "unavailable_shards_exception",
}
# Index templates (and the legacy and component ones of Beats 7 and Logstash's older outputs), lifecycle policies
# and ingest pipelines: what Beats and Logstash install before sending.
# A bulk's body: larger than other routes' (Logstash batches up to 20 MiB, Elasticsearch takes 100 MB).
BULK_BODY_LIMIT = attrgetter("max_bulk_body_bytes")
_CHALLENGES = ((b"www-authenticate", b'Basic realm="loglake" charset="UTF-8"'), (b"www-authenticate", b"ApiKey"))


class ElasticError(ApiError):
    """An ApiError answered in Elasticsearch's form."""

    def body(self) -> dict[str, Any]:
        return elastic_answers.error_body(self.status, self.code, self.message)


def elastic_error(error: ApiError, request: Request) -> ApiError:
    """Any error of these endpoints (auth, rate limit, body) in Elasticsearch's form, with its headers;
    pretty-printed when the request asks (`?pretty`), as Elasticsearch prints its errors."""
    if not isinstance(error, ElasticError):
        headers = [*(_CHALLENGES if isinstance(error, Unauthorized) else error.headers), PRODUCT]
        error = ElasticError(error.status, ERROR_TYPES.get(error.status, "exception"), error.message, headers=headers)
    try:
        asks_pretty = request.query.get("pretty") in ("", "true")
    except ApiError:  # a parameter given twice: the error answered here, in the plain form
        asks_pretty = False
    return EncodedApiError(error, elastic_params.pretty(error.body()), b"application/json") if asks_pretty else error


def is_elasticsearch_path(path: str) -> bool:
    """An Elasticsearch API path (`/_nodes`, `/_data_stream/x`, `/{index}/_mapping`): its errors, a 404 for one
    loglake does not serve included, take Elasticsearch's form, which its clients read (a loglake-shaped
    answer makes the official ones report that the server is not Elasticsearch). No loglake path is one."""
    if "/_" not in path:  # loglake's own paths (every request asks): no segment starts with "_"
        return False
    segments = path.split("/", 3)
    return path.startswith("/_") or (len(segments) > 2 and segments[2].startswith("_"))


def answer(payload: Any, pretty: bool, status: int = 200) -> Result:
    if pretty:  # (a small answer: on the event loop)
        return Result(status, elastic_params.pretty(payload), _JSON_HEADERS)
    return Result(status, payload, _HEADERS)


def checked_parameters(request: Request, known: frozenset[str]) -> bool:
    """Whether the answer is to be pretty-printed; a 400 in Elasticsearch's words for a parameter it would refuse
    on this API (elastic_params.check)."""
    try:
        return elastic_params.check(request.path, request.query, known)
    except elastic_params.RefusedParameter as e:
        raise ElasticError(400, ERROR_TYPES[400], str(e), headers=[PRODUCT]) from None


# -- bulk --------------------------------------------------------------------------------------------


async def bulk(app: LoglakeApp, request: Request, path_index: str | None = None) -> Result:
    started = time.perf_counter()
    pretty = checked_parameters(request, elastic_params.BULK_PARAMS)
    _check_media_type(request, "application/x-ndjson")
    body = await _inflated(app, request, app.settings.max_bulk_body_bytes)
    items, tables = await _store_bulk(app, request, body, path_index)
    took_ms = int((time.perf_counter() - started) * 1000)
    keep = elastic_answers.answer_filter(request.query.get("filter_path", ""))
    # Every item stored as a checked table's row: Beats' answer is one entry repeated, made after a pass over the
    # items' actions, here as the route's other passes over them, with no hop to an ingest thread and back.
    answer = None if tables is None else elastic_answers.created_answer(items, took_ms, keep)
    if answer is None:
        ids = None if tables is None else _stored_ids(tables)
        if len(body) < OFF_LOOP_BODY_BYTES:
            answer = elastic_answers.bulk_answer(items, took_ms, keep, ids)
        else:  # an item a microsecond: for a big bulk, off the event loop too
            answer = await app.run_ingest(elastic_answers.bulk_answer, items, took_ms, keep, ids)
    if pretty:  # for a person reading it: Python's work per item, off the event loop
        answer = await app.run_ingest(elastic_params.pretty, answer)
    return Result(200, answer, _JSON_HEADERS)


async def index_document(app: LoglakeApp, request: Request, index: str, doc_id: str | None = None) -> Result:
    """`POST /{index}/_doc` and `PUT|POST /{index}/_doc/{id}`: what `es.index(...)` and Logstash send;
    `?op_type=create` makes it a create, as in Elasticsearch (`es.index(..., op_type="create")`)."""
    pretty = checked_parameters(request, elastic_params.INDEX_PARAMS)
    action = request.query.get("op_type", "index")
    if action not in elastic.ADDING_ACTIONS:
        message = f"opType must be 'create' or 'index', found: {quoted(action)}"
        raise ElasticError(400, ERROR_TYPES[400], message, headers=[PRODUCT])
    return await _one_document(app, request, action, index, doc_id, pretty)


async def create_document(app: LoglakeApp, request: Request, index: str, doc_id: str) -> Result:
    """`PUT|POST /{index}/_create/{id}`: what `es.create(...)` sends."""
    pretty = checked_parameters(request, elastic_params.CREATE_PARAMS)
    return await _one_document(app, request, "create", index, doc_id, pretty)


async def _one_document(
    app: LoglakeApp, request: Request, action: str, index: str, doc_id: str | None, pretty: bool
) -> Result:
    """One document, stored as a bulk of one action; answered as Elasticsearch answers it (201 and the
    document's _index and _id), or its item's failure as an error of the whole request."""
    _check_media_type(request, "application/json")
    body = await _inflated(app, request, app.settings.max_body_bytes)
    if not body or body.isspace():  # (not strip(): that copies a body of megabytes)
        raise ElasticError(400, "parse_exception", "request body is required: send the document as JSON")
    # (one record is checked record by record, never as a table: its item's doc_id is its _id)
    (item,), _ = await _store_bulk(app, request, elastic_answers.document_bulk(action, index, doc_id, body), index)
    if item.error is not None:
        error_type, reason = item.error
        raise ElasticError(item.status, error_type, reason, headers=[PRODUCT])
    return answer(elastic_answers.document_answer(item), pretty, item.status)


async def _inflated(app: LoglakeApp, request: Request, limit: int) -> bytes:
    """The request's body with its Content-Encoding undone (at most `limit` bytes): a big compressed one on an ingest
    thread, as every protocol's is (shippers may gzip their bulks: a big one takes milliseconds to inflate)."""
    if inflated_off_loop(request):
        return await app.run_ingest(lambda: decode_content(request, request.body, limit))
    return decode_content(request, request.body, limit)


# The single-document APIs: template, handler, methods (Elasticsearch takes PUT or POST where the id is given).
DOCUMENT_ROUTES = (
    ("/{index}/_doc", index_document, ("POST",)),
    ("/{index}/_doc/{id}", index_document, ("PUT", "POST")),
    ("/{index}/_create/{id}", create_document, ("PUT", "POST")),
)


async def _store_bulk(
    app: LoglakeApp, request: Request, body: bytes, path_index: str | None
) -> tuple[Sequence[elastic.BulkItem], list[pa.Table] | None]:
    """A bulk body's items once stored, each with its outcome (counted in the protocol's metrics), and, when every
    item was stored as a checked table's row (the usual bulk), those tables in the items' order, whose logIds are
    the items' `_id`s (_stored_ids; the items' doc_ids left unset); else None, and each item's doc_id is its
    `_id`."""
    try:
        if len(body) < OFF_LOOP_BODY_BYTES:
            items, groups = _parse(app, body, path_index)
        elif path_index is None and app.service.lake is not None and len(body) < JOIN_BELOW_BYTES:
            # (checked with the bulks waiting beside it: joined_checks)
            items, groups = await app.run_joined(app.bulk_checks, body)
        else:  # a big bulk takes milliseconds to check: off the event loop, which serves everyone else
            items, groups = await app.run_ingest(_parse, app, body, path_index)
    except ElasticError:  # (only a body that is no bulk request is refused whole)
        count_refused_body(app, "invalid_bulk")
        raise
    accepted = 0  # (every item not refused yet is in a group: counted by groups, not by a pass over the items)
    for stored, parsed, counts in groups:
        try:
            log_ids = await store(app, parsed, counts)
        except ApiError as e:  # storage refused this group: its items fail, as shards fail theirs
            for item in stored:
                item.refuse(e.message, ERROR_TYPES.get(e.status, "exception"), e.status)
            continue
        accepted += len(stored)
        if parsed.records is not None:  # (a table has no client ids, so no document stored before)
            accepted -= _answer_stored_before(stored, parsed.records, log_ids)
    refused = len(items) - accepted
    app.metrics.protocol_records.inc((PROTOCOL, "accepted"), accepted)
    if refused:
        app.metrics.protocol_records.inc((PROTOCOL, "rejected"), refused)
        invalid = [Problem(row, item.field, _reason(item)) for row, item in enumerate(items) if item.field is not None]
        count_refused(app, request, invalid, PROTOCOL)
    return items, _stored_tables(groups, every_item_stored=not refused)


def _reason(item: elastic.BulkItem) -> str:
    return "" if item.error is None else item.error[1]


def _stored_tables(groups: list[Group], every_item_stored: bool) -> list[pa.Table] | None:
    """The checked tables of the groups, in the items' order, when every item was stored as a table's row; else
    None, each item stored so given its record's logId as its doc_id, the answer's `_id`."""
    tables = [(stored, parsed.table) for stored, parsed, _ in groups if parsed.table is not None]
    if every_item_stored and len(tables) == len(groups):
        return [table for _, table in tables]
    for stored, table in tables:
        for item, log_id in zip(stored, table.column("log_id").to_pylist(), strict=True):
            if item.doc_id is None:
                item.doc_id = log_id
    return None


def _stored_ids(tables: list[pa.Table]) -> pa.StringArray:
    """The items' `_id`s in order, their records' logIds, of the tables every item was stored in (_stored_tables),
    which the answer joins with no Python object per id. (Only when the answer shows them: Beats' does not.)"""
    ids = [table.column("log_id").combine_chunks() for table in tables]
    return ids[0] if len(ids) == 1 else pa.concat_arrays(ids)


def _answer_stored_before(items: Sequence[elastic.BulkItem], records: list[NewRecord], log_ids: list[bytes]) -> int:
    """Items whose document id was stored before (the store answers the earlier record's id and stores nothing):
    a `create` conflicts, as in Elasticsearch; an `index` is kept as first stored (see the elastic module). How
    many were refused as conflicts."""
    conflicts = 0
    for item, record, log_id in zip(items, records, log_ids, strict=True):
        if log_id != record.log_id:
            if item.action == "create":
                item.refuse(elastic_answers.conflict_reason(item.doc_id), "version_conflict_engine_exception", 409)
                conflicts += 1
            else:
                item.status = elastic_answers.KEPT_STATUS
    return conflicts


Group = tuple[Sequence[elastic.BulkItem], ParsedBody, dict[tuple[str, int], int]]


def _parse(app: LoglakeApp, body: bytes, path_index: str | None) -> tuple[Sequence[elastic.BulkItem], list[Group]]:
    """The bulk's items, and its storable records checked as POST /logs checks records, in groups of at most
    max_records (a bulk holds as many actions as its size allows: Vector sends up to 10 MB); an item whose
    record fails the check is refused with the check's reasons."""
    try:
        items, found = elastic_columns.bulk_records(body, path_index)
    except elastic.BulkRefused as e:
        raise ElasticError(e.status, e.error_type, str(e), headers=[PRODUCT]) from None
    _refuse_invalid_indices(items)
    storable, limit = elastic.storable_of(items), app.service.limits.max_records
    parts = [elastic.part_of(storable, start, start + limit) for start in range(0, len(storable), limit)]
    groups = [_checked_group(app, part, found) for part in parts]
    return items, [group for group in groups if group is not None]


Parsed = tuple[Sequence[elastic.BulkItem], list[Group]]


def parsed_bulk(app: LoglakeApp, body: bytes) -> Parsed:
    """_parse of a bulk sent to /_bulk, as app.bulk_checks checks one alone."""
    return _parse(app, body, None)


def parsed_bulks(app: LoglakeApp, bodies: list[bytes]) -> list[Parsed] | None:
    """_parse of each bulk sent to /_bulk, read and checked as one (joined_checks): None unless each is a regular
    bulk (elastic_columns) of BULK_MIN_RECORDS to max_records documents (a table alone too), every one of which
    is stored, as one group."""
    lines = [body.count(b"\n") for body in bodies]
    if any(count % 2 for count in lines):
        return None  # (an action without its source would pair the next bulk's lines wrongly)
    if min(lines) // 2 < BULK_MIN_RECORDS or max(lines) // 2 > app.service.limits.max_records:
        return None
    if not all(body.endswith(b"\n") for body in bodies):
        return None
    read = elastic_columns.read_regular_bulk(b"".join(bodies), None, sum(lines))
    if read is None:
        return None
    items, found = read
    if any(index is not None and invalid_index_name(index) for index in elastic.indices_of(items)):
        return None
    table = found.table(app.service)
    if table is None:
        return None
    parsed: list[Parsed] = []
    start = 0
    for count in (count // 2 for count in lines):
        stored = elastic.part_of(items, start, start + count)
        checked = ParsedBody(False, table=table.slice(start, count))
        parsed.append((stored, [(stored, checked, ingest_counts(checked))]))
        start += count
    return parsed


def _refuse_invalid_indices(items: Sequence[elastic.BulkItem]) -> None:
    """Refuse the items into an index Elasticsearch would not create (`/Bad Name/_bulk`), as it refuses them: each
    with 400 invalid_index_name_exception, the bulk's other items stored. (A bulk names a few indices: each is
    checked once.)"""
    named = (index for index in elastic.indices_of(items) if index is not None)  # (none named: refused elsewhere)
    reasons = {index: why for index in named if (why := invalid_index_name(index))}
    if reasons:
        for item in items:
            if item.row is not None and item.index in reasons:
                item.refuse(reasons[item.index], INVALID_INDEX_NAME, field="log_type")  # (the index is the log type)


def _checked_group(app: LoglakeApp, group: Sequence[elastic.BulkItem], found: RecordColumns) -> Group | None:
    """The group's records (storable items, at least one) checked, those refused by the check taken out; None when
    none is left."""
    while True:
        rows = elastic.rows_of(group)
        try:
            parsed = columns.check(app.service, found.take(rows), restamp=True)
            counts = ingest_counts(parsed)
        except InvalidRecords as e:
            reasons: dict[int, list[str]] = defaultdict(list)
            fields: dict[int, str] = {}
            for problem in e.problems:
                reasons[problem.index].append(f"{problem.field or 'document'}: {problem.reason}")
                fields.setdefault(problem.index, problem.field)
            for index, why in reasons.items():
                group[index].refuse("; ".join(why), field=fields[index])
            group = [item for item in group if item.row is not None]
            if not group:
                return None
            continue
        if parsed.records is not None:  # (a table's logIds are the items' _ids once stored: _store_bulk)
            for item, record in zip(group, parsed.records, strict=True):
                if item.doc_id is None:  # the answer's _id: the record's logId
                    item.doc_id = format_uuid(record.log_id)
        return group, parsed, counts


def _check_media_type(request: Request, expected: str) -> None:
    """406 for a Content-Type that is not JSON, telling the one the API takes (`expected`)."""
    content_type = request.header(b"content-type").split(";", 1)[0].strip().lower()
    if content_type not in BULK_TYPES and content_type not in VENDOR_TYPES:
        raise ElasticError(
            406,
            ERROR_TYPES[406],
            f"Content-Type header [{content_type}] is not supported; send {expected}",
            headers=[PRODUCT],
        )
