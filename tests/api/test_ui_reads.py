"""The reads the web UI needs: GET /rules, GET /rules/{id}, POST /rules/{id}/test and /backtest (the
rules of the server's folder with their runs, one rule's source and SQL, its inline tests, a backtest
per day) and GET /amplify/apps."""

from __future__ import annotations

import shutil
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

import loglake.rules
from loglake.amplify.lake_rows import store_rows
from loglake.amplify.parse import parse_access_log
from loglake.amplify.run_reports import AppReport
from loglake.api.app import LoglakeApp
from loglake.config import Settings
from tests.amplify.logs import access_log, varied_requests
from tests.conftest import asgi_client, key_for

STARTER = Path(loglake.rules.__file__).parent / "starter"
CRITICAL = "4d2db06a-8553-43fd-86ab-1c8def4e486d"  # the starter pack's app-critical-record.yml
DAY_MS = 86_400_000


@pytest.fixture
def rules_app(tmp_path: Path) -> Iterator[LoglakeApp]:
    folder = tmp_path / "rules"
    folder.mkdir()
    shutil.copy(STARTER / "app-critical-record.yml", folder)
    (folder / "broken.yml").write_text("title: [unclosed\n")
    application = LoglakeApp.from_settings(
        Settings(data_dir=tmp_path / "data", rules_dir=str(folder), access_log="off")
    )
    application.runtime.rules.folder.reload()  # as the server's first round does
    yield application
    application.close()


@pytest.fixture
async def reader(rules_app: LoglakeApp) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(rules_app, key_for(rules_app, "read")) as c:
        yield c


async def test_the_rules_with_their_problems_and_one_rule_with_source_and_sql(reader: httpx.AsyncClient) -> None:
    listed = (await reader.get("/rules")).json()
    assert [(r["id"], r["title"], r["enabled"], r["last_run"]) for r in listed["rules"]] == [
        (CRITICAL, "Critical record", True, None)
    ]
    assert len(listed["problems"]) == 1 and "broken.yml" in listed["problems"][0]

    rule = (await reader.get(f"/rules/{CRITICAL.upper()}")).json()
    assert rule["source"] == (STARTER / "app-critical-record.yml").read_text()
    assert "severity" in rule["sql"] and rule["runs"] == [] and rule["tests"] == 3

    missing = await reader.get("/rules/no-such-rule")
    assert missing.status_code == 404 and "GET /rules" in missing.json()["error"]["message"]
    long = (await reader.get(f"/rules/{'r' * 5000}")).json()["error"]["message"]
    assert "r" * 64 + "..." in long and "r" * 65 not in long
    unknown = await reader.get(f"/rules/{CRITICAL}", params={"verbose": "1"})
    assert unknown.status_code == 400 and unknown.json()["error"]["details"][0]["field"] == "verbose"


async def test_run_a_rules_tests(reader: httpx.AsyncClient) -> None:
    answer = (await reader.post(f"/rules/{CRITICAL}/test")).json()
    assert (answer["passed"], answer["failed"]) == (3, 0)
    assert [t["name"] for t in answer["tests"]] == [
        "a critical record fires",
        "fatal is critical too",
        "errors are not critical",
    ]


async def test_a_backtest_counts_per_day_what_the_rule_would_have_raised(reader: httpx.AsyncClient, rules_app) -> None:
    today = int(time.time() * 1000) // DAY_MS * DAY_MS
    async with asgi_client(rules_app, key_for(rules_app, "admin")) as admin:
        for day, service in ((today - 2 * DAY_MS, "billing"), (today - DAY_MS, "ledger")):
            record = {"timestamp": day + 3_600_000, "service": service, "severity": "critical", "message": "down"}
            assert (await admin.post("/logs", json=record)).status_code == 201
    since = str(today - 3 * DAY_MS)
    report = (await reader.post(f"/rules/{CRITICAL}/backtest", json={"since": since, "until": str(today)})).json()
    assert report["alerts"] == 2
    assert [(d["day"], d["alerts"]) for d in report["days"] if d["alerts"]] == [
        (time.strftime("%Y-%m-%d", time.gmtime((today - 2 * DAY_MS) / 1000)), 1),
        (time.strftime("%Y-%m-%d", time.gmtime((today - DAY_MS) / 1000)), 1),
    ]


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"since": "yesterday"}, 400, "since"),
        ({"since": "1d", "until": "2d"}, 400, "until must be after since"),
        ({"since": 5}, 400, "must be a time as a string"),
        ({"since": "1d", "extra": 1}, 400, "unknown field"),
    ],
)
async def test_a_bad_backtest_request_says_what_to_send(reader: httpx.AsyncClient, body, status, words) -> None:
    answer = await reader.post(f"/rules/{CRITICAL}/backtest", json=body)
    assert answer.status_code == status
    assert words in answer.json()["error"]["message"]


async def test_a_server_without_rules_says_so(client: httpx.AsyncClient) -> None:
    answer = await client.get("/rules")
    assert answer.status_code == 200 and answer.json()["rules"] == []


async def test_the_amplify_apps_are_those_with_rows_in_the_lake(client: httpx.AsyncClient, app, tmp_path) -> None:
    assert (await client.get("/amplify/apps")).json() == {"apps": []}
    log = tmp_path / "shop.csv"
    log.write_bytes(access_log(varied_requests(5, 1_764_000_000_000, 3_600_000)))
    store_rows(app.store, app.lake.objects, "shop", [parse_access_log(log.read_bytes())], AppReport("shop"), 0)
    assert (await client.get("/amplify/apps")).json() == {"apps": ["shop"]}
