"""The hot store contract: what every backend (SQLite here, DynamoDB later) must do.

The access patterns are key lookups and key-range scans only, so they map onto DynamoDB as they
map onto SQLite: by `log_id` (time-ordered, see ids.py), by (service, log_id), (log_type, log_id)
and (severity, log_id), plus the global id order for "most recent N". The log_type and severity
keys are sparse (DynamoDB's sparse GSIs): the dominant values, log_type "application" and
severity info, are not indexed, since a scan of the id order finds them at once; that halves
the index writes of a typical record. A backend may also keep no service key (SERVICE_KEY): SQLite
finds a service's records by the id order, filtered. The base class owns this planning (which key to
scan, merging several severities); a backend implements the writes, one point lookup and one range scan.
"""

from __future__ import annotations

import asyncio
import errno
import heapq
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TypeVar

from loglake.model import DEFAULT_LOG_TYPE, NewRecord, Severity, StoredRecord

T = TypeVar("T")

# The values the sparse keys leave out (see the module docstring).
UNINDEXED_LOG_TYPE = DEFAULT_LOG_TYPE
UNINDEXED_SEVERITY = Severity.INFO


class StoreUnavailable(Exception):
    """The store cannot accept writes right now (disk full, read-only, I/O error); nothing was written.
    The message is for clients; `where` (a file, a table) only for operators."""

    def __init__(self, message: str, where: str = "", in_lake: bool = False) -> None:
        super().__init__(message)
        self.where = where
        self.in_lake = in_lake  # the lake's object store refused (a bulk batch's write), not the hot store

    def for_operators(self) -> str:
        return f"{self} ({self.where})" if self.where else str(self)


# The file system's refusals that mean "cannot write now" (try again once there is room), as SQLite's SQLITE_FULL,
# SQLITE_READONLY and SQLITE_IOERR do for the hot store, rather than a bug.
_REFUSED_WRITES = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is used up",
    errno.EFBIG: "a file size limit was reached",
    errno.EROFS: "the file system is read-only",
    errno.EIO: "the disk reported an I/O error",
}


def refused_write(error: OSError) -> str | None:
    """Why the file system refused a write, when that means "not now"; None for any other error."""
    return _REFUSED_WRITES.get(error.errno)


@dataclass(frozen=True, slots=True)
class RecentQuery:
    """Filters of "recent logs"; the id range is [since, until) and, for paging, below `before_id`."""

    since_ms: int
    until_ms: int | None = None
    service: str | None = None
    log_type: str | None = None
    severities: frozenset[int] | None = None
    contains: str | None = None
    before_id: bytes | None = None
    limit: int = 100


@dataclass(frozen=True, slots=True)
class ScanKey:
    """Which key a scan walks: None = the global id order, else an index and its value."""

    index: str | None = None
    value: str | int | None = None


class HotStore(ABC):
    """Recent records, durable on acknowledgement, read by key and by key range."""

    # Whether scan() takes ScanKey("service", ...): else a service is a filter on the other keys' scans.
    SERVICE_KEY = True

    @abstractmethod
    def submit(self, records: Sequence[NewRecord]) -> Future[list[bytes]]:
        """Start a durable write; the future gives each record's stored id (an earlier one for a
        repeated client id), or raises StoreUnavailable. All records of one call land together or not at all."""

    @abstractmethod
    def get(self, log_id: bytes) -> StoredRecord | None:
        """A record by its log id, or by the client id it was sent with."""

    @abstractmethod
    def scan(self, key: ScanKey, query: RecentQuery) -> Iterator[StoredRecord]:
        """Records on one key, newest first, in the query's id range, matching all its other filters."""

    @abstractmethod
    def close(self) -> None: ...

    def probe_write(self) -> Future[None]:
        """A write that changes nothing, to learn whether the store accepts writes again after refusing some
        (/healthz asks, so that a server nobody sends to while it answers 503 can say it recovered); raises
        StoreUnavailable if not. A store with no local disk to fill (DynamoDB) has nothing to learn: done."""
        done: Future[None] = Future()
        done.set_result(None)
        return done

    def put(self, records: Sequence[NewRecord]) -> list[bytes]:
        """Write and wait until durable."""
        return self.submit(records).result()

    def write(self, records: Sequence[NewRecord]) -> asyncio.Future[list[bytes]]:
        """submit() for a coroutine to await: the stored ids once durable. A backend may settle its waiters
        more cheaply than through the concurrent Future (SQLite does). A future, not a coroutine: a coroutine
        is one more frame for the event loop to resume on every single-record request."""
        return awaitable(self.submit(records))

    def recent(self, query: RecentQuery) -> list[StoredRecord]:
        """Up to query.limit records, newest first, through the most selective key available."""
        if query.service is not None and self.SERVICE_KEY:
            scans = [self.scan(ScanKey("service", query.service), query)]
        elif query.log_type is not None and query.log_type != UNINDEXED_LOG_TYPE:
            scans = [self.scan(ScanKey("log_type", query.log_type), query)]
        elif query.severities is not None and UNINDEXED_SEVERITY not in query.severities:
            scans = [self.scan(ScanKey("severity", s), query) for s in sorted(query.severities)]
        else:
            scans = [self.scan(ScanKey(), query)]
        merged = scans[0] if len(scans) == 1 else heapq.merge(*scans, key=_log_id, reverse=True)
        out = []
        for record in merged:
            out.append(record)
            if len(out) >= query.limit:
                break
        return out


def awaitable(write: Future[T]) -> asyncio.Future[T]:
    """The concurrent Future as an asyncio one: a leaner bridge than asyncio.wrap_future, which costs a
    noticeable share of a single-record request."""
    loop = asyncio.get_running_loop()
    waiter = loop.create_future()
    write.add_done_callback(lambda done: loop.call_soon_threadsafe(_settle, waiter, done))
    return waiter


def _settle(waiter: asyncio.Future, done: Future) -> None:
    if waiter.cancelled():
        return
    error = done.exception()
    if error is not None:
        waiter.set_exception(error)
    else:
        waiter.set_result(done.result())


def _log_id(record: StoredRecord) -> bytes:
    return record.log_id
