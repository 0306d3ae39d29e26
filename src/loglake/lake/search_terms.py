"""The search language of `GET /logs/search?q=...`: words, "quoted phrases", field:value, and -negation.

    timeout                     messages containing "timeout" (any case)
    "connection refused"        messages containing that phrase
    service:api severity:error  exact service / severity / log_type / client_id / trace_id / span_id
                                (message: is a word)
    user:alice  http.status:500 an attribute key (dots reach into nested objects), any case
    ключ:значение               keys in any language
    "a.b":1  http."x-y.z":2     a quoted key is one key, dots and all (and never a record field)
    -healthcheck                leave out messages containing it (works with field:value too)

All terms must match (AND). Words match anywhere in the message, case-insensitively, like
`message ILIKE '%word%'` in SQL. A key cannot hold a double quote.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from loglake.model import SEVERITY_ALIASES

MAX_TERMS = 20
# [-][key:]value, where the key is anything up to the first colon outside quotes.
_TOKEN = re.compile(r'\s*(-?)(?:((?:[^\s":]|"[^"]*")+):)?(?:"([^"]*)"|(\S+))')
_SEGMENT = re.compile(r'"([^"]*)"|([^".]*)')
RECORD_FIELDS = ("service", "log_type", "client_id", "trace_id", "span_id")
_LOWERCASE_FIELDS = ("client_id", "trace_id", "span_id")  # stored as lowercase text, whatever case was sent


class InvalidSearch(ValueError):
    """A search that cannot be run; the message says which term and why."""


@dataclass(frozen=True)
class Term:
    value: str
    field: str | None = None  # a record field (RECORD_FIELDS, severity); None: see `key`
    negated: bool = False
    key: tuple[str, ...] = ()  # an attribute's key path, one key per level of nesting; none: the message


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
        if field is None and bare is not None and bare.endswith(":") and _is_key(bare[:-1]):
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
    if field in _LOWERCASE_FIELDS:
        return Term(value.lower(), field, negated)
    if field in RECORD_FIELDS:
        return Term(value, field, negated)
    return Term(value, None, negated, key_path(field))


def key_path(field: str) -> tuple[str, ...]:
    """An attribute key as written in a search, as its keys from the outermost: dots separate nesting
    levels, except inside "quotes"."""
    keys: list[str] = []
    for part in _split_dots(field):
        segment = _SEGMENT.fullmatch(part)
        key = None if segment is None else segment.group(1) if segment.group(1) is not None else segment.group(2)
        if not key:
            raise InvalidSearch(
                f"{field}: an attribute key is its name, with dots between nested keys; quote a key that"
                f' holds a dot or a colon: "a.b":value, http."x.y":value'
            )
        keys.append(key)
    return tuple(keys)


def _split_dots(field: str) -> list[str]:
    """The parts of a key path between the dots that are outside quotes."""
    parts, current, quoted = [], [], False
    for char in field:
        if char == '"':
            quoted = not quoted
        if char == "." and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def _is_key(text: str) -> bool:
    try:
        return bool(text) and bool(key_path(text))
    except InvalidSearch:
        return False
