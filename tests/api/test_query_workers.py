"""Users' SQL runs in worker processes (lake/query_workers.py): a query whose values grow past the memory bound
is stopped with a 400, and the server, its ingest and the next query go on. DuckDB's memory limit does not count
the values an expression makes: in the server's process, such a query took the host's memory (a read trial:
2.4 GB for `repeat(message, 2000)`; a list_reduce that doubles a text, or a replace with a long replacement, no
check of the SQL can bound)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import signal
import threading
import time
from dataclasses import replace

import httpx
import pytest

from loglake.api.app import LoglakeApp
from loglake.config import Settings
from tests.conftest import asgi_client, key_for

# A text doubled 31 times: 4 GiB, made a step at a time (the memory grows while the query runs).
DOUBLING = "SELECT length(list_reduce(list_transform(range(32), lambda x: 'xy'), lambda a, b: a || a)) AS n"


@pytest.fixture
def bounded(settings: Settings):
    application = LoglakeApp.from_settings(replace(settings, query_memory_mb=64, query_threads=1))
    yield application
    application.close()


async def test_a_query_whose_values_grow_past_the_memory_bound_is_stopped_and_the_server_goes_on(
    bounded: LoglakeApp,
) -> None:
    async with asgi_client(bounded, key_for(bounded, "admin")) as client:
        growing = asyncio.create_task(client.post("/query", json={"sql": DOUBLING}))
        during = await client.post("/logs", json={"message": "while the query grows"})
        refused = await growing
        after = await client.post("/query", json={"sql": "SELECT count(*) AS n FROM logs"})
    assert (refused.status_code, refused.json()["error"]["code"]) == (400, "query_too_large"), refused.text[:300]
    said = refused.json()["error"]["message"]
    assert "96 MiB" in said and "query_memory_mb" in said  # (64 MiB and half again)
    assert during.status_code == 201
    assert (after.status_code, after.json()["rows"]) == (200, [[1]])


async def test_a_query_worker_that_dies_fails_its_query_alone(bounded: LoglakeApp) -> None:
    """A worker killed under its query (the OOM killer, an operator): that query is a 503 to run again; the
    next one gets a new worker."""
    async with asgi_client(bounded, key_for(bounded, "admin")) as client:
        # (a table function: a worker's, lake/sql_growth.py)
        assert (await client.post("/query", json={"sql": "SELECT count(*) FROM range(3)"})).json()["rows"] == [[3]]
        workers = _query_workers()
        slow = asyncio.create_task(client.post("/query", json={"sql": "SELECT count(*) FROM range(10000000000)"}))
        await asyncio.sleep(1)
        for pid in workers:
            os.kill(pid, signal.SIGKILL)
        failed = await slow
        again = await client.post("/query", json={"sql": "SELECT 2 AS two"})
    assert len(workers) == 1
    said = failed.json()["error"]["message"]
    assert failed.status_code == 503 and "ended before it answered (killed?); retry shortly" in said, failed.text
    assert (again.status_code, again.json()["rows"]) == (200, [[2]])


async def test_a_query_whose_values_stay_small_runs_without_a_worker(bounded: LoglakeApp) -> None:
    """Counts, filters, groups, substrings and dates make no value larger than what they read: DuckDB's memory
    limit bounds them, and they run on the server's engine, without a worker's start or its process's memory."""
    small = [
        "SELECT count(*) FROM logs WHERE message ILIKE '%error%'",
        "SELECT service, severity, count(*) FROM logs GROUP BY ALL",
        "SELECT date_trunc('hour', timestamp) AS hour, max(length(message)) FROM logs GROUP BY 1",
        "SELECT attributes->>'$.user' AS user, count(*) FROM logs WHERE timestamp > now() - INTERVAL 1 DAY GROUP BY 1",
    ]
    async with asgi_client(bounded, key_for(bounded, "admin")) as client:
        sent = await client.post("/logs", json={"message": "an error", "attributes": {"user": "ann"}})
        assert sent.status_code == 201
        for sql in small:
            answered = await client.post("/query", json={"sql": sql})
            assert answered.status_code == 200, (sql, answered.text)
        assert _query_workers() == []
        grows = await client.post("/query", json={"sql": "SELECT max(length(message || message)) AS n FROM logs"})
        assert (grows.status_code, grows.json()["rows"]) == (200, [[16]])
        assert len(_query_workers()) == 1


async def test_a_query_worker_is_watched_when_the_server_holds_over_a_thousand_files(bounded: LoglakeApp) -> None:
    """select() takes no descriptor past 1023: a worker's handle numbered so (the server holding that many
    connections, its file limit raised to the hard one) made the worker look ended, so each query's was stopped
    once answered (a worker forked for each), and no query's time was watched."""
    if resource.getrlimit(resource.RLIMIT_NOFILE)[0] < 2048:
        pytest.skip("needs an open file limit of 2048")
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    try:
        async with asgi_client(bounded, key_for(bounded, "admin")) as client:
            # (a table function: a worker's, lake/sql_growth.py)
            assert (await client.post("/query", json={"sql": "SELECT count(*) FROM range(3)"})).status_code == 200
            workers = _query_workers()
            assert (await client.post("/query", json={"sql": "SELECT count(*) FROM range(4)"})).status_code == 200
            assert _query_workers() == workers and len(workers) == 1  # (the same worker, kept for the next query)
    finally:
        for fd in held:
            os.close(fd)


async def test_a_query_worker_is_stopped_even_when_its_fork_server_was_killed(bounded: LoglakeApp) -> None:
    """The fork server killed (the OOM killer, an operator) under a query: the worker still runs it, and is still
    stopped when the query must stop (here the server stopping; so too past the memory bound or its time, or its
    client gone). multiprocessing then took the worker for ended and sent it no signal: the query ran on, its
    memory unbounded, and its request waited for it."""
    async with asgi_client(bounded, key_for(bounded, "admin")) as client:
        # (a table function: a worker's, lake/sql_growth.py)
        assert (await client.post("/query", json={"sql": "SELECT count(*) FROM range(3)"})).json()["rows"] == [[3]]
        workers = _query_workers()
        servers = [pid for pid in _children(os.getpid()) if b"forkserver" in _read(f"/proc/{pid}/cmdline")]
        slow = asyncio.create_task(client.post("/query", json={"sql": "SELECT count(*) FROM range(1000000000000)"}))
        await asyncio.sleep(1)
        for pid in servers:
            os.kill(pid, signal.SIGKILL)
        await asyncio.sleep(0.2)
        bounded.stopping()
        try:
            stopped = await asyncio.wait_for(slow, 5)
            deadline = time.monotonic() + 3
            while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert not any(_alive(pid) for pid in workers), "the worker still runs its query"
        finally:
            for pid in workers:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
    assert len(workers) == 1
    assert stopped.status_code == 503, stopped.text


def test_a_server_killed_under_a_query_leaves_no_worker_running_it(server_factory, admin_key_of) -> None:
    """kill -9 (or the OOM killer) of the server while a query runs: its worker, which nothing watches any more
    (the memory its values take, the client that went away), ends at once; it ran the query to its timeout, and
    then wrote a BrokenPipeError's traceback into the server's log."""
    server = server_factory(None, "--query-timeout-seconds", "60")
    headers = {"Authorization": f"Bearer {admin_key_of(server)}"}
    slow = {"sql": "SELECT count(*) FROM range(1000000000000)"}

    def ask() -> None:
        with contextlib.suppress(httpx.TransportError):  # (the server is killed under it)
            httpx.post(f"{server.url}/query", json=slow, headers=headers, timeout=90)

    asking = threading.Thread(target=ask)
    asking.start()
    deadline = time.monotonic() + 20
    while not (workers := _query_workers(server.process.pid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # (the query under way)
    server.kill()
    asking.join(10)
    deadline = time.monotonic() + 5
    try:
        while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(workers) == 1
        assert not any(_alive(pid) for pid in workers), "the worker still runs its query"
    finally:
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    assert "Traceback" not in server.log_path.read_text()


def _alive(pid: int) -> bool:
    stat = _read(f"/proc/{pid}/stat")
    return bool(stat) and stat.rsplit(b")", 1)[1].split()[0] != b"Z"


def _query_workers(parent: int | None = None) -> list[int]:
    """The query workers of this process (or of `parent`): the children of its fork server (a child of its own)."""
    parent = os.getpid() if parent is None else parent
    servers = [pid for pid in _children(parent) if b"forkserver" in _read(f"/proc/{pid}/cmdline")]
    return [worker for server in servers for worker in _children(server)]


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        stat = _read(f"/proc/{entry}/stat") if entry.isdigit() else b""
        if stat and int(stat.rsplit(b")", 1)[1].split()[1]) == pid:
            found.append(int(entry))
    return found


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError:
        return b""


async def test_a_worker_leaves_no_spill_folder_behind(settings: Settings) -> None:
    """Workers come and go (idle five minutes, killed past the bound): each one's DuckDB spill folder goes with
    it, where it stayed until the next engine's start."""
    application = LoglakeApp.from_settings(replace(settings, query_threads=1))
    try:
        async with asgi_client(application, key_for(application, "admin")) as client:
            answered = await client.post("/query", json={"sql": "SELECT count(*) FROM range(5)"})
            assert answered.json()["rows"] == [[5]]
            (worker,) = _query_workers()
    finally:
        application.close()
    spills = {folder.name for folder in (settings.data_dir / "tmp" / "duckdb").glob("process-*")}
    assert f"process-{worker}" not in spills and spills <= {f"process-{os.getpid()}"}
