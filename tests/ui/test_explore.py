"""Explore in a real browser: sign in, search with each syntax form, the histogram's drag-to-zoom, a
record's fields and filters, facets, the URL as the view's state, keyboard, sign out."""

from __future__ import annotations

import calendar
import json
import re
import time
import urllib.parse
from datetime import datetime

import pytest

from tests.ui.conftest import DAY_MS, HOUR_MS, no_horizontal_scroll, screenshot, sign_in

pytestmark = pytest.mark.e2e


def services_shown(page) -> set[str]:
    page.locator('.results[aria-busy="false"]').wait_for()
    return set(page.locator(".record .service").all_inner_texts())


def test_sign_in_search_and_sign_out(page, loglake):
    sign_in(page, loglake)
    assert page.url.endswith("/ui/explore")
    page.locator(".record").first.wait_for()
    assert services_shown(page) == {"api", "worker", "billing"}
    screenshot(page, "explore")
    page.set_viewport_size({"width": 390, "height": 844})  # a phone
    assert no_horizontal_scroll(page)
    # the facets come before the records (after them, the records' endless scrolling kept them out of reach)
    facets, records = page.locator(".facets").bounding_box(), page.locator(".records").bounding_box()
    assert facets["y"] + facets["height"] <= records["y"] and facets["y"] < 844
    screenshot(page, "explore-phone")
    page.set_viewport_size({"width": 1280, "height": 800})
    assert no_horizontal_scroll(page)

    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "q"
    page.keyboard.type("serv")  # completions open; Escape closes them, then does nothing more: the text stays
    page.keyboard.press("Escape")
    page.keyboard.press("Escape")
    assert page.locator("#q").input_value() == "serv"  # (a search box was emptied by the browser)
    for query, services in [
        ("service:worker", {"worker"}),
        ('"gateway timed"', {"billing"}),
        ("answered -severity:info", {"api"}),
        ("http.status:500", {"api"}),
    ]:
        page.locator("#q").fill(query)
        page.locator("#q").press("Enter")
        page.wait_for_url(re.compile(r"q="))
        assert services_shown(page) == services, query
    assert page.locator(".record").count() == 6  # the six api errors, i % 20 == 0
    # the URL holds the view: opening it afresh shows the same records
    page.goto(page.url)
    assert page.locator("#q").input_value() == "http.status:500"
    assert services_shown(page) == {"api"}

    # the theme follows the system until the switch picks one, which the browser remembers
    background = "getComputedStyle(document.body).backgroundColor"
    page.emulate_media(color_scheme="dark")
    assert page.evaluate(background) == "rgb(13, 17, 23)"
    page.get_by_role("button", name="Theme: system").click()
    assert page.evaluate(background) == "rgb(255, 255, 255)"  # light, whatever the system says
    page.get_by_role("button", name="Theme: light").click()
    page.reload()
    page.get_by_role("button", name="Theme: dark").wait_for()
    page.emulate_media(color_scheme="light")
    assert page.evaluate(background) == "rgb(13, 17, 23)"

    # Escape closes an open record
    page.locator(".record-summary").first.click()
    page.get_by_role("button", name="Copy JSON").wait_for()
    page.keyboard.press("Escape")
    assert page.locator(".record-details").first.is_hidden()

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/login")
    page.goto(loglake.url + "/ui/explore")
    page.wait_for_url("**/login**")


def test_histogram_zoom_record_filters_facets_and_completion(page, loglake):
    sign_in(page, loglake)
    chart = page.locator(".histogram svg.chart")
    chart.wait_for()
    assert page.locator(".histogram-head strong").inner_text() == "151 records"
    stacked = {
        cls.split("s-")[1]
        for cls in page.locator(".histogram rect.bar").evaluate_all("rs => rs.map(r => r.getAttribute('class'))")
    }
    assert stacked == {"info", "warning", "error", "critical"}
    # each bar's tooltip names its own start whole (the axis's minutes named two 30 s bars alike)
    tips = page.locator(".histogram svg.chart g title").all_text_contents()
    assert all(re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}: [\d,]+ records?\b", tip) for tip in tips), tips[:3]
    assert len({tip.split(": ")[0] for tip in tips}) == len(tips)
    screenshot(page, "explore-histogram")

    # drag across the right half of the chart: the range becomes that stretch of time, absolute
    box = chart.bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 0.5, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.75, y, steps=5)
    page.mouse.move(box["x"] + box["width"] * 0.99, y, steps=5)
    page.mouse.up()
    page.wait_for_url(re.compile(r"from=\d+&to=\d+"))
    params = dict(p.split("=") for p in page.url.split("?")[1].split("&"))
    assert loglake.now_ms - 2 * 3_600_000 < int(params["from"]) < int(params["to"]) <= loglake.now_ms + 3_600_000
    zoomed = page.locator(".histogram-head strong")
    zoomed.wait_for()
    assert 0 < int(zoomed.inner_text().split()[0]) < 151
    assert page.get_by_label("Time range").input_value() == ""  # absolute now, its bounds shown
    assert page.get_by_label("From").is_visible() and page.get_by_label("To").is_visible()
    page.get_by_label("Time zone").select_option("utc")
    page.wait_for_url(re.compile(r"tz=utc"))
    page.locator('.results[aria-busy="false"]').wait_for()
    assert page.locator(".record time").first.inner_text().endswith(" UTC")
    shown = datetime.fromisoformat(page.get_by_label("From").input_value() + "+00:00")
    assert round(shown.timestamp() * 1000) == int(params["from"])  # (to the millisecond, as Apply keeps it)

    # facets count the view's records; clicking one filters by it
    page.goto(loglake.url + "/ui/explore")
    page.locator(".facets button", has_text="worker").click()
    page.wait_for_url(re.compile(r"q=service%3Aworker"))
    assert services_shown(page) == {"worker"}

    # a record opens to its fields; its "filter out" button on one value filters it out
    page.goto(loglake.url + "/ui/explore?q=service%3Aapi")
    page.locator(".record-summary").first.click()
    page.locator(".record-details").first.wait_for()
    page.get_by_role("button", name="Filter out severity info").first.click()
    page.wait_for_url(re.compile(r"q=service%3Aapi\+-severity%3Ainfo"))
    page.locator('.results[aria-busy="false"]').wait_for()
    assert set(page.locator(".record .sev").all_text_contents()) == {"error"}
    page.keyboard.press("Escape")

    # a record's "show surrounding records": its service, a minute either side
    page.goto(loglake.url + "/ui/explore?q=gateway")
    page.locator(".record-summary").first.click()
    page.get_by_role("button", name="Show surrounding records").click()
    page.wait_for_url(re.compile(r"q=service%3Abilling&from=\d+&to=\d+"))
    around = dict(p.split("=") for p in page.url.split("?")[1].split("&"))
    assert int(around["to"]) - int(around["from"]) == 120_000
    assert services_shown(page) == {"billing"}

    # completion: field names, then service values from the facets
    box = page.locator("#q")
    box.fill("")
    box.press_sequentially("serv")
    page.get_by_role("option", name="service:").click()
    page.get_by_role("option", name="service:billing").wait_for()
    box.press("ArrowDown")
    assert page.locator('[role="option"][aria-selected="true"]').count() == 1
    box.press("Escape")
    assert page.locator("#q-completions").is_hidden()


def test_an_empty_result_says_why_and_widens_the_range(page, loglake):
    sign_in(page, loglake)
    page.goto(loglake.url + "/ui/explore?q=gateway&range=5m")
    page.get_by_text("No records match gateway").wait_for()
    screenshot(page, "explore-empty")
    page.get_by_role("button", name="Widen to the last 15m").click()  # the record is 10 minutes old
    assert services_shown(page) == {"billing"}
    assert page.locator(".histogram-head strong").inner_text() == "1 record"
    assert page.locator(".results .more").inner_text() == "1 record, the end of the range."
    assert page.get_by_text("quote text that holds a colon").count() == 0  # (no key:value in the search)


def test_an_empty_results_colon_hint_is_for_attribute_keys_only(page, loglake):
    """An empty search of a record field (service:nosuch, as a facet's filter writes it) was told that a word before
    a colon names an attribute; the hint is for text a colon made a key (error:timeout)."""
    sign_in(page, loglake)
    for q, hinted in (("service:nosuch -severity:debug", False), ("error:timeout", True), ("service:api (x:y)", True)):
        page.goto(loglake.url + "/ui/explore?" + urllib.parse.urlencode({"q": q, "range": "5m"}))
        page.get_by_text(f"No records match {q}").wait_for()
        assert page.get_by_text("quote text that holds a colon").count() == hinted, q


def test_escape_closes_the_absolute_range_unapplied(page, loglake):
    """A UI trial: Escape left the From/To panel open, the picker saying "Absolute…" over a view of the last hour."""
    sign_in(page, loglake)
    page.goto(loglake.url + "/ui/explore?range=1h")
    picker = page.get_by_label("Time range")
    picker.select_option(label="Absolute…")
    page.get_by_label("From").press("Escape")
    assert page.get_by_label("From").is_hidden()
    assert picker.input_value() == "1h" and "range=1h" in page.url


def test_an_absolute_range_refused_once_keeps_no_error_once_corrected(page, loglake):
    """A UI trial: after Apply refused an end before the start, the message stayed on the To field once it was
    corrected, and kept the query box's search from running (Enter showed it again, and nothing was searched)."""
    sign_in(page, loglake)
    page.goto(loglake.url + "/ui/explore?range=1h&tz=utc")
    page.get_by_label("Time range").select_option(label="Absolute…")
    page.get_by_label("From").fill("2026-12-05T10:00:00")
    page.get_by_label("To").fill("2026-12-05T09:00:00")
    page.get_by_role("button", name="Apply").click()
    assert page.get_by_label("To").evaluate("e => e.validationMessage") == "the end must be after the start"
    page.get_by_label("To").fill("2026-12-05T11:00:00")
    page.get_by_label("Search query").fill("service:billing")
    page.get_by_label("Search query").press("Enter")
    page.wait_for_url("**q=service%3Abilling*")
    assert "range=1h" in page.url  # (the search, over the range shown: Apply was not pressed)


@pytest.mark.parametrize("tz", ["utc", "local"])
def test_an_absolute_range_keeps_its_milliseconds(page, loglake, tz):
    """The From/To fields held whole seconds: Apply on a range ending at 12:00:00.500 (a zoom's, a link's) searched
    to 12:00:00, leaving out the records of its last half second."""
    start = loglake.now_ms // 1000 * 1000 - HOUR_MS
    end = start + HOUR_MS + 500
    sign_in(page, loglake)
    page.goto(f"{loglake.url}/ui/explore?from={start + 250}&to={end}&tz={tz}")
    seconds, _, fraction = page.get_by_label("From").input_value().partition(".")
    assert fraction.ljust(3, "0") == "250"  # (the browser writes .250 as .25)
    later = f"{seconds}.750"  # (another start, typed with its milliseconds)
    page.get_by_label("From").fill(later)
    page.get_by_role("button", name="Apply").click()
    page.wait_for_url(re.compile(f"from={start + 750}"))
    assert urllib.parse.parse_qs(urllib.parse.urlsplit(page.url).query)["to"] == [str(end)]


def test_an_empty_result_of_a_key_value_search_says_to_quote_text_with_a_colon(page, loglake):
    sign_in(page, loglake)
    page.goto(loglake.url + "/ui/explore?q=" + urllib.parse.quote("at 10:42") + "&range=5m")
    page.get_by_text('quote text that holds a colon, as in "error: timeout"').wait_for()


@pytest.mark.parametrize(
    ("q", "said"), [("%22unclosed", "unbalanced"), ("-", "the - at character 1 leaves out nothing")]
)
def test_a_query_the_server_cannot_read_is_shown_once(page, loglake, q, said):
    """The histogram, the facets and the records ask with the same query: one error, where the records go."""
    sign_in(page, loglake)
    answered = []
    page.on("response", lambda r: answered.append(r.url) if "/logs/" in r.url and r.status == 400 else None)
    page.goto(loglake.url + f"/ui/explore?q={q}")
    page.locator(".results .error-box").wait_for()
    page.wait_for_function("() => !document.querySelector('.histogram .progress, .facets .progress')")
    assert len(answered) == 3  # the histogram and the facets asked too, and were refused alike
    assert page.locator(".error-box").count() == 1
    assert said in page.locator(".results .error-box").inner_text()
    assert page.get_by_role("button", name="Retry").count() == 0  # the same query would be refused again


def test_a_server_that_does_not_answer_is_one_error_gone_once_it_is_back(page, loglake):
    """A stopped server fails the histogram, the facets and the records alike: one error, where the records go,
    that says what to do; the page asks again by itself and shows the records once the server is back."""
    sign_in(page, loglake)
    page.locator(".record").first.wait_for()
    loglake.server.stop()
    try:
        page.locator("#q").fill("service:worker")
        page.locator("#q").press("Enter")  # drawn by the page already loaded: it asks the stopped server
        page.locator(".results .error-box").wait_for()
        page.wait_for_function("() => !document.querySelector('.histogram .progress, .facets .progress')")
        assert page.locator(".error-box").count() == 1
        said = page.locator(".error-box").inner_text()
        assert "loglake did not answer; check that the server is running" in said, said
        assert "shows the records once loglake answers" in said, said
        screenshot(page, "explore-server-down")
        # another page asks again too (Alerts, Rules, Status, SQL and Amplify stayed on their error until Retry)
        page.get_by_role("link", name="Alerts").click()
        page.locator(".error-box").first.wait_for()
        assert "asks again every few seconds" in page.locator(".error-box").first.inner_text()
    finally:
        loglake.server.start(timeout=60)  # the module's other tests use it
    page.wait_for_function("() => !document.querySelector('.error-box')", timeout=30_000)
    page.get_by_role("heading", name="Alerts").wait_for()
    page.go_back()  # (Explore again, as it was asked while the server was down)
    page.locator(".record").first.wait_for(timeout=30_000)
    assert page.locator(".error-box").count() == 0
    assert services_shown(page) == {"worker"}
    # (the histogram asks on its own: drawn beside the records, not necessarily before them; counted at once,
    # it was missing on a loaded CI machine)
    page.locator(".histogram svg.chart").wait_for(timeout=30_000)
    assert page.locator(".histogram svg.chart").count() == 1


def test_signing_out_while_the_server_does_not_answer_says_so_and_signs_out_once_it_is_back(page, loglake):
    """Only the server ends a session (the cookie is HttpOnly): the page went to /login anyway, which the
    browser could not open, and once the server was back the UI let the same browser in again."""
    sign_in(page, loglake)
    page.locator(".record").first.wait_for()
    loglake.server.stop()
    try:
        page.get_by_role("button", name="Sign out").click()
        page.get_by_role("heading", name="Not signed out").wait_for()
        said = page.locator(".error-box").inner_text()
        assert "loglake did not answer" in said and "asks again every few seconds" in said, said
        assert page.url.endswith("/ui/explore")
    finally:
        loglake.server.start(timeout=60)  # the module's other tests use it
    page.wait_for_url("**/login", timeout=30_000)  # signed out by the server, once it answered
    page.goto(loglake.url + "/ui/explore")
    page.wait_for_url("**/login**")


def test_signing_in_returns_to_the_page_asked_for_without_a_refused_request(page, loglake, browser):
    refused, said = [], []
    page.on("response", lambda r: refused.append(r.url) if r.status == 401 else None)
    page.on("console", lambda message: said.append(message.text))
    page.goto(loglake.url + "/ui/sql?sql=SELECT%2042%20AS%20answer")
    page.wait_for_url("**/login?next=**")
    page.locator("#login").wait_for()
    assert said == []  # the sign-in page calls nothing that refuses it, and no advice of the browser's
    page.get_by_label("API key").fill("llk_not-a-key")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text("That key is not valid, or was revoked").wait_for()  # refused, and still knows where to go
    page.get_by_label("API key").fill(loglake.read_key)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(loglake.url + "/ui/sql?sql=SELECT%2042%20AS%20answer")
    assert page.get_by_label("SQL query").input_value() == "SELECT 42 AS answer"
    assert refused == []

    # a session that ends while a page is open: signing in again returns to the page it was on
    with loglake.client() as c:
        secret = c.post("/admin/keys", json={"name": "short-lived", "scopes": ["read"]}).json()["secret"]
    sign_in(page, loglake, secret)
    with loglake.client() as c:
        assert c.delete("/admin/keys/short-lived").status_code in (200, 204)
    page.get_by_role("link", name="Alerts").click()
    page.wait_for_url("**/login?**next=%2Fui%2Falerts")
    page.get_by_text("Your session has ended; sign in again.").wait_for()
    page.get_by_label("API key").fill(loglake.read_key)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(loglake.url + "/ui/alerts")

    # a sign-in link made elsewhere cannot send the browser to another site
    other = browser.new_context().new_page()
    try:
        other.goto(loglake.url + "/login?next=https%3A%2F%2Fexample.com%2Fui%2F")
        other.get_by_label("API key").fill(loglake.read_key)
        other.get_by_role("button", name="Sign in").click()
        other.wait_for_url(loglake.url + "/ui/explore")
    finally:
        other.context.close()


def test_a_link_from_another_site_opens_its_page_signed_in(page, loglake):
    # a link in a chat or an alert e-mail, or Cognito's redirect back: the browser withholds the
    # SameSite=Strict session cookie from a navigation that starts on another site, so the server must
    # not take its absence for "signed out"
    sign_in(page, loglake, loglake.read_key)
    target = loglake.url + "/ui/alerts"
    chat = f'<!doctype html><title>chat</title><a href="{target}">the alerts</a>'
    page.route("http://chat.example/", lambda route: route.fulfill(content_type="text/html", body=chat))
    page.goto("http://chat.example/")
    page.get_by_role("link", name="the alerts").click()
    page.wait_for_url(target)
    page.get_by_role("heading", name="Alerts").wait_for()
    assert page.url == target  # not sent to sign in again


def test_a_shared_link_to_the_home_page_keeps_its_query(page, loglake):
    # not signed in: through the sign-in page, which carries the link's query back
    page.goto(loglake.url + "/ui/?q=gateway")
    page.wait_for_url("**/login?next=**")
    page.get_by_label("API key").fill(loglake.read_key)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(loglake.url + "/ui/explore?q=gateway")
    assert page.locator("#q").input_value() == "gateway"
    assert services_shown(page) == {"billing"}
    # signed in: the hash goes along too
    page.goto(loglake.url + "/ui/?q=service%3Aworker#results")
    page.wait_for_url(loglake.url + "/ui/explore?q=service%3Aworker#results")
    assert services_shown(page) == {"worker"}
    # a session that has ended: signing in again returns to the whole link, hash included
    with loglake.client() as c:
        secret = c.post("/admin/keys", json={"name": "shared-link", "scopes": ["read"]}).json()["secret"]
    sign_in(page, loglake, secret)
    with loglake.client() as c:
        assert c.delete("/admin/keys/shared-link").status_code in (200, 204)
    page.goto(loglake.url + "/ui/explore?q=gateway#results")
    page.wait_for_url("**/login?**")
    page.get_by_label("API key").fill(loglake.read_key)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(loglake.url + "/ui/explore?q=gateway#results")


def test_a_link_with_a_hash_opened_without_a_session_comes_back_whole_after_signing_in(page, loglake):
    """A UI trial: the server sends a page opened without a session to /login?next=<its path and query>, and the
    browser keeps the link's #hash on the sign-in page (it never reaches the server); signing in dropped it."""
    page.goto(loglake.url + "/ui/explore?q=gateway#results")
    page.wait_for_url("**/login?next=**#results")
    page.get_by_label("API key").fill("llk_not-a-key")  # (refused first: the page asked for is kept meanwhile)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text("That key is not valid, or was revoked").wait_for()
    page.get_by_label("API key").fill(loglake.read_key)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(loglake.url + "/ui/explore?q=gateway#results")
    # a link to another site is still not followed, hash or not (the Explore page left first: signed out under it,
    # its own requests' 401 would send it to sign in again, racing this page)
    page.goto("about:blank")
    page.context.clear_cookies()
    page.goto(loglake.url + "/login?next=https%3A%2F%2Fexample.com%2Fui%2F#results")
    page.get_by_label("API key").fill(loglake.read_key)
    page.get_by_role("button", name="Sign in").click()
    # (the UI's own page, its hash kept or not: the browser may carry the sign-in page's over the redirect)
    page.wait_for_url(re.compile(re.escape(loglake.url) + r"/ui/explore(#.*)?$"))


def test_an_opened_record_shows_its_message_whole_and_its_attributes_apart(page, loglake):
    """A stack trace was one line in the row and \\n escapes in the JSON, and an attribute named service read as
    the record's own service."""
    trace = 'Traceback (most recent call last):\n  File "app.py", line 3\nValueError: no'
    loglake.send([{"service": "stacked", "message": trace, "attributes": {"service": "shadow"}}])
    sign_in(page, loglake)
    page.goto(loglake.url + "/ui/explore?q=service%3Astacked")
    page.locator(".record-summary").first.click()
    assert page.get_by_label("Message").inner_text() == trace
    headings = page.locator(".record-details .fields th").all_text_contents()
    assert headings.index("attributes") < len(headings) - 1 and headings[-1] == "service"  # (under its heading)
    assert headings.index("service") < headings.index("attributes")  # (the record's own, above it)


def test_an_attribute_holding_an_empty_object_or_list_is_one_of_the_records_fields(page, loglake):
    """An attribute holding {} had no leaf to show: it was missing from the record's fields (its JSON had it)."""
    attributes = {"context": {}, "tags": [], "deep": {"inner": {}}, "kept": "yes"}
    loglake.send([{"service": "empties", "message": "nothing inside", "attributes": attributes}])
    sign_in(page, loglake)
    page.goto(loglake.url + "/ui/explore?q=service%3Aempties")
    page.locator(".record-summary").first.click()
    rows = page.locator(".record-details .fields tr", has=page.locator("td.value"))
    rows.first.wait_for()
    fields = dict(zip(rows.locator("th").all_inner_texts(), rows.locator("td.value").all_inner_texts(), strict=True))
    assert {k: v for k, v in fields.items() if k not in ("service", "severity", "log_type")} == {
        "context": "{}",
        "tags": "[]",
        "deep.inner": "{}",
        "kept": "yes",
    }


def test_a_range_the_picker_does_not_offer_is_the_default_and_the_picker_says_so(page, loglake):
    """`range=2h` searched the last hour while the picker showed "Last 5m"."""
    sign_in(page, loglake)
    page.goto(loglake.url + "/ui/explore?range=2h")
    page.locator('.results[aria-busy="false"]').wait_for()
    assert page.get_by_label("Time range").evaluate("select => select.selectedOptions[0].textContent") == "Last 1h"


def test_the_histograms_axis_is_the_range_asked_for_not_its_buckets(page, loglake):
    # six hours from 7 minutes past an hour: 5-minute buckets, the first starting 2 minutes before the
    # range, the last ending 3 minutes after it
    since = loglake.now_ms // HOUR_MS * HOUR_MS - 6 * HOUR_MS + 7 * 60_000
    until = since + 6 * HOUR_MS
    sign_in(page, loglake)
    page.goto(f"{loglake.url}/ui/explore?from={since}&to={until}&tz=utc")
    page.locator(".histogram .ticks span").first.wait_for()
    ticks = page.locator(".histogram .ticks span").all_inner_texts()
    assert (ticks[0], ticks[-1]) == tuple(time.strftime("%m-%d %H:%M", time.gmtime(t / 1000)) for t in (since, until))


def test_a_histogram_over_a_minute_labels_its_axis_to_the_second(page, loglake):
    """Each label of a one-minute range (an alert's, opened in Explore) read the same minute."""
    since = loglake.now_ms // 60_000 * 60_000 - 10 * 60_000
    sign_in(page, loglake)
    page.goto(f"{loglake.url}/ui/explore?from={since}&to={since + 60_000}&tz=utc")
    page.locator(".histogram .ticks span").first.wait_for()
    ticks = page.locator(".histogram .ticks span").all_inner_texts()
    assert ticks == [time.strftime("%H:%M:%S", time.gmtime(since / 1000 + 15 * i)) for i in range(5)], ticks


def test_a_histogram_over_a_new_year_labels_its_axis_with_the_years(page, loglake):
    """Its labels read "12-30 00:00" and then "01-01 00:00": of which year each was, the axis did not say."""
    since = int(calendar.timegm((2025, 12, 29, 0, 0, 0))) * 1000
    until = since + 5 * DAY_MS
    sign_in(page, loglake)
    page.goto(f"{loglake.url}/ui/explore?from={since}&to={until}&tz=utc")
    page.locator(".histogram .ticks span").first.wait_for()
    ticks = page.locator(".histogram .ticks span").all_inner_texts()
    assert (ticks[0], ticks[-1]) == ("2025-12-29 00:00", "2026-01-03 00:00"), ticks
    page.goto(f"{loglake.url}/ui/explore?from={since}&to={since + 2 * DAY_MS}&tz=utc")  # (within one year: as before)
    page.locator(".histogram .ticks span", has_text="12-31 00:00").wait_for()
    assert page.locator(".histogram .ticks span").all_inner_texts()[0] == "12-29 00:00"


def test_live_tail_shows_a_record_sent_after_it_started(page, loglake):
    sign_in(page, loglake)
    page.goto(loglake.url + "/ui/explore?q=service%3Atailed")
    page.get_by_role("button", name="Live tail").click()
    page.wait_for_url(re.compile(r"tail=1"))
    page.get_by_text("Live", exact=True).wait_for()  # the stream is open
    loglake.send(
        [{"service": "tailed", "message": "fresh off the press"}, {"service": "other", "message": "not this one"}]
    )
    page.locator(".record .message", has_text="fresh off the press").wait_for(timeout=2000)
    assert page.locator(".record").count() == 1
    page.get_by_role("button", name="Pause").click()
    loglake.send([{"service": "tailed", "message": "held while paused"}])
    page.get_by_role("button", name="Resume").click()
    page.locator(".record .message", has_text="held while paused").wait_for(timeout=2000)
    assert page.locator(".record .message").all_inner_texts() == ["held while paused", "fresh off the press"]
    screenshot(page, "explore-tail")
    page.get_by_role("button", name="Stop live tail").click()
    page.wait_for_url(re.compile(r"^(?!.*tail=1)"))


def test_live_tail_shows_the_newest_of_a_burst_and_links_to_the_ones_it_dropped(page, loglake):
    """A burst of more than a tail holds (1,000 records) showed its oldest 1,000 and never its newest, and said only
    that records were dropped."""
    sign_in(page, loglake)
    page.goto(loglake.url + "/ui/explore?q=service%3Aburst")
    page.get_by_role("button", name="Live tail").click()
    page.get_by_text("Live", exact=True).wait_for()
    loglake.send([{"service": "burst", "message": f"burst {i}"} for i in range(1500)])  # (one batch: one delivery)
    page.locator(".record .message", has_text="burst 1499").wait_for()
    note = page.get_by_role("status").filter(has_text="dropped")
    note.wait_for()
    assert "dropped 500 records" in note.inner_text()
    assert page.locator(".record .message", has_text=re.compile(r"^burst 0$")).count() == 0
    missed = note.get_by_role("link", name="search them")
    asked = urllib.parse.parse_qs(urllib.parse.urlsplit(missed.get_attribute("href")).query)
    assert asked["q"] == ["service:burst"] and int(asked["from"][0]) < int(asked["to"][0])
    page.get_by_role("button", name="Stop live tail").click()


def test_a_facet_added_to_a_query_with_or_filters_all_of_it(page, loglake):
    """`gateway OR slow` and a click on the worker facet is `(gateway OR slow) service:worker`: written after
    the OR alone, the service would bind to `slow` only (AND binds tighter), and billing's gateway would stay."""
    sign_in(page, loglake)
    page.goto(loglake.url + "/ui/explore?q=gateway+OR+slow")
    assert services_shown(page) == {"billing", "worker"}
    assert "a OR b matches either" in page.locator("#q").get_attribute("title")
    page.locator(".facets button", has_text="worker").click()
    page.wait_for_url(re.compile(r"q=%28gateway\+OR\+slow%29\+service%3Aworker"))
    assert services_shown(page) == {"worker"}

    # completion inside a group: `(serv` completes the field name after the parenthesis
    box = page.locator("#q")
    box.fill("")
    box.press_sequentially("(serv")
    page.get_by_role("option", name="service:").click()
    assert box.input_value() == "(service:"


def test_a_facet_with_more_values_than_it_shows_offers_the_rest(page, loglake):
    """Facets showed their top 8 values and no word of the others (a UI trial)."""
    at = loglake.now_ms - 4 * 24 * HOUR_MS  # (a window of its own, apart from the other tests' records)
    loglake.send(
        [{"timestamp": at + i, "service": f"shop-{i:02d}", "message": "x"} for i in range(12) for _ in range(12 - i)]
    )
    sign_in(page, loglake)
    page.goto(f"{loglake.url}/ui/explore?from={at}&to={at + 60_000}")
    services = page.locator('.facets [data-facet="service"] li')
    services.first.wait_for()
    assert services.count() == 8  # the 8 most frequent: shop-00 (12 records) to shop-07 (5)
    screenshot(page, "explore-facets-more")
    assert page.locator('.facets [data-facet="severity"]').get_by_role("button", name="More").count() == 0
    page.get_by_role("button", name="More services").click()
    page.locator('.facets [data-facet="service"] li').nth(11).wait_for()
    assert [t.split("\n")[0] for t in services.all_inner_texts()] == [f"shop-{i:02d}" for i in range(12)]
    assert page.evaluate("document.activeElement.textContent").startswith("shop-08")  # (where the button was)
    page.locator('.facets [data-facet="service"] li', has_text="shop-11").get_by_role("button").click()
    page.wait_for_url(re.compile(r"q=service%3Ashop-11"))


def test_an_integer_past_2_to_the_53_is_shown_and_copied_with_every_digit(page, loglake):
    """JavaScript's numbers hold integers exactly up to 2^53: a 64-bit id read as one lost its last digits
    (9007199254740993 shown as ...992) in the record, its filter and its Copy JSON."""
    big, past_int64 = 9007199254740993, 123456789012345678901234567890
    loglake.send([{"service": "ids", "message": "snowflake", "attributes": {"user_id": big, "huge": past_int64}}])
    sign_in(page, loglake)
    page.goto(loglake.url + "/ui/explore?q=service%3Aids")
    page.locator(".record-summary").first.click()
    row = page.locator(".record-details .fields tr", has=page.locator("th", has_text="user_id"))
    assert row.locator("td.value").inner_text() == str(big)
    shown = json.loads(page.locator(".record-details pre.json").inner_text())  # (Python's json keeps every digit)
    assert shown["attributes"] == {"user_id": big, "huge": past_int64}
    row.get_by_role("button", name=f"Filter for user_id {big}").click()
    assert urllib.parse.parse_qs(urllib.parse.urlparse(page.url).query)["q"] == [f"service:ids user_id:{big}"]
    assert services_shown(page) == {"ids"}  # (the search finds it by its digits)

    page.goto(loglake.url + "/ui/sql")
    editor = page.get_by_label("SQL query")
    editor.fill(f"SELECT * FROM (VALUES ({big}::BIGINT), (9007199254740992::BIGINT), (5::BIGINT), ({big})) t(n)")
    editor.press("Control+Enter")
    cells = page.locator(".grid tbody td")
    cells.first.wait_for()
    assert cells.all_inner_texts() == [str(big), "9007199254740992", "5", str(big)]
    page.get_by_role("button", name="n", exact=True).click()  # ascending, as BigInts: 5 first, big last
    assert cells.all_inner_texts() == ["5", "9007199254740992", str(big), str(big)]
    page.get_by_role("button", name="n", exact=True).click()  # descending
    assert cells.all_inner_texts() == [str(big), str(big), "9007199254740992", "5"]


def test_a_records_number_filter_finds_the_record(page, loglake):
    """A float sent as 2.0 (as Python's json writes one) or 1e+21 is shown as JavaScript writes the number (2,
    1e+21), and its filter (`took:2`) found nothing: the attribute held 2.0, and the lake's JSON reader 1e21."""
    loglake.send([{"service": "floats", "message": "timed", "attributes": {"took": 2.0, "huge": 1e21, "ratio": 0.5}}])
    sign_in(page, loglake)
    for name, shown in (("took", "2.0"), ("huge", "1e+21"), ("ratio", "0.5")):  # (shown as sent: Python's json.dumps)
        page.goto(loglake.url + "/ui/explore?q=service%3Afloats")
        page.locator(".record-summary").first.click()
        row = page.locator(".record-details .fields tr", has=page.locator("th", has_text=name))
        row.get_by_role("button", name=f"Filter for {name} {shown}").click()
        page.wait_for_url(re.compile(f"q=service%3Afloats\\+{name}%3A"))
        assert services_shown(page) == {"floats"}, f"{name}:{shown} found nothing"


AS_SENT = {"took": "2.0", "price": "1.50", "sci": "1E2", "zero": "-0.0", "big": "12345678901234567890", "deep.n": "3.0"}


def test_a_records_numbers_are_shown_as_sent(page, loglake):
    """An attribute sent as 2.0 showed as 2, 1.50 as 1.5, 1E2 as 100 and -0.0 as 0 (JavaScript's form of the number,
    not the JSON text the store keeps and the API answers), in the record's fields, its JSON and the live tail."""
    sent = '{"took": 2.0, "price": 1.50, "sci": 1E2, "zero": -0.0, "big": 12345678901234567890, "deep": {"n": 3.0}}'
    line = f'{{"service": "as-sent", "message": "numbers", "attributes": {sent}}}'
    with loglake.client() as c:
        assert c.post("/logs", content=line, headers={"content-type": "application/json"}).status_code == 201

    def shown_as_sent() -> None:
        page.locator(".record-summary").first.click()
        for name, text in AS_SENT.items():
            row = page.locator(".record-details .fields tr", has=page.locator("th", has_text=re.compile(f"^{name}$")))
            assert row.locator("td.value").inner_text() == text, name
        json_text = page.locator(".record-details pre.json").inner_text()
        assert all(f'"{name.split(".")[-1]}": {text}' in json_text for name, text in AS_SENT.items()), json_text

    sign_in(page, loglake)
    page.goto(loglake.url + "/ui/explore?q=service%3Aas-sent")
    shown_as_sent()
    page.locator(".record-details .fields tr", has=page.locator("th", has_text="price")).get_by_role(
        "button", name="Filter for price 1.50"
    ).click()
    page.wait_for_url(re.compile("price%3A1.50"))
    assert services_shown(page) == {"as-sent"}

    page.goto(loglake.url + "/ui/explore?q=service%3Aas-sent&tail=1")
    page.get_by_text("Live", exact=True).wait_for()
    with loglake.client() as c:
        assert c.post("/logs", content=line, headers={"content-type": "application/json"}).status_code == 201
    shown_as_sent()


def test_the_sql_grid_sorts_and_aligns_a_number_columns_text_as_numbers(page, loglake):
    """A DECIMAL's digits and a double's NaN and infinities come as text (JSON has no number for them exactly): they
    sorted as text ("10.50" before "9.25", "NaN" anywhere) and sat left of the column's other numbers."""
    sign_in(page, loglake)
    page.goto(loglake.url + "/ui/sql")
    editor = page.get_by_label("SQL query")
    editor.fill(
        "SELECT d, f FROM (VALUES (9.25::DECIMAL(6,2), 1.5::DOUBLE), (10.50, 'NaN'::DOUBLE),"
        " (-3.00, 'Infinity'::DOUBLE), (NULL, '-Infinity'::DOUBLE), (100.00, -2.0)) t(d, f)"
    )
    editor.press("Control+Enter")
    column = {name: page.locator(f".grid tbody td:nth-child({i})") for i, name in enumerate("df", 1)}
    column["d"].first.wait_for()
    assert column["d"].all_inner_texts() == ["9.25", "10.50", "-3.00", "NULL", "100.00"]
    assert all("num" in (c.get_attribute("class") or "") for c in column["f"].all())
    page.get_by_role("button", name="d", exact=True).click()  # ascending: as numbers, NULL last
    assert column["d"].all_inner_texts() == ["-3.00", "9.25", "10.50", "100.00", "NULL"]
    page.get_by_role("button", name="f", exact=True).click()  # ascending: NaN after every number, as SQL orders it
    assert column["f"].all_inner_texts() == ["-Infinity", "-2.0", "1.5", "Infinity", "NaN"]
    page.get_by_role("button", name="f", exact=True).click()  # descending
    assert column["f"].all_inner_texts() == ["NaN", "Infinity", "1.5", "-2.0", "-Infinity"]


def test_a_picker_changed_by_keyboard_keeps_the_focus(page, loglake):
    """A UI trial, by keyboard: a closed select's arrow key changes the view at each press, and the view drawn again
    left the focus on the page's body: the next arrow key did nothing, and Tab started again from the top of the page.
    Amplify's pickers alike, drawn with the page's answer."""
    sign_in(page, loglake)
    page.goto(loglake.url + "/ui/explore")
    page.locator(".record").first.wait_for()
    page.get_by_label("Time range").focus()
    page.keyboard.press("ArrowDown")
    page.wait_for_url("**/ui/explore?range=6h")
    page.keyboard.press("ArrowDown")
    page.wait_for_url("**/ui/explore?range=24h")
    assert page.evaluate("document.activeElement.getAttribute('aria-label')") == "Time range"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.getAttribute('aria-label')") == "Time zone"
    page.goto(loglake.url + "/ui/amplify?app=shop&range=7d")
    page.get_by_label("Range").focus()
    page.keyboard.press("ArrowDown")
    page.wait_for_url("**/ui/amplify?app=shop&range=30d")
    page.locator("article.report").first.wait_for()
    assert page.evaluate("document.activeElement.getAttribute('aria-label')") == "Range"
