"""Cached answers are keyed by every word of the question, the schema and the conversation so far."""

from __future__ import annotations

from loglake.ask.service import cache_key
from loglake.ask.store import Turn

EARLIER = [Turn("errors by service", {"sql": "SELECT service, count(*) FROM logs GROUP BY 1"})]


def test_a_question_and_its_negation_have_different_keys() -> None:
    assert cache_key("errors from the api service", "v1", [], "UTC") != cache_key(
        "errors not from the api service", "v1", [], "UTC"
    )
    assert cache_key("failed logins", "v1", [], "UTC") != cache_key("no failed logins", "v1", [], "UTC")


def test_only_case_and_spacing_are_normalised() -> None:
    assert cache_key("Errors  from the API service ", "v1", [], "UTC") == cache_key(
        "errors from the api service", "v1", [], "UTC"
    )
    assert cache_key("errors today?", "v1", [], "UTC") != cache_key("errors today", "v1", [], "UTC")


def test_the_schema_the_conversation_and_the_time_zone_are_part_of_the_key() -> None:
    base = cache_key("only for payments", "v1", [], "UTC")
    assert base != cache_key("only for payments", "v2", [], "UTC")
    assert base != cache_key("only for payments", "v1", EARLIER, "UTC")
    assert base != cache_key("only for payments", "v1", [], "Europe/Berlin")
