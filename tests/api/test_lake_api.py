"""The lake over HTTP: POST /query, GET /tables, search, histogram, and reads that reach flushed records."""

from __future__ import annotations

import asyncio
import os
import re
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from loglake.api.app import LoglakeApp
from loglake.config import Settings
from loglake.lake.layout import app_logs_key
from loglake.lake.manifest import LakeFile, add_files
from loglake.lake.tables import APP_LOGS_TABLE
from tests.conftest import asgi_client, key_for, threads_waiting_for_a_fifo_writer
from tests.lake.test_query import LOGS_COLUMNS

NOW_MS = 1_793_577_600_000  # 2026-11-02T00:00:00Z
HOUR = 3_600_000


pytestmark = pytest.mark.clock_at(NOW_MS)  # the `app` fixture's: records are placed from it


async def send(client: httpx.AsyncClient, records: list[dict]) -> list[str]:
    response = await client.post("/logs", json=records)
    assert response.status_code == 201, response.text
    return response.json()["logIds"]


def rec(minutes_ago: float, message: str, **fields: object) -> dict:
    ts = NOW_MS - int(minutes_ago * 60_000)
    return {"timestamp": ts, "service": "api", "severity": "info", "message": message} | fields


@pytest.fixture
async def seeded(client: httpx.AsyncClient) -> list[str]:
    """30 records, one every 50 minutes from 10 minutes ago back over two days."""
    records = [
        rec(
            m * 50 + 10,
            f"request {m} {'ERROR timeout talking to db' if m % 5 == 0 else 'ok'}",
            service=("api", "web", "db")[m % 3],
            severity="error" if m % 5 == 0 else "info",
            attributes={"user": f"U{m % 4}", "http": {"status": 500 if m % 5 == 0 else 200}},
        )
        for m in range(30)
    ]
    return await send(client, records)


def flush_all(app: LoglakeApp) -> int:
    assert app.lake is not None
    with app.lake.maintenance():
        return app.lake.flush(everything=True).records


async def test_query_answers_over_hot_and_lake_with_stats(
    app: LoglakeApp, client: httpx.AsyncClient, seeded: list[str]
) -> None:
    assert flush_all(app) == 30
    await send(client, [rec(1, "fresh and hot")])
    response = await client.post("/query", json={"sql": "SELECT count(*) AS n, count(DISTINCT log_id) FROM logs"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["rows"] == [[31, 31]]
    assert body["columns"][0] == {"name": "n", "type": "BIGINT"}
    assert body["files_scanned"] >= 1 and body["bytes_scanned"] > 0
    assert body["truncated"] is False and body["elapsed_ms"] > 0

    rows = (
        await client.post("/query", json={"sql": "SELECT timestamp, date FROM logs ORDER BY 1 DESC", "limit": 2})
    ).json()
    assert rows["truncated"] is True and len(rows["rows"]) == 2
    assert rows["rows"][0] == ["2026-11-01T23:59:00.000Z", "2026-11-01"]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"sql": "COPY (SELECT 1) TO 'x.csv'"}, "read_only"),
        ({"sql": "SELECT * FROM read_csv('/etc/passwd')"}, "forbidden"),
        ({"sql": "SET threads = 1"}, "read_only"),
        ({"sql": "SELECT 1; SELECT 2"}, "invalid_query"),
        ({"sql": "SELECT"}, "invalid_query"),
        ({"sql": 42}, "invalid_request"),
        ({"query": "SELECT 1"}, "invalid_request"),
        ({"sql": "SELECT 1", "limit": -1}, "invalid_request"),
        ({"sql": "SELECT 1", "timeout_seconds": 0}, "invalid_request"),
        ([1, 2], "invalid_request"),
        # values past Python's (it answered 500): the schemathesis trial
        ({"sql": "SELECT [INTERVAL 1000000000 DAY] AS l"}, "value_out_of_range"),
    ],
)
async def test_bad_queries_are_400s_that_say_why(client: httpx.AsyncClient, body: object, code: str) -> None:
    response = await client.post("/query", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"sql": "SELECT 1", "limit": "5"}, "limit"),
        ({"sql": "SELECT 1", "limit": 0}, "limit"),  # it answered rows [] and truncated true
        ({"sql": "SELECT 1", "timeout_seconds": 5e-324}, "timeout_seconds"),  # no time at all: it ran the query
        ({"sql": "SELECT 1", "timeout_seconds": 0.009}, "timeout_seconds"),
        ({"sql": 42}, "sql"),
        ({"sql": "SELECT 1", "explain": "yes"}, "explain"),
        ({"sql": "SELECT 1", "window": 1}, "window"),
    ],
)
async def test_a_bad_query_request_names_its_field(client: httpx.AsyncClient, body: object, field: str) -> None:
    response = await client.post("/query", json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["code"], error["details"][0]["field"]) == ("invalid_request", field)


async def test_a_limit_below_1_is_not_told_it_was_a_string(client: httpx.AsyncClient) -> None:
    """A new user sent {"limit": 0} and read "(a number, not a string)"."""
    as_number = (await client.post("/query", json={"sql": "SELECT 1", "limit": 0})).json()["error"]["message"]
    as_text = (await client.post("/query", json={"sql": "SELECT 1", "limit": "5"})).json()["error"]["message"]
    assert as_number == "limit must be a positive integer (at least 1)"
    assert as_text == "limit must be a positive integer (a number, not a string)"
    as_boolean = (await client.post("/query", json={"sql": "SELECT 1", "limit": True})).json()["error"]["message"]
    as_fraction = (await client.post("/query", json={"sql": "SELECT 1", "limit": 2.5})).json()["error"]["message"]
    assert as_boolean == "limit must be a positive integer (a whole number, not true)"  # was "not a string"
    assert as_fraction == "limit must be a positive integer (a whole number, not 2.5)"


# What reached the engine's settings, catalog and server paths through the sandbox (issue 11).
CATALOG_READS = [
    "SELECT * FROM pg_catalog.pg_settings",
    "SELECT * FROM pg_settings",
    "SELECT * FROM duckdb_settings()",
    "SELECT * FROM duckdb_views()",
    "SELECT * FROM duckdb_views",
    "SELECT * FROM information_schema.tables",
    "SELECT * FROM information_schema.views",
    "SELECT * FROM pg_views",
    "SELECT * FROM memory.main.logs",
    "SELECT * FROM temp.logs",
    "SELECT * FROM _hot_logs",
    "SHOW ALL TABLES",
    "DESCRIBE pg_settings",
    "SELECT * FROM logs WHERE message IN (SELECT value FROM pg_settings)",
    "SELECT (SELECT max(sql) FROM pg_views) FROM logs",
    # a WITH name is a table only in its own scope: outside it (or in its own definition) the catalog's
    "WITH pg_settings AS (SELECT count(*) FROM pg_settings) SELECT * FROM pg_settings",
    "SELECT (SELECT count(*) FROM pg_views) FROM (WITH pg_views AS (SELECT 1) SELECT * FROM pg_views)",
    "WITH a AS (SELECT * FROM b), b AS (SELECT 1) SELECT * FROM a",
    # a recursive WITH's name is its own table in the recursive branch only: in the first, the catalog's
    "WITH RECURSIVE duckdb_views AS (SELECT view_name, sql FROM duckdb_views UNION ALL"
    " SELECT view_name, sql FROM duckdb_views WHERE false) SELECT * FROM duckdb_views",
    "WITH RECURSIVE _hot_stream AS (SELECT * FROM _hot_stream UNION ALL SELECT * FROM _hot_stream WHERE false)"
    " SELECT count(*) FROM _hot_stream",
    'WITH RECURSIVE "lake/**/*.parquet" AS (SELECT * FROM "lake/**/*.parquet" UNION ALL'
    ' SELECT * FROM "lake/**/*.parquet" WHERE false) SELECT count(*) FROM "lake/**/*.parquet"',
    "SELECT * FROM (WITH RECURSIVE t AS (SELECT 1 AS x UNION ALL SELECT x FROM t, pg_settings WHERE false)"
    " SELECT * FROM t)",
    "SELECT * FROM histogram(logs, severity)",
    "SELECT * FROM main.range(3)",
    "SELECT current_setting('temp_directory')",
    "SELECT getvariable('x')",
    "SELECT version()",
    "SELECT current_database(), current_schema()",
    "SELECT system.main.current_database()",
    "SELECT in_search_path('memory', 'main')",
    "SELECT pg_get_viewdef(oid) FROM (SELECT 1 AS oid)",
    "SELECT format_type(1, 1)",
    "SELECT get_block_size('memory')",
    "SELECT pg_postmaster_start_time()",
    "SELECT json_serialize_plan('SELECT * FROM logs')",
    "SELECT txid_current()",
    "SELECT setseed(0.5)",
]


@pytest.mark.parametrize("sql", CATALOG_READS)
async def test_the_engines_settings_catalog_and_paths_are_out_of_reach(
    client: httpx.AsyncClient, settings: Settings, sql: str
) -> None:
    response = await client.post("/query", json={"sql": sql})
    assert (response.status_code, response.json()["error"]["code"]) == (400, "forbidden"), response.text[:300]
    assert "GET /tables" in response.json()["error"]["message"]
    assert str(settings.data_dir.resolve()) not in response.text


# Values as large as a number they are given, which DuckDB's memory limit does not count: a security review took a
# server to 6 GB with the first (a list of 2e8 items: 14 GB).
UNBOUNDED_VALUES = [
    "SELECT length(repeat('x', 3000000000))",
    "SELECT len(range(200000000))",
    "SELECT len(generate_series(1, 200000000))",
    "SELECT u FROM unnest(range(1000000000)) t(u)",
    "SELECT length(lpad('x', 1500000000, 'y'))",
    "SELECT length(rpad(message, 1500000000, 'y')) FROM logs",
    "SELECT length(repeat(message, length(message))) FROM logs",
    "SELECT len(list_resize([1], 200000000))",
    "SELECT length(printf('%1500000000s', 'x'))",
    "SELECT length(printf('%.*f', 1500000000, 1.5))",
    "SELECT length(format('{:>1500000000}', 'x'))",
    "SELECT length(format('{:>{}}', 'x', 1500000000))",
    "SELECT * FROM range(repeat('x', 100000000))",
    # sizes within the bound made one beyond it (1 GB, 200 MB a row, 2.4 GB over the records: an adversarial trial)
    "SELECT length(repeat(repeat(repeat('x', 1000), 1000), 1000))",
    "SELECT len(list_resize([], 10000, repeat('x', 10000)))",
    "SELECT length(repeat(message, 2000)) FROM logs",
    "SELECT length(repeat('abc', 5000))",
]


@pytest.mark.parametrize("sql", UNBOUNDED_VALUES)
async def test_a_value_as_large_as_a_number_is_bounded(client: httpx.AsyncClient, sql: str) -> None:
    response = await client.post("/query", json={"sql": sql})
    assert (response.status_code, response.json()["error"]["code"]) == (400, "query_too_large"), response.text[:300]
    assert "at most 10,000" in response.json()["error"]["message"]


async def test_values_of_bounded_sizes_and_rows_of_any_number_answer(client: httpx.AsyncClient) -> None:
    answers = {
        "SELECT repeat('-', 3), lpad('7', 3, '0'), rpad('a', 2, '.')": [["---", "007", "a."]],
        "SELECT range(3), generate_series(1, 5, 2), len(range(0, 10000, 1))": [[[0, 1, 2], [1, 3, 5], 10000]],
        "SELECT printf('%5d|%-3s|%.2f', 42, 'a', 3.14159), format('{:>4}|{{}}', 'x')": [["   42|a  |3.14", "   x|{}"]],
        "SELECT count(*) FROM range(20000000)": [[20000000]],  # (rows stream: no bound)
    }
    for sql, rows in answers.items():
        response = await client.post("/query", json={"sql": sql})
        assert response.status_code == 200 and response.json()["rows"] == rows, (sql, response.text[:300])


async def test_the_readmes_queries_and_row_making_functions_answer(
    app: LoglakeApp, client: httpx.AsyncClient, seeded: list[str]
) -> None:
    flush_all(app)
    examples = re.findall(r'"((?:SELECT|WITH) [^"]+)"', (Path(__file__).parents[2] / "README.md").read_text())
    assert len(examples) >= 5
    examples += [
        "SELECT sum(i) FROM range(3) r(i)",
        "SELECT count(*) FROM generate_series(1, 10)",
        "SELECT u FROM unnest([1, 2]) t(u)",
        "SELECT key, count(*) FROM logs, json_each(attributes) GROUP BY key ORDER BY key",
        "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t WHERE n < 3) SELECT max(n) FROM t",
        "WITH e AS (SELECT * FROM logs WHERE severity = 'error'), s AS (SELECT service FROM e) SELECT count(*) FROM s",
        "DESCRIBE logs",
    ]
    for sql in examples:
        response = await client.post("/query", json={"sql": sql})
        assert response.status_code == 200, (sql, response.text)
    keys = await client.post("/query", json={"sql": examples[-4]})
    assert keys.json()["rows"] == [["http", 30], ["user", 30]]


async def test_query_needs_the_read_scope(app: LoglakeApp) -> None:
    async with asgi_client(app, key_for(app, "ingest")) as ingest_only:
        response = await ingest_only.post("/query", json={"sql": "SELECT 1"})
    assert response.status_code == 403
    async with asgi_client(app, key_for(app, "read")) as reader:
        assert (await reader.post("/query", json={"sql": "SELECT 1"})).json()["rows"] == [[1]]


async def test_tables_lists_columns_and_partitions(
    app: LoglakeApp, client: httpx.AsyncClient, seeded: list[str]
) -> None:
    flush_all(app)
    await send(client, [rec(1, "hot one")])
    logs, amplify, alerts = (await client.get("/tables")).json()["tables"]
    assert (logs["name"], amplify["name"], alerts["name"]) == ("logs", "amplify_access", "alerts")
    assert alerts["live"] and alerts["partition_keys"] == []
    assert amplify["partition_keys"] == ["app", "date"] and amplify["lake_records"] == 0
    assert [c["name"] for c in logs["columns"]] == LOGS_COLUMNS
    assert logs["partition_keys"] == ["date"]
    assert [(p["date"], p["records"]) for p in logs["partitions"]] == [("2026-10-31", 1), ("2026-11-01", 29)]
    assert (logs["lake_records"], logs["hot_records"]) == (30, 1)


async def test_recent_and_get_reach_flushed_records(
    app: LoglakeApp, client: httpx.AsyncClient, seeded: list[str]
) -> None:
    before = (await client.get("/logs/recent", params={"since": "2d", "limit": 7})).json()
    flush_all(app)
    after = (await client.get("/logs/recent", params={"since": "2d", "limit": 7})).json()
    assert after["logs"] == before["logs"]
    page2 = (
        await client.get("/logs/recent", params={"since": "2d", "limit": 7, "cursor": after["next_cursor"]})
    ).json()
    assert [r["logId"] for r in after["logs"] + page2["logs"]] == seeded[:14]  # ids from newest (m=0) on
    only_db_errors = (
        await client.get("/logs/recent", params={"since": "2d", "service": "db", "severity": "error"})
    ).json()
    assert {(r["service"], r["severity"]) for r in only_db_errors["logs"]} == {("db", "error")}
    assert only_db_errors["count"] == 2

    record = (await client.get(f"/logs/{seeded[3]}")).json()
    assert record["message"] == "request 3 ok" and record["attributes"] == {"user": "U3", "http": {"status": 200}}
    assert (await client.get("/logs/0190f0f0-0000-7000-8000-000000000000")).status_code == 404


@pytest.mark.parametrize("client_id", ["5b3f4c6e-8a5d-4b8e-9a51-2f1d7a3c9e10", "019a2b3c-4d5e-7f60-8a1b-2c3d4e5f6a7b"])
async def test_a_client_id_keeps_working_after_its_record_is_flushed(
    app: LoglakeApp, client: httpx.AsyncClient, client_id: str
) -> None:
    sent = (await client.post("/logs", json=rec(90, "sent with a client id", id=client_id))).json()
    assert "duplicate" not in sent
    flush_all(app)
    found = await client.get(f"/logs/{client_id}")
    assert found.status_code == 200 and found.json()["logId"] == sent["logId"]
    retried = await client.post("/logs", json=rec(90, "sent with a client id", id=client_id))
    assert retried.json()["logId"] == sent["logId"]  # the retry stores nothing new
    assert retried.json()["duplicate"] is True  # (and says so: what it held this time was not stored)
    in_batch = await client.post("/logs", json=[rec(1, "new"), rec(90, "sent with a client id", id=client_id)])
    assert in_batch.json()["logIds"][1] == sent["logId"] and in_batch.json()["duplicates"] == 1
    fresh = await client.post("/logs", json=[rec(1, "new too"), rec(2, "and new")])
    assert "duplicates" not in fresh.json()
    count = await client.post("/query", json={"sql": f"SELECT count(*) FROM logs WHERE client_id = '{client_id}'"})
    assert count.json()["rows"] == [[1]]


async def test_search_finds_words_phrases_fields_and_attributes(
    app: LoglakeApp, client: httpx.AsyncClient, seeded: list[str]
) -> None:
    flush_all(app)
    await send(client, [rec(2, "hot: Timeout talking to cache", service="web", severity="warning")])

    async def messages(q: str, **params: object) -> list[str]:
        response = await client.get("/logs/search", params={"q": q, "since": "2d"} | params)
        assert response.status_code == 200, response.text
        return [r["message"] for r in response.json()["logs"]]

    assert await messages("TIMEOUT") == ["hot: Timeout talking to cache"] + [
        f"request {m} ERROR timeout talking to db" for m in (0, 5, 10, 15, 20, 25)
    ]
    web_timeouts = ["request 10 ERROR timeout talking to db", "request 25 ERROR timeout talking to db"]
    assert await messages('"talking to db" service:web') == web_timeouts
    assert await messages("timeout -db") == ["hot: Timeout talking to cache"]
    assert await messages("severity:warning") == ["hot: Timeout talking to cache"]
    assert await messages("message:cache") == ["hot: Timeout talking to cache"]
    assert await messages("user:u1 http.status:200") == [f"request {m} ok" for m in (1, 9, 13, 17, 21, 29)]
    assert await messages("timeout", since="1h") == [  # the window applies
        "hot: Timeout talking to cache",
        "request 0 ERROR timeout talking to db",
    ]
    first = (await client.get("/logs/search", params={"q": "request", "since": "2d", "limit": 20})).json()
    rest = (
        await client.get("/logs/search", params={"q": "request", "since": "2d", "cursor": first["next_cursor"]})
    ).json()
    assert [r["logId"] for r in first["logs"] + rest["logs"]] == seeded


# Attribute keys in any language, holding dots, spaces and other characters (search_terms.py).
SPECIAL_KEYS = [
    rec(1, "cyrillic key", attributes={"ключ": "Значение"}),
    rec(2, "dotted key", attributes={"a.b": "x"}),
    rec(3, "nested key", attributes={"a": {"b": "x"}}),
    rec(4, "dotted key inside", attributes={"http": {"x.y": 5}}),
    rec(5, "space and at", attributes={"sp ace": "Yes", "@t": "x", "back\\slash": "b", "service": "attr"}),
]
KEY_SEARCHES = [
    ("ключ:значение", ["cyrillic key"]),
    ('"a.b":x', ["dotted key"]),
    ("a.b:x", ["dotted key", "nested key"]),  # unquoted: nested keys, or else the one key with the dots
    ('http."x.y":5', ["dotted key inside"]),
    ('"sp ace":yes @t:X', ["space and at"]),
    ("back\\slash:b", ["space and at"]),
    ('"service":attr', ["space and at"]),  # quoted: the attribute, not the record's service
    ('-"a.b":x a.b:x', ["nested key"]),
    ("a.b:* -a.b:y*", ["dotted key", "nested key"]),  # a key that is there (field:*), a value's start
    ("ключ:ЗНАЧ*", ["cyrillic key"]),
    ("DOTT* *", ["dotted key", "dotted key inside"]),  # words match anywhere: a trailing * changes nothing
    ("-a.b:* -ключ:X* back\\slash:*", ["space and at"]),
]


async def test_a_client_id_is_found_in_the_case_it_was_sent(app: LoglakeApp, client: httpx.AsyncClient) -> None:
    sent = "0B7E3F2A-5C1D-4E8F-9A6B-1C2D3E4F5A6B"
    await send(client, [rec(1, "upper case id", id=sent)])
    for where in ("hot", "lake"):
        for q in (f"client_id:{sent}", f"client_id:{sent.lower()}"):
            found = (await client.get("/logs/search", params={"q": q, "since": "1h"})).json()["logs"]
            assert [(r["message"], r["id"]) for r in found] == [("upper case id", sent.lower())], (where, q)
        if where == "hot":
            assert flush_all(app) == 1


async def test_search_reaches_attribute_keys_in_any_language_and_with_dots(
    app: LoglakeApp, client: httpx.AsyncClient
) -> None:
    await send(client, SPECIAL_KEYS)
    for where in ("hot", "lake"):
        for q, messages in KEY_SEARCHES:
            response = await client.get("/logs/search", params={"q": q, "since": "1h"})
            assert response.status_code == 200, response.text
            assert [r["message"] for r in response.json()["logs"]] == messages, (where, q)
        if where == "hot":
            assert flush_all(app) == len(SPECIAL_KEYS)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"q": '"unclosed'}, "q"),
        ({"q": "severity:loud"}, "q"),
        ({"q": "service:"}, "q"),
        ({"q": "a..b:x"}, "q"),
        ({"q": "*mess"}, "q"),  # a * only alone or at the end
        ({"q": "service:w*b"}, "q"),
        ({"q": '"":x'}, "q"),
        ({"q": 'a."b"c:x'}, "q"),
        ({"since": "yesterday"}, "since"),
        ({"bogus": "1"}, "bogus"),
    ],
)
async def test_bad_searches_are_400s(client: httpx.AsyncClient, params: dict, field: str) -> None:
    response = await client.get("/logs/search", params=params)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["details"][0]["field"] == field


async def test_histogram_counts_per_bucket_and_severity(
    app: LoglakeApp, client: httpx.AsyncClient, seeded: list[str]
) -> None:
    flush_all(app)
    body = (await client.get("/logs/histogram", params={"since": "25h", "interval": "5h"})).json()
    assert body["interval_ms"] == 5 * HOUR and body["total"] == 30
    since, until = NOW_MS - 25 * HOUR, NOW_MS
    starts = [b["start_ms"] for b in body["buckets"]]  # aligned to the epoch, covering [since, until)
    assert starts == list(range(since // (5 * HOUR) * 5 * HOUR, until, 5 * HOUR))
    assert sum(b["counts"]["error"] for b in body["buckets"]) == 6
    assert all(b["total"] == sum(b["counts"].values()) for b in body["buckets"])
    auto = (await client.get("/logs/histogram", params={"since": "2h", "q": "timeout", "buckets": "120"})).json()
    assert auto["interval_ms"] == 60_000 and auto["bucket_seconds"] == 60 and len(auto["buckets"]) == 120
    assert auto["total"] == 1  # of the records 10, 60 and 110 minutes old, only the first timed out


async def test_a_histogram_given_no_until_counts_the_records_stamped_after_now_as_search_shows_them(
    client: httpx.AsyncClient,
) -> None:
    """A trial: search (and facets) given no `until` showed a record stamped two hours ahead of now (a clock
    ahead), which the histogram, ending at now, left out of its total."""
    await send(client, [rec(10, "clock drift"), rec(-120, "clock drift"), rec(-180, "unrelated")])
    search = (await client.get("/logs/search", params={"q": "drift", "since": "1h"})).json()
    body = (await client.get("/logs/histogram", params={"q": "drift", "since": "1h"})).json()
    assert body["total"] == search["count"] == 2
    assert body["until"] == "2026-11-02T02:00:00.001Z"  # just past the newest match (not the unrelated record's)
    assert body["interval_ms"] == 5 * 60_000 and body["buckets"][-1]["counts"]["info"] == 1
    # with `until`, the window asked for
    now = (await client.get("/logs/histogram", params={"q": "drift", "since": "1h", "until": "now"})).json()
    assert now["total"] == 1 and now["until"] == "2026-11-02T00:00:00.000Z"
    # only a match reaches past now
    none_ahead = (await client.get("/logs/histogram", params={"q": "drift -clock", "since": "1h"})).json()
    assert none_ahead["total"] == 0 and none_ahead["until"] == "2026-11-02T00:00:00.000Z"
    many = await client.get("/logs/histogram", params={"q": "drift", "since": "1h", "interval": "1s"})
    assert many.json()["error"]["details"][0]["reason"].endswith(
        "(it runs to 2026-11-02T02:00:00.001Z, the newest match, stamped after now)"
    )


@pytest.mark.parametrize(
    ("since", "buckets", "seconds", "count"),
    [
        ("2h", None, 300, 24),  # 60 asked by default: 2 min rounds up to 5 min
        ("1h", "60", 60, 60),
        ("1h", "7", 15 * 60, 4),  # 8.6 min rounds up to 15 min
        ("25h", "60", 30 * 60, 50),
        ("7d", "60", 3 * 3600, 56),
        ("7d", "1", 7 * 86400, 2),  # past a day, whole days; buckets start at multiples from the epoch
        ("50s", "10", 5, 10),
        ("10s", "100", 1, 10),
    ],
)
async def test_histogram_buckets_round_up_to_a_nice_size(
    client: httpx.AsyncClient, seeded: list[str], since: str, buckets: str | None, seconds: int, count: int
) -> None:
    params = {"since": since, "until": "2026-11-02T00:00:00Z"}
    if buckets is not None:
        params["buckets"] = buckets
    body = (await client.get("/logs/histogram", params=params)).json()
    assert body["bucket_seconds"] == seconds and len(body["buckets"]) == count, body["bucket_seconds"]


@pytest.mark.parametrize(
    ("url", "field"),
    [
        ("/logs/recent?since=17950000000000000000000", "since"),
        ("/logs/search?q=x&since=99999999999999d", "since"),
        ("/logs/histogram?since=0001-01-01T00:00:00Z&interval=100000d", "since"),
        ("/logs/histogram?since=2d&interval=99999999999999999999d", "interval"),
        ("/logs/histogram?since=2d&interval=1s", "interval"),
        ("/logs/histogram?since=9999-12-31T23:59:59Z", "since"),
        ("/logs/histogram?since=2d&buckets=0", "buckets"),
        ("/logs/histogram?since=2d&buckets=many", "buckets"),
        ("/logs/histogram?since=2d&buckets=10001", "buckets"),
        ("/logs/histogram?since=2d&buckets=10&interval=1h", "buckets"),
    ],
)
async def test_times_and_intervals_out_of_range_are_400s(client: httpx.AsyncClient, url: str, field: str) -> None:
    response = await client.get(url)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["details"][0]["field"] == field


async def test_too_many_buckets_says_how_to_have_fewer(client: httpx.AsyncClient) -> None:
    response = await client.get("/logs/histogram", params={"since": "2d", "interval": "1s"})
    assert response.json()["error"]["details"][0]["reason"] == (
        "gives more than 10000 buckets over this window; use a larger interval or a shorter window"
    )


@pytest.mark.parametrize(
    "url",
    [
        "/logs/recent?since=9999-12-31T23:59:59Z",
        "/logs/search?q=x&since=6500-01-01T00:00:00Z&until=9999-12-31T00:00:00Z",
        "/logs/recent?since=2026-10-30",
        "/logs/histogram?since=1972-01-01",
    ],
)
async def test_far_but_valid_windows_answer(client: httpx.AsyncClient, seeded: list[str], url: str) -> None:
    assert (await client.get(url)).status_code == 200


async def test_long_sql_neither_blocks_reads_nor_queues_beyond_its_slots(
    app: LoglakeApp, client: httpx.AsyncClient, seeded: list[str]
) -> None:
    flush_all(app)
    slow = {"sql": "SELECT count(*) FROM range(100000000000) a", "timeout_seconds": 6}
    running = [asyncio.create_task(client.post("/query", json=slow)) for _ in range(app.settings.query_concurrency)]
    await asyncio.sleep(0.3)
    busy = await client.post("/query", json={"sql": "SELECT 1"})  # every SQL slot is taken now
    assert busy.status_code == 503 and busy.headers["retry-after"]
    reads = [
        await client.get("/logs/recent", params={"since": "2d"}),
        await client.get(f"/logs/{seeded[5]}"),
        await client.get("/logs/search", params={"q": "timeout", "since": "2d"}),
        await client.get("/logs/histogram", params={"since": "2d"}),
    ]
    assert [r.status_code for r in reads] == [200] * 4
    assert not any(task.done() for task in running), "reads waited for the SQL queries to end"
    assert {(await task).json()["error"]["code"] for task in running} == {"query_timeout"}


async def test_a_query_past_its_spill_space_is_refused_while_ingest_goes_on(settings: Settings) -> None:
    bounded = replace(settings, query_memory_mb=100, query_spill_mb=16, query_threads=1)
    application = LoglakeApp.from_settings(bounded, clock=lambda: NOW_MS / 1000)
    try:
        async with asgi_client(application, key_for(application, "admin")) as client:
            # about 400 MB to sort: more than its memory and its spill space together
            big_sort = "SELECT i, repeat('x', 100) AS pad FROM range(3000000) t(i) ORDER BY hash(i)"
            sorting = asyncio.create_task(client.post("/query", json={"sql": big_sort}))
            during = await client.post("/logs", json=rec(1, "while the query sorts"))
            refused = await sorting
            after = await client.post("/logs", json=rec(1, "after the query"))
            stored = await client.get("/logs/recent", params={"since": "1h"})
    finally:
        application.close()
    assert (refused.status_code, refused.json()["error"]["code"]) == (400, "query_too_large"), refused.text[:300]
    assert "16 MiB" in refused.json()["error"]["message"] and "query_spill_mb" in refused.json()["error"]["message"]
    assert (during.status_code, after.status_code) == (201, 201)
    assert [r["message"] for r in stored.json()["logs"]] == ["after the query", "while the query sorts"]


async def test_an_answer_past_the_size_cap_is_a_400_asking_for_less(settings: Settings) -> None:
    application = LoglakeApp.from_settings(replace(settings, query_max_response_mb=1), clock=lambda: NOW_MS / 1000)
    wide = "SELECT i, repeat('x', 10000) AS x FROM range(6000) t(i)"  # 60 MB of JSON
    try:
        async with asgi_client(application, key_for(application, "read")) as client:
            refused = await client.post("/query", json={"sql": wide})
            some = await client.post("/query", json={"sql": wide, "limit": 8})
            narrower = await client.post("/query", json={"sql": wide.replace("repeat('x', 10000)", "'x'")})
    finally:
        application.close()
    assert (refused.status_code, refused.json()["error"]["code"]) == (400, "response_too_large")
    assert "query_max_response_mb" in refused.json()["error"]["message"]
    assert "fewer rows (limit)" in refused.json()["error"]["message"]
    assert (some.status_code, some.json()["row_count"], some.json()["truncated"]) == (200, 8, True)
    assert (narrower.status_code, narrower.json()["row_count"]) == (200, 6000)


async def test_slow_searches_never_hold_up_recent_records_or_lookups(
    app: LoglakeApp, client: httpx.AsyncClient
) -> None:
    # Searches that cannot finish: a lake file of ten days ago is a FIFO, which DuckDB blocks opening
    # until a writer comes. They take every search thread; recent (the last 24 h) and get still answer.
    assert app.lake is not None
    day = datetime.fromtimestamp(NOW_MS / 1000 - 10 * 86_400, UTC)
    key = app_logs_key(day.date(), "part-blocking.parquet")
    fifo = app.lake.objects.root / key
    fifo.parent.mkdir(parents=True)
    os.mkfifo(fifo)
    listed = LakeFile(
        key, APP_LOGS_TABLE.name, day.date().isoformat(), int(day.timestamp() * 1000), NOW_MS - 9 * 86_400_000, 1, 1
    )
    app.store.in_write_transaction(lambda conn: add_files(conn, [listed], NOW_MS)).result()
    (log_id,) = await send(client, [rec(1, "find me")])
    searches = [asyncio.create_task(client.get("/logs/search", params={"q": "x", "since": "30d"})) for _ in range(4)]
    try:
        for _ in range(400):
            if threads_waiting_for_a_fifo_writer() == 2:  # the engine's two connections for internal reads
                break
            await asyncio.sleep(0.05)
        assert threads_waiting_for_a_fifo_writer() == 2, "the searches did not reach their lake file"
        recent = await client.get("/logs/recent")
        found = await client.get(f"/logs/{log_id}")
        assert not any(search.done() for search in searches), "recent or get waited for a search to give up"
    finally:
        # Let the searches go: a writer releases those waiting, and with the FIFO gone the others fail on it.
        writer = os.open(fifo, os.O_RDWR)
        fifo.unlink()
        os.close(writer)
        await asyncio.gather(*searches)
    assert recent.status_code == 200 and [r["message"] for r in recent.json()["logs"]] == ["find me"]
    assert found.status_code == 200 and found.json()["message"] == "find me"


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-ndjson"])
async def test_a_query_in_another_media_type_is_told_the_one_it_takes(
    client: httpx.AsyncClient, content_type: str
) -> None:
    response = await client.post("/query", content=b'{"sql": "SELECT 1"}', headers={"content-type": content_type})
    assert response.status_code == 415
    message = response.json()["error"]["message"]
    assert "send one JSON object as application/json" in message and "or application/x-ndjson" not in message


@pytest.mark.parametrize("which", [0, -1])  # DuckDB reads the first file's schema when the view is made
async def test_a_lake_file_missing_from_storage_is_a_503_saying_what_to_do_not_a_500(
    app: LoglakeApp, client: httpx.AsyncClient, seeded: list[str], which: int
) -> None:
    """The 503 said to retry shortly, with Retry-After: 1, though a removed or damaged file does not come back."""
    assert flush_all(app) == 30
    files = sorted((app.settings.data_dir / "lake").rglob("*.parquet"))
    assert len(files) > 1
    files[which].unlink()  # as if removed between the listing and the reading
    for request in (
        client.post("/query", json={"sql": "SELECT count(*) FROM logs"}),
        client.get("/logs/search", params={"q": "request", "since": "3d"}),
        client.get("/logs/recent", params={"since": "3d", "limit": 100}),  # read from the files directly
        client.get("/logs/histogram", params={"since": "3d", "interval": "1h"}),
    ):
        response = await request
        assert response.status_code == 503, response.text
        assert "retry-after" not in response.headers
        assert response.json()["error"]["code"] == "lake_unreadable"  # (it was `busy`: the server's load, it said)
        message = response.json()["error"]["message"]
        assert "a lake file could not be read from storage" in message and "retry" not in message
        assert "`loglake verify` names the damaged files" in message and "`loglake verify --quarantine`" in message
        assert str(app.settings.data_dir) not in message  # the server's paths stay its own


def cut_short(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def pages_overwritten(path: Path) -> None:
    """Every byte between the leading magic and the footer overwritten: the footer (and its statistics) reads."""
    data = bytearray(path.read_bytes())
    end = len(data) - 8 - int.from_bytes(data[-8:-4], "little")
    data[4:end] = b"\xff" * (end - 4)
    path.write_bytes(bytes(data))


def footer_overwritten(path: Path) -> None:
    """The footer's bytes flipped, its length and magic left: DuckDB's error for it names no file."""
    data = bytearray(path.read_bytes())
    start = len(data) - 8 - int.from_bytes(data[-8:-4], "little")
    data[start:-8] = bytes(b ^ 0x5A for b in data[start:-8])
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", [cut_short, pages_overwritten, footer_overwritten])
async def test_a_damaged_lake_file_is_a_503_naming_it_not_a_500_nor_the_querys_fault(
    app: LoglakeApp, client: httpx.AsyncClient, seeded: list[str], damage: object
) -> None:
    """A part cut short (a disk that lost its end) was a 500 on every SQL query and every read of its days,
    and a part whose pages were overwritten a 400 query_failed ("don't know what type"), for a histogram too."""
    assert flush_all(app) == 30
    lake = app.settings.data_dir / "lake"
    damaged = sorted(lake.rglob("*.parquet"))[0]
    damage(damaged)  # type: ignore[operator]
    for request in (
        client.post("/query", json={"sql": "SELECT severity, max(timestamp) FROM logs GROUP BY 1"}),
        # (a query worker's: lake/sql_growth.py)
        client.post("/query", json={"sql": "SELECT severity, max(message || '.') FROM logs GROUP BY 1"}),
        client.get("/logs/search", params={"q": "request", "since": "3d"}),
        client.get("/logs/recent", params={"since": "3d", "limit": 100}),
        client.get("/logs/histogram", params={"since": "3d", "interval": "1h"}),
    ):
        response = await request
        assert response.status_code == 503, response.text
        message = response.json()["error"]["message"]
        assert "a lake file could not be read" in message and "damaged" in message, message
        assert str(lake) not in message  # the server's paths stay its own
        if damage is not pages_overwritten:  # (Thrift's errors for an overwritten page header name no file; nor for
            assert damaged.relative_to(lake).as_posix() in message  # a footer, but loglake's read of the footers does)


async def test_infinite_times_are_answered_so_from_a_query_worker_too(client: httpx.AsyncClient) -> None:
    """A lambda's query runs in a worker, whose rows are pickled: DuckDB's infinity (datetime.max itself) was
    then any other 9999-12-31 23:59:59.999999."""
    sql = "SELECT list_transform(['infinity'::TIMESTAMP, TIMESTAMP '2026-01-01 00:00:00.000001'], lambda t: t) AS l"
    answer = (await client.post("/query", json={"sql": sql})).json()
    assert answer["rows"] == [[["infinity", "2026-01-01T00:00:00.000001Z"]]]


async def test_a_doubles_nan_and_infinities_are_told_apart_from_null(client: httpx.AsyncClient) -> None:
    """JSON has no number for them: they were null, which read as SQL's NULL (`0.0/0.0` is NaN, not NULL)."""
    sql = "SELECT 0.0/0.0 AS nan, 1.0/0.0 AS inf, -1.0/0.0 AS minus, NULL::DOUBLE AS nothing, 2.5::DOUBLE AS plain"
    answer = (await client.post("/query", json={"sql": sql})).json()
    assert answer["rows"] == [["NaN", "Infinity", "-Infinity", None, 2.5]]
    assert [column["type"] for column in answer["columns"]][:3] == ["DOUBLE"] * 3
