"""loglake serve's HTTP protocol, over real sockets on a real event loop: an answer leaves as one send, a
request's head is bounded in bytes and in time, and the exchange uvicorn's protocol used to run (keep-alive,
pipelining, bodies in parts, 100-continue, chunked and HEAD answers, failing apps, slow readers, clients gone,
the server's stop)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import uvicorn
from uvicorn.server import ServerState

from loglake import http_protocol
from loglake.connection_limit import RESERVED_FILES, ConnectionLimit
from loglake.http_protocol import HttpProtocol


class _Sends:
    """A transport that records each send (write, or writelines: one writev) instead of making it."""

    def __init__(self) -> None:
        self.sends: list[bytes] = []

    def get_extra_info(self, name: str, default: object = None) -> object:
        return {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 8080)}.get(name, default)

    def write(self, data: bytes) -> None:
        self.sends.append(data)

    def writelines(self, parts: list[bytes]) -> None:
        self.sends.append(b"".join(parts))

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass


def _loaded(app: Any, **options: Any) -> uvicorn.Config:
    """A config of the app, loaded, as uvicorn's server makes it before its connections."""
    config = uvicorn.Config(app, lifespan="off", log_config=None, **options)
    config.load()
    return config


async def _listen(
    config: uvicorn.Config, state: ServerState, limit: ConnectionLimit | None = None
) -> tuple[asyncio.Server, int]:
    """The protocol on a real socket of the running loop: the server and its port."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: HttpProtocol(config, state, {}, limit=limit), "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def _on_recorded_sends(app: Any) -> tuple[HttpProtocol, _Sends]:
    """A connection of the protocol to a transport that records its sends."""
    protocol = HttpProtocol(_loaded(app), ServerState(), {})
    transport = _Sends()
    protocol.connection_made(transport)  # type: ignore[arg-type]
    return protocol, transport


def test_an_answers_head_and_body_leave_in_one_send_and_a_streams_head_at_once() -> None:
    """uvicorn wrote a head and its body apart: two sends, two wake-ups of the client, for a 201 of one record."""

    async def scenario() -> None:
        protocol, transport = _on_recorded_sends(_echo_length)
        protocol.data_received(b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n\r\nabc")
        for _ in range(5):
            await asyncio.sleep(0)
        assert transport.sends == [b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\n3 2"]
        protocol.connection_lost(None)

        event = asyncio.Event()

        async def stream(scope: dict, receive, send) -> None:  # type: ignore[no-untyped-def]
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await event.wait()
            await send({"type": "http.response.body", "body": b"event"})

        protocol, transport = _on_recorded_sends(stream)
        protocol.data_received(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        for _ in range(5):
            await asyncio.sleep(0)
        assert transport.sends == [b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"]  # before any event
        event.set()
        for _ in range(5):
            await asyncio.sleep(0)
        assert transport.sends[1:] == [b"5\r\nevent\r\n0\r\n\r\n"]
        protocol.connection_lost(None)

    asyncio.run(scenario())


# -- bounded request heads --------------------------------------------------------------------------------


async def _echo_length(scope: dict, receive, send) -> None:  # type: ignore[no-untyped-def]
    """An app answering the request body's length and the number of its headers."""
    size, more = 0, True
    while more:
        message = await receive()
        size += len(message.get("body", b""))
        more = message.get("more_body", False)
    text = b"%d %d" % (size, len(scope["headers"]))
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % len(text))]})
    await send({"type": "http.response.body", "body": text})


async def _serve() -> tuple[asyncio.Server, int]:
    return await _listen(_loaded(_echo_length), ServerState())


async def _exchange(port: int, *parts: bytes, pause: float = 0.0) -> bytes:
    """Send the parts (pausing between them), then read until the server closes or 10 s pass."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for part in parts:
            writer.write(part)
            await writer.drain()
            await asyncio.sleep(pause)
    except ConnectionError:
        pass  # the server closed: what it answered is still read
    got = b""
    try:
        while chunk := await asyncio.wait_for(reader.read(65536), timeout=10):
            got += chunk
    except (ConnectionError, TimeoutError):
        pass
    writer.close()
    return got


def _headers(count: int, size: int) -> bytes:
    return b"".join(b"x-h%d: %b\r\n" % (n, b"v" * size) for n in range(count))


def test_a_head_over_the_limit_is_answered_431_and_closed_in_headers_or_one_endless_header() -> None:
    """llhttp and uvicorn set no limit: 200 MB of headers took a server from 141 to 308 MiB of RSS."""

    async def scenario() -> None:
        server, port = await _serve()
        many = [b"GET / HTTP/1.1\r\nhost: x\r\n", *(_headers(16, 1000) for _ in range(20)), b"\r\n"]
        answer = await _exchange(port, *many, pause=0.01)
        assert answer.startswith(b"HTTP/1.1 431 ") and b"over 64 KiB" in answer
        endless = [b"GET / HTTP/1.1\r\nhost: x\r\nx-long: ", *(b"v" * 16_000 for _ in range(20))]
        assert (await _exchange(port, *endless, pause=0.01)).startswith(b"HTTP/1.1 431 ")
        at_once = b"GET / HTTP/1.1\r\nhost: x\r\nx-long: %b\r\n\r\n" % (b"v" * 70_000)  # (within a read or two)
        assert (await _exchange(port, at_once)).startswith(b"HTTP/1.1 431 ")
        server.close()

    asyncio.run(scenario())


def test_heads_under_the_limit_and_bodies_of_any_size_are_taken() -> None:
    async def scenario() -> None:
        server, port = await _serve()
        body = b"b" * 1_000_000
        head = b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\n" % len(body) + _headers(60, 1000) + b"\r\n"
        parts = [head[:30_000], head[30_000:], *(body[i : i + 65536] for i in range(0, len(body), 65536))]
        answer = await _exchange(port, *parts, b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n", pause=0.01)
        first, second = answer.split(b"HTTP/1.1 ")[1:]
        assert first.startswith(b"200 ") and first.endswith(b"\r\n\r\n1000000 62")  # (and pipelined after it)
        assert second.startswith(b"200 ") and second.endswith(b"\r\n\r\n0 2")
        server.close()

    asyncio.run(scenario())


def test_a_head_that_does_not_end_in_time_is_answered_408_and_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    """uvicorn stops its keep-alive timer at a request's first byte: a head trickled a byte at a time held the
    connection for ever."""
    monkeypatch.setattr(http_protocol, "HEAD_SECONDS", 0.5)

    async def scenario() -> None:
        server, port = await _serve()
        loop = asyncio.get_running_loop()
        started = loop.time()
        answer = await _exchange(port, *(bytes([c]) for c in b"GET / HTTP/1.1\r\nhost: x\r\n"), pause=0.05)
        assert answer.startswith(b"HTTP/1.1 408 ") and loop.time() - started < 5
        crlfs = await _exchange(port, *(b"\r\n" for _ in range(40)), pause=0.05)  # (no request line at all)
        assert crlfs.startswith(b"HTTP/1.1 408 ")
        # The clock runs from the first byte: bytes that keep coming do not move it (each read moved it, and a
        # head sent a byte every few seconds held its connection for ever).
        # (within the 2 s a refused client's bytes are still read: after them, its answer is lost to a reset)
        whole = b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
        assert (await _exchange(port, *(bytes([c]) for c in whole), pause=0.03)).startswith(b"HTTP/1.1 408 ")
        assert (await _exchange(port, *(b"\r\n" for _ in range(30)), whole, pause=0.03)).startswith(b"HTTP/1.1 408 ")
        # A slow app is not a slow head: the answer comes whenever it is ready.
        assert (await _exchange(port, b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")).startswith(
            b"HTTP/1.1 200 "
        )
        server.close()

    asyncio.run(scenario())


def test_a_body_that_comes_too_slowly_is_answered_408_and_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    """uvicorn waited for a body's bytes for ever: a body sent a byte every few seconds (to the public POST
    /session, say) held its connection, and what had come of it, for as long as its client liked."""
    monkeypatch.setattr(http_protocol, "BODY_SECONDS", 0.5)
    monkeypatch.setattr(http_protocol, "BODY_MIN_RATE", 10)

    async def scenario() -> None:
        server, port = await _serve()
        head = b"POST / HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-length: %d\r\n\r\n"
        loop = asyncio.get_running_loop()
        started = loop.time()
        stopped = await _exchange(port, head % 6 + b"abc")
        assert stopped.startswith(b"HTTP/1.1 408 ") and b"body" in stopped and loop.time() - started < 5
        # A byte every 0.2 s, under 10 a second: refused once the first 0.5 s and 0.1 s a byte are spent.
        # (within the 2 s a refused client's bytes are still read: after them, its answer is lost to a reset)
        assert (await _exchange(port, head % 12, *(b"x" for _ in range(12)), pause=0.2)).startswith(b"HTTP/1.1 408 ")
        # Faster, it is the body, however long all of it takes.
        assert (await _exchange(port, head % 30, *(b"x" for _ in range(30)), pause=0.05)).endswith(b"30 3")
        server.close()

    asyncio.run(scenario())


def test_a_malformed_request_is_answered_400_even_while_its_client_still_sends() -> None:
    """uvicorn closed at once, with the client's bytes unread: the kernel reset the connection and the client
    saw "connection reset", not the 400."""

    async def scenario() -> None:
        server, port = await _serve()
        answer = await _exchange(port, b"GET / HTTP/1.1\r\nbad header\r\n", *(b"x" * 65536 for _ in range(8)))
        assert answer.startswith(b"HTTP/1.1 400 ") and answer.endswith(b"Invalid HTTP request received.")
        server.close()

    asyncio.run(scenario())


# -- the protocol's own exchange (it was uvicorn's) -----------------------------------------------------------


class _Recorded:
    """What the behaviour app saw: the messages its receive gave, per path."""

    def __init__(self) -> None:
        self.received: dict[str, list[dict]] = {}
        self.disconnected = asyncio.Event()


async def _behaviour(recorded: _Recorded, scope: dict, receive, send) -> None:  # type: ignore[no-untyped-def]
    """An app whose path says how it answers."""
    path = scope["path"]
    start = {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]}
    if path == "/fail":
        raise RuntimeError("the app fails")
    if path == "/nothing":
        return
    if path == "/body":  # the body's messages as received, then their sizes
        messages, more = [], True
        while more:
            message = await receive()
            messages.append(message)
            more = message.get("more_body", False)
        recorded.received[path] = messages
        text = b",".join(b"%d" % len(m.get("body", b"")) for m in messages)
        await send({**start, "headers": [(b"content-length", b"%d" % len(text))]})
        await send({"type": "http.response.body", "body": text})
    elif path == "/stream":  # no length: sent in chunks
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"first", "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": True})
        await send({"type": "http.response.body", "body": b"second"})
    elif path == "/big":  # 8 MiB in 2 MiB parts, to a client that reads slowly
        await send({**start, "headers": [(b"content-length", b"%d" % (8 << 20))]})
        for n in range(4):
            await send({"type": "http.response.body", "body": bytes([65 + n]) * (2 << 20), "more_body": n < 3})
    elif path == "/split":  # a header value that would split the answer: refused, then a 500 sent instead
        try:
            await send({**start, "headers": [(b"x-bad", b"a\r\nset-cookie: x=1")]})
        except RuntimeError:
            await send({"type": "http.response.start", "status": 500, "headers": [(b"content-length", b"0")]})
            await send({"type": "http.response.body", "body": b""})
    elif path == "/wait":  # answers once its client has gone (receive's http.disconnect)
        await receive()
        if (await receive())["type"] == "http.disconnect":
            recorded.disconnected.set()
    elif path == "/slow":
        await asyncio.sleep(0.3)
        await send(start)
        await send({"type": "http.response.body", "body": b"ok"})
    else:
        await send(start)
        await send({"type": "http.response.body", "body": b"ok"})


async def _serve_behaviour(keep_alive: int = 5) -> tuple[asyncio.Server, int, _Recorded, ServerState]:
    recorded = _Recorded()

    async def app(scope: dict, receive, send) -> None:  # type: ignore[no-untyped-def]
        await _behaviour(recorded, scope, receive, send)

    state = ServerState()
    state.default_headers = [(b"date", b"Sun, 06 Dec 2026 10:00:00 GMT")]
    server, port = await _listen(_loaded(app, timeout_keep_alive=keep_alive), state)
    return server, port, recorded, state


def _answers(raw: bytes) -> list[bytes]:
    return [b"HTTP/1.1 " + part for part in raw.split(b"HTTP/1.1 ")[1:]]


def test_keep_alive_pipelining_and_connection_close() -> None:
    async def scenario() -> None:
        server, port, _, _ = await _serve_behaviour()
        get = b"GET /%b HTTP/1.1\r\nhost: x\r\n\r\n"
        # Three requests in one write, the first slow: answered in order, on one connection, which the last closes.
        raw = await _exchange(
            port, get % b"slow" + get % b"a" + b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
        )
        first, second, third = _answers(raw)
        assert first.startswith(b"HTTP/1.1 200 OK\r\ndate: Sun, 06 Dec 2026") and first.endswith(b"\r\n\r\nok")
        assert b"connection: close" not in first + second
        assert third.endswith(b"connection: close\r\n\r\nok")  # (and _exchange read the end of the stream)
        # HTTP/1.0 closes after its answer.
        old = _answers(await _exchange(port, b"GET / HTTP/1.0\r\n\r\n"))
        assert len(old) == 1 and b"connection: close\r\n" in old[0]
        server.close()

    asyncio.run(scenario())


def test_a_pipelined_head_has_its_time_once_the_answers_before_it_are_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    """A head's clock ran while the requests before it were answered, reading paused meanwhile: a slow first answer
    let it pass, and the 408 was written in the middle of the connection's answers, in the first one's place."""
    monkeypatch.setattr(http_protocol, "HEAD_SECONDS", 0.2)  # (/slow takes 0.3 s)

    async def scenario() -> None:
        server, port, _, _ = await _serve_behaviour()
        get = b"GET /%b HTTP/1.1\r\nhost: x\r\n\r\n"
        # The third's head ends in a second write, while the server does not read: two requests wait before it.
        third = b"GET / HTTP/1.1\r\nhost: x\r\n", b"connection: close\r\n\r\n"
        raw = await _exchange(port, get % b"slow" + get % b"a" + third[0], third[1], pause=0.05)
        assert [answer[:15] for answer in _answers(raw)] == [b"HTTP/1.1 200 OK"] * 3, raw
        server.close()

    asyncio.run(scenario())


def test_an_idle_connection_is_closed_after_the_keep_alive_time() -> None:
    async def scenario() -> None:
        server, port, _, state = await _serve_behaviour(keep_alive=1)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        loop = asyncio.get_running_loop()
        answered = loop.time()
        got = b""
        while chunk := await asyncio.wait_for(reader.read(65536), timeout=10):  # (until the server closes)
            got += chunk
        assert got.endswith(b"\r\n\r\nok") and 0.9 < loop.time() - answered < 5
        assert not state.connections
        writer.close()
        server.close()

    asyncio.run(scenario())


def test_a_connection_that_sends_nothing_is_closed_after_the_keep_alive_time() -> None:
    """A fresh connection had no deadline before its first byte: one that sent nothing was held for ever (a client
    opening thousands of silent connections held thousands of file descriptors)."""

    async def scenario() -> None:
        server, port, _, state = await _serve_behaviour(keep_alive=1)
        loop = asyncio.get_running_loop()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        opened = loop.time()
        assert await asyncio.wait_for(reader.read(), timeout=10) == b""  # closed, unanswered: it asked nothing
        assert 0.9 < loop.time() - opened < 5
        assert not state.connections
        writer.close()
        # A head begun within that time has a head's time (HEAD_SECONDS), past the keep-alive time.
        head = b"GET / HTTP/1.1\r\nhost: x\r\n", b"connection: close\r\n\r\n"
        assert _answers(await _exchange(port, *head, pause=1.5))[0].endswith(b"\r\n\r\nok")
        server.close()

    asyncio.run(scenario())


def test_connections_past_the_limit_are_closed_at_once_and_said_once(caplog: pytest.LogCaptureFixture) -> None:
    """Connections were bounded by nothing but the process's file limit, at which the server's own files failed too
    (tests/e2e/test_file_limit.py runs a server at it)."""
    refused: list[int] = []
    limit = ConnectionLimit(6, lambda: refused.append(1))  # (half of so low a limit is kept: 3 connections)
    assert limit.most == 3 and ConnectionLimit(100_000).most == 100_000 - RESERVED_FILES
    # Beside the syslog listeners, HTTP's connections and theirs share what is left, the reserve intact.
    http, syslog = ConnectionLimit.http(100_000, print, syslog=True), ConnectionLimit.syslog(100_000, print)
    assert http.most + syslog.most == 100_000 - RESERVED_FILES and http.most == syslog.most

    async def scenario() -> None:
        state = ServerState()
        server, port = await _listen(_loaded(_echo_length), state, limit)
        held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]
        for _ in range(2):  # closed, unanswered, without waiting for a request
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            assert await asyncio.wait_for(reader.read(), timeout=2) == b""
            writer.close()
        assert len(state.connections) == 3 and len(refused) == 2
        # The held ones are served, and one closed makes room for another.
        reader, writer = held.pop()
        writer.write(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        assert (await asyncio.wait_for(reader.read(), timeout=5)).startswith(b"HTTP/1.1 200 ")
        writer.close()
        await asyncio.sleep(0.1)
        assert (await _exchange(port, b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")).startswith(
            b"HTTP/1.1 200 "
        )
        for _, writer in held:
            writer.close()
        server.close()

    asyncio.run(scenario())
    said = [record.getMessage() for record in caplog.records if "the most it may" in record.getMessage()]
    assert len(said) == 1 and "holds 3 HTTP connections" in said[0], said  # (once for the episode, not each)


def test_head_answers_have_no_body_and_answers_without_a_length_are_chunked() -> None:
    async def scenario() -> None:
        server, port, _, _ = await _serve_behaviour()
        head = await _exchange(port, b"HEAD / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 ") and b"content-length: 2\r\n" in head and head.endswith(b"\r\n\r\n")
        stream = await _exchange(port, b"GET /stream HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        assert b"transfer-encoding: chunked\r\n" in stream
        assert stream.endswith(b"\r\n\r\n5\r\nfirst\r\n6\r\nsecond\r\n0\r\n\r\n")
        server.close()

    asyncio.run(scenario())


def test_expect_100_continue_is_answered_when_the_app_asks_for_the_body() -> None:
    async def scenario() -> None:
        server, port, recorded, _ = await _serve_behaviour()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /body HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\nexpect: 100-continue\r\n\r\n")
        assert await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10) == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(b"hello")
        answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
        assert answer.startswith(b"HTTP/1.1 200 ") and await reader.readexactly(1) == b"5"
        assert recorded.received["/body"] == [{"type": "http.request", "body": b"hello", "more_body": False}]
        writer.close()
        server.close()

    asyncio.run(scenario())


def test_a_body_reaches_the_app_in_parts_and_an_empty_one_as_one_message() -> None:
    async def scenario() -> None:
        server, port, recorded, _ = await _serve_behaviour()
        body = b"x" * 300_000
        post = b"POST /body HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\n\r\n"
        await _exchange(port, post % len(body), body[:100_000], body[100_000:], pause=0.05)
        parts = recorded.received["/body"]
        assert len(parts) > 1 and b"".join(p["body"] for p in parts) == body
        assert [p["more_body"] for p in parts] == [True] * (len(parts) - 1) + [False]
        answer = await _exchange(
            port, b"POST /body HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        )
        assert answer.endswith(b"\r\n\r\n0") and recorded.received["/body"] == [
            {"type": "http.request", "body": b"", "more_body": False}
        ]
        server.close()

    asyncio.run(scenario())


def test_an_app_that_fails_or_answers_nothing_gets_its_client_a_500(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        server, port, _, _ = await _serve_behaviour()
        for path in (b"/fail", b"/nothing"):
            answer = await _exchange(port, b"GET %b HTTP/1.1\r\nhost: x\r\n\r\n" % path)  # (then closed)
            assert answer.startswith(b"HTTP/1.1 500 ") and answer.endswith(b"\r\n\r\nInternal Server Error")
        split = await _exchange(port, b"GET /split HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        assert split.startswith(b"HTTP/1.1 500 ") and b"set-cookie" not in split
        server.close()

    asyncio.run(scenario())
    assert "Exception in ASGI application" in caplog.text and "returned without starting response" in caplog.text


def test_a_big_answer_to_a_slow_reader_arrives_whole() -> None:
    """The app's sends wait while the socket's buffer is full (pause_writing), rather than buffering 8 MiB."""

    async def scenario() -> None:
        server, port, _, _ = await _serve_behaviour()
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 16)
        writer.write(b"GET /big HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
        await asyncio.sleep(0.5)  # (the server meanwhile fills the socket's buffers and waits)
        body = await asyncio.wait_for(reader.read(), timeout=20)
        assert body == b"".join(bytes([65 + n]) * (2 << 20) for n in range(4))
        writer.close()
        server.close()

    asyncio.run(scenario())


def test_a_client_gone_is_told_to_the_app_and_shutdown_closes_idle_and_finishes_busy_connections() -> None:
    async def scenario() -> None:
        server, port, recorded, state = await _serve_behaviour()
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /wait HTTP/1.1\r\nhost: x\r\n\r\n")
        await asyncio.sleep(0.2)
        writer.close()
        await asyncio.wait_for(recorded.disconnected.wait(), timeout=10)
        # The server stops: the idle connection closes at once, the busy one once answered (connection: close).
        idle_reader, idle_writer = await asyncio.open_connection("127.0.0.1", port)
        busy_reader, busy_writer = await asyncio.open_connection("127.0.0.1", port)
        busy_writer.write(b"GET /slow HTTP/1.1\r\nhost: x\r\n\r\n")
        await asyncio.sleep(0.1)
        for connection in list(state.connections):
            connection.shutdown()
        assert await asyncio.wait_for(idle_reader.read(), timeout=10) == b""
        answer = await asyncio.wait_for(busy_reader.read(), timeout=10)
        assert answer.startswith(b"HTTP/1.1 200 ") and b"connection: close\r\n" in answer and answer.endswith(b"ok")
        idle_writer.close()
        busy_writer.close()
        server.close()

    asyncio.run(scenario())
