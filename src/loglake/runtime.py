"""The composition root: one loglake built from Settings, the same way for `loglake serve`, the CLI and
the Lambda handlers.

It owns what lives as long as the process: the hot store, the lake and its maintenance job, the
Amplify collector and its schedule, the rule scheduler, the key store and the LogService over them. The edges adapt it:
the ASGI app turns HTTP into its calls and starts/stops its background jobs, the CLI opens one for a
command, Lambda keeps one per container. What the edges want to hear about (commits, maintenance
turns, collections, rule runs) reaches them through `observe`, so nothing here knows about HTTP or metrics.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from loglake.alerts.db import open_alerts_db
from loglake.alerts.retention import expire_alerts
from loglake.alerts.table import alerts_table
from loglake.amplify.collector import Collector
from loglake.amplify.config import AmplifyConfig, AmplifyConfigError, load_config
from loglake.amplify.jobs import AmplifySchedule, settings_for
from loglake.amplify.run_reports import RunReport
from loglake.arrivals import Arrivals
from loglake.config import ConfigError, Settings
from loglake.key_ring import KeyRing
from loglake.keys import KeyStore
from loglake.lake.lake import Lake, LakeJobs, MaintenanceReport
from loglake.model import retention_start_ms
from loglake.protocols.syslog import SyslogListeners, SyslogTally
from loglake.rules.model import Problem, Rule
from loglake.rules.scheduler import CatchUp, RuleFolder, RuleScheduler
from loglake.rules.state import RunRecord, open_state
from loglake.self_events import SelfEvents
from loglake.service import LogService, RecordSearch
from loglake.sqlitedb import SharedConnection
from loglake.store.base import HotStore
from loglake.store.sqlite import SQLiteHotStore
from loglake.times import format_datetime

if TYPE_CHECKING:
    from loglake.alerts.delivery import AlertDelivery

log = logging.getLogger("loglake.alerts")


class RuntimeObserver(Protocol):
    """What an edge hears from the runtime (the HTTP app: metrics, the access log, health)."""

    def on_commit(self, rows: int, seconds: float) -> None: ...

    def on_maintenance(self, report: MaintenanceReport) -> None: ...

    def on_amplify_report(self, report: RunReport) -> None: ...

    def on_rule_run(self, rule: Rule, record: RunRecord) -> None: ...

    def on_rules_loaded(self, rules: list[Rule], problems: list[Problem]) -> None: ...

    def on_syslog(self, tally: SyslogTally) -> None: ...


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
        self.rules: RuleScheduler | None = None
        # The detections database, for what people read and change (the API's alert routes); opened on
        # first use. None where the store is not local (the AWS deployment keeps no alerts.db).
        self.alerts_db: SharedConnection | None = None
        self.delivery: AlertDelivery | None = None  # alerts to their destinations (the outbox in the data dir)
        if isinstance(self.store, SQLiteHotStore):
            self.alerts_db = SharedConnection(lambda: open_alerts_db(settings.data_dir))
            # Imported here: delivery reads rule files (pySigma, YAML), which Lambda's layer leaves out.
            from loglake.alerts.delivery import AlertDelivery

            self.delivery = AlertDelivery(
                settings.data_dir, settings.rules_path, clock=clock, public_url=settings.public_url
            )
            arrivals = arrivals or Arrivals()
            self.lake = Lake.from_settings(settings, self.store, clock, live_tables=[alerts_table(settings.data_dir)])
            self.lake_jobs = LakeJobs(
                self.lake, settings.flush_interval_seconds, self._maintained, expire_others=self.expire_alerts
            )
            if amplify_config is not None:
                self.collector = Collector(
                    amplify_config, self.store, self.lake.objects, clock=clock, grace_ms=self.lake.policy.grace_ms
                )
                self.amplify = AmplifySchedule(
                    self.collector, amplify_config.schedule, settings.data_dir, clock, self._collected
                )
            self.rules = RuleScheduler(
                RuleFolder(settings.rules_path, required=bool(settings.rules_dir)),
                self.lake.engine,
                settings.data_dir,
                clock=clock,
                catch_up=CatchUp(
                    settings.rules_catch_up_windows,
                    settings.rules_catch_up_hours * 3_600_000,
                    settings.rules_wait_after_start_seconds * 1000,
                ),
                failing_after=settings.rules_failing_after,
                observer=self,
            )
        self.service = LogService(
            self.store, settings.limits, clock, lake=self.lake, record_search=record_search, arrivals=arrivals
        )
        # The syslog listeners (protocols/syslog.py), when the settings ask for them: bound by `loglake serve`
        # (which reports a port in use before it starts), served once started.
        self.syslog = (
            SyslogListeners(settings, self.service, self._syslog_report, clock)
            if SyslogListeners.wanted(settings)
            else None
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

    def open_databases(self) -> None:
        """Open alerts.db as the alert routes, the rules and the delivery will at their first use, migrating its
        tables if an older loglake made them. `loglake serve` calls this before it listens, so that an alerts.db a
        newer loglake migrated (a downgrade) stops the start (NewerSchema), where the server said it was up and
        /healthz and the alert routes answered 500."""
        if self.alerts_db is None or self.delivery is None:
            return
        with self.alerts_db.use():
            pass
        open_state(self.settings.data_dir).close()  # the rules' tables
        _ = self.delivery.outbox  # the outbox's, in the connection the delivery keeps

    def alerts_cutoff_ms(self) -> int:
        """Alerts resolved before this go (0: none): the start of alerts_retention_days, counted as the lake's."""
        return retention_start_ms(int(self.clock() * 1000), self.settings.alerts_retention_days)

    def expire_alerts(self, stop: threading.Event | None = None) -> int:
        """Delete the resolved alerts past alerts_retention_days (alerts/retention.py); how many went. The server's
        lake maintenance does it at each of its retention turns, `loglake retention` by hand."""
        if self.alerts_db is None:  # (the AWS deployment keeps no alerts.db)
            return 0
        cutoff_ms = self.alerts_cutoff_ms()
        deleted = expire_alerts(self.settings.data_dir, cutoff_ms, stop)
        if deleted:
            log.info("alert retention deleted %d alert(s) resolved before %s", deleted, format_datetime(cutoff_ms))
        return deleted

    def observe(self, observer: RuntimeObserver) -> None:
        self._observers.append(observer)

    def start(self) -> None:
        """Start the background jobs the settings ask for (lake maintenance, the Amplify schedule, the rules,
        alert delivery)."""
        if self.lake_jobs is not None:
            self.lake_jobs.start()
        if self.self_events is not None:
            self.self_events.start()
        if self.amplify is not None:
            self.amplify.start()
        if self.rules is not None:
            self.rules.start()
        if self.delivery is not None:
            self.delivery.start()
        if self.syslog is not None:
            self.syslog.start()

    def close(self) -> None:
        """Stop the jobs, then close what they use; safe whether or not `start` ran."""
        if self.syslog is not None:
            self.syslog.stop()  # commits what it read while the store is open
        if self.delivery is not None:
            self.delivery.stop()
        if self.amplify is not None:
            self.amplify.stop()
        if self.rules is not None:
            self.rules.stop()
        if self.collector is not None:
            self.collector.source.close()
        if self.self_events is not None:
            self.self_events.stop()  # writes what is pending (a last collection's failure too), store still open
        if self.lake_jobs is not None:
            self.lake_jobs.stop()
        if self.lake is not None:
            self.lake.close()
        if self.alerts_db is not None:
            self.alerts_db.close()
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

    def _syslog_report(self, tally: SyslogTally) -> None:
        for observer in self._observers:
            observer.on_syslog(tally)

    def on_rule_run(self, rule: Rule, record: RunRecord) -> None:
        for observer in self._observers:
            observer.on_rule_run(rule, record)

    def on_rules_loaded(self, rules: list[Rule], problems: list[Problem]) -> None:
        for observer in self._observers:
            observer.on_rules_loaded(rules, problems)


def _amplify_config(settings: Settings) -> AmplifyConfig | None:
    if not settings.amplify_config:
        return None
    try:
        return load_config(Path(settings.amplify_config))
    except AmplifyConfigError as e:
        raise ConfigError(f"amplify_config: {e}") from None
