"""The DynamoDB Streams flush: records written through the store, read back from moto's stream as
Lambda receives them, land in the lake bucket (moto S3) with the lake's layout, once."""

from __future__ import annotations

import base64
import io
import uuid
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import boto3
import pyarrow.parquet as pq
import pytest

from loglake.aws import handlers
from loglake.aws.stream_flush import LATE_PREFIX, flush_stream_batch
from loglake.ids import format_uuid
from loglake.lake.layout import day_of
from loglake.model import Severity
from loglake.store.dynamodb import DynamoDBHotStore
from tests.moto_server import lambda_environment
from tests.store.contract import BASE_TS, record
from tests.store.test_dynamodb import dynamodb_client

DAY = 86_400_000
CONTEXT = SimpleNamespace(function_name="loglake-flush-test", aws_request_id="flush-1")


def lambda_event(stream_records: list[dict], arn: str) -> dict:
    """What Lambda hands a function for a batch: binary attributes base64-encoded, times as numbers."""

    def encode(value):
        if isinstance(value, bytes):
            return base64.b64encode(value).decode()
        if isinstance(value, dict):
            return {k: encode(v) for k, v in value.items()}
        if isinstance(value, list):
            return [encode(v) for v in value]
        return value

    records = []
    for r in stream_records:
        dynamodb = encode(r["dynamodb"])
        dynamodb.pop("ApproximateCreationDateTime", None)
        records.append(
            {"eventID": r["eventID"], "eventName": r["eventName"], "eventVersion": "1.1", "eventSource": "aws:dynamodb",
             "awsRegion": "eu-west-1", "dynamodb": dynamodb, "eventSourceARN": arn}
        )  # fmt: skip
    return {"Records": records}


@pytest.fixture
def lake_bucket(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    bucket = f"loglake-lake-{uuid.uuid4().hex[:10]}"
    lambda_environment(monkeypatch, "eu-west-1", AWS_ENDPOINT_URL_S3=moto_endpoint, LOGLAKE_LAKE_BUCKET=bucket)
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    return bucket


def test_new_records_become_parquet_parts_once(moto_endpoint: str, lake_bucket: str, tmp_path: Path) -> None:
    client = dynamodb_client(moto_endpoint, "eu-west-1")
    table = f"loglake-stream-{uuid.uuid4().hex[:8]}"
    DynamoDBHotStore.create_table(client, table, stream=True)
    store = DynamoDBHotStore(client, table)
    written = [
        record(BASE_TS + i * 1000 + (DAY if i >= 6 else 0), f"m{i}", service=("web", "api")[i % 2],
               severity=Severity(i % 5), attributes=b'{"i":%d}' % i if i % 2 else None)
        for i in range(10)
    ]  # fmt: skip
    with_client_id = record(BASE_TS + 500, "retried", client_id=uuid.uuid4().bytes)
    store.put(written)
    store.put([with_client_id, with_client_id])
    store.close()

    streams = boto3.client("dynamodbstreams", endpoint_url=moto_endpoint, region_name="eu-west-1")
    arn = client.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")
    stream_records = streams.get_records(ShardIterator=iterator["ShardIterator"])["Records"]
    event = lambda_event(stream_records, arn)
    assert any(r["dynamodb"]["NewImage"]["service_name"]["S"].startswith("#") for r in event["Records"])

    first = handlers.flush_stream(event, CONTEXT)["objects"]
    again = handlers.flush_stream(event, CONTEXT)["objects"]  # a retried batch
    assert first == again and len(first) == 2
    assert [k.split("/")[1] for k in first] == ["date=2026-09-21", "date=2026-09-22"]
    s3 = boto3.client("s3")
    listed = s3.list_objects_v2(Bucket=lake_bucket)["Contents"]
    # (days long past: each part noted for the compaction, which looks at the last week and at those, compaction.py)
    assert sorted(o["Key"] for o in listed) == sorted([*first, *(LATE_PREFIX + key for key in first)])

    parts = [pq.ParquetFile(io.BytesIO(s3.get_object(Bucket=lake_bucket, Key=key)["Body"].read())) for key in first]
    # In their final form at once (AWS compaction leaves a day's lone part as written): ZSTD, as the final merge
    # writes, not the Snappy of the local lake's short-lived parts.
    for part in parts:
        meta = part.metadata
        chunks = [meta.row_group(g).column(c) for g in range(meta.num_row_groups) for c in range(meta.num_columns)]
        assert {chunk.compression for chunk in chunks} == {"ZSTD"}
    rows = [row for part in parts for row in part.read().to_pylist()]
    expected = {format_uuid(r.log_id): r for r in [*written, with_client_id]}
    assert sorted(row["log_id"] for row in rows) == sorted(expected)
    for row in rows:
        original = expected[row["log_id"]]
        assert (row["message"], row["service"], row["severity"]) == (
            original.message, original.service, ("debug", "info", "warning", "error", "critical")[original.severity],
        )  # fmt: skip
        assert row["attributes"] == (original.attributes.decode() if original.attributes else None)
    assert next(r for r in rows if r["message"] == "retried")["client_id"] == format_uuid(with_client_id.client_id)


def test_a_back_filled_day_s_parts_are_merged_by_the_next_hourly_compaction(lake_bucket: str) -> None:
    """The hourly compaction looked at the last seven days only: a day before them that got records (a back-fill,
    a late shipper) kept a small part per stream batch for good, each read by every query over that day."""
    from tests.aws.test_retention import scheduled_event
    from tests.lake.test_aws_compaction import stream_batch

    now = datetime.now(UTC).replace(microsecond=0)
    today = int(now.replace(hour=0, minute=0, second=0).timestamp() * 1000)
    back = today - 30 * DAY
    for batch in range(3):
        handlers.flush_stream(stream_batch([record(back + batch * 10 + i, f"b{batch}") for i in range(4)], batch),
                              CONTEXT)  # fmt: skip
        handlers.flush_stream(stream_batch([record(today + batch, "today")], 10 + batch), CONTEXT)
    s3 = boto3.client("s3")
    day = f"type=app_logs/date={day_of(back).isoformat()}/"
    assert len(s3.list_objects_v2(Bucket=lake_bucket, Prefix=day)["Contents"]) == 3

    summary = handlers.compact(scheduled_event(time=now.strftime("%Y-%m-%dT%H:%M:%SZ")), CONTEXT)
    assert summary["merged_files"] == 6 and summary["late_days_waiting"] == 0
    assert len(s3.list_objects_v2(Bucket=lake_bucket, Prefix=day)["Contents"]) == 1
    assert "Contents" not in s3.list_objects_v2(Bucket=lake_bucket, Prefix=LATE_PREFIX)  # (done with)


def test_removals_and_bookkeeping_items_write_nothing() -> None:
    removal = {"eventName": "REMOVE", "dynamodb": {"OldImage": {}, "SequenceNumber": "1"}}
    hours = {"eventName": "INSERT", "dynamodb": {"NewImage": {"service_name": {"S": "#hours"}}, "SequenceNumber": "2"}}
    assert flush_stream_batch({"Records": [removal, hours]}, lake=None) == []


def test_a_compaction_run_starts_no_merge_it_has_no_time_for_and_the_next_run_continues(lake_bucket: str) -> None:
    """The hourly run's work was bounded by days, not by its Lambda's time: a backlog longer than 15 minutes was cut
    off by the timeout (the run failed, its merge under way left to its journal), at every run."""
    from loglake.aws.compaction import MERGE_RESERVE_MS
    from tests.aws.test_retention import scheduled_event
    from tests.lake.test_aws_compaction import stream_batch

    now = datetime.now(UTC).replace(microsecond=0)
    today = int(now.replace(hour=0, minute=0, second=0).timestamp() * 1000)
    backs = [today - n * 30 * DAY for n in (1, 2)]  # two back-filled days, each noted late
    for batch in range(3):
        for n, back in enumerate(backs):
            handlers.flush_stream(stream_batch([record(back + batch, f"b{batch}")], 10 * n + batch), CONTEXT)
        handlers.flush_stream(stream_batch([record(today + batch, "today")], 100 + batch), CONTEXT)
    # time for one merge only (the first: the run's time when it took the lake's maintenance lease)
    clock = iter([15 * 60_000, MERGE_RESERVE_MS + 60_000, MERGE_RESERVE_MS - 1])
    short = SimpleNamespace(**vars(CONTEXT), get_remaining_time_in_millis=lambda: next(clock))
    event = scheduled_event(time=now.strftime("%Y-%m-%dT%H:%M:%SZ"))
    summary = handlers.compact(event, short)
    assert summary["merged_files"] == 3  # today's, then the time was up: the back-filled days are left
    assert summary["partitions_left"] == 2 and summary["first_left"] == f"type=app_logs/date={day_of(backs[1])}/"
    s3 = boto3.client("s3")
    assert len(s3.list_objects_v2(Bucket=lake_bucket, Prefix=LATE_PREFIX)["Contents"]) == 6  # their notes kept

    summary = handlers.compact(event, CONTEXT)  # the next run merges what was left
    assert summary["merged_files"] == 6 and summary["partitions_left"] == 0
    for back in backs:
        day = f"type=app_logs/date={day_of(back).isoformat()}/"
        assert len(s3.list_objects_v2(Bucket=lake_bucket, Prefix=day)["Contents"]) == 1
