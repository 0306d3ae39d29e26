"""Pushes a client sends again, byte for byte, after it lost the answer: answered as the first was, stored once.

Promtail and Grafana Alloy encode a batch once and send those same bytes again after a timeout, a 429 or a 5xx,
up to 10 times with backoff from 0.5 s to 5 min (about ten minutes in all). Loki stores such a retry once: it
drops an entry identical to one already in its stream (same labels, timestamp and line). loglake stores a push's
entries without looking for earlier ones (a big push goes straight into the lake), so it recognises the push
instead: a push whose bytes were stored in the last WINDOW_SECONDS is answered with the first one's answer and not
stored again, and one that arrives while the same bytes are being stored waits for that and is answered alike.

Kept in memory: a push sent again across a restart of the server is stored again (at least once, as every other
protocol's delivery). Only pushes whose entries were stored, in full or in part, are kept: a refused push (401,
413, 429, 503, a body that is no push) stored nothing, and its retry is handled as new.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")

WINDOW_MINUTES = 15  # Promtail's and Alloy's retries of one batch span about 10 minutes
WINDOW_SECONDS = WINDOW_MINUTES * 60.0
# Fingerprints kept, about 270 bytes each with a shared answer (9 MiB at most, measured with tracemalloc): a
# window's worth of a push a second from 36 Promtails, and past that the last minute of 546 pushes a second.
MOST_KEPT = 32_768


def fingerprint(kind: bytes, body: bytes) -> bytes:
    """What tells a push from another: its encoding and bytes. SHA-256 (OpenSSL's, which lets go of the GIL)
    is the fastest of hashlib's here: ~1.9 ms a MiB, on a protobuf push's snappy block, not the decompressed one."""
    return hashlib.sha256(kind + b"\0" + body).digest()[:16]


class ResentPushes(Generic[T]):
    """The answers of the pushes stored in the last WINDOW_SECONDS (at most MOST_KEPT), by fingerprint."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, most: int = MOST_KEPT) -> None:
        self._clock = clock
        self._most = most
        self._answered: OrderedDict[bytes, tuple[float, T]] = OrderedDict()  # oldest first
        self._storing: dict[bytes, asyncio.Future[None]] = {}

    def answered(self, key: bytes) -> T | None:
        """The answer of a push with this fingerprint stored within the window, else None."""
        self._forget_old()
        kept = self._answered.get(key)
        return None if kept is None else kept[1]

    async def once(self, key: bytes, store: Callable[[], Awaitable[tuple[T, bool]]]) -> tuple[T, bool]:
        """(store()'s answer, True), or (the answer of the push with the same fingerprint stored before or being
        stored now, False). store() answers (answer, whether anything was stored)."""
        while True:
            earlier = self.answered(key)
            if earlier is not None:
                return earlier, False
            storing = self._storing.get(key)
            if storing is None:
                break
            await asyncio.shield(storing)  # (then answered, or it stored nothing and this one goes ahead)
        self._storing[key] = storing = asyncio.get_running_loop().create_future()
        try:
            answer, stored = await store()
            if stored:
                self._answered[key] = (self._clock() + WINDOW_SECONDS, answer)
                while len(self._answered) > self._most:
                    self._answered.popitem(last=False)
            return answer, True
        finally:
            del self._storing[key]
            storing.set_result(None)

    def _forget_old(self) -> None:
        now = self._clock()
        while self._answered:
            key, (until, _) = next(iter(self._answered.items()))
            if until > now:
                return
            del self._answered[key]
