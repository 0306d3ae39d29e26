from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from loglake.shipping import line_to_record, timed_batches


def test_lines_become_records() -> None:
    defaults = {"service": "app"}
    assert line_to_record("plain text\n", defaults, 5) == {"service": "app", "message": "plain text", "timestamp": 5}
    assert line_to_record('{"message": "m", "service": "own"}\n', defaults, 5) == {
        "service": "own",
        "message": "m",
        "timestamp": 5,
    }
    assert line_to_record('{"message": "m", "timestamp": 1}', {}, 5)["timestamp"] == 1
    assert line_to_record("{not json", {}, 5)["message"] == "{not json"
    assert line_to_record("   \n", defaults, 5) is None


def test_full_batches_leave_at_once() -> None:
    assert list(timed_batches(range(7), 3, max_wait=60)) == [[0, 1, 2], [3, 4, 5], [6]]


def test_a_slow_source_does_not_hold_back_a_due_batch() -> None:
    def slow() -> Iterator[int]:
        yield 1
        yield 2
        time.sleep(1.0)  # like `tail -f` waiting for the next line
        yield 3

    started = time.monotonic()
    batches = timed_batches(slow(), 100, max_wait=0.2)
    assert next(batches) == [1, 2]
    assert time.monotonic() - started < 0.8
    assert next(batches) == [3]
    assert list(batches) == []


def test_a_failing_source_fails_the_consumer() -> None:
    def broken() -> Iterator[int]:
        yield 1
        raise OSError("pipe broke")

    with pytest.raises(OSError, match="pipe broke"):
        list(timed_batches(broken(), 10, max_wait=5))
