"""Per-key token buckets: a steady rate with a burst allowance, answered with Retry-After when empty.

A request is let in for one token, and its body then costs one more per REQUEST_UNIT_BYTES started beyond the
first 64 KiB, taken whatever the bucket holds, so that a key's rate bounds what it sends as well as how often: one
10 MB bulk costs 153 tokens, where a single record costs one (Loki limits each tenant in MB/s, CloudWatch Logs
each account in requests and in bytes). A bucket left in debt makes the key's next requests wait until its rate
has paid for the body; any body the route takes can still be sent.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from loglake.config import REQUEST_UNIT_BYTES


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

    def take(self, now: float) -> float:
        """0 if a token was taken, else the seconds until one will be available."""
        tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if tokens >= 1:
            self.tokens = tokens - 1
            return 0.0
        self.tokens = tokens
        return (1 - tokens) / self.rate

    def owe(self, now: float, tokens: int) -> None:
        """Take `tokens` whatever the bucket holds: below zero, the next take waits until the rate has paid."""
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate) - tokens
        self.updated = now


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

    def check(self, key: str, rate: float | None = None, burst: int | None = None) -> float:
        """0 when the request may go ahead, else how many seconds to wait."""
        now = self.clock()
        bucket = self._buckets.get(key)
        rate, burst = self.limits(rate, burst)
        if bucket is None or bucket.rate != rate or bucket.burst != burst:
            bucket = self._buckets[key] = TokenBucket(rate, burst, now)
        return bucket.take(now)

    def charge(self, key: str, tokens: int) -> None:
        """Take `tokens` more for a request check() let in (its body), whatever the bucket holds."""
        bucket = self._buckets.get(key)
        if bucket is not None:
            bucket.owe(self.clock(), tokens)
