"""The rule routes take a rule as `loglake rules` does (rules.model.find_rule): its id, the start of one
no other id starts with, or its file's name; the start of several is a 400 naming them, of none a 404."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from loglake.alerts.db import open_alerts_db
from loglake.api.app import LoglakeApp
from loglake.config import Settings
from tests.alerts.rows import T0, insert_alert
from tests.conftest import asgi_client, key_for
from tests.rules.conftest import write_rule

FIRST_ID = "5eaf00d5-0000-4000-8000-000000000001"
SECOND_ID = "5eaf1111-0000-4000-8000-000000000002"
RULE = """
title: Many records in a minute ({n})
id: {id}
level: low
schedule: 1m
lookback: 1m
query: SELECT count(*) AS records FROM logs HAVING count(*) > 1000000
"""


@pytest.fixture
def rules_app(tmp_path: Path) -> Iterator[LoglakeApp]:
    write_rule(tmp_path / "rules", "first.yml", RULE.format(n=1, id=FIRST_ID))
    write_rule(tmp_path / "rules", "second.yml", RULE.format(n=2, id=SECOND_ID))
    app = LoglakeApp.from_settings(
        Settings(data_dir=tmp_path / "data", rules_dir=str(tmp_path / "rules"), access_log="off")
    )
    app.runtime.rules.folder.reload()  # as the server's first round does
    yield app
    app.close()


@pytest.fixture
async def reader(rules_app: LoglakeApp) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(rules_app, key_for(rules_app, "read")) as c:
        yield c


@pytest.mark.parametrize("given", ["5eaf0", "5EAF00D5", FIRST_ID, "first", "first.yml"])
async def test_a_backtest_takes_a_unique_start_of_an_id_or_the_file_name(reader: httpx.AsyncClient, given: str) -> None:
    answer = await reader.post(f"/rules/{given}/backtest", json={"since": "2m"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["rule_id"] == FIRST_ID


async def test_the_start_of_several_ids_is_a_400_naming_them(reader: httpx.AsyncClient) -> None:
    for method, path, body in [
        ("POST", "/rules/5eaf/backtest", {"since": "2m"}),
        ("POST", "/rules/5eaf/test", None),
        ("GET", "/rules/5eaf", None),
    ]:
        answer = await reader.request(method, path, json=body)
        assert answer.status_code == 400, answer.text
        error = answer.json()["error"]
        assert error["code"] == "ambiguous_rule_id"
        assert f"'5eaf' is the start of 2 rules' ids ({FIRST_ID}, {SECOND_ID}); give more of it" in error["message"]


async def test_the_start_of_no_id_is_a_404(reader: httpx.AsyncClient) -> None:
    answer = await reader.post("/rules/5eaf2/backtest", json={"since": "2m"})
    assert answer.status_code == 404
    assert answer.json()["error"]["message"] == "no rule with id '5eaf2' is loaded; GET /rules lists them"


async def test_the_tests_route_takes_the_file_name_with_its_extension(reader: httpx.AsyncClient) -> None:
    answer = await reader.post("/rules/first.yml/test")
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"tests": [], "passed": 0, "failed": 0}


@pytest.mark.parametrize("given", ["5eaf0", "first.yml", FIRST_ID.upper()])
async def test_alerts_of_a_rule_are_listed_by_the_start_of_its_id_or_its_file_name(
    rules_app: LoglakeApp, reader: httpx.AsyncClient, given: str
) -> None:
    conn = open_alerts_db(rules_app.settings.data_dir)
    try:
        mine = insert_alert(conn, T0, rule_id=FIRST_ID)
        insert_alert(conn, T0 + 1, rule_id=SECOND_ID)
    finally:
        conn.close()
    answer = await reader.get("/alerts", params={"rule": given})
    assert answer.status_code == 200, answer.text
    assert [a["id"] for a in answer.json()["alerts"]] == [mine]


async def test_alerts_of_a_rule_no_longer_loaded_are_listed_by_its_whole_id(
    rules_app: LoglakeApp, reader: httpx.AsyncClient
) -> None:
    gone = "0b7e0a3c-1111-4222-8333-444455556666"
    conn = open_alerts_db(rules_app.settings.data_dir)
    try:
        mine = insert_alert(conn, T0, rule_id=gone)
    finally:
        conn.close()
    answer = await reader.get("/alerts", params={"rule": gone})
    assert [a["id"] for a in answer.json()["alerts"]] == [mine]


@pytest.mark.parametrize(("given", "status", "code"), [("5eaf", 400, "ambiguous_rule_id"), ("5eaf2", 404, "not_found")])
async def test_alerts_of_an_ambiguous_or_unknown_rule_are_refused_as_the_rule_routes_refuse_it(
    reader: httpx.AsyncClient, given: str, status: int, code: str
) -> None:
    answer = await reader.get("/alerts", params={"rule": given})
    assert answer.status_code == status, answer.text
    assert answer.json()["error"]["code"] == code
