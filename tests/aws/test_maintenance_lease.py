"""One maintenance run on the AWS lake at a time (aws/maintenance_lease.py), with S3's conditional writes on the
lake bucket (moto S3): a compaction or retention run that finds another at work waits for it while it has time
to spare, else does nothing and says who holds the lake; a lease left by a run that died ends by itself."""

from __future__ import annotations

import io
import json
import threading
import time
from datetime import UTC, datetime
from types import SimpleNamespace

import boto3
import pyarrow.parquet as pq
import pytest

from loglake.aws import handlers
from loglake.aws.maintenance_lease import LEASE_KEY, LakeBusy, maintenance_lease
from loglake.lake.objectstore import S3ObjectStore
from tests.aws.test_retention import scheduled_event
from tests.aws.test_stream_flush import (
    CONTEXT,
    DAY,
    lake_bucket,  # noqa: F401 (fixture)
    record,
)
from tests.lake.test_aws_compaction import stream_batch

ENOUGH_MS = 14 * 60_000  # a run's time left, well past any reserve


def _lake(bucket: str) -> S3ObjectStore:
    return S3ObjectStore(boto3.client("s3"), bucket)


def _today_ms() -> int:
    return int(datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0).timestamp() * 1000)


def _flush_parts(count: int) -> str:
    """`count` stream batches of today, a part each; the day's prefix."""
    today = _today_ms()
    for batch in range(count):
        handlers.flush_stream(stream_batch([record(today + batch * 10 + i, f"b{batch}-{i}") for i in range(3)], batch),
                              CONTEXT)  # fmt: skip
    return f"type=app_logs/date={datetime.fromtimestamp(today / 1000, UTC).date().isoformat()}/"


def _keys(bucket: str, prefix: str) -> list[str]:
    return [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]


def _now_event() -> dict:
    return scheduled_event(time=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))


def test_a_compaction_while_another_runs_does_nothing_and_says_who_holds_the_lake(
    lake_bucket: str,  # noqa: F811
    capsys: pytest.CaptureFixture,
) -> None:
    """Two compactions at once (a manual run over the hourly one, an event delivered twice) merged the same parts
    twice: every row in the lake twice, for good once the merged files were large."""
    day = _flush_parts(4)
    first_at_work, second_done = threading.Event(), threading.Event()

    def remaining() -> int:  # the first run, holding the lake and about to merge, waits here while the second runs
        if _keys(lake_bucket, LEASE_KEY) and not first_at_work.is_set():
            first_at_work.set()
            second_done.wait(30)
        return ENOUGH_MS

    first_context = SimpleNamespace(
        function_name="compact", aws_request_id="hourly-1", get_remaining_time_in_millis=remaining
    )
    answers: dict[str, dict] = {}
    first = threading.Thread(target=lambda: answers.setdefault("first", handlers.compact(_now_event(), first_context)))
    first.start()
    try:
        assert first_at_work.wait(30)
        second = handlers.compact(_now_event(), SimpleNamespace(function_name="compact", aws_request_id="manual-2"))
    finally:
        second_done.set()
        first.join(30)

    assert set(second) == {"skipped"} and "compaction (request hourly-1" in second["skipped"]
    assert LEASE_KEY in second["skipped"]
    assert answers["first"]["merged_files"] == 4
    (merged,) = _keys(lake_bucket, day)
    rows = boto3.client("s3").get_object(Bucket=lake_bucket, Key=merged)["Body"].read()
    messages = pq.read_table(io.BytesIO(rows), columns=["message"]).column("message").to_pylist()
    assert sorted(messages) == sorted(f"b{b}-{i}" for b in range(4) for i in range(3))  # each once
    assert _keys(lake_bucket, LEASE_KEY) == []  # released
    lines = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    (skipped,) = [line for line in lines if line.get("request_id") == "manual-2"]
    assert skipped["event"] == "lake_compaction" and skipped["level"] == "WARNING"


def test_retention_does_nothing_while_a_compaction_holds_the_lake(lake_bucket: str) -> None:  # noqa: F811
    """A retention run beside a compaction: a merged file of a day the retention was deleting came back."""
    lake = _lake(lake_bucket)
    old = "type=app_logs/date=2020-01-01/a.parquet"
    lake.put(old, b"x")
    with maintenance_lease(lake, "compaction", None, 0, "hourly-1"):
        skipped = handlers.retention(scheduled_event(), SimpleNamespace(aws_request_id="daily-1"))
        assert "compaction (request hourly-1" in skipped["skipped"]
        assert _keys(lake_bucket, old) == [old]
    summary = handlers.retention(scheduled_event(), SimpleNamespace(aws_request_id="daily-2"))
    assert summary["deleted_objects"] == 1 and _keys(lake_bucket, old) == []


def test_a_run_waits_by_polling_until_the_holder_is_done(lake_bucket: str) -> None:  # noqa: F811
    lake = _lake(lake_bucket)
    other = maintenance_lease(lake, "compaction", None, 0, "hourly-1")
    other.__enter__()
    slept: list[float] = []

    def sleep(seconds: float) -> None:  # the holder finishes while this run waits
        slept.append(seconds)
        other.__exit__(None, None, None)

    with maintenance_lease(lake, "retention", lambda: ENOUGH_MS, 60_000, "daily-1", sleep=sleep):
        lease = json.loads(lake.get(LEASE_KEY))
        assert lease["holder"] == "retention" and lease["request_id"] == "daily-1"
    assert len(slept) == 1


def test_a_run_short_of_time_does_not_wait(lake_bucket: str) -> None:  # noqa: F811
    lake = _lake(lake_bucket)
    with maintenance_lease(lake, "compaction", None, 0, "hourly-1"):
        taking = maintenance_lease(lake, "retention", lambda: 61_000, 60_000, sleep=pytest.fail)
        with pytest.raises(LakeBusy, match="compaction"):
            taking.__enter__()


def test_a_lease_left_by_a_run_that_died_ends_and_is_taken_over(lake_bucket: str) -> None:  # noqa: F811
    lake = _lake(lake_bucket)
    ended = {"holder": "compaction", "request_id": "killed", "since": "x", "until_ms": int(time.time() * 1000) - 1}
    lake.put(LEASE_KEY, json.dumps(ended).encode())
    day = _flush_parts(2)

    summary = handlers.compact(_now_event(), CONTEXT)

    assert summary["merged_files"] == 2 and len(_keys(lake_bucket, day)) == 1
    assert _keys(lake_bucket, LEASE_KEY) == []
    # one not ended yet holds the lake; an unreadable one holds nothing
    lake.put(LEASE_KEY, json.dumps(ended | {"until_ms": int(time.time() * 1000) + DAY}).encode())
    assert "skipped" in handlers.compact(_now_event(), CONTEXT)
    lake.put(LEASE_KEY, b"not a lease")
    assert "skipped" not in handlers.compact(_now_event(), CONTEXT)


def test_of_two_runs_taking_an_ended_lease_over_at_once_one_does(lake_bucket: str) -> None:  # noqa: F811
    lake = _lake(lake_bucket)
    assert lake.put_if(LEASE_KEY, b"first", None) is not None
    assert lake.put_if(LEASE_KEY, b"second", None) is None  # (one exists)
    _, etag = lake.get_tagged(LEASE_KEY)
    assert lake.put_if(LEASE_KEY, b"taken over", etag) is not None
    assert lake.put_if(LEASE_KEY, b"taken over too", etag) is None  # (the version read is gone)
    assert lake.get(LEASE_KEY) == b"taken over"
    assert not lake.delete_if(LEASE_KEY, etag) and lake.get(LEASE_KEY) == b"taken over"


def test_a_run_that_outlived_its_lease_leaves_the_next_holder_s(lake_bucket: str) -> None:  # noqa: F811
    lake = _lake(lake_bucket)
    with maintenance_lease(lake, "compaction", None, 0, "slow-1"):
        _, etag = lake.get_tagged(LEASE_KEY)
        lake.put_if(LEASE_KEY, json.dumps({"holder": "retention", "until_ms": 1 << 50}).encode(), etag)
    assert json.loads(lake.get(LEASE_KEY))["holder"] == "retention"


def test_a_run_beaten_to_an_ended_lease_does_not_name_the_run_whose_lease_ended(lake_bucket: str) -> None:  # noqa: F811
    class Raced(S3ObjectStore):
        """The lake, where another run takes the ended lease over right after this one read it."""

        def get_tagged(self, key: str) -> tuple[bytes, str] | None:
            found = super().get_tagged(key)
            assert found is not None
            assert self.put_if(key, json.dumps({"holder": "retention", "until_ms": 1 << 50}).encode(), found[1])
            return found

    lake = Raced(boto3.client("s3"), lake_bucket)
    ended = {"holder": "compaction", "request_id": "killed", "since": "x", "until_ms": int(time.time() * 1000) - 1}
    lake.put(LEASE_KEY, json.dumps(ended).encode())
    taking = maintenance_lease(lake, "compaction", None, 0, "hourly-2")
    with pytest.raises(LakeBusy) as busy:
        taking.__enter__()
    assert "killed" not in str(busy.value) and str(busy.value).startswith("another run holds")
