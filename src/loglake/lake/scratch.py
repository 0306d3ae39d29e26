"""Scratch folders for one process's work: parts being written before they are published, merges and
their spills, DuckDB's query spills.

They live in the data dir (`tmp/<use>/process-<pid>/`), not in the system's temp folder: a merge's
files can be as large as a day of the lake, which a RAM-backed /tmp cannot hold, and a process killed
with -9 leaves its folder behind, which the next process to ask for one removes (a process that ends
normally removes its own, at exit: an empty folder left by each CLI run piled up). A folder per process
id, so that the server, its merge worker and a `loglake query --data-dir` never take each other's;
processes sharing a data dir run on one host, where each sees the others' ids.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import threading
from pathlib import Path

from loglake.private_files import private_dir

WORK = "work"
_ready: set[tuple[Path, int]] = set()
_reaping = threading.Lock()


def folder_of_this_process(parent: Path) -> Path:
    """This process's folder in `parent`, once those of processes that are gone are removed."""
    mine = (parent, os.getpid())
    with _reaping:
        if mine not in _ready:
            for folder in parent.glob("process-*"):
                pid = folder.name.removeprefix("process-")
                if pid.isdigit() and not _running(int(pid)):
                    shutil.rmtree(folder, ignore_errors=True)
            if not any(owner == mine[1] for _, owner in _ready):
                atexit.register(_remove_folders_of_this_process)
            _ready.add(mine)
    return private_dir(_folder(parent))


def remove_folder_of_this_process(parent: Path) -> None:
    """This process's folder in `parent` gone, as it ends (a query worker's DuckDB spills: workers come and go)."""
    shutil.rmtree(_folder(parent), ignore_errors=True)


def _remove_folders_of_this_process() -> None:
    """At a normal exit. A forked child inherits the handler and the parent's entries: it removes its own only."""
    pid = os.getpid()
    for parent, owner in list(_ready):
        if owner == pid:
            remove_folder_of_this_process(parent)


def new_work_folder(data_dir: Path, prefix: str) -> Path:
    """A new empty folder for one piece of work; the caller removes it when done."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir=folder_of_this_process(data_dir / "tmp" / WORK)))


def _folder(parent: Path) -> Path:
    return parent / f"process-{os.getpid()}"


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True
