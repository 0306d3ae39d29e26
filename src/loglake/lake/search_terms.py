"""The search language of `GET /logs/search?q=...`: words, "quoted phrases", field:value, and -negation.

    timeout                     messages containing "timeout" (any case)
    "connection refused"        messages containing that phrase
    service:api severity:error  exact service / severity / log_type / client_id (message: is a word)
    user:alice  http.status:500 an attribute key (dots reach into nested objects), any case
    -healthcheck                leave out messages containing it (works with field:value too)

All terms must match (AND). Words match anywhere in the message, case-insensitively, like
`message ILIKE '%word%'` in SQL.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from loglake.model import SEVERITY_ALIASES

MAX_TERMS = 20
_TOKEN = re.compile(r'\s*(-?)(?:([A-Za-z0-9_][A-Za-z0-9_.-]*):)?(?:"([^"]*)"|(\S+))')
_FIELD = re.compile(r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*")


class InvalidSearch(ValueError):
    """A search that cannot be run; the message says which term and why."""


@dataclass(frozen=True)
class Term:
    value: str
    field: str | None = None  # None: the message; else a record field or an attribute key
    negated: bool = False


def parse_terms(q: str) -> list[Term]:
    terms: list[Term] = []
    position, text = 0, q.strip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise InvalidSearch(f'cannot read the search at {text[position:][:20]!r}; close every "quote"')
        position = match.end()
        negated, field, quoted, bare = match.groups()
        value = quoted if quoted is not None else bare
        if bare is not None and bare.count('"'):
            raise InvalidSearch(f'unbalanced " in {bare!r}')
        if not value:
            raise InvalidSearch(f"empty search term {match.group(0).strip()!r}")
        if field is None and bare is not None and bare.endswith(":") and _FIELD.fullmatch(bare[:-1]):
            raise InvalidSearch(f'{bare} needs a value, e.g. {bare}api or {bare}"two words"')
        terms.append(_term(value, field, bool(negated)))
    if len(terms) > MAX_TERMS:
        raise InvalidSearch(f"at most {MAX_TERMS} search terms, got {len(terms)}")
    return terms


def _term(value: str, field: str | None, negated: bool) -> Term:
    if field is None or field == "message":
        return Term(value, None, negated)
    if field in ("level", "severity"):
        severity = SEVERITY_ALIASES.get(value.lower())
        if severity is None:
            raise InvalidSearch(f"severity:{value}: not a severity; use debug, info, warning, error or critical")
        return Term(severity.label, "severity", negated)
    if not _FIELD.fullmatch(field):
        raise InvalidSearch(f"{field}: a field is letters, digits, _ and -, with dots between nested keys")
    return Term(value, field, negated)
