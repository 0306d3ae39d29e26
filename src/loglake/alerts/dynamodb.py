"""Alert state and the delivery outbox on DynamoDB, for detections on AWS: what alerts.db does locally
(alerts/db.py, apply.py, outbox.py, rules/state.py), with conditional writes where SQLite has one
writer and transactions.

One table, keys `pk` and `sk` (strings):

- `rule#<id>` / `state`: where the rule's windows end (`window_end_ms`), its failures in a row (and
  when the last ended, `failed_ms`: the window waits for the rule's next firing), and the run that
  holds its next window (`run`, until `run_until_ms`). A window is claimed with a conditional update
  (it still ends where the run found it, and no other run holds it), and moved on only by the run
  that claimed it: two invocations never both evaluate a window.
- `dedup#<rule id>#<dedup key>` / `head`: the rule's current alert for that key, its status, its
  first window's start and a `version`. Every change of the alert is one transaction: the head (on
  the condition that its version is the one read: a concurrent writer makes this one read again),
  the alert, and the deliveries its event makes. So one alert per dedup key per dedup window, as
  locally (alerts/apply.py), and an event is never delivered unless its change was written. A rule
  that keeps failing raises its own alert the same way, one per streak of failures: each failure
  updates it, sent again only once its last event is the rule's dedup window old (failing_told_again),
  and the run that ends the streak resolves it (rule_recovered), with a `resolve` event.
- `alert#<id>` / `alert`: the alert as alerts.db's row (JSON in `doc`), what destinations format, and
  `told`, the destinations that heard of it (alerts.db's delivery_told: its later events go to them, whatever
  the routes say by then; an item written before `told` was kept counts as heard of everywhere); a failing
  rule's alert also has `told_ms`, the time of its last event.
- `event#<alert id>#<version>` / `event`: the alert as an event left it (what its deliveries send).
  An alert's JSON is kept under MAX_ALERT_BYTES by leaving out its oldest evidence rows.
- `delivery#<id>` / `delivery`: one per (alert event, destination). Its id is the idempotency key.
  Until it is queued (SQS) it carries `queue` = "unqueued" and `queued_since`, the keys of the
  sparse index `unqueued`, so deliveries a crash left unqueued are found and queued again. An
  attempt claims it (`pending`, or `sending` past its lease, becomes `sending` under a token); only
  the token's holder records the outcome (alerts/dynamodb_outbox.py).
- `memory#<destination>#<dedup key>` / `memory`: what a destination keeps per key (a Jira issue).

A rule's run writes its alerts before it moves its window: a run killed in between leaves the window
where it was, and the next run finds the same records already in the alerts (their last seen is no
later), so it changes nothing and makes no event: no alert and no delivery twice. Alerts are not
resolved or acknowledged on AWS (no API for them there): dedup windows end them; only a failing rule's
alert is resolved, by the rule's next good run.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import botocore.exceptions

from loglake.alerts.apply import (
    BY_RULE,
    FAILING_LEVEL,
    FAILING_TAG,
    Overlapped,
    failing_key,
    failing_told_again,
    merged_count,
    merged_evidence,
    recovered_note,
    seen_span,
    unread_part,
)
from loglake.alerts.dynamodb_outbox import (
    UNQUEUED,
    UNQUEUED_INDEX,
    DynamoDBOutbox,
    delivery_ref,
    error_code,
    item_key,
    number,
    string,
)
from loglake.ids import format_uuid, uuid7_bytes
from loglake.rules.model import Rule
from loglake.rules.run import Match, RunResult
from loglake.rules.state import RuleState

if TYPE_CHECKING:
    from loglake.rules.scheduler import Window

MAX_TRANSACTION_ITEMS = 100  # DynamoDB's limit: the head, the alert, its event and at most 97 deliveries
MAX_ALERT_BYTES = 350_000  # of an alert's JSON: an item holds 400 KB
_OPEN = ("open", "acknowledged")
_CONFLICT_RETRIES = 8

# What an alert event is delivered to: (the alert as a row, the event's kind, the destinations that heard of the
# alert) -> (destination, kind to send), as alerts/outbox.py's told_targets.
Targets = Callable[[dict[str, Any], str, Collection[str]], list[tuple[str, str]]]


@dataclass(frozen=True)
class WindowClaim:
    rule_id: str
    expected_end_ms: int
    token: str


class DynamoDBDetections(DynamoDBOutbox):
    """Window claims, alerts and deliveries in one DynamoDB table (see the module's notes)."""

    def __init__(self, client: Any, table: str, targets: Targets) -> None:
        super().__init__(client, table)
        self.targets = targets

    @staticmethod
    def create_table(client: Any, table: str) -> None:
        """The table as the CDK app defines it (aws/infra/detections.py), for tests; waits until active."""
        client.create_table(
            TableName=table,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[
                {"AttributeName": name, "AttributeType": kind}
                for name, kind in (("pk", "S"), ("sk", "S"), ("queue", "S"), ("queued_since", "N"))
            ],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            GlobalSecondaryIndexes=[
                {
                    "IndexName": UNQUEUED_INDEX,
                    "KeySchema": [
                        {"AttributeName": "queue", "KeyType": "HASH"},
                        {"AttributeName": "queued_since", "KeyType": "RANGE"},
                    ],
                    "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["id", "destination", "dedup_key"]},
                }
            ],
        )
        client.get_waiter("table_exists").wait(TableName=table)

    # -- windows ----------------------------------------------------------------------------------

    def window_state(self, rule_id: str) -> RuleState:
        item = self._get(f"rule#{rule_id}", "state")
        if item is None:
            return RuleState(None, 0)
        failed = item.get("failed_ms")
        return RuleState(int(item["window_end_ms"]["N"]), int(item["failures"]["N"]), failed and int(failed["N"]))

    def claim_window(
        self, rule_id: str, expected_end_ms: int | None, since_ms: int, now_ms: int, lease_ms: int
    ) -> WindowClaim | None:
        """Hold the rule's next window for this run until now + lease, if its windows still end at
        `expected_end_ms` (None: the rule never ran; its windows begin at `since_ms`) and no other run
        holds it; None otherwise."""
        key = item_key(f"rule#{rule_id}", "state")
        if expected_end_ms is None:
            expected_end_ms = since_ms
            item = key | {"window_end_ms": number(since_ms), "failures": number(0)}
            self._conditional(
                self.client.put_item, TableName=self.table, Item=item, ConditionExpression="attribute_not_exists(pk)"
            )
        token = str(uuid.uuid4())
        claimed = self._conditional(
            self.client.update_item,
            TableName=self.table,
            Key=key,
            UpdateExpression="SET #run = :token, run_until_ms = :until",
            ConditionExpression="window_end_ms = :end AND (attribute_not_exists(#run) OR run_until_ms < :now)",
            ExpressionAttributeNames={"#run": "run"},
            ExpressionAttributeValues={
                ":token": string(token),
                ":until": number(now_ms + lease_ms),
                ":end": number(expected_end_ms),
                ":now": number(now_ms),
            },
        )
        return WindowClaim(rule_id, expected_end_ms, token) if claimed else None

    def advance(self, claim: WindowClaim, until_ms: int) -> bool:
        """Move the claimed window's end to `until_ms`, clear the failures and the claim; False when
        the claim was lost (its lease ran out and another run took the window)."""
        return self._conditional(
            self.client.update_item,
            TableName=self.table,
            Key=item_key(f"rule#{claim.rule_id}", "state"),
            UpdateExpression="SET window_end_ms = :until, failures = :zero REMOVE #run, run_until_ms, failed_ms",
            ConditionExpression="window_end_ms = :end AND #run = :token",
            ExpressionAttributeNames={"#run": "run"},
            ExpressionAttributeValues={
                ":until": number(until_ms),
                ":zero": number(0),
                ":end": number(claim.expected_end_ms),
                ":token": string(claim.token),
            },
        )

    def fail(self, claim: WindowClaim, now_ms: int) -> int | None:
        """One more failed run, ended at `now_ms`: the window stays, the claim is let go; the failures in
        a row (None: the claim was lost)."""
        try:
            answer = self.client.update_item(
                TableName=self.table,
                Key=item_key(f"rule#{claim.rule_id}", "state"),
                UpdateExpression="SET failures = failures + :one, failed_ms = :now REMOVE #run, run_until_ms",
                ConditionExpression="window_end_ms = :end AND #run = :token",
                ExpressionAttributeNames={"#run": "run"},
                ExpressionAttributeValues={
                    ":one": number(1),
                    ":now": number(now_ms),
                    ":end": number(claim.expected_end_ms),
                    ":token": string(claim.token),
                },
                ReturnValues="UPDATED_NEW",
            )
        except botocore.exceptions.ClientError as e:
            if error_code(e) == "ConditionalCheckFailedException":
                return None
            raise
        return int(answer["Attributes"]["failures"]["N"])

    # -- alerts -----------------------------------------------------------------------------------

    def apply_matches(self, rule: Rule, result: RunResult, now_ms: int) -> tuple[int, list[dict[str, str]]]:
        """Make or update the alerts of a run's matches (alerts/apply.py's rules); how many alerts it
        made, and the deliveries their events made (id, destination, dedup_key: what queues them)."""
        made, deliveries = 0, []
        for match in result.matches:
            new, ids = self._apply(rule, match, result, now_ms)
            made += new
            deliveries += ids
        return made, deliveries

    def rule_failing(
        self, rule: Rule, error: str, failures: int, since_ms: int, until_ms: int, now_ms: int
    ) -> list[dict[str, str]]:
        """Raise the rule's own alert (level high, tag loglake.rule-failing), as alerts/apply.py does: it
        failed `failures` runs in a row. While it keeps failing, each failure updates that alert (its count,
        its error in the evidence), which is sent again only when failing_told_again. The deliveries it made."""
        evidence = [{"error": error, "failures": failures, "file": str(rule.path), "at_ms": now_ms}]
        head_key = item_key(f"dedup#{rule.id}#{failing_key(rule.id)}", "head")
        for _ in range(_CONFLICT_RETRIES):
            head = self._get(head_key["pk"]["S"], "head")
            version = 0 if head is None else int(head["version"]["N"])
            item = None if head is None else self._get(f"alert#{head['alert_id']['S']}", "alert")
            alert = None if item is None else json.loads(item["doc"]["S"])
            told = set() if item is None else _told(item)
            # An earlier streak's alert was resolved by the run that ended it (rule_recovered). (One left open, by a
            # version that resolved none, or a run stopped before it did, tells itself by its count: more failures.)
            if item is None or alert["status"] not in _OPEN or alert["match_count"] >= failures:
                group = {"rule_id": rule.id}
                match = Match(
                    rule.id, f"Rule failing: {rule.title}", failing_key(rule.id), group, failures, None, None, evidence
                )
                result = RunResult(rule.id, since_ms, until_ms, [match], 0, 0, 0, 0.0, False, rule.plan.sql)
                failing = replace(rule, level=FAILING_LEVEL, tags=(FAILING_TAG,))
                alert, kind, told_ms, told = _new_alert(failing, match, result, now_ms), "trigger", now_ms, set()
            else:
                # (an item written before `told_ms` was kept: its last change was its last event)
                told_ms = int(item["told_ms"]["N"]) if "told_ms" in item else alert["updated_ms"]
                kind = None
                if failing_told_again(rule, told_ms, now_ms):
                    kind, told_ms = "update", now_ms
                alert.update(
                    match_count=failures,
                    last_seen_ms=until_ms,
                    window_end_ms=until_ms,
                    evidence=(alert["evidence"] + evidence)[-rule.options.evidence :],
                    updated_ms=now_ms,
                )
            deliveries = self._deliveries(alert, kind, version + 1, now_ms, told)
            if self._write(head_key, version, alert, deliveries, told, told_ms):
                return [delivery_ref(d) for d in deliveries]
        raise RuntimeError(f"failing alert of {rule.id} kept changing under this run")

    def rule_recovered(self, rule: Rule, now_ms: int, skipped: Window | None = None) -> list[dict[str, str]]:
        """Resolve the rule's failing alert, if one is open, as alerts/apply.py's rule_recovered does: the rule ran
        again (`skipped`: past the range it failed on). The deliveries its `resolve` made (a PagerDuty incident
        closed): none resolved it on AWS, so a recovered rule's incident stayed open for good."""
        return self.resolve_failing(rule, recovered_note(skipped), now_ms)

    def resolve_failing(self, rule: Rule, note: str, now_ms: int) -> list[dict[str, str]]:
        """Resolve the rule's failing alert, if one is open, by the rule with `note`; the deliveries it made."""
        head_key = item_key(f"dedup#{rule.id}#{failing_key(rule.id)}", "head")
        for _ in range(_CONFLICT_RETRIES):
            head = self._get(head_key["pk"]["S"], "head")
            if head is None or head["status"]["S"] not in _OPEN:
                return []
            item = self._get(f"alert#{head['alert_id']['S']}", "alert")
            if item is None:
                return []
            alert, told = json.loads(item["doc"]["S"]), _told(item)
            alert.update(
                status="resolved",
                status_by=BY_RULE,
                status_note=note,
                status_ms=now_ms,
                updated_ms=now_ms,
            )
            deliveries = self._deliveries(alert, "resolve", int(head["version"]["N"]) + 1, now_ms, told)
            if self._write(head_key, int(head["version"]["N"]), alert, deliveries, told):
                return [delivery_ref(d) for d in deliveries]
        raise RuntimeError(f"failing alert of {rule.id} kept changing under this run")

    def alert(self, alert_id: str) -> dict[str, Any] | None:
        item = self._get(f"alert#{alert_id}", "alert")
        return None if item is None else json.loads(item["doc"]["S"])

    def _apply(self, rule: Rule, match: Match, result: RunResult, now_ms: int) -> tuple[bool, list[dict[str, str]]]:
        """Make or join the alert of a match."""
        head_key = item_key(f"dedup#{rule.id}#{match.dedup_key}", "head")
        statuses = ("suppressed",) if match.suppressed else _OPEN
        for _ in range(_CONFLICT_RETRIES):
            head = self._get(head_key["pk"]["S"], "head")
            version = 0 if head is None else int(head["version"]["N"])
            alert, told = None, set()
            if (
                head is not None
                and head["status"]["S"] in statuses
                and int(head["window_start_ms"]["N"]) > result.since_ms - rule.dedup_window_ms
            ):
                item = self._get(f"alert#{head['alert_id']['S']}", "alert")
                if item is not None:
                    alert, told = json.loads(item["doc"]["S"]), _told(item)
            if alert is None:
                earlier = self.alert(head["alert_id"]["S"]) if head is not None else None
                unread = unread_part(match, result, _overlapped(earlier, rule.plan.read_since(result.since_ms)))
                if unread is None:
                    return False, []  # the records the key's last alert took in, read again
                new, alert = True, _new_alert(rule, unread, result, now_ms)
                kind = None if match.suppressed else "trigger"
            else:
                new, kind = False, _joined(alert, rule, match, result, now_ms)
            deliveries = self._deliveries(alert, kind, version + 1, now_ms, told)
            if self._write(head_key, version, alert, deliveries, told):
                return new, [delivery_ref(d) for d in deliveries]
        raise RuntimeError(f"alert of {rule.id} ({match.dedup_key}) kept changing under this run")

    def _deliveries(
        self, alert: dict[str, Any], kind: str | None, seq: int, now_ms: int, told: Collection[str]
    ) -> list[dict[str, Any]]:
        """The deliveries of an event of `alert` (None: it makes none), `told` the destinations that heard of it."""
        if kind is None:
            return []
        targets = self.targets(alert, kind, told)[: MAX_TRANSACTION_ITEMS - 3]
        return [
            item_key(f"delivery#{delivery_id}", "delivery")
            | {
                "id": string(delivery_id),
                "destination": string(name),
                "alert_id": string(alert["id"]),
                "dedup_key": string(alert["dedup_key"]),
                "kind": string(sent_as),
                "seq": number(seq),
                "state": string("pending"),
                "attempts": number(0),
                "created_ms": number(now_ms),
                "updated_ms": number(now_ms),
                "queue": string(UNQUEUED),
                "queued_since": number(now_ms),
            }
            for (name, sent_as), delivery_id in ((target, str(uuid.uuid4())) for target in targets)
        ]

    def _write(
        self,
        head_key: dict[str, Any],
        version: int,
        alert: dict[str, Any],
        deliveries: list[dict[str, Any]],
        told: Collection[str],
        told_ms: int | None = None,
    ) -> bool:
        head = head_key | {
            "alert_id": string(alert["id"]),
            "status": string(alert["status"]),
            "window_start_ms": number(alert["window_start_ms"]),
            "version": number(version + 1),
        }
        condition = (
            {"ConditionExpression": "attribute_not_exists(pk)"}
            if version == 0
            else {"ConditionExpression": "version = :v", "ExpressionAttributeValues": {":v": number(version)}}
        )
        doc = string(_fitted(alert))
        heard = sorted({*told, *(d["destination"]["S"] for d in deliveries)})
        item = item_key(f"alert#{alert['id']}", "alert") | {
            "doc": doc,
            "level": string(alert["level"]),
            "told": {"L": [string(name) for name in heard]},
        }
        if told_ms is not None:
            item["told_ms"] = number(told_ms)
        items = [
            {"Put": {"TableName": self.table, "Item": head, **condition}},
            {"Put": {"TableName": self.table, "Item": item}},
        ]
        if deliveries:  # the alert as this event left it, what each of its deliveries sends
            event = item_key(f"event#{alert['id']}#{version + 1}", "event") | {"doc": doc}
            items.append({"Put": {"TableName": self.table, "Item": event}})
        items += [{"Put": {"TableName": self.table, "Item": d}} for d in deliveries]
        try:
            self.client.transact_write_items(TransactItems=items)
        except botocore.exceptions.ClientError as e:
            reasons = e.response.get("CancellationReasons") or []
            if error_code(e) == "TransactionCanceledException" and any(
                r.get("Code") == "ConditionalCheckFailed" for r in reasons
            ):
                return False  # another run changed the alert since it was read: read it again
            raise
        return True


def _told(item: dict[str, Any]) -> set[str]:
    """The destinations that heard of the alert of `item` ('*': all, an item written before they were kept)."""
    told = item.get("told")
    return {"*"} if told is None else {value["S"] for value in told["L"]}


def _new_alert(rule: Rule, match: Match, result: RunResult, now_ms: int) -> dict[str, Any]:
    first, last = seen_span(match, result)
    return {
        "id": format_uuid(uuid7_bytes(now_ms)),
        "rule_id": rule.id,
        "rule_title": rule.title,
        "title": match.title,
        "level": rule.level,
        "tags": list(rule.tags),
        "status": "suppressed" if match.suppressed else "open",
        "dedup_key": match.dedup_key,
        "group_values": match.group,
        "first_seen_ms": first,
        "last_seen_ms": last,
        "match_count": match.count,
        "window_start_ms": result.since_ms,
        "window_end_ms": result.until_ms,
        "evidence": match.evidence[-rule.options.evidence :],
        "query": result.sql,
        "runbook": rule.options.runbook,
        "destinations": list(rule.options.destinations) or None,
        "created_ms": now_ms,
        "updated_ms": now_ms,
        "status_by": BY_RULE if match.suppressed else None,
        "status_note": match.suppressed,
        "status_ms": now_ms if match.suppressed else None,
    }


def _overlapped(alert: dict[str, Any] | None, since_ms: int) -> Overlapped | None:
    """The alert, if its windows end after a run's window starts (the run reads records it took in)."""
    if alert is None or alert["window_end_ms"] <= since_ms:
        return None
    return Overlapped(alert["last_seen_ms"], alert["evidence"])


def _fitted(alert: dict[str, Any]) -> str:
    """The alert as JSON within MAX_ALERT_BYTES (DynamoDB keeps 400 KB an item): its oldest evidence
    rows are left out, in place, until it fits."""
    while True:
        text = json.dumps(alert, separators=(",", ":"))
        if len(text.encode()) <= MAX_ALERT_BYTES or not alert["evidence"]:
            return text
        alert["evidence"] = alert["evidence"][1:]


def _joined(alert: dict[str, Any], rule: Rule, match: Match, result: RunResult, now_ms: int) -> str | None:
    """Join a match to its alert, in place (alerts/apply.py's rules); the event it makes, if any."""
    first, last = seen_span(match, result)
    if last <= alert["last_seen_ms"]:  # the same records again: the condition held till here
        alert["window_end_ms"] = max(alert["window_end_ms"], result.until_ms)
        return None
    merged = merged_count(alert["match_count"], match, rule.plan.read_since(result.since_ms) < alert["window_end_ms"])
    alert.update(
        match_count=merged,
        first_seen_ms=min(alert["first_seen_ms"], first),
        last_seen_ms=max(alert["last_seen_ms"], last),
        window_start_ms=min(alert["window_start_ms"], result.since_ms),
        window_end_ms=max(alert["window_end_ms"], result.until_ms),
        evidence=merged_evidence(alert["evidence"], match.evidence, rule.options.evidence),
        title=match.titled(merged),
        updated_ms=now_ms,
    )
    return None if alert["status"] == "suppressed" else "update"
