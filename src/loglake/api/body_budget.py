"""The request bodies the server holds at once, bounded in bytes.

A route reads its body whole before it answers, up to its limit (10 MiB for records, 32 MiB for an Elasticsearch
bulk), and each body is charged to its key's rate limit once it is read (its size is its cost). So nothing bounded
the bodies held at once: one ingest key's client opening a thousand connections and sending a 10 MiB body on each
made the server hold 10 GB (a security trial). Now a request reserves the bytes its body may hold before it reads
any (its Content-Length; the route's limit when it gives none, a chunked body), holds them until it is answered
(its body, and what checking it makes, live that long), and waits, first come first served, while the reservations
of others leave no room; past WAIT_SECONDS of waiting it is answered 503 with Retry-After, as VictoriaLogs answers
inserts past its -maxConcurrentInserts once -insert.maxQueueDuration passed, and shippers send it again.

A reservation is whole or nothing: bodies reserving as they arrive could each hold part of the budget and wait for
more, and all be refused in turn. A compressed body reserves what is sent: the ingest threads inflate it (a few at
a time), each up to the route's limit.
"""

from __future__ import annotations

import asyncio
from collections import deque

from loglake.api.http import ApiError

# The bodies held at once: some twenty-five of 10 MiB, a hundred of the 2 MB a shipper's batch usually is; at least
# the largest body a route takes (a server given larger limits holds that one).
BODIES_BYTES = 256 * 2**20
# How long a request waits for room before it is answered 503: less than the shortest client timeout among the
# shippers (the OpenTelemetry SDKs' 10 s), so that the client hears the answer and sends again.
WAIT_SECONDS = 5.0


class BodyBudget:
    """Reservations of body bytes, at most BODIES_BYTES at once, or the largest body a route takes if more (on the
    event loop: not thread-safe)."""

    def __init__(self, largest_body: int) -> None:
        self.total = max(BODIES_BYTES, largest_body)
        self.held = 0
        self._waiting: deque[tuple[int, asyncio.Future[None]]] = deque()

    async def reserve(self, size: int) -> int:
        """Hold `size` bytes (at most the total), waiting while they do not fit behind those that wait; the bytes
        held, for `release`. ApiError 503 when no room was made within WAIT_SECONDS."""
        size = min(size, self.total)
        # (nothing to hold, no turn to wait: a request without a body, or one refused 413 for its Content-Length)
        if not size or (not self._waiting and self.held + size <= self.total):
            self.held += size
            return size
        granted = asyncio.get_running_loop().create_future()
        self._waiting.append((size, granted))
        try:
            await asyncio.wait({granted}, timeout=WAIT_SECONDS)
        except BaseException:  # (cancelled: the request's client went away)
            if granted.done():
                self.release(size)  # (granted meanwhile: the bytes go back)
            else:
                self._withdraw(granted)
            raise
        if not granted.done():
            self._withdraw(granted)
            raise ApiError(
                503,
                "server_busy",
                f"the server holds as many request bodies as it may ({self.total // 2**20} MiB) and none was "
                f"answered within {WAIT_SECONDS:g} s; send the request again shortly",
                headers=[(b"retry-after", b"1")],
            )
        return size

    def release(self, size: int) -> None:
        """Give back what `reserve` held."""
        self.held -= size
        self._grant()

    def _withdraw(self, granted: asyncio.Future[None]) -> None:
        """A waiting reservation given up: it no longer stands in the way of those behind it."""
        granted.cancel()
        self._grant()

    def _grant(self) -> None:
        """Grant the waiting reservations, oldest first, while they fit."""
        waiting = self._waiting
        while waiting:
            size, granted = waiting[0]
            if granted.cancelled():
                waiting.popleft()
                continue
            if self.held + size > self.total:
                return
            waiting.popleft()
            self.held += size
            granted.set_result(None)
