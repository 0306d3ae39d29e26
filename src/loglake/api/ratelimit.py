"""Per-key token buckets: a steady rate with a burst allowance, answered with Retry-After when empty.

A request costs one token per REQUEST_UNIT_BYTES of its body started (one for a body of up to 64 KiB, or none),
so that a key's rate bounds what it sends as well as how often: one 10 MB bulk costs 153 tokens, where a
single record costs one (Loki limits each tenant in MB/s, CloudWatch Logs each account in requests and in
bytes). A request costing more than a full bucket holds is taken when the bucket is full and leaves it in
debt, so a key may send any body the route takes, at its rate on average.
"""

from __future__ import annotations

import time
from collections.abc import Callable

REQUEST_UNIT_BYTES = 64 * 1024


def request_units(body_bytes: int) -> int:
    """Tokens a request with a body of body_bytes costs: one per REQUEST_UNIT_BYTES started, at least one."""
    return max(1, -(-body_bytes // REQUEST_UNIT_BYTES))


class TokenBucket:
    __slots__ = ("burst", "rate", "tokens", "updated")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.updated = now

    def take(self, now: float, cost: int = 1) -> float:
        """0 if `cost` tokens were taken (a cost above the burst once the bucket is full, leaving it in debt),
        else the seconds until they will be."""
        tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        needed = cost if cost <= self.burst else self.burst
        if tokens >= needed:
            self.tokens = tokens - cost
            return 0.0
        self.tokens = tokens
        return (needed - tokens) / self.rate


class RateLimiter:
    """One bucket per key name; a key's own rate and burst (keys.ApiKey: a key with its own rate always
    has a burst) override the server's defaults."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self._buckets: dict[str, TokenBucket] = {}

    def limits(self, rate: float | None = None, burst: int | None = None) -> tuple[float, int]:
        """The rate and burst a key gets: its own, else the server's."""
        return rate or self.rate, burst or self.burst

    def check(self, key: str, rate: float | None = None, burst: int | None = None, cost: int = 1) -> float:
        """0 when a request costing `cost` may go ahead, else how many seconds to wait."""
        now = self.clock()
        bucket = self._buckets.get(key)
        rate, burst = self.limits(rate, burst)
        if bucket is None or bucket.rate != rate or bucket.burst != burst:
            bucket = self._buckets[key] = TokenBucket(rate, burst, now)
        return bucket.take(now, cost)

    def charge(self, key: str, rate: float | None = None, burst: int | None = None, cost: int = 1) -> None:
        """Take `cost` more for a request already let in (its body's size, known once read), whatever the
        bucket holds: the key's next requests wait for it."""
        self.check(key, rate, burst, 0)  # (brings the bucket up to now)
        self._buckets[key].tokens -= cost
