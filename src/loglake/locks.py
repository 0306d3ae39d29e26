"""Locks between the processes (and threads) sharing a data dir: flocks on files, released with their
process, so a crashed holder never leaves a stale lock.

- one holder at a time per job (lake maintenance, Amplify collection): `exclusive_lock`;
- many readers, and a writer that acts only when none is there: `shared_lock` and `nobody_holds`.
"""

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


@contextlib.contextmanager
def shared_lock(path: Path) -> Iterator[None]:
    """Hold `path` shared, with any number of other holders (waits only while `nobody_holds` checks it)."""
    private_dir(path.parent)
    with open_private(path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_SH)
        yield  # closing the file releases it


def nobody_holds(path: Path) -> bool:
    """Whether no process or thread holds `path` now (shared or exclusive); never waits."""
    private_dir(path.parent)
    with open_private(path, "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(lock, fcntl.LOCK_UN)
        return True
