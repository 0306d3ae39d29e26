"""The delivery outbox of the DynamoDB detections table (alerts/dynamodb.py describes its items): deliveries
handed to the queue, claimed by one attempt at a time and finished by the claim's holder, as alerts/outbox.py
keeps them locally; and the forms of the table's keys and attribute values."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import botocore.exceptions

from loglake.alerts.outbox import MAX_ERROR_CHARS, Claimed, DeliveryRow, Sent

UNQUEUED_INDEX = "unqueued"
UNQUEUED = "unqueued"


class ClaimRefused(Exception):
    """A delivery that cannot be attempted now: `finished` (sent or dead-lettered: nothing to do) or
    held by another attempt whose lease has not run out (try later)."""

    def __init__(self, finished: bool) -> None:
        super().__init__("finished" if finished else "held by another attempt")
        self.finished = finished


class DynamoDBOutbox:
    """Deliveries in the detections table: queued, claimed, sent or failed."""

    def __init__(self, client: Any, table: str) -> None:
        self.client = client
        self.table = table

    def unqueued(self, limit: int = 100) -> list[dict[str, str]]:
        """Deliveries written but not yet handed to the queue, oldest first (id, destination, dedup key)."""
        answer = self.client.query(
            TableName=self.table,
            IndexName=UNQUEUED_INDEX,
            KeyConditionExpression="#queue = :unqueued",
            ExpressionAttributeNames={"#queue": "queue"},
            ExpressionAttributeValues={":unqueued": string(UNQUEUED)},
            Limit=limit,
        )
        return [delivery_ref(item) for item in answer.get("Items", [])]

    def queued(self, delivery_id: str) -> None:
        self.client.update_item(
            TableName=self.table,
            Key=item_key(f"delivery#{delivery_id}", "delivery"),
            UpdateExpression="REMOVE #queue, queued_since",
            ExpressionAttributeNames={"#queue": "queue"},
        )

    def claim_delivery(self, delivery_id: str, now_ms: int, lease_ms: int) -> tuple[Claimed, str]:
        """Take a delivery for an attempt until now + lease: (what to send, the claim's token), or
        ClaimRefused. A delivery whose attempt was cut short (`sending` past its lease) is taken again."""
        token = str(uuid.uuid4())
        try:
            answer = self.client.update_item(
                TableName=self.table,
                Key=item_key(f"delivery#{delivery_id}", "delivery"),
                UpdateExpression="SET #state = :sending, claim = :token, lease_until_ms = :lease, updated_ms = :now",
                ConditionExpression="#state = :pending OR (#state = :sending AND lease_until_ms < :now)",
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues={
                    ":sending": string("sending"),
                    ":pending": string("pending"),
                    ":token": string(token),
                    ":lease": number(now_ms + lease_ms),
                    ":now": number(now_ms),
                },
                ReturnValues="ALL_NEW",
            )
        except botocore.exceptions.ClientError as e:
            if error_code(e) != "ConditionalCheckFailedException":
                raise
            item = self._get(f"delivery#{delivery_id}", "delivery")
            raise ClaimRefused(item is None or item["state"]["S"] in ("sent", "dead")) from None
        item = answer["Attributes"]
        memory = self._get(f"memory#{item['destination']['S']}#{item['dedup_key']['S']}", "memory")
        row = DeliveryRow(
            0,
            delivery_id,
            int(item["seq"]["N"]),
            item["destination"]["S"],
            item["alert_id"]["S"],
            item["dedup_key"]["S"],
            item["kind"]["S"],
            "sending",
            int(item["attempts"]["N"]),
            now_ms,
            int(item["created_ms"]["N"]),
            now_ms,
            item.get("last_error", {}).get("S"),
            int(item["last_status"]["N"]) if "last_status" in item else None,
        )
        event = self._get(f"event#{item['alert_id']['S']}#{item['seq']['N']}", "event")
        if event is None:
            raise RuntimeError(f"delivery {delivery_id} has no alert event (it was written with its deliveries)")
        alert = json.loads(event["doc"]["S"])
        remembered = None if memory is None else memory["value"]["S"]
        return Claimed(row, alert, int(item["created_ms"]["N"]), remembered), token

    def sent(self, row: DeliveryRow, token: str, now_ms: int, sent: Sent) -> bool:
        """Record the claimed attempt as sent (False: the claim was lost to a later attempt)."""
        remember = sent.remember
        done = self._finish(row, token, "sent", now_ms, sent.warning, sent.status)
        if done and remember is not None:
            self.client.put_item(
                TableName=self.table,
                Item=item_key(f"memory#{row.destination}#{row.dedup_key}", "memory") | {"value": string(remember)},
            )
        return done

    def failed(self, row: DeliveryRow, token: str, now_ms: int, error: str, status: int | None, dead: bool) -> bool:
        """Record a failed attempt: due again (`pending`) or dead-lettered."""
        return self._finish(row, token, "dead" if dead else "pending", now_ms, error, status)

    def delivery(self, delivery_id: str) -> dict[str, Any] | None:
        """A delivery's state, attempts and last error (for tests and operators)."""
        item = self._get(f"delivery#{delivery_id}", "delivery")
        if item is None:
            return None
        return {
            "id": delivery_id,
            "destination": item["destination"]["S"],
            "kind": item["kind"]["S"],
            "state": item["state"]["S"],
            "attempts": int(item["attempts"]["N"]),
            "last_error": item.get("last_error", {}).get("S"),
            "last_status": int(item["last_status"]["N"]) if "last_status" in item else None,
            "queued": "queue" not in item,
        }

    def _finish(
        self, row: DeliveryRow, token: str, state: str, now_ms: int, error: str | None, status: int | None
    ) -> bool:
        values = {
            ":state": string(state),
            ":one": number(1),
            ":now": number(now_ms),
            ":token": string(token),
            ":sending": string("sending"),
        }
        update = "SET #state = :state, attempts = attempts + :one, updated_ms = :now"
        removed = "claim, lease_until_ms"
        if error is None:
            removed += ", last_error"  # sent: an earlier attempt's error is over, as in the local outbox
        else:
            update += ", last_error = :error"
            values[":error"] = string(error[:MAX_ERROR_CHARS])
        if status is not None:
            update += ", last_status = :status"
            values[":status"] = number(status)
        return self._conditional(
            self.client.update_item,
            TableName=self.table,
            Key=item_key(f"delivery#{row.id}", "delivery"),
            UpdateExpression=f"{update} REMOVE {removed}",
            ConditionExpression="#state = :sending AND claim = :token",
            ExpressionAttributeNames={"#state": "state"},
            ExpressionAttributeValues=values,
        )

    # -- helpers ----------------------------------------------------------------------------------

    def _get(self, pk: str, sk: str) -> dict[str, Any] | None:
        return self.client.get_item(TableName=self.table, Key=item_key(pk, sk), ConsistentRead=True).get("Item")

    def _conditional(self, operation: Callable[..., Any], **kwargs: Any) -> bool:
        try:
            operation(**kwargs)
        except botocore.exceptions.ClientError as e:
            if error_code(e) == "ConditionalCheckFailedException":
                return False
            raise
        return True


def delivery_ref(item: dict[str, Any]) -> dict[str, str]:
    return {"id": item["id"]["S"], "destination": item["destination"]["S"], "dedup_key": item["dedup_key"]["S"]}


def item_key(pk: str, sk: str) -> dict[str, Any]:
    return {"pk": string(pk), "sk": string(sk)}


def string(text: str) -> dict[str, str]:
    return {"S": text}


def number(value: int) -> dict[str, str]:
    return {"N": str(value)}


def error_code(error: botocore.exceptions.ClientError) -> str:
    return error.response.get("Error", {}).get("Code", "")
