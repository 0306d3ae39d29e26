"""Rules compiled where they load, run where pySigma and sqlglot are not: a JSON bundle of rules.

The AWS detection function runs rules without converting them (the Lambda layer has neither pySigma,
whose dependency jq has no wheel for Lambda's arm64, nor sqlglot): `cdk synth` loads the rules
folder with the real loader, writes every rule's SQL in Athena's dialect (dialect.py) with its window
left as marks, and puts the rules in one JSON document beside the routing file (aws/infra/detections.py).
A rule that does not load or cannot be written for Athena stops the synth with its file and field,
so it is reported before anything is deployed. load_bundle makes the document Rules again: what
run.py and the alert state read of a rule (options, templates, group fields, the SQL), no tests.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import msgspec

from loglake.rules.model import Options, Problem, Rule
from loglake.rules.plan import Plan, window_moments
from loglake.rules.schedule import parse_schedule

BUNDLE_VERSION = 1
WINDOW_MARK = "@loglake:{}@"  # where a window's time goes in a rule's SQL for Athena


class BundledRule(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    id: str
    title: str
    level: str
    status: str
    description: str
    tags: list[str]
    kind: str
    file: str
    options: Options
    lookback_ms: int
    delay_ms: int
    reach_ms: int
    group_fields: list[str]
    query: str  # the rule's own query (Sigma's conversion or the SQL rule's SELECT), for people
    athena_sql: str  # the SQL of a run, in Athena's dialect, the window as WINDOW_MARKs


class Bundle(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    version: int
    rules: list[BundledRule]


def compile_bundle(rules_dir: Path) -> bytes | list[Problem]:
    """The bundle of every rule in `rules_dir`, or the problems of the files that cannot be in it."""
    from loglake.rules.dialect import DialectError, athena_template
    from loglake.rules.loader import load_rules

    loaded = load_rules(rules_dir)
    problems = list(loaded.problems)
    bundled = []
    for rule in loaded.rules:
        try:
            sql = athena_template(rule)
        except DialectError as e:
            problems.append(Problem(str(rule.path), "", str(e)))
            continue
        bundled.append(
            BundledRule(
                rule.id,
                rule.title,
                rule.level,
                rule.status,
                rule.description,
                list(rule.tags),
                rule.kind,
                str(rule.path.relative_to(rules_dir) if rule.path.is_relative_to(rules_dir) else rule.path),
                rule.options,
                rule.lookback_ms,
                rule.delay_ms,
                rule.plan.reach_ms,
                list(rule.plan.group_fields),
                rule.plan.query,
                sql,
            )
        )
    return problems or msgspec.json.encode(Bundle(BUNDLE_VERSION, bundled))


def load_bundle(data: bytes) -> list[Rule]:
    """The rules of a bundle; each rule's plan holds its SQL for Athena (`sql` and `executed`)."""
    bundle = msgspec.json.decode(data, type=Bundle)
    if bundle.version != BUNDLE_VERSION:
        raise ValueError(f"a rules bundle of version {bundle.version}; this loglake reads {BUNDLE_VERSION}")
    return [_rule(r) for r in bundle.rules]


def _rule(r: BundledRule) -> Rule:
    plan = Plan(r.query, r.athena_sql, r.athena_sql, (), r.reach_ms, tuple(r.group_fields), ())
    return Rule(
        r.id,
        r.title,
        r.level,
        r.status,
        r.description,
        tuple(r.tags),
        r.kind,
        Path(r.file),
        r.options,
        parse_schedule(r.options.schedule),
        r.lookback_ms,
        r.delay_ms,
        (),
        plan,
    )


def fill_window(template: str, reach_ms: int, since_ms: int, until_ms: int, fresh_since_ms: int | None = None) -> str:
    """SQL with WINDOW_MARKs, the moments of the window [since_ms, until_ms) written in (plan.window_moments)."""
    for name, ms in window_moments(reach_ms, since_ms, until_ms, fresh_since_ms).items():
        moment = datetime.fromtimestamp(ms / 1000, UTC)
        template = template.replace(f"'{WINDOW_MARK.format(name + ':day')}'", f"'{moment.date().isoformat()}'")
        template = template.replace(f"'{WINDOW_MARK.format(name)}'", f"'{moment:%Y-%m-%d %H:%M:%S}.{ms % 1000:03d}'")
    return template
