"""A rule and its runs as JSON objects: what `loglake rules list --json` prints and GET /rules answers."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from loglake.rules.schedule import Interval
from loglake.times import format_duration

if TYPE_CHECKING:  # the command line imports this module at start: it stays light
    from loglake.rules.model import Rule
    from loglake.rules.state import RuleSummary, RunRecord


def iso_seconds(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms / 1000))


def timing_text(rule: Rule) -> str:
    """When the rule runs and what each run reads, in human units: `every 1 min, each run over the last 365 d`."""
    return f"{rule.schedule}, each run over the last {format_duration(rule.lookback_ms)}"


def rule_facts(rule: Rule) -> dict[str, Any]:
    return {
        "id": rule.id,
        "title": rule.title,
        "level": rule.level,
        "status": rule.status,
        "kind": rule.kind,
        "file": str(rule.path),
        "schedule": rule.options.schedule,
        # (an interval's length, None for a cron expression: what the web UI sizes a backtest's first period by)
        "interval_seconds": rule.schedule.ms / 1000 if isinstance(rule.schedule, Interval) else None,
        "lookback_seconds": rule.lookback_ms / 1000,
        "delay_seconds": rule.delay_ms / 1000,
        "timing": timing_text(rule),
        "enabled": rule.enabled,
        "tags": list(rule.tags),
        "tests": len(rule.tests),
        "warnings": [str(w) for w in rule.warnings],
    }


def runs_facts(summary: RuleSummary | None) -> dict[str, Any]:
    """A rule's runs: its last finished run, failures in a row, where its windows end."""
    if summary is None:
        return {"last_run": None, "failures": 0, "window_end": None, "runs_kept": 0}
    last = summary.last_run
    return {
        "last_run": None if last is None else run_facts(last),
        "failures": summary.failures,
        "window_end": iso_seconds(summary.window_end_ms),
        "runs_kept": summary.runs,
    }


def run_facts(run: RunRecord) -> dict[str, Any]:
    return {
        "outcome": run.outcome,
        "since": iso_seconds(run.since_ms),
        "until": iso_seconds(run.until_ms),
        "finished": iso_seconds(run.finished_ms) if run.finished_ms else None,
        "duration_ms": run.duration_ms,
        "rows_scanned": run.rows_scanned,
        "bytes_scanned": run.bytes_scanned,
        "matches": run.matches,
        "new_alerts": run.new_alerts,
        "error": run.error,
        "attempts": run.attempts,
        # (of several attempts: when the first started; None for one)
        "first_started": iso_seconds(run.first_started_ms) if run.first_started_ms else None,
    }
