"""LoglakeApp's part as the runtime's observer (runtime.RuntimeObserver): what the runtime reports (commits,
lake maintenance, Amplify collections, rule runs, syslog tallies) counted in the metrics and written to the
access log; a commit also clears the storage error /healthz shows."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING

from loglake.alerts.routing import is_routing_problem, while_broken
from loglake.rules.model import warnings_of

if TYPE_CHECKING:
    from loglake.amplify.run_reports import RunReport
    from loglake.api.accesslog import AccessLog
    from loglake.api.metrics import Metrics
    from loglake.lake.lake import MaintenanceReport
    from loglake.protocols.syslog import SyslogTally
    from loglake.rules.model import Problem, Rule
    from loglake.rules.state import RunRecord
    from loglake.store.base import StoreUnavailable


class RuntimeEvents:
    """The runtime's reports, heard by the app (api/app.py's LoglakeApp, which sets these attributes)."""

    metrics: Metrics
    access_log: AccessLog
    storage_error: str | None  # why the store refused writes last, until a write succeeds
    storage_error_in_lake: bool  # the lake's object store refused it, not the hot store
    storage_checked_at: float  # (time.monotonic) when storage last refused a write or /healthz probed it
    _loop: asyncio.AbstractEventLoop | None  # the server's, once the lifespan started

    def storage_refused(self, error: StoreUnavailable) -> None:
        """A write was refused: /healthz says so (to readers: the client gets no server path) until one to the same
        store succeeds."""
        self.storage_error = error.for_operators()
        self.storage_error_in_lake = error.in_lake
        self.storage_checked_at = time.monotonic()

    def storage_accepted(self, hot_store_only: bool = False) -> None:
        """A write went in (a bulk batch's, /healthz's probe of the store that refused; `hot_store_only`, a hot
        store commit, which says nothing of an S3 lake that refuses): storage takes writes again."""
        if not (hot_store_only and self.storage_error_in_lake):
            self.storage_error = None

    def on_maintenance(self, report: MaintenanceReport) -> None:
        did = report.flushed.records or report.compacted.merged_files or report.expired or report.garbage_deleted
        if did or report.recovered_rounds:
            self.access_log.event(
                {
                    "event": "lake_maintenance",
                    "recovered_rounds": report.recovered_rounds,  # left half done by a process that died
                    "flushed_records": report.flushed.records,
                    "flushed_files": len(report.flushed.objects),
                    "flush_s": round(report.flushed.seconds, 3),
                    "compacted_files": report.compacted.merged_files,
                    "expired_partitions": [f"{p.table}/{p.day}" for p in report.expired],
                    "deleted_objects": report.garbage_deleted,
                }
            )

    def on_amplify_report(self, report: RunReport) -> None:
        self.access_log.event(
            {"level": "info" if report.ok else "warning", "event": "amplify_collection", **report.to_dict()}
        )

    def on_rule_run(self, rule: Rule, record: RunRecord) -> None:
        self.metrics.on_rule_run(rule, record)
        if record.outcome != "ok" or record.matches:
            self.access_log.event(
                {
                    # (a skipped range's records were never checked)
                    "level": "warning" if record.outcome in ("error", "skipped") else "info",
                    "event": "rule_run",
                    "rule_id": rule.id,
                    "outcome": record.outcome,
                    "since_ms": record.since_ms,
                    "until_ms": record.until_ms,
                    "matches": record.matches,
                    "new_alerts": record.new_alerts,
                    "error": record.error,
                    "attempts": record.attempts,
                }
            )

    def on_rules_loaded(self, rules: list[Rule], problems: list[Problem]) -> None:
        self.metrics.on_rules_loaded(rules, problems)
        # A rule's warnings (it loads, but likely not as meant: a lookback read again at every run, say) are
        # logged with the problems, so that a log watcher sees them without asking GET /rules.
        warnings = warnings_of(rules)
        event = {
            "level": "warning" if problems or warnings else "info",
            "event": "rules_loaded",
            "rules": len(rules),
            "problems": [str(p) for p in problems],
            "warnings": warnings,
        }
        if any(map(is_routing_problem, problems)):  # (said, so that nobody thinks alerts are lost meanwhile)
            event["routing"] = while_broken(None)
        self.access_log.event(event)

    def on_syslog(self, tally: SyslogTally) -> None:
        """From the syslog listeners' thread: counted on the event loop, the metrics' one writer."""
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the server's loop has ended: nobody reads the metrics now
                self._loop.call_soon_threadsafe(self.metrics.on_syslog, tally)

    def on_commit(self, rows: int, seconds: float) -> None:
        self.metrics.on_commit(rows, seconds)
        self.storage_accepted(hot_store_only=True)
