"""The retention function, invoked with EventBridge's scheduled event against the lake bucket (moto S3):
days past their retention go, by the day they hold, whatever the objects' age."""

from __future__ import annotations

import json
from types import SimpleNamespace

import boto3
import pytest

from loglake.aws import handlers
from tests.amplify.test_config import USERS_FILE
from tests.aws.test_stream_flush import lake_bucket  # noqa: F401 (fixture)

CONTEXT = SimpleNamespace(function_name="loglake-retention-test", aws_request_id="retention-1")
# The users' configuration with one app and a 7-day retention.
AMPLIFY = USERS_FILE | {"applications": USERS_FILE["applications"][:1], "logRetention": {"days": 7}}
KEYS = [
    "type=app_logs/date=2026-10-22/a.parquet",  # 31 days before 2026-11-22: past 30 days
    "type=app_logs/date=2026-10-23/a.parquet",  # exactly 30 days: kept
    "type=app_logs/date=2026-11-22/a.parquet",
    "type=amplify_access/app=danse_tech/date=2026-11-14/a.parquet",  # past 7 days
    "type=amplify_access/app=danse_tech/date=2026-11-15/a.parquet",
    "type=amplify_access/app=not_configured/date=2026-01-01/a.parquet",  # not this configuration's app
    "type=amplify_logs/app=danse_tech/date_export=2026-11-01/log_a.gz",
    "type=amplify_logs/app=danse_tech/date_export=2026-11-20/log_b.gz",
    "_state/amplify/danse_tech.json",
]


def scheduled_event(**extra: object) -> dict:
    """EventBridge's event for a scheduled rule (with the rule's input it is replaced by that input)."""
    return {
        "version": "0", "id": "7bf73129-1428-4cd3-a780-95db273d1602", "detail-type": "Scheduled Event",
        "source": "aws.events", "account": "123456789012", "time": "2026-11-22T02:30:00Z", "region": "eu-west-1",
        "resources": ["arn:aws:events:eu-west-1:123456789012:rule/retention"], "detail": {},
    } | extra  # fmt: skip


def test_days_past_retention_are_deleted(
    lake_bucket: str,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    s3 = boto3.client("s3")
    for key in KEYS:
        s3.put_object(Bucket=lake_bucket, Key=key, Body=b"x" * 10)
    monkeypatch.setenv("LOGLAKE_RETENTION_DAYS", "30")
    monkeypatch.setenv("CONFIG_JSON", json.dumps(AMPLIFY))

    summary = handlers.retention(scheduled_event(), CONTEXT)

    left = {o["Key"] for o in s3.list_objects_v2(Bucket=lake_bucket)["Contents"]}
    gone = {KEYS[0], KEYS[3], KEYS[6]}
    assert left == set(KEYS) - gone
    assert summary["deleted_objects"] == 3 and summary["deleted_bytes"] == 30
    assert summary["expired"]["type=app_logs/"] == ["2026-10-22"]
    assert summary["expired"]["type=amplify_logs/app=danse_tech/"] == ["2026-11-01"]
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["event"] == "lake_retention" and line["deleted_objects"] == 3 and line["request_id"] == "retention-1"
    assert handlers.retention(scheduled_event(), CONTEXT)["deleted_objects"] == 0  # a second run has nothing to do


def test_the_parts_the_compaction_quarantined_go_with_their_days(
    lake_bucket: str,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A damaged part the compaction moved to _quarantine/ stayed in the bucket for good (the lifecycle rules expire
    the tables' prefixes only): its records, past the retention, were never deleted."""
    s3 = boto3.client("s3")
    quarantined = [
        "_quarantine/type=app_logs/date=2026-10-22/a.parquet",  # past 30 days
        "_quarantine/type=app_logs/date=2026-10-23/a.parquet",
        "_quarantine/type=amplify_access/app=danse_tech/date=2026-11-14/a.parquet",  # past 7 days
        "_quarantine/type=amplify_access/app=danse_tech/date=2026-11-15/a.parquet",
    ]
    for key in [*KEYS, *quarantined]:
        s3.put_object(Bucket=lake_bucket, Key=key, Body=b"x")
    monkeypatch.setenv("LOGLAKE_RETENTION_DAYS", "30")
    monkeypatch.setenv("CONFIG_JSON", json.dumps(AMPLIFY))
    summary = handlers.retention(scheduled_event(), CONTEXT)
    left = {o["Key"] for o in s3.list_objects_v2(Bucket=lake_bucket)["Contents"]}
    assert left == set(KEYS) - {KEYS[0], KEYS[3], KEYS[6]} | {quarantined[1], quarantined[3]}
    assert summary["expired"]["_quarantine/type=app_logs/"] == ["2026-10-22"]
    assert summary["expired"]["_quarantine/type=amplify_access/app=danse_tech/"] == ["2026-11-14"]


def test_a_folder_object_in_the_bucket_does_not_stop_retention(
    lake_bucket: str,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The S3 console's "Create folder" leaves an object whose key ends in /, which no store reads or deletes: at an
    expired day, every daily run failed on it, that day and every later table left as they were."""
    s3 = boto3.client("s3")
    for key in ["type=app_logs/date=2026-10-01/", *KEYS]:
        s3.put_object(Bucket=lake_bucket, Key=key, Body=b"" if key.endswith("/") else b"x")
    monkeypatch.setenv("LOGLAKE_RETENTION_DAYS", "30")
    monkeypatch.setenv("CONFIG_JSON", json.dumps(AMPLIFY))
    summary = handlers.retention(scheduled_event(), CONTEXT)
    assert summary["deleted_objects"] == 3 and summary["expired"]["type=app_logs/"] == ["2026-10-22"]


def test_zero_keeps_app_logs_and_no_configuration_skips_amplify(
    lake_bucket: str,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s3 = boto3.client("s3")
    for key in KEYS:
        s3.put_object(Bucket=lake_bucket, Key=key, Body=b"x")
    monkeypatch.setenv("LOGLAKE_RETENTION_DAYS", "0")
    monkeypatch.delenv("CONFIG_JSON", raising=False)
    assert handlers.retention(scheduled_event(), CONTEXT)["deleted_objects"] == 0
    # the configuration may also come in the rule's input, as the collector's does
    assert handlers.retention(scheduled_event(config=AMPLIFY), CONTEXT)["deleted_objects"] == 2
