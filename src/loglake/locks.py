"""One holder at a time per data dir and job (lake maintenance, Amplify collection): an flock on a
file, released with its process, so a crashed holder never leaves a stale lock."""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path

from loglake.private_files import open_private, private_dir


@contextlib.contextmanager
def exclusive_lock(path: Path, wait: bool = True) -> Iterator[bool]:
    """Hold the lock file `path`; yields False, without waiting, if `wait` is off and another holds it."""
    private_dir(path.parent)
    with open_private(path, "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
