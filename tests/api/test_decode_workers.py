"""Request bodies decoded in worker processes (decode_workers.py), OTLP exports and Loki pushes: the same answers and
records as decoded in the server's process, whatever the body holds; a worker that dies costs no record; no workers
(0), or workers that cannot start, decode in process. Real worker processes, spawned as the server spawns them."""

from __future__ import annotations

import asyncio
import gc
import gzip
import json
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import Future
from multiprocessing import resource_tracker

import httpx
import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from loglake import decode_workers
from loglake.api.app import LoglakeApp
from loglake.api.routes import decoded_by_worker
from loglake.config import Settings
from loglake.protocols import otlp
from tests.api.test_loki import entry, json_push, protobuf_push
from tests.api.test_otlp import NANOS, NOW_MS, PROTOBUF, SPAN, TRACE, pairs, post, text
from tests.api.test_otlp_json import _hex_ids, every_rule
from tests.conftest import asgi_client, key_for, poll

JSON = {"content-type": "application/json"}
GZIP = {**PROTOBUF, "content-encoding": "gzip"}
PADDING_RECORDS = 1_500  # (of ~220 bytes each: an export the workers take, gzipped too)
MIN_GZIP_BODY_BYTES = decode_workers.MIN_BODY_BYTES // decode_workers.GZIP_SHRINKS
MAX_BODY_BYTES = 10 << 20


def padded(request: ExportLogsServiceRequest) -> ExportLogsServiceRequest:
    """The request with a scope of PADDING_RECORDS more records (random text: gzip keeps it big)."""
    padded = ExportLogsServiceRequest()
    padded.CopyFrom(request)
    resource_logs = padded.resource_logs.add()
    resource_logs.resource.attributes.extend(pairs(service__name=text("padding")))
    scope_logs = resource_logs.scope_logs.add()
    for i in range(PADDING_RECORDS):
        scope_logs.log_records.add(
            time_unix_nano=(NOW_MS - i) * NANOS,
            severity_number=(9, 13, 0, 99)[i % 4],
            severity_text=("", "WARNING", "fatal", "")[i % 4],
            body=text(f"padding {i} {os.urandom(96).hex()}"),
            attributes=pairs(n=text(str(i % 5))),
            trace_id=TRACE if i % 2 else b"",
            span_id=SPAN if i % 3 else b"",
        )
    return padded


def with_time_in_milliseconds(request: ExportLogsServiceRequest) -> ExportLogsServiceRequest:
    """A record whose time is in ms where OTLP's unit is ns: 1970, stored at its arrival (columns.restamp_...)."""
    request.resource_logs[0].scope_logs[0].log_records.append(LogRecord(time_unix_nano=NOW_MS, body=text("in ms")))
    return request


EXPORTS = {  # each as (body, headers)
    "protobuf, refused records": lambda: (
        padded(with_time_in_milliseconds(every_rule())).SerializeToString(),
        PROTOBUF,
    ),
    "protobuf, all valid (bulk)": lambda: (padded(ExportLogsServiceRequest()).SerializeToString(), PROTOBUF),
    "gzip, refused records": lambda: (gzip.compress(padded(every_rule()).SerializeToString()), GZIP),
    "OTLP/JSON, refused records": lambda: (_json(padded(with_time_in_milliseconds(every_rule()))), JSON),
    "OTLP/JSON, all valid (bulk)": lambda: (_json(padded(ExportLogsServiceRequest())), JSON),
    "OTLP/JSON, a time past 2**64 ns": lambda: (_with_a_time_past_int64(padded(every_rule())), JSON),
    "malformed protobuf": lambda: (padded(every_rule()).SerializeToString() + b"\x0a\xff\xff\xff", PROTOBUF),
    "malformed OTLP/JSON": lambda: (_json(padded(every_rule()))[:-1] + b', "resourceLogs": 5}', JSON),
    "not gzip": lambda: (b"\x1f\x8b\x00" + bytes(MIN_GZIP_BODY_BYTES), GZIP),
}


def _json(request: ExportLogsServiceRequest) -> bytes:
    return json.dumps(_hex_ids(json_format.MessageToDict(request), False)).encode()


def _with_a_time_past_int64(request: ExportLogsServiceRequest) -> bytes:
    """In OTLP/JSON, whose numbers are unbounded, a record whose time is past what Arrow's int64 holds as ms: the
    worker hands over its columns as they are (not as Arrow's), and the record is stored at its arrival."""
    body = json.loads(_json(request))
    late = {"timeUnixNano": str(10**30), "body": {"stringValue": "far too late"}}
    body["resourceLogs"][0]["scopeLogs"][0]["logRecords"].append(late)
    return json.dumps(body).encode()


def app_with(data_dir: os.PathLike, workers: int) -> LoglakeApp:
    settings = Settings(data_dir=data_dir, access_log="off", decode_workers=workers)
    return LoglakeApp.from_settings(settings, clock=lambda: NOW_MS / 1000)


@pytest.fixture
def apps(tmp_path: os.PathLike) -> Iterator[dict[int, LoglakeApp]]:
    """An app with one decode worker and one with none."""
    found = {workers: app_with(tmp_path / f"workers-{workers}", workers) for workers in (1, 0)}
    yield found
    for app in found.values():
        app.close()


@pytest.fixture
async def clients(apps: dict[int, LoglakeApp]) -> AsyncIterator[dict[int, httpx.AsyncClient]]:
    async with asgi_client(apps[1], key_for(apps[1])) as one, asgi_client(apps[0], key_for(apps[0])) as none:
        yield {1: one, 0: none}


async def everything_stored(client: httpx.AsyncClient) -> list[list]:
    sql = "SELECT timestamp, service, log_type, severity, message, attributes, trace_id, span_id FROM logs ORDER BY ALL"
    response = await client.post("/query", json={"sql": sql})
    assert response.status_code == 200, response.text
    return response.json()["rows"]


def worker_processes() -> list[multiprocessing.Process]:
    return multiprocessing.active_children()


def submitted(workers: decode_workers.DecodeWorkers, body: bytes) -> Future | None:
    """The export's decoding as the OTLP route submits it (protobuf, not gzipped)."""
    return workers.submit(otlp.worker_decoded, body, False, False, MAX_BODY_BYTES)


def started(workers: decode_workers.DecodeWorkers) -> None:
    """Once the workers take an export: they start at the first one (exports meanwhile are decoded in process)."""
    body = padded(ExportLogsServiceRequest()).SerializeToString()
    deadline = time.monotonic() + 120
    while (decoding := submitted(workers, body)) is None:
        assert time.monotonic() < deadline, "the decode workers did not start"
        time.sleep(0.05)
    assert workers.result(decoding) is not None


async def decoded_where(client: httpx.AsyncClient, protocol: str = "otlp") -> dict[str, float]:
    metrics = (await client.get("/metrics")).text
    return {
        where: float(line.rsplit(" ", 1)[1])
        for where in ("worker", "server")
        for line in metrics.splitlines()
        if line.startswith(f'loglake_bodies_decoded_total{{protocol="{protocol}",where="{where}"}}')
    }


@pytest.mark.parametrize("export", EXPORTS)
async def test_a_worker_answers_and_stores_what_the_servers_process_does(
    apps: dict[int, LoglakeApp], clients: dict[int, httpx.AsyncClient], export: str
) -> None:
    body, headers = EXPORTS[export]()
    assert len(body) >= (MIN_GZIP_BODY_BYTES if headers is GZIP else decode_workers.MIN_BODY_BYTES)
    assert worker_processes() == []
    in_process = await post(clients[0], body, headers)
    assert worker_processes() == [] and await decoded_where(clients[0]) == {"server": 1}  # (no workers: none started)
    started(apps[1].decode_workers)
    by_worker = await post(clients[1], body, headers)
    # (a body the worker cannot inflate is left to the server's process, which answers its error)
    assert await decoded_where(clients[1]) == ({"server": 1} if export == "not gzip" else {"worker": 1})
    assert (by_worker.status_code, by_worker.headers["content-type"]) == (
        in_process.status_code,
        in_process.headers["content-type"],
    )
    assert by_worker.content == in_process.content  # the ExportLogsServiceResponse or google.rpc.Status
    rows = await everything_stored(clients[1])
    assert rows == await everything_stored(clients[0])
    if "refused" in export or "past" in export:
        assert in_process.status_code == 200 and b"record" in in_process.content  # (a partial success)
        # every_rule's storable records, the padding, and a record timed in ms or past 2**64 ns (stored at its
        # arrival, the time it carried in its attributes)
        odd_time = export in (
            "protobuf, refused records",
            "OTLP/JSON, refused records",
            "OTLP/JSON, a time past 2**64 ns",
        )
        assert len(rows) == PADDING_RECORDS + 17 + odd_time
    elif "all valid" in export:
        assert len(rows) == PADDING_RECORDS
    else:
        assert in_process.status_code == 400 and rows == []


def _lines() -> list[str]:
    return [f"padding {i} {os.urandom(96).hex()}" for i in range(PADDING_RECORDS)]


def _loki_protobuf(*more: bytes) -> bytes:
    entries = [entry((NOW_MS - i) * NANOS, line, {"n": str(i % 5)}) for i, line in enumerate(_lines())]
    return protobuf_push(('{app="web", level="warn"}', entries + list(more)), ('{job="db"}', entries[:10]))


PUSHES = {  # (body, headers) of Loki pushes the workers take
    "protobuf": lambda: (_loki_protobuf(), PROTOBUF),
    "protobuf, refused entries": lambda: (_loki_protobuf(entry(10 * NANOS, "long ago")), PROTOBUF),
    "JSON": lambda: (
        json_push(({"app": "web"}, [[str((NOW_MS - i) * NANOS), line] for i, line in enumerate(_lines())])),
        JSON,
    ),
    "not snappy": lambda: (b"\x00" * decode_workers.MIN_BODY_BYTES, PROTOBUF),
}


@pytest.mark.parametrize("push", PUSHES)
async def test_a_worker_answers_and_stores_loki_pushes_as_the_servers_process_does(
    apps: dict[int, LoglakeApp], clients: dict[int, httpx.AsyncClient], push: str
) -> None:
    body, headers = PUSHES[push]()
    assert len(body) >= decode_workers.MIN_BODY_BYTES
    in_process = await clients[0].post("/loki/api/v1/push", content=body, headers=headers)
    assert await decoded_where(clients[0], "loki") == {"server": 1}
    started(apps[1].decode_workers)
    by_worker = await clients[1].post("/loki/api/v1/push", content=body, headers=headers)
    assert await decoded_where(clients[1], "loki") == {"worker": 1}
    assert (by_worker.status_code, by_worker.content) == (in_process.status_code, in_process.content)
    rows = await everything_stored(clients[1])
    assert rows == await everything_stored(clients[0])
    if push == "not snappy":
        assert in_process.status_code == 400 and rows == []
    elif push == "JSON":
        assert in_process.status_code == 204 and len(rows) == PADDING_RECORDS
    else:  # (an entry that cannot be stored is refused alone, with a 400 naming it: Loki's answer)
        assert in_process.status_code == (400 if "refused" in push else 204)
        assert len(rows) == PADDING_RECORDS + 10


async def test_a_killed_worker_costs_no_record_and_the_pool_starts_again(
    apps: dict[int, LoglakeApp], clients: dict[int, httpx.AsyncClient], caplog: pytest.LogCaptureFixture
) -> None:
    client, workers = clients[1], apps[1].decode_workers
    body = padded(ExportLogsServiceRequest()).SerializeToString()
    started(workers)
    [worker] = worker_processes()
    os.kill(worker.pid, signal.SIGKILL)
    worker.join()
    with caplog.at_level(logging.WARNING, "loglake.decode"):
        for _ in range(2):  # decoded in process (the pool broken, then a new one starting), or by a new one
            again = await post(client, body)
            assert (again.status_code, again.content) == (200, b"")
    assert [r.getMessage() for r in caplog.records if r.name == "loglake.decode"] == [
        "a decode worker died (killed, or out of memory): its bodies were decoded in the server's process,"
        " and the pool starts again"
    ]
    started(workers)
    [fresh] = worker_processes()
    assert fresh.pid != worker.pid
    assert (await post(client, body)).status_code == 200
    assert (await decoded_where(client))["worker"] >= 1
    assert len(await everything_stored(client)) == 3 * PADDING_RECORDS


async def test_idle_workers_exit_and_the_next_export_starts_them_again(
    apps: dict[int, LoglakeApp], clients: dict[int, httpx.AsyncClient], caplog: pytest.LogCaptureFixture
) -> None:
    """Workers with no body for idle_s exit (each held ~85 MiB for good); the next export worth them starts them
    again (decoded in process meanwhile), and once they have started they decode it: nothing lost either way."""
    client, workers = clients[1], apps[1].decode_workers
    workers.idle_s = 0.5
    body = padded(ExportLogsServiceRequest()).SerializeToString()
    with caplog.at_level(logging.WARNING):
        started(workers)
        [worker] = worker_processes()
        # (gone and reaped; joining it here would race the pool's join)
        poll(lambda: not os.path.exists(f"/proc/{worker.pid}"), "the idle worker to exit", 30)
        answer = await post(client, body)  # (in process: the pool starts again)
        assert (answer.status_code, answer.content) == (200, b"")
        started(workers)
        [fresh] = worker_processes()
        assert fresh.pid != worker.pid
        assert (await post(client, body)).status_code == 200
    assert caplog.records == []  # (the workers exited: none was killed)
    assert (await decoded_where(client))["worker"] >= 1
    assert len(await everything_stored(client)) == 2 * PADDING_RECORDS


def test_an_export_whose_worker_dies_while_it_has_it_is_decoded_in_process() -> None:
    """A worker killed with an export in its hands (out of memory, say): result() gives None, and the route
    decodes it in process; a later export starts a fresh pool."""
    workers = decode_workers.DecodeWorkers(1)
    body = padded(ExportLogsServiceRequest()).SerializeToString()
    try:
        started(workers)
        [worker] = worker_processes()
        os.kill(worker.pid, signal.SIGSTOP)  # (so that it cannot answer before it is killed)
        decoding = submitted(workers, body)
        assert decoding is not None
        os.kill(worker.pid, signal.SIGKILL)
        assert workers.result(decoding) is None
        started(workers)
        [fresh] = worker_processes()
        assert fresh.pid != worker.pid
    finally:
        workers.close()


async def test_a_worker_that_does_not_answer_in_time_is_killed_and_its_export_decoded_in_process(
    apps: dict[int, LoglakeApp], clients: dict[int, httpx.AsyncClient], caplog: pytest.LogCaptureFixture
) -> None:
    """A worker stopped (SIGSTOP here; swapping or stuck alike) holds no request longer than most_seconds: the
    export is decoded in the server's process and stored once, the workers are killed as if they had died, with
    one warning line, and a fresh pool takes the next export. (It waited without bound: found by a new-user trial.)"""
    client, workers = clients[1], apps[1].decode_workers
    workers.most_seconds = 0.5
    body = padded(ExportLogsServiceRequest()).SerializeToString()
    started(workers)
    [worker] = worker_processes()
    os.kill(worker.pid, signal.SIGSTOP)
    try:
        with caplog.at_level(logging.WARNING):
            answer = await asyncio.wait_for(post(client, body), 60)
        assert (answer.status_code, answer.content) == (200, b"")
        worker.join(30)
        assert worker.exitcode == -signal.SIGKILL
    finally:
        if worker.is_alive():
            worker.kill()
    await asyncio.sleep(0.2)  # (the killed worker's failure reaches the route's future)
    gc.collect()  # (an asyncio future whose exception nobody read says so, as an error line, when collected)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert [r.getMessage() for r in caplog.records if r.name == "loglake.decode"] == [
        "a decode worker did not answer within 0.5 s (stopped, swapping, or stuck): the workers were killed, their"
        " bodies decoded in the server's process, and the pool starts again"
    ]
    assert await decoded_where(client) == {"server": 1}
    started(workers)
    [fresh] = worker_processes()
    assert fresh.pid != worker.pid
    assert len(await everything_stored(client)) == PADDING_RECORDS


def test_closing_the_workers_does_not_wait_for_a_stopped_one() -> None:
    """The server's stop (close) waits for no body in a worker: a stopped worker held the server's exit forever
    (a new-user trial's Ctrl-C); it is killed instead."""
    workers = decode_workers.DecodeWorkers(1)
    body = padded(ExportLogsServiceRequest()).SerializeToString()
    started(workers)
    [worker] = worker_processes()
    os.kill(worker.pid, signal.SIGSTOP)
    try:
        assert submitted(workers, body) is not None
        closing = threading.Thread(target=workers.close)
        closing.start()
        closing.join(30)
        assert not closing.is_alive()
        worker.join(30)
        assert worker.exitcode == -signal.SIGKILL
    finally:
        if worker.is_alive():
            worker.kill()


def test_workers_killed_after_they_started_are_started_again_every_time() -> None:
    """A pool that started and was then killed from outside counts once, until the next one starts: a stop and a
    kill with bodies in flight gave the workers up for good, each body a broken pool held counted as a death (a
    new-user trial). Only pools that die before they start are given up on (the test below)."""
    workers = decode_workers.DecodeWorkers(1)
    body = padded(ExportLogsServiceRequest()).SerializeToString()
    try:
        for _ in range(decode_workers.MOST_BROKEN_IN_A_ROW + 1):
            deadline = time.monotonic() + 60
            while submitted(workers, body) is None:  # (None while the pool is broken, then while one starts)
                assert time.monotonic() < deadline, "the decode workers were given up"
                time.sleep(0.05)
            for worker in worker_processes():
                worker.kill()
                worker.join()
    finally:
        workers.close()


def test_workers_that_cannot_start_leave_decoding_in_process(caplog: pytest.LogCaptureFixture) -> None:
    """Workers that die as they start (here: spawn's Python cannot be run) leave every export to the server's
    process; after MOST_BROKEN_IN_A_ROW pools, no more is started, and one warning line says so."""
    workers = decode_workers.DecodeWorkers(1)
    body = padded(ExportLogsServiceRequest()).SerializeToString()
    # The resource tracker is a process spawned at the first pool's start: started now, before spawn's Python is
    # made unrunnable (else it dies at its start, and its warning fails the test when the test runs first).
    resource_tracker.ensure_running()
    multiprocessing.set_executable("/nonexistent/python")  # (what spawn runs)
    deadline = time.monotonic() + 120
    try:
        with caplog.at_level(logging.WARNING, "loglake.decode"):
            while not caplog.records:
                assert submitted(workers, body) is None
                assert time.monotonic() < deadline, "the pool was not given up"
                time.sleep(0.05)
            assert submitted(workers, body) is None
            assert worker_processes() == []
    finally:
        multiprocessing.set_executable(sys.executable)
        workers.close()
    [warning] = caplog.records
    assert "decoded in the server's process" in warning.getMessage()
    assert f"died {decode_workers.MOST_BROKEN_IN_A_ROW} times in a row" in warning.getMessage()


def test_small_exports_stay_in_process() -> None:
    """IPC's fixed cost would be more than their decoding (an SDK's 512-record batch is ~100 KiB)."""
    workers = decode_workers.DecodeWorkers(1)
    try:
        assert submitted(workers, bytes(decode_workers.MIN_BODY_BYTES - 1)) is None
        small = bytes(MIN_GZIP_BODY_BYTES - 1)
        assert workers.submit(otlp.worker_decoded, small, False, True, MAX_BODY_BYTES, gzip=True) is None
        assert worker_processes() == []
    finally:
        workers.close()


async def test_a_body_whose_worker_fails_goes_to_the_server_without_an_error_line(
    apps: dict[int, LoglakeApp], caplog: pytest.LogCaptureFixture
) -> None:
    """The route reads a worker's outcome from the worker's future; the event loop's future that waited for it
    holds the same failure, which nobody read: an 'exception was never retrieved' error line at each (found by
    a CI run where a killed worker's failure came while the route still waited)."""
    app = apps[1]
    started(app.decode_workers)
    with caplog.at_level(logging.WARNING):
        # (int(body) of NULs raises ValueError in the worker: a decode that fails there)
        decoded = await decoded_by_worker(app, "otlp", int, bytes(decode_workers.MIN_BODY_BYTES))
        assert decoded is None  # (decode it in the server's process)
        assert await decoded_by_worker(app, "otlp", len, bytes(decode_workers.MIN_BODY_BYTES)) == 1 << 18
        gc.collect()  # (the next body dropped the first's future: an asyncio future whose exception nobody read
        # says so, as an error line, when collected)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
