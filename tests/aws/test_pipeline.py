"""The AWS path end to end: records sent to the API function land in DynamoDB (moto), come through the
table's stream to the flush function, which writes them to the lake bucket, where the compaction
function merges them; searching the lake (Athena SQL, run on DuckDB over the bucket's objects) then
answers exactly what the hot table answers."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import boto3
import pytest

from loglake.aws import handlers
from loglake.aws.athena import AthenaQueryEngine
from loglake.aws.athena_search import AthenaSearch
from loglake.lake.claim import CLAIM_KEY
from loglake.service import LogService
from loglake.store.dynamodb import DynamoDBHotStore
from tests.aws.athena_duckdb import DuckDBAthena
from tests.aws.test_api_handler import CONTEXT, invoke, rest_event
from tests.aws.test_retention import scheduled_event
from tests.aws.test_stream_flush import lambda_event
from tests.moto_server import lambda_environment
from tests.store.test_dynamodb import dynamodb_client

REGION = "eu-west-1"


@pytest.fixture
def deployment(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict:
    table, bucket = f"loglake-e2e-{uuid.uuid4().hex[:8]}", f"loglake-e2e-{uuid.uuid4().hex[:8]}"
    lambda_environment(
        monkeypatch,
        REGION,
        AWS_ENDPOINT_URL_DYNAMODB=moto_endpoint,
        AWS_ENDPOINT_URL_DYNAMODB_STREAMS=moto_endpoint,
        AWS_ENDPOINT_URL_S3=moto_endpoint,
        LOGLAKE_DYNAMODB_TABLE=table,
        LOGLAKE_LAKE_BUCKET=bucket,
        LOGLAKE_DATA_DIR=str(tmp_path / "lambda-tmp"),
    )
    client = dynamodb_client(moto_endpoint, REGION)
    DynamoDBHotStore.create_table(client, table, stream=True)
    boto3.client("s3").create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    yield {"client": client, "table": table, "bucket": bucket}
    handlers.reset()


def _stream_batches(client, table: str, size: int = 10) -> list[dict]:
    """Every record of the table's stream, as Lambda would hand them over, in batches of `size`."""
    streams = boto3.client("dynamodbstreams")
    arn = client.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    batches = []
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON")
        records = streams.get_records(ShardIterator=iterator["ShardIterator"], Limit=1000)["Records"]
        batches += [lambda_event(records[i : i + size], arn) for i in range(0, len(records), size)]
    return batches


def _download(bucket: str, root: Path) -> None:
    """The bucket's objects under a folder, where the Athena stand-in reads them as Athena reads S3."""
    s3 = boto3.client("s3")
    for found in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
        target = root / found["Key"]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(s3.get_object(Bucket=bucket, Key=found["Key"])["Body"].read())


def test_records_sent_to_the_api_are_searchable_in_the_lake(
    deployment: dict, capsys: pytest.CaptureFixture, tmp_path: Path
) -> None:
    hour_ms = 3_600_000
    start_ms = (int(time.time() * 1000) - 2 * hour_ms) // hour_ms * hour_ms  # 40 minutes of one day
    records = [
        {
            "timestamp": start_ms + 60_000 * i,
            "service": ("checkout", "search", "auth")[i % 3],
            "severity": ("info", "warning", "error")[i % 3],
            "message": f"order {i} {'timed out talking to payments' if i % 4 == 0 else 'ok'}",
            "attributes": {"order": i, "region": "eu" if i % 2 else "us"},
        }
        for i in range(40)
    ]
    response, _, line = invoke(
        rest_event("POST", "/logs", body=json.dumps(records), headers={"Content-Type": "application/json"}), capsys
    )
    assert response["statusCode"] == 201 and line["RecordsIngested"] == 40

    written = [key for batch in _stream_batches(deployment["client"], deployment["table"])
               for key in handlers.flush_stream(batch, CONTEXT)["objects"]]  # fmt: skip
    assert len(written) >= 4 and all(k.startswith("type=app_logs/date=") for k in written)
    assert len({k.split("/")[1] for k in written}) == 1
    # the hourly compaction (EventBridge's scheduled event) merges each day's stream parts into one
    compacted = handlers.compact(scheduled_event(time=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())), CONTEXT)
    assert compacted["merged_files"] == len(written) and len(compacted["written_files"]) == 1
    listed = boto3.client("s3").list_objects_v2(Bucket=deployment["bucket"])["Contents"]
    assert sorted(o["Key"] for o in listed) == sorted([*compacted["written_files"], CLAIM_KEY])  # (claim.py)
    _download(deployment["bucket"], tmp_path / "lake")

    engine = AthenaQueryEngine(DuckDBAthena(tmp_path / "lake"), "loglake", "primary", sleep=lambda s: None)
    store = DynamoDBHotStore(deployment["client"], deployment["table"])
    lake_search = LogService(store, record_search=AthenaSearch(engine))
    for params in [{"limit": "100"}, {"service": "checkout"}, {"severity": "error"}, {"q": "timed out"}]:
        hot = invoke(rest_event("GET", "/logs/recent", query=params), capsys)[1]["logs"]
        if "q" in params:  # recent has no search language: filter the hot answer the same way
            hot = [r for r in hot if "timed out" in r["message"]]
        found = lake_search.search({**params, "since": "4h"}).records
        assert [r.message for r in found] == [r["message"] for r in hot], params
        assert len(found) > 0
    found = lake_search.search({"q": "region:eu service:search", "since": "4h"}).records
    assert sorted(json.loads(r.attributes)["order"] for r in found) == [i for i in range(40) if i % 6 == 1]
    store.close()
