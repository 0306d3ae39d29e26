"""The server's worker processes (the flush's for a backlog, the compaction's merge worker, the OTLP decode
workers): spawned, gone with the process that started them, gone when idle (IdleExitingWorker, and the decode
workers), and stopped without waiting on a stuck one for more than a bound (stop_pool)."""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

log = logging.getLogger("loglake.workers")

# A worker with nothing to do for this long exits (the next task starts another, ~1 s of CPU): the work comes in
# bursts (bulk loads, a day's last merge, OTLP exports), and an idle worker holds ~85-90 MiB of its own.
WORKER_IDLE_S = 300.0
# An idle worker asked to exit does so at once; one that has not within this is stuck (stopped, swapping), and is
# killed: a pool that waited for it would hold the interpreter's exit (which joins every pool's thread).
IDLE_STOP_GRACE_S = 2.0
# How long a pool's shutdown may still take once its stuck workers are killed (the pool notices them gone).
STOP_AFTER_KILL_S = 10.0


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


class IdleExitingWorker:
    """One spawned worker process (spawned_pool), started by the first run and again by the first run after
    it exited: it exits once it has had nothing to do for `idle_s`. A worker holds its own copy of the
    libraries its tasks use (pyarrow: ~90 MiB RSS after a streamed merge), which a server with nothing more
    for it to do kept for good; starting one again costs ~1 s of CPU, so the wait suits work that comes in
    bursts (bulk loads, a day's last merge)."""

    def __init__(self, initializer: Callable[[int], None], idle_s: float, what: str) -> None:
        self.initializer = initializer
        self.what = what  # what the log calls it
        self.idle_s = idle_s
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        self._running = 0  # runs submitted and not yet done
        self._idle_exit: threading.Timer | None = None

    def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """fn(*args, **kwargs) in the worker process (started_without_ctrl_c)."""
        with self._lock:
            if self._pool is None:
                self._pool = spawned_pool(1, self.initializer)
            pool = self._pool
            self._running += 1
        try:
            return started_without_ctrl_c(lambda: pool.submit(fn, *args, **kwargs)).result()
        finally:
            with self._lock:
                self._running -= 1
                if self._running == 0 and self._pool is pool:
                    self._stop_after_idle()

    def close(self, grace_s: float) -> None:
        """Stop the worker: a run under way has grace_s to end, then the worker is killed (stop_pool)."""
        with self._lock:
            self._cancel_idle_exit()
            pool, self._pool = self._pool, None
        if pool is not None:
            stop_pool(pool, grace_s, self.what)

    def _stop_after_idle(self) -> None:
        """(Holding the lock) a timer that stops the worker idle_s from now, in place of any earlier one."""
        self._cancel_idle_exit()
        self._idle_exit = started_timer(self.idle_s, self._stop_if_idle)

    def _stop_if_idle(self) -> None:
        with self._lock:
            # A run came since (under way, or done and its own timer waiting): not this timer's to stop.
            if self._running or self._idle_exit is not threading.current_thread() or self._pool is None:
                return
            pool, self._pool, self._idle_exit = self._pool, None, None
        stop_pool(pool, IDLE_STOP_GRACE_S, self.what)

    def _cancel_idle_exit(self) -> None:
        if self._idle_exit is not None:
            self._idle_exit.cancel()
            self._idle_exit = None


def started_timer(seconds: float, fn: Callable[[], None]) -> threading.Timer:
    """A daemon thread that calls fn() in `seconds` unless cancelled: a worker's idle exit."""
    timer = threading.Timer(seconds, fn)
    timer.name = "loglake-worker-idle-exit"
    timer.daemon = True
    timer.start()
    return timer


def stop_pool(pool: ProcessPoolExecutor, grace_s: float, what: str) -> None:
    """Shut `pool` down waiting at most grace_s for it: tasks not started are cancelled, those under way have
    grace_s to end, then their workers are killed (said once in the log, naming `what`), which fails their
    futures with BrokenProcessPool. The pool's own shutdown(wait=True) ends its workers, but waits on a stuck
    one for good (and with it the server's stop): it runs on a thread of its own, waited for grace_s. (A bounded
    join of the workers after shutdown(wait=False) instead left idle ones running past a minute in a loaded
    test run.)"""
    workers = pool_workers(pool)
    shutting = threading.Thread(
        target=pool.shutdown, kwargs={"wait": True, "cancel_futures": True}, name="loglake-pool-stop", daemon=True
    )
    shutting.start()
    shutting.join(grace_s)
    if shutting.is_alive():
        log.warning("the %s did not stop within %g s (stuck, or its task too long): killed", what, grace_s)
        kill_workers(workers)
        shutting.join(STOP_AFTER_KILL_S)


def pool_workers(pool: ProcessPoolExecutor) -> list[multiprocessing.Process]:
    """The pool's worker processes. (ProcessPoolExecutor keeps them by pid and says nothing of them; Python 3.14's
    kill_workers() is the public way to do what kill_workers does.)"""
    return list((getattr(pool, "_processes", None) or {}).values())


def kill_workers(workers: list[multiprocessing.Process]) -> None:
    """SIGKILL those of `workers` that still run: their pool then fails each task they held with
    BrokenProcessPool."""
    for worker in workers:
        if worker.is_alive():
            worker.kill()
