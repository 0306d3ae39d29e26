"""Splunk's HTTP Event Collector endpoints: events, raw text and health, answered with Splunk's status
codes (`{"text": "Success", "code": 0}`), auth failures included. A batch is stored whole or not at all."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from loglake.api.auth import Unauthorized
from loglake.api.http import ApiError, Request
from loglake.api.operation_routes import storage_writable
from loglake.api.routes import Result, checked_body, count_refused, count_refused_body, ingest_counts, store
from loglake.model import InvalidRecords, Problem
from loglake.protocols import columns, splunk

if TYPE_CHECKING:
    from loglake.api.app import LoglakeApp

PROTOCOL = "splunk"
EVENT_PATHS = ("/services/collector", "/services/collector/event", "/services/collector/event/1.0")
RAW_PATHS = ("/services/collector/raw", "/services/collector/raw/1.0")
HEALTH_PATHS = ("/services/collector/health", "/services/collector/health/1.0")
ACK_PATHS = ("/services/collector/ack",)
NO_ACKS = (
    "indexer acknowledgment is off: loglake answers 200 only once the events are on disk, so there is nothing "
    "to acknowledge later; turn acknowledgment off in the shipper"
)


class HecApiError(ApiError):
    """An ApiError answered with Splunk's body."""

    def __init__(
        self,
        code: int,
        reason: str = "",
        event_number: int | None = None,
        headers: list | None = None,
        refused: int = 0,
        problems: list[Problem] | None = None,
        body_code: str | None = None,
    ) -> None:
        status, self.payload = splunk.answer(code, reason, event_number)
        super().__init__(status, f"hec_{code}", reason, headers=headers)
        self.refused = refused  # the records of the batch it refuses
        self.problems = problems or []  # of the events it refuses as invalid, as POST /logs counts them
        self.body_code = body_code  # a body refused as a whole (no event at fault): its code, as POST /logs counts it

    def body(self) -> dict[str, Any]:
        return self.payload


def hec_error(error: ApiError, _request: Request) -> ApiError:
    """Any error of these endpoints (auth, rate limit, body, storage) in Splunk's terms."""
    if isinstance(error, HecApiError):
        return error
    if isinstance(error, Unauthorized):
        if error.why == "invalid":  # the header was right: the key is what is wrong, and the message says so
            return HecApiError(4, error.message)
        return HecApiError({"missing": 2, "malformed": 3}[error.why], "send 'Authorization: Splunk <api key>'")
    if error.status == 403:
        return HecApiError(4, error.message)
    if error.status in (429, 503):  # Splunk's answer when it cannot take more now: clients retry it
        retry = [h for h in error.headers if h[0] == b"retry-after"] or [(b"retry-after", b"5")]
        return HecApiError(9, error.message, headers=retry)
    refused = HecApiError(6, error.message)
    refused.status = error.status  # 413, 415: the status says what went wrong, the code that it is the data
    return refused


async def event(app: LoglakeApp, request: Request) -> Result:
    return await _store(app, request, splunk.event_columns, request.query)


async def raw(app: LoglakeApp, request: Request) -> Result:
    return await _store(app, request, splunk.raw_columns, request.query)


async def health(app: LoglakeApp, request: Request) -> Result:
    """HEC's health, which load balancers ask (as Splunk advises): storage checked again, as /healthz checks it, or a
    balancer that stopped sending for a storage error kept the server out for good (no write came to clear it)."""
    status, payload = splunk.answer(17 if await storage_writable(app) else 18)
    return Result(status, payload)


async def ack(app: LoglakeApp, request: Request) -> Result:
    """What Splunk answers a token without indexer acknowledgment, so a shipper configured for it says why."""
    raise HecApiError(14, NO_ACKS)


async def _store(app: LoglakeApp, request: Request, to_columns: Any, *args: Any) -> Result:
    """The batch's records (to_columns(body, *args)) checked, stored, counted and answered in Splunk's terms."""
    try:
        parsed, count = await checked_body(app, request, lambda body: _checked(app, to_columns, body, *args))
    except HecApiError as e:
        app.metrics.protocol_records.inc((PROTOCOL, "rejected"), e.refused)
        count_refused(app, request, e.problems, PROTOCOL)
        if e.body_code is not None:
            count_refused_body(app, e.body_code)
        raise
    try:
        await store(app, *parsed)
    except ApiError:  # (the route's error form answers it in Splunk's terms)
        app.metrics.protocol_records.inc((PROTOCOL, "rejected"), count)
        raise
    app.metrics.protocol_records.inc((PROTOCOL, "accepted"), count)
    status, payload = splunk.answer(0)
    return Result(status, payload)


def _checked(app: LoglakeApp, to_columns: Any, *args: Any) -> tuple[tuple, int]:
    """The batch's records checked as POST /logs checks them; HecApiError for the first event at fault."""
    try:
        records = to_columns(*args)
    except splunk.HecError as e:
        if e.event_number is None:  # the body is no events at all (empty, not UTF-8)
            raise HecApiError(e.code, str(e), refused=e.events, body_code="invalid_hec") from None
        invalid = [Problem(e.event_number, e.field, str(e))]
        raise HecApiError(e.code, str(e), e.event_number, refused=e.events, problems=invalid) from None
    # (no bound on the events of a request but the body's size: shippers batch HEC events by size, the
    # OpenTelemetry Collector up to 2 MiB, which holds more than max_records short events; Splunk counts none)
    try:
        parsed = columns.check(app.service, records, restamp=True)
    except InvalidRecords as e:
        first = e.problems[0]
        reason = f"{splunk.event_name(first.index)}: {first.field}: {first.reason}; nothing was stored"
        raise HecApiError(6, reason, first.index, refused=len(records), problems=e.problems) from None
    return (parsed, ingest_counts(parsed)), len(records)


# What the endpoints answer, always with Splunk's body (auth and rate limits included, which is why openapi.py
# adds none of the common errors to them); tests/api/test_protocol_statuses.py provokes each.
_SPLUNK = "Splunk's {text, code}, with loglake's reason"
_ANSWERS = {
    "200": {"description": '{"text": "Success", "code": 0}'},
    "400": {"description": f"{_SPLUNK}: no data (5), invalid data (6), no or blank event (12, 13), bad fields (15)"},
    "401": {"description": f"{_SPLUNK}: no token (2), or not in the Splunk, Bearer or Basic form (3)"},
    "403": {"description": f"{_SPLUNK}: an unknown token, or a key without the ingest scope (4)"},
    "413": {"description": f"{_SPLUNK}: the body is too large (6)"},
    "415": {"description": f"{_SPLUNK}: a Content-Encoding other than gzip (6)"},
    "503": {
        "description": f"{_SPLUNK}: server is busy (9), with Retry-After: the key's rate limit, or storage cannot "
        "take writes; nothing was stored, send the batch again"
    },
}


def _ingest(summary: str, content_type: str) -> dict:
    return {
        "post": {
            "summary": summary,
            "requestBody": {"required": True, "content": {content_type: {"schema": {"type": "string"}}}},
            "responses": _ANSWERS,
        }
    }


OPENAPI_PATHS: dict[str, dict] = {
    **{
        path: _ingest(
            "Splunk HEC events: one or more JSON event objects, concatenated; all or nothing; "
            "'Authorization: Splunk <key>' (ingest scope)",
            "application/json",
        )
        for path in EVENT_PATHS
    },
    **{
        path: _ingest(
            "Splunk HEC raw: one event per line; host, source, sourcetype, index and time from the query "
            "(ingest scope)",
            "text/plain",
        )
        for path in RAW_PATHS
    },
    **{
        path: {
            "post": {
                "summary": "HEC indexer acknowledgment: off, as Splunk answers for a token without it (code 14)",
                "responses": {
                    # The body is never read: only a Content-Length over the limit is refused, unread.
                    **{status: _ANSWERS[status] for status in ("401", "403", "413", "503")},
                    "400": {"description": f"{_SPLUNK}: ACK is disabled (14): a 200 of the events meant on disk"},
                },
            }
        }
        for path in ACK_PATHS
    },
    **{
        path: {
            "get": {
                "summary": "HEC health (no auth)",
                "security": [],
                "responses": {
                    "200": {"description": '{"text": "HEC is healthy", "code": 17}'},
                    "503": {"description": "storage cannot take writes (code 18)"},
                },
            }
        }
        for path in HEALTH_PATHS
    },
}
