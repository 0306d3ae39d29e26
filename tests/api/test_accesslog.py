"""The JSON access log: every line written, in order, with the fields operators rely on; a sink that
takes nothing costs lines (counted and reported), never requests or memory."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest
from uvicorn.server import ServerState

from loglake import http_protocol
from loglake.api.accesslog import AccessLog
from loglake.api.app import LoglakeApp
from loglake.api.http import Request
from loglake.config import ConfigError, Settings
from loglake.http_protocol import HttpProtocol
from loglake.server import uvicorn_config
from tests.api.test_bodies import Client
from tests.conftest import asgi_client, key_for
from tests.test_http_protocol import _exchange


def lines_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def logged_app(tmp_path: Path) -> Iterator[tuple[LoglakeApp, Path]]:
    target = tmp_path / "access.log"
    app = LoglakeApp.from_settings(Settings(data_dir=tmp_path / "data", access_log=str(target)))
    try:
        yield app, target
    finally:
        app.close()


async def test_a_request_line_has_every_field(logged_app: tuple[LoglakeApp, Path]) -> None:
    app, target = logged_app
    async with asgi_client(app, key_for(app, "ingest", "shipper")) as client:
        body = b'{"message": "disk full", "severity": "error"}'
        headers = {"x-request-id": "trace-1", "content-type": "application/json"}
        answer = await client.post("/logs", content=body, headers=headers)
        assert answer.status_code == 201
        refused = await client.get("/logs/some-id", headers={"x-request-id": "trace-2"})
    app.close()
    first, second = lines_of(target)
    assert list(first) == [
        "ts",
        "level",
        "event",
        "request_id",
        "method",
        "path",
        "route",
        "status",
        "ms",
        "bytes_in",
        "bytes_out",
        "key",
        "client",
    ]
    assert {k: v for k, v in first.items() if k not in ("ts", "ms")} == {
        "level": "info",
        "event": "request",
        "request_id": "trace-1",
        "method": "POST",
        "path": "/logs",
        "route": "/logs",
        "status": 201,
        "bytes_in": len(body),
        "bytes_out": len(answer.content),
        "key": "shipper",
        "client": "127.0.0.1",
    }
    assert type(first["ts"]) is float and type(first["ms"]) is float and first["ms"] >= 0
    assert all(line[t] == round(line[t], 3) for line in (first, second) for t in ("ts", "ms"))  # (thousandths)
    assert (second["request_id"], second["route"], second["status"]) == ("trace-2", "/logs/{logId}", 403)
    # A key refused for its scope is named: an operator reads which shipper is misconfigured (it was None)
    assert second["key"] == "shipper" and second["bytes_out"] == len(refused.content)


async def test_a_key_refused_for_its_rate_or_unknown_is_named_or_not(logged_app: tuple[LoglakeApp, Path]) -> None:
    app, target = logged_app
    async with asgi_client(app, key_for(app, "ingest", "slow", rate_limit=0.1, rate_burst=1)) as client:
        answers = [await client.post("/logs", json={"message": f"m{n}"}) for n in range(2)]
        unknown = await client.post("/logs", json={"message": "m"}, headers={"authorization": "Bearer llk_nope"})
    app.close()
    assert [a.status_code for a in answers] == [201, 429] and unknown.status_code == 401
    assert [(line["status"], line["key"]) for line in lines_of(target)] == [(201, "slow"), (429, "slow"), (401, None)]


async def test_concurrent_requests_each_get_one_line_and_sequential_ones_keep_their_order(
    logged_app: tuple[LoglakeApp, Path],
) -> None:
    app, target = logged_app
    async with asgi_client(app) as client:
        await asyncio.gather(*(client.get("/healthz", headers={"x-request-id": f"c-{i}"}) for i in range(300)))
        for i in range(100):
            await client.get("/healthz", headers={"x-request-id": f"s-{i}"})
    app.close()
    ids = [line["request_id"] for line in lines_of(target)]
    assert sorted(i for i in ids if i.startswith("c-")) == sorted(f"c-{i}" for i in range(300))
    assert [i for i in ids if i.startswith("s-")] == [f"s-{i}" for i in range(100)]
    assert ids[-100:] == [f"s-{i}" for i in range(100)]


def test_lines_from_many_threads_are_all_written_each_thread_in_order(tmp_path: Path) -> None:
    target = tmp_path / "access.log"
    log = AccessLog.open(str(target))

    def log_events(thread: int) -> None:
        for n in range(2000):
            log.event({"event": "lake_maintenance", "thread": thread, "n": n})

    threads = [threading.Thread(target=log_events, args=(t,)) for t in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.close()
    lines = lines_of(target)
    assert len(lines) == 6 * 2000 and log.dropped == 0
    for thread in range(6):
        assert [line["n"] for line in lines if line["thread"] == thread] == list(range(2000))


def test_closing_writes_every_line_still_waiting(tmp_path: Path) -> None:
    target = tmp_path / "access.log"
    log = AccessLog.open(str(target))
    for n in range(500):  # fewer request lines than wake the writer: they wait for its next round
        request = Request({"method": "GET", "path": "/healthz", "headers": []}, _no_messages)
        request.request_id = str(n)
        log.request(request, "/healthz", 200, 0.001, 10)
    log.close()
    assert [line["request_id"] for line in lines_of(target)] == [str(n) for n in range(500)]


def test_a_log_file_moved_away_or_deleted_is_made_again_at_its_path(tmp_path: Path) -> None:
    """logrotate's default renames the file (then, say, compresses and deletes it): the server wrote on into the
    renamed file for good, its path stayed empty and the disk was never given back until a restart."""
    target = tmp_path / "access.log"
    log = AccessLog.open(str(target))
    try:
        log.event({"event": "first"})
        assert log.flush(5)
        target.rename(tmp_path / "access.log.1")
        log.event({"event": "second"})
        assert log.flush(5)
        second = lines_of(target)
        target.unlink()
        log.event({"event": "third"})
        assert log.flush(5)
        third = lines_of(target)
    finally:
        log.close()
    assert [line["event"] for line in lines_of(tmp_path / "access.log.1")] == ["first"]
    assert [line["event"] for line in second] == ["second"]
    assert [line["event"] for line in third] == ["third"]
    assert oct(target.stat().st_mode & 0o777) == "0o600"


def test_a_log_file_that_cannot_be_opened_names_the_setting(tmp_path: Path) -> None:
    for target in (tmp_path / "no-such-folder" / "access.log", tmp_path):
        with pytest.raises(ConfigError, match=r"^--access-log \(LOGLAKE_ACCESS_LOG\): cannot open .*: (No such|Is a)"):
            AccessLog.open(str(target))


@contextlib.contextmanager
def full_pipe() -> Iterator[tuple[IO[bytes], int]]:
    """A pipe whose buffer is already full (nobody reads it): the next write to it blocks."""
    read_fd, write_fd = os.pipe()
    flags = fcntl.fcntl(write_fd, fcntl.F_GETFL)
    fcntl.fcntl(write_fd, fcntl.F_SETFL, flags | os.O_NONBLOCK)
    filler = 0
    with contextlib.suppress(BlockingIOError):
        while True:
            filler += os.write(write_fd, b"\n" * 4096)
    fcntl.fcntl(write_fd, fcntl.F_SETFL, flags)
    sink = open(write_fd, "wb", buffering=0)  # noqa: SIM115 (closed by the AccessLog)
    try:
        yield sink, read_fd
    finally:
        os.close(read_fd)
        with contextlib.suppress(OSError):
            sink.close()


def drain(read_fd: int, into: bytearray) -> threading.Thread:
    def read() -> None:
        while chunk := os.read(read_fd, 65536):
            into.extend(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    return reader


def test_a_sink_that_takes_nothing_costs_lines_not_memory_and_says_how_many(tmp_path: Path) -> None:
    with full_pipe() as (sink, read_fd):
        log = AccessLog(sink, owned=True, max_pending=50)
        for n in range(2000):
            log.event({"event": "lake_maintenance", "n": n})  # returns at once though nothing is written
        # At most one batch (<= 50 lines) is stuck in the sink's write, and at most 50 wait behind it.
        assert log.dropped >= 2000 - 2 * 50
        assert not log.flush(timeout=0.05)

        received = bytearray()
        reader = drain(read_fd, received)
        assert log.flush(timeout=60)
        log.close()
        reader.join(60)
    lines = [json.loads(line) for line in received.splitlines() if line.strip()]
    events = [line["n"] for line in lines if line["event"] == "lake_maintenance"]
    warnings = [line for line in lines if line["event"] == "access_log_dropped"]
    assert events == sorted(events) and len(events) == 2000 - log.dropped
    assert sum(w["dropped"] for w in warnings) == log.dropped and all(w["level"] == "warning" for w in warnings)


async def test_requests_are_answered_while_the_log_sink_takes_nothing(tmp_path: Path) -> None:
    app = LoglakeApp.from_settings(Settings(data_dir=tmp_path / "data", access_log="off"))
    with full_pipe() as (sink, read_fd):
        app.access_log = AccessLog(sink, owned=True, max_pending=20)
        try:
            async with asgi_client(app) as client:
                answers = [await client.get("/healthz") for _ in range(500)]
            assert [a.status_code for a in answers] == [200] * 500
            dropped = app.access_log.dropped
            assert dropped >= 500 - 2 * 20
            async with asgi_client(app, key_for(app, "read", "reader")) as client:
                metrics = (await client.get("/metrics")).text  # its own line is logged after it answered
            assert f"\nloglake_access_log_dropped_lines_total {dropped}\n" in metrics
        finally:
            received = bytearray()
            reader = drain(read_fd, received)
            app.close()
            reader.join(60)


def test_a_broken_pipe_fails_neither_logging_nor_closing() -> None:
    read_fd, write_fd = os.pipe()
    os.close(read_fd)
    sink = open(write_fd, "wb", buffering=0)  # noqa: SIM115 (closed by the AccessLog)
    log = AccessLog(sink, owned=True)
    log.event({"event": "lake_maintenance"})
    assert log.flush(timeout=60)
    log.close()
    assert sink.closed


async def test_a_body_refused_while_it_was_read_counts_the_bytes_received(tmp_path: Path) -> None:
    """A body over the route's limit is answered 413 with what arrived of it read and dropped: bytes_in said 0 (the
    refused body is no request.body), hiding what a misconfigured shipper sends."""
    target = tmp_path / "access.log"
    limit = 64 * 1024
    settings = Settings(data_dir=tmp_path / "data", access_log=str(target), max_body_bytes=limit)
    app = LoglakeApp.from_settings(settings)
    key = key_for(app)
    declared = Client(b"x" * (limit + 300))  # its Content-Length is over: the body is read after the answer
    await declared.post(app, key, limit + 300)
    chunked = Client(b"x" * (10 * limit), chunk=16 * 1024)  # no length: refused once past the limit, part-way
    scope = {"type": "http", "method": "POST", "path": "/logs", "query_string": b""}
    headers = [(b"authorization", f"Bearer {key}".encode()), (b"transfer-encoding", b"chunked")]
    await app(scope | {"headers": headers}, chunked.receive, chunked.send)
    app.close()
    assert (declared.status, chunked.status) == (413, 413) and declared.chunks == [] and chunked.chunks != []
    received = 10 * limit - sum(map(len, chunked.chunks))
    assert [(line["status"], line["bytes_in"]) for line in lines_of(target)] == [(413, limit + 300), (413, received)]


async def _no_messages() -> dict:  # a Request's receive, which logging it never calls
    raise AssertionError("logging a request read from its connection")


async def test_a_body_refused_for_coming_too_slowly_is_logged_408_as_answered(
    logged_app: tuple[LoglakeApp, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`loglake serve`'s protocol answers 408 to a body that comes too slowly; its line said 499 (client gone)."""
    monkeypatch.setattr(http_protocol, "BODY_SECONDS", 0.3)
    app, target = logged_app
    config = uvicorn_config(app)
    server = await asyncio.get_running_loop().create_server(
        lambda: HttpProtocol(config, ServerState(), {}), "127.0.0.1", 0
    )
    head = b"POST /logs HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer %b\r\ncontent-length: 100\r\n\r\n"
    answer = await _exchange(server.sockets[0].getsockname()[1], head % key_for(app, "ingest").encode() + b'{"me')
    server.close()
    app.close()
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert [(line["route"], line["status"]) for line in lines_of(target)] == [("/logs", 408)]
    assert b'loglake_http_requests_total{route="/logs",status="408"} 1' in app.metrics.render()
