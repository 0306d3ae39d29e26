"""The HTTP contract (README: the API, the record, errors), through the ASGI app in process."""

from __future__ import annotations

import gzip
import json
import time
import tracemalloc
import uuid
from dataclasses import replace

import httpx
import msgspec
import pytest

from loglake.api.app import LoglakeApp
from loglake.config import Settings
from tests.conftest import asgi_client, key_for

NDJSON = {"content-type": "application/x-ndjson"}


def error_of(response: httpx.Response) -> dict:
    body = response.json()
    assert set(body) == {"error"} and {"code", "message", "details"} <= set(body["error"])
    return body["error"]


async def all_messages(client: httpx.AsyncClient, **params: object) -> list[str]:
    response = await client.get("/logs/recent", params={"limit": 1000, **params})
    assert response.status_code == 200
    return [r["message"] for r in response.json()["logs"]]


# -- POST /logs --------------------------------------------------------------------------------


async def test_users_existing_call_still_works(client: httpx.AsyncClient) -> None:
    before = int(time.time() * 1000)
    response = await client.post("/logs", json={"severity": "error", "message": "Database connection timeout"})
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"logId", "timestamp", "datetime"}
    assert uuid.UUID(body["logId"]).version == 7
    assert before <= body["timestamp"] <= int(time.time() * 1000)
    recent = (await client.get("/logs/recent")).json()
    assert recent["count"] == 1
    log = recent["logs"][0]
    assert {"logId", "timestamp", "datetime", "severity", "message"} <= set(log)
    assert (log["logId"], log["severity"], log["message"]) == (body["logId"], "error", "Database connection timeout")
    assert log["datetime"].endswith("Z") and log["datetime"] == body["datetime"]


async def test_array_ndjson_and_gzip_bodies(client: httpx.AsyncClient) -> None:
    response = await client.post("/logs", json=[{"message": "a1"}, {"message": "a2", "service": "svc"}])
    assert response.status_code == 201
    assert response.json()["count"] == 2 and len(response.json()["logIds"]) == 2

    lines = b'{"message": "n1"}\n\n{"message": "n2", "severity": "WARN"}\n'
    response = await client.post("/logs", content=lines, headers=NDJSON)
    assert response.status_code == 201 and response.json()["count"] == 2

    packed = gzip.compress(json.dumps([{"message": "g1"}]).encode())
    response = await client.post(
        "/logs", content=packed, headers={"content-type": "application/json", "content-encoding": "gzip"}
    )
    assert response.status_code == 201 and response.json()["count"] == 1
    assert sorted(await all_messages(client)) == ["a1", "a2", "g1", "n1", "n2"]


async def test_prefer_return_minimal_answers_the_count_alone(client: httpx.AsyncClient) -> None:
    """Fluent Bit's http output reads 4 KiB of an answer: a batch of more than ~100 records' ids failed it, and
    it sent the stored batch again, and again (a real-shipper trial: 110 records stored 220 times)."""
    minimal = {"prefer": "handling=lenient, return=minimal"}
    lines = b"".join(b'{"message": "m%d %s"}\n' % (i, b"x" * 40) for i in range(8_000))  # (past 256 KiB: bulk)
    for body, headers, count in [
        (lines, NDJSON, 8_000),
        (json.dumps([{"message": "a"}, {"message": "b"}]).encode(), {"content-type": "application/json"}, 2),
        (json.dumps({"message": "one"}).encode(), {"content-type": "application/json"}, 1),
    ]:
        response = await client.post("/logs", content=body, headers={**headers, **minimal})
        assert response.status_code == 201 and response.json() == {"count": count}, response.text
    counted = await client.post("/query", json={"sql": "SELECT count(*) FROM logs"})
    assert counted.json()["rows"] == [[8_003]], counted.text
    response = await client.post("/logs", json=[{"message": "c"}], headers={"prefer": "return=representation"})
    assert len(response.json()["logIds"]) == 1  # (any other preference: the ids, as without it)


async def test_one_bad_record_rejects_the_request_and_names_each_problem(client: httpx.AsyncClient) -> None:
    batch = [{"message": "good"}, {"message": ""}, {"message": "m", "severity": "loud"}, {"message": "m", "x": 1}]
    response = await client.post("/logs", json=batch)
    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "invalid_records"
    assert [(d["index"], d["field"]) for d in error["details"]] == [(1, "message"), (2, "severity"), (3, "x")]
    assert all(d["reason"] for d in error["details"])
    assert await all_messages(client) == []


@pytest.mark.parametrize("count", [1, 2000])  # one record, and a bulk batch (checked column by column)
async def test_a_field_named_as_another_logger_names_it_is_told_the_records_name(
    client: httpx.AsyncClient, count: int
) -> None:
    batch = [{"message": f"m{i}", "level": "error"} for i in range(count)]
    response = await client.post("/logs", json=batch)
    assert response.status_code == 400
    first = error_of(response)["details"][0]
    assert (first["index"], first["field"]) == (0, "level")
    assert first["reason"] == "unknown field(s) level (did you mean 'severity'?); put custom fields under 'attributes'"
    assert await all_messages(client) == []


@pytest.mark.parametrize("count", [1, 2000])  # one record, and a bulk batch (checked column by column)
async def test_the_level_words_of_syslog_and_loggers_are_severities(client: httpx.AsyncClient, count: int) -> None:
    words = {"crit": "critical", "ALERT": "critical", "emerg": "critical", "informational": "info", "verbose": "debug"}
    batch = [{"message": f"{word} {i}", "severity": word} for i in range(count) for word in words]
    body = "\n".join(json.dumps(record) for record in batch).encode()
    answer = await client.post("/logs", content=body, headers={"Content-Type": "application/x-ndjson"})
    assert answer.status_code == 201, answer.text
    stored = await client.get("/logs/recent", params={"limit": 1000, "q": " 0"})
    found = {log["message"]: log["severity"] for log in stored.json()["logs"]}
    assert found == {f"{word} 0": severity for word, severity in words.items()}


async def test_bad_ndjson_lines_are_all_reported(client: httpx.AsyncClient) -> None:
    body = b'{"message": "ok"}\n{broken\n{"message": "ok2"}\nnot json\n'
    response = await client.post("/logs", content=body, headers=NDJSON)
    assert response.status_code == 400
    details = error_of(response)["details"]
    assert [d["index"] for d in details] == [1, 3]
    assert "line 2" in details[0]["reason"] and "line 4" in details[1]["reason"]
    assert await all_messages(client) == []


async def test_ndjson_lines_that_are_not_json_and_records_that_are_invalid_are_named_together(
    client: httpx.AsyncClient,
) -> None:
    body = b'{"message": "ok"}\n{broken\n{"message": ""}\n{"message": "ok", "severity": "loud"}\n'
    response = await client.post("/logs", content=body, headers=NDJSON)
    assert response.status_code == 400
    details = [(d["index"], d["field"]) for d in error_of(response)["details"]]
    assert details == [(1, ""), (2, "message"), (3, "severity")]
    assert await all_messages(client) == []


@pytest.mark.parametrize(
    ("content", "headers", "status", "code"),
    [
        (b"{not json", {"content-type": "application/json"}, 400, "invalid_json"),
        (b"42", {"content-type": "application/json"}, 400, "invalid_json"),
        (b"[]", {"content-type": "application/json"}, 400, "empty_batch"),
        (b"", {"content-type": "application/json"}, 400, "empty_body"),
        (b"message=hi", {"content-type": "application/x-www-form-urlencoded"}, 415, "unsupported_media_type"),
        (b"{}", {"content-type": "application/json", "content-encoding": "br"}, 415, "unsupported_encoding"),
        (b"not gzip", {"content-type": "application/json", "content-encoding": "gzip"}, 400, "bad_gzip"),
        (
            gzip.compress(b'{"message": "x"}', mtime=0)[:-6],
            {"content-type": "application/json", "content-encoding": "gzip"},
            400,
            "bad_gzip",
        ),
    ],
)
async def test_malformed_bodies(
    client: httpx.AsyncClient, content: bytes, headers: dict, status: int, code: str
) -> None:
    response = await client.post("/logs", content=content, headers=headers)
    assert response.status_code == status
    assert error_of(response)["code"] == code


async def test_a_body_cut_short_is_told_so_by_post_logs_and_by_a_route_taking_a_json_object(
    client: httpx.AsyncClient,
) -> None:
    """A new-user trial's body cut short was answered with a lone surrogate's hint; /alerts/{id}/resolve said
    only msgspec's words."""
    cut = {"content": b'{"message": "x", ', "headers": {"content-type": "application/json"}}
    for response in (await client.post("/logs", **cut), await client.post("/query", **cut)):
        assert response.status_code == 400, response.text
        assert error_of(response)["code"] == "invalid_json"
        assert error_of(response)["message"] == (
            "the body is not valid JSON in UTF-8: it ends before the JSON does (was it cut short?)"
        )


async def test_size_limits(settings: Settings) -> None:
    app = LoglakeApp.from_settings(replace(settings, max_body_bytes=4096, max_records=3))
    try:
        async with asgi_client(app, key_for(app)) as client:
            too_big = json.dumps({"message": "x" * 5000})
            response = await client.post("/logs", content=too_big, headers={"content-type": "application/json"})
            assert response.status_code == 413 and error_of(response)["code"] == "payload_too_large"
            assert error_of(response)["message"].endswith("; send less in one request (records: in smaller batches)")

            response = await client.post(
                "/logs",
                content=gzip.compress(json.dumps([{"message": "y" * 5000}]).encode()),
                headers={"content-type": "application/json", "content-encoding": "gzip"},
            )
            assert response.status_code == 413 and "after decompression" in error_of(response)["message"]
            assert "(records: in smaller batches)" in error_of(response)["message"]

            response = await client.post("/logs", json=[{"message": str(i)} for i in range(4)])
            assert response.status_code == 413 and error_of(response)["code"] == "too_many_records"
            assert (await client.post("/logs", json=[{"message": str(i)} for i in range(3)])).status_code == 201
    finally:
        app.close()


async def test_gzip_bomb_is_stopped_while_inflating(client: httpx.AsyncClient) -> None:
    bomb = gzip.compress(b" " * (200 * 1024 * 1024), compresslevel=9)  # 200 MiB inflated, ~200 KiB sent
    tracemalloc.start()
    try:
        response = await client.post(
            "/logs", content=bomb, headers={"content-type": "application/json", "content-encoding": "gzip"}
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert response.status_code == 413
    assert peak < 40 * 1024 * 1024  # at most the 10 MiB limit was inflated, never the 200 MiB


async def test_client_id_makes_a_retry_idempotent(client: httpx.AsyncClient) -> None:
    client_id = str(uuid.uuid4())
    first = await client.post("/logs", json={"id": client_id, "message": "charge card"})
    again = await client.post("/logs", json={"id": client_id, "message": "charge card"})
    assert first.status_code == again.status_code == 201
    assert first.json()["logId"] == again.json()["logId"]
    assert await all_messages(client) == ["charge card"]
    by_client_id = await client.get(f"/logs/{client_id}")
    assert by_client_id.status_code == 200 and by_client_id.json()["id"] == client_id


@pytest.mark.parametrize("body_type", ["json", "ndjson", "array"])
async def test_a_client_id_that_is_not_a_canonical_uuid_is_400_naming_it(
    client: httpx.AsyncClient, body_type: str
) -> None:
    record = {"message": "x", "id": "0123456789abcdef0123456789abcd  "}
    if body_type == "ndjson":
        sent = await client.post(
            "/logs", content=msgspec.json.encode(record) + b"\n", headers={"content-type": "application/x-ndjson"}
        )
    else:
        sent = await client.post("/logs", json=record if body_type == "json" else [{"message": "fine"}, record])
    assert sent.status_code == 400, sent.text
    (detail,) = sent.json()["error"]["details"]
    assert detail["field"] == "id" and "8-4-4-4-12" in detail["reason"]
    assert await all_messages(client) == []  # nothing stored, reads unaffected


# -- GET /logs/recent --------------------------------------------------------------------------


@pytest.fixture
async def seeded(client: httpx.AsyncClient) -> httpx.AsyncClient:
    now = int(time.time() * 1000)
    records = [
        {"message": "api info", "service": "api", "timestamp": now - 5000},
        {"message": "api ERROR disk", "service": "api", "severity": "error", "timestamp": now - 4000},
        {"message": "billing warning", "service": "billing", "severity": "warning", "timestamp": now - 3000},
        {
            "message": "billing critical disk",
            "service": "billing",
            "severity": "critical",
            "timestamp": now - 2000,
            "log_type": "audit",
        },
        {"message": "debug noise", "service": "api", "severity": "debug", "timestamp": now - 1000},
        {"message": "yesterday-ish", "service": "api", "timestamp": now - 25 * 3600 * 1000},
    ]
    assert (await client.post("/logs", json=records)).status_code == 201
    return client


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, ["debug noise", "billing critical disk", "billing warning", "api ERROR disk", "api info"]),
        ({"service": "billing"}, ["billing critical disk", "billing warning"]),
        ({"log_type": "audit"}, ["billing critical disk"]),
        ({"severity": "error"}, ["api ERROR disk"]),
        ({"severity": "error,CRITICAL"}, ["billing critical disk", "api ERROR disk"]),
        ({"min_severity": "warning"}, ["billing critical disk", "billing warning", "api ERROR disk"]),
        ({"min_severity": "warn", "service": "api"}, ["api ERROR disk"]),
        ({"q": "DISK"}, ["billing critical disk", "api ERROR disk"]),
        (
            {"since": "26h"},
            ["debug noise", "billing critical disk", "billing warning", "api ERROR disk", "api info", "yesterday-ish"],
        ),
        ({"since": "4500ms", "until": "1500ms"}, ["billing critical disk", "billing warning", "api ERROR disk"]),
        ({"limit": 2}, ["debug noise", "billing critical disk"]),
    ],
)
async def test_recent_filters(seeded: httpx.AsyncClient, params: dict, expected: list[str]) -> None:
    response = await seeded.get("/logs/recent", params=params)
    assert response.status_code == 200
    body = response.json()
    assert [r["message"] for r in body["logs"]] == expected
    assert body["count"] == len(expected)


async def test_recent_time_bounds_accept_iso_and_epoch(seeded: httpx.AsyncClient) -> None:
    logs = (await seeded.get("/logs/recent")).json()["logs"]
    middle = logs[2]
    by_iso = await seeded.get("/logs/recent", params={"until": middle["datetime"]})
    by_ms = await seeded.get("/logs/recent", params={"until": str(middle["timestamp"])})
    assert [r["message"] for r in by_iso.json()["logs"]] == [r["message"] for r in by_ms.json()["logs"]]
    assert [r["message"] for r in by_ms.json()["logs"]] == ["api ERROR disk", "api info"]


async def test_cursor_paging_visits_each_record_once(client: httpx.AsyncClient) -> None:
    now = int(time.time() * 1000)
    await client.post("/logs", json=[{"message": f"m{i}", "timestamp": now - i // 4} for i in range(53)])
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 10} | ({"cursor": cursor} if cursor else {})
        body = (await client.get("/logs/recent", params=params)).json()
        seen.extend(r["message"] for r in body["logs"])
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 6
    assert sorted(seen) == sorted(f"m{i}" for i in range(53)) and len(seen) == 53


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"limit": "\uff11\uff10"}, "limit"),  # full-width digits: int() reads them, no client means them
        ({"since": "\u0661h"}, "since"),  # Arabic-Indic digits
        ({"severity": "loud"}, "severity"),
        ({"min_severity": "loud"}, "min_severity"),
        ({"since": "last tuesday"}, "since"),
        ({"since": "1h", "until": "2h"}, "until"),
        ({"cursor": "!!!"}, "cursor"),
        ({"cursor": "AAAA"}, "cursor"),
        ({"cursor": "gAAAAAAAAAAAAAAAAAAAAA"}, "cursor"),  # no stored id (it answered 500: the schemathesis trial)
        ({"servce": "api"}, "servce"),
        ({"service": "a b"}, "service"),  # no record has such a name
        ({"log_type": "x/y"}, "log_type"),
    ],
)
async def test_recent_bad_parameters_are_400(client: httpx.AsyncClient, params: dict, field: str) -> None:
    response = await client.get("/logs/recent", params=params)
    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "invalid_query"
    assert [d["field"] for d in error["details"]] == [field]


async def test_an_empty_filter_is_not_given_and_follow_false_is_no_follow(client: httpx.AsyncClient) -> None:
    """As a form sends its empty fields: service= was 400 where severity=, since= and the others were left out, and
    follow=false was 400 ("must be true")."""
    unfiltered = (await client.get("/logs/recent", params={"limit": "5"})).json()["logs"]
    for empty in ("service", "log_type", "severity", "min_severity", "since", "until", "cursor", "q", "follow"):
        response = await client.get("/logs/recent", params={"limit": "5", empty: ""})
        assert response.status_code == 200 and response.json()["logs"] == unfiltered, (empty, response.text)
    for no in ("false", "0", "False"):
        response = await client.get("/logs/recent", params={"limit": "5", "follow": no})
        assert response.status_code == 200 and "follow_cursor" not in response.json(), response.text  # (as without)
    refused = await client.get("/logs/recent", params={"follow": "maybe"})
    assert refused.status_code == 400 and error_of(refused)["details"][0]["field"] == "follow"


async def test_an_unknown_parameter_is_told_every_parameter_recent_takes(client: httpx.AsyncClient) -> None:
    error = error_of(await client.get("/logs/recent", params={"foo": "1"}))
    assert error["details"][0]["reason"].endswith("limit, cursor, follow, after"), error  # follow too


# -- GET /logs/{logId} -------------------------------------------------------------------------


async def test_get_by_id(client: httpx.AsyncClient) -> None:
    sent = {
        "message": "find me",
        "service": "svc",
        "log_type": "audit",
        "severity": "warning",
        "attributes": {"user": {"id": 7, "roles": ["a", "b"]}},
        "timestamp": "2026-11-20T10:00:00.250Z",
    }
    log_id = (await client.post("/logs", json=sent)).json()["logId"]
    response = await client.get(f"/logs/{log_id}")
    assert response.status_code == 200
    got = response.json()
    assert got == {
        "logId": log_id,
        "timestamp": 1_795_168_800_250,
        "datetime": "2026-11-20T10:00:00.250Z",
        "service": "svc",
        "log_type": "audit",
        "severity": "warning",
        "message": "find me",
        "attributes": {"user": {"id": 7, "roles": ["a", "b"]}},
    }


@pytest.mark.parametrize("log_id", ["b685ef48-bb39-496a-894b-a85fb8f5999d", "not-a-uuid", "x" * 500, "%00", "%C3%28"])
async def test_unknown_ids_are_404(client: httpx.AsyncClient, log_id: str) -> None:
    response = await client.get(f"/logs/{log_id}")
    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"
    malformed = log_id != "b685ef48-bb39-496a-894b-a85fb8f5999d"  # names no record either way, and says why
    assert ("log ids are UUIDs" in error_of(response)["message"]) == malformed


async def test_a_long_id_is_not_echoed_whole_and_unknown_parameters_are_refused(client: httpx.AsyncClient) -> None:
    response = await client.get(f"/logs/{'x' * 5000}")
    assert response.status_code == 404
    message = error_of(response)["message"]
    assert "not a log id (5000 characters)" in message and "UUIDs" in message
    assert len(response.content) < 500 and "x" * 65 not in message
    log_id = (await client.post("/logs", json={"message": "kept"})).json()["logId"]
    for path in (f"/logs/{log_id}", f"/logs/{'x' * 5000}"):
        response = await client.get(path, params={"fields": "message"})
        assert response.status_code == 400, response.text
        error = error_of(response)
        assert error["code"] == "invalid_query"
        assert error["details"] == [
            {"index": None, "field": "fields", "reason": "unknown parameter; GET /logs/{logId} takes none"}
        ]


# -- auth, scopes, limits ----------------------------------------------------------------------


async def test_credentials_are_required(app: LoglakeApp) -> None:
    async with asgi_client(app) as anonymous:
        for method, path in [
            ("POST", "/logs"),
            ("GET", "/logs/recent"),
            ("GET", f"/logs/{uuid.uuid4()}"),
            ("GET", "/metrics"),
            ("GET", "/admin/keys"),
        ]:
            response = await anonymous.request(method, path, json={"message": "x"} if method == "POST" else None)
            assert response.status_code == 401, path
            assert error_of(response)["code"] == "unauthorized"
            assert response.headers["www-authenticate"].startswith("Bearer")
        assert (await anonymous.get("/healthz")).status_code == 200
        assert (await anonymous.get("/openapi.json")).status_code == 200
    async with asgi_client(app, "llk_wrong") as wrong:
        assert (await wrong.get("/logs/recent")).status_code == 401
    async with asgi_client(app) as odd:
        response = await odd.get("/logs/recent", headers={"authorization": "Token dXNlcjpwYXNz"})
        assert response.status_code == 401 and "Bearer" in error_of(response)["message"]
        # Basic credentials carry the key as their password: user:pass names no key.
        response = await odd.get("/logs/recent", headers={"authorization": "Basic dXNlcjpwYXNz"})
        assert response.status_code == 401 and "invalid or revoked" in error_of(response)["message"]


async def test_scopes(app: LoglakeApp) -> None:
    async with asgi_client(app, key_for(app, "ingest")) as ingest_only:
        assert (await ingest_only.post("/logs", json={"message": "x"})).status_code == 201
        response = await ingest_only.get("/logs/recent")
        assert response.status_code == 403 and "read" in error_of(response)["message"]
        assert (await ingest_only.get("/admin/keys")).status_code == 403
    async with asgi_client(app, key_for(app, "read")) as read_only:
        assert (await read_only.get("/logs/recent")).status_code == 200
        assert (await read_only.post("/logs", json={"message": "x"})).status_code == 403


async def test_admin_key_api_and_immediate_revocation(client: httpx.AsyncClient, app: LoglakeApp) -> None:
    created = await client.post("/admin/keys", json={"name": "shipper", "scopes": ["ingest"]})
    assert created.status_code == 201
    secret = created.json()["secret"]
    listed = (await client.get("/admin/keys")).json()["keys"]
    assert "shipper" in [k["name"] for k in listed]
    assert secret not in json.dumps(listed)
    async with asgi_client(app, secret) as shipper:
        assert (await shipper.post("/logs", json={"message": "x"})).status_code == 201
        assert (await client.delete("/admin/keys/shipper")).status_code == 200
        assert (await shipper.post("/logs", json={"message": "x"})).status_code == 401
    assert (await client.delete("/admin/keys/shipper")).status_code == 404
    duplicate = await client.post("/admin/keys", json={"name": "test-admin", "scopes": ["read"]})
    assert duplicate.status_code == 409 and error_of(duplicate)["code"] == "key_exists"
    bad = await client.post("/admin/keys", json={"name": "x", "scopes": ["root"]})
    assert bad.status_code == 400 and "scopes" in error_of(bad)["message"]
    for spec in (
        {"name": "x", "scopes": [1]},
        {"name": "x", "scopes": {"a": 1}},
        {"name": 5},
        [1],
        {"name": "x", "rate_limit": -1},
    ):
        assert (await client.post("/admin/keys", json=spec)).status_code == 400, spec


async def test_keys_changed_by_another_process_apply_at_once(app: LoglakeApp, settings: Settings) -> None:
    from loglake.keys import KeyStore

    other = KeyStore(settings.data_dir)  # what `loglake keys create` in another process does
    try:
        secret = other.create("from-cli", frozenset({"read"})).secret
        async with asgi_client(app, secret) as c:
            assert (await c.get("/logs/recent")).status_code == 200
            other.revoke("from-cli")
            assert (await c.get("/logs/recent")).status_code == 401
    finally:
        other.close()


async def test_rate_limit_answers_429_with_retry_after(app: LoglakeApp) -> None:
    async with asgi_client(app, key_for(app, "read", rate_limit=0.5, rate_burst=3)) as limited:
        statuses = [(await limited.get("/logs/recent")).status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        response = await limited.get("/logs/recent")
        assert response.status_code == 429
        assert int(response.headers["retry-after"]) >= 1
        assert error_of(response)["code"] == "rate_limited"
    async with asgi_client(app, key_for(app, "read")) as other_key:  # buckets are per key
        assert (await other_key.get("/logs/recent")).status_code == 200


async def test_storage_full_is_503_then_recovers(settings: Settings) -> None:
    app = LoglakeApp.from_settings(replace(settings, max_store_mb=1))
    try:
        async with asgi_client(app, key_for(app)) as client:
            big = [{"message": "z" * 200_000} for _ in range(4)]
            statuses = []
            for _ in range(10):
                statuses.append((await client.post("/logs", json=big)).status_code)
                if statuses[-1] != 201:
                    break
            assert statuses[-1] == 503
            stored = len(await all_messages(client))
            assert stored == 4 * (len(statuses) - 1)
            response = await client.post("/logs", json=big)
            assert response.status_code == 503 and response.headers["retry-after"]
            assert "nothing was written" in error_of(response)["message"]
            assert str(settings.data_dir) not in response.text  # server paths are for operators
            health = await client.get("/healthz")
            assert health.status_code == 503 and health.json()["store"]["writable"] is False
            assert str(settings.hot_db_path) in health.json()["store"]["error"]  # an admin's /healthz
            assert "free space on the data dir's disk, or raise max_store_mb" in health.json()["store"]["error"]

            app.store.set_max_size(0)  # the disk has room again
            assert (await client.post("/logs", json=big)).status_code == 201
            assert len(await all_messages(client)) == stored + 4
            assert (await client.get("/healthz")).json()["status"] == "ok"
    finally:
        app.close()


# -- operations --------------------------------------------------------------------------------


async def test_request_ids(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz", headers={"x-request-id": "trace-123"})
    assert response.headers["x-request-id"] == "trace-123"
    a, b = (await client.get("/healthz")), (await client.get("/logs/nothing/here"))
    assert a.headers["x-request-id"] != b.headers["x-request-id"]
    odd = await client.get("/healthz", headers={"x-request-id": "bad id with spaces"})
    assert odd.headers["x-request-id"] != "bad id with spaces"


async def test_unknown_routes_and_methods(client: httpx.AsyncClient) -> None:
    response = await client.get("/nope/nothing")  # (a single segment is an Elasticsearch index)
    assert response.status_code == 404 and error_of(response)["code"] == "not_found"
    response = await client.put("/logs", json={})
    assert response.status_code == 405 and response.headers["allow"] == "POST"
    assert error_of(response)["code"] == "method_not_allowed"
    # (an exporter given the server's address for its endpoint posts to /: told where records go, a new-user trial)
    root = await client.post("/", content=b"{}", headers={"content-type": "application/json"})
    assert root.status_code == 405 and "POST /logs (loglake's own), /v1/logs (OTLP)" in error_of(root)["message"]


async def test_metrics(client: httpx.AsyncClient) -> None:
    await client.post("/logs", json=[{"message": "a", "service": "api", "severity": "error"}, {"message": "b"}])
    await client.post("/logs", json=[{"message": ""}])
    await client.get("/logs/recent")
    text = (await client.get("/metrics")).text
    assert 'loglake_http_requests_total{route="/logs",status="201"} 1' in text
    assert 'loglake_http_requests_total{route="/logs",status="400"} 1' in text
    assert 'loglake_records_ingested_total{service="api",severity="error"} 1' in text
    assert 'loglake_records_ingested_total{service="default",severity="info"} 1' in text
    assert 'loglake_records_rejected_total{reason="message"} 1' in text
    assert 'loglake_http_request_duration_seconds_bucket{route="/logs/recent",le="+Inf"} 1' in text
    assert "loglake_store_write_duration_seconds_count 1" in text


async def test_metrics_name_each_family_and_series_once(client: httpx.AsyncClient) -> None:
    """The text format allows one HELP/TYPE group per name; scrapers drop or warn on a family given twice."""
    await client.post("/logs", json=[{"message": "a"}])
    lines = (await client.get("/metrics")).text.splitlines()
    families = [line.split()[2] for line in lines if line.startswith("# TYPE ")]
    assert "loglake_protocol_records_total" in families
    assert len(families) == len(set(families)), sorted(f for f in families if families.count(f) > 1)
    series = [line.rsplit(" ", 1)[0] for line in lines if line and not line.startswith("#")]
    assert len(series) == len(set(series))


async def test_clients_field_names_never_become_metric_labels(client: httpx.AsyncClient) -> None:
    strays = [{"message": "x", f"stray_{i}_{'k' * 1000}": 1} for i in range(50)]
    assert (await client.post("/logs", json=strays)).status_code == 400
    text = (await client.get("/metrics")).text
    assert 'loglake_records_rejected_total{reason="unknown_field"} 50' in text
    assert "stray_" not in text


async def test_openapi_and_docs(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    assert spec["openapi"].startswith("3.")
    assert {"/logs", "/logs/recent", "/logs/{logId}", "/healthz", "/metrics"} <= set(spec["paths"])
    params = {p["name"] for p in spec["paths"]["/logs/recent"]["get"]["parameters"]}
    recent = {"service", "log_type", "severity", "min_severity", "since", "until", "q", "limit", "cursor"}
    assert params == recent | {"follow", "after"}
    docs = await client.get("/docs")
    assert docs.status_code == 200 and docs.headers["content-type"].startswith("text/html")
    assert "GET /logs/recent" in docs.text


@pytest.mark.parametrize(
    "body",
    [
        b'{"message": "caf\xe9"}',
        b'{"message": "ok", "attributes": {"k\xfe": "v"}}',
        b'[{"message": "ok"}, {"message": "ok", "attributes": {"k": "v\xff"}}]',
    ],
)
async def test_bytes_that_are_not_utf8_are_400_and_reads_keep_working(client: httpx.AsyncClient, body: bytes) -> None:
    response = await client.post("/logs", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert "UTF-8" in error_of(response)["message"]
    assert (await client.get("/logs/recent")).status_code == 200
    assert await all_messages(client) == []


async def test_a_retried_client_id_answers_the_stored_time(client: httpx.AsyncClient) -> None:
    client_id = str(uuid.uuid4())
    first = (await client.post("/logs", json={"id": client_id, "message": "once"})).json()
    time.sleep(0.005)
    again = (await client.post("/logs", json={"id": client_id, "message": "once"})).json()
    assert again == first | {"duplicate": True}


async def test_a_record_whose_client_id_was_stored_before_is_counted_ingested_once(client: httpx.AsyncClient) -> None:
    """Stored once, counted once: a retry (alone, or in a batch beside a new record) is no record ingested again."""
    client_id = str(uuid.uuid4())
    record = {"id": client_id, "message": "once", "service": "payments", "severity": "error"}
    await client.post("/logs", json=record)
    await client.post("/logs", json=record)
    answer = (await client.post("/logs", json=[record, {**record, "id": str(uuid.uuid4())}])).json()
    assert answer["duplicates"] == 1
    text = (await client.get("/metrics")).text
    assert 'loglake_records_ingested_total{service="payments",severity="error"} 2' in text


async def test_the_last_admin_key_cannot_lock_everyone_out(client: httpx.AsyncClient, app: LoglakeApp) -> None:
    response = await client.delete("/admin/keys/test-admin")
    assert response.status_code == 409 and "last active admin key" in error_of(response)["message"]
    assert "from the CLI: loglake keys revoke NAME --force" in error_of(response)["message"]
    second = (await client.post("/admin/keys", json={"name": "admin-2", "scopes": ["admin"]})).json()["secret"]
    assert (await client.delete("/admin/keys/test-admin")).status_code == 200
    async with asgi_client(app, second) as c:
        assert (await c.get("/admin/keys")).status_code == 200


async def test_a_secret_sent_without_a_scheme_is_not_echoed(app: LoglakeApp) -> None:
    secret = key_for(app, "read")
    async with asgi_client(app) as c:
        response = await c.get("/logs/recent", headers={"authorization": secret})
    assert response.status_code == 401 and secret not in response.text


async def test_time_parameters_give_hints(client: httpx.AsyncClient) -> None:
    seconds = await client.get("/logs/recent", params={"since": "1790000000"})
    assert seconds.status_code == 400 and "epoch seconds" in error_of(seconds)["message"]
    plus = await client.get("/logs/recent?since=2026-11-22T00:00:00+00:00")
    assert plus.status_code == 400 and "%2B" in error_of(plus)["message"]
    assert (await client.get("/logs/recent", params={"since": "0"})).status_code == 200


async def test_head_index_and_admin_body_checks(client: httpx.AsyncClient) -> None:
    head = await client.head("/healthz")
    assert head.status_code == 200 and head.content == b""
    assert (await client.get("/")).json()["docs"] == "/docs"
    form = await client.post(
        "/admin/keys", content=b"name=x", headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert form.status_code == 415
    extra = await client.post("/admin/keys", json={"name": "x", "scopes": ["read"], "owner": "me"})
    assert extra.status_code == 400 and "owner" in error_of(extra)["message"]


async def test_a_record_older_than_the_retention_is_refused_not_accepted_then_deleted(settings: Settings) -> None:
    now_ms = 1_795_000_000_000  # 2026-11-18T...Z
    app = LoglakeApp.from_settings(replace(settings, retention_days=30), clock=lambda: now_ms / 1000)
    try:
        async with asgi_client(app, key_for(app)) as client:
            kept_from = "2026-10-19T00:00:00.000Z"  # midnight UTC, 30 days before today
            old = {"message": "from before the retention", "timestamp": "2026-10-18T23:59:59Z"}
            for body, content_type in [(old, "application/json"), ([{"message": "fresh"}, old], "application/json")]:
                response = await client.post("/logs", json=body, headers={"content-type": content_type})
                assert response.status_code == 400
                (problem,) = error_of(response)["details"]
                assert problem["field"] == "timestamp" and kept_from in problem["reason"]
            oldest_kept = {"message": "the first day kept", "timestamp": kept_from}
            assert (await client.post("/logs", json=oldest_kept)).status_code == 201
            assert app.lake is not None
            with app.lake.maintenance():
                app.lake.flush(everything=True)
                assert app.lake.expire() == []  # what ingest took, retention keeps
    finally:
        app.close()


@pytest.mark.parametrize(
    ("method", "path", "status", "meant"),
    [
        ("GET", "/metric", 404, "/metrics"),  # (taken for an Elasticsearch index: index_not_found_exception)
        ("POST", "/log", 405, "/logs"),  # (an index's method Elasticsearch does not serve)
        ("GET", "/logs/recentt", 404, "/logs/recent"),  # (taken for a log id)
        ("GET", "/logs/recent/x", 404, "/logs/recent"),
        ("GET", "/alertz/a/b", 404, None),
    ],
)
async def test_a_mistyped_path_is_told_the_path_it_likely_meant(
    client: httpx.AsyncClient, method: str, path: str, status: int, meant: str | None
) -> None:
    """A mistyped path reaches a template (an Elasticsearch index's calls, a log id) and was answered in its terms
    alone ("no such index [metric]")."""
    response = await client.request(method, path, json={"message": "m"} if method == "POST" else None)
    assert response.status_code == status, response.text
    if meant is None:
        assert "did you mean" not in response.text
    else:
        assert f"(did you mean {meant}?)" in response.text


async def test_a_record_refused_as_a_whole_is_counted_as_the_record(client: httpx.AsyncClient) -> None:
    """An event of invalid JSON was counted as `not_an_object`, which a new user read as what was wrong with it: a
    problem of the record as a whole (no JSON, JSON too deep, not an object) is the record's."""
    refused = await client.post("/services/collector/event", content=b'{"event":"a"}{bad')
    assert refused.status_code == 400, refused.text
    text = (await client.get("/metrics")).text
    assert 'loglake_records_rejected_total{reason="record"} 1' in text, [t for t in text.splitlines() if "reject" in t]
    assert "not_an_object" not in text
