"""Loading a rules folder: every bad file is a problem naming the file and the field, and never keeps
the good ones from loading; what loads is what the file says."""

from __future__ import annotations

from pathlib import Path

import pytest

from loglake.rules.loader import load_rules
from loglake.rules.plan import BIND_SECONDS
from loglake.rules.schedule import Cron, Interval
from tests.rules.conftest import load_one, problems_of, write_rule

GOOD = """
title: good
id: 33333333-4444-4555-8666-777777777777
level: medium
logsource: {product: loglake, service: app_logs}
detection: {sel: {severity: critical}, condition: sel}
"""


def sigma(detection: str = "{sel: {severity: critical}, condition: sel}", extra: str = "", uid: str = "1") -> str:
    return (
        f"title: bad\nid: 44444444-5555-4666-8777-88888888888{uid}\nlevel: high\n"
        f"logsource: {{product: loglake, service: app_logs}}\ndetection: {detection}\n{extra}"
    )


def sql(query: str, extra: str = "") -> str:
    return f'title: bad sql\nid: 55555555-6666-4777-8888-999999999999\nlevel: low\nquery: "{query}"\n{extra}'


BAD = {
    "yaml.yml": ("title: x\ndetection: [unclosed\n", "line 3, column 1", "not valid YAML"),
    "twice.yml": ("title: x\ntitle: y\n", "line 2, column 1", "appears twice"),
    "no-such-day.yml": (sigma(extra="modified: 2024-13-45"), "line 6, column 11", "'2024-13-45' is no date or time"),
    "list.yml": ("- a\n- b\n", "", "a rule is a YAML mapping"),
    "neither.yml": ("title: x\nid: 1\n", "", "neither a Sigma rule"),
    "unknown-field.yml": (sigma(extra="levle: high"), "levle", "unknown field"),
    "unknown-option.yml": (
        sigma(extra="loglake: {threshhold: 5}"),
        "loglake",
        ("unknown field 'threshhold' (did you mean 'threshold'?)"),
    ),
    "bad-option.yml": (sigma(extra="loglake: {threshold: 0}"), "loglake.threshold", ">= 1"),
    "bad-duration.yml": (sigma(extra="loglake: {lookback: 5 minutes}"), "loglake.lookback", "a duration such as"),
    "unknown-modifier.yml": (
        sigma("{sel: {message|contians: x}, condition: sel}"),
        "detection.sel.message|contians",
        "unknown modifier |contians: did you mean |contains? loglake takes |all, |base64, |base64offset, |cased,",
    ),
    "unsupported-modifier.yml": (
        sigma("{sel: {message|expand: '%x%'}, condition: sel}"),
        "detection.sel.message|expand",
        "not supported",
    ),
    "bad-regex.yml": (
        sigma("{sel: {message|re: 'a(?=b)'}, condition: sel}"),
        "detection.sel.message|re",
        "invalid perl operator: (?=; loglake's regexes are RE2, which has no lookaround",
    ),
    "quoted-number.yml": (
        sigma("{sel: {attributes.code|gte: '500'}, condition: sel}"),
        "detection.sel.attributes.code|gte",
        "|gte takes a number, not the text '500': write it unquoted",
    ),
    "null-contains.yml": (
        sigma("{sel: {message|contains: null}, condition: sel}"),
        "detection.sel.message|contains",
        "|contains takes text, not null",
    ),
    "regex-flag-alone.yml": (
        sigma("{sel: {message|i: timeout}, condition: sel}"),
        "detection.sel.message|i",
        "|i takes a |re before it, not the text 'timeout'",
    ),
    "modifier-after-re.yml": (
        sigma("{sel: {message|re|cased: 'time.*out'}, condition: sel}"),
        "detection.sel.message|re|cased",
        "|cased takes text, not what |re makes of the value",
    ),
    "mapping-value.yml": (
        sigma("{sel: {attributes.user: {name: bob}}, condition: sel}"),
        "detection.sel.attributes.user",
        "a mapping is no value: a value is text, a number, true, false or null (nested keys are one dotted name",
    ),
    "no-id.yml": (
        sigma().replace("id: 44444444-5555-4666-8777-888888888881\n", ""),
        "id",
        "missing: a rule's id is a UUID such as 5f4c8e12-7a8b-4c2d-9e0f-1a2b3c4d5e6f (`uuidgen` makes one)",
    ),
    "unknown-sigma-field.yml": (
        sigma("{sel: {user: bob}, condition: sel}").replace(
            "product: loglake, service: app_logs", "product: aws, service: amplify"
        ),
        "detection.sel.user",
        "amplify_access has no field 'user'",
    ),
    "logsource.yml": (
        sigma().replace("product: loglake, service: app_logs", "product: windows"),
        "logsource",
        "not a source loglake holds",
    ),
    "no-logsource.yml": (
        sigma().replace("logsource: {product: loglake, service: app_logs}\n", ""),
        "logsource",
        "missing (one of: ",
    ),
    "null-selection.yml": (
        sigma("{sel: null, condition: sel}"),
        "detection.sel",
        "a value without a field cannot be null",
    ),
    "empty-selection.yml": (
        sigma("{sel: {severity: error}, filter: {}, condition: sel and not filter}"),
        "detection.filter",
        "empty: give the `field: value` pairs it matches, or the keywords to look for",
    ),
    "empty-keywords.yml": (
        sigma("{sel: {severity: error}, keywords: [], condition: sel or keywords}"),
        "detection.keywords",
        "empty: give the `field: value` pairs it matches",
    ),
    "null-keyword.yml": (
        sigma("{keywords: [timeout, null], condition: keywords}"),
        "detection.keywords",
        "a value without a field cannot be null",
    ),
    "keyword-compare.yml": (
        sigma("{keywords: {'|gt': 5}, condition: keywords}"),
        "detection",
        "a value without a field (a keyword) is text, a number or a |re",
    ),
    "keyword-windash.yml": (
        sigma("{keywords: {'|windash|contains': ' -c '}, condition: keywords}"),
        "detection",
        "a value without a field (a keyword) is text, a number or a |re",
    ),
    "number-field-name.yml": (
        sigma("{sel: {5: x}, condition: sel}"),
        "detection.sel.5",
        "a field's name is text: quote it ('5')",
    ),
    "value-count-fields.yml": (
        "title: c\nid: 44444444-5555-4666-8777-888888888884\nlevel: low\n"
        "correlation: {type: value_count, rules: [a], timespan: 5m, condition: {gte: 2, field: [user]}}\n---\n"
        "title: a\nname: a\nlogsource: {product: loglake, service: app_logs}\n"
        "detection: {sel: {severity: error}, condition: sel}\n",
        "correlation.condition.field",
        "loglake's value_count counts the values of one field: give one (the others may go in group-by)",
    ),
    "correlation-no-rules.yml": (
        "title: c\nid: 44444444-5555-4666-8777-888888888885\nlevel: low\n"
        "correlation: {type: event_count, rules: [], timespan: 5m, condition: {gte: 2}}\n---\n"
        "title: a\nname: a\nlogsource: {product: loglake, service: app_logs}\n"
        "detection: {sel: {severity: error}, condition: sel}\n",
        "correlation.rules",
        "empty: list the names of the rules it correlates",
    ),
    "empty-field.yml": (
        sigma("{sel: {'': timeout}, condition: sel}"),
        "detection.sel.",
        "the field's name is empty",
    ),
    "empty-key-part.yml": (
        sigma("{sel: {attributes.http..status: 401}, condition: sel}"),
        "detection.sel.attributes.http..status",
        "an empty key between two dots",
    ),
    "null-regex.yml": (
        sigma("{sel: {message|re: null}, condition: sel}"),
        "detection.sel.message|re",
        "a |re needs a pattern",
    ),
    "v1-aggregation.yml": (
        sigma("{sel: {severity: error}, timeframe: 5m, condition: sel | count() > 5}"),
        "detection.condition",
        "correlation rule",
    ),
    "not-a-uuid.yml": (sigma().replace("44444444-5555-4666-8777-888888888881", "rule-1"), "id", "is not a UUID"),
    "level.yml": (sigma().replace("level: high", "level: urgent"), "level", "one of informational"),
    "tags.yml": (sigma(extra="tags: [Attack T1110]"), "tags[0]", "namespace"),
    "schedule.yml": (sigma(extra="loglake: {schedule: every 5 minutes}"), "loglake.schedule", "cron takes five"),
    "short-lookback.yml": (
        sigma(extra="loglake: {schedule: 10m, lookback: 5m}"),
        "loglake.lookback",
        "5m leaves records between two runs unread: make it 10m or more",
    ),
    "cron-without-lookback.yml": (
        sigma(extra="loglake: {schedule: '*/10 * * * *'}"),
        "loglake.lookback",
        "cron schedule needs",
    ),
    "title-template.yml": (
        sigma(extra="loglake: {alert_title: 'errors of {user}'}"),
        "loglake.alert_title",
        "{user} is not",
    ),
    "title-braces.yml": (
        sigma(extra="loglake: {group_by: [service], alert_title: '{count} in {service'}"),
        "loglake.alert_title",
        "'{count} in {service' has a '{' that is not part of a {name}: write each value as {name}",
    ),
    "dedup-braces.yml": (sql("SELECT * FROM logs", "dedup: {key: 'k}'}"), "dedup.key", "has a '}' that is not"),
    "dedup-template.yml": (
        sigma(extra="loglake: {group_by: [service], dedup: {key: '{host}'}}"),
        "loglake.dedup.key",
        "{host}",
    ),
    "suppress.yml": (
        sigma(extra="loglake: {suppress: [{where: {user: bob}}]}"),
        "loglake.suppress[0].where.user",
        "group-by",
    ),
    "group-by.yml": (
        sigma("{sel: {sc-status: 500}, condition: sel}", "loglake: {group_by: [hostname]}").replace(
            "product: loglake, service: app_logs", "product: aws, service: amplify"
        ),
        "loglake.group_by",
        "no field 'hostname'",
    ),
    "test-field.yml": (
        sigma(extra="tests: [{name: t, events: [], matchh: true}]"),
        "tests[0]",
        ("unknown field 'matchh' (did you mean 'match'?)"),
    ),
    "two-rules.yml": (sigma() + "---\n" + sigma(uid="2"), "", "a file holds one rule"),
    "part-options.yml": (
        "title: c\nid: 44444444-5555-4666-8777-888888888883\nlevel: low\n"
        "correlation: {type: event_count, rules: [a], timespan: 5m, condition: {gte: 2}}\n---\n"
        "title: a\nname: a\nlogsource: {product: loglake, service: app_logs}\n"
        "detection: {sel: {severity: error}, condition: sel}\nloglake: {threshold: 2}\n",
        "document 2: loglake",
        "belongs to the file's rule",
    ),
    "sql-file.yml": (sql("SELECT * FROM read_csv('/etc/passwd')"), "query", "is not available"),
    "sql-write.yml": (sql("DELETE FROM logs"), "query", "only SELECT"),
    "sql-settings.yml": (sql("SELECT * FROM logs WHERE current_setting('threads') > 0"), "query", "not available"),
    "sql-two.yml": (sql("SELECT 1 FROM logs; SELECT 2 FROM logs"), "query", "exactly one statement"),
    "sql-column.yml": (sql("SELECT nosuch FROM logs"), "query", "nosuch"),
    "sql-no-table.yml": (sql("SELECT 1 AS one"), "query", "reads none of the lake's tables"),
    "sql-parameter.yml": (sql("SELECT * FROM logs WHERE service = $service"), "query", "$service is not a parameter"),
    "sql-group-by.yml": (
        sql("SELECT service FROM logs", "group_by: [severity]"),
        "group_by",
        "'severity' is not a column",
    ),
    "sql-title.yml": (
        sql("SELECT service, count(*) AS n FROM logs GROUP BY service", "alert_title: '{n} in {bogus}'"),
        "alert_title",
        "{bogus} is not a value of a match (known: service, n, rule_id, rule_title, level, count)",
    ),
    "sql-dedup-column.yml": (
        sql("SELECT service, count(*) AS n FROM logs GROUP BY service", "dedup: {key: '{n}'}"),
        "dedup.key",
        "{n} is not a value of a match (known: rule_id, rule_title, level, count)",
    ),
    "sql-unknown.yml": (sql("SELECT * FROM logs", "detection: {}"), "detection", "unknown field"),
    "sql-missing.yml": (  # at its field, as every other problem (was "FILE: missing field level")
        "title: x\nid: 55555555-6666-4777-8888-999999999998\nquery: SELECT * FROM logs\n",
        "level",
        "missing (one of informational, low, medium, high, critical)",
    ),
}


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("rules")
    write_rule(folder, "good.yml", GOOD)
    for name, (text, _, _) in BAD.items():
        write_rule(folder / "bad", name, text)
    write_rule(folder, "alerting.yml", "destinations: {}\n")  # the routing, not a rule
    write_rule(folder, "notes.txt", "not a rule file")
    write_rule(folder, ".draft.yml", "not: a rule")  # hidden, as is what hidden folders hold
    write_rule(folder / ".github" / "workflows", "ci.yml", "name: CI\non: [push]\n")
    twin = GOOD.replace("33333333-4444-4555-8666-777777777777", "33333333-4444-4555-8666-888888888888")
    write_rule(folder / "more", "dup.yaml", twin.replace("title: good", "title: the same id"))
    write_rule(folder / "more", "dup2.yml", twin.replace("title: good", "title: the same id again"))
    return folder, load_rules(folder)


def test_the_good_rule_loads_whatever_the_others(loaded) -> None:
    folder, found = loaded
    assert [(r.title, r.path) for r in found.rules] == [("good", folder / "good.yml")]


@pytest.mark.parametrize("name", list(BAD))
def test_a_bad_file_is_named_with_its_field(name: str, loaded) -> None:
    folder, found = loaded
    _, field, message = BAD[name]
    problems = [p for p in found.problems if p.file == str(folder / "bad" / name)]
    assert any(p.field == field and message in p.message for p in problems), [str(p) for p in problems]
    assert all(str(p).startswith(f"{folder / 'bad' / name}: ") for p in problems)


@pytest.mark.parametrize("timeframe", ["timeframe: 5m, ", ""])
def test_a_v1_aggregation_is_one_problem_in_loglakes_words(tmp_path: Path, timeframe: str) -> None:
    """pySigma's own line on the pipe ("pySigma doesn't supports this syntax") is not shown beside it."""
    text = sigma(f"{{sel: {{severity: error}}, {timeframe}condition: 'sel | count() by service > 5'}}")
    assert [(p.field, p.message) for p in problems_of(tmp_path, text)] == [
        ("detection.condition", "Sigma v1 aggregations are not supported: write a correlation rule")
    ]


CONDITION_SYNTAX = {  # condition: what is wrong with it, in place of pyparsing's grammar ("Expected {{{'1' | ...")
    "2 of them": "'2 of them' is no condition: '2 of' (at column 1): Sigma says `1 of`, `any of` or `all of`"
    " selections, not how many (to count events, write a correlation rule)",
    "sel and": "'sel and' is no condition: it ends after 'and', where a selection must follow",
    "sel filter": "'sel filter' is no condition: 'filter' (at column 5) follows 'sel' without and or or between them",
    "sel AND filter": "'sel AND filter' is no condition: 'AND' (at column 5) is written in lower case: and",
    "sel or or filter": "'sel or or filter' is no condition: 'or' (at column 8) has no selection between 'or' and it",
    "sel and (filter": "'sel and (filter' is no condition: the '(' at column 9 is not closed",
    "sel)": "'sel)' is no condition: ')' (at column 4) closes no '('",
    "1 of": "'1 of' is no condition: '1 of' (at column 1) needs the selections after it: a name, a pattern (sel*)"
    " or them",
    "sel*": "'sel*' is no condition: 'sel*' (at column 1) is a pattern: write `1 of sel*` or `all of sel*`",
    "sel && filter": "'sel && filter' is no condition: '&&' (at column 5) is not part of one (selections joined with"
    " and, or, not and parentheses; `1 of sel*`, `all of them`)",
}


@pytest.mark.parametrize("condition", list(CONDITION_SYNTAX))
def test_a_condition_that_cannot_be_parsed_says_what_is_wrong_where(tmp_path: Path, condition: str) -> None:
    text = sigma(f"{{sel: {{severity: error}}, filter: {{service: a}}, condition: '{condition}'}}")
    assert [(p.field, p.message) for p in problems_of(tmp_path, text)] == [
        ("detection.condition", CONDITION_SYNTAX[condition])
    ]


@pytest.mark.parametrize(
    ("typo", "column"),
    [
        ("sevrity", "severity"),
        ("servce", "service"),
        ("mesage", "message"),
        ("log_typ", "log_type"),
        ("timestmp", "timestamp"),
        ("SEVERITY", "severity"),  # another tool's capitals: as far from the column as a typo can be
        ("Log_Type", "log_type"),
    ],
)
def test_a_field_a_typo_away_from_a_column_is_refused(tmp_path: Path, typo: str, column: str) -> None:
    """Read as an attribute, it would never match: a silent never-firing rule."""
    problems = problems_of(tmp_path, sigma(f"{{sel: {{{typo}: x}}, condition: sel}}"))
    assert [(p.field, p.message) for p in problems] == [
        (
            f"detection.sel.{typo}",
            f"'{typo}' is no column, so it would be read as the attribute '{typo}': did you mean the column"
            f" {column}? (to mean the attribute, write attributes.{typo})",
        )
    ]


_CORRELATION_PART = (
    "---\ntitle: a\nname: a\nlogsource: {product: loglake, service: app_logs}\n"
    "detection: {sel: {severity: error}, condition: sel}\n"
)
_ANOMALY = (
    "title: quiet\nid: 44444444-5555-4666-8777-888888888886\nlevel: low\ntype: anomaly\nschedule: 1h\n"
    "metric: {table: logs}\nbaseline: {period: 1d, history: 3d}\n"
)


@pytest.mark.parametrize(
    ("text", "field", "typo", "column"),
    [
        (sigma(extra="loglake: {threshold: 5, group_by: [sevice]}"), "loglake.group_by", "sevice", "service"),
        (
            "title: c\nid: 44444444-5555-4666-8777-888888888884\nlevel: low\ncorrelation: {type: event_count,"
            " rules: [a], group-by: [Service], timespan: 5m, condition: {gte: 2}}\n" + _CORRELATION_PART,
            "correlation.group-by",
            "Service",
            "service",
        ),
        (
            "title: c\nid: 44444444-5555-4666-8777-888888888884\nlevel: low\ncorrelation: {type: value_count,"
            " rules: [a], timespan: 5m, condition: {gte: 2, field: servce}}\n" + _CORRELATION_PART,
            "correlation.condition.field",
            "servce",
            "service",
        ),
        (_ANOMALY + "group_by: [sevrity]\n", "group_by", "sevrity", "severity"),
    ],
)
def test_a_group_by_field_a_typo_away_from_a_column_is_refused(
    tmp_path: Path, text: str, field: str, typo: str, column: str
) -> None:
    """As in a selection: read as an attribute no record has, it put every record in no group (or counted no value),
    so the rule never fired, without a word."""
    (problem,) = problems_of(tmp_path, text)
    assert problem.field == field
    assert f"'{typo}' is no column" in problem.message and f"did you mean the column {column}?" in problem.message


def test_a_field_a_fieldref_names_is_checked_as_the_fields_of_the_selection_are(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, sigma("{sel: {message|fieldref: [attributes.user, sevrity]}, condition: sel}"))
    assert [p.field for p in problems] == ["detection.sel.message|fieldref"]
    assert (
        "'sevrity' is no column" in problems[0].message and "did you mean the column severity?" in problems[0].message
    )
    amplify = sigma("{sel: {cs-uri-stem|fieldref: cs-uri-stm}, condition: sel}").replace(
        "loglake, service: app_logs", "aws, service: amplify"
    )
    (problem,) = problems_of(tmp_path, amplify, "amplify.yml")
    assert problem.field == "detection.sel.cs-uri-stem|fieldref" and "no field 'cs-uri-stm'" in problem.message


@pytest.mark.parametrize("field", ["attributes.sevrity", "pid", "host", "source"])
def test_an_attribute_meant_loads(tmp_path: Path, field: str) -> None:
    """Written `attributes.`, or no typo of a column (`pid` is not taken for a typo of `id`)."""
    rule = load_one(tmp_path, sigma(f"{{sel: {{{field}: x}}, condition: sel}}"))
    assert "json_extract_string" in rule.plan.sql


@pytest.mark.parametrize(
    ("timing", "warned"),
    [
        ("{schedule: 1h, lookback: 24h}", False),  # 24 runs
        ("{schedule: 1h, lookback: 25h}", True),
        ("{schedule: 1m, lookback: 1d}", False),  # not beyond a day
        ("{schedule: 1m, lookback: 2d}", True),
        ("{schedule: '0 9 * * *', lookback: 30d}", True),  # a cron's runs a day apart
    ],
)
def test_a_lookback_far_beyond_the_schedule_is_warned_of(tmp_path: Path, timing: str, warned: bool) -> None:
    rule = load_one(tmp_path, sigma(extra=f"loglake: {timing}"))
    assert [w.field for w in rule.warnings] == (["loglake.lookback"] if warned else [])


@pytest.mark.parametrize(
    ("item", "warned"),
    [
        ("message|contains: ''", True),
        ("message|startswith: '*'", True),
        ("message: '*'", False),
        ("message: ''", False),
    ],
)
def test_a_selection_that_matches_every_record_is_warned_of(tmp_path: Path, item: str, warned: bool) -> None:
    """A bare `*` says the field is there (SigmaHQ's filters), and an empty value matches an empty text."""
    rule = load_one(tmp_path, sigma(f"{{sel: {{{item}}}, condition: sel}}"))
    assert [w.field for w in rule.warnings] == ([f"detection.sel.{item.split(':')[0]}"] if warned else [])


@pytest.mark.parametrize(("keywords", "warned"), [("['']", True), ("[timeout, '*']", True), ("[timeout]", False)])
def test_a_keyword_that_matches_every_record_is_warned_of(tmp_path: Path, keywords: str, warned: bool) -> None:
    """A keyword is looked for anywhere in the message: nothing, or wildcards alone, is in every one."""
    rule = load_one(tmp_path, sigma(f"{{keywords: {keywords}, condition: keywords}}"))
    assert [w.field for w in rule.warnings] == (["detection.keywords"] if warned else [])


def test_dedup_keys_two_rules_can_share_are_warned_of(tmp_path: Path) -> None:
    """Each rule keeps its own alerts, but PagerDuty takes a dedup key for one incident: two rules keyed "{service}"
    paged one incident, and one rule's resolve closed it while the other's alert was open."""
    keyed = "loglake: {{group_by: [{field}], dedup: {{key: '{key}'}}}}"
    files = {
        "a.yml": sigma(extra=keyed.format(field="service", key="{service}"), uid="1"),
        "b.yml": sigma(extra=keyed.format(field="host", key="{host}"), uid="2"),
        "own-id.yml": sigma(extra=keyed.format(field="service", key="{rule_id}:{service}"), uid="3"),
        "other-level.yml": sigma(extra=keyed.format(field="service", key="{level}:{service}"), uid="4"),
        "other-text.yml": sigma(extra=keyed.format(field="service", key="db:{service}"), uid="5"),
    }
    for name, text in files.items():
        write_rule(tmp_path, name, text)
    found = load_rules(tmp_path)
    warned = {rule.path.name: [(w.field, w.message) for w in rule.warnings] for rule in found.rules}
    assert warned == {
        "a.yml": [
            (
                "loglake.dedup.key",
                f"'{{service}}' can be the dedup key of the alerts of {tmp_path / 'b.yml'} too: destinations take"
                " them for one alert (one PagerDuty incident, which either rule's resolve closes); put {rule_id} in"
                " the key",
            )
        ],
        "b.yml": [("loglake.dedup.key", warned["b.yml"][0][1])],
        "own-id.yml": [],
        "other-level.yml": [],  # ('high:...', the others' keys have no level)
        "other-text.yml": [],
    }
    assert str(tmp_path / "a.yml") in warned["b.yml"][0][1]


def test_an_unknown_modifier_lists_those_loglake_takes(tmp_path: Path) -> None:
    [problem] = problems_of(tmp_path, sigma("{sel: {message|contians: x}, condition: sel}"))
    taken = problem.message.split("loglake takes ")[1].split(", ")
    assert "|contains" in taken and "|re" in taken and "|cidr" in taken
    assert "|expand" not in taken and "|contians" not in taken


def test_a_selection_the_condition_misspells_is_named_with_the_one_meant(tmp_path: Path) -> None:
    text = sigma("{selection: {message: x}, filter: {service: a}, condition: selectoin and not filter}")
    assert [(p.field, p.message) for p in problems_of(tmp_path, text)] == [
        (
            "detection.condition",
            "names 'selectoin', which is no selection of the detection (did you mean selection? selections:"
            " selection, filter)",
        )
    ]


def test_two_rules_with_one_id_are_both_problems(loaded) -> None:
    """Neither is run: which one was meant is not for loglake to guess."""
    folder, found = loaded
    one, other = folder / "more" / "dup.yaml", folder / "more" / "dup2.yml"
    assert [(p.field, p.message) for p in found.problems if p.file == str(one)] == [
        ("id", f"33333333-4444-4555-8666-888888888888 is the id of {other} too; give each rule its own")
    ]
    assert [(p.field, p.message) for p in found.problems if p.file == str(other)] == [
        ("id", f"33333333-4444-4555-8666-888888888888 is the id of {one} too; give each rule its own")
    ]


def test_only_yaml_rule_files_are_read(loaded) -> None:
    _, found = loaded
    assert {Path(p.file).name for p in found.problems} == set(BAD) | {"dup.yaml", "dup2.yml"}


def test_every_problem_of_a_file_at_once(tmp_path: Path) -> None:
    text = sigma("{sel: {user: bob, cs-method|foo: x}, condition: sel}", "level: loud\nloglake: {threshold: -1}")
    text = text.replace("level: high\n", "")
    text = text.replace("product: loglake, service: app_logs", "product: aws, service: amplify")
    found = load_rules(write_rule(tmp_path, "r.yml", text))
    assert sorted(p.field for p in found.problems) == [
        "detection.sel.cs-method|foo",
        "detection.sel.user",
        "level",
        "loglake.threshold",
    ]


def test_problems_of_the_options_and_the_query_come_with_those_of_the_facts(tmp_path: Path) -> None:
    """Not one group of problems per `validate`: a schedule or a query does not wait for the id to be right."""
    sigma_text = sigma(extra="loglake: {schedule: 1x, alert_title: 'a {b'}").replace(
        "44444444-5555-4666-8777-888888888881", "not-a-uuid"
    )
    sigma_text = sigma_text.replace("level: high", "level: extreme")
    sigma_rule = load_rules(write_rule(tmp_path, "sigma.yml", sigma_text))
    assert sorted(p.field for p in sigma_rule.problems) == ["id", "level", "loglake.alert_title", "loglake.schedule"]
    sql_text = sql("SELECT nosuch FROM logs", "schedule: 1x").replace("level: low", "level: extreme")
    sql_rule = load_rules(write_rule(tmp_path, "sql.yml", sql_text))
    assert sorted(p.field for p in sql_rule.problems) == ["level", "query", "schedule"]
    group_by_text = sql("SELECT service FROM logs", "group_by: [host]").replace("level: low", "level: x")
    group_by = load_rules(write_rule(tmp_path, "group.yml", group_by_text))
    assert sorted(p.field for p in group_by.problems) == ["group_by", "level"]


@pytest.mark.parametrize(
    ("text", "field"),
    [
        (sigma(extra="loglake: {schedule: 5, lookback: 1m}"), "loglake.schedule"),
        (sigma(extra="loglake: {schedule: [1], lookback: 1m}"), "loglake.schedule"),
        (sigma(extra="loglake: {schedule: '*/10 * * * *', lookback: [1]}"), "loglake.lookback"),
        (sql("SELECT * FROM logs", "schedule: 5\nlookback: 1m"), "schedule"),
    ],
)
def test_a_timing_option_of_the_wrong_type_is_the_one_problem(tmp_path: Path, text: str, field: str) -> None:
    """Not also a lookback problem measured against the default schedule (or a cron's lookback said missing)."""
    found = load_rules(write_rule(tmp_path, "r.yml", text))
    assert [p.field for p in found.problems] == [field], [str(p) for p in found.problems]


def test_a_missing_folder_is_a_problem(tmp_path: Path) -> None:
    found = load_rules(tmp_path / "nowhere")
    assert not found.rules and found.problems[0].message == (
        f"does not exist: create the folder, or `loglake rules init --rules-dir {tmp_path / 'nowhere'}` to start it"
        " with the starter pack"
    )


def test_a_missing_file_is_not_told_to_be_made_by_rules_init(tmp_path: Path) -> None:
    """`rules init` copies the starter pack into a folder: it makes no file of a name."""
    [problem] = load_rules(tmp_path / "nonexist.yml").problems
    assert "rules init" not in problem.message
    assert problem.message == (
        "does not exist: check its path (`loglake rules show ID` names the file of a rule the folder holds)"
    )


def test_what_a_sigma_rule_says(tmp_path: Path) -> None:
    rule = load_one(
        tmp_path,
        """
        title: Errors
        id: 66666666-7777-4888-8999-AAAAAAAAAAAA
        status: test
        level: high
        description: many errors
        tags: [attack.impact, attack.t1499]
        logsource: {product: loglake, service: app_logs}
        detection: {sel: {severity: error}, condition: sel}
        loglake:
          schedule: 10m
          delay: 30s
          threshold: 3
          group_by: [service, attributes.host]
          destinations: [oncall]
          runbook: https://wiki.example/errors
          enabled: false
        """,
    )
    assert (rule.id, rule.title, rule.level, rule.status, rule.kind) == (
        "66666666-7777-4888-8999-aaaaaaaaaaaa",
        "Errors",
        "high",
        "test",
        "sigma",
    )
    assert rule.tags == ("attack.impact", "attack.t1499") and rule.description == "many errors"
    assert rule.schedule == Interval(600_000) and rule.lookback_ms == 600_000 and rule.delay_ms == 30_000
    assert rule.plan.group_fields == ("service", "attributes.host") and rule.options.threshold == 3
    assert rule.options.destinations == ["oncall"] and not rule.enabled
    assert rule.dedup_window_ms == 3_600_000


@pytest.mark.parametrize("level", ["", "level:\n"])
def test_a_sigma_rule_without_a_level_is_medium(tmp_path: Path, level: str) -> None:
    """Sigma makes `level` optional (a SQL rule, loglake's own format, must still give one: BAD)."""
    rule = load_one(tmp_path, GOOD.replace("level: medium\n", level))
    assert rule.level == "medium"


def test_a_cron_rule_takes_its_lookback(tmp_path: Path) -> None:
    rule = load_one(tmp_path, sigma(extra="loglake: {schedule: '0 3 * * mon', lookback: 7d}"))
    assert isinstance(rule.schedule, Cron) and rule.lookback_ms == 7 * 86_400_000


def test_a_query_that_never_ends_is_a_problem_not_a_hung_loader(tmp_path: Path) -> None:
    """The SQL runs on empty tables when loaded: an endless recursion held the loader (and the server's stop)."""
    endless = (
        "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t)"
        " SELECT (SELECT count(*) FROM t) AS n, (SELECT count(*) FROM logs) AS c"
    )
    found = load_rules(write_rule(tmp_path, "endless.yml", sql(endless)))
    assert [(p.field, p.message) for p in found.problems] == [
        ("query", f"did not finish within {BIND_SECONDS:g} s on tables without rows (a WITH RECURSIVE without an end?)")
    ]
