"""loglake's own events as records: what the API refuses and collection failures reach the hot store as
records of service `loglake`, events the store refused wait until it takes writes again, and the
starter pack's loglake rules fire on them."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from loglake.amplify.run_reports import AppReport, RunReport
from loglake.api.app import LoglakeApp
from loglake.model import Limits, validate_batch
from loglake.rules.loader import load_rules
from loglake.rules.run import run_rule
from loglake.rules.starter import starter_folder
from loglake.self_events import SelfEvents
from loglake.store.base import StoreUnavailable
from loglake.store.sqlite import SQLiteHotStore
from tests.test_model import RULE


def _loglake_records(app: LoglakeApp) -> list[tuple[str, str]]:
    return app.store.read(
        "SELECT message, json_extract(attributes, '$.event') FROM logs WHERE service = 'loglake' ORDER BY message"
    )


def _fill(app: LoglakeApp) -> None:
    """Cap the store at its size and fill it with small records until it refuses one."""
    app.store.set_max_size(1)
    now = int(time.time() * 1000)
    for _ in range(100_000):
        try:
            app.store.submit(validate_batch([{"message": "filler", "service": "f"}], Limits(), now)).result()
        except StoreUnavailable:
            return
    raise AssertionError("the store never filled up")


async def test_refused_records_and_writes_become_records_once_the_store_takes_them(
    app: LoglakeApp, client: httpx.AsyncClient
) -> None:
    events = app.runtime.self_events
    assert events is not None
    bad = [{"message": "x", "severity": "loud"}] * 120 + [{"message": ""}] * 3
    assert (await client.post("/logs", json=bad)).status_code == 400
    _fill(app)
    assert (await client.post("/logs", json=[{"message": "fine"}] * 7)).status_code == 503
    assert events.write() == 0  # the store refuses these too: they wait
    assert (await client.post("/logs", json=[{"message": "fine"}] * 2)).status_code == 503
    app.store.set_max_size(0)
    assert events.write() == 3
    assert events.write() == 0  # written once
    assert _loglake_records(app) == [
        (
            f"refused 120 invalid record(s): severity (native, key test-admin; e.g. {RULE})",
            "records_rejected",
        ),
        (
            "refused 3 invalid record(s): message (native, key test-admin; e.g. must not be empty)",
            "records_rejected",
        ),
        ("refused 9 record(s): the store could not take writes", "storage_unavailable"),
    ]
    now = int(time.time() * 1000)
    fired = _fired(app, now - 600_000, now + 60_000)
    assert fired == {"loglake refused more than 100 records in 10 minutes", "loglake's store refused writes"}


async def test_failed_collections_become_records_per_app(app: LoglakeApp) -> None:
    events = app.runtime.self_events
    assert events is not None
    report = RunReport(
        "2026-12-01T00:00:00Z",
        apps=[
            AppReport("shop", windows=3, windows_ok=1, windows_failed=2, errors=["AccessDeniedException: no role"]),
            AppReport("blog", windows=2, windows_ok=2),
        ],
    )
    app.runtime._collected(report)  # as the Amplify schedule reports a run
    assert events.write() == 1
    assert _loglake_records(app) == [
        (
            "Amplify collection of shop failed for 2 of 3 window(s): AccessDeniedException: no role",
            "collection_failed",
        )
    ]
    now = int(time.time() * 1000)
    assert _fired(app, now - 300_000, now + 60_000) == {"Amplify logs of shop are not being collected"}


def _fired(app: LoglakeApp, since_ms: int, until_ms: int) -> set[str]:
    """The titles of the starter pack's matches over the window."""
    assert app.lake is not None
    rules = load_rules(starter_folder()).rules
    return {m.title for r in rules for m in run_rule(r, app.lake.engine, since_ms, until_ms).matches}


def test_events_add_up_per_event_and_reason(tmp_path: Path) -> None:
    store = SQLiteHotStore(tmp_path / "hot.db", durability="process")
    clock = iter([1_800_000_000.0, 1_800_000_001.0, 1_800_000_002.0, 1_800_000_003.0])
    events = SelfEvents(store, clock=lambda: next(clock))
    events.rejected("severity", "otlp", "collector", "severity: must be one of ...", 2)
    events.rejected("severity", "otlp", "collector", "severity: another reason", 5)  # (the first one's is kept)
    events.rejected("timestamp", "native", None, "timestamp: must be ...")
    assert events.write() == 2
    rows = store.read("SELECT message, attributes FROM logs ORDER BY message")
    assert [r[0] for r in rows] == [
        "refused 1 invalid record(s): timestamp (native; e.g. timestamp: must be ...)",
        "refused 7 invalid record(s): severity (otlp, key collector; e.g. severity: must be one of ...)",
    ]
    assert '"first_seen_ms":1800000000000' in rows[1][1] and '"last_seen_ms":1800000001000' in rows[1][1]
    assert '"protocol":"otlp","key":"collector","example":"severity: must be one of ..."' in rows[1][1]
    store.close()
