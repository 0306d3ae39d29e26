"""Every Sigma modifier loglake supports, converted to SQL and run by the engine over crafted records:
which records match is written here by hand, not computed by the code under test."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from loglake.lake.tables import AMPLIFY_ACCESS_TABLE, APP_LOGS_TABLE
from loglake.rules.run import run_rule
from loglake.rules.testing import Placed, ScratchLake
from loglake.times import parse_iso8601
from tests.rules.conftest import load_one

DAY = parse_iso8601("2026-03-02T00:00:00Z")  # a Monday; ISO week 10
NEXT_DAY = DAY + 86_400_000

# Each record is at DAY plus its number of minutes (the first at 00:00, the second at 00:01, ...).
RECORDS = [
    {
        "service": "checkout",
        "severity": "error",
        "message": "Payment FAILED for order 42",
        "attributes": {"user": "Alice", "ip": "10.1.2.3", "code": 500, "admin": True},
    },
    {
        "service": "checkout",
        "message": "payment ok * (diskXfull)",
        "attributes": {"user": "bob", "ip": "192.168.0.7", "code": 200, "admin": False},
    },
    {
        "service": "auth",
        "severity": "warning",
        "message": "login failed: user=carol",
        "attributes": {"user": "carol", "ip": "10.200.0.1", "code": 401, "path": "C:\\Windows\\cmd.exe"},
    },
    {
        "service": "auth",
        "severity": "critical",
        "message": "100% disk_full on /var",
        "attributes": {"user": None, "code": "503", "quoted": '["ops"]'},
    },
    {
        "service": "web",
        "severity": "debug",
        "message": "GET /wp-admin/setup.php 1000 bytes",
        # (a shipper's number in a float's form; whole numbers past 2**53, which doubles do not tell apart)
        "attributes": {"bytes": 1000.0, "order": 9007199254740993, "previous": 9007199254740992},
    },
    {"service": "Web", "message": "Überweisung ok", "attributes": {"user": "dave", "nested": {"role": "admin"}}},
    {
        "service": "batch",
        "message": "first line\nsecond line",
        "attributes": {
            "owner": "batch",
            "tag": "FIRST",
            "team": "OPS",
            "roles": ["admin", "ops", ["root"]],
            "hops": ["10.0.0.1", "172.20.1.9"],
            "ports": [22, 8080],
            "flags": [False, True],
        },
    },
    {
        "service": "shell",
        "message": "powershell /enc "
        + base64.b64encode(b"secret").decode()
        + " "
        + base64.b64encode("run payload".encode("utf-16-le")).decode(),
    },
]
PAYMENT, PAYMENT_OK, LOGIN, DISK, WP, UMLAUT, LINES, SHELL = (r["message"] for r in RECORDS)
ALL = {r["message"] for r in RECORDS}

ACCESS = [
    {"app": "shop", "c-ip": "203.0.113.7", "cs-uri-stem": "/.env", "sc-status": 404, "cs(User-Agent)": "zgrab/0.x"},
    {
        "app": "shop",
        "c-ip": "198.51.100.2",
        "cs-uri-stem": "/api/cart",
        "sc-status": 503,
        "cs(User-Agent)": "Mozilla/5.0",
    },
    {
        "app": "blog",
        "c-ip": "198.51.100.2",
        "cs-uri-stem": "/index.html",
        "sc-status": 200,
        "cs(User-Agent)": "Googlebot/2.1",
    },
]


@pytest.fixture(scope="module")
def lake(scratch: ScratchLake) -> ScratchLake:
    records = [Placed(i, DAY + i * 60_000, r) for i, r in enumerate(RECORDS)]
    scratch.add(APP_LOGS_TABLE.name, records, NEXT_DAY)
    rows = [Placed(i, DAY + i * 60_000, r) for i, r in enumerate(ACCESS)]
    scratch.add(AMPLIFY_ACCESS_TABLE.name, rows, NEXT_DAY)
    return scratch


RULE = """
title: case
id: 11111111-2222-4333-8444-555555555555
level: low
logsource: {logsource}
detection:
{detection}
loglake: {{schedule: 1d, evidence: 100}}
"""


def matched(
    lake: ScratchLake,
    folder: Path,
    detection: str,
    logsource: str = "{product: loglake, service: app_logs}",
    day: int = DAY,
) -> set:
    indented = "\n".join("  " + line for line in detection.strip().splitlines())
    rule = load_one(folder, RULE.format(logsource=logsource, detection=indented))
    result = run_rule(rule, lake.engine, day, day + 86_400_000, now_ms=day + 86_400_000)
    label = "message" if "app_logs" in logsource else "cs_uri_stem"
    return {row[label] for match in result.matches for row in match.evidence}


CASES = {
    "equal, any case": ("sel: {service: CHECKOUT}\ncondition: sel", {PAYMENT, PAYMENT_OK}),
    "cased": ("sel: {service|cased: Web}\ncondition: sel", {UMLAUT}),
    "not cased": ("sel: {service: web}\ncondition: sel", {WP, UMLAUT}),
    "contains": ("sel: {message|contains: failed}\ncondition: sel", {PAYMENT, LOGIN}),
    "contains cased": ("sel: {message|contains|cased: FAILED}\ncondition: sel", {PAYMENT}),
    "startswith": ("sel: {message|startswith: 'get /'}\ncondition: sel", {WP}),
    "endswith": ("sel: {message|endswith: ' OK'}\ncondition: sel", {UMLAUT}),
    "wildcards": ("sel: {message: 'payment*42'}\ncondition: sel", {PAYMENT}),
    "single-character wildcard": ("sel: {service: 'a?th'}\ncondition: sel", {LOGIN, DISK}),
    "a percent sign is literal": ("sel: {message|contains: '100%'}\ncondition: sel", {DISK}),
    "an underscore is literal": ("sel: {message|contains: 'disk_full'}\ncondition: sel", {DISK}),
    "a backslash is literal": ("sel: {attributes.path|endswith: '\\cmd.exe'}\ncondition: sel", {LOGIN}),
    "an escaped star is literal": ("sel: {message|contains: 'ok \\*'}\ncondition: sel", {PAYMENT_OK}),
    "an escaped star is no wildcard": ("sel: {message|contains: 'order \\*'}\ncondition: sel", set()),
    "list means any": ("sel: {service: [auth, batch]}\ncondition: sel", {LOGIN, DISK, LINES}),
    "all": ("sel: {message|contains|all: [payment, order]}\ncondition: sel", {PAYMENT}),
    # a list's values are tested together (the field read once): as each of them
    "list, any case": ("sel: {attributes.user: [ALICE, Carol, nobody]}\ncondition: sel", {PAYMENT, LOGIN}),
    "list, not ASCII": ("sel: {message: ['ÜBERWEISUNG OK', nothing]}\ncondition: sel", {UMLAUT}),
    "list, without letters": (
        "sel: {attributes.ip: ['10.1.2.3', '192.168.0.7', '1']}\ncondition: sel",
        {PAYMENT, PAYMENT_OK},
    ),
    "list, wildcards and not": ("sel: {attributes.user: [ALICE, 'c*', '_ob']}\ncondition: sel", {PAYMENT, LOGIN}),
    "list, cased": ("sel: {service|cased: [Web, auth, CHECKOUT]}\ncondition: sel", {UMLAUT, LOGIN, DISK}),
    "list, cased and not": (
        "a: {service|cased: [Web, x]}\nb: {service: [BATCH, y]}\ncondition: a or b",
        {UMLAUT, LINES},
    ),
    "list of a list's items": ("sel: {attributes.roles: [ROOT, OPS]}\ncondition: sel", {LINES}),
    "not a list": ("sel: {attributes.user: [alice, bob]}\ncondition: not sel", ALL - {PAYMENT, PAYMENT_OK}),
    "regex, cased": ("sel: {message|re: 'payment'}\ncondition: sel", {PAYMENT_OK}),
    "regex, any case": ("sel: {message|re|i: 'ÜBERWEISUNG'}\ncondition: sel", {UMLAUT}),
    "regex, multi-line": ("sel: {message|re|m: '^second'}\ncondition: sel", {LINES}),
    "regex, not multi-line": ("sel: {message|re: '^second'}\ncondition: sel", set()),
    "regex, dot matches newline": ("sel: {message|re|s: 'line.second'}\ncondition: sel", {LINES}),
    "regex, dot stops at newline": ("sel: {message|re: 'line.second'}\ncondition: sel", set()),
    "cidr": ("sel: {attributes.ip|cidr: 10.0.0.0/8}\ncondition: sel", {PAYMENT, LOGIN}),
    "cidr, narrower": ("sel: {attributes.ip|cidr: 192.168.0.0/16}\ncondition: sel", {PAYMENT_OK}),
    "exists": ("sel: {attributes.code|exists: true}\ncondition: sel", {PAYMENT, PAYMENT_OK, LOGIN, DISK}),
    "exists even when null": (
        "sel: {attributes.user|exists: true}\ncondition: sel",
        {PAYMENT, PAYMENT_OK, LOGIN, DISK, UMLAUT},
    ),
    "does not exist": ("sel: {attributes.user|exists: false}\ncondition: sel", {WP, LINES, SHELL}),
    "null: missing or null": ("sel: {attributes.user: null}\ncondition: sel", {DISK, WP, LINES, SHELL}),
    "nested key": ("sel: {attributes.nested.role: ADMIN}\ncondition: sel", {UMLAUT}),
    "number": ("sel: {attributes.code: 500}\ncondition: sel", {PAYMENT}),
    "number given as text": ("sel: {attributes.code: 503}\ncondition: sel", {DISK}),
    "a list is its JSON text": ("sel: {attributes.roles|contains: '\"admin\"'}\ncondition: sel", {LINES}),
    # a list matches by any of its items, as search finds it
    "a list's item": ("sel: {attributes.roles: ADMIN}\ncondition: sel", {LINES}),
    "a list's item, cased": ("sel: {attributes.roles|cased: admin}\ncondition: sel", {LINES}),
    "a list's item, cased otherwise": ("sel: {attributes.roles|cased: ADMIN}\ncondition: sel", set()),
    "a list's item, wildcard": ("sel: {attributes.roles: 'o?s'}\ncondition: sel", {LINES}),
    "a list's item, startswith": ("sel: {attributes.roles|startswith: op}\ncondition: sel", {LINES}),
    "a list's items, all": ("sel: {attributes.roles|all: [admin, ops]}\ncondition: sel", {LINES}),
    "a list's items, not all there": ("sel: {attributes.roles|all: [admin, root]}\ncondition: sel", set()),
    "a list's item, regex": ("sel: {attributes.roles|re: '^o.s$'}\ncondition: sel", {LINES}),
    "a list's item, cidr": ("sel: {attributes.hops|cidr: 172.16.0.0/12}\ncondition: sel", {LINES}),
    "a list's number": ("sel: {attributes.ports: 22}\ncondition: sel", {LINES}),
    "a list's number, compared": ("sel: {attributes.ports|gt: 1000}\ncondition: sel", {LINES}),
    "a list's numbers, none above": ("sel: {attributes.ports|gt: 9000}\ncondition: sel", set()),
    "a list's boolean": ("sel: {attributes.flags: true}\ncondition: sel", {LINES}),
    "not a list's item": ("sel: {attributes.roles: admin}\ncondition: not sel", ALL - {LINES}),
    "a list is no item of a list inside it": ("sel: {attributes.roles: root}\ncondition: sel", set()),
    "a text that looks like a list is no list": ("sel: {attributes.quoted: ops}\ncondition: sel", set()),
    "a text that looks like a list is its text": ("sel: {attributes.quoted: '[\"ops\"]'}\ncondition: sel", {DISK}),
    "number sent in a float's form": ("sel: {attributes.bytes: 1000}\ncondition: sel", {WP}),
    "a float's form is its number alone": ("sel: {attributes.bytes: 100}\ncondition: sel", set()),
    "a whole number past 2**53 is its text": ("sel: {attributes.order: 9007199254740993}\ncondition: sel", {WP}),
    # (as doubles 9007199254740993 is 9007199254740992: the neighbour matched)
    "not its neighbour past 2**53": ("sel: {attributes.order: 9007199254740992}\ncondition: sel", set()),
    # (pySigma keeps 9007199254740993 as the double 9007199254740992.0)
    "its neighbour is not it past 2**53": ("sel: {attributes.previous: 9007199254740993}\ncondition: sel", set()),
    "nor in a list past 2**53": ("sel: {attributes.previous: [1, 9007199254740993]}\ncondition: sel", set()),
    "not a number sent in a float's form": ("sel: {attributes.bytes|neq: 1000}\ncondition: sel", ALL - {WP}),
    "gte": ("sel: {attributes.code|gte: 401}\ncondition: sel", {PAYMENT, LOGIN, DISK}),
    "gt": ("sel: {attributes.code|gt: 401}\ncondition: sel", {PAYMENT, DISK}),
    "lt": ("sel: {attributes.code|lt: 401}\ncondition: sel", {PAYMENT_OK}),
    "lte": ("sel: {attributes.code|lte: 401}\ncondition: sel", {PAYMENT_OK, LOGIN}),
    "boolean true": ("sel: {attributes.admin: true}\ncondition: sel", {PAYMENT}),
    "boolean false": ("sel: {attributes.admin: false}\ncondition: sel", {PAYMENT_OK}),
    "neq": ("sel: {service|neq: checkout}\ncondition: sel", ALL - {PAYMENT, PAYMENT_OK}),
    "not matches records without the field": ("sel: {attributes.user: bob}\ncondition: not sel", ALL - {PAYMENT_OK}),
    "and, or, parentheses": (
        "a: {service: checkout}\nb: {severity: error}\nc: {service: web}\ncondition: (a and b) or c",
        {PAYMENT, WP, UMLAUT},
    ),
    "1 of them": ("a: {service: batch}\nb: {service: shell}\ncondition: 1 of them", {LINES, SHELL}),
    "all of a pattern": (
        "sel_a: {service: checkout}\nsel_b: {message|contains: ok}\ncondition: all of sel_*",
        {PAYMENT_OK},
    ),
    "two conditions: either": ("a: {service: batch}\nb: {service: shell}\ncondition: [a, b]", {LINES, SHELL}),
    "fieldref": ("sel: {attributes.owner|fieldref: service}\ncondition: sel", {LINES}),
    "fieldref contains": ("sel: {message|fieldref|contains: attributes.user}\ncondition: sel", {LOGIN}),
    "fieldref startswith": ("sel: {message|fieldref|startswith: attributes.tag}\ncondition: sel", {LINES}),
    "fieldref endswith": ("sel: {message|fieldref|endswith: attributes.user}\ncondition: sel", {LOGIN}),
    "fieldref, a list's item": ("sel: {attributes.roles|fieldref: attributes.team}\ncondition: sel", {LINES}),
    "fieldref, a list's item startswith": (
        "sel: {attributes.roles|fieldref|startswith: attributes.team}\ncondition: sel",
        {LINES},
    ),
    "base64": ("sel: {message|base64|contains: secret}\ncondition: sel", {SHELL}),
    "base64offset": ("sel: {message|base64offset|contains: secret}\ncondition: sel", {SHELL}),
    "utf-16 base64offset": ("sel: {message|wide|base64offset|contains: payload}\ncondition: sel", {SHELL}),
    "windash": ("sel: {message|windash|contains: ' -enc '}\ncondition: sel", {SHELL}),
    "keyword": ("words: [wp-admin]\ncondition: words", {WP}),
    "keywords, any of them": ("words: [ÜBERWEISUNG, 'first line']\ncondition: words", {UMLAUT, LINES}),
    "keyword, cased": ("words: {'|cased': [failed]}\ncondition: words", {LOGIN}),
    "keyword number": ("words: [42]\ncondition: words", {PAYMENT}),
    "keyword regex": ("words: {'|re': 'order \\d+'}\ncondition: words", {PAYMENT}),
    "minute": ("sel: {timestamp|minute: 2}\ncondition: sel", {LOGIN}),
    "hour": ("sel: {timestamp|hour: 0}\ncondition: sel", ALL),
    "day": ("sel: {timestamp|day: 2}\ncondition: sel", ALL),
    "week": ("sel: {timestamp|week: 10}\ncondition: sel", ALL),
    "month": ("sel: {timestamp|month: 4}\ncondition: sel", set()),
    "year": ("sel: {timestamp|year: 2026}\ncondition: sel", ALL),
    "the record's id": ("sel: {logId|exists: true}\ncondition: sel", ALL),
}


@pytest.mark.parametrize("case", list(CASES))
def test_modifier(case: str, lake: ScratchLake, tmp_path: Path) -> None:
    detection, expected = CASES[case]
    assert matched(lake, tmp_path, detection) == expected


AMPLIFY = "{product: aws, service: amplify}"
ACCESS_CASES = {
    "CloudFront names": ("sel: {cs-uri-stem|endswith: [/.env, /wp-admin]}\ncondition: sel", {"/.env"}),
    "column names": ("sel: {cs_uri_stem|startswith: /api/}\ncondition: sel", {"/api/cart"}),
    "a number against a numeric column": ("sel: {sc-status: 404}\ncondition: sel", {"/.env"}),
    "text against a numeric column": ("sel: {sc-status|startswith: '5'}\ncondition: sel", {"/api/cart"}),
    "compare a numeric column": ("sel: {sc-status|gte: 404}\ncondition: sel", {"/.env", "/api/cart"}),
    "parenthesised names": ("sel: {cs(User-Agent)|contains: bot}\ncondition: sel", {"/index.html"}),
    "the app partition": ("sel: {app: blog}\ncondition: sel", {"/index.html"}),
    "cidr on a text column": ("sel: {c-ip|cidr: 203.0.113.0/24}\ncondition: sel", {"/.env"}),
}


@pytest.mark.parametrize("case", list(ACCESS_CASES))
def test_amplify_fields(case: str, lake: ScratchLake, tmp_path: Path) -> None:
    detection, expected = ACCESS_CASES[case]
    assert matched(lake, tmp_path, detection, AMPLIFY) == expected


# Addresses as logs write them, on a day of their own: |cidr matches the network's addresses of its family only,
# however an address is written (pySigma's text prefixes matched `10.*` and `*`, and missed `2001:0db8::1`)
ADDRESSES = [
    "10.1.2.3",
    "100.1.2.3",
    "10.1.2.3:443",
    "010.1.2.3",
    "10.1.2.999",
    "192.168.1.200",
    "192.168.2.1",
    "172.31.255.255",
    "172.32.0.1",
    "fe80::1",
    "FE80:0:0::9%eth0",
    "fec0::1",
    "::ffff:10.1.2.3",
    "2001:0db8::1",
    "2001:db8:1::",
    "not an address",
]
IPV4 = {"10.1.2.3", "100.1.2.3", "192.168.1.200", "192.168.2.1", "172.31.255.255", "172.32.0.1"}
IPV6 = {"fe80::1", "FE80:0:0::9%eth0", "fec0::1", "::ffff:10.1.2.3", "2001:0db8::1", "2001:db8:1::"}
CIDR_CASES = {
    "0.0.0.0/0": IPV4,
    "10.0.0.0/8": {"10.1.2.3"},
    "192.168.0.0/23": {"192.168.1.200"},
    "172.16.0.0/12": {"172.31.255.255"},
    "10.1.2.3/32": {"10.1.2.3"},
    "::/0": IPV6,
    "fe80::/10": {"fe80::1", "FE80:0:0::9%eth0"},
    "2001:db8::/32": {"2001:0db8::1", "2001:db8:1::"},
    "::ffff:0:0/96": {"::ffff:10.1.2.3"},
}


@pytest.fixture(scope="module")
def addresses(lake: ScratchLake) -> ScratchLake:
    records = [{"service": "net", "message": a, "attributes": {"ip": a}} for a in ADDRESSES]
    lake.add(APP_LOGS_TABLE.name, [Placed(i, NEXT_DAY + i * 60_000, r) for i, r in enumerate(records)], NEXT_DAY)
    return lake


@pytest.mark.parametrize("network", list(CIDR_CASES))
def test_cidr_matches_the_addresses_of_the_network(network: str, addresses: ScratchLake, tmp_path: Path) -> None:
    detection = f"sel: {{attributes.ip|cidr: '{network}'}}\ncondition: sel"
    assert matched(addresses, tmp_path, detection, day=NEXT_DAY) == CIDR_CASES[network]
    negated = detection.replace("condition: sel", "condition: not sel")
    assert matched(addresses, tmp_path, negated, day=NEXT_DAY) == set(ADDRESSES) - CIDR_CASES[network]


def test_a_long_list_reads_its_field_once(tmp_path: Path) -> None:
    """16,000 values were a JSON read each (4 MB of SQL, 20 s to load, and as many reads of each record)."""
    values = ", ".join(f"user{i}" for i in range(2000))
    rule = load_one(
        tmp_path,
        RULE.format(
            logsource="{product: loglake, service: app_logs}",
            detection=f"""
  sel: {{attributes.user: [{values}, 'adm*']}}
  condition: sel""",
        ),
    )
    # the value (for the values, and for the pattern) and the list it may be: not a read for each value
    assert rule.plan.query.count("json_extract") == 3
    assert len(rule.plan.query) < 25 * 2000  # (the values twice: for the value, for a list's items)


def test_amplify_logsource_by_its_table_name(lake: ScratchLake, tmp_path: Path) -> None:
    logsource = "{product: loglake, service: amplify_access}"
    assert matched(lake, tmp_path, "sel: {sc-status: 200}\ncondition: sel", logsource) == {"/index.html"}
