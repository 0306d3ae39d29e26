"""Retrying a call that failed in a way a later call may not: one helper for every client that retries.

Pauses grow exponentially with full jitter (a uniform draw between 0 and the exponential bound), so
clients that failed together do not come back together; a server's Retry-After is a floor, never cut
short. The clock, the sleep and the random source are injectable, so tests run without waiting.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import TypeVar

from loglake.digits import is_ascii_digits

T = TypeVar("T")
_MAX_DOUBLINGS = 60  # 2**60 times any first pause is past every cap; a larger power overflows a float


class TryAgain(Exception):
    """Raised by an attempt that may succeed later. `error` is what the caller sees when retrying stops;
    `retry_after` is the least pause the other side asked for, in seconds."""

    def __init__(self, error: Exception, retry_after: float | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.retry_after = retry_after


@dataclass(frozen=True)
class Backoff:
    first: float = 0.5  # bound of the first pause, seconds; it doubles with each attempt...
    cap: float = 30.0  # ...up to this bound (a Retry-After may ask for longer)
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    rng: random.Random = field(default_factory=random.Random)

    def pause(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number `attempt` (0 for the first)."""
        bound = min(self.cap, self.first * 2 ** min(attempt, _MAX_DOUBLINGS))
        return max(self.rng.uniform(0, bound), retry_after or 0.0)

    def run(
        self,
        attempt: Callable[[], T],
        *,
        attempts: int | None = None,
        give_up_after: float | None = None,
        on_retry: Callable[[Exception, float], None] | None = None,
    ) -> T:
        """attempt()'s result, calling it again after a pause each time it raises TryAgain: at most
        `attempts` times, and no later than `give_up_after` seconds from now (None: no such limit).
        When retrying stops, the last TryAgain's error is raised. on_retry(error, pause) runs before
        each pause, e.g. to count retries or to say why the caller waits."""
        deadline = None if give_up_after is None else self.clock() + give_up_after
        number = 0
        while True:
            try:
                return attempt()
            except TryAgain as again:
                pause = self.pause(number, again.retry_after)
                number += 1
                if attempts is not None and number >= attempts:
                    raise again.error from None
                if deadline is not None:
                    left = deadline - self.clock()
                    if left <= 0 or (again.retry_after or 0.0) > left:
                        raise again.error from None
                    pause = min(pause, left)  # one last attempt at the deadline
                if on_retry is not None:
                    on_retry(again.error, pause)
                self.sleep(pause)


def retry_after_seconds(value: str | None, now: float) -> float | None:
    """An HTTP Retry-After header (delay-seconds or an HTTP-date) as seconds from `now` (epoch seconds),
    or None when absent or unreadable."""
    if not value:
        return None
    text = value.strip()
    if is_ascii_digits(text):
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT
        return None
    return max(0.0, when.timestamp() - now)
