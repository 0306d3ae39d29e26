"""The composition root: what a Runtime builds from Settings, that its edges hear its events, and that its stop
waits on no stuck worker."""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from loglake.config import Settings
from loglake.lake import compact
from loglake.lake.lake import MaintenanceReport
from loglake.runtime import Runtime
from loglake.store.sqlite import SQLiteHotStore
from tests.conftest import poll
from tests.lake.test_compact import flush_in_small_rounds
from tests.lake.test_flush import hot_ids, seed


class Recorder:
    def __init__(self) -> None:
        self.commits: list[int] = []
        self.maintenance: list[MaintenanceReport] = []

    def on_commit(self, rows: int, seconds: float) -> None:
        self.commits.append(rows)

    def on_maintenance(self, report: MaintenanceReport) -> None:
        self.maintenance.append(report)

    def on_amplify_report(self, report: object) -> None:
        raise AssertionError("no collector is configured")


def test_runtime_builds_the_embedded_loglake_and_reports_to_its_observers(tmp_path: Path) -> None:
    now = 1_795_000_000.0
    runtime = Runtime(Settings(data_dir=tmp_path, hot_window_seconds=60), clock=lambda: now)
    recorder = Recorder()
    runtime.observe(recorder)
    try:
        assert runtime.lake is not None and runtime.amplify is None
        parsed = runtime.service.parse(b'[{"message": "a"}, {"message": "b", "timestamp": 1794000000000}]', False)
        assert parsed.records is not None  # two records: the hot store's, not a bulk batch
        runtime.service.submit(parsed.records).result(timeout=10)
        assert recorder.commits == [2]
        report = runtime.lake.maintain(compact=False, expire=False)
        assert report is not None and report.flushed.records == 1
        runtime.lake_jobs.on_report(report)
        assert recorder.maintenance == [report]
    finally:
        runtime.close()


def test_commands_that_never_touch_keys_leave_no_key_file(tmp_path: Path) -> None:
    runtime = Runtime(Settings(data_dir=tmp_path))
    runtime.close()
    assert (tmp_path / "hot.db").exists()
    assert not (tmp_path / "keys.db").exists()


def test_a_server_without_aws_settings_never_loads_the_aws_sdk(tmp_path: Path) -> None:
    """boto3, botocore and httpx take ~20 MiB of a server's memory: only an S3 lake or Amplify apps need them."""
    script = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from loglake.api.app import LoglakeApp
        from loglake.config import Settings
        app = LoglakeApp.from_settings(Settings(data_dir=Path({str(tmp_path)!r})))
        app.close()
        print(sorted(m for m in ("boto3", "botocore", "httpx") if m in sys.modules))
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == "[]"


def test_a_stuck_merge_worker_holds_the_servers_stop_no_longer_than_its_grace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A merge worker that hangs (stopped here: SIGSTOP) is killed once the merge's grace is over, and the server's
    stop (Runtime.close: the lake's jobs, then the lake and the store) ends: it waited for the worker for good.
    Nothing is lost: the merge's inputs stay in the catalog, merged again by a later turn."""
    monkeypatch.setattr(compact, "IN_MEMORY_MERGE_RECORDS", 0)  # (every merge streamed, in the worker)
    # (an hour ahead: the seeded days' files, written now, are past the lake's quiet while, merged at the first turn)
    runtime = Runtime(Settings(data_dir=tmp_path, flush_interval_seconds=0.05), clock=lambda: time.time() + 3600)
    assert runtime.lake is not None and runtime.lake_jobs is not None
    runtime.lake.background.stop_grace_s = 0.5
    flush_in_small_rounds(runtime.store, runtime.lake.objects)
    worker = runtime.lake.background.run(os.getpid)
    os.kill(worker, signal.SIGSTOP)

    def merge_under_way() -> None:
        poll(lambda: list(tmp_path.rglob("compact-*/input-*.parquet")), "a merge's inputs, fetched for the worker")
        time.sleep(0.5)  # (the merge handed to the stopped worker)

    warnings = stop_beside_a_stuck_worker(runtime, caplog, "merge worker", merge_under_way, [worker])
    assert warnings == ["the merge worker did not stop within 0.5 s (stuck, or its task too long): killed"]
    store = SQLiteHotStore(tmp_path / "hot.db")
    try:
        assert store.read("SELECT count(*), sum(records) FROM lake_files") == [(15, 900)]
    finally:
        store.close()


def test_a_stuck_flush_worker_holds_the_servers_stop_no_longer_than_its_grace(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A flush of a backlog runs its rounds in a worker process; one that hangs (SIGSTOP) is killed once the
    flusher's grace is over, and the server's stop ends: it waited for the worker for good. Nothing is lost: the
    round's rows stay hot, moved by a later flush."""
    runtime = Runtime(Settings(data_dir=tmp_path, flush_interval_seconds=0.05), clock=lambda: time.time() + 3600)
    assert runtime.lake is not None and runtime.lake_jobs is not None
    everything = seed(runtime.store, days=3)
    runtime.lake.flusher.worker_process = True  # (a backlog's flush, whatever the rows)
    runtime.lake.flusher.stop_grace_s = 0.5
    stopped: list[int] = []

    def flush_worker_stopped() -> None:
        worker = poll(lambda: multiprocessing.active_children(), "the flush's worker process")[0]
        os.kill(worker.pid, signal.SIGSTOP)  # (while it starts: before it can read a round)
        stopped.append(worker.pid)

    warnings = stop_beside_a_stuck_worker(runtime, caplog, "flush worker", flush_worker_stopped, stopped)
    assert warnings == ["the flush worker did not stop within 0.5 s (stuck, or its task too long): killed"]
    store = SQLiteHotStore(tmp_path / "hot.db")
    try:
        assert hot_ids(store) == everything
    finally:
        store.close()


def stop_beside_a_stuck_worker(
    runtime: Runtime, caplog: pytest.LogCaptureFixture, what: str, stuck: Callable[[], None], pids: list[int]
) -> list[str]:
    """Start `runtime`, let `stuck` make a worker hang mid-task (SIGSTOP; the pids it stops in `pids`), then the
    server's stop (Runtime.close) must end within 30 s, leaving no worker behind; the warnings it logged."""
    stopping = threading.Thread(target=runtime.close)
    try:
        runtime.start()
        stuck()
        with caplog.at_level(logging.INFO):
            stopping.start()
            stopping.join(30)
        assert not stopping.is_alive(), f"the server's stop waits on the stuck {what}"
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):  # (killed by the stop)
                os.kill(pid, signal.SIGKILL)
        if stopping.ident is None:  # (the test failed before the stop)
            runtime.close()
    assert multiprocessing.active_children() == []
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
