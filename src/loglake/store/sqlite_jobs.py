"""A write waiting for the SQLite hot store's writer thread, how a group of them is written in one transaction
(a record whose client id was stored before answered with the earlier id), and how its caller learns the outcome.

A thread's caller (the CLI, the lake, tests) holds a concurrent Future. A coroutine on an event loop
(the server's ingest) holds an asyncio future of its loop instead: the writer settles all such waiters
of a group with ONE thread-safe call onto the loop, where a concurrent Future per request cost a lock
and a cross-thread callback each, on both threads, a tenth of the event loop's work per record.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import Future

from loglake.ids import format_uuid, join_id
from loglake.model import NewRecord
from loglake.store.sqlite_rows import FLUSHED_CLIENT_ID, INSERT_ONE_ROW, insert_statement, row_values

Outcome = list[bytes] | BaseException  # the stored ids, or why the write failed


class WriteJob:
    __slots__ = ("future", "records", "waiter")

    def __init__(self, records: Sequence[NewRecord], waiter: asyncio.Future[list[bytes]] | None = None) -> None:
        self.records = records
        self.waiter = waiter
        self.future: Future[list[bytes]] | None = Future() if waiter is None else None


def write_group(conn: sqlite3.Connection, group: list[WriteJob], rollback: Callable[[], None]) -> list[list[bytes]]:
    """Write a group of jobs on the writer's connection, in one transaction (rollback() undoes a failed one):
    the ids to answer each job."""
    if all(r.client_id is None for job in group for r in job.records):
        # The common case is one statement, which SQLite commits atomically on its own: one
        # GIL hand-off for the whole group instead of three (BEGIN, INSERT, COMMIT).
        statement = insert_statement([r for job in group for r in job.records])
        if statement is not None:
            conn.execute(*statement)
            return [[r.log_id for r in job.records] for job in group]
    plain: list[NewRecord] = []  # records without a client id
    fresh: list[NewRecord] = []  # records with one that was not stored before
    results: list[list[bytes]] = []
    seen: dict[bytes, bytes] = {}
    conn.execute("BEGIN IMMEDIATE")
    try:
        for job in group:
            if all(r.client_id is None for r in job.records):
                plain += job.records
                results.append([r.log_id for r in job.records])
            else:
                results.append([_answered_id(conn, r, fresh, seen) for r in job.records])
        statement = insert_statement(plain) if plain else None
        if statement is not None:
            conn.execute(*statement)
        else:
            fresh += plain
        conn.executemany(INSERT_ONE_ROW, map(row_values, fresh))
        conn.execute("COMMIT")
    except BaseException:
        rollback()
        raise
    return results


def _answered_id(conn: sqlite3.Connection, record: NewRecord, fresh: list[NewRecord], seen: dict) -> bytes:
    """The id to answer for a record: an earlier one if its client id was already stored."""
    if record.client_id is None:
        fresh.append(record)
        return record.log_id
    existing = seen.get(record.client_id)
    if existing is None:
        text = format_uuid(record.client_id)
        found = conn.execute("SELECT id_hi, id_lo FROM logs WHERE client_id = ?", (text,)).fetchone()
        found = found or conn.execute(FLUSHED_CLIENT_ID, (text,)).fetchone()
        existing = join_id(*found) if found else None
    if existing is not None:
        return existing
    seen[record.client_id] = record.log_id
    fresh.append(record)
    return record.log_id


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
