"""The syslog settings, and the listeners in process over a real Runtime: the rate limit (a frozen clock
refills nothing), the allow-list of networks, and what a stop commits."""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import socket
import ssl
import struct
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from loglake.config import ConfigError
from loglake.config_load import load_settings
from loglake.protocols import syslog_commits, syslog_streams
from loglake.protocols.syslog import LISTEN_BACKLOG, WARNING_SECONDS, SyslogListeners
from loglake.protocols.syslog_commits import Allowance, SyslogTally
from loglake.runtime import Runtime
from loglake.store.base import RecentQuery
from tests.certificates import Certificates


@pytest.mark.parametrize(
    ("environ", "problem"),
    [
        ({"LOGLAKE_SYSLOG_TCP": "0.0.0.0:514"}, "refusing to take syslog on 0.0.0.0 from anywhere"),
        ({"LOGLAKE_SYSLOG_UDP": "host:port"}, "LOGLAKE_SYSLOG_UDP: 'host:port' is not HOST:PORT"),
        ({"LOGLAKE_SYSLOG_UDP": "70000"}, "LOGLAKE_SYSLOG_UDP: '70000' is not HOST:PORT"),
        ({"LOGLAKE_SYSLOG_ALLOW": "10.0.0.0/8,nonsense"}, "LOGLAKE_SYSLOG_ALLOW: 'nonsense' is not an IP address"),
        ({"LOGLAKE_SYSLOG_TLS": "0.0.0.0:6514"}, "refusing to take syslog on 0.0.0.0 from anywhere"),
        (
            {"LOGLAKE_SYSLOG_TLS": "6514", "LOGLAKE_SYSLOG_TLS_CERT": "c.pem"},
            r"^LOGLAKE_SYSLOG_TLS_CERT and --syslog-tls-key \(LOGLAKE_SYSLOG_TLS_KEY\) go",
        ),
        (  # what put TLS on the TCP listener before --syslog-tls: refused, never quietly plain TCP
            {"LOGLAKE_SYSLOG_TCP": "6514", "LOGLAKE_SYSLOG_TLS_CERT": "c.pem", "LOGLAKE_SYSLOG_TLS_KEY": "k.pem"},
            r"^LOGLAKE_SYSLOG_TLS_CERT is for the TLS listener: name its address with --syslog-tls \(LOGLAKE_SYSLOG_",
        ),
        (
            {"LOGLAKE_SYSLOG_TLS": "6514"},
            r"^LOGLAKE_SYSLOG_TLS needs a certificate: give --syslog-tls-cert",
        ),
        ({"LOGLAKE_SYSLOG_RATE_LIMIT": "0"}, "LOGLAKE_SYSLOG_RATE_LIMIT must be positive"),
        (
            {"LOGLAKE_SYSLOG_TIMEZONE": "Mars/Olympus"},
            r"^LOGLAKE_SYSLOG_TIMEZONE: 'Mars/Olympus' is not an IANA time zone name",
        ),
        ({"LOGLAKE_SYSLOG_TIMEZONE": "../../etc/passwd"}, "is not an IANA time zone name"),
    ],
)
def test_syslog_settings_that_cannot_work_are_refused(environ: dict, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        load_settings(environ=environ)


def test_syslog_settings_from_flags_environment_and_toml(tmp_path: Path) -> None:
    config = tmp_path / "loglake.toml"
    config.write_text(
        '[loglake]\nsyslog_udp = "[::1]:5514"\nsyslog_allow = "10.0.0.0/8"\nsyslog_timezone = "Asia/Tokyo"\n'
    )
    settings = load_settings(
        {"syslog_tcp": "0.0.0.0:6514"}, config_file=config, environ={"LOGLAKE_SYSLOG_RATE_LIMIT": "5"}
    )
    assert (settings.syslog_udp, settings.syslog_tcp, settings.syslog_rate_limit) == ("[::1]:5514", "0.0.0.0:6514", 5.0)
    assert settings.syslog_allow == "10.0.0.0/8"  # a network bind needs it
    assert settings.syslog_timezone == "Asia/Tokyo" and load_settings(environ={}).syslog_timezone == "UTC"
    assert load_settings({"syslog_timezone": "Europe/Berlin"}).syslog_timezone == "Europe/Berlin"
    assert SyslogListeners.wanted(settings) and not SyslogListeners.wanted(load_settings(environ={}))
    tls = load_settings(
        environ={"LOGLAKE_SYSLOG_TLS": "6514", "LOGLAKE_SYSLOG_TLS_CERT": "c", "LOGLAKE_SYSLOG_TLS_KEY": "k"}
    )
    assert (tls.syslog_tls, tls.syslog_tcp) == ("6514", "") and SyslogListeners.wanted(tls)


def test_the_allowance_goes_into_debt_and_says_how_long_to_wait() -> None:
    allowance = Allowance(100.0, now=0.0)
    assert allowance.spend(60, 0.0) == 0.0
    assert allowance.spend(60, 0.0) == pytest.approx(0.2)  # 20 messages over: 0.2 s at 100/s
    assert allowance.spend(0, 0.1) == pytest.approx(0.1)
    assert allowance.spend(0, 0.2) == 0.0
    assert allowance.take_one(0.2) is False  # nothing saved up yet
    assert allowance.take_one(0.25) is True


class Listening:
    """The syslog listeners of a real Runtime, on free loopback ports, with a frozen rate clock."""

    def __init__(self, data_dir: Path, monotonic: Callable[[], float] = lambda: 1000.0, **settings: str) -> None:
        self.port = free_udp_port()
        environ = {"LOGLAKE_SYSLOG_UDP": f"127.0.0.1:{self.port}", "LOGLAKE_SYSLOG_TCP": f"127.0.0.1:{self.port}"}
        environ |= {f"LOGLAKE_{k.upper()}": v for k, v in settings.items()}
        self.runtime = Runtime(load_settings({"data_dir": data_dir, "access_log": "off"}, environ=environ))
        self.tallies: list[SyslogTally] = []
        self.listeners = SyslogListeners(
            self.runtime.settings, self.runtime.service, self.tallies.append, monotonic=monotonic
        )
        self.listeners.start()

    def stored(self) -> list[str]:
        return [r.message for r in self.runtime.store.recent(RecentQuery(since_ms=0, limit=1000))]

    def wait_for_tallies(self, predicate) -> None:
        deadline = time.monotonic() + 20
        while not predicate(self.tallies) and time.monotonic() < deadline:
            time.sleep(0.02)

    def close(self) -> None:
        self.listeners.stop()
        self.runtime.close()


def said_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    """What the listeners logged, but the UDP receive buffer's warning at start (where the kernel gives less than
    asked: tests/protocols/test_syslog_udp.py)."""
    return [
        r.getMessage() for r in caplog.records if r.name == "loglake.syslog" and "receive buffer" not in r.getMessage()
    ]


def free_udp_port() -> int:
    while True:
        with socket.socket() as tcp, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            tcp.bind(("127.0.0.1", 0))
            try:
                udp.bind(("127.0.0.1", tcp.getsockname()[1]))
            except OSError:
                continue
            return tcp.getsockname()[1]


@pytest.fixture
def listening(tmp_path: Path) -> Iterator[type[Listening]]:
    started: list[Listening] = []

    def start(**settings: Any) -> Listening:
        started.append(Listening(tmp_path / "data", **settings))
        return started[-1]

    yield start  # type: ignore[misc]
    for one in started:
        one.close()


def test_udp_datagrams_over_the_rate_are_dropped_and_counted(listening) -> None:
    syslog = listening(syslog_rate_limit="5")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        for i in range(8):
            udp.sendto(b"<14>1 - h a - - - datagram %d" % i, ("127.0.0.1", syslog.port))
    syslog.wait_for_tallies(lambda t: sum(x.accepted + x.rejected for x in t) == 8)
    assert sum(t.accepted for t in syslog.tallies) == 5
    assert sum(t.rate_limited for t in syslog.tallies) == 3
    assert sorted(syslog.stored()) == [f"datagram {i}" for i in range(5)]


def test_a_tcp_sender_over_the_rate_is_not_read_until_it_may_go_on(listening) -> None:
    syslog = listening(syslog_rate_limit="5")
    with socket.create_connection(("127.0.0.1", syslog.port)) as sock:
        sock.sendall(b"".join(b"<14>1 - h a - - - first %d\n" % i for i in range(10)))
        syslog.wait_for_tallies(lambda t: sum(x.accepted for x in t) == 10)  # one read: all of it parsed
        sock.sendall(b"<14>1 - h a - - - later\n")
        time.sleep(0.5)  # the clock is frozen in debt: this line is not read (a wait for nothing to happen)
        assert "later" not in syslog.stored()
    assert sum(t.rejected for t in syslog.tallies) == 0  # nothing dropped over TCP


def test_each_listener_has_its_own_rate(listening) -> None:
    """The rate is per listener, as its setting says: one allowance for all of them let a TCP sender's backlog
    (read a chunk at a time, each putting it in debt) drop every UDP datagram while it lasted."""
    syslog = listening(syslog_rate_limit="5")
    with socket.create_connection(("127.0.0.1", syslog.port)) as sock:
        sock.sendall(b"".join(b"<14>1 - h a - - - tcp %d\n" % i for i in range(10)))
        syslog.wait_for_tallies(lambda t: sum(x.accepted for x in t) == 10)  # the TCP listener is in debt
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        for i in range(8):
            udp.sendto(b"<14>1 - h a - - - datagram %d" % i, ("127.0.0.1", syslog.port))
    syslog.wait_for_tallies(lambda t: sum(x.accepted + x.rejected for x in t) == 18)
    assert sum(t.rate_limited for t in syslog.tallies) == 3
    assert sorted(m for m in syslog.stored() if m.startswith("datagram")) == [f"datagram {i}" for i in range(5)]


def test_stopping_commits_what_was_read(listening, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(syslog_commits, "BATCH_SECONDS", 3600.0)  # nothing is committed until the stop
    syslog = listening()
    with socket.create_connection(("127.0.0.1", syslog.port)) as sock:
        sock.sendall(b"<14>1 - h a - - - read before the stop\n")
    time.sleep(1)  # the listeners' thread reads it meanwhile
    assert syslog.stored() == []
    syslog.listeners.stop()
    assert syslog.stored() == ["read before the stop"]


def test_a_counted_message_cut_short_by_its_sender_closing_is_stored_with_a_parse_error(listening) -> None:
    """It was dropped without a trace at the connection's close (trial s14 T1)."""
    syslog = listening()
    with socket.create_connection(("127.0.0.1", syslog.port)) as sock:
        sock.sendall(b"<14>1 - h a - - - whole\n" + b"99 <14>1 - h a - - - half of it")
    syslog.wait_for_tallies(lambda t: sum(x.accepted for x in t) == 2)
    [cut] = [r for r in syslog.runtime.store.recent(RecentQuery(since_ms=0, limit=10)) if r.message != "whole"]
    assert cut.message == "half of it"  # (its header parsed: the message is what came of it)
    closed = "the sender closed the connection before the end of this message"
    assert json.loads(cut.attributes)["parse_error"] == closed


def test_refused_connections_are_each_counted_and_said_at_most_once_a_minute(
    listening, caplog: pytest.LogCaptureFixture
) -> None:
    """A scanner outside syslog_allow connecting again and again must not flood the log."""
    now = [1000.0]
    syslog = listening(syslog_allow="192.0.2.0/24", monotonic=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="loglake.syslog"):
        for attempt in range(1, 5):
            if attempt == 4:
                now[0] += WARNING_SECONDS
            with socket.create_connection(("127.0.0.1", syslog.port)) as sock:
                sock.settimeout(10)
                with contextlib.suppress(ConnectionResetError):
                    sock.sendall(b"<14>1 - h a - - - from outside\n")
                    assert sock.recv(100) == b""  # closed by the listener
            syslog.wait_for_tallies(lambda t, attempt=attempt: sum(x.connections_refused for x in t) == attempt)
    said = said_of(caplog)
    refused = "syslog: refused a connection from 127.0.0.1, which syslog_allow does not list"
    assert said == [refused, f"{refused}; 2 more refused since the last said"]
    assert [t.connections_refused for t in syslog.tallies] == [1, 1, 1, 1]
    assert sum(t.rejected for t in syslog.tallies) == 0  # no message was read
    assert syslog.stored() == []


def test_a_sender_holds_at_most_its_number_of_connections_and_one_past_it_is_refused_and_said(
    listening, caplog: pytest.LogCaptureFixture
) -> None:
    """No bound there was: a sender could open connection after connection, each holding up to ~512 KiB of a message
    it did not finish, until the server's memory ran out."""
    syslog = listening(syslog_max_connections_per_sender="2")
    with caplog.at_level(logging.WARNING, logger="loglake.syslog"), contextlib.ExitStack() as held:
        first, second = (held.enter_context(socket.create_connection(("127.0.0.1", syslog.port))) for _ in range(2))
        first.sendall(b"<14>1 - h a - - - one\n<14>1 - h a - - - unfinished")
        second.sendall(b"<14>1 - h a - - - two\n")
        syslog.wait_for_tallies(lambda t: sum(x.accepted for x in t) == 2)
        with socket.create_connection(("127.0.0.1", syslog.port)) as third:
            third.settimeout(10)
            with contextlib.suppress(ConnectionResetError):
                third.sendall(b"<14>1 - h a - - - three\n")
                assert third.recv(100) == b""  # closed by the listener
        syslog.wait_for_tallies(lambda t: any(x.connections_over_limit for x in t))
        second.close()  # one fewer held: another is taken
        deadline = time.monotonic() + 20
        while syslog.listeners.connections.get("127.0.0.1") != 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        with socket.create_connection(("127.0.0.1", syslog.port)) as fourth:
            fourth.sendall(b"<14>1 - h a - - - four\n")
            syslog.wait_for_tallies(lambda t: sum(x.accepted for x in t) == 3)
    syslog.wait_for_tallies(lambda t: sum(x.accepted for x in t) == 4)  # (the first's last message, at its close)
    assert sorted(syslog.stored()) == ["four", "one", "two", "unfinished"]
    assert [t.connections_over_limit for t in syslog.tallies if t.connections_over_limit] == [1]
    assert said_of(caplog) == [
        # (the setting named as it was given: here in the environment)
        "syslog: refused a connection from 127.0.0.1, which holds 2 open already"
        " (LOGLAKE_SYSLOG_MAX_CONNECTIONS_PER_SENDER): does it open a connection per message without closing them?"
    ]


def test_messages_the_store_cannot_take_are_counted_not_lost_silently(listening) -> None:
    syslog = listening()
    syslog.runtime.store.close()  # every write now fails: StoreUnavailable
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.sendto(b"<14>1 - h a - - - nowhere to go", ("127.0.0.1", syslog.port))
    syslog.wait_for_tallies(lambda t: any(x.unstored for x in t))
    assert [(t.accepted, t.unstored, t.rejected) for t in syslog.tallies] == [(0, 1, 1)]


TRACE_ID, SPAN_ID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"


@pytest.mark.parametrize("plain", [0, 1000], ids=["records", "a bulk table joined with a batch without ids"])
def test_trace_context_in_structured_data_is_stored_as_the_records_ids(
    listening, monkeypatch: pytest.MonkeyPatch, plain: int
) -> None:
    monkeypatch.setattr(syslog_commits, "BATCH_SECONDS", 3600.0)  # one commit at the stop: every read's batch
    syslog = listening()
    with socket.create_connection(("127.0.0.1", syslog.port)) as sock:
        if plain:
            sock.sendall(b"".join(b"<14>1 - h a - - - plain %d\n" % i for i in range(plain)))
            time.sleep(0.5)  # read apart from the next lines: a batch of its own (Arrow kernels', no ids)
        sock.sendall(
            b'<14>1 - h a - - [otel trace_id="%s" span_id="%s"] by name\n'
            % (TRACE_ID.upper().encode(), SPAN_ID.encode())
            + b'<14>1 - h a - - [tc traceparent="00-%s-%s-01"] by traceparent\n' % (TRACE_ID.encode(), SPAN_ID.encode())
            + b'<14>1 - h a - - [otel trace_id="nope"] no id\n'
        )
    time.sleep(1)  # the listeners' thread reads it meanwhile
    syslog.listeners.stop()
    engine = syslog.runtime.lake.engine  # hot and lake records: a bulk table goes to the lake
    rows = engine.query("SELECT message, trace_id, span_id FROM logs WHERE message NOT LIKE 'plain %'").rows
    assert sorted(rows) == [
        ("by name", TRACE_ID, SPAN_ID),
        ("by traceparent", TRACE_ID, SPAN_ID),
        ("no id", None, None),
    ]
    plain_ids = engine.query("SELECT count(*), count(trace_id) FROM logs WHERE message LIKE 'plain %'").rows
    assert plain_ids == [(plain, 0)]


def test_failed_tls_handshakes_are_each_counted_and_said_at_most_once_a_minute(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    runtime = Runtime(load_settings({"data_dir": tmp_path, "access_log": "off"}, environ={}))
    now = [1000.0]
    tallies: list[SyslogTally] = []
    listeners = SyslogListeners(runtime.settings, runtime.service, tallies.append, monotonic=lambda: now[0])
    try:
        with caplog.at_level(logging.WARNING, logger="loglake.syslog"):
            for _ in range(3):
                listeners.handshake_failed("192.0.2.7", ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version"))
            now[0] += WARNING_SECONDS
            listeners.handshake_failed("192.0.2.8", TimeoutError("no TLS handshake within 60 s"))
        said = said_of(caplog)
        assert len(said) == 2, said
        assert "TLS handshake from 192.0.2.7 failed" in said[0] and "WRONG_VERSION_NUMBER" in said[0]
        assert "from 192.0.2.8" in said[1] and said[1].endswith("; 2 more failed since the last said"), said[1]
        assert [t.tls_handshakes_failed for t in tallies] == [1, 1, 1, 1]
        assert sum(t.rejected for t in tallies) == 0  # no records: a handshake is not a message
    finally:
        runtime.close()


def test_a_tls_connection_waits_for_its_handshake_from_its_first_byte_not_from_its_start(
    listening, monkeypatch: pytest.MonkeyPatch, certificates: Certificates
) -> None:
    """syslog-ng connects at once and begins its handshake with its first message: closed after a quiet
    HANDSHAKE_SECONDS, it met a broken pipe at the next message and waited a minute to connect again (the shipper
    trial). A connection that began a handshake and did not end it is still closed and counted."""
    monkeypatch.setattr(syslog_streams, "HANDSHAKE_SECONDS", 0.5)
    tls_port = free_udp_port()
    syslog = listening(
        syslog_tls=f"127.0.0.1:{tls_port}", syslog_tls_cert=str(certificates.cert), syslog_tls_key=str(certificates.key)
    )
    context = ssl.create_default_context(cafile=str(certificates.ca))
    with socket.create_connection(("127.0.0.1", tls_port)) as raw:
        time.sleep(1.5)  # quiet, as syslog-ng between its start and its first message
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(b"<14>1 - h app - - - after a quiet while\n")
    with socket.create_connection(("127.0.0.1", tls_port)) as stalled:
        stalled.settimeout(10)
        stalled.sendall(b"\x16\x03\x01")  # a handshake's first bytes, and no more
        assert stalled.recv(100) == b""  # closed once HANDSHAKE_SECONDS passed
    syslog.wait_for_tallies(lambda t: sum(x.accepted for x in t) == 1 and sum(x.tls_handshakes_failed for x in t))
    assert syslog.stored() == ["after a quiet while"]
    assert sum(t.tls_handshakes_failed for t in syslog.tallies) == 1


def test_a_tls_handshake_on_the_plain_port_is_closed_and_said_not_stored_as_junk(
    listening, caplog: pytest.LogCaptureFixture
) -> None:
    """`openssl s_client` at the plain TCP port left four records of binary junk (the shipper trial)."""
    syslog = listening()
    context = ssl.create_default_context()
    with caplog.at_level(logging.WARNING, logger="loglake.syslog"):
        with socket.create_connection(("127.0.0.1", syslog.port), timeout=5) as raw, contextlib.suppress(OSError):
            context.wrap_socket(raw, server_hostname="localhost")  # (refused: the connection is closed)
        with socket.create_connection(("127.0.0.1", syslog.port)) as plain:
            plain.sendall(b"<14>1 - h app - - - plain\n")
        syslog.wait_for_tallies(lambda t: sum(x.accepted for x in t) == 1)
    assert syslog.stored() == ["plain"]
    said = said_of(caplog)
    assert len(said) == 1 and "began a TLS handshake on the plain TCP listener" in said[0], said


def test_an_http_request_on_the_tcp_port_is_closed_and_said_not_stored(
    listening, caplog: pytest.LogCaptureFixture
) -> None:
    """A web page can make the machine's browser post to any port: the request's body lines were stored as syslog
    messages, so any page could write records (a security review)."""
    syslog = listening()
    forged = b"<14>1 2026-12-06T10:00:00Z h app - - - forged by a page\n"
    request = b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n\r\n" + forged
    with caplog.at_level(logging.WARNING, logger="loglake.syslog"):
        with socket.create_connection(("127.0.0.1", syslog.port), timeout=5) as page:
            page.sendall(request)
            assert page.recv(100) == b""  # closed
        with socket.create_connection(("127.0.0.1", syslog.port)) as plain:
            plain.sendall(b"<14>1 - h app - - - plain\n")
        syslog.wait_for_tallies(lambda t: sum(x.accepted for x in t) == 1)
    assert syslog.stored() == ["plain"]
    said = said_of(caplog)
    assert len(said) == 1 and "sent an HTTP request" in said[0] and "closed it" in said[0], said


def test_rfc3164_times_are_read_in_the_zone_the_settings_name(listening) -> None:
    """A UTC+9 sender's "now" was stored 9 h in the future, on top of /logs/recent (trial s14 T4)."""
    syslog = listening(syslog_timezone="Asia/Tokyo")
    sent = time.time()
    local = datetime.fromtimestamp(sent, ZoneInfo("Asia/Tokyo")).strftime("%b %e %H:%M:%S").encode()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.sendto(b"<13>" + local + b" tokyo-host app: local time", ("127.0.0.1", syslog.port))
    syslog.wait_for_tallies(lambda t: sum(x.accepted for x in t) == 1)
    (record,) = syslog.runtime.store.recent(RecentQuery(since_ms=0, limit=10))
    assert abs(record.timestamp - sent * 1000) < 2_000, (record.timestamp, sent)


def test_connections_reset_before_they_are_served_are_let_go_quietly(
    listening, caplog: pytest.LogCaptureFixture
) -> None:
    """A health check that closes with a reset (HAProxy's tcp-check) is gone before the listener asks its address:
    each logged an error with a traceback (trial S)."""
    syslog = listening()
    with caplog.at_level(logging.WARNING):
        for _ in range(300):
            with socket.create_connection(("127.0.0.1", syslog.port)) as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close with RST
        with socket.create_connection(("127.0.0.1", syslog.port)) as sock:
            sock.sendall(b"<14>1 - h a - - - after the resets\n")
        syslog.wait_for_tallies(lambda t: sum(x.accepted for x in t) == 1)
    assert syslog.stored() == ["after the resets"]
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


def test_an_ipv4_sender_to_a_listener_on_every_ipv6_address_is_its_ipv4_address(listening) -> None:
    """A listener on [::] takes IPv4 too, whose addresses the socket gives as IPv6 (::ffff:127.0.0.1): the records'
    peer said so, and a search for the sender's address missed them (trial S)."""
    port = free_udp_port()
    syslog = listening(syslog_tcp=f"[::]:{port}", syslog_udp=f"[::]:{port}", syslog_allow="127.0.0.1")
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"<14>1 - h a - - - over tcp\n")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.sendto(b"<14>1 - h a - - - over udp", ("127.0.0.1", port))
    syslog.wait_for_tallies(lambda t: sum(x.accepted for x in t) == 2)
    records = syslog.runtime.store.recent(RecentQuery(since_ms=0, limit=10))
    assert sorted((r.message, json.loads(r.attributes)["peer"]) for r in records) == [
        ("over tcp", "127.0.0.1"),
        ("over udp", "127.0.0.1"),
    ]


def test_a_rate_under_one_a_second_still_lets_datagrams_through() -> None:
    """The burst was the rate itself: under one message a second, no datagram ever fitted (trial S)."""
    allowance = Allowance(0.5, 0.0)
    assert [allowance.take_one(now) for now in (0.0, 0.5, 2.0, 2.5, 4.0)] == [True, False, True, False, True]


def test_a_connection_whose_sender_vanished_is_closed_and_its_place_taken(
    listening, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sender that vanished without closing its connection (powered off, rebooted, or behind a NAT or firewall that
    dropped the connection's state after a quiet while) left it held for ever: its file, and a place among its
    address's syslog_max_connections_per_sender, until a sender behind a NAT's address was refused for good."""
    monkeypatch.setattr("loglake.protocols.syslog.KEEPALIVE_SECONDS", 1)
    syslog = listening(syslog_max_connections_per_sender="1")
    port = syslog.port
    with socket.create_connection(("127.0.0.1", port)) as gone:
        gone.sendall(b"<14>1 - h a - - - before\n")
        syslog.wait_for_tallies(lambda t: sum(x.accepted for x in t) == 1)
        try:  # closed without a word to the listener (no FIN, no RST): the socket under repair (CAP_NET_ADMIN)
            gone.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR, 1)
        except PermissionError:
            pytest.skip("needs CAP_NET_ADMIN (TCP_REPAIR) to make a connection vanish")
    deadline = time.monotonic() + 20
    while syslog.listeners.connections and time.monotonic() < deadline:
        time.sleep(0.05)
    assert syslog.listeners.connections == {}  # (its keep-alive probe was answered with a reset)
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"<14>1 - h a - - - after\n")
    syslog.wait_for_tallies(lambda t: sum(x.accepted for x in t) == 2)
    assert sorted(syslog.stored()) == ["after", "before"]
    assert not any(t.connections_over_limit for t in syslog.tallies)


TCP_REPAIR = 19  # (linux/tcp.h; Python does not name it)


@pytest.mark.skipif(shutil.which("ss") is None, reason="needs ss (iproute2)")
def test_the_tcp_listener_queues_its_backlog_of_connections_not_asyncio_s_default(listening) -> None:
    """The socket listened with LISTEN_BACKLOG, then the event loop's create_server listened anew with its default,
    100: senders reconnecting at once past that were refused by the kernel."""
    syslog = listening()
    shown = subprocess.run(
        ["ss", "-ltnH", f"sport = :{syslog.port}"], capture_output=True, text=True, check=True
    ).stdout.split()
    assert shown[0] == "LISTEN" and int(shown[2]) == LISTEN_BACKLOG, shown  # (Send-Q: a listener's backlog)
