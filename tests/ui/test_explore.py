"""Explore in a real browser: sign in, search with each syntax form, the histogram's drag-to-zoom, a
record's fields and filters, facets, the URL as the view's state, keyboard, sign out."""

from __future__ import annotations

import re

import pytest

from tests.ui.conftest import no_horizontal_scroll, screenshot, sign_in

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
    screenshot(page, "explore-phone")
    page.set_viewport_size({"width": 1280, "height": 800})
    assert no_horizontal_scroll(page)

    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "q"
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

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/login")
    page.goto(loglake.url + "/ui/explore")
    page.wait_for_url("**/login**")
