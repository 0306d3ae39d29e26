"""OTLP exports decoded in worker processes, so that decoding runs beside the server's own Python.

Decoding an export (otlp.columns: upb reading protobuf or msgspec reading OTLP/JSON, then the mapping) makes
a Python object per field read, all of it holding the GIL: in the server's process it took turns with the
HTTP event loop and the records' check, and the server used ~1.3 of the 2 cores, as native POST /logs does,
with more work per record. A worker process has a GIL of its own. It takes the body as sent (it inflates
gzip itself, which then leaves the server's process too) and hands back the export's columns as one Arrow
record batch (IPC), which the server reads without a Python object per value: the server's process only
checks and writes them, as it does a native bulk batch after its parse.

Started lazily, at the first export worth it (MIN_BODY_BYTES), spawned (the server runs threads), each
gone with the server (worker_processes.spawned_pool, as the flush's and the compaction's workers). An export the
workers cannot take is decoded in the server's process, as before: a small one (IPC's fixed cost would be
more than the decoding), one sent while MOST_IN_FLIGHT_PER_PROCESS are already waiting per worker (a bound
on the bodies the pool holds), one whose worker died (the pool is started again for the next), a body the
worker cannot inflate (the in-process path answers its error, as before), and every export when the pool
cannot start (one warning; then the server decodes in process).
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import pyarrow as pa

from loglake import content_encoding
from loglake.protocols import otlp
from loglake.protocols.columns import RecordColumns
from loglake.worker_processes import spawned_pool

log = logging.getLogger("loglake.otlp")

# Bodies (as sent) from this size go to a worker; smaller ones are decoded in process, where a round trip
# to a worker (pickling the body, a pipe each way, the IPC batch) would cost more than it saves.
MIN_BODY_BYTES = 256 * 1024
MIN_GZIP_BODY_BYTES = MIN_BODY_BYTES // 8  # (log records inflate 5-10 times)
# Exports in a worker's queue at most (one decoding, one waiting to): more would only hold more bodies.
MOST_IN_FLIGHT_PER_PROCESS = 2
# Workers that die this many times in a row, without one export decoded, would only die again (the pool is
# started anew for each export meanwhile): the server decodes in process from then on.
MOST_BROKEN_IN_A_ROW = 3
# The columns a worker hands over, in RecordColumns' order.
_COLUMNS = ("messages", "timestamps", "services", "log_types", "severities", "attributes", "trace_ids", "span_ids")
_TYPES = (pa.string(), pa.int64(), pa.string(), pa.string(), pa.string(), pa.binary(), pa.string(), pa.string())


class DecodeWorkers:
    """A pool of `processes` OTLP decode workers (0: none, every export decoded in process)."""

    def __init__(self, processes: int, max_body_bytes: int) -> None:
        self.processes = processes
        self._max_body_bytes = max_body_bytes
        self._pool: ProcessPoolExecutor | None = None
        self._starting: list[Future] = []  # a task per worker of the pool, done once it has started
        # Exports in the pool's hands (released by the future's callback, on the pool's own thread: our lock
        # there could wait on the pool's while submit() holds ours and waits on the pool's).
        self._room = threading.BoundedSemaphore(max(processes, 0) * MOST_IN_FLIGHT_PER_PROCESS or 1)
        self._broken_in_a_row = 0  # exports whose worker died, since one was decoded
        self._lock = threading.Lock()

    def submit(self, body: bytes, json: bool, gzip: bool) -> Future | None:
        """The export's decoding by a worker (its result for columns()), or None: decode it in process."""
        if self.processes <= 0 or len(body) < (MIN_GZIP_BODY_BYTES if gzip else MIN_BODY_BYTES):
            return None
        with self._lock:
            if not self._started() or not self._room.acquire(blocking=False):
                return None
            try:
                future = self._pool.submit(_decoded, body, json, gzip, self._max_body_bytes)
            except BrokenProcessPool:  # a worker died (killed, out of memory) since the last export
                log.warning(
                    "an OTLP decode worker died (killed, or out of memory): its exports were decoded in the"
                    " server's process, and the pool starts again"
                )
                self._broken()
                future = None
            except RuntimeError:  # (shutting down)
                future = None
        if future is None:
            self._room.release()
            return None
        future.add_done_callback(lambda _: self._room.release())
        return future

    def _started(self) -> bool:
        """Whether the pool's workers are ready for exports; starts a pool when there is none. A worker's start
        (spawning Python, importing the decoders: ~0.3 s of CPU, seconds on a busy machine) would hold the
        exports given to it meanwhile: they are decoded in process until one worker has started."""
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
        for started in self._starting:
            if started.done():
                if started.exception() is None:
                    return True
                self._broken()  # (its workers died as they started)
                return False
        return False

    def _broken(self) -> None:
        """A pool a worker died in: started anew for a later export, unless its workers died MOST_BROKEN_IN_A_ROW
        times without one export decoded (they would only die again)."""
        self._broken_in_a_row += 1
        if self._broken_in_a_row >= MOST_BROKEN_IN_A_ROW:
            self._give_up(f"the workers died {self._broken_in_a_row} times in a row")
        elif self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def _give_up(self, error: object) -> None:
        log.warning("OTLP exports are decoded in the server's process: the decode workers do not start (%s)", error)
        self._stop(wait=False)

    def _stop(self, wait: bool) -> None:
        """No export to the workers from now on, and the pool gone (`wait`: its exports in flight decoded first)."""
        self.processes = 0
        if self._pool is not None:
            self._pool.shutdown(wait=wait, cancel_futures=True)
            self._pool = None

    def columns(self, future: Future) -> RecordColumns | None:
        """The columns of a submitted export; None: decode it in process (its worker died, or could not inflate
        it: the in-process path answers that error). otlp.MalformedRequest as otlp.columns raises it."""
        try:
            decoded = future.result()
        # BrokenProcessPool: a worker killed, each export it held comes here, none lost (the pool is started anew
        # when the next export finds it broken); anything else a worker raised, the in-process path answers.
        except Exception:
            return None
        self._broken_in_a_row = 0
        if decoded is None or isinstance(decoded, RecordColumns):
            return decoded
        if isinstance(decoded, str):
            raise otlp.MalformedRequest(decoded)
        batch_bytes, refused, holders = decoded
        batch = pa.ipc.open_stream(batch_bytes).read_next_batch()
        return RecordColumns(*batch.columns, refused=refused, holders=holders)

    def close(self) -> None:
        with self._lock:
            self._stop(wait=True)


def _ready() -> None:
    """In a worker: nothing, once it has started (imported this module, the decoders with it)."""


def _decoded(body: bytes, json: bool, gzip: bool, max_body_bytes: int) -> tuple | RecordColumns | str | None:
    """In a worker: the export's columns as (an Arrow IPC stream of one record batch, refused, holders); its
    RecordColumns as they are when a column is not Arrow's (a time past int64 ms, text with a lone surrogate,
    which the in-process check names); the MalformedRequest's message; None when the body does not inflate."""
    try:
        body = content_encoding.decoded(body, gzip, max_body_bytes)
    except content_encoding.NotInflated:
        return None
    try:
        found = otlp.columns(body, json)
    except otlp.MalformedRequest as e:
        return str(e)
    try:
        arrays = [_arrow(getattr(found, name), kind) for name, kind in zip(_COLUMNS, _TYPES, strict=True)]
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, UnicodeEncodeError):
        return found
    sink = pa.BufferOutputStream()
    batch = pa.RecordBatch.from_arrays(arrays, names=_COLUMNS)
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    return sink.getvalue().to_pybytes(), found.refused, found.holders


def _arrow(column: list | pa.Array, kind: pa.DataType) -> pa.Array:
    """A column as Arrow, as the mapping made it if it did (the attributes' dictionary array among them)."""
    return column if isinstance(column, pa.Array) else pa.array(column, kind)
