"""Running the collector: where its lake is, one collection at a time per data dir, and the schedule
`loglake serve --amplify-config` keeps."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from loglake.amplify.collector import Collector
from loglake.amplify.config import AmplifyConfig, Schedule
from loglake.amplify.run_reports import RunReport, iso_utc
from loglake.config import ConfigError, Settings
from loglake.lake.repeated_failures import RepeatedFailures
from loglake.locks import exclusive_lock

log = logging.getLogger("loglake.amplify")
LOCK_FILE = "amplify.lock"
BUSY_RETRY = timedelta(minutes=1)  # how soon a scheduled run that found another collection running tries again


class CollectionBusy(Exception):
    """Another process (or the server's schedule) is collecting into this data dir right now."""


def settings_for(settings: Settings, config: AmplifyConfig) -> Settings:
    """The lake the collector writes to: the configuration's bucket when it names one (empty: the lake the
    settings name, the data dir's local one without a bucket). It must be the lake loglake queries, or the rows
    would be out of reach."""
    if not config.bucket:
        return settings
    if not settings.lake_bucket:
        return replace(settings, lake_bucket=config.bucket, lake_prefix=config.prefix)
    # (a prefix names the same folder with or without its slashes: the lake's `loglake/` is the file's `loglake`)
    lake_prefix, config_prefix = settings.lake_prefix.strip("/"), config.prefix.strip("/")
    if (settings.lake_bucket, lake_prefix) != (config.bucket, config_prefix):
        raise ConfigError(
            f"the Amplify configuration writes to s3://{config.bucket}/{config_prefix} but the lake is "
            f"s3://{settings.lake_bucket}/{lake_prefix}: make them the same ({settings.named('lake_bucket')}, "
            f"{settings.named('lake_prefix')}), or empty s3.bucket to collect into the lake as it is"
        )
    return settings


@contextlib.contextmanager
def collection_lock(data_dir: Path) -> Iterator[None]:
    """One collection per data dir at a time (two would fetch and de-duplicate the same windows)."""
    with exclusive_lock(data_dir / LOCK_FILE, wait=False) as holding:
        if not holding:
            raise CollectionBusy(
                f"another Amplify collection is running on {data_dir} (it holds {data_dir / LOCK_FILE}); "
                "wait for it to finish"
            )
        yield


class AmplifySchedule:
    """The server's collection thread: runs the collector at the configuration's schedule (UTC).

    `tick()` does one check (tests call it with their own clock); the thread calls it at least every
    minute and at each scheduled time."""

    def __init__(
        self,
        collector: Collector,
        schedule: Schedule,
        data_dir: Path,
        clock: Callable[[], float] = time.time,
        on_report: Callable[[RunReport], None] | None = None,
    ) -> None:
        self.collector = collector
        self.schedule = schedule
        self.data_dir = data_dir
        self.clock = clock
        self.on_report = on_report or (lambda report: None)
        self.next_run = schedule.next_run(self._now())
        self.last_report: RunReport | None = None
        self.last_error: str | None = None
        self.running = False
        self._unrecorded = RepeatedFailures(log, "recording a failed Amplify collection")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="loglake-amplify-schedule", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def tick(self) -> RunReport | None:
        """Run the collection if its time has come; returns its report."""
        if self._now() < self.next_run:
            return None
        self.running, busy = True, False
        started_ms = int(self.clock() * 1000)
        collected = RunReport(started="")  # what the apps collected, should the run fail as a whole
        try:
            with collection_lock(self.data_dir):
                report = self.collector.run(report=collected)
            self.last_report, self.last_error = report, None
            self.on_report(report)
            return report
        except CollectionBusy as e:
            self.last_error, busy = str(e), True
            return None
        except Exception as e:  # the schedule goes on; the error shows in /healthz and the log
            log.exception("Amplify collection failed")
            self.last_error = f"{type(e).__name__}: {e}"
            self._failed(started_ms, self.last_error, collected)
            return None
        finally:
            self.running = False
            # A collection by hand holding the data dir (`amplify collect --app`, `amplify import`) delays this run, a
            # minute at a time: it skipped it, leaving the apps uncollected until the next scheduled time, a week later.
            now = self._now()
            self.next_run = now + BUSY_RETRY if busy else self.schedule.next_run(now)

    def _failed(self, started_ms: int, error: str, collected: RunReport) -> None:
        """Report a run that failed as a whole as a run whose every app failed, as a failed window is reported:
        to `on_report` (loglake's own `collection_failed` events, which the starter rule "Amplify log collection
        failing" reads) and stored with the other runs, with what its apps collected before it failed. A collector
        failing at every run alerted nobody."""
        now_ms = int(self.clock() * 1000)
        self.last_report = report = self.collector.failed_run(started_ms, now_ms, error, collected)
        try:
            self.on_report(report)  # first: loglake's own events keep what a store that is down refuses, for later
            self.collector.store_report(report, started_ms, now_ms)
        except Exception as e:  # (the store is down too: said once, not at each run, and the schedule goes on)
            self._unrecorded.failed(e, (self.schedule.next_run(self._now()) - self._now()).total_seconds())
        else:
            self._unrecorded.succeeded()

    def status(self) -> dict[str, Any]:
        last = self.last_report
        return {
            "schedule": self.schedule.describe(),
            "next_run": iso_utc(self.next_run),
            "running": self.running,
            "last_run": None
            if last is None
            else {
                "started": last.started,
                "finished": last.finished,
                "ok": last.ok,
                "rows": sum(a.rows for a in last.apps),
                "windows_failed": sum(a.windows_failed for a in last.apps),
            },
            "last_error": self.last_error,
        }

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.tick()
            wait = (self.next_run - self._now()).total_seconds()
            self._stop.wait(min(max(wait, 1.0), 60.0))

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)
