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
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from loglake.lake.stop import Stop
from loglake.private_files import open_private, private_dir

STOPPABLE_WAIT_SECONDS = 0.1  # how often a wait that can be told to stop tries the lock again


@contextlib.contextmanager
def exclusive_lock(path: Path, wait: bool = True, stop: Stop | None = None) -> Iterator[bool]:
    """Hold the lock file `path`; yields False, without waiting, if `wait` is off and another holds it. A wait
    with a `stop` ends in Stopped when it is told to (flock waits on through a Ctrl-C off the main thread)."""
    private_dir(path.parent)
    with open_private(path, "a") as lock:
        try:
            if wait and stop is not None:
                _wait_for(lock, stop)
            else:
                fcntl.flock(lock, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _wait_for(lock: IO, stop: Stop) -> None:
    """Take `lock` exclusively once its holder lets go, unless `stop` is told to stop first (Stopped)."""
    woken = threading.Event()
    with stop.watched_by(woken.set):
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                stop.check()
                woken.wait(STOPPABLE_WAIT_SECONDS)


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
