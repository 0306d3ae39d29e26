"""Users' SQL in processes of their own, so that no query can take the server's memory.

DuckDB's memory limit bounds what its operators hold (sorts, joins, aggregates spill beyond it), not the
values an expression makes: `replace(message, 'a', <10,000 characters>)` over a million records, or a chain
of CTEs each doubling a text, grows until the host has no memory left, and in the server's own process that
was the end of ingest too. No check of the SQL can catch every such expression, so the queries users write
(POST /query, and the questions `ask` runs) that may make values larger than what they read (users_sql.py) run
in worker processes instead, one query at a time each; the server watches how much memory they hold, and one
that takes the queries' share past the bound is killed.
Its answer is a 400 query_too_large; the server, and every other query, goes on. The server's own reads
(recent, search, histograms) and saved queries (rules, Amplify reports) stay on its in-process engine: they
are SQL the server or its operator wrote.

A worker builds the same QueryEngine over the same data dir: hot.db read through connections that cannot
write (store/sqlite_reader.py), the lake's files, the waiting bulk batches and alerts.db, so it answers
exactly as the server's engine would. Workers are forked from a fork server that imported the engine once
(the first worker's start takes about a second, the next a few hundred milliseconds), stay for the next query
while they are used, and exit after WORKER_IDLE_S without one.
"""

from __future__ import annotations

import contextlib
import functools
import multiprocessing
import os
import select
import signal
import threading
import time
from dataclasses import replace
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from loglake.lake.objectstore import LocalObjectStore, ObjectStore, S3ObjectStore
from loglake.lake.query_answers import QueryBusy, QueryResult
from loglake.lake.query_limits import QueryLimits
from loglake.lake.query_worker_main import WorkerSpec, raised, serve
from loglake.lake.sql_guard import QueryError
from loglake.lake.stop import Stop
from loglake.worker_processes import WORKER_IDLE_S

# How often the memory of the running queries is looked at: a value an expression makes grows by some hundreds
# of MiB in that time at most, which is what the bound may be passed by before the query is killed.
WATCH_EVERY_S = 0.02
# The running queries together may hold this many times --query-memory-mb beyond what their workers held idle:
# DuckDB's own limit is the memory limit itself, and what it holds besides its buffers (the rows fetched, the
# allocator's slack) must not get a query killed that DuckDB would have answered or spilled.
MEMORY_BOUND_FACTOR = 1.5
WORKER_START_S = 60.0  # a worker that has not built its engine by then is stuck (hot.db locked, the disk hung)
# A worker that has not answered this long after the query's own timeout is stuck (it never saw DuckDB's
# interrupt): killed.
ANSWER_GRACE_S = 5.0
_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


def worker_spec(
    hot_db: Path, lake: ObjectStore, work_dir: Path, limits: QueryLimits, alerts_dir: Path | None
) -> WorkerSpec:
    """The spec of workers that answer as an engine over `hot_db` and `lake` does (`limits.spill_mb` set: each
    worker's engine would otherwise find its own share of the free disk)."""
    limits = replace(limits, concurrency=1)  # (one query at a time each)
    if isinstance(lake, LocalObjectStore):
        return WorkerSpec(hot_db, work_dir, limits, lake.root, None, alerts_dir)
    assert isinstance(lake, S3ObjectStore)
    meta = lake.client.meta
    s3 = (lake.bucket, lake.prefix, meta.endpoint_url, meta.region_name)
    return WorkerSpec(hot_db, work_dir, limits, None, s3, alerts_dir)


class QueryWorkers:
    """Runs `query` as QueryEngine.query does, each query in a worker process of its own (see the module's
    docstring). Each call takes an idle worker or starts one: the callers bound how many run at once (the
    app's query slots)."""

    def __init__(self, spec: WorkerSpec, memory_mb: int) -> None:
        self.spec = spec
        self.memory_bound = int(memory_mb * MEMORY_BOUND_FACTOR * 2**20)
        self._idle: list[_Worker] = []
        self._running: set[_Worker] = set()
        self._lock = threading.Lock()
        self._watching = threading.Condition(self._lock)
        self._watcher: threading.Thread | None = None
        self._closed = False

    def query(
        self,
        sql: str,
        *,
        limit: int | None = None,
        timeout_seconds: float | None = None,
        explain: bool = False,
        stop: Stop | None = None,
    ) -> QueryResult:
        if stop is not None:
            stop.check()
        worker = self._take()
        timeout = self.spec.limits.seconds_for(timeout_seconds)
        give_up_at = time.monotonic() + timeout + ANSWER_GRACE_S
        try:
            worker.connection.send((sql, limit, timeout_seconds, explain))
            while not worker.connection.poll(WATCH_EVERY_S) and worker.alive():
                if stop is not None:
                    stop.check()  # (Stopped or OutOfTime: the worker is killed below)
                if time.monotonic() > give_up_at:
                    raise QueryError("query_timeout", f"the query ran longer than {timeout:g} s and was stopped")
            kind, answer = worker.connection.recv()
        except (EOFError, OSError):  # the worker ended before it answered
            worker.kill()
            if worker.killed_for_memory:
                raise self._too_large() from None
            raise QueryBusy("the query's worker process ended before it answered (killed?)") from None
        except BaseException:
            worker.kill()
            raise
        finally:
            self._give_back(worker)
        if kind == "ok":
            return answer
        raise raised(kind, answer)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            workers = [*self._idle, *self._running]
            self._idle.clear()
            self._watching.notify()
        for worker in workers:
            worker.stop()

    def _too_large(self) -> QueryError:
        bound_mb = self.memory_bound // 2**20
        return QueryError(
            "query_too_large",
            f"the query held more than the {bound_mb:,} MiB of memory the queries running at once may hold "
            f"(query_memory_mb and half again) and was stopped; narrow it (a date or timestamp range), make "
            "smaller values (a long text repeated, replaced or concatenated, for every record), or retry later",
        )

    def _take(self) -> _Worker:
        worker, gone = None, []
        with self._lock:
            if self._closed:
                raise QueryBusy("the server is stopping")
            while self._idle and worker is None:
                worker = self._idle.pop()
                if not worker.alive() or time.monotonic() - worker.idle_since >= WORKER_IDLE_S:
                    gone.append(worker)
                    worker = None
        for each in gone:
            each.stop()
        if worker is None:
            worker = _Worker.start(self.spec)
        with self._lock:
            self._running.add(worker)
            if self._watcher is None:
                self._watcher = threading.Thread(target=self._watch, name="loglake-query-memory", daemon=True)
                self._watcher.start()
            self._watching.notify()
        return worker

    def _give_back(self, worker: _Worker) -> None:
        """An idle worker again; one that kept much of what its queries took (a big sort's buffers, its allocator's
        slack) is stopped instead: what a query takes is counted from what its worker held idle, which must not
        creep up from query to query."""
        rss = worker.rss()
        kept_much = rss - worker.started_rss > self.memory_bound // 4
        with self._lock:
            self._running.discard(worker)
            if worker.alive() and not self._closed and not kept_much:
                worker.idle_rss = rss
                worker.idle_since = time.monotonic()
                self._idle.append(worker)
                return
        worker.stop()

    def _watch(self) -> None:
        """While queries run: the memory their workers took since they were idle, together; past the bound,
        the worker that took the most is killed (its query answers query_too_large). Meanwhile, workers idle
        for WORKER_IDLE_S are stopped."""
        while True:
            with self._lock:
                if self._closed:
                    return
                if self._running:
                    taken = {worker: worker.memory_taken() for worker in self._running}
                    if sum(taken.values()) > self.memory_bound:
                        largest = max(taken, key=taken.__getitem__)
                        largest.killed_for_memory = True
                        largest.kill()
                now = time.monotonic()
                idle_long = [w for w in self._idle if now - w.idle_since >= WORKER_IDLE_S]
                self._idle = [w for w in self._idle if w not in idle_long]
                if not idle_long:
                    self._watching.wait(WATCH_EVERY_S if self._running else WORKER_IDLE_S / 10)
            for worker in idle_long:
                worker.stop()


class _Worker:
    def __init__(self, process: Any, connection: Connection) -> None:
        self.process = process
        self.connection = connection
        self.idle_rss = self.started_rss = self.rss()  # (its engine built: what a query takes counts from here)
        self.idle_since = time.monotonic()
        self.killed = False
        self.killed_for_memory = False
        # The worker's own handle (Linux): `process` sees it through the fork server, and once that is gone (killed)
        # takes the worker for ended and sends it no signal, though it runs on.
        self._pidfd = os.pidfd_open(process.pid) if hasattr(os, "pidfd_open") else None
        self._closing = threading.Lock()

    @classmethod
    def start(cls, spec: WorkerSpec) -> _Worker:
        context = _forking()
        ours, theirs = context.Pipe()
        process = context.Process(target=serve, args=(theirs, spec), name="loglake-query", daemon=True)
        process.start()
        theirs.close()
        try:
            if not ours.poll(WORKER_START_S):
                process.kill()
                raise EOFError
            ready = ours.recv()  # once its engine is built
        except EOFError:
            process.join(5)
            raise QueryBusy("a query worker process could not start; see the server's log") from None
        if ready != "ready":
            process.join(5)
            raise QueryBusy(f"a query worker process could not start: {ready}")
        return cls(process, ours)

    def alive(self) -> bool:
        return not self.killed and not self._ended(0)

    def _ended(self, wait_s: float) -> bool:
        pidfd = self._pidfd
        if pidfd is None:
            self.process.join(wait_s)
            return not self.process.is_alive()
        # (readable once the process ended; poll, not select, which refuses a descriptor numbered past 1023: one
        # the server holding as many connections gave made every worker look ended)
        with contextlib.suppress(OSError, ValueError):
            ended = select.poll()
            ended.register(pidfd, select.POLLIN)
            return bool(ended.poll(wait_s * 1000))
        return True  # (closed by stop(): ended)

    def rss(self) -> int:
        try:
            with open(f"/proc/{self.process.pid}/statm", "rb") as statm:
                return int(statm.read().split()[1]) * _PAGE_BYTES
        except (OSError, ValueError, IndexError):
            return 0

    def memory_taken(self) -> int:
        return max(0, self.rss() - self.idle_rss)

    def kill(self) -> None:
        self.killed = True  # (at once: the process may still be there a moment)
        with contextlib.suppress(OSError, ValueError):
            if self._pidfd is None:
                self.process.kill()
            else:
                signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)

    def stop(self) -> None:
        """Ended: asked to exit (it closes its end and goes), killed if it has not within a moment."""
        with contextlib.suppress(OSError):
            self.connection.close()
        if not self._ended(2):
            self.kill()
            self._ended(2)
        self.process.join(2)  # (the fork server's word that it ended)
        with self._closing:  # (once: stop() may be called by the query's thread and close() both)
            pidfd, self._pidfd = self._pidfd, None
        if pidfd is not None:
            os.close(pidfd)


@functools.cache
def _forking() -> Any:
    """Workers forked from a process that imported what they run, once (multiprocessing's fork server): a
    worker spawned afresh imports DuckDB, Arrow and the engine again, about a second of CPU each; forked, it
    starts in some milliseconds. The fork server has no threads to fork in a broken state (the server has)."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(
        [
            "loglake.lake.query_worker_main",
            "loglake.lake.query",
            "loglake.lake.query_worker_start",
            "loglake.store.sqlite_reader",
            "loglake.alerts.table",
        ]
    )
    return context
