"""The retry helper: full-jitter exponential pauses, Retry-After as a floor, limits by attempts and by time."""

from __future__ import annotations

import random

import pytest

from loglake.retry import Backoff, TryAgain, retry_after_seconds


class FakeTime:
    """A clock that moves only when slept on, recording each pause."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.pauses: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.now += seconds


def failing(times: int, error: Exception, retry_after: float | None = None):
    calls = []

    def attempt() -> str:
        calls.append(1)
        if len(calls) <= times:
            raise TryAgain(error, retry_after)
        return "done"

    return attempt, calls


def test_pauses_are_jittered_under_a_doubling_bound_up_to_the_cap() -> None:
    backoff = Backoff(first=0.5, cap=4.0, rng=random.Random(7))
    bounds = [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    for attempt, bound in enumerate(bounds):
        pauses = [backoff.pause(attempt) for _ in range(200)]
        assert all(0 <= p <= bound for p in pauses)
        assert max(pauses) > bound * 0.8 and min(pauses) < bound * 0.2  # spread over the range: jitter
    assert 0 <= backoff.pause(10_000) <= 4.0  # a huge attempt number neither overflows nor passes the cap


def test_a_retry_after_is_the_least_pause() -> None:
    backoff = Backoff(first=0.5, cap=4.0)
    assert all(backoff.pause(0, retry_after=7.0) >= 7.0 for _ in range(50))
    assert all(2.0 <= backoff.pause(3, retry_after=2.0) <= 4.0 for _ in range(50))


def test_run_retries_until_it_succeeds() -> None:
    time = FakeTime()
    attempt, calls = failing(3, ValueError("busy"))
    seen = []
    backoff = Backoff(first=1.0, cap=10.0, sleep=time.sleep, clock=time.clock)
    assert backoff.run(attempt, on_retry=lambda error, pause: seen.append((str(error), pause))) == "done"
    assert len(calls) == 4 and len(time.pauses) == 3
    assert [error for error, _ in seen] == ["busy"] * 3 and [p for _, p in seen] == time.pauses


def test_run_stops_after_so_many_attempts_with_the_last_error() -> None:
    time = FakeTime()
    attempt, calls = failing(10, ValueError("still busy"))
    with pytest.raises(ValueError, match="still busy"):
        Backoff(sleep=time.sleep, clock=time.clock).run(attempt, attempts=3)
    assert len(calls) == 3 and len(time.pauses) == 2  # no pause after the last attempt


def test_run_gives_up_at_the_deadline_after_one_last_attempt_there() -> None:
    time = FakeTime()
    attempt, calls = failing(1000, ConnectionError("away"))
    backoff = Backoff(first=1.0, cap=8.0, sleep=time.sleep, clock=time.clock)
    with pytest.raises(ConnectionError):
        backoff.run(attempt, give_up_after=20.0)
    assert time.now == 1020.0  # the last pause was cut to end at the deadline, and one more attempt made
    assert len(calls) == len(time.pauses) + 1


def test_run_gives_up_at_once_when_asked_to_wait_past_the_deadline() -> None:
    time = FakeTime()
    attempt, calls = failing(1, ConnectionError("come back in an hour"), retry_after=3600)
    with pytest.raises(ConnectionError):
        Backoff(sleep=time.sleep, clock=time.clock).run(attempt, give_up_after=60)
    assert len(calls) == 1 and time.pauses == []


def test_with_no_limit_it_keeps_trying() -> None:
    time = FakeTime()
    attempt, calls = failing(500, ConnectionError("away"))
    assert Backoff(first=0.5, cap=30.0, sleep=time.sleep, clock=time.clock).run(attempt) == "done"
    assert len(calls) == 501


def test_other_exceptions_are_not_retried() -> None:
    time = FakeTime()
    calls = []

    def attempt() -> None:
        calls.append(1)
        raise PermissionError("no")

    with pytest.raises(PermissionError):
        Backoff(sleep=time.sleep, clock=time.clock).run(attempt)
    assert len(calls) == 1 and time.pauses == []


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120.0),
        (" 5 ", 5.0),
        ("Wed, 21 Oct 2015 07:28:30 GMT", 30.0),  # an HTTP-date, 30 s after `now`
        ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),  # already past
        ("soon", None),
        ("-3", None),
        ("²", None),  # str.isdigit() says yes, float() refuses it
        ("", None),
        (None, None),
    ],
)
def test_retry_after_header(header: str | None, seconds: float | None) -> None:
    now = 1_445_412_480.0  # 2015-10-21T07:28:00Z
    assert retry_after_seconds(header, now) == seconds
