"""The Amplify collector on AWS, split as our users' design describes, one Lambda per step of a Step
Functions run: a planner computes each app's windows, a downloader fetches, parses and stores one
window, and a finishing step moves each app's watermark over the windows that succeeded and starts
the Glue crawler. The same library code as `loglake amplify collect` does the work.

There is no hot.db on AWS: a watermark is a small JSON object in the lake bucket
(`_state/amplify/<app>.json`, with where rechecking for late logs stands), and a window's rows are checked
against the parts its partition already holds by listing the bucket, so a window fetched twice stores its rows
once. The windows fetched again for their late logs (collector.LATE) are planned first, marked `recheck`.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from loglake.amplify.collector import Collector, Window, gzipped, late_until, rechecked_after
from loglake.amplify.config import AmplifyConfig
from loglake.amplify.lake_rows import new_parts
from loglake.amplify.parse import parse_access_log
from loglake.amplify.run_reports import AppReport, epoch_ms, iso_utc
from loglake.lake.layout import amplify_export_key
from loglake.lake.objectstore import NO_SUCH_KEY, ObjectStore, ObjectStoreError
from loglake.lake.parts import file_name
from loglake.times import parse_datetime

log = logging.getLogger("loglake.amplify")

STATE_PREFIX = "_state/amplify/"
ROLE_SESSION_NAME = "loglake-amplify-download"
WINDOW_RESULT_FIELDS = ("app", "window", "ok", "rows")  # what finish() reads of a stored window


def role_sessions(roles: dict[str, str], base: Callable[[], Any]) -> Callable[..., Any]:
    """The downloader's session factory: in Lambda there are no AWS profiles, so an app's `profile`
    names either a role to assume (an app in another account, from the deployment's amplifyRoles) or,
    when it has none, the function's own role (`base()`, a boto3 Session). A download lasts at most
    15 minutes: the role's one-hour credentials outlive it."""

    def session(profile_name: str | None = None) -> Any:
        own = base()
        role = roles.get(profile_name or "")
        if role is None:
            return own
        credentials = own.client("sts").assume_role(RoleArn=role, RoleSessionName=ROLE_SESSION_NAME)["Credentials"]
        return type(own)(
            aws_access_key_id=credentials["AccessKeyId"],
            aws_secret_access_key=credentials["SecretAccessKey"],
            aws_session_token=credentials["SessionToken"],
        )

    return session


def plan(config: AmplifyConfig, lake: ObjectStore, now: datetime) -> dict[str, Any]:
    """Each app's windows from its watermark (the Step Functions Map's input)."""
    collector = Collector(config, None, lake, clock=now.timestamp)
    apps = []
    for app in config.apps:
        watermark, rechecked = read_state(lake, app.app_name)
        rechecks = collector.recheck_plan(watermark, rechecked)
        windows = collector.plan(app, watermark=lambda name, mark=watermark: mark)
        planned = [_window_json(w) | {"recheck": True} for w in rechecks] + [_window_json(w) for w in windows]
        apps.append({"app": app.app_name, "windows": planned})
    return {"run_at": iso_utc(now), "apps": apps}


def download(
    config: AmplifyConfig, lake: ObjectStore, app_name: str, window: dict, run_at: str, collector: Collector
) -> dict:
    """Fetch, parse and store one window (raises when it cannot be fetched: the state machine retries
    and then records the window as failed)."""
    app = config.app(app_name)
    span = Window(parse_datetime(window["start"]), parse_datetime(window["end"]))
    report = AppReport(app_name)
    pieces = collector.fetch(app, span, report)
    exported_at = parse_datetime(run_at)
    parsed = []
    for piece, data in pieces:
        report.bytes += len(data)
        parsed.append(parse_access_log(data, epoch_ms(piece.start), epoch_ms(piece.end)))
        if data:
            lake.put(amplify_export_key(app_name, exported_at, piece.start, piece.end), gzipped(data))
    work = Path(tempfile.mkdtemp(prefix="loglake-amplify-"))
    try:
        files = new_parts(
            lake, app_name, parsed, report, epoch_ms(exported_at), work, lambda prefix: _stored(lake, prefix)
        )
        for part in files:
            lake.put_file(part.key, work / file_name(part.key))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {
        "app": app_name,
        "window": window,
        "ok": True,
        "rows": report.rows,  # (of a recheck: the late rows)
        "duplicates": report.duplicates,
        "malformed": report.malformed,
        "malformed_examples": report.malformed_examples,
        "bytes": report.bytes,
        "retries": report.retries,
        "splits": report.splits,
    }


def finish(lake: ObjectStore, results: list[dict]) -> dict[str, Any]:
    """Move each app's watermark over its windows that succeeded, in order from where it stood, and where
    rechecking stands over its rechecks likewise, and report per app. `results` holds one entry per app: {"app",
    "run_at" (the plan's), "windows": [download result, or {"window", "ok": false, "error"}]}."""
    summary = []
    for entry in results:
        app_name = entry["app"]
        before, rechecked = read_state(lake, app_name)
        windows = sorted(entry.get("windows", []), key=lambda r: r["window"]["start"])
        failed = [r for r in windows if not r.get("ok")]
        rechecks = [r for r in windows if r["window"].get("recheck")]
        regular = [r for r in windows if not r["window"].get("recheck")]
        # Each continues its mark from its first window where the plan started that past the mark, where the
        # retention period starts (what was before is gone): else the mark would hold for ever, every run fetching all
        # of it again.
        mark = _moved(_later(before, _start(regular)), regular)
        rechecked_to = _moved(_later(rechecked, _start(rechecks)), rechecks)
        if mark is not None:
            ran_at = parse_datetime(entry["run_at"]) if entry.get("run_at") else None
            moved = rechecked_after(before, rechecked_to, mark, late_until(ran_at)) if ran_at else rechecked
            write_state(lake, app_name, mark, moved)
        summary.append(
            {
                "app": app_name,
                "windows": len(windows),
                "windows_failed": len(failed),
                "rows": sum(r.get("rows", 0) for r in windows),
                "late_rows": sum(r.get("rows", 0) for r in rechecks),  # (of them: found by a recheck)
                "errors": [
                    f"{r['window']['start']} .. {r['window']['end']}: {_message(r.get('error'))}" for r in failed
                ],
                "watermark": iso_utc(mark) if mark else None,
            }
        )
    return {"ok": all(s["windows_failed"] == 0 for s in summary), "apps": summary}


def _message(error: Any) -> str:
    """A failed window's error as the state machine caught it: Lambda's error JSON (message, type,
    stack trace) reduced to its message."""
    try:
        document = json.loads(error)
    except (TypeError, ValueError):
        return str(error)
    return str(document.get("errorMessage", error)) if isinstance(document, dict) else str(error)


def _moved(mark: datetime | None, results: list[dict]) -> datetime | None:
    """`mark` moved over the windows (sorted) that succeeded and continue it, up to the first that failed."""
    for result in results:
        start, end = parse_datetime(result["window"]["start"]), parse_datetime(result["window"]["end"])
        if not result.get("ok") or (mark is not None and start > mark):
            break
        mark = max(mark or end, end)
    return mark


def _start(results: list[dict]) -> datetime | None:
    return parse_datetime(results[0]["window"]["start"]) if results else None


def _later(mark: datetime | None, start: datetime | None) -> datetime | None:
    return max(mark, start) if mark and start else mark or start


def read_state(lake: ObjectStore, app_name: str) -> tuple[datetime | None, datetime | None]:
    """The app's watermark and where rechecking for late logs stands (None: not started). ObjectStoreError when the
    lake cannot be read now: taken for no state, that planned the whole retention period again. A state that does
    not read (damaged outside loglake) is said and taken for none: it failed every run, no app collected again; the
    app's retention period is fetched again (its rows stored once) and the state written anew."""
    key = f"{STATE_PREFIX}{app_name}.json"
    try:
        text = lake.get(key)
    except ObjectStoreError as e:
        if e.code == NO_SUCH_KEY:
            return None, None
        raise
    try:
        state = json.loads(text)
        rechecked = state.get("rechecked")  # (a state written before late logs were rechecked has none)
        return parse_datetime(state["until"]), parse_datetime(rechecked) if rechecked else None
    except (ValueError, TypeError, KeyError, AttributeError) as e:
        log.warning("the Amplify collection's state %s does not read (%s): %s is collected from the start of its"
                    " retention period again", key, e, app_name)  # fmt: skip
        return None, None


def write_state(lake: ObjectStore, app_name: str, until: datetime, rechecked: datetime | None) -> None:
    state = {"until": iso_utc(until)} | ({"rechecked": iso_utc(rechecked)} if rechecked else {})
    lake.put(f"{STATE_PREFIX}{app_name}.json", json.dumps(state).encode())


def _stored(lake: ObjectStore, prefix: str) -> list[str]:
    return [o.key for o in lake.list(prefix) if o.key.endswith(".parquet")]


def _window_json(window: Window) -> dict[str, str]:
    return {"start": iso_utc(window.start), "end": iso_utc(window.end)}
