"""Writers that publish to the lake outside the maintenance lock (bulk ingest, lake/bulk.py), and how
maintenance tells a running one from a crashed one.

Each such writer holds an exclusive lock on `ingest-writers/<owner>.lock` beside hot.db for as long as
it lives, and names itself (`owner`) in the journal entries of its rounds (flush.publish). The lock
goes with its process, so an entry whose writer's lock is free belongs to a writer that crashed, and
Flusher.recover may undo it; an entry of a running writer is a round still under way.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import uuid
from pathlib import Path
from typing import IO

from loglake.locks import nobody_holds
from loglake.private_files import open_private, private_dir

WRITERS_DIR = "ingest-writers"
STARTING_SECONDS = 60.0


def _lock_path(data_dir: Path, owner: str) -> Path:
    return data_dir / WRITERS_DIR / f"{owner}.lock"


def is_running(data_dir: Path, owner: str) -> bool:
    return not nobody_holds(_lock_path(data_dir, owner))


def forget(data_dir: Path, owner: str) -> None:
    """Remove the lock file of a writer that is gone."""
    with contextlib.suppress(FileNotFoundError):
        _lock_path(data_dir, owner).unlink()


def forget_the_dead(data_dir: Path, now: float) -> None:
    """Remove the lock files of writers that are gone (a crash leaves its file behind). A file younger
    than STARTING_SECONDS is left alone: its writer may be between creating it and locking it."""
    for path in (data_dir / WRITERS_DIR).glob("*.lock"):
        with contextlib.suppress(FileNotFoundError):
            if now - path.stat().st_mtime > STARTING_SECONDS and nobody_holds(path):
                path.unlink()


class WriterLock:
    """This process's writer identity and its lock, taken on first use and held until `release`."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.owner = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self._file: IO | None = None
        self._guard = threading.Lock()

    def hold(self) -> str:
        with self._guard:
            if self._file is None:
                path = _lock_path(self.data_dir, self.owner)
                private_dir(path.parent)
                self._file = open_private(path, "a")
                fcntl.flock(self._file, fcntl.LOCK_EX)
        return self.owner

    def release(self) -> None:
        with self._guard:
            if self._file is not None:
                self._file.close()
                self._file = None
                forget(self.data_dir, self.owner)
