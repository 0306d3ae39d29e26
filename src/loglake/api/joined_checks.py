"""Smaller bulk bodies are checked on one ingest thread, and those that wait for it are checked together, as the hot
store commits the writes that wait for its writer together (a group commit, for the check).

Shippers send batches of a few thousand records (Filebeat 1,600 documents, Fluent Bit what its buffer holds), and a
body costs its check about a millisecond whatever its size: the JSON reader's setting up and some sixty column calls
(ingest_arrow). Checked one by one on both ingest threads, POST /logs's 1,600-record bodies took 1.9-3.0 us of their
CPU per record, against 1.4-1.5 for 10,000-record bodies; and with two threads free for four senders a body rarely
waited (of 625, 356 were checked alone). So bodies from OFF_LOOP_BODY_BYTES to JOIN_BELOW_BYTES (as sent: a
compressed one is checked as before) go to one thread (JOINING_THREADS), and those that arrive while it is at work
wait and are then checked in one pass (ingest_arrow.checked_tables, elastic_routes.parsed_bulks): 1.5 us a record
for three of them in process. Each body is still its own batch, all in or all refused, answered with its own
records and written as its own table; the one difference is the order of an attributes object's keys, which the
first record of the joined bodies holding them gives (JSON objects are unordered; a body read by Arrow alone has
its own first record's order). When they cannot be checked as one (a bad record in one of them, a client id, a body
not written as compact JSON, one too small for a table alone), each is checked alone, as if none had waited with
it, and the error a body gets is its own.

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

# Bodies from this size are checked alone, on either ingest thread: a 10,000-record body (~2 MB) pays its fixed cost
# once over enough records, and joining it to others would only copy it.
JOIN_BELOW_BYTES = 1 << 20
# Threads checking the smaller bodies: one, so that those that arrive meanwhile wait and are checked together; it
# checks ~650,000 records a second, joined, and leaves the other ingest thread to the bigger bodies.
JOINING_THREADS = 1
# What a joined check takes at most: some twenty bodies of Filebeat's 1,600 documents, in one JSON read.
JOINED_BYTES = 8 << 20


@dataclass(slots=True)
class _Body(Generic[T]):
    body: bytes
    done: Future[T]


class JoinedChecks(Generic[T]):
    """Bodies of one kind (one route's, each under JOIN_BELOW_BYTES), checked on the executor's threads by
    `check_alone(body)`, or several at once by `check_joined(bodies)` (None: each alone then), on JOINING_THREADS
    of them at a time."""

    def __init__(
        self,
        executor: Executor,
        check_alone: Callable[[bytes], T],
        check_joined: Callable[[list[bytes]], list[T] | None],
    ) -> None:
        self._executor = executor
        self._check_alone = check_alone
        self._check_joined = check_joined
        self._lock = threading.Lock()  # guards what follows
        self._waiting: list[_Body[T]] = []
        self._jobs = 0

    def submit(self, body: bytes) -> Future[T]:
        """Check a body: the future resolves to the check's answer, or raises its error."""
        done: Future[T] = Future()
        with self._lock:
            self._waiting.append(_Body(body, done))
            if self._jobs == JOINING_THREADS:
                return done  # a thread at work takes it when it is done
            self._jobs += 1
        try:
            self._executor.submit(self._check_waiting)
        except BaseException:  # (the executor is shut down: the server is stopping)
            with self._lock:
                self._jobs -= 1
                self._waiting = [waiting for waiting in self._waiting if waiting.done is not done]
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
                try:
                    self._check(taken)
                finally:  # (whatever cut the check short, none of its bodies waits for good)
                    for body in taken:
                        if not body.done.done():
                            body.done.set_exception(RuntimeError("the body's check was cut short; send it again"))
        except BaseException:  # (a job goes on for the bodies that came meanwhile)
            with self._lock:
                go_on = bool(self._waiting)
                if not go_on:
                    self._jobs -= 1
            if go_on:
                self._executor.submit(self._check_waiting)
            raise

    def _check(self, taken: list[_Body[T]]) -> None:
        """Answer each body taken: checked with the others where they can be, else alone."""
        if len(taken) > 1 and self._answered_joined(taken):
            return
        for body in taken:
            try:
                body.done.set_result(self._check_alone(body.body))
            except Exception as e:  # (the check's refusal is the body's answer)
                body.done.set_exception(e)

    def _take(self) -> list[_Body[T]]:
        """The waiting bodies to check now, oldest first, up to JOINED_BYTES (at least one); called holding the
        lock."""
        size = count = 0
        for body in self._waiting:
            if count and size + len(body.body) > JOINED_BYTES:
                break
            size += len(body.body)
            count += 1
        taken, self._waiting = self._waiting[:count], self._waiting[count:]
        return [body for body in taken if body.done.set_running_or_notify_cancel()]

    def _answered_joined(self, taken: list[_Body[T]]) -> bool:
        """Check the bodies as one and answer each; False when they cannot be (nothing answered)."""
        try:
            answers = self._check_joined([body.body for body in taken])
        except Exception:  # (each body's check alone says what is wrong with it)
            return False
        if answers is None or len(answers) != len(taken):
            return False
        for body, answer in zip(taken, answers, strict=True):
            body.done.set_result(answer)
        return True
