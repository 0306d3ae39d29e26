"""POST /v1/logs: OTLP/HTTP logs, in protobuf or JSON, stored as POST /logs stores records.

OTLP/HTTP answers in the request's encoding: 200 with an ExportLogsServiceResponse (its partial_success
counting the records refused while the others were stored), or a 4xx/5xx with a google.rpc.Status.
Authentication, scopes and rate limits are the app's, as for POST /logs (exporters send `Authorization:
Bearer <key>` as one of their configured headers).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from loglake import decode_workers
from loglake.api.http import ApiError, EncodedApiError, Request, is_gzip
from loglake.api.routes import (
    Result,
    checked_body,
    count_if_body_refused,
    count_refused,
    count_refused_body,
    decoded_by_worker,
    ingest_counts,
    store,
)
from loglake.ingest import InvalidBody, ParsedBody
from loglake.model import Problem
from loglake.protocols import columns, otlp

if TYPE_CHECKING:
    from loglake.api.app import LoglakeApp

PATH = "/v1/logs"
PROTOCOL = "otlp"
_TYPES = {otlp.PROTOBUF: False, otlp.JSON: True}
_STATUS = {"description": "google.rpc.Status (code, message) in the request's encoding"}
_BOTH = {otlp.PROTOBUF: {"schema": {"type": "string", "format": "binary"}}, otlp.JSON: {"schema": {"type": "object"}}}
OPENAPI = {
    PATH: {
        "post": {
            "summary": "OTLP/HTTP logs from OpenTelemetry SDKs and Collectors (protobuf or JSON, gzip accepted); "
            "200 means the accepted records are durable",
            "description": "An ExportLogsServiceRequest, as `otlphttp` exporters send it (`Authorization: Bearer "
            "<ingest key>` among their headers). Resource `service.name` gives the service, `severity_number` "
            "the severity (OpenTelemetry's ranges; else `severity_text`), the time (else the observed time) the "
            "timestamp, the body the message (structured bodies as JSON text; none, or an empty one: the event name, "
            "else `(no body)`), `trace_id` and `span_id` their "
            "columns; resource, scope and record attributes go to `attributes`. Records that cannot be stored "
            "are counted and named in `partial_success`, the others are stored.",
            "requestBody": {"required": True, "content": _BOTH},
            "responses": {
                "200": {"description": "ExportLogsServiceResponse, in the request's encoding", "content": _BOTH},
                **{
                    status: _STATUS | {"content": _BOTH}
                    for status in ("400", "401", "403", "413", "415", "429", "503")  # auth and rate limits too
                },
            },
        }
    }
}


async def export_logs(app: LoglakeApp, request: Request) -> Result:
    content_type = _content_type(request)
    json = _TYPES.get(content_type)
    if json is None:
        message = f"Content-Type {content_type!r} is not OTLP/HTTP; send {otlp.PROTOBUF} or {otlp.JSON}"
        return _failure(415, message, json=True)
    try:
        parsed, problems, found, counts = await _checked_export(app, request, json)
    except ApiError as e:  # (the body's Content-Encoding)
        count_if_body_refused(app, e)
        return _failure(e.status, e.message, json)
    except otlp.MalformedRequest as e:
        count_refused_body(app, "invalid_otlp")
        return _failure(400, str(e), json)
    except InvalidBody as e:
        count_refused_body(app, e.code)
        return _failure(413 if e.too_large else 400, str(e), json)
    if problems:
        count_refused(app, request, problems, PROTOCOL)
        app.metrics.protocol_records.inc((PROTOCOL, "rejected"), len({p.index for p in problems}))
    if parsed is not None:
        try:
            await store(app, parsed, counts)
        except ApiError as e:
            return _failure(e.status, e.message, json, e.headers)
        app.metrics.protocol_records.inc((PROTOCOL, "accepted"), parsed.count)
    return Result(200, otlp.response(problems, found, json), _headers(json))


Checked = tuple[ParsedBody | None, list[Problem], columns.RecordColumns, dict[tuple[str, int], int]]


async def _checked_export(app: LoglakeApp, request: Request, json: bool) -> Checked:
    """_checked of the request's export, decoded by a worker process when the workers take it (a big one, the
    body as sent), else here as before (checked_body: Content-Encoding's errors among them)."""
    try:
        gzip = is_gzip(request)
    except ApiError:
        gzip = None  # (an encoding other than gzip: checked_body answers it)
    decoded = None
    if gzip is not None:
        max_bytes = app.settings.max_body_bytes
        decoded = await decoded_by_worker(
            app, PROTOCOL, otlp.worker_decoded, request.body, json, gzip, max_bytes, gzip=gzip
        )
    if decoded is None:
        return await checked_body(app, request, lambda body: _checked(app, otlp.columns(body, json)))
    if isinstance(decoded, str):
        raise otlp.MalformedRequest(decoded)
    return await app.run_ingest(_checked, app, decode_workers.unpacked(decoded))


def _checked(app: LoglakeApp, found: columns.RecordColumns) -> Checked:
    """The request's valid records, the problems of the others, all its records (`found`: an export of none is
    a valid one, answered as a success), and ingest_counts of the valid ones (counted off the event loop
    with the rest, as POST /logs counts)."""
    if not found:
        return None, [], found, {}
    parsed, problems = columns.check_valid(app.service, found, restamp=True)
    return parsed, problems, found, {} if parsed is None else ingest_counts(parsed)


def otlp_error(error: ApiError, request: Request) -> ApiError:
    """Any error of the endpoint (auth, scope, rate limit) as OTLP/HTTP answers its 4xx: a google.rpc.Status
    in the request's encoding (JSON when the request's is not OTLP's)."""
    if isinstance(error, EncodedApiError):
        return error
    json = _TYPES.get(_content_type(request), True)
    encoding = (otlp.JSON if json else otlp.PROTOBUF).encode()
    return EncodedApiError(error, otlp.error_status(error.status, error.message, json), encoding)


def _content_type(request: Request) -> str:
    return request.header(b"content-type").split(";", 1)[0].strip().lower()


def _failure(status: int, message: str, json: bool, headers: list[tuple[bytes, bytes]] | None = None) -> Result:
    return Result(status, otlp.error_status(status, message, json), (*_headers(json), *(headers or ())))


def _headers(json: bool) -> tuple[tuple[bytes, bytes], ...]:
    return ((b"content-type", (otlp.JSON if json else otlp.PROTOBUF).encode()),)
