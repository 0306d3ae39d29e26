"""Smaller bulk bodies are checked on one ingest thread, and those that wait for it are checked together, as the hot
store commits the writes that wait for its writer together (a group commit, for the check).

Shippers send batches of a few thousand records (Filebeat 1,600 documents, the OpenTelemetry SDK 512, Fluent Bit
what its buffer holds), and a body costs its check about a millisecond whatever its size: the JSON reader's setting
up and some sixty column calls (ingest_arrow). Checked one by one on both ingest threads, POST /logs's
1,600-record bodies took 1.9-3.0 us of their CPU per record, against 1.4-1.5 for 10,000-record bodies; and with
two threads free for four senders a body rarely waited (of 625, 356 were checked alone). So bodies under
JOIN_BELOW_BYTES go to one thread (JOINING_THREADS), and those that arrive while it is at work wait and are then
checked in one pass (ingest_arrow.checked_tables): 1.5 us a record for three of them in process. Each body is
still its own batch, all in or all refused, answered with its own records, written as it would be alone. When they
cannot be checked as one (a bad record in one of them, a client id, a body not written as compact JSON), each is
checked alone, as if none had waited with it, and the error a body gets is its own. Bigger bodies, and every other
protocol's, are checked on the ingest threads one by one, as before.

Measured (bench/protocols_ingest.py, 1M records, 4 senders, alternated with the code before): native-1600 250-268k
records/s at 5.2-5.6 us of server CPU a record before, 288-314k at 4.1-4.5 after; 10,000-record bodies the same.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")

# Bodies from this size (as received) are checked alone: a 10,000-record body (~2 MB) pays its fixed cost once over
# enough records, and joining it to others would only copy it.
JOIN_BELOW_BYTES = 1 << 20
# Threads checking the smaller bodies: one, so that those that arrive meanwhile wait and are checked together; it
# checks ~650,000 records a second, joined, and leaves the other ingest thread to the bigger bodies.
JOINING_THREADS = 1
# What a joined check takes at most: some twenty bodies of Filebeat's 1,600 documents, in one JSON read.
JOINED_BYTES = 8 << 20


@dataclass(slots=True)
class _Body(Generic[T]):
    read: Callable[[], bytes]  # the body as the check takes it (inflated, say), on the ingest thread
    size: int  # as received
    done: Future[T]


class JoinedChecks(Generic[T]):
    """Bodies of one kind (one route's), checked on the executor's threads by `check_alone(body, contended)`, or
    several at once by `check_joined(bodies)` (None: each alone then), on JOINING_THREADS of them at a time."""

    def __init__(
        self,
        executor: Executor,
        check_alone: Callable[[bytes, bool], T],
        check_joined: Callable[[list[bytes]], list[T] | None],
    ) -> None:
        self._executor = executor
        self._check_alone = check_alone
        self._check_joined = check_joined
        self._lock = threading.Lock()  # guards what follows
        self._waiting: list[_Body[T]] = []
        self._jobs = 0

    def submit(self, read: Callable[[], bytes], size: int) -> Future[T]:
        """Check a body of `size` bytes as received (read() gives it as checked): the future resolves to the
        check's answer, or raises its error."""
        done: Future[T] = Future()
        with self._lock:
            self._waiting.append(_Body(read, size, done))
            if self._jobs == JOINING_THREADS:
                return done  # a thread at work takes it when it is done
            self._jobs += 1
        try:
            self._executor.submit(self._check_waiting)
        except BaseException:  # (the executor is shut down: the server is stopping)
            with self._lock:
                self._jobs -= 1
                self._waiting.remove(_Body(read, size, done))
            raise
        return done

    def _check_waiting(self) -> None:
        """Check the bodies waiting, joined where they can be, until none waits."""
        try:
            while True:
                with self._lock:
                    if not self._waiting:
                        self._jobs -= 1
                        return
                    taken = self._take()
                    contended = len(taken) > 1 or bool(self._waiting)  # (ingest_arrow's read: see ingest.parse_batch)
                try:
                    self._check(taken, contended)
                finally:  # (whatever cut the check short, none of its bodies waits for good)
                    for body in taken:
                        if not body.done.done():
                            body.done.set_exception(RuntimeError("the body's check was cut short; send it again"))
        except BaseException:  # (the next body submitted starts a job for those still waiting)
            with self._lock:
                self._jobs -= 1
            raise

    def _check(self, taken: list[_Body[T]], contended: bool) -> None:
        """Answer each body taken: checked with the others where they can be, else alone."""
        bodies: list[tuple[bytes, Future[T]]] = []
        for body in taken:
            try:
                bodies.append((body.read(), body.done))
            except Exception as e:  # (a body's own error: not inflated, too large)
                body.done.set_exception(e)
        small = [(body, done) for body, done in bodies if len(body) < JOIN_BELOW_BYTES]
        if len(small) > 1 and self._answered_joined(small):
            bodies = [(body, done) for body, done in bodies if len(body) >= JOIN_BELOW_BYTES]
        for body, done in bodies:
            try:
                done.set_result(self._check_alone(body, contended))
            except Exception as e:  # (the check's refusal is the body's answer)
                done.set_exception(e)

    def _take(self) -> list[_Body[T]]:
        """The waiting bodies to check now, oldest first, up to JOINED_BYTES as received (at least one); called
        holding the lock."""
        size = count = 0
        for body in self._waiting:
            if count and size + body.size > JOINED_BYTES:
                break
            size += body.size
            count += 1
        taken, self._waiting = self._waiting[:count], self._waiting[count:]
        return [body for body in taken if body.done.set_running_or_notify_cancel()]

    def _answered_joined(self, bodies: list[tuple[bytes, Future[T]]]) -> bool:
        """Check the bodies as one and answer each; False when they cannot be (nothing answered)."""
        try:
            answers = self._check_joined([body for body, _ in bodies])
        except Exception:  # (each body's check alone says what is wrong with it)
            return False
        if answers is None:
            return False
        for (_, done), answer in zip(bodies, answers, strict=True):
            done.set_result(answer)
        return True
