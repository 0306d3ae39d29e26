"""GET /alerts/deliveries: the delivery outbox (what went where, what waits, what was dead-lettered);
POST /alerts/deliveries/{deliveryId}/retry: send a dead-lettered delivery again; their OpenAPI description."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from loglake.alerts.outbox import (
    DELIVERY_STATES,
    DeadAhead,
    DeliveryRow,
    NoSuchDelivery,
    RetryRefused,
    retry_refusal,
)
from loglake.alerts.store import comma_separated
from loglake.api.alert_routes import alert_lookup_errors
from loglake.api.http import ApiError, Request, quoted
from loglake.api.openapi_common import error_response
from loglake.api.routes import Result, bad_parameter, refuse_parameters
from loglake.digits import is_ascii_digits
from loglake.times import format_datetime

if TYPE_CHECKING:
    from loglake.alerts.delivery import AlertDelivery
    from loglake.api.app import LoglakeApp

PATH = "/alerts/deliveries"
RETRY_PATH = "/alerts/deliveries/{deliveryId}/retry"
PARAMS = frozenset({"state", "destination", "alert", "limit", "cursor"})
DEFAULT_LIMIT = 100
MAX_LIMIT = 500


def _delivery(app: LoglakeApp) -> AlertDelivery:
    delivery = app.runtime.delivery
    if delivery is None:
        raise ApiError(501, "not_available", "alert delivery needs the local data dir, which this server does not have")
    return delivery


async def list_deliveries(app: LoglakeApp, request: Request) -> Result:
    delivery = _delivery(app)
    refuse_parameters(request, f"GET {PATH}", PARAMS)
    params = request.query
    states = comma_separated(params.get("state", ""))  # (one or more, as GET /alerts takes its statuses)
    wrong = [v for v in states if v not in DELIVERY_STATES]
    if wrong:
        raise bad_parameter(
            "state", f"must be one or more (comma-separated) of {', '.join(DELIVERY_STATES)}, not {quoted(wrong[0])}"
        )
    limit = _integer(params, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    before = _integer(params, "cursor", None, 1, None)

    def read() -> tuple[list[DeliveryRow], dict[str, DeadAhead], list[str], frozenset[str]]:
        alert = params.get("alert")
        rows = delivery.outbox.page(
            states=states,
            destination=params.get("destination") or None,
            alert_id=delivery.outbox.alert_named(alert) if alert else None,
            before=before,
            limit=limit,
        )
        said = delivery.routing_file.said()  # (alerting.yml read again if it changed: its problems now)
        routing = delivery.routing_file.current()
        behind = delivery.outbox.waiting_behind(rows)
        return rows, behind, said, frozenset(() if routing is None else routing.destinations)

    with alert_lookup_errors(params.get("alert", "")):
        rows, behind, problems, defined = await app.run_read(read)
    return Result(
        200,
        {
            "deliveries": [_row(r, retry_refusal(r, defined) is None, behind.get(r.id)) for r in rows],
            "next_cursor": str(rows[-1].rowid) if len(rows) == limit else None,
            "routing_problems": problems,
            "worker_error": delivery.last_error,
        },
    )


async def retry_delivery(app: LoglakeApp, request: Request, delivery_id: str) -> Result:
    """Make a dead delivery due again, attempts reset; the worker sends it once, with its idempotency key."""
    delivery = _delivery(app)
    refuse_parameters(request, f"POST {RETRY_PATH}")
    try:
        row = await app.run_read(delivery.retry, delivery_id)
    except NoSuchDelivery:
        raise ApiError(
            404, "not_found", f"no delivery with id {quoted(delivery_id)}; GET {PATH}?state=dead lists the dead ones"
        ) from None
    except RetryRefused as e:
        raise ApiError(409, "not_retryable", str(e)) from None
    return Result(200, _row(row, retryable=False))  # (pending now)


def _integer(params: dict[str, str], name: str, default: int | None, low: int, high: int | None) -> int | None:
    text = params.get(name)
    if not text:
        return default
    if not is_ascii_digits(text) or int(text) < low or (high is not None and int(text) > high):
        bounds = f"{low}-{high}" if high is not None else f"{low} or more"
        raise bad_parameter(name, f"must be a whole number {bounds}, not {quoted(text)}")
    return int(text)


def _row(row: DeliveryRow, retryable: bool, waits_for: DeadAhead | None = None) -> dict[str, Any]:
    """A delivery as the API gives it; `retryable` when a retry would not be refused for the delivery as it is
    (outbox.retry_refusal: the page offered Retry for one that could only be refused); `waits_for`: the dead
    delivery it waits behind, named with its alert (another alert of its dedup key's, maybe: its page alone shows
    it and offers its retry)."""
    return {
        "id": row.id,
        "alert_id": row.alert_id,
        "event_seq": row.event_seq,
        "event": row.kind,
        "destination": row.destination,
        "state": row.state,
        "attempts": row.attempts,
        "next_attempt": format_datetime(row.next_attempt_ms) if row.state == "pending" else None,
        "created": format_datetime(row.created_ms),
        "updated": format_datetime(row.updated_ms),
        "last_error": row.last_error,
        "last_status": row.last_status,
        "retryable": retryable,
        "waits_for": None
        if waits_for is None
        else {"id": waits_for.id, "alert_id": waits_for.alert_id, "event": waits_for.kind},
    }


OPENAPI = {
    PATH: {
        "get": {
            "summary": "Alert deliveries: one per alert event and destination, newest first, with their state, "
            "attempts and last error (read scope)",
            "parameters": [
                {
                    "name": "state",
                    "in": "query",
                    "description": f"one or more, comma-separated, of {', '.join(DELIVERY_STATES)}",
                    "schema": {"type": "string"},
                },
                {"name": "destination", "in": "query", "schema": {"type": "string"}},
                {
                    "name": "alert",
                    "in": "query",
                    "description": "an alert: its id, or a part of it that no other alert's id holds",
                    "schema": {"type": "string"},
                },
                {
                    "name": "limit",
                    "in": "query",
                    "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
                },
                {
                    "name": "cursor",
                    "in": "query",
                    "description": "next_cursor of the previous page",
                    "schema": {"type": "string"},
                },
            ],
            "responses": {
                "200": {
                    "description": "deliveries, next_cursor (null on the last page), the problems of "
                    "alerting.yml if it has any, and why delivery is not running (worker_error) if it is not; a "
                    "pending delivery held behind a dead one of its dedup key to its destination (which may be "
                    "another alert's) names it in waits_for (its id, alert_id and event), the one to retry"
                },
                "404": error_response("No alert with the id `alert` names"),
                "501": {"description": "this server has no local data dir (the AWS deployment)"},
            },
        }
    },
    RETRY_PATH: {
        "post": {
            "summary": "Send a dead-lettered delivery again (alerts scope): it becomes pending with its attempts "
            "reset and the same idempotency key, and the delivery worker sends it once, after the dead deliveries "
            "of its alert to its destination before it, retried with it",
            "parameters": [{"name": "deliveryId", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {
                "200": {"description": "the delivery, now pending"},
                "404": error_response("No delivery with that id"),
                "409": error_response(
                    "Not dead (pending, sending, sent, or already retried), its destination is not in alerting.yml, "
                    "or a later event of its alert was already delivered there (not_retryable)"
                ),
                "501": error_response("This server has no local data dir (the AWS deployment)"),
            },
        }
    },
}
