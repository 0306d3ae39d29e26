"""The process_* metrics and the CPU time of the server's thread groups (api/process_metrics.py)."""

from __future__ import annotations

import re
import sys
import threading
import time

import httpx
import pytest

from loglake.api.process_metrics import OTHER, ProcessFigures, thread_group

linux_only = pytest.mark.skipif(sys.platform != "linux", reason="threads' CPU time is read from /proc")


def _burn(seconds: float) -> None:
    """Spend about this much CPU time on the calling thread."""
    until = time.thread_time() + seconds
    while time.thread_time() < until:
        pass


def test_threads_are_counted_by_pool_and_strangers_as_other() -> None:
    assert thread_group("loglake-ingest_0") == thread_group("loglake-ingest_1") == "loglake-ingest"
    assert thread_group("loglake-merge-behind_1") == "loglake-merge-behind"
    assert thread_group("MainThread") == "MainThread"
    assert thread_group("asyncio_3") == "asyncio"
    # A library's threads (any name) take one label, so that the label's values stay few and known.
    assert thread_group("ThreadPoolExecutor-0_0") == thread_group("Thread-7 (worker)") == OTHER


@linux_only
def test_a_group_keeps_what_its_ended_threads_used() -> None:
    figures = ProcessFigures()
    worker = threading.Thread(target=_burn, args=(0.2,), name="loglake-burner_0")
    seen = threading.Event()
    worker.start()
    while worker.is_alive():  # seen while it runs, at least once
        figures.thread_cpu()
        seen.set()
        time.sleep(0.01)
    assert seen.is_set()
    while_running = figures.thread_cpu()["loglake-burner"]  # (the last read may be after its end: then 0 more)
    assert while_running >= 0.1
    after = figures.thread_cpu()
    assert after["loglake-burner"] >= while_running  # a counter never goes back when a thread ends


@linux_only
async def test_metrics_show_the_process_and_where_its_cpu_goes(client: httpx.AsyncClient) -> None:
    # Bodies from 256 KiB are checked on the ingest threads (routes.OFF_LOOP_BODY_BYTES).
    body = "".join(
        f'{{"message": "line {i} of a bulk big enough to be checked off the event loop"}}\n' for i in range(8_000)
    )
    for _ in range(3):
        assert (
            await client.post("/logs", content=body, headers={"content-type": "application/x-ndjson"})
        ).status_code == 201
    text = (await client.get("/metrics")).text

    def value(series: str) -> float:
        found = re.search(rf"^{re.escape(series)} (\S+)$", text, re.MULTILINE)
        assert found, f"{series} missing from /metrics"
        return float(found.group(1))

    assert value("process_cpu_seconds_total") > 0
    assert value("process_resident_memory_bytes") > 20 * 2**20
    assert value("process_open_fds") > 0
    assert value("process_max_fds") >= value("process_open_fds")
    assert abs(value("process_start_time_seconds") - time.time()) < 3600
    assert value('loglake_thread_cpu_seconds_total{threads="loglake-ingest"}') > 0
    assert value('loglake_thread_cpu_seconds_total{threads="MainThread"}') > 0
