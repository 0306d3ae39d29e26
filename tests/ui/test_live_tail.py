"""The live tail in a real browser against a server of its own, which the tests stop and start again: the
page reconnects as `loglake tail` does, names the time it was away with a link to the search of it, and its
toggle says whether the tail is on."""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.ui.conftest import Loglake, screenshot, serving, sign_in

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def restartable(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loglake]:
    """A server of the module's own: its last test stops and starts it."""
    with serving(tmp_path_factory.mktemp("tail")) as lake:
        yield lake


def test_a_live_tail_the_server_refuses_is_off_and_its_toggle_says_so(page, restartable):
    sign_in(page, restartable)
    page.goto(restartable.url + "/ui/explore?q=service%3A%28&tail=1")  # `service:(`: not a search
    page.get_by_role("status").filter(has_text="stopped").wait_for()
    said = page.get_by_role("status").inner_text()  # the server's reason, as a search shows it ("HTTP 400" alone)
    assert said.startswith("The live tail stopped: q: service: needs a value, e.g. service:api"), said
    assert page.get_by_role("button", name="Pause").count() == 0  # (nothing to pause)
    toggle = page.locator(".toolbar button.toggle")
    assert (toggle.inner_text(), toggle.get_attribute("aria-pressed")) == ("Live tail", "false")


def test_a_live_tail_over_its_keys_limit_says_so_and_starts_once_one_closes(page, restartable):
    """A key's sixth tail said "The server is not taking live tails now", then "Live again: records that arrived
    while the tail was away are not shown" though it had never been live."""
    sign_in(page, restartable)
    with contextlib.ExitStack() as held, restartable.client() as api:
        for _ in range(5):  # the admin key's five tails (max_tails_per_key), open elsewhere
            held.enter_context(api.stream("GET", "/logs/tail"))
        page.goto(restartable.url + "/ui/explore?q=service%3Afull&tail=1")
        waiting = page.get_by_role("status").filter(has_text="not taking this live tail now")
        waiting.wait_for()
        assert "already has 5 live tails open" in waiting.inner_text()
    page.get_by_text("Live", exact=True).wait_for(timeout=20_000)  # one closed: this one opens, with nothing missed


def test_a_paused_live_tail_holds_no_more_than_its_list_shows(page, restartable):
    """A UI trial: a paused tail held every record that arrived (a tail paused for a night, all of the night's),
    though Resume keeps only the newest 2,000 in its list."""
    sign_in(page, restartable)
    page.goto(restartable.url + "/ui/explore?q=service%3Apaused&tail=1")
    page.get_by_text("Live", exact=True).wait_for()
    page.get_by_role("button", name="Pause").click()
    for batch in range(5):  # (batches the server's queue for the tail takes whole: none dropped)
        restartable.send([{"service": "paused", "message": f"record {batch * 500 + i}"} for i in range(500)])
        time.sleep(0.5)
    page.wait_for_function("() => document.querySelector('.tail-bar .rate').textContent !== '0.0 records/s'")
    time.sleep(1)  # (the last batch's records on their way)
    assert page.get_by_text("The server dropped").count() == 0
    page.evaluate(
        """() => {
        window.rowsAdded = 0;
        new MutationObserver((changes) => changes.forEach((c) => (window.rowsAdded += c.addedNodes.length)))
            .observe(document.querySelector("ol.records"), { childList: true });
    }"""
    )
    page.get_by_role("button", name="Resume").click()
    page.locator(".record .message", has_text="record 2499").wait_for()
    assert page.locator(".record").count() == 2000
    assert page.locator(".record .message").last.inner_text() == "record 500"
    # it drew all 2,500 held, each older one removed again (one sent late, after Resume, is drawn as it comes)
    assert 2000 <= page.evaluate("window.rowsAdded") < 2500


def test_a_live_tail_draws_what_arrives_once_a_frame(page, restartable):
    """A UI trial: each record that arrived was drawn and scrolled to on its own, so at a few hundred a second the
    page janked; what arrives between two frames is drawn, and scrolled to, together. The newest stays in view."""
    page.add_init_script(
        """(() => {
        window.scrolls = 0;
        const scroll = Element.prototype.scrollIntoView;
        Element.prototype.scrollIntoView = function (...args) { window.scrolls++; return scroll.apply(this, args); };
    })()"""
    )
    sign_in(page, restartable)
    page.goto(restartable.url + "/ui/explore?q=service%3Aframes&tail=1")
    page.get_by_text("Live", exact=True).wait_for()
    restartable.send([{"service": "frames", "message": f"record {i}"} for i in range(400)])
    page.locator(".record .message", has_text="record 399").wait_for()
    assert page.locator(".record").count() == 400
    assert 1 <= page.evaluate("window.scrolls") < 40, page.evaluate("window.scrolls")
    page.mouse.wheel(0, 3000)  # scrolled down the list: what arrives next is brought into view
    page.wait_for_function("() => window.scrollY > 0")
    restartable.send([{"service": "frames", "message": f"record {i}"} for i in range(400, 500)])
    newest = page.locator(".record .message", has_text="record 499")
    newest.wait_for()
    assert page.locator(".record .message").first.inner_text() == "record 499"
    in_view = "e => e.getBoundingClientRect().top >= 0 && e.getBoundingClientRect().bottom <= innerHeight"
    assert newest.evaluate(in_view)
    assert page.evaluate("window.scrolls") < 80


def test_a_live_tail_outlives_a_restart_of_the_server_and_links_to_what_it_missed(page, restartable):
    lake = restartable
    sign_in(page, lake)
    page.goto(lake.url + "/ui/explore?q=service%3Auitail")
    page.get_by_role("button", name="Live tail").click()
    page.get_by_text("Live", exact=True).wait_for()
    lake.send([{"service": "uitail", "message": "before the restart"}])
    page.locator(".record .message", has_text="before the restart").wait_for()

    lake.server.stop()
    page.get_by_role("status").filter(has_text="reconnecting").wait_for()
    assert page.get_by_role("button", name="Stop live tail").get_attribute("aria-pressed") == "true"  # still on
    lake.server.start()
    back = page.get_by_role("status").filter(has_text="Live again")
    back.wait_for(timeout=20_000)
    assert "are not shown" in back.inner_text()
    lake.send(
        [
            {"service": "uitail", "message": "after the restart 1"},
            {"service": "uitail", "message": "after the restart 2"},
        ]
    )
    page.locator(".record .message", has_text="after the restart 2").wait_for()
    assert page.locator(".record .message").all_inner_texts() == [
        "after the restart 2",
        "after the restart 1",
        "before the restart",
    ]
    assert page.get_by_role("button", name="Stop live tail").get_attribute("aria-pressed") == "true"
    screenshot(page, "explore-tail-back")

    # the link searches the tail's query over the time it was away
    missed = page.get_by_role("link", name="search them")
    asked = parse_qs(urlsplit(missed.get_attribute("href")).query)
    assert asked["q"] == ["service:uitail"] and "tail" not in asked
    assert int(asked["from"][0]) < int(asked["to"][0])
    missed.click()
    page.wait_for_url(re.compile(r"^(?!.*tail=1).*from=\d+&to=\d+"))
    page.get_by_role("button", name="Live tail").wait_for()
