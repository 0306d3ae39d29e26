"""An alert's title is capped where it is made: a rule's alert_title may show a whole record's message."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from loglake.alerts.db import MAX_TITLE_CHARS
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
