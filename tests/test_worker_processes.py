"""The server's worker processes: a worker idle for its while exits, and the next run starts another; a worker
that does not stop within its grace is killed."""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import pytest

from loglake.lake.compact import Background
from loglake.worker_processes import IdleExitingWorker, exit_with_parent
from tests.conftest import poll


def _workers_gone_within(seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while multiprocessing.active_children():  # also reaps those that exited
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_an_idle_worker_exits_and_the_next_run_starts_another() -> None:
    worker = IdleExitingWorker(exit_with_parent, idle_s=0.3, what="worker")
    try:
        first = worker.run(os.getpid)
        assert first != os.getpid()
        assert [p.pid for p in multiprocessing.active_children()] == [first]
        assert _workers_gone_within(30)
        second = worker.run(os.getpid)
        assert second not in (first, os.getpid())
    finally:
        worker.close(grace_s=30)
    assert _workers_gone_within(30)


def test_a_worker_busy_past_its_idle_while_is_kept() -> None:
    worker = IdleExitingWorker(exit_with_parent, idle_s=0.2, what="worker")
    try:
        first = worker.run(os.getpid)
        with ThreadPoolExecutor(1) as other:
            busy = other.submit(worker.run, time.sleep, 2.0)
            time.sleep(0.5)  # the first run's idle while is over, the second run under way
            assert worker.run(os.getpid) == first
            busy.result()
    finally:
        worker.close(grace_s=30)


def test_the_merge_worker_exits_when_idle() -> None:
    background = Background(worker_idle_s=0.3)
    try:
        assert background.run(os.getpid) != os.getpid()
        assert _workers_gone_within(30)
    finally:
        background.close()


def _sleep_once_begun(begun: Path, seconds: float) -> None:
    """In the worker: a run that says it has begun (a file), then takes `seconds`."""
    begun.touch()
    time.sleep(seconds)


@pytest.mark.parametrize(
    ("run_s", "grace_s", "said"),
    [(3600, 0.5, ["the worker did not stop within 0.5 s (stuck, or its task too long): killed"]), (1.0, 60, [])],
    ids=["stuck: killed", "ends within its grace"],
)
def test_closing_a_worker_gives_its_run_under_way_the_grace_then_kills_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, run_s: float, grace_s: float, said: list[str]
) -> None:
    """close() waited for a run under way for good (shutdown(wait=True)): a stuck worker held the server's stop."""
    worker = IdleExitingWorker(exit_with_parent, idle_s=300, what="worker")
    with ThreadPoolExecutor(1) as other:
        running = other.submit(worker.run, _sleep_once_begun, tmp_path / "begun", run_s)
        poll((tmp_path / "begun").exists, "the worker's run to begin")
        with caplog.at_level(logging.WARNING):
            closing = threading.Thread(target=worker.close, args=(grace_s,))
            closing.start()
            closing.join(90)
        assert not closing.is_alive(), "close() waits on the stuck worker"
        if said:  # (killed: its run fails, as a merge cut short by the stop does)
            with pytest.raises(BrokenProcessPool):
                running.result(30)
        else:
            assert running.result() is None
    assert _workers_gone_within(30)
    assert [r.getMessage() for r in caplog.records] == said


def test_an_idle_worker_that_is_stuck_is_killed_by_its_idle_exit(caplog: pytest.LogCaptureFixture) -> None:
    """The idle exit waited for the worker to exit for good (shutdown(wait=True)): a stuck one stayed, and its
    pool's thread held the interpreter's exit."""
    worker = IdleExitingWorker(exit_with_parent, idle_s=0.5, what="idle worker")
    pid = worker.run(os.getpid)
    os.kill(pid, signal.SIGSTOP)
    try:
        with caplog.at_level(logging.WARNING):
            assert _workers_gone_within(30)
        assert [r.getMessage() for r in caplog.records] == [
            "the idle worker did not stop within 2 s (stuck, or its task too long): killed"
        ]
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        worker.close(grace_s=30)
