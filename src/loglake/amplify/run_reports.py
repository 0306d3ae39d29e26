"""What a collection run reports (each app's windows, rows, retries and errors; stored for `loglake amplify
status`), and how reports, windows and watermarks show a time."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime


@dataclass
class AppReport:
    app: str
    windows: int = 0
    windows_ok: int = 0
    windows_failed: int = 0
    rows: int = 0  # stored in the lake
    late_rows: int = 0  # of them, found by fetching again hours collected younger than collector.LATE
    duplicates: int = 0  # skipped: already in this export or in the lake
    malformed: int = 0
    outside: int = 0  # outside the window (the API answers whole hours)
    bytes: int = 0  # downloaded
    retries: int = 0
    splits: int = 0
    errors: list[str] = field(default_factory=list)  # each failed window's, and the app's own failure outside them
    malformed_examples: list[str] = field(default_factory=list)
    seconds: float = 0.0
    watermark_before: str | None = None
    watermark_after: str | None = None

    @property
    def ok(self) -> bool:
        return self.windows_failed == 0 and not self.errors


@dataclass
class RunReport:
    started: str
    finished: str = ""
    apps: list[AppReport] = field(default_factory=list)
    expired_partitions: int = 0  # amplify_access (app, date) partitions past logRetention.days
    expired_exports: int = 0
    # Why the run failed as a whole (the collector raised: expiring, storing its report, a store that is down), as
    # the server's schedule reports it; every app of the run counts as failed.
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and all(a.ok for a in self.apps)

    def failures(self) -> list[tuple[str, str]]:
        """Each app whose collection failed in this run, with why in a sentence (loglake's own `collection_failed`
        events, which the starter rule "Amplify log collection failing" reads)."""
        if self.error is not None:
            return [(a.app, f"Amplify collection of {a.app} failed for the whole run: {self.error}") for a in self.apps]
        return [
            (
                a.app,
                f"Amplify collection of {a.app} failed"
                + (f" for {a.windows_failed} of {a.windows} window(s)" if a.windows_failed else "")
                + f": {a.errors[0] if a.errors else 'no detail'}",
            )
            for a in self.apps
            if not a.ok
        ]

    def to_dict(self) -> dict:
        return {
            "started": self.started,
            "finished": self.finished,
            "ok": self.ok,
            "error": self.error,
            "apps": [asdict(a) for a in self.apps],
        }


def epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def iso_utc(moment: datetime) -> str:
    """2026-11-16T00:00:00Z: how reports, windows and watermarks show a time."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
