"""GET /healthz and GET /metrics: what monitors and operators ask of a running server."""

from __future__ import annotations

from typing import TYPE_CHECKING

from loglake import __version__
from loglake.api.auth import session_token
from loglake.api.http import ApiError, Request
from loglake.api.metrics import delivery_lines
from loglake.api.routes import Result, refuse_parameters
from loglake.times import format_datetime

if TYPE_CHECKING:
    from loglake.api.app import LoglakeApp


async def healthz(app: LoglakeApp, request: Request) -> Result:
    """Anyone may ask whether the server is healthy; only a caller with a read key sees why not, since
    the details (store and job errors) hold server paths and configuration."""
    refuse_parameters(request, "GET /healthz")
    writable = app.storage_error is None
    status = 200 if writable else 503
    if not _may_read(app, request):
        reason = None if writable else "storage cannot accept writes"
        return Result(status, {"status": "ok" if writable else "degraded", "reason": reason})
    body = {
        "status": "ok" if writable else "degraded",
        "version": __version__,
        "store": {"writable": writable, "error": app.storage_error},
        "auth": app.auth.enabled,
    }
    if app.amplify is not None:
        body["amplify"] = app.amplify.status()
    if app.runtime.rules is not None:
        body["rules"] = app.runtime.rules.status()
    if app.lake_jobs is not None:
        jobs = app.lake_jobs
        body["lake"] = {
            "maintenance_every_s": jobs.interval or None,
            "last_maintenance": format_datetime(jobs.last_run_ms) if jobs.last_run_ms else None,
            "error": jobs.last_error,
        }
    return Result(status, body)


def _may_read(app: LoglakeApp, request: Request) -> bool:
    """Whether the caller of a public route holds valid credentials with the read scope."""
    if app.auth.enabled and not (request.header(b"authorization") or session_token(request)):
        return False
    try:
        return app.auth.authenticate(request).allows("read")
    except ApiError:
        return False


async def metrics(app: LoglakeApp, request: Request) -> Result:
    refuse_parameters(request, "GET /metrics")
    lake = await app.run_read(app.lake.state) if app.lake is not None else None
    deliveries = await app.run_read(delivery_lines, app.runtime.delivery)
    asking = await app.run_read(app.asking.metric_lines)
    return Result(
        200,
        app.metrics.render(lake, app.access_log.dropped) + deliveries + asking,
        ((b"content-type", b"text/plain; version=0.0.4; charset=utf-8"),),
    )
