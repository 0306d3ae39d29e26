"""Rules and Amplify in a real browser: the rules list, a rule's page with its tests and a backtest
drawn per day, and an app's saved reports with the collection's status."""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
import time
import uuid
from datetime import UTC, datetime

import pytest
from playwright.sync_api import Error as PlaywrightError

from tests.ui.conftest import raise_alert, screenshot, serving, sign_in

pytestmark = pytest.mark.e2e


def test_a_rules_page_runs_its_tests_and_a_backtest(page, loglake):
    sign_in(page, loglake)
    page.get_by_role("link", name="Rules").click()
    page.get_by_role("link", name="Critical record").click()
    page.wait_for_url("**/ui/rules/4d2db06a-8553-43fd-86ab-1c8def4e486d")
    page.get_by_text("SQL of a run").wait_for()
    # in human units, as the CLI says it (it was "1m, each run over the last 60 s")
    assert page.locator("dd", has_text="each run over").inner_text() == "every 1 min, each run over the last 1 min"
    page.get_by_role("button", name="Run its 3 tests").click()
    page.get_by_text("Tests: 3 passed, 0 failed").wait_for()
    # A 1-minute rule's backtest starts with a day (a week of it, 10,080 windows, ran out of the server's 30 s on
    # a new user's lake); a week is chosen here.
    period = page.get_by_label("Backtest period")
    assert period.input_value() == "1d"
    period.select_option("7d")
    page.get_by_role("button", name="Backtest").click()
    # the fixture's one critical record (billing, ten minutes ago) makes one alert
    heading = page.get_by_role("heading", name=re.compile(r"^Backtest: "))  # 7 days of its 1-minute windows
    heading.wait_for()
    assert re.match(r"Backtest: 1 alert, 1 match, 0 suppressed over 10,080 windows$", heading.inner_text())
    assert page.locator("table.backtest tbody tr").count() >= 7  # a row per day of the last 7 days
    # the chart's axis names days of the range, the last under the last bar (not the day after the range)
    days = page.locator("table.backtest tbody td:first-child").all_inner_texts()
    ticks = page.locator(".chart-box .ticks span")
    # UTC days, as the table's "Day (UTC)" (the chart's axis and tooltips did not say so: a UI trial)
    ends = (f"{days[0][5:]} UTC", f"{days[-1][5:]} UTC")
    assert (ticks.first.inner_text(), ticks.last.inner_text()) == ends, ticks.all_inner_texts()
    chart, last = page.locator(".chart-box svg").bounding_box(), ticks.last.bounding_box()
    last_bar_starts = chart["x"] + chart["width"] * (len(days) - 1) / len(days)
    assert last_bar_starts <= last["x"] + last["width"] / 2 <= chart["x"] + chart["width"], (chart, last)
    # a day's tooltip names its parts as the legend does (it said "critical: 1", the colour's severity)
    tips = page.locator(".chart-box svg g > title").all_text_contents()
    tips = [tip for tip in tips if not tip.endswith(": 0 alerts raised or suppressed")]
    assert tips == [f"{days[-1]} (UTC): 1 alert raised or suppressed\nalerts: 1"], tips
    # a number's header is aligned as its numbers are
    aligned = "e => getComputedStyle(e).textAlign"
    assert page.locator("table.backtest th", has_text="Windows").evaluate(aligned) == "right"
    assert page.locator("table.backtest td.num").first.evaluate(aligned) == "right"
    screenshot(page, "rule")
    page.get_by_role("link", name="Its alerts").click()  # (no way led from a rule to its alerts: the UI trial)
    page.wait_for_url("**/ui/alerts?rule=4d2db06a-8553-43fd-86ab-1c8def4e486d")
    page.get_by_role("button", name="Clear the filters").wait_for()  # (the list of that rule's alerts: none yet)


def test_a_backtest_asked_for_again_is_the_one_shown(page, loglake):
    """A backtest asked for while another ran (a 30-day one, slow, then a day) ran beside it, and the one that
    answered last was drawn: the first's time-out replaced the day's result asked for after it."""
    held = []  # the 30-day backtest, held as a slow server holds it

    def backtests(route):
        if route.request.post_data_json.get("since") == "30d":
            held.append(route)
        else:
            route.continue_()

    page.route("**/rules/*/backtest", backtests)
    sign_in(page, loglake)
    page.goto(f"{loglake.url}/ui/rules/4d2db06a-8553-43fd-86ab-1c8def4e486d")
    period = page.get_by_label("Backtest period")
    period.select_option("30d")
    page.get_by_role("button", name="Backtest").click()
    page.get_by_text("Replaying the last 30d").wait_for()
    period.select_option("1d")
    page.get_by_role("button", name="Backtest").click()
    heading = page.get_by_role("heading", name=re.compile(r"^Backtest: "))
    heading.wait_for()
    assert heading.inner_text().endswith("over 1,440 windows")
    assert len(held) == 1
    timeout = {"error": {"code": "backtest_timeout", "message": "the backtest ran longer than 30 s", "details": []}}
    with contextlib.suppress(PlaywrightError):  # (the page gave it up: nothing to answer)
        held[0].fulfill(status=400, json=timeout)
    page.wait_for_timeout(500)
    assert page.get_by_role("alert").count() == 0
    assert heading.inner_text().endswith("over 1,440 windows")


@pytest.mark.parametrize("rules_page", ["/rules", "/rules/4d2db06a-8553-43fd-86ab-1c8def4e486d"])
def test_a_rules_page_left_before_its_answer_came_is_not_drawn_over_the_next(page, loglake, rules_page):
    """A UI trial: the rules list's (or a rule's) answer, slow to come, was drawn when it came over the page gone to
    meanwhile: the address and the navigation said Alerts, the page showed the rules."""
    held = []  # the rules' answer, held as a slow server holds it
    page.route(lambda url: url == loglake.url + rules_page, lambda route: held.append(route))
    sign_in(page, loglake)
    page.goto(loglake.url + "/ui" + rules_page)
    while not held:  # (routes are handled while Playwright waits)
        page.wait_for_timeout(50)
    page.get_by_role("link", name="Alerts").click()
    page.get_by_role("heading", name="Alerts").wait_for()
    with contextlib.suppress(PlaywrightError):  # (the page gave it up: nothing to answer)
        held[0].continue_()
    page.wait_for_timeout(1000)
    assert page.locator("main h1").all_inner_texts() == ["Alerts"]


def test_an_apps_reports_and_the_collection(page, loglake):
    sign_in(page, loglake)
    page.get_by_role("link", name="Amplify").click()
    assert page.get_by_label("App").input_value() == "shop"
    page.locator("article.report").first.wait_for()
    titles = page.locator("article.report h2").all_inner_texts()
    assert len(titles) == 7
    assert page.locator("article.report svg.chart").count() >= 2  # the per-day reports are charted
    screenshot(page, "amplify")
    # the fixture's server collects on no schedule: the page names the setting that would make it, and the command
    collection = page.get_by_role("region", name="Collection").inner_text()
    assert "This server does not collect on a schedule." in collection, collection
    assert "--amplify-config amplify.json (or LOGLAKE_AMPLIFY_CONFIG)" in collection, collection
    assert "loglake amplify collect --config amplify.json" in collection, collection


def test_a_links_app_with_no_rows_is_the_one_the_picker_shows(page, loglake):
    """A UI trial: /ui/amplify?app=gone (a bookmark of an app since removed) showed "shop" in the picker over the error
    about gone, and picking shop there was no change: nothing happened."""
    sign_in(page, loglake)
    page.goto(f"{loglake.url}/ui/amplify?app=gone&range=7d")
    page.get_by_role("alert").filter(has_text="no rows of app 'gone'").wait_for()
    picker = page.get_by_label("App")
    assert picker.input_value() == "gone"
    assert picker.locator("option").all_inner_texts() == ["gone", "shop"]
    picker.select_option("shop")
    page.wait_for_url("**/ui/amplify?app=shop&range=7d")
    page.locator("article.report").first.wait_for()
    assert picker.locator("option").all_inner_texts() == ["shop"]


def test_a_server_with_no_amplify_app_says_how_to_collect_one(page, tmp_path):
    with serving(tmp_path) as lake:
        sign_in(page, lake)
        page.get_by_role("link", name="Amplify").click()
        empty = page.locator(".empty", has_text="No Amplify app has access logs in the lake yet.")
        said = empty.inner_text()
    assert "JSON configuration" in said and "toml" not in said, said
    assert "--amplify-config amplify.json" in said and "loglake amplify collect --config amplify.json" in said, said
    assert "loglake amplify import" in said, said


def test_a_per_day_reports_chart_draws_its_measure_not_the_requests(page, loglake):
    """ "Bytes served per day" and "Cache hit ratio per day" both charted their first number, the requests: two
    charts alike under titles naming bytes and a ratio."""
    with loglake.client() as c:
        answer = c.get("/amplify/reports", params={"app": "shop", "since": "7d"}).json()
    reports = {r["name"]: r for r in answer["reports"]}
    sign_in(page, loglake)
    page.goto(f"{loglake.url}/ui/amplify?app=shop&range=7d")
    page.locator("article.report svg.chart").first.wait_for()
    for name, column in (("bytes_served", "bytes"), ("cache_hit_ratio", "hit_percent")):
        report = reports[name]
        article = page.locator("article.report", has=page.get_by_role("heading", name=report["title"]))
        chart = article.locator("svg.chart")
        bars = [bar.splitlines()[0] for bar in chart.locator("g > title").all_text_contents()]
        assert [bar.split(": ")[0] for bar in bars] == [f"{row[0]} (UTC)" for row in report["rows"]]
        assert all(bar.endswith(f" {column}") for bar in bars), bars
        # one line: the day and its measure ("info: 123" under it named a colour's severity, not the measure)
        assert all("\n" not in tip for tip in chart.locator("g > title").all_text_contents())
        assert chart.locator("> title").text_content().startswith(f"{column} over time, highest bar ")
    # the axis writes the highest day's bytes as the table does
    highest = max(row[2] for row in reports["bytes_served"]["rows"])
    axis = page.locator("article.report", has_text="Bytes served per day").locator(".axis-max").inner_text()
    cells = page.locator("article.report", has_text="Bytes served per day").locator("td.num").all_inner_texts()
    assert axis.endswith("iB") and axis in cells, (axis, highest, cells)


def test_a_per_day_reports_days_say_they_are_utc_days(browser, loglake):
    """A UI trial: the per-day reports' days are the server's UTC days (the lake's date partitions), unlabelled
    beside the page's times in the browser's zone: in New York "2026-12-05" held the 5th's evening and the 6th's
    early hours."""
    context = browser.new_context(viewport={"width": 1280, "height": 800}, timezone_id="America/New_York")
    try:
        page = context.new_page()
        sign_in(page, loglake)
        page.goto(f"{loglake.url}/ui/amplify?app=shop&range=7d")
        article = page.locator("article.report", has_text="Bytes served per day")
        article.locator("svg.chart").wait_for()
        assert article.locator("th").first.inner_text() == "date (UTC)"
        days = article.locator("tbody td:first-child").all_inner_texts()
        tips = [tip.split(": ")[0] for tip in article.locator("svg.chart g > title").all_text_contents()]
        assert days and tips == [f"{day} (UTC)" for day in days]
        ticks = article.locator(".ticks span").all_inner_texts()
        assert ticks and all(tick.endswith(" UTC") for tick in ticks), ticks  # (the axis too)
        assert page.locator("article.report", has_text="Top paths").locator("th").first.inner_text() == "path"
    finally:
        context.close()


def test_a_collection_runs_start_is_shown_in_the_zone_of_every_time_on_the_page(page, loglake):
    """The runs table wrote its start as the stored text (2026-11-16T00:00:00Z) beside times in the chosen zone."""
    started_ms = loglake.now_ms - 3_600_000
    started = datetime.fromtimestamp(started_ms // 1000, UTC)
    stored = started.strftime("%Y-%m-%dT%H:%M:%SZ")  # as amplify/run_reports.py's iso_utc writes it
    app = {"app": "shop", "windows_ok": 1, "windows_failed": 0, "rows": 3, "bytes": 900, "errors": []}
    report = {"started": stored, "finished": stored, "ok": True, "apps": [app]}
    conn = sqlite3.connect(loglake.server.data_dir / "hot.db")
    try:
        with conn:
            conn.execute(
                "INSERT INTO amplify_runs (started_ms, finished_ms, report) VALUES (?, ?, ?)",
                (started_ms, started_ms, json.dumps(report)),
            )
    finally:
        conn.close()
    sign_in(page, loglake)
    page.evaluate("localStorage.setItem('loglake-tz', 'utc')")
    page.goto(f"{loglake.url}/ui/amplify")
    page.get_by_text("Last 1 collection run").click()
    row = page.locator("tr", has_text="900 B")
    assert row.locator("td").first.inner_text() == started.strftime("%Y-%m-%d %H:%M:%S.000 UTC")


def test_the_collections_errors_keep_their_lines(page, loglake):
    """A UI trial: the collection's errors (the schedule's last one, a run's) were shown on one line, their line
    breaks and indentation gone, where a rule's run's error keeps them."""
    last = 'Binder Error: Referenced column "x" not found\n\nLINE 1: SELECT x FROM t\n               ^'
    denied = "2026-12-01 window: AccessDeniedException:\n  User is not authorized to perform amplify:GenerateAccessLogs"
    app = {"app": "shop", "windows_ok": 0, "windows_failed": 2, "rows": 0, "bytes": 0, "errors": [denied, "throttled"]}
    run = {"started": "2026-12-01T00:00:00Z", "finished": "2026-12-01T00:00:01Z", "ok": False, "apps": [app]}

    def collecting(route):
        status = route.fetch().json()
        status["schedule"] = {
            "schedule": "every 1h",
            "next_run": "2026-12-01T01:00:00Z",
            "running": False,
            "last_run": None,
            "last_error": last,
        }
        status["runs"] = [run, {"unreadable": f"a run stored as no JSON:\n  {last}"}]
        route.fulfill(json=status)

    page.route("**/amplify/status", collecting)
    sign_in(page, loglake)
    page.goto(f"{loglake.url}/ui/amplify")
    page.get_by_text("Last 2 collection runs").click()
    shown = {
        last: page.locator(".card p.error"),
        f"{denied}\nthrottled": page.locator("td.error").first,
        f"a run stored as no JSON:\n  {last}": page.locator("td.error").last,
    }
    for said, error in shown.items():
        assert error.inner_text() == said  # (inner_text: the text as laid out)
        assert "monospace" in error.evaluate("e => getComputedStyle(e).fontFamily")


def test_a_query_error_keeps_its_lines_wherever_it_is_shown(page, loglake):
    """A UI trial: a rule's run that failed with DuckDB's error showed it on one line in Recent runs, its caret line
    ("^^^^") run together with the SQL it points into, so that it pointed at nothing (the SQL page kept the lines)."""
    rule_id = "4d2db06a-8553-43fd-86ab-1c8def4e486d"
    failed = (
        f"rule {rule_id} (app-critical-record.yml): Conversion Error: Could not convert string 'abc' to INT32\n\n"
        "LINE 3:  CAST(message AS INTEGER) > 3\n         ^^^^^^^^^^^^^^^^^^^^^^^^"
    )

    def with_a_failed_run(route):
        rule = route.fetch().json()
        rule["runs"] = [
            {
                "since": "2026-01-01T00:00:00.000Z",
                "until": "2026-01-01T00:01:00.000Z",
                "outcome": "error",
                "error": failed,
                "rows_scanned": None,
                "matches": None,
                "new_alerts": None,
                "duration_ms": 3.0,
            }
        ]
        route.fulfill(json=rule)

    def failing(route):
        error = {
            "code": "rule_failed",
            "message": f"{failed}; check the rule with loglake rules validate",
            "details": [],
        }
        route.fulfill(status=400, json={"error": error})

    page.route(lambda url: url == f"{loglake.url}/rules/{rule_id}", with_a_failed_run)
    page.route("**/rules/*/backtest", failing)
    sign_in(page, loglake)
    page.goto(f"{loglake.url}/ui/rules/{rule_id}")
    caret = "\n         ^^^^^^^^"
    cell = page.locator("td", has_text="Conversion Error")
    assert caret in cell.inner_text()  # (inner_text is the text as laid out: one line, it had no line break)
    assert "monospace" in cell.evaluate("e => getComputedStyle(e).fontFamily")
    page.get_by_role("button", name="Backtest").click()
    assert caret in page.get_by_role("alert").locator("p").first.inner_text()
    # a failing rule's alert holds the error in its evidence
    alert_id = str(uuid.uuid4())
    raise_alert(
        loglake,
        id=alert_id,
        title="Rule failing: Critical record",
        evidence=[{"error": failed, "failures": 3, "file": "app-critical-record.yml", "at_ms": 1_764_700_000_000}],
    )
    page.goto(f"{loglake.url}/ui/alerts/{alert_id}")
    assert caret in page.locator("dd", has_text="Conversion Error").inner_text()


def test_leaving_amplify_stops_its_reports(page, loglake):
    """A UI trial: the reports asked for went on when the page was left (each a query over the range's access logs,
    run to its end on the server for a page no longer shown), where the other pages give up their requests."""
    held = []  # the reports, held as a slow server holds them
    page.route("**/amplify/reports?*", lambda route: held.append(route))
    given_up = []
    page.on("requestfailed", lambda request: given_up.append(request.url))
    sign_in(page, loglake)
    page.get_by_role("link", name="Amplify").click()
    while not held:  # (routes are handled while Playwright waits)
        page.wait_for_timeout(50)
    page.get_by_role("link", name="Rules").click()
    page.get_by_role("heading", name="Rules").wait_for()
    deadline = time.monotonic() + 5
    while not given_up and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    assert [url for url in given_up if "/amplify/reports?" in url] == [held[0].request.url]
