"""The HTTP/1.1 protocol `loglake serve` speaks: uvicorn's httptools protocol, with a bound on request heads and
one write per answer.

Bounds: llhttp (httptools) sets no limit on a request's head and uvicorn none either: a client sending header
after header (or one endless header) made the server hold all of it (200 MB of headers took a server from
141 to 308 MiB of RSS), and one trickling a head a byte at a time held its connection for ever, since uvicorn
stops the keep-alive timer at the first byte. Here a head is answered 431 and the connection closed once more
than MAX_HEAD_BYTES of it came (counted in the target and headers llhttp hands over, and in the reads that hold
nothing but the head, for a header that never ends; as nginx's large_client_header_buffers, 4 x 8 KiB by
default, or Node's 16 KiB: 64 KiB leaves room for long URLs and cookies), and 408 once HEAD_SECONDS passed
without its end (nginx's client_header_timeout is 60 s), so neither memory nor connections can be held with a head.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

MAX_HEAD_BYTES = 64 * 1024  # of a request's line and headers
HEAD_SECONDS = 30.0  # from a request's first byte to the end of its head
LINGER_SECONDS = 2.0  # a refused client's bytes are read and dropped this long before its connection closes

TOO_LARGE = f"the request's head is over {MAX_HEAD_BYTES // 1024} KiB"

logger = logging.getLogger("uvicorn.error")  # (uvicorn's own warnings about requests go there too)


class HeadTooLarge(Exception):
    """Raised in a parser callback: a request's target and headers passed MAX_HEAD_BYTES."""


class HttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with bounded request heads (see the module's docstring), whose writes during
    one round of the event loop leave as ONE send.

    uvicorn writes a response's head and its body separately, and each write is a system call that wakes
    the client: a small answer (a 201 for one record) cost two sends and two wake-ups, ~20 % of the
    server's CPU per request and half the client's. Joined, it costs one (see _JoinedWrites)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = False  # a request's first bytes came, the end of its head has not
        self._heads_ended = 0  # (counted: a read that ends one head and starts another is told apart)
        self._head_bytes = 0  # of reads that were wholly the head under way
        self._head_timer: asyncio.TimerHandle | None = None
        self._refused = False
        self._head_parts = 0  # bytes of the head under way handed over by llhttp (target, names and values)
        self._head_over = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(_JoinedWrites(transport, self.loop))  # type: ignore[arg-type]

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:  # (what a refused client still sends, read and dropped until the connection closes)
            return
        # A read is counted when it began and ended inside one head: its bytes are all that head's. The read
        # a head begins in is not, nor the one it ends in (each at most a read's size: the bound holds).
        whole_read_in_head, ended = self._in_head, self._heads_ended
        if self.cycle is None or self.cycle.response_complete:  # (bytes before a request line: CRLFs, say)
            self._start_head_timer()
        super().data_received(data)
        if whole_read_in_head and self._in_head and ended == self._heads_ended:
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                self._refuse_head(431, TOO_LARGE)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head, self._head_bytes, self._head_parts = True, 0, 0
        self._start_head_timer()

    # The target and each header as llhttp hands them over, counted: a head that arrived within a read or two,
    # which the reads' count above does not see (an endless header is never handed over: the reads see that).
    def on_url(self, url: bytes) -> None:
        self._count_head(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_head(len(name) + len(value))
        super().on_header(name, value)

    def _count_head(self, size: int) -> None:
        self._head_parts += size
        if self._head_parts > MAX_HEAD_BYTES:
            self._head_over = True
            raise HeadTooLarge  # (llhttp stops parsing; uvicorn then calls send_400_response)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._heads_ended += 1
        self._stop_head_timer()
        super().on_headers_complete()

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a request llhttp cannot parse (or whose head _count_head stopped), sent as the other
        refusals are (see _refuse)."""
        if self._head_over:
            self._refuse_head(431, TOO_LARGE)
        else:
            self._refuse(400, msg)

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if self._in_head or self.cycle is None or self.cycle.response_complete:  # (else a request is answered)
            self._refuse_head(408, f"the request's head did not end within {HEAD_SECONDS:g} s")

    def _start_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(HEAD_SECONDS, self._head_too_slow)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _refuse_head(self, status: int, reason: str) -> None:
        """A refusal of a head, logged as uvicorn logs a malformed request (its own warning, then send_400_response)."""
        peer = "{}:{}".format(*self.client) if self.client else "?"
        logger.warning("%s from %s: closing the connection", reason, peer)
        self._refuse(status, reason)

    def _refuse(self, status: int, reason: str) -> None:
        """Answer `status` and close. The client is likely still sending: closing with its bytes unread would
        make the kernel reset the connection, and the client see "connection reset", not the answer. So the
        answer is sent, then the end of the stream, and what still comes is read and dropped for at most
        LINGER_SECONDS (nginx's lingering close) before the connection closes."""
        if self._refused or self.transport.is_closing():
            return
        self._refused = True
        self._in_head = False
        self._stop_head_timer()
        text = reason.encode()
        head = b"content-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\nconnection: close\r\n\r\n"
        self.transport.write(STATUS_LINE[status] + head % len(text) + text)
        if not self.transport.can_write_eof():  # (TLS cannot end one direction alone)
            self.transport.close()
            return
        self.transport.write_eof()
        self.loop.call_later(LINGER_SECONDS, self.transport.close)


class _JoinedWrites:
    """A transport whose writes wait for the end of the event loop's current round, then go out together.

    Everything else is the socket's transport's own; closing sends what waits first, so an answer
    written just before the connection closes (uvicorn's 400s, Connection: close) still leaves."""

    __slots__ = ("_loop", "_pending", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._pending:
            self._loop.call_soon(self._send)
        self._pending.append(data)

    def close(self) -> None:
        self._send()
        self._transport.close()

    def write_eof(self) -> None:
        self._send()
        self._transport.write_eof()

    def is_closing(self) -> bool:
        # Asked after every response (uvicorn's on_response_complete): its own method, since a lookup that
        # falls through to __getattr__ first fails and raises AttributeError inside (~0.6 us a request).
        return self._transport.is_closing()

    def _send(self) -> None:
        pending = self._pending
        if not pending:
            return
        self._pending = []
        if self._transport.is_closing():  # the client went away: nothing can be sent (as with any write)
            return
        if len(pending) == 1:
            self._transport.write(pending[0])
        elif sum(map(len, pending)) <= _JOIN_AT_MOST:
            self._transport.write(b"".join(pending))
        else:  # a large body is not copied to join it to its head
            self._transport.writelines(pending)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


_JOIN_AT_MOST = 64 * 1024
