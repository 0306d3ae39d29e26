"""Every page of the UI passes axe-core's checks with no serious or critical violation, in the light and
the dark theme (contrast differs); and no page scrolls sideways at desktop or phone widths."""

from __future__ import annotations

import uuid

import pytest
from axe_playwright_python.sync_playwright import Axe

from tests.ui.conftest import no_horizontal_scroll, raise_alert, screenshot, sign_in

pytestmark = pytest.mark.e2e

SERIOUS = ("serious", "critical")
CRITICAL_RULE_ID = "4d2db06a-8553-43fd-86ab-1c8def4e486d"
WIDTHS = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}


def violations(axe: Axe, page) -> list[str]:
    found = axe.run(page).response["violations"]
    return [
        f"{v['id']} ({v['impact']}): {', '.join(str(n['target']) for n in v['nodes'][:3])}"
        for v in found
        if v["impact"] in SERIOUS
    ]


def test_every_page_is_accessible_in_both_themes(page, loglake):
    alert_id = str(uuid.uuid4())
    raise_alert(loglake, id=alert_id, title="Disk filling up", level="medium")
    axe = Axe()
    page.goto(loglake.url + "/login")
    problems = {"login": violations(axe, page)}
    screenshot(page, "login")
    sign_in(page, loglake)
    pages = {
        "explore": ("/ui/explore", '.results[aria-busy="false"]'),
        "explore-record": ("/ui/explore?q=service%3Abilling", '.results[aria-busy="false"]'),
        "sql": ("/ui/sql", ".tables details"),
        "ask-unconfigured": ("/ui/ask", ".empty"),
        "alerts": ("/ui/alerts", "table.list"),
        "alert": (f"/ui/alerts/{alert_id}", ".deliveries p:not(.progress)"),
        "rules": ("/ui/rules", "table.list"),
        "rule-page": (f"/ui/rules/{CRITICAL_RULE_ID}", "pre.plan"),
        "amplify": ("/ui/amplify", "article.report"),
        "status": ("/ui/status", ".keys table"),
        "no-such-page": ("/ui/nonexistent", "main h1"),
    }
    for name, (path, ready) in pages.items():
        for width, size in WIDTHS.items():
            page.set_viewport_size(size)
            page.goto(loglake.url + path)
            page.locator(ready).first.wait_for()
            if name == "explore-record":
                page.locator(".record-summary").first.click()
            assert no_horizontal_scroll(page), f"{name} scrolls sideways at {width} width"
            if width == "phone":
                screenshot(page, f"{name}-phone")
                continue
            for theme in ("light", "dark"):
                page.emulate_media(color_scheme=theme)
                problems[f"{name} {theme}"] = violations(axe, page)
    problems = {k: v for k, v in problems.items() if v}
    assert problems == {}, "\n".join(f"{k}: {v}" for k, v in problems.items())
