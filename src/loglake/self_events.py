"""loglake's own operational events as records it stores like any other (service `loglake`, log type
`internal`), so detection rules watch loglake with the same SQL as everything else.

What is recorded, each with `attributes.event`:
- `records_rejected`: records refused as invalid by `POST /logs` (400) and the shipper protocols, counted per reason,
  protocol and API key, with the first one's reason;
- `storage_unavailable`: records refused because the store could not take writes (503);
- `collection_failed`: an Amplify app's collection run with failed windows, with its first error, or one that failed
  as a whole (the server's schedule reports it for each app of the run).

Events are counted in memory as they happen and written once a minute as one record per event and
reason (so a client sending bad records in a loop adds a record a minute, not one per request).
What the store refuses (it is unavailable) is kept and written with the next turn that succeeds:
the records are stamped when written, with the first and last time the event happened in their
attributes. An outage of the store is therefore reported when it is over, the only time loglake can
report it through its own store; `/healthz` and `/metrics` show it while it lasts.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from loglake.amplify.run_reports import RunReport
from loglake.model import Limits, validate_batch
from loglake.shorten import shortened
from loglake.store.base import HotStore, StoreUnavailable

SERVICE = "loglake"
LOG_TYPE = "internal"
WRITE_INTERVAL_SECONDS = 60.0
MAX_ERROR_CHARS = 500


@dataclass
class _Tally:
    severity: str
    message: str  # with {count}
    attributes: dict[str, Any]
    count: int
    first_ms: int
    last_ms: int


class SelfEvents:
    """Counts loglake's events and writes them to `store` as records (`write`, or every minute once
    `start`ed). Thread-safe: the API's handlers and the runtime's jobs note events from their threads."""

    def __init__(self, store: HotStore, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock
        self._pending: dict[tuple, _Tally] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def note(
        self, event: str, severity: str, message: str, count: int = 1, example: str | None = None, **attributes: Any
    ) -> None:
        """Count `count` occurrences of an event (`message` may say {count}); the same event with the
        same attributes adds up into one record, which keeps the first occurrence's `example` (if any)."""
        now = int(self.clock() * 1000)
        key = (event, *sorted(attributes.items()))
        with self._lock:
            tally = self._pending.get(key)
            if tally is None:
                kept = attributes if example is None else {**attributes, "example": example}
                self._pending[key] = _Tally(severity, message, {"event": event, **kept}, count, now, now)
            else:
                tally.count += count
                tally.last_ms = now

    def rejected(self, reason: str, protocol: str, key: str | None, example: str, count: int = 1) -> None:
        """Records refused as invalid, by their first problem's field (`reason`), per protocol and API key, with
        the first one's whole reason: the shipper to fix, and how (many drop what a bulk's item refuses)."""
        sender = f"{protocol}, key {key}" if key else protocol
        example = shortened(example, MAX_ERROR_CHARS)
        message = f"refused {{count}} invalid record(s): {reason} ({sender}; e.g. {example})"
        self.note("records_rejected", "warning", message, count, example, reason=reason, protocol=protocol, key=key)

    def storage_unavailable(self, count: int) -> None:
        self.note(
            "storage_unavailable",
            "error",  # not critical: the starter pack's "any critical record" would alert twice
            "refused {count} record(s): the store could not take writes",
            count,
        )

    # RuntimeObserver: what the runtime reports.
    def on_commit(self, rows: int, seconds: float) -> None:
        pass

    def on_maintenance(self, report: Any) -> None:
        pass

    def on_amplify_report(self, report: RunReport) -> None:
        for app, message in report.failures():
            self.note("collection_failed", "error", shortened(message, MAX_ERROR_CHARS), app=app)

    def on_rule_run(self, rule: Any, record: Any) -> None:
        pass  # a failing rule raises its own alert (rules/scheduler.py)

    def on_rules_loaded(self, rules: Any, problems: Any) -> None:
        pass

    def on_syslog(self, tally: Any) -> None:
        if tally.unstored:
            self.storage_unavailable(tally.unstored)

    def write(self) -> int:
        """Store the events counted so far as records; those the store refuses stay for the next turn."""
        with self._lock:
            pending, self._pending = self._pending, {}
        if not pending:
            return 0
        now = int(self.clock() * 1000)
        records = [
            {
                "timestamp": now,
                "service": SERVICE,
                "log_type": LOG_TYPE,
                "severity": t.severity,
                "message": t.message.replace("{count}", f"{t.count:,}"),
                "attributes": {
                    **t.attributes,
                    "count": t.count,
                    "first_seen_ms": t.first_ms,
                    "last_seen_ms": t.last_ms,
                },
            }
            for t in pending.values()
        ]
        try:
            self.store.submit(validate_batch(records, Limits(), now)).result()
        except StoreUnavailable:
            with self._lock:
                for key, tally in pending.items():
                    later = self._pending.get(key)
                    if later is not None:
                        tally.count += later.count
                        tally.last_ms = later.last_ms
                    self._pending[key] = tally
            return 0
        return len(records)

    def start(self, interval_seconds: float = WRITE_INTERVAL_SECONDS) -> None:
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, args=(interval_seconds,), name="loglake-self-events", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop the writer and write what is pending (the store is still open)."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
        self.write()

    def _run(self, interval_seconds: float) -> None:
        while not self._stop.wait(interval_seconds):
            self.write()
