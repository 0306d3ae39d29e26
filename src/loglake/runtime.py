"""The composition root: one loglake built from Settings, the same way for `loglake serve`, the CLI and
the Lambda handlers.

It owns what lives as long as the process: the hot store, the lake and its maintenance job, the
Amplify collector and its schedule, the key store and the LogService over them. The edges adapt it:
the ASGI app turns HTTP into its calls and starts/stops its background jobs, the CLI opens one for a
command, Lambda keeps one per container. What the edges want to hear about (commits, maintenance
turns, collections) reaches them through `observe`, so nothing here knows about HTTP or metrics.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import Protocol

from loglake.amplify.collector import Collector, RunReport
from loglake.amplify.config import AmplifyConfig, AmplifyConfigError, load_config
from loglake.amplify.jobs import AmplifySchedule, settings_for
from loglake.arrivals import Arrivals
from loglake.config import ConfigError, Settings
from loglake.keys import KeyRing, KeyStore
from loglake.lake.lake import Lake, LakeJobs, MaintenanceReport
from loglake.self_events import SelfEvents
from loglake.service import LogService, RecordSearch
from loglake.store.base import HotStore
from loglake.store.sqlite import SQLiteHotStore


class RuntimeObserver(Protocol):
    """What an edge hears from the runtime (the HTTP app: metrics, the access log, health)."""

    def on_commit(self, rows: int, seconds: float) -> None: ...

    def on_maintenance(self, report: MaintenanceReport) -> None: ...

    def on_amplify_report(self, report: RunReport) -> None: ...


class Runtime:
    """One loglake over one data dir. `store` and `record_search` replace the embedded defaults (the AWS
    deployment passes DynamoDB and Athena); a store other than SQLite has no local lake behind it, and
    no arrivals log either: other processes write to it too, so this one cannot say what arrived.
    `amplify_config` defaults to the file named by the settings (none: no collector); `arrivals`
    replaces the default arrivals log (tests pass a small one)."""

    def __init__(
        self,
        settings: Settings,
        *,
        store: HotStore | None = None,
        record_search: RecordSearch | None = None,
        amplify_config: AmplifyConfig | None = None,
        clock: Callable[[], float] = time.time,
        arrivals: Arrivals | None = None,
    ) -> None:
        amplify_config = amplify_config or _amplify_config(settings)
        if amplify_config is not None:
            settings = settings_for(settings, amplify_config)
        self.settings = settings
        self.clock = clock
        self._observers: list[RuntimeObserver] = []
        self.store = store or SQLiteHotStore(
            settings.hot_db_path,
            durability=settings.durability,
            max_size_bytes=settings.max_store_mb * 1024 * 1024,
            on_commit=self._committed,
        )
        self.lake: Lake | None = None
        self.lake_jobs: LakeJobs | None = None
        self.collector: Collector | None = None
        self.amplify: AmplifySchedule | None = None
        if isinstance(self.store, SQLiteHotStore):
            arrivals = arrivals or Arrivals()
            self.lake = Lake.from_settings(settings, self.store, clock)
            self.lake_jobs = LakeJobs(self.lake, settings.flush_interval_seconds, self._maintained)
            if amplify_config is not None:
                self.collector = Collector(
                    amplify_config, self.store, self.lake.objects, clock=clock, grace_ms=self.lake.policy.grace_ms
                )
                self.amplify = AmplifySchedule(
                    self.collector, amplify_config.schedule, settings.data_dir, clock, self._collected
                )
        self.service = LogService(
            self.store, settings.limits, clock, lake=self.lake, record_search=record_search, arrivals=arrivals
        )
        self._keys_opened = False
        # loglake's own events as records of its hot store (self_events.py)
        self.self_events = SelfEvents(self.store, clock) if isinstance(self.store, SQLiteHotStore) else None
        if self.self_events is not None:
            self.observe(self.self_events)

    @cached_property
    def keystore(self) -> KeyStore:
        """Opened on first use, so commands that never touch keys leave no key file behind."""
        self._keys_opened = True
        return KeyStore(self.settings.data_dir)

    @cached_property
    def keyring(self) -> KeyRing:
        return KeyRing(self.keystore)

    def observe(self, observer: RuntimeObserver) -> None:
        self._observers.append(observer)

    def start(self) -> None:
        """Start the background jobs the settings ask for (lake maintenance, the Amplify schedule)."""
        if self.lake_jobs is not None:
            self.lake_jobs.start()
        if self.self_events is not None:
            self.self_events.start()
        if self.amplify is not None:
            self.amplify.start()

    def close(self) -> None:
        """Stop the jobs, then close what they use; safe whether or not `start` ran."""
        if self.amplify is not None:
            self.amplify.stop()
        if self.collector is not None:
            self.collector.source.close()
        if self.self_events is not None:
            self.self_events.stop()  # writes what is pending (a last collection's failure too), store still open
        if self.lake_jobs is not None:
            self.lake_jobs.stop()
        if self.lake is not None:
            self.lake.close()
        self.store.close()
        if self._keys_opened:
            self.keystore.close()

    def _committed(self, rows: int, seconds: float) -> None:
        for observer in self._observers:
            observer.on_commit(rows, seconds)

    def _maintained(self, report: MaintenanceReport) -> None:
        for observer in self._observers:
            observer.on_maintenance(report)

    def _collected(self, report: RunReport) -> None:
        for observer in self._observers:
            observer.on_amplify_report(report)


def _amplify_config(settings: Settings) -> AmplifyConfig | None:
    if not settings.amplify_config:
        return None
    try:
        return load_config(Path(settings.amplify_config))
    except AmplifyConfigError as e:
        raise ConfigError(f"amplify_config: {e}") from None
