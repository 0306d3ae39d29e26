"""The search language (lake/search_terms.py): OR, AND, NOT, groups and their errors, read into conditions."""

from __future__ import annotations

import json
import re
from dataclasses import replace

import duckdb
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from loglake.lake.reads import _conditions
from loglake.lake.search_terms import MAX_GROUP_DEPTH, MAX_TERMS, AnyOf, InvalidSearch, Term, parse_search
from loglake.store.base import RecentQuery

A, B, C, D = Term("a"), Term("b"), Term("c"), Term("d")


def no(term: Term) -> Term:
    return replace(term, negated=not term.negated)


@pytest.mark.parametrize(
    ("q", "conditions"),
    [
        ("", []),
        ("a b", [A, B]),
        ("a AND b", [A, B]),  # the AND written out is the AND of terms side by side
        ("a OR b", [AnyOf(((A,), (B,)))]),
        ("a b OR c", [AnyOf(((A, B), (C,)))]),  # AND binds tighter than OR
        ("a OR b c", [AnyOf(((A,), (B, C)))]),
        ("a AND b OR c AND d", [AnyOf(((A, B), (C, D)))]),
        ("(a OR b) c", [AnyOf(((A,), (B,))), C]),
        ("a (b OR c) d", [A, AnyOf(((B,), (C,))), D]),
        ("(a b)", [A, B]),  # a group without OR is its terms
        ("((a))", [A]),
        ("a OR (b OR c)", [AnyOf(((A,), (B,), (C,)))]),
        ("(a OR b) OR c", [AnyOf(((A,), (B,), (C,)))]),
        ("a OR (b c)", [AnyOf(((A,), (B, C)))]),
        ("(a OR b) (c OR d)", [AnyOf(((A,), (B,))), AnyOf(((C,), (D,)))]),
        ("-(a OR b)", [AnyOf(((A,), (B,)), negated=True)]),
        ("NOT (a OR b)", [AnyOf(((A,), (B,)), negated=True)]),
        ("-(a b)", [AnyOf(((A, B),), negated=True)]),
        ("NOT a", [no(A)]),
        ("-(a)", [no(A)]),
        ("NOT -a", [A]),
        ("-(-a OR b) c", [AnyOf(((no(A),), (B,)), negated=True), C]),
        ("c -(a OR (b -d))", [C, AnyOf(((A,), (B, no(D))), negated=True)]),
        ('"OR" or "AND" "NOT"', [Term("OR"), Term("or"), Term("AND"), Term("NOT")]),  # quoted or lowercase: words
        ("-OR service:OR", [Term("OR", negated=True), Term("OR", "service")]),
        ("  a   OR\tb  ", [AnyOf(((A,), (B,)))]),
        ("a(b)c", [A, B, C]),  # parentheses outside quotes always group
        ('"f(x)" "(" key:"a (b)"', [Term("f(x)"), Term("("), Term("a (b)", paths=(("key",),))]),
        (
            "service:api (timeout OR refused) -severity:debug",
            [
                Term("api", "service"),
                AnyOf(((Term("timeout"),), (Term("refused"),))),
                Term("debug", "severity", negated=True),
            ],
        ),
        (
            'http."x.y":5 OR user:alice',
            [AnyOf(((Term("5", paths=(("http", "x.y"),)),), (Term("alice", paths=(("user",),)),)))],
        ),
        # unquoted dots: nested keys, or else the one key with the dots (OTLP's host.name); quoted: one key
        ("host.name:web-7", [Term("web-7", paths=(("host", "name"), ("host.name",)))]),
        ('"host.name":web-7', [Term("web-7", paths=(("host.name",),))]),
        # a * alone or at the end of an unquoted word or value: a prefix (an empty one: anything); quoted: text
        (
            "* mess* -service:web*",
            [Term("", prefix=True), Term("mess", prefix=True), Term("web", "service", True, prefix=True)],
        ),
        ("trace_id:* -span_id:*", [Term("", "trace_id", prefix=True), Term("", "span_id", True, prefix=True)]),
        (
            "host.name:* severity:WARN*",
            [Term("", paths=(("host", "name"), ("host.name",)), prefix=True), Term("warn", "severity", prefix=True)],
        ),
        ('"a*b" "*" key:"x*"', [Term("a*b"), Term("*"), Term("x*", paths=(("key",),))]),
        ('"-" a-b -"-"', [Term("-"), Term("a-b"), Term("-", negated=True)]),  # a dash searched for, quoted
        ("--", [Term("-", negated=True)]),  # - then what to leave out: a dash
        # a URL pasted from a log line is text (scheme://...), not the attribute `https` with a value
        (
            "https://api.example.com/v1/pay -svn+ssh://repo/x",
            [Term("https://api.example.com/v1/pay"), Term("svn+ssh://repo/x", negated=True)],
        ),
        ("https://api.example.com/v1/*", [Term("https://api.example.com/v1/", prefix=True)]),
        ("url:https://x.example/a", [Term("https://x.example/a", paths=(("url",),))]),  # the value of url
        ("https:/x", [Term("/x", paths=(("https",),))]),  # no //: a key and its value
    ],
)
def test_searches_read_into_conditions(q: str, conditions: list) -> None:
    assert parse_search(q) == conditions


@pytest.mark.parametrize(
    ("q", "message"),
    [
        ("(a OR b", "the ( at character 1 is never closed"),
        ("a (b (c)", "the ( at character 3 is never closed"),
        ("a OR b)", "the ) at character 7 closes no group"),
        (")", "the ) at character 1 closes no group"),
        ("a OR", "OR at character 3 needs a term after it"),
        ("OR a", "OR at character 1 needs a term before it"),
        ("a OR OR b", "OR at character 3 needs a term after it"),
        ("(a OR) b", "OR at character 4 needs a term after it"),
        ("a (OR b)", "OR at character 4 needs a term before it"),
        ("a ()", "the group at character 3 is empty"),
        ("-( ) a", "the group at character 1 is empty"),
        ("AND a", "AND at character 1 needs a term on each side"),
        ("a AND", "AND at character 3 needs a term on each side"),
        ("a AND OR b", "AND at character 3 needs a term on each side"),
        ("a NOT", "NOT at character 3 needs a term or a group after it"),
        ("NOT OR a", "NOT at character 1 needs a term or a group after it"),
        (
            "getUser()",
            "the group at character 8 is empty; put a term in it, remove it, or quote a word with parentheses in it,"
            ' as in "getUser()"',
        ),
        ("service:(api OR web)", "service: needs a value"),
        (
            "error: timeout",
            'error: needs a value, e.g. error:api or error:"two words" (alternatives: error:a OR error:b);'
            ' to search for text holding a colon, quote it: "error: ..."',
        ),
        # a * anywhere but alone or at the end of an unquoted word or value
        (
            "*mess",
            "*mess at character 1: a * is a wildcard only at the end of a word or value (mess*, service:web*) or alone"
            ' (* for every record, field:* for "the field is present"); quote it to search for a * itself: "*mess"',
        ),
        ("a me*ss", "me*ss at character 3: a * is a wildcard only at the end"),
        ("-service:*web", 'quote it to search for a * itself: -service:"*web"'),
        ("**", "** at character 1: a * is a wildcard only"),
        ("host.*:x", 'host.*: a key takes no wildcard; quote a key that holds a *: "*"'),
        ('"unclosed OR a', "unbalanced"),
        # a - with nothing after it leaves out nothing: a mistake, not a search for a dash (nor NOT of nothing)
        (
            "-",
            "the - at character 1 leaves out nothing: write what to leave out right after it, as in -healthcheck,"
            ' or quote a dash to search for it: "-"',
        ),
        ("a - b", "the - at character 3 leaves out nothing"),
        ("(a -)", "the - at character 4 leaves out nothing"),
        ("a OR -", "the - at character 6 leaves out nothing"),
        # the other empty forms, each said with where it is and what to do
        ("NOT", "NOT at character 1 needs a term or a group after it, as in NOT a"),
        ("()", "the group at character 1 is empty; put a term in it, remove it"),
        ("-()", "the group at character 1 is empty; put a term in it, remove it"),
        ('a -"', 'unbalanced " in \'-"\' at character 3: a phrase is words between two quotes, as in "connection'),
        ('a ""', "the empty phrase '\"\"' at character 3 matches nothing; put a word in it, or remove it"),
        ('-""', "the empty phrase '-\"\"' at character 1 matches nothing"),
        ('service:""', "the empty phrase 'service:\"\"' at character 1 matches nothing"),
        ("(" * (MAX_GROUP_DEPTH + 1) + "a" + ")" * (MAX_GROUP_DEPTH + 1), f"at most {MAX_GROUP_DEPTH} groups"),
        (" OR ".join(f"w{n}" for n in range(MAX_TERMS + 1)), f"at most {MAX_TERMS} search terms, got {MAX_TERMS + 1}"),
        ("(a OR (b c)) " * 7, f"at most {MAX_TERMS} search terms, got 21"),
    ],
)
def test_searches_that_cannot_be_read_say_what_and_where(q: str, message: str) -> None:
    with pytest.raises(InvalidSearch, match=re.escape(message)):
        parse_search(q)


def test_the_deepest_groups_and_most_terms_allowed_are_read() -> None:
    deepest = "(" * MAX_GROUP_DEPTH + "a OR b" + ")" * MAX_GROUP_DEPTH
    assert parse_search(deepest) == [AnyOf(((A,), (B,)))]
    most = " OR ".join(f"w{n}" for n in range(MAX_TERMS))
    assert len(parse_search(most)[0].alternatives) == MAX_TERMS


def test_a_deep_nest_of_parentheses_is_refused_without_reading_it_all() -> None:
    """Groups are read recursively: ten thousand ( must be an InvalidSearch, not a RecursionError."""
    with pytest.raises(InvalidSearch, match="nests too deep"):
        parse_search("(" * 10_000)


def test_a_search_without_groups_is_the_plain_and_of_its_terms_sql() -> None:
    """The SQL of an AND-only search is what it was before OR and groups: each term one condition, ANDed
    (the searches users type most, which DuckDB plans as before)."""
    where, params = _conditions(
        RecentQuery(since_ms=1000, service="api"), parse_search("timeout -service:web user:alice")
    )
    assert where == (
        '"timestamp" >= epoch_ms(?::BIGINT) AND service = ? AND regexp_matches(message, ?)'
        " AND NOT coalesce(service = ?, false)"
        """ AND (lower(try(json_extract_string(attributes, '$."user"'))) = lower(?) OR (contains(attributes, '[')"""
        """ AND list_bool_or(list_transform(try(from_json(json_extract(attributes, '$."user"'), '["VARCHAR"]')),"""
        """ lambda x: lower(x) = lower(?)))))"""
    )
    assert params == [1000, "api", "(?i)timeout", "web", "alice", "alice"]


def test_a_groups_sql_takes_its_values_in_the_order_of_its_text() -> None:
    where, params = _conditions(RecentQuery(since_ms=1000), parse_search("a (b OR -c d) -(e OR f)"))
    assert where == (
        '"timestamp" >= epoch_ms(?::BIGINT) AND regexp_matches(message, ?)'
        " AND (regexp_matches(message, ?)"
        " OR NOT coalesce(regexp_matches(message, ?), false) AND regexp_matches(message, ?))"
        " AND NOT coalesce((regexp_matches(message, ?) OR regexp_matches(message, ?)), false)"
    )
    assert params == [1000, "(?i)a", "(?i)b", "(?i)c", "(?i)d", "(?i)e", "(?i)f"]


# Rows for the property below: (service, severity, message, attributes as stored: JSON text, NULL, or not JSON).
# The search's window leaves out the last, which a condition not kept apart from the window's would let in.
ROWS = [
    ("api", "error", "a", '{"x": "A"}'),
    ("web", "info", "b", None),
    ("api", "info", "A B", '{"x": "b"}'),
    ("db", "error", "", "not json"),
    ("web", "debug", "ab", '{"y": "a"}'),
    ("web", "info", "ba", '{"x.y": "a"}'),  # OpenTelemetry's flat dotted key
    ("api", "warning", "c", '{"x": {"y": "b"}}'),
    ("db", "info", "b", '{"x": {"y": "a"}, "x.y": "b"}'),  # both: the nested value is the one read
    ("api", "error", "a b", '{"x": "a"}'),
]
IN_WINDOW = len(ROWS) - 1
TOKENS = ["a", "b", "x:a", "x:b", "service:api", "severity:error", '"a b"', "OR", "AND", "NOT", "(", ")", "-", "-("]
TOKENS += ["x.y:a", "x.y:b", '"x.y":b', "x.y:*", "x:*", "*", "a*", "service:a*", "severity:w*", "x:A*"]


def attribute(attributes: str | None, paths: tuple[tuple[str, ...], ...]) -> object:
    """The value at the first of `paths` present in the attributes (None: none is, or they are not JSON)."""
    stored = json.loads(attributes) if attributes and attributes.startswith("{") else {}
    for path in paths:
        value = stored
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if value is not None:
            return json.dumps(value) if isinstance(value, dict) else value
    return None


def matches(condition: Term | AnyOf, row: tuple) -> bool:
    """What a condition means for one row, written out here: missing attributes match no term."""
    service, severity, message, attributes = row
    if isinstance(condition, AnyOf):
        found = any(all(matches(c, row) for c in alternative) for alternative in condition.alternatives)
    elif condition.paths:
        value = attribute(attributes, condition.paths)
        text = None if value is None else str(value).lower()
        wanted = condition.value.lower()
        found = text is not None and (text.startswith(wanted) if condition.prefix else text == wanted)
    elif condition.field is None:
        found = condition.value.lower() in message.lower()  # a prefix too: words match anywhere
    else:
        stored = {"service": service, "severity": severity}[condition.field]
        found = stored.startswith(condition.value) if condition.prefix else stored == condition.value
    return found != condition.negated


@settings(max_examples=500, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(TOKENS), st.sampled_from([" ", " ", ""])), max_size=9))
@example([("a", " "), ("OR", " "), ("b", "")])
@example([("-(", ""), ("x:a", " "), ("OR", " "), ("b", ""), (")", "")])
@example([("x:a", " "), ("(", ""), ("a", " "), ("OR", " "), ("-(", ""), ("b", " "), ("x:b", ""), (")", ""), (")", "")])
def test_any_search_is_read_or_refused_and_its_sql_selects_what_it_means(tokens: list[tuple[str, str]]) -> None:
    q = "".join(token + space for token, space in tokens)
    try:
        conditions = parse_search(q)
    except InvalidSearch as e:
        assert str(e), q
        return
    where, params = _conditions(RecentQuery(since_ms=1000), conditions)
    with duckdb.connect() as db:
        db.execute(
            f'CREATE TABLE logs AS SELECT n, epoch_ms(CASE WHEN n < {IN_WINDOW} THEN 1000 ELSE 999 END) AS "timestamp",'
            " service, severity, message, attributes FROM (VALUES "
            + ", ".join(f"({n}, ?, ?, ?, ?)" for n in range(len(ROWS)))
            + ") AS t(n, service, severity, message, attributes)",
            [value for row in ROWS for value in row],
        )
        selected = [n for (n,) in db.execute(f"SELECT n FROM logs WHERE {where} ORDER BY n", params).fetchall()]
    assert selected == [n for n, row in enumerate(ROWS[:IN_WINDOW]) if all(matches(c, row) for c in conditions)], q
