"""Alert titles and dedup keys as templates: `{name}` is a value of the match (a group-by field, the
match's `count` of rows, or the rule's `rule_id`, `rule_title`, `level`; in a SQL rule's title, also a
column of its query, as the match's first row holds it, before the rule's values of the same name).
Only names, no expressions: a rule file cannot make a template run anything."""

from __future__ import annotations

import re
from typing import Any

from loglake.rules.model import Rule

_PLACEHOLDER = re.compile(r"\{([^{}]+)\}")
RULE_VALUES = ("rule_id", "rule_title", "level", "count")


def placeholders(template: str) -> list[str]:
    return _PLACEHOLDER.findall(template)


def template_syntax_problem(template: str) -> str | None:
    """Why a template's braces do not pair (a brace is only ever part of a `{name}`), or None."""
    rest = _PLACEHOLDER.sub("", template)
    stray = next((brace for brace in "{}" if brace in rest), None)
    return None if stray is None else f"{template!r} has a {stray!r} that is not part of a {{name}}"


def default_dedup_key(group_fields: tuple[str, ...]) -> str:
    """The rule's id and its group values: one alert per rule and group."""
    return "{rule_id}" + "".join(f":{{{name}}}" for name in group_fields)


def dedup_key_shape(rule: Rule) -> str:
    """The rule's dedup key with its own values filled in and each value of a match as `{}` (never in a template):
    two rules of one shape make the same key of the same values (a key without {rule_id}), which destinations take
    for one alert."""
    own = {"rule_id": rule.id, "rule_title": rule.title, "level": rule.level}
    group = set(rule.plan.group_fields)
    template = rule.options.dedup.key or default_dedup_key(rule.plan.group_fields)
    return _PLACEHOLDER.sub(lambda m: "{}" if m.group(1) in group else str(own.get(m.group(1), "{}")), template)


def render(template: str, rule: Rule, values_of_match: dict[str, Any], count: int) -> str:
    return fill(template, count, shown_values(rule, values_of_match))


def shown_values(rule: Rule, values_of_match: dict[str, Any]) -> dict[str, Any]:
    """What a template of the rule shows of a match but its count (a value of the match's own comes first)."""
    return {"rule_id": rule.id, "rule_title": rule.title, "level": rule.level, **values_of_match}


def fill(template: str, count: int, values: dict[str, Any]) -> str:
    """The template with shown_values' values and `count` (unless the match has a value named count)."""
    return _PLACEHOLDER.sub(lambda m: _text(values.get(m.group(1), count if m.group(1) == "count" else None)), template)


def _text(value: Any) -> str:
    return "" if value is None else str(value)
