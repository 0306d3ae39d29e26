"""The server's worker processes: a worker idle for its while exits, and the next run starts another."""

from __future__ import annotations

import multiprocessing
import os
import time
from concurrent.futures import ThreadPoolExecutor

from loglake.lake.compact import Background
from loglake.worker_processes import IdleExitingWorker, exit_with_parent


def _workers_gone_within(seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while multiprocessing.active_children():  # also reaps those that exited
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_an_idle_worker_exits_and_the_next_run_starts_another() -> None:
    worker = IdleExitingWorker(exit_with_parent, idle_s=0.3)
    try:
        first = worker.run(os.getpid)
        assert first != os.getpid()
        assert [p.pid for p in multiprocessing.active_children()] == [first]
        assert _workers_gone_within(30)
        second = worker.run(os.getpid)
        assert second not in (first, os.getpid())
    finally:
        worker.close()
    assert _workers_gone_within(30)


def test_a_worker_busy_past_its_idle_while_is_kept() -> None:
    worker = IdleExitingWorker(exit_with_parent, idle_s=0.2)
    try:
        first = worker.run(os.getpid)
        with ThreadPoolExecutor(1) as other:
            busy = other.submit(worker.run, time.sleep, 2.0)
            time.sleep(0.5)  # the first run's idle while is over, the second run under way
            assert worker.run(os.getpid) == first
            busy.result()
    finally:
        worker.close()


def test_the_merge_worker_exits_when_idle() -> None:
    background = Background(worker_idle_s=0.3)
    try:
        assert background.run(os.getpid) != os.getpid()
        assert _workers_gone_within(30)
    finally:
        background.close()
