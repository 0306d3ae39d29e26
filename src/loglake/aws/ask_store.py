"""What asking keeps on AWS, in its own DynamoDB table (pk, sk; TTL on `expires_at`): the same things
and methods as ask.db (ask/store.py's ConversationStore).

- A conversation is one item (`conversation#<id>`, `conversation`) holding its turns in a list: a
  follow-up appends to it and moves its expiry in one conditional update (the owner's, still alive),
  so the turns never outlive or precede their conversation. An item holds at most 400 KB: a longer
  conversation is refused with the advice to start another.
- A cached answer is one item (`answer#<key>`, `answer`) that expires with the cache.
- A provider's day (`usage#<provider>`, `<day>`) counts requests, input and output tokens, the tokens
  held for calls under way, and `committed` (used + held). A reservation is one conditional update
  that adds to `committed` only while it stays within the budget, so calls at once (in any number of
  function instances) never together pass it.

Expiry is checked on every read: DynamoDB's TTL deletes expired items only eventually.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import botocore.exceptions

from loglake.ask.errors import AskError
from loglake.ask.store import CACHE_MS, AskStoreBusy, Holding, NoSuchConversation, Turn
from loglake.store.dynamodb import THROTTLED
from loglake.times import DAY_MS

USAGE_KEPT_MS = 400 * DAY_MS  # a provider's days stay a little over a year


class DynamoDBAskStore:
    def __init__(self, client: Any, table: str, clock: Callable[[], float], conversation_ms: int) -> None:
        self.client = client
        self.table = table
        self._clock = clock
        self.conversation_ms = conversation_ms

    @staticmethod
    def create_table(client: Any, table: str) -> None:
        """The table as the stack declares it (aws/infra/ask.py), for tests and local endpoints."""
        client.create_table(
            TableName=table,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        client.update_time_to_live(
            TableName=table, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"}
        )

    def close(self) -> None:
        """Nothing to close: the client is the caller's."""

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    # -- conversations ----------------------------------------------------------------------------

    def turns(self, conversation_id: str, owner: str) -> list[Turn]:
        item = self._get(_conversation(conversation_id))
        if item is None or item["owner"]["S"] != owner or int(item["expires_ms"]["N"]) <= self._now_ms():
            raise NoSuchConversation(conversation_id)
        return [Turn(t["M"]["question"]["S"], json.loads(t["M"]["answer"]["S"])) for t in item["turns"]["L"]]

    def add_turn(self, conversation_id: str | None, owner: str, question: str, answer: dict[str, Any]) -> str:
        now = self._now_ms()
        expires = now + self.conversation_ms
        turn = {"M": {"question": {"S": question}, "answer": {"S": json.dumps(answer)}}}
        times = {":now": _n(now), ":expires": _n(expires), ":ttl": _n(_epoch_s(expires))}
        if conversation_id is None:
            conversation_id = str(uuid.uuid4())
            item = _conversation(conversation_id) | {
                "owner": {"S": owner},
                "created_ms": _n(now),
                "updated_ms": _n(now),
                "expires_ms": _n(expires),
                "expires_at": _n(_epoch_s(expires)),
                "turns": {"L": [turn]},
            }
            self._call(
                self.client.put_item, TableName=self.table, Item=item, ConditionExpression="attribute_not_exists(pk)"
            )
            return conversation_id
        try:
            self._call(
                self.client.update_item,
                TableName=self.table,
                Key=_conversation(conversation_id),
                UpdateExpression="SET turns = list_append(turns, :turn), updated_ms = :now, expires_ms = :expires,"
                " expires_at = :ttl",
                ConditionExpression="#owner = :owner AND expires_ms > :now",
                ExpressionAttributeNames={"#owner": "owner"},
                ExpressionAttributeValues=times | {":turn": {"L": [turn]}, ":owner": {"S": owner}},
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            raise NoSuchConversation(conversation_id) from None
        return conversation_id

    # -- cached answers -----------------------------------------------------------------------

    def cached(self, key: str) -> dict[str, Any] | None:
        item = self._get(_answer(key))
        if item is None or int(item["expires_ms"]["N"]) <= self._now_ms():
            return None
        return json.loads(item["answer"]["S"])

    def cache(self, key: str, answer: dict[str, Any]) -> None:
        expires = self._now_ms() + CACHE_MS
        item = _answer(key) | {
            "answer": {"S": json.dumps(answer)},
            "expires_ms": _n(expires),
            "expires_at": _n(_epoch_s(expires)),
        }
        self._call(self.client.put_item, TableName=self.table, Item=item)

    # -- token use ------------------------------------------------------------------------------

    def reserve(self, provider: str, day: str, tokens: int, budget: int) -> Holding:
        if tokens <= budget:
            try:
                old = self._add(
                    provider,
                    day,
                    {"committed": tokens, "reserved_tokens": tokens},  # #a0 is committed
                    condition="attribute_not_exists(#a0) OR #a0 <= :room",
                    values={":room": _n(budget - tokens)},
                )
                return Holding(*_used_and_held(old), True)
            except self.client.exceptions.ConditionalCheckFailedException:
                pass
        return Holding(*_used_and_held(self._get(_usage(provider, day)) or {}), False)

    def settle(self, provider: str, day: str, held: int, input_tokens: int, output_tokens: int) -> None:
        used = input_tokens + output_tokens
        self._add(
            provider,
            day,
            {
                "requests": 1,
                "input_tokens": input_tokens,
                "output_tokens": output_tokens,
                "reserved_tokens": -held,
                "committed": used - held,
            },
        )

    def release(self, provider: str, day: str, held: int) -> None:
        if held:
            self._add(provider, day, {"reserved_tokens": -held, "committed": -held})

    def _add(
        self, provider: str, day: str, amounts: dict[str, int], condition: str | None = None, values: dict | None = None
    ) -> dict[str, Any]:
        """ADD `amounts` to the provider's day (and keep it USAGE_KEPT_MS); the item's values before."""
        names = {f"#a{i}": name for i, name in enumerate(amounts)}
        added = {f":a{i}": _n(value) for i, value in enumerate(amounts.values())}
        kept = _day_ms(day) + USAGE_KEPT_MS
        request: dict[str, Any] = {
            "TableName": self.table,
            "Key": _usage(provider, day),
            "UpdateExpression": "ADD "
            + ", ".join(f"#a{i} :a{i}" for i in range(len(amounts)))
            + " SET expires_at = :ttl",
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": added | {":ttl": _n(_epoch_s(kept))} | (values or {}),
            "ReturnValues": "ALL_OLD",
        }
        if condition:
            request["ConditionExpression"] = condition
        return self._call(self.client.update_item, **request).get("Attributes", {})

    # -- plumbing -------------------------------------------------------------------------------

    def _get(self, key: dict[str, Any]) -> dict[str, Any] | None:
        return self._call(self.client.get_item, TableName=self.table, Key=key, ConsistentRead=True).get("Item")

    def _call(self, operation: Any, **kwargs: Any) -> Any:
        """One DynamoDB call; throttling is AskStoreBusy (503), a conversation past the item size AskError."""
        try:
            return operation(**kwargs)
        except botocore.exceptions.ClientError as e:
            error = e.response.get("Error", {})
            if error.get("Code") in THROTTLED:
                raise AskStoreBusy(f"the ask table is busy ({error['Code']}); retry shortly") from None
            if error.get("Code") == "ValidationException" and "size" in error.get("Message", ""):
                raise AskError("the conversation is too long to keep (400 KB); start a new one") from None
            raise


def _conversation(conversation_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"conversation#{conversation_id}"}, "sk": {"S": "conversation"}}


def _answer(key: str) -> dict[str, Any]:
    return {"pk": {"S": f"answer#{key}"}, "sk": {"S": "answer"}}


def _usage(provider: str, day: str) -> dict[str, Any]:
    return {"pk": {"S": f"usage#{provider}"}, "sk": {"S": day}}


def _used_and_held(item: dict[str, Any]) -> tuple[int, int]:
    committed = int(item.get("committed", {}).get("N", 0))
    held = int(item.get("reserved_tokens", {}).get("N", 0))
    return committed - held, held


def _n(value: int) -> dict[str, str]:
    return {"N": str(value)}


def _epoch_s(ms: int) -> int:
    return ms // 1000


def _day_ms(day: str) -> int:
    return int(datetime.fromisoformat(day).replace(tzinfo=UTC).timestamp() * 1000)
