"""Rules run with Athena find what they find locally: the same rule files, converted once, their SQL in
Trino's dialect run over the lake's real Parquet files (tests/aws/athena_duckdb.py runs Athena's SQL
on DuckDB), every match compared with the local engine's over the same records; and the lookback is
a partition predicate: a day outside the window is never read."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from loglake.aws.athena import AthenaQueryEngine
from loglake.aws.athena_rules import run_rule_on_athena
from loglake.lake.lake import Lake
from loglake.lake.objectstore import LocalObjectStore
from loglake.lake.query import QueryEngine
from loglake.lake.query_limits import QueryLimits
from loglake.model import Limits, validate_batch
from loglake.rules.bundle import compile_bundle, load_bundle
from loglake.rules.dialect import DialectError, athena_sql, ends_of_text
from loglake.rules.model import Rule
from loglake.rules.run import RuleRunError, run_rule
from loglake.store.sqlite import SQLiteHotStore
from loglake.times import DAY_MS, parse_iso8601
from tests.aws.athena_duckdb import DuckDBAthena
from tests.rules.conftest import load_one
from tests.rules.test_correlation import ANY_LOGIN, BASE_RULES, correlation

DAY1 = parse_iso8601("2026-05-04T00:00:00Z")
DAY2 = DAY1 + DAY_MS
MINUTE = 60_000
# the address each record of day 2 holds (i % 10): some in networks, some near them, some no address
ADDRESSES = [
    "10.1.2.3",
    "100.1.2.3",
    "192.168.1.200",
    "192.168.2.1",
    "172.31.255.255",
    "172.32.0.1",
    "fe80::1%eth0",
    "FE80:0:0:0:0:0:0:9",
    "fec0::1",
    "10.1.2.3:443",
]


def _records() -> list[dict]:
    records = []
    for i in range(30):  # day 2, one a minute from 10:00
        user = f"u{i % 4}"
        records.append(
            {
                "timestamp": DAY2 + 10 * 3_600_000 + i * MINUTE,
                "service": ("api", "web")[i % 2],
                "severity": ("error", "info", "warning")[i % 3],
                "message": f"login {'failed' if i % 5 else 'ok'} for {user} timeout" if i % 7 else "role granted",
                "attributes": {"user": user, "ip": ADDRESSES[i % 10], "http": {"status": 500 if i % 4 == 0 else 200}}
                | ({"tags": ["oncall", i]} if i % 3 == 0 else {}),
            }
        )
    records.append({"timestamp": DAY1 + 3_600_000, "service": "api", "severity": "error", "message": "day one"})
    # day 1: lists holding objects and lists, which Trino does not cast to VARCHAR ARRAY (NESTED_ITEMS)
    for i, tags in enumerate([["oncall", {"team": "db"}], ["ops", ["oncall"]], "oncall", None]):
        records.append(
            {
                "timestamp": DAY1 + 2 * 3_600_000 + i * MINUTE,
                "service": "db",
                "message": "on",
                "attributes": {"tags": tags},
            }
        )
    return records


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[QueryEngine, Path]]:
    folder = tmp_path_factory.mktemp("data")
    store = SQLiteHotStore(folder / "hot.db", durability="process")
    objects = LocalObjectStore(folder / "lake")
    lake = Lake(store, objects, folder, clock=lambda: (DAY2 + DAY_MS) / 1000)
    records = _records()
    store.submit(validate_batch(records, Limits(), DAY2 + DAY_MS)).result()
    assert lake.flush(everything=True).records == len(records)
    engine = QueryEngine(store, objects, folder / "duckdb", QueryLimits())
    yield engine, folder / "lake"
    engine.close()
    lake.close()
    store.close()


def athena_engine(lake_dir: Path) -> tuple[AthenaQueryEngine, DuckDBAthena]:
    client = DuckDBAthena(lake_dir)
    return AthenaQueryEngine(client, "loglake", "primary", QueryLimits(), sleep=lambda s: None), client


SIGMA = """
title: Failures per service
id: 11111111-2222-4333-8444-555555555555
level: high
logsource: {product: loglake, service: app_logs}
detection:
  sel: {severity: [error, warning], message|contains: FAILED}
  user: {attributes.user|startswith: u}
  status: {attributes.http.status: 500}
  noise: ['*granted*']
  condition: sel and user and not (status or noise)
loglake:
  {schedule: 1d, delay: 0s, threshold: 3, group_by: [service], evidence: 4,
   alert_title: "{count} failures in {service}"}
"""
SQL = """
title: Busy users
id: 33333333-2222-4333-8444-555555555555
level: medium
query: >
  SELECT json_extract_string(attributes, '$.user') AS "user", count(*) AS n, max("timestamp") AS "timestamp"
  FROM logs WHERE message ILIKE '%timeout%' GROUP BY 1 HAVING count(*) >= 5
schedule: 1d
group_by: [user]
"""
CORRELATIONS = {
    "event_count": "  type: event_count\n  rules: [failed]\n  group-by: [service]\n  timespan: 10m\n"
    "  condition: {gte: 4}",
    "value_count": "  type: value_count\n  rules: [failed]\n  group-by: [service]\n  timespan: 15m\n"
    "  condition: {gte: 2, field: attributes.user}",
    "temporal_ordered": "  type: temporal_ordered\n  rules: [failed, privilege]\n  group-by: [service]\n"
    "  timespan: 20m",
    # (a failed login is an event of both rules: counted once)
    "event_count of two rules": "  type: event_count\n  rules: [failed, login]\n  group-by: [service]\n"
    "  timespan: 10m\n  condition: {gte: 5}",
}


def bundled(rules_dir: Path) -> Rule:
    """The rule of a folder as the detection function has it: through the bundle."""
    compiled = compile_bundle(rules_dir)
    assert isinstance(compiled, bytes), compiled
    (rule,) = load_bundle(compiled)
    return rule


def _both(rule, lake, since_ms: int, until_ms: int) -> tuple[list[dict], list[dict], DuckDBAthena]:
    engine, lake_dir = lake
    local = run_rule(rule, engine, since_ms, until_ms, now_ms=until_ms)
    athena, client = athena_engine(lake_dir)
    remote = run_rule_on_athena(bundled(rule.path.parent), athena, since_ms, until_ms, now_ms=until_ms)
    return [m.to_dict() for m in local.matches], [m.to_dict() for m in remote.matches], client


def test_a_sigma_rule_finds_on_athena_what_it_finds_locally(lake, tmp_path: Path) -> None:
    rule = load_one(tmp_path, SIGMA)
    local, remote, _ = _both(rule, lake, DAY2, DAY2 + DAY_MS)
    assert [(m["group"], m["count"]) for m in local] == [({"service": "api"}, 4), ({"service": "web"}, 7)]
    assert remote == local
    assert remote[0]["title"] == "4 failures in api" and len(remote[0]["evidence"]) == 4


LIST_ITEMS = """
title: On-call records
id: 22222222-2222-4333-8444-555555555555
level: low
logsource: {product: loglake, service: app_logs}
detection:
  tagged: {attributes.tags: ONCALL}
  late: {attributes.tags|gte: 21}
  condition: tagged and not late
loglake: {schedule: 1d, delay: 0s, group_by: [service]}
"""


def test_a_sigma_rule_matches_a_list_by_its_items_on_athena_as_locally(lake, tmp_path: Path) -> None:
    rule = load_one(tmp_path, LIST_ITEMS)
    local, remote, _ = _both(rule, lake, DAY2, DAY2 + DAY_MS)
    # tagged: i = 0, 3, ..., 27 (api when i is even); not late: i < 21
    assert [(m["group"], m["count"]) for m in local] == [({"service": "api"}, 4), ({"service": "web"}, 3)]
    assert remote == local


NESTED_ITEMS = {  # detection: records matched locally (day 1 of _records)
    "{attributes.tags: ONCALL}": 2,  # an item, beside an object; and a scalar
    "{attributes.tags|contains: '['}": 2,  # a list by its JSON text (an item's too)
    "{attributes.tags|endswith: 'b\"}'}": 1,  # an object among the items, by its JSON text
    "{attributes.tags: null}": 2,  # a null, as a record without the field
    "{attributes.tags|fieldref|startswith: message}": 2,  # an item against another field's value
}


@pytest.mark.parametrize("detection", sorted(NESTED_ITEMS))
def test_a_list_holding_objects_and_lists_matches_on_athena_as_locally(lake, tmp_path: Path, detection: str) -> None:
    rule = load_one(
        tmp_path,
        LIST_ITEMS.replace("tagged and not late", "sel").replace(
            "  tagged: {attributes.tags: ONCALL}\n  late: {attributes.tags|gte: 21}\n", f"  sel: {detection}\n"
        ),
    )
    local, remote, _ = _both(rule, lake, DAY1, DAY2)
    assert sum(m["count"] for m in local) == NESTED_ITEMS[detection]
    assert remote == local


CIDRS = {  # network: records of day 2 matched (each address is that of 3 records)
    "0.0.0.0/0": 18,  # the IPv4 addresses (not fe80::1, nor 10.1.2.3:443)
    "10.0.0.0/8": 3,  # not 100.1.2.3
    "192.168.0.0/23": 3,  # not 192.168.2.1
    "172.16.0.0/12": 3,  # not 172.32.0.1
    "fe80::/10": 6,  # in either case, with a zone; not fec0::1
    "::/0": 9,  # the IPv6 addresses only
}


@pytest.mark.parametrize("network", sorted(CIDRS))
def test_cidr_matches_the_networks_addresses_on_athena_as_locally(lake, tmp_path: Path, network: str) -> None:
    rule = load_one(
        tmp_path,
        LIST_ITEMS.replace("tagged and not late", "sel").replace(
            "  tagged: {attributes.tags: ONCALL}\n  late: {attributes.tags|gte: 21}\n",
            f"  sel: {{attributes.ip|cidr: '{network}'}}\n",
        ),
    )
    local, remote, _ = _both(rule, lake, DAY2, DAY2 + DAY_MS)
    assert sum(m["count"] for m in local) == CIDRS[network]
    assert remote == local


def test_a_sql_rule_finds_on_athena_what_it_finds_locally(lake, tmp_path: Path) -> None:
    rule = load_one(tmp_path, SQL)
    local, remote, _ = _both(rule, lake, DAY2, DAY2 + DAY_MS)
    assert sorted(m["group"]["user"] for m in local) == ["u0", "u1", "u2", "u3"]
    assert remote == local


@pytest.mark.parametrize("kind", sorted(CORRELATIONS))
def test_a_correlation_finds_on_athena_what_it_finds_locally(lake, tmp_path: Path, kind: str) -> None:
    rule = correlation(tmp_path, CORRELATIONS[kind], lookback="1d", rules=BASE_RULES + ANY_LOGIN)
    local, remote, _ = _both(rule, lake, DAY2, DAY2 + DAY_MS)
    assert local, "the crafted records fire every correlation"
    assert remote == local


def test_the_lookback_is_a_partition_predicate_other_days_are_never_read(lake, tmp_path: Path) -> None:
    _, lake_dir = lake
    rule = load_one(tmp_path, SIGMA)
    athena, _ = athena_engine(lake_dir)
    unreadable = lake_dir / "type=app_logs" / "date=2026-05-09" / "broken.parquet"
    unreadable.parent.mkdir(parents=True)
    unreadable.write_bytes(b"not parquet at all")
    try:
        sql = athena_sql(rule, DAY2, DAY2 + DAY_MS)
        assert "\"date\" BETWEEN '2026-05-05' AND '2026-05-06'" in sql
        rule = bundled(tmp_path)
        assert run_rule_on_athena(rule, athena, DAY2, DAY2 + DAY_MS).matches  # the broken day is not opened
        with pytest.raises(RuleRunError, match=r"broken\.parquet"):  # ... which a window over it would
            run_rule_on_athena(rule, athena, DAY2, DAY2 + 5 * DAY_MS)
    finally:
        unreadable.unlink()
        unreadable.parent.rmdir()


def test_a_correlation_over_two_tables_is_refused_for_athena(tmp_path: Path) -> None:
    rules = (
        BASE_RULES
        + """---
title: scanner path
name: scan
logsource: {product: loglake, service: amplify_access}
detection: {sel: {cs-uri-stem|contains: /.env}, condition: sel}
"""
    )
    rule = correlation(tmp_path, "  type: temporal\n  rules: [failed, scan]\n  timespan: 10m", rules=rules)
    with pytest.raises(DialectError, match="different tables"):
        athena_sql(rule, DAY2, DAY2 + DAY_MS)
    (problem,) = compile_bundle(tmp_path)  # the bundle is refused, naming the file
    assert problem.file == str(rule.path) and "different tables" in problem.message


def test_the_starter_pack_passes_its_own_inline_tests_on_athena(tmp_path: Path) -> None:
    """Every starter rule (Sigma, correlation, SQL and anomaly rules) through the bundle, its inline
    tests' events stored in a lake's files (the hot store flushed: Athena reads only the lake) and
    their expectations, as the rule's author wrote them, met by the Athena run."""
    from loglake.rules.loader import load_rules
    from loglake.rules.testing import FIRST_DAY_MS, ScratchLake, _differences, _placed

    starter = Path(__file__).resolve().parents[2] / "src" / "loglake" / "rules" / "starter"
    rules = load_rules(starter).rules
    compiled = compile_bundle(starter)
    assert isinstance(compiled, bytes), compiled
    bundled = {r.id: r for r in load_bundle(compiled)}
    scratch = ScratchLake(tmp_path)
    cases, start = [], FIRST_DAY_MS
    try:
        for rule in rules:
            for number, test in enumerate(rule.tests):
                since = -(-(start + rule.plan.reach_ms) // DAY_MS) * DAY_MS
                until = since + rule.lookback_ms
                for table, events in _placed(rule, test, number, since).items():
                    scratch.add(table, events, until)
                cases.append((rule, test, since, until))
                start = until
        lake = Lake(scratch.store, scratch.objects, tmp_path, clock=lambda: (start + DAY_MS) / 1000)
        lake.flush(everything=True)
        lake.close()
        athena, _ = athena_engine(tmp_path / "lake")
        failures = []
        for rule, test, since, until in cases:
            result = run_rule_on_athena(bundled[rule.id], athena, since, until, now_ms=until)
            failures += [f"{rule.path.name} {test.name}: {d}" for d in _differences(test, result.matches)]
    finally:
        scratch.close()
    assert len(cases) >= 20 and len({r.kind for r, *_ in cases}) >= 3
    assert not failures, failures


ENDS = SIGMA.replace("message|contains: FAILED", "message|re: 'timeout$'").replace(
    "  user: {attributes.user|startswith: u}", "  user: {attributes.user|re|m: '^u[12]$'}"
)


def test_a_regexs_end_of_text_is_the_end_of_the_text_on_athena_as_locally(lake, tmp_path: Path) -> None:
    """Trino's regexes (Joni, with Java's syntax) read `$` as the end or before a newline that ends the text, RE2
    as the end: `timeout$` matched `... timeout\\n` on Athena only. It is written `\\z` there (but under `m`)."""
    rule = load_one(tmp_path, ENDS)
    sql = athena_sql(rule, DAY2, DAY2 + DAY_MS)
    assert "'timeout\\z'" in sql and "'(?m)^u[12]$'" in sql
    local, remote, _ = _both(rule, lake, DAY2, DAY2 + DAY_MS)
    assert local and remote == local


@pytest.mark.parametrize(
    ("pattern", "written"),
    [
        ("a$", "a\\z"),
        ("a\\$|[$]|[]$]|\\Q$\\E|(b$)", "a\\$|[$]|[]$]|\\Q$\\E|(b\\z)"),  # escaped, in a class, quoted
        ("(?m)a$|(?-m:b$)", "(?m)a$|(?-m:b\\z)"),
        ("(?im:a$)b$[[:alpha:]$]", "(?im:a$)b\\z[[:alpha:]$]"),
    ],
)
def test_an_end_of_text_is_written_so_for_trino(pattern: str, written: str) -> None:
    assert ends_of_text(pattern) == written


def test_from_json_into_other_than_text_elements_is_refused_for_athena(tmp_path: Path) -> None:
    """Only from_json(..., '["VARCHAR"]') has an Athena form (an array's elements as text); another structure was
    written as that cast too, and read something else than the rule meant."""
    query = """SELECT * FROM logs WHERE from_json(attributes, '{"a": "INTEGER"}').a = 1"""
    rule = load_one(tmp_path, f"title: x\nid: 33333333-2222-4333-8444-555555555555\nlevel: low\nquery: >\n  {query}\n")
    with pytest.raises(DialectError, match="has no form on Athena"):
        athena_sql(rule, DAY2, DAY2 + DAY_MS)
