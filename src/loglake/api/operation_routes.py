"""GET /healthz and GET /metrics: what monitors and operators ask of a running server."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from typing import TYPE_CHECKING

from loglake import __version__
from loglake.api.auth import session_token
from loglake.api.http import ApiError, Request
from loglake.api.metrics import delivery_lines
from loglake.api.routes import Result, refuse_parameters
from loglake.lake.objectstore import ObjectStoreError
from loglake.sqlitedb import RESTORE_FROM_BACKUP
from loglake.store.base import StoreUnavailable, awaitable
from loglake.times import format_datetime

if TYPE_CHECKING:
    from loglake.api.app import LoglakeApp

# A delivery dead-lettered this recently makes /healthz say "degraded" (retrying it ends that sooner).
DEAD_DELIVERY_DEGRADES_MS = 24 * 3_600_000
# A storage error this old is checked again by /healthz (and the protocols' probes) with a write that changes nothing
# (see storage_writable).
STORAGE_RECHECK_AFTER_S = 5.0
# How long /healthz waits for its probe of an S3 lake that refused a write: not answered by then, it still refuses.
STORAGE_PROBE_WAIT_S = 5.0


async def healthz(app: LoglakeApp, request: Request) -> Result:
    """Anyone may ask whether the server is healthy; only a caller with a read key sees why not, since
    the details (store and job errors) hold server paths and configuration."""
    refuse_parameters(request, "GET /healthz")
    writable = await storage_writable(app)
    delivery = app.runtime.delivery
    outbox_error = None
    try:
        dead = {} if delivery is None else await app.run_read(delivery.dead)
    except sqlite3.Error as e:  # a health check says what is wrong rather than fail with it
        dead, outbox_error = {}, f"alerts.db cannot be read: {e}"
    dead_since_ms = app.service.now_ms() - DEAD_DELIVERY_DEGRADES_MS
    dead_recently = any(d.newest_ms >= dead_since_ms for d in dead.values())
    rule_problems = 0 if app.runtime.rules is None else len(app.runtime.rules.folder.problems)
    # alerting.yml's problems and the secrets its version in use needs that are not set (each of their deliveries
    # fails until it is dead-lettered): said only in GET /alerts/deliveries, a new-user trial found them 37 min later
    routing_said, unset = [], 0
    if delivery is not None:
        routing = delivery.routing_file
        routing_said, unset = await app.run_read(lambda: (routing.said(), len(routing.unset())))
    # Dead deliveries are a lost notification, not a server that cannot serve: degraded, but still a
    # 200, so a load balancer keeps sending it logs.
    status = 200 if writable else 503
    # Every cause, the gravest first: a new-user trial with dead deliveries, a broken rule file and alerting.yml's
    # problems was told of the deliveries alone.
    reasons = []
    if not writable:
        reasons.append("storage cannot accept writes")
    if app.damaged_database is not None:
        reasons.append(f"a database of the data dir is damaged: {RESTORE_FROM_BACKUP}")
    if outbox_error is not None:
        reasons.append("alert deliveries cannot be read")
    if dead_recently:
        reasons.append(f"alert deliveries were dead-lettered in the last {DEAD_DELIVERY_DEGRADES_MS // 3_600_000} h")
    if rule_problems:
        # (a rule file refused, or two with one id: a rule that ran before may have stopped; alerting.yml's
        # problems keep its last good version in use, and new destinations out)
        reasons.append(f"{rule_problems} problem(s) in the rule files or alerting.yml: what they hold does not run")
    if unset:
        reasons.append(f"{unset} secret(s) that alert destinations need are not set: their deliveries fail")
    if app.lake_jobs is not None and app.lake_jobs.last_error is not None:
        # (an S3 lake with wrong credentials or down: records pile up in the hot store; the details say why)
        reasons.append("lake maintenance is failing: records stay in the hot store until it succeeds")
    reason = "; ".join(reasons) or None
    if not _may_read(app, request):
        return Result(status, {"status": "ok" if reason is None else "degraded", "reason": reason})
    body = {
        "status": "ok" if reason is None else "degraded",
        "reason": reason,
        "version": __version__,
        "store": {"writable": writable, "error": app.storage_error},
        "auth": app.auth.enabled,
    }
    if delivery is not None:
        newest = max((d.newest_ms for d in dead.values()), default=None)
        body["deliveries"] = {
            "dead": sum(d.count for d in dead.values()),
            "dead_by_destination": {name: d.count for name, d in sorted(dead.items())},
            "last_dead": None if newest is None else format_datetime(newest),
            "worker_error": delivery.last_error,
            "error": outbox_error,
            "routing_problems": routing_said,
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


async def storage_writable(app: LoglakeApp) -> bool:
    """Whether storage takes writes, for a health check: a storage error is checked again (_recheck_storage)."""
    if app.storage_error is not None:
        await _recheck_storage(app)
    return app.storage_error is None


async def _recheck_storage(app: LoglakeApp) -> None:
    """Clear a storage error older than STORAGE_RECHECK_AFTER_S if a write that changes nothing goes in now
    (HotStore.probe_write). The error is otherwise cleared by the next write that succeeds: a load balancer that
    stops sending to a server answering 503 sends it none, and the server stayed out of service after its disk
    had room again. (A fresh error stands: writes that keep failing keep it fresh.)"""
    now = time.monotonic()
    if now - app.storage_checked_at < STORAGE_RECHECK_AFTER_S:
        return
    app.storage_checked_at = now
    in_lake = app.storage_error_in_lake and app.lake is not None
    try:
        if in_lake:  # (an S3 lake that hangs: the probe gives up within the client's timeouts, off the loop)
            await asyncio.wait_for(app.run_read(app.lake.objects.probe_write), STORAGE_PROBE_WAIT_S)
        else:
            await awaitable(app.service.store.probe_write())
    except (StoreUnavailable, sqlite3.Error, OSError, ObjectStoreError, TimeoutError):
        return  # (still refused: the error stands)
    app.storage_accepted()


async def metrics(app: LoglakeApp, request: Request) -> Result:
    refuse_parameters(request, "GET /metrics")
    lake = await app.run_read(app.lake.state) if app.lake is not None else None
    deliveries = await app.run_read(delivery_lines, app.runtime.delivery)
    asking = await app.run_read(app.asking.metric_lines)
    process = await app.run_read(app.process_figures.lines)
    syslog = app.runtime.syslog
    udp_drops = None if syslog is None else await app.run_read(syslog.udp_kernel_drops)
    return Result(
        200,
        app.metrics.render(lake, app.access_log.dropped, udp_drops) + process + deliveries + asking,
        ((b"content-type", b"text/plain; version=0.0.4; charset=utf-8"),),
    )
