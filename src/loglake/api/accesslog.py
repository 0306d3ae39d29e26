"""The server's structured access log: one JSON object per request, with its request id.

Logging must cost a request next to nothing and must never stall the event loop: a request appends a
small struct to a buffer, and one writer thread encodes what is waiting (one C call per batch) and
writes it, every FLUSH_SECONDS or as soon as FLUSH_LINES are waiting. A sink that falls behind (a pipe
nobody reads, a slow disk) costs log lines, never requests or memory: with MAX_PENDING_LINES waiting,
further lines are dropped and counted, and the next line written says how many were lost.
"""

from __future__ import annotations

import sys
import threading
import time
import traceback
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import msgspec

from loglake.private_files import open_private

if TYPE_CHECKING:
    from loglake.api.http import Request

FLUSH_SECONDS = 0.25
FLUSH_LINES = 1000
MAX_PENDING_LINES = 20_000  # ~10 MB at most; at 10,000 requests/s two seconds of a stalled sink
CLOSE_TIMEOUT_SECONDS = 5.0  # how long closing waits for a sink that takes nothing more


class RequestLine(msgspec.Struct, kw_only=True, gc=False):
    """One request's line; the fields in the order they are written."""

    ts: float
    level: str = "info"
    event: str = "request"
    request_id: str
    method: str
    path: str
    route: str
    status: int
    ms: float
    bytes_in: int
    bytes_out: int
    key: str | None
    client: str


_encode_lines = msgspec.json.Encoder().encode_lines


class AccessLog:
    """Request lines (unless `requests` is off), unhandled exceptions and background events, written
    in the order they were logged by one writer thread, started with the first line."""

    def __init__(
        self, sink: IO[bytes], *, requests: bool = True, owned: bool = False, max_pending: int = MAX_PENDING_LINES
    ) -> None:
        self.sink = sink
        self.logs_requests = requests
        self.owned = owned
        self.max_pending = max_pending
        self.dropped = 0  # lines lost to a sink that fell behind, since the start
        self._pending: list[Any] = []
        self._unreported_drops = 0
        self._logged = 0  # lines accepted into the buffer, ever
        self._written = 0  # of those, lines the writer has handed to the sink (or failed to)
        self._lock = threading.Lock()
        self._progress = threading.Condition(self._lock)  # signalled as lines are written
        self._wake = threading.Event()
        self._closing = False
        self._thread: threading.Thread | None = None

    @classmethod
    def open(cls, target: str) -> AccessLog:
        """'-' = stderr, 'off' = no request lines (exceptions and events still go to stderr),
        anything else = a file appended to."""
        if target == "off":
            return cls(sys.stderr.buffer, requests=False)
        if target == "-":
            return cls(sys.stderr.buffer)
        return cls(open_private(Path(target), "ab"), owned=True)

    def request(self, request: Request, route: str, status: int, seconds: float, sent: int) -> None:
        if not self.logs_requests:
            return
        principal = request.principal
        self._log(
            RequestLine(
                ts=round(time.time(), 3),
                request_id=request.request_id,
                method=request.method,
                path=request.path,
                route=route,
                status=status,
                ms=round(seconds * 1000, 3),
                bytes_in=len(request.body),
                bytes_out=sent,
                key=principal.name if principal is not None else None,
                client=(request.scope.get("client") or ("", 0))[0],
            )
        )

    def error(self, request_id: str, error: BaseException) -> None:
        """Unhandled exceptions are always logged: to the access log, or to stderr when that is off."""
        entry = {
            "ts": round(time.time(), 3),
            "level": "error",
            "event": "unhandled_exception",
            "request_id": request_id,
            "error": repr(error),
            "traceback": traceback.format_exception(error),
        }
        self._log(entry, now=True)

    def event(self, entry: dict) -> None:
        """A line from a background thread (lake maintenance, Amplify collection), written at once."""
        self._log({"ts": round(time.time(), 3), "level": "info", **entry}, now=True)

    def _log(self, line: Any, now: bool = False) -> None:
        with self._lock:
            if self._closing:
                return
            if len(self._pending) >= self.max_pending:
                self.dropped += 1
                self._unreported_drops += 1
                return
            self._pending.append(line)
            self._logged += 1
            waiting = len(self._pending)
            if self._thread is None:
                self._thread = threading.Thread(target=self._write_loop, name="loglake-access-log", daemon=True)
                self._thread.start()
        if now or waiting == FLUSH_LINES:
            self._wake.set()

    def _write_loop(self) -> None:
        while True:
            self._wake.wait(FLUSH_SECONDS)
            self._wake.clear()
            with self._lock:
                batch, self._pending = self._pending, []
                drops, self._unreported_drops = self._unreported_drops, 0
                closing = self._closing
            if batch or drops:
                logged = len(batch)
                self._write(batch, drops)
                with self._lock:
                    self._written += logged
                    self._progress.notify_all()
            if closing:
                return

    def _write(self, lines: list[Any], drops: int) -> None:
        if drops:  # after the lines logged before the drops, before those logged after
            lines.append(
                {
                    "ts": round(time.time(), 3),
                    "level": "warning",
                    "event": "access_log_dropped",
                    "dropped": drops,
                    "reason": f"the log's destination fell {self.max_pending} lines behind",
                }
            )
        try:
            self.sink.write(_encode_lines(lines))
            self.sink.flush()
        except (OSError, ValueError):
            pass  # a closed or broken log stream must never fail the server

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every line logged so far is written; False if `timeout` seconds passed first."""
        with self._lock:
            target = self._logged
            if self._written >= target:
                return True
        self._wake.set()
        with self._lock:
            return self._progress.wait_for(lambda: self._written >= target, timeout)

    def close(self, timeout: float = CLOSE_TIMEOUT_SECONDS) -> None:
        """Write what is waiting and stop, waiting at most `timeout` seconds for a sink that takes
        nothing more (a pipe nobody reads): then what is left is lost, the server still stops."""
        with self._lock:
            self._closing = True
            thread = self._thread
        if thread is not None:
            self._wake.set()
            thread.join(timeout)
            if thread.is_alive():
                return  # the writer is stuck in the sink's write: leave the sink to it
        if self.owned:
            self.sink.close()
