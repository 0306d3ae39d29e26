"""The API Lambda handler, invoked with real API Gateway (REST proxy) events, on DynamoDB (moto)."""

from __future__ import annotations

import base64
import gzip
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import boto3
import pytest

from loglake.aws import handlers
from loglake.store.dynamodb import DynamoDBHotStore
from tests.aws.test_athena import queue_result
from tests.moto_server import lambda_environment
from tests.store.test_dynamodb import dynamodb_client

CONTEXT = SimpleNamespace(function_name="loglake-api-test", aws_request_id="c0ffee00-0000-4000-8000-000000000001")


def rest_event(method: str, path: str, *, body: bytes | str | None = None, query: dict | None = None,
               headers: dict | None = None, binary: bool = False, resource: str | None = None) -> dict:  # fmt: skip
    """An API Gateway REST API proxy event as Lambda receives it (IAM-authorized)."""
    headers = {"Host": "abc123.execute-api.eu-west-1.amazonaws.com", "User-Agent": "pytest", **(headers or {})}
    if isinstance(body, bytes):
        body = base64.b64encode(body).decode() if binary else body.decode()
    return {
        "resource": resource or path,
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": query,
        "multiValueQueryStringParameters": {k: [v] for k, v in query.items()} if query else None,
        "pathParameters": {"logId": path.rsplit("/", 1)[1]} if resource == "/logs/{logId}" else None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": resource or path,
            "httpMethod": method,
            "path": f"/prod{path}",
            "stage": "prod",
            "requestId": str(uuid.uuid4()),
            "identity": {"sourceIp": "203.0.113.9", "userArn": "arn:aws:iam::123456789012:user/ci", "caller": "AIDA"},
        },
        "body": body,
        "isBase64Encoded": binary,
    }


@pytest.fixture
def api_table(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[str]:
    table = f"loglake-api-{uuid.uuid4().hex[:10]}"
    lambda_environment(
        monkeypatch,
        "eu-west-1",
        AWS_ENDPOINT_URL_DYNAMODB=moto_endpoint,
        LOGLAKE_DYNAMODB_TABLE=table,
        LOGLAKE_DATA_DIR=str(tmp_path / "lambda-tmp"),
    )
    DynamoDBHotStore.create_table(dynamodb_client(moto_endpoint, "eu-west-1"), table)
    yield table
    handlers.reset()


def invoke(event: dict, capsys: pytest.CaptureFixture) -> tuple[dict, dict, dict]:
    """The proxy response, its JSON body and the invocation's log line."""
    response = handlers.api(event, CONTEXT)
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    return response, json.loads(response["body"] or "{}"), line


def test_ingest_then_read_recent_and_by_id(api_table: str, capsys: pytest.CaptureFixture) -> None:
    records = [{"message": f"m{i}", "service": "checkout", "severity": "error" if i == 2 else "info"} for i in range(3)]
    response, body, line = invoke(
        rest_event("POST", "/logs", body=json.dumps(records), headers={"Content-Type": "application/json"}), capsys
    )
    assert response["statusCode"] == 201 and body["count"] == 3
    assert (line["RecordsIngested"], line["RecordsRejected"], line["status"]) == (3, 0, 201)
    assert (
        line["request_id"] == CONTEXT.aws_request_id and line["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "loglake"
    )

    response, recent, _ = invoke(rest_event("GET", "/logs/recent", query={"service": "checkout", "limit": "2"}), capsys)
    assert response["statusCode"] == 200
    assert [r["message"] for r in recent["logs"]] == ["m2", "m1"] and recent["next_cursor"]
    errors = invoke(rest_event("GET", "/logs/recent", query={"severity": "error"}), capsys)[1]
    assert [r["message"] for r in errors["logs"]] == ["m2"]

    log_id = body["logIds"][0]
    response, one, _ = invoke(rest_event("GET", f"/logs/{log_id}", resource="/logs/{logId}"), capsys)
    assert response["statusCode"] == 200 and one["message"] == "m0" and one["logId"] == log_id


def test_gzip_bodies_arrive_base64_encoded(api_table: str, capsys: pytest.CaptureFixture) -> None:
    ndjson = b"\n".join(json.dumps({"message": f"z{i}"}).encode() for i in range(5))
    event = rest_event(
        "POST", "/logs", body=gzip.compress(ndjson), binary=True,
        headers={"Content-Type": "application/x-ndjson", "Content-Encoding": "gzip"},
    )  # fmt: skip
    response, body, line = invoke(event, capsys)
    assert response["statusCode"] == 201 and body["count"] == 5 and line["RecordsIngested"] == 5


def test_errors_are_the_local_servers(api_table: str, capsys: pytest.CaptureFixture) -> None:
    bad = [{"message": "fine"}, {"message": ""}, {"severity": "loud", "message": "x"}]
    response, body, line = invoke(
        rest_event("POST", "/logs", body=json.dumps(bad), headers={"Content-Type": "application/json"}), capsys
    )
    assert response["statusCode"] == 400 and body["error"]["code"] == "invalid_records"
    assert {d["index"] for d in body["error"]["details"]} == {1, 2}
    assert (line["RecordsIngested"], line["RecordsRejected"]) == (0, 2)
    not_json = invoke(rest_event("POST", "/logs", body="{oops", headers={"Content-Type": "application/json"}), capsys)
    assert not_json[0]["statusCode"] == 400 and not_json[1]["error"]["code"] == "invalid_json"
    unknown = invoke(rest_event("GET", f"/logs/{uuid.uuid4()}", resource="/logs/{logId}"), capsys)
    assert unknown[0]["statusCode"] == 404
    # a request's own mistake (a query parameter: its detail's index is null) is a 400 too, no record rejected
    for query in ({"foo": "bar"}, {"wait": "x"}):
        event = rest_event("POST", "/logs", body='{"message": "x"}', headers={"Content-Type": "application/json"},
                           query=query)  # fmt: skip
        response, body, line = invoke(event, capsys)
        assert response["statusCode"] == 400 and body["error"]["details"][0]["index"] is None
        assert (line["status"], line["RecordsRejected"]) == (400, 0)
    bad_query = invoke(rest_event("GET", "/logs/recent", query={"limit": "0"}), capsys)
    assert bad_query[0]["statusCode"] == 400 and bad_query[1]["error"]["details"][0]["field"] == "limit"
    assert response["multiValueHeaders"]["content-type"] == ["application/json"]


def test_header_values_beyond_latin_1_are_taken_as_the_local_server_takes_them(
    api_table: str, capsys: pytest.CaptureFixture
) -> None:
    """API Gateway hands the handler header values as text decoded from the client's bytes, which may be UTF-8
    of any character (a browser's or a proxy's header: a city, a name): the handler must not fail on them, as a
    local server does not (Lambda's error would be API Gateway's 502, and count towards the errors alarm)."""
    headers = {"Content-Type": "application/json", "User-Agent": "agent caf\u00e9 \u20ac", "X-Request-Id": "\u20ac1"}
    response, _, line = invoke(rest_event("POST", "/logs", body='{"message": "hi"}', headers=headers), capsys)
    assert response["statusCode"] == 201 and line["RecordsIngested"] == 1
    assert response["multiValueHeaders"]["x-request-id"] != ["\u20ac1"]  # not a request id the app takes
    referred = rest_event("GET", "/logs/recent", headers={"Referer": "https://\u4f8b.example/"})
    response, recent, _ = invoke(referred, capsys)
    assert response["statusCode"] == 200 and [r["message"] for r in recent["logs"]] == ["hi"]


def test_parameters_and_paths_of_bytes_not_utf_8_are_taken_as_the_local_server_takes_them(
    api_table: str, capsys: pytest.CaptureFixture
) -> None:
    """Percent-encoded bytes that are not UTF-8 (%ED%A0%80) reach the handler as text holding a lone surrogate,
    which UTF-8 refused: Lambda's error, API Gateway's bare 502. The app reads them as a local server does."""
    refused = invoke(rest_event("GET", "/logs/recent", query={"service": "\ud800"}), capsys)
    assert refused[0]["statusCode"] == 400 and refused[1]["error"]["details"][0]["field"] == "service"
    unknown = invoke(rest_event("GET", "/logs/recent", query={"\udcff": "x"}), capsys)
    assert unknown[0]["statusCode"] == 400 and unknown[1]["error"]["code"] == "invalid_query"
    searched = invoke(rest_event("GET", "/logs/recent", query={"q": "a\ud800"}), capsys)
    assert searched[0]["statusCode"] == 200 and searched[1]["logs"] == []
    no_id = invoke(rest_event("GET", "/logs/a\ud800", resource="/logs/{logId}"), capsys)
    assert no_id[0]["statusCode"] == 404 and no_id[2]["status"] == 404


def test_following_by_arrival_is_not_available_on_a_store_many_functions_write(
    api_table: str, capsys: pytest.CaptureFixture
) -> None:
    """Each Lambda container sees only the records it took: it cannot say what arrived, so it says so."""
    response, body, _ = invoke(rest_event("GET", "/logs/recent", query={"follow": "true"}), capsys)
    assert response["statusCode"] == 501 and body["error"]["code"] == "not_available"
    assert "since" in body["error"]["message"]


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/alerts"), ("GET", "/alerts/0193a0b0-0000-7000-8000-000000000000"),
     ("POST", "/alerts/0193a0b0-0000-7000-8000-000000000000/resolve")],
)  # fmt: skip
def test_alerts_are_not_available_where_the_store_is_not_local(
    api_table: str, capsys: pytest.CaptureFixture, method: str, path: str
) -> None:
    """The AWS deployment keeps no alerts.db: the alert routes say so rather than make one in /tmp."""
    response, body, _ = invoke(rest_event(method, path), capsys)
    assert response["statusCode"] == 501 and body["error"]["code"] == "not_available"


def test_a_missing_table_is_a_503_with_retry_after_not_a_500(
    moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    lambda_environment(
        monkeypatch,
        "eu-west-1",
        AWS_ENDPOINT_URL_DYNAMODB=moto_endpoint,
        LOGLAKE_DYNAMODB_TABLE="no-such-table",
        LOGLAKE_DATA_DIR=str(tmp_path / "lambda-tmp"),
    )
    try:
        for event in [
            rest_event("GET", "/logs/recent"),
            rest_event("POST", "/logs", body='{"message": "x"}', headers={"Content-Type": "application/json"}),
        ]:
            response, body, line = invoke(event, capsys)
            assert response["statusCode"] == 503 and body["error"]["code"] == "storage_unavailable"
            assert response["multiValueHeaders"]["retry-after"] == ["5"] and line["level"] == "ERROR"
    finally:
        handlers.reset()


def test_each_request_is_in_the_access_log_at_once(api_table: str, capsys: pytest.CaptureFixture) -> None:
    handlers.api(rest_event("GET", "/logs/recent"), CONTEXT)
    access = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    assert [(a["method"], a["route"], a["status"]) for a in access] == [("GET", "/logs/recent", 200)]


def test_the_search_function_answers_search_and_old_ids_from_athena(
    api_table: str, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """With the Athena settings (the stack's search function), search and ids the table no longer holds
    go to Athena; moto answers with a queued row, in the columns aws/athena_search.py selects."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_ATHENA", moto_endpoint)
    monkeypatch.setenv("LOGLAKE_ATHENA_DATABASE", "loglake")
    monkeypatch.setenv("LOGLAKE_ATHENA_WORKGROUP", "primary")
    old_id, old_ms = "01a19989-b020-7449-9fde-d7bf8f54a73a", 1_793_577_300_000
    names = ("log_id", "ts", "service", "log_type", "severity", "message", "attributes", "client_id")
    columns = [(name, "bigint" if name == "ts" else "varchar") for name in names]
    row = [old_id, str(old_ms), "api", "application", "error", "timeout talking to db", '{"user": "U1"}', None]
    for _ in range(2):
        queue_result(moto_endpoint, columns, [row])

    response, found, line = invoke(rest_event("GET", "/logs/search", query={"q": "timeout", "since": "30d"}), capsys)
    assert response["statusCode"] == 200, found
    assert [(r["logId"], r["message"], r["attributes"]) for r in found["logs"]] == [
        (old_id, "timeout talking to db", {"user": "U1"})
    ]
    assert line["path"] == "/logs/search" and line["status"] == 200
    response, one, _ = invoke(rest_event("GET", f"/logs/{old_id}", resource="/logs/{logId}"), capsys)
    assert response["statusCode"] == 200 and one["timestamp"] == old_ms

    athena = boto3.client("athena", endpoint_url=moto_endpoint)
    sent = [
        athena.get_query_execution(QueryExecutionId=i)["QueryExecution"]["Query"]
        for i in athena.list_query_executions()["QueryExecutionIds"]
    ]
    assert any("regexp_like(message, '(?i)timeout')" in sql for sql in sent)
    assert any(f"log_id = '{old_id}'" in sql and "\"date\" = '2026-11-01'" in sql for sql in sent)


def test_the_time_shards_come_from_the_environment(
    api_table: str, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """The stack's dynamodb.timeShards reaches the functions as LOGLAKE_TIME_SHARDS: writes spread over
    that many by_time partitions per hour, and reads merge them all."""
    monkeypatch.setenv("LOGLAKE_TIME_SHARDS", "2")
    records = [{"message": f"s{i}", "service": f"svc{i % 5}"} for i in range(30)]
    sent = invoke(rest_event("POST", "/logs", body=json.dumps(records), headers={"Content-Type": "application/json"}),
                  capsys)[1]  # fmt: skip
    items = dynamodb_client(moto_endpoint, "eu-west-1").scan(TableName=api_table)["Items"]
    buckets = {i["time_bucket"]["S"].rsplit("#", 1)[1] for i in items if "time_bucket" in i}
    assert buckets == {"0", "1"}
    recent = invoke(rest_event("GET", "/logs/recent", query={"limit": "50"}), capsys)[1]["logs"]
    assert sorted(r["logId"] for r in recent) == sorted(sent["logIds"])


def test_an_answer_larger_than_lambda_can_return_is_a_clear_400(api_table: str, capsys: pytest.CaptureFixture) -> None:
    """Lambda returns at most 6 MB; a page of large records past that would be API Gateway's 502."""
    big = "x" * 200_000
    records = [{"message": f"{i} {big}", "service": "bulky"} for i in range(40)]  # 8 MB of messages
    for start in (0, 20):  # two requests: a request body is limited too (Lambda's 6 MB event)
        body = json.dumps(records[start : start + 20])
        assert invoke(rest_event("POST", "/logs", body=body, headers={"Content-Type": "application/json"}),
                      capsys)[0]["statusCode"] == 201  # fmt: skip
    response, body, _ = invoke(rest_event("GET", "/logs/recent", query={"service": "bulky", "limit": "40"}), capsys)
    assert response["statusCode"] == 400 and body["error"]["code"] == "response_too_large"
    assert "limit" in body["error"]["message"]
    page, body, _ = invoke(rest_event("GET", "/logs/recent", query={"service": "bulky", "limit": "20"}), capsys)
    assert page["statusCode"] == 200 and len(body["logs"]) == 20 and body["next_cursor"]


def test_browsers_on_allowed_origins_get_cors_answers(
    api_table: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("LOGLAKE_CORS_ALLOW_ORIGINS", "https://ui.example.com")
    origin = {"Origin": "https://ui.example.com"}
    preflight = rest_event("OPTIONS", "/logs", headers=origin | {"Access-Control-Request-Method": "POST"})
    response = handlers.api(preflight, CONTEXT)
    assert response["statusCode"] == 204
    assert response["multiValueHeaders"]["access-control-allow-origin"] == ["https://ui.example.com"]
    sent = rest_event("POST", "/logs", body='{"message": "hi"}', headers=origin | {"Content-Type": "application/json"})
    assert invoke(sent, capsys)[0]["multiValueHeaders"]["access-control-allow-origin"] == ["https://ui.example.com"]
    # POST /query is answered by its own function, with the same headers
    monkeypatch.setenv("LOGLAKE_ATHENA_DATABASE", "loglake")
    monkeypatch.setenv("LOGLAKE_ATHENA_WORKGROUP", "primary")
    refused = handlers.query(rest_event("POST", "/query", body="{oops", headers=origin), CONTEXT)
    assert (
        refused["statusCode"] == 400 and refused["headers"]["access-control-allow-origin"] == "https://ui.example.com"
    )


def test_any_origin_s_preflight_and_refusal_carry_cors_headers_whatever_its_characters(
    api_table: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """With corsAllowOrigins ["*"] every origin is answered, one whose header is not latin-1 too (the query
    function's own CORS headers failed to encode it: Lambda's error, API Gateway's 502)."""
    monkeypatch.setenv("LOGLAKE_CORS_ALLOW_ORIGINS", "*")
    monkeypatch.setenv("LOGLAKE_ATHENA_DATABASE", "loglake")
    monkeypatch.setenv("LOGLAKE_ATHENA_WORKGROUP", "primary")
    origin = {"Origin": "https://\u4f8b\u3048.example"}
    refused = handlers.query(rest_event("POST", "/query", body="{oops", headers=origin), CONTEXT)
    assert refused["statusCode"] == 400 and refused["headers"]["access-control-allow-origin"]
    answered = invoke(rest_event("GET", "/logs/recent", headers=origin), capsys)[0]
    assert answered["statusCode"] == 200 and answered["multiValueHeaders"]["access-control-allow-origin"]
