"""loglake serve's connections send what one round of the event loop wrote as one write (server._JoinedWrites),
over real sockets on a real event loop."""

from __future__ import annotations

import asyncio
import socket

import pytest

from loglake.server import _JOIN_AT_MOST, _JoinedWrites


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
