"""Interrupting DuckDB queries at their deadlines, or as soon as their work is told to stop, from one thread.

A thread of its own per query, sleeping until the deadline, costs each query a thread's start and join:
a fraction of a millisecond, and more on a loaded machine, where the new thread waits to be scheduled
before the query may start. An aggregate over a million lake records takes about ten milliseconds, so
that is a cost it notices. One thread per engine watches all its running queries instead: it sleeps until
the earliest deadline, or until a query is told to stop, and a query pays a lock taken twice.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import duckdb

# How often a query that is due is interrupted again until it stops: an interrupt that lands before
# DuckDB has started the query would otherwise be lost.
RETRY_SECONDS = 0.005


class _Watch:
    __slots__ = ("connection", "deadline", "stopped")

    def __init__(self, connection: duckdb.DuckDBPyConnection, deadline: float) -> None:
        self.connection = connection
        self.deadline = deadline
        self.stopped = False  # told to stop before its deadline


class QueryWatchdog:
    """Interrupts the queries it watches (watching) at their deadlines or when told to; its thread is
    started by the first query and ends with close()."""

    def __init__(self, thread_name: str) -> None:
        self._thread_name = thread_name
        self._changed = threading.Condition()
        self._watches: set[_Watch] = set()
        self._thread: threading.Thread | None = None
        self._wakes_at = math.inf  # when the thread wakes by itself next (time.perf_counter)
        self._closed = False

    @contextmanager
    def watching(self, connection: duckdb.DuckDBPyConnection, deadline: float) -> Iterator[Callable[[], None]]:
        """While in the block, the query `connection` runs is interrupted at `deadline` (time.perf_counter)
        or as soon as the callable the block is given is called (from any thread: it is quick and never
        waits for the query), and again until the block ends. After it, the connection is left alone."""
        watch = _Watch(connection, deadline)
        with self._changed:
            if self._closed:
                raise RuntimeError("the query watchdog is closed")
            self._watches.add(watch)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._thread_name, daemon=True)
                self._thread.start()
            elif deadline < self._wakes_at:  # else the thread wakes early enough by itself: no switch to it
                self._changed.notify()
        try:
            yield lambda: self._stop(watch)
        finally:
            with self._changed:  # the thread interrupts under this lock: none reaches the connection after this
                self._watches.discard(watch)

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify()
            thread = self._thread
        if thread is not None:
            thread.join()

    def _stop(self, watch: _Watch) -> None:
        with self._changed:
            watch.stopped = True
            self._changed.notify()

    def _run(self) -> None:
        with self._changed:
            while not self._closed:
                now = time.perf_counter()
                due = [w for w in self._watches if w.stopped or w.deadline <= now]
                for watch in due:
                    watch.connection.interrupt()
                if due:
                    self._wakes_at = now + RETRY_SECONDS
                else:
                    self._wakes_at = min((w.deadline for w in self._watches), default=math.inf)
                self._changed.wait(None if self._wakes_at == math.inf else self._wakes_at - now)
