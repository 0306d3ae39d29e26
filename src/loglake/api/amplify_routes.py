"""The Amplify access-log routes: the saved reports on an app's traffic, and the collector's status."""

from __future__ import annotations

from typing import TYPE_CHECKING

from loglake.amplify.collector import collection_status
from loglake.amplify.reports import UnknownReport, apps_with_rows, run_reports, unknown_app_message
from loglake.api.http import ApiError, Request
from loglake.api.routes import Result, bad_parameter, query_error, refuse_parameters
from loglake.config import env_name, flag_name
from loglake.lake.query import QueryError
from loglake.lake.query_answers import QueryBusy
from loglake.times import TimeFormatError, format_datetime, parse_time

if TYPE_CHECKING:
    from loglake.api.app import LoglakeApp

AMPLIFY_REPORT_PARAMS = frozenset({"app", "since", "until", "report"})


async def amplify_reports(app: LoglakeApp, request: Request) -> Result:
    """The saved reports on one app's traffic (loglake amplify report), for the UI."""
    if app.lake is None:
        raise ApiError(501, "not_available", "reports need the lake, which this server's store does not have")
    refuse_parameters(request, "GET /amplify/reports", AMPLIFY_REPORT_PARAMS)
    params = request.query
    if not params.get("app"):
        raise bad_parameter("app", "is required: the appName to report on")
    now_ms = int(app.service.clock() * 1000)
    bounds = {}
    for name, default in (("since", "7d"), ("until", "now")):
        try:
            bounds[name] = parse_time(params.get(name) or default, now_ms)
        except TimeFormatError as e:
            raise bad_parameter(name, str(e)) from None
    since, until = bounds["since"], bounds["until"]
    if until <= since:
        raise bad_parameter("until", "must be after since")
    names = [n.strip() for n in (params.get("report") or "").split(",") if n.strip()] or None
    known = await app.run_read(apps_with_rows, app.store.read)
    if params["app"] not in known:
        raise ApiError(404, "unknown_app", unknown_app_message(params["app"], known))
    engine = app.lake.engine
    try:
        reports = await app.run_query(
            lambda stop: run_reports(engine, params["app"], since, until, names, stop), request
        )
    except UnknownReport as e:
        raise ApiError(400, "unknown_report", str(e)) from None
    except (QueryError, QueryBusy) as e:
        raise query_error(e) from None
    return Result(
        200,
        {"app": params["app"], "since": format_datetime(since), "until": format_datetime(until), "reports": reports},
    )


async def amplify_status(app: LoglakeApp, request: Request) -> Result:
    """Each app's watermark, the last runs, the schedule when this server collects, and the setting that
    makes it collect."""
    refuse_parameters(request, "GET /amplify/status")

    def read() -> dict:
        marks, runs = collection_status(app.store, runs=10)
        return {
            "schedule": app.amplify.status() if app.amplify is not None else None,
            # the setting that makes a server collect on its schedule, for a page to name it
            "schedule_setting": {"flag": flag_name("amplify_config"), "env": env_name("amplify_config")},
            "apps": [{"app": name, "collected_until": format_datetime(until)} for name, until in marks],
            "runs": runs,
        }

    if app.lake is None:
        raise ApiError(
            501, "not_available", "the Amplify collector needs the lake, which this server's store does not have"
        )
    return Result(200, await app.run_read(read))
