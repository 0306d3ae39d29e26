"""Live tails (tail.py): one pump matches each arrival against every tail's search, each tail's queue is
bounded and counts what it dropped, and a key holds a limited number of tails."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from loglake.arrivals import Arrivals
from loglake.lake.search_terms import parse_search
from loglake.model import Severity
from loglake.store.base import RecentQuery
from loglake.tail import TailHub, TooManyTails
from tests.test_arrivals import T0, arrive, record

EVERYTHING = RecentQuery(since_ms=T0)  # a tail ignores the time range: late records are the point


@pytest.fixture
async def hub() -> AsyncIterator[TailHub]:
    tails = TailHub(Arrivals(max_records=50), max_per_key=2, now_ms=lambda: T0)
    yield tails
    tails.shutdown()


async def next_records(tail, timeout: float = 10.0) -> tuple[list[str], int, str | None]:
    waiting = await tail.next(timeout)
    assert waiting is not None, "nothing arrived"
    records, dropped, error = waiting
    return [r["message"] for r in records], dropped, error


async def test_each_tail_gets_the_arrivals_its_search_matches(hub: TailHub) -> None:
    timeouts = hub.open("k1", EVERYTHING, parse_search('timeout -service:web "db pool"'))
    errors = hub.open("k2", RecentQuery(since_ms=T0, severities=frozenset({Severity.ERROR})), [])
    arrive(
        hub.arrivals,
        record("timeout in db pool", service="api"),
        record("timeout in db pool", service="web"),
        record("TIMEOUT in DB Pool, a day late", ts=T0 - 86_400_000),
        record("failed", severity=Severity.ERROR, attributes=b'{"user": "alice"}'),
    )
    assert await next_records(timeouts) == (["timeout in db pool", "TIMEOUT in DB Pool, a day late"], 0, None)
    assert await next_records(errors) == (["failed"], 0, None)


async def test_a_tail_matches_a_grouped_search(hub: TailHub) -> None:
    tail = hub.open("k", EVERYTHING, parse_search("(timeout OR refused) -(service:web OR user:alice)"))
    arrive(
        hub.arrivals,
        record("timeout", service="api"),
        record("refused", service="web"),
        record("connection refused", attributes=b'{"user": "bob"}'),
        record("refused", attributes=b'{"user": "alice"}'),
        record("ok", service="api"),
    )
    assert await next_records(tail) == (["timeout", "connection refused"], 0, None)


async def test_a_tail_reads_dotted_keys_flat_or_nested_and_wildcards(hub: TailHub) -> None:
    """As search does: host.name is OTLP's flat key or a nested object's path; a trailing * a value's start."""
    tail = hub.open("k", EVERYTHING, parse_search("host.name:web* -host.name:web-9"))
    arrive(
        hub.arrivals,
        record("flat", attributes=b'{"host.name": "web-7"}'),
        record("nested", attributes=b'{"host": {"name": "WEB-8"}}'),
        record("left out", attributes=b'{"host.name": "web-9"}'),
        record("other host", attributes=b'{"host.name": "db-1"}'),
    )
    assert await next_records(tail) == (["flat", "nested"], 0, None)


async def test_a_tail_sees_only_what_arrives_after_it_opened(hub: TailHub) -> None:
    first = hub.open("k", EVERYTHING, [])
    arrive(hub.arrivals, record("one"))
    assert (await next_records(first))[0] == ["one"]
    second = hub.open("k", EVERYTHING, [])
    arrive(hub.arrivals, record("two"))
    assert (await next_records(first))[0] == ["two"]
    assert (await next_records(second))[0] == ["two"]


async def test_a_tail_not_read_keeps_at_most_its_limit_and_counts_the_rest(hub: TailHub) -> None:
    """The newest are kept: a burst showed its oldest and dropped what arrived last."""
    tail = hub.open("k", EVERYTHING, [], limit=3)
    for i in range(5):  # all before the pump's next turn: it delivers them together
        arrive(hub.arrivals, record(f"r{i}"))
    assert await next_records(tail) == (["r2", "r3", "r4"], 2, None)
    arrive(hub.arrivals, record("r5"))
    assert await next_records(tail) == (["r5"], 0, None)  # room again, and nothing more dropped


async def test_records_that_left_the_arrivals_unread_count_as_dropped(hub: TailHub) -> None:
    tail = hub.open("k", EVERYTHING, [])
    # The pump reads after the loop's next turn: 60 arrivals in one go overflow a log of 50.
    for i in range(60):
        arrive(hub.arrivals, record(f"r{i}"))
    shown, dropped = [], 0
    while len(shown) + dropped < 60:
        records, lost, _ = await next_records(tail)
        shown += records
        dropped += lost
    assert dropped == 10 and shown == [f"r{i}" for i in range(10, 60)]


async def test_a_key_holds_at_most_its_limit_of_tails(hub: TailHub) -> None:
    first = hub.open("k", EVERYTHING, [])
    hub.open("k", EVERYTHING, [])
    with pytest.raises(TooManyTails, match="'k' already has 2 live tails open"):
        hub.open("k", EVERYTHING, [])
    hub.open("other", EVERYTHING, [])
    hub.close(first)
    hub.open("k", EVERYTHING, [])


async def test_stopping_ends_every_tail_at_once(hub: TailHub) -> None:
    tails = [hub.open("a", EVERYTHING, []), hub.open("b", EVERYTHING, [])]
    hub.stop_all()
    for tail in tails:
        assert tail.stopped and await tail.next(10.0) == ([], 0, None)


async def test_a_quiet_tail_answers_none_after_its_timeout(hub: TailHub) -> None:
    tail = hub.open("k", EVERYTHING, [])
    assert await tail.next(0.01) is None
