"""The alerts as the SQL table `alerts`: typed columns, always current, joined with `logs`, behind the
same sandbox, in POST /query, GET /tables and `loglake query`; rules cannot read it."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from loglake.alerts.db import open_alerts_db
from loglake.alerts.store import change_status
from loglake.alerts.table import BATCH_ROWS
from loglake.api.app import LoglakeApp
from loglake.config import Settings
from tests.alerts.rows import T0, insert_alert
from tests.conftest import run_cli
from tests.rules.conftest import problems_of, write_rule

README = Path(__file__).parents[2] / "README.md"
ERRORS_RULE = """
id: 5f4c8e12-7a8b-4c2d-9e0f-1a2b3c4d5e6f
title: Errors
level: high
schedule: 1m
delay: 0s
query: SELECT * FROM logs WHERE severity = 'error'
"""


@pytest.fixture
def alerts(settings: Settings) -> Iterator[sqlite3.Connection]:
    conn = open_alerts_db(settings.data_dir)
    yield conn
    conn.close()


async def query(client: httpx.AsyncClient, sql: str) -> dict:
    response = await client.post("/query", json={"sql": sql})
    assert response.status_code == 200, response.text
    return response.json()


async def test_the_columns_are_typed(client: httpx.AsyncClient, alerts: sqlite3.Connection) -> None:
    insert_alert(alerts, destinations=["oncall"])
    answer = await query(
        client,
        "SELECT first_seen, last_seen, window_start, window_end, created, updated, status_at, tags, destinations,"
        " group_values, evidence, match_count, tags[1] AS first_tag, group_values->>'service' AS service FROM alerts",
    )
    types = {c["name"]: c["type"] for c in answer["columns"]}
    assert {types[n] for n in ("first_seen", "last_seen", "window_start", "window_end", "created")} == {"TIMESTAMP"}
    assert (types["status_at"], types["tags"], types["destinations"]) == ("TIMESTAMP", "VARCHAR[]", "VARCHAR[]")
    assert (types["group_values"], types["evidence"], types["match_count"]) == ("VARCHAR", "VARCHAR", "BIGINT")
    (row,) = answer["rows"]
    assert row[0] == "2025-12-03T09:59:00.000Z" and row[4] == "2025-12-03T10:00:00.000Z" and row[6] is None
    assert row[7] == ["attack.t1110", "attack.credential-access"] and row[8] == ["oncall"]
    assert row[12:] == ["attack.t1110", "api"]


async def test_the_table_is_always_current(client: httpx.AsyncClient, alerts: sqlite3.Connection) -> None:
    sql = "SELECT id, status, status_by FROM alerts ORDER BY id"
    assert (await query(client, sql))["rows"] == []
    first = insert_alert(alerts)
    assert (await query(client, sql))["rows"] == [[first, "open", None]]
    change_status(alerts, first, "acknowledged", "alice", None, T0 + 1)
    second = insert_alert(alerts, T0 + 10)
    assert (await query(client, sql))["rows"] == [[first, "acknowledged", "alice"], [second, "open", None]]


async def test_alerts_join_the_records_of_their_evidence(client: httpx.AsyncClient, alerts: sqlite3.Connection) -> None:
    sent = await client.post(
        "/logs", json=[{"message": "login failed for bob", "service": "auth"}, {"message": "fine", "service": "auth"}]
    )
    failed_id = sent.json()["logIds"][0]
    insert_alert(alerts, title="Login failures", evidence=[{"log_id": failed_id, "message": "login failed for bob"}])
    answer = await query(
        client,
        "SELECT a.title, l.message, l.service FROM alerts a, json_each(a.evidence) e"
        " JOIN logs l ON l.log_id = e.value->>'log_id'",
    )
    assert answer["rows"] == [["Login failures", "login failed for bob", "auth"]]


async def test_the_readmes_join_of_alerts_with_their_evidence_finds_the_records(
    client: httpx.AsyncClient, app: LoglakeApp
) -> None:
    """The README's example, over an alert the rules raised: evidence rows are the rule's query's rows, keyed
    as the lake's columns (`log_id`), where the example looked for GET /logs/{id}'s `logId` and found none."""
    (example,) = re.findall(r'"(SELECT a\.title[^"]+json_each\(a\.evidence\)[^"]+)"', README.read_text())
    write_rule(app.settings.rules_path, "errors.yml", ERRORS_RULE)
    now_ms = app.service.now_ms()
    in_first_window = now_ms - now_ms % 60_000 - 30_000  # a rule seen first evaluates its latest window
    sent = await client.post(
        "/logs", json=[{"message": "disk gone", "severity": "error", "timestamp": in_first_window}, {"message": "ok"}]
    )
    assert sent.status_code == 201, sent.text
    scheduler = app.runtime.rules
    scheduler.reload()
    assert [run.new_alerts for _, run in scheduler.run_round().runs] == [1]
    answer = await query(client, example)
    assert [row[0::2] for row in answer["rows"]] == [["Errors", "disk gone"]]


async def test_every_alert_is_read_however_many_batches_they_take(
    client: httpx.AsyncClient, alerts: sqlite3.Connection
) -> None:
    alerts.execute("PRAGMA synchronous = OFF")  # thousands of inserts; durability is not under test here
    for i in range(2 * BATCH_ROWS + 1):
        insert_alert(alerts, T0 + i, level="critical" if i % 2 else "low")
    answer = await query(client, "SELECT level, count(*), count(DISTINCT id) FROM alerts GROUP BY 1 ORDER BY 1")
    assert answer["rows"] == [["critical", BATCH_ROWS, BATCH_ROWS], ["low", BATCH_ROWS + 1, BATCH_ROWS + 1]]


async def test_without_an_alerts_database_the_table_is_empty_and_no_file_is_made(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    assert (await query(client, "SELECT count(*) FROM alerts"))["rows"] == [[0]]
    assert not (settings.data_dir / "alerts.db").exists()


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM 'alerts.db'",
        "SELECT * FROM read_text('alerts.db')",
        "SELECT * FROM read_blob('../alerts.db')",
        "SELECT * FROM sqlite_scan('alerts.db', 'alerts')",
        "SELECT * FROM alerts, read_csv('/etc/passwd')",
    ],
)
async def test_the_sandbox_still_refuses_files(
    client: httpx.AsyncClient, alerts: sqlite3.Connection, settings: Settings, sql: str
) -> None:
    insert_alert(alerts)
    response = await client.post("/query", json={"sql": sql})
    assert (response.status_code, response.json()["error"]["code"]) == (400, "forbidden"), response.text
    assert str(settings.data_dir.resolve()) not in response.text


@pytest.mark.parametrize(
    "sql",
    ["UPDATE alerts SET status = 'resolved'", "DELETE FROM alerts", "DROP VIEW alerts", "CREATE TABLE alerts (x INT)"],
)
async def test_sql_cannot_change_alerts(client: httpx.AsyncClient, alerts: sqlite3.Connection, sql: str) -> None:
    insert_alert(alerts)
    response = await client.post("/query", json={"sql": sql})
    assert (response.status_code, response.json()["error"]["code"]) == (400, "read_only")
    assert (await query(client, "SELECT status FROM alerts"))["rows"] == [["open"]]


async def test_get_tables_lists_the_alerts_columns(client: httpx.AsyncClient) -> None:
    tables = (await client.get("/tables")).json()["tables"]
    (alerts,) = [t for t in tables if t["name"] == "alerts"]
    types = {c["name"]: c["type"] for c in alerts["columns"]}
    assert types["tags"] == "VARCHAR[]" and types["last_seen"] == "TIMESTAMP" and types["evidence"] == "VARCHAR"
    described = (await query(client, "DESCRIBE alerts"))["rows"]
    assert [(name, kind) for name, kind, *_ in described] == list(types.items())


def test_loglake_query_reads_alerts_from_the_data_dir(
    app: LoglakeApp, alerts: sqlite3.Connection, settings: Settings
) -> None:
    insert_alert(alerts, title="Disk full")
    result = run_cli(
        "query", "--data-dir", str(settings.data_dir), "--format", "csv", "SELECT title, level FROM alerts"
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == "title,level\nDisk full,high\n"


def test_loglake_query_reads_alerts_from_a_relative_data_dir(
    app: LoglakeApp, alerts: sqlite3.Connection, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`make run` serves ./loglake-data: the table's read-only URI is made from the absolute path."""
    insert_alert(alerts, title="Disk full")
    monkeypatch.chdir(settings.data_dir.parent)
    result = run_cli("query", "--data-dir", settings.data_dir.name, "--format", "csv", "SELECT title FROM alerts")
    assert result.exit_code == 0, result.output
    assert result.stdout == "title\nDisk full\n"


def test_a_sql_rule_over_alerts_is_refused_when_it_loads(tmp_path: Path) -> None:
    problems = problems_of(
        tmp_path,
        """
        id: 5f4c8e12-7a8b-4c2d-9e0f-1a2b3c4d5e6f
        title: Alerts about alerts
        level: high
        query: SELECT * FROM alerts WHERE level = 'critical'
        """,
    )
    assert [p.field for p in problems] == ["query"]
    assert "'alerts' is not a table here (the tables here: amplify_access, logs)" in problems[0].message


def test_loglake_tables_lists_alerts_with_its_columns(app: LoglakeApp, settings: Settings) -> None:
    result = run_cli("tables", "--data-dir", str(settings.data_dir))
    assert result.exit_code == 0, result.output
    shown = result.stdout.split("\nalerts  ", 1)[1].splitlines()
    assert shown[0].startswith("the alerts detection rules raised")
    assert shown[1].split()[:2] == ["id", "VARCHAR"]
    assert ["tags", "VARCHAR[]"] in [line.split()[:2] for line in shown]
