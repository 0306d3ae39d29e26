"""Live tails: each new record that matches a search, pushed to its followers as it is acknowledged.

One pump serves every tail of the process: it waits on the arrivals log (arrivals.py, appended where
ingest acknowledges a commit, at the cost of a list append), reads what arrived once, and matches it
against each tail's search on a thread of its own with DuckDB (the search's own SQL, lake/reads.py), so
neither ingest nor the event loop does the matching. Each tail holds at most QUEUE_RECORDS records for
its client: one that reads too slowly loses the newest and is told how many, instead of growing the
server's memory. A key may hold only so many tails at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import duckdb
import pyarrow as pa

from loglake.arrivals import Arrivals, Arrived
from loglake.lake import reads as lake_reads
from loglake.lake.search_terms import Condition
from loglake.model import record_to_dict
from loglake.store.base import RecentQuery

QUEUE_RECORDS = 1000  # records a tail holds for a client that has not read them yet


class TooManyTails(Exception):
    """The key already holds as many live tails as it may."""


class Tail:
    """One follower: its search, where it started, and what waits to be sent to it."""

    def __init__(
        self, key_name: str, query: RecentQuery, conditions: Sequence[Condition], after: int, limit: int
    ) -> None:
        self.key_name = key_name
        self.query = query
        self.conditions = conditions
        self.after = after  # the arrivals it sees are numbered after this
        self.limit = limit
        self._queued: deque[dict] = deque(maxlen=limit)  # (past it, the oldest go: see deliver)
        self._dropped = 0
        self._error: str | None = None
        self.stopped = False  # the client left or the server is stopping
        self._ready = asyncio.Event()

    def deliver(self, records: list[dict], lost: int = 0) -> None:
        """Queue records for the client, past the limit dropping (and counting) the oldest: a live tail shows
        what arrives now (a burst of 3,000 showed its first 1,000 and never its newest); `lost` more may have
        matched but left the arrivals log before they were read."""
        self._dropped += max(0, len(self._queued) + len(records) - self.limit) + lost
        self._queued.extend(records)
        if records or lost:
            self._ready.set()

    def fail(self, message: str) -> None:
        self._error = message
        self._ready.set()

    def stop(self) -> None:
        self.stopped = True
        self._ready.set()

    async def next(self, timeout: float) -> tuple[list[dict], int, str | None] | None:
        """What waits (records, how many were dropped since the last call, an error that ends the tail),
        or None when nothing came within `timeout` seconds."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(), timeout)
        if not self._ready.is_set():
            return None
        self._ready.clear()
        records = list(self._queued)
        self._queued.clear()
        dropped, self._dropped = self._dropped, 0
        return records, dropped, self._error


class TailHub:
    """The live tails of one process and the pump that feeds them."""

    def __init__(self, arrivals: Arrivals, max_per_key: int, now_ms: Callable[[], int]) -> None:
        self.arrivals = arrivals
        self.max_per_key = max_per_key
        self.now_ms = now_ms
        self._tails: set[Tail] = set()
        self._pump: asyncio.Task[None] | None = None
        self._seq = 0  # the last arrival the pump read
        self._matching = ThreadPoolExecutor(max_workers=1, thread_name_prefix="loglake-tail")
        self._db: duckdb.DuckDBPyConnection | None = None  # used on the matching thread only

    def open(
        self, key_name: str, query: RecentQuery, conditions: Sequence[Condition], limit: int = QUEUE_RECORDS
    ) -> Tail:
        """A new tail of records arriving from now on; TooManyTails when the key holds its limit. Call
        on the event loop that is to run the pump."""
        held = sum(t.key_name == key_name for t in self._tails)
        if held >= self.max_per_key:
            raise TooManyTails(
                f"the key {key_name!r} already has {held} live tails open, its limit (max_tails_per_key); "
                "close one (another browser tab or `loglake tail`) and try again"
            )
        cursor = self.arrivals.cursor(self.now_ms())
        tail = Tail(key_name, query, conditions, cursor.seq, limit)
        self._tails.add(tail)
        if self._pump is None:
            self._seq = cursor.seq
            self._pump = asyncio.get_running_loop().create_task(self._run())
        return tail

    def close(self, tail: Tail) -> None:
        self._tails.discard(tail)
        if not self._tails and self._pump is not None:
            self._pump.cancel()
            self._pump = None

    def stop_all(self) -> None:
        """End every tail (the server is stopping: open streams would keep it waiting)."""
        for tail in self._tails:
            tail.stop()

    def shutdown(self) -> None:
        """Stop the pump and the matching (the server is stopping; its streams have ended)."""
        if self._pump is not None:
            self._pump.cancel()
            self._pump = None
        self._tails.clear()
        self._matching.shutdown(wait=True)
        if self._db is not None:
            self._db.close()

    async def _run(self) -> None:
        try:
            await self._pump_arrivals()
        except Exception as e:  # a bug: end the tails with the reason rather than leave them silent
            for tail in self._tails:
                tail.fail(f"the live tail stopped: {e}")
            self._pump = None
            raise

    async def _pump_arrivals(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self.arrivals.wait(self._seq)
            before = self._seq
            tails = list(self._tails)
            arrived, found = await loop.run_in_executor(self._matching, self._read_and_match, before, tails)
            self._seq = arrived.seq
            for tail, records in zip(tails, found, strict=True):
                lost = max(0, min(arrived.missed, before + arrived.missed - tail.after))
                if isinstance(records, str):
                    tail.fail(records)
                else:
                    tail.deliver(records, lost)

    def _read_and_match(self, after: int, tails: list[Tail]) -> tuple[Arrived, list[list[dict] | str]]:
        """What arrived after number `after`, and each tail's new matching records as the API shows
        them, or the error that ends it: on the matching thread, since building the arrivals' tables
        and the records' dicts takes a while at thousands of records a second."""
        arrived = self.arrivals.arrived(after)
        return arrived, self._match(arrived, tails)

    def _match(self, arrived: Arrived, tails: list[Tail]) -> list[list[dict] | str]:
        if not arrived.tables:
            return [[] for _ in tails]
        numbered = [
            table.append_column("arrival", pa.array(range(start, start + table.num_rows), pa.int64()))
            for start, table in arrived.tables
        ]
        if self._db is None:
            self._db = duckdb.connect(config={"threads": 1})
        table = pa.concat_tables(numbered)
        # As microseconds, DuckDB's own TIMESTAMP: its epoch_ms() cannot read Arrow's milliseconds.
        at = table.schema.get_field_index("timestamp")
        table = table.set_column(at, "timestamp", table.column(at).cast(pa.timestamp("us")))
        self._db.register("arrived", table)
        found: list[list[dict] | str] = []
        try:
            for tail in tails:
                try:
                    matches = lake_reads.arrived_matches(self._db, tail.query, tail.conditions, tail.after)
                except duckdb.Error as e:
                    found.append(f"the tail's search failed on new records: {e}")
                    continue
                found.append([record_to_dict(r) for r in matches])
        finally:
            self._db.unregister("arrived")
        return found
