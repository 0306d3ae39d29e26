"""The syslog listeners of `loglake serve`: RFC 5424 and RFC 3164 over UDP, TCP and TLS, into LogService.

They run on a thread of their own with its own event loop, so parsing never holds up the HTTP API's.
Each read (a TCP read of up to 256 KiB, or the datagrams of one loop round) is framed and parsed as one
batch (syslog_framing, syslog_parse); batches from every connection gather and are committed together
once BATCH_RECORDS are pending or BATCH_SECONDS after the first, as one write: a bulk batch becomes
lake parts (the columnar path of POST /logs), a small one goes to the hot store.

What is guaranteed: syslog has no acknowledgement, so a sender counts a message delivered once its
bytes left. loglake stores what it has committed: a crash (kill -9, power cut with durability full)
loses the messages read but not yet committed, those of the last BATCH_SECONDS or so, and, like a stop,
what still waited in the connections' buffers. While
commits fall behind (MAX_COMMITS_IN_FLIGHT) or a listener is over its rate, TCP connections are not
read, so senders hold back (TCP flow control) instead of losing messages; UDP datagrams then are
dropped, and counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import logging
import socket
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from loglake import ids
from loglake.config import ConfigError, Settings, parse_listen_address, parse_networks
from loglake.ingest import BULK_MIN_RECORDS
from loglake.ingest_columns import valid_columns_table
from loglake.model import SEVERITY_ALIASES, Limits, NewRecord, TimeBounds
from loglake.protocols.syslog_framing import StreamFramer
from loglake.protocols.syslog_parse import LOG_TYPE, SyslogColumns, parse_messages
from loglake.service import LogService

BATCH_RECORDS = 20_000
BATCH_SECONDS = 0.2
MAX_COMMITS_IN_FLIGHT = 2
MAX_PENDING_RECORDS = 100_000  # UDP datagrams beyond this many parsed, uncommitted records are dropped
MAX_DATAGRAM_BYTES = 65_535
_LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
_MAX_VERDICTS = 10_000
_log = logging.getLogger("loglake.syslog")


@dataclass(frozen=True)
class SyslogTally:
    """What one commit (or one refusal) did, for metrics and loglake's own events."""

    accepted: int = 0  # stored
    unparsed: int = 0  # of those, kept whole with a parse_error
    rate_limited: int = 0  # UDP datagrams over the rate, or while commits fell behind
    not_allowed: int = 0  # UDP datagrams from outside syslog_allow
    unstored: int = 0  # parsed, but the store refused the write
    by_service_and_severity: dict[tuple[str, int], int] = field(default_factory=dict)

    @property
    def rejected(self) -> int:
        return self.rate_limited + self.not_allowed + self.unstored


class Allowance:
    """A listener's rate: messages per second, with a second's worth of burst. Taken after the fact (a
    read's messages are parsed already), so it can go into debt; the debt is how long to stop reading."""

    def __init__(self, rate: float, now: float) -> None:
        self.rate = rate
        self.tokens = rate
        self.updated = now

    def spend(self, count: int, now: float) -> float:
        """Take `count` messages; the seconds to wait before the next read (0: none)."""
        self.tokens = min(self.rate, self.tokens + (now - self.updated) * self.rate) - count
        self.updated = now
        return -self.tokens / self.rate if self.tokens < 0 else 0.0

    def take_one(self, now: float) -> bool:
        """Whether one more message (a datagram) fits now."""
        if self.spend(0, now) == 0.0 and self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class SyslogListeners:
    """The listeners the settings ask for (syslog_udp, syslog_tcp, with TLS when syslog_tls_cert is set).
    `bind` opens the sockets (a ConfigError names a port in use), `start` serves them on a thread of
    their own, `stop` closes them and commits what was read."""

    def __init__(
        self,
        settings: Settings,
        service: LogService,
        report: Callable[[SyslogTally], None],
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.service = service
        self.limits: Limits = service.limits
        self.report = report
        self.clock = clock
        self.monotonic = monotonic
        self._udp = parse_listen_address(settings.syslog_udp) if settings.syslog_udp else None
        self._tcp = parse_listen_address(settings.syslog_tcp) if settings.syslog_tcp else None
        self._tls_files = (settings.syslog_tls_cert, settings.syslog_tls_key) if settings.syslog_tls_cert else None
        self._allowed = parse_networks(settings.syslog_allow) or _LOOPBACK
        self._verdicts: dict[str, bool] = {}
        self.allowance = Allowance(settings.syslog_rate_limit, monotonic())
        self._sockets: dict[str, socket.socket] = {}
        self._tls: ssl.SSLContext | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped: asyncio.Event | None = None

    @classmethod
    def wanted(cls, settings: Settings) -> bool:
        return bool(settings.syslog_udp or settings.syslog_tcp)

    @property
    def addresses(self) -> dict[str, tuple[str, int]]:
        """The bound (host, port) of each listener, by transport (udp, tcp or tls)."""
        return {kind: sock.getsockname()[:2] for kind, sock in self._sockets.items()}

    def bind(self) -> None:
        if self._sockets:
            return
        if self._tls_files is not None:
            self._tls = _tls_context(*self._tls_files)
        try:
            if self._udp is not None:
                self._sockets["udp"] = _bind(self._udp, socket.SOCK_DGRAM, "syslog_udp")
            if self._tcp is not None:
                self._sockets["tls" if self._tls else "tcp"] = _bind(self._tcp, socket.SOCK_STREAM, "syslog_tcp")
        except BaseException:
            self._close_sockets()
            raise

    def start(self) -> None:
        self.bind()
        started = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(started,), name="loglake-syslog", daemon=True)
        self._thread.start()
        started.wait()

    def stop(self) -> None:
        """Stop reading, commit what was read, close the sockets."""
        if self._thread is not None and self._loop is not None and self._stopped is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)
            self._thread.join()
            self._thread = None
        self._close_sockets()

    def _close_sockets(self) -> None:
        for sock in self._sockets.values():
            sock.close()

    # -- on the listeners' thread ------------------------------------------------------------------

    def _run(self, started: threading.Event) -> None:
        self._loop = loop = _new_loop()
        try:
            loop.run_until_complete(self._serve(started))
        finally:
            loop.close()

    async def _serve(self, started: threading.Event) -> None:
        loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        batcher = _Batcher(self)
        servers: list[asyncio.AbstractServer] = []
        udp: asyncio.BaseTransport | None = None
        try:
            for kind, sock in self._sockets.items():
                if kind == "udp":
                    udp, _ = await loop.create_datagram_endpoint(lambda: _Datagrams(self, batcher), sock=sock)
                else:
                    server = await loop.create_server(lambda: _Stream(self, batcher), sock=sock, ssl=self._tls)
                    servers.append(server)
        finally:
            started.set()
        await self._stopped.wait()
        for server in servers:
            server.close()
        if udp is not None:
            udp.close()
        batcher.close_streams()
        await batcher.drain()

    def allowed(self, peer: str) -> bool:
        """Whether syslog_allow lists the sender (each address worked out once: UDP asks per datagram)."""
        verdict = self._verdicts.get(peer)
        if verdict is None:
            address = ipaddress.ip_address(peer.split("%", 1)[0])
            if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
                address = address.ipv4_mapped
            verdict = any(address in network for network in self._allowed)
            if len(self._verdicts) < _MAX_VERDICTS:
                self._verdicts[peer] = verdict
        return verdict

    def parse(self, frames: list[bytes], peer: str) -> SyslogColumns:
        return parse_messages(frames, peer, TimeBounds.of(self.limits, int(self.clock() * 1000)), self.limits)


class _Batcher:
    """Parsed batches from every connection, committed together; reading paused while commits fall behind."""

    def __init__(self, listeners: SyslogListeners) -> None:
        self.listeners = listeners
        self.service = listeners.service
        self.loop = asyncio.get_running_loop()
        self.pending = SyslogColumns()
        self.streams: set[_Stream] = set()
        self.in_flight: set[asyncio.Task] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._due = False  # a commit is due, waiting for one in flight to finish
        self._resume: asyncio.TimerHandle | None = None  # over the rate: reading resumes then

    def add(self, columns: SyslogColumns) -> None:
        self.pending.extend(columns)
        if len(self.pending) >= BATCH_RECORDS:
            self.commit()
        elif self._timer is None and not self._due:
            self._timer = self.loop.call_later(BATCH_SECONDS, self.commit)
        self._pause_or_resume()

    def spend(self, count: int) -> None:
        """A stream's read of `count` messages: over the rate, streams are not read until it has recovered."""
        wait = self.listeners.allowance.spend(count, self.listeners.monotonic())
        if wait and self._resume is None:
            self._resume = self.loop.call_later(wait, self._resumed)
            self._pause_or_resume()

    def full(self) -> bool:
        """Whether datagrams must be dropped: this many records wait for commits that fall behind."""
        return len(self.pending) >= MAX_PENDING_RECORDS

    def commit(self) -> None:
        """Commit what is pending now, or as soon as a commit in flight is done."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not len(self.pending):
            return
        if len(self.in_flight) >= MAX_COMMITS_IN_FLIGHT:
            self._due = True
            return
        self._due = False
        batch, self.pending = self.pending, SyslogColumns()
        task = self.loop.create_task(self._write(batch))
        self.in_flight.add(task)
        task.add_done_callback(self._committed)

    def _committed(self, task: asyncio.Task) -> None:
        self.in_flight.discard(task)
        if self._due or len(self.pending) >= BATCH_RECORDS:
            self.commit()
        self._pause_or_resume()

    def _resumed(self) -> None:
        self._resume = None
        wait = self.listeners.allowance.spend(0, self.listeners.monotonic())
        if wait:  # still in debt (the rate changed nothing meanwhile): wait out the rest
            self._resume = self.loop.call_later(wait, self._resumed)
        self._pause_or_resume()

    def _pause_or_resume(self) -> None:
        behind = len(self.in_flight) >= MAX_COMMITS_IN_FLIGHT and len(self.pending) >= BATCH_RECORDS
        reading = not behind and self._resume is None
        for stream in self.streams:
            stream.reading(reading)

    async def _write(self, batch: SyslogColumns) -> None:
        count = len(batch)
        try:
            table = None
            if count >= BULK_MIN_RECORDS and self.service.lake is not None:
                table = valid_columns_table(
                    batch.timestamps,
                    batch.services,
                    [LOG_TYPE] * count,
                    batch.severities,
                    batch.messages,
                    batch.attributes,
                    self.service.limits,
                    self.service.now_ms(),
                )
            if table is not None:
                await self.service.write_table(table)
            else:
                await self.service.write(_records(batch))
        except Exception as e:  # StoreUnavailable, or a failed write of lake parts: counted, and said why
            _log.warning("syslog: %d message(s) not stored: %s", count, e)
            self.listeners.report(SyslogTally(unstored=count))
            return
        severities = [SEVERITY_ALIASES[s] for s in batch.severities]
        counts = dict(Counter(zip(batch.services, severities, strict=True)))
        self.listeners.report(SyslogTally(accepted=count, unparsed=batch.unparsed, by_service_and_severity=counts))

    def close_streams(self) -> None:
        for stream in list(self.streams):
            stream.close()

    async def drain(self) -> None:
        self.commit()
        while self.in_flight:
            await asyncio.gather(*self.in_flight, return_exceptions=True)


def _records(batch: SyslogColumns) -> list[NewRecord]:
    """A batch as NewRecords for the hot store: valid by construction (syslog_parse keeps every field
    within the record's rules)."""
    log_ids = ids.uuid7_many(batch.timestamps)
    return [
        NewRecord(log_id, ts, service, LOG_TYPE, SEVERITY_ALIASES[severity], message, attributes, None)
        for log_id, ts, service, severity, message, attributes in zip(
            log_ids, batch.timestamps, batch.services, batch.severities, batch.messages, batch.attributes, strict=True
        )
    ]


class _Stream(asyncio.Protocol):
    """One TCP (or TLS) connection: frames and parses each read as one batch."""

    def __init__(self, listeners: SyslogListeners, batcher: _Batcher) -> None:
        self.listeners = listeners
        self.batcher = batcher
        self.framer = StreamFramer(listeners.limits.max_message_bytes)
        self.transport: asyncio.Transport | None = None
        self.peer = ""
        self._reading = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.peer = str(transport.get_extra_info("peername")[0])
        if not self.listeners.allowed(self.peer):
            _log.warning("syslog: refused a connection from %s, which syslog_allow does not list", self.peer)
            transport.abort()  # type: ignore[attr-defined]
            return
        self.batcher.streams.add(self)
        self.batcher._pause_or_resume()

    def data_received(self, data: bytes) -> None:
        self._take(self.framer.feed(data))

    def eof_received(self) -> bool | None:
        self._take(self.framer.feed(b"\n"))  # a last message without its newline
        return None

    def _take(self, frames: list[bytes]) -> None:
        if frames:
            self.batcher.add(self.listeners.parse(frames, self.peer))
            self.batcher.spend(len(frames))

    def connection_lost(self, exc: Exception | None) -> None:
        self.batcher.streams.discard(self)

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


class _Datagrams(asyncio.DatagramProtocol):
    """The UDP listener: each datagram one message; a loop round's datagrams parsed as one batch per sender."""

    def __init__(self, listeners: SyslogListeners, batcher: _Batcher) -> None:
        self.listeners = listeners
        self.batcher = batcher
        self.waiting: dict[str, list[bytes]] = {}

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        peer = str(addr[0])
        listeners = self.listeners
        if not listeners.allowed(peer):
            listeners.report(SyslogTally(not_allowed=1))
            return
        if self.batcher.full() or not listeners.allowance.take_one(listeners.monotonic()):
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


def _bind(address: tuple[str, int], kind: int, setting: str) -> socket.socket:
    host, port = address
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, kind)
    try:
        if kind == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        if kind == socket.SOCK_STREAM:
            sock.listen(512)
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise ConfigError(f"{setting}: port {port} on {host} is already in use; pick another port") from None
        raise ConfigError(f"{setting}: cannot listen on {host}:{port}: {e.strerror}") from None
    sock.setblocking(False)
    return sock


def _tls_context(cert: str, key: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as e:
        raise ConfigError(f"syslog_tls_cert/syslog_tls_key: cannot load {cert} and {key}: {e}") from None
    return context


def _new_loop() -> asyncio.AbstractEventLoop:
    with contextlib.suppress(ImportError):
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()
