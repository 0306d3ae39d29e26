"""What the server tells monitoring of its rules folder: a broken alerting.yml is counted, shown and
logged as a bad rule file is, and problems (a file that does not load, a run that fails, an Amplify
collection with failed windows) are logged at level warning, not info."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from loglake.amplify.run_reports import AppReport, RunReport
from loglake.api.app import LoglakeApp
from loglake.config import Settings
from tests.alerts.conftest import write_alerting
from tests.conftest import asgi_client, key_for
from tests.rules.conftest import write_rule

RULE_ID = "0e3f5a77-aaaa-4bbb-8ccc-1234567890ab"
CASTS = f"""
id: {RULE_ID}
title: Casts messages
level: low
schedule: 1m
delay: 0s
query: SELECT CAST(message AS INTEGER) AS n, "timestamp" FROM logs WHERE service = 'castme'
"""
BROKEN_ALERTING = """
destinations:
  pager: {type: pagerdooty}
routes:
  - {match: {level: [critcal]}, to: [nowhere]}
"""


@pytest.fixture
def rules_app(tmp_path: Path) -> Iterator[LoglakeApp]:
    write_rule(tmp_path / "rules", "casts.yml", CASTS)
    app = LoglakeApp.from_settings(
        Settings(data_dir=tmp_path / "data", rules_dir=str(tmp_path / "rules"), access_log=str(tmp_path / "access.log"))
    )
    yield app
    app.close()


def logged(app: LoglakeApp, event: str) -> list[dict]:
    app.access_log.flush()
    lines = [json.loads(line) for line in Path(app.settings.access_log).read_text().splitlines()]
    return [line for line in lines if line["event"] == event]


async def test_a_broken_alerting_yml_is_counted_shown_and_logged_like_a_bad_rule_file(rules_app: LoglakeApp) -> None:
    folder = Path(rules_app.settings.rules_dir)
    alerting = write_alerting(folder, BROKEN_ALERTING)
    scheduler = rules_app.runtime.rules
    assert scheduler.reload()
    async with asgi_client(rules_app, key_for(rules_app, "read")) as reader:
        metrics = (await reader.get("/metrics")).text
        problems = (await reader.get("/healthz")).json()["rules"]["problems"]
    assert "loglake_rule_files_with_problems 1" in metrics and "loglake_rules_loaded 1" in metrics
    assert [p.split(": ")[:2] for p in problems] == [
        [str(alerting), "routes[0].match.level[0]"],
        [str(alerting), "destinations.pager.type"],
        [str(alerting), "routes[0].to"],
    ]
    [loaded] = logged(rules_app, "rules_loaded")
    assert (loaded["level"], loaded["rules"], loaded["problems"]) == ("warning", 1, problems)
    assert loaded["routing"].startswith("alerting.yml has problems: alerts are delivered as the last version")

    alerting.write_text("routes: []\n")  # fixed: loaded again, as a changed rule file is
    assert scheduler.reload() and scheduler.folder.problems == []
    async with asgi_client(rules_app, key_for(rules_app, "read")) as reader:
        assert "loglake_rule_files_with_problems 0" in (await reader.get("/metrics")).text
    assert [(line["level"], line["problems"]) for line in logged(rules_app, "rules_loaded")][1:] == [("info", [])]
    assert "routing" not in logged(rules_app, "rules_loaded")[1]


async def test_a_rule_that_loads_with_a_warning_is_logged_at_level_warning(tmp_path: Path) -> None:
    # (a year read again every minute: the rule loads, and the log says what /healthz says of it)
    write_rule(tmp_path / "rules", "casts.yml", CASTS.replace("schedule: 1m", "schedule: 1m\nlookback: 365d"))
    settings = Settings(data_dir=tmp_path / "data", rules_dir=str(tmp_path / "rules"), access_log=str(tmp_path / "log"))
    app = LoglakeApp.from_settings(settings)
    try:
        app.runtime.rules.reload()
        async with asgi_client(app, key_for(app, "read")) as reader:
            shown = (await reader.get("/healthz")).json()["rules"]["warnings"]
        [loaded] = logged(app, "rules_loaded")
    finally:
        app.close()
    assert len(shown) == 1 and "casts.yml: lookback: 365 d is 525,600 times the schedule" in shown[0]
    assert (loaded["level"], loaded["problems"], loaded["warnings"]) == ("warning", [], shown)


async def test_a_failed_run_is_logged_at_level_warning(rules_app: LoglakeApp) -> None:
    scheduler = rules_app.runtime.rules
    scheduler.reload()
    now_ms = rules_app.service.now_ms()
    in_first_window = now_ms - now_ms % 60_000 - 30_000  # a rule seen first evaluates its latest window
    async with asgi_client(rules_app, key_for(rules_app, "ingest")) as shipper:
        sent = await shipper.post(
            "/logs", json={"service": "castme", "message": "not a number", "timestamp": in_first_window}
        )
        assert sent.status_code == 201, sent.text
    [(_, record)] = scheduler.run_round().runs
    assert record.outcome == "error"
    [line] = logged(rules_app, "rule_run")
    assert (line["level"], line["outcome"], line["rule_id"]) == ("warning", "error", RULE_ID)
    assert "Could not convert string" in line["error"]


def test_an_amplify_collection_with_failed_windows_is_logged_at_level_warning(rules_app: LoglakeApp) -> None:
    failed = AppReport("shop", windows=2, windows_ok=1, windows_failed=1, errors=["GenerateAccessLogs: throttled"])
    rules_app.on_amplify_report(RunReport("2026-12-04T10:00:00Z", "2026-12-04T10:01:00Z", [failed]))
    rules_app.on_amplify_report(RunReport("2026-12-04T11:00:00Z", "2026-12-04T11:01:00Z", [AppReport("shop", 2, 2)]))
    assert [(line["level"], line["ok"]) for line in logged(rules_app, "amplify_collection")] == [
        ("warning", False),
        ("info", True),
    ]


async def test_a_rule_warning_is_shown_by_healthz_and_get_rules_and_the_rule_still_runs(rules_app: LoglakeApp) -> None:
    folder = Path(rules_app.settings.rules_dir)
    rule = write_rule(folder, "casts.yml", CASTS.replace("schedule: 1m", "schedule: 1m\nlookback: 365d"))
    scheduler = rules_app.runtime.rules
    scheduler.reload()
    said = f"{rule}: lookback: 365 d is 525,600 times the schedule (every 1 min): each run reads it all again"
    async with asgi_client(rules_app, key_for(rules_app, "read")) as reader:
        health = (await reader.get("/healthz")).json()["rules"]
        [listed] = (await reader.get("/rules")).json()["rules"]
    assert health["rules"] == 1 and health["problems"] == []
    assert [w.split(";")[0] for w in health["warnings"]] == [said]
    assert [w.split(";")[0] for w in listed["warnings"]] == [said]
    assert listed["timing"] == "every 1 min, each run over the last 365 d"
