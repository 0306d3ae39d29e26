"""One maintenance run on the AWS lake at a time: compaction and retention each hold a lease object while they work.

Two compactions at once (a manual run over the hourly one, or the same scheduled event delivered to Lambda twice,
which EventBridge's at-least-once delivery allows) listed the same parts and merged them twice: each published its
merged file and deleted the inputs, and their rows were in the lake twice, for good once the merged files were past
half the target size (no later merge joins those again). A compaction beside a retention run could publish a merged
file of a day the retention was deleting, and bring it back until the next day's run. Reserved concurrency 1 would
keep each function to one run at a time, but accounts on the default quota cannot reserve any, and it would not keep
the two functions apart.

The lease is one object in the lake, written with S3's conditional writes: If-None-Match to take it when there is
none, If-Match on the ETag read to take over one that has ended, If-Match to delete one's own; of two runs taking it
at once, one does. It names its holder and when it ends: the run's time left when it took it, and LEASE_MARGIN_MS
for the clocks, so a run stopped by its timeout or a crash holds it no longer than it could have run. A run that
finds it held waits for it while it has time to spare, polling; else it says who holds it and does nothing (the
next scheduled run does the work).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

from loglake.lake.objectstore import S3ObjectStore
from loglake.times import format_datetime

LEASE_KEY = "_state/maintenance-lease.json"
# A run's time, when its Lambda context does not tell: Lambda's longest.
LONGEST_RUN_MS = 15 * 60_000
LEASE_MARGIN_MS = 60_000
POLL_SECONDS = 5.0


class LakeBusy(Exception):
    """Another run holds the lease (the message names it, and until when)."""


@contextlib.contextmanager
def maintenance_lease(
    lake: S3ObjectStore,
    holder: str,
    time_left_ms: Callable[[], int] | None,
    spare_ms: int,
    request_id: str | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[None]:
    """Hold the lake's maintenance lease while the block runs. When another run holds it, wait for it while more
    than `spare_ms` of `time_left_ms()` would be left (no waiting without a context to tell), else raise LakeBusy."""
    while True:
        now_ms = int(time.time() * 1000)
        until_ms = now_ms + (LONGEST_RUN_MS if time_left_ms is None else time_left_ms()) + LEASE_MARGIN_MS
        lease = {"holder": holder, "request_id": request_id, "since": format_datetime(now_ms), "until_ms": until_ms}
        etag, held_by = _take(lake, json.dumps(lease).encode(), now_ms)
        if etag is not None:
            break
        if time_left_ms is None or time_left_ms() - POLL_SECONDS * 1000 <= spare_ms:
            raise LakeBusy(f"{_named(held_by)} holds the lake's maintenance lease (s3://{lake.bucket}/{LEASE_KEY})")
        sleep(POLL_SECONDS)
    try:
        yield
    finally:  # (if it was taken over meanwhile, this run outlived its lease: the other's stays)
        with contextlib.suppress(Exception):  # (else it ends by itself, by the next scheduled run)
            lake.delete_if(LEASE_KEY, etag)


def _take(lake: S3ObjectStore, lease: bytes, now_ms: int) -> tuple[str | None, dict[str, Any] | None]:
    """Take the lease: its ETag, or None and the lease that holds it."""
    etag = lake.put_if(LEASE_KEY, lease, None)
    if etag is not None:
        return etag, None
    found = lake.get_tagged(LEASE_KEY)
    if found is None:  # (released since)
        return lake.put_if(LEASE_KEY, lease, None), None
    data, found_etag = found
    held_by = _lease_of(data)
    if held_by is not None and held_by["until_ms"] > now_ms:
        return None, held_by
    taken = lake.put_if(LEASE_KEY, lease, found_etag)  # ended (or unreadable): taken over, unless another run did
    return taken, None  # (that other run holds it now, not the one whose lease ended)


def _lease_of(data: bytes) -> dict[str, Any] | None:
    """A lease object's fields; None for one that cannot be read as a lease (it holds nothing, then)."""
    with contextlib.suppress(ValueError):
        lease = json.loads(data)
        if isinstance(lease, dict) and isinstance(lease.get("until_ms"), int):
            return lease
    return None


def _named(lease: dict[str, Any] | None) -> str:
    if lease is None:
        return "another run"
    return (
        f"{lease.get('holder', 'another run')} (request {lease.get('request_id')}, since {lease.get('since')}, "
        f"until {format_datetime(lease['until_ms'])} at the latest)"
    )
