"""An answer made into a detection rule: a loglake SQL rule file (the rules loader's format) with the
answer's query, schedule, lookback and threshold filled in, validated by the rules loader itself, and
written to the rules folder only when the user confirms.

A rule's query reads one window at a time (the loader limits its tables to it), so the answer's own
time range and LIMIT come out: left in, a range of literal times would match nothing after it ends.
The query's plain GROUP BY columns become the rule's group_by (one alert per group). Rules are
written in DuckDB's SQL (cdk synth converts them for Athena), so an answer in Athena's SQL is
translated first. Validation loads the file with the rules loader, which needs pySigma: Lambda's layer
has none (aws/packaging.py), so on AWS a draft is returned unvalidated and says so.
"""

from __future__ import annotations

import os
import re
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlglot
import yaml
from sqlglot import exp

from loglake.ask.guard import TIME_COLUMNS
from loglake.ask.time_bounds import conjuncts
from loglake.private_files import FILE_MODE, private_dir

DEFAULT_SCHEDULE = "5m"
DEFAULT_LOOKBACK = "5m"
DEFAULT_THRESHOLD = 1
# Drafts of the same answer get the same rule id and file name: what was shown is what confirming writes.
_DRAFTS = uuid.UUID("6f1c1d6e-55a4-4c8e-9a55-0b8f3f1e7a21")


class RuleExists(Exception):
    """A file of that name is in the rules folder already."""


@dataclass(frozen=True)
class RuleDraft:
    file_name: str
    text: str  # the YAML as it would be written
    problems: list[str]  # the loader's; empty: the rule loads
    validated: bool = True  # False: not loaded (no rules loader here); `problems` is then empty
    warnings: tuple[str, ...] = ()  # what the draft likely needs before it is a useful rule

    def to_dict(self) -> dict[str, Any]:
        valid = not self.problems if self.validated else None
        return {
            "file": self.file_name,
            "yaml": self.text,
            "valid": valid,
            "problems": self.problems,
            "warnings": list(self.warnings),
        }


def draft_rule(
    question: str, sql: str, explanation: str, dialect: str = "duckdb", validate: bool = True, seed: str = ""
) -> RuleDraft:
    """The rule file of an answer's `sql` (in sqlglot's `dialect`), validated by the loader if `validate`;
    its id is the same for the same answer (`seed`: the conversation's id)."""
    tree = sqlglot.parse_one(sql, read=dialect)
    tree.set("limit", None)
    for where in list(tree.find_all(exp.Where)):
        _drop_time_conditions(where)
    groups = _group_columns(tree)
    rule_id = str(uuid.uuid5(_DRAFTS, "\n".join((seed, question, sql))))
    document: dict[str, Any] = {
        "id": rule_id,
        "title": _title(question),
        "status": "experimental",
        "level": "medium",
        "description": f"Drafted by `loglake ask` from: {question}\n{explanation}".strip(),
        "schedule": DEFAULT_SCHEDULE,
        "lookback": DEFAULT_LOOKBACK,
        "threshold": DEFAULT_THRESHOLD,
    }
    if groups:
        document["group_by"] = groups
    document["query"] = tree.sql(dialect="duckdb", pretty=True) + "\n"
    text = yaml.dump(document, Dumper=_BlockDumper, sort_keys=False, allow_unicode=True, width=110)
    file_name = f"ask-{rule_id[:8]}.yml"
    warnings = (NO_THRESHOLD,) if _aggregates_without_having(tree) else ()
    if not validate:
        return RuleDraft(file_name, text, [], validated=False, warnings=warnings)
    return RuleDraft(file_name, text, _problems(text, file_name), warnings=warnings)


def write_rule(draft: RuleDraft, rules_dir: Path) -> Path:
    """Write a valid draft into the rules folder (created if needed), never over an existing file."""
    if draft.problems or not draft.validated:
        raise ValueError("only a draft the rules loader loaded is written")
    private_dir(rules_dir)  # (as `rules init` makes it: a rule names what is watched for, and where)
    path = rules_dir / draft.file_name
    try:  # O_EXCL: a file of that name stays as it is
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        raise RuleExists(f"{path} exists already") from None
    with os.fdopen(fd, "w") as f:
        f.write(draft.text)
    return path


def _problems(text: str, file_name: str) -> list[str]:
    from loglake.rules.loader import load_file  # needs pySigma (see the module doc)
    from loglake.rules.model import Rule
    from loglake.rules.plan import binder

    with tempfile.TemporaryDirectory(prefix="loglake-rule-draft-") as folder:
        path = Path(folder) / file_name
        path.write_text(text)
        loaded = load_file(path, binder())
    if isinstance(loaded, Rule):
        return []
    return [f"{p.field}: {p.message}" if p.field else p.message for p in loaded]


def _group_columns(tree: exp.Expression) -> list[str]:
    """The query's GROUP BY columns by name (also when grouped by position), as the rows name them."""
    selected = tree.expressions if isinstance(tree, exp.Select) else []
    found = []
    for group in (tree.args.get("group") or exp.Group()).expressions:
        if isinstance(group, exp.Literal) and group.name.isdigit() and 0 < int(group.name) <= len(selected):
            group = selected[int(group.name) - 1]
        if isinstance(group, exp.Column | exp.Alias) and isinstance(group.unalias(), exp.Column):
            found.append(group.alias_or_name)
    return found


def _drop_time_conditions(where: exp.Where) -> None:
    """Take the conditions on timestamp or date out of a WHERE's top-level ANDs (all: the WHERE goes)."""
    kept = [c for c in conjuncts(where.this) if not _on_time(c)]
    if not kept:
        where.pop()
        return
    condition = kept[0]
    for c in kept[1:]:
        condition = exp.and_(condition, c)
    where.set("this", condition)


def _on_time(condition: exp.Expression) -> bool:
    comparisons = (exp.GT, exp.GTE, exp.LT, exp.LTE, exp.EQ, exp.Between)
    return isinstance(condition, comparisons) and any(c.name in TIME_COLUMNS for c in condition.find_all(exp.Column))


def _aggregates_without_having(tree: exp.Expression) -> bool:
    """Whether the query aggregates and keeps every row it makes: each group's (or, without GROUP BY, its one
    total) is then a match, and the rule's threshold of one row raises an alert for each, at every run."""
    if not isinstance(tree, exp.Select) or tree.args.get("having") is not None:
        return False
    return any(e.find(exp.AggFunc) is not None for e in tree.expressions)


def _title(question: str) -> str:
    """The question as a rule's title, without the times it named relative to when it was asked ("today",
    "in the last hour"): the rule reads each window, and such a title would be wrong from the next day."""
    words = _RELATIVE_TIME.sub(" ", question.rstrip().rstrip("?")).split()
    while words and words[-1].lower() in _LEFT_HANGING:  # ("slow requests vs", once "last week" went)
        words.pop()
    text = " ".join(words)
    return (text[:1].upper() + text[1:])[:200] or "Drafted rule"


# Words that say nothing at a title's end, left there when the time after them was taken out.
_LEFT_HANGING = frozenset(
    {
        *("vs", "vs.", "versus", "and", "or", "than", "compared", "to", "from", "in", "over", "during", "for"),
        *("since", "until", "between", "of", "with", "by", "at"),
    }
)


_UNIT = r"(?:minutes?|mins?|hours?|days?|weeks?|months?|years?)"
_RELATIVE_TIME = re.compile(
    rf"""\b(?:
        (?:(?:in|over|during|for|within|from)\s+)?(?:the\s+)?(?:last|past|previous)\s+(?:\d+\s+|few\s+)?{_UNIT}
      | (?:since|until)\s+(?:yesterday|today|midnight|this\s+morning)
      | (?:so\s+far\s+)?(?:today|yesterday|tonight)(?:\s+so\s+far)?
      | this\s+(?:morning|afternoon|evening|hour|week|month|year)
      | right\s+now | recently
    )\b(?!['\u2019]s\b)  # ("today's deploy" names an event, not a time; \u2019 the typographic apostrophe)
    """,
    re.IGNORECASE | re.VERBOSE,
)
NO_THRESHOLD = (
    "the query aggregates with no HAVING, so each row it gives (each group's, or its one total, even a count of"
    " 0) is a match and raises an alert at every run: keep only the rows that matter, such as"
    " HAVING count(*) >= 10"
)


class _BlockDumper(yaml.SafeDumper):
    """Multi-line strings (the query) as literal blocks, as people write rule files."""


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _text)
