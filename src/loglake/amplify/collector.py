"""Collecting Amplify access logs into the lake: windows from a watermark, split, retried, exactly once.

For each app, the time from its watermark (the end of the last window collected in full; on the first
run, `logRetention.days` back) to the last whole hour before now less an hour (the newest hour's logs
are still arriving) is cut into windows of `timeChunkSize.days`. Each window is fetched (split in halves,
down to MAX_SPLIT_DEPTH levels, when the service finds it too large; retried with exponential backoff and
jitter when throttled or failing), parsed, de-duplicated by `x-edge-request-id` against itself and the
lake, and committed: its Parquet parts join the lake catalog, and the watermark moves past it, in one
transaction. A window that fails leaves the watermark where it is, so the next run fetches it again;
the windows after it are still collected, and what they held is never stored twice.

Logs can come late: the hours a run collected while younger than LATE are fetched once more by the first run
after they are that old (from a second mark per app, where rechecking stands), and the rows that came meanwhile
are stored then (the others are duplicates, skipped).
"""

from __future__ import annotations

import gzip
import json
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from loglake.amplify.config import AmplifyApp, AmplifyConfig
from loglake.amplify.lake_rows import StoredPartUnreadable, store_rows, use_schemas
from loglake.amplify.parse import NotAnAccessLog, parse_access_log
from loglake.amplify.run_reports import AppReport, RunReport, epoch_ms, from_ms, iso_utc
from loglake.amplify.source import AmplifyLogSource, Fatal, FetchError, RangeTooLarge, Retryable
from loglake.lake.layout import (
    AMPLIFY_ACCESS,
    AMPLIFY_LOGS,
    amplify_export_key,
    partition_prefix,
    partitions_of,
    quarantined_key,
)
from loglake.lake.manifest import collect_garbage, list_files, retire_files
from loglake.lake.objectstore import ObjectStore
from loglake.lake.tables import AMPLIFY_ACCESS_TABLE
from loglake.retry import Backoff, TryAgain
from loglake.store.sqlite import SQLiteHotStore

HOUR = timedelta(hours=1)
SETTLE = timedelta(hours=1)  # the newest hour's logs are still arriving: it waits for the next run
# CloudFront, which serves Amplify Hosting, delivers its access logs within about an hour, but "some or all log
# file entries for a time period can sometimes be delayed by up to 24 hours" (its developer guide, standard logs):
# an hour collected younger than this is fetched again once it is this old.
LATE = timedelta(hours=24)
MAX_SPLIT_DEPTH = 3  # a window too large is halved at most 3 times (into at most 8 ranges)
MAX_ATTEMPTS = 5  # calls per range when throttled or failing
BACKOFF_SECONDS = 1.0  # first pause; doubles each attempt, with full jitter, at most BACKOFF_CAP_SECONDS
BACKOFF_CAP_SECONDS = 60.0
MAX_PARALLEL_APPS = 4
# How far back a first run reaches at most. Amplify documents no limit; our users' original pipeline
# fetched a whole year every week, so a year is what the service is known to serve.
AMPLIFY_HISTORY_DAYS = 365

Progress = Callable[[str, int, int, int, int], None]  # app, windows done, windows planned, rows stored, windows failed
# app, what its collection does now: a window fetched, a pause before trying again, a split. A window can take half an
# hour (a range timing out at each of its splits, retries): said as it goes, not once the window is done.
Activity = Callable[[str, str], None]


@dataclass(frozen=True)
class Window:
    """A half-open time range [start, end), UTC."""

    start: datetime
    end: datetime

    def halves(self) -> tuple[Window, Window] | None:
        """Two halves cut on a whole hour (the API answers whole hours); None under two hours."""
        hours = int((self.end - self.start) / HOUR)
        if hours < 2:
            return None
        middle = self.start + HOUR * (hours // 2)
        return Window(self.start, middle), Window(middle, self.end)

    def __str__(self) -> str:
        return f"{iso_utc(self.start)} .. {iso_utc(self.end)}"


def plan_windows(since: datetime, until: datetime, chunk_days: int) -> list[Window]:
    windows, start, step = [], since, timedelta(days=chunk_days)
    while start < until:
        windows.append(Window(start, min(start + step, until)))
        start += step
    return windows


class Collector:
    def __init__(
        self,
        config: AmplifyConfig,
        store: SQLiteHotStore,
        lake: ObjectStore,
        source: AmplifyLogSource | None = None,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        on_progress: Progress | None = None,
        on_activity: Activity | None = None,
        max_parallel_apps: int = MAX_PARALLEL_APPS,
        grace_ms: int = 120_000,
    ) -> None:
        if store is not None:  # None on AWS, where the state is kept in S3 (aws/amplify_steps.py)
            use_schemas(store)
        self.config = config
        self.store = store
        self.lake = lake
        self.source = source or AmplifyLogSource()
        self.clock = clock
        # Full jitter: apps throttled together do not retry in step.
        self.backoff = Backoff(first=BACKOFF_SECONDS, cap=BACKOFF_CAP_SECONDS, sleep=sleep)
        self.on_progress = on_progress or (lambda app, done, total, rows, failed: None)
        self.on_activity = on_activity or (lambda app, doing: None)
        self.max_parallel_apps = max_parallel_apps
        self.grace_ms = grace_ms  # how long dropped files stay for queries already reading them

    # -- planning ----------------------------------------------------------------------------

    def watermark(self, app: str) -> datetime | None:
        """Where the app's collection continues from (None: it has not started)."""
        rows = self.store.read("SELECT until_ms FROM amplify_watermarks WHERE app = ?", (app,))
        return from_ms(rows[0][0]) if rows else None

    def rechecked(self, app: str) -> datetime | None:
        """Where rechecking the app's late logs stands: the hours before it need no more fetching (None: not
        started)."""
        rows = self.store.read("SELECT rechecked_ms FROM amplify_watermarks WHERE app = ?", (app,))
        return from_ms(rows[0][0]) if rows and rows[0][0] is not None else None

    def default_until(self) -> datetime:
        """The end of the last whole hour whose logs have settled."""
        now = datetime.fromtimestamp(self.clock(), UTC) - SETTLE
        return now.replace(minute=0, second=0, microsecond=0)

    def recheck_plan(self, watermark: datetime | None, rechecked: datetime | None) -> list[Window]:
        """The windows fetched again for their late logs: from where rechecking stands (for an app collected before
        there was rechecking, LATE before its watermark) to the last hour LATE old, never past the watermark (what
        was not collected yet is no recheck) nor before the retention period."""
        if watermark is None:
            return []
        since = max(rechecked or watermark - LATE, self.retention_start())
        return plan_windows(since, min(watermark, late_until(self._now())), self.config.chunk_days)

    def plan(
        self,
        app: AmplifyApp,
        since: datetime | None = None,
        until: datetime | None = None,
        watermark: Callable[[str], datetime | None] | None = None,
    ) -> list[Window]:
        """The windows a run fetches for `app`: from `since` (else its watermark, else the retention
        period back, at most AMPLIFY_HISTORY_DAYS) to `until` (else the last settled hour). On AWS the
        watermark comes from elsewhere than hot.db: pass `watermark(app_name)`.

        Both ends are kept within what can be collected for good: nothing after the last settled
        hour (its logs are still arriving, and a watermark past it would skip them for ever) and
        nothing before the retention period (it would be dropped again right after the run)."""
        settled = self.default_until()
        until = min(until or settled, settled)
        first_run = timedelta(days=min(self.config.retention_days, AMPLIFY_HISTORY_DAYS))
        if since is None:
            since = (watermark or self.watermark)(app.app_name) or _midnight(until - first_run)
        since = max(since, self.retention_start())
        return plan_windows(since, until, self.config.chunk_days)

    def retention_start(self) -> datetime:
        """The oldest moment logRetention.days keeps (whole days)."""
        now = datetime.fromtimestamp(self.clock(), UTC)
        return _midnight(now - timedelta(days=self.config.retention_days))

    # -- running -----------------------------------------------------------------------------

    def run(
        self,
        apps: list[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        report: RunReport | None = None,
    ) -> RunReport:
        """Collect the chosen apps (all by default) concurrently; the report is stored in hot.db.
        Without `since`, each app continues from its watermark; with it, exactly [since, until) is
        fetched, and the watermark only moves if the range continues it. A `report` given is the one filled in as
        the run goes: should the run fail as a whole (raise), its caller still has what the apps collected."""
        chosen = self.config.chosen(apps)
        started_ms = int(self.clock() * 1000)
        report = report or RunReport(started="")
        report.started = iso_utc(from_ms(started_ms))
        report.apps = [AppReport(app.app_name) for app in chosen]
        with ThreadPoolExecutor(min(self.max_parallel_apps, len(chosen)), "loglake-amplify") as pool:
            list(pool.map(lambda app, of_app: self._collect_app(app, since, until, of_app), chosen, report.apps))
        report.expired_partitions, report.expired_exports = self.expire(report.apps)
        finished_ms = self._now_ms()
        report.finished = iso_utc(from_ms(finished_ms))
        self.store_report(report, started_ms, finished_ms)
        return report

    def failed_run(
        self, started_ms: int, finished_ms: int, error: str, collected: RunReport | None = None
    ) -> RunReport:
        """The report of a run of every app that failed as a whole, raising `error`, with what its apps had collected
        before it did (`collected`, the report run() filled in): their windows done and rows stored are in the lake,
        and a report of nothing collected would say otherwise."""
        done = {a.app: a for a in collected.apps} if collected else {}
        apps = [done.get(a.app_name) or AppReport(a.app_name) for a in self.config.apps]
        report = RunReport(iso_utc(from_ms(started_ms)), iso_utc(from_ms(finished_ms)), apps, error=error)
        if collected:
            report.expired_partitions, report.expired_exports = collected.expired_partitions, collected.expired_exports
        return report

    def store_report(self, report: RunReport, started_ms: int, finished_ms: int) -> None:
        """Keep a run's report in hot.db (`loglake amplify status`, GET /amplify/status)."""
        document = json.dumps(report.to_dict())
        kept_from_ms = epoch_ms(self.retention_start())

        def store(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO amplify_runs (started_ms, finished_ms, report) VALUES (?, ?, ?)",
                (started_ms, finished_ms, document),
            )
            # reports go with the logs they were about (a daily schedule writes 365 a year, more with runs by hand)
            conn.execute("DELETE FROM amplify_runs WHERE finished_ms < ?", (kept_from_ms,))

        self.store.in_write_transaction(store).result()

    def expire(self, reports: list[AppReport] | None = None) -> tuple[int, int]:
        """Drop what is older than logRetention.days for the configured apps: whole (app, date)
        partitions of amplify_access (their files go after the grace period, and with them those
        whose grace period is over) and the exports collected before it. Returns both counts.

        An app's exports that cannot be dropped (a policy on its folder, say) are that app's failure, told in its
        report among `reports` (the run's), and the other apps' still go; the catalog and the manifests are the
        whole lake's, and so is an app's outside the run (it has no report): their failures raise."""
        cutoff = self.retention_start().date()
        apps = {a.app_name for a in self.config.apps}
        old = [
            f
            for f in list_files(self.store.read, AMPLIFY_ACCESS_TABLE.name, until_ms=epoch_ms(_midnight_of(cutoff)))
            if f.day < cutoff.isoformat() and partitions_of(f.key).get("app") in apps
        ]
        if old:
            delete_after = self._now_ms() + self.grace_ms
            self.store.in_write_transaction(
                lambda conn: retire_files(conn, [f.key for f in old], delete_after)
            ).result()
        collect_garbage(self.store, self.lake, self._now_ms())
        of_run = {r.app: r for r in reports or []}
        exports, outside_run = 0, None
        for app in sorted(apps):
            try:
                exports += self._expire_exports(app, cutoff)
            except Exception as e:
                if app not in of_run:
                    outside_run = outside_run or e
                    continue
                of_run[app].errors.append(f"dropping its exports from before {cutoff}: {type(e).__name__}: {e}")
        if outside_run is not None:
            raise outside_run
        return len({(partitions_of(f.key)["app"], f.day) for f in old}), exports

    def _expire_exports(self, app: str, cutoff: date) -> int:
        """Delete the app's exports collected before `cutoff`, and its access-log parts of days before it that
        `loglake verify --quarantine` kept (out of the table, not of logRetention.days); how many exports."""
        exports = [
            o.key
            for o in self.lake.list(partition_prefix(AMPLIFY_LOGS, app=app))
            if partitions_of(o.key).get("date_export", "9999") < cutoff.isoformat()
        ]
        quarantined = [
            o.key
            for o in self.lake.list(quarantined_key(partition_prefix(AMPLIFY_ACCESS, app=app)))
            if partitions_of(o.key).get("date", "9999") < cutoff.isoformat()
        ]
        for key in exports + quarantined:
            self.lake.delete(key)
        return len(exports)

    def _collect_app(
        self, app: AmplifyApp, since: datetime | None, until: datetime | None, report: AppReport
    ) -> AppReport:
        started = time.perf_counter()
        try:
            self._collect_windows(app, since, until, report)
        except Exception as e:  # the app's own failure (reading or moving its marks): the other apps go on
            report.errors.append(f"{type(e).__name__}: {e}")
        report.seconds = round(time.perf_counter() - started, 3)
        return report

    def _collect_windows(
        self, app: AmplifyApp, since: datetime | None, until: datetime | None, report: AppReport
    ) -> None:
        watermark = self.watermark(app.app_name)
        report.watermark_before = iso_utc(watermark) if watermark else None
        # A range chosen by hand is fetched as it is: the late logs are the scheduled runs' to recheck.
        rechecked = self.rechecked(app.app_name) if since is None else None
        rechecks = self.recheck_plan(watermark, rechecked) if since is None else []
        windows = self.plan(app, since, until)
        report.windows = len(rechecks) + len(windows)
        # The recheck mark moves over rechecks that continue it; the watermark over windows that continue it, and a
        # first scheduled run starts one. A scheduled run's windows and rechecks continue their marks even where the
        # retention period has passed them (they start where it starts: what was before is gone), or each would hold
        # for ever and every run fetch the whole retention period again.
        rechecked_to = rechecks[0].start if rechecks else rechecked
        contiguous_from = windows[0].start if windows and since is None else watermark
        self.on_progress(app.app_name, 0, report.windows, 0, 0)
        for number, (window, is_recheck) in enumerate([(w, True) for w in rechecks] + [(w, False) for w in windows], 1):
            rows_before = report.rows
            continues = not is_recheck and contiguous_from is not None and window.start <= contiguous_from
            again = " again, for its late logs" if is_recheck else ""
            self.on_activity(app.app_name, f"window {number}/{report.windows}: fetching {window}{again}")
            try:
                self._collect_window(app, window, report, advance_watermark=continues)
                report.windows_ok += 1
                if is_recheck:
                    report.late_rows += report.rows - rows_before
                    if rechecked_to is not None and window.start <= rechecked_to:
                        rechecked_to = max(rechecked_to, window.end)
                elif continues:
                    contiguous_from = max(contiguous_from, window.end)
            except Exception as e:  # this window failed; the others and the other apps go on
                report.windows_failed += 1
                known = isinstance(e, FetchError | NotAnAccessLog | StoredPartUnreadable)
                report.errors.append(f"{window}: {e}" if known else f"{window}: {type(e).__name__}: {e}")
                if is_recheck:  # (nothing after it moves the recheck mark)
                    rechecked_to = None if rechecked_to is None else min(rechecked_to, window.start)
                else:
                    contiguous_from = None  # nothing after a failed window moves the watermark
            self.on_progress(app.app_name, number, report.windows, report.rows, report.windows_failed)
        after = self.watermark(app.app_name)
        report.watermark_after = iso_utc(after) if after else None
        if since is None:
            moved = rechecked_after(watermark, rechecked_to, after, late_until(self._now()))
            self._move_recheck_mark(app.app_name, moved, rechecked)

    def _move_recheck_mark(self, app: str, to: datetime | None, was: datetime | None) -> None:
        if to is not None and to != was:
            self.store.in_write_transaction(
                lambda conn: conn.execute(
                    "UPDATE amplify_watermarks SET rechecked_ms = ? WHERE app = ?", (epoch_ms(to), app)
                )
            ).result()

    def _collect_window(self, app: AmplifyApp, window: Window, report: AppReport, advance_watermark: bool) -> None:
        pieces = self.fetch(app, window, report)
        run_at = datetime.fromtimestamp(self.clock(), UTC)
        parsed = []
        for piece, data in pieces:
            report.bytes += len(data)
            parsed.append(parse_access_log(data, epoch_ms(piece.start), epoch_ms(piece.end)))
        for piece, data in pieces:  # the exports as delivered, for the layout our users' Athena reads
            if data:
                self.lake.put(amplify_export_key(app.app_name, run_at, piece.start, piece.end), gzipped(data))
        watermark = window.end if advance_watermark else None  # last: the window is done with this
        store_rows(self.store, self.lake, app.app_name, parsed, report, self._now_ms(), watermark)

    def fetch(self, app: AmplifyApp, window: Window, report: AppReport, depth: int = 0) -> list[tuple[Window, bytes]]:
        """The window's export, or its halves' exports when the service finds it too large (retrying
        throttling and 5xx); raises Fatal when the window cannot be had."""
        try:
            fetched = self._with_retries(lambda: self.source.fetch(app, window.start, window.end), report, app, window)
            return [(window, fetched)]
        except RangeTooLarge as e:
            halves = window.halves()
            if depth >= MAX_SPLIT_DEPTH or halves is None:
                raise Fatal(f"still too large after splitting {depth} times: {e}") from None
            report.splits += 1
            self.on_activity(app.app_name, f"{window}: too large for one export ({e}); fetching it in halves")
            return [part for half in halves for part in self.fetch(app, half, report, depth + 1)]

    def _with_retries(self, call: Callable[[], bytes], report: AppReport, app: AmplifyApp, window: Window) -> bytes:
        failed: list[Retryable] = []

        def attempt() -> bytes:
            try:
                return call()
            except Retryable as e:
                failed.append(e)
                raise TryAgain(Fatal(f"gave up after {MAX_ATTEMPTS} attempts: {e}")) from None

        def count(error: Exception, pause: float) -> None:
            report.retries += 1
            self.on_activity(
                app.app_name,
                f"{window}: {failed[-1]}; trying again in {pause:.1f} s (attempt {len(failed) + 1} of {MAX_ATTEMPTS})",
            )

        return self.backoff.run(attempt, attempts=MAX_ATTEMPTS, on_retry=count)

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)


def rechecked_after(
    watermark_before: datetime | None,
    rechecked: datetime | None,
    watermark_after: datetime | None,
    late_until: datetime,
) -> datetime | None:
    """Where rechecking stands after a run whose rechecks went contiguously to `rechecked`, run when `late_until`
    was the end of the last whole hour LATE old: once its rechecks reached the watermark it started from (or there
    was none), every hour it collected before late_until was collected that old, and needs no recheck."""
    if watermark_after is None:
        return rechecked
    if watermark_before is None or (rechecked is not None and rechecked >= watermark_before):
        old_enough = min(watermark_after, late_until)
        return old_enough if rechecked is None else max(rechecked, old_enough)
    return rechecked


def late_until(now: datetime) -> datetime:
    """The end of the last whole hour LATE before `now`: the hours before it have all their logs."""
    return (now - LATE).replace(minute=0, second=0, microsecond=0)


def gzipped(data: bytes) -> bytes:
    """The export as delivered, gzip-compressed (unless it already is)."""
    return data if data[:2] == b"\x1f\x8b" else gzip.compress(data, compresslevel=6)


def _midnight_of(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time(), UTC)


def _midnight(moment: datetime) -> datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def collection_status(store: SQLiteHotStore, runs: int) -> tuple[list[tuple[str, int]], list[dict]]:
    """Each app's watermark (app, epoch ms) and the newest `runs` run reports, newest first."""
    use_schemas(store)
    marks = store.read("SELECT app, until_ms FROM amplify_watermarks ORDER BY app")
    reports = store.read("SELECT report FROM amplify_runs ORDER BY run_id DESC LIMIT ?", (runs,))
    return [tuple(m) for m in marks], [_stored_report(r) for (r,) in reports]


def _stored_report(text: str) -> dict:
    """A run's report as stored; one that cannot be read (edited by hand) says so instead of failing
    the status of every run."""
    try:
        report = json.loads(text)
    except (TypeError, ValueError) as e:
        return {"unreadable": f"this run's stored report is not JSON ({e})"}
    return report if isinstance(report, dict) else {"unreadable": "this run's stored report is not a JSON object"}
