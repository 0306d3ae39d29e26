"""The web UI in the CDK app: the user pool, its hosted UI, groups and public client, the sessions
table, the UI function and its REST API on the UI's domain, each with only the rights it needs."""

from __future__ import annotations

import json
import os
from dataclasses import replace

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "18,20")
os.environ.setdefault("JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION", "1")
assertions = pytest.importorskip("aws_cdk.assertions")

from loglake.aws.deployment import DeploymentConfigError, load_deployment, parse_deployment  # noqa: E402
from loglake.aws.stack import LoglakeStack, build_app  # noqa: E402
from tests.aws.test_detections_stack import _actions, _logical, _resources, _statements_of  # noqa: E402
from tests.aws.test_stack import EXAMPLE, test_cfn_lint_finds_no_errors  # noqa: E402, F401 (linted with the UI)

Match = assertions.Match
CERTIFICATE = "arn:aws:acm:eu-west-1:182059100462:certificate/0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
UI = {
    "domain": "logs.example.com",
    "certificateArn": CERTIFICATE,
    "groups": {"loglake-admin": ["admin"], "loglake-readers": ["read"], "oncall": ["read", "alerts"]},
}


@pytest.fixture(scope="module")
def deployment():
    document = json.loads(EXAMPLE.read_text()) | {"ui": UI}
    return replace(parse_deployment(document), amplify=load_deployment(EXAMPLE).amplify)


@pytest.fixture(scope="module")
def template(deployment):
    app = build_app(deployment, bundle=False)
    stack = next(c for c in app.node.children if isinstance(c, LoglakeStack))
    return assertions.Template.from_stack(stack)


def _only(template, kind: str) -> tuple[str, dict]:
    ((logical, resource),) = template.find_resources(kind).items()
    return logical, resource["Properties"]


def test_the_user_pool_has_no_self_sign_up_and_a_hosted_ui(template) -> None:
    pool, properties = _only(template, "AWS::Cognito::UserPool")
    assert properties["UserPoolName"] == "amplifylogs-logging-intite-cu1-inftes-182059100462"
    assert properties["AdminCreateUserConfig"] == {"AllowAdminCreateUserOnly": True}
    assert properties["DeletionProtection"] == "ACTIVE"
    template.has_resource_properties(
        "AWS::Cognito::UserPoolDomain",
        {"Domain": "amplifylogs-logging-intite-cu1-inftes-182059100462", "UserPoolId": {"Ref": pool}},
    )
    groups = {p["Properties"]["GroupName"] for p in template.find_resources("AWS::Cognito::UserPoolGroup").values()}
    assert groups == {"loglake-admin", "loglake-readers", "oncall"}


def test_the_app_client_is_public_with_the_code_flow_to_the_ui_domain(template) -> None:
    _, client = _only(template, "AWS::Cognito::UserPoolClient")
    assert client["GenerateSecret"] is False
    assert client["AllowedOAuthFlows"] == ["code"] and client["AllowedOAuthFlowsUserPoolClient"] is True
    assert set(client["AllowedOAuthScopes"]) == {"openid", "email", "profile"}
    assert client["CallbackURLs"] == ["https://logs.example.com/auth/callback"]
    assert client["LogoutURLs"] == ["https://logs.example.com/login"]
    assert client["SupportedIdentityProviders"] == ["COGNITO"]
    assert client["PreventUserExistenceErrors"] == "ENABLED"
    assert client["ExplicitAuthFlows"] == ["ALLOW_REFRESH_TOKEN_AUTH"]  # no password or SRP sign-in by API


def test_the_sessions_table_expires_its_items_and_is_encrypted(template) -> None:
    template.has_resource_properties(
        "AWS::DynamoDB::Table",
        {
            "TableName": "amplifylogs-logging-intite-du1-inftes-182059100462",
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "TimeToLiveSpecification": {"AttributeName": "expires_at", "Enabled": True},
            "SSESpecification": {"SSEEnabled": True, "SSEType": "KMS", "KMSMasterKeyId": Match.any_value()},
            "BillingMode": "PAY_PER_REQUEST",
        },
    )


def test_the_ui_api_is_unsigned_on_its_domain_only_and_passes_everything_to_the_ui_function(template) -> None:
    apis = template.find_resources("AWS::ApiGateway::RestApi")
    (ui_api,) = [k for k, a in apis.items() if a["Properties"]["Name"].split("-")[3] == "au1"]
    properties = apis[ui_api]["Properties"]
    assert properties["DisableExecuteApiEndpoint"] is True and properties["BinaryMediaTypes"] == ["*/*"]
    methods = [
        m["Properties"]
        for m in template.find_resources("AWS::ApiGateway::Method").values()
        if m["Properties"]["RestApiId"] == {"Ref": ui_api}
    ]
    assert len(methods) == 2 and all(m["HttpMethod"] == "ANY" for m in methods)
    assert all(m["AuthorizationType"] == "NONE" and m["Integration"]["Type"] == "AWS_PROXY" for m in methods)
    paths = {
        r["Properties"]["PathPart"]
        for r in template.find_resources("AWS::ApiGateway::Resource").values()
        if r["Properties"]["RestApiId"] == {"Ref": ui_api}
    }
    assert paths == {"{proxy+}"}
    template.has_resource_properties(
        "AWS::ApiGateway::DomainName",
        {
            "DomainName": "logs.example.com",
            "RegionalCertificateArn": CERTIFICATE,
            "EndpointConfiguration": {"Types": ["REGIONAL"]},
            "SecurityPolicy": "TLS_1_2",
        },
    )
    (mapping,) = template.find_resources("AWS::ApiGateway::BasePathMapping").values()
    assert mapping["Properties"]["RestApiId"] == {"Ref": ui_api} and "BasePath" not in mapping["Properties"]
    # its stage logs through the account's CloudWatch role: deployed after it is set
    stages = template.find_resources("AWS::ApiGateway::Stage").values()
    (ui_stage,) = [stage for stage in stages if stage["Properties"]["RestApiId"] == {"Ref": ui_api}]
    (account,) = template.find_resources("AWS::ApiGateway::Account")
    assert account in ui_stage["DependsOn"] and "AccessLogSetting" in ui_stage["Properties"]
    # the IAM API keeps its SigV4 authorization
    iam_methods = [
        m["Properties"]
        for m in template.find_resources("AWS::ApiGateway::Method").values()
        if m["Properties"]["RestApiId"] != {"Ref": ui_api}
    ]
    assert iam_methods and all(m["AuthorizationType"] == "AWS_IAM" for m in iam_methods)


def test_the_ui_function_knows_its_pool_and_may_only_read_records(template) -> None:
    functions = template.find_resources("AWS::Lambda::Function")
    (ui,) = [k for k, f in functions.items() if f["Properties"].get("FunctionName", "").split("-")[3:4] == ["lu1"]]
    environment = functions[ui]["Properties"]["Environment"]["Variables"]
    assert functions[ui]["Properties"]["Handler"] == "loglake.aws.handlers.api"
    assert environment["LOGLAKE_UI_URL"] == "https://logs.example.com"
    assert json.loads(environment["LOGLAKE_COGNITO_GROUPS"]) == UI["groups"]
    for name in ("LOGLAKE_COGNITO_DOMAIN", "LOGLAKE_COGNITO_ISSUER", "LOGLAKE_COGNITO_CLIENT_ID",
                 "LOGLAKE_UI_SESSIONS_TABLE", "LOGLAKE_DYNAMODB_TABLE", "LOGLAKE_ATHENA_WORKGROUP"):  # fmt: skip
        assert environment[name], name
    (pool,) = template.find_resources("AWS::Cognito::UserPool")
    issuer = {"Fn::Join": ["", ["https://cognito-idp.eu-west-1.amazonaws.com/", {"Ref": pool}]]}
    assert environment["LOGLAKE_COGNITO_ISSUER"] == issuer  # what the ID tokens' iss says

    tables = {
        k: t["Properties"]["TableName"].split("-")[3]
        for k, t in template.find_resources("AWS::DynamoDB::Table").items()
    }
    statements = _statements_of(template, ui)
    by_table: dict[str, set[str]] = {}
    for statement in statements:
        for resource in _resources(statement):
            if _logical(resource) in tables:
                by_table.setdefault(tables[_logical(resource)], set()).update(_actions(statement))
    assert by_table["du1"] == {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem"}
    assert by_table["dt1"] and not by_table["dt1"] & {"dynamodb:PutItem", "dynamodb:BatchWriteItem",
                                                      "dynamodb:DeleteItem", "dynamodb:UpdateItem"}  # fmt: skip
    actions = {a for s in statements for a in _actions(s)}
    assert "athena:StartQueryExecution" in actions
    assert not {a for a in actions if a.startswith(("cognito-idp:", "sqs:", "sns:"))}
    # S3 writes only to Athena's results bucket, never the lake
    buckets = {
        k: b["Properties"]["BucketName"].split("-")[3] for k, b in template.find_resources("AWS::S3::Bucket").items()
    }
    writes = [s for s in statements if any(a.startswith(("s3:Put", "s3:Delete")) for a in _actions(s))]
    assert {buckets.get(_logical(r)) for s in writes for r in _resources(s)} == {"sr1"}


def test_the_ui_api_and_function_have_alarms_to_the_alarm_topic(template) -> None:
    alarms = {a["Properties"]["AlarmName"].rsplit("-", 1)[1]: a["Properties"] for a in
              template.find_resources("AWS::CloudWatch::Alarm").values()}  # fmt: skip
    (topic,) = template.find_resources(
        "AWS::SNS::Topic", {"Properties": {"TopicName": Match.string_like_regexp("-sn1-")}}
    )
    for name, metric, threshold in [("UiApi5xx", "5XXError", 5), ("UiFunctionDuration", "Duration", 5000)]:
        assert alarms[name]["MetricName"] == metric and alarms[name]["Threshold"] == threshold
        assert alarms[name]["AlarmActions"] == [{"Ref": topic}]
    assert "UiFunctionErrors" in alarms


def test_outputs_name_the_ui_and_the_pool(template) -> None:
    outputs = template.find_outputs("*")
    assert outputs["UiUrl"]["Value"] == "https://logs.example.com/ui/"
    assert {"UiDomainTarget", "UserPoolId"} <= outputs.keys()


def test_a_ui_section_with_mistakes_is_named_whole() -> None:
    document = json.loads(EXAMPLE.read_text())
    bad = {"domain": "Logs Example", "certificateArn": "arn:aws:acm:x", "groups": {"admins": ["root"]}, "x": 1}
    with pytest.raises(DeploymentConfigError) as caught:
        parse_deployment(document | {"ui": bad})
    message = str(caught.value)
    for part in (
        "ui: unknown field x",
        "ui.domain: 'Logs Example' is not a lowercase DNS name",
        "ui.certificateArn: 'arn:aws:acm:x' is not an ACM certificate ARN",
        "ui.groups.admins[0]: 'root' is not one of",
    ):
        assert part in message, message
    elsewhere = UI | {"certificateArn": CERTIFICATE.replace("eu-west-1", "us-east-1")}
    with pytest.raises(DeploymentConfigError, match="must be in the stack's region eu-west-1"):
        parse_deployment(document | {"ui": elsewhere})
    with pytest.raises(DeploymentConfigError, match="Cognito refuses the prefix 'my-aws-logs'"):
        parse_deployment(document | {"ui": UI | {"cognitoDomainPrefix": "my-aws-logs"}})
