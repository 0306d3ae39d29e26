"""Alert retention on a real alerts.db: the server's lake maintenance and `loglake retention` delete the alerts
resolved past alerts_retention_days with their events and sent deliveries, and keep the ones not resolved, the
recent ones and those with a delivery waiting or dead-lettered."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from loglake.alerts.retention import expire_alerts
from loglake.config import ConfigError, Settings
from loglake.config_load import load_settings
from loglake.runtime import Runtime
from tests.alerts.conftest import settle
from tests.alerts.receivers import Answer, Received, insert_alert
from tests.conftest import poll, run_cli

DAY_MS = 86_400_000
ALERTING = """
destinations:
  ok: {{type: webhook, url: "{url}/ok"}}
  refusing: {{type: webhook, url: "{url}/refusing"}}
  down: {{type: webhook, url: "{url}/down", attempts: 50}}
routes:
  - {{to: [ok]}}
"""


def answer(request: Received) -> Answer:
    # ok takes everything; refusing dead-letters at once (a 400); down is retried (503), so it stays pending
    return {"/ok": Answer(202), "/refusing": Answer(400, body=b"no"), "/down": Answer(503)}[request.path]


def old_and_new_alerts(alerts_db, make_delivery, receiver, clock) -> dict[str, str]:
    """One alert of each kind retention tells apart, routed and delivered as the delivery worker does; their ids."""
    receiver.answer_for = answer
    delivery = make_delivery(ALERTING.format(url=receiver.url))
    old, recent = clock.ms - 100 * DAY_MS, clock.ms - 10 * DAY_MS
    made = {
        "old resolved, delivered": insert_alert(alerts_db, status="resolved", updated_ms=old),
        "old resolved, dead-lettered": insert_alert(
            alerts_db, status="resolved", updated_ms=old, destinations=["refusing"]
        ),
        "old resolved, pending": insert_alert(alerts_db, status="resolved", updated_ms=old, destinations=["down"]),
        "old open": insert_alert(alerts_db, status="open", updated_ms=old),
        "old acknowledged": insert_alert(alerts_db, status="acknowledged", updated_ms=old),
        "old suppressed": insert_alert(alerts_db, status="suppressed", updated_ms=old),
        "recent resolved": insert_alert(alerts_db, status="resolved", updated_ms=recent),
    }
    delivery.outbox.recover(clock.ms)
    settle(delivery)
    kept = dict(alerts_db.execute("SELECT alert_id, state FROM deliveries"))
    assert [kept[made[name]["id"]] for name in made if name.startswith("old resolved")] == ["sent", "dead", "pending"]
    # (and one whose event the outbox has not routed yet: the worker was stopped meanwhile)
    made["old resolved, not routed"] = insert_alert(alerts_db, status="resolved", updated_ms=old)
    return {name: alert["id"] for name, alert in made.items()}


def test_the_servers_maintenance_deletes_old_resolved_alerts_and_keeps_the_rest(
    data_dir: Path, rules_dir: Path, alerts_db, make_delivery, receiver, clock
) -> None:
    made = old_and_new_alerts(alerts_db, make_delivery, receiver, clock)
    settings = Settings(data_dir=data_dir, rules_dir=str(rules_dir), flush_interval_seconds=0.05)
    runtime = Runtime(settings, clock=clock)
    try:
        runtime.lake_jobs.start()  # (its first turn is a retention turn)
        poll(lambda: alerts_db.execute("SELECT count(*) FROM alerts").fetchone()[0] == len(made) - 2, "retention")
    finally:
        runtime.close()
    left = {row[0] for row in alerts_db.execute("SELECT id FROM alerts")}
    assert sorted(name for name, alert_id in made.items() if alert_id not in left) == [
        "old resolved, delivered",
        "old resolved, not routed",
    ]
    gone = (made["old resolved, delivered"], made["old resolved, not routed"])
    for table in ("alert_events", "deliveries", "delivery_told"):
        assert alerts_db.execute(f"SELECT count(*) FROM {table} WHERE alert_id IN (?, ?)", gone).fetchone() == (0,)
    # The alert copies only its deliveries sent went with them; the waiting and dead ones keep theirs.
    orphans = "SELECT count(*) FROM delivery_alerts WHERE event_seq NOT IN (SELECT event_seq FROM deliveries)"
    assert alerts_db.execute(orphans).fetchone() == (0,)
    # (the kept alerts' deliveries stay: the 4 sent are the open, acknowledged, suppressed and recent alerts')
    assert dict(alerts_db.execute("SELECT state, count(*) FROM deliveries GROUP BY state")) == {
        "dead": 1,
        "pending": 1,
        "sent": 4,
    }


def test_the_outbox_routes_on_past_the_events_of_deleted_alerts(
    data_dir: Path, alerts_db, make_delivery, receiver, clock
) -> None:
    old_and_new_alerts(alerts_db, make_delivery, receiver, clock)
    assert expire_alerts(data_dir, clock.ms - 90 * DAY_MS) == 2
    later = insert_alert(alerts_db, status="open")
    delivery = make_delivery()
    delivery.outbox.recover(clock.ms)
    settle(delivery)
    assert alerts_db.execute("SELECT state FROM deliveries WHERE alert_id = ?", (later["id"],)).fetchall() == [
        ("sent",)
    ]


class StopAfterChecks(threading.Event):
    """A stop that is set once it has been looked at `checks` times (a server stopping mid-retention)."""

    def __init__(self, checks: int) -> None:
        super().__init__()
        self.checks = checks

    def is_set(self) -> bool:
        self.checks -= 1
        return self.checks < 0


def test_alerts_go_in_batches_and_a_stop_ends_them_between_two(data_dir: Path, alerts_db, clock) -> None:
    for _ in range(5):
        insert_alert(alerts_db, status="resolved", updated_ms=clock.ms - 100 * DAY_MS)
    assert expire_alerts(data_dir, clock.ms - 90 * DAY_MS, StopAfterChecks(1), batch=2) == 2
    assert expire_alerts(data_dir, clock.ms - 90 * DAY_MS, batch=2) == 3
    assert alerts_db.execute("SELECT count(*) FROM alerts").fetchone() == (0,)


def test_no_retention_and_no_alerts_db_delete_nothing(data_dir: Path, clock) -> None:
    assert expire_alerts(data_dir, clock.ms) == 0
    assert not (data_dir / "alerts.db").exists()  # (none made where there was none)


def test_loglake_retention_deletes_them_by_hand(data_dir: Path, alerts_db) -> None:
    Runtime(Settings(data_dir=data_dir)).close()  # (a data dir loglake made)
    day = Settings().alerts_retention_days
    now_ms = int(time.time() * 1000)  # (the command's clock)
    old = insert_alert(alerts_db, status="resolved", updated_ms=now_ms - (day + 2) * DAY_MS)
    young = insert_alert(alerts_db, status="resolved", updated_ms=now_ms - (day - 2) * DAY_MS)
    dry = run_cli("retention", "--dry-run", "--data-dir", str(data_dir))
    assert dry.exit_code == 0 and "would delete 1 resolved alert(s)" in dry.stdout
    assert f"the {day} days before" in dry.stdout
    kept = run_cli("retention", "--alerts-days", "0", "--data-dir", str(data_dir))
    assert "--alerts-days is 0: alerts.db keeps every alert" in kept.stdout
    assert alerts_db.execute("SELECT count(*) FROM alerts").fetchone() == (2,)
    done = run_cli("retention", "--data-dir", str(data_dir))
    assert done.exit_code == 0 and "deleted 1 resolved alert(s)" in done.stdout
    assert [row[0] for row in alerts_db.execute("SELECT id FROM alerts")] == [young["id"]]
    assert old["id"] != young["id"]
    shorter = run_cli("retention", "--alerts-days", str(day - 5), "--data-dir", str(data_dir))
    assert "deleted 1 resolved alert(s)" in shorter.stdout


@pytest.mark.parametrize(
    ("given", "environ", "said"),
    [
        ({}, {"LOGLAKE_ALERTS_RETENTION_DAYS": "-1"}, "LOGLAKE_ALERTS_RETENTION_DAYS must be 0 (keep forever) or pos"),
        ({}, {"LOGLAKE_ALERTS_RETENTION_DAYS": "90d"}, "LOGLAKE_ALERTS_RETENTION_DAYS must be an integer, got '90d'"),
        ({"alerts_retention_days": -7}, {}, "--alerts-retention-days must be 0 (keep forever) or positive, got -7"),
    ],
)
def test_a_bad_alerts_retention_is_refused_naming_it(given, environ, said) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(given, environ=environ)
    assert str(raised.value).startswith(said)


def test_a_bad_alerts_retention_in_the_config_file_or_the_flag_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "loglake.toml"
    config.write_text("alerts_retention_days = true\n")
    with pytest.raises(ConfigError, match=f"alerts_retention_days in {config} must be an integer, got True"):
        load_settings(config_file=config, environ={})
    refused = run_cli("retention", "--alerts-days", "-1", "--data-dir", str(tmp_path))
    assert refused.exit_code == 2 and "'--alerts-days': -1 is not in the range x>=0" in refused.output
