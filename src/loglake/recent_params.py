"""The parameters of "recent logs" as the HTTP query and the CLI give them (text), read into a RecentQuery with
every problem named; and the page cursor they carry."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping

from loglake.digits import is_ascii_digits
from loglake.ids import is_stored_split, split_id
from loglake.model import (
    DEFAULT_PAGE_LIMIT,
    MAX_PAGE_LIMIT,
    NAME_RULE,
    SEVERITY_ALIASES,
    SEVERITY_NAMES,
    Problem,
    is_valid_name,
)
from loglake.spelling import unknown_parameter
from loglake.store.base import RecentQuery
from loglake.times import DAY_MS, TimeFormatError, parse_time

DEFAULT_WINDOW_MS = DAY_MS
# Why a follow (`follow=true`, `recent --follow`) takes no `until`, said by the API and the CLI.
UNTIL_WITH_FOLLOW = "a follow has no end: it starts at since (its first page holds the newest records since then)"
RECENT_PARAMS = ("service", "log_type", "severity", "min_severity", "since", "until", "q", "limit", "cursor")


class InvalidQuery(ValueError):
    """Query parameters that cannot be used; problems name each parameter."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{p.field}: {p.reason}" for p in problems))


def given(params: Mapping[str, str], name: str) -> str | None:
    """The value of the query parameter `name`; None when it is left out or empty: an empty one (`?service=`, what a
    form sends for a field left blank) is as if left out, on every route that takes it (one rule for them all)."""
    return params.get(name) or None


def parse_recent_params(
    params: Mapping[str, str], now_ms: int, also_known: tuple[str, ...] = (), not_here: tuple[str, ...] = ()
) -> RecentQuery:
    """A RecentQuery from string parameters, or InvalidQuery naming each problem; `also_known` are the
    parameters the caller took out before, which an unknown one's message lists too, `not_here` those of
    RECENT_PARAMS the caller refuses (a live tail's since), which it does not."""
    problems: list[Problem] = []

    def bad(name: str, reason: str) -> None:
        problems.append(Problem(-1, name, reason))

    known = tuple(name for name in RECENT_PARAMS if name not in not_here) + also_known
    for name in params:
        if name not in RECENT_PARAMS:
            bad(name, unknown_parameter(name, known))

    severities: frozenset[int] | None = None
    if given(params, "severity"):
        try:
            severities = frozenset(int(SEVERITY_ALIASES[s.strip().lower()]) for s in params["severity"].split(","))
        except KeyError:
            bad("severity", f"must be one or more (comma-separated) of {', '.join(SEVERITY_NAMES)}")
    if given(params, "min_severity"):
        floor = SEVERITY_ALIASES.get(params["min_severity"].strip().lower())
        if floor is None:
            bad("min_severity", f"must be one of {', '.join(SEVERITY_NAMES)}")
        else:
            at_least = frozenset(range(int(floor), len(SEVERITY_NAMES)))
            severities = at_least if severities is None else severities & at_least

    since = _parse_time(given(params, "since"), now_ms, "since", bad)
    until = _parse_time(given(params, "until"), now_ms, "until", bad)
    if since is None:
        since = now_ms - DEFAULT_WINDOW_MS
    if until is not None and until <= since:
        bad("until", "must be after since")

    limit = DEFAULT_PAGE_LIMIT
    if given(params, "limit"):
        limit = int(params["limit"]) if is_ascii_digits(params["limit"]) else 0
        if not 1 <= limit <= MAX_PAGE_LIMIT:
            bad("limit", f"must be an integer from 1 to {MAX_PAGE_LIMIT}")

    before_id = None
    if given(params, "cursor"):
        try:
            before_id = decode_cursor(params["cursor"])
        except ValueError:
            bad("cursor", "is not a cursor this server issued; pass next_cursor back unchanged")

    for name in ("service", "log_type"):
        value = given(params, name)
        if value and not is_valid_name(value):  # no record has such a name: say so, not "none found"
            bad(name, NAME_RULE)

    if problems:
        raise InvalidQuery(problems)
    return RecentQuery(
        since_ms=since,
        until_ms=until,
        service=given(params, "service"),
        log_type=given(params, "log_type"),
        severities=severities,
        contains=given(params, "q"),
        before_id=before_id,
        limit=limit,
    )


def _parse_time(text: str | None, now_ms: int, name: str, bad: Callable[[str, str], None]) -> int | None:
    if not text:
        return None
    try:
        return parse_time(text, now_ms)
    except TimeFormatError as e:
        bad(name, str(e))
        return None


def encode_cursor(log_id: bytes) -> str:
    return base64.urlsafe_b64encode(log_id).rstrip(b"=").decode()


def decode_cursor(cursor: str) -> bytes:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except (binascii.Error, ValueError):
        raise ValueError("bad cursor") from None
    if len(raw) != 16 or not is_stored_split(*split_id(raw)):  # (no stored record's id: a forged one)
        raise ValueError("bad cursor")
    return raw
