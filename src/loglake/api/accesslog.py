"""The server's structured access log: one JSON object per request, with its request id.

Lines are buffered and written in chunks (every 0.25 s, or at 64 KiB) so that logging 10,000
requests/s costs a few writes per second instead of one system call per request.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import IO, TYPE_CHECKING

import msgspec

from loglake.private_files import open_private

if TYPE_CHECKING:
    from loglake.api.http import Request

_encode = msgspec.json.Encoder().encode
FLUSH_BYTES = 64 * 1024


class AccessLog:
    def __init__(self, stream: IO[bytes] | None, owned: bool = False) -> None:
        self.stream = stream
        self.owned = owned
        self.buffer: list[bytes] = []
        self.size = 0
        self._lock = threading.Lock()  # the event loop's flushes and background threads' events

    @classmethod
    def open(cls, target: str) -> AccessLog:
        """'-' = stderr, 'off' = nothing, anything else = a file appended to."""
        if target == "off":
            return cls(None)
        if target == "-":
            return cls(sys.stderr.buffer)
        return cls(open_private(Path(target), "ab"), owned=True)

    def request(self, request: Request, route: str, status: int, seconds: float, sent: int) -> None:
        if self.stream is None:
            return
        key = request.principal.name if request.principal is not None else None
        self.write(
            {
                "ts": round(time.time(), 3),
                "level": "info",
                "event": "request",
                "request_id": request.request_id,
                "method": request.method,
                "path": request.path,
                "route": route,
                "status": status,
                "ms": round(seconds * 1000, 3),
                "bytes_in": len(request.body),
                "bytes_out": sent,
                "key": key,
                "client": (request.scope.get("client") or ("", 0))[0],
            }
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
        self.flush()  # what was logged before goes first
        self._emit(_encode(entry) + b"\n")

    def event(self, entry: dict) -> None:
        """A line from a background thread (lake maintenance), written at once."""
        self._emit(_encode({"ts": round(time.time(), 3), "level": "info", **entry}) + b"\n")

    def _emit(self, line: bytes) -> None:
        """Write one line now: to the access log, or to stderr when that is off."""
        with self._lock:
            try:
                stream = self.stream if self.stream is not None else sys.stderr.buffer
                stream.write(line)
                stream.flush()
            except (OSError, ValueError):
                pass

    def write(self, entry: dict) -> None:
        if self.stream is None:
            return
        line = _encode(entry) + b"\n"
        self.buffer.append(line)
        self.size += len(line)
        if self.size >= FLUSH_BYTES:
            self.flush()

    def flush(self) -> None:
        if self.stream is None or not self.buffer:
            return
        data = b"".join(self.buffer)
        self.buffer.clear()
        self.size = 0
        with self._lock:
            try:
                self.stream.write(data)
                self.stream.flush()
            except (OSError, ValueError):
                pass  # a closed or broken log stream must never fail a request

    async def flush_periodically(self, interval: float = 0.25) -> None:
        while True:
            await asyncio.sleep(interval)
            self.flush()

    def close(self) -> None:
        self.flush()
        if self.owned and self.stream is not None:
            self.stream.close()
            self.stream = None
