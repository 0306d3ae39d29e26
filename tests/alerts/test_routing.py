"""alerting.yml: the issue's example, every matching route applying, rules' overrides, the events each
type takes, problems with file and field, and reloading when the file changes."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import msgspec
import pytest

from loglake.alerts.destinations.base import DestinationConfig
from loglake.alerts.routing import EMPTY_SETTLES_NS, Routing, RoutingFile, load_routing
from tests.alerts.conftest import write_alerting

ISSUE_EXAMPLE = """
destinations:
  ops-hook:  {type: webhook, url: "https://hooks.example/loglake", secret: {env: OPS_HOOK_SECRET}}
  oncall:    {type: pagerduty, routing_key: {env: PD_ROUTING_KEY}}
  chat:      {type: slack, url: {file: /run/secrets/slack_url}}
  team:      {type: teams, url: {env: TEAMS_URL}}
  mail:      {type: email, smtp: "smtp.example:587", starttls: true, username: {env: SMTP_USER},
              password: {env: SMTP_PASS}, from: "loglake@example", to: ["oncall@example"]}
  tickets:   {type: jira, url: "https://example.atlassian.net", project: OPS, user: {env: JIRA_USER},
              token: {env: JIRA_TOKEN}}
routes:                       # every matching route applies; a route without `match` catches all
  - {match: {level: [critical]}, to: [oncall, chat, mail]}
  - {match: {level: [high]}, to: [chat, tickets]}
  - {match: {tags: ["attack.*"]}, to: [ops-hook]}
  - {to: [chat]}
"""


def alert(**values: object) -> dict:
    return {
        "level": "medium",
        "tags": [],
        "rule_id": "5f4c8e12-7a8b-4c2d-9e0f-1a2b3c4d5e6f",
        "rule_title": "Errors burst",
        "destinations": None,
    } | values


@pytest.fixture
def example(rules_dir: Path) -> Routing:
    loaded = load_routing(write_alerting(rules_dir, ISSUE_EXAMPLE))
    assert isinstance(loaded, Routing), [str(p) for p in loaded]
    return loaded


def test_the_issues_example_loads_with_every_type(example):
    assert {n: d.type_name for n, d in example.destinations.items()} == {
        "ops-hook": "webhook",
        "oncall": "pagerduty",
        "chat": "slack",
        "team": "teams",
        "mail": "email",
        "tickets": "jira",
    }


def test_every_matching_route_applies_each_destination_once(example):
    assert example.targets(alert(level="critical"), "trigger") == ["oncall", "chat", "mail"]
    assert example.targets(alert(level="high", tags=["attack.t1110"]), "trigger") == ["chat", "tickets", "ops-hook"]
    assert example.targets(alert(level="low"), "trigger") == ["chat"]


def test_each_destination_takes_the_events_its_type_wants(example):
    critical = alert(level="critical", tags=["attack.t1110"])
    assert example.targets(critical, "update") == ["oncall", "ops-hook"]  # no chat message per run
    assert example.targets(critical, "acknowledge") == ["oncall", "chat", "ops-hook"]
    assert example.targets(critical, "resolve") == ["oncall", "chat", "mail", "ops-hook"]
    assert example.targets(alert(level="high"), "update") == ["tickets"]


def test_a_rules_destinations_replace_the_routes(example):
    assert example.targets(alert(level="critical", destinations=["tickets", "nowhere"]), "trigger") == [
        "tickets",
        "nowhere",
    ]


def test_matches_by_tag_glob_rule_id_and_title(rules_dir):
    routing = load_routing(
        write_alerting(
            rules_dir,
            """
            destinations: {a: {type: webhook, url: "http://127.0.0.1:9/a"}}
            routes:
              - {match: {tags: ["attack.t11*"], rule: ["5F4C8E12-*"], title: ["*burst"]}, to: [a]}
            """,
        )
    )
    assert isinstance(routing, Routing)
    assert routing.targets(alert(tags=["attack.t1110"]), "trigger") == ["a"]
    assert routing.targets(alert(tags=["attack.t1059"]), "trigger") == []
    assert (
        routing.targets(alert(tags=["attack.t1110"], rule_id="00000000-0000-0000-0000-000000000000"), "trigger") == []
    )
    assert routing.targets(alert(tags=["attack.t1110"], rule_title="Errors"), "trigger") == []


def test_a_destination_may_choose_its_events(rules_dir):
    routing = load_routing(
        write_alerting(
            rules_dir,
            """
            destinations: {c: {type: slack, url: "https://hooks.slack.test/x", events: [trigger, update]}}
            routes: [{to: [c]}]
            """,
        )
    )
    assert isinstance(routing, Routing)
    assert [k for k in ("trigger", "update", "acknowledge", "resolve") if routing.targets(alert(), k)] == [
        "trigger",
        "update",
    ]


BAD = """
destinations:
  a: {type: webhook, url: "ftp://files.example/x", colour: red}
  b: {type: pigeon}
  c: {type: pagerduty, routing_key: "pd-key-written-in-the-file"}
  d: {type: email, smtp: nohost, from: x, to: []}
  e: {type: slack, url: {env: SLACK_URL, file: /x}}
  f: {type: webhook, url: "https://x.example", redact: [email, {pattern: "("}]}
  g: {url: "https://x.example"}
routes:
  - {match: {level: [urgent]}, to: [a]}
"""


def test_every_problem_is_reported_with_file_and_field_and_no_secret_is_echoed(rules_dir):
    path = write_alerting(rules_dir, BAD)
    problems = load_routing(path)
    assert isinstance(problems, list)
    assert {p.file for p in problems} == {str(path)}
    found = {p.field: p.message for p in problems}
    assert set(found) == {
        "routes[0].match.level[0]",
        "destinations.a",
        "destinations.a.url",  # checked too, whatever else of the destination has problems
        "destinations.b.type",
        "destinations.c.routing_key",
        "destinations.d.smtp",
        "destinations.d.from",
        "destinations.d.to",
        "destinations.e.url",
        "destinations.f.redact[1]",
        "destinations.g.type",
    }
    assert "unknown field colour" in found["destinations.a"]
    assert "pigeon" in found["destinations.b.type"] and "webhook" in found["destinations.b.type"]
    assert found["destinations.g.type"].startswith("missing (one of: webhook, ")
    assert found["destinations.c.routing_key"].startswith("a secret is given by reference: {env: NAME}")
    assert "pd-key-written-in-the-file" not in " ".join(str(p) for p in problems)
    assert "is not a regular expression" in found["destinations.f.redact[1]"]


def test_urls_and_route_targets_are_checked(rules_dir):
    problems = load_routing(
        write_alerting(
            rules_dir,
            """
            destinations: {a: {type: webhook, url: "ftp://files.example/x"}, b: {type: jira, url: "example.net",
              project: OPS, user: u, token: {env: T}}}
            routes: [{to: [a, nope]}]
            """,
        )
    )
    assert isinstance(problems, list)
    assert {(p.field, p.message) for p in problems} == {
        ("destinations.a.url", "is not an http(s) URL"),
        ("destinations.b.url", "is not an http(s) URL"),
        ("routes[0].to", "'nope' is not a destination (a, b)"),  # with the others, not once they are fixed
    }
    problems = load_routing(
        write_alerting(rules_dir, 'destinations: {a: {type: webhook, url: "http://x.test"}}\nroutes: [{to: [a, nope]}]')
    )
    assert isinstance(problems, list)
    assert [(p.field, p.message) for p in problems] == [("routes[0].to", "'nope' is not a destination (a)")]


def test_a_pagerduty_source_left_empty_is_refused(rules_dir):
    # PagerDuty answers 400 to an event whose payload.source is blank: every delivery of it was dead-lettered.
    text = 'destinations: {pd: {type: pagerduty, routing_key: {env: K}, source: "  "}}\nroutes: [{to: [pd]}]'
    problems = load_routing(write_alerting(rules_dir, text))
    assert isinstance(problems, list)
    assert [(p.field, p.message) for p in problems] == [
        ("destinations.pd.source", "is empty: name where the problem is (default: loglake)")
    ]


def test_a_secret_written_in_the_file_does_not_hide_the_other_problems_of_its_destination(rules_dir):
    problems = load_routing(
        write_alerting(
            rules_dir,
            """
            destinations: {hook: {type: webhook, url: "ftp://x", secret: "plaintext-secret"}}
            routes: [{to: [hook]}, {match: {level: [loud]}, to: [hook]}, {to: [nowhere]}]
            """,
        )
    )
    assert isinstance(problems, list)
    found = {p.field: p.message for p in problems}
    assert set(found) == {
        "destinations.hook.secret",
        "destinations.hook.url",
        "routes[1].match.level[0]",
        "routes[2].to",
    }
    assert found["destinations.hook.url"] == "is not an http(s) URL"
    assert found["routes[2].to"] == "'nowhere' is not a destination (hook)"
    assert "plaintext-secret" not in " ".join(str(p) for p in problems)


def test_a_timeout_of_zero_is_refused(rules_dir):
    # Every attempt would time out before it began, each failure saying only "timed out".
    problems = load_routing(
        write_alerting(
            rules_dir,
            """
            destinations:
              hook: {type: webhook, url: "https://hooks.example/x", timeout: 0s}
              mail: {type: email, smtp: "smtp.example:25", from: "a@example.com", to: ["b@example.com"], timeout: 0ms}
            routes: [{to: [hook, mail]}]
            """,
        )
    )
    assert isinstance(problems, list)
    assert {p.field: p.message for p in problems} == {
        "destinations.hook.timeout": "must be longer than 0",
        "destinations.mail.timeout": "must be longer than 0",
    }


def test_yaml_errors_and_repeated_names_name_the_line(rules_dir):
    problems = load_routing(write_alerting(rules_dir, "destinations:\n  a: {type: slack}\n  a: {type: slack}\n"))
    assert isinstance(problems, list)
    assert [p.field for p in problems] == ["line 3, column 3"]
    assert "appears twice" in problems[0].message


def test_a_day_the_calendar_does_not_have_is_a_problem_on_its_line(rules_dir):
    """PyYAML's ValueError on it came through as a traceback, and failed every round of the rules."""
    text = 'destinations:\n  hook: {type: webhook, url: "https://hooks.example/x", note: 2026-02-30}\n'
    problems = load_routing(write_alerting(rules_dir, text))
    assert isinstance(problems, list)
    assert [(p.field, p.message) for p in problems] == [
        ("line 2, column 63", "not valid YAML: '2026-02-30' is no date or time: day is out of range for month")
    ]


def test_the_file_is_read_again_when_it_changes_and_a_bad_edit_keeps_the_last_good_version(rules_dir):
    watched = RoutingFile(rules_dir)
    path = write_alerting(rules_dir, 'destinations: {a: {type: webhook, url: "http://x.test"}}\nroutes: [{to: [a]}]')
    first = watched.current()
    assert first is not None and list(first.destinations) == ["a"]
    assert watched.current() is first  # unchanged: not read again
    path.write_text('destinations: {b: {type: webhook, url: "http://x.test"}}\nroutes: [{to: [b]}]\n')
    second = watched.current()
    assert second is not None and list(second.destinations) == ["b"]
    path.write_text("destinations: {b: {type: webhook}}\n")
    os.utime(path, ns=(1, 1))  # a change in the same tick of the clock as the last one is seen too
    assert watched.current() is second
    assert [p.field for p in watched.problems] == ["destinations.b.url"]  # (its url missing)
    path.unlink()
    assert watched.current() is second  # (gone a moment: see the next test)
    watched._missing_since -= EMPTY_SETTLES_NS
    assert watched.current() is not None and watched.current().destinations == {}


def test_an_empty_file_just_written_is_taken_for_one_being_written(rules_dir):
    """An editor (or `cat >`) truncates alerting.yml, then writes it: read in between, it routed nothing, and every
    delivery waiting for a destination was dead-lettered. Empty for a while, it is read as it is."""
    watched = RoutingFile(rules_dir)
    path = write_alerting(rules_dir, 'destinations: {a: {type: webhook, url: "http://x.test"}}\nroutes: [{to: [a]}]')
    first = watched.current()
    assert first is not None and list(first.destinations) == ["a"]
    path.write_text("")
    assert watched.current() is first
    settled = time.time_ns() - EMPTY_SETTLES_NS - 1
    os.utime(path, ns=(settled, settled))
    assert watched.current() is not None and watched.current().destinations == {}


def test_an_empty_file_stamped_in_the_future_is_read(rules_dir):
    """A clock behind the file's (a copy from another machine): its age is no measure, and it was never read."""
    watched = RoutingFile(rules_dir)
    path = write_alerting(rules_dir, 'destinations: {a: {type: webhook, url: "http://x.test"}}\nroutes: [{to: [a]}]')
    assert watched.current() is not None
    path.write_text("")
    ahead = time.time_ns() + 3600 * 10**9
    os.utime(path, ns=(ahead, ahead))
    assert watched.current() is not None and watched.current().destinations == {}


def test_a_file_gone_a_moment_is_taken_for_one_being_written(rules_dir):
    """vim and Emacs rename alerting.yml to its backup, then write it anew: read in between, it routed nothing, and
    every delivery waiting for a destination was dead-lettered. Gone for a while, it routes nothing."""
    watched = RoutingFile(rules_dir)
    path = write_alerting(rules_dir, 'destinations: {a: {type: webhook, url: "http://x.test"}}\nroutes: [{to: [a]}]')
    first = watched.current()
    assert first is not None and list(first.destinations) == ["a"]
    path.rename(path.with_name("alerting.yml~"))
    assert watched.current() is first
    write_alerting(rules_dir, 'destinations: {b: {type: webhook, url: "http://x.test"}}\nroutes: [{to: [b]}]')
    second = watched.current()
    assert second is not None and list(second.destinations) == ["b"]
    path.unlink()
    assert watched.current() is second
    watched._missing_since -= EMPTY_SETTLES_NS
    assert watched.current() is not None and watched.current().destinations == {}


def test_a_bad_first_version_means_no_routing_yet(rules_dir):
    write_alerting(rules_dir, "routes: [{to: []}]\n")
    watched = RoutingFile(rules_dir)
    assert watched.current() is None
    assert watched.problems[0].field == "routes[0].to"


def test_the_readme_states_the_destination_defaults_the_code_has():
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme[readme.index("\n## Alert delivery\n") : readme.index("\n## The record\n")]
    rows = re.findall(r"^\| `(\w+)` \| `([^`]+)` \|", section, re.MULTILINE)
    defaults = {f.name: f.default for f in msgspec.structs.fields(DestinationConfig) if f.name != "events"}
    assert {name: value for name, value in rows if name in defaults} == {
        k: str(v) for k, v in defaults.items() if k != "redact"
    }


@pytest.mark.parametrize("url", ["http://127.0.0.1:abc/hook", "https://hooks.example:99999/x"])
def test_a_url_whose_port_is_not_one_is_refused(rules_dir, url):
    # It passed, and every delivery to it was dead-lettered with httpx's "InvalidURL: Invalid port".
    problems = load_routing(write_alerting(rules_dir, f'destinations: {{a: {{type: webhook, url: "{url}"}}}}'))
    assert isinstance(problems, list)
    assert [(p.field, p.message) for p in problems] == [("destinations.a.url", "is not an http(s) URL")]
