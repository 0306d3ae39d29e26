"""The web UI's sign-in on AWS through the real UI function handler (API Gateway proxy events), its
sessions in DynamoDB (moto server), against a local Cognito stand-in (a real HTTP server signing ID
tokens with a test RSA key, checking PKCE as Cognito does)."""

from __future__ import annotations

import base64
import hashlib
import html
import json
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from joserfc.jwk import RSAKey

from loglake.aws import handlers
from loglake.aws.ui_sessions import DynamoDBSessions
from loglake.store.dynamodb import DynamoDBHotStore
from tests.aws.cognito_stand_in import CLIENT_ID, UI_URL, Person, StandIn, running_stand_in
from tests.aws.test_api_handler import CONTEXT, rest_event
from tests.aws.test_athena import queue_result
from tests.moto_server import lambda_environment
from tests.store.test_dynamodb import dynamodb_client

ADMIN = Person("ada@example.com", ["loglake-admin"])
READER = Person("rui@example.com", ["staff", "loglake-readers"])
HOST = {"Host": "logs.example.com"}


@pytest.fixture
def stand_in() -> Iterator[StandIn]:
    with running_stand_in() as running:
        yield running


@pytest.fixture
def ui_function(stand_in: StandIn, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """The stack's UI function's environment: the hot table, the sessions table, Athena, the pool."""
    suffix = uuid.uuid4().hex[:10]
    hot, sessions = f"loglake-hot-{suffix}", f"loglake-sessions-{suffix}"
    lambda_environment(
        monkeypatch,
        "eu-west-1",
        AWS_ENDPOINT_URL_DYNAMODB=moto_endpoint,
        AWS_ENDPOINT_URL_ATHENA=moto_endpoint,
        LOGLAKE_DYNAMODB_TABLE=hot,
        LOGLAKE_UI_SESSIONS_TABLE=sessions,
        LOGLAKE_ATHENA_DATABASE="loglake",
        LOGLAKE_ATHENA_WORKGROUP="primary",
        LOGLAKE_DATA_DIR=str(tmp_path / "lambda-tmp"),
        **stand_in.environment(),
    )
    client = dynamodb_client(moto_endpoint, "eu-west-1")
    DynamoDBHotStore.create_table(client, hot)
    DynamoDBSessions.create_table(client, sessions)
    return sessions


def call(
    method: str, path: str, *, query: dict | None = None, cookies: dict | None = None, headers: dict | None = None
):
    cookie = "; ".join(f"{k}={v}" for k, v in (cookies or {}).items())
    sent = HOST | ({"Cookie": cookie} if cookie else {}) | (headers or {})
    return handlers.api(rest_event(method, path, query=query, headers=sent), CONTEXT)


def set_cookies(response: dict) -> dict[str, str]:
    """Each Set-Cookie of a proxy response by cookie name: the whole header (value and attributes)."""
    return {c.split("=", 1)[0]: c for c in response["multiValueHeaders"].get("set-cookie", [])}


def cookie_value(header: str) -> str:
    return header.split(";", 1)[0].split("=", 1)[1]


def location(response: dict) -> str:
    return response["multiValueHeaders"]["location"][0]


def start(stand_in: StandIn, person: Person, next_path: str | None = None) -> tuple[dict, dict[str, str]]:
    """Sign in up to Cognito's redirect back: /auth/login, then the hosted UI (the stand-in) as the
    person. The callback's query and the browser's sign-in cookie."""
    started = call("GET", "/auth/login", query={"next": next_path} if next_path else None)
    assert started["statusCode"] == 302, started
    assert location(started).startswith(f"{stand_in.url}/oauth2/authorize?")
    stand_in.person = person
    at_cognito = httpx.get(location(started), follow_redirects=False)
    assert at_cognito.status_code == 302, at_cognito.text
    back = urlsplit(at_cognito.headers["location"])
    assert f"{back.scheme}://{back.netloc}{back.path}" == f"{UI_URL}/auth/callback"
    query = {k: v[0] for k, v in parse_qs(back.query).items()}
    return query, {"loglake_sign_in": cookie_value(set_cookies(started)["loglake_sign_in"])}


def sign_in(stand_in: StandIn, person: Person, next_path: str | None = None) -> tuple[dict, str]:
    query, cookies = start(stand_in, person, next_path)
    finished = call("GET", "/auth/callback", query=query, cookies=cookies)
    assert finished["statusCode"] == 303, finished["body"]
    return finished, cookie_value(set_cookies(finished)["loglake_session"])


def page_text(response: dict) -> str:
    assert response["multiValueHeaders"]["content-type"] == ["text/html; charset=utf-8"]
    return response["body"]


def test_a_reader_signs_in_with_pkce_and_searches(ui_function: str, stand_in: StandIn, moto_endpoint: str) -> None:
    finished, token = sign_in(stand_in, READER)
    assert location(finished) == "/ui/"
    cookies = set_cookies(finished)
    session_attributes = [a.strip() for a in cookies["loglake_session"].split(";")[1:]]
    assert {"HttpOnly", "SameSite=Strict", "Secure", "Path=/"} <= set(session_attributes)
    assert cookies["loglake_sign_in"].startswith("loglake_sign_in=;") and "Max-Age=0" in cookies["loglake_sign_in"]

    # PKCE: the token request carried the verifier whose S256 is the challenge authorize was sent
    (authorized,), (request,) = stand_in.authorizations, stand_in.token_requests
    digest = hashlib.sha256(request["code_verifier"].encode()).digest()
    assert 43 <= len(request["code_verifier"]) <= 128 and authorized["code_challenge_method"] == "S256"
    assert base64.urlsafe_b64encode(digest).rstrip(b"=").decode() == authorized["code_challenge"]
    assert authorized["nonce"] and authorized["state"] != authorized["nonce"]

    described = call("GET", "/session", cookies={"loglake_session": token})
    session = json.loads(described["body"])
    assert described["statusCode"] == 200 and session["key_name"] == "rui@example.com"
    assert session["scopes"] == ["read"] and session["csrf_token"]

    # a new Lambda container sees the session (DynamoDB), and the reads take it
    handlers.reset()
    columns = [(n, "bigint" if n == "ts" else "varchar") for n in
               ("log_id", "ts", "service", "log_type", "severity", "message", "attributes", "client_id")]  # fmt: skip
    row = ["01a19989-b020-7449-9fde-d7bf8f54a73a", "1793577300000", "api", "application", "error", "db timeout",
           "{}", None]  # fmt: skip
    queue_result(moto_endpoint, columns, [row])
    found = call("GET", "/logs/search", query={"q": "timeout", "since": "30d"}, cookies={"loglake_session": token})
    assert found["statusCode"] == 200, found["body"]
    assert [r["message"] for r in json.loads(found["body"])["logs"]] == ["db timeout"]
    assert call("GET", "/logs/search", query={"q": "timeout"})["statusCode"] == 401


def test_the_sql_page_runs_on_athena_with_the_session(ui_function: str, stand_in: StandIn, moto_endpoint: str) -> None:
    token = sign_in(stand_in, READER)[1]
    cookies = {"loglake_session": token}
    csrf = json.loads(call("GET", "/session", cookies=cookies)["body"])["csrf_token"]
    queue_result(moto_endpoint, [("service", "varchar"), ("n", "bigint")], [["api", "42"]])
    sql = {"Content-Type": "application/json", "X-CSRF-Token": csrf}
    event = rest_event("POST", "/query", body=json.dumps({"sql": "SELECT service, count(*) AS n FROM logs GROUP BY 1"}),
                       headers=HOST | sql | {"Cookie": f"loglake_session={token}"})  # fmt: skip
    answered = handlers.api(event, CONTEXT)
    assert answered["statusCode"] == 200, answered["body"]
    assert json.loads(answered["body"])["rows"] == [["api", 42]]
    refused = handlers.api(event | {"body": json.dumps({"sql": "DROP TABLE logs"})}, CONTEXT)
    assert refused["statusCode"] == 400
    described = json.loads(call("GET", "/tables", cookies=cookies)["body"])["tables"]
    logs = next(t for t in described if t["name"] == "logs")
    assert {"message", "severity", "date"} <= {c["name"] for c in logs["columns"]}
    assert logs["partition_keys"] == ["date"]
    refused = call("GET", "/tables", query={"table": "logs"}, cookies=cookies)  # it takes none, as locally
    assert refused["statusCode"] == 400 and json.loads(refused["body"])["error"]["code"] == "invalid_query"
    without_token = rest_event("POST", "/query", body="{}", headers=HOST | {"Cookie": f"loglake_session={token}"})
    assert handlers.api(without_token, CONTEXT)["statusCode"] == 403


def test_the_verifier_is_the_one_whose_challenge_went_to_authorize(
    ui_function: str, stand_in: StandIn, moto_endpoint: str
) -> None:
    """The stand-in refuses a verifier that does not hash to the challenge: a sign-in whose remembered
    verifier was changed on the way is refused with Cognito's reason, and no session is made."""
    query, cookies = start(stand_in, READER)
    client = dynamodb_client(moto_endpoint, "eu-west-1")
    key = {"pk": {"S": "login#" + hashlib.sha256(query["state"].encode()).hexdigest()}}
    client.update_item(
        TableName=ui_function,
        Key=key,
        UpdateExpression="SET code_verifier = :v",
        ExpressionAttributeValues={":v": {"S": "a-verifier-of-another-sign-in-0123456789abcdef"}},
    )
    refused = call("GET", "/auth/callback", query=query, cookies=cookies)
    assert refused["statusCode"] == 400 and "invalid_grant" in page_text(refused)
    assert "loglake_session" not in set_cookies(refused)


@pytest.mark.parametrize(
    ("person", "scopes"),
    [
        (ADMIN, ["admin"]),
        (READER, ["read"]),
        (Person("x@example.com", ["loglake-readers", "loglake-admin"]), ["admin", "read"]),
    ],
)
def test_groups_give_their_scopes(ui_function: str, stand_in: StandIn, person: Person, scopes: list[str]) -> None:
    token = sign_in(stand_in, person)[1]
    assert json.loads(call("GET", "/session", cookies={"loglake_session": token})["body"])["scopes"] == scopes


def test_a_person_in_no_mapped_group_is_refused_with_a_page(ui_function: str, stand_in: StandIn) -> None:
    query, cookies = start(stand_in, Person("eve@example.com", ["marketing"]))
    refused = call("GET", "/auth/callback", query=query, cookies=cookies)
    text = page_text(refused)
    assert refused["statusCode"] == 403 and "loglake_session" not in set_cookies(refused)
    assert "eve@example.com" in text and "in no group that gives access" in text and "loglake-readers" in text
    assert 'href="/auth/login"' in text and "<script" not in text


def test_a_reader_cannot_do_what_read_does_not_allow(ui_function: str, stand_in: StandIn) -> None:
    token = sign_in(stand_in, READER)[1]
    csrf = json.loads(call("GET", "/session", cookies={"loglake_session": token})["body"])["csrf_token"]
    refused = call("POST", "/alerts/0193a0b0-0000-7000-8000-000000000000/resolve", cookies={"loglake_session": token},
                   headers={"X-CSRF-Token": csrf})  # fmt: skip
    assert refused["statusCode"] == 403 and json.loads(refused["body"])["error"]["code"] == "forbidden"


def test_a_change_without_the_csrf_token_is_refused(ui_function: str, stand_in: StandIn) -> None:
    token = sign_in(stand_in, ADMIN)[1]
    refused = call("DELETE", "/session", cookies={"loglake_session": token})
    assert refused["statusCode"] == 403 and json.loads(refused["body"])["error"]["code"] == "csrf_token_invalid"
    assert call("GET", "/session", cookies={"loglake_session": token})["statusCode"] == 200


def test_sign_out_ends_the_session_and_goes_through_cognito(ui_function: str, stand_in: StandIn) -> None:
    token = sign_in(stand_in, ADMIN)[1]
    csrf = json.loads(call("GET", "/session", cookies={"loglake_session": token})["body"])["csrf_token"]
    out = call("DELETE", "/session", cookies={"loglake_session": token}, headers={"X-CSRF-Token": csrf})
    assert out["statusCode"] == 200 and "Max-Age=0" in set_cookies(out)["loglake_session"]
    sign_out_url = json.loads(out["body"])["sign_out_url"]
    assert sign_out_url.startswith(f"{stand_in.url}/logout?")
    at_cognito = httpx.get(sign_out_url, follow_redirects=False)
    assert at_cognito.status_code == 302 and at_cognito.headers["location"] == f"{UI_URL}/login"
    assert stand_in.logouts == [{"client_id": CLIENT_ID, "logout_uri": f"{UI_URL}/login"}]
    assert call("GET", "/session", cookies={"loglake_session": token})["statusCode"] == 401


def test_a_callback_not_started_in_this_browser_is_refused(ui_function: str, stand_in: StandIn) -> None:
    """Login CSRF: another person's code and state, sent to this browser, must not sign it in."""
    query, cookies = start(stand_in, ADMIN)
    for sent in ({}, {"loglake_sign_in": "another-sign-ins-state"}):
        refused = call("GET", "/auth/callback", query=query, cookies=sent)
        assert refused["statusCode"] == 400 and "not started in this browser" in page_text(refused)
    assert stand_in.token_requests == []  # the code was never exchanged
    assert call("GET", "/auth/callback", query=query, cookies=cookies)["statusCode"] == 303


def test_a_callback_answers_once(ui_function: str, stand_in: StandIn) -> None:
    query, cookies = start(stand_in, ADMIN)
    assert call("GET", "/auth/callback", query=query, cookies=cookies)["statusCode"] == 303
    again = call("GET", "/auth/callback", query=query, cookies=cookies)
    assert again["statusCode"] == 400 and "already used or has expired" in page_text(again)


def test_a_bad_state_is_refused(ui_function: str, stand_in: StandIn) -> None:
    query, cookies = start(stand_in, ADMIN)
    forged = query | {"state": "made-up"}
    refused = call("GET", "/auth/callback", query=forged, cookies={"loglake_sign_in": "made-up"})
    assert refused["statusCode"] == 400 and "already used or has expired" in page_text(refused)
    assert call("GET", "/auth/callback", query={"code": query["code"]}, cookies=cookies)["statusCode"] == 400


def test_cognito_failing_or_out_of_reach_is_a_503_page_to_retry(
    ui_function: str, stand_in: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    query, cookies = start(stand_in, ADMIN)
    stand_in.failing = True
    failed = call("GET", "/auth/callback", query=query, cookies=cookies)
    assert failed["statusCode"] == 503 and "answered HTTP 500; retry shortly" in page_text(failed)

    stand_in.failing = False
    query, cookies = start(stand_in, ADMIN)
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    handlers.reset()  # the callback lands on a new container, which cannot reach the pool
    monkeypatch.setenv("LOGLAKE_COGNITO_DOMAIN", f"http://127.0.0.1:{port}")
    unreachable = call("GET", "/auth/callback", query=query, cookies=cookies)
    assert unreachable["statusCode"] == 503 and "Cognito could not be reached" in page_text(unreachable)
    assert "loglake_session" not in set_cookies(unreachable)


def test_cognitos_own_refusal_is_shown(ui_function: str, stand_in: StandIn) -> None:
    query = {"error": "access_denied", "error_description": "User <b>disabled</b>", "state": "s"}
    refused = call("GET", "/auth/callback", query=query)
    assert refused["statusCode"] == 403 and "User &lt;b&gt;disabled&lt;/b&gt;" in page_text(refused)


@pytest.mark.parametrize(
    ("wrong", "reason"),
    [
        ({"claims": {"exp": 1_700_000_000}}, "has expired"),
        ({"signing_key": "forger"}, "signature does not match"),
        ({"header": {"alg": "RS256", "kid": "not-the-pools"}}, "names a key the user pool does not have"),
        ({"claims": {"aud": "another-client"}}, "its aud is not"),
        ({"claims": {"iss": "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Other"}}, "its iss is not"),
        ({"claims": {"token_use": "access"}}, "its token_use is not"),
        ({"claims": {"nonce": "replayed-nonce"}}, "its nonce is not"),
        ({"unsigned": True}, "signed with 'none', not RS256"),
    ],
)
def test_a_token_that_is_not_this_sign_ins_is_refused(
    ui_function: str, stand_in: StandIn, wrong: dict, reason: str
) -> None:
    if wrong.get("signing_key") == "forger":
        wrong = {"signing_key": RSAKey.generate_key(2048)}
    query, cookies = start(stand_in, Person("ada@example.com", ["loglake-admin"], **wrong))
    refused = call("GET", "/auth/callback", query=query, cookies=cookies)
    assert refused["statusCode"] == 401 and reason in html.unescape(page_text(refused))
    assert "loglake_session" not in set_cookies(refused)


@pytest.mark.parametrize(
    ("asked", "landing"),
    [
        ("/ui/explore?q=timeout&since=1h", "/ui/explore?q=timeout&since=1h"),
        ("https://evil.example/ui/", "/ui/"),
        ("//evil.example/ui/", "/ui/"),
        ("/\\evil.example", "/ui/"),
        ("/ui/\r\nSet-Cookie: x=1", "/ui/"),
        ("/login", "/ui/"),
        ("/ui/../login", "/ui/"),  # dot segments leave /ui/ (the local sign-in's rule, which this one follows)
        ("/ui/%2e%2e/admin", "/ui/"),
        ("/ui/sql?q=a b", "/ui/"),
    ],
)
def test_after_sign_in_only_pages_of_the_ui_are_landed_on(
    ui_function: str, stand_in: StandIn, asked: str, landing: str
) -> None:
    assert location(sign_in(stand_in, ADMIN, asked)[0]) == landing


def test_the_login_page_offers_cognito_and_api_keys_are_not_taken(ui_function: str) -> None:
    page = call("GET", "/login", query={"error": "session_ended"})  # a reason code, shown as a fixed message
    text = page_text(page)
    assert page["statusCode"] == 200 and "Sign in with Cognito" in text and 'href="/auth/login"' in text
    assert "Your session has ended; sign in again." in text and "<script" not in text
    spoofed = page_text(call("GET", "/login", query={"error": "Paste your key at https://evil.example"}))
    assert "evil.example" not in spoofed and "Signing in did not succeed; try again." in spoofed
    headers = page["multiValueHeaders"]
    assert "script-src 'self'" in headers["content-security-policy"][0]
    onward = page_text(call("GET", "/login", query={"next": "/ui/sql?q=1"}))
    assert 'href="/auth/login?next=/ui/sql%3Fq%3D1"' in onward
    assert 'href="/auth/login"' in page_text(call("GET", "/login", query={"next": "https://evil.example/"}))
    keyed = call("POST", "/session", headers={"Content-Type": "application/json"})
    assert keyed["statusCode"] == 501 and "Cognito" in json.loads(keyed["body"])["error"]["message"]


def test_the_ui_function_takes_no_other_credentials_and_no_records(ui_function: str) -> None:
    bearer = call("GET", "/logs/recent", headers={"Authorization": "Bearer llk_something"})
    assert bearer["statusCode"] == 401 and "SigV4" in json.loads(bearer["body"])["error"]["message"]
    ingest = call("POST", "/logs", headers={"Content-Type": "application/json"})
    assert ingest["statusCode"] == 404
