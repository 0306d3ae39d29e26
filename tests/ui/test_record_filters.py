"""A record's + and - buttons (filter for / out) and the attribute-keys facet build searches that find
what they show, for OpenTelemetry's flat dotted keys (as OTLP stores the SDK's resource) and keys the
syntax must quote; a record with a trace id filters by it and opens every log of its trace."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.api.test_search_otel_keys import sdk_export
from tests.ui.conftest import sign_in

pytestmark = pytest.mark.e2e


def messages_shown(page) -> set[str]:
    page.locator('.results[aria-busy="false"]').wait_for()
    return set(page.locator(".record .message").all_inner_texts())


def open_record(page, loglake, q: str, message: str) -> None:
    page.goto(f"{loglake.url}/ui/explore?q={q}")
    page.locator(".record-summary", has_text=message).click()
    page.locator(".record-details:visible").wait_for()


def query_of(page) -> str:
    return parse_qs(urlsplit(page.url).query)["q"][0]


@pytest.fixture(scope="module")
def trace_id(loglake) -> str:
    traced, trace_id = sdk_export("web-7", "zq trace first", "zq trace second", traced=True)
    untraced, _ = sdk_export("web-8", "zq untraced")
    with loglake.client() as client:
        for body in (traced, untraced):
            sent = client.post("/v1/logs", content=body, headers={"content-type": "application/x-protobuf"})
            assert sent.status_code == 200, sent.text
    loglake.send([{"message": "zq special keys", "attributes": {"service": "attr-ui", "http": {"x.y": "v 1"}}}])
    return trace_id


def test_filter_buttons_on_dotted_and_quoted_keys_find_the_record(page, loglake, trace_id):
    sign_in(page, loglake)
    open_record(page, loglake, "zq", "zq trace first")
    page.get_by_role("button", name="Filter for host.name web-7").click()
    page.wait_for_url(re.compile(r"host\.name"))
    assert query_of(page) == "zq host.name:web-7"
    assert messages_shown(page) == {"zq trace first", "zq trace second"}

    open_record(page, loglake, "zq", "zq trace first")
    page.get_by_role("button", name="Filter out host.name web-7").click()
    page.wait_for_url(re.compile(r"host\.name"))
    assert messages_shown(page) == {"zq untraced", "zq special keys"}

    # an attribute named like a record field, and a nested key holding a dot: quoted as the syntax needs
    for label, q in [
        ("Filter for service attr-ui", 'zq "service":attr-ui'),
        ("Filter for http.x.y v 1", 'zq http."x.y":"v 1"'),
    ]:
        open_record(page, loglake, "zq", "zq special keys")
        page.get_by_role("button", name=label).click()
        page.wait_for_url(re.compile(r"q=zq\+"))
        assert query_of(page) == q
        assert messages_shown(page) == {"zq special keys"}, q

    # the attribute-keys facet completes a key as a search names it
    page.goto(f"{loglake.url}/ui/explore?q=zq")
    page.locator(".facets button", has_text="host.name").click()
    assert page.locator("#q").input_value() == "zq host.name:"
    page.goto(f"{loglake.url}/ui/explore?q=zq+special")
    page.get_by_title('Complete "service": in the query').click()
    assert page.locator("#q").input_value() == 'zq special "service":'


def test_a_records_trace_id_filters_and_opens_the_logs_of_its_trace(page, loglake, trace_id):
    sign_in(page, loglake)
    open_record(page, loglake, "zq", "zq trace second")
    page.get_by_role("button", name=f"Filter out trace_id {trace_id}").wait_for()
    assert page.get_by_role("button", name=re.compile(r"^Filter for span_id [0-9a-f]{16}$")).count() == 1
    page.get_by_role("button", name=f"Filter for trace_id {trace_id}").click()
    page.wait_for_url(re.compile(r"trace_id"))
    assert query_of(page) == f"zq trace_id:{trace_id}"
    assert messages_shown(page) == {"zq trace first", "zq trace second"}

    open_record(page, loglake, "zq", "zq trace first")
    page.get_by_role("button", name="Logs of this trace").click()
    page.wait_for_url(re.compile(r"q=trace_id%3A[0-9a-f]{32}&from=\d+&to=\d+"))
    assert query_of(page) == f"trace_id:{trace_id}"
    window = parse_qs(urlsplit(page.url).query)
    assert int(window["to"][0]) - int(window["from"][0]) == 2 * 3_600_000  # an hour either side
    assert messages_shown(page) == {"zq trace first", "zq trace second"}

    # a record without a trace id offers no trace button
    open_record(page, loglake, "zq", "zq untraced")
    assert page.get_by_role("button", name="Logs of this trace").count() == 0
