"""An alert's title is capped where it is made: a rule's alert_title may show a whole record's message."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from loglake.alerts.db import MAX_TITLE_CHARS
from loglake.alerts.store import change_status
from loglake.model import Limits, validate_batch
from loglake.times import DAY_MS
from tests.rules.conftest import write_rule
from tests.rules.test_scheduler import RULE_ID, T0, Clock, DataDir

LONG_TITLE_RULE = f"""
id: {RULE_ID}
title: Bad things
level: high
schedule: 1m
lookback: 10m
alert_title: "Bad thing: {{message}}"
query: SELECT "timestamp", service, message FROM logs WHERE severity = 'error'
"""


@pytest.fixture
def data(tmp_path: Path) -> Iterator[DataDir]:
    found = DataDir(tmp_path, Clock(T0))
    yield found
    found.close()


def test_a_title_made_from_a_long_message_is_cut_with_an_ellipsis(data: DataDir) -> None:
    message = "stack trace " + "at frame " * 240  # 2,172 characters, as the trial's
    record = {"timestamp": T0 - 60_000, "service": "api", "severity": "error", "message": message}
    data.store.submit(validate_batch([record], Limits(), T0 + DAY_MS)).result()
    write_rule(data.rules, "bad.yml", LONG_TITLE_RULE)
    [(_, run)] = data.scheduler().run_round().runs
    assert run.outcome == "ok"
    [alert] = data.alerts()
    assert MAX_TITLE_CHARS == 256
    assert len(alert["title"]) == 256
    assert alert["title"] == ("Bad thing: " + message)[:255] + "…"


COUNTED_TITLE_RULE = f"""
id: {RULE_ID}
title: Errors
level: high
schedule: 1m
delay: 0s
lookback: 1m
group_by: [service]
alert_title: "{{count}} errors in {{service}}"
query: SELECT "timestamp", service, message FROM logs WHERE severity = 'error'
"""


def _run_at(data: DataDir, ms: int, scheduler) -> None:
    data.clock.ms = ms
    assert [r.outcome for _, r in scheduler.run_round().runs] == ["ok"]


def test_a_title_that_shows_the_count_shows_the_alerts_count_after_an_update(data: DataDir) -> None:
    """A run that joins an open alert adds its records to the alert's count: the title says that count, not the
    joining run's own (a pager showed "3 errors" on an alert of 5)."""
    write_rule(data.rules, "errors.yml", COUNTED_TITLE_RULE)
    scheduler = data.scheduler()
    data.add(T0 - 30_000, count=2)
    _run_at(data, T0, scheduler)
    [alert] = data.alerts()
    assert (alert["match_count"], alert["title"]) == (2, "2 errors in api")
    data.add(T0 + 30_000, count=3)
    _run_at(data, T0 + 60_000, scheduler)
    [alert] = data.alerts()
    assert (alert["match_count"], alert["title"]) == (5, "5 errors in api")


def test_a_new_alert_after_a_resolve_titles_only_the_records_it_counts(data: DataDir) -> None:
    """After a resolve, a run whose lookback reads the resolved alert's records again makes a new alert of only
    the records no earlier run read: its title's count is that alert's count."""
    write_rule(data.rules, "errors.yml", COUNTED_TITLE_RULE.replace("lookback: 1m", "lookback: 10m"))
    scheduler = data.scheduler()
    data.add(T0 - 2 * 60_000, count=2)
    _run_at(data, T0, scheduler)
    [first] = data.alerts()
    conn = data.db()
    try:
        change_status(conn, first["id"], "resolved", "ops", "handled", data.clock.ms)
    finally:
        conn.close()
    data.add(T0 + 30_000)
    _run_at(data, T0 + 60_000, scheduler)
    second = next(alert for alert in data.alerts() if alert["id"] != first["id"])
    assert (second["match_count"], second["title"]) == (1, "1 errors in api")
