"""The CDK app: synthesized in the test, its properties asserted, its template linted with cfn-lint."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# The CDK's runtime warns loudly about the machine's Node.js version; the test output is not the place.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "18,20")
os.environ.setdefault("JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION", "1")
assertions = pytest.importorskip("aws_cdk.assertions")

from loglake.aws.deployment import load_deployment  # noqa: E402
from loglake.aws.maintenance_lease import LEASE_KEY  # noqa: E402
from loglake.aws.stack import LoglakeStack, build_app  # noqa: E402
from loglake.lake.claim import CLAIM_KEY  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "loglake-aws.json"
Match = assertions.Match


@pytest.fixture(scope="module")
def deployment():
    return load_deployment(EXAMPLE)


@pytest.fixture(scope="module")
def template(deployment):
    app = build_app(deployment, bundle=False)
    stack = next(c for c in app.node.children if isinstance(c, LoglakeStack))
    return assertions.Template.from_stack(stack)


def test_the_hot_table_has_the_documented_keys_and_protections(template, deployment) -> None:
    template.has_resource_properties(
        "AWS::DynamoDB::Table",
        {
            "TableName": "amplifylogs-logging-intite-dt1-inftes-182059100462",
            "KeySchema": [
                {"AttributeName": "service_name", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            "BillingMode": "PAY_PER_REQUEST",
            "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
            "DeletionProtectionEnabled": True,
            "SSESpecification": {"SSEEnabled": True, "SSEType": "KMS", "KMSMasterKeyId": Match.any_value()},
            "TimeToLiveSpecification": {"AttributeName": "expires_at", "Enabled": True},
            "GlobalSecondaryIndexes": [
                Match.object_like(
                    {
                        "IndexName": name,
                        "KeySchema": [
                            {"AttributeName": key, "KeyType": "HASH"},
                            {"AttributeName": "sk", "KeyType": "RANGE"},
                        ],
                    }
                )
                for name, key in (
                    ("by_time", "time_bucket"),
                    ("by_log_type", "log_type_key"),
                    ("by_severity", "severity_key"),
                )
            ],
        },
    )
    template.has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True})


def test_the_lake_bucket_is_private_encrypted_and_ages_out(template) -> None:
    template.has_resource_properties(
        "AWS::S3::Bucket",
        {
            "BucketName": "amplifylogs-logging-intite-ss1-inftes-182059100462",
            "VersioningConfiguration": {"Status": "Enabled"},
            "BucketEncryption": {
                "ServerSideEncryptionConfiguration": [
                    Match.object_like(
                        {
                            "ServerSideEncryptionByDefault": {
                                "SSEAlgorithm": "aws:kms",
                                "KMSMasterKeyID": Match.any_value(),
                            }
                        }
                    )
                ]
            },
            "PublicAccessBlockConfiguration": {
                "BlockPublicAcls": True,
                "BlockPublicPolicy": True,
                "IgnorePublicAcls": True,
                "RestrictPublicBuckets": True,
            },
        },
    )
    (bucket,) = [
        b["Properties"]
        for b in template.find_resources("AWS::S3::Bucket").values()
        if b["Properties"].get("BucketName") == "amplifylogs-logging-intite-ss1-inftes-182059100462"
    ]
    rules = {r["Id"]: r for r in bucket["LifecycleConfiguration"]["Rules"]}
    to_ia = [{"StorageClass": "STANDARD_IA", "TransitionInDays": 30}]
    for table in ("app_logs", "amplify_access", "amplify_logs"):  # the example keeps both 365 days
        rule = rules[f"{table}-retention"]
        assert (rule["Prefix"], rule["ExpirationInDays"], rule["Transitions"]) == (f"type={table}/", 365, to_ia)
        # the parts the compaction took out as damaged expire with their table (they are past no retention else)
        quarantined = rules[f"{table}-quarantine-retention"]
        assert (quarantined["Prefix"], quarantined["ExpirationInDays"]) == (f"_quarantine/type={table}/", 365)
    assert rules["old-versions"]["NoncurrentVersionExpiration"] == {"NoncurrentDays": 7}
    assert "ExpirationInDays" not in rules["old-versions"]  # _state/ (the watermarks) never expires
    template.has_resource_properties(
        "AWS::S3::BucketPolicy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [Match.object_like({"Effect": "Deny", "Condition": {"Bool": {"aws:SecureTransport": "false"}}})]
                )
            }
        },
    )


def test_the_api_function_and_rest_api(template) -> None:
    template.has_resource_properties(
        "AWS::Lambda::Function",
        {"FunctionName": "amplifylogs-logging-intite-lm1-inftes-182059100462", "Runtime": "python3.12",
         "Architectures": ["arm64"], "MemorySize": 256, "Timeout": 30, "Handler": "loglake.aws.handlers.api",
         "TracingConfig": {"Mode": "Active"}},
    )  # fmt: skip
    template.has_resource_properties("AWS::ApiGateway::RestApi", {"EndpointConfiguration": {"Types": ["REGIONAL"]}})
    throttling = Match.object_like({"ThrottlingRateLimit": 10000, "ThrottlingBurstLimit": 5000})
    stage = {
        "StageName": "inftes",
        "TracingEnabled": True,
        "AccessLogSetting": Match.object_like({"DestinationArn": Match.any_value()}),
        "MethodSettings": Match.array_with([throttling]),
    }
    template.has_resource_properties("AWS::ApiGateway::Stage", stage)
    methods = template.find_resources("AWS::ApiGateway::Method")
    routes = sorted(m["Properties"]["HttpMethod"] for m in methods.values())
    assert routes == ["GET", "GET", "GET", "GET", "POST", "POST"]
    assert {m["Properties"]["AuthorizationType"] for m in methods.values()} == {"AWS_IAM"}


def test_search_runs_on_athena_in_its_own_function(template) -> None:
    """GET /logs/search, /logs/histogram and /logs/{logId} go to the search function: the same handler with
    Athena's settings, which may read the table (never write it) and query in the workgroup."""
    functions = template.find_resources(
        "AWS::Lambda::Function", {"Properties": {"Handler": "loglake.aws.handlers.api"}}
    )
    search_id, search = next((k, f) for k, f in functions.items() if "-ls1-" in f["Properties"]["FunctionName"])
    assert set(search["Properties"]["Environment"]["Variables"]) >= {
        "LOGLAKE_DYNAMODB_TABLE", "LOGLAKE_ATHENA_DATABASE", "LOGLAKE_ATHENA_WORKGROUP", "LOGLAKE_TIME_SHARDS"
    }  # fmt: skip
    for function in functions.values():  # both read the by_time index with the stack's shard count
        assert function["Properties"]["Environment"]["Variables"]["LOGLAKE_TIME_SHARDS"] == "4"
    resources = template.find_resources("AWS::ApiGateway::Resource")
    paths = {k: r["Properties"]["PathPart"] for k, r in resources.items()}
    methods = template.find_resources("AWS::ApiGateway::Method")
    answered_by_search = sorted(
        paths[m["Properties"]["ResourceId"]["Ref"]]
        for m in methods.values()
        if search_id in json.dumps(m["Properties"]["Integration"])
    )
    assert answered_by_search == ["histogram", "search", "{logId}"]
    role = search["Properties"]["Role"]["Fn::GetAtt"][0]
    policies = template.find_resources("AWS::IAM::Policy")
    (policy,) = [p for p in policies.values() if p["Properties"]["Roles"] == [{"Ref": role}]]
    actions = {a for s in policy["Properties"]["PolicyDocument"]["Statement"] for a in _actions(s)}
    assert "athena:StartQueryExecution" in actions and "dynamodb:Query" in actions
    assert not {a for a in actions if a.startswith("dynamodb:") and ("Put" in a or "Write" in a or "Delete" in a)}


def _actions(statement: dict) -> list[str]:
    action = statement["Action"]
    return [action] if isinstance(action, str) else action


def test_the_api_function_may_only_use_its_table(template) -> None:
    policies = template.find_resources("AWS::IAM::Policy")
    statements = [s for p in policies.values() for s in p["Properties"]["PolicyDocument"]["Statement"]]
    on_dynamodb = [s for s in statements if any(a.startswith("dynamodb:") for a in _actions(s))]
    actions = {a for s in on_dynamodb for a in _actions(s)}
    assert actions and not actions & {"dynamodb:*", "dynamodb:DeleteTable", "dynamodb:CreateTable"}
    # ListStreams has no resource-level permission; every other DynamoDB action names the table
    assert all(s["Resource"] != "*" for s in on_dynamodb if _actions(s) != ["dynamodb:ListStreams"])


def test_every_resource_carries_the_tags(template, deployment) -> None:
    kinds = ("AWS::DynamoDB::Table", "AWS::S3::Bucket", "AWS::Lambda::Function", "AWS::KMS::Key")
    tagged = [r for kind in kinds for r in template.find_resources(kind).values()]
    assert len(tagged) >= 4
    for resource in tagged:
        tags = {t["Key"]: t["Value"] for t in resource["Properties"]["Tags"]}
        assert {k: tags.get(k) for k in deployment.tags} == deployment.tags


def cfn_lint(template: assertions.Template, outdir: Path) -> tuple[list[str], subprocess.CompletedProcess]:
    """The stack's synthesized template (the module's, not synthesized again: a synth takes seconds) given to
    cfn-lint: the error lines, and all cfn-lint said."""
    template_file = outdir / "stack.template.json"
    template_file.write_text(json.dumps(template.to_json()))
    lint = subprocess.run(
        [str(Path(sys.executable).with_name("cfn-lint")), "--format", "parseable", str(template_file)],
        capture_output=True,
        text=True,
    )
    # parseable lines end with the rule id (E... errors, W... warnings, I... informational)
    return [line for line in lint.stdout.splitlines() if line.rsplit(":", 1)[-1].startswith("E")], lint


def test_cfn_lint_finds_no_errors(template, tmp_path: Path) -> None:
    errors, lint = cfn_lint(template, tmp_path)
    assert not errors, lint.stdout + lint.stderr
    assert lint.returncode in (0, 4, 8), lint.stdout + lint.stderr  # 2 = errors, 4 = warnings, 8 = informational


def test_synth_writes_the_template_and_names_config_mistakes(tmp_path: Path) -> None:
    from tests.conftest import run_cli

    result = run_cli("aws", "synth", "--config", str(EXAMPLE), "--out", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    assert "wrote " in result.stdout and (tmp_path / "out" / "loglake-inftes.template.json").exists()
    document = json.loads(EXAMPLE.read_text())
    (tmp_path / "amplify.json").write_text((EXAMPLE.parent / "amplify.json").read_text())
    (tmp_path / "bad-amplify.json").write_text(json.dumps({"applications": "none"}))
    for change, message in [
        ({"account": "12345"}, "account: '12345' is not a 12-digit AWS account id"),
        ({"tags": {"Project": "p"}}, "tags.Owner: missing (every resource carries Project, Owner, CostCenter,"),
        ({"naming": {**document["naming"], "project": "Has Spaces"}}, "naming.project: 'Has Spaces' is not"),
        ({"dynamodb": {"billing": "sometimes"}}, "dynamodb.billing: 'sometimes' is not on_demand or provisioned"),
        ({"extra": 1}, "unknown field extra"),
        ({"amplifyConfig": "missing.json"}, "missing.json: No such file"),
        ({"amplifyRoles": {"nobody": "arn:aws:iam::111122223333:role/r"}}, "amplifyRoles: 'nobody' is no app's"),
        (
            {"dynamodb": {"biling": "provisioned"}},
            ("dynamodb: unknown field 'biling' (did you mean 'billing'?) (allowed: billing, timeShards)"),
        ),
        ({"dynamodb": {"timeShards": 0}}, "dynamodb.timeShards: 0 is not a whole number from 1 to 64"),
        ({"naming": {**document["naming"], "versoin": 2}}, "naming: unknown field 'versoin' (did you mean 'version'?)"),
        ({"naming": {**document["naming"], "project": "a" * 20, "component": "b" * 20}}, "naming: the names would be"),
        ({"amplifyRoles": {"HylmarJ": "arn:aws:iam::1:role/r"}}, "amplifyRoles.HylmarJ: 'arn:aws:iam::1:role/r'"),
        # a refused Amplify configuration is named (the roles cannot be checked against its apps)
        ({"amplifyConfig": "bad-amplify.json", "amplifyRoles": {}}, f"amplifyConfig {tmp_path / 'bad-amplify.json'}"),
        ({"amplifyConfig": 5}, "amplifyConfig: expected `str`, got `int`"),
        # tags CloudFormation refuses mid-deploy (the CDK only warns): named here
        ({"tags": {**document["tags"], "CostCenter": "CC-1234, CC-99"}}, "tags.CostCenter: 'CC-1234, CC-99' is not a"),
        ({"tags": {**document["tags"], "Owner": "o" * 257}}, "is not a tag value (at most 256 letters"),
        ({"tags": {**document["tags"], "aws:team": "x"}}, "tags: 'aws:team' is not a tag key"),
    ]:
        bad = tmp_path / "bad.json"
        bad.write_text(json.dumps(document | change))
        refused = run_cli("aws", "synth", "--config", str(bad), "--out", str(tmp_path / "never"))
        assert refused.exit_code == 1 and message in refused.output, refused.output


def test_an_amplify_configuration_past_eventbridge_s_input_limit_stops_the_synth(tmp_path: Path) -> None:
    """The schedules pass the collector's configuration as their target's input, which EventBridge limits to
    8,192 characters: a configuration of many apps is refused here, naming it, not by CloudFormation mid-deploy."""
    from loglake.aws.deployment import DeploymentConfigError

    amplify = json.loads((EXAMPLE.parent / "amplify.json").read_text())
    app = amplify["applications"][0]
    apps = [app | {"appId": f"d{n:013d}", "appName": f"app_{n}", "domainName": f"app{n}.example.com"}
            for n in range(70)]  # fmt: skip
    (tmp_path / "amplify.json").write_text(json.dumps(amplify | {"applications": apps}))
    (tmp_path / "deployment.json").write_text(EXAMPLE.read_text())
    with pytest.raises(DeploymentConfigError) as caught:
        load_deployment(tmp_path / "deployment.json")
    assert "EventBridge takes at most 8192" in str(caught.value) and "amplifyConfig" in str(caught.value)
    (tmp_path / "amplify.json").write_text(json.dumps(amplify | {"applications": apps[:40]}))
    assert load_deployment(tmp_path / "deployment.json").amplify is not None


def test_every_deployment_problem_is_named_at_once() -> None:
    from loglake.aws.deployment import DeploymentConfigError, parse_deployment

    document = json.loads(EXAMPLE.read_text())
    bad = document | {
        "account": "12345",
        "tags": {"Project": "p", "Owner": ""},
        "dynamodb": {"timeShards": 65},
        "corsAllowOrigins": ["ui.example.com"],
        "colour": 1,
    }
    with pytest.raises(DeploymentConfigError) as caught:
        parse_deployment(bad)
    assert str(caught.value).split("; ") == [
        "the configuration: unknown field colour (allowed: account, amplifyConfig, amplifyRoles, ask, corsAllowOrigins,"
        " detections, dynamodb, environment, naming, region, retentionDays, tags, ui)",
        "account: '12345' is not a 12-digit AWS account id",
        "tags.Owner: '' is not a non-empty text",
        "dynamodb.timeShards: 65 is not a whole number from 1 to 64 (about 1,000 record writes/s each, never lower it)",
        "corsAllowOrigins: 'ui.example.com' is not an origin like https://logs.example.com (or *)",
    ]
    with pytest.raises(DeploymentConfigError) as caught:
        parse_deployment(document | {"tags": {"Project": "p"}, "naming": {"project": "x"}})
    assert str(caught.value).split("; ") == [
        "naming.component: missing (1-20 lowercase letters or digits)",
        "naming.privacy: missing (1-20 lowercase letters or digits)",
        *(
            f"tags.{tag}: missing (every resource carries Project, Owner, CostCenter, Environment)"
            for tag in ("Owner", "CostCenter", "Environment")
        ),
    ]


def test_each_table_expires_after_its_own_retention(tmp_path: Path) -> None:
    """App logs after retentionDays, Amplify logs after the collector's logRetention.days; a short
    retention never reaches Infrequent Access (S3 wants the expiry after the transition)."""
    (tmp_path / "amplify.json").write_text(
        json.dumps(json.loads((EXAMPLE.parent / "amplify.json").read_text()) | {"logRetention": {"days": 730}})
    )
    config = tmp_path / "loglake-aws.json"
    config.write_text(json.dumps(json.loads(EXAMPLE.read_text()) | {"retentionDays": 14}))
    template = _template(load_deployment(config))
    lake = template.find_resources("AWS::S3::Bucket", {"Properties": {"BucketName": Match.string_like_regexp("-ss1-")}})
    ((_, bucket),) = lake.items()
    rules = {r["Id"]: r for r in bucket["Properties"]["LifecycleConfiguration"]["Rules"]}
    assert rules["app_logs-retention"]["ExpirationInDays"] == 14 and "Transitions" not in rules["app_logs-retention"]
    assert rules["amplify_access-retention"]["ExpirationInDays"] == 730
    assert rules["amplify_logs-retention"]["Transitions"][0]["TransitionInDays"] == 30
    assert rules["app_logs-quarantine-retention"]["ExpirationInDays"] == 14
    assert rules["amplify_access-quarantine-retention"]["ExpirationInDays"] == 730


def _template(deployment):
    app = build_app(deployment, bundle=False)
    return assertions.Template.from_stack(next(c for c in app.node.children if isinstance(c, LoglakeStack)))


def test_provisioned_billing_scales_5_to_100_at_70_percent(tmp_path: Path) -> None:
    from loglake.aws.deployment import parse_deployment

    document = json.loads(EXAMPLE.read_text()) | {"dynamodb": {"billing": "provisioned"}}
    app = build_app(parse_deployment(document), bundle=False)
    stack = next(c for c in app.node.children if isinstance(c, LoglakeStack))
    template = assertions.Template.from_stack(stack)
    template.has_resource_properties("AWS::DynamoDB::Table", {"ProvisionedThroughput": Match.any_value()})
    targets = template.find_resources("AWS::ApplicationAutoScaling::ScalableTarget")
    assert len(targets) == 2 + 2 * 3  # the table's and each index's reads and writes
    assert {(t["Properties"]["MinCapacity"], t["Properties"]["MaxCapacity"]) for t in targets.values()} == {(5, 100)}
    policies = template.find_resources("AWS::ApplicationAutoScaling::ScalingPolicy").values()
    assert {p["Properties"]["TargetTrackingScalingPolicyConfiguration"]["TargetValue"] for p in policies} == {70}


def test_glue_tables_with_projection_a_crawler_and_an_athena_workgroup(template) -> None:
    tables = {
        t["Properties"]["TableInput"]["Name"]: t["Properties"]["TableInput"]
        for t in template.find_resources("AWS::Glue::Table").values()
    }
    assert set(tables) == {"logs", "amplify_access"}
    amplify = tables["amplify_access"]
    assert [k["Name"] for k in amplify["PartitionKeys"]] == ["app", "date"]
    assert (
        amplify["Parameters"]["projection.enabled"] == "true"
        and amplify["Parameters"]["projection.date.type"] == "date"
    )
    location = "s3://amplifylogs-logging-intite-ss1-inftes-182059100462/type=amplify_access/"
    assert amplify["StorageDescriptor"]["Location"] == location
    template.has_resource_properties(
        "AWS::Glue::Crawler",
        {
            "Targets": {
                "S3Targets": [{"Path": "s3://amplifylogs-logging-intite-ss1-inftes-182059100462/type=amplify_logs/"}]
            }
        },
    )
    template.has_resource_properties(
        "AWS::Athena::WorkGroup",
        {
            "WorkGroupConfiguration": Match.object_like(
                {
                    "BytesScannedCutoffPerQuery": 100 * 1024**3,
                    "EnforceWorkGroupConfiguration": True,
                    "ResultConfiguration": Match.object_like(
                        {"EncryptionConfiguration": Match.object_like({"EncryptionOption": "SSE_KMS"})}
                    ),
                }
            )
        },
    )


def test_alarms_go_to_one_topic_with_the_documented_thresholds(template) -> None:
    alarms = template.find_resources("AWS::CloudWatch::Alarm").values()
    by_metric = {
        (a["Properties"].get("Namespace"), a["Properties"].get("MetricName")): a["Properties"]
        for a in alarms
        if not a["Properties"]["AlarmName"].endswith("Failing")
    }  # (a scheduled function's: by its interval)
    expected = {
        ("AWS/Lambda", "Errors"): 5,
        ("AWS/Lambda", "Duration"): 5000,
        ("AWS/ApiGateway", "4XXError"): 50,
        ("AWS/ApiGateway", "5XXError"): 5,
    }
    assert {k: by_metric[k]["Threshold"] for k in expected} == expected
    single = [a for a in by_metric.values() if "MetricName" in a]
    assert all(a["Period"] == 300 and a["ComparisonOperator"] == "GreaterThanThreshold" for a in single)
    assert all(len(a["Properties"]["AlarmActions"]) == 1 for a in alarms)
    assert all(a["Properties"]["AlarmName"].startswith("amplifylogs-logging-intite-sn1-inftes-") for a in alarms)
    # DynamoDB counts throttled requests per operation: the alarm sums the store's operations
    (throttles,) = [a["Properties"] for a in alarms if a["Properties"]["AlarmName"].endswith("-HotTableThrottles")]
    stats = [m["MetricStat"]["Metric"] for m in throttles["Metrics"] if "MetricStat" in m]
    assert throttles["Threshold"] == 10 and {m["MetricName"] for m in stats} == {"ThrottledRequests"}
    operations = {d["Value"] for m in stats for d in m["Dimensions"] if d["Name"] == "Operation"}
    assert {"BatchWriteItem", "TransactWriteItems", "Query"} <= operations
    # the topic is encrypted: CloudWatch may use the key, or its alarms would never arrive
    (key,) = template.find_resources("AWS::KMS::Key").values()
    assert any(
        st.get("Principal") == {"Service": "cloudwatch.amazonaws.com"} and "kms:GenerateDataKey*" in _actions(st)
        for st in key["Properties"]["KeyPolicy"]["Statement"]
    )
    template.has_resource_properties(
        "AWS::Events::Rule",
        {
            "EventPattern": Match.object_like(
                {"source": ["aws.glue"], "detail": Match.object_like({"state": ["Failed"]})}
            )
        },
    )
    template.resource_count_is("AWS::CloudWatch::Dashboard", 1)


def test_the_stream_flush_reads_inserts_and_may_only_write_the_lake(template) -> None:
    template.has_resource_properties(
        "AWS::Lambda::Function",
        {"Handler": "loglake.aws.handlers.flush_stream", "Runtime": "python3.12", "Architectures": ["arm64"]},
    )
    template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {
            "StartingPosition": "TRIM_HORIZON",
            "BisectBatchOnFunctionError": True,
            "FilterCriteria": {"Filters": [{"Pattern": '{"eventName":["INSERT"]}'}]},
        },
    )
    statements = [
        s
        for p in template.find_resources("AWS::IAM::Policy").values()
        for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]
    lake_puts = [s for s in statements if "s3:PutObject" in _actions(s) and "LakeBucket" in json.dumps(s["Resource"])]
    allowed = ("/type=app_logs/*", "/type=amplify_*", "/type=amplify_access/*", "/_state/amplify/*",
               "/_state/compaction/*", f"/{CLAIM_KEY}", "/_quarantine/*", "/_state/late_parts/*",
               f"/{LEASE_KEY}")  # fmt: skip
    for statement in lake_puts:  # no function may write the whole lake
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        object_arns = [json.dumps(r) for r in resources if "/" in json.dumps(r)]
        assert object_arns and all(any(a in arn for a in allowed) for arn in object_arns), statement
    assert any("/type=app_logs/*" in json.dumps(s["Resource"]) for s in lake_puts)
    assert any("/_quarantine/*" in json.dumps(s["Resource"]) for s in lake_puts)  # (aws/compaction.py)
    # the compaction, which deletes the parts it merges, claims the lake for the deployment (lake/claim.py)
    assert [s for s in lake_puts if f"/{CLAIM_KEY}" in json.dumps(s["Resource"])]
    # a batch still failing after its retries is kept (described) in a queue that is alarmed on
    (mapping,) = template.find_resources("AWS::Lambda::EventSourceMapping").values()
    assert "OnFailure" in mapping["Properties"]["DestinationConfig"]
    alarms = template.find_resources("AWS::CloudWatch::Alarm").values()
    assert any(a["Properties"]["AlarmName"].endswith("-FlushFailedBatches") for a in alarms)


def test_post_query_goes_to_the_athena_function_with_workgroup_scoped_rights(template) -> None:
    template.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Handler": "loglake.aws.handlers.query",
            "Environment": {
                "Variables": {
                    "LOGLAKE_ATHENA_DATABASE": "amplifylogs_logging_intite_gd1_inftes_182059100462",
                    "LOGLAKE_ATHENA_WORKGROUP": "amplifylogs-logging-intite-aw1-inftes-182059100462",
                }
            },
        },
    )
    statements = [
        s
        for p in template.find_resources("AWS::IAM::Policy").values()
        for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]
    athena = [s for s in statements if any(a.startswith("athena:") for a in _actions(s))]
    assert athena and all("workgroup/amplifylogs-logging-intite-aw1" in json.dumps(s["Resource"]) for s in athena)


def test_the_amplify_collection_is_a_scheduled_state_machine(template) -> None:
    template.has_resource_properties(
        "AWS::Lambda::Function",
        {"Handler": "loglake.aws.handlers.amplify_download", "MemorySize": 1024, "Timeout": 900},
    )
    machines = template.find_resources("AWS::StepFunctions::StateMachine")
    (machine,) = machines.values()
    assert machine["Properties"]["StateMachineName"] == "amplifylogs-logging-intite-sf1-inftes-182059100462"
    assert machine["Properties"]["TracingConfiguration"] == {"Enabled": True}
    definition = json.dumps(machine["Properties"]["DefinitionString"])
    for needle in ('\\"EachApp\\"', '\\"EachWindow\\"', '\\"MaxConcurrency\\":4', '\\"MaxConcurrency\\":2',
                   '\\"BackoffRate\\":2', '\\"WindowFailed\\"', '\\"NotifyFailure\\"', '\\"Finish\\"',
                   '\\"AllWindowsStored\\"', '\\"WindowsFailed\\"'):  # fmt: skip
        assert needle in definition, needle
    rule = next(
        r["Properties"]
        for r in template.find_resources("AWS::Events::Rule").values()
        if r["Properties"].get("Name") == "amplifylogs-logging-intite-eb1-inftes-182059100462"
    )
    assert rule["ScheduleExpression"] == "cron(0 1 ? * MON *)"
    target_input = json.loads(rule["Targets"][0]["Input"])
    assert [a["appName"] for a in target_input["config"]["applications"]] == ["danse_tech", "digital_horizon"]
    alarms = template.find_resources("AWS::CloudWatch::Alarm").values()
    assert any(a["Properties"].get("MetricName") == "ExecutionsFailed" for a in alarms)
    # a run past the machine's 12 hours ends TIMED_OUT: not failed, and its catch (the notice) never runs
    assert any(
        a["Properties"].get("MetricName") == "ExecutionsTimedOut" and a["Properties"]["Threshold"] == 0
        and a["Properties"]["AlarmActions"] for a in alarms
    )  # fmt: skip
    role = machine["Properties"]["RoleArn"]["Fn::GetAtt"][0]
    (policy,) = [
        p for p in template.find_resources("AWS::IAM::Policy").values() if p["Properties"]["Roles"] == [{"Ref": role}]
    ]
    actions = {a for st in policy["Properties"]["PolicyDocument"]["Statement"] for a in _actions(st)}
    assert {"sns:Publish", "kms:GenerateDataKey*"} <= actions  # the failure notice reaches the encrypted topic
    statements = [
        s
        for p in template.find_resources("AWS::IAM::Policy").values()
        for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]
    assert any(_actions(s) == ["amplify:GenerateAccessLogs"] for s in statements)


def test_compaction_runs_every_hour(template) -> None:
    template.has_resource_properties(
        "AWS::Lambda::Function", {"Handler": "loglake.aws.handlers.compact", "MemorySize": 2048, "Timeout": 900}
    )
    rules = [r["Properties"] for r in template.find_resources("AWS::Events::Rule").values()]
    assert any(r.get("ScheduleExpression") == "rate(1 hour)" for r in rules)
    # it merges (writes, deletes) the parts of both tables, app_logs and amplify_access (aws/compaction.py)
    (compact,) = [f for f in template.find_resources("AWS::Lambda::Function").values()
                  if f["Properties"]["Handler"] == "loglake.aws.handlers.compact"]  # fmt: skip
    role = compact["Properties"]["Role"]["Fn::GetAtt"][0]
    policies = [p["Properties"] for p in template.find_resources("AWS::IAM::Policy").values()]
    statements = [s for p in policies if {"Ref": role} in p["Roles"] for s in p["PolicyDocument"]["Statement"]]
    for table in ("app_logs", "amplify_access"):
        assert any("s3:DeleteObject*" in _actions(s) and f"/type={table}/*" in json.dumps(s["Resource"])
                   for s in statements), table  # fmt: skip


def test_a_scheduled_function_failing_run_after_run_alarms(template) -> None:
    """A scheduled run fails three times at most (Lambda's two retries): errors > 5 in 5 minutes never fired for a
    compaction or retention that failed at every run."""
    functions = template.find_resources("AWS::Lambda::Function")
    handler_of = {k: f["Properties"].get("Handler") for k, f in functions.items()}
    alarms = [a["Properties"] for a in template.find_resources("AWS::CloudWatch::Alarm").values()]
    failing = {
        handler_of[d["Value"]["Ref"]]: a
        for a in alarms
        if a["AlarmName"].endswith("Failing")
        for d in a["Dimensions"]
        if d["Name"] == "FunctionName"
    }
    assert set(failing) == {"loglake.aws.handlers.compact", "loglake.aws.handlers.retention"}
    compact, retention = failing["loglake.aws.handlers.compact"], failing["loglake.aws.handlers.retention"]
    assert (compact["Period"], retention["Period"]) == (3600, 86400)  # a run each
    for alarm in failing.values():
        assert alarm["MetricName"] == "Errors" and alarm["Statistic"] == "Sum" and alarm["Threshold"] == 0
        assert alarm["ComparisonOperator"] == "GreaterThanThreshold" and alarm["EvaluationPeriods"] == 2
        assert len(alarm["AlarmActions"]) == 1


def test_every_function_runs_on_the_dependencies_layer_and_alarms_on_errors(template) -> None:
    functions = template.find_resources("AWS::Lambda::Function")
    loglake_functions = {
        k: f for k, f in functions.items() if f["Properties"].get("Handler", "").startswith("loglake.")
    }
    assert len(loglake_functions) == 9  # api, search, query, flush, compact, retention and the 3 Amplify steps
    (layer_id,) = template.find_resources("AWS::Lambda::LayerVersion")
    for function in loglake_functions.values():
        assert function["Properties"]["Layers"] == [{"Ref": layer_id}]
    layer = template.find_resources("AWS::Lambda::LayerVersion")[layer_id]["Properties"]
    assert layer["CompatibleArchitectures"] == ["arm64"] and layer["CompatibleRuntimes"] == ["python3.12"]
    alarms = [a["Properties"] for a in template.find_resources("AWS::CloudWatch::Alarm").values()]
    errors = [a for a in alarms if a.get("MetricName") == "Errors" and not a["AlarmName"].endswith("Failing")]
    assert len(errors) == len(loglake_functions) and {a["Threshold"] for a in errors} == {5}
    assert {a["Period"] for a in errors} == {300} and all(a["AlarmActions"] for a in alarms)
    durations = [a for a in alarms if a.get("MetricName") == "Duration"]
    assert len(durations) == 3 and {a["Threshold"] for a in durations} == {5000}


def test_the_functions_that_write_files_have_room_in_tmp(template) -> None:
    functions = template.find_resources("AWS::Lambda::Function").values()
    tmp = {f["Properties"]["Handler"]: f["Properties"]["EphemeralStorage"]["Size"] for f in functions
           if f["Properties"].get("Handler", "").startswith("loglake.")}  # fmt: skip
    assert tmp["loglake.aws.handlers.compact"] == 4096 and tmp["loglake.aws.handlers.amplify_download"] == 2048
    assert tmp["loglake.aws.handlers.query"] == 512


def test_a_daily_retention_function_may_only_list_and_delete_lake_objects(template) -> None:
    functions = template.find_resources(
        "AWS::Lambda::Function", {"Properties": {"Handler": "loglake.aws.handlers.retention"}}
    )
    ((function_id, function),) = functions.items()
    assert function["Properties"]["Environment"]["Variables"]["LOGLAKE_RETENTION_DAYS"] == "365"
    rules = template.find_resources("AWS::Events::Rule", {"Properties": {"ScheduleExpression": "cron(30 2 * * ? *)"}})
    ((_, rule),) = rules.items()
    assert function_id in json.dumps(rule["Properties"]["Targets"])
    assert "danse_tech" in rule["Properties"]["Targets"][0]["Input"]  # the Amplify retention comes with it
    role = function["Properties"]["Role"]["Fn::GetAtt"][0]
    (policy,) = [
        p for p in template.find_resources("AWS::IAM::Policy").values() if p["Properties"]["Roles"] == [{"Ref": role}]
    ]
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    actions = {a for st in statements for a in _actions(st)}
    assert "s3:DeleteObject*" in actions and not any(a.startswith("dynamodb:") for a in actions)
    deletes = [json.dumps(st["Resource"]) for st in statements if "s3:DeleteObject*" in _actions(st)]
    assert any("/_quarantine/type=*" in delete for delete in deletes)  # (the damaged parts of the days it drops)
    # it writes one object: the lease that keeps it from a compaction at work (aws/maintenance_lease.py)
    puts = [json.dumps(st["Resource"]) for st in statements if any(a.startswith("s3:Put") for a in _actions(st))]
    assert puts and all(f"/{LEASE_KEY}" in put and "/type=" not in put for put in puts)


def test_outputs_name_the_api_and_the_athena_settings(template) -> None:
    outputs = template.to_json()["Outputs"]
    assert {"AthenaDatabase", "AthenaWorkgroup", "LakeBucketName", "HotTableName", "AlarmTopicArn"} <= set(outputs)
    assert [name for name in outputs if name.startswith("ApiEndpoint")]  # the REST API's own output


def test_apps_in_other_accounts_are_reached_through_their_roles(tmp_path: Path) -> None:
    document = json.loads(EXAMPLE.read_text())
    role = "arn:aws:iam::111122223333:role/amplify-logs-reader"
    (tmp_path / "amplify.json").write_text((EXAMPLE.parent / "amplify.json").read_text())
    config = tmp_path / "loglake-aws.json"
    config.write_text(json.dumps(document | {"amplifyRoles": {"HylmarJ": role}}))
    app = build_app(load_deployment(config), bundle=False)
    stack = next(c for c in app.node.children if isinstance(c, LoglakeStack))
    template = assertions.Template.from_stack(stack)
    downloads = template.find_resources(
        "AWS::Lambda::Function", {"Properties": {"Handler": "loglake.aws.handlers.amplify_download"}}
    )
    ((_, download),) = downloads.items()
    assert json.loads(download["Properties"]["Environment"]["Variables"]["LOGLAKE_AMPLIFY_ROLES"]) == {"HylmarJ": role}
    template.has_resource_properties(
        "AWS::IAM::Policy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with([Match.object_like({"Action": "sts:AssumeRole", "Resource": role})])
            }
        },
    )


def test_cors_preflights_reach_the_app_unsigned(tmp_path: Path) -> None:
    from loglake.aws.deployment import parse_deployment

    document = json.loads(EXAMPLE.read_text()) | {"corsAllowOrigins": ["https://ui.example.com"]}
    template = _template(parse_deployment(document))
    methods = [m["Properties"] for m in template.find_resources("AWS::ApiGateway::Method").values()]
    options = [m for m in methods if m["HttpMethod"] == "OPTIONS"]
    assert len(options) == 6 and {m["AuthorizationType"] for m in options} == {"NONE"}
    assert {m["AuthorizationType"] for m in methods if m["HttpMethod"] != "OPTIONS"} == {"AWS_IAM"}
    functions = template.find_resources("AWS::Lambda::Function").values()
    origins = {f["Properties"]["Environment"]["Variables"].get("LOGLAKE_CORS_ALLOW_ORIGINS") for f in functions}
    assert "https://ui.example.com" in origins
    from loglake.aws.deployment import DeploymentConfigError

    with pytest.raises(DeploymentConfigError, match=r"corsAllowOrigins: 'ui\.example\.com' is not an origin"):
        parse_deployment(document | {"corsAllowOrigins": ["ui.example.com"]})
