"""Detections on AWS with moto (a real moto server) for DynamoDB, SQS, SNS and Secrets Manager, Athena's
SQL run by its stand-in over the lake's real Parquet files, and a real local HTTP receiver:

- a round of the detection function makes alerts and queues one message per delivery; a second
  round evaluates no window twice, and two invocations never both hold a window;
- dedup through conditional writes: a second writer racing for the same dedup key joins the first's
  alert instead of making another;
- a round killed after its alerts but before its window moved re-runs the window without a second
  alert or delivery;
- SQS -> router -> the receiver, signed with a secret from Secrets Manager; a message seen twice,
  and an attempt killed between its claim and its send, still send once;
- after the destination's last attempt the delivery is dead and its message in the dead-letter queue;
- each alert is published to the SNS topic of its level, and only there.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions
import pytest

from loglake.alerts.dynamodb import DynamoDBDetections
from loglake.alerts.dynamodb_outbox import ClaimRefused
from loglake.aws import handlers
from loglake.aws.detections import (
    SEVERITY_TOPICS,
    TOPIC_LEVELS,
    DeliveryQueue,
    detector_from_environment,
    routing_from,
    with_topics,
)
from loglake.retry import Backoff
from loglake.rules.bundle import compile_bundle, load_bundle
from loglake.rules.scheduler import CatchUp
from loglake.times import DAY_MS
from tests.alerts.receivers import Answer, Receiver
from tests.aws.test_athena_rules import DAY2, SIGMA, athena_engine, lake  # noqa: F401  (the lake fixture)
from tests.moto_server import lambda_environment
from tests.rules.conftest import write_rule

REGION = "eu-west-1"
NOW_MS = DAY2 + DAY_MS + 60_000  # the day-2 window of a daily rule is due
CRITICAL = """
title: Role granted
id: 44444444-2222-4333-8444-555555555555
level: critical
logsource: {product: loglake, service: app_logs}
detection: {sel: {message|contains: role granted}, condition: sel}
loglake: {schedule: 1d, delay: 0s, group_by: [service]}
"""
ALERTING = """
destinations:
  hook: {type: webhook, url: "URL", secret: {secretsmanager: SECRET}, attempts: 2}
routes:
  - {match: {level: [critical]}, to: [hook]}
"""


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def aws(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, receiver: Receiver) -> dict[str, Any]:
    """A detections deployment in moto: the table, the FIFO queue and its dead-letter queue, a topic
    per level (each with a queue subscribed, to see what it published), the webhook's secret, the
    rules bundle and alerting.yml; the functions' environment set as the stack sets it."""
    lambda_environment(monkeypatch, REGION, AWS_ENDPOINT_URL=moto_endpoint)
    name = f"det-{uuid.uuid4().hex[:8]}"
    DynamoDBDetections.create_table(boto3.client("dynamodb"), name)
    sqs = boto3.client("sqs")
    dead = sqs.create_queue(QueueName=f"{name}-dead.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    queue = sqs.create_queue(QueueName=f"{name}.fifo", Attributes={"FifoQueue": "true", "VisibilityTimeout": "0"})[
        "QueueUrl"
    ]
    sns = boto3.client("sns")
    topics, watchers = {}, {}
    for level in TOPIC_LEVELS:
        topics[level] = sns.create_topic(Name=f"{name}-{level}")["TopicArn"]
        watchers[level] = sqs.create_queue(QueueName=f"{name}-{level}-watch")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=watchers[level], AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topics[level], Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"})
    boto3.client("secretsmanager").create_secret(Name=f"{name}/hook", SecretString="hook-secret")
    rules = tmp_path / "rules"
    write_rule(rules, "failures.yml", SIGMA)
    write_rule(rules, "granted.yml", CRITICAL)
    bundle = compile_bundle(rules)
    assert isinstance(bundle, bytes), bundle
    (tmp_path / "rules.json").write_bytes(bundle)
    (tmp_path / "alerting.yml").write_text(
        ALERTING.replace("URL", f"{receiver.url}/hook").replace("SECRET", f"{name}/hook")
    )
    env = {
        "LOGLAKE_RULES_BUNDLE": str(tmp_path / "rules.json"),
        "LOGLAKE_ALERTING_FILE": str(tmp_path / "alerting.yml"),
        "LOGLAKE_DETECTIONS_TABLE": name,
        "LOGLAKE_DELIVERY_QUEUE_URL": queue,
        "LOGLAKE_DELIVERY_DEAD_LETTER_URL": dead,
        "LOGLAKE_ALERT_TOPICS": json.dumps(topics),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    yield {"env": env, "queue": queue, "dead": dead, "watchers": watchers, "table": name}
    handlers.reset()


def detector(aws: dict[str, Any], lake: Any):  # noqa: F811
    athena, _ = athena_engine(lake[1])
    return detector_from_environment(aws["env"], athena)


def messages(url: str) -> list[dict[str, Any]]:
    """What Lambda's SQS event source would hand the router: every visible message, as event records."""
    found = boto3.client("sqs").receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"], VisibilityTimeout=30
    )
    return [
        {
            "messageId": m["MessageId"],
            "receiptHandle": m["ReceiptHandle"],
            "body": m["Body"],
            "attributes": m.get("Attributes", {}),
        }
        for m in found.get("Messages", [])
    ]


def route(url: str) -> list[dict[str, Any]]:
    """Router invocations over the queue's visible messages until none is left, the handled ones deleted
    as the event source mapping does with those not reported failed (bounded: a test never hangs here).
    The router's answers."""
    sqs, answers = boto3.client("sqs"), []
    for _ in range(20):
        records = messages(url)
        if not records:
            return answers
        answer = handlers.route_alerts({"Records": records}, None)
        answers.append(answer)
        failed = {f["itemIdentifier"] for f in answer["batchItemFailures"]}
        for record in records:
            if record["messageId"] in failed:  # back in the queue after its visibility timeout (the backoff)
                sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=record["receiptHandle"], VisibilityTimeout=0)
            else:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=record["receiptHandle"])
    raise AssertionError("the queue did not drain")


def test_a_round_makes_alerts_and_queues_one_message_per_delivery_and_no_window_runs_twice(aws, lake) -> None:  # noqa: F811
    summary = detector(aws, lake).run(NOW_MS)
    assert [(r["rule_id"][:8], r["outcome"], r["matches"], r["new_alerts"]) for r in summary["runs"]] == [
        ("11111111", "ok", 2, 2),
        ("44444444", "ok", 2, 2),
    ]
    # high: the topic only (2 alerts); critical: the topic and the webhook (2 alerts x 2)
    assert summary["queued"] == 6
    assert len(messages(aws["queue"])) == 6
    again = detector(aws, lake).run(NOW_MS + 60_000)
    assert again == {"requeued": 0, "queued": 0, "runs": []}


def test_two_invocations_never_hold_one_window(aws) -> None:
    store = DynamoDBDetections(boto3.client("dynamodb"), aws["table"], lambda alert, kind, told: [])
    first = store.claim_window("r1", None, 1000, now_ms=5000, lease_ms=60_000)
    assert first is not None
    assert store.claim_window("r1", 1000, 1000, now_ms=6000, lease_ms=60_000) is None  # held
    assert store.advance(first, 2000)
    assert store.claim_window("r1", 1000, 1000, now_ms=7000, lease_ms=60_000) is None  # moved on
    late = store.claim_window("r1", 2000, 2000, now_ms=8000, lease_ms=1000)
    taken = store.claim_window("r1", 2000, 2000, now_ms=10_000, lease_ms=60_000)  # the first lease ran out
    assert late is not None and taken is not None
    assert not store.advance(late, 3000)  # the run whose lease ran out cannot move the window
    assert store.advance(taken, 3000) and store.window_state("r1").window_end_ms == 3000


def test_a_second_writer_racing_for_a_dedup_key_joins_the_first_alert(aws, lake, tmp_path: Path) -> None:  # noqa: F811
    (rule,) = load_bundle(compile_bundle(write_rule(tmp_path / "one", "granted.yml", CRITICAL)))
    athena, _ = athena_engine(lake[1])
    from loglake.aws.athena_rules import run_rule_on_athena

    result = run_rule_on_athena(rule, athena, DAY2, DAY2 + DAY_MS, NOW_MS)
    client, raced = boto3.client("dynamodb"), []

    def rival_targets(alert: dict[str, Any], kind: str, told: Any) -> list[tuple[str, str]]:
        return [(f"rival-{kind}", kind)]

    rival = DynamoDBDetections(client, aws["table"], rival_targets)

    def racing_targets(alert: dict[str, Any], kind: str, told: Any) -> list[tuple[str, str]]:
        if not raced:  # between this writer's read and its write, the rival writes the same alerts
            raced.append(rival.apply_matches(rule, result, NOW_MS))
        return [(f"first-{kind}", kind)]

    made, deliveries = DynamoDBDetections(client, aws["table"], racing_targets).apply_matches(rule, result, NOW_MS)
    rival_made, rival_deliveries = raced[0]
    assert rival_made == 2 and [d["destination"] for d in rival_deliveries] == ["rival-trigger"] * 2
    assert made == 0 and deliveries == []  # it read again, found the same records alerted: nothing new


def test_a_round_killed_before_its_window_moved_alerts_nothing_twice(aws, lake) -> None:  # noqa: F811
    first = detector(aws, lake)
    rule = first.rules[1]
    claim = first.store.claim_window(rule.id, None, DAY2, NOW_MS, lease_ms=1000)
    from loglake.aws.athena_rules import run_rule_on_athena

    result = run_rule_on_athena(rule, first.engine, DAY2, DAY2 + DAY_MS, NOW_MS)
    made, deliveries = first.store.apply_matches(rule, result, NOW_MS)
    assert claim is not None and made == 2 and len(deliveries) == 4
    # ... and the invocation is killed: the window did not move, its deliveries were not queued.
    summary = detector(aws, lake).run(NOW_MS + 5000)  # the lease ran out
    assert summary["requeued"] == 4
    runs = {r["rule_id"]: r for r in summary["runs"]}
    assert (runs[rule.id]["outcome"], runs[rule.id]["new_alerts"], runs[rule.id]["deliveries"]) == ("ok", 0, 0)
    assert len(messages(aws["queue"])) == 4 + 2  # the other rule's two alerts: topic only


def test_deliveries_reach_the_receiver_signed_with_a_secret_from_secrets_manager(aws, lake, receiver) -> None:  # noqa: F811
    detector(aws, lake).run(NOW_MS)
    assert all(a == {"batchItemFailures": []} for a in route(aws["queue"]))
    hooks = receiver.wait_for(2)
    assert sorted(json.loads(r.body)["alert"]["group"]["service"] for r in hooks) == ["api", "web"]
    for request in hooks:
        signed = f"{request.headers['x-loglake-timestamp']}.".encode() + request.body
        expected = hmac.new(b"hook-secret", signed, hashlib.sha256).hexdigest()
        assert request.headers["x-loglake-signature"] == f"sha256={expected}"
    assert len(receiver.requests) == 2


def test_a_message_seen_twice_and_an_attempt_killed_after_its_claim_send_once(aws, lake, receiver) -> None:  # noqa: F811
    detector(aws, lake).run(NOW_MS)
    store = DynamoDBDetections(boto3.client("dynamodb"), aws["table"], lambda alert, kind, told: [])
    records = [r for r in messages(aws["queue"]) if _destination(store, r) == "hook"]
    assert len(records) == 2
    killed, twice = records
    store.claim_delivery(json.loads(killed["body"])["delivery"], now_ms=0, lease_ms=1)  # then the router died
    answer = handlers.route_alerts({"Records": [killed, twice]}, None)  # the lease is long over: taken again
    assert answer == {"batchItemFailures": []}
    assert handlers.route_alerts({"Records": [twice]}, None) == {"batchItemFailures": []}  # seen again: sent
    assert len(receiver.requests) == 2
    assert len({r.headers["idempotency-key"] for r in receiver.requests}) == 2
    with pytest.raises(ClaimRefused) as refused:
        store.claim_delivery(json.loads(twice["body"])["delivery"], now_ms=0, lease_ms=1)
    assert refused.value.finished


def test_after_the_last_attempt_the_delivery_is_dead_and_its_message_in_the_dead_letter_queue(
    aws,
    lake,  # noqa: F811
    receiver,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    receiver.default = Answer(status=503)
    detector(aws, lake).run(NOW_MS)
    from loglake.aws.detections import router_from_environment

    router = router_from_environment(aws["env"])
    router.backoff = Backoff(first=0.0, cap=0.0)  # the message is visible again at once
    monkeypatch.setattr(handlers, "_router", router)
    with caplog.at_level("WARNING", logger="loglake.alerts"):
        answers = route(aws["queue"])
    # Each failed attempt and dead letter in the function's log, as the server logs them (alerts/delivery.py)
    said = [r.getMessage() for r in caplog.records if r.name == "loglake.alerts"]
    assert sum(" failed (attempt 1 of 2): HTTP 503" in line for line in said) == 2
    assert sum(" dead-lettered after 2 attempt(s): HTTP 503" in line for line in said) == 2
    assert any(a["batchItemFailures"] for a in answers)  # the webhook's first attempts failed: SQS retried
    dead = messages(aws["dead"])
    assert len(dead) == 2
    store = DynamoDBDetections(boto3.client("dynamodb"), aws["table"], lambda alert, kind, told: [])
    for record in dead:
        delivery = store.delivery(json.loads(record["body"])["delivery"])
        assert (delivery["destination"], delivery["state"], delivery["attempts"]) == ("hook", "dead", 2)
        assert "HTTP 503" in delivery["last_error"]
    assert len(receiver.requests) == 4


def test_a_delivery_sent_after_a_failed_attempt_shows_the_answer_that_went_through(
    aws,
    lake,  # noqa: F811
    receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    receiver.answers = [Answer(status=503), Answer(status=503)]  # the first attempt of each of the two
    receiver.default = Answer(status=202)
    detector(aws, lake).run(NOW_MS)
    from loglake.aws.detections import router_from_environment

    router = router_from_environment(aws["env"])
    router.backoff = Backoff(first=0.0, cap=0.0)
    monkeypatch.setattr(handlers, "_router", router)
    route(aws["queue"])
    store = DynamoDBDetections(boto3.client("dynamodb"), aws["table"], lambda alert, kind, told: [])
    keys = {request.headers["idempotency-key"] for request in receiver.requests}  # the deliveries' ids
    assert len(keys) == 2
    for key in keys:
        delivery = store.delivery(key)
        assert (delivery["state"], delivery["attempts"], delivery["last_status"], delivery["last_error"]) == (
            "sent",
            2,
            202,
            None,
        )


def test_a_retry_after_longer_than_the_longest_pause_holds_the_message_the_longest_pause(
    aws,
    lake,  # noqa: F811
    receiver,
) -> None:
    receiver.default = Answer(status=429, headers={"retry-after": "86400"})  # a day: as the local worker, 10 min
    detector(aws, lake).run(NOW_MS)
    from loglake.aws.detections import router_from_environment

    router = router_from_environment(aws["env"])
    hidden: list[int] = []
    sqs = router.sqs

    class Watched:
        def __getattr__(self, name: str) -> Any:
            return getattr(sqs, name)

        def change_message_visibility(self, **args: Any) -> Any:
            hidden.append(args["VisibilityTimeout"])
            return sqs.change_message_visibility(**args)

    router.sqs = Watched()
    store = DynamoDBDetections(boto3.client("dynamodb"), aws["table"], lambda alert, kind, told: [])
    (hook,) = [r for r in messages(aws["queue"]) if _destination(store, r) == "hook"][:1]
    assert router.handle({"Records": [hook]})["batchItemFailures"]
    assert hidden == [600]


def test_each_alert_is_published_to_the_topic_of_its_level(aws, lake) -> None:  # noqa: F811
    detector(aws, lake).run(NOW_MS)
    route(aws["queue"])
    published = {level: messages(url) for level, url in aws["watchers"].items()}
    assert {level: len(found) for level, found in published.items()} == {
        "critical": 2,
        "high": 2,
        "medium": 0,
        "low": 0,
    }
    body = json.loads(published["critical"][0]["body"])
    assert body["event"] == "trigger" and body["alert"]["level"] == "critical"
    assert body["alert"]["title"] == "Role granted" and body["alert"]["evidence"]


def test_the_topics_are_a_target_only_for_levels_that_have_one(aws) -> None:
    targets = with_topics(routing_from(aws["env"]), {"high": "arn:aws:sns:eu-west-1:1:t"})
    alert = {"level": "high", "tags": [], "rule_id": "r", "rule_title": "t", "destinations": None}
    assert targets(alert, "trigger", set()) == [(SEVERITY_TOPICS, "trigger")]
    assert targets(alert | {"level": "informational"}, "trigger", set()) == []
    assert targets(alert | {"level": "critical"}, "trigger", set()) == [("hook", "trigger")]


def test_a_rule_that_fails_keeps_its_window_for_its_next_firing_and_after_three_failures_raises_its_own_alert(
    aws,
    lake,  # noqa: F811
) -> None:
    runner = detector(aws, lake)
    runner.catch_up = CatchUp(max_age_ms=7 * DAY_MS)  # the daily rules' failing window stays within the bound
    runner.engine.client.system_failures = 6  # Athena fails every query on its side, three rounds long
    for day in (0, 1, 2):
        summary = runner.run(NOW_MS + day * DAY_MS)
        assert [(r["outcome"], r["until_ms"], r["failures"]) for r in summary["runs"]] == [
            ("error", DAY2 + DAY_MS, day + 1)
        ] * 2  # the failed window first, again
        assert all("Athena" in r["error"] for r in summary["runs"])
        # The function runs more often than the daily rules: their failed window waits for the next firing.
        assert runner.run(NOW_MS + day * DAY_MS + 3_600_000)["runs"] == []
    assert summary["queued"] == 2  # each rule's own alert, to the high topic
    route(aws["queue"])
    (published, _) = [json.loads(m["body"]) for m in messages(aws["watchers"]["high"])]
    assert published["alert"]["title"].startswith("Rule failing: ")
    assert published["alert"]["tags"] == ["loglake.rule-failing"] and published["alert"]["match_count"] == 3
    runs = runner.run(NOW_MS + 3 * DAY_MS)["runs"]
    assert [(r["outcome"], r["until_ms"]) for r in runs] == [
        ("ok", DAY2 + day * DAY_MS) for day in (1, 2, 3, 4)
    ] * 2  # the window ran at last, and the days after it: none missed


def paging_failing_rules(
    aws: dict[str, Any],
    lake: Any,  # noqa: F811
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> tuple[Any, Callable[[], list[tuple[str, str]]]]:
    """Both rules failed three rounds in a row, their failing alerts routed to PagerDuty (the receiver); the
    detector, and what PagerDuty was sent since it was last asked (its event actions and dedup keys)."""
    monkeypatch.setenv("PD_KEY", "R0UTINGKEY00000000000000000000")
    (tmp_path / "alerting.yml").write_text(
        f"""
destinations:
  oncall: {{type: pagerduty, routing_key: {{env: PD_KEY}}, url: "{receiver.url}/pd"}}
routes:
  - {{match: {{tags: [loglake.rule-failing]}}, to: [oncall]}}
"""
    )
    runner = detector(aws, lake)
    runner.catch_up = CatchUp(max_age_ms=7 * DAY_MS)  # the daily rules' failing window stays within the bound
    runner.engine.client.system_failures = 6  # Athena fails every query on its side, three rounds long

    def sent() -> list[tuple[str, str]]:
        route(aws["queue"])
        found = sorted((r.json()["event_action"], r.json()["dedup_key"]) for r in receiver.requests)
        receiver.requests.clear()
        return found

    for day in (0, 1, 2):
        runner.run(NOW_MS + day * DAY_MS)
    assert sent() == [("trigger", f"loglake:rule-failing:{rule.id}") for rule in sorted(runner.rules, key=_id)]
    return runner, sent


def failing_alert(store: DynamoDBDetections, rule_id: str) -> dict[str, Any]:
    head = store._get(f"dedup#{rule_id}#loglake:rule-failing:{rule_id}", "head")
    assert head is not None
    found = store.alert(head["alert_id"]["S"])
    assert found is not None and found["status"] == head["status"]["S"]
    return found


def _id(rule: Any) -> str:
    return rule.id


def test_a_failing_rule_that_runs_again_resolves_its_alert_and_its_pagerduty_incident(
    aws,
    lake,  # noqa: F811
    receiver,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """As locally (alerts/apply.py's rule_recovered): nothing resolved a recovered rule's failing alert on AWS, so its
    PagerDuty incident stayed open for good."""
    runner, sent = paging_failing_rules(aws, lake, receiver, monkeypatch, tmp_path)
    runs = runner.run(NOW_MS + 3 * DAY_MS)["runs"]
    assert {r["outcome"] for r in runs} == {"ok"}
    assert sent() == [("resolve", f"loglake:rule-failing:{rule.id}") for rule in sorted(runner.rules, key=_id)]
    for rule in runner.rules:
        alert = failing_alert(runner.store, rule.id)
        assert (alert["status"], alert["status_by"], alert["status_note"]) == ("resolved", "rule", "the rule ran again")
    runner.run(NOW_MS + 4 * DAY_MS)
    assert sent() == []  # resolved once


def test_a_failing_rule_disabled_resolves_its_alert_and_its_pagerduty_incident(
    aws,
    lake,  # noqa: F811
    receiver,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """As locally (resolve_failing_of_stopped_rules): a disabled rule runs no more, so no good run resolves its failing
    alert; deployed disabled, its PagerDuty incident stayed open for good."""
    runner, sent = paging_failing_rules(aws, lake, receiver, monkeypatch, tmp_path)
    rules = tmp_path / "rules"
    write_rule(rules, "granted.yml", CRITICAL.replace("group_by: [service]}", "group_by: [service], enabled: false}"))
    (tmp_path / "rules.json").write_bytes(compile_bundle(rules))  # (deployed again)
    runner = detector(aws, lake)
    runner.catch_up = CatchUp(max_age_ms=7 * DAY_MS)
    (disabled,) = [rule for rule in runner.rules if not rule.enabled]
    (enabled,) = [rule for rule in runner.rules if rule.enabled]
    runner.run(NOW_MS + 3 * DAY_MS)
    assert sent() == [("resolve", f"loglake:rule-failing:{rule.id}") for rule in sorted(runner.rules, key=_id)]
    alert = failing_alert(runner.store, disabled.id)
    assert (alert["status"], alert["status_by"], alert["status_note"]) == ("resolved", "rule", "the rule was disabled")
    assert failing_alert(runner.store, enabled.id)["status_note"] == "the rule ran again"
    runner.run(NOW_MS + 3 * DAY_MS + 3_600_000)
    assert sent() == []  # resolved once


def test_a_failing_alert_s_resolve_goes_where_its_trigger_went_after_a_deployment_changed_the_routes(
    aws,
    lake,  # noqa: F811
    receiver,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """As locally (outbox.told_targets): each event went by the routes deployed at the time, so with the failing alerts
    routed elsewhere by a later deployment, the resolve of the rule's next good run never reached the PagerDuty incident
    its trigger opened, and went to a destination that never heard of the alert."""
    runner, sent = paging_failing_rules(aws, lake, receiver, monkeypatch, tmp_path)
    (tmp_path / "alerting.yml").write_text(
        f"""
destinations:
  oncall: {{type: pagerduty, routing_key: {{env: PD_KEY}}, url: "{receiver.url}/pd"}}
  chat: {{type: webhook, url: "{receiver.url}/chat"}}
routes:
  - {{match: {{level: [critical]}}, to: [oncall]}}
  - {{match: {{tags: [loglake.rule-failing]}}, to: [chat]}}
"""
    )  # (deployed again: the functions start again with it)
    handlers.reset()
    runner = detector(aws, lake)
    runner.catch_up = CatchUp(max_age_ms=7 * DAY_MS)
    runner.run(NOW_MS + 3 * DAY_MS)
    route(aws["queue"])
    assert [r.path for r in receiver.requests if r.path != "/pd"] == []  # (chat never heard of them: no resolve alone)
    assert [(event, key) for event, key in sent() if event == "resolve"] == [
        ("resolve", f"loglake:rule-failing:{rule.id}") for rule in sorted(runner.rules, key=_id)
    ]


def test_a_rule_whose_run_fails_otherwise_fails_alone_and_counts_as_failing(
    aws,
    lake,  # noqa: F811
) -> None:
    """As locally (rules/rounds.py): whatever stops a rule's run is that rule's failure. Athena's API failing past
    botocore's retries (a 500) stopped the whole round instead: the rules after it did not run, its window stayed
    claimed for the lease, and no failure was counted, so however long it lasted no "Rule failing" alert was raised."""
    runner = detector(aws, lake)
    runner.catch_up = CatchUp(max_age_ms=7 * DAY_MS)  # the daily rule's failed window stays within the bound
    start, calls = runner.engine.client.start_query_execution, [0]

    def failing_first(**kwargs: Any) -> dict:
        calls[0] += 1
        if calls[0] == 1:
            error = {"Error": {"Code": "InternalServerException", "Message": "We encountered an internal error"}}
            raise botocore.exceptions.ClientError(error, "StartQueryExecution")
        return start(**kwargs)

    runner.engine.client.start_query_execution = failing_first
    runs = runner.run(NOW_MS)["runs"]
    assert [(r["outcome"], r["until_ms"], r["failures"]) for r in runs] == [
        ("error", DAY2 + DAY_MS, 1),
        ("ok", DAY2 + DAY_MS, None),
    ]
    assert "InternalServerException" in runs[0]["error"]
    runs = runner.run(NOW_MS + DAY_MS)["runs"]  # its next firing: the window is tried again, not held for the lease
    assert [(r["outcome"], r["until_ms"]) for r in runs] == [("ok", DAY2 + d * DAY_MS) for d in (1, 2, 2)]


def test_a_waiting_delivery_holds_back_its_group_only(aws, lake, receiver) -> None:  # noqa: F811
    receiver.default = Answer(status=503)
    detector(aws, lake).run(NOW_MS)
    store = DynamoDBDetections(boto3.client("dynamodb"), aws["table"], lambda alert, kind, told: [])
    records = messages(aws["queue"])
    hook = next(r for r in records if _destination(store, r) == "hook")
    later = hook | {"messageId": "a-later-message-of-its-group"}
    topic = next(r for r in records if _destination(store, r) == SEVERITY_TOPICS)
    answer = handlers.route_alerts({"Records": [hook, later, topic]}, None)
    assert answer == {
        "batchItemFailures": [{"itemIdentifier": hook["messageId"]}, {"itemIdentifier": later["messageId"]}]
    }
    assert len(receiver.requests) == 1  # the later message of the group was not attempted
    assert store.delivery(json.loads(topic["body"])["delivery"])["state"] == "sent"  # another group went on


def test_a_destination_alerting_yml_does_not_define_is_dead_lettered_at_once(aws, tmp_path: Path) -> None:
    from loglake.rules.run import Match, RunResult

    text = CRITICAL.replace("loglake: {schedule: 1d,", "loglake: {schedule: 1d, destinations: [nowhere],")
    (rule,) = load_bundle(compile_bundle(write_rule(tmp_path, "granted.yml", text)))
    match = Match(rule.id, "t", "k", {}, 1, DAY2, DAY2, [{"message": "role granted"}])
    result = RunResult(rule.id, DAY2, DAY2 + DAY_MS, [match], 0, 0, 0, 0.0, False, "SELECT 1")
    store = DynamoDBDetections(boto3.client("dynamodb"), aws["table"], with_topics(routing_from(aws["env"]), {}))
    _, (delivery,) = store.apply_matches(rule, result, NOW_MS)
    assert delivery["destination"] == "nowhere"
    DeliveryQueue(boto3.client("sqs"), aws["queue"], store).send(store.unqueued())
    assert route(aws["queue"]) == [{"batchItemFailures": []}]
    (dead,) = messages(aws["dead"])
    found = store.delivery(json.loads(dead["body"])["delivery"])
    assert (found["state"], found["attempts"]) == ("dead", 1) and "not defined in alerting.yml" in found["last_error"]


def test_an_alert_too_large_for_an_item_keeps_its_newest_evidence(aws, tmp_path: Path) -> None:
    from loglake.alerts.dynamodb import MAX_ALERT_BYTES
    from loglake.rules.run import Match, RunResult

    (rule,) = load_bundle(compile_bundle(write_rule(tmp_path, "granted.yml", CRITICAL)))
    evidence = [{"n": i, "message": "x" * 30_000} for i in range(20)]  # 600 KB of evidence
    match = Match(rule.id, "big", "big", {}, 20, DAY2, DAY2 + 1000, evidence)
    result = RunResult(rule.id, DAY2, DAY2 + DAY_MS, [match], 0, 0, 0, 0.0, False, "SELECT 1")
    store = DynamoDBDetections(boto3.client("dynamodb"), aws["table"], lambda alert, kind, told: [("hook", kind)])
    made, (delivery,) = store.apply_matches(rule, result, NOW_MS)
    claimed, _ = store.claim_delivery(delivery["id"], NOW_MS, 1000)
    kept = [row["n"] for row in claimed.alert["evidence"]]
    assert made == 1 and kept == list(range(20 - len(kept), 20)) and 5 < len(kept) < 20
    assert len(json.dumps(claimed.alert, separators=(",", ":"))) <= MAX_ALERT_BYTES


def test_past_its_dedup_window_an_alert_s_records_read_again_make_no_second_alert(aws, tmp_path: Path) -> None:
    """On AWS dedup windows end alerts (nobody resolves them there): a run whose lookback reads an ended alert's
    records again makes no alert of them; a record no earlier run read makes one of its own (alerts/apply.py)."""
    from loglake.rules.run import Match, RunResult

    (rule,) = load_bundle(compile_bundle(write_rule(tmp_path, "granted.yml", CRITICAL)))  # dedup: 1h
    minute = 60_000
    store = DynamoDBDetections(boto3.client("dynamodb"), aws["table"], lambda alert, kind, told: [("hook", kind)])

    def run(since: int, until: int, at: list[int], unread_from: int) -> tuple[int, list[dict[str, str]]]:
        """A run over [since, until) (minutes into day 2) matching records `at` those minutes; those from
        `unread_from` (the previous window's end) on are the ones no earlier run read, as the rule's SQL says."""
        times = [DAY2 + m * minute for m in at]
        unread = [t for t in times if t >= DAY2 + unread_from * minute]
        rows = [{"message": f"role granted at {m}"} for m in at]
        title = ("{count} grants", {})  # (as match_of makes it of a rule's alert_title)
        match = Match(
            rule.id,
            f"{len(times)} grants",
            "k",
            {},
            len(times),
            times[0],
            times[-1],
            rows,
            None,
            len(unread),
            min(unread, default=None),
            title,
        )
        result = RunResult(rule.id, DAY2 + since * minute, DAY2 + until * minute, [match], 0, 0, 0, 0.0, False, "")
        return store.apply_matches(rule, result, result.until_ms)

    assert run(0, 70, [65, 66], unread_from=0)[0] == 1
    # Reading back 10 minutes, past the first alert's dedup window (1h from its window's start): the same two.
    assert run(61, 71, [65, 66], unread_from=70) == (0, [])
    made, (delivery,) = run(62, 72, [65, 66, 71], unread_from=71)
    claimed, _ = store.claim_delivery(delivery["id"], NOW_MS, 1000)
    assert made == 1 and claimed.alert["match_count"] == 1 and claimed.alert["first_seen_ms"] == DAY2 + 71 * minute
    assert claimed.alert["evidence"] == [{"message": "role granted at 71"}]
    assert claimed.alert["title"] == "1 grants"  # (the new alert's count, not the run's 3)
    # A run that joins it (within its dedup window) adds a record: the title shows the alert's count.
    made, (delivery,) = run(72, 74, [73], unread_from=72)
    claimed, _ = store.claim_delivery(delivery["id"], NOW_MS, 1000)
    assert made == 0 and (claimed.alert["match_count"], claimed.alert["title"]) == (2, "2 grants")


def test_after_downtime_a_round_catches_up_within_its_bound_and_names_the_range_it_left_out(aws, lake) -> None:  # noqa: F811
    runner = detector(aws, lake)
    runner.catch_up = CatchUp(windows=1, max_age_ms=10 * DAY_MS)
    for rule in runner.rules:  # both rules last ran three days before the due window
        claim = runner.store.claim_window(rule.id, None, DAY2 - 3 * DAY_MS, NOW_MS, lease_ms=1000)
        assert claim is not None and runner.store.advance(claim, DAY2 - 2 * DAY_MS)
    summary = runner.run(NOW_MS)
    assert [(r["outcome"], r["since_ms"], r["until_ms"]) for r in summary["runs"]] == [
        ("skipped", DAY2 - 2 * DAY_MS, DAY2),
        ("ok", DAY2, DAY2 + DAY_MS),
    ] * 2


def test_the_detection_handler_runs_the_rules_with_athena_from_its_environment(
    aws, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """The Lambda entry point as deployed: its Athena client is moto's, which answers every query with
    no rows (moto does not run SQL), so the windows run, claim and move, and find nothing."""
    athena = boto3.client("athena")
    workgroup = f"wg-{uuid.uuid4().hex[:8]}"
    athena.create_work_group(Name=workgroup, Configuration={"ResultConfiguration": {"OutputLocation": "s3://r/"}})
    monkeypatch.setenv("LOGLAKE_ATHENA_DATABASE", "loglake")
    monkeypatch.setenv("LOGLAKE_ATHENA_WORKGROUP", workgroup)
    summary = handlers.detect({}, None)  # an EventBridge event: the rules run at the time it arrives
    assert [(r["outcome"], r["matches"]) for r in summary["runs"]] == [("ok", 0), ("ok", 0)]
    (line,) = [json.loads(x) for x in capsys.readouterr().out.splitlines() if '"detections"' in x]
    assert line["level"] == "INFO" and len(line["runs"]) == 2
    assert handlers.detect({}, None)["runs"] == []  # nothing is due twice


def _destination(store: DynamoDBDetections, record: dict[str, Any]) -> str:
    return store.delivery(json.loads(record["body"])["delivery"])["destination"]


def test_the_functions_run_bundled_rules_without_pysigma_and_sqlglot(aws) -> None:
    """The Lambda layer has neither: the functions' imports, the bundle and alerting.yml must do without."""
    script = f"""
import json, os, sys
sys.modules["sigma"] = None
sys.modules["sqlglot"] = None
from loglake.aws import handlers
from loglake.aws.detections import routing_from
from loglake.rules.bundle import fill_window, load_bundle
env = json.loads(os.environ["ENV"])
rules = load_bundle(open(env["LOGLAKE_RULES_BUNDLE"], "rb").read())
sql = fill_window(rules[0].plan.sql, rules[0].plan.reach_ms, {DAY2}, {DAY2 + DAY_MS})
print(len(rules), sorted(routing_from(env).destinations), "'2026-05-05'" in sql)
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=os.environ | {"ENV": json.dumps(aws["env"])}
    )
    assert done.stdout.split("\n")[0] == "2 ['hook'] True", done.stderr


@pytest.mark.parametrize(
    ("schedule", "told"),
    [
        ("5m", [(10, "trigger")] + [(minute, "update") for minute in range(40, 330, 30)]),
        ("1h", [(120, "trigger"), (180, "update"), (240, "update"), (300, "update")]),
    ],
)
def test_a_rule_failing_past_its_catch_up_bound_is_sent_again_only_after_its_dedup_window(
    aws, tmp_path: Path, schedule: str, told: list[tuple[int, str]]
) -> None:
    """As locally (alerts/apply.py's failing_told_again): each failure updates the rule's failing alert, which is
    sent again only once its last event is the rule's dedup window old. Once the catch-up bound moved the failed
    window, every failed run sent an update (a rule running more often than its dedup window) or a new alert (one
    running less often), and named the range left out again; it is named once, by the run that moves past it."""
    from loglake.rules.claimed_rounds import run_due
    from loglake.rules.run import RuleRunError, RunResult

    text = CRITICAL.replace("schedule: 1d,", f"schedule: {schedule},").replace(
        "group_by: [service]}", "group_by: [service], dedup: {window: 30m}}"
    )
    (rule,) = load_bundle(compile_bundle(write_rule(tmp_path, "granted.yml", text)))
    store = DynamoDBDetections(boto3.client("dynamodb"), aws["table"], lambda alert, kind, told: [("hook", kind)])
    catch_up = CatchUp(windows=2, max_age_ms=DAY_MS)  # the failed window stays put for two firings at most
    minute, failing = 60_000, [True]

    def run(rule: Any, since: int, until: int, now: int, fresh: int | None) -> RunResult:
        if failing[0]:
            raise RuleRunError(f"Athena: the query failed (request {now})")  # (another error at each run)
        return RunResult(rule.id, since, until, [], 0, 0, 0, 0.0, False, "")

    def failing_alert() -> dict[str, Any]:
        key = {"pk": {"S": f"dedup#{rule.id}#loglake:rule-failing:{rule.id}"}, "sk": {"S": "head"}}
        head = boto3.client("dynamodb").get_item(TableName=aws["table"], Key=key)["Item"]
        found = store.alert(head["alert_id"]["S"])
        assert found is not None
        return found

    sent: list[tuple[int, str]] = []
    alert_ids: list[str] = []
    outcomes: list[str] = []

    def rounds(minutes: range) -> None:
        for at in minutes:
            now = DAY2 + at * minute + 1000
            for window_run in run_due([rule], store, run, now, lease_ms=60_000, catch_up=catch_up):
                outcomes.append(window_run.outcome)
                for ref in window_run.deliveries:
                    claimed, _ = store.claim_delivery(ref["id"], now, 1000)
                    sent.append((at, claimed.row.kind))
                    alert_ids.append(claimed.alert["id"])
                if window_run.outcome == "error" and (window_run.failures or 0) >= 3:
                    alert = failing_alert()  # each failure shows in the alert, sent or not
                    assert (alert["match_count"], alert["updated_ms"]) == (window_run.failures, now)
                    assert alert["evidence"][-1]["error"] == f"Athena: the query failed (request {now})"

    rounds(range(0, 330, 5))
    assert sent == told and len(set(alert_ids)) == 1
    assert set(outcomes) == {"error"}  # the window did not move: nothing left out yet
    failing[0] = False  # the rule runs again: its alert is resolved; a next streak of failures is an alert of its own
    outcomes.clear()
    sent.clear()
    rounds(range(330, 365, 5))
    assert outcomes[:3] == ["skipped", "ok", "ok"] and outcomes.count("skipped") == 1
    assert [kind for _, kind in sent] == ["resolve"] and alert_ids[-1] == alert_ids[0]  # (at the rule's next firing)
    resolved = failing_alert()
    assert (resolved["status"], resolved["status_by"]) == ("resolved", "rule")
    assert resolved["status_note"].startswith("the rule ran again, but not over the range it failed on: ")
    failing[0], first = True, alert_ids[0]
    sent.clear()
    rounds(range(365, 560, 5))
    assert sent[0][1] == "trigger" and alert_ids[-1] != first
