"""loglake serve's HTTP protocol over real sockets on a real event loop: what one round of the event loop wrote
leaves as one write (http_protocol._JoinedWrites), and a request's head is bounded in bytes and in time."""

from __future__ import annotations

import asyncio
import socket

import pytest
import uvicorn
from uvicorn.server import ServerState

from loglake import http_protocol
from loglake.http_protocol import _JOIN_AT_MOST, HttpProtocol, _JoinedWrites


async def _connection() -> tuple[asyncio.Transport, _JoinedWrites, socket.socket]:
    """A transport of the running loop on one end of a socket pair, wrapped; the other end, non-blocking."""
    ours, peer = socket.socketpair()
    peer.setblocking(False)
    loop = asyncio.get_running_loop()
    transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, ours)
    return transport, _JoinedWrites(transport, loop), peer  # type: ignore[return-value]


async def _read(peer: socket.socket, size: int) -> bytes:
    loop = asyncio.get_running_loop()
    got = b""
    while len(got) < size:
        chunk = await asyncio.wait_for(loop.sock_recv(peer, size - len(got)), timeout=10)
        if not chunk:
            break
        got += chunk
    return got


def test_a_responses_head_and_body_leave_together_once_the_loops_round_ends() -> None:
    async def scenario() -> None:
        transport, joined, peer = await _connection()
        joined.write(b"HTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\n")
        joined.write(b"{}")
        with pytest.raises(BlockingIOError):  # nothing sent while the round that wrote goes on
            peer.recv(100)
        await asyncio.sleep(0)
        assert peer.recv(100) == b"HTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\n{}"
        transport.close()
        peer.close()

    asyncio.run(scenario())


def test_closing_sends_what_waits_before_the_connection_ends() -> None:
    async def scenario() -> None:
        _, joined, peer = await _connection()
        joined.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        joined.close()
        assert await _read(peer, 1000) == b"HTTP/1.1 400 Bad Request\r\n\r\n"  # then the end of the stream
        peer.close()

    asyncio.run(scenario())


def test_a_body_too_large_to_join_still_arrives_whole_and_in_order() -> None:
    async def scenario() -> None:
        transport, joined, peer = await _connection()
        head = b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % (2 * _JOIN_AT_MOST)
        body = bytes(range(256)) * (2 * _JOIN_AT_MOST // 256)
        joined.write(head)
        joined.write(body)
        assert await _read(peer, len(head) + len(body)) == head + body
        transport.close()
        peer.close()

    asyncio.run(scenario())


def test_the_rest_of_the_transport_is_the_sockets_own() -> None:
    async def scenario() -> None:
        transport, joined, peer = await _connection()
        assert joined.get_extra_info("socket") is transport.get_extra_info("socket")
        assert not joined.is_closing()
        transport.close()
        assert joined.is_closing()
        joined.write(b"too late")  # the client is gone: dropped, as asyncio drops writes to a closed transport
        await asyncio.sleep(0)
        assert await _read(peer, 100) == b""
        peer.close()

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
    config = uvicorn.Config(_echo_length, http=HttpProtocol, lifespan="off", log_config=None)
    config.load()
    state = ServerState()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: HttpProtocol(config, state, {}), "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


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
        # A slow app is not a slow head: the answer comes whenever it is ready.
        assert (await _exchange(port, b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")).startswith(
            b"HTTP/1.1 200 "
        )
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
