"""The server's worker processes (the flush's for a backlog, the compaction's merge worker, the OTLP decode
workers): spawned, and gone with the process that started them."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor


def spawned_pool(workers: int, initializer: Callable[[int], None] | None = None) -> ProcessPoolExecutor:
    """A pool of `workers` processes, spawned (no fork: the server runs threads), each started by
    initializer(this process's id), exit_with_parent by default."""
    spawn = multiprocessing.get_context("spawn")
    return ProcessPoolExecutor(workers, spawn, initializer=initializer or exit_with_parent, initargs=(os.getpid(),))


def exit_with_parent(parent_pid: int) -> None:
    """A worker process's initializer: the worker must not outlive a parent that was killed (its task queue
    never reports the end, the worker holds a copy of both of its ends). It leaves the terminal's process
    group, which a Ctrl-C reaches whole: its parent decides what stops. A task cut short by it failed the
    parent's flush with the worker's traceback, and ignoring SIGINT is not enough: the SQLite reader (ADBC)
    puts its own handler in place during each call."""
    os.setpgid(0, 0)

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(0.2)
        os._exit(1)

    threading.Thread(target=watch, name="loglake-parent-watch", daemon=True).start()
