"""The Lambda handlers: thin adapters over the library (configuration from the environment).

- `api`: API Gateway (REST, proxy integration, IAM auth) in front of the same app as `loglake serve`,
  on the DynamoDB hot store: POST /logs, GET /logs/recent, GET /logs/{logId} answer exactly as the
  local server does. API Gateway authenticates (SigV4) and throttles, so the app's own keys are off.
  With LOGLAKE_ATHENA_DATABASE and LOGLAKE_ATHENA_WORKGROUP set (the stack's search function), GET
  /logs/search and /logs/histogram, and ids past the hot window, are answered by Athena over the lake
  (aws/athena_search.py). With LOGLAKE_UI_SESSIONS_TABLE set (the stack's UI function), it is the web
  UI's app, signed in through Cognito (aws/ui_auth.py).

- `query`: POST /query through API Gateway, answered by Athena (aws/athena.py) with the local
  server's request and response shapes (LOGLAKE_ATHENA_DATABASE, LOGLAKE_ATHENA_WORKGROUP).
- `amplify_plan`, `amplify_download`, `amplify_finish`: the steps of the Amplify collection's state
  machine (aws/amplify_steps.py); the configuration comes in the run's input (`config`, as the
  EventBridge rule passes it) or from CONFIG_JSON, the lake is LOGLAKE_LAKE_BUCKET, and the finishing
  step starts the Glue crawler LOGLAKE_GLUE_CRAWLER when set.
- `compact`: on a schedule, merges the small parts of the lake's recent days, and of older days that got parts
  late (aws/compaction.py); `{"days": ["YYYY-MM-DD", ...]}` as its input merges those days.
- `retention`: daily, deletes the lake's days past their retention (aws/retention.py).
- `flush_stream`: DynamoDB Streams (new records) to Parquet parts in the lake bucket
  (LOGLAKE_LAKE_BUCKET), see aws/stream_flush.py.
- `ask`: POST /ask, /ask/explain and /ask/{conversationId}/rule with Bedrock, Athena and DynamoDB
  (aws/ask.py).
- `detect`: on a schedule, the bundled rules' due windows run by Athena, alerts and their deliveries
  in DynamoDB, the deliveries queued; `route_alerts`: the delivery queue's messages sent to their
  destinations and topics (aws/detections.py).

Every API invocation prints one JSON line: a structured log (request id, route, status, latency) that is
also a CloudWatch embedded-metric-format record (RecordsIngested, RecordsRejected, Latency).

Environment: LOGLAKE_DYNAMODB_TABLE (required), LOGLAKE_TIME_SHARDS
(4: partitions per index key; every function must use the same), the standard AWS
variables (region, credentials, AWS_ENDPOINT_URL_DYNAMODB for a local endpoint).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import boto3

from loglake.aws.apigateway import call, fit_for_lambda, json_body_of, scope_of
from loglake.config import Settings
from loglake.store.dynamodb import TIME_SHARDS, DynamoDBHotStore

NAMESPACE = "loglake"
_app: Any = None
_router: Any = None  # the alert router's clients and secrets cache, per container
_ask: Any = None  # the ask function's Asker and clients, per container
DETECTION_QUERY_SECONDS = 300  # one rule's query (the function runs up to 15 minutes)


def api(event: dict[str, Any], context: Any) -> dict[str, Any]:
    started = time.perf_counter()
    app = _api_app()
    response = asyncio.run(call(app, event))
    app.access_log.flush()  # the container may be frozen until its next request: nothing waits in a buffer
    _log_invocation(event, context, response, (time.perf_counter() - started) * 1000)
    return response


def query(event: dict[str, Any], context: Any) -> dict[str, Any]:
    from loglake.api.http import ApiError
    from loglake.lake.query_answers import QueryBusy, parse_query_request, result_to_dict
    from loglake.lake.sql_guard import QueryError

    started = time.perf_counter()
    status, body, headers = 200, {}, {"content-type": "application/json"}
    try:
        wanted = parse_query_request(json_body_of(event, "POST /query", '{"sql": "SELECT ...", "limit": 100}'))
        body = result_to_dict(_athena_engine().query(**wanted.options()))
    except ApiError as e:
        status, body = e.status, e.body()
    except QueryError as e:
        status, body = 400, ApiError(400, e.code, e.message).body()
    except QueryBusy as e:
        status, body = 503, ApiError(503, "busy", f"{e}; retry shortly").body()
        headers["retry-after"] = "5"
    except Exception as e:
        status, body = 500, unexpected(event, e).body()
    headers |= _cors_headers(event)
    response = fit_for_lambda({"statusCode": status, "headers": headers, "body": json.dumps(body)})
    _log_invocation(event, context, response, (time.perf_counter() - started) * 1000)
    return response


def ask(event: dict[str, Any], context: Any) -> dict[str, Any]:
    global _ask
    started = time.perf_counter()
    if _ask is None:
        from loglake.aws.ask import ask_api_from_environment

        _ask = ask_api_from_environment(dict(os.environ), _athena_engine())
    response = _ask.handle(event, context)
    _log_invocation(event, context, response, (time.perf_counter() - started) * 1000)
    return response


def unexpected(event: dict[str, Any], error: Exception) -> Any:
    """For a function answering without the app: the app's 500 for an error nobody foresaw (a bug, a permission
    the role lacks), its traceback logged with the request id, rather than Lambda's error (API Gateway's bare 502
    "Internal server error", with nothing to quote)."""
    from loglake.api.accesslog import internal_error, unhandled_exception_line

    request_id = (event.get("requestContext") or {}).get("requestId") or ""
    print(json.dumps(unhandled_exception_line(request_id, error)), file=sys.stderr, flush=True)
    return internal_error(request_id)


def _cors_headers(event: dict[str, Any]) -> dict[str, str]:
    """For a function answering without the app (POST /query): the app's CORS headers."""
    from loglake.api.cors import response_headers
    from loglake.api.http import Request
    from loglake.config import parse_origins

    origin = Request(scope_of(event), None).header(b"origin")  # (as the app reads it: any character encodes back)
    allowed = parse_origins(os.environ.get("LOGLAKE_CORS_ALLOW_ORIGINS", ""))
    return {name.decode(): value.decode() for name, value in response_headers(origin, allowed)}


@functools.cache
def _athena_engine(timeout_seconds: float = 25) -> Any:
    """One engine (and boto3 client) per Lambda container. API Gateway gives up on an integration
    after 29 s: a query must end (or be cancelled) before that; the detection function waits longer."""
    from loglake.aws.athena import AthenaQueryEngine
    from loglake.lake.query_limits import QueryLimits

    database, workgroup = os.environ.get("LOGLAKE_ATHENA_DATABASE"), os.environ.get("LOGLAKE_ATHENA_WORKGROUP")
    if not database or not workgroup:
        raise RuntimeError(
            "set LOGLAKE_ATHENA_DATABASE and LOGLAKE_ATHENA_WORKGROUP (the stack's Glue database, workgroup)"
        )
    return AthenaQueryEngine(boto3.client("athena"), database, workgroup, QueryLimits(timeout_seconds=timeout_seconds))


def amplify_plan(event: dict[str, Any], context: Any) -> dict[str, Any]:
    from loglake.aws import amplify_steps

    now = _event_time(event)
    planned = amplify_steps.plan(_amplify_config(event), _lake(), now)
    return planned | {"config": _amplify_document(event)}


def amplify_download(event: dict[str, Any], context: Any) -> dict[str, Any]:
    from loglake.amplify.collector import Collector
    from loglake.amplify.source import AmplifyLogSource
    from loglake.aws import amplify_steps

    config, lake = _amplify_config(event), _lake()
    # The configuration's `profile` names a role to assume (LOGLAKE_AMPLIFY_ROLES) or the function's own.
    roles = json.loads(os.environ.get("LOGLAKE_AMPLIFY_ROLES") or "{}")
    sessions = amplify_steps.role_sessions(roles, boto3.Session)
    collector = Collector(config, None, lake, AmplifyLogSource(session_factory=sessions))
    try:
        result = amplify_steps.download(config, lake, event["app"], event["window"], event["run_at"], collector)
    except Exception as e:
        # Raised from here, Lambda's error (which the state machine keeps per failed window) holds a short
        # message and a one-line stack, not the library's whole traceback.
        failure = {"app": event["app"], "window": event["window"], "error": repr(e)}
        _log_event(context, "amplify_window_failed", failure, level="ERROR")
        raise WindowFailed((str(e) or type(e).__name__)[:WINDOW_ERROR_CHARS]) from None
    finally:
        collector.source.close()
    _log_event(context, "amplify_window", result)  # every figure, malformed examples included
    # The state machine carries only what the finishing step reads: a run's whole state (every app's
    # windows) must stay under Step Functions' 256 KB.
    return {name: result[name] for name in amplify_steps.WINDOW_RESULT_FIELDS}


class WindowFailed(RuntimeError):
    """An Amplify window that could not be fetched or stored (the state machine retries it)."""


WINDOW_ERROR_CHARS = 300


def amplify_finish(event: dict[str, Any], context: Any) -> dict[str, Any]:
    from loglake.aws import amplify_steps

    summary = amplify_steps.finish(_lake(), event["results"])
    crawler = os.environ.get("LOGLAKE_GLUE_CRAWLER")
    if crawler:
        glue = boto3.client("glue")
        with contextlib.suppress(glue.exceptions.CrawlerRunningException):  # one under way reads them too
            glue.start_crawler(Name=crawler)
    _log_event(context, "amplify_collection", summary, level="INFO" if summary["ok"] else "WARNING")
    return summary


def _event_time(event: dict[str, Any]) -> datetime:
    """When an EventBridge-scheduled run was due (its `time`), else now."""
    from loglake.times import parse_datetime

    return parse_datetime(event["time"]) if event.get("time") else datetime.now(UTC)


def _amplify_document(event: dict[str, Any]) -> dict[str, Any]:
    document = event.get("config")
    if document is None:
        document = json.loads(os.environ.get("CONFIG_JSON") or "null")
    if not isinstance(document, dict):
        raise ValueError("no Amplify configuration: put it in the input as 'config' or set CONFIG_JSON")
    return document


def _amplify_config(event: dict[str, Any]) -> Any:
    from loglake.amplify.config import parse_config

    return parse_config(_amplify_document(event))


def _lake() -> Any:
    from loglake.lake.objectstore import S3ObjectStore

    bucket = os.environ.get("LOGLAKE_LAKE_BUCKET")
    if not bucket:
        raise RuntimeError("set LOGLAKE_LAKE_BUCKET to the lake's S3 bucket")
    return S3ObjectStore(boto3.client("s3"), bucket)


def _claimed_lake(context: Any) -> Any:
    """The lake, claimed for the deployment (lake/claim.py) by the hourly compaction, which deletes the parts it
    merges: a data dir given the bucket is then refused, rather than losing those files from its catalog."""
    from loglake.lake.claim import claim_for_deployment

    lake = _lake()
    replaced = claim_for_deployment(lake, lake.bucket)
    if replaced is not None:
        _log_event(context, "lake_claimed", {"replaced_claim": replaced}, level="WARNING")
    return lake


def compact(event: dict[str, Any], context: Any) -> dict[str, Any]:
    from loglake.aws.compaction import MERGE_RESERVE_MS, compact_days, late_days, scheduled_days
    from loglake.aws.maintenance_lease import LakeBusy

    now = _event_time(event)
    lake = _claimed_lake(context)
    remaining = _time_left_ms(context)
    try:
        with _maintenance_lease(lake, "compaction", context, MERGE_RESERVE_MS):
            late = late_days(lake)
            days = (
                [date.fromisoformat(d) for d in event["days"]]
                if event.get("days")
                else scheduled_days(now.date(), late)
            )
            # A merge is only started with time for it left: what is left, the next run merges.
            time_left = None if remaining is None else lambda: remaining() > MERGE_RESERVE_MS
            report = compact_days(lake, days, int(now.timestamp() * 1000), late=late, time_left=time_left)
    except LakeBusy as busy:
        return _skipped(context, "lake_compaction", busy)
    summary = {"merged_files": report.merged_files, "written_files": report.written_files, "damaged": report.damaged,
               "late_days_waiting": len(set(late) - set(days)), "partitions_left": len(report.left),
               "first_left": report.left[0] if report.left else None}  # fmt: skip
    _log_event(context, "lake_compaction", summary, level="WARNING" if report.damaged or report.left else "INFO")
    return summary


def retention(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Daily: the lake's days past their retention deleted (aws/retention.py): app logs after
    LOGLAKE_RETENTION_DAYS (0 keeps them), Amplify logs after the configuration's logRetention.days
    (the configuration from the input's `config` or CONFIG_JSON, when the deployment collects any)."""
    from loglake.aws.maintenance_lease import LakeBusy
    from loglake.aws.retention import RESERVE_MS, expire_lake

    now = _event_time(event)
    has_amplify = event.get("config") is not None or bool(os.environ.get("CONFIG_JSON"))
    amplify = _amplify_config(event) if has_amplify else None
    days = int(os.environ.get("LOGLAKE_RETENTION_DAYS", "365"))
    lake = _lake()
    try:
        with _maintenance_lease(lake, "retention", context, RESERVE_MS):
            summary = expire_lake(lake, now.date(), days, amplify).to_dict()
    except LakeBusy as busy:
        return _skipped(context, "lake_retention", busy)
    _log_event(context, "lake_retention", summary)
    return summary


def _maintenance_lease(lake: Any, holder: str, context: Any, spare_ms: int) -> Any:
    """The lake's maintenance lease for this run (aws/maintenance_lease.py), held until its end."""
    from loglake.aws.maintenance_lease import maintenance_lease

    return maintenance_lease(lake, holder, _time_left_ms(context), spare_ms, getattr(context, "aws_request_id", None))


def _time_left_ms(context: Any) -> Any:
    """The invocation's time left in ms, as a function (Lambda's context has one; None: no context tells)."""
    return getattr(context, "get_remaining_time_in_millis", None)


def _skipped(context: Any, event_name: str, busy: Exception) -> dict[str, Any]:
    """A maintenance run that found another at work: it did nothing, and says who holds the lake."""
    summary = {"skipped": str(busy)}
    _log_event(context, event_name, summary, level="WARNING")
    return summary


def flush_stream(event: dict[str, Any], context: Any) -> dict[str, Any]:
    from loglake.aws.stream_flush import flush_stream_batch

    keys = flush_stream_batch(event, _lake())
    _log_event(context, "stream_flush", {"stream_records": len(event.get("Records", [])), "objects": keys})
    return {"objects": keys}


def detect(event: dict[str, Any], context: Any) -> dict[str, Any]:
    from loglake.aws.detections import detector_from_environment

    detector = detector_from_environment(dict(os.environ), _athena_engine(DETECTION_QUERY_SECONDS))
    remaining = _time_left_ms(context)
    # A window is only started with a minute left: a run stopped by the timeout holds its window until its lease ends.
    summary = detector.run(int(time.time() * 1000), lambda: remaining is None or remaining() > 60_000)
    failed = any(r["outcome"] == "error" for r in summary["runs"])
    _log_event(context, "detections", summary, level="ERROR" if failed else "INFO")
    return summary


def route_alerts(event: dict[str, Any], context: Any) -> dict[str, Any]:
    global _router
    if _router is None:
        from loglake.aws.detections import router_from_environment

        _router = router_from_environment(dict(os.environ))
    answer = _router.handle(event)
    _log_event(context, "alert_deliveries", {"messages": len(event.get("Records", [])), **answer})
    return answer


def _log_event(context: Any, name: str, fields: dict[str, Any], level: str = "INFO") -> None:
    """One structured JSON line (CloudWatch Logs Insights reads its fields) with the invocation's id."""
    line = {"level": level, "request_id": getattr(context, "aws_request_id", None), "event": name, **fields}
    print(json.dumps(line), flush=True)


def _api_app() -> Any:
    """One app per Lambda container, reused by its invocations."""
    global _app
    if _app is None:
        from loglake.api.app import LoglakeApp
        from loglake.aws.api_auth import IamAuthorizedApp

        table = os.environ.get("LOGLAKE_DYNAMODB_TABLE")
        if not table:
            raise RuntimeError("set LOGLAKE_DYNAMODB_TABLE to the hot store's DynamoDB table")
        shards = int(os.environ.get("LOGLAKE_TIME_SHARDS", str(TIME_SHARDS)))
        store = DynamoDBHotStore(boto3.client("dynamodb"), table, shards=shards)
        # Behind API Gateway with IAM authorization: requests arrive authenticated and throttled.
        # The access log (and the traceback of any 500) goes to stderr, i.e. CloudWatch Logs.
        settings = Settings(
            data_dir=Path(os.environ.get("LOGLAKE_DATA_DIR", "/tmp/loglake")),
            auth=False,
            access_log="-",
            cors_allow_origins=os.environ.get("LOGLAKE_CORS_ALLOW_ORIGINS", ""),
            retention_days=int(os.environ.get("LOGLAKE_RETENTION_DAYS", "0")),
        )
        record_search = None
        if os.environ.get("LOGLAKE_ATHENA_WORKGROUP"):  # search, histogram and old ids: Athena over the lake
            from loglake.aws.athena_search import AthenaSearch

            record_search = AthenaSearch(_athena_engine())
        app_class: type[LoglakeApp] = IamAuthorizedApp
        if os.environ.get("LOGLAKE_UI_SESSIONS_TABLE"):  # the web UI's function: signed in through Cognito
            from loglake.aws.ui_auth import CognitoUiApp as app_class
        _app = app_class.from_settings(settings, store=store, record_search=record_search)
    return _app


def reset() -> None:
    """Forget the cached app, router and Athena engine (tests change the environment between invocations)."""
    global _app, _router, _ask
    if _app is not None:
        _app.close()
    if _router is not None:
        _router.close()
    _app = _router = _ask = None
    _athena_engine.cache_clear()


def _log_invocation(event: dict[str, Any], context: Any, response: dict[str, Any], latency_ms: float) -> None:
    ingested = rejected = 0
    if event.get("httpMethod") == "POST" and event.get("path") == "/logs":
        answer = _json(response.get("body"))
        if response["statusCode"] == 201:
            ingested = answer.get("count", 1)
        elif response["statusCode"] == 400:
            details = answer.get("error", {}).get("details", [])
            # (a detail of the request rather than of a record, a query parameter's, has the index null)
            indexes = {d.get("index") for d in details if isinstance(d, dict)}
            rejected = len({i for i in indexes if isinstance(i, int) and i >= 0})
    function = getattr(context, "function_name", "loglake-api")
    line = {
        "_aws": {
            "Timestamp": int(time.time() * 1000),
            "CloudWatchMetrics": [
                {
                    "Namespace": NAMESPACE,
                    "Dimensions": [["Function"]],
                    "Metrics": [
                        {"Name": "RecordsIngested", "Unit": "Count"},
                        {"Name": "RecordsRejected", "Unit": "Count"},
                        {"Name": "Latency", "Unit": "Milliseconds"},
                    ],
                }
            ],
        },
        "Function": function,
        "RecordsIngested": ingested,
        "RecordsRejected": rejected,
        "Latency": round(latency_ms, 3),
        "level": "INFO" if response["statusCode"] < 500 else "ERROR",
        "request_id": getattr(context, "aws_request_id", None),
        "api_request_id": (event.get("requestContext") or {}).get("requestId"),
        "method": event.get("httpMethod"),
        "path": event.get("path"),
        "status": response["statusCode"],
    }
    print(json.dumps(line), file=sys.stdout, flush=True)


def _json(text: Any) -> dict:
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
