"""Turning a stream of lines into batches of records, for `loglake send` (and any other shipper).

Lines are NDJSON records or plain text. A record without a timestamp is stamped with the time its
line was read, not the time its batch is sent, and a batch leaves when it is full *or* when it has waited
`max_wait` seconds, so `tail -f app.log | loglake send` ships each line within a second.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")
_END = object()


def line_to_record(line: str, defaults: dict[str, str], now_ms: int) -> dict[str, Any] | None:
    """An NDJSON object or a plain-text message, with defaults (and now_ms as the timestamp) filled in
    where missing; None for a blank line."""
    text = line.rstrip("\r\n")
    if not text.strip():
        return None
    if text.lstrip().startswith("{"):
        try:
            record = json.loads(text)
        except ValueError:
            record = None
        if isinstance(record, dict):
            return {**defaults, "timestamp": now_ms, **record}
    return {**defaults, "message": text, "timestamp": now_ms}


def timed_batches(items: Iterable[T], size: int, max_wait: float) -> Iterator[list[T]]:
    """Batches of up to `size` items; a batch is also let go once its first item waited `max_wait` s.

    The items are read on a helper thread, so a slow source (a pipe that blocks) cannot hold back
    a batch that is due."""
    handoff: queue.Queue = queue.Queue(maxsize=2 * size)

    def pump() -> None:
        try:
            for item in items:
                handoff.put(item)
        except BaseException as error:  # surfaced in the consumer
            handoff.put(error)
        handoff.put(_END)

    threading.Thread(target=pump, name="loglake-send-reader", daemon=True).start()
    batch: list[T] = []
    deadline = 0.0
    while True:
        try:
            item = handoff.get(timeout=max(0.0, deadline - time.monotonic()) if batch else None)
        except queue.Empty:
            yield batch
            batch = []
            continue
        if item is _END:
            if batch:
                yield batch
            return
        if isinstance(item, BaseException):
            raise item
        if not batch:
            deadline = time.monotonic() + max_wait
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
