"""The HTTP/1.1 protocol `loglake serve` speaks: requests parsed by llhttp (httptools), each run through the ASGI
app (uvicorn's server runs the protocol and the app's lifespan), answered in order, with bounded request heads.

Its own, not uvicorn's httptools protocol: the event loop's CPU bounds single-record POST /logs (B1), and
uvicorn's protocol spent much of it between socket and app (a scope, an asyncio.Event, a cycle object of a dozen
fields, two ASGI messages each header of which it checked with two regexes, the head and the body sent apart, a
keep-alive timer made and cancelled each request). Measured with bench/b1_in_process.py --callgrind, instructions
of the event loop a request: an ASGI app answering at once 162,000 on uvicorn's protocol, 109,000 on this one (with
uvicorn's proxy-headers middleware, which both run); B1's POST /logs 382,000 and 325,000.

What it does, as uvicorn's did:
- keep-alive: HTTP/1.1 connections stay open unless a request says `Connection: close` (HTTP/1.0 ones close after
  their answer); one idle for uvicorn's timeout_keep_alive (5 s), after an answer or since it was accepted, is
  closed;
- pipelined requests are answered in order, reading paused while one waits its turn;
- a body reaches the app as it arrives (ASGI http.request messages), reading paused while more than
  BODY_BUFFER_BYTES wait for the app; `Expect: 100-continue` is answered when the app first asks for the body;
- an answer carries Content-Length, or is chunked when the app gives none (event streams); none for HEAD, 204
  and 304; the app's sends wait while the socket's buffer is full;
- a client gone: the app's receive gives http.disconnect and its sends are dropped; an app that fails is
  answered 500 if it had not started its answer (else the connection closes), and logged;
- a request this protocol answered itself (a body too slow, below: 408) is told to the app as a client gone,
  with the status its client was answered in the http.disconnect message's `answered` (the app's access log
  names that, not 499);
- on the server's stop (shutdown()), idle connections close and busy ones after their answer.

Bounds: llhttp sets no limit on a request's head, uvicorn none either: a client sending header after header (or
one endless header) made the server hold all of it (200 MB of headers took a server from 141 to 308 MiB of RSS),
and one trickling a head a byte at a time held its connection for ever, since uvicorn stopped the keep-alive timer
at the first byte. Here a head is answered 431 and the connection closed once more than MAX_HEAD_BYTES of it came
(counted in the target and headers llhttp hands over, and in the reads that hold nothing but the head, for a
header that never ends; as nginx's large_client_header_buffers, 4 x 8 KiB by default, or Node's 16 KiB: 64 KiB
leaves room for long URLs and cookies), and 408 once HEAD_SECONDS passed without its end (nginx's
client_header_timeout is 60 s), so neither memory nor connections can be held with a head. A body the app waits
for is bounded likewise, as Apache's mod_reqtimeout bounds it (body=20,minrate=500): it has BODY_SECONDS from the
app's first wait, and 1/BODY_MIN_RATE s more for each byte that came, then 408 (or, once the app's answer started,
the connection closes). uvicorn waited for ever: a body sent a byte every few seconds (to the public POST /session,
say) held its connection, and what had come of it, for as long as its client liked; a wait between two reads alone
(nginx's client_body_timeout) does not stop that.

Connections are bounded too (connection_limit.ConnectionLimit): a server holds at most its file limit less what it
keeps for its own files (its share of that, beside the syslog listeners'); a connection past that is closed as soon
as it is accepted, unanswered. Not answered 503 as uvicorn's limit_concurrency answers: that reads the request
first, holding the connection for as long as its head may take (HEAD_SECONDS), which is what the bound is for; and
an answer written before the request is read is lost to the reset of closing on the request's unread bytes. Clients
take a connection closed before any answer for a network error, and send again (shippers, browsers' idempotent
requests).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import deque
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote

import httptools

from loglake.connection_limit import ConnectionLimit

MAX_HEAD_BYTES = 64 * 1024  # of a request's line and headers
HEAD_SECONDS = 30.0  # from a request's first byte to the end of its head
BODY_SECONDS = 20.0  # from the app's first wait for a body's bytes, before those that came extend it
BODY_MIN_RATE = 500  # bytes a second: what each byte of a body extends its time by (1/500 s)
LINGER_SECONDS = 2.0  # a refused client's bytes are read and dropped this long before its connection closes
BODY_BUFFER_BYTES = 64 * 1024  # of a body received and not yet taken by the app, before reading pauses

TOO_LARGE = f"the request's head is over {MAX_HEAD_BYTES // 1024} KiB"
MALFORMED = "Invalid HTTP request received."

logger = logging.getLogger("uvicorn.error")  # (uvicorn's own warnings about requests went there: kept)

_ASGI = {"version": "3.0", "spec_version": "2.3"}
_STATUS_LINES = {status.value: b"HTTP/1.1 %d %b\r\n" % (status.value, status.phrase.encode()) for status in HTTPStatus}
# In an answer's head, besides each line's CRLF: a control character in a header (a bug of the app's; a CR or LF
# would end the head early, splitting the answer).
_CONTROL = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_CHUNKED = (b"transfer-encoding", b"chunked")
_CLOSE = (b"connection", b"close")
_SERVER_ERROR = (
    b"HTTP/1.1 500 Internal Server Error\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 21\r\n"
    b"connection: close\r\n\r\nInternal Server Error"
)
_HEAD, _BODY, _IDLE = "head", "body", "idle"  # what a connection's deadline is for


def status_line(status: int) -> bytes:
    return _STATUS_LINES.get(status) or b"HTTP/1.1 %d \r\n" % status


class HeadTooLarge(Exception):
    """Raised in a parser callback: a request's target and headers passed MAX_HEAD_BYTES."""


class HttpProtocol(asyncio.Protocol):
    """One client connection: its requests parsed by llhttp, each answered by the app as an _Exchange, in order.

    Made by uvicorn's server (its config, the state it shares with the connections, the lifespan's state) for
    each connection. An answer's head leaves with its body in one send (a small answer sent as a head, then a
    body, cost two sends and two wake-ups of the client: ~20 % of the server's CPU per request, half the
    client's); an event stream's head at once."""

    def __init__(
        self,
        config: Any,
        server_state: Any,
        app_state: dict[str, Any] | None = None,
        _loop: asyncio.AbstractEventLoop | None = None,
        limit: ConnectionLimit | None = None,
    ) -> None:
        if not config.loaded:
            config.load()
        self.app = config.loaded_app  # (with uvicorn's proxy-headers middleware, as configured)
        self.loop = _loop or asyncio.get_event_loop()
        self.state = server_state  # its connections, tasks and default headers (Date), and the requests' count
        self.app_state = app_state or {}
        self.limit = limit  # (the server's, shared by its connections; None: no bound but the file limit's)
        self.keep_alive_seconds = config.timeout_keep_alive
        self.parser = httptools.HttpRequestParser(self)
        # Data after a request that closes the connection is not a parse error: that request is still answered.
        self.parser.set_dangerous_leniencies(lenient_data_after_close=True)
        self.transport: Any = None
        self.server: tuple[str, int] | None = None
        self.client: tuple[str, int] | None = None
        self.current: _Exchange | None = None  # the request being answered
        self.waiting: deque[_Exchange] = deque()  # pipelined requests after it, in order
        self.reading: _Exchange | None = None  # the request whose body is being received (the newest)
        self.read_paused = False
        self.write_paused = False
        self._drained: list[asyncio.Future[None]] = []  # sends waiting for the socket's buffer to empty
        # The head under way: its target, headers, whether it asks to be told to send its body.
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._expects_continue = False
        # One timer per connection, for a deadline moved rather than re-armed each request: a head's end
        # (HEAD_SECONDS) or an idle connection's close (keep_alive_seconds).
        self._deadline: float | None = None
        self._deadline_for = _IDLE
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._in_head = False  # a request's first bytes came, the end of its head has not
        self._heads_ended = 0  # (counted: a read that ends one head and starts another is told apart)
        self._head_bytes = 0  # of reads that were wholly the head under way
        self._head_parts = 0  # bytes of the head under way handed over by llhttp (target, names and values)
        self._head_over = False
        self._refused = False

    # -- the connection ------------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        limit = self.limit
        if limit is not None and len(self.state.connections) >= limit.most:
            self._refused = True  # (not one of the server's connections: nothing of it is read)
            limit.refused(self.loop.time())
            transport.close()
            return
        self.state.connections.add(self)
        self.server = _address(transport.get_extra_info("sockname"))
        self.client = _address(transport.get_extra_info("peername"))
        # Its first request is waited for as a kept-alive connection's next one is: a connection that sent nothing
        # was held for ever (uvicorn's too), and a client opening thousands held thousands of file descriptors.
        # Not HEAD_SECONDS, which bound a head that began: nothing is owed to a connection that asked nothing, and
        # a client that opened it to use it writes at once (nginx's client_header_timeout, 60 s, runs from accept).
        self._wait_idle()

    def connection_lost(self, exc: Exception | None) -> None:
        self.state.connections.discard(self)
        for exchange in (self.current, self.reading, *self.waiting):
            if exchange is not None:
                exchange.client_gone()
        self._resume_writing()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if exc is None:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self._refused:  # (what a refused client still sends, read and dropped until the connection closes)
            return
        # A read is counted when it began and ended inside one head: its bytes are all that head's. The read
        # a head begins in is not, nor the one it ends in (each at most a read's size: the bound holds).
        whole_read_in_head, ended = self._in_head, self._heads_ended
        if self.current is None:  # (bytes before a request line, CRLFs say, start the head's clock too)
            self._start_head_clock()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:  # (no protocol is upgraded to: the request is answered, then closed)
            if self.reading is not None:
                self.reading.keep_alive = False
        except httptools.HttpParserError:
            if self._head_over:
                self._refuse_head(431, TOO_LARGE)
            else:
                logger.warning(MALFORMED)
                self._refuse(400, MALFORMED)
            return
        if whole_read_in_head and self._in_head and ended == self._heads_ended:
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                self._refuse_head(431, TOO_LARGE)

    def eof_received(self) -> None:
        return None  # (the transport closes: a client that ends its side is done, as with uvicorn)

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self._resume_writing()

    def _resume_writing(self) -> None:
        self.write_paused = False
        drained, self._drained = self._drained, []
        for waiter in drained:
            if not waiter.done():
                waiter.set_result(None)

    async def drain(self) -> None:
        """Return once the socket's buffer has room (at once when it has)."""
        if self.write_paused:
            waiter = self.loop.create_future()
            self._drained.append(waiter)
            await waiter

    def shutdown(self) -> None:
        """The server stops: an idle connection closes now, a busy one after its answer."""
        if self.current is None:
            self.transport.close()
        else:
            self.current.keep_alive = False

    # -- llhttp's callbacks ---------------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._url, self._headers, self._expects_continue = b"", [], False
        self._in_head, self._head_bytes, self._head_parts = True, 0, 0
        self._start_head_clock()

    # The target and each header as llhttp hands them over, counted: a head that arrived within a read or two,
    # which the reads' count in data_received does not see (an endless header is never handed over: they see it).
    def on_url(self, url: bytes) -> None:
        self._count_head(len(url))
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_parts += len(name) + len(value)  # (as _count_head, inline: a call per header costs)
        if self._head_parts > MAX_HEAD_BYTES:
            self._count_head(0)
        name = name.lower()
        value = value.rstrip(b" \t")  # (llhttp keeps a value's trailing whitespace, which RFC 9110 excludes)
        if name == b"expect" and value.lower() == b"100-continue":
            self._expects_continue = True
        self._headers.append((name, value))

    def _count_head(self, size: int) -> None:
        self._head_parts += size
        if self._head_parts > MAX_HEAD_BYTES:
            self._head_over = True
            raise HeadTooLarge  # (llhttp stops parsing and feed_data raises: answered 431)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._heads_ended += 1
        self._deadline = None
        parser = self.parser
        version = parser.get_http_version()
        url = httptools.parse_url(self._url)
        raw_path = url.path
        path = raw_path.decode("ascii")
        scope = {
            "type": "http",
            "asgi": _ASGI,
            "http_version": version,
            "server": self.server,
            "client": self.client,
            "scheme": "http",
            "root_path": "",
            "method": parser.get_method().decode("ascii"),
            "path": unquote(path) if "%" in path else path,
            "raw_path": raw_path,
            "query_string": url.query or b"",
            "headers": self._headers,
            "state": self.app_state.copy(),
        }
        keep_alive = version != "1.0" and parser.should_keep_alive()
        exchange = _Exchange(self, scope, keep_alive, self._expects_continue)
        self.reading = exchange
        if self.current is None:
            self.current = exchange
            exchange.start()
        else:  # pipelined: its turn comes once the answers before it are sent
            self.waiting.append(exchange)
            self._flow()

    def on_body(self, body: bytes) -> None:
        exchange = self.reading
        if exchange is not None and exchange.received(body) > BODY_BUFFER_BYTES:
            self._flow()

    def on_message_complete(self) -> None:
        if self.reading is not None:
            self.reading.body_ended()

    # -- answers ----------------------------------------------------------------------------------------------

    def answered(self, exchange: _Exchange) -> None:
        """The current request is answered: the next pipelined one starts, or the connection waits, idle."""
        self.state.total_requests += 1
        self.current = None
        if self.reading is exchange:
            self.reading = None
        if not exchange.keep_alive:
            self.transport.close()
            return
        if self.transport.is_closing():
            return
        if self.waiting:
            self.current = self.waiting.popleft()
            self.current.start()
        elif self._in_head:  # (a head that began behind the answers: its time runs from now, its turn)
            self._deadline, self._deadline_for = self.loop.time() + HEAD_SECONDS, _HEAD
            self._arm()
        else:
            self._wait_idle()
        if self.read_paused:
            self._flow()

    def _flow(self) -> None:
        """Pause reading while a request waits its turn or a body's bytes wait for the app; else resume it."""
        reading = self.reading
        pause = bool(self.waiting) or (reading is not None and reading.buffered > BODY_BUFFER_BYTES)
        if pause != self.read_paused and not self.transport.is_closing():
            self.read_paused = pause
            (self.transport.pause_reading if pause else self.transport.resume_reading)()

    # -- deadlines --------------------------------------------------------------------------------------------

    def _start_head_clock(self) -> None:
        """The head's deadline, HEAD_SECONDS from its first byte; never moved by the bytes after it, which would
        let a head trickled a byte at a time hold its connection for ever."""
        if self._deadline is None or self._deadline_for != _HEAD:
            self._deadline, self._deadline_for = self.loop.time() + HEAD_SECONDS, _HEAD
            self._arm()

    def _wait_idle(self) -> None:
        """The connection waits for a request, its first or its next: closed, unanswered, if none begins within
        keep_alive_seconds."""
        self._deadline, self._deadline_for = self.loop.time() + self.keep_alive_seconds, _IDLE
        self._arm()

    def body_awaited(self, deadline: float) -> None:
        """The app waits for more of the current request's body, which must come by `deadline`."""
        self._deadline, self._deadline_for = deadline, _BODY
        self._arm()

    def _arm(self) -> None:
        """Set the timer for the deadline, unless it is set for no later (it then looks again when it fires)."""
        deadline = self._deadline
        if deadline is None or (self._timer is not None and self._timer_at <= deadline):
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timer_at = self.loop.call_at(deadline, self._deadline_passed), deadline

    def _deadline_passed(self) -> None:
        self._timer = None
        if self._deadline is None or self.transport.is_closing():
            return
        if self.loop.time() < self._deadline:  # moved since the timer was set: wait for it
            self._arm()
        elif self._deadline_for == _IDLE:
            self.transport.close()
        elif self._deadline_for == _BODY:
            exchange = self.current
            if exchange is not None and exchange.waiter is not None and exchange.more_body:  # (still waiting)
                # (the app's receive says so, and the 408 if answered; what it would still send is dropped)
                exchange.client_gone(answered=0 if exchange.started else 408)
                if exchange.started:
                    self.transport.close()
                else:
                    self._refuse_head(408, f"the request's body came slower than {BODY_MIN_RATE} bytes a second")
        elif self.current is None:
            # (else a request is being answered: a pipelined head behind it, which reads may wait for, gets its time
            # once the answers before it are sent; a 408 now took the place of theirs)
            self._refuse_head(408, f"the request's head did not end within {HEAD_SECONDS:g} s")

    # -- refusals ---------------------------------------------------------------------------------------------

    def _refuse_head(self, status: int, reason: str) -> None:
        """A refusal of a head (or a body too slow), logged as a malformed request is (a warning, then the answer)."""
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
        self._deadline = None
        text = reason.encode()
        head = b"content-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\nconnection: close\r\n\r\n"
        self.transport.write(status_line(status) + head % len(text) + text)
        if not self.transport.can_write_eof():  # (TLS cannot end one direction alone)
            self.transport.close()
            return
        self.transport.write_eof()
        self.loop.call_later(LINGER_SECONDS, self.transport.close)


class _Exchange:
    """One request and its answer: the ASGI app's receive and send for it, run as a task of its own."""

    __slots__ = (
        "answered",
        "body_bytes",
        "body_since",
        "buffered",
        "chunked",
        "chunks",
        "complete",
        "connection",
        "continue_asked",
        "ended",
        "gone",
        "head",
        "keep_alive",
        "left",
        "more_body",
        "no_body",
        "scope",
        "started",
        "task",
        "waiter",
    )

    def __init__(self, connection: HttpProtocol, scope: dict[str, Any], keep_alive: bool, continue_asked: bool) -> None:
        self.connection = connection
        self.scope = scope
        self.keep_alive = keep_alive
        self.continue_asked = continue_asked  # `Expect: 100-continue`, not yet answered
        self.chunks: list[bytes] = []  # of the body, received and not yet taken by the app
        self.buffered = 0  # their bytes
        self.body_bytes = 0  # of the body received in all
        self.body_since = 0.0  # the loop's time the app first waited for the body's bytes (0: not yet)
        self.more_body = True  # the body has not ended
        self.ended = False  # the app was given the body's end
        self.gone = False  # the client went away
        self.answered = 0  # the status this protocol answered the request with itself (0: none)
        self.started = False  # the answer's head was sent
        self.complete = False  # the answer was sent whole
        self.chunked = False  # the answer is sent in chunks (it gave no length)
        self.no_body = False  # the answer has none (HEAD, 204, 304)
        self.left = 0  # bytes of the answer's body still to be sent, by its Content-Length
        self.head: bytes | None = None  # the answer's head, until its body's first part goes with it
        self.waiter: asyncio.Future[None] | None = None  # the app's receive, waiting for the body or the end
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        connection = self.connection
        self.task = task = connection.loop.create_task(self._run(connection.app))
        connection.state.tasks.add(task)

    async def _run(self, app: Any) -> None:
        connection = self.connection
        try:
            await app(self.scope, self.receive, self.send)
        except BaseException as e:  # (a task cancelled at a forced stop too: its connection is closed)
            if not isinstance(e, asyncio.CancelledError):
                logger.error("Exception in ASGI application", exc_info=e)
            self._failed()
            if isinstance(e, asyncio.CancelledError):
                raise
        else:
            if not self.complete and not self.gone:
                what = "completing" if self.started else "starting"
                logger.error("ASGI callable returned without %s response.", what)
                self._failed()
        finally:
            connection.state.tasks.discard(self.task)

    def _failed(self) -> None:
        """The app failed or gave up: 500 if no answer had started (else the connection closes)."""
        transport = self.connection.transport
        if not self.started and not self.gone and not transport.is_closing():
            self.started = True
            transport.write(_SERVER_ERROR)
        transport.close()

    # -- the body ------------------------------------------------------------------------------------------------

    def received(self, body: bytes) -> int:
        """A part of the body came; the bytes waiting for the app."""
        if self.complete:  # (answered already: dropped)
            return 0
        self.chunks.append(body)
        self.buffered += len(body)
        self.body_bytes += len(body)
        self._wake()
        return self.buffered

    def body_ended(self) -> None:
        self.more_body = False
        self._wake()

    def client_gone(self, answered: int = 0) -> None:
        if not self.complete:
            self.gone, self.answered = True, answered
        self._wake()

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(None)

    async def receive(self) -> dict[str, Any]:
        if self.continue_asked:
            self.continue_asked = False
            if not self.connection.transport.is_closing():
                self.connection.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        while not (self.gone or self.complete):
            if self.chunks or (not self.more_body and not self.ended):
                chunks, self.chunks = self.chunks, []
                was_full = self.buffered > BODY_BUFFER_BYTES
                self.buffered = 0
                if was_full:
                    self.connection._flow()
                self.ended = not self.more_body
                body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
                return {"type": "http.request", "body": body, "more_body": self.more_body}
            self.waiter = waiter = self.connection.loop.create_future()
            if self.more_body:  # (the client's turn to send: bounded, as a head is)
                if not self.body_since:
                    self.body_since = self.connection.loop.time()
                self.connection.body_awaited(self.body_since + BODY_SECONDS + self.body_bytes / BODY_MIN_RATE)
            await waiter
        return {"type": "http.disconnect", "answered": self.answered} if self.answered else {"type": "http.disconnect"}

    # -- the answer ----------------------------------------------------------------------------------------------

    async def send(self, message: dict[str, Any]) -> None:
        connection = self.connection
        if connection.write_paused and not self.gone:
            await connection.drain()
        if self.gone:
            return
        kind = message["type"]
        if not self.started:
            if kind != "http.response.start":
                raise RuntimeError(f"Expected ASGI message 'http.response.start', but got {kind!r}.")
            self._send_head(message["status"], message.get("headers", ()))
        elif self.complete:
            raise RuntimeError(f"Unexpected ASGI message {kind!r} sent, after response already completed.")
        elif kind != "http.response.body":
            raise RuntimeError(f"Expected ASGI message 'http.response.body', but got {kind!r}.")
        else:
            self._send_body(message.get("body", b""), message.get("more_body", False))

    def _send_head(self, status: int, headers: Any) -> None:
        parts = [status_line(status)]
        length = None
        chunked = closes = False
        for name, value in (*self.connection.state.default_headers, *headers):
            name = name.lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and value.lower() == b"chunked":
                chunked = True
            elif name == b"connection" and b"close" in value.lower():
                closes = True
            parts += (name, b": ", value, b"\r\n")
        no_body = self.scope["method"] == "HEAD" or status in (204, 304)
        if length is None and not chunked and not no_body:  # (a length not known ahead: an event stream)
            chunked = True
            parts += _CHUNKED[0], b": ", _CHUNKED[1], b"\r\n"
        keep_alive = self.keep_alive and not closes
        if not keep_alive and not closes:
            parts += _CLOSE[0], b": ", _CLOSE[1], b"\r\n"
        parts.append(b"\r\n")
        head = b"".join(parts)
        lines = (len(parts) - 2) // 4 + 2  # CRLFs: the status line's, each header's (four parts), the end's
        if head.count(b"\n") != lines or head.count(b"\r") != lines or _CONTROL.search(head):
            raise RuntimeError("Invalid HTTP header name or value.")  # (nothing sent: the app may answer 500)
        self.started, self.continue_asked = True, False
        self.chunked, self.no_body, self.keep_alive = chunked, no_body, keep_alive
        self.left = 0 if chunked or length is None else length
        if chunked:  # (a stream's head goes at once: its client may wait for it before the first event)
            self.connection.transport.write(head)
        else:  # (it leaves with the body's first part, in one send: one wake-up of the client, not two)
            self.head = head

    def _send_body(self, body: bytes, more: bool) -> None:
        parts = [] if self.head is None else [self.head]
        self.head = None
        if self.no_body:
            pass
        elif self.chunked:
            if body:
                parts += b"%x\r\n" % len(body), body, b"\r\n"
            if not more:
                parts.append(b"0\r\n\r\n")
        else:
            if len(body) > self.left:
                raise RuntimeError("Response content longer than Content-Length")
            self.left -= len(body)
            if not more and self.left:
                raise RuntimeError("Response content shorter than Content-Length")
            if body:
                parts.append(body)
        if len(parts) == 1:
            self.connection.transport.write(parts[0])
        elif parts:  # (one send: writev, nothing copied)
            self.connection.transport.writelines(parts)
        if not more:
            self.complete = True
            self.chunks, self.buffered = [], 0
            self._wake()
            self.connection.answered(self)


def _address(info: Any) -> tuple[str, int] | None:
    """A socket's (host, port), as ASGI's scope gives it; None for a socket without one (a Unix socket)."""
    if isinstance(info, (tuple, list)) and len(info) >= 2:
        return str(info[0]), int(info[1])
    return None
