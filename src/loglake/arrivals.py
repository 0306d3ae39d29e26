"""The records this process accepted, in the order they arrived: what a follower reads.

A record carries the time its sender gave it, so a follower asking "what is newer than the newest I
showed" never sees one that arrives late with an older time (a shipper that batches for a second, a
backlog sent again). Here every committed batch is numbered as it arrives, one sequence number per
record that only grows, and a follower asks for what arrived after its number.

The log is in memory and bounded by records and by bytes (the oldest batches go first; a reader whose
records went is told how many it missed; they are stored all the same, readable by time). It keeps
batches only while someone follows (a read or a wait within IDLE_SECONDS): nobody following costs a
counter increment per batch, and the records' table is built only when someone reads them. Each
process numbers afresh under a random epoch, so a cursor from before a restart is recognised.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import NamedTuple

import pyarrow as pa
import pyarrow.compute as pc

from loglake.ids import format_uuid
from loglake.lake.table_records import matches, table_records
from loglake.lake.tables import APP_LOGS_TABLE
from loglake.model import SEVERITY_NAMES, NewRecord, StoredRecord
from loglake.store.base import RecentQuery
from loglake.times import LATEST_MS

MAX_RECORDS = 100_000
MAX_BYTES = 64 * 1024 * 1024
IDLE_SECONDS = 300.0  # batches are kept while a follower read or waited this recently
# What a kept NewRecord takes beyond its message and attributes (the tuple, its id, time and names):
# tracemalloc counted 470 bytes for one with an 80-character message and two small attributes.
RECORD_OVERHEAD_BYTES = 400
# Kept records are turned into a table this many at a time: a reader far behind that wants one page
# converts about a page, not everything kept.
CONVERT_RECORDS = 4096
_EPOCH_BYTES = 8
_SEVERITY_NAMES = pa.array(SEVERITY_NAMES)


class ArrivalCursor(NamedTuple):
    """A follower's place: the process (epoch) that numbered the arrivals, the last one read, the server's time
    when the cursor was issued (a new process answers from about that time on), and the follow's `since` (the
    earliest time it asked for, which a new process's answer never goes before)."""

    epoch: bytes
    seq: int
    issued_ms: int
    since_ms: int = 0

    def encode(self) -> str:
        raw = self.epoch + b"".join(number.to_bytes(8, "big") for number in (self.seq, self.issued_ms, self.since_ms))
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    @classmethod
    def decode(cls, text: str) -> ArrivalCursor:
        """The cursor `encode` gave; ValueError for anything else."""
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        except (binascii.Error, ValueError):
            raise ValueError("not an arrival cursor") from None
        if len(raw) not in (_EPOCH_BYTES + 16, _EPOCH_BYTES + 24):  # (an earlier version's cursor has no since)
            raise ValueError("not an arrival cursor")
        numbers = [int.from_bytes(raw[at : at + 8], "big") for at in range(_EPOCH_BYTES, len(raw), 8)]
        seq, *times = numbers
        if seq >= 1 << 63 or max(times) >= LATEST_MS:  # (no cursor `encode` gave: a forged one, read as SQL values)
            raise ValueError("not an arrival cursor")
        return cls(raw[:_EPOCH_BYTES], *numbers)


class ArrivalsPage(NamedTuple):
    records: list[StoredRecord]  # in arrival order
    seq: int  # the last arrival read: where the next read starts
    missed: int  # arrivals after the reader's number that left the log before this read
    more: bool  # arrivals after `seq` remain unread (the page is full)


class Arrived(NamedTuple):
    tables: list[tuple[int, pa.Table]]  # each with the number of its first row, in arrival order
    seq: int  # the last arrival: where the next read starts
    missed: int  # arrivals after the reader's number that left the log before this read


class _Batch:
    """One committed batch: its records as the ingest path gave them, or as a table."""

    __slots__ = ("count", "first", "records", "size", "table")

    def __init__(self, first: int, records: Sequence[NewRecord] | None, table: pa.Table | None, size: int) -> None:
        self.first = first  # the sequence number of its first record
        self.count = len(records) if records is not None else table.num_rows
        self.records = records
        self.table = table
        self.size = size

    @property
    def last(self) -> int:
        return self.first + self.count - 1


class Arrivals:
    """A bounded, in-memory log of committed batches in arrival order. Appends come from the thread
    that commits (the store's writer), reads from any thread, waits from any event loop."""

    def __init__(
        self,
        max_records: int = MAX_RECORDS,
        max_bytes: int = MAX_BYTES,
        idle_seconds: float = IDLE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.epoch = os.urandom(_EPOCH_BYTES)
        self.max_records = max_records
        self.max_bytes = max_bytes
        self.idle_seconds = idle_seconds
        self.clock = clock
        self._lock = threading.Lock()
        self._batches: deque[_Batch] = deque()
        self._last = 0  # the sequence number of the newest arrival (0: none yet)
        self._records = 0
        self._bytes = 0
        self._followed_at = -idle_seconds  # never
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    # -- appends (on the committing thread) --------------------------------------------------------

    def append(self, batch: pa.Table) -> None:
        """A committed batch as a table of the `logs` columns (APP_LOGS_TABLE), without the rows of
        records that were stored before (a repeated client id)."""
        if batch.num_rows and not self._only_counted(batch.num_rows):
            self._keep(batch.num_rows, lambda first: _Batch(first, None, batch, batch.nbytes))

    def append_records(self, records: Sequence[NewRecord], stored_ids: Sequence[bytes]) -> None:
        """Committed records with the ids the store answered for them: one that answered another
        record's id (its client id was stored before) is not announced again. The sequence is kept,
        not copied: the caller must not change it."""
        if self._only_counted(len(records)):
            return
        fresh = records
        if any(r.client_id is not None for r in records):
            fresh = [r for r, stored in zip(records, stored_ids, strict=True) if r.log_id == stored]
        if fresh:
            self._keep(len(fresh), lambda first: _Batch(first, fresh, None, _records_size(fresh)))

    def _only_counted(self, count: int) -> bool:
        """While nobody follows, only count the arrivals (and let kept batches go); False when they
        are to be kept. Nobody reads them meanwhile, so a repeated client id counts too."""
        with self._lock:
            if self._waiters or self.clock() - self._followed_at < self.idle_seconds:
                return False
            self._last += count
            if self._batches:
                self._batches.clear()
                self._records = self._bytes = 0
            return True

    def _keep(self, count: int, make: Callable[[int], _Batch]) -> None:
        with self._lock:
            batch = make(self._last + 1)
            self._last += count
            self._batches.append(batch)
            self._records += count
            self._bytes += batch.size
            self._drop_oldest()
            woken, self._waiters = self._waiters, []
        for loop, waiter in woken:
            with contextlib.suppress(RuntimeError):  # that loop has closed
                loop.call_soon_threadsafe(_wake, waiter)

    def _drop_oldest(self) -> None:
        """Drop the oldest batches past the bounds (the newest stays, however large: one request's worth)."""
        while len(self._batches) > 1 and (self._records > self.max_records or self._bytes > self.max_bytes):
            gone = self._batches.popleft()
            self._records -= gone.count
            self._bytes -= gone.size

    # -- reads -------------------------------------------------------------------------------------

    def cursor(self, now_ms: int, since_ms: int = 0) -> ArrivalCursor:
        """Where a new follower starts: after the newest arrival (`since_ms`: the follow's since). From now on
        batches are kept for it."""
        with self._lock:
            self._followed_at = self.clock()
            return ArrivalCursor(self.epoch, self._last, now_ms, since_ms)

    def read(self, after: int, query: RecentQuery, limit: int) -> ArrivalsPage:
        """Up to `limit` records matching the query's filters (not its time range: late records are
        the point) that arrived after number `after`, in arrival order. ValueError when `after` is
        past the newest arrival (no cursor of this epoch can be)."""
        unread, newest, missed = self._unread(after)
        seq = after + missed
        query = replace(query, since_ms=0, until_ms=None, before_id=None)
        records: list[StoredRecord] = []
        for start, table in _tables(unread, seq):
            rows = pc.indices_nonzero(matches(table, query))
            room = limit - len(records)
            if len(rows) >= room:
                rows = rows[:room]
                seq = start + rows[-1].as_py()
                records.extend(table_records(table.take(rows)))
                break
            records.extend(table_records(table.take(rows)))
            seq = start + table.num_rows - 1
        return ArrivalsPage(records, seq, missed, seq < newest)

    def arrived(self, after: int) -> Arrived:
        """Everything that arrived after number `after`, as tables (a live tail matches them itself).
        ValueError when `after` is past the newest arrival."""
        unread, newest, missed = self._unread(after)
        return Arrived(list(_tables(unread, after + missed)), newest, missed)

    def _unread(self, after: int) -> tuple[list[_Batch], int, int]:
        """The kept batches holding arrivals after number `after` (oldest first), the newest arrival's
        number, and how many arrivals after `after` left the log unread."""
        with self._lock:
            self._followed_at = self.clock()
            if not 0 <= after <= self._last:
                raise ValueError(f"arrival {after} has not happened")
            newest = self._last
            unread = []
            for batch in reversed(self._batches):
                if batch.last <= after:
                    break
                unread.append(batch)
        unread.reverse()
        oldest_kept = unread[0].first if unread else newest + 1
        return unread, newest, max(0, oldest_kept - 1 - after)

    async def wait(self, after: int) -> None:
        """Return once a record arrived after number `after` (at once if one has): a live tail sleeps
        here between reads instead of polling. Waiting counts as following."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        with self._lock:
            self._followed_at = self.clock()
            if self._last > after:
                return
            self._waiters.append((loop, waiter))
        try:
            await waiter
        finally:
            with self._lock, contextlib.suppress(ValueError):
                self._waiters.remove((loop, waiter))


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _records_size(records: Sequence[NewRecord]) -> int:
    """About the memory the records take (characters count as bytes: a measure, not an account)."""
    return sum(len(r.message) + len(r.attributes or b"") for r in records) + RECORD_OVERHEAD_BYTES * len(records)


def _tables(batches: list[_Batch], after: int) -> Iterator[tuple[int, pa.Table]]:
    """The arrivals after number `after` as tables, each with the number of its first row: tables as
    they came, records of consecutive batches converted together, about CONVERT_RECORDS at a time."""
    run: list[NewRecord] = []  # consecutive records not yet converted
    start = after + 1  # the number of run[0]
    for batch in batches:
        skip = max(0, after + 1 - batch.first)
        if batch.records is not None:
            run.extend(batch.records[skip:])
            if len(run) >= CONVERT_RECORDS:
                yield start, records_table(run)
                start, run = start + len(run), []
            continue
        if run:
            yield start, records_table(run)
            run = []
        yield batch.first + skip, batch.table.slice(skip)
        start = batch.last + 1
    if run:
        yield start, records_table(run)


def records_table(records: Sequence[NewRecord]) -> pa.Table:
    """NewRecords as a table of the `logs` columns, as the bulk ingest path gives its batches."""
    log_ids, times, services, log_types, severities, messages, attributes, client_ids, traces, spans, _ = zip(
        *records, strict=True
    )
    return pa.table(
        [
            pa.array([format_uuid(i) for i in log_ids], pa.string()),
            pa.array(times, pa.timestamp("ms")),
            pa.array(services, pa.string()),
            pa.array(log_types, pa.string()),
            _SEVERITY_NAMES.take(pa.array(severities, pa.int8())),
            pa.array(messages, pa.string()),
            pa.array(attributes, pa.binary()).cast(pa.string()),
            pa.array([None if c is None else format_uuid(c) for c in client_ids], pa.string()),
            pa.array(traces, pa.string()),
            pa.array(spans, pa.string()),
        ],
        schema=APP_LOGS_TABLE.schema,
    )
