"""SQL, Alerts and Status in a real browser: run SQL and download its CSV (the same as /query's answer),
acknowledge an alert with a note, create and revoke a key as admin, and a read-only key offered none
of it (and refused by the API when it tries)."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from urllib.parse import parse_qs, quote, urlencode, urlsplit
from zoneinfo import ZoneInfo

import duckdb
import pytest
from playwright.sync_api import Error as PlaywrightError

from loglake.alerts.db import open_alerts_db
from loglake.keys import KEY_NAME_RULE, MAX_KEY_NAME_CHARS
from tests.alerts.receivers import Answer, Receiver, change_alert
from tests.conftest import poll
from tests.ui.conftest import no_horizontal_scroll, raise_alert, screenshot, sign_in

pytestmark = pytest.mark.e2e

CRITICAL_RULE_ID = "4d2db06a-8553-43fd-86ab-1c8def4e486d"  # (tests.ui.conftest's CRITICAL_RULE)
SQL = "SELECT service, count(*) AS n, NULL AS nothing, 'a,\"b\"' AS odd FROM logs GROUP BY service ORDER BY service"


def test_sql_runs_with_ctrl_enter_and_downloads_what_query_answers(page, loglake):
    sign_in(page, loglake)
    page.get_by_role("link", name="SQL").click()
    page.locator(".tables summary", has_text="logs").first.wait_for()  # the tables sidebar
    editor = page.get_by_label("SQL query")
    editor.fill(SQL)
    editor.press("Control+Enter")
    page.locator(".grid tbody tr").first.wait_for()
    assert page.locator(".grid tbody tr").count() == 3
    assert page.locator(".grid td.null").count() == 3  # NULL, shown apart from an empty string
    assert page.locator(".grid th", has_text="nothing").inner_text().split() == ["nothing", "NULL"]  # its type
    assert "3 rows" in page.locator(".stats").inner_text()
    assert page.locator(".t-keyword").first.inner_text() == "SELECT"  # highlighted
    screenshot(page, "sql")

    with page.expect_download() as download:
        page.get_by_role("button", name="CSV").click()
    downloaded = download.value.path().read_bytes().decode()
    with loglake.client() as c:
        answer = c.post("/query", json={"sql": SQL}).json()
    expected = io.StringIO()
    writer = csv.writer(expected)
    writer.writerow([col["name"] for col in answer["columns"]])
    writer.writerows(answer["rows"])  # csv writes None as an empty field, as the UI does
    assert downloaded == expected.getvalue()

    page.get_by_role("button", name="Explain").click()
    page.locator("pre.plan").wait_for()
    page.reload()  # the history survives in the browser
    assert page.locator(".history-item").first.get_attribute("title") == SQL


def test_sql_csv_writes_null_and_the_empty_string_apart(page, loglake, tmp_path):
    """NULL and '' were both an empty field: the CSV could not say which a cell held."""
    sign_in(page, loglake)
    page.goto(loglake.url + "/ui/sql")
    editor = page.get_by_label("SQL query")
    editor.fill("SELECT * FROM (VALUES (NULL, '', 'x'), ('', NULL, 'y,z')) t(a, b, c)")
    editor.press("Control+Enter")
    page.locator(".grid tbody tr").first.wait_for()
    with page.expect_download() as download:
        page.get_by_role("button", name="CSV").click()
    path = tmp_path / "result.csv"
    download.value.save_as(path)
    assert path.read_bytes() == b'a,b,c\r\n,"",x\r\n"",,"y,z"\r\n'
    # read back as DuckDB reads it: each cell what the query answered
    read = duckdb.sql(f"SELECT * FROM read_csv('{path}', all_varchar = true, allow_quoted_nulls = false)")
    assert read.fetchall() == [(None, "", "x"), ("", None, "y,z")]


def test_acknowledge_an_alert_with_a_note(page, loglake):
    alert_id = str(uuid.uuid4())
    at = datetime.fromtimestamp((loglake.now_ms - 600_000) / 1000, UTC)
    evidence = {  # as a rule's run keeps it: the lake's columns, times as ISO-8601 text (rules/run.py)
        "log_id": str(uuid.uuid4()),
        "timestamp": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "service": "billing",
        "severity": "critical",
        "message": "payment gateway timed out",
        "attributes": '{"gateway": {"region": "eu"}}',  # as the lake keeps them: JSON text
    }
    raise_alert(
        loglake,
        id=alert_id,
        title="Payment failures",
        level="critical",
        evidence=[evidence],
        runbook="javascript:alert(document.cookie)",  # a rule file's text: shown, never a link
    )
    sign_in(page, loglake)
    page.get_by_role("link", name="Alerts").click()
    # the level filter with its count (the server's critical-record rule may have raised one more by now)
    chip = page.get_by_role("button", name=re.compile(r"^critical \d+$"))
    assert int(chip.inner_text().split()[-1]) >= 1
    # newest raised first, with the time each was raised; a rule's filter named by its title, not its id
    assert page.locator("table.list thead th").all_inner_texts()[-2:] == ["Raised", "Last seen"]
    page.locator("table.list tbody tr", has_text="Payment failures").get_by_role("button").click()
    page.get_by_role("button", name=re.compile(r"^Rule: .+ ✕$")).wait_for()
    page.get_by_role("link", name="Payment failures").click()
    page.wait_for_url(f"**/ui/alerts/{alert_id}")
    page.get_by_text("payment gateway timed out").first.wait_for()
    # its fields as Explore shows a record's (the attributes were hidden while the API gave them as text)
    page.locator(".record-summary", has_text="payment gateway timed out").click()
    page.locator(".record-details th", has_text="gateway.region").wait_for()
    assert page.locator(".record-details td.value").all_inner_texts()[-1] == "eu"
    screenshot(page, "alert")
    page.get_by_text("javascript:alert(document.cookie)").wait_for()
    assert page.locator('a[href^="javascript"]').count() == 0
    page.get_by_label("Note (optional)").fill("looking into it")
    page.get_by_role("button", name="Acknowledge").click()
    page.get_by_text("acknowledged by admin").wait_for()
    with loglake.client() as c:
        alert = c.get(f"/alerts/{alert_id}").json()
    assert alert["status"] == "acknowledged"
    assert alert["status_change"]["note"] == "looking into it"
    # its evidence leads to Explore at that moment (a minute either side of it)
    moment = page.get_by_role("link", name="See this moment in Explore")
    at_ms = int(at.timestamp() * 1000)
    assert f"from={at_ms - 60_000}&to={at_ms + 60_000}" in (moment.get_attribute("href") or ""), moment.get_attribute(
        "href"
    )
    moment.click()
    page.wait_for_url("**/ui/explore?**")
    page.locator(".record .message", has_text="payment gateway timed out").wait_for()


def test_an_evidence_record_is_filtered_and_copied_at_its_own_time_as_a_record(page, loglake):
    """A UI trial: an evidence record's + searched around the alert's first match (an hour off here), its Copy JSON
    held log_id and logId, date, client_id and the rule's own columns, and the alert's Explore link covered its last
    window alone, not the matches before it."""
    alert_id = str(uuid.uuid4())
    first_ms, record_ms = loglake.now_ms - 3_600_000, loglake.now_ms - 600_000
    record_at = datetime.fromtimestamp(record_ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    evidence = {  # as a Sigma rule's run keeps it (rules/run.py): the lake's columns and the rule's own
        "log_id": str(uuid.uuid4()),
        "timestamp": record_at,
        "date": record_at[:10],
        "client_id": None,
        "service": "auth",
        "log_type": "app",
        "severity": "warning",
        "message": "login failed for mallory",
        "attributes": '{"user": "mallory", "tags": ["a", "b"]}',
        "attributes.user": "mallory",
    }
    window = {"window_start_ms": record_ms - 300_000, "window_end_ms": record_ms + 60_000}
    group = {"attributes.user": "mallory", "service": "auth", "n": 3}  # (n: a SQL rule's column, no record field)
    raise_alert(
        loglake, id=alert_id, evidence=[evidence], first_seen_ms=first_ms, last_seen_ms=record_ms, group_values=group,
        **window,
    )  # fmt: skip
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    sign_in(page, loglake)
    page.goto(f"{loglake.url}/ui/alerts/{alert_id}")
    explore = page.get_by_role("link", name="open in Explore").get_attribute("href") or ""
    assert f"from={first_ms}&" in explore, explore
    # its group's records (a drill: the window's every record buried the brute force's among a busy lake's)
    assert parse_qs(urlsplit(explore).query)["q"] == ["user:mallory service:auth"], explore
    page.locator(".record-summary", has_text="login failed for mallory").click()
    page.get_by_role("button", name="Copy JSON").click()
    copied = json.loads(page.evaluate("navigator.clipboard.readText()"))
    assert set(copied) == {"logId", "timestamp", "datetime", "service", "log_type", "severity", "message", "attributes"}
    assert (copied["logId"], copied["timestamp"]) == (evidence["log_id"], record_ms)
    # a list has no filter buttons (its + searched for tags:"a,b")
    assert page.get_by_role("button", name=re.compile("^Filter for tags")).count() == 0
    page.get_by_role("button", name="Filter for service auth").click()
    page.wait_for_url(f"**/ui/explore?**from={record_ms - 60_000}&to={record_ms + 60_000}**")


def test_a_sql_rules_aggregate_evidence_shows_its_columns_not_a_made_up_record(page, loglake):
    """A new user's trial: a SQL rule's rows (service, n, timestamp) were drawn as log records, an INFO badge
    and an empty message each, and `n` not shown."""
    alert_id = str(uuid.uuid4())
    at = loglake.now_ms - 600_000
    at_text = datetime.fromtimestamp(at / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    evidence = [{"service": "payments", "n": 3, "timestamp": at_text}]  # (a SQL rule's row keeps its time as text)
    raise_alert(loglake, id=alert_id, title="Errors per service", evidence=evidence)
    sign_in(page, loglake)
    page.goto(f"{loglake.url}/ui/alerts/{alert_id}")
    page.get_by_role("heading", name="Evidence (1 row)").wait_for()
    row = page.locator(".evidence-row")
    assert row.locator("dt").all_inner_texts() == ["service", "n", "timestamp"]
    shown = row.locator("dd").all_inner_texts()
    assert shown[:2] == ["payments", "3"]
    assert shown[2] == time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at / 1000)) + f".{at % 1000:03d}", shown[2]
    assert page.locator(".records .sev").count() == 0  # (no severity made up)


def test_admin_creates_and_revokes_a_key_and_a_reader_is_offered_neither(page, loglake, context, browser):
    sign_in(page, loglake)
    page.get_by_role("link", name="Status").click()
    # The browser checks the name before it is sent: its pattern was no valid regular expression for the
    # browser (the console said so), so "my key" went to the server.
    warnings = []
    page.on("console", lambda message: warnings.append(message.text) if "attribute" in message.text else None)
    page.get_by_label("New key's name").fill("my key")
    assert page.get_by_label("New key's name").evaluate("box => box.validity.patternMismatch") is True
    assert page.get_by_label("New key's name").evaluate("box => box.checkValidity()") is False
    for name, refused in ((".", True), ("..", True), ("...", False)):  # (a Revoke's URL would lose `.` and `..`)
        page.get_by_label("New key's name").fill(name)
        assert page.get_by_label("New key's name").evaluate("box => box.validity.patternMismatch") is refused
    assert warnings == []
    # and says what a name may hold: the title, which Chromium's bubble shows under "Please match the requested
    # format." (all it said with a pattern alone), as the server checks names
    assert page.get_by_label("New key's name").get_attribute("title") == f"A key's name is {KEY_NAME_RULE}."
    assert page.get_by_label("New key's name").get_attribute("maxlength") == str(MAX_KEY_NAME_CHARS) == "64"
    page.get_by_label("New key's name").fill("x" * (MAX_KEY_NAME_CHARS + 1))  # (typed, it would stop at 64)
    assert page.get_by_label("New key's name").evaluate("box => box.value.length") == MAX_KEY_NAME_CHARS
    # no scope ticked: said in the page's words, not the API's JSON ones
    page.get_by_label("New key's name").fill("no-scope")
    page.get_by_role("checkbox", name="read").uncheck()
    page.get_by_role("button", name="Create key").click()
    page.get_by_text("Tick at least one scope for the new key.").wait_for()
    # a value the browser refuses is not sent, and the last message, about another value, goes
    page.get_by_label("New key's name").fill("my key")
    page.get_by_role("button", name="Create key").click()
    page.wait_for_function("() => !document.body.innerText.includes('Tick at least one scope')")
    page.get_by_role("checkbox", name="read").check()
    page.get_by_label("New key's name").fill("ci-robot")
    page.get_by_role("button", name="Create key").click()
    secret = page.locator(".secret").inner_text()
    assert secret.startswith("llk_")
    with loglake.client(secret) as c:
        assert c.get("/logs/search").status_code == 200  # the new key works, with the read scope
    screenshot(page, "status")
    # a card's figure may break anywhere (a long number); the names under it break between words only
    wraps = page.locator(".card", has=page.get_by_role("heading", name="Records ingested")).evaluate(
        "card => [card.querySelector('.big'), card.querySelector('.big + *')]"
        ".map((e) => e && getComputedStyle(e).overflowWrap)"
    )
    assert wraps == ["anywhere", "normal"]
    newest = page.get_by_text(re.compile(r"^newest log in the lake: "))  # the fixture's old records are flushed
    shown = newest.inner_text().split(": ")[1]
    assert time.strftime("%Y-%m-%d", time.localtime(loglake.now_ms / 1000 - 3600)) <= shown[:10]
    assert shown <= time.strftime("%Y-%m-%d %H:%M:%S", time.localtime())
    page.get_by_role("button", name="Revoke ci-robot").click()
    page.get_by_role("button", name="Really revoke ci-robot?").click()
    page.get_by_text("Key ci-robot revoked.").wait_for()
    with loglake.client(secret) as c:
        assert c.get("/logs/search").status_code == 401
    page.set_viewport_size({"width": 390, "height": 844})
    assert no_horizontal_scroll(page)

    reader = browser.new_context().new_page()
    sign_in(reader, loglake, loglake.read_key)
    reader.get_by_role("link", name="Status").click()
    reader.get_by_text("Storage by table and day").wait_for()
    assert reader.get_by_text("API keys").count() == 0
    # asked anyway, the API refuses the reader's session
    status = reader.evaluate(
        """async () => {
            const session = await (await fetch("/session")).json();
            const answer = await fetch("/admin/keys", {method: "POST", headers: {"content-type": "application/json",
                "x-csrf-token": session.csrf_token}, body: JSON.stringify({name: "sneaky", scopes: ["admin"]})});
            return answer.status;
        }"""
    )
    assert status == 403
    reader.context.close()


def test_a_change_without_the_csrf_token_is_refused(page, loglake):
    sign_in(page, loglake)
    status = page.evaluate(
        """async () => (await fetch("/admin/keys", {method: "POST", headers: {"content-type": "application/json"},
            body: JSON.stringify({name: "forged", scopes: ["read"]})})).status"""
    )
    assert status == 403
    with loglake.client() as c:
        assert "forged" not in [k["name"] for k in c.get("/admin/keys").json()["keys"]]


def test_ask_without_a_model_says_how_to_configure_one_once(page, loglake):
    sign_in(page, loglake)
    page.get_by_role("link", name="Ask").click()
    said = page.locator(".empty")
    said.get_by_text("This server has no language model configured").wait_for()
    assert said.locator("p").count() == 1  # one sentence, not the same thing twice
    assert "--llm-provider openai --llm-endpoint" in said.inner_text()
    assert said.locator("code").all_inner_texts() == [  # the commands as code
        "loglake serve",
        "--llm-provider openai --llm-endpoint http://127.0.0.1:11434/v1 --llm-model llama3.1",
    ]
    assert "`" not in said.inner_text()
    assert page.get_by_label("Question").count() == 0


def test_sql_offers_retry_only_where_a_retry_can_help(page, loglake, context):
    sign_in(page, loglake, loglake.read_key)
    page.get_by_role("link", name="SQL").click()
    editor = page.get_by_label("SQL query")
    error = page.locator(".sql-output .error-box")
    # refused for what they say: the same SQL would be refused again
    refused = [("SELEC service FROM logs", "syntax error"), ("SELECT * FROM read_csv('/etc/passwd')", "read_csv")]
    for sql, told in refused:
        editor.fill(sql)
        editor.press("Control+Enter")
        error.filter(has_text=told).wait_for()
        assert error.locator("strong").inner_text() == "Error 400"
        assert error.get_by_role("button", name="Retry").count() == 0
    # the server out of reach: retrying once it answers again runs the query
    editor.fill("SELECT count(*) AS n FROM logs")
    context.set_offline(True)
    editor.press("Control+Enter")
    error.filter(has_text="loglake did not answer").wait_for()
    context.set_offline(False)
    error.get_by_role("button", name="Retry").click()
    page.locator(".grid tbody tr").first.wait_for()


def test_sql_runs_one_query_at_a_time_which_cancel_stops(page, loglake):
    """Each click on Run started another query (five took every query slot for 30 s, and an older one's answer
    replaced the newest's); there was no way to stop one."""
    sign_in(page, loglake, loglake.read_key)
    page.get_by_role("link", name="SQL").click()
    editor = page.get_by_label("SQL query")
    editor.fill("SELECT sum(x) FROM range(200000000000) t(x)")  # (runs until the server's 30 s timeout)
    run = page.get_by_role("button", name="Run", exact=True)
    run.click()
    page.get_by_role("button", name="Cancel").wait_for()
    assert run.is_disabled() and page.get_by_role("button", name="Explain").is_disabled()
    editor.press("Control+Enter")  # (ignored while one runs)
    page.get_by_role("button", name="Cancel").click()
    page.get_by_text("Cancelled: the server stopped the query.").wait_for()
    assert run.is_enabled()
    stopped = 'loglake_http_requests_total{route="/query",status="499"} 1'  # (the server saw its client go)
    with loglake.client(loglake.read_key) as c:
        deadline = time.monotonic() + 10
        while stopped not in c.get("/metrics").text and time.monotonic() < deadline:
            time.sleep(0.1)
        assert stopped in c.get("/metrics").text
    # a SQL error keeps its lines: the caret under the word at fault
    editor.fill("SELECT *\nFROM logs WHER x")
    editor.press("Control+Enter")
    error = page.locator(".sql-output .error-box p").first
    error.filter(has_text="LINE").wait_for()
    assert error.evaluate("p => getComputedStyle(p).whiteSpace") == "pre-wrap"


def test_admin_creates_a_key_with_its_own_rate_limit_and_sees_each_keys(page, loglake):
    sign_in(page, loglake)
    page.get_by_role("link", name="Status").click()
    page.get_by_label("New key's name").fill("slow-robot")
    page.get_by_label("New key's rate limit (requests per second)").fill("0.5")
    page.get_by_label("New key's burst (requests at once)").fill("3")
    page.get_by_role("button", name="Create key").click()
    page.locator(".secret").wait_for()
    with loglake.client() as c:
        created = next(k for k in c.get("/admin/keys").json()["keys"] if k["name"] == "slow-robot")
    assert (created["rate_limit"], created["rate_burst"]) == (0.5, 3)
    rows = page.locator(".keys tbody tr")
    rows.filter(has_text="slow-robot").wait_for()
    assert "0.5/s, burst 3" in rows.filter(has_text="slow-robot").inner_text()
    assert "server default" in rows.filter(has_text="reader").inner_text()  # the fixture's, with no limit of its own


def test_an_unknown_page_says_so_and_offers_the_pages(page, loglake):
    sign_in(page, loglake, loglake.read_key)
    page.goto(loglake.url + "/ui/nonexistent")
    page.get_by_role("heading", name="No such page").wait_for()
    assert page.title() == "No such page · loglake"
    assert "/ui/nonexistent" in page.locator("main").inner_text()
    assert page.locator("#nav a[aria-current]").count() == 0  # no page's tab claims it
    offered = page.locator("main li a")
    assert offered.all_inner_texts() == page.locator("#nav a").all_inner_texts()
    assert page.url == loglake.url + "/ui/nonexistent"  # the address still says what was asked for
    screenshot(page, "no-such-page")
    # by keyboard: the links are reachable and follow the router
    main_links = page.locator("main li a")
    main_links.nth(1).focus()
    page.keyboard.press("Enter")
    page.wait_for_url(loglake.url + "/ui/sql")
    page.get_by_label("SQL query").wait_for()
    # a page without items, given one, is no page either (pages with items take them: /ui/alerts/<id>)
    page.goto(loglake.url + "/ui/sql/extra")
    page.get_by_role("heading", name="No such page").wait_for()


def test_an_alerts_title_is_whole_in_the_list_on_a_phone(page, loglake):
    """A UI trial: at 375 px the Alert column was cut to "12 …" while the Rule column wrapped in full."""
    title = "40 failed logins for mallory from 203.0.113.9"
    raise_alert(loglake, id=str(uuid.uuid4()), title=title, rule_title="Repeated authentication failures for a user")
    page.set_viewport_size({"width": 375, "height": 800})
    sign_in(page, loglake)
    page.goto(loglake.url + "/ui/alerts")
    cell = page.locator("table.list td.alert-title", has_text="40 failed logins").first
    cell.wait_for()
    assert cell.evaluate("td => td.scrollWidth <= td.clientWidth"), "the title is cut"
    assert no_horizontal_scroll(page)


def test_an_alerts_title_wraps_between_words_on_a_phone(page, loglake):
    """A UI trial: at 375 px the Alert column was narrower than a word, "Critical record in checkout" drawn as
    "Critic / al / recor / d in / chec / kout" beside the rule's name wrapped between its words."""
    title = "Critical record in checkout"
    raise_alert(loglake, id=str(uuid.uuid4()), title=title, rule_title="Critical record")
    page.set_viewport_size({"width": 375, "height": 800})
    sign_in(page, loglake)
    page.goto(loglake.url + "/ui/alerts")
    link = page.locator("table.list td.alert-title a", has_text=title).first
    link.wait_for()
    heights = link.evaluate(
        """a => a.textContent.split(" ").map((word, i, words) => {
             const range = document.createRange(), start = words.slice(0, i).join(" ").length + (i ? 1 : 0);
             range.setStart(a.firstChild, start);
             range.setEnd(a.firstChild, start + word.length);
             return range.getBoundingClientRect().height;
           })"""
    )
    line = link.evaluate("a => parseFloat(getComputedStyle(a).lineHeight) || 24")
    assert max(heights) < 1.5 * line, "a word of the title is cut across lines"
    assert no_horizontal_scroll(page)


def test_an_alert_titled_with_a_long_word_is_wrapped_on_its_page(page, loglake):
    """A UI trial: a rule titling its alerts with a group value ("login failed for {user}") and a value with no
    space in it (a token, a user agent, a URL) made the alert's heading one line thousands of pixels wide, and
    its whole page scrolled sideways."""
    alert_id = str(uuid.uuid4())
    raise_alert(loglake, id=alert_id, title="login failed for u" + "Z" * 400)
    sign_in(page, loglake)
    page.goto(loglake.url + f"/ui/alerts/{alert_id}")
    page.locator(".deliveries p:not(.progress)").wait_for()
    assert no_horizontal_scroll(page)


def test_a_column_inserted_after_a_word_gets_a_space(page, loglake):
    """A UI trial: a column clicked in the Tables panel after `'2026-12-05'` made `'2026-12-05'log_id`."""
    sign_in(page, loglake)
    page.goto(loglake.url + "/ui/sql")
    editor = page.get_by_label("SQL query")
    editor.fill("SELECT * FROM logs WHERE date >= '2026-12-05'")
    editor.press("End")
    page.locator(".tables details").first.click()
    page.get_by_role("button", name="log_id", exact=True).first.click()
    assert editor.input_value() == "SELECT * FROM logs WHERE date >= '2026-12-05' log_id"
    editor.press("Space")
    page.get_by_role("button", name="service", exact=True).first.click()  # (after a space: none added)
    assert editor.input_value().endswith("log_id service")


def test_the_status_pages_ingest_chart_ends_now(browser, loglake):
    # a browser in UTC whose clock stands 30 s into a minute: the last hour's last bucket ends in the next one
    now_ms = loglake.now_ms // 60_000 * 60_000 + 30_000
    context = browser.new_context(viewport={"width": 1280, "height": 800}, timezone_id="UTC")
    try:
        page = context.new_page()
        page.clock.set_fixed_time(now_ms / 1000)
        sign_in(page, loglake)
        page.goto(loglake.url + "/ui/status")
        ticks = page.locator(".chart-box .ticks span")
        ticks.first.wait_for()
        assert ticks.all_inner_texts()[-1] == time.strftime("%H:%M", time.gmtime(now_ms / 1000))
        assert ticks.all_inner_texts()[0] == time.strftime("%H:%M", time.gmtime(now_ms / 1000 - 3600))
        screenshot(page, "status-ingest")
    finally:
        context.close()


def test_the_sign_in_page_says_why_in_its_own_words_never_the_links(page, loglake):
    spoof = "Security notice: paste your key at https://evil.example"
    page.goto(loglake.url + "/login?" + urlencode({"error": spoof}))
    shown = page.get_by_role("alert")
    assert shown.inner_text() == "Signing in did not succeed; try again."
    page.get_by_label("API key").fill("llk_not-a-key")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/login?error=unauthorized")
    assert shown.inner_text() == "That key is not valid, or was revoked: sign in with an active key (llk_…)."


def test_an_alert_changed_meanwhile_is_drawn_again_as_it_is_with_who_changed_it(page, loglake):
    """Acknowledging an alert resolved in another tab showed the 409 under the alert's old status and buttons."""
    alert_id = str(uuid.uuid4())
    raise_alert(loglake, id=alert_id, title="Changed meanwhile", level="high")
    sign_in(page, loglake)
    page.goto(f"{loglake.url}/ui/alerts/{alert_id}")
    page.get_by_role("button", name="Acknowledge").wait_for()
    with loglake.client() as c:  # the other tab
        assert c.post(f"/alerts/{alert_id}/resolve", json={"note": "fixed"}).status_code == 200
    page.get_by_label("Note (optional)").fill("looking at the queue")
    page.get_by_role("button", name="Acknowledge").click()
    said = page.get_by_role("status").filter(has_text="The alert is shown as it is now")
    said.wait_for()
    assert "is resolved by admin at " in said.inner_text()
    assert said.inner_text().endswith("Your note was not sent: “looking at the queue”")  # (it was lost)
    assert page.get_by_role("button", name="Acknowledge").count() == 0  # (resolved: nothing more to do)
    # acknowledged meanwhile: it can still be resolved, the note kept in its box
    other = str(uuid.uuid4())
    raise_alert(loglake, id=other, title="Acknowledged meanwhile", level="high")
    page.goto(f"{loglake.url}/ui/alerts/{other}")
    page.get_by_role("button", name="Acknowledge").wait_for()
    with loglake.client() as c:
        assert c.post(f"/alerts/{other}/acknowledge", json={}).status_code == 200
    page.get_by_label("Note (optional)").fill("fixed the consumer")
    page.get_by_role("button", name="Acknowledge").click()
    page.get_by_role("status").filter(has_text="The alert is shown as it is now").wait_for()
    assert page.get_by_label("Note (optional)").input_value() == "fixed the consumer"


def test_an_acknowledge_the_server_did_not_answer_can_be_sent_again(page, loglake):
    """Its error box had no way to send it again (the UI trial)."""
    alert_id = str(uuid.uuid4())
    raise_alert(loglake, id=alert_id, title="Network blip", level="high")
    sign_in(page, loglake)
    page.goto(f"{loglake.url}/ui/alerts/{alert_id}")
    page.route("**/acknowledge", lambda route: route.abort())  # (the server out of reach)
    page.get_by_role("button", name="Acknowledge").click()
    page.get_by_text("Retry sends the change again.").wait_for()
    page.unroute("**/acknowledge")
    page.get_by_role("button", name="Retry").click()
    page.get_by_text("acknowledged by admin").wait_for()


def test_a_rule_filter_given_as_the_start_of_its_id_or_its_file_name_is_named_by_the_rules_title(page, loglake):
    """A UI trial: /ui/alerts?rule=4d2db06a (as `loglake rules` and GET /alerts take a rule) listed the rule's alerts
    under a button saying "Rule 4d2db06a ✕": only a whole id found the rule's title."""
    raise_alert(
        loglake,
        id=str(uuid.uuid4()),
        title="Critical record in ledger",
        rule_id=CRITICAL_RULE_ID,
        rule_title="Critical record",
    )
    sign_in(page, loglake)
    for rule in (CRITICAL_RULE_ID[:8], "app-critical-record", CRITICAL_RULE_ID):
        page.goto(f"{loglake.url}/ui/alerts?rule={rule}")
        page.locator("table.list tbody tr", has_text="Critical record in ledger").wait_for()
        assert page.locator("#rule-filter").inner_text() == "Rule: Critical record ✕"


def test_acknowledge_and_resolve_by_keyboard_keep_the_focus_on_the_alert(page, loglake):
    """A UI trial: the alert drawn again after Acknowledge took its button away and left the focus on the page's
    body, so the keyboard's next Tab started again from the top of the page (the skip link, the navigation)."""
    alert_id = str(uuid.uuid4())
    raise_alert(loglake, id=alert_id, title="Keyboard only", level="high")
    sign_in(page, loglake)
    page.goto(f"{loglake.url}/ui/alerts/{alert_id}")
    heading = page.get_by_role("heading", name="Keyboard only")
    for action, said in (("Acknowledge", "acknowledged by admin"), ("Resolve", "resolved by admin")):
        page.get_by_role("button", name=action).focus()
        page.keyboard.press("Enter")
        page.get_by_text(said).wait_for()
        assert heading.evaluate("h1 => document.activeElement === h1")
        page.keyboard.press("Tab")  # on to what follows the heading: the alert's rule
        assert page.evaluate("document.activeElement.textContent") == "Repeated authentication failures"


def test_the_alerts_filters_pressed_by_keyboard_keep_the_focus(page, loglake):
    """A UI trial, by keyboard: a status or level chip, or Filter, pressed drew the list again and left the focus on the
    page's body, so the next chip was reached from the top of the page again."""
    raise_alert(loglake, title="Filtered by keyboard", level="low")
    sign_in(page, loglake)
    page.goto(f"{loglake.url}/ui/alerts")
    focused = "document.activeElement.getAttribute('data-focus')"
    for group, chip, key, url in (
        ("#status-filter", "open", "Enter", "?status=open"),
        ("#level-filter", "low", " ", "?status=open&level=low"),
    ):
        page.locator(group).get_by_role("button", name=re.compile(f"^{chip} ")).focus()
        page.keyboard.press(key)
        page.wait_for_url(f"**/ui/alerts{url}")
        page.locator(group).get_by_role("button", name=re.compile(f"^{chip} "), pressed=True).wait_for()
        assert page.evaluate(focused) == f"{group[1:].removesuffix('-filter')} {chip}"
    page.get_by_label("Text in the title or rule").fill("by keyboard")
    page.get_by_role("button", name="Filter", exact=True).focus()
    page.keyboard.press("Enter")
    page.wait_for_url("**/ui/alerts?status=open&level=low&q=by+keyboard")
    page.get_by_role("link", name="Filtered by keyboard").wait_for()
    assert page.evaluate(focused) == "Filter"


def test_a_double_click_acknowledges_once_and_says_no_one_else_did(page, loglake):
    """A double click on Acknowledge sent it twice: the second's 409 drew the alert again under "already
    acknowledged by admin ... The alert is shown as it is now", as if someone else had changed it."""
    alert_id = str(uuid.uuid4())
    raise_alert(loglake, id=alert_id, title="Clicked twice", level="high")
    sign_in(page, loglake)
    changes: list[str] = []
    page.on("request", lambda r: changes.append(r.url) if r.method == "POST" and "/alerts/" in r.url else None)
    page.goto(f"{loglake.url}/ui/alerts/{alert_id}")
    page.get_by_label("Note (optional)").fill("on it")
    page.get_by_role("button", name="Acknowledge").dblclick()
    page.get_by_text("acknowledged by admin").wait_for()
    page.wait_for_load_state("networkidle")
    assert changes == [f"{loglake.url}/alerts/{alert_id}/acknowledge"]
    assert page.get_by_text("The alert is shown as it is now").count() == 0
    assert page.get_by_role("button", name="Resolve").is_enabled()  # (drawn again, its buttons usable)


def test_the_alerts_past_the_newest_200_are_shown_a_page_at_a_time(page, loglake):
    """The list stopped at the newest 200 and said to narrow the filters, which cannot part the alerts one rule raised
    at once (a user's login failures each): the older ones could not be reached."""
    rule_id = str(uuid.uuid4())
    titles = [f"Login failures for paged-user{n:03d}" for n in range(250)]
    for n, title in enumerate(titles):  # (ids sorting below every other test's, which stay the newest)
        raise_alert(loglake, id=f"00000000-0000-7000-8000-{n:012d}", title=title, rule_id=rule_id)
    sign_in(page, loglake)
    page.goto(f"{loglake.url}/ui/alerts?rule={rule_id}")
    rows = page.locator("table.list tbody tr .alert-title")
    rows.first.wait_for()
    assert rows.all_inner_texts() == titles[::-1][:200]
    page.get_by_text("The newest 200 alerts are shown.").wait_for()
    page.get_by_role("button", name="Show older alerts").click()
    page.get_by_text("All 250 alerts are shown.").wait_for()
    assert rows.all_inner_texts() == titles[::-1]
    assert page.get_by_role("button", name="Show older alerts").count() == 0


@contextmanager
def _alert_whose_trigger_is_dead(
    loglake, rule_title: str, title: str, **fields: object
) -> Iterator[tuple[Receiver, str]]:
    """An alert routed to a webhook that refused its trigger (400, dead-lettered): the receiver, and the id."""
    receiver = Receiver()
    alerting = loglake.server.data_dir.parent / "rules" / "alerting.yml"
    try:
        receiver.default = Answer(400, body=b"bad payload")
        alerting.write_text(
            f'destinations: {{hook: {{type: webhook, url: "{receiver.url}/"}}}}\n'
            f"routes: [{{match: {{title: [{rule_title!r}]}}, to: [hook]}}]\n"
        )
        alert_id = str(uuid.uuid4())
        raise_alert(loglake, id=alert_id, title=title, rule_title=rule_title, **fields)
        with loglake.client() as c:
            poll(
                lambda: c.get("/alerts/deliveries", params={"alert": alert_id, "state": "dead"}).json()["deliveries"],
                "the trigger to be dead-lettered",
            )
        yield receiver, alert_id
    finally:
        alerting.unlink(missing_ok=True)
        receiver.close()


def test_a_dead_delivery_is_retried_from_the_alerts_page(page, loglake):
    with _alert_whose_trigger_is_dead(loglake, "Retry from the page", "Deliveries to retry") as (receiver, alert_id):
        sign_in(page, loglake)
        page.goto(f"{loglake.url}/ui/alerts/{alert_id}")
        row = page.locator(".deliveries tbody tr")
        row.get_by_text("HTTP 400: bad payload").wait_for()
        receiver.default = Answer(200)
        row.get_by_role("button", name="Retry the trigger to hook").focus()  # by keyboard, as a click focuses it too
        page.keyboard.press("Enter")
        with loglake.client() as c:
            poll(
                lambda: c.get("/alerts/deliveries", params={"alert": alert_id, "state": "sent"}).json()["deliveries"],
                "the retried delivery to be sent",
            )
        assert len(receiver.requests) == 2
        # Its button gone with the list drawn again, the focus is on that list (it fell to the page's body, and the
        # next Tab started again from the top of the page)
        row.get_by_role("button").wait_for(state="detached")
        assert page.evaluate("document.activeElement.matches('.deliveries .table-wrap')")
        page.reload()
        row.locator(".d-sent").wait_for()
        assert row.get_by_role("button").count() == 0  # only a dead delivery offers it


def test_a_dead_delivery_is_retried_once_by_a_double_click(page, loglake):
    """A UI trial: with a slow server, Retry clicked twice sent the retry twice, and the second's 409 (the delivery no
    longer dead) was shown under the delivery the first had sent again."""
    with _alert_whose_trigger_is_dead(loglake, "Retried twice", "Double-clicked") as (receiver, alert_id):
        held = []
        page.route("**/alerts/deliveries/*/retry", lambda route: held.append(route))
        sign_in(page, loglake)
        page.goto(f"{loglake.url}/ui/alerts/{alert_id}")
        retry = page.locator(".deliveries").get_by_role("button", name="Retry the trigger to hook")
        receiver.default = Answer(200)
        retry.click()
        _a_second_click_sends_nothing(page, retry, held)
        retry.wait_for(state="detached")  # (drawn again: the delivery is no longer dead)
        page.wait_for_timeout(500)
        assert len(held) == 1 and page.get_by_role("alert").count() == 0


def test_a_deliverys_error_keeps_its_lines(page, loglake):
    """A UI trial: an SMTP server's reply of several lines (as smtplib joins them) was shown as one run-on line, its
    indentation gone, where the other pages show a server's message verbatim; a routing problem alike."""
    said = "SMTP 550: 5.7.1 The message was rejected by policy:\n5.7.1   see https://mail.example/policy"
    worker = "OperationalError: database is locked\n  (retried in 5 s)"

    def with_lines(route):
        answer = route.fetch().json()
        answer["deliveries"][0]["last_error"] = said
        answer["worker_error"] = worker
        route.fulfill(json=answer)

    with _alert_whose_trigger_is_dead(loglake, "Refused in lines", "Lines kept") as (_, alert_id):
        page.route(re.compile(r".*/alerts/deliveries\?.*"), with_lines)
        sign_in(page, loglake)
        page.goto(f"{loglake.url}/ui/alerts/{alert_id}")
        error = page.locator(".deliveries tbody td").filter(has_text="5.7.1")
        error.wait_for()
        problem = page.locator(".deliveries p.error")
        assert (error.inner_text(), problem.inner_text()) == (said, worker)  # (inner_text: the text as laid out)
        for shown in (error.locator("span"), problem):
            assert "monospace" in shown.evaluate("e => getComputedStyle(e).fontFamily")


def test_a_dead_trigger_older_than_a_page_of_deliveries_is_still_shown_to_retry(page, loglake):
    # A running alert's updates wait behind its dead trigger; past a page of them the trigger, the one delivery
    # to retry, fell off the alert's page.
    with _alert_whose_trigger_is_dead(loglake, "Many updates", "Updated often") as (_, alert_id):
        conn = open_alerts_db(loglake.server.data_dir)
        try:
            for _ in range(120):
                change_alert(conn, alert_id, "update")
        finally:
            conn.close()
        with loglake.client() as c:
            poll(
                lambda: (
                    len(c.get("/alerts/deliveries", params={"alert": alert_id, "limit": 500}).json()["deliveries"])
                    == 121
                ),
                "the updates to wait behind it",
            )
        sign_in(page, loglake)
        page.goto(f"{loglake.url}/ui/alerts/{alert_id}")
        box = page.locator(".deliveries")
        box.get_by_role("button", name="Retry the trigger to hook").wait_for()
        assert box.locator("tbody tr").count() == 101
        assert "The newest 100 deliveries are shown, and every dead one" in box.inner_text()


def test_a_delivery_waiting_behind_another_alerts_dead_trigger_leads_to_that_alert_to_retry_it(page, loglake):
    """A new alert of a dedup key whose earlier alert's trigger died waits behind it: its page said "waits for the
    trigger of its alert ... retry that one", offering no Retry, the dead one being on the other alert's page."""
    key = f"shared:{uuid.uuid4()}"
    with _alert_whose_trigger_is_dead(loglake, "Shared key", "First of its key", dedup_key=key) as (receiver, first):
        second = str(uuid.uuid4())
        raise_alert(loglake, id=second, title="Second of its key", rule_title="Shared key", dedup_key=key)
        with loglake.client() as c:
            poll(
                lambda: c.get("/alerts/deliveries", params={"alert": second}).json()["deliveries"],
                "the second alert's trigger to wait behind the first's",
            )
        sign_in(page, loglake)
        page.goto(f"{loglake.url}/ui/alerts/{second}")
        row = page.locator(".deliveries tbody tr")
        row.get_by_text(f"waits for the trigger of alert {first} (of the same dedup key)").wait_for()
        assert row.get_by_role("button").count() == 0  # nothing to retry here
        receiver.default = Answer(200)
        row.get_by_role("link", name="Open the alert of that trigger").click()
        page.wait_for_url(f"**/ui/alerts/{first}")
        page.locator(".deliveries").get_by_role("button", name="Retry the trigger to hook").click()
        with loglake.client() as c:
            poll(
                lambda: c.get("/alerts/deliveries", params={"alert": second, "state": "sent"}).json()["deliveries"],
                "the waiting trigger to go after the retried one",
            )


def test_a_long_alert_title_takes_one_line_of_the_list_cut_with_an_ellipsis(page, loglake):
    title = "Bad thing: " + "a very long message " * 12  # 251 characters, within the cap
    raise_alert(loglake, title=title, level="low")
    sign_in(page, loglake)
    page.goto(loglake.url + "/ui/alerts?level=low")
    cell = page.locator("td", has=page.get_by_role("link", name="Bad thing:"))
    cell.wait_for()
    line = page.evaluate("parseFloat(getComputedStyle(document.body).lineHeight) || 24")
    height = cell.locator("a").bounding_box()["height"]
    assert height < 2 * line  # one line, not the several a whole title would wrap to
    assert cell.evaluate("(td) => td.scrollWidth > td.clientWidth")  # cut: the rest is behind the ellipsis
    assert cell.get_attribute("title") == title
    cell.get_by_role("link").click()  # its page leads back to the list as filtered (it led to the whole list)
    page.get_by_role("link", name="← Alerts").click()
    page.wait_for_url("**/ui/alerts?level=low")
    # text typed, then a chip clicked: the text is a filter too (it was dropped; the UI trial)
    page.get_by_label("Text in the title or rule").fill("Bad thing")
    page.get_by_role("button", name=re.compile(r"^open \d+$")).click()
    page.wait_for_url(re.compile(r".*/ui/alerts\?.*q=Bad\+thing"))
    assert page.get_by_label("Text in the title or rule").input_value() == "Bad thing"


def test_every_page_shows_times_in_the_one_zone_chosen_in_the_header_or_explore(browser, loglake):
    """Alerts, Rules and Status showed local times without a word, backtests and SQL UTC (a UI trial): one
    choice now, the header's Times button (or Explore's picker), kept across pages and visits."""
    raised_ms = 1_764_700_200_000  # 2025-12-02 18:30:00 UTC, 13:30 in New York (EST)
    raise_alert(loglake, id=str(uuid.uuid4()), title="Queue backing up", created_ms=raised_ms)
    context = browser.new_context(viewport={"width": 1280, "height": 800}, timezone_id="America/New_York")
    try:
        page = context.new_page()
        sign_in(page, loglake)
        button = page.locator("#tz")
        assert button.inner_text() == "Times: local"
        assert "America/New_York" in button.get_attribute("title")
        page.goto(loglake.url + "/ui/alerts?q=" + quote("Queue backing up"))
        raised = page.locator("table.list tbody tr td").nth(5)
        raised.filter(has_text="2025-12-02 13:30:00.000").wait_for()

        button.click()
        assert button.inner_text() == "Times: UTC"
        raised.filter(has_text="2025-12-02 18:30:00.000 UTC").wait_for()
        page.reload()  # kept for the next visit
        page.locator("table.list tbody tr td").nth(5).filter(has_text="18:30:00.000 UTC").wait_for()

        # Explore follows the choice, and its own picker changes it back for every page
        page.goto(loglake.url + "/ui/explore")
        assert page.get_by_label("Time zone").input_value() == "utc"
        page.locator('.results[aria-busy="false"]').wait_for()
        assert page.locator(".record time").first.inner_text().endswith(" UTC")
        page.get_by_label("Time zone").select_option("local")
        page.locator('.results[aria-busy="false"]').wait_for()
        assert not page.locator(".record time").first.inner_text().endswith(" UTC")
        assert button.inner_text() == "Times: local"
        page.goto(loglake.url + "/ui/alerts?q=" + quote("Queue backing up"))
        page.locator("table.list tbody tr td").nth(5).filter(has_text="2025-12-02 13:30:00.000").wait_for()
    finally:
        context.close()


def test_a_big_sql_answer_is_drawn_a_page_at_a_time_and_sorted_whole(page, loglake):
    """An answer of thousands of rows took the page seconds to draw (a UI trial): 500 rows, then more on request;
    a sort orders every row, not only those drawn."""
    sign_in(page, loglake)
    page.goto(loglake.url + "/ui/sql")
    editor = page.get_by_label("SQL query")
    editor.fill("SELECT x FROM range(1200) t(x) ORDER BY x")
    editor.press("Control+Enter")
    rows = page.locator(".grid tbody tr")
    rows.first.wait_for()
    assert rows.count() == 500
    assert "1,200 rows" in page.locator(".stats").inner_text()
    page.get_by_role("button", name="Show 500 more (700 rows not shown)").click()
    assert rows.count() == 1000
    page.get_by_role("button", name="Show 200 more (200 rows not shown)").click()
    assert rows.count() == 1200 and rows.last.inner_text() == "1199"
    assert page.locator(".more button").count() == 0
    page.get_by_role("button", name="x", exact=True).click()  # ascending: as it was
    page.get_by_role("button", name="x", exact=True).click()  # descending
    assert rows.count() == 500 and rows.first.inner_text() == "1199" and rows.last.inner_text() == "700"


def test_sql_typed_but_not_run_is_still_there_after_visiting_another_page(page, loglake):
    # (the page drew the last query run again: a query being written was lost to a look at Explore)
    sign_in(page, loglake)
    page.get_by_role("link", name="SQL").click()
    editor = page.get_by_label("SQL query")
    editor.fill("SELECT 1 AS ran")
    editor.press("Control+Enter")
    page.locator(".grid tbody tr").first.wait_for()
    editor.fill("SELECT service FROM logs WHERE severity = 'err")  # half written
    page.get_by_role("link", name="Explore").click()
    page.wait_for_url("**/ui/explore*")
    page.get_by_role("link", name="SQL").click()
    assert page.get_by_label("SQL query").input_value() == "SELECT service FROM logs WHERE severity = 'err"
    page.locator(".history-item").first.click()  # a query from the history is the draft now
    page.get_by_role("link", name="Ask").click()
    page.get_by_role("link", name="SQL").click()
    assert page.get_by_label("SQL query").input_value() == "SELECT 1 AS ran"


def test_a_json_download_keeps_every_column_of_names_alike(page, loglake):
    """A UI trial: two columns of one name (a join's two `service`s) were one key of each object downloaded, the
    first column's values lost; the later ones are named as DuckDB names a subquery's (a, a_1, ...)."""
    sign_in(page, loglake)
    page.goto(loglake.url + "/ui/sql")
    editor = page.get_by_label("SQL query")
    editor.fill("SELECT 1 AS a, 2 AS a, 3 AS a_1, 4 AS A")
    editor.press("Control+Enter")
    page.locator(".grid tbody tr").first.wait_for()
    expected = {"a": 1, "a_1": 2, "a_1_1": 3, "A": 4}
    with page.expect_download() as download:
        page.get_by_role("button", name="JSON", exact=True).click()
    assert json.loads(download.value.path().read_text()) == [expected]
    with page.expect_download() as download:
        page.get_by_role("button", name="NDJSON", exact=True).click()
    assert [json.loads(line) for line in download.value.path().read_text().splitlines()] == [expected]


def test_sql_shows_and_downloads_numbers_as_the_answer_writes_them(page, loglake):
    """A UI trial: a DOUBLE's 2.0 showed and downloaded as 2, 1e16 as 10000000000000000 (JavaScript's form), where
    POST /query and `loglake query` write 2.0; the grid still sorts them as numbers."""
    sql = "SELECT d, 2.50::DECIMAL(5,2) AS dec, 9007199254740993 AS id FROM (VALUES (2.0::DOUBLE), (1e16), (10.5)) t(d)"
    sign_in(page, loglake)
    page.goto(loglake.url + "/ui/sql")
    editor = page.get_by_label("SQL query")
    editor.fill(sql)
    editor.press("Control+Enter")
    page.locator(".grid tbody tr").first.wait_for()
    cells = page.locator(".grid tbody td:first-child")
    assert cells.all_inner_texts() == ["2.0", "1e16", "10.5"]
    with loglake.client() as c:
        answer = c.post("/query", json={"sql": sql}).text
    assert '[[2.0,"2.50",9007199254740993],[1e16,' in answer
    with page.expect_download() as download:
        page.get_by_role("button", name="CSV").click()
    rows = ["d,dec,id", "2.0,2.50,9007199254740993", "1e16,2.50,9007199254740993", "10.5,2.50,9007199254740993"]
    assert download.value.path().read_bytes().decode() == "".join(row + "\r\n" for row in rows)
    with page.expect_download() as download:
        page.get_by_role("button", name="NDJSON", exact=True).click()
    assert download.value.path().read_text().splitlines()[0] == '{"d":2.0,"dec":"2.50","id":9007199254740993}'
    page.get_by_role("button", name="d", exact=True).click()
    assert cells.all_inner_texts() == ["2.0", "10.5", "1e16"]
    assert "ms ·" in page.locator(".stats").inner_text()


def test_a_slow_answer_for_filters_left_does_not_draw_its_counts_over_the_newer_lists(page, loglake):
    """A UI trial: the list's answer drew its counts into whatever chips the page held when it came, so a slow answer
    for the filters left (the whole list) showed its counts under the newer filter's list."""
    raise_alert(loglake, id=str(uuid.uuid4()), title="Slow list one", level="medium")
    raise_alert(loglake, id=str(uuid.uuid4()), title="Slow list two", level="medium")
    wanted = f"Slow list one {uuid.uuid4().hex[:6]}"
    raise_alert(loglake, id=str(uuid.uuid4()), title=wanted, level="medium")
    sign_in(page, loglake)
    held = []
    whole_list = re.compile(r".*/alerts\?.*")
    page.route(whole_list, lambda route: route.continue_() if "q=" in route.request.url else held.append(route))
    page.goto(loglake.url + "/ui/alerts")
    while not held:  # the whole list's request, held back (routes are handled while Playwright waits)
        page.wait_for_timeout(50)
    page.get_by_label("Text in the title or rule").fill(wanted)
    page.get_by_role("button", name="Filter").click()
    medium = page.get_by_role("button", name=re.compile(r"^medium \d+$"))
    medium.filter(has_text="medium 1").wait_for()
    with contextlib.suppress(PlaywrightError):  # (the page may have given it up: nothing to answer)
        held[0].continue_()
    page.wait_for_timeout(1000)
    assert medium.inner_text() == "medium 1"
    assert page.locator("table.list tbody tr").count() == 1


def test_a_note_typed_when_the_session_ended_is_there_after_signing_in_again(page, loglake):
    """A UI trial: Acknowledge with a session that had ended sent the person to sign in, and back on the alert the
    note typed was gone."""
    alert_id = str(uuid.uuid4())
    raise_alert(loglake, id=alert_id, title="Session ended meanwhile", level="high")
    sign_in(page, loglake)
    page.goto(f"{loglake.url}/ui/alerts/{alert_id}")
    written = "the queue drains again after the restart"
    page.get_by_label("Note (optional)").fill(written)
    _click_after_the_session_ended(page, loglake, "Acknowledge", f"**/ui/alerts/{alert_id}")
    note = page.get_by_label("Note (optional)")
    assert note.input_value() == written
    page.get_by_role("button", name="Acknowledge").click()
    page.get_by_text("acknowledged by admin").wait_for()
    with loglake.client() as c:
        assert c.get(f"/alerts/{alert_id}").json()["status_change"]["note"] == written


def test_a_conflicts_time_is_shown_in_the_zone_of_every_time_on_the_page(browser, loglake):
    """A UI trial: "is resolved by admin at 2026-12-02T18:30:00.000Z" (the API's UTC) beside the page's local times."""
    alert_id = str(uuid.uuid4())
    raise_alert(loglake, id=alert_id, title="Resolved in another tab", level="high")
    context = browser.new_context(viewport={"width": 1280, "height": 800}, timezone_id="America/New_York")
    try:
        page = context.new_page()
        sign_in(page, loglake)
        page.goto(f"{loglake.url}/ui/alerts/{alert_id}")
        page.get_by_role("button", name="Acknowledge").wait_for()
        with loglake.client() as c:  # the other tab
            at = c.post(f"/alerts/{alert_id}/resolve", json={}).json()["status_change"]["at"]
        page.get_by_role("button", name="Acknowledge").click()
        said = page.get_by_role("status").filter(has_text="The alert is shown as it is now")
        said.wait_for()
        local = datetime.fromisoformat(at).astimezone(ZoneInfo("America/New_York"))
        assert f"is resolved by admin at {local.strftime('%Y-%m-%d %H:%M:%S.%f')[:-3]}:" in said.inner_text()
        assert at not in said.inner_text()
    finally:
        context.close()


def test_a_refused_querys_message_quotes_its_times_as_written(browser, loglake):
    """A UI trial: the times in an error's message were written in the page's zone, those of the SQL that DuckDB's
    message quotes too: the error showed a query that was never sent, its caret beside the mistake."""
    sql = "SELECT nosuchcol FROM logs WHERE message = '2026-01-01T00:00:00Z'"
    with loglake.client() as c:
        said = c.post("/query", json={"sql": sql}).json()["error"]["message"]
    assert "'2026-01-01T00:00:00Z'" in said and "^" in said
    context = browser.new_context(viewport={"width": 1280, "height": 800}, timezone_id="America/New_York")
    try:
        page = context.new_page()
        sign_in(page, loglake)
        page.get_by_role("link", name="SQL").click()
        page.get_by_label("SQL query").fill(sql)
        page.get_by_label("SQL query").press("Control+Enter")
        page.locator(".sql-output .error-box").wait_for()
        assert page.locator(".sql-output .error-box p").first.text_content() == said
        # a search's term quoted alike
        page.goto(loglake.url + "/ui/explore?" + urlencode({"q": '"2026-01-01T00:00:00Z'}))
        page.locator(".results .error-box").filter(has_text="unbalanced").wait_for()
        assert "'\"2026-01-01T00:00:00Z'" in page.locator(".results .error-box").inner_text()
    finally:
        context.close()


def test_a_filter_of_spaces_alone_is_no_filter(page, loglake):
    """A UI trial: the alerts' text filter of spaces sent q=+++ and said "No alert matches these filters"."""
    raise_alert(loglake, id=str(uuid.uuid4()), title="Spaces are no filter", level="low")
    sign_in(page, loglake)
    page.goto(loglake.url + "/ui/alerts?level=low")
    page.get_by_label("Text in the title or rule").fill("   ")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url(loglake.url + "/ui/alerts?level=low")
    page.get_by_role("link", name="Spaces are no filter").wait_for()
    page.get_by_label("Text in the title or rule").fill("  no filter ")  # (the spaces around a text are not its own)
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url(loglake.url + "/ui/alerts?level=low&q=no+filter")
    page.get_by_role("link", name="Spaces are no filter").wait_for()
    # a search alike, and a link's
    page.goto(loglake.url + "/ui/explore?q=+++")
    page.locator(".record").first.wait_for()
    assert page.locator("#q").input_value() == ""
    page.locator("#q").fill("  ")
    page.get_by_role("button", name="Search").click()
    page.wait_for_url(re.compile(r".*/ui/explore\?range=1h$"))


def test_a_suppressions_time_is_shown_in_the_zone_of_every_time_on_the_page(browser, loglake):
    """A UI trial: a suppressed alert's note said "until 2027-12-31T00:00:00.000Z" (the server's UTC) beside the
    page's local times; a person's note stays as written."""
    suppressed, noted = str(uuid.uuid4()), str(uuid.uuid4())
    until = "2027-12-31T00:00:00.000Z"
    changed = {"status_ms": 1_764_700_200_000}
    raise_alert(
        loglake,
        id=suppressed,
        title="Held back",
        status="suppressed",
        status_by="rule",
        status_note=f"load tests (until {until})",
        **changed,
    )
    raise_alert(
        loglake,
        id=noted,
        title="Noted",
        status="acknowledged",
        status_by="admin",
        status_note=f"the migration ends at {until}",
        **changed,
    )
    context = browser.new_context(viewport={"width": 1280, "height": 800}, timezone_id="America/New_York")
    try:
        page = context.new_page()
        sign_in(page, loglake)
        page.goto(f"{loglake.url}/ui/alerts/{suppressed}")
        note = page.locator("dd").filter(has_text="load tests")
        assert note.inner_text() == "load tests (until 2027-12-30 19:00:00.000)"
        page.goto(f"{loglake.url}/ui/alerts/{noted}")
        assert page.locator("dd").filter(has_text="migration").inner_text() == f"the migration ends at {until}"
    finally:
        context.close()


def test_a_new_keys_form_filled_when_the_session_ended_is_there_after_signing_in_again(page, loglake):
    """A UI trial: Create key with a session that had ended sent the person to sign in, and back on the Status page
    the key's name typed was gone (an alert's note, the SQL page's query are kept)."""
    sign_in(page, loglake)
    page.get_by_role("link", name="Status").click()
    page.get_by_label("New key's name").fill("nightly-export")
    page.get_by_role("checkbox", name="read").uncheck()
    page.get_by_role("checkbox", name="ingest").check()
    page.get_by_label("New key's rate limit (requests per second)").fill("2")
    _click_after_the_session_ended(page, loglake, "Create key", "**/ui/status")
    assert page.get_by_label("New key's name").input_value() == "nightly-export"
    assert page.get_by_role("checkbox", name="ingest").is_checked()
    assert not page.get_by_role("checkbox", name="read").is_checked()
    assert page.get_by_label("New key's rate limit (requests per second)").input_value() == "2"
    page.get_by_role("button", name="Create key").click()
    page.locator(".secret").wait_for()
    with loglake.client() as c:
        made = next(key for key in c.get("/admin/keys").json()["keys"] if key["name"] == "nightly-export")
    assert made["scopes"] == ["ingest"] and made["rate_limit"] == 2
    page.reload()  # once created, the form starts afresh
    assert page.get_by_label("New key's name").input_value() == ""
    assert page.get_by_role("checkbox", name="read").is_checked()


def test_a_search_typed_when_the_session_ended_is_there_after_signing_in_again(page, loglake):
    """A UI trial: a query typed in Explore's box and not searched was gone after the range picker, with a session
    that had ended, sent the person to sign in (the SQL page keeps its draft); a search leaves no draft behind."""
    sign_in(page, loglake)
    page.goto(loglake.url + "/ui/explore?q=service%3Aapi")
    page.locator(".record").first.wait_for()
    page.locator("#q").fill("service:api severity:error \u202e")
    typed = page.locator("#q").input_value()  # (a bidi control shown as its escape, kept as the box shows it)
    assert typed.endswith("\\u202e")
    page.context.clear_cookies()
    page.get_by_label("Time range").select_option("24h")
    page.wait_for_url("**/login?**")
    page.get_by_text("Your session has ended").wait_for()
    page.get_by_label("API key").fill(loglake.admin_key)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/ui/explore?q=service%3Aapi&range=24h")
    assert page.locator("#q").input_value() == typed
    page.get_by_role("button", name="Search").click()
    page.wait_for_url(re.compile(r".*/ui/explore\?q=service.*severity.*"))
    page.go_back()  # the view it was typed over shows its own query again
    page.wait_for_url("**/ui/explore?q=service%3Aapi&range=24h")
    page.locator(".record").first.wait_for()
    assert page.locator("#q").input_value() == "service:api"


def test_a_views_requests_refused_together_send_the_page_to_sign_in_once(page, loglake):
    """A UI trial: each request that met the 401 of a session ended sent the page to sign in (three for Explore's
    records, histogram and facets), each navigation aborting the one before."""
    sign_in(page, loglake)
    page.goto(loglake.url + "/ui/explore")
    page.locator(".record").first.wait_for()
    to_sign_in = []
    page.on("request", lambda r: to_sign_in.append(r.url) if r.is_navigation_request() and "/login" in r.url else None)
    page.context.clear_cookies()
    page.get_by_label("Time range").select_option("24h")
    page.get_by_text("Your session has ended").wait_for()
    page.wait_for_timeout(500)
    assert to_sign_in == [f"{loglake.url}/login?error=session_ended&next=%2Fui%2Fexplore%3Frange%3D24h"]


def test_a_new_keys_secret_is_not_replaced_by_a_second_click(page, loglake):
    """A UI trial: with a slow server, Create key clicked again (or Enter) sent the name a second time, and its 409
    ("an active key named ... exists") replaced the first answer's secret, which is shown only once."""
    held = []
    page.route(
        "**/admin/keys", lambda route: held.append(route) if route.request.method == "POST" else route.continue_()
    )
    sign_in(page, loglake)
    page.get_by_role("link", name="Status").click()
    page.get_by_label("New key's name").fill("clicked-twice")
    page.get_by_role("button", name="Create key").click()
    while not held:  # (routes are handled while Playwright waits)
        page.wait_for_timeout(50)
    assert page.get_by_role("button", name="Create key").is_disabled()
    page.get_by_label("New key's name").press("Enter")
    page.wait_for_timeout(300)
    assert len(held) == 1
    held[0].continue_()
    secret = page.locator(".secret")
    secret.wait_for()
    page.wait_for_timeout(500)
    assert len(held) == 1 and secret.inner_text().startswith("llk_")
    assert page.get_by_role("button", name="Create key").is_enabled()


def test_create_key_and_revoke_by_keyboard_keep_the_focus_in_place(page, loglake):
    """A UI trial, by keyboard: Create key, disabled while its request was on its way, and Revoke, drawn again without
    its key, left the focus on the page's body: the next Tab started again from the top of the page."""
    sign_in(page, loglake)
    page.get_by_role("link", name="Status").click()
    page.get_by_label("New key's name").fill("by-keyboard")
    create = page.get_by_role("button", name="Create key")
    create.focus()
    page.keyboard.press("Enter")
    page.get_by_text("Key by-keyboard created.").wait_for()
    page.get_by_role("button", name="Revoke by-keyboard").wait_for()
    assert create.evaluate("button => document.activeElement === button")
    page.get_by_role("button", name="Revoke by-keyboard").focus()
    page.keyboard.press("Enter")  # arms it
    page.keyboard.press("Enter")
    page.get_by_text("Key by-keyboard revoked.").wait_for()
    page.get_by_role("button", name="Really revoke by-keyboard?").wait_for(state="detached")
    keys = page.locator(".table-wrap", has=page.get_by_role("columnheader", name="Starts with"))
    assert keys.evaluate("list => document.activeElement === list")  # the list it was in
    page.keyboard.press("Tab")  # on to the first key's Revoke
    assert page.evaluate("document.activeElement.textContent") == "Revoke"


def test_a_revoked_keys_message_is_not_replaced_by_a_second_click(page, loglake):
    """A UI trial: with a slow server, the armed Revoke clicked again sent a second DELETE, whose 404 (no such key)
    replaced "Key ... revoked."."""
    with loglake.client() as c:
        c.post("/admin/keys", json={"name": "revoked-twice", "scopes": ["read"]}).raise_for_status()
    held = []
    page.route(
        "**/admin/keys/revoked-twice",
        lambda route: held.append(route) if route.request.method == "DELETE" else route.continue_(),
    )
    sign_in(page, loglake)
    page.get_by_role("link", name="Status").click()
    page.get_by_role("button", name="Revoke revoked-twice").click()
    armed = page.get_by_role("button", name="Really revoke revoked-twice?")
    armed.click()
    _a_second_click_sends_nothing(page, armed, held)
    page.get_by_text("Key revoked-twice revoked.").wait_for()
    armed.wait_for(state="detached")
    page.wait_for_timeout(500)
    assert len(held) == 1 and page.get_by_role("alert").count() == 0


def _click_after_the_session_ended(page, loglake, button: str, back_at: str) -> None:
    """The session ends (expired, or signed out in another tab), then `button` is clicked: the sign-in page says so,
    and signing in again goes back to the page (`back_at`, a URL pattern)."""
    page.context.clear_cookies()
    page.get_by_role("button", name=button).click()
    page.wait_for_url("**/login?**")
    page.get_by_text("Your session has ended").wait_for()
    page.get_by_label("API key").fill(loglake.admin_key)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(back_at)


def _a_second_click_sends_nothing(page, button, held: list) -> None:
    """`button`'s request, held by a route into `held`: the button is disabled while it is on its way, and a second
    click sends nothing; then the request goes on."""
    while not held:  # (routes are handled while Playwright waits)
        page.wait_for_timeout(50)
    assert button.is_disabled()
    button.dispatch_event("click")  # (as a second click of a double click; a disabled button takes none)
    page.wait_for_timeout(300)
    assert len(held) == 1
    held[0].continue_()
