"""Locks between the processes (and threads) sharing a data dir: flocks on files, released with their
process, so a crashed holder never leaves a stale lock.

- one holder at a time per job (lake maintenance, Amplify collection): `exclusive_lock`;
- one holder for a whole process's life, named so the next one can say who (`loglake serve`): `owned_lock`;
- many readers, and a writer that acts only when none is there: `shared_lock` and `nobody_holds`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
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


class HeldElsewhere(Exception):
    """Another process holds an `owned_lock`; `pid` is the one it wrote (None if it had not yet)."""

    def __init__(self, pid: int | None) -> None:
        super().__init__(f"held by pid {pid}" if pid else "held by another process")
        self.pid = pid


@contextlib.contextmanager
def owned_lock(path: Path) -> Iterator[None]:
    """Hold `path` while the block runs, the file naming this process's pid; never waits: raises
    HeldElsewhere, naming the holder, when another process holds it."""
    private_dir(path.parent)
    with open_private(path, "r+b") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            written = lock.read().strip()
            raise HeldElsewhere(int(written) if written.isdigit() else None) from None
        try:
            lock.truncate(0)  # what a previous holder wrote: its lock went with it
            lock.write(f"{os.getpid()}\n".encode())
            lock.flush()
            yield
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
