"""A background job failing the same way at every retry is told once with its traceback, then a line a minute (a
disk-full trial: a traceback every second or two buried the rest of the server's log)."""

from __future__ import annotations

import logging

import pytest

from loglake.lake.compact import CompactReport, MergesFailed
from loglake.lake.objectstore import ObjectStoreError
from loglake.lake.repeated_failures import SAY_AGAIN_SECONDS, RepeatedFailures


def test_the_same_failure_is_told_once_then_now_and_then_and_the_recovery_is_said(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    failures = RepeatedFailures(logging.getLogger("loglake.test"), "lake maintenance", clock=lambda: now[0])

    def fail(error: Exception) -> None:
        try:
            raise error
        except Exception as e:
            failures.failed(e, 1.0)

    with caplog.at_level(logging.INFO, logger="loglake.test"):
        for turn in range(30):  # thirty seconds of a full disk, a retry a second, each in a work folder of its own
            fail(OSError(28, "No space left on device", f"tmp/work/flush-{turn}/part.parquet"))
            now[0] += 1.0
        told = [(r.levelname, r.exc_info is not None) for r in caplog.records]
        assert told == [("ERROR", True)]  # once, with its traceback
        now[0] += SAY_AGAIN_SECONDS
        fail(OSError(28, "No space left on device"))
        assert "still fails (31 times now" in caplog.records[-1].getMessage() and caplog.records[-1].exc_info is None
        fail(ValueError("another kind"))  # another failure: told whole
        assert caplog.records[-1].exc_info is not None and len(caplog.records) == 3
        failures.succeeded()
        failures.succeeded()  # (said once)
    assert [r.getMessage() for r in caplog.records[3:]] == ["lake maintenance works again, after 1 failures"]


def test_merges_failing_on_a_full_disk_at_every_turn_are_one_failure(caplog: pytest.LogCaptureFixture) -> None:
    """A compaction's failed merges are one error raised from the first failure, whose words name each retry's work
    folder: they are told apart by that failure's kind."""
    failures = RepeatedFailures(logging.getLogger("loglake.test"), "lake maintenance", clock=lambda: 0.0)
    with caplog.at_level(logging.INFO, logger="loglake.test"):
        for turn in range(3):
            full = OSError(28, "No space left on device", f"tmp/work/compact-{turn}/part.parquet")
            try:
                raise MergesFailed(CompactReport(), 1, full) from full
            except MergesFailed as e:
                failures.failed(e, 1.0)
    assert len(caplog.records) == 1


def test_an_s3_lake_down_at_every_turn_is_one_failure(caplog: pytest.LogCaptureFixture) -> None:
    """Each turn's flush fails on a part of its own (a new key in the error's words), or undoing the last one's: a
    traceback was logged at every maintenance turn while the lake was down. Told apart by the store's error code."""
    failures = RepeatedFailures(logging.getLogger("loglake.test"), "lake maintenance", clock=lambda: 0.0)
    with caplog.at_level(logging.INFO, logger="loglake.test"):
        for turn, action in enumerate(("put", "delete", "put")):
            key = f"s3://lake/type=app_logs/date=2026-12-07/part-{turn}.parquet"
            try:
                raise ObjectStoreError(f"cannot {action} {key}: Could not connect to the endpoint URL")
            except ObjectStoreError as e:
                failures.failed(e, 5.0)
        try:
            raise ObjectStoreError("cannot put s3://lake/k: Access Denied", "AccessDenied")
        except ObjectStoreError as e:
            failures.failed(e, 5.0)  # another failure: told whole
    assert [r.exc_info is not None for r in caplog.records] == [True, True]
