"""A write waiting for the SQLite hot store's writer thread, and how its caller learns the outcome.

A thread's caller (the CLI, the lake, tests) holds a concurrent Future. A coroutine on an event loop
(the server's ingest) holds an asyncio future of its loop instead: the writer settles all such waiters
of a group with ONE thread-safe call onto the loop, where a concurrent Future per request cost a lock
and a cross-thread callback each, on both threads, a tenth of the event loop's work per record.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from concurrent.futures import Future

from loglake.model import NewRecord
from loglake.store.sqlite_rows import encode_rows

Outcome = list[bytes] | BaseException  # the stored ids, or why the write failed


class WriteJob:
    __slots__ = ("future", "payload", "records", "waiter")

    def __init__(self, records: Sequence[NewRecord], waiter: asyncio.Future[list[bytes]] | None = None) -> None:
        self.records = records
        self.waiter = waiter
        self.future: Future[list[bytes]] | None = Future() if waiter is None else None
        # None: records with client ids (checked against the store first, in the transaction) or NULs.
        self.payload = encode_rows(records)


def fail(jobs: Sequence[WriteJob], error: BaseException) -> None:
    settle(jobs, [error] * len(jobs))


def settle(jobs: Sequence[WriteJob], outcomes: Sequence[Outcome]) -> None:
    """Give each job its outcome: futures at once, the waiters of each event loop in one call onto it."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future, Outcome]]] = {}
    for job, outcome in zip(jobs, outcomes, strict=True):
        if job.future is not None:
            if isinstance(outcome, BaseException):
                job.future.set_exception(outcome)
            else:
                job.future.set_result(outcome)
        else:
            assert job.waiter is not None
            by_loop.setdefault(job.waiter.get_loop(), []).append((job.waiter, outcome))
    for loop, waiting in by_loop.items():
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            loop.call_soon_threadsafe(_settle_waiters, waiting)


def _settle_waiters(waiting: list[tuple[asyncio.Future, Outcome]]) -> None:
    for waiter, outcome in waiting:
        if waiter.cancelled():  # the client went away meanwhile
            continue
        if isinstance(outcome, BaseException):
            waiter.set_exception(outcome)
        else:
            waiter.set_result(outcome)
