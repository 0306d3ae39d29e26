"""An answer drafted as a rule: its title and what the draft warns of, by the drafting itself (the API's
test covers the whole path, the loader's validation and the writing)."""

from __future__ import annotations

import pytest

from loglake.ask.rule_draft import NO_THRESHOLD, draft_rule

PER_SERVICE = "SELECT service, count(*) AS warnings FROM logs WHERE severity = 'warning' GROUP BY service"


@pytest.mark.parametrize(
    ("sql", "warned"),
    [
        (PER_SERVICE + " ORDER BY warnings DESC", True),
        (PER_SERVICE + " HAVING count(*) >= 10", False),
        ("SELECT * FROM logs WHERE severity = 'critical'", False),  # each record is the match, as meant
    ],
)
def test_an_aggregate_without_having_is_warned_of(sql: str, warned: bool) -> None:
    draft = draft_rule("warnings per service", sql, "", validate=False)
    assert draft.to_dict()["warnings"] == ([NO_THRESHOLD] if warned else [])


@pytest.mark.parametrize(
    ("question", "title"),
    [
        ("top 5 services by warnings today", "Top 5 services by warnings"),
        ("errors from checkout in the last hour?", "Errors from checkout"),
        ("logins by user over the past 24 hours", "Logins by user"),
        ("how many days have errors", "How many days have errors"),  # "days" alone is no time
        # "today's deploy" names an event, not a time: kept (it lost its "today")
        ("what failed since today's deploy", "What failed since today's deploy"),
        ("errors after yesterday\u2019s release today", "Errors after yesterday\u2019s release"),  # (typographic ')
        # a word left with nothing after it once the time went is dropped too
        ("slow requests recently vs last week", "Slow requests"),
        ("errors per service for today and yesterday", "Errors per service"),
    ],
)
def test_the_title_drops_times_relative_to_the_question(question: str, title: str) -> None:
    draft = draft_rule(question, "SELECT * FROM logs", "", validate=False)
    assert f"title: {title}\n" in draft.text
