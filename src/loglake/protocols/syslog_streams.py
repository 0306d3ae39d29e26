"""The syslog listeners' connections (syslog.py serves them): a TCP or TLS stream framed and parsed a read at a
time, UDP datagrams a loop round at a time, each as one batch for the Batcher; senders outside syslog_allow
refused, and each TLS handshake made here, so that a failed one is counted and said."""

from __future__ import annotations

import asyncio
import re
import ssl
from typing import TYPE_CHECKING

from loglake.protocols.syslog_commits import Allowance, Batcher, SyslogTally
from loglake.protocols.syslog_framing import StreamFramer

if TYPE_CHECKING:
    from loglake.protocols.syslog import SyslogListeners

# As asyncio's: a TLS connection without its handshake this long after its first byte is closed. (Not after its
# start: syslog-ng connects at once and begins its handshake with its first message; closed after a quiet minute, it
# met a broken pipe at the next and waited its time_reopen(), a minute, each time: the shipper trial.)
HANDSHAKE_SECONDS = 60.0
READ_BYTES = 256 * 1024  # the most a TLS read takes at once (a TCP read's size)
# The start of a TLS handshake (a handshake record, TLS 1.x): no syslog message starts so (`<PRI>` or a count does).
TLS_HANDSHAKE_START = b"\x16\x03"
# The start of an HTTP request, which a web page can make the machine's browser send to any port: its body's lines
# were stored as syslog messages (a page could write records). No syslog message starts so either.
HTTP_REQUEST_START = re.compile(rb"(?:GET|HEAD|POST|PUT|DELETE|OPTIONS|PATCH|CONNECT|TRACE) \S")


class Stream(asyncio.Protocol):
    """One TCP (or TLS) connection: frames and parses each read as one batch."""

    def __init__(self, listeners: SyslogListeners, batcher: Batcher, allowance: Allowance) -> None:
        self.listeners = listeners
        self.batcher = batcher
        self.allowance = allowance  # its listener's rate
        self.framer = StreamFramer(listeners.limits.max_message_bytes)
        self.transport: asyncio.Transport | None = None
        self.peer = ""
        self._reading = True
        self._began = False  # its first bytes came
        self._counted = False  # among its sender's connections (SyslogListeners.connection_opened)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._admitted(transport):
            self._serve(transport)

    def _admitted(self, transport: asyncio.BaseTransport) -> bool:
        """Whether syslog_allow lists the sender, and it holds fewer connections than it may; its connection is closed
        when not."""
        address = transport.get_extra_info("peername")
        if address is None:  # reset before it was served (a health check closing with RST): nothing to read
            transport.abort()  # type: ignore[attr-defined]
            return False
        self.peer = sender(address[0])
        if not self.listeners.allowed(self.peer):
            self.listeners.connection_refused(self.peer)
        elif self.listeners.connection_opened(self.peer):
            self._counted = True
            return True
        transport.abort()  # type: ignore[attr-defined]
        return False

    def _serve(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.batcher.streams.add(self)
        self.batcher.pause_or_resume()

    def data_received(self, data: bytes) -> None:
        if not self._began:
            self._began = True
            spoken = _other_protocol(data)
            if spoken and self.transport is not None:
                self.listeners.other_protocol(self.peer, spoken)
                self.transport.abort()
                return
        self._take(self.framer.feed(data))

    def eof_received(self) -> bool | None:
        self._take(self.framer.finish())  # a last message without its newline, a counted one cut short
        return None

    def _take(self, frames: list[bytes]) -> None:
        if frames:
            self.batcher.add(self.listeners.parse(frames, self.peer))
            self.batcher.spend(len(frames), self.allowance)

    def connection_lost(self, exc: Exception | None) -> None:
        self.batcher.streams.discard(self)
        if self._counted:
            self._counted = False
            self.listeners.connection_closed(self.peer)

    def reading(self, wanted: bool) -> None:
        if wanted != self._reading and self.transport is not None and not self.transport.is_closing():
            self._reading = wanted
            if wanted:
                self.transport.resume_reading()
            else:
                self.transport.pause_reading()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def sender(host: str) -> str:
    """The sender's address as text: an IPv4 one as such, not as a listener on [::] is given it (::ffff:192.0.2.7),
    so that the records' peer is the address the sender has (and a search for it finds them)."""
    return host[7:] if host.startswith("::ffff:") and "." in host else host


def _other_protocol(first: bytes) -> str | None:
    """The protocol a TCP connection's first bytes begin, when they are no syslog."""
    if first.startswith(TLS_HANDSHAKE_START):
        return "TLS"
    return "HTTP" if HTTP_REQUEST_START.match(first) else None


class TlsStream(Stream):
    """A TLS connection, its TLS made here over memory buffers (as asyncio makes its own) rather than by the
    event loop's server, which ends a failed handshake without a word: so one is counted and said
    (SyslogListeners.handshake_failed). A connection closed before its handshake began (a port check) is not."""

    _shaken = False  # the handshake is done
    _deadline: asyncio.TimerHandle | None = None  # the handshake's, from the first byte on, until it is done

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if not self._admitted(transport):
            return
        assert self.listeners.tls is not None
        self._incoming, self._outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self._tls = self.listeners.tls.wrap_bio(self._incoming, self._outgoing, server_side=True)
        self._serve(transport)

    def data_received(self, data: bytes) -> None:
        self._incoming.write(data)
        plain, ended, failed = [], False, None
        try:
            if not self._shaken:
                if self._deadline is None:
                    self._deadline = self.batcher.loop.call_later(HANDSHAKE_SECONDS, self._too_slow)
                self._tls.do_handshake()
                self._shaken = True
                self._stop_deadline()
            while chunk := self._tls.read(READ_BYTES):
                plain.append(chunk)
            # b"": the sender ended its TLS session (close_notify). SSLObject.read answers so, not with an error,
            # and for good: read in a loop, it spun a core, grew this list, lost the messages before it and
            # held the server's stop until it was killed.
            ended = True
        except ssl.SSLWantReadError:  # all of it read
            pass
        except ssl.SSLZeroReturnError:  # the sender ended its TLS session (close_notify), said as an error
            ended = True
        except ssl.SSLError as e:
            failed = e
        if plain:
            super().data_received(b"".join(plain))
        self._send_tls()
        if failed is not None:
            if not self._shaken:
                self.listeners.handshake_failed(self.peer, failed)
            self._end(failed)
        elif ended:
            self.eof_received()
            self._end(None)

    def eof_received(self) -> bool | None:
        if self._shaken:  # a last message without its newline, as over TCP
            return super().eof_received()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_deadline()
        super().connection_lost(exc)

    def _stop_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _send_tls(self) -> None:
        """What TLS has for the sender (the handshake's messages, session tickets, an alert)."""
        pending = self._outgoing.read()
        if pending and self.transport is not None and not self.transport.is_closing():
            self.transport.write(pending)

    def _too_slow(self) -> None:
        self.listeners.handshake_failed(self.peer, TimeoutError(f"no TLS handshake within {HANDSHAKE_SECONDS:g} s"))
        self._end(None)

    def _end(self, error: ssl.SSLError | None) -> None:
        """Close the connection: at once after a TLS error (nothing more can be read from it)."""
        if self.transport is None:
            return
        if error is None:
            self.transport.close()
        else:
            self.transport.abort()


class Datagrams(asyncio.DatagramProtocol):
    """The UDP listener: each datagram one message; a loop round's datagrams parsed as one batch per sender."""

    def __init__(self, listeners: SyslogListeners, batcher: Batcher) -> None:
        self.listeners = listeners
        self.batcher = batcher
        self.waiting: dict[str, list[bytes]] = {}

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        peer = sender(addr[0])
        listeners = self.listeners
        if not listeners.allowed(peer):
            listeners.report(SyslogTally(not_allowed=1))
            return
        if self.batcher.full() or not listeners.allowances["udp"].take_one(listeners.monotonic()):
            listeners.report(SyslogTally(rate_limited=1))
            return
        message = data.rstrip(b"\r\n\x00")
        if not message:
            return
        if not self.waiting:
            self.batcher.loop.call_soon(self._parse)
        self.waiting.setdefault(peer, []).append(message)

    def _parse(self) -> None:
        waiting, self.waiting = self.waiting, {}
        for peer, frames in waiting.items():
            self.batcher.add(self.listeners.parse(frames, peer))
