"""The detections construct of the CDK app: its resources, each function's rights (only the table,
queues, topics and secrets it uses), the rules bundled at synth (a bad rule stops the synth with its
file), the deployment file's `detections` section, and cfn-lint on the template."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "18,20")
os.environ.setdefault("JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION", "1")
assertions = pytest.importorskip("aws_cdk.assertions")

from loglake.aws.deployment import DeploymentConfigError, DetectionSettings, load_deployment  # noqa: E402
from loglake.aws.stack import LoglakeStack, build_app  # noqa: E402
from tests.aws.test_athena_rules import SIGMA  # noqa: E402
from tests.aws.test_detections import ALERTING, CRITICAL  # noqa: E402
from tests.aws.test_stack import cfn_lint  # noqa: E402
from tests.rules.conftest import write_rule  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "loglake-aws.json"
SECRET = "arn:aws:secretsmanager:eu-west-1:182059100462:secret:loglake/hook-*"
Match = assertions.Match


@pytest.fixture(scope="module")
def rules_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("rules")
    write_rule(folder, "failures.yml", SIGMA)
    write_rule(folder, "granted.yml", CRITICAL)
    alerting = ALERTING.replace("URL", "https://hooks.example/loglake").replace("SECRET", "loglake/hook")
    (folder / "alerting.yml").write_text(alerting)
    return folder


@pytest.fixture(scope="module")
def deployment(rules_dir: Path):
    return replace(load_deployment(EXAMPLE), detections=DetectionSettings(rules_dir, 10, (SECRET,)))


@pytest.fixture(scope="module")
def template(deployment):
    app = build_app(deployment, bundle=False)
    stack = next(c for c in app.node.children if isinstance(c, LoglakeStack))
    return assertions.Template.from_stack(stack)


def _function_id(template, handler: str) -> str:
    (found,) = [
        k
        for k, f in template.find_resources("AWS::Lambda::Function").items()
        if f["Properties"].get("Handler") == handler
    ]
    return found


def _statements_of(template, function_id: str) -> list[dict]:
    role = template.find_resources("AWS::Lambda::Function")[function_id]["Properties"]["Role"]["Fn::GetAtt"][0]
    policies = [
        p["Properties"]
        for p in template.find_resources("AWS::IAM::Policy").values()
        if {"Ref": role} in p["Properties"]["Roles"]
    ]
    return [s for p in policies for s in p["PolicyDocument"]["Statement"]]


def _actions(statement: dict) -> set[str]:
    action = statement["Action"]
    return {action} if isinstance(action, str) else set(action)


def _resources(statement: dict) -> list:
    resource = statement["Resource"]
    return resource if isinstance(resource, list) else [resource]


def _logical(reference: object) -> str | None:
    """The logical id a Ref / GetAtt / Fn::Join of one names (None for a literal)."""
    text = json.dumps(reference)
    for marker in ('{"Ref": "', '{"Fn::GetAtt": ["'):
        if marker in text:
            return text.split(marker, 1)[1].split('"', 1)[0]
    return None


def test_the_table_queues_and_topics(template) -> None:
    template.has_resource_properties(
        "AWS::DynamoDB::Table",
        {
            "TableName": Match.string_like_regexp("-dn1-"),
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            "GlobalSecondaryIndexes": [Match.object_like({"IndexName": "unqueued"})],
            "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
            "SSESpecification": Match.object_like({"SSEEnabled": True, "SSEType": "KMS"}),
        },
    )
    queues = {
        q["Properties"]["QueueName"]: q["Properties"] for q in template.find_resources("AWS::SQS::Queue").values()
    }
    (deliveries,) = [q for n, q in queues.items() if "-qa1-" in n]
    (dead,) = [q for n, q in queues.items() if "-qd1-" in n]
    assert deliveries["FifoQueue"] and dead["FifoQueue"] and deliveries["KmsMasterKeyId"] and dead["KmsMasterKeyId"]
    assert deliveries["RedrivePolicy"]["maxReceiveCount"] == 60
    assert deliveries["VisibilityTimeout"] == 360  # six times the router's timeout
    topics = sorted(t["Properties"]["TopicName"] for t in template.find_resources("AWS::SNS::Topic").values())
    assert [t.rsplit("-", 1)[1] for t in topics if "-sa1-" in t] == ["critical", "high", "low", "medium"]
    assert all(t["Properties"].get("KmsMasterKeyId") for t in template.find_resources("AWS::SNS::Topic").values())


def test_the_detection_function_runs_on_schedule_with_the_rules_layer(template) -> None:
    detect = _function_id(template, "loglake.aws.handlers.detect")
    properties = template.find_resources("AWS::Lambda::Function")[detect]["Properties"]
    assert len(properties["Layers"]) == 2 and properties["Timeout"] == 900
    env = properties["Environment"]["Variables"]
    assert {"LOGLAKE_DETECTIONS_TABLE", "LOGLAKE_DELIVERY_QUEUE_URL", "LOGLAKE_ATHENA_WORKGROUP"} <= set(env)
    template.has_resource_properties(
        "AWS::Events::Rule",
        {
            "ScheduleExpression": "rate(10 minutes)",
            "Targets": [Match.object_like({"Arn": {"Fn::GetAtt": [detect, "Arn"]}})],
        },
    )


def test_the_router_reads_the_queue_and_reports_failures_per_message(template) -> None:
    router = _function_id(template, "loglake.aws.handlers.route_alerts")
    template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {"FunctionName": {"Ref": router}, "FunctionResponseTypes": ["ReportBatchItemFailures"], "BatchSize": 10},
    )


def test_the_dead_letter_queue_has_an_alarm_to_the_alarm_topic(template) -> None:
    alarms = [a["Properties"] for a in template.find_resources("AWS::CloudWatch::Alarm").values()]
    (dead,) = [a for a in alarms if a["AlarmName"].endswith("-DeadDeliveries")]
    assert dead["MetricName"] == "ApproximateNumberOfMessagesVisible" and dead["Threshold"] == 0
    assert len(dead["AlarmActions"]) == 1
    errors = [a for a in alarms if a.get("MetricName") == "Errors" and not a["AlarmName"].endswith("Failing")]
    assert len(errors) == 11  # the stack's nine functions and these two
    # the detection function's runs failing one after another: errors in two of its intervals in a row
    (failing,) = [a for a in alarms if a["AlarmName"].endswith("DetectFunctionFailing")]
    assert failing["Period"] == 600 and failing["EvaluationPeriods"] == 2 and failing["Threshold"] == 0


def test_each_function_may_use_only_what_it_needs(template) -> None:
    detect = _statements_of(template, _function_id(template, "loglake.aws.handlers.detect"))
    router = _statements_of(template, _function_id(template, "loglake.aws.handlers.route_alerts"))
    detect_actions = {a for s in detect for a in _actions(s)}
    router_actions = {a for s in router for a in _actions(s)}
    assert "athena:StartQueryExecution" in detect_actions and "sqs:SendMessage" in detect_actions
    assert not {a for a in detect_actions if a.startswith(("sns:", "secretsmanager:"))}
    assert not {a for a in router_actions if a.startswith(("athena:", "glue:", "s3:"))}
    # the router publishes to the four topics only, reads only the listed secret
    publish = [s for s in router if "sns:Publish" in _actions(s)]
    topics = {
        k for k, t in template.find_resources("AWS::SNS::Topic").items() if "-sa1-" in t["Properties"]["TopicName"]
    }
    assert {_logical(r) for s in publish for r in _resources(s)} == topics
    (secrets,) = [s for s in router if any(a.startswith("secretsmanager:") for a in _actions(s))]
    assert _actions(secrets) == {"secretsmanager:GetSecretValue"} and _resources(secrets) == [SECRET]
    # DynamoDB: both only on the detections table (and its index), never the hot table
    (table,) = [
        k for k, t in template.find_resources("AWS::DynamoDB::Table").items() if "-dn1-" in t["Properties"]["TableName"]
    ]
    for statements in (detect, router):
        on_dynamodb = [s for s in statements if any(a.startswith("dynamodb:") for a in _actions(s))]
        assert on_dynamodb and {_logical(r) for s in on_dynamodb for r in _resources(s)} == {table}
    sends = [s for s in router if "sqs:SendMessage" in _actions(s)]
    queues = {k: q["Properties"]["QueueName"] for k, q in template.find_resources("AWS::SQS::Queue").items()}
    assert {queues[_logical(r)].split("-")[3] for s in sends for r in _resources(s)} == {"qd1"}  # the dead letters


def test_a_rule_that_cannot_run_on_athena_stops_the_synth_naming_its_file(deployment, tmp_path: Path) -> None:
    write_rule(tmp_path, "good.yml", SIGMA)
    # (an unknown modifier: a bare unknown field on app_logs reads attributes.<name>, so is no longer refused)
    write_rule(
        tmp_path, "bad.yml", SIGMA.replace("message|contains:", "message|no_such_modifier:").replace("1111", "9999")
    )
    with pytest.raises(DeploymentConfigError, match=r"bad\.yml"):
        build_app(replace(deployment, detections=DetectionSettings(tmp_path)), bundle=False)


def test_synth_names_a_bad_rule_without_a_traceback(tmp_path: Path) -> None:
    from tests.conftest import run_cli

    write_rule(tmp_path / "rules", "bad.yml", SIGMA.replace("message|contains:", "message|no_such_modifier:"))
    document = json.loads(EXAMPLE.read_text())
    document.pop("amplifyConfig")
    document["detections"] = {"rulesDir": "rules"}
    (tmp_path / "deploy.json").write_text(json.dumps(document))
    result = run_cli("aws", "synth", "--config", str(tmp_path / "deploy.json"), "--out", str(tmp_path / "out"))
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "bad.yml" in result.output and "no_such_modifier" in result.output
    from loglake.aws import cdk_app  # what `cdk deploy` runs: one line for cdk's output

    with pytest.raises(SystemExit) as stopped:
        cdk_app.main([str(tmp_path / "deploy.json")])
    assert "bad.yml" in str(stopped.value.code) and "no_such_modifier" in str(stopped.value.code)


def test_the_deployment_file_names_the_rules_folder_relative_to_itself(tmp_path: Path) -> None:
    document = json.loads(EXAMPLE.read_text())
    document.pop("amplifyConfig")
    document["detections"] = {"rulesDir": "rules", "scheduleMinutes": 15, "secrets": [SECRET]}
    (tmp_path / "deploy.json").write_text(json.dumps(document))
    loaded = load_deployment(tmp_path / "deploy.json")
    assert loaded.detections == DetectionSettings(tmp_path / "rules", 15, (SECRET,))
    document["detections"] = {"rulesDir": "rules", "scheduleMinutes": 0, "secrets": ["hook"]}
    (tmp_path / "deploy.json").write_text(json.dumps(document))
    with pytest.raises(DeploymentConfigError, match="scheduleMinutes") as refused:
        load_deployment(tmp_path / "deploy.json")
    assert "secrets" in str(refused.value)


def test_cfn_lint_finds_no_errors_with_detections(template, tmp_path: Path) -> None:
    errors, lint = cfn_lint(template, tmp_path)
    assert not errors, lint.stdout + lint.stderr
