"""The collector's Step Functions steps (plan, download, finish) on a lake without hot.db: a local
folder and a real S3 server (SeaweedFS), the real boto3 client against the local Amplify server."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from loglake.amplify.collector import Collector
from loglake.aws import amplify_steps
from loglake.lake.objectstore import LocalObjectStore, ObjectStore, ObjectStoreError
from tests.amplify.server import FakeAmplify
from tests.amplify.test_collector import LAST_DAY, NOW, SINCE, UNTIL, config, in_range, late_requests, serve_apps


def stored_ids(lake: ObjectStore, app: str) -> list[str]:
    ids = []
    for info in lake.list(f"type=amplify_access/app={app}/"):
        ids.extend(pq.read_table(io.BytesIO(lake.get(info.key))).column("x_edge_request_id").to_pylist())
    return sorted(ids)


def run_once(lake: ObjectStore, now=NOW, chosen=None) -> dict:
    """One state-machine run, its steps called in order as the Map would."""
    chosen = chosen or config()
    planned = amplify_steps.plan(chosen, lake, now)
    collector = Collector(chosen, None, lake, clock=now.timestamp, sleep=lambda s: None)
    results = []
    for entry in planned["apps"]:
        outcomes = []
        for window in entry["windows"]:
            try:
                outcomes.append(
                    amplify_steps.download(chosen, lake, entry["app"], window, planned["run_at"], collector)
                )
            except Exception as e:  # what the state machine's Catch records
                outcomes.append({"window": window, "ok": False, "error": str(e)})
        results.append({"app": entry["app"], "windows": outcomes, "run_at": planned["run_at"]})
    collector.source.close()
    return {"planned": planned, "finished": amplify_steps.finish(lake, results)}


def test_a_run_plans_downloads_and_moves_the_watermark(amplify: FakeAmplify, object_store: ObjectStore) -> None:
    danse, horizon = serve_apps(amplify, count=600)
    first = run_once(object_store)
    windows = {a["app"]: a["windows"] for a in first["planned"]["apps"]}
    assert windows["danse_tech"] == [
        {"start": "2026-10-19T00:00:00Z", "end": "2026-11-02T00:00:00Z"},
        {"start": "2026-11-02T00:00:00Z", "end": "2026-11-16T00:00:00Z"},
    ]
    assert first["finished"]["ok"]
    assert stored_ids(object_store, "danse_tech") == in_range(danse)
    assert stored_ids(object_store, "digital_horizon") == in_range(horizon)
    assert amplify_steps.read_state(object_store, "danse_tech")[0] == UNTIL
    assert len(list(object_store.list("type=amplify_logs/app=danse_tech/date_export=2026-11-16/"))) == 2

    late_requests(danse, LAST_DAY + 12)  # shown by the service only now: 2026-11-15T12:00, after the first run
    later = run_once(object_store, NOW + timedelta(days=7))  # the next Monday continues from the watermark
    assert later["planned"]["apps"][0]["windows"] == [
        # the hours the first run collected younger than a day, again for their late logs
        {"start": "2026-11-15T01:00:00Z", "end": "2026-11-16T00:00:00Z", "recheck": True},
        {"start": "2026-11-16T00:00:00Z", "end": "2026-11-23T00:00:00Z"},
    ]
    assert stored_ids(object_store, "danse_tech") == in_range(danse, SINCE, UNTIL + timedelta(days=7))  # late too
    assert later["finished"]["apps"][0]["late_rows"] == 1
    assert amplify_steps.read_state(object_store, "danse_tech")[1] == datetime(2026, 11, 22, 1, tzinfo=UTC)


def test_a_window_fetched_twice_stores_its_rows_once(amplify: FakeAmplify, object_store: ObjectStore) -> None:
    danse, _ = serve_apps(amplify, count=300)
    chosen = config()
    collector = Collector(chosen, None, object_store, clock=NOW.timestamp, sleep=lambda s: None)
    window = {"start": "2026-10-19T00:00:00Z", "end": "2026-11-02T00:00:00Z"}
    first = amplify_steps.download(chosen, object_store, "danse_tech", window, "2026-11-16T01:00:00Z", collector)
    again = amplify_steps.download(chosen, object_store, "danse_tech", window, "2026-11-16T01:05:00Z", collector)
    collector.source.close()
    assert first["rows"] > 0 and again["rows"] == 0 and again["duplicates"] == first["rows"]
    end = SINCE + timedelta(days=14)
    assert stored_ids(object_store, "danse_tech") == in_range(danse, SINCE, end)


def test_a_failed_window_holds_the_watermark(amplify: FakeAmplify, object_store: ObjectStore) -> None:
    danse, _ = serve_apps(amplify, count=300)
    danse.failing_from_ms = {int((SINCE + timedelta(days=14)).timestamp() * 1000)}  # the second window
    result = run_once(object_store)["finished"]
    by_app = {a["app"]: a for a in result["apps"]}
    assert not result["ok"] and by_app["danse_tech"]["windows_failed"] == 1
    assert "InternalFailureException" in by_app["danse_tech"]["errors"][0]
    assert amplify_steps.read_state(object_store, "danse_tech")[0] == SINCE + timedelta(days=14)
    assert amplify_steps.read_state(object_store, "digital_horizon")[0] == UNTIL


def test_a_watermark_the_retention_period_has_passed_moves_again(
    amplify: FakeAmplify, object_store: ObjectStore
) -> None:
    serve_apps(amplify, count=300)
    run_once(object_store)
    back = NOW + timedelta(days=40)  # the schedule was off for longer than the retention
    assert run_once(object_store, back)["finished"]["ok"]
    assert amplify_steps.read_state(object_store, "danse_tech")[0] == UNTIL + timedelta(days=40)
    hour_later = run_once(object_store, back + timedelta(hours=1))
    assert amplify_steps.read_state(object_store, "danse_tech")[0] == UNTIL + timedelta(days=40, hours=1)
    new_hour = {"start": "2026-12-26T00:00:00Z", "end": "2026-12-26T01:00:00Z"}
    assert [w for w in hour_later["planned"]["apps"][0]["windows"] if "recheck" not in w] == [new_hour]


def test_a_recheck_mark_the_retention_period_has_passed_moves_again(
    amplify: FakeAmplify, object_store: ObjectStore
) -> None:
    serve_apps(amplify, count=300)
    kept_a_day = config(retention_days=1)
    for hours in range(26):  # hourly, over the midnight the retention passes the recheck mark
        assert run_once(object_store, NOW + timedelta(hours=hours), kept_a_day)["finished"]["ok"]
    assert amplify_steps.read_state(object_store, "danse_tech")[1] == datetime(2026, 11, 16, 2, tzinfo=UTC)
    last = run_once(object_store, NOW + timedelta(hours=26), kept_a_day)["planned"]["apps"][0]["windows"]
    assert last[0] == {"start": "2026-11-16T02:00:00Z", "end": "2026-11-16T03:00:00Z", "recheck": True}


def test_a_damaged_state_is_said_and_collected_again_not_a_failure_of_every_run(
    amplify: FakeAmplify, object_store: ObjectStore, caplog: pytest.LogCaptureFixture
) -> None:
    """A watermark object that does not read (damaged outside loglake, cut short) failed every plan, no app
    collected again, for good."""
    danse, horizon = serve_apps(amplify, count=300)
    for text in (b'{"until": "2026-11-', b'{"until": 5}', b"[]"):
        object_store.put(f"{amplify_steps.STATE_PREFIX}danse_tech.json", text)
        result = run_once(object_store)
        assert result["finished"]["ok"] and amplify_steps.read_state(object_store, "danse_tech")[0] == UNTIL
        assert stored_ids(object_store, "danse_tech") == in_range(danse)  # fetched again, stored once
        assert any(f"{amplify_steps.STATE_PREFIX}danse_tech.json" in r.getMessage() for r in caplog.records)
        caplog.clear()
    assert stored_ids(object_store, "digital_horizon") == in_range(horizon)


def test_a_state_the_lake_cannot_read_now_fails_the_step(object_store: ObjectStore, tmp_path: Path) -> None:
    """Not a missing state: a run that took an outage (throttling, a network error) for one planned the whole
    retention period again, and its finish could move the recheck mark back."""

    class Unreachable(LocalObjectStore):
        def get(self, key: str) -> bytes:
            raise ObjectStoreError(f"cannot get s3://lake/{key}: Read timeout on endpoint URL", None)

    assert amplify_steps.read_state(object_store, "danse_tech") == (None, None)  # none yet
    with pytest.raises(ObjectStoreError, match="Read timeout"):
        amplify_steps.read_state(Unreachable(tmp_path / "lake"), "danse_tech")


def test_the_step_handlers_run_a_collection_on_an_s3_lake(
    amplify: FakeAmplify, moto_endpoint: str, monkeypatch, capsys
) -> None:
    """The Lambda entry points, with the run's input as EventBridge and the state machine pass it."""
    import json
    import uuid

    import boto3

    from loglake.aws import handlers
    from tests.amplify.test_collector import DANSE, HORIZON
    from tests.moto_server import lambda_environment

    danse, _ = serve_apps(amplify, count=200)
    bucket = f"loglake-steps-{uuid.uuid4().hex[:8]}"
    lambda_environment(monkeypatch, "eu-west-1", AWS_ENDPOINT_URL_S3=moto_endpoint, LOGLAKE_LAKE_BUCKET=bucket)
    monkeypatch.setenv("AWS_ENDPOINT_URL_AMPLIFY", amplify.url)  # the profiles come from the amplify fixture
    boto3.client("s3").create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    document = {
        "applications": [DANSE | {"appName": "danse_tech"}, HORIZON | {"appName": "digital_horizon"}],
        "logRetention": {"days": 28},
    }
    # danse_tech lives in another account: its profile maps to a role there, assumed through STS (moto)
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", moto_endpoint)
    role = "arn:aws:iam::111122223333:role/amplify-logs-reader"
    monkeypatch.setenv("LOGLAKE_AMPLIFY_ROLES", json.dumps({DANSE["profile"]: role}))
    planned = handlers.amplify_plan({"time": "2026-11-16T01:30:00Z", "config": document}, None)
    results = []
    for entry in planned["apps"]:
        outcomes = [
            handlers.amplify_download(
                {"app": entry["app"], "window": w, "run_at": planned["run_at"], "config": planned["config"]}, None
            )
            for w in entry["windows"]
        ]
        results.append({"app": entry["app"], "windows": outcomes, "run_at": planned["run_at"]})
    summary = handlers.amplify_finish({"results": results}, None)
    assert summary["ok"] and summary["apps"][0]["rows"] == len(in_range(danse))
    state = boto3.client("s3").get_object(Bucket=bucket, Key="_state/amplify/danse_tech.json")["Body"].read()
    assert json.loads(state) == {"until": "2026-11-16T00:00:00Z", "rechecked": "2026-11-15T01:00:00Z"}
    [finished] = [json.loads(line) for line in capsys.readouterr().out.splitlines() if "amplify_collection" in line]
    assert finished["level"] == "INFO"
    window = planned["apps"][0]["windows"][0]
    failed = [{"app": "danse_tech", "windows": [{"window": window, "ok": False, "error": "ThrottlingException"}]}]
    assert not handlers.amplify_finish({"results": failed}, None)["ok"]
    [line] = capsys.readouterr().out.splitlines()
    assert json.loads(line)["level"] == "WARNING"  # a collection with failed windows is a problem
    danse_keys = set(amplify.apps[DANSE["appId"]].access_keys)
    horizon_keys = set(amplify.apps[HORIZON["appId"]].access_keys)
    assert horizon_keys == {"testing"}  # the function's own credentials (no profiles in Lambda)
    assert danse_keys and "testing" not in danse_keys and all(k.startswith("ASIA") for k in danse_keys)
