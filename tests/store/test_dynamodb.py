"""The DynamoDB hot store passes the same contract as SQLite, against a real moto server."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import boto3
import pytest

from loglake.model import Severity
from loglake.store.base import RecentQuery
from loglake.store.dynamodb import DynamoDBHotStore
from loglake.store.dynamodb_items import record_item
from tests.store.contract import BASE_TS, HotStoreContract, record


def dynamodb_client(endpoint: str, region: str = "us-east-1"):
    return boto3.client(
        "dynamodb",
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture
def dynamodb_store(moto_endpoint: str) -> Iterator[DynamoDBHotStore]:
    client = dynamodb_client(moto_endpoint)
    table = f"loglake-hot-{uuid.uuid4().hex[:12]}"
    DynamoDBHotStore.create_table(client, table)
    store = DynamoDBHotStore(client, table)
    yield store
    store.close()
    client.delete_table(TableName=table)


class TestDynamoDBContract(HotStoreContract):
    @pytest.fixture
    def store(self, dynamodb_store: DynamoDBHotStore) -> DynamoDBHotStore:
        return dynamodb_store


def test_the_table_has_the_documented_keys_and_ttl(dynamodb_store: DynamoDBHotStore) -> None:
    client, table = dynamodb_store.client, dynamodb_store.table
    description = client.describe_table(TableName=table)["Table"]
    assert [(k["AttributeName"], k["KeyType"]) for k in description["KeySchema"]] == [
        ("service_name", "HASH"),
        ("sk", "RANGE"),
    ]
    indexes = {
        i["IndexName"]: [k["AttributeName"] for k in i["KeySchema"]] for i in description["GlobalSecondaryIndexes"]
    }
    assert indexes == {
        "by_time": ["time_bucket", "sk"],
        "by_log_type": ["log_type_key", "sk"],
        "by_severity": ["severity_key", "sk"],
    }
    ttl = client.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
    assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == ("ENABLED", "expires_at")


def test_the_common_record_is_left_out_of_the_sparse_indexes(dynamodb_store: DynamoDBHotStore) -> None:
    common, audit = record(BASE_TS, "plain"), record(BASE_TS + 1, "audit", log_type="audit", severity=Severity.ERROR)
    dynamodb_store.put([common, audit])
    client, table = dynamodb_store.client, dynamodb_store.table
    for index in ("by_log_type", "by_severity"):
        items = client.scan(TableName=table, IndexName=index)["Items"]
        assert [i["message"]["S"] for i in items] == ["audit"]


def test_the_hot_window_ends_a_day_after_the_record_but_never_in_the_past(dynamodb_store: DynamoDBHotStore) -> None:
    """DynamoDB's TTL skips items that expired over five years ago: an old record expires now instead."""
    now_s = int(time.time())
    fresh, old = record(now_s * 1000, "fresh"), record(BASE_TS - 10 * 365 * 86_400_000, "old")
    dynamodb_store.put([fresh, old])

    def expires_at(r) -> int:
        key = {"service_name": {"S": "api"}, "sk": {"B": r.log_id}}
        return int(dynamodb_store.client.get_item(TableName=dynamodb_store.table, Key=key)["Item"]["expires_at"]["N"])

    assert expires_at(fresh) == now_s + 86_400
    assert now_s <= expires_at(old) <= int(time.time())


def test_recent_across_services_reads_the_time_index_without_a_scan(dynamodb_store: DynamoDBHotStore) -> None:
    hour = 3_600_000
    dynamodb_store.put([record(BASE_TS + i * hour // 2, f"m{i}", service=f"s{i % 3}") for i in range(12)])

    def no_scans(**kwargs: object) -> None:
        raise AssertionError("recent logs across services must not Scan the table")

    dynamodb_store.client.meta.events.register("before-call.dynamodb.Scan", no_scans)
    found = dynamodb_store.recent(RecentQuery(since_ms=BASE_TS, limit=5))
    assert [r.message for r in found] == ["m11", "m10", "m9", "m8", "m7"]


def test_many_records_go_in_batches(dynamodb_store: DynamoDBHotStore) -> None:
    batch = [record(BASE_TS + i, f"b{i}", service="bulk") for i in range(260)]
    assert dynamodb_store.put(batch) == [r.log_id for r in batch]
    assert len(dynamodb_store.recent(RecentQuery(since_ms=BASE_TS, service="bulk", limit=1000))) == 260


def test_one_processs_records_take_the_index_shards_in_turn(dynamodb_store: DynamoDBHotStore) -> None:
    """An hour's writes, and an error storm's, spread evenly over their index partitions, even from a
    single writer process (the shard follows the id's counter, not its per-process node number)."""
    written = [record(BASE_TS + i, f"m{i}", log_type="audit", severity=Severity.ERROR) for i in range(100)]
    dynamodb_store.put(written)  # 100 consecutive ids
    items = dynamodb_store.client.scan(TableName=dynamodb_store.table)["Items"]
    for attribute in ("time_bucket", "log_type_key", "severity_key"):
        per_shard: dict[str, int] = {}
        for item in items:
            if attribute in item:
                shard = item[attribute]["S"].rsplit("#", 1)[1]
                per_shard[shard] = per_shard.get(shard, 0) + 1
        assert per_shard == {"0": 25, "1": 25, "2": 25, "3": 25}, attribute
    newest_first = [r.log_id for r in reversed(written)]
    for query in (RecentQuery(since_ms=BASE_TS, severities=frozenset({Severity.ERROR}), limit=100),
                  RecentQuery(since_ms=BASE_TS, log_type="audit", limit=100)):  # fmt: skip
        assert [r.log_id for r in dynamodb_store.recent(query)] == newest_first


def test_an_item_with_unreadable_attributes_is_read_with_them_named(dynamodb_store: DynamoDBHotStore) -> None:
    """An item written by hand (or by another tool): each attribute that cannot be read is named, the
    rest of the record kept; an item whose key is not a log id is left out."""
    fine = record(BASE_TS + 2, "fine")
    dynamodb_store.put([fine])
    odd = record(BASE_TS + 1, "odd")
    dynamodb_store.put([odd])
    dynamodb_store.client.update_item(
        TableName=dynamodb_store.table,
        Key={"service_name": {"S": "api"}, "sk": {"B": odd.log_id}},
        UpdateExpression="SET severity = :severity, attributes = :attributes, client_id = :client_id, ts = :ts",
        ExpressionAttributeValues={
            ":severity": {"N": "9"},
            ":attributes": {"S": '{"user": '},
            ":client_id": {"B": b"\x01" * 15},
            ":ts": {"S": "soon"},
        },
    )
    no_id = record_item(record(BASE_TS, "no id"), int(time.time()) + 3600, 0) | {"sk": {"B": b"short"}}
    dynamodb_store.client.put_item(TableName=dynamodb_store.table, Item=no_id)

    got = dynamodb_store.get(odd.log_id)
    assert got is not None
    assert (got.message, got.timestamp, got.severity, got.attributes, got.client_id) == (
        "odd",
        BASE_TS + 1,
        Severity.INFO,
        None,
        None,
    )
    assert [field for field, _ in got.unreadable] == ["timestamp", "severity", "attributes", "id"]
    for query in (RecentQuery(since_ms=BASE_TS - 1), RecentQuery(since_ms=BASE_TS - 1, service="api")):
        assert [r.message for r in dynamodb_store.recent(query)] == ["fine", "odd"]
