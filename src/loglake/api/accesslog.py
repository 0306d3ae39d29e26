"""The server's structured access log: one JSON object per request, with its request id.

Logging must cost a request next to nothing and must never stall the event loop: a request appends a
tuple of its facts to a queue, and one writer thread turns what is waiting into JSON lines (one C call
per batch) and writes them, every FLUSH_SECONDS or as soon as FLUSH_LINES are waiting. A sink that
falls behind (a pipe nobody reads, a slow disk) costs log lines, never requests or memory: with
MAX_PENDING_LINES waiting, further lines are dropped and counted, and the next write says how many.
"""

from __future__ import annotations

import collections
import logging
import os
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import msgspec

from loglake.api.http import ApiError
from loglake.config import ConfigError, as_typed
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
    in the order they were logged by one writer thread."""

    def __init__(
        self,
        sink: IO[bytes],
        *,
        requests: bool = True,
        owned: bool = False,
        max_pending: int = MAX_PENDING_LINES,
        path: Path | None = None,
    ) -> None:
        self.sink = sink
        self.path = path  # the file `sink` was opened at, made again there when it is moved or deleted
        self.logs_requests = requests
        self.owned = owned
        self.max_pending = max_pending
        self.dropped = 0  # lines lost to a sink that fell behind, since the start
        # Appends and pops of a deque are atomic: the request path takes no lock.
        self._pending: collections.deque[Any] = collections.deque()
        self._unreported_drops = 0
        self._lock = threading.Lock()  # drop counts, starting the writer, closing
        self._wake = threading.Event()
        self._closing = False
        self._thread: threading.Thread | None = None
        if requests:
            self._start()

    @classmethod
    def open(cls, target: str, setting: str = as_typed("access_log")) -> AccessLog:
        """'-' = stderr, 'off' = no request lines (exceptions and events still go to stderr),
        anything else = a file appended to. `setting`: how the person gave it (Settings.named), for its error."""
        if target == "off":
            return cls(sys.stderr.buffer, requests=False)
        if target == "-":
            return cls(sys.stderr.buffer)
        try:
            sink = open_private(Path(target), "ab")
        except OSError as e:  # said as a setting's error, not a traceback (a folder that does not exist, say)
            raise ConfigError(
                f"{setting}: cannot open {target} to append to: {e.strerror}; name a file in a "
                "folder that exists, - for stderr, or off"
            ) from None
        return cls(sink, owned=True, path=Path(target))

    def request(self, request: Request, route: str, status: int, seconds: float, sent: int) -> None:
        if not self.logs_requests or self._closing:
            return
        pending = self._pending
        if len(pending) >= self.max_pending:
            self._drop()
            return
        principal = request.principal
        pending.append(
            (
                time.time(),
                request.request_id,
                request.method,
                request.path,
                route,
                status,
                seconds,
                # (what came off the connection: a body refused part-way, or not read at all, has none in .body)
                request.body_received or 0,
                sent,
                principal.name if principal is not None else None,
                (request.scope.get("client") or ("", 0))[0],
            )
        )
        if len(pending) == FLUSH_LINES:
            self._wake.set()

    def error(self, request_id: str, error: BaseException) -> None:
        """Unhandled exceptions are always logged: to the access log, or to stderr when that is off."""
        self._log_now(unhandled_exception_line(request_id, error))

    def event(self, entry: dict) -> None:
        """A line from a background thread (lake maintenance, Amplify collection), written at once."""
        self._log_now({"ts": round(time.time(), 3), "level": "info", **entry})

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every line logged so far is written; False if `timeout` seconds passed first."""
        if self._thread is None or self._closing:
            return True  # nothing was logged, or closing writes it
        written = threading.Event()
        self._pending.append(written)  # the writer sets it once the lines before it are written
        self._wake.set()
        return written.wait(timeout)

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

    def _log_now(self, entry: dict) -> None:
        if self._closing:
            return
        if len(self._pending) >= self.max_pending:
            self._drop()
            return
        self._start()
        self._pending.append(entry)
        self._wake.set()

    def _drop(self) -> None:
        with self._lock:
            self.dropped += 1
            self._unreported_drops += 1

    def _start(self) -> None:
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._write_loop, name="loglake-access-log", daemon=True)
                    self._thread.start()

    def _write_loop(self) -> None:
        pending = self._pending
        while True:
            self._wake.wait(FLUSH_SECONDS)
            self._wake.clear()
            closing = self._closing  # read first: what was logged before closing is in `pending` now
            lines: list[Any] = []
            flushed: list[threading.Event] = []
            for _ in range(len(pending)):
                item = pending.popleft()
                if type(item) is tuple:
                    lines.append(_request_line(item))
                elif type(item) is dict:
                    lines.append(item)
                else:
                    flushed.append(item)
            with self._lock:
                drops, self._unreported_drops = self._unreported_drops, 0
            if drops:  # after the lines logged before the drops, before those logged after
                lines.append(_dropped_line(drops, self.max_pending))
            if lines:
                try:
                    if self.path is not None:
                        self._follow_rotation(self.path)
                    self.sink.write(_encode_lines(lines))
                    self.sink.flush()
                except (OSError, ValueError):
                    pass  # a closed or broken log stream must never fail the server
            for written in flushed:
                written.set()
            if closing:
                return

    def _follow_rotation(self, path: Path) -> None:
        """Open the file again at `path` when it was renamed or deleted (logrotate's default, without
        copytruncate): the lines go on where the setting says, and the rotated file's disk is given back."""
        try:
            moved = not os.path.samestat(os.stat(path), os.fstat(self.sink.fileno()))
        except FileNotFoundError:
            moved = True
        if moved:
            sink = open_private(path, "ab")
            self.sink.close()
            self.sink = sink


class LogRecords(logging.Handler):
    """Python logging's records (the HTTP server's warnings, such as an invalid request, and the
    library's) as lines of the access log: written by its thread like the rest, never by a blocking
    write to stderr on the event loop."""

    def __init__(self, access_log: AccessLog, level: int = logging.WARNING) -> None:
        super().__init__(level)
        self.access_log = access_log

    def emit(self, record: logging.LogRecord) -> None:
        entry = {
            "level": record.levelname.lower(),
            "event": "log",
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info and record.exc_info[1] is not None:
            entry["traceback"] = traceback.format_exception(record.exc_info[1])
        self.access_log.event(entry)


def _request_line(facts: tuple) -> RequestLine:
    ts, request_id, method, path, route, status, seconds, bytes_in, bytes_out, key, client = facts
    return RequestLine(
        ts=_thousandths(ts),
        request_id=request_id,
        method=method,
        path=path,
        route=route,
        status=status,
        ms=_thousandths(seconds * 1000),
        bytes_in=bytes_in,
        bytes_out=bytes_out,
        key=key,
        client=client,
    )


def _thousandths(value: float) -> float:
    """A positive value rounded to 3 decimals, as round(value, 3) is but for exact halves: round() goes
    through decimal digits, 0.6 us a call, and two of them were most of a line's cost on the writer thread
    (1.4 -> 0.4 us), which holds the GIL the event loop needs for ~1,000 lines at a time."""
    return int(value * 1000 + 0.5) / 1000


def _dropped_line(drops: int, max_pending: int) -> dict:
    return {
        "ts": round(time.time(), 3),
        "level": "warning",
        "event": "access_log_dropped",
        "dropped": drops,
        "reason": f"the log's destination fell {max_pending} lines behind",
    }


def unhandled_exception_line(request_id: str, error: BaseException) -> dict:
    """The log line of an error nobody foresaw, with the request id its 500 quotes (internal_error)."""
    return {
        "ts": round(time.time(), 3),
        "level": "error",
        "event": "unhandled_exception",
        "request_id": request_id,
        "error": repr(error),
        "traceback": traceback.format_exception(error),
    }


def internal_error(request_id: str) -> ApiError:
    """The 500 of an error nobody foresaw: the request id to quote, the traceback in the log only."""
    return ApiError(500, "internal_error", f"internal error; quote request id {request_id}")
