"""Detections on AWS: the detection function's round and the router's deliveries, over the library.

- Detector (the function on an EventBridge schedule): the bundled rules' due windows
  (rules/claimed_rounds.py) run by Athena (aws/athena_rules.py), alert state and the outbox in
  DynamoDB (alerts/dynamodb.py); each delivery its alerts made is then handed to the FIFO queue, one
  message per delivery, grouped by destination and dedup key (so a key's events reach a destination
  in order), deduplicated by the delivery's id. A delivery written but not queued (the function
  stopped in between) is queued by the next round.
- Router (the function fed by that queue): claims the delivery in DynamoDB, sends it with the
  destinations of alerting.yml (alerts/delivery.py's send_claimed, secrets by reference: Secrets
  Manager on AWS) or publishes it to the SNS topic of the alert's level, and records the outcome.
  A failed attempt that may succeed later is retried by SQS: the message becomes visible again
  after a backoff with jitter (the receiver's Retry-After a floor). After the destination's last
  attempt, or a failure no retry cures, the delivery is dead-lettered: recorded `dead` and its
  message put in the dead-letter queue, which an alarm watches. The queue's own redrive to the same
  queue catches a router that keeps crashing on a message.

A message seen twice (SQS delivers at least once) finds its delivery sent, or held by the other
attempt: nothing is sent twice. An attempt cut short by a crash is taken again once its lease ends.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import botocore.exceptions

from loglake.alerts.apply import DISABLED_NOTE
from loglake.alerts.delivery import BACKOFF, retry_pause, say_failed, send_claimed
from loglake.alerts.destinations.base import DeliveryFailed, DestinationConfig, alert_document, json_body
from loglake.alerts.dynamodb import DynamoDBDetections, Targets
from loglake.alerts.dynamodb_outbox import ClaimRefused
from loglake.alerts.outbox import Claimed, Sent, not_configured, told_targets
from loglake.alerts.routing import Routing
from loglake.alerts.secrets import Secrets
from loglake.aws.athena import AthenaQueryEngine
from loglake.aws.athena_rules import run_rule_on_athena
from loglake.retry import Backoff
from loglake.rules.claimed_rounds import WindowRun, run_due
from loglake.rules.model import Rule
from loglake.rules.scheduler import CatchUp
from loglake.times import parse_duration

if TYPE_CHECKING:
    import httpx

SEVERITY_TOPICS = "aws:sns"  # the destination name of the per-level topics (a name alerting.yml cannot use)
TOPIC_LEVELS = ("critical", "high", "medium", "low")
TOPIC_EVENTS = ("trigger", "update")
TOPIC_ATTEMPTS = 8
MAX_VISIBILITY_SECONDS = 12 * 3600  # SQS's limit on a message's visibility timeout
_SUBJECT_CHARS = 100  # SNS's limit on a subject


def with_topics(routing: Routing, topics: dict[str, str]) -> Targets:
    """alerting.yml's targets of an alert event, as locally (told_targets: its later events go where it was told,
    whatever the routes say after a deployment changed them), and the topic of its level for new and updated
    alerts."""

    def targets(alert: dict[str, Any], kind: str, told: Collection[str]) -> list[tuple[str, str]]:
        found = told_targets(routing, alert, kind, told)
        if kind in TOPIC_EVENTS and alert["level"] in topics:
            found.append((SEVERITY_TOPICS, kind))
        return found

    return targets


@dataclass
class DeliveryQueue:
    """The FIFO queue of deliveries: one message per delivery."""

    sqs: Any
    url: str
    store: DynamoDBDetections

    def send(self, refs: list[dict[str, str]]) -> int:
        for ref in refs:
            self.sqs.send_message(
                QueueUrl=self.url,
                MessageBody=json.dumps({"delivery": ref["id"]}),
                MessageGroupId=message_group(ref["destination"], ref["dedup_key"]),
                MessageDeduplicationId=ref["id"],
            )
            self.store.queued(ref["id"])
        return len(refs)


def message_group(destination: str, dedup_key: str) -> str:
    """The FIFO group of a destination's deliveries of one dedup key (SQS allows 128 characters)."""
    return hashlib.sha256(f"{destination}\n{dedup_key}".encode()).hexdigest()


@dataclass
class Detector:
    rules: list[Rule]
    store: DynamoDBDetections
    engine: AthenaQueryEngine
    queue: DeliveryQueue
    lease_ms: int  # how long a window stays claimed: longer than the function may run
    catch_up: CatchUp = field(default_factory=CatchUp)

    def run(self, now_ms: int, time_left: Callable[[], bool] = lambda: True) -> dict[str, Any]:
        """Queue what an earlier round left unqueued, resolve the failing alerts of disabled rules, run the due
        windows, queue each one's deliveries."""
        requeued = self.queue.send(self.store.unqueued())
        queued, runs = 0, []
        for rule in self.rules:
            # (no run of a disabled rule resolves its failing alert: as locally, resolve_failing_of_stopped_rules)
            if not rule.enabled:
                queued += self.queue.send(self.store.resolve_failing(rule, DISABLED_NOTE, now_ms))
        for run in run_due(
            self.rules,
            self.store,
            lambda rule, since, until, now, fresh: run_rule_on_athena(rule, self.engine, since, until, now, fresh),
            now_ms,
            lease_ms=self.lease_ms,
            catch_up=self.catch_up,
            time_left=time_left,
        ):
            queued += self.queue.send(run.deliveries)  # at once: an alert does not wait for the other rules
            runs.append(_run_summary(run))
        return {"requeued": requeued, "queued": queued, "runs": runs}


def _run_summary(run: WindowRun) -> dict[str, Any]:
    return {
        "rule_id": run.rule_id,
        "since_ms": run.since_ms,
        "until_ms": run.until_ms,
        "outcome": run.outcome,
        "matches": run.matches,
        "new_alerts": run.new_alerts,
        "deliveries": len(run.deliveries),
        "error": run.error,
        "failures": run.failures,
    }


@dataclass
class Router:
    store: DynamoDBDetections
    routing: Routing
    secrets: Secrets
    sqs: Any
    queue_url: str
    dead_letter_url: str
    sns: Any
    topics: dict[str, str]  # level -> topic ARN
    lease_ms: int  # how long an attempt holds its delivery: longer than the function may run
    clock: Callable[[], float] = time.time
    backoff: Backoff = BACKOFF
    _clients: dict[str, tuple[DestinationConfig, httpx.Client]] = field(default_factory=dict)

    def handle(self, event: dict[str, Any]) -> dict[str, Any]:
        """An SQS batch: the messages to see again (their deliveries wait for another attempt). The
        messages of a group after one that waits wait too, unsent, so a destination gets a dedup key's
        events in order; other groups (other destinations, other keys) go on."""
        failures: list[dict[str, str]] = []
        waiting: set[str | None] = set()
        for record in event.get("Records", []):
            group = record.get("attributes", {}).get("MessageGroupId")  # None: one group, as a FIFO batch is
            if group in waiting or not self._deliver(record):
                waiting.add(group)
                failures.append({"itemIdentifier": record["messageId"]})
        return {"batchItemFailures": failures}

    def close(self) -> None:
        for _, client in self._clients.values():
            client.close()

    def _deliver(self, record: dict[str, Any]) -> bool:
        """One message's delivery; False when its message must come back later."""
        delivery_id = json.loads(record["body"])["delivery"]
        try:
            claimed, token = self.store.claim_delivery(delivery_id, self._now_ms(), self.lease_ms)
        except ClaimRefused as refused:
            return refused.finished  # sent or dead already: done; held by a live attempt: later
        name = claimed.row.destination
        config = self.routing.destinations.get(name)
        try:
            if name == SEVERITY_TOPICS:
                sent = self._publish(claimed)
            elif config is None:
                raise DeliveryFailed(not_configured(name), retryable=False)
            else:
                sent = send_claimed(name, config, claimed, self.secrets, lambda: self._client(name, config), self.clock)
        except DeliveryFailed as failure:
            limit = TOPIC_ATTEMPTS if name == SEVERITY_TOPICS else (config.attempts if config else 1)
            dead = not failure.retryable or claimed.row.attempts + 1 >= limit
            self.store.failed(claimed.row, token, self._now_ms(), str(failure), failure.status, dead)
            pause = None if dead else retry_pause(self.backoff, claimed.row.attempts, failure)
            say_failed(claimed.row, str(failure), limit, pause)  # (in the function's log)
            if pause is None:
                self.sqs.send_message(
                    QueueUrl=self.dead_letter_url,
                    MessageBody=record["body"],
                    MessageGroupId=record.get("attributes", {}).get("MessageGroupId")
                    or message_group(name, claimed.row.dedup_key),
                    MessageDeduplicationId=delivery_id,
                )
                return True
            self.sqs.change_message_visibility(
                QueueUrl=self.queue_url,
                ReceiptHandle=record["receiptHandle"],
                VisibilityTimeout=min(MAX_VISIBILITY_SECONDS, round(pause)),
            )
            return False
        self.store.sent(claimed.row, token, self._now_ms(), sent)
        return True

    def _publish(self, claimed: Claimed) -> Sent:
        """To the topic of the alert's level: the alert as the webhook sends it, with the event (nothing to
        remember per dedup key; SNS's HTTP status as the reply code)."""
        alert = claimed.alert
        subject = f"[{alert['level'].upper()}] {' '.join(alert['title'].split())}"
        try:
            answer = self.sns.publish(
                TopicArn=self.topics[alert["level"]],
                Subject=subject.encode("ascii", "replace").decode()[:_SUBJECT_CHARS],
                Message=json_body(
                    {"event": claimed.row.kind, "idempotency_key": claimed.row.id, "alert": alert_document(alert)}
                ).decode(),
                MessageAttributes={
                    "level": {"DataType": "String", "StringValue": alert["level"]},
                    "event": {"DataType": "String", "StringValue": claimed.row.kind},
                },
            )
        except botocore.exceptions.ClientError as e:
            raise DeliveryFailed(f"SNS: {e.response.get('Error', {}).get('Code', 'error')}", retryable=True) from None
        except botocore.exceptions.BotoCoreError as e:
            raise DeliveryFailed(f"SNS: {e}", retryable=True) from None
        return Sent(None, answer["ResponseMetadata"]["HTTPStatusCode"])

    def _client(self, name: str, config: DestinationConfig) -> httpx.Client:
        import httpx

        current = self._clients.get(name)
        if current is not None and current[0] == config:
            return current[1]
        client = httpx.Client(
            timeout=httpx.Timeout(parse_duration(config.timeout) / 1000),
            limits=httpx.Limits(max_keepalive_connections=0),  # each attempt's own connection (SendContext.post)
            follow_redirects=False,
        )
        self._clients[name] = (config, client)
        return client

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)


# -- from the function's environment (aws/handlers.py) ------------------------------------------------

BUNDLE_DIR = "/opt/loglake-detections"  # the detections layer (aws/infra/detections.py)
DEFAULT_RULES = f"{BUNDLE_DIR}/rules.json"
DEFAULT_ALERTING = f"{BUNDLE_DIR}/alerting.yml"


def detector_from_environment(env: dict[str, str], athena: AthenaQueryEngine) -> Detector:
    """LOGLAKE_RULES_BUNDLE (default the layer's rules.json), LOGLAKE_ALERTING_FILE (default the
    layer's alerting.yml), LOGLAKE_DETECTIONS_TABLE, LOGLAKE_DELIVERY_QUEUE_URL,
    LOGLAKE_ALERT_TOPICS (JSON: level -> topic ARN), LOGLAKE_WINDOW_LEASE_SECONDS (900: the function's
    longest run)."""
    import boto3

    from loglake.rules.bundle import load_bundle

    rules = load_bundle(Path(env.get("LOGLAKE_RULES_BUNDLE") or DEFAULT_RULES).read_bytes())
    store = _store(env, with_topics(routing_from(env), _topics(env)))
    queue = DeliveryQueue(boto3.client("sqs"), _required(env, "LOGLAKE_DELIVERY_QUEUE_URL"), store)
    lease_ms = int(float(env.get("LOGLAKE_WINDOW_LEASE_SECONDS", "900")) * 1000)
    return Detector(rules, store, athena, queue, lease_ms)


def router_from_environment(env: dict[str, str]) -> Router:
    """LOGLAKE_ALERTING_FILE, LOGLAKE_DETECTIONS_TABLE, LOGLAKE_DELIVERY_QUEUE_URL,
    LOGLAKE_DELIVERY_DEAD_LETTER_URL, LOGLAKE_ALERT_TOPICS, LOGLAKE_DELIVERY_LEASE_SECONDS (120: longer
    than the function's timeout, shorter than the queue's visibility timeout)."""
    import boto3

    routing = routing_from(env)
    return Router(
        _store(env, with_topics(routing, _topics(env))),
        routing,
        Secrets(),
        boto3.client("sqs"),
        _required(env, "LOGLAKE_DELIVERY_QUEUE_URL"),
        _required(env, "LOGLAKE_DELIVERY_DEAD_LETTER_URL"),
        boto3.client("sns"),
        _topics(env),
        int(float(env.get("LOGLAKE_DELIVERY_LEASE_SECONDS", "120")) * 1000),
    )


def routing_from(env: dict[str, str]) -> Routing:
    """alerting.yml from LOGLAKE_ALERTING_FILE (none there: alerts go to the topics only)."""
    from loglake.alerts.routing import NO_ROUTING, load_routing

    path = Path(env.get("LOGLAKE_ALERTING_FILE") or DEFAULT_ALERTING)
    if not path.exists():
        return NO_ROUTING
    loaded = load_routing(path)
    if not isinstance(loaded, Routing):  # checked at synth: only a file changed by hand gets here
        raise ValueError("; ".join(str(p) for p in loaded))
    return loaded


def _store(env: dict[str, str], targets: Targets) -> DynamoDBDetections:
    import boto3

    return DynamoDBDetections(boto3.client("dynamodb"), _required(env, "LOGLAKE_DETECTIONS_TABLE"), targets)


def _topics(env: dict[str, str]) -> dict[str, str]:
    topics = json.loads(env.get("LOGLAKE_ALERT_TOPICS") or "{}")
    unknown = set(topics) - set(TOPIC_LEVELS)
    if unknown:
        raise ValueError(f"LOGLAKE_ALERT_TOPICS names levels without topics: {sorted(unknown)} ({TOPIC_LEVELS})")
    return topics


def _required(env: dict[str, str], name: str) -> str:
    value = env.get(name)
    if not value:
        raise RuntimeError(f"set {name} (the detections stack sets it: aws/infra/detections.py)")
    return value
