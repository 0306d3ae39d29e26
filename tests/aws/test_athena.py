"""The Athena query engine against moto's Athena API: start, poll, fetch pages, cap, cancel."""

from __future__ import annotations

import gzip
import http.server
import json
import threading

import boto3
import httpx
import pytest

from loglake.aws.athena import AthenaQueryEngine
from loglake.lake.query_limits import QueryLimits
from loglake.lake.sql_guard import QueryError
from loglake.lake.stop import CLIENT_GONE, Stop, Stopped

REGION = "eu-west-1"


@pytest.fixture
def athena(moto_endpoint: str):
    return boto3.client(
        "athena", endpoint_url=moto_endpoint, region_name=REGION, aws_access_key_id="t", aws_secret_access_key="t"
    )


def queue_result(endpoint: str, columns: list[tuple[str, str]], rows: list[list[str | None]]) -> None:
    """What moto's Athena answers the next query with (its test API); a SELECT's header row first."""
    header = {"Data": [{"VarCharValue": name} for name, _ in columns]}
    data = [{"Data": [{} if v is None else {"VarCharValue": v} for v in row]} for row in rows]
    body = {
        "region": REGION,
        "results": [{"rows": [header, *data], "column_info": [{"Name": n, "Type": t, "Label": n} for n, t in columns]}],
    }
    httpx.post(f"{endpoint}/moto-api/static/athena/query-results", json=body).raise_for_status()


def engine(client, **options) -> AthenaQueryEngine:
    return AthenaQueryEngine(
        client, "loglake", "primary", options.pop("limits", QueryLimits()), sleep=lambda s: None, **options
    )


def test_rows_come_back_typed_without_the_header(athena, moto_endpoint: str) -> None:
    queue_result(moto_endpoint, [("service", "varchar"), ("n", "bigint"), ("share", "double")],
                 [["api", "12", "0.5"], ["web", "3", None]])  # fmt: skip
    result = engine(athena).query("SELECT service, count(*) AS n, 0.5 AS share FROM logs GROUP BY service")
    assert result.columns == [("service", "varchar"), ("n", "bigint"), ("share", "double")]
    assert result.rows == [("api", 12, 0.5), ("web", 3, None)] and not result.truncated


def test_decimals_stay_exact_as_the_local_engine_gives_them(athena, moto_endpoint: str) -> None:
    """Trino types a literal such as 0.1 DECIMAL: its text was made a float, losing digits past 15, and POST /query
    answered 0.3 where the local server answers "0.3" (json_value: decimals as exact text)."""
    from decimal import Decimal

    from loglake.lake.query_answers import result_to_dict

    queue_result(moto_endpoint, [("a", "decimal(3,1)"), ("b", "decimal(20,2)")], [["0.3", "12345678901234567.89"]])
    result = engine(athena).query("SELECT 0.1 + 0.2 AS a, CAST('12345678901234567.89' AS DECIMAL(20, 2)) AS b")
    assert result.rows == [(Decimal("0.3"), Decimal("12345678901234567.89"))]
    assert result_to_dict(result)["rows"] == [["0.3", "12345678901234567.89"]]


def test_times_are_answered_as_the_local_server_answers_them(athena, moto_endpoint: str) -> None:
    """Athena gives a time as text, `2026-11-01 10:00:00.123`: POST /query answered that text, where the local
    server answers ISO-8601 UTC (2026-11-01T10:00:00.123Z), and a rule's times were typed apart."""
    from loglake.lake.query_answers import result_to_dict

    columns = [("last_seen", "timestamp(3)"), ("at", "timestamp(3) with time zone"), ("day", "date")]
    queue_result(
        moto_endpoint, columns, [["2026-11-01 10:00:00.123", "2026-11-01 11:00:00.500 Europe/Paris", "2026-11-01"]]
    )
    result = engine(athena).query('SELECT max("timestamp") AS last_seen, now() AS at, current_date AS day FROM logs')
    assert result_to_dict(result)["rows"] == [["2026-11-01T10:00:00.123Z", "2026-11-01T10:00:00.500Z", "2026-11-01"]]


def test_times_a_datetime_cannot_hold_are_answered_as_the_local_server_answers_them(athena, moto_endpoint: str) -> None:
    """A timestamp(9)'s nanoseconds were dropped, a year past 9999 answered as Athena's text, and a zone given as
    an offset too."""
    from loglake.lake.query_answers import result_to_dict

    columns = [("ns", "timestamp(9)"), ("later", "timestamp(3)"), ("offset", "timestamp(3) with time zone")]
    rows = [["2026-11-01 10:00:00.123456789", "10000-01-01 00:00:00.000", "2026-11-01 12:00:00.500 +02:00"]]
    queue_result(moto_endpoint, columns, rows)
    result = engine(athena).query("SELECT 1 FROM logs")
    assert result_to_dict(result)["rows"] == [
        ["2026-11-01T10:00:00.123456789Z", "+010000-01-01T00:00:00.000Z", "2026-11-01T10:00:00.500Z"]
    ]


def test_times_in_a_named_zone_are_answered_as_the_local_server_answers_them(athena, moto_endpoint: str) -> None:
    """One whose UTC is past 9999 (or before year 1) failed POST /query (OverflowError, a 500), and a timestamp(9)'s
    in a named zone was answered as Athena's text of it; locally both are ISO-8601 in UTC."""
    from loglake.lake.query_answers import result_to_dict

    columns = [("last", "timestamp(3) with time zone"), ("ns", "timestamp(9) with time zone")]
    rows = [["9999-12-31 23:59:00.000 America/New_York", "2026-07-01 12:00:00.123456789 Europe/Paris"]]
    queue_result(moto_endpoint, columns, rows)
    result = engine(athena).query("SELECT 1 FROM logs")
    assert result_to_dict(result)["rows"] == [["+010000-01-01T04:59:00.000Z", "2026-07-01T10:00:00.123456789Z"]]


def test_bytes_are_answered_in_base64_as_the_local_server_answers_them(athena, moto_endpoint: str) -> None:
    """Athena gives a varbinary as its hex, `68 69`: POST /query answered that text, where the local server answers
    base64."""
    from loglake.lake.query_answers import result_to_dict

    queue_result(moto_endpoint, [("b", "varbinary")], [["68 69 00 ff"], [""]])
    result = engine(athena).query("SELECT to_utf8(service) AS b FROM logs")
    assert result.rows == [(b"hi\x00\xff",), (b"",)]
    assert result_to_dict(result)["rows"] == [["aGkA/w=="], [""]]


def test_the_row_cap_truncates(athena, moto_endpoint: str) -> None:
    queue_result(moto_endpoint, [("i", "integer")], [[str(i)] for i in range(30)])
    result = engine(athena, limits=QueryLimits(max_rows=10)).query("SELECT i FROM logs")
    assert len(result.rows) == 10 and result.truncated and result.rows[0] == (0,)


def test_only_one_select_is_sent(athena) -> None:
    for sql in ["DROP TABLE logs", "SELECT 1; DROP TABLE logs", "CREATE TABLE x AS SELECT * FROM logs"]:
        with pytest.raises(QueryError):
            engine(athena).query(sql)


def test_a_query_past_its_timeout_is_cancelled(athena) -> None:
    ticks = iter([0.0, 100.0, 100.0, 100.0])
    slow = engine(athena, clock=lambda: next(ticks))
    with pytest.raises(QueryError, match="cancelled in Athena") as caught:
        slow.query("SELECT count(*) FROM logs", timeout_seconds=5)
    assert caught.value.code == "query_timeout"
    executions = athena.list_query_executions()["QueryExecutionIds"]
    states = {athena.get_query_execution(QueryExecutionId=i)["QueryExecution"]["Status"]["State"] for i in executions}
    assert "CANCELLED" in states


def test_a_query_told_to_stop_is_cancelled_in_athena(athena) -> None:
    """POST /query's client went away (or the server is stopping): the same Stop as the DuckDB engine takes."""
    before = set(athena.list_query_executions()["QueryExecutionIds"])
    stop = Stop()
    stop.stop(CLIENT_GONE)
    with pytest.raises(Stopped):
        engine(athena).query("SELECT count(*) FROM logs", stop=stop)
    (started,) = set(athena.list_query_executions()["QueryExecutionIds"]) - before
    assert athena.get_query_execution(QueryExecutionId=started)["QueryExecution"]["Status"]["State"] == "CANCELLED"


def test_the_query_handler_answers_like_post_query(athena, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from loglake.aws import handlers
    from tests.aws.test_api_handler import CONTEXT, rest_event
    from tests.moto_server import lambda_environment

    lambda_environment(
        monkeypatch,
        REGION,
        AWS_ENDPOINT_URL_ATHENA=moto_endpoint,
        LOGLAKE_ATHENA_DATABASE="loglake",
        LOGLAKE_ATHENA_WORKGROUP="primary",
    )
    queue_result(moto_endpoint, [("n", "bigint")], [["42"]])
    ok = handlers.query(rest_event("POST", "/query", body='{"sql": "SELECT count(*) AS n FROM logs"}'), CONTEXT)
    assert ok["statusCode"] == 200
    body = json.loads(ok["body"])
    assert body["rows"] == [[42]] and body["columns"] == [{"name": "n", "type": "bigint"}] and not body["truncated"]
    for bad, code in [('{"sql": "DROP TABLE logs"}', "read_only"), ("{oops", "invalid_json"),
                      ('{"sql": "SELECT 1", "limit": -1}', "invalid_request"),
                      ('{"sql": "SELECT 1", "limit": 10.5}', "invalid_request"),
                      ('{"sql": "SELECT 1", "x": ' + "[" * 5000 + "]" * 5000 + "}", "too_deep")]:  # fmt: skip
        refused = handlers.query(rest_event("POST", "/query", body=bad), CONTEXT)
        assert (refused["statusCode"], json.loads(refused["body"])["error"]["code"]) == (400, code)

    queue_result(moto_endpoint, [("n", "bigint")], [["7"]])
    bom = "\ufeff".encode() + b'{"sql": "SELECT count(*) AS n FROM logs"}'  # as some Windows tools write JSON
    ok = handlers.query(rest_event("POST", "/query", body=bom, binary=True), CONTEXT)
    assert ok["statusCode"] == 200 and json.loads(ok["body"])["rows"] == [[7]]


def test_the_query_handler_reads_the_body_as_post_query_does(
    athena, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Content-Type, Content-Encoding, the body's size and query parameters as the local route takes them:
    a gzipped query is run, not refused as "not valid JSON"; what the local server refuses is refused alike."""
    from loglake.aws import handlers
    from tests.aws.test_api_handler import CONTEXT, rest_event
    from tests.moto_server import lambda_environment

    lambda_environment(
        monkeypatch, REGION, AWS_ENDPOINT_URL_ATHENA=moto_endpoint,
        LOGLAKE_ATHENA_DATABASE="loglake", LOGLAKE_ATHENA_WORKGROUP="primary",
    )  # fmt: skip
    queue_result(moto_endpoint, [("n", "bigint")], [["42"]])
    sql = b'{"sql": "SELECT count(*) AS n FROM logs"}'
    json_gzip = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    ok = handlers.query(rest_event("POST", "/query", body=gzip.compress(sql), headers=json_gzip, binary=True), CONTEXT)
    assert ok["statusCode"] == 200 and json.loads(ok["body"])["rows"] == [[42]]
    huge = json.dumps({"sql": "SELECT 1 -- " + "x" * 1_100_000}).encode()
    for body, headers, query, status, code in [
        (sql, {"Content-Type": "text/plain"}, None, 415, "unsupported_media_type"),
        (sql, {"Content-Type": "application/json", "Content-Encoding": "br"}, None, 415, "unsupported_encoding"),
        (sql, {"Content-Type": "application/json"}, {"limit": "5"}, 400, "invalid_query"),
        (sql, {"Content-Type": "application/json"}, {"limit": "\ud800"}, 400, "invalid_query"),  # (not UTF-8)
        (huge, {"Content-Type": "application/json"}, None, 413, "payload_too_large"),
        (gzip.compress(huge), json_gzip, None, 413, "payload_too_large"),
    ]:
        event = rest_event("POST", "/query", body=body, headers=headers, query=query, binary=True)
        refused = handlers.query(event, CONTEXT)
        assert (refused["statusCode"], json.loads(refused["body"])["error"]["code"]) == (status, code)


def test_the_cli_queries_athena_with_engine_athena(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.conftest import run_cli
    from tests.moto_server import lambda_environment

    lambda_environment(monkeypatch, REGION, AWS_ENDPOINT_URL_ATHENA=moto_endpoint)
    queue_result(moto_endpoint, [("severity", "varchar"), ("n", "bigint")], [["error", "7"], ["info", "93"]])
    sql = "SELECT severity, count(*) AS n FROM logs WHERE date = '2026-11-01' GROUP BY 1"
    done = run_cli("query", "--engine", "athena", "--athena-database", "loglake", "--athena-workgroup", "primary",
                   "--format", "csv", sql)  # fmt: skip
    assert done.exit_code == 0, done.output
    assert done.stdout.splitlines() == ["severity,n", "error,7", "info,93"]
    monkeypatch.setenv("LOGLAKE_ATHENA_DATABASE", "loglake")
    refused = run_cli("query", "--engine", "athena", "DROP TABLE logs", "--athena-workgroup", "primary")
    assert refused.exit_code == 1 and "only" in refused.output.lower(), refused.output
    monkeypatch.delenv("LOGLAKE_ATHENA_DATABASE")
    missing = run_cli("query", "--engine", "athena", "SELECT 1")
    assert missing.exit_code == 2 and "--athena-database and --athena-workgroup" in missing.output
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")  # no region from a profile either
    no_region = run_cli("query", "--engine", "athena", "--athena-database", "d", "--athena-workgroup", "w", "SELECT 1")
    assert no_region.exit_code == 1 and "pass --region" in no_region.output, no_region.output
    with_region = run_cli("query", "--engine", "athena", "--region", REGION, "--athena-database", "loglake",
                          "--athena-workgroup", "primary", "SELECT 1")  # fmt: skip
    assert with_region.exit_code == 0, with_region.output


class _ThrottlingAthena(http.server.BaseHTTPRequestHandler):
    """Athena's JSON protocol answering every call as throttled."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = json.dumps({"__type": "TooManyRequestsException", "message": "Rate exceeded"}).encode()
        self.send_response(400)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.parametrize("athena_answers", ["throttled", "unreachable"])
def test_a_busy_or_unreachable_athena_is_a_503_to_retry(athena_answers: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from loglake.aws import handlers
    from tests.aws.test_api_handler import CONTEXT, rest_event
    from tests.conftest import free_port
    from tests.moto_server import lambda_environment

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ThrottlingAthena)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1] if athena_answers == "throttled" else free_port()
    try:
        lambda_environment(
            monkeypatch,
            REGION,
            AWS_ENDPOINT_URL_ATHENA=f"http://127.0.0.1:{port}",
            AWS_MAX_ATTEMPTS="1",
            LOGLAKE_ATHENA_DATABASE="loglake",
            LOGLAKE_ATHENA_WORKGROUP="primary",
        )
        answer = handlers.query(rest_event("POST", "/query", body='{"sql": "SELECT 1"}'), CONTEXT)
    finally:
        server.shutdown()
        server.server_close()
    assert answer["statusCode"] == 503 and answer["headers"]["retry-after"] == "5"
    assert json.loads(answer["body"])["error"]["code"] == "busy"


class _DenyingAthena(_ThrottlingAthena):
    """Athena refusing every call to a role the stack did not grant (an operator's edit, a changed policy)."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = json.dumps({"__type": "AccessDeniedException", "message": "not authorized to perform"}).encode()
        self.send_response(400)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_an_unexpected_failure_is_a_500_quoting_the_request_id_as_the_app_answers(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """Not Lambda's error (API Gateway's bare 502 "Internal server error", with nothing to quote): the app's 500,
    its traceback in the function's log and the invocation's line at level ERROR."""
    from loglake.aws import handlers
    from tests.aws.test_api_handler import CONTEXT, rest_event
    from tests.moto_server import lambda_environment

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _DenyingAthena)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        lambda_environment(
            monkeypatch, REGION, AWS_ENDPOINT_URL_ATHENA=f"http://127.0.0.1:{server.server_address[1]}",
            AWS_MAX_ATTEMPTS="1", LOGLAKE_ATHENA_DATABASE="loglake", LOGLAKE_ATHENA_WORKGROUP="primary",
        )  # fmt: skip
        event = rest_event("POST", "/query", body='{"sql": "SELECT 1"}')
        answer = handlers.query(event, CONTEXT)
    finally:
        server.shutdown()
        server.server_close()
    request_id = event["requestContext"]["requestId"]
    assert answer["statusCode"] == 500
    assert json.loads(answer["body"])["error"] == {
        "code": "internal_error", "message": f"internal error; quote request id {request_id}", "details": [],
    }  # fmt: skip
    logged = capsys.readouterr()
    assert "AccessDeniedException" in logged.err and request_id in logged.err
    assert json.loads(logged.out.splitlines()[-1])["level"] == "ERROR"


def test_an_answer_over_lambdas_limit_is_a_clear_400(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from loglake.aws import handlers
    from tests.aws.test_api_handler import CONTEXT, rest_event
    from tests.moto_server import lambda_environment

    lambda_environment(
        monkeypatch, REGION, AWS_ENDPOINT_URL_ATHENA=moto_endpoint, LOGLAKE_ATHENA_DATABASE="loglake",
        LOGLAKE_ATHENA_WORKGROUP="primary",
    )  # fmt: skip
    quoted = '"' * 1_000  # each escapes to two characters in Lambda's JSON response
    queue_result(moto_endpoint, [("m", "varchar")], [[quoted * 1_000] for _ in range(4)])  # 4 MB, 16 MB escaped
    answer = handlers.query(rest_event("POST", "/query", body='{"sql": "SELECT m FROM logs"}'), CONTEXT)
    assert answer["statusCode"] == 400
    assert json.loads(answer["body"])["error"]["code"] == "response_too_large"
