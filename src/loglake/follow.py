"""Following recent logs in the order records arrive: `GET /logs/recent` with `follow` or `after`, and
`loglake recent --follow` over it.

A follow starts with an ordinary page of recent records (`follow=true`) that also carries a cursor
into the arrivals (arrivals.py), taken before that page is read: a record committed meanwhile may be
on the page and again after the cursor, but none falls between. Each later request (`after=<cursor>`)
gets what arrived since, in arrival order, whatever its timestamp, and a new cursor. When the log
lost records before the follower read them, or the cursor is from before the server restarted, the
answer says so (`gap`); after a restart it gives the records by their time, as a follow by time would.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from loglake.arrivals import ArrivalCursor, Arrivals
from loglake.model import Problem, StoredRecord
from loglake.recent_params import UNTIL_WITH_FOLLOW, InvalidQuery, given, parse_recent_params
from loglake.service import FOLLOW_PARAMS, LogService
from loglake.store.base import RecentQuery
from loglake.times import format_datetime

# The time range and paging of recent records; a follow page holds what arrived, whatever its time.
NOT_WITH_AFTER = ("since", "until", "cursor")
# After a restart, records are given by time from this long before the cursor was issued: records
# stamped a little before they reach the server (a shipper batching for a second) are not missed.
RESTART_LOOKBACK_MS = 60_000
MIB = 1024 * 1024
NOT_A_CURSOR = "is not a cursor this server issued; pass follow_cursor back unchanged"


@dataclass(frozen=True, slots=True)
class FollowQuery:
    query: RecentQuery
    after: ArrivalCursor | None  # None: the first page


@dataclass(frozen=True, slots=True)
class FollowPage:
    records: list[StoredRecord]  # the first page: newest first; then in arrival order
    next_cursor: str | None  # the first page's next (older) page
    follow_cursor: str  # pass back as `after`
    more: bool  # more has arrived than this page holds: ask again at once
    gap: dict[str, Any] | None  # records this follow cannot show, and why


def follow_query(params: Mapping[str, str], now_ms: int) -> FollowQuery | None:
    """The follow that the parameters ask for, None when they ask for none; InvalidQuery naming the problems."""
    cursor = given(params, "after")
    wanted = (given(params, "follow") or "").lower()
    if cursor is None and wanted in ("false", "0", ""):  # (recent records alone)
        return None
    problems = []
    if wanted in ("false", "0"):  # (with after, which only a follow takes)
        problems.append(Problem(-1, "follow", "is false, but after (a follow's cursor) is given: leave out one"))
    elif wanted not in ("true", "1", ""):  # (left out with after: a follow)
        problems.append(Problem(-1, "follow", "must be true or false (false or leaving it out: recent records alone)"))
    if cursor is None and given(params, "until"):
        problems.append(Problem(-1, "until", UNTIL_WITH_FOLLOW))
    after = None
    if cursor is not None:
        try:
            after = ArrivalCursor.decode(cursor)
        except ValueError:
            problems.append(Problem(-1, "after", NOT_A_CURSOR))
        for name in NOT_WITH_AFTER:
            if given(params, name):
                reason = "does not apply with after, which gives what arrived since the cursor, whatever its time"
                problems.append(Problem(-1, name, reason))
    rest = {k: v for k, v in params.items() if k not in FOLLOW_PARAMS}
    try:
        query = parse_recent_params(rest, now_ms)
    except InvalidQuery as e:
        problems.extend(e.problems)
    if problems:
        raise InvalidQuery(problems)
    return FollowQuery(query, after)


def follow(service: LogService, arrivals: Arrivals, wanted: FollowQuery) -> FollowPage:
    """The first page of a follow with its cursor, or what arrived after the cursor."""
    now_ms = service.now_ms()
    after = wanted.after
    if after is None:
        # (before the read: a record committed meanwhile is not missed)
        cursor = arrivals.cursor(now_ms, wanted.query.since_ms)
        page = service.recent(wanted.query)
        return FollowPage(page.records, page.next_cursor, cursor.encode(), False, None)
    if after.epoch != arrivals.epoch:
        return _since_restart(service, arrivals, wanted.query, after, now_ms)
    try:
        arrived = arrivals.read(after.seq, wanted.query, wanted.query.limit)
    except ValueError:
        raise InvalidQuery([Problem(-1, "after", NOT_A_CURSOR)]) from None
    gap = None
    if arrived.missed:
        # They reached the server after the cursor was issued, so (clocks and shippers' batching allowing) they
        # are stamped from about then on.
        since = format_datetime(_looked_back(after, after.issued_ms))
        gap = {
            "reason": "overflow",
            "missed": arrived.missed,
            "since": since,
            "until": None,
            "message": f"{arrived.missed} record(s) left the server's list of arrivals before this follow read "
            f"them (it keeps the latest {arrivals.max_records:,} records, {arrivals.max_bytes // MIB} MiB at most, "
            f"and none once nobody has followed for {arrivals.idle_seconds:g} s); those among them this follow "
            f"would show are stored: read them by time with GET /logs/recent?since={since} and its filters",
        }
    cursor = ArrivalCursor(arrivals.epoch, arrived.seq, now_ms, after.since_ms)
    return FollowPage(arrived.records, None, cursor.encode(), arrived.more, gap)


def _since_restart(
    service: LogService, arrivals: Arrivals, query: RecentQuery, after: ArrivalCursor, now_ms: int
) -> FollowPage:
    """The answer to a cursor of an earlier process: the records by time from about when it was
    issued (its arrivals are gone), oldest first, and a cursor into this process's arrivals."""
    cursor = arrivals.cursor(now_ms, after.since_ms)  # before the read, as for a first page
    since = _looked_back(after, min(after.issued_ms, now_ms))
    page = service.recent(replace(query, since_ms=since, until_ms=None, before_id=None))
    newest = f"the newest {len(page.records)} " if page.next_cursor else ""
    # Not shown: what is stamped before the oldest record shown (its millisecond included: a page cut there
    # may hold only some of its records)
    until = format_datetime(page.records[-1].timestamp + 1 if page.next_cursor else since)
    # ...and stamped from the follow's since on (those before it it never shows): without it, a read by time
    # looks back over recent's default window only, where a shipper's late batch may be older
    followed_since = format_datetime(after.since_ms)
    gap = {
        "reason": "restart",
        "missed": None,
        "since": followed_since,
        "until": until,
        "message": f"the server restarted since this follow's last read: shown are {newest}records timestamped "
        f"from {format_datetime(since)} on, by time; records that reached it stamped earlier are not shown "
        f"(read them by time with GET /logs/recent?since={followed_since}&until={until} and its filters)",
    }
    return FollowPage(list(reversed(page.records)), None, cursor.encode(), False, gap)


def _looked_back(after: ArrivalCursor, last_read_ms: int) -> int:
    """The earliest time of the records a follow may have missed since its last read: RESTART_LOOKBACK_MS before
    it, but never before the follow's own since (a follow started with `since=now` asked for nothing earlier)."""
    return max(0, after.since_ms, last_read_ms - RESTART_LOOKBACK_MS)
