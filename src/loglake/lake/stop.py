"""When work that runs queries must stop before it is done: at the end of its time budget, or when told
to (the client that asked for it went away, the server is stopping).

A Stop goes with one piece of work (a user's query, a backtest's many queries, a search, a question to
a model). The work checks it between its steps (`check`); what blocks meanwhile watches it and is woken
as soon as it is told to stop (the engine interrupts DuckDB, a model's call shuts its connection), so a
stop never waits for a long query or a slow model to finish. A blocking call that offers no way to cut it
is left to end on a thread of its own, unwaited for (`unless_stopped`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")

CLIENT_GONE = "the client went away"
SERVER_STOPPING = "the server is stopping"
INTERRUPTED = "interrupted (Ctrl-C)"


class Stopped(Exception):
    """The work was told to stop (`reason`: CLIENT_GONE, SERVER_STOPPING, INTERRUPTED) before it was done."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class OutOfTime(Exception):
    """The work ran past its time budget (`budget_s` seconds) and was stopped."""

    def __init__(self, budget_s: float) -> None:
        super().__init__(f"ran longer than its {budget_s:g} s")
        self.budget_s = budget_s


class Stop:
    """A piece of work's deadline (None: none) and whether it was told to stop; safe to use from any thread."""

    def __init__(self, budget_s: float | None = None) -> None:
        self.budget_s = budget_s
        self.deadline = None if budget_s is None else time.perf_counter() + budget_s
        self.reason: str | None = None
        self._lock = threading.Lock()
        self._watchers: set[Callable[[], None]] = set()

    def stop(self, reason: str) -> None:
        """Tell the work to stop: its running query is interrupted, its next `check` raises Stopped."""
        with self._lock:
            if self.reason is None:
                self.reason = reason
            watchers = list(self._watchers)
        for wake in watchers:
            wake()

    def check(self) -> None:
        """Stopped if the work was told to stop, OutOfTime if its budget is spent; else nothing."""
        if self.reason is not None:
            raise Stopped(self.reason)
        if self.deadline is not None and time.perf_counter() >= self.deadline:
            assert self.budget_s is not None
            raise OutOfTime(self.budget_s)

    @contextmanager
    def watched_by(self, wake: Callable[[], None]) -> Iterator[None]:
        """Call `wake` when the work is told to stop while in this block (at once if it already was); it
        runs on the thread that tells it to stop (the event loop's), so it must be quick and never block."""
        with self._lock:
            self._watchers.add(wake)
            stopped = self.reason is not None
        if stopped:
            wake()
        try:
            yield
        finally:
            with self._lock:
                self._watchers.discard(wake)


def unless_stopped(call: Callable[[], T], stop: Stop, thread_name: str) -> T:
    """call()'s answer (or its exception), waited for until the work is told to stop: then Stopped at once, and
    the call goes on to its end on its own daemon thread (`thread_name`), its answer dropped. For a blocking
    call with no hold to cut it by (boto3's): its own timeout must bound how long that thread lives."""
    stop.check()
    answer: Future[T] = Future()

    def run() -> None:
        try:
            answer.set_result(call())
        except BaseException as e:  # handed to the waiting thread, which raises it
            answer.set_exception(e)

    woken = threading.Event()
    answer.add_done_callback(lambda _: woken.set())
    with stop.watched_by(woken.set):
        threading.Thread(target=run, name=thread_name, daemon=True).start()
        woken.wait()
    if answer.done():
        return answer.result()
    assert stop.reason is not None  # only a stop wakes the wait before the answer
    raise Stopped(stop.reason)
