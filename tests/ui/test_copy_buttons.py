"""A copy button is the size of the buttons beside it (Ask's Copy SQL and Copy YAML sit in toolbars of
plain buttons; Explore's Copy JSON among small ones)."""

from __future__ import annotations

import pytest

from tests.ask.model_server import sql_reply
from tests.ui.conftest import screenshot, sign_in
from tests.ui.test_ask import ONLY_API, ask, asking, model  # noqa: F401  (the Ask page's server and its model)

pytestmark = pytest.mark.e2e


def height(button) -> float:
    return button.bounding_box()["height"]


def test_copy_buttons_match_their_neighbours(page, asking, model):  # noqa: F811
    sign_in(page, asking)
    page.goto(asking.url + "/ui/ask")
    model.say(sql_reply(ONLY_API, "Counts the api service's errors."))
    ask(page, "errors of the api service")
    turn = page.locator(".turn").first
    assert height(turn.get_by_role("button", name="Copy SQL")) == height(turn.get_by_role("button", name="Run"))
    page.get_by_role("button", name="Make this a rule").click()
    page.get_by_label("The drafted rule").wait_for()
    assert height(page.get_by_role("button", name="Copy YAML")) == height(page.get_by_role("button", name="Discard"))
    screenshot(page, "ask-copy-buttons")

    page.goto(asking.url + "/ui/explore")
    page.locator(".record-summary").first.click()
    copy_json = page.get_by_role("button", name="Copy JSON")
    assert height(copy_json) == height(page.get_by_role("button", name="Show surrounding records"))
