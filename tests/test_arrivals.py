"""The arrivals log (arrivals.py): records in the order they arrived, bounded, kept while followed."""

from __future__ import annotations

import asyncio
import threading
import uuid
from pathlib import Path

import pyarrow as pa
import pytest

from loglake.arrivals import CONVERT_RECORDS, ArrivalCursor, Arrivals
from loglake.ids import uuid7_bytes
from loglake.lake.tables import APP_LOGS_TABLE
from loglake.model import NewRecord, Severity
from loglake.service import LogService
from loglake.store.base import RecentQuery, StoreUnavailable
from loglake.store.sqlite import SQLiteHotStore
from tests.conftest import Clock

T0 = 1_796_000_000_000
EVERYTHING = RecentQuery(since_ms=0)


def record(message: str, ts: int = T0, **fields: object) -> NewRecord:
    values = {"service": "api", "log_type": "application", "severity": Severity.INFO, "attributes": None} | fields
    client_id = values.pop("client_id", None)
    return NewRecord(
        uuid7_bytes(ts),
        ts,
        values["service"],
        values["log_type"],
        values["severity"],
        message,
        values["attributes"],
        client_id,
    )


def arrive(arrivals: Arrivals, *records: NewRecord) -> None:
    """One committed batch whose records were all new to the store."""
    arrivals.append_records(list(records), [r.log_id for r in records])


def messages(arrivals: Arrivals, after: int, query: RecentQuery = EVERYTHING, limit: int = 1000) -> list[str]:
    return [r.message for r in arrivals.read(after, query, limit).records]


def test_records_are_read_in_arrival_order_whatever_their_time() -> None:
    arrivals = Arrivals()
    start = arrivals.cursor(T0)
    arrive(arrivals, record("newest first", T0 + 5000))
    arrive(arrivals, record("stamped a second earlier", T0 + 4000), record("and a day earlier", T0 - 86_400_000))
    page = arrivals.read(start.seq, EVERYTHING, 100)
    assert [r.message for r in page.records] == ["newest first", "stamped a second earlier", "and a day earlier"]
    assert (page.missed, page.more) == (0, False)
    assert page.records[2].timestamp == T0 - 86_400_000
    assert arrivals.read(page.seq, EVERYTHING, 100).records == []


def test_a_cursor_starts_after_what_has_arrived() -> None:
    arrivals = Arrivals()
    arrivals.cursor(T0)
    arrive(arrivals, record("before"))
    cursor = arrivals.cursor(T0 + 1)
    assert (cursor.epoch, cursor.issued_ms) == (arrivals.epoch, T0 + 1)
    arrive(arrivals, record("after"))
    assert messages(arrivals, cursor.seq) == ["after"]


def test_records_read_back_whole() -> None:
    arrivals = Arrivals()
    start = arrivals.cursor(T0)
    client_id = uuid.uuid4().bytes
    sent = record("m", T0 + 7, service="svc", log_type="audit", severity=Severity.ERROR,
                  attributes=b'{"user":"al\\u00efce","n":[1,2]}', client_id=client_id)  # fmt: skip
    arrive(arrivals, sent)
    assert arrivals.read(start.seq, EVERYTHING, 10).records == [sent]


def test_the_filters_apply_but_not_the_time_range() -> None:
    arrivals = Arrivals()
    start = arrivals.cursor(T0)
    arrive(
        arrivals,
        record("api info"),
        record("web error", service="web", severity=Severity.ERROR),
        record("api audit warning", log_type="audit", severity=Severity.WARNING),
        record("api Timeout, a day old", T0 - 86_400_000, severity=Severity.CRITICAL),
    )
    assert messages(arrivals, start.seq, RecentQuery(since_ms=T0 + 1, until_ms=T0 + 2)) == [
        "api info",
        "web error",
        "api audit warning",
        "api Timeout, a day old",
    ]
    assert messages(arrivals, start.seq, RecentQuery(since_ms=0, service="web")) == ["web error"]
    assert messages(arrivals, start.seq, RecentQuery(since_ms=0, log_type="audit")) == ["api audit warning"]
    at_least_error = RecentQuery(since_ms=0, severities=frozenset({Severity.ERROR, Severity.CRITICAL}))
    assert messages(arrivals, start.seq, at_least_error) == ["web error", "api Timeout, a day old"]
    assert messages(arrivals, start.seq, RecentQuery(since_ms=0, contains="timeout")) == ["api Timeout, a day old"]
    assert messages(arrivals, start.seq, RecentQuery(since_ms=0, service="api", severities=frozenset({1}))) == [
        "api info"
    ]


def test_a_full_page_says_more_and_the_next_read_goes_on_from_it() -> None:
    arrivals = Arrivals()
    start = arrivals.cursor(T0)
    arrive(arrivals, *(record(f"r{i}", service="web" if i % 2 else "api") for i in range(7)))
    wanted = RecentQuery(since_ms=0, service="api")  # r0 r2 r4 r6
    first = arrivals.read(start.seq, wanted, 2)
    assert ([r.message for r in first.records], first.more) == (["r0", "r2"], True)
    second = arrivals.read(first.seq, wanted, 2)
    assert ([r.message for r in second.records], second.more) == (["r4", "r6"], False)
    assert arrivals.read(second.seq, wanted, 2).records == []


def test_a_page_ends_at_its_limit_within_more_records_than_are_converted_at_once() -> None:
    arrivals = Arrivals()
    start = arrivals.cursor(T0)
    count = 2 * CONVERT_RECORDS + 10
    arrive(arrivals, *(record(f"r{i}") for i in range(count // 2)))
    for i in range(count // 2, count):
        arrive(arrivals, record(f"r{i}"))
    seen, after, more = [], start.seq, True
    while more:
        page = arrivals.read(after, EVERYTHING, 1000)
        seen.extend(r.message for r in page.records)
        after, more = page.seq, page.more
    assert seen == [f"r{i}" for i in range(count)]


def test_records_stored_before_are_not_announced_again() -> None:
    arrivals = Arrivals()
    start = arrivals.cursor(T0)
    client_id = uuid.uuid4().bytes
    first = record("sent", client_id=client_id)
    arrive(arrivals, first)
    retry, fresh = record("sent", client_id=client_id), record("new")
    arrivals.append_records([retry, fresh], [first.log_id, fresh.log_id])  # the store answered the earlier id
    assert messages(arrivals, start.seq) == ["sent", "new"]


def test_past_its_record_bound_the_oldest_batches_go_and_a_reader_is_told_how_many() -> None:
    arrivals = Arrivals(max_records=3)
    start = arrivals.cursor(T0)
    for i in range(5):
        arrive(arrivals, record(f"r{i}"))
    page = arrivals.read(start.seq, EVERYTHING, 100)
    assert ([r.message for r in page.records], page.missed) == (["r2", "r3", "r4"], 2)
    assert arrivals.read(page.seq, EVERYTHING, 100).missed == 0


def test_past_its_byte_bound_the_oldest_batches_go() -> None:
    arrivals = Arrivals(max_bytes=10_000)
    start = arrivals.cursor(T0)
    for i in range(5):
        arrive(arrivals, record(f"r{i} " + "x" * 3000))
    page = arrivals.read(start.seq, EVERYTHING, 100)
    assert [r.message[:2] for r in page.records] == ["r3", "r4"] and page.missed == 3


def test_the_newest_batch_stays_however_large() -> None:
    arrivals = Arrivals(max_records=2)
    start = arrivals.cursor(T0)
    arrive(arrivals, record("old"))
    arrive(arrivals, *(record(f"r{i}") for i in range(3)))
    page = arrivals.read(start.seq, EVERYTHING, 100)
    assert ([r.message for r in page.records], page.missed) == (["r0", "r1", "r2"], 1)


def test_nobody_following_keeps_nothing_and_a_returning_reader_is_told() -> None:
    clock = Clock(1000.0)
    arrivals = Arrivals(idle_seconds=60, clock=clock)
    before_anyone = arrivals.cursor(T0)
    clock.now += 61  # that follower went away
    arrive(arrivals, record("unfollowed"))
    page = arrivals.read(before_anyone.seq, EVERYTHING, 100)
    assert (page.records, page.missed) == ([], 1)
    arrive(arrivals, record("followed again"))
    clock.now += 59
    arrive(arrivals, record("still followed"))
    assert messages(arrivals, page.seq) == ["followed again", "still followed"]


def test_kept_batches_go_once_nobody_follows() -> None:
    clock = Clock(1000.0)
    arrivals = Arrivals(idle_seconds=60, clock=clock)
    start = arrivals.cursor(T0)
    arrive(arrivals, record("kept"))
    clock.now += 61
    arrive(arrivals, record("not kept"))
    page = arrivals.read(start.seq, EVERYTHING, 100)
    assert (page.records, page.missed) == ([], 2)


TRACE, SPAN = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"


def test_tables_from_the_bulk_path_read_like_records() -> None:
    arrivals = Arrivals()
    start = arrivals.cursor(T0)
    arrive(arrivals, record("a record"))
    ids = [uuid7_bytes(T0 - 1000), uuid7_bytes(T0 - 2000)]
    client_id = uuid.uuid4()
    table = pa.table(
        {
            "log_id": [str(uuid.UUID(bytes=i)) for i in ids],
            "timestamp": pa.array([T0 - 1000, T0 - 2000], pa.timestamp("ms")),
            "service": ["bulk", "bulk"],
            "log_type": ["application", "access"],
            "severity": ["warning", "debug"],
            "message": ["row one", "row two"],
            "attributes": ['{"k": 1}', None],
            "client_id": [None, str(client_id)],
            "trace_id": [TRACE, None],
            "span_id": [SPAN, None],
        },
        schema=APP_LOGS_TABLE.schema,
    )
    arrivals.append(table)
    arrive(arrivals, record("another record"))
    page = arrivals.read(start.seq, EVERYTHING, 100)
    assert [r.message for r in page.records] == ["a record", "row one", "row two", "another record"]
    one, two = page.records[1:3]
    assert one == NewRecord(
        ids[0], T0 - 1000, "bulk", "application", Severity.WARNING, "row one", b'{"k": 1}', None, TRACE, SPAN
    )
    assert two == NewRecord(ids[1], T0 - 2000, "bulk", "access", Severity.DEBUG, "row two", None, client_id.bytes)
    assert messages(arrivals, start.seq + 2, RecentQuery(since_ms=0, service="bulk")) == ["row two"]
    assert messages(arrivals, start.seq, RecentQuery(since_ms=0, severities=frozenset({Severity.WARNING}))) == [
        "row one"
    ]


def test_a_number_not_yet_given_is_refused() -> None:
    arrivals = Arrivals()
    cursor = arrivals.cursor(T0)
    arrive(arrivals, record("one"))
    with pytest.raises(ValueError):
        arrivals.read(cursor.seq + 2, EVERYTHING, 10)


def test_each_log_has_its_own_epoch() -> None:
    assert Arrivals().epoch != Arrivals().epoch


def test_cursors_read_back_from_their_text_and_nothing_else_does() -> None:
    cursor = ArrivalCursor(b"\x00\xffepoch!", 2**40 + 3, T0)
    text = cursor.encode()
    assert text.isascii() and "=" not in text and "/" not in text and "+" not in text
    assert ArrivalCursor.decode(text) == cursor
    for bad in ("", "abc", text[:-1], text + "AA", "!" * len(text)):
        with pytest.raises(ValueError):
            ArrivalCursor.decode(bad)


async def test_a_waiter_wakes_when_a_record_arrives_on_another_thread() -> None:
    arrivals = Arrivals()
    start = arrivals.cursor(T0)
    waiting = asyncio.create_task(arrivals.wait(start.seq))
    for _ in range(5):
        await asyncio.sleep(0)
    assert not waiting.done()
    committer = threading.Thread(target=arrive, args=(arrivals, record("arrived")))
    committer.start()
    await asyncio.wait_for(waiting, 30)
    committer.join()
    assert messages(arrivals, start.seq) == ["arrived"]
    await asyncio.wait_for(arrivals.wait(start.seq), 30)  # something has arrived: no waiting


async def test_a_waiting_follower_keeps_batches_however_long_it_waits() -> None:
    clock = Clock(1000.0)
    arrivals = Arrivals(idle_seconds=60, clock=clock)
    start = arrivals.cursor(T0)
    waiting = asyncio.create_task(arrivals.wait(start.seq))
    await asyncio.sleep(0)
    clock.now += 3600
    arrive(arrivals, record("after an hour"))
    await asyncio.wait_for(waiting, 30)
    page = arrivals.read(start.seq, EVERYTHING, 10)
    assert ([r.message for r in page.records], page.missed) == (["after an hour"], 0)


async def test_a_waiter_that_went_away_keeps_nothing() -> None:
    clock = Clock(1000.0)
    arrivals = Arrivals(idle_seconds=60, clock=clock)
    start = arrivals.cursor(T0)
    waiting = asyncio.create_task(arrivals.wait(start.seq))
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    clock.now += 61
    arrive(arrivals, record("nobody waits for this"))
    page = arrivals.read(start.seq, EVERYTHING, 10)
    assert (page.records, page.missed) == ([], 1)


def test_what_the_service_commits_arrives_and_what_fails_does_not(tmp_path: Path) -> None:
    store = SQLiteHotStore(tmp_path / "hot.db")
    arrivals = Arrivals()
    service = LogService(store, arrivals=arrivals)
    start = arrivals.cursor(T0)
    try:
        service.submit([record("committed")]).result()
    finally:
        store.close()
    with pytest.raises(StoreUnavailable):
        service.submit([record("refused: the store is closed")]).result()
    assert messages(arrivals, start.seq) == ["committed"]
