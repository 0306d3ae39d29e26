"""The ask construct of the CDK app: its table (TTL), its function and routes on the REST API, and its
rights: bedrock:InvokeModel on the configured model only, Athena, Glue and the lake as the search
function has them, its own table and not the hot one."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import msgspec
import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "18,20")
os.environ.setdefault("JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION", "1")
assertions = pytest.importorskip("aws_cdk.assertions")

from loglake.aws.ask_config import AskConfig, model_arns  # noqa: E402
from loglake.aws.deployment import DeploymentConfigError, load_deployment, parse_deployment  # noqa: E402
from loglake.aws.stack import LoglakeStack, build_app  # noqa: E402
from tests.aws.test_detections_stack import _actions, _function_id, _logical, _resources, _statements_of  # noqa: E402
from tests.aws.test_stack import cfn_lint  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "loglake-aws.json"
MODEL = "anthropic.claude-3-5-haiku-20241022-v1:0"


@pytest.fixture(scope="module")
def deployment():
    return replace(load_deployment(EXAMPLE), ask=AskConfig(model=MODEL, daily_tokens=500_000))


@pytest.fixture(scope="module")
def template(deployment):
    app = build_app(deployment, bundle=False)
    stack = next(c for c in app.node.children if isinstance(c, LoglakeStack))
    return assertions.Template.from_stack(stack)


def test_the_table_expires_its_items(template) -> None:
    template.has_resource_properties(
        "AWS::DynamoDB::Table",
        {
            "TableName": assertions.Match.string_like_regexp("-dx1-"),
            "TimeToLiveSpecification": {"AttributeName": "expires_at", "Enabled": True},
            "SSESpecification": assertions.Match.object_like({"SSEEnabled": True, "SSEType": "KMS"}),
        },
    )


def test_the_function_has_the_model_and_its_settings(template, deployment) -> None:
    ask = _function_id(template, "loglake.aws.handlers.ask")
    properties = template.find_resources("AWS::Lambda::Function")[ask]["Properties"]
    env = properties["Environment"]["Variables"]
    assert env["LOGLAKE_LLM_PROVIDER"] == "bedrock" and env["LOGLAKE_LLM_MODEL"] == MODEL
    assert env["LOGLAKE_LLM_DAILY_TOKENS"] == "500000" and env["LOGLAKE_LLM_TIMEOUT_SECONDS"] == "8"
    assert {"LOGLAKE_ASK_TABLE", "LOGLAKE_LAKE_BUCKET", "LOGLAKE_ATHENA_WORKGROUP"} <= set(env)
    assert properties["Timeout"] == 30


def test_the_routes_are_on_the_rest_api_with_its_authorization(template) -> None:
    resources = template.find_resources("AWS::ApiGateway::Resource")
    paths = {k: r["Properties"]["PathPart"] for k, r in resources.items()}
    ask = _function_id(template, "loglake.aws.handlers.ask")
    methods = [
        m["Properties"]
        for m in template.find_resources("AWS::ApiGateway::Method").values()
        if ask in str(m["Properties"]["Integration"].get("Uri"))
    ]
    assert sorted(paths[_logical(m["ResourceId"])] for m in methods) == ["ask", "explain", "rule"]
    assert {(m["HttpMethod"], m["AuthorizationType"]) for m in methods} == {("POST", "AWS_IAM")}


def test_the_function_may_invoke_only_its_model_and_read_the_lake_as_search_does(template, deployment) -> None:
    ask = _statements_of(template, _function_id(template, "loglake.aws.handlers.ask"))
    (search_id,) = [
        k
        for k, f in template.find_resources("AWS::Lambda::Function").items()
        if "-ls1-" in str(f["Properties"].get("FunctionName"))
    ]
    search = _statements_of(template, search_id)
    bedrock = [s for s in ask if any(a.startswith("bedrock:") for a in _actions(s))]
    (only,) = bedrock
    assert _actions(only) == {"bedrock:InvokeModel"}
    assert _resources(only) == [f"arn:aws:bedrock:eu-west-1::foundation-model/{MODEL}"]
    actions = {a for s in ask for a in _actions(s)}

    def reads(statements: list[dict]) -> set[str]:
        return {a for s in statements for a in _actions(s) if a.startswith(("athena:", "glue:", "s3:"))}

    assert reads(ask) == reads(search) and {"athena:StartQueryExecution", "glue:GetTable", "s3:List*"} <= actions
    assert not {a for a in actions if a.startswith(("sns:", "sqs:", "secretsmanager:", "dynamodb:CreateTable"))}
    writes = {a for a in actions if a.startswith("s3:") and ("Put" in a or "Delete" in a)}
    results = [s for s in ask if any(a.startswith("s3:Put") for a in _actions(s))]
    assert writes and all("AthenaResults" in str(_resources(s)) for s in results)  # only Athena's results
    tables = {k: t["Properties"]["TableName"] for k, t in template.find_resources("AWS::DynamoDB::Table").items()}
    on_dynamodb = [s for s in ask if any(a.startswith("dynamodb:") for a in _actions(s))]
    named = {tables.get(_logical(r)) for s in on_dynamodb for r in _resources(s)} - {None}
    assert named and all("-dx1-" in name for name in named)


def test_an_inference_profile_allows_the_profile_and_its_model() -> None:
    assert model_arns("eu.anthropic.claude-3-7-sonnet-20250219-v1:0", "eu-west-1", "182059100462") == [
        "arn:aws:bedrock:eu-west-1:182059100462:inference-profile/eu.anthropic.claude-3-7-sonnet-20250219-v1:0",
        "arn:aws:bedrock:*::foundation-model/anthropic.claude-3-7-sonnet-20250219-v1:0",
    ]


def test_the_deployment_file_s_ask_section() -> None:
    document = msgspec.json.decode(EXAMPLE.read_bytes())
    document.pop("amplifyConfig", None)
    assert parse_deployment(document).ask is None
    configured = parse_deployment(document | {"ask": {"model": MODEL, "conversationHours": 24}})
    assert configured.ask == AskConfig(model=MODEL, conversation_hours=24)
    with pytest.raises(DeploymentConfigError, match="timeoutSeconds"):
        parse_deployment(document | {"ask": {"model": MODEL, "timeoutSeconds": 60}})


@pytest.mark.parametrize(
    "model",
    [
        "gpt-4o",
        "claude-3-5-haiku",
        "anthropic claude",
        "arn:aws:s3:::bucket/anthropic.claude",
        "xx.anthropic.claude-3-5-haiku-20241022-v1:0",
    ],
)
def test_a_model_bedrock_cannot_name_is_refused_by_its_field(model: str) -> None:
    document = msgspec.json.decode(EXAMPLE.read_bytes()) | {"ask": {"model": model}}
    document.pop("amplifyConfig", None)
    with pytest.raises(DeploymentConfigError, match=r"ask\.model.*Bedrock model id"):
        parse_deployment(document)


@pytest.mark.parametrize(
    "model",
    [
        "meta.llama3-70b-instruct-v1:0",
        "amazon.titan-text-express-v1",
        "apac.anthropic.claude-3-5-sonnet-20240620-v1:0",
        "arn:aws:bedrock:eu-west-1::foundation-model/anthropic.claude-3-5-haiku-20241022-v1:0",
        "arn:aws:bedrock:eu-west-1:182059100462:inference-profile/eu.anthropic.claude-3-7-sonnet-20250219-v1:0",
        "arn:aws:bedrock:eu-west-1:182059100462:provisioned-model/a1b2c3d4e5f6",
    ],
)
def test_bedrock_model_ids_profiles_and_arns_are_accepted(model: str) -> None:
    document = msgspec.json.decode(EXAMPLE.read_bytes()) | {"ask": {"model": model}}
    document.pop("amplifyConfig", None)
    assert parse_deployment(document).ask == AskConfig(model=model)


def test_a_profile_arn_allows_the_profile_and_its_model() -> None:
    arn = "arn:aws:bedrock:eu-west-1:182059100462:inference-profile/eu.anthropic.claude-3-7-sonnet-20250219-v1:0"
    assert model_arns(arn, "eu-west-1", "182059100462") == [
        arn,
        "arn:aws:bedrock:*::foundation-model/anthropic.claude-3-7-sonnet-20250219-v1:0",
    ]


def test_cfn_lint_finds_no_errors_with_ask(template, tmp_path: Path) -> None:
    errors, lint = cfn_lint(template, tmp_path)
    assert not errors, lint.stdout + lint.stderr
