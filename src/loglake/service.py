"""LogService: the use cases (ingest, recent, get) shared by the HTTP API, the CLI and, later, Lambda."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, replace
from typing import Protocol

import pyarrow as pa

from loglake import ids, ingest_arrow
from loglake.arrivals import Arrivals
from loglake.digits import is_ascii_digits
from loglake.ingest import (
    BULK_MIN_RECORDS,
    IncomingRecord,
    ParsedBody,
    check_records,
    check_valid_records,
    parse_batch,
)
from loglake.lake import reads as lake_reads
from loglake.lake.lake import Lake
from loglake.lake.manifest import LakeFile
from loglake.lake.objectstore import ObjectStoreError
from loglake.lake.search_terms import Condition, InvalidSearch, parse_search
from loglake.lake.stop import Stop
from loglake.model import (
    Limits,
    NewRecord,
    Problem,
    StoredRecord,
)
from loglake.recent_params import InvalidQuery, encode_cursor, given, parse_recent_params
from loglake.store.base import HotStore, RecentQuery, StoreUnavailable, awaitable, refused_write
from loglake.times import DAY_MS, TimeFormatError, format_datetime, parse_duration

FOLLOW_PARAMS = ("follow", "after")  # GET /logs/recent takes these too (follow.py reads them)
DEFAULT_BUCKETS = 60
DEFAULT_FACETS = 10
MAX_FACETS = 100
# The bucket sizes a histogram picks from, the smallest that gives at most the buckets asked for
# (past a day: whole days), so bucket edges fall on round times a person reads at a glance.
HISTOGRAM_INTERVALS = tuple(
    n * unit
    for n, unit in (
        (1, 1000),
        (5, 1000),
        (10, 1000),
        (30, 1000),
        (1, 60_000),
        (5, 60_000),
        (15, 60_000),
        (30, 60_000),
        (1, 3_600_000),
        (3, 3_600_000),
        (6, 3_600_000),
        (12, 3_600_000),
        (1, DAY_MS),
    )
)


class RecordSearch(Protocol):
    """Search, counts and lookup by id over every record, hot or archived: DuckDB over the hot store and
    the lake locally (lake/reads.py), Athena over the lake on AWS (aws/athena_search.py). Told to stop
    (`stop`: the client went away, the server is stopping), a search raises Stopped."""

    def search(
        self, query: RecentQuery, conditions: Sequence[Condition], stop: Stop | None = None
    ) -> list[StoredRecord]:
        """The newest `query.limit` matches, newest (highest id) first."""
        ...

    def histogram(
        self, query: RecentQuery, conditions: Sequence[Condition], interval_ms: int, stop: Stop | None = None
    ) -> list[dict]:
        """Every bucket of the window with its counts per severity (lake_reads.histogram_buckets)."""
        ...

    def get(self, log_id: bytes) -> StoredRecord | None:
        """A record the hot store no longer holds, by its log id (or, where kept, its client id)."""
        ...


@dataclass(frozen=True, slots=True)
class RecentPage:
    records: list[StoredRecord]
    next_cursor: str | None


class LogService:
    def __init__(
        self,
        store: HotStore,
        limits: Limits | None = None,
        clock: Callable[[], float] = time.time,
        lake: Lake | None = None,
        record_search: RecordSearch | None = None,
        arrivals: Arrivals | None = None,
    ):
        self.store = store
        self.arrivals = arrivals  # committed records in arrival order, for followers (None: not kept)
        self.lake = lake  # flushed records, when the store has a lake behind it
        if record_search is None and lake is not None:
            record_search = lake_reads.EngineSearch(lake.engine)
        self.record_search = record_search
        self.limits = limits or Limits()
        self.clock = clock

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    def parse(self, body: bytes, ndjson: bool, contended: bool = False) -> ParsedBody:
        """Validated records with fresh ids from a request body (a bulk batch as a table, when there
        is a lake to write it to); raises ingest.InvalidBody or model.InvalidRecords naming every problem.
        `contended`: other bodies are being checked meanwhile (see ingest.parse_batch)."""
        bulk = self.lake is not None
        return parse_batch(body, ndjson, self.limits, self.now_ms(), bulk=bulk, contended=contended)

    def parse_joined(self, bodies: list[bytes]) -> list[pa.Table] | None:
        """Several NDJSON bulk bodies checked as one (ingest_arrow.checked_tables), on a server with a lake (only
        then are bodies joined): each body's table, as parse gives it alone; None when one of them would not be a
        table (parse then says what each is)."""
        return ingest_arrow.checked_tables(bodies, self.limits, self.now_ms(), BULK_MIN_RECORDS)

    def check(self, items: list[IncomingRecord]) -> ParsedBody:
        """Records another protocol's decoder built (protocols/), checked as parse checks a body's: all
        or nothing (ingest.InvalidBody, model.InvalidRecords naming every problem)."""
        return check_records(items, self.limits, self.now_ms(), bulk=self.lake is not None)

    def check_valid(self, items: list[IncomingRecord]) -> tuple[ParsedBody | None, list[Problem]]:
        """check, for a protocol that stores a batch's valid records and reports the rest: the valid
        ones (None if none is) and the problems of the others (ingest.InvalidBody for the batch as a whole)."""
        return check_valid_records(items, self.limits, self.now_ms(), bulk=self.lake is not None)

    def submit(self, records: Sequence[NewRecord]) -> Future[list[bytes]]:
        """Start the durable write; the future resolves once the records are committed. They join the
        arrivals as it does, before any callback the caller adds runs: a client answered through one
        finds its records when it follows."""
        write = self.store.submit(records)
        if self.arrivals is not None:
            write.add_done_callback(functools.partial(_announce, self.arrivals, records))
        return write

    async def write(self, records: Sequence[NewRecord]) -> list[bytes]:
        """The durable write, awaited on an event loop: the stored ids once the records are committed.
        They join the arrivals before the caller hears: a client answered finds them when it follows."""
        stored_ids = await self.store.write(records)
        if self.arrivals is not None:
            self.arrivals.append_records(records, stored_ids)
        return stored_ids

    async def write_table(self, table: pa.Table) -> None:
        """The durable write of a bulk batch (ParsedBody.table) as lake parts, awaited on an event loop;
        the records' ids are the table's `log_id` column. They join the arrivals once committed."""
        assert self.lake is not None, "parse gives tables only when there is a lake"
        write = self.lake.bulk.submit(table)
        if self.arrivals is not None:
            write.add_done_callback(functools.partial(_announce_table, self.arrivals, table))
        try:
            await awaitable(write)
        except (OSError, ObjectStoreError) as e:
            # A full disk or a failing object store: the batch's files are gone again (lake/bulk.py undoes a
            # failed write), so the client may send it again later, as the hot store's refusals say.
            reason = "its object store failed the write" if isinstance(e, ObjectStoreError) else refused_write(e)
            if reason is None:
                raise
            where = str(e) if isinstance(e, ObjectStoreError) else f"{self.lake.store.path.parent}: {e}"
            message = f"the lake cannot accept writes: {reason}; nothing was written"
            # (a full disk is the data dir's, the hot store's too: in_lake for an object store's refusal alone)
            raise StoreUnavailable(message, where, in_lake=isinstance(e, ObjectStoreError)) from None

    def get(self, log_id: str) -> StoredRecord | None:
        try:
            raw = ids.parse_uuid(log_id)
        except ValueError:
            return None
        found = self.store.get(raw)
        if found is None and self.record_search is not None:
            found = self.record_search.get(raw)
        return found

    def recent(self, query: RecentQuery) -> RecentPage:
        wanted = query.limit
        page = replace(query, limit=wanted + 1)
        if self.lake is None:
            records = self.store.recent(page)
        else:
            records = lake_reads.recent(self.lake.store, self.lake.recent_reader, page)
        return _page(records, wanted)

    def search(self, params: Mapping[str, str], stop: Stop | None = None) -> RecentPage:
        """Records whose message/fields match the search `q` across hot and lake, newest first, paged
        (Stopped when told to stop, as are histogram and facets)."""
        query, conditions = self._search_query(params)
        wanted = query.limit
        records = self._require_search().search(replace(query, limit=wanted + 1), conditions, stop)
        return _page(records, wanted)

    def histogram(self, params: Mapping[str, str], stop: Stop | None = None) -> dict:
        """Counts per time bucket and severity for the same filters as search: buckets of `interval`
        (e.g. 1m, 1h, 1d), or the smallest of HISTOGRAM_INTERVALS of which `buckets` span the window
        (default DEFAULT_BUCKETS; past a day, whole days): aligned to the epoch, one more where the window's ends
        fall inside buckets."""
        fields = dict(params)
        interval_text, buckets_text = fields.pop("interval", ""), fields.pop("buckets", "")
        not_here = ("limit", "cursor")
        problems = [
            Problem(-1, name, "does not apply to a histogram, which counts every match")
            for name in not_here
            if name in fields
        ]
        if problems:
            raise InvalidQuery(problems)
        query, conditions = self._search_query(fields, also_known=("interval", "buckets"), not_here=not_here)
        until = query.until_ms if query.until_ms is not None else self._histogram_end(query, conditions, stop)
        ahead = query.until_ms is None and until > self.now_ms()  # (run to a match stamped after now)
        if until <= query.since_ms:
            raise InvalidQuery([Problem(-1, "since", "must be before until (by default, now)")])
        query = replace(query, until_ms=until)
        span = until - query.since_ms
        if interval_text and buckets_text:
            raise InvalidQuery(
                [Problem(-1, "buckets", "give interval (the bucket size) or buckets (how many), not both")]
            )
        if interval_text:
            interval = _parse_interval(interval_text)
            if span / interval > lake_reads.MAX_BUCKETS:
                reason = (
                    f"gives more than {lake_reads.MAX_BUCKETS} buckets over this window;"
                    " use a larger interval or a shorter window"
                )
                if ahead:
                    reason += f" (it runs to {format_datetime(until)}, the newest match, stamped after now)"
                raise InvalidQuery([Problem(-1, "interval", reason)])
        else:
            wanted = _whole_number("buckets", buckets_text, lake_reads.MAX_BUCKETS) if buckets_text else DEFAULT_BUCKETS
            fitting = (i for i in HISTOGRAM_INTERVALS if span / i <= wanted)
            interval = next(fitting, -(-span // (wanted * DAY_MS)) * DAY_MS)
        buckets = self._require_search().histogram(query, conditions, interval, stop)
        return {
            "since": format_datetime(query.since_ms),
            "until": format_datetime(until),
            "bucket_seconds": interval // 1000 if interval % 1000 == 0 else interval / 1000,
            "interval_ms": interval,
            "total": sum(b["total"] for b in buckets),
            "buckets": buckets,
        }

    def _histogram_end(self, query: RecentQuery, conditions: Sequence[Condition], stop: Stop | None) -> int:
        """The end of a histogram given no `until`: now, or just past the newest match when a record is stamped
        after now (up to max_future_ms ahead). Search and facets given no `until` show such records: a histogram
        that ended at now left them out of its total."""
        now = self.now_ms()
        later = replace(query, since_ms=max(query.since_ms, now), limit=1)
        newest = self._require_search().search(later, conditions, stop)
        return max(now, newest[0].timestamp + 1) if newest else now

    def facets(self, params: Mapping[str, str], stop: Stop | None = None) -> dict:
        """The top services, severities, log types and attribute keys of the records a search matches
        (lake_reads.facets), at most `limit` of each (default DEFAULT_FACETS)."""
        fields = dict(params)
        limit_text = fields.pop("limit", "")
        limit = (
            _whole_number("limit", limit_text, MAX_FACETS, ": the values per facet") if limit_text else DEFAULT_FACETS
        )
        if fields.get("cursor"):
            raise InvalidQuery([Problem(-1, "cursor", "does not apply to facets, which count every match")])
        query, conditions = self._search_query(fields, not_here=("cursor",))
        if self.lake is None:
            raise InvalidQuery([Problem(-1, "q", "facets need the SQL engine, which this store does not have")])
        return lake_reads.facets(self.lake.engine, query, conditions, limit, stop)

    def tail_query(self, params: Mapping[str, str]) -> tuple[RecentQuery, list[Condition]]:
        """The search a live tail matches new records against: the filters and `q` of search, without
        its time range and paging (a tail shows what arrives, whatever its time)."""
        not_here = ("since", "until", "cursor", "limit")
        problems = [
            Problem(-1, name, "does not apply to a live tail, which shows each matching record as it arrives")
            for name in not_here
            if given(params, name) is not None
        ]
        if problems:
            raise InvalidQuery(problems)
        return self._search_query(params, not_here=not_here)

    def _search_query(
        self, params: Mapping[str, str], also_known: tuple[str, ...] = (), not_here: tuple[str, ...] = ()
    ) -> tuple[RecentQuery, list[Condition]]:
        """The filters and search of `params`; `also_known`: the caller's own parameters, taken out before;
        `not_here`: those of parse_recent_params's that the caller refuses."""
        fields = dict(params)
        q = fields.pop("q", "")
        query = parse_recent_params(fields, self.now_ms(), also_known=also_known, not_here=not_here)
        try:
            return query, parse_search(q)
        except InvalidSearch as e:
            raise InvalidQuery([Problem(-1, "q", str(e))]) from None

    def _require_search(self) -> RecordSearch:
        if self.record_search is None:
            raise InvalidQuery([Problem(-1, "q", "search needs the SQL engine, which this store does not have")])
        return self.record_search

    def recent_query(self, params: Mapping[str, str]) -> RecentQuery:
        """Build a RecentQuery from string parameters (HTTP query or CLI), or raise InvalidQuery. (FOLLOW_PARAMS, which
        follow_query found to ask for no follow, `follow` false or empty, `after` empty, are left out.)"""
        without_follow = {name: value for name, value in params.items() if name not in FOLLOW_PARAMS}
        return parse_recent_params(without_follow, self.now_ms(), also_known=FOLLOW_PARAMS)


def _announce(arrivals: Arrivals, records: Sequence[NewRecord], write: Future[list[bytes]]) -> None:
    """The store's write is done: its records arrived, unless it failed."""
    try:
        stored_ids = write.result()  # one call, not exception() then result(): this runs for every request
    except Exception:  # the write failed (its caller hears why): nothing arrived
        return
    arrivals.append_records(records, stored_ids)


def _announce_table(arrivals: Arrivals, table: pa.Table, write: Future[list[LakeFile]]) -> None:
    """A bulk batch's write is done: all of it arrived (it has no client ids), unless it failed."""
    if write.exception() is None:
        arrivals.append(table)


def _page(records: list[StoredRecord], wanted: int) -> RecentPage:
    """A page of `wanted` records (fetched one more: that one says whether a next page exists)."""
    if len(records) > wanted:
        records = records[:wanted]
        return RecentPage(records, encode_cursor(records[-1].log_id))
    return RecentPage(records, None)


def _parse_interval(text: str) -> int:
    try:
        interval = parse_duration(text)
    except TimeFormatError:
        interval = 0
    if not 1000 <= interval <= 366 * DAY_MS:
        raise InvalidQuery([Problem(-1, "interval", "must be a duration from 1s to 366d, like 30s, 5m, 1h, 1d or 1w")])
    return interval


def _whole_number(name: str, text: str, most: int, meaning: str = "") -> int:
    """A parameter that must be an integer from 1 to `most`; InvalidQuery naming it otherwise."""
    value = int(text) if is_ascii_digits(text) else 0
    if not 1 <= value <= most:
        raise InvalidQuery([Problem(-1, name, f"must be an integer from 1 to {most}{meaning}")])
    return value
