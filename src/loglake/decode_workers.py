"""Request bodies decoded in worker processes, so that decoding runs beside the server's own Python: one pool for
the protocols that take big bodies, each through an entry point of its own (today OTLP's exports and Loki's pushes:
Elasticsearch bulks and Splunk HEC batches were measured through it and left in process, see below).

Decoding a body (protobuf, JSON, NDJSON, then the protocol's mapping) makes a Python object per field read, all
of it holding the GIL: in the server's process it took turns with the HTTP event loop and the records' check,
and the server used ~1.3 of the 2 cores, as native POST /logs does, with more work per record. A worker process
has a GIL of its own. It takes the body as sent (inflating gzip itself, where the protocol's entry point does)
and hands back the records' columns as one Arrow record batch (IPC, `packed`), which the server reads without a
Python object per value: the server's process only checks and writes them, as it does a native bulk batch.

Each protocol gives its own entry point, a function of its module that the worker runs (otlp.worker_decoded,
loki.worker_decoded): it returns what its route needs (its records as `packed` hands them over, a refusal's text),
None for a body it leaves to the server's process (one it cannot inflate: the in-process path answers that error).
Measured with one worker on 2 cores (bench/protocols_ingest.py, 1M records, 4 senders, alternated pairs): Loki's
pushes went from 0.68-0.76x native's rate to 0.78-0.83x (machine idle 31-35 % -> 14-19 %, ~0.5 us more CPU a
record). Splunk HEC batches through it (entry point and route as Loki's) went no faster (0.72-0.75x either way),
for ~1 us more CPU a record; Elasticsearch bulks (branch s17/esw; items handed back as their action line when alike)
gained a little on Filebeat's 1,600 documents (0.31x -> 0.34-0.35x) and lost on 10 MB bulks, whose Arrow reading
already runs outside the GIL (0.54-0.60x -> 0.53-0.54x): both stay decoded in process.

How many: config.Settings.decode_processes (one on 2 cores, where the server's own process, decoding alone, left ~30 %
of them idle: see there).

Started lazily, at the first body worth it (the route's min_bytes), spawned (the server runs threads), each gone
with the server (worker_processes.spawned_pool, as the flush's and the compaction's workers), and gone once the pool
has had no body for WORKER_IDLE_S (as the merge worker: the next body worth it starts it again). A body the workers
do not take is decoded in the server's process, as before: a small one (IPC's fixed cost would be more than the
decoding), one sent while MOST_IN_FLIGHT_PER_PROCESS are already waiting per worker (a bound on the bodies the
pool holds), one whose worker died (the pool is started again for the next), one a worker has not answered within
MOST_SECONDS (a worker stopped, swapping or stuck: it is killed, as if it had died, and its bodies are decoded in
process: no request waits on a worker without bound, nor does the server's stop), and every body when the pool
cannot start (one warning; then the server decodes in process).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import fields
from typing import Any

import pyarrow as pa

from loglake.protocols.columns import RecordColumns
from loglake.worker_processes import (
    IDLE_STOP_GRACE_S,
    WORKER_IDLE_S,
    kill_workers,
    pool_workers,
    spawned_pool,
    started_timer,
    stop_pool,
)

log = logging.getLogger("loglake.decode")

# Bodies (as sent) from this size go to a worker by default; smaller ones are decoded in process, where a round
# trip to a worker (pickling the body, a pipe each way, the IPC batch) would cost more than it saves.
MIN_BODY_BYTES = 256 * 1024
GZIP_SHRINKS = 8  # (log records inflate 5-10 times: a gzipped body is worth it from an eighth of that size)
# Bodies in a worker's queue at most (one decoding, one waiting to): more would only hold more bodies. With 4 senders
# and one worker about half of OTLP's 8,192-record exports are then decoded in the server's process; 1 and 4 were
# both slower over two paired 1M runs each (4 also cost more CPU per record: its queued bodies wait on one core).
MOST_IN_FLIGHT_PER_PROCESS = 2
# Seconds a body may take in a worker before the server decodes it itself and kills the workers as dead: far
# over a body's decoding on a busy machine (a 10 MiB one takes well under a second), and under the 10 s a
# stopping server gives its requests (server.py), so that none of them is cut off waiting on a worker.
MOST_SECONDS = 5.0
# Pools whose workers die this many times in a row before one of them has started would only die again (the
# pool is started anew for each body meanwhile): the server decodes in process from then on. A pool that started
# and was then killed from outside (or stopped, gave_up_on) counts once, until the next one starts.
MOST_BROKEN_IN_A_ROW = 3
# A worker still decoding when the server stops has this long, then is killed: nothing waits for its bodies.
STOP_GRACE_S = 1.0


class DecodeWorkers:
    """A pool of `processes` decode workers (0: none, every body decoded in process). The pool exits once it has
    had no body for `idle_s` (each worker holds ~85 MiB), and the next body worth it starts it again."""

    def __init__(self, processes: int, most_seconds: float = MOST_SECONDS, idle_s: float = WORKER_IDLE_S) -> None:
        self.processes = processes
        self.most_seconds = most_seconds  # what a route waits for a worker's answer (then: gave_up_on)
        self.idle_s = idle_s
        self._in_flight: list[Future] = []  # bodies given to the pool (those done are dropped at the next)
        self._last_body = 0.0  # when the pool started or last took a body (time.monotonic)
        self._idle_exit: threading.Timer | None = None
        self._pool: ProcessPoolExecutor | None = None
        self._starting: list[Future] = []  # a task per worker of the pool, done once it has started
        # Bodies in the pool's hands (released by the future's callback, on the pool's own thread: our lock
        # there could wait on the pool's while submit() holds ours and waits on the pool's).
        self._room = threading.BoundedSemaphore(max(processes, 0) * MOST_IN_FLIGHT_PER_PROCESS or 1)
        self._broken_in_a_row = 0  # pools whose workers died, since one started
        self._lock = threading.Lock()

    def submit(
        self, decode: Callable[..., Any], body: bytes, *args: Any, gzip: bool = False, min_bytes: int = MIN_BODY_BYTES
    ) -> Future | None:
        """decode(body, *args) by a worker (its answer for result()), or None: decode the body in process. The
        body is worth a worker from min_bytes as sent (from an eighth of that gzipped)."""
        if self.processes <= 0 or len(body) < (min_bytes // GZIP_SHRINKS if gzip else min_bytes):
            return None
        with self._lock:
            if not self._started() or not self._room.acquire(blocking=False):
                return None
            try:
                future = self._pool.submit(decode, body, *args)
            except BrokenProcessPool:  # a worker died (killed, out of memory) since the last body
                log.warning(
                    "a decode worker died (killed, or out of memory): its bodies were decoded in the server's"
                    " process, and the pool starts again"
                )
                self._broken()
                future = None
            except RuntimeError:  # (shutting down)
                future = None
            if future is not None:
                self._in_flight = [*(f for f in self._in_flight if not f.done()), future]
                self._last_body = time.monotonic()
        if future is None:
            self._room.release()
            return None
        future.add_done_callback(lambda _: self._room.release())
        return future

    def _started(self) -> bool:
        """Whether the pool's workers are ready for bodies; starts a pool when there is none. A worker's start
        (spawning Python, importing the decoders: ~0.3 s of CPU, seconds on a busy machine) would hold the
        bodies given to it meanwhile: they are decoded in process until one worker has started."""
        if self._pool is None:
            try:
                self._pool = spawned_pool(self.processes)
            except (OSError, RuntimeError) as e:  # no semaphores (no /dev/shm)
                self._give_up(e)
                return False
            try:
                # (a task each: a pool spawns a worker for a task while none is idle, so all start now)
                self._starting = [self._pool.submit(_ready) for _ in range(self.processes)]
            except (OSError, RuntimeError):  # a worker that died as it was spawned (a broken pipe, BrokenProcessPool)
                self._broken()
                return False
            self._in_flight, self._last_body = list(self._starting), time.monotonic()  # (idle once started)
            if self._idle_exit is None:
                self._idle_exit = started_timer(self.idle_s, self._exit_if_idle)
        for started in self._starting:
            if started.done():
                if started.exception() is None:
                    self._broken_in_a_row = 0
                    return True
                self._broken()  # (its workers died as they started)
                return False
        return False

    def _exit_if_idle(self) -> None:
        """(The idle timer) stop the pool if it has had no body for idle_s, else look again when it may have."""
        with self._lock:
            if self._idle_exit is not threading.current_thread():
                return  # (cancelled, or replaced by a later one)
            self._idle_exit = None
            if self._pool is None:
                return  # (broken, or given up: the next pool starts a timer of its own)
            quiet_s = time.monotonic() - self._last_body
            if any(not f.done() for f in self._in_flight):  # (a body, or a start, under way)
                self._idle_exit = started_timer(self.idle_s, self._exit_if_idle)
                return
            if quiet_s < self.idle_s:
                self._idle_exit = started_timer(self.idle_s - quiet_s, self._exit_if_idle)
                return
            pool, self._pool, self._in_flight = self._pool, None, []
        stop_pool(pool, IDLE_STOP_GRACE_S, "decode workers")

    def _cancel_idle_exit(self) -> None:
        if self._idle_exit is not None:
            self._idle_exit.cancel()
            self._idle_exit = None

    def gave_up_on(self, future: Future) -> None:
        """A body whose worker has not answered within most_seconds: the route decodes it in process. The pool's
        workers are killed (which of them holds it is not known), as if they had died: their other bodies are
        decoded in process too, and the pool starts again for the next body."""
        with self._lock:
            if future.done() or self._pool is None:
                return
            log.warning(
                "a decode worker did not answer within %g s (stopped, swapping, or stuck): the workers were"
                " killed, their bodies decoded in the server's process, and the pool starts again",
                self.most_seconds,
            )
            kill_workers(pool_workers(self._pool))  # (each body they held: BrokenProcessPool, result() None)
            self._broken()

    def _broken(self) -> None:
        """A pool a worker died in: started anew for a later body, unless pools died MOST_BROKEN_IN_A_ROW times
        in a row before one of them started (they would only die again)."""
        self._broken_in_a_row += 1
        if self._broken_in_a_row >= MOST_BROKEN_IN_A_ROW:
            self._give_up(f"the workers died {self._broken_in_a_row} times in a row")
        elif self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def _give_up(self, error: object) -> None:
        log.warning("request bodies are decoded in the server's process: the decode workers do not start (%s)", error)
        self._stop()

    def _stop(self) -> None:
        """No body to the workers from now on, and the pool gone. Nothing waits for its bodies in flight: a route
        waits for one at most most_seconds, then decodes it itself. A worker still at work is killed after
        STOP_GRACE_S (a stuck one would hold the server's exit, which joins the pool's threads)."""
        self.processes = 0
        self._cancel_idle_exit()
        if self._pool is not None:
            pool, self._pool = self._pool, None
            stop_pool(pool, STOP_GRACE_S, "decode workers")

    def result(self, future: Future) -> Any:
        """What the entry point of a submitted body answered; None: decode it in process (its worker died, or
        raised, or the entry point left it to the server's process)."""
        try:
            return future.result()
        # BrokenProcessPool: a worker killed, each body it held comes here, none lost (the pool is started anew
        # when the next body finds it broken); anything else a worker raised, the in-process path answers.
        except Exception:
            return None

    def close(self) -> None:
        with self._lock:
            self._stop()


def _ready() -> None:
    """In a worker: nothing, once it has started (imported this module, pyarrow and the columns' check with it)."""


# -- a body's records, handed over from a worker ---------------------------------------------------------------

_NAMES = tuple(f.name for f in fields(RecordColumns) if f.name not in ("ids", "refused", "holders"))
# The Arrow type of a column's values (others are text). Times that are ISO-8601 text stay a list: the check reads
# a list of them in more forms than an Arrow array of them (ingest_columns._timestamps).
_KINDS = {"timestamps": pa.int64(), "attributes": pa.binary()}


def packed(found: RecordColumns) -> tuple[bytes, dict[str, list], RecordColumns]:
    """In a worker: the columns as one Arrow IPC stream of a record batch; those that are not Arrow's (a time
    past int64 ms, times of both kinds, text with a lone surrogate, which the check names) as the lists they
    are; and `found` without any column, for its ids, refused rows and holders."""
    arrays: dict[str, pa.Array] = {}
    lists: dict[str, list] = {}
    for name in _NAMES:
        column = getattr(found, name)
        array = _arrow(column, _KINDS.get(name, pa.string()))
        if array is None:
            lists[name] = column
        else:
            arrays[name] = array
    sink = pa.BufferOutputStream()
    batch = pa.RecordBatch.from_arrays(list(arrays.values()), names=list(arrays))
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    rest = RecordColumns(**dict.fromkeys(_NAMES, ()), ids=found.ids, refused=found.refused, holders=found.holders)
    return sink.getvalue().to_pybytes(), lists, rest


def unpacked(found: tuple[bytes, dict[str, list], RecordColumns]) -> RecordColumns:
    """In the server: the columns `packed` handed over, Arrow's read without a Python object per value."""
    stream, lists, rest = found
    batch = pa.ipc.open_stream(stream).read_next_batch()
    for name, column in zip(batch.schema.names, batch.columns, strict=True):
        setattr(rest, name, column)
    for name, column in lists.items():
        setattr(rest, name, column)
    return rest


def _arrow(column: list | pa.Array | pa.ChunkedArray, kind: pa.DataType) -> pa.Array | None:
    """A column as Arrow, as the mapping made it if it did (the attributes' dictionary array among them); None
    when its values are not all of `kind`."""
    if isinstance(column, pa.ChunkedArray):
        return column.combine_chunks()
    if isinstance(column, pa.Array):
        return column
    try:
        return pa.array(column, kind)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, UnicodeEncodeError, TypeError):
        return None
