"""A background job's failures told once, not at every retry: a job that fails the same way each turn (a full disk,
a damaged file, a store that is down) logged a whole traceback every second or two (a disk-full trial), burying
what else the log said. The first failure of a kind is logged with its traceback; the same one again, a line at
most every SAY_AGAIN_SECONDS with how many times it has failed; another, or a success after failures, is said."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from loglake.lake.objectstore import ObjectStoreError

SAY_AGAIN_SECONDS = 60.0


class RepeatedFailures:
    def __init__(self, log: logging.Logger, what: str, clock: Callable[[], float] = time.monotonic) -> None:
        self._log = log
        self._what = what  # "lake maintenance", ...: what failed, as the log's lines say it
        self._clock = clock
        self._kind: str | None = None  # the failure told last (None: the job works)
        self._times = 0  # how often it has failed since
        self._said_at = 0.0

    def failed(self, error: BaseException, retry_in: float) -> None:
        """Tell a failure (call it in the `except` block: the first of a kind is logged with its traceback)."""
        kind = _kind(error)
        now = self._clock()
        if kind != self._kind:
            self._kind, self._times, self._said_at = kind, 1, now
            self._log.exception("%s failed; retrying in %g s", self._what, retry_in)
            return
        self._times += 1
        if now - self._said_at >= SAY_AGAIN_SECONDS:
            self._said_at = now
            self._log.error("%s still fails (%d times now, as logged before): %s", self._what, self._times, error)

    def succeeded(self) -> None:
        if self._kind is not None:
            self._log.info("%s works again, after %d failures", self._what, self._times)
            self._kind = None


def _kind(error: BaseException) -> str:
    """What makes two failures the same: an OS error's number (its file's name changes with each retry's work folder),
    an object store's error code (None: it could not be reached; its words name the object, a new part's at each
    retry, and an S3 lake down logged a whole traceback at every maintenance turn), else the error's type and words;
    an error raised from another (compact.MergesFailed), by that one's kind."""
    if error.__cause__ is not None:
        return f"{type(error).__name__} from {_kind(error.__cause__)}"
    if isinstance(error, OSError) and error.errno is not None:
        return f"{type(error).__name__} errno {error.errno}"
    if isinstance(error, ObjectStoreError):
        return f"{type(error).__name__} code {error.code}"
    return f"{type(error).__name__}: {error}"
