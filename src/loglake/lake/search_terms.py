"""The search language of `GET /logs/search?q=...` (also histogram, facets and live tails): terms, each
a word, a "quoted phrase" or a field:value, combined with AND, OR, NOT and parentheses.

    timeout                     messages containing "timeout" (any case)
    "connection refused"        messages containing that phrase
    service:api severity:error  exact service / severity / log_type / client_id / trace_id / span_id
                                (message: is a word)
    user:alice  http.status:500 an attribute key, any case: dots reach into nested objects, or else
                                name one key with the dots in it (OpenTelemetry's host.name)
    ключ:значение               keys in any language
    "a.b":1  http."x-y.z":2     a quoted key is one key, dots and all (and never a record field)
    *  mess*  service:web*      every record; a word or a value starting so (words match anywhere, so
                                mess* is mess); field:* is "the field is present"
    https://example.com/pay     a URL is text, like a word (scheme://...: never a key and its value);
                                other text holding a colon is quoted: "error: timeout"
    -healthcheck                leave out messages containing it (works with field:value too; a lone -
                                is refused: "-" searches for a dash)
    error OR timeout            either (OR in capitals; a quoted "OR", or `or`, is a word)
    service:api (timeout OR refused)   parentheses group
    -(debug OR trace)  NOT (a b)       leave out what the group matches

Terms next to each other must all match (AND, which may also be written); AND binds tighter than OR,
as in Lucene and VictoriaLogs: `a b OR c` is `(a b) OR c`. Words match anywhere in the message,
case-insensitively, like `message ILIKE '%word%'` in SQL. Parentheses outside quotes always group: quote
a word that holds one ("f(x)"). A key cannot hold a double quote. A * is a wildcard only alone or at the
end of a word or value outside quotes; anywhere else it is refused, and quoted ("a*b") it is the text.

A search parses into the conditions that must all match, each a Term or an AnyOf (alternatives, one of
which must match); a search without OR or groups is a plain list of Terms, so its SQL is a plain AND.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace

from loglake.digits import same_as_double
from loglake.model import SEVERITY_ALIASES

MAX_TERMS = 20
MAX_GROUP_DEPTH = 8  # parentheses inside parentheses
# ( or -( opening a group, ) closing one, or a term: [-][key:]value, where the key is anything up to the
# first colon outside quotes; parentheses outside quotes are never part of a key or a bare value.
_TOKEN = re.compile(
    r'(?P<paren>-?\(|\))|(?P<negated>-?)(?:(?P<field>(?:[^\s":()]|"[^"]*")+):)?(?:"(?P<quoted>[^"]*)"|(?P<bare>[^\s()]+))'
)
_SPACE = re.compile(r"\s*")
_OPERATORS = ("OR", "AND", "NOT")
_SEGMENT = re.compile(r'"([^"]*)"|([^".]*)')
_URL_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")  # (RFC 3986) before "://": the term is a URL, not key:value
RECORD_FIELDS = ("service", "log_type", "client_id", "trace_id", "span_id")
_LOWERCASE_FIELDS = ("client_id", "trace_id", "span_id")  # stored as lowercase text, whatever case was sent


class InvalidSearch(ValueError):
    """A search that cannot be run; the message says which term and why."""


@dataclass(frozen=True)
class Term:
    value: str
    field: str | None = None  # a record field (RECORD_FIELDS, severity); None: see `paths`
    negated: bool = False
    # Where an attribute's value is, each path one key per level of nesting, the first present wins (an
    # unquoted a.b: the keys a then b, or else the one key "a.b", as OTLP stores attributes); none: the message
    paths: tuple[tuple[str, ...], ...] = ()
    prefix: bool = False  # the value is the start of what matches (a trailing *); an empty one: any value


@dataclass(frozen=True)
class AnyOf:
    """Matches when every condition of at least one alternative matches (`a b OR c`: (a, b) and (c,));
    negated, when none does."""

    alternatives: tuple[tuple[Condition, ...], ...]
    negated: bool = False


Condition = Term | AnyOf


def parse_search(q: str) -> list[Condition]:
    """The conditions of a search, all of which must match; InvalidSearch says what cannot be read, and
    where (characters counted from 1)."""
    tokens = _Tokens(q)
    conditions = _any_of(tokens, depth=0)
    if tokens.peek() is not None:  # only a ) stops the outermost level early
        _, at = tokens.take()
        raise InvalidSearch(f"the ) at character {at} closes no group; remove it or add a ( before it")
    terms = sum(1 for _ in _terms(conditions))
    if terms > MAX_TERMS:
        raise InvalidSearch(f"at most {MAX_TERMS} search terms, got {terms}")
    return conditions


_NUMBER = re.compile(r"-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")
_WHOLE = re.compile(r"-?\d+")


def number_of(term: Term) -> float | None:
    """The number an attribute term's value is (`took:2`, `ratio:1e+21`), which also matches the attribute written
    otherwise (2.0, 1e21: a shipper's float, and the text the JSON reader makes of it), as a rule's number does;
    None for other values and for prefixes."""
    if not term.paths or term.prefix or not _NUMBER.fullmatch(term.value):
        return None
    if _WHOLE.fullmatch(term.value) and not same_as_double(int(term.value)):
        return None  # (order_id:12345678901234567891 is its text alone)
    number = float(term.value)
    return number if math.isfinite(number) else None


def condition_sql(condition: Condition, term_sql: Callable[[Term], str]) -> str:
    """A condition as a SQL boolean, each term as `term_sql` writes it (unnegated), in the order of the
    search. A term on a missing attribute is NULL, never true; a negation counts it as not matching."""
    if isinstance(condition, Term):
        sql = term_sql(condition)
    else:
        sql = " OR ".join(
            " AND ".join(condition_sql(c, term_sql) for c in alternative) for alternative in condition.alternatives
        )
        sql = f"({sql})"
    return f"NOT coalesce({sql}, false)" if condition.negated else sql


def attribute_keys(q: str) -> list[str]:
    """The attribute keys a search names (`user` of user:alice), each once, in order; none for a search that
    cannot be read. A search that found nothing names them: text holding a colon (`error: timeout`,
    `10:42:01`) reads as a key and its value unless quoted."""
    try:
        terms = _terms(parse_search(q))
    except InvalidSearch:
        return []
    return list(dict.fromkeys(".".join(term.paths[-1]) for term in terms if term.paths))


def _terms(conditions: Sequence[Condition]) -> Iterator[Term]:
    for condition in conditions:
        if isinstance(condition, Term):
            yield condition
        else:
            for alternative in condition.alternatives:
                yield from _terms(alternative)


class _Tokens:
    """The tokens of a search, read one ahead, each with the character it starts at (from 1): "(", "-(",
    ")", "OR", "AND", "NOT" or a Term."""

    def __init__(self, q: str) -> None:
        self.q = q
        self.position = 0
        self._next = self._read()

    def peek(self) -> str | Term | None:
        return None if self._next is None else self._next[0]

    def take(self) -> tuple[str | Term, int]:
        taken, self._next = self._next, self._read()
        assert taken is not None
        return taken

    def _read(self) -> tuple[str | Term, int] | None:
        self.position = _SPACE.match(self.q, self.position).end()
        if self.position == len(self.q):
            return None
        at = self.position + 1
        match = _TOKEN.match(self.q, self.position)
        assert match is not None  # every character but a space starts a token
        self.position = match.end()
        if match.group("paren"):
            return match.group("paren"), at
        negated, field, quoted, bare = match.group("negated", "field", "quoted", "bare")
        if field is not None and bare is not None and bare.startswith("//") and _URL_SCHEME.fullmatch(field):
            field, bare = None, f"{field}:{bare}"  # a URL pasted from a log line is text, not the key https
        if bare in _OPERATORS and not negated and field is None:
            return bare, at
        if bare == "-" and not negated and field is None:  # (-- leaves out a dash)
            raise InvalidSearch(
                f"the - at character {at} leaves out nothing: write what to leave out right after it, as in"
                ' -healthcheck, or quote a dash to search for it: "-"'
            )
        value = quoted if quoted is not None else bare
        if bare is not None and bare.count('"'):
            raise InvalidSearch(
                f'unbalanced " in {match.group(0)!r} at character {at}: a phrase is words between two quotes,'
                ' as in "connection refused"'
            )
        if not value:
            raise InvalidSearch(
                f"the empty phrase {match.group(0)!r} at character {at} matches nothing; put a word in it, or remove it"
            )
        if field is None and bare is not None and bare.endswith(":") and _is_key(bare[:-1]):
            raise InvalidSearch(
                f'{bare} needs a value, e.g. {bare}api or {bare}"two words" (alternatives: {bare}a OR {bare}b);'
                f' to search for text holding a colon, quote it: "{bare} ..."'
            )
        prefix = bare is not None and "*" in bare
        if prefix:
            value = _wildcard_prefix(bare, match.group(0), at)
        return _term(value, field, bool(negated), prefix), at


def _any_of(tokens: _Tokens, depth: int) -> list[Condition]:
    """Alternatives separated by OR, up to a ) or the end: their conditions, or one AnyOf of them."""
    alternatives = [_all_of(tokens, depth)]
    while tokens.peek() == "OR":
        _, at = tokens.take()
        if not alternatives[-1]:
            raise InvalidSearch(f"OR at character {at} needs a term before it, as in a OR b")
        alternatives.append(_all_of(tokens, depth))
        if not alternatives[-1]:
            raise InvalidSearch(f"OR at character {at} needs a term after it, as in a OR b")
    if len(alternatives) == 1:
        return alternatives[0]
    flat: list[tuple[Condition, ...]] = []
    for alternative in alternatives:  # a OR (b OR c) is a OR b OR c
        only = alternative[0] if len(alternative) == 1 else None
        if isinstance(only, AnyOf) and not only.negated:
            flat.extend(only.alternatives)
        else:
            flat.append(tuple(alternative))
    return [AnyOf(tuple(flat))]


def _all_of(tokens: _Tokens, depth: int) -> list[Condition]:
    """Conditions next to each other (or joined by AND) up to an OR, a ) or the end; none if that comes first."""
    conditions: list[Condition] = []
    while tokens.peek() not in (None, "OR", ")"):
        if tokens.peek() == "AND":
            _, at = tokens.take()
            if not conditions or tokens.peek() in (None, "OR", "AND", ")"):
                raise InvalidSearch(f"AND at character {at} needs a term on each side, as in a AND b")
            continue
        conditions.extend(_one(tokens, depth))
    return conditions


def _one(tokens: _Tokens, depth: int) -> list[Condition]:
    """A term, a group (its conditions), or either after NOT."""
    token, at = tokens.take()
    if isinstance(token, Term):
        return [token]
    if token == "NOT":
        if tokens.peek() in (None, "OR", "AND", ")"):
            raise InvalidSearch(f"NOT at character {at} needs a term or a group after it, as in NOT a")
        return _negated(_one(tokens, depth))
    assert token in ("(", "-(")  # OR, AND and ) are taken where they may stand
    if depth == MAX_GROUP_DEPTH:
        raise InvalidSearch(f"the ( at character {at} nests too deep: at most {MAX_GROUP_DEPTH} groups in groups")
    if tokens.peek() == ")":
        raise InvalidSearch(
            f"the group at character {at} is empty; put a term in it, remove it,"
            ' or quote a word with parentheses in it, as in "getUser()"'
        )
    group = _any_of(tokens, depth + 1)
    if tokens.peek() != ")":
        raise InvalidSearch(f"the ( at character {at} is never closed; add a ) after its group")
    tokens.take()
    return _negated(group) if token == "-(" else group


def _negated(conditions: list[Condition]) -> list[Condition]:
    """What matches where `conditions` (all of them) do not."""
    if len(conditions) == 1:
        return [replace(conditions[0], negated=not conditions[0].negated)]
    return [AnyOf((tuple(conditions),), negated=True)]


def _wildcard_prefix(value: str, token: str, at: int) -> str:
    """What comes before the trailing * of a term's unquoted value (nothing, for `*`); InvalidSearch
    for a * anywhere else."""
    if value.endswith("*") and "*" not in value[:-1]:
        return value[:-1]
    raise InvalidSearch(
        f"{token} at character {at}: a * is a wildcard only at the end of a word or value (mess*,"
        f' service:web*) or alone (* for every record, field:* for "the field is present");'
        f' quote it to search for a * itself: {token[: len(token) - len(value)]}"{value}"'
    )


def _term(value: str, field: str | None, negated: bool, prefix: bool = False) -> Term:
    if field is None or field == "message":
        return Term(value, None, negated, prefix=prefix)
    if field in ("level", "severity"):
        if prefix:  # severity:warn* or severity:* (every record has one)
            return Term(value.lower(), "severity", negated, prefix=True)
        severity = SEVERITY_ALIASES.get(value.lower())
        if severity is None:
            raise InvalidSearch(f"severity:{value}: not a severity; use debug, info, warning, error or critical")
        return Term(severity.label, "severity", negated)
    if field in _LOWERCASE_FIELDS:
        return Term(value.lower(), field, negated, prefix=prefix)
    if field in RECORD_FIELDS:
        return Term(value, field, negated, prefix=prefix)
    return Term(value, None, negated, _attribute_paths(field), prefix)


def _attribute_paths(field: str) -> tuple[tuple[str, ...], ...]:
    """Where the attribute a search names may be: its key path (key_path), or else, when written with
    dots and no quotes, the one key with the dots in it (OTLP stores `host.name` so), as Sigma rules read it."""
    path = key_path(field)
    return (path, (field,)) if len(path) > 1 and '"' not in field else (path,)


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
        if segment.group(2) is not None and "*" in key:
            raise InvalidSearch(f'{field}: a key takes no wildcard; quote a key that holds a *: "{key}"')
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
