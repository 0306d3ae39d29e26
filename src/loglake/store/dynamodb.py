"""The hot store on DynamoDB, for loglake on AWS: the same contract as SQLite (store/base.py).

Key design (one table):

- base table: partition key `service_name`, sort key `sk` = the 16-byte log id (UUIDv7: time
  ordered and unique, so "made unique per record" costs nothing). A service's newest records are one
  Query with ScanIndexForward=false.
- GSI `by_time`: partition key `time_bucket` = "<UTC hour>#<shard>", sort key `sk`: "most recent N
  across all services" queries the newest hours' shards and merges them, never a Scan. The shards
  spread one hour's writes over several partitions (a GSI partition takes ~1,000 writes/s). Which
  hours hold records is itself a Query: each hour is registered once (per writer process) as an item
  of the partition "#hours", so old or sparse ranges do not cost one query per empty hour.
- GSI `by_log_type` (`log_type_key` = "<log type>#<shard>", `sk`) and `by_severity` (`severity_key`
  = "<severity>#<shard>", `sk`): sparse, like the SQLite partial indexes: only records whose log type
  is not "application", or whose severity is not info, carry the key attribute, so the common record
  costs no write on them. Sharded like `by_time`: a storm of errors would otherwise pour into one
  partition, and a GSI that cannot keep up throttles the table's writes too.
- client ids: an item `service_name` = "#client#<uuid>" (a service name never starts with "#") names
  the record a client id was first stored as; it and the record are written in one transaction whose
  condition fails when the client id exists, which is what makes a retry idempotent.
- `expires_at`: the TTL attribute (epoch seconds), the end of the hot window.

Records without a client id go in with BatchWriteItem (25 at a time, unprocessed items retried with
backoff). A put is idempotent by id, so a retried batch stores nothing twice; unlike SQLite, a batch
is not atomic as a whole (DynamoDB transactions hold 100 items): a write that fails part-way raises,
and the client's retry completes it.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import botocore.exceptions

from loglake.ids import format_uuid, lower_bound, timestamp_of
from loglake.model import NewRecord, StoredRecord
from loglake.retry import Backoff, TryAgain
from loglake.store.base import HotStore, RecentQuery, ScanKey, StoreUnavailable
from loglake.store.dynamodb_items import HOUR_MS, record_from_item, record_item, sharded

TIME_SHARDS = 4
MAX_PAGE_ITEMS = 1000  # items asked of one Query page (a page also ends at 1 MB)
ID_COUNTER_LOW_BYTE = 11  # of the 16-byte UUIDv7 (ids.py: 42-bit counter, then a 32-bit node number)
BATCH_ITEMS = 25  # BatchWriteItem's limit
TRANSACTIONS_AT_ONCE = 16  # client-id writes (one transaction each) in flight per store
MAX_ATTEMPTS = 8
UNPROCESSED_BACKOFF = Backoff(first=0.05, cap=2.0)
THROTTLED = frozenset({"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"})
_CLIENT = "#client#"
_HOURS = "#hours"
_INDEX = {"service": None, "log_type": "by_log_type", "severity": "by_severity"}
_INDEX_KEY = {"log_type": "log_type_key", "severity": "severity_key"}


class DynamoDBHotStore(HotStore):
    def __init__(
        self, client: Any, table: str, *, hot_window_seconds: int = 86_400, writers: int = 8, shards: int = TIME_SHARDS
    ) -> None:
        self.client = client
        self.table = table
        self.hot_window_seconds = hot_window_seconds
        self.shards = shards
        self._writers = ThreadPoolExecutor(writers, thread_name_prefix="loglake-dynamodb")
        self._transactions = ThreadPoolExecutor(TRANSACTIONS_AT_ONCE, thread_name_prefix="loglake-dynamodb-tx")
        self._closed = False
        self._registered_hours: set[int] = set()  # hours this process has written the "#hours" item of

    @staticmethod
    def create_table(client: Any, table: str, stream: bool = False) -> None:
        """The table as the CDK app defines it (on-demand; with `stream`, the stream the lake flush
        reads), for tests and local use; waits until active."""
        key = [("sk", "B")]
        indexes = {
            "by_time": ("time_bucket", "S"),
            "by_log_type": ("log_type_key", "S"),
            "by_severity": ("severity_key", "S"),
        }
        client.create_table(
            TableName=table,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[
                {"AttributeName": name, "AttributeType": kind}
                for name, kind in [("service_name", "S"), *key, *indexes.values()]
            ],
            KeySchema=[
                {"AttributeName": "service_name", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            GlobalSecondaryIndexes=[
                {
                    "IndexName": index,
                    "KeySchema": [
                        {"AttributeName": name, "KeyType": "HASH"},
                        {"AttributeName": "sk", "KeyType": "RANGE"},
                    ],
                    "Projection": {"ProjectionType": "ALL"},
                }
                for index, (name, _) in indexes.items()
            ],
            **(
                {"StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}}
                if stream
                else {}
            ),
        )
        client.get_waiter("table_exists").wait(TableName=table)
        client.update_time_to_live(
            TableName=table, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"}
        )

    # -- writes --------------------------------------------------------------------------------

    def submit(self, records: Sequence[NewRecord]) -> Future[list[bytes]]:
        if self._closed:
            failed: Future[list[bytes]] = Future()
            failed.set_exception(StoreUnavailable("the hot store is closed"))
            return failed
        return self._writers.submit(self._write, list(records))

    def _write(self, records: list[NewRecord]) -> list[bytes]:
        self._register_hours({r.timestamp // HOUR_MS for r in records} - self._registered_hours)
        plain = [r for r in records if r.client_id is None]
        first_of_client: dict[bytes, NewRecord] = {}
        for record in records:
            if record.client_id is not None:
                first_of_client.setdefault(record.client_id, record)  # repeated within a batch: stored once
        # One transaction per client id (its claim and its record), many at once: in sequence, a batch
        # of thousands would outlast API Gateway's 29 s.
        claimed = dict(
            zip(
                first_of_client, self._transactions.map(self._put_with_client_id, first_of_client.values()), strict=True
            )
        )
        for start in range(0, len(plain), BATCH_ITEMS):
            self._batch_put([self._item(r) for r in plain[start : start + BATCH_ITEMS]])
        return [r.log_id if r.client_id is None else claimed[r.client_id] for r in records]

    def _register_hours(self, hours: set[int]) -> None:
        """Before an hour's first record: the "#hours" item that lets reads find it (idempotent)."""
        items = [
            {"service_name": {"S": _HOURS}, "sk": {"B": hour.to_bytes(8, "big")},
             "expires_at": {"N": str(self._expires_at((hour + 1) * HOUR_MS))}}
            for hour in sorted(hours)
        ]  # fmt: skip
        for start in range(0, len(items), BATCH_ITEMS):
            self._batch_put(items[start : start + BATCH_ITEMS])
        self._registered_hours |= hours

    def _put_with_client_id(self, record: NewRecord) -> bytes:
        """Store the record unless its client id names one already; the id stored either way."""
        claim = {"service_name": {"S": _CLIENT + format_uuid(record.client_id)}, "sk": {"B": record.client_id}}
        try:
            self._call(
                self.client.transact_write_items,
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self.table,
                            "Item": claim
                            | {
                                "log_id": {"B": record.log_id},
                                "service": {"S": record.service},
                                "expires_at": {"N": str(self._expires_at(record.timestamp))},
                            },
                            "ConditionExpression": "attribute_not_exists(sk)",
                        }
                    },
                    {"Put": {"TableName": self.table, "Item": self._item(record)}},
                ],
            )
            return record.log_id
        except botocore.exceptions.ClientError as e:
            if e.response["Error"]["Code"] != "TransactionCanceledException":
                raise
            reasons = [r.get("Code") for r in e.response.get("CancellationReasons", [])]
            if reasons and reasons[0] != "ConditionalCheckFailed":
                raise StoreUnavailable(f"DynamoDB cancelled the write: {', '.join(map(str, reasons))}") from None
            existing = self._call(self.client.get_item, TableName=self.table, Key=claim, ConsistentRead=True)
            return existing["Item"]["log_id"]["B"]

    def _batch_put(self, items: list[dict]) -> None:
        requests = [{"PutRequest": {"Item": item}} for item in items]

        def attempt() -> None:
            nonlocal requests
            answer = self._call(self.client.batch_write_item, RequestItems={self.table: requests})
            requests = answer.get("UnprocessedItems", {}).get(self.table, [])
            if requests:  # throttled
                left = f"DynamoDB left {len(requests)} item(s) unprocessed after {MAX_ATTEMPTS} attempts"
                raise TryAgain(StoreUnavailable(left))

        UNPROCESSED_BACKOFF.run(attempt, attempts=MAX_ATTEMPTS)

    def _call(self, operation: Any, **kwargs: Any) -> Any:
        try:
            return operation(**kwargs)
        except botocore.exceptions.ClientError as e:
            code = e.response["Error"]["Code"]
            if code in THROTTLED:
                raise StoreUnavailable(f"DynamoDB is throttling requests ({code}); retry") from None
            if code == "ResourceNotFoundException":
                raise StoreUnavailable(f"DynamoDB table {self.table} does not exist") from None
            raise
        except (botocore.exceptions.EndpointConnectionError, botocore.exceptions.ConnectionClosedError) as e:
            raise StoreUnavailable(f"cannot reach DynamoDB: {e}") from None

    def _item(self, r: NewRecord) -> dict[str, dict]:
        return record_item(r, self._expires_at(r.timestamp), self._shard(r.log_id))

    def _expires_at(self, timestamp_ms: int) -> int:
        # The end of the record's hot window, but not in the past: DynamoDB's TTL never deletes items
        # whose time expired more than five years ago, and an old record sent today must still go.
        return max(timestamp_ms // 1000 + self.hot_window_seconds, int(time.time()))

    def _shard(self, log_id: bytes) -> int:
        # Byte 11 is the low byte of the id's counter (ids.py), which counts up once per id: consecutive
        # records take the shards in turn. (The last bytes are the process's constant node number.)
        return log_id[ID_COUNTER_LOW_BYTE] % self.shards

    # -- reads ---------------------------------------------------------------------------------

    def get(self, log_id: bytes) -> StoredRecord | None:
        found = self._by_id(log_id)
        if found is None:  # maybe a client id
            claim = {"service_name": {"S": _CLIENT + format_uuid(log_id)}, "sk": {"B": log_id}}
            item = self._call(self.client.get_item, TableName=self.table, Key=claim).get("Item")
            if item is not None:
                found = self._by_id(item["log_id"]["B"])
        return found

    def _by_id(self, log_id: bytes) -> StoredRecord | None:
        answer = self._call(
            self.client.query,
            TableName=self.table,
            IndexName="by_time",
            KeyConditionExpression="time_bucket = :b AND sk = :id",
            ExpressionAttributeValues={
                ":b": {"S": sharded(timestamp_of(log_id) // HOUR_MS, self._shard(log_id))},
                ":id": {"B": log_id},
            },
        )
        return record_from_item(answer["Items"][0]) if answer["Items"] else None

    def scan(self, key: ScanKey, query: RecentQuery) -> Iterator[StoredRecord]:
        low = lower_bound(query.since_ms)
        high = query.before_id
        if query.until_ms is not None:
            until = lower_bound(query.until_ms)
            high = until if high is None else min(high, until)
        if high is not None and high <= low:
            return iter(())
        page = min(query.limit + 1, MAX_PAGE_ITEMS)
        if key.index is None:
            items = self._newest_across_services(low, high, page)
        elif key.index == "service":
            items = self._query(None, "service_name", {"S": key.value}, low, high, page=page)
        else:  # a sparse index: its shards merged by id
            name, index = _INDEX_KEY[key.index], _INDEX[key.index]
            value = key.value if key.index == "log_type" else int(key.value)  # as record_item writes it
            shards = [
                self._query(index, name, {"S": sharded(value, s)}, low, high, page=page) for s in range(self.shards)
            ]
            items = heapq.merge(*shards, key=lambda item: item["sk"]["B"], reverse=True)
        return (r for r in map(record_from_item, items) if r is not None and _matches(r, query, key))

    def _newest_across_services(self, low: bytes, high: bytes | None, page: int) -> Iterator[dict]:
        """The by_time index, hour by hour from the newest hour that has records, each hour's shards
        merged by id."""
        first_hour = (timestamp_of(low) // HOUR_MS).to_bytes(8, "big")
        last_hour = (timestamp_of(high) // HOUR_MS + 1).to_bytes(8, "big") if high is not None else None
        for item in self._query(None, "service_name", {"S": _HOURS}, first_hour, last_hour, width=8):
            hour = int.from_bytes(item["sk"]["B"], "big")
            shards = [
                self._query("by_time", "time_bucket", {"S": sharded(hour, s)}, low, high, page=page)
                for s in range(self.shards)
            ]
            yield from heapq.merge(*shards, key=lambda item: item["sk"]["B"], reverse=True)

    def _query(
        self,
        index: str | None,
        name: str,
        value: dict,
        low: bytes,
        high: bytes | None,
        width: int = 16,
        page: int = MAX_PAGE_ITEMS,
    ) -> Iterator[dict]:
        """One key's items with low <= sk < high (`width`-byte keys), newest first, page by page. The
        first page holds `page` items (what the caller expects to need: a Query otherwise reads up to
        1 MB, billed, of which a page of recent logs uses a sliver); later pages grow fourfold."""
        last = (int.from_bytes(high, "big") - 1).to_bytes(width, "big") if high is not None else b"\xff" * width
        request: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "#k = :v AND sk BETWEEN :low AND :last",
            "ExpressionAttributeNames": {"#k": name},
            "ExpressionAttributeValues": {":v": value, ":low": {"B": low}, ":last": {"B": last}},
            "ScanIndexForward": False,
            "Limit": page,
        }
        if index is not None:
            request["IndexName"] = index
        while True:
            answer = self._call(self.client.query, **request)
            yield from answer["Items"]
            if "LastEvaluatedKey" not in answer:
                return
            request["ExclusiveStartKey"] = answer["LastEvaluatedKey"]
            request["Limit"] = min(request["Limit"] * 4, MAX_PAGE_ITEMS)

    def close(self) -> None:
        self._closed = True
        self._writers.shutdown(wait=True)
        self._transactions.shutdown(wait=True)


def _matches(r: StoredRecord, query: RecentQuery, key: ScanKey) -> bool:
    """The filters the key itself does not apply (the message match is case-insensitive, which
    DynamoDB's contains() is not, so all of them run here)."""
    if query.service is not None and key.index != "service" and r.service != query.service:
        return False
    if query.log_type is not None and key.index != "log_type" and r.log_type != query.log_type:
        return False
    if query.severities is not None and key.index != "severity" and r.severity not in query.severities:
        return False
    return not query.contains or query.contains.lower() in r.message.lower()
