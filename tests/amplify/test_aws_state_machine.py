"""The Amplify collection's state machine, as the stack synthesizes it, run by a Step Functions engine.

moto's server executes state machines (its engine is a port of LocalStack's ASL interpreter) and sends
their Lambda calls to localhost:MOTO_PORT. There a small proxy runs the very handler each task names
(loglake.aws.handlers, in this process, against moto S3 and the local Amplify server), as Lambda
would, and passes every other call (the SNS notice) on to moto. So the definition's paths, Maps,
retries, catches and the check after the finishing step are exercised with the real steps. The only
change made to the definition: retries wait 1 s (they wait 10-30 s and more, with backoff).
"""

from __future__ import annotations

import http.server
import io
import json
import threading
import time
import traceback
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import boto3
import httpx
import pyarrow.parquet as pq
import pytest

from loglake.aws import handlers
from tests.amplify.server import FakeAmplify
from tests.amplify.test_collector import DANSE, HORIZON, SINCE, UNTIL, in_range, serve_apps
from tests.aws.test_stack import EXAMPLE, LoglakeStack, build_app, load_deployment
from tests.moto_server import lambda_environment, running_moto

REGION = "eu-west-1"
ACCOUNT = "123456789012"  # moto's


class LambdaInvokeProxy:
    """Lambda's Invoke API for the engine's calls, answered by loglake's handlers; other calls to moto."""

    def __init__(self) -> None:
        self.functions: dict[str, Callable[[dict, Any], Any]] = {}  # by the function's name in its ARN
        self.upstream = ""
        self.invocations: list[tuple[str, dict]] = []
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                path = urllib.parse.unquote(self.path)
                if path.startswith("/2015-03-31/functions/") and path.endswith("/invocations"):
                    name = path.removeprefix("/2015-03-31/functions/").removesuffix("/invocations")
                    return self._invoke(name.rsplit(":", 1)[-1], json.loads(body or b"{}"))
                self._forward(body)

            def _invoke(self, name: str, payload: dict) -> None:
                proxy.invocations.append((proxy.functions[name].__name__, payload))
                context = SimpleNamespace(function_name=name, aws_request_id=str(uuid.uuid4()))
                headers = {"Content-Type": "application/json"}
                try:
                    answer = json.dumps(proxy.functions[name](payload, context)).encode()
                except Exception as e:  # what Lambda returns for an unhandled error
                    headers["X-Amz-Function-Error"] = "Unhandled"
                    error = {"errorMessage": str(e), "errorType": type(e).__name__,
                             "stackTrace": traceback.format_tb(e.__traceback__)}  # fmt: skip
                    answer = json.dumps(error).encode()
                self._reply(200, headers, answer)

            def _forward(self, body: bytes) -> None:
                skip = {"host", "content-length", "connection", "accept-encoding"}
                headers = {k: v for k, v in self.headers.items() if k.lower() not in skip}
                answer = httpx.post(proxy.upstream + self.path, headers=headers, content=body)
                self._reply(
                    answer.status_code, {"Content-Type": answer.headers.get("content-type", "")}, answer.content
                )

            def _reply(self, status: int, headers: dict, body: bytes) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, LambdaInvokeProxy]]:
    """A moto server that executes state machines, its Lambda calls sent to the proxy."""
    proxy = LambdaInvokeProxy()
    log = tmp_path_factory.mktemp("moto-sfn") / "moto.log"
    try:
        with running_moto(log, MOTO_PORT=str(proxy.port)) as endpoint:
            proxy.upstream = endpoint
            config = {"stepfunctions": {"execute_state_machine": True}}
            httpx.post(f"{endpoint}/moto-api/config", json=config).raise_for_status()
            yield endpoint, proxy
    finally:
        proxy.close()


@pytest.fixture(scope="module")
def synthesized() -> tuple[dict, dict[str, str]]:
    """The collector's definition (tokens left in) and each function's handler, by logical id."""
    app = build_app(load_deployment(EXAMPLE), bundle=False)
    stack = next(c for c in app.node.children if isinstance(c, LoglakeStack))
    resources = app.synth().get_stack_by_name(stack.stack_name).template["Resources"]
    (machine,) = [r for r in resources.values() if r["Type"] == "AWS::StepFunctions::StateMachine"]
    handlers_by_id = {
        k: r["Properties"]["Handler"] for k, r in resources.items() if r["Type"] == "AWS::Lambda::Function"
    }
    return machine["Properties"]["DefinitionString"], handlers_by_id


def _resolve(definition: dict, topic_arn: str) -> dict:
    """The template's Fn::Join with its references filled in as they would be in this account."""

    def value(part: Any) -> str:
        if isinstance(part, str):
            return part
        if "Fn::GetAtt" in part:
            return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{part['Fn::GetAtt'][0]}"
        ref = part["Ref"]
        return {"AWS::Partition": "aws", "AWS::Region": REGION, "AWS::AccountId": ACCOUNT}.get(ref, topic_arn)

    separator, parts = definition["Fn::Join"]
    document = json.loads(separator.join(value(p) for p in parts))

    def no_waiting(node: Any) -> None:
        if isinstance(node, dict):
            for retry in node.get("Retry", []):
                retry["IntervalSeconds"], retry["BackoffRate"] = 1, 1
            for child in node.values():
                no_waiting(child)
        elif isinstance(node, list):
            for child in node:
                no_waiting(child)

    no_waiting(document)
    return document


@pytest.fixture
def collection(engine, synthesized, amplify: FakeAmplify, monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    endpoint, proxy = engine
    bucket = f"loglake-sfn-{uuid.uuid4().hex[:8]}"
    lambda_environment(monkeypatch, REGION, AWS_ENDPOINT_URL_S3=endpoint, LOGLAKE_LAKE_BUCKET=bucket)
    monkeypatch.setenv("AWS_ENDPOINT_URL_AMPLIFY", amplify.url)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SNS", endpoint)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", endpoint)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SFN", endpoint)
    boto3.client("s3").create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    sns, sqs = boto3.client("sns"), boto3.client("sqs")
    topic = sns.create_topic(Name=f"alarms-{uuid.uuid4().hex[:8]}")["TopicArn"]
    queue = sqs.create_queue(QueueName=f"alarms-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    definition, handler_names = synthesized
    proxy.functions = {
        logical_id: getattr(handlers, name.rsplit(".", 1)[1]) for logical_id, name in handler_names.items()
    }
    proxy.invocations.clear()
    sfn = boto3.client("stepfunctions")
    machine = sfn.create_state_machine(
        name=f"collector-{uuid.uuid4().hex[:8]}",
        definition=json.dumps(_resolve(definition, topic)),
        roleArn=f"arn:aws:iam::{ACCOUNT}:role/collector",
    )["stateMachineArn"]
    document = {
        "applications": [DANSE | {"appName": "danse_tech"}, HORIZON | {"appName": "digital_horizon"}],
        "logRetention": {"days": 28},
        "timeChunkSize": {"days": 14},
    }

    def run() -> dict:
        # what the EventBridge rule passes (the configuration), with the moment the run was due
        execution_input = {"config": document, "time": "2026-11-16T01:30:00Z"}
        arn = sfn.start_execution(stateMachineArn=machine, input=json.dumps(execution_input))["executionArn"]
        deadline = time.monotonic() + 120
        while (described := sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
            assert time.monotonic() < deadline, "the execution did not end"
            time.sleep(0.2)
        return described

    def notices() -> list[dict]:
        received = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        return [json.loads(m["Body"]) for m in received.get("Messages", [])]

    return SimpleNamespace(run=run, notices=notices, proxy=proxy, bucket=bucket)


def _stored_ids(bucket: str, app: str) -> list[str]:
    s3 = boto3.client("s3")
    ids: list[str] = []
    for found in s3.list_objects_v2(Bucket=bucket, Prefix=f"type=amplify_access/app={app}/").get("Contents", []):
        data = s3.get_object(Bucket=bucket, Key=found["Key"])["Body"].read()
        ids += pq.read_table(io.BytesIO(data)).column("x_edge_request_id").to_pylist()
    return sorted(ids)


def _watermark(bucket: str, app: str) -> dict:
    return json.loads(boto3.client("s3").get_object(Bucket=bucket, Key=f"_state/amplify/{app}.json")["Body"].read())


def test_a_scheduled_run_collects_every_window_of_every_app(collection, amplify: FakeAmplify) -> None:
    danse, horizon = serve_apps(amplify, count=300)
    described = collection.run()
    assert described["status"] == "SUCCEEDED", described
    called = [name for name, _ in collection.proxy.invocations]
    assert called.count("amplify_plan") == 1 and called.count("amplify_finish") == 1
    assert called.count("amplify_download") == 4  # 2 apps x 2 windows of 14 days
    finish_input = next(p for n, p in collection.proxy.invocations if n == "amplify_finish")
    assert sorted(r["app"] for r in finish_input["results"]) == ["danse_tech", "digital_horizon"]
    # only what finishing needs travels in the run's state (Step Functions allows 256 KB in all)
    assert all(set(r) == {"app", "windows", "run_at"} for r in finish_input["results"])
    outcomes = [w for r in finish_input["results"] for w in r["windows"]]
    assert all(set(w) == {"app", "window", "ok", "rows"} for w in outcomes)
    assert len(json.dumps(finish_input)) < 150 * len(outcomes) + 60 * len(finish_input["results"])
    # (the hours from 2026-11-15T01:00 were collected younger than a day: fetched again by the next run)
    collected = {"until": "2026-11-16T00:00:00Z", "rechecked": "2026-11-15T01:00:00Z"}
    assert _watermark(collection.bucket, "danse_tech") == _watermark(collection.bucket, "digital_horizon") == collected
    assert _stored_ids(collection.bucket, "danse_tech") == in_range(danse, SINCE, UNTIL)
    assert _stored_ids(collection.bucket, "digital_horizon") == in_range(horizon, SINCE, UNTIL)
    assert collection.notices() == []


def test_a_window_failing_after_its_retries_fails_the_run_and_notifies(collection, amplify: FakeAmplify) -> None:
    danse, _ = serve_apps(amplify, count=300)
    second_window = int(UNTIL.timestamp() * 1000) - 14 * 86_400_000
    danse.denied_from_ms.add(second_window)  # danse_tech's second window: refused every time
    described = collection.run()
    assert described["status"] == "FAILED", described
    downloads = [p for n, p in collection.proxy.invocations if n == "amplify_download"]
    failing = [p for p in downloads if p["app"] == "danse_tech" and p["window"]["start"] == "2026-11-02T00:00:00Z"]
    assert len(failing) == 3  # the first try and two retries
    # the other windows were stored and the watermarks moved as far as they could
    assert _watermark(collection.bucket, "digital_horizon")["until"] == "2026-11-16T00:00:00Z"
    assert _watermark(collection.bucket, "danse_tech") == {
        "until": "2026-11-02T00:00:00Z",
        "rechecked": "2026-11-02T00:00:00Z",  # (collected over a day old)
    }
    (notice,) = collection.notices()
    assert notice["Subject"] == "loglake: the Amplify collection failed"
    by_app = {a["app"]: a for a in json.loads(notice["Message"])}  # the finishing step's report per app
    assert by_app["danse_tech"]["windows_failed"] == 1 and by_app["digital_horizon"]["windows_failed"] == 0
    assert by_app["danse_tech"]["errors"] == [
        "2026-11-02T00:00:00Z .. 2026-11-16T00:00:00Z: AccessDeniedException: Not authorized for this range"
    ]
