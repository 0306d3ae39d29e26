"""POST /ask on AWS (aws/ask.py): a real moto server for DynamoDB and S3, Athena's SQL run by its
stand-in over the lake's real Parquet files (tests/aws/athena_duckdb.py), and Bedrock's Converse API
answered by the local model server through the real boto3 client (AWS_ENDPOINT_URL_BEDROCK_RUNTIME).

The lake is built locally by the real lake code and copied object for object into the moto bucket:
the estimate lists the bucket, Athena's stand-in reads the same files."""

from __future__ import annotations

import base64
import codecs
import gzip
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import boto3
import duckdb
import pytest

from loglake.aws import handlers
from loglake.aws.ask import RULES_ARE_LOCAL, AskApi, ask_api_from_environment
from loglake.aws.ask_source import athena_price
from loglake.aws.ask_store import DynamoDBAskStore
from tests.ask.lakes import DAYS, build_lake
from tests.ask.model_server import ModelServer, sql_reply
from tests.aws.athena_duckdb import DuckDBAthena
from tests.aws.test_athena_rules import athena_engine
from tests.lake.test_flush import DAY, START
from tests.moto_server import lambda_environment

REGION = "eu-west-1"
NOW = (START + DAYS * DAY + 3_600_000) / 1000  # 2026-11-04 01:00 UTC, an hour after the lake's last day
MODEL = "anthropic.claude-test-v1:0"
ALICE = "arn:aws:iam::182059100462:user/alice"
ERRORS_ON_TWO_DAYS = (
    "SELECT count(*) AS errors FROM logs WHERE severity = 'error' AND \"date\" BETWEEN '2026-11-02' AND '2026-11-03'"
)


@pytest.fixture(scope="module")
def lake_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("lake")
    store, lake = build_lake(data, per_day=2000)
    lake.close()
    store.close()
    return data / "lake"


@pytest.fixture
def aws(
    moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, lake_dir: Path, model_server: ModelServer
) -> Iterator[dict[str, Any]]:
    """The ask function's world: its table and the lake bucket in moto, Bedrock at the model server,
    the environment as the stack sets it."""
    lambda_environment(
        monkeypatch, REGION, AWS_ENDPOINT_URL=moto_endpoint, AWS_ENDPOINT_URL_BEDROCK_RUNTIME=model_server.url
    )
    name = f"ask-{uuid.uuid4().hex[:8]}"
    DynamoDBAskStore.create_table(boto3.client("dynamodb"), name)
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
    for path in lake_dir.rglob("*"):
        if path.is_file():
            s3.upload_file(str(path), name, path.relative_to(lake_dir).as_posix())
    env = {
        "LOGLAKE_ASK_TABLE": name,
        "LOGLAKE_LAKE_BUCKET": name,
        "LOGLAKE_LLM_MODEL": MODEL,
        "LOGLAKE_LLM_TIMEOUT_SECONDS": "5",
        "LOGLAKE_ATHENA_DATABASE": "loglake",
        "LOGLAKE_ATHENA_WORKGROUP": "primary",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    yield {"table": name}
    handlers.reset()


def ask_function(aws: dict[str, Any], lake_dir: Path) -> tuple[AskApi, DuckDBAthena]:
    """What the Lambda function builds from its environment, with Athena's stand-in and a fixed clock."""
    engine, athena = athena_engine(lake_dir)
    return ask_api_from_environment(dict(os.environ), engine, clock=lambda: NOW), athena


def post(api: AskApi, path: str, body: Any = None, caller: str = ALICE) -> tuple[int, dict[str, Any], dict]:
    event = {
        "httpMethod": "POST",
        "path": path,
        "headers": {"content-type": "application/json"},
        "body": None if body is None else json.dumps(body),
        "requestContext": {"requestId": "r-1", "identity": {"userArn": caller}},
    }
    response = api.handle(event, None)
    return response["statusCode"], json.loads(response["body"]), response["headers"]


def objects_of(lake_dir: Path, *days: str) -> list[Path]:
    return sorted(p for day in days for p in (lake_dir / "type=app_logs" / f"date={day}").glob("*"))


def test_a_question_is_athena_sql_with_its_estimate_from_the_partitions_and_its_price(
    aws: dict[str, Any], lake_dir: Path, model_server: ModelServer
) -> None:
    api, athena = ask_function(aws, lake_dir)
    model_server.say(sql_reply(ERRORS_ON_TWO_DAYS, "Counts errors on two days."))
    status, answer, _ = post(api, "/ask", {"question": "how many errors on the 2nd and 3rd?"})
    assert status == 200, answer
    assert answer["sql"].endswith("LIMIT 10000") and "BETWEEN '2026-11-02' AND '2026-11-03'" in answer["sql"]
    kept = objects_of(lake_dir, "2026-11-02", "2026-11-03")
    estimate = answer["estimate"]
    assert estimate["files"] == len(kept) and estimate["bytes"] == sum(p.stat().st_size for p in kept)
    assert estimate["total_files"] is None  # the whole lake is not listed for scale on AWS
    assert answer["time_range"] == {
        "since": "2026-11-02T00:00:00.000Z",
        "until": "2026-11-04T00:00:00.000Z",
        "relative_to_now": False,
    }
    assert estimate["price"]["billed_bytes"] == 10_000_000 and estimate["price"]["usd"] == 0.00005  # the minimum
    assert "aws.amazon.com/athena/pricing" in estimate["price"]["basis"] and answer["warnings"] == []
    assert athena.sql_sent == []  # nothing ran
    (call,) = model_server.seen
    assert unquote(call.path) == f"/model/{MODEL}/converse"  # Bedrock's Converse API, through boto3
    assert "Athena (Trino) SQL" in call.system and "'YYYY-MM-DD'" in call.system
    # real values, from the footers of the newest day's files in the bucket (the lake's six services)
    assert "- service string: emitting service; values include 'api', 'auth', 'billing'" in call.system
    assert "Current time: 2026-11-04 01:00:00 UTC" in call.system
    _, again, _ = post(api, "/ask", {"question": " How many errors on the 2nd and  3rd?"})
    assert again["cached"] and again["sql"] == answer["sql"] and again["estimate"] == estimate
    assert len(model_server.seen) == 1  # cached in the table: the model was not asked again


def test_a_cached_answer_bound_by_time_is_not_served_once_now_has_moved_on(
    aws: dict[str, Any], lake_dir: Path, model_server: ModelServer
) -> None:
    engine, _ = athena_engine(lake_dir)
    now = [NOW]
    api = ask_api_from_environment(dict(os.environ), engine, clock=lambda: now[0])
    model_server.say(sql_reply(ERRORS_ON_TWO_DAYS), sql_reply(ERRORS_ON_TWO_DAYS))
    _, first, _ = post(api, "/ask", {"question": "errors on the 2nd and 3rd"})
    now[0] += 90
    _, later, _ = post(api, "/ask", {"question": "errors on the 2nd and 3rd"})
    assert not first["cached"] and not later["cached"] and len(model_server.seen) == 2
    assert later["generated_at"] == "2026-11-04T01:01:30Z"


def test_run_true_runs_it_through_athena(aws: dict[str, Any], lake_dir: Path, model_server: ModelServer) -> None:
    api, athena = ask_function(aws, lake_dir)
    model_server.say(sql_reply(ERRORS_ON_TWO_DAYS))
    status, answer, _ = post(api, "/ask", {"question": "how many errors?", "run": True})
    files = [str(p) for p in objects_of(lake_dir, "2026-11-02", "2026-11-03")]
    (expected,) = (
        duckdb.connect().execute(f"SELECT count(*) FROM read_parquet({files}) WHERE severity = 'error'").fetchone()
    )
    assert status == 200 and answer["result"]["rows"] == [[expected]] and expected > 0
    assert athena.sql_sent == [answer["sql"]]


def test_a_question_s_time_range_becomes_date_partitions_and_shrinks_the_estimate(
    aws: dict[str, Any], lake_dir: Path, model_server: ModelServer
) -> None:
    api, _ = ask_function(aws, lake_dir)
    model_server.say(
        sql_reply("SELECT count(*) FROM logs WHERE severity = 'error'"),
        sql_reply("SELECT count(*) FROM logs WHERE \"timestamp\" >= TIMESTAMP '2026-11-03 00:00:00'"),
        sql_reply("SELECT count(*) FROM logs WHERE severity = 'error'"),
    )
    _, yesterday, _ = post(api, "/ask", {"question": "errors yesterday"})
    _, by_time, _ = post(api, "/ask", {"question": "records since the 3rd"})
    _, everything, _ = post(api, "/ask", {"question": "errors ever"})
    assert "\"date\" BETWEEN '2026-11-03' AND '2026-11-03'" in yesterday["sql"]
    day = objects_of(lake_dir, "2026-11-03")
    assert yesterday["estimate"]["files"] == len(day) and yesterday["estimate"]["bytes"] == sum(
        p.stat().st_size for p in day
    )
    every = objects_of(lake_dir, "2026-11-01", "2026-11-02", "2026-11-03")
    assert everything["estimate"]["files"] == len(every) and everything["estimate"]["files"] > len(day)
    assert everything["warnings"][0].startswith("no time filter")
    # A timestamp filter alone spares Athena no object: every day is read, and it says how to fix that.
    assert by_time["estimate"]["files"] == len(every)
    assert by_time["warnings"][0].startswith("the query filters on timestamp but not on date")
    assert yesterday["estimate"]["time_filtered"] and by_time["estimate"]["time_filtered"]
    assert not everything["estimate"]["time_filtered"]
    # The range the SQL names, apart from the days of the objects Athena would read (and no hot store there).
    assert by_time["time_range"] == {"since": "2026-11-03T00:00:00.000Z", "until": None, "relative_to_now": False}
    assert (
        by_time["estimate"]["data_since"] == "2026-11-01T00:00:00.000Z" and by_time["estimate"]["hot_records"] is None
    )


def test_every_read_of_a_table_must_filter_on_time_to_be_time_filtered(
    aws: dict[str, Any], lake_dir: Path, model_server: ModelServer
) -> None:
    api, _ = ask_function(aws, lake_dir)
    model_server.say("It compares two days.", "It compares records of one day.")
    joined = "SELECT count(*) FROM logs a JOIN logs b ON a.log_id = b.log_id WHERE a.\"date\" = '2026-11-02'"
    _, half, _ = post(api, "/ask/explain", {"sql": joined})
    assert not half["estimate"]["time_filtered"] and half["warnings"][0].startswith("no time filter")
    _, both, _ = post(api, "/ask/explain", {"sql": joined + " AND b.\"date\" = '2026-11-02'"})
    assert both["estimate"]["time_filtered"] and both["warnings"] == []


def test_days_kept_in_the_middle_and_apart_are_exactly_those_read(
    aws: dict[str, Any], lake_dir: Path, model_server: ModelServer
) -> None:
    api, _ = ask_function(aws, lake_dir)
    model_server.say(
        sql_reply("SELECT count(*) FROM logs WHERE \"date\" = '2026-11-02'"),
        sql_reply("SELECT count(*) FROM logs WHERE \"date\" IN ('2026-11-01', '2026-11-03')"),
        sql_reply("SELECT count(*) FROM logs WHERE \"date\" > '2026-11-03'"),
    )
    for question, days in (
        ("on the 2nd", ["2026-11-02"]),
        ("1st and 3rd", ["2026-11-01", "2026-11-03"]),
        ("later", []),
    ):
        _, answer, _ = post(api, "/ask", {"question": question})
        kept = objects_of(lake_dir, *days)
        assert answer["estimate"]["files"] == len(kept), question
        assert answer["estimate"]["bytes"] == sum(p.stat().st_size for p in kept), question


def test_the_amplify_table_needs_its_app_and_the_model_is_told(
    aws: dict[str, Any], lake_dir: Path, model_server: ModelServer
) -> None:
    api, _ = ask_function(aws, lake_dir)
    model_server.say(
        sql_reply("SELECT count(*) FROM amplify_access WHERE sc_status >= 500"),
        sql_reply("SELECT count(*) FROM amplify_access WHERE app = 'shop' AND sc_status >= 500"),
    )
    status, answer, _ = post(api, "/ask", {"question": "5xx of the shop"})
    assert status == 200 and answer["attempts"] == 2 and answer["estimate"]["files"] == 0
    assert "amplify_access must be filtered on app with = or IN" in model_server.seen[1].texts[-1]


def test_conversations_are_the_caller_s_and_expire_by_ttl(
    aws: dict[str, Any], lake_dir: Path, model_server: ModelServer
) -> None:
    api, _ = ask_function(aws, lake_dir)
    model_server.say(sql_reply(ERRORS_ON_TWO_DAYS), sql_reply(ERRORS_ON_TWO_DAYS + " AND service = 'db'"))
    _, first, _ = post(api, "/ask", {"question": "errors"})
    status, follow, _ = post(api, "/ask", {"question": "only db", "conversation_id": first["conversation_id"]})
    assert status == 200 and follow["conversation_id"] == first["conversation_id"]
    assert model_server.seen[1].texts[0] == "errors"
    stolen, error, _ = post(api, "/ask", {"question": "mine", "conversation_id": first["conversation_id"]}, "bob")
    assert stolen == 404 and "a POST /ask without conversation_id starts one" in error["error"]["message"]
    item = boto3.client("dynamodb").get_item(
        TableName=aws["table"],
        Key={"pk": {"S": f"conversation#{first['conversation_id']}"}, "sk": {"S": "conversation"}},
    )["Item"]
    assert int(item["expires_at"]["N"]) == int(NOW) + 168 * 3600 and len(item["turns"]["L"]) == 2


def test_a_rule_is_drafted_but_written_only_where_the_rules_folder_is(
    aws: dict[str, Any], lake_dir: Path, model_server: ModelServer
) -> None:
    api, _ = ask_function(aws, lake_dir)
    model_server.say(sql_reply("SELECT service, count(*) AS errors FROM logs WHERE severity = 'error' GROUP BY 1"))
    _, answer, _ = post(api, "/ask", {"question": "errors by service"})
    status, draft, _ = post(api, f"/ask/{answer['conversation_id']}/rule")
    assert status == 200 and draft["valid"] is None and draft["written"] is None and draft["note"] == RULES_ARE_LOCAL
    assert "group_by:\n- service" in draft["yaml"] and "LIMIT" not in draft["yaml"]
    refused, error, _ = post(api, f"/ask/{answer['conversation_id']}/rule", {"confirm": True})
    assert refused == 501 and error["error"]["message"] == RULES_ARE_LOCAL


def test_explain_says_an_athena_query_in_words_with_its_price(
    aws: dict[str, Any], lake_dir: Path, model_server: ModelServer
) -> None:
    api, _ = ask_function(aws, lake_dir)
    model_server.say("It counts the error records of two days.")
    status, body, _ = post(api, "/ask/explain", {"sql": ERRORS_ON_TWO_DAYS})
    assert status == 200 and body["explanation"] == "It counts the error records of two days."
    assert body["tables"] == ["logs"] and body["estimate"]["files"] == len(
        objects_of(lake_dir, "2026-11-02", "2026-11-03")
    )
    assert body["estimate"]["price"]["usd"] == 0.00005 and "Athena (Trino) SQL" in model_server.seen[0].system


def test_bodies_are_read_as_the_local_routes_read_them(
    aws: dict[str, Any], lake_dir: Path, model_server: ModelServer
) -> None:
    """As API Gateway sends them (base64, the APIs' binary media types being */*): gzipped, with a byte order
    mark, answered; not sent as JSON, or with query parameters, refused as locally."""
    api, _ = ask_function(aws, lake_dir)
    model_server.say("It counts the error records of two days.")
    sql = codecs.BOM_UTF8 + json.dumps({"sql": ERRORS_ON_TWO_DAYS}).encode()

    def sent(body: bytes, headers: dict[str, str], query: dict | None = None) -> tuple[int, dict[str, Any]]:
        event = {
            "httpMethod": "POST", "path": "/ask/explain", "headers": headers, "queryStringParameters": query,
            "body": base64.b64encode(body).decode(), "isBase64Encoded": True,
            "requestContext": {"requestId": "r-1", "identity": {"userArn": ALICE}},
        }  # fmt: skip
        response = api.handle(event, None)
        return response["statusCode"], json.loads(response["body"])

    status, body = sent(gzip.compress(sql), {"Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert status == 200 and body["explanation"] == "It counts the error records of two days.", body
    status, body = sent(sql, {"Content-Type": "text/plain"})
    assert (status, body["error"]["code"]) == (415, "unsupported_media_type")
    status, body = sent(sql, {"Content-Type": "application/json"}, {"verbose": "1"})
    assert (status, body["error"]["code"]) == (400, "invalid_query")
    assert len(model_server.seen) == 1


def test_bad_requests_budget_and_unknown_paths(
    aws: dict[str, Any], lake_dir: Path, monkeypatch: pytest.MonkeyPatch, model_server: ModelServer
) -> None:
    api, _ = ask_function(aws, lake_dir)
    assert post(api, "/ask", {"question": ""})[0] == 400
    assert post(api, "/ask", {"question": "x", "colour": "red"})[1]["error"]["message"].startswith(
        "the body has an unknown field `colour`"
    )
    assert post(api, "/ask/explain", {"sql": "DROP TABLE logs"})[0] == 400
    assert post(api, "/asks", {"question": "x"})[0] == 404
    monkeypatch.setenv("LOGLAKE_LLM_DAILY_TOKENS", "10")
    small, _ = ask_function(aws, lake_dir)
    status, error, headers = post(small, "/ask", {"question": "x"})
    assert status == 429 and "raise llm_daily_tokens" in error["error"]["message"] and headers["retry-after"]
    assert model_server.seen == []


def test_the_lambda_entry_point_answers_from_its_environment(
    aws: dict[str, Any], lake_dir: Path, model_server: ModelServer
) -> None:
    model_server.say("These tables hold no weather.")
    event = {"httpMethod": "POST", "path": "/ask", "body": json.dumps({"question": "rain?"}), "requestContext": {}}
    response = handlers.ask(event, None)
    assert response["statusCode"] == 200, response
    assert json.loads(response["body"])["explanation"] == "These tables hold no weather."


def test_an_unexpected_failure_is_a_500_quoting_the_request_id(
    aws: dict[str, Any], lake_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """Its table gone (deleted by hand, another region): the app's 500 with the request id, not Lambda's error."""
    monkeypatch.setenv("LOGLAKE_ASK_TABLE", "no-such-table")
    api, _ = ask_function(aws, lake_dir)
    status, body, _ = post(api, "/ask", {"question": "how many errors?"})
    assert (status, body["error"]["code"]) == (500, "internal_error")
    assert body["error"]["message"] == "internal error; quote request id r-1"
    assert "ResourceNotFoundException" in capsys.readouterr().err


def test_athena_s_price_rounds_up_to_whole_megabytes_with_a_ten_megabyte_minimum() -> None:
    assert athena_price(0)["billed_bytes"] == 10_000_000
    assert athena_price(10_000_001)["billed_bytes"] == 11_000_000
    tera = athena_price(10**12 + 1)
    assert tera["billed_bytes"] == 10**12 + 10**6 and tera["usd"] == pytest.approx(5.000005)
