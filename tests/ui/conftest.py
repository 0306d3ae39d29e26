"""The web UI in a real browser: Debian's Chromium driven by Playwright, against a real `loglake serve`
holding records sent through POST /logs. One server and one browser per test module; each test gets a
fresh browser context (no cookies), signs in through /login, and may save screenshots to build/."""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import sync_playwright

import loglake.rules
from loglake.alerts.db import open_alerts_db
from tests.alerts.receivers import insert_alert
from tests.amplify.logs import access_log, varied_requests
from tests.conftest import ServerProcess, free_port, run_cli
from tests.ui.chromium import CHROMIUM, CHROMIUM_ARGS

SCREENSHOTS = Path(__file__).parents[2] / "build" / "ui-screenshots"
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
STARTER_RULES = Path(loglake.rules.__file__).parent / "starter"
CRITICAL_RULE = "app-critical-record.yml"


@dataclass
class Loglake:
    server: ServerProcess
    admin_key: str
    read_key: str
    now_ms: int  # when the fixture's records were sent; they lie in the hour before

    @property
    def url(self) -> str:
        return self.server.url

    def client(self, key: str | None = None) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"authorization": f"Bearer {key or self.admin_key}"}, timeout=10)

    def send(self, records: list[dict]) -> None:
        with self.client() as c:
            answer = c.post(
                "/logs",
                content="\n".join(json.dumps(r) for r in records),
                headers={"content-type": "application/x-ndjson"},
            )
            assert answer.status_code in (200, 201), answer.text


def records_for(now_ms: int) -> list[dict]:
    """Three services over the 55 minutes before now_ms (inside the UI's default range, the last hour):
    api (info, with a status attribute; every 20th an error), worker (warnings), billing (one critical
    record with a phrase to find)."""
    records = []
    for i in range(120):
        t = now_ms - 55 * 60_000 + i * 25_000
        records.append(
            {
                "timestamp": t,
                "service": "api",
                "severity": "error" if i % 20 == 0 else "info",
                "log_type": "access",
                "message": f"GET /orders/{i} answered",
                "attributes": {"http": {"status": 500 if i % 20 == 0 else 200}, "region": "eu-west-1"},
            }
        )
        if i % 4 == 0:
            records.append(
                {
                    "timestamp": t + 5,
                    "service": "worker",
                    "severity": "warning",
                    "log_type": "job",
                    "message": f"job {i} slow",
                }
            )
    records.append(
        {
            "timestamp": now_ms - 10 * 60_000,
            "service": "billing",
            "severity": "critical",
            "log_type": "app",
            "message": "payment gateway timed out",
        }
    )
    return records


@pytest.fixture(scope="module")
def loglake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loglake]:
    folder = tmp_path_factory.mktemp("ui")
    rules = folder / "rules"
    rules.mkdir()
    shutil.copy(STARTER_RULES / CRITICAL_RULE, rules)
    # three days of an Amplify app's traffic, imported as `loglake amplify import` does
    log = folder / "shop.csv"
    log.write_bytes(access_log(varied_requests(300, int(time.time() * 1000) - 3 * DAY_MS, 3 * DAY_MS)))
    imported = run_cli("amplify", "import", str(log), "--app", "shop", "--data-dir", str(folder / "data"))
    assert imported.exit_code == 0, imported.output
    with serving(folder, "--rules-dir", str(rules)) as lake:
        yield lake


@contextmanager
def serving(folder: Path, *args: str) -> Iterator[Loglake]:
    """`loglake serve` on the data dir folder/data with the fixture's records, an admin and a read key."""
    # records older than the hot window (5 min) move to the lake within a second: pages read both
    args = ("--flush-interval-seconds", "1", *args)
    server = ServerProcess(folder / "data", free_port(), folder / "server.log", args).start(timeout=60)
    try:
        admin_key = server.admin_key()
        with httpx.Client(base_url=server.url, headers={"authorization": f"Bearer {admin_key}"}) as c:
            read_key = c.post("/admin/keys", json={"name": "reader", "scopes": ["read"]}).json()["secret"]
        lake = Loglake(server, admin_key, read_key, int(time.time() * 1000))
        lake.send(records_for(lake.now_ms))
        _wait_for_a_lake_file(lake)
        yield lake
    finally:
        server.stop()


def _wait_for_a_lake_file(lake: Loglake, timeout: float = 60.0) -> None:
    """Until the background flush has moved the records older than the hot window: the pages' tests read
    both places (a busy machine took longer than the first page did to open)."""
    deadline = time.monotonic() + timeout
    with lake.client() as c:
        while not re.search(r'^loglake_lake_files\{table="logs"\} [1-9]', c.get("/metrics").text, re.M):
            if time.monotonic() > deadline:
                pytest.fail(f"the server moved no records to the lake in {timeout:g} s")
            time.sleep(0.1)


@pytest.fixture(scope="module")
def browser() -> Iterator:
    if shutil.which(CHROMIUM) is None:
        pytest.fail(
            f"the browser tests drive Debian's chromium at {CHROMIUM}: apt-get install chromium (make test does)"
        )
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def context(browser):
    ctx = browser.new_context(viewport={"width": 1280, "height": 800}, accept_downloads=True)
    ctx.set_default_timeout(10_000)
    yield ctx
    ctx.close()


@pytest.fixture
def page(context):
    """A page whose script errors fail the test (a module that does not load leaves the page blank)."""
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    yield opened
    assert errors == []


def sign_in(page, loglake: Loglake, key: str | None = None) -> None:
    page.context.clear_cookies()  # (signed in already, /login goes on to the UI: a person signs out first)
    page.goto(loglake.url + "/login")
    page.get_by_label("API key").fill(key or loglake.admin_key)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/ui/**")
    page.locator("#nav a").first.wait_for()


def screenshot(page, name: str) -> None:
    """The page in both themes, for a person to look at (build/ui-screenshots/, not checked in)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for theme in ("light", "dark"):
        page.emulate_media(color_scheme=theme)
        page.screenshot(path=str(SCREENSHOTS / f"{name}-{theme}.png"))
    page.emulate_media(color_scheme="light")


def no_horizontal_scroll(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")


def raise_alert(loglake: Loglake, **fields: object) -> None:
    """An alert in the server's alerts.db, as a rule's run makes one (tests.alerts.receivers.insert_alert's fields)."""
    conn = open_alerts_db(loglake.server.data_dir)
    try:
        insert_alert(conn, **fields)
    finally:
        conn.close()
