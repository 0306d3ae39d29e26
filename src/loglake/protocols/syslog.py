"""The syslog listeners of `loglake serve`: RFC 5424 and RFC 3164 over UDP, TCP and TLS, into LogService.

They run on a thread of their own with its own event loop, so parsing never holds up the HTTP API's.
Each read (a TCP read of up to 256 KiB, or the datagrams of one loop round) is framed and parsed as one
batch (syslog_streams, syslog_framing, syslog_batches); batches from every connection gather and are committed together
(syslog_commits: once BATCH_RECORDS are pending or BATCH_SECONDS after the first, as one write).

What is guaranteed: syslog has no acknowledgement, so a sender counts a message delivered once its
bytes left. loglake stores what it has committed: a crash (kill -9, power cut with durability full)
loses the messages read but not yet committed, those of the last BATCH_SECONDS or so, and, like a stop,
what still waited in the connections' buffers. While commits fall behind (MAX_COMMITS_IN_FLIGHT) or a
listener is over its rate, TCP connections are not read, so senders hold back (TCP flow control) instead
of losing messages; UDP datagrams then are dropped, and counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import ipaddress
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable

from loglake.config import (
    SYSLOG_LISTENERS,
    ConfigError,
    Settings,
    parse_listen_address,
    parse_networks,
    time_zone,
)
from loglake.connection_limit import ConnectionLimit, open_file_limit
from loglake.model import Limits, TimeBounds
from loglake.protocols.syslog_batches import SyslogBatch, parse_batch
from loglake.protocols.syslog_commits import Allowance, Batcher, SyslogTally
from loglake.protocols.syslog_streams import Datagrams, Stream, TlsStream
from loglake.protocols.syslog_udp import kernel_drops, widen_receive_buffer
from loglake.service import LogService

__all__ = ["Allowance", "SyslogListeners", "SyslogTally"]
_LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
_MAX_VERDICTS = 10_000
# At most one line this often about failed TLS handshakes, and one about refused connections (each with how
# many more there were meanwhile): a scanner, or a sender speaking plain syslog to the TLS port, connects again
# and again and must not flood the log.
WARNING_SECONDS = 60.0
# TCP keep-alive on the TCP and TLS listeners' connections, as Go's servers set it: a connection quiet this long is
# probed, this often, and closed after KEEPALIVE_PROBES unanswered (or at a reset). A sender that vanished without
# closing its connection (powered off, rebooted, or behind a NAT or firewall that dropped the connection's state
# after a quiet while) left it held for ever: its file, and a place among its address's
# syslog_max_connections_per_sender, so that a sender behind a NAT's address came to be refused for good. A sender
# that is there answers the probes (its kernel does), however quiet: syslog-ng connects and may send nothing for
# hours (syslog_streams.HANDSHAKE_SECONDS); and a probe each quiet while keeps a NAT's state for the connection.
KEEPALIVE_SECONDS = 15
KEEPALIVE_PROBES = 9
# Connections the TCP and TLS listeners' kernel queue holds before they are accepted (many senders reconnecting at
# once, after a restart of the server or of a relay).
LISTEN_BACKLOG = 512
_log = logging.getLogger("loglake.syslog")


class SyslogListeners:
    """The listeners the settings ask for (syslog_udp, syslog_tcp, and syslog_tls with syslog_tls_cert).
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
        self._tls = parse_listen_address(settings.syslog_tls) if settings.syslog_tls else None
        self._tls_files = (settings.syslog_tls_cert, settings.syslog_tls_key)
        # (how the person gave a setting, for what its value meets: a port in use, a sender past its connections)
        self._named = settings.named
        self._allowed = parse_networks(settings.syslog_allow) or _LOOPBACK
        self.zone = time_zone(settings.syslog_timezone)  # of times sent without one
        self._verdicts: dict[str, bool] = {}
        self.max_connections = settings.syslog_max_connections_per_sender
        # Each sender's open TCP and TLS connections: a sender that opens ever more (a loop reconnecting without
        # closing, a flood), each holding a message it does not finish, would hold the server's memory.
        self.connections: dict[str, int] = {}
        # And all senders' together, bounded by the listeners' share of the file limit (which `loglake serve` raised
        # before this): many senders, or one with many source addresses, took every file descriptor, and then the
        # server's own files failed (SQLite, the lake's parts, DuckDB's queries: `Too many open files`).
        self.open_streams = 0
        self.limit = ConnectionLimit.syslog(
            open_file_limit(), lambda: self.report(SyslogTally(connections_server_full=1))
        )
        # Each listener's own (the rate is per listener): with one for all, a TCP sender's backlog kept it in debt
        # and every UDP datagram meanwhile was dropped.
        self.allowances = {kind: Allowance(settings.syslog_rate_limit, monotonic()) for kind in ("udp", "tcp", "tls")}
        self._sockets: dict[str, socket.socket] = {}
        self.tls: ssl.SSLContext | None = None  # set by bind, with syslog_tls
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped: asyncio.Event | None = None
        self._failed_handshakes = _Warning()
        self._refused_connections = _Warning()  # (of the stream listeners, TCP and TLS)
        self._connections_over_limit = _Warning()
        self._other_protocols = _Warning()

    @classmethod
    def wanted(cls, settings: Settings) -> bool:
        return any(getattr(settings, name) for name in SYSLOG_LISTENERS)

    @property
    def streams(self) -> bool:
        """Whether a TCP or TLS listener is asked for (their connections take a share of the file limit)."""
        return self._tcp is not None or self._tls is not None

    @property
    def addresses(self) -> dict[str, tuple[str, int]]:
        """The bound (host, port) of each listener, by transport (udp, tcp or tls)."""
        return {kind: sock.getsockname()[:2] for kind, sock in self._sockets.items()}

    def bind(self) -> None:
        if self._sockets:
            return
        if self._tls is not None:
            files = f"{self._named('syslog_tls_cert')}, {self._named('syslog_tls_key')}"
            self.tls = _tls_context(*self._tls_files, files)
        try:
            if self._udp is not None:
                self._sockets["udp"] = _bind(self._udp, socket.SOCK_DGRAM, self._named("syslog_udp"))
                narrow = widen_receive_buffer(self._sockets["udp"])
                if narrow is not None:
                    _log.warning(narrow)
            if self._tcp is not None:
                self._sockets["tcp"] = _bind(self._tcp, socket.SOCK_STREAM, self._named("syslog_tcp"))
            if self._tls is not None:
                self._sockets["tls"] = _bind(self._tls, socket.SOCK_STREAM, self._named("syslog_tls"))
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

    def udp_kernel_drops(self) -> int | None:
        """The datagrams the kernel dropped for the UDP listener (syslog_udp.kernel_drops); None without one."""
        sock = self._sockets.get("udp")
        return None if sock is None or sock.fileno() < 0 else kernel_drops(sock)

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
        batcher = Batcher(self.service, self.report, self.monotonic)
        servers: list[asyncio.AbstractServer] = []
        udp: asyncio.BaseTransport | None = None
        try:
            for kind, sock in self._sockets.items():
                if kind == "udp":
                    udp, _ = await loop.create_datagram_endpoint(lambda: Datagrams(self, batcher), sock=sock)
                else:
                    kinds = TlsStream if kind == "tls" else Stream
                    stream = functools.partial(kinds, self, batcher, self.allowances[kind])
                    # (its backlog again: create_server listens anew, with 100 unless told)
                    servers.append(await loop.create_server(stream, sock=sock, backlog=LISTEN_BACKLOG))
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

    def connection_opened(self, peer: str) -> bool:
        """Count a TCP or TLS connection of the sender (connection_closed ends it), when the listeners hold fewer than
        their limit's most and the sender fewer than syslog_max_connections_per_sender; else count and say (once per
        episode, or at most once every WARNING_SECONDS) that it is refused, and answer False: the caller closes it."""
        if self.open_streams >= self.limit.most:
            self.limit.refused(self.monotonic())
            return False
        held = self.connections.get(peer, 0)
        if held < self.max_connections:
            self.connections[peer] = held + 1
            self.open_streams += 1
            return True
        self.report(SyslogTally(connections_over_limit=1))
        unsaid = self._connections_over_limit.due(self.monotonic())
        if unsaid is not None:
            since = f"; {unsaid} more refused since the last said" if unsaid else ""
            _log.warning(
                "syslog: refused a connection from %s, which holds %d open already (%s): does it open a connection "
                "per message without closing them?%s",
                peer,
                held,
                self._named("syslog_max_connections_per_sender"),
                since,
            )
        return False

    def connection_closed(self, peer: str) -> None:
        self.open_streams -= 1
        held = self.connections.pop(peer) - 1
        if held:
            self.connections[peer] = held

    def handshake_failed(self, peer: str, error: OSError) -> None:
        """Count a TLS connection whose handshake failed (nothing was read from it), and say so in the log at
        most once every WARNING_SECONDS."""
        self.report(SyslogTally(tls_handshakes_failed=1))
        unsaid = self._failed_handshakes.due(self.monotonic())
        if unsaid is None:
            return
        since = f"; {unsaid} more failed since the last said" if unsaid else ""
        _log.warning(
            "syslog: a TLS handshake from %s failed, nothing was read from it (%s): is the sender speaking TLS, "
            "and does it trust the certificate of --syslog-tls-cert?%s",
            peer,
            error,
            since,
        )

    def other_protocol(self, peer: str, spoken: str) -> None:
        """Say (at most once every WARNING_SECONDS) that a sender spoke another protocol on the plain TCP listener
        (TLS: a handshake, whose bytes were records of binary junk; HTTP: a request, which a web page can make the
        browser send), whose connection is closed, nothing stored."""
        unsaid = self._other_protocols.due(self.monotonic())
        if unsaid is None:
            return
        since = f"; {unsaid} more since the last said" if unsaid else ""
        if spoken == "TLS":
            where = f" (--syslog-tls: {self._tls[0]}:{self._tls[1]})" if self._tls else " (--syslog-tls)"
            what, advice = "began a TLS handshake", f"send TLS to the TLS listener{where}, or plain syslog here"
        else:
            what, advice = "sent an HTTP request (a web page may have made a browser send it)", "send syslog here"
        _log.warning("syslog: %s %s on the plain TCP listener, which closed it: %s%s", peer, what, advice, since)

    def connection_refused(self, peer: str) -> None:
        """Count a connection from outside syslog_allow (closed before anything was read from it), and say so in
        the log at most once every WARNING_SECONDS."""
        self.report(SyslogTally(connections_refused=1))
        unsaid = self._refused_connections.due(self.monotonic())
        if unsaid is None:
            return
        since = f"; {unsaid} more refused since the last said" if unsaid else ""
        _log.warning("syslog: refused a connection from %s, which syslog_allow does not list%s", peer, since)

    def parse(self, frames: list[bytes], peer: str) -> SyslogBatch:
        return parse_batch(frames, peer, TimeBounds.of(self.limits, int(self.clock() * 1000)), self.limits, self.zone)


class _Warning:
    """A warning logged at most once every WARNING_SECONDS, however often it is due."""

    def __init__(self) -> None:
        self._said_at: float | None = None  # when it was last logged
        self._unsaid = 0  # due since then

    def due(self, now: float) -> int | None:
        """How many times it was due and not said since the last line, when a line is due now; None when not."""
        if self._said_at is not None and now - self._said_at < WARNING_SECONDS:
            self._unsaid += 1
            return None
        unsaid, self._said_at, self._unsaid = self._unsaid, now, 0
        return unsaid


def _bind(address: tuple[str, int], kind: int, setting: str) -> socket.socket:
    host, port = address
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, kind)
    try:
        if kind == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            _keep_alive(sock)  # (the connections it accepts inherit it)
        sock.bind((host, port))
        if kind == socket.SOCK_STREAM:
            sock.listen(LISTEN_BACKLOG)
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise ConfigError(f"{setting}: port {port} on {host} is already in use; pick another") from None
        raise ConfigError(f"{setting}: cannot listen on {host}:{port}: {e.strerror}") from None
    sock.setblocking(False)
    return sock


def _keep_alive(sock: socket.socket) -> None:
    """Keep-alive probes on a stream socket (KEEPALIVE_SECONDS, KEEPALIVE_PROBES), as far as the system names them."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    idle = "TCP_KEEPIDLE" if hasattr(socket, "TCP_KEEPIDLE") else "TCP_KEEPALIVE"  # (macOS's name for it)
    options = ((idle, KEEPALIVE_SECONDS), ("TCP_KEEPINTVL", KEEPALIVE_SECONDS), ("TCP_KEEPCNT", KEEPALIVE_PROBES))
    for name, value in options:
        if hasattr(socket, name):
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)


def _tls_context(cert: str, key: str, settings: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as e:
        raise ConfigError(f"{settings}: cannot load {cert} and {key}: {e}") from None
    return context


def _new_loop() -> asyncio.AbstractEventLoop:
    with contextlib.suppress(ImportError):
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()
