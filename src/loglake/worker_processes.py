"""The server's worker processes (the flush's for a backlog, the compaction's merge worker, the OTLP decode
workers): spawned, and gone with the process that started them."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor


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
    # A Ctrl-C that reached the group while this process started waits, blocked (started_without_ctrl_c):
    # dropped (SIG_IGN drops a pending signal) before SIGINT is let through, with the handler it had.
    handler = signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    signal.signal(signal.SIGINT, handler)

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(0.2)
        os._exit(1)

    threading.Thread(target=watch, name="loglake-parent-watch", daemon=True).start()


def started_without_ctrl_c(submit: Callable[[], Future]) -> Future:
    """submit() to a worker pool, which starts its worker process on the first, without Ctrl-C cutting into
    that start. The worker starts with SIGINT blocked, so a Ctrl-C in its half second of start-up, before
    exit_with_parent takes it out of the terminal's process group, cannot kill it (its traceback, then the
    parent's BrokenProcessPool in place of the Ctrl-C); and on the main thread a Ctrl-C while the worker is
    being started (its start data not yet sent: its EOFError traceback) is taken once it has been."""
    on_main = threading.current_thread() is threading.main_thread()
    pressed: list[int] = []
    handler = signal.signal(signal.SIGINT, lambda number, _frame: pressed.append(number)) if on_main else None
    held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        started = submit()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)
        if on_main:
            signal.signal(signal.SIGINT, handler)
    if pressed and callable(handler):
        handler(signal.SIGINT, None)  # KeyboardInterrupt, as the Ctrl-C would have raised
    return started
