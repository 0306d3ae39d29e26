"""The HotStore contract: every backend runs these same tests (see test_sqlite.py for how to plug one in)."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from loglake import ids
from loglake.model import NewRecord, Severity
from loglake.store.base import HotStore, RecentQuery

BASE_TS = 1_790_000_000_000


def record(
    ts: int = BASE_TS,
    message: str = "hello",
    service: str = "api",
    log_type: str = "application",
    severity: int = Severity.INFO,
    attributes: bytes | None = None,
    client_id: bytes | None = None,
    trace_id: str | None = None,
    span_id: str | None = None,
) -> NewRecord:
    log_id = ids.uuid7_bytes(ts)
    return NewRecord(log_id, ts, service, log_type, severity, message, attributes, client_id, trace_id, span_id)


class HotStoreContract:
    """Subclass with a `store` fixture yielding a fresh, empty backend."""

    @pytest.fixture
    def store(self) -> HotStore:
        raise NotImplementedError

    def test_put_then_get_returns_every_field(self, store: HotStore) -> None:
        new = record(attributes=b'{"k":[1,2]}', severity=Severity.ERROR, log_type="audit")
        assert store.put([new]) == [new.log_id]
        got = store.get(new.log_id)
        assert got is not None
        assert tuple(got) == tuple(new)

    def test_trace_and_span_ids_are_kept_with_the_record(self, store: HotStore) -> None:
        traced = record(message="traced", trace_id="4bf92f3577b34da6a3ce929d0e0e4736", span_id="00f067aa0ba902b7")
        plain = record(BASE_TS + 1, message="plain")
        retried = record(BASE_TS + 2, client_id=uuid.uuid4().bytes, trace_id="ab" * 16, span_id="cd" * 8)
        store.put([traced, plain])
        store.put([retried])  # a record with a client id takes another way in
        assert store.get(traced.log_id) == traced
        assert store.get(retried.log_id) == retried
        assert (store.get(plain.log_id).trace_id, store.get(plain.log_id).span_id) == (None, None)
        found = store.recent(RecentQuery(since_ms=0))
        assert [(r.trace_id, r.span_id) for r in found] == [
            ("ab" * 16, "cd" * 8),
            (None, None),
            (traced.trace_id, "00f067aa0ba902b7"),
        ]

    def test_nul_characters_survive(self, store: HotStore) -> None:
        plain = record(message="before\x00after", attributes=b'{"k":"\\u0000"}')
        with_id = record(BASE_TS + 1, message="\x00", client_id=uuid.uuid4().bytes)
        store.put([plain, record(BASE_TS + 2, "ordinary")])
        store.put([with_id])
        assert tuple(store.get(plain.log_id)) == tuple(plain)
        assert store.get(with_id.log_id).message == "\x00"

    def test_get_unknown_id_is_none(self, store: HotStore) -> None:
        store.put([record(BASE_TS, "a neighbour in the same millisecond")])
        assert store.get(ids.uuid7_bytes(BASE_TS)) is None

    def test_batch_lands_together(self, store: HotStore) -> None:
        batch = [record(BASE_TS + i, f"m{i}") for i in range(50)]
        assert store.put(batch) == [r.log_id for r in batch]
        found = store.recent(RecentQuery(since_ms=BASE_TS, limit=1000))
        assert [r.message for r in found] == [f"m{i}" for i in reversed(range(50))]

    def test_client_id_makes_retries_idempotent(self, store: HotStore) -> None:
        client_id = uuid.uuid4().bytes
        first = record(message="once", client_id=client_id)
        assert store.put([first]) == [first.log_id]
        retry = record(BASE_TS + 5, message="once", client_id=client_id)
        assert store.put([retry]) == [first.log_id]
        assert store.get(retry.log_id) is None
        assert store.get(client_id).log_id == first.log_id
        assert len(store.recent(RecentQuery(since_ms=BASE_TS - 1, limit=10))) == 1

    def test_repeated_client_id_within_one_batch_stores_one(self, store: HotStore) -> None:
        client_id = uuid.uuid4().bytes
        a, b = record(message="x", client_id=client_id), record(BASE_TS + 1, message="x", client_id=client_id)
        assert store.put([a, b]) == [a.log_id, a.log_id]
        assert len(store.recent(RecentQuery(since_ms=BASE_TS - 1, limit=10))) == 1

    def test_recent_is_newest_first_by_record_time_not_arrival(self, store: HotStore) -> None:
        late = record(BASE_TS + 10, "late arrival, older time")
        store.put([record(BASE_TS + 20, "newest"), record(BASE_TS + 30, "newer still")])
        store.put([late])
        found = store.recent(RecentQuery(since_ms=BASE_TS, limit=10))
        assert [r.message for r in found] == ["newer still", "newest", "late arrival, older time"]

    def test_time_range_is_half_open(self, store: HotStore) -> None:
        store.put([record(BASE_TS + i * 1000, f"s{i}") for i in range(10)])
        found = store.recent(RecentQuery(since_ms=BASE_TS + 2000, until_ms=BASE_TS + 5000, limit=10))
        assert [r.message for r in found] == ["s4", "s3", "s2"]

    @pytest.mark.parametrize(
        ("filters", "expected"),
        [
            ({"service": "billing"}, {"b-info", "b-error"}),
            ({"log_type": "audit"}, {"a-audit"}),
            ({"severities": frozenset({Severity.ERROR, Severity.CRITICAL})}, {"b-error", "a-critical"}),
            ({"service": "billing", "severities": frozenset({Severity.ERROR})}, {"b-error"}),
            ({"service": "billing", "severities": frozenset({Severity.ERROR, Severity.CRITICAL})}, {"b-error"}),
            ({"service": "billing", "severities": frozenset({Severity.INFO, Severity.ERROR})}, {"b-info", "b-error"}),
            ({"contains": "NEEDLE"}, {"a-audit"}),
            ({"service": "api", "log_type": "audit", "contains": "needle"}, {"a-audit"}),
            ({"service": "nobody"}, set()),
            ({"log_type": "application"}, {"b-info", "b-error", "a-critical"}),
            ({"severities": frozenset({Severity.INFO, Severity.ERROR})}, {"b-info", "b-error", "a-audit"}),
            ({"severities": frozenset({Severity.INFO}), "log_type": "audit"}, {"a-audit"}),
        ],
    )
    def test_filters(self, store: HotStore, filters: dict, expected: set[str]) -> None:
        store.put(
            [
                record(BASE_TS + 1, "b-info", service="billing"),
                record(BASE_TS + 2, "b-error", service="billing", severity=Severity.ERROR),
                record(BASE_TS + 3, "a-critical", severity=Severity.CRITICAL),
                record(BASE_TS + 4, "a-audit with a needle", log_type="audit"),
            ]
        )
        found = store.recent(RecentQuery(since_ms=BASE_TS, limit=10, **filters))
        assert {r.message.split(" ")[0] for r in found} == expected
        assert [r.log_id for r in found] == sorted((r.log_id for r in found), reverse=True)

    @pytest.mark.parametrize("needle", ["überweisung", "ÜBERWEISUNG", "Müller", "ΣΦΆΛΜΑ", "σφάλμα"])
    def test_contains_ignores_case_beyond_ascii_as_the_lake_does(self, store: HotStore, needle: str) -> None:
        store.put([record(BASE_TS + 1, "Überweisung für MÜLLER: ΣΦΆΛΜΑ"), record(BASE_TS + 2, "uberweisung mueller")])
        found = store.recent(RecentQuery(since_ms=BASE_TS, limit=10, contains=needle))
        assert [r.message for r in found] == ["Überweisung für MÜLLER: ΣΦΆΛΜΑ"]

    def test_several_severities_merge_in_time_order_and_respect_limit(self, store: HotStore) -> None:
        levels = [Severity.WARNING, Severity.ERROR, Severity.CRITICAL, Severity.INFO]
        store.put([record(BASE_TS + i, f"m{i}", severity=levels[i % 4]) for i in range(40)])
        wanted = frozenset({Severity.WARNING, Severity.ERROR, Severity.CRITICAL})
        found = store.recent(RecentQuery(since_ms=BASE_TS, severities=wanted, limit=7))
        expected = [f"m{i}" for i in reversed(range(40)) if i % 4 != 3][:7]
        assert [r.message for r in found] == expected

    def test_paging_with_before_id_visits_everything_once(self, store: HotStore) -> None:
        store.put([record(BASE_TS + i // 3, f"m{i}", service="pager") for i in range(25)])
        seen: list[str] = []
        before = None
        while True:
            page = store.recent(RecentQuery(since_ms=BASE_TS, service="pager", before_id=before, limit=4))
            if not page:
                break
            seen.extend(r.message for r in page)
            before = page[-1].log_id
        assert sorted(seen) == sorted(f"m{i}" for i in range(25))
        assert len(seen) == 25

    def test_concurrent_submits_all_land(self, store: HotStore) -> None:
        futures = [store.submit([record(BASE_TS + i, f"c{i}")]) for i in range(200)]
        assert all(len(f.result(timeout=10)) == 1 for f in futures)
        assert len(store.recent(RecentQuery(since_ms=BASE_TS, limit=1000))) == 200

    async def test_concurrent_writes_awaited_on_an_event_loop_all_land(self, store: HotStore) -> None:
        batches = [[record(BASE_TS + i, f"w{i}")] for i in range(200)] + [[record(BASE_TS + 500, "a"), record()]]
        written = await asyncio.gather(*(store.write(batch) for batch in batches))
        assert written == [[r.log_id for r in batch] for batch in batches]
        assert len(store.recent(RecentQuery(since_ms=BASE_TS, limit=1000))) == 202

    def test_values_ingest_refuses_today_are_read_back_named_not_raised(self, store: HotStore) -> None:
        """An older loglake stored the client id "0123456789abcdef0123456789abcd  " as 15 bytes, and a
        record as stored then must still read back, with the value it cannot read named."""
        old = record(BASE_TS, "old", client_id=bytes.fromhex("0123456789abcdef0123456789abcd"))
        store.put([old])
        store.put([record(BASE_TS + 1, "new")])
        got = store.get(old.log_id)
        assert got is not None and got.message == "old" and got.client_id is None
        assert [field for field, _ in got.unreadable] == ["id"]
        found = store.recent(RecentQuery(since_ms=BASE_TS, limit=10))
        assert [(r.message, [f for f, _ in r.unreadable]) for r in found] == [("new", []), ("old", ["id"])]
