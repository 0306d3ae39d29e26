"""Everything loglake writes is private to the user running it (folders 0700, files 0600), and durable.

Logs and keys are secrets, and a shared machine's other users must not read them, whichever entry
point made the file (the server, a CLI command run before the server ever started, a library
caller). Every place that creates a folder or file in the data dir, the lake folder or the access
log goes through these functions, instead of relying on the process umask (usually 022).

SQLite creates a database's -wal, -shm and -journal files with the database file's own mode, so
`private_database` makes the database file 0600 before SQLite first opens it.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO

DIR_MODE = 0o700
FILE_MODE = 0o600
_SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")


class FolderNotMade(OSError):
    """A folder private_dir could not make (a file in its path, a file system that takes none, a full disk): the
    OSError of its mkdir, as such, so that a command says so in one line (cli_options.storage_error_text)."""


def private_dir(path: Path) -> Path:
    """`path` as a folder only its owner can enter: made 0700 with any missing parents, or
    tightened to 0700 if it exists with group or other permissions."""
    path = Path(path)
    missing = []
    probe = path
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    for folder in reversed(missing):
        try:
            with contextlib.suppress(FileExistsError):  # made meanwhile by another process or thread
                folder.mkdir(DIR_MODE)
        except OSError as e:
            raise FolderNotMade(e.errno, e.strerror, e.filename) from e
    _tighten(path, DIR_MODE)
    return path


def private_file(path: Path) -> Path:
    """`path` as a file only its owner can read and write: made empty with mode 0600 if missing,
    tightened to 0600 if it exists with more. Its folder must exist.

    An existing file is never opened: closing any descriptor of a file drops every POSIX lock this
    process holds on it, so opening a SQLite database that a connection of this process already has
    open would silently take that connection's locks away (another process could then checkpoint and
    delete the WAL under it, losing its commits)."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
    _tighten(path, FILE_MODE)
    return Path(path)


def private_database(path: Path) -> Path:
    """A SQLite database file (and its folder) made private before SQLite opens it, so the -wal
    and -shm files it creates are 0600 from their first byte; companions left by an older version
    with a wider mode are tightened."""
    private_dir(Path(path).parent)
    private_file(path)
    for suffix in _SQLITE_COMPANIONS:
        companion = Path(f"{path}{suffix}")
        if companion.exists():
            _tighten(companion, FILE_MODE)
    return Path(path)


def open_private(path: Path, mode: str = "ab") -> IO:
    """Open a file for appending (`ab`, `a`) or reading and writing (`r+b`), made 0600 if new."""
    flags = {"ab": os.O_WRONLY | os.O_APPEND, "a": os.O_WRONLY | os.O_APPEND, "r+b": os.O_RDWR}[mode]
    fd = os.open(path, flags | os.O_CREAT, FILE_MODE)
    try:
        _tighten_fd(fd, FILE_MODE)
        return os.fdopen(fd, mode)
    except BaseException:
        os.close(fd)
        raise


def _tighten(path: Path, mode: int) -> None:
    with contextlib.suppress(OSError):  # not ours, or a file system without permissions
        if stat.S_IMODE(os.stat(path).st_mode) & ~mode:
            os.chmod(path, mode)


def _tighten_fd(fd: int, mode: int) -> None:
    with contextlib.suppress(OSError):
        if stat.S_IMODE(os.fstat(fd).st_mode) & ~mode:
            os.fchmod(fd, mode)


def fsync_dir(path: Path) -> None:
    """Make the names in a folder durable: a new or renamed file survives a crash of the machine only
    once its folder is synced too."""
    _fsync(path)


def _fsync(path: Path) -> None:
    """fsync a file or folder, by its path."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# fsync_together's helpers: the pool starts a thread only when a sync is handed to it.
_SYNCS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="loglake-fsync")


def fsync_together(paths: Sequence[Path]) -> None:
    """fsync files and folders all at once, returning when every one is synced. Syncs in
    flight together share the file system's journal commit and the disk's flush: a lake part and its folder
    cost one flush instead of two in a row (ext4, ~5 ms a flush on a busy disk)."""
    others = [_SYNCS.submit(_fsync, path) for path in paths[1:]]
    _fsync(paths[0])
    for synced in others:
        synced.result()
