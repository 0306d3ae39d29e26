"""A detection rule as loglake keeps it, and the parts of a rule file, as msgspec Structs.

The options (`schedule`, `lookback`, `threshold`, ...) are the same Struct in both formats: the
`loglake:` block of a Sigma rule, the top level of a SQL rule. Every problem of a file is reported
with its file and field (`rules/x.yml: loglake.threshold: ...`), and unknown fields are problems too:
a misspelt option must not be silently ignored.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import msgspec

from loglake.config_files import one_of, whole
from loglake.ids import UUID_PATTERN, AmbiguousId
from loglake.rules.plan import Plan
from loglake.rules.schedule import Schedule
from loglake.times import parse_duration

LEVELS = ("informational", "low", "medium", "high", "critical")
# The level of a Sigma rule that gives none (Sigma makes `level` optional; its alerts need one): the middle one,
# routed and paged as a warning, neither dropped as informational nor waking anyone as critical.
SIGMA_DEFAULT_LEVEL = "medium"
STATUSES = ("stable", "test", "experimental", "deprecated", "unsupported")
DEFAULT_EVIDENCE = 20
MAX_EVIDENCE = 1000

Duration = Annotated[
    str, msgspec.Meta(pattern=whole(r"\d+(ms|s|m|h|d|w)"), description="a duration such as 30s, 5m, 2h or 7d")
]
FieldName = Annotated[str, msgspec.Meta(min_length=1)]
Scalar = str | int | float | bool
Tag = Annotated[
    str,
    msgspec.Meta(
        pattern=whole(r"[a-z0-9_-]+\.[a-z0-9._-]+"),
        description="a tag in lower case with its namespace, such as attack.t1110 or attack.credential-access",
    ),
]
Level = Annotated[str, one_of(LEVELS)]
Status = Annotated[str, one_of(STATUSES)]
RULE_ID_EXAMPLE = "5f4c8e12-7a8b-4c2d-9e0f-1a2b3c4d5e6f"
RULE_ID_TEXT = f"a UUID such as {RULE_ID_EXAMPLE} (`uuidgen` makes one)"
RuleId = Annotated[str, msgspec.Meta(pattern=whole(UUID_PATTERN), description=RULE_ID_TEXT)]
Url = Annotated[str, msgspec.Meta(pattern=whole(r"https?://\S+"), description="an http(s) URL")]
DestinationName = Annotated[
    str, msgspec.Meta(pattern=whole(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"), description="a destination's name")
]

# How long before its firing a rule's window ends, by default: shippers send in batches about every second, so a
# record stamped just before a firing arrives just after it; and an alert stays within issue 13's interval + 5 s.
DEFAULT_DELAY = "3s"
# The kind of a Sigma correlation rule, whose count is a value of the correlation, not of records.
CORRELATION = "sigma correlation"


class Dedup(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One alert per key per window; later matches of the key update its count and evidence."""

    key: str | None = None  # a template; default: the rule's id and its group values
    window: Duration = "1h"


class Suppression(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Matches whose group values are among these are suppressed (until a time, if given)."""

    where: dict[FieldName, Scalar | list[Scalar]]
    until: datetime | None = None  # without an offset: UTC
    reason: str = ""

    def until_ms(self) -> int | None:
        if self.until is None:
            return None
        aware = self.until if self.until.tzinfo is not None else self.until.replace(tzinfo=UTC)
        return int(aware.timestamp() * 1000)

    def applies(self, group: dict[str, Any], now_ms: int) -> bool:
        until = self.until_ms()
        if until is not None and now_ms >= until:
            return False
        for name, wanted in self.where.items():
            values = wanted if isinstance(wanted, list) else [wanted]
            if _text(group.get(name)) not in {_text(v) for v in values}:
                return False
        return True


def _text(value: Any) -> str:
    """A value as suppressions compare it: true/false in lower case, numbers without a needless `.0`."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return "" if value is None else str(value)


class Options(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """How loglake runs a rule: a Sigma rule's `loglake:` block, a SQL rule's top level."""

    schedule: str = "5m"  # an interval or a cron expression (schedule.py)
    lookback: Duration | None = None  # the window each run evaluates; default: an interval schedule's length
    delay: Duration = DEFAULT_DELAY  # how long before its firing a window ends, for records still on their way
    threshold: Annotated[int, msgspec.Meta(ge=1)] = 1  # matching rows needed (per group) to alert
    group_by: list[FieldName] = msgspec.field(default_factory=list)
    dedup: Dedup = msgspec.field(default_factory=Dedup)
    suppress: list[Suppression] = msgspec.field(default_factory=list)
    destinations: list[DestinationName] = msgspec.field(default_factory=list)  # overrides the routes
    runbook: Url | None = None
    enabled: bool = True
    alert_title: str | None = None  # a template; default: the rule's title
    evidence: Annotated[int, msgspec.Meta(ge=1, le=MAX_EVIDENCE)] = DEFAULT_EVIDENCE  # rows kept per alert
    resolve_after: Duration | None = None  # resolve an alert whose condition has been clear this long


class RuleTest(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Sample events and what the rule must make of them (how events are placed: testing.py)."""

    name: Annotated[str, msgspec.Meta(min_length=1)]
    events: list[dict[str, Any]]
    match: bool
    matches: Annotated[int, msgspec.Meta(ge=0)] | None = None  # how many alerts (groups)
    count: Annotated[int, msgspec.Meta(ge=0)] | None = None  # a match with this count
    title: str | None = None  # a match with this title
    dedup_key: str | None = None  # a match with this dedup key
    group: dict[str, Any] | None = None  # a match with these group values


class RuleMeta(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """What every rule says about itself (in a Sigma rule, checked by loglake on top of pySigma)."""

    id: RuleId
    title: Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
    level: Level
    status: Status = "experimental"
    description: str = ""
    tags: list[Tag] = msgspec.field(default_factory=list)


class SqlRuleBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """What a SQL rule file holds besides the rule's facts (RuleMeta) and the options (Options)."""

    query: Annotated[str, msgspec.Meta(min_length=1)]
    author: str = ""
    references: list[str] = msgspec.field(default_factory=list)
    falsepositives: list[str] = msgspec.field(default_factory=list)
    tests: list[RuleTest] = msgspec.field(default_factory=list)


SIGMA_KEYS = frozenset(
    {
        "title", "id", "name", "related", "taxonomy", "status", "description", "license", "references",
        "author", "date", "modified", "logsource", "detection", "fields", "falsepositives", "level", "tags",
        "scope", "correlation", "generate",
    }
)  # fmt: skip
LOGLAKE_KEYS = frozenset({"loglake", "tests"})  # what loglake adds to a Sigma rule


@dataclass(frozen=True)
class Problem:
    """Something wrong with a rule file: the file, the field (or line) and what is wrong."""

    file: str
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.field}: {self.message}" if self.field else f"{self.file}: {self.message}"


@dataclass(frozen=True)
class Rule:
    """A rule that loaded: its facts, its options (checked), its tests and its SQL."""

    id: str
    title: str
    level: str
    status: str
    description: str
    tags: tuple[str, ...]
    kind: str  # "sigma", CORRELATION or "sql"
    path: Path
    options: Options
    schedule: Schedule
    lookback_ms: int
    delay_ms: int
    tests: tuple[RuleTest, ...]
    plan: Plan
    # what loads but is likely not what was meant (a lookback far beyond the schedule): shown, never refused
    warnings: tuple[Problem, ...] = ()

    @property
    def dedup_window_ms(self) -> int:
        return parse_duration(self.options.dedup.window)

    @property
    def enabled(self) -> bool:
        return self.options.enabled


_RULE_ID = re.compile(UUID_PATTERN)


def warnings_of(rules: Sequence[Rule]) -> list[str]:
    """Every warning of these rules (each loads, but likely not as meant), as /healthz and the log show them."""
    return [str(warning) for rule in rules for warning in rule.warnings]


class NoSuchRule(LookupError):
    """No loaded rule answers to the id (or start of one, or file name) given."""


class AmbiguousRule(AmbiguousId):
    """Several loaded rules answer to the start of an id given: `candidates`, their ids, sorted."""

    def __init__(self, text: str, candidates: list[str]) -> None:
        super().__init__(text, candidates, "rules")


def find_rule(rules: Sequence[Rule], text: str) -> Rule:
    """The rule with this id, else the only one whose id starts with it or whose file is named so, with its
    extension or without (what the CLI and the HTTP routes take); NoSuchRule when none is, AmbiguousRule
    naming them when several are."""
    exact = [r for r in rules if r.id == text.lower()]
    found = exact or [r for r in rules if r.id.startswith(text.lower()) or text in (r.path.stem, r.path.name)]
    if len(found) == 1:
        return found[0]
    if not found:
        raise NoSuchRule(text)
    raise AmbiguousRule(text, sorted(r.id for r in found))


def is_rule_id(text: str) -> bool:
    """Whether `text` is a whole rule id: the alerts of a rule since removed are still asked for by it."""
    return _RULE_ID.fullmatch(text) is not None
