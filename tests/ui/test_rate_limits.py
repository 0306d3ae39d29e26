"""The UI signed in with a key limited to a few requests a second: its pages space their requests to
fit the key's limit rather than trip it at load, and a 429 anyway (another client on the same key) is
waited out as its Retry-After says, with a notice, rather than shown as an error."""

from __future__ import annotations

import threading
import time

import pytest

from tests.ui.conftest import Loglake, sign_in

pytestmark = pytest.mark.e2e

# the API calls that count against a key's limit (/session and /healthz do not)
LIMITED_STARTS = """() => performance.getEntriesByType("resource")
    .filter((e) => /^\\/(logs|tables|metrics|admin)\\//.test(new URL(e.name).pathname + "/"))
    .map((e) => e.startTime / 1000).sort((a, b) => a - b)"""


def limited_key(loglake: Loglake, name: str, rate: float) -> str:
    """A read key with its own rate, and so a burst of one second's worth."""
    with loglake.client() as c:
        answer = c.post("/admin/keys", json={"name": name, "scopes": ["read"], "rate_limit": rate})
    assert answer.status_code == 201, answer.text
    return answer.json()["secret"]


def test_pages_space_their_requests_to_fit_the_keys_rate_limit(page, loglake):
    sign_in(page, loglake, limited_key(loglake, "two-a-second", 2))
    page.locator(".records .record").first.wait_for()  # Explore: the records, the histogram, the facets
    page.locator(".histogram-head").wait_for()
    page.locator(".facets h2").first.wait_for()
    page.get_by_role("link", name="Status").click()
    page.get_by_text("Storage by table and day").wait_for()
    page.get_by_text("Records ingested").wait_for()
    assert page.locator(".error-box").count() == 0
    starts = page.evaluate(LIMITED_STARTS)
    assert len(starts) >= 6  # Explore's three, Status's three
    # a bucket of 2 a second holds 2 at most: the nth request cannot leave before (n - 1) / 2 s after the
    # first (a little early for the clock's rounding)
    after_first = [start - starts[0] for start in starts]
    early = [(n, round(after, 3)) for n, after in enumerate(after_first) if after < (n - 1) / 2 - 0.02]
    assert early == []


def test_a_429_is_waited_out_as_its_retry_after_says_with_a_notice(page, loglake):
    key = limited_key(loglake, "one-a-second", 1)
    sign_in(page, loglake, key)
    page.locator(".records .record").first.wait_for()
    refused = threading.Event()
    page.on("response", lambda r: refused.set() if r.status == 429 else None)

    def spend_the_keys_requests() -> None:
        """Another client on the key, taking each request as the bucket refills, until the page is refused."""
        deadline = time.monotonic() + 30
        with loglake.client(key) as c:
            while not refused.is_set() and time.monotonic() < deadline:
                c.get("/tables")
                time.sleep(0.01)

    other = threading.Thread(target=spend_the_keys_requests)
    other.start()
    try:
        page.goto(loglake.url + "/ui/explore?q=service:billing")
        page.get_by_role("status").filter(has_text="Waiting for the rate limit").wait_for()
    finally:
        refused.set()
        other.join()
    page.locator(".records .record", has_text="payment gateway timed out").wait_for()
    page.locator(".histogram-head").wait_for()
    page.locator(".facets h2").first.wait_for()
    page.get_by_role("status").filter(has_text="Waiting for the rate limit").wait_for(state="hidden")
    assert page.locator(".error-box").count() == 0


def test_a_page_left_while_it_waits_for_the_rate_limit_sends_none_of_its_requests(page, loglake):
    """Explore left before its requests' turn sent them all anyway, and the next page's waited behind them (a
    UI trial): they are given up, and their turns go to the page opened."""
    sign_in(page, loglake, limited_key(loglake, "one-for-explore", 1))  # (its turn used up by the sign-in)
    page.get_by_role("link", name="Status").click()  # Explore's three wait a second each: none has left yet
    page.get_by_text("Storage by table and day").wait_for()
    page.get_by_text("Records ingested").wait_for()
    assert page.locator(".error-box").count() == 0
    explores = page.evaluate("""() => performance.getEntriesByType("resource")
        .filter((e) => new URL(e.name).pathname.startsWith("/logs/")).map((e) => new URL(e.name).pathname)""")
    assert len(explores) <= 1, explores  # (the first may have left if the click came a second late)
