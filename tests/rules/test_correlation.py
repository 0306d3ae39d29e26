"""Sigma correlation rules over crafted events: counts within the timespan (a sliding window, both
ends included), group-by, distinct values, temporal and ordered temporal, the history a run reads
before its window, and the evidence of a match. Expected outcomes are written by hand."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from loglake.lake.tables import APP_LOGS_TABLE
from loglake.rules.run import RunResult, run_rule
from loglake.rules.testing import Placed, ScratchLake
from loglake.times import DAY_MS, parse_iso8601
from tests.rules.conftest import load_one, problems_of

FIRST_DAY = parse_iso8601("2026-04-01T00:00:00Z")
MINUTE = 60_000
_days = iter(range(1000))

BASE_RULES = """
---
title: failed login
name: failed
logsource: {product: loglake, service: app_logs}
detection: {sel: {message|contains: login failed}, condition: sel}
---
title: successful login
name: success
logsource: {product: loglake, service: app_logs}
detection: {sel: {message|contains: login ok}, condition: sel}
---
title: privilege change
name: privilege
logsource: {product: loglake, service: app_logs}
detection: {sel: {message|contains: role granted}, condition: sel}
"""


def correlation(folder: Path, block: str, lookback: str = "1h", rules: str = BASE_RULES, evidence: int = 50) -> Any:
    text = f"""
title: correlation
id: 22222222-3333-4444-8555-666666666666
level: high
correlation:
{block}
loglake: {{schedule: {lookback}, evidence: {evidence}}}
{rules}"""
    return load_one(folder, text)


def fire(lake: ScratchLake, rule: Any, events: list[tuple[float, dict[str, Any]]]) -> RunResult:
    """Store events at (minutes after the window's start, fields) on a day of their own, run the rule
    over the window that starts that day."""
    start = FIRST_DAY + next(_days) * DAY_MS
    placed = [Placed(i, start + round(minutes * MINUTE), fields) for i, (minutes, fields) in enumerate(events)]
    lake.add(APP_LOGS_TABLE.name, placed, start + DAY_MS)
    return run_rule(rule, lake.engine, start, start + rule.lookback_ms, now_ms=start + DAY_MS)


def failed(user: str, **attributes: str) -> dict[str, Any]:
    return {"service": "auth", "message": "login failed", "attributes": {"user": user, **attributes}}


def ok(user: str) -> dict[str, Any]:
    return {"service": "auth", "message": "login ok", "attributes": {"user": user}}


def granted(user: str) -> dict[str, Any]:
    return {"service": "admin", "message": "role granted", "attributes": {"user": user}}


def counts(result: RunResult) -> dict[str, int]:
    return {m.group["attributes.user"]: m.count for m in result.matches}


EVENT_COUNT = """
  type: event_count
  rules: [failed]
  group-by: [attributes.user]
  timespan: 5m
  condition: {gte: 3}
"""


def test_event_count_counts_within_the_timespan_per_group(scratch: ScratchLake, tmp_path: Path) -> None:
    rule = correlation(tmp_path, EVENT_COUNT)
    events = [
        (0, failed("ann")), (2, failed("ann")), (5, failed("ann")),  # 5 minutes apart: both ends count
        (10, failed("bob")), (12, failed("bob")), (15 + 1 / 60, failed("bob")),  # one second too far
        (20, failed("cy")), (21, ok("cy")), (22, granted("cy")),  # other rules' events do not count
        (30, failed("dee")), (30.5, failed("dee")), (31, failed("dee")), (32, failed("dee")),
    ]  # fmt: skip
    result = fire(scratch, rule, events)
    assert counts(result) == {"ann": 3, "dee": 4}
    ann = next(m for m in result.matches if m.group["attributes.user"] == "ann")
    assert [row["attributes"] for row in ann.evidence] == ['{"user":"ann"}'] * 3
    assert (ann.last_ms - ann.first_ms) == 5 * MINUTE


ANY_LOGIN = """
---
title: any login
name: login
logsource: {product: loglake, service: app_logs}
detection: {sel: {message|startswith: login}, condition: sel}
"""


@pytest.mark.parametrize("kind", ["event_count", "value_count"])
def test_an_event_two_rules_match_counts_once(scratch: ScratchLake, tmp_path: Path, kind: str) -> None:
    """A failed login is an event of `failed` and of `login`: one event (Sigma's event_count counts events), and
    one record of the evidence; it was counted, and shown, twice."""
    condition = "{gte: 3}" if kind == "event_count" else "{gte: 3, field: attributes.port}"
    block = f"\n  type: {kind}\n  rules: [failed, login]\n  group-by: [attributes.user]\n  timespan: 10m\n"
    rule = correlation(tmp_path, block + f"  condition: {condition}\n", rules=BASE_RULES + ANY_LOGIN)
    events = [
        (0, failed("ann", port="1")), (1, failed("ann", port="2")),  # two events, not four
        (0, failed("bob", port="1")), (1, ok("bob") | {"attributes": {"user": "bob", "port": "2"}}),
        (2, failed("bob", port="3")),
    ]  # fmt: skip
    (match,) = fire(scratch, rule, events).matches
    assert (match.group["attributes.user"], match.count) == ("bob", 3)
    assert [(row["message"], row["attributes"]) for row in match.evidence] == [
        ("login failed", '{"user":"bob","port":"1"}'),
        ("login ok", '{"user":"bob","port":"2"}'),
        ("login failed", '{"user":"bob","port":"3"}'),
    ]


@pytest.mark.parametrize("kind", ["temporal", "temporal_ordered"])
def test_an_event_two_rules_match_counts_for_each_and_shows_once(
    scratch: ScratchLake, tmp_path: Path, kind: str
) -> None:
    """A failed login is an event of `failed` and of `login`: it counts for each rule (temporal counts rules), but it
    is one record, and the evidence showed it twice."""
    block = f"\n  type: {kind}\n  rules: [failed, login]\n  group-by: [attributes.user]\n  timespan: 10m\n"
    rule = correlation(tmp_path, block, rules=BASE_RULES + ANY_LOGIN)
    (match,) = fire(scratch, rule, [(0, failed("ann", port="1")), (5, granted("ann"))]).matches
    assert (match.group["attributes.user"], match.count) == ("ann", 2)
    assert [(row["message"], row["attributes"]) for row in match.evidence] == [
        ("login failed", '{"user":"ann","port":"1"}')
    ]


def test_a_run_reads_one_timespan_before_its_window(scratch: ScratchLake, tmp_path: Path) -> None:
    """A burst across two windows fires in the window where it reaches the count; one that ended before
    the window was the previous run's."""
    rule = correlation(tmp_path, EVENT_COUNT, lookback="10m")
    start = FIRST_DAY + next(_days) * DAY_MS
    before = [
        (-4, failed("ann")), (-2, failed("ann")), (1, failed("ann")),
        (-4, failed("bob")), (-3, failed("bob")), (-2, failed("bob")),
    ]  # fmt: skip
    placed = [Placed(i, start + m * MINUTE, f) for i, (m, f) in enumerate(before)]
    scratch.add(APP_LOGS_TABLE.name, placed, start + DAY_MS)
    result = run_rule(rule, scratch.engine, start, start + rule.lookback_ms, now_ms=start + DAY_MS)
    assert counts(result) == {"ann": 3}
    assert result.matches[0].first_ms == start - 4 * MINUTE


USERS_PER_ADDRESS = """
  type: value_count
  rules: [failed]
  group-by: [attributes.ip]
  timespan: 10m
  condition: {gte: 3, field: attributes.user}
"""


def test_value_count_counts_distinct_values(scratch: ScratchLake, tmp_path: Path) -> None:
    rule = correlation(tmp_path, USERS_PER_ADDRESS)
    events = [
        (0, failed("ann", ip="10.0.0.1")), (1, failed("bob", ip="10.0.0.1")), (2, failed("ann", ip="10.0.0.1")),
        (3, failed("cy", ip="10.0.0.1")),
        (0, failed("ann", ip="10.0.0.2")), (1, failed("ann", ip="10.0.0.2")), (2, failed("ann", ip="10.0.0.2")),
        (3, failed("ann", ip="10.0.0.2")),
        (20, failed("ann", ip="10.0.0.3")), (25, failed("bob", ip="10.0.0.3")), (31, failed("cy", ip="10.0.0.3")),
    ]  # fmt: skip
    result = fire(scratch, rule, events)
    assert {m.group["attributes.ip"]: m.count for m in result.matches} == {"10.0.0.1": 3}


def test_events_without_a_group_by_field_are_in_no_group(scratch: ScratchLake, tmp_path: Path) -> None:
    rule = correlation(tmp_path, USERS_PER_ADDRESS)
    # Three users' failures from sources that name no address are no attack from one address (Splunk's
    # `stats dc(user) by ip` leaves them out too): grouped under null, they fired.
    events = [(0, failed("ann")), (1, failed("bob")), (2, failed("cy")), (3, failed("dee", ip="10.0.0.9"))]
    assert fire(scratch, rule, events).matches == []


def test_temporal_needs_every_rule_within_the_timespan_in_any_order(scratch: ScratchLake, tmp_path: Path) -> None:
    block = """
  type: temporal
  rules: [failed, privilege]
  group-by: [attributes.user]
  timespan: 10m
"""
    rule = correlation(tmp_path, block)
    events = [
        (1, granted("ann")), (5, failed("ann")),  # the other way round counts too
        (0, failed("bob")), (3, failed("bob")),  # one rule twice is one rule
        (20, failed("cy")), (31, granted("cy")),  # 11 minutes apart
    ]  # fmt: skip
    assert counts(fire(scratch, rule, events)) == {"ann": 2}


def test_temporal_ordered_needs_the_order(scratch: ScratchLake, tmp_path: Path) -> None:
    block = """
  type: temporal_ordered
  rules: [failed, success]
  group-by: [attributes.user]
  timespan: 5m
"""
    rule = correlation(tmp_path, block)
    events = [
        (0, failed("ann")), (2, ok("ann")),
        (0, ok("bob")), (2, failed("bob")),  # the wrong order
        (10, failed("cy")), (16, ok("cy")),  # too far apart
        (20, ok("dee")), (21, failed("dee")), (23, ok("dee")),  # a success before does not matter
    ]  # fmt: skip
    assert counts(fire(scratch, rule, events)) == {"ann": 2, "dee": 2}


def test_temporal_evidence_keeps_the_last_event_of_each_rule(scratch: ScratchLake, tmp_path: Path) -> None:
    """A login after 30 failures: the evidence (here 5 records) holds the login, the event the alert
    is about, and the latest failure, then the earliest failures, in time order."""
    for kind in ("temporal_ordered", "temporal"):
        block = f"""
  type: {kind}
  rules: [failed, success]
  group-by: [attributes.user]
  timespan: 10m
"""
        rule = correlation(tmp_path / kind, block, evidence=5)
        events = [(i * 0.25, failed("ann", port=str(i))) for i in range(30)] + [(8, ok("ann"))]
        (match,) = fire(scratch, rule, events).matches
        assert [(row["message"], row["attributes"]) for row in match.evidence] == [
            ("login failed", '{"user":"ann","port":"0"}'),
            ("login failed", '{"user":"ann","port":"1"}'),
            ("login failed", '{"user":"ann","port":"2"}'),
            ("login failed", '{"user":"ann","port":"29"}'),
            ("login ok", '{"user":"ann"}'),
        ], kind
        assert match.count == 2
        assert match.last_ms - match.first_ms == 8 * MINUTE


def test_temporal_ordered_chains_three_rules(scratch: ScratchLake, tmp_path: Path) -> None:
    block = """
  type: temporal_ordered
  rules: [failed, success, privilege]
  group-by: [attributes.user]
  timespan: 5m
"""
    rule = correlation(tmp_path, block)
    events = [
        (0, failed("ann")), (1, granted("ann")), (2, ok("ann")), (3, granted("ann")),
        (10, failed("bob")), (11, granted("bob")), (12, ok("bob")),  # the last rule came too early
        (20, failed("cy")), (22, ok("cy")), (25.5, granted("cy")),  # the chain spans 5.5 minutes
        (30, failed("dee")), (33, failed("dee")), (34, ok("dee")), (38, granted("dee")),  # from the later failure
    ]  # fmt: skip
    assert counts(fire(scratch, rule, events)) == {"ann": 3, "dee": 3}


def test_a_lower_bound_means_never_as_many(scratch: ScratchLake, tmp_path: Path) -> None:
    block = """
  type: event_count
  rules: [failed]
  group-by: [attributes.user]
  timespan: 5m
  condition: {lt: 3}
"""
    rule = correlation(tmp_path, block)
    events = [(0, failed("ann")), (4, failed("ann")), (10, failed("bob")), (11, failed("bob")), (12, failed("bob"))]
    assert counts(fire(scratch, rule, events)) == {"ann": 2}


def test_aliases_group_rules_that_name_a_field_differently(scratch: ScratchLake, tmp_path: Path) -> None:
    rules = """
---
title: failed login
name: failed
logsource: {product: loglake, service: app_logs}
detection: {sel: {message|contains: login failed}, condition: sel}
---
title: account locked
name: locked
logsource: {product: loglake, service: app_logs}
detection: {sel: {message|contains: account locked}, condition: sel}
"""
    block = """
  type: temporal
  rules: [failed, locked]
  group-by: [person]
  timespan: 10m
  aliases:
    person:
      failed: attributes.user
      locked: attributes.account
"""
    rule = correlation(tmp_path, block, rules=rules)
    locked = {"service": "auth", "message": "account locked", "attributes": {"account": "ann", "user": "nobody"}}
    result = fire(scratch, rule, [(0, failed("ann")), (1, locked), (2, failed("bob"))])
    assert {m.group["person"]: m.count for m in result.matches} == {"ann": 2}


def test_no_group_by_is_one_group(scratch: ScratchLake, tmp_path: Path) -> None:
    block = """
  type: event_count
  rules: [failed]
  timespan: 1m
  condition: {gte: 2}
"""
    rule = correlation(tmp_path, block)
    result = fire(scratch, rule, [(0, failed("ann")), (0.5, failed("bob")), (5, failed("cy"))])
    assert [(m.group, m.count, len(m.evidence)) for m in result.matches] == [({}, 2, 2)]


UNCONVERTIBLE = {
    "value_sum": ("type: value_sum\nrules: [failed]\ntimespan: 5m\ncondition: {gte: 3, field: x}", "correlation.type"),
    "a rule not in the file": (
        "type: event_count\nrules: [nosuch]\ntimespan: 5m\ncondition: {gte: 3}",
        "correlation.rules",
    ),
    "an ordered condition": (
        "type: temporal_ordered\nrules: [failed, success]\ntimespan: 5m\ncondition: {gte: 1}",
        "correlation.condition",
    ),
    # pySigma's own refusals, which named no field and were each said twice (a new user's trial)
    "a type pySigma does not know": (
        "type: event_cnt\nrules: [failed]\ntimespan: 5m\ncondition: {gte: 3}",
        "rule 'c', correlation.type",
    ),
    "a timespan in words": (
        "type: event_count\nrules: [failed]\ntimespan: 5 minutes\ncondition: {gte: 3}",
        "rule 'c', correlation.timespan",
    ),
}


@pytest.mark.parametrize("case", list(UNCONVERTIBLE))
def test_what_cannot_be_converted_is_named(case: str, tmp_path: Path) -> None:
    block, field = UNCONVERTIBLE[case]
    indented = "\n".join("  " + line for line in block.splitlines())
    text = f"title: c\nid: 22222222-3333-4444-8555-666666666667\nlevel: low\ncorrelation:\n{indented}\n{BASE_RULES}"
    problems = problems_of(tmp_path, text)
    assert [p.field for p in problems] == [field], [str(p) for p in problems]


def test_pysigmas_refusals_say_what_the_field_takes(tmp_path: Path) -> None:
    block = "  type: event_cnt\n  rules: [failed]\n  timespan: 5 minutes\n  condition: {gte: 3}"
    text = f"title: c\nid: 22222222-3333-4444-8555-666666666667\nlevel: low\ncorrelation:\n{block}\n{BASE_RULES}"
    said = [p.message for p in problems_of(tmp_path, text)]
    assert said == [
        "'event_cnt' is no valid Sigma correlation type; loglake runs event_count, value_count, temporal,"
        " temporal_ordered",
        "Timespan '5 minutes' is invalid; a number and a unit: 30s, 5m, 1h, 1d (s, m, h, d, w, M, y)",
    ]
