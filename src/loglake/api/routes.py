"""Route handlers: each turns a Request into (status, payload) by calling LogService or the key store."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec

from loglake import __version__
from loglake.api.http import ApiError, Request, decode_content
from loglake.ids import format_uuid
from loglake.keys import KeyError_, parse_scopes
from loglake.model import SEVERITY_LABELS, InvalidRecords, format_datetime, record_to_dict
from loglake.service import InvalidQuery
from loglake.store.base import StoreUnavailable

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
MAX_DETAILS = 100
_decoder = msgspec.json.Decoder()


@dataclass(frozen=True, slots=True)
class Result:
    status: int
    payload: Any
    headers: tuple[tuple[bytes, bytes], ...] = ()


# -- logs --------------------------------------------------------------------------------------


async def ingest(app: LoglakeApp, request: Request) -> Result:
    items, single = parse_records_body(request, app.settings.max_body_bytes, app.settings.max_records)
    try:
        records = app.service.validate(items)
    except InvalidRecords as e:
        for problem in e.problems:
            app.metrics.rejected.inc((problem.field or "not_an_object",))
        details = [p.as_dict() for p in e.problems[:MAX_DETAILS]]
        if len(e.problems) > MAX_DETAILS:
            details.append({"index": -1, "field": "", "reason": f"... and {len(e.problems) - MAX_DETAILS} more"})
        raise ApiError(400, "invalid_records", str(e), details) from None
    try:
        log_ids = await asyncio.wrap_future(app.service.submit(records))
    except StoreUnavailable as e:
        app.storage_error = str(e)
        app.metrics.rejected.inc(("storage_unavailable",), len(records))
        raise ApiError(503, "storage_unavailable", str(e), headers=[(b"retry-after", b"5")]) from None
    count = app.metrics.ingested.inc
    for record in records:
        count((record.service, SEVERITY_LABELS[record.severity]))
    if single:
        record = records[0]
        return Result(
            201,
            {
                "logId": format_uuid(log_ids[0]),
                "timestamp": record.timestamp,
                "datetime": format_datetime(record.timestamp),
            },
        )
    return Result(201, {"count": len(log_ids), "logIds": [format_uuid(i) for i in log_ids]})


def parse_records_body(request: Request, max_bytes: int, max_records: int) -> tuple[list[Any], bool]:
    """Decoded records from a JSON object, JSON array or NDJSON body, and whether it was one object."""
    content_type = request.header(b"content-type").split(";", 1)[0].strip().lower()
    if content_type not in JSON_TYPES and content_type not in NDJSON_TYPES:
        raise ApiError(
            415,
            "unsupported_media_type",
            f"Content-Type {content_type!r} is not accepted; send application/json or application/x-ndjson",
        )
    body = decode_content(request, request.body, max_bytes)
    if not body.strip():
        raise ApiError(400, "empty_body", "the body is empty; send a record object, an array or NDJSON lines")
    if content_type in NDJSON_TYPES:
        items, single = _decode_ndjson(body), False
    else:
        try:
            decoded = _decoder.decode(body)
        except msgspec.DecodeError as e:
            raise ApiError(400, "invalid_json", f"the body is not valid JSON: {e}") from None
        if type(decoded) is dict:
            items, single = [decoded], True
        elif type(decoded) is list:
            items, single = decoded, False
        else:
            raise ApiError(400, "invalid_json", "the body must be a record object or an array of record objects")
    if not items:
        raise ApiError(400, "empty_batch", "the batch holds no records")
    if len(items) > max_records:
        raise ApiError(
            413, "too_many_records", f"{len(items)} records in one request; the limit is {max_records}, split the batch"
        )
    return items, single


def _decode_ndjson(body: bytes) -> list[Any]:
    try:
        return _decoder.decode_lines(body)
    except msgspec.DecodeError:
        pass
    # Slow path, only for bad input: find every line that does not parse, to report them all.
    problems = []
    index = 0
    for number, line in enumerate(body.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            _decoder.decode(line)
        except msgspec.DecodeError as e:
            problems.append({"index": index, "field": "", "reason": f"line {number} is not valid JSON: {e}"})
        index += 1
    raise ApiError(400, "invalid_json", f"{len(problems)} NDJSON line(s) are not valid JSON", problems[:MAX_DETAILS])


async def recent(app: LoglakeApp, request: Request) -> Result:
    try:
        query = app.service.recent_query(request.query)
    except InvalidQuery as e:
        raise ApiError(400, "invalid_query", str(e), [p.as_dict() | {"index": None} for p in e.problems]) from None
    page = await app.run_read(app.service.recent, query)
    logs = [record_to_dict(r) for r in page.records]
    return Result(200, {"count": len(logs), "logs": logs, "next_cursor": page.next_cursor})


async def get_log(app: LoglakeApp, request: Request, log_id: str) -> Result:
    record = await app.run_read(app.service.get, log_id)
    if record is None:
        raise ApiError(404, "not_found", f"no log with id {log_id!r}")
    return Result(200, record_to_dict(record))


# -- operations --------------------------------------------------------------------------------


async def healthz(app: LoglakeApp, request: Request) -> Result:
    writable = app.storage_error is None
    body = {
        "status": "ok" if writable else "degraded",
        "version": __version__,
        "store": {"writable": writable, "error": app.storage_error},
        "auth": app.auth.enabled,
    }
    return Result(200 if writable else 503, body)


async def metrics(app: LoglakeApp, request: Request) -> Result:
    return Result(200, app.metrics.render(), ((b"content-type", b"text/plain; version=0.0.4; charset=utf-8"),))


# -- admin: keys -------------------------------------------------------------------------------


async def list_keys(app: LoglakeApp, request: Request) -> Result:
    keys = await app.run_read(app.keystore.list, request.query.get("all") in ("1", "true"))
    return Result(200, {"keys": [k.as_dict() for k in keys]})


async def create_key(app: LoglakeApp, request: Request) -> Result:
    try:
        spec = _decoder.decode(decode_content(request, request.body, app.settings.max_body_bytes) or b"null")
    except msgspec.DecodeError as e:
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {e}") from None
    if type(spec) is not dict or type(spec.get("name")) is not str:
        raise ApiError(400, "invalid_key_spec", 'send {"name": "...", "scopes": ["ingest", "read"], "sigv4": false}')
    scopes = spec.get("scopes", ["ingest"])
    try:
        new = app.keystore.create(
            spec["name"],
            parse_scopes(",".join(scopes) if isinstance(scopes, list) else str(scopes)),
            sigv4=bool(spec.get("sigv4", False)),
            rate_limit=_positive(spec.get("rate_limit"), "rate_limit"),
            rate_burst=_positive(spec.get("rate_burst"), "rate_burst"),
        )
    except KeyError_ as e:
        raise ApiError(400, "invalid_key_spec", str(e)) from None
    body = new.key.as_dict() | {"secret": new.secret}
    if new.access_key_id:
        body["access_key_id"] = new.access_key_id
    return Result(201, body)


async def revoke_key(app: LoglakeApp, request: Request, name: str) -> Result:
    try:
        app.keystore.revoke(name)
    except KeyError_ as e:
        raise ApiError(404, "not_found", str(e)) from None
    return Result(200, {"revoked": name})


def _positive(value: Any, name: str) -> Any:
    if value is None:
        return None
    if type(value) not in (int, float) or value <= 0:
        raise ApiError(400, "invalid_key_spec", f"{name} must be a positive number")
    return value
