"""Bidirectional formatting characters in a record (a right-to-left override in a message, an attribute's key or
value, an alert's title) are shown as escapes wherever a page shows the text, as the CLI shows them: drawn as
they are, "invoice \\u202eexe.txt" read "invoice txt.exe", and the override turned round what followed it."""

from __future__ import annotations

import re
import uuid
from urllib.parse import quote

import pytest

from tests.ui.conftest import raise_alert, sign_in

pytestmark = pytest.mark.e2e

RLO, RLI, PDI, RLM = "\u202e", "\u2067", "\u2069", "\u200f"
MESSAGE = f"invoice {RLO}exe.txt done"
ATTRIBUTES = {f"file{RLO}name": f"a{RLI}b{PDI}c{RLM}"}
BIDI_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]")


def record(service: str) -> dict:
    return {"service": service, "message": MESSAGE, "attributes": ATTRIBUTES}


def shown_without_bidi_controls(page) -> str:
    """The page's text (and its tooltips), which must hold no bidirectional formatting character."""
    text = page.locator("main").inner_text()
    titles = page.locator("main [title]").evaluate_all("els => els.map((e) => e.title)")
    assert not BIDI_CONTROLS.search(text + "".join(titles)), [c for c in text if BIDI_CONTROLS.match(c)]
    return text


def test_a_records_bidi_controls_are_shown_as_escapes_in_explore_the_tail_and_sql(page, loglake):
    loglake.send([record("bidi")])
    sign_in(page, loglake)
    page.goto(loglake.url + "/ui/explore?q=service%3Abidi")
    row = page.locator(".record").first
    assert row.locator(".message").inner_text() == "invoice \\u202eexe.txt done"
    row.locator(".record-summary").click()
    assert page.get_by_label("Message").inner_text() == "invoice \\u202eexe.txt done"
    field = page.locator(".record-details .fields tr").last
    assert field.locator("th").inner_text() == "file\\u202ename"
    assert field.locator("td.value").inner_text() == "a\\u2067b\\u2069c\\u200f"
    assert '"message": "invoice \\u202eexe.txt done",' in page.locator(".record-details pre.json").inner_text()
    page.locator('.facets [data-facet="attribute_keys"] button', has_text="file").wait_for()
    shown_without_bidi_controls(page)

    page.goto(loglake.url + "/ui/explore?q=service%3Abidi-tail&tail=1")
    page.get_by_text("Live", exact=True).wait_for()
    loglake.send([record("bidi-tail")])
    page.locator(".record .message", has_text="invoice").wait_for()
    page.locator(".record-summary").first.click()
    assert "invoice \\u202eexe.txt done" in shown_without_bidi_controls(page)

    page.goto(loglake.url + "/ui/sql")
    editor = page.get_by_label("SQL query")
    editor.fill("SELECT message, attributes FROM logs WHERE service = 'bidi'")
    editor.press("Control+Enter")
    page.locator(".grid tbody td").first.wait_for()
    assert page.locator(".grid tbody td").first.inner_text() == "invoice \\u202eexe.txt done"
    # (the editor's highlight, over the text typed, is that text as it is: it is the query, not a record's text)
    page.locator(".history-item").first.wait_for()
    editor.fill(f"SELECT '{RLO}x' AS y")
    assert page.locator(".editor-wrap .highlight").inner_text().startswith(f"SELECT '{RLO}x'")


def test_an_alerts_bidi_controls_are_shown_as_escapes_in_the_list_and_its_page(page, loglake):
    alert_id = str(uuid.uuid4())
    evidence = {"logId": str(uuid.uuid4()), "timestamp": loglake.now_ms, **record("bidi-alert"), "severity": "error"}
    raise_alert(loglake, id=alert_id, title=f"{MESSAGE} for mallory", evidence=[evidence])
    sign_in(page, loglake)
    page.goto(loglake.url + "/ui/alerts")
    page.locator("td.alert-title", has_text="invoice").first.wait_for()
    assert "invoice \\u202eexe.txt done for mallory" in shown_without_bidi_controls(page)
    page.goto(f"{loglake.url}/ui/alerts/{alert_id}")
    page.locator(".record-summary", has_text="invoice").click()
    page.locator(".record-details pre.json").wait_for()
    assert page.locator("h1").inner_text().endswith("invoice \\u202eexe.txt done for mallory")
    assert "file\\u202ename" in shown_without_bidi_controls(page)


def test_a_query_boxs_bidi_controls_are_shown_as_escapes_and_searched_as_they_are(page, loglake):
    """A UI trial: a shared link's q= filled the query box with its override as it is (the box read other than what
    was searched), and aria-labels (a value's filter buttons) held them too. The box shows escapes, those pasted
    too; the search is the query as it came."""
    loglake.send([record("bidi-box")])
    sign_in(page, loglake)
    page.goto(loglake.url + "/ui/explore?q=" + quote(f'service:bidi-box "{RLO}exe"'))
    box = page.get_by_label("Search query")
    assert box.input_value() == 'service:bidi-box "\\u202eexe"'
    page.locator(".record .message", has_text="invoice").wait_for()  # found: the override was searched
    page.locator(".record-summary").first.click()
    labels = page.locator("main [aria-label]").evaluate_all("els => els.map((e) => e.getAttribute('aria-label'))")
    assert any("\\u202e" in label for label in labels)
    assert not BIDI_CONTROLS.search("".join(labels))
    box.fill(f"service:bidi-box {RLO}exe")  # (typed or pasted)
    assert box.input_value() == "service:bidi-box \\u202eexe"
    box.press("Enter")
    page.wait_for_url(re.compile(r".*q=service%3Abidi-box\+%E2%80%AEexe"))
    page.locator(".record .message", has_text="invoice").wait_for()

    title = f"{MESSAGE} for trudy"
    raise_alert(loglake, id=str(uuid.uuid4()), title=title)
    page.goto(loglake.url + "/ui/alerts?q=" + quote(f"{RLO}exe"))
    page.locator("td.alert-title", has_text="trudy").wait_for()
    assert page.get_by_label("Text in the title or rule").input_value() == "\\u202eexe"
    page.get_by_role("button", name="Filter", exact=True).click()
    page.wait_for_url(re.compile(r".*q=%E2%80%AEexe"))
    page.locator("td.alert-title", has_text="trudy").wait_for()


# The left edge of each word where an element shows it (null for a word it does not show).
LEFT_EDGES = """(el, words) => words.map((word) => {
  const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
  for (let node; (node = walker.nextNode());) {
    const at = node.data.indexOf(word);
    if (at < 0) continue;
    const range = document.createRange();
    range.setStart(node, at);
    range.setEnd(node, at + word.length);
    return range.getBoundingClientRect().left;
  }
  return null;
})"""


def test_right_to_left_strings_side_by_side_keep_their_order_in_a_records_json(page, loglake):
    """A UI trial: a right-to-left key and value (no control character) read as one right-to-left run with the `": "`
    between them, so the JSON view showed the value where the key is ("ערך": "מפתח"), and an array's items turned
    round in the fields; each string is isolated."""
    loglake.send([{"service": "bidi-rtl", "message": "hello", "attributes": {"מפתח": "ערך", "list": ["אחד", "שניים"]}}])
    sign_in(page, loglake)
    page.goto(loglake.url + "/ui/explore?q=service%3Abidi-rtl")
    page.locator(".record-summary").first.click()
    json_view = page.locator(".record-details pre.json")
    key, value = json_view.evaluate(LEFT_EDGES, ["מפתח", "ערך"])
    assert key < value
    assert '"מפתח": "ערך"' in json_view.inner_text()  # (the text itself as it was)
    items = page.locator(".record-details .fields tr", has_text="list").locator("td.value")
    first, second = items.evaluate(LEFT_EDGES, ["אחד", "שניים"])
    assert first < second
