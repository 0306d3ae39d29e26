"""Syslog into a real `loglake serve` from real senders: util-linux `logger` and `rsyslogd` over UDP and TCP
(newline framing and octet counting, RFC 3164 and RFC 5424), TLS with test certificates (from Python, and
from rsyslogd's own GnuTLS driver), lines that do not parse, the allow-list, and what /metrics counted as
stored surviving kill -9."""

from __future__ import annotations

import contextlib
import shutil
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.certificates import Certificates
from tests.conftest import ServerProcess, free_port
from tests.e2e.test_process_lifecycle import cpu_seconds

pytestmark = pytest.mark.skipif(shutil.which("logger") is None, reason="needs util-linux logger (Debian bsdutils)")


def recent(server: ServerProcess, **params: str) -> list[dict]:
    answer = httpx.get(server.url + "/logs/recent", params={"limit": "1000", **params}, timeout=10)
    answer.raise_for_status()
    return answer.json()["logs"]


def wait_for(server: ServerProcess, count: int, **params: str) -> list[dict]:
    deadline = time.monotonic() + 20
    while True:
        logs = recent(server, **params)
        if len(logs) >= count or time.monotonic() > deadline:
            return logs
        time.sleep(0.05)


def settled_metric(server: ServerProcess, line_start: str, expected: float) -> float:
    """The metric once it reaches `expected` (or after 10 s): a batch is counted just after its commit,
    so a record can be read back a moment before it is counted."""
    deadline = time.monotonic() + 10
    while (value := metric(server, line_start)) < expected and time.monotonic() < deadline:
        time.sleep(0.05)
    return value


def metric(server: ServerProcess, line_start: str) -> float:
    for line in httpx.get(server.url + "/metrics", timeout=10).text.splitlines():
        if line.startswith(line_start + " "):
            return float(line.split()[-1])
    return 0.0


ACCEPTED = 'loglake_protocol_records_total{protocol="syslog",outcome="accepted"}'
REJECTED = 'loglake_protocol_records_total{protocol="syslog",outcome="rejected"}'


@pytest.fixture
def syslog_server(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """`loglake serve --no-auth ARGS`, given a minute to start (the machine may be busy)."""
    started: list[ServerProcess] = []

    def start(*args: str) -> ServerProcess:
        server = ServerProcess(tmp_path / "server-data", free_port(), tmp_path / "server.log", ("--no-auth", *args))
        started.append(server)
        return server.start(timeout=60)

    yield start
    for server in started:
        server.stop()


def listening(port: int) -> tuple[str, ...]:
    return ("--syslog-udp", f"127.0.0.1:{port}", "--syslog-tcp", f"127.0.0.1:{port}")


def logger(port: int, *args: str) -> None:
    subprocess.run(["logger", "-n", "127.0.0.1", "-P", str(port), *args], check=True, timeout=10)


def rsyslogd(config: Path, folder: Path) -> subprocess.Popen:
    return subprocess.Popen(
        ["rsyslogd", "-n", "-f", str(config), "-i", str(folder / "rsyslogd.pid")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_logger_over_udp_and_tcp_in_both_formats(syslog_server: Callable[..., ServerProcess]) -> None:
    port = free_port()
    server = syslog_server(*listening(port))
    logger(port, "--udp", "--rfc3164", "-t", "udp3164", "-p", "auth.err", "-i", "one")
    logger(port, "--udp", "--rfc5424", "-t", "udp5424", "-p", "daemon.warning", "--msgid", "M1", "two")
    logger(port, "--tcp", "--rfc3164", "-t", "tcp3164", "-p", "local0.debug", "three")
    logger(port, "--tcp", "--rfc5424", "-t", "tcp5424", "--sd-id", "order@32473", "--sd-param", 'id="42"', "four")
    logger(port, "--tcp", "--octet-count", "-t", "counted", "-p", "kern.crit", "five\nstill five")
    logs = {log["service"]: log for log in wait_for(server, 5)}
    assert set(logs) == {"udp3164", "udp5424", "tcp3164", "tcp5424", "counted"}
    assert (logs["udp3164"]["severity"], logs["udp3164"]["message"]) == ("error", "one")
    assert logs["udp3164"]["attributes"]["facility"] == "auth"
    assert logs["udp3164"]["attributes"]["procid"].isdigit()  # logger -i: its pid in the tag
    assert (logs["udp5424"]["severity"], logs["udp5424"]["attributes"]["msgid"]) == ("warning", "M1")
    assert (logs["tcp3164"]["severity"], logs["tcp3164"]["attributes"]["facility"]) == ("debug", "local0")
    assert logs["tcp5424"]["attributes"]["structured_data"]["order@32473"] == {"id": "42"}
    assert (logs["counted"]["severity"], logs["counted"]["message"]) == ("critical", "five\nstill five")
    hostname = socket.gethostname()
    for log in logs.values():
        assert log["log_type"] == "syslog"
        assert log["attributes"]["hostname"] == hostname
        assert log["attributes"]["peer"] == "127.0.0.1"
        assert abs(log["timestamp"] - time.time() * 1000) < 600_000  # the sender's time, not 1970 or a year off
    assert settled_metric(server, ACCEPTED, 5) == 5
    assert metric(server, 'loglake_records_ingested_total{service="udp3164",severity="error"}') == 1


def test_trace_context_sent_by_logger_as_structured_data_is_the_records_and_searchable(
    syslog_server: Callable[..., ServerProcess],
) -> None:
    port = free_port()
    server = syslog_server(*listening(port))
    trace_id, span_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    ids = ("--sd-param", f'trace_id="{trace_id}"', "--sd-param", f'span_id="{span_id}"')
    logger(port, "--tcp", "--rfc5424", "-t", "traced", "--sd-id", "otel@32473", *ids, "paid")
    logger(port, "--tcp", "--rfc5424", "-t", "traced", "--sd-id", "otel@32473", "--sd-param", 'trace_id="x"', "odd")
    logs = {log["message"]: log for log in wait_for(server, 2, service="traced")}
    assert (logs["paid"]["trace_id"], logs["paid"]["span_id"]) == (trace_id, span_id)
    assert "otel@32473" not in logs["paid"]["attributes"]["structured_data"]
    assert "trace_id" not in logs["odd"] and logs["odd"]["attributes"]["structured_data"]["otel@32473"] == {
        "trace_id": "x"
    }
    found = httpx.get(server.url + "/logs/search", params={"q": f"trace_id:{trace_id}"}, timeout=10).json()
    assert [log["message"] for log in found["logs"]] == ["paid"]


@pytest.mark.skipif(shutil.which("rsyslogd") is None, reason="needs rsyslogd (Debian rsyslog)")
def test_rsyslog_forwards_over_tcp_and_udp(syslog_server: Callable[..., ServerProcess], tmp_path: Path) -> None:
    """rsyslogd relays what it hears on one port to loglake over TCP (RFC 5424, octet-counted), and what it
    hears on another over UDP (its default RFC 3164 format)."""
    port, to_tcp, to_udp = free_port(), free_port(), free_port()
    server = syslog_server(*listening(port))
    config = tmp_path / "rsyslog.conf"
    config.write_text(
        f'global(workDirectory="{tmp_path}")\n'
        'module(load="imudp")\n'
        f'input(type="imudp" address="127.0.0.1" port="{to_tcp}" ruleset="tcp")\n'
        f'input(type="imudp" address="127.0.0.1" port="{to_udp}" ruleset="udp")\n'
        f'ruleset(name="tcp") {{ action(type="omfwd" target="127.0.0.1" port="{port}" protocol="tcp" '
        'template="RSYSLOG_SyslogProtocol23Format" TCP_Framing="octet-counted") }\n'
        f'ruleset(name="udp") {{ action(type="omfwd" target="127.0.0.1" port="{port}" protocol="udp") }}\n'
    )
    relaying = rsyslogd(config, tmp_path)
    try:
        deadline = time.monotonic() + 20
        services: set[str] = set()
        while services != {"via-tcp", "via-udp"} and time.monotonic() < deadline:  # rsyslogd takes a moment
            for relay, tag in ((to_tcp, "via-tcp"), (to_udp, "via-udp")):
                if tag not in services:
                    logger(relay, "--udp", "--rfc3164", "-t", tag, "-p", "local3.warning", "relayed by rsyslog")
            time.sleep(0.3)
            logs = recent(server)
            services = {log["service"] for log in logs}
    finally:
        relaying.terminate()
        relaying.wait(10)
    assert services == {"via-tcp", "via-udp"}
    for log in logs:
        assert (log["severity"], log["message"]) == ("warning", "relayed by rsyslog")
        assert (log["attributes"]["facility"], log["attributes"]["hostname"]) == ("local3", socket.gethostname())
        assert "parse_error" not in log["attributes"]


def tls_listening(port: int, certificates: Certificates) -> tuple[str, ...]:
    return (
        *("--syslog-tls", f"127.0.0.1:{port}"),
        *("--syslog-tls-cert", str(certificates.cert), "--syslog-tls-key", str(certificates.key)),
    )


def test_tls_with_a_test_certificate(syslog_server: Callable[..., ServerProcess], certificates: Certificates) -> None:
    port = free_port()
    server = syslog_server(*tls_listening(port, certificates))
    with socket.create_connection(("127.0.0.1", port)) as plain:  # no TLS: nothing is taken from it
        plain.sendall(b"<14>1 - h plain - - - not over tls\n")
    context = ssl.create_default_context(cafile=str(certificates.ca))
    with (
        socket.create_connection(("127.0.0.1", port)) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        message = b"<14>1 - h secure - - - over tls\nwith a newline"
        tls.sendall(b"%d %b" % (len(message), message))
    (log,) = wait_for(server, 1)
    assert (log["service"], log["message"]) == ("secure", "over tls\nwith a newline")
    time.sleep(0.5)  # past a commit interval: the plain connection's line would have been committed by now
    assert [log["service"] for log in recent(server)] == ["secure"]


def test_a_tls_sender_that_ends_its_session_cleanly_leaves_the_listener_idle(
    syslog_server: Callable[..., ServerProcess], certificates: Certificates
) -> None:
    """After a sender's close_notify, Python's SSLObject.read answers b"" (no error) for good: the listener read it
    in a loop, spinning a core and growing a list, and the server no longer stopped (killed after 15 s)."""
    port = free_port()
    server = syslog_server(*tls_listening(port, certificates))
    context = ssl.create_default_context(cafile=str(certificates.ca))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        message = b"<14>1 - h clean - - - then close_notify"
        tls.sendall(b"%d %b" % (len(message), message))
        with contextlib.suppress(OSError):  # (a listener spinning on it never answers with its own)
            tls.unwrap()  # close_notify, as rsyslog sends it when it stops
    (log,) = wait_for(server, 1)
    assert log["message"] == "then close_notify"
    time.sleep(1)
    before = cpu_seconds(server.process.pid)
    time.sleep(1)
    assert cpu_seconds(server.process.pid) - before < 0.5  # (idle, not spinning on the ended session)
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 10


def test_plain_tcp_and_tls_listen_side_by_side(
    syslog_server: Callable[..., ServerProcess], certificates: Certificates
) -> None:
    """As rsyslog's two imtcp inputs (514 plain, 6514 with TLS): hosts that send plain TCP and hosts that send
    TLS reach one server."""
    plain_port, tls_port = free_port(), free_port()
    server = syslog_server("--syslog-tcp", f"127.0.0.1:{plain_port}", *tls_listening(tls_port, certificates))
    assert f"syslog: tcp 127.0.0.1:{plain_port}, tls 127.0.0.1:{tls_port}" in server.log_path.read_text()
    with socket.create_connection(("127.0.0.1", plain_port)) as plain:
        plain.sendall(b"<14>1 - h plain - - - over plain tcp\n")
    context = ssl.create_default_context(cafile=str(certificates.ca))
    with (
        socket.create_connection(("127.0.0.1", tls_port)) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        tls.sendall(b"<14>1 - h secure - - - over tls\n")
    logs = wait_for(server, 2)
    assert sorted((log["service"], log["message"]) for log in logs) == [
        ("plain", "over plain tcp"),
        ("secure", "over tls"),
    ]


def test_failed_tls_handshakes_are_counted_and_said_once_a_minute(
    syslog_server: Callable[..., ServerProcess], certificates: Certificates
) -> None:
    """Plain syslog sent to the TLS port (or a scanner): the event loop dropped such a connection without a word."""
    port = free_port()
    server = syslog_server(*tls_listening(port, certificates))
    for attempt in range(3):
        with socket.create_connection(("127.0.0.1", port)) as plain:
            plain.settimeout(10)
            plain.sendall(b"<14>1 - h plain - - - not over tls %d\n" % attempt)
            with contextlib.suppress(ConnectionResetError):
                assert plain.recv(100) == b""  # closed by the server once the handshake failed
    failures = "loglake_syslog_tls_handshake_failures_total"
    assert settled_metric(server, failures, 3) == 3
    said = [line for line in server.log_path.read_text().splitlines() if "TLS handshake from 127.0.0.1 failed" in line]
    assert len(said) == 1, said  # the next two within the minute are not said: a scanner cannot flood the log
    assert "WRONG_VERSION_NUMBER" in said[0] or "wrong version number" in said[0], said
    assert metric(server, REJECTED) == 0 and recent(server) == []


@pytest.mark.skipif(
    shutil.which("rsyslogd") is None or not any(Path("/usr/lib").glob("*/rsyslog/lmnsd_gtls.so")),
    reason="needs rsyslogd with its GnuTLS driver (Debian rsyslog-gnutls)",
)
def test_rsyslog_forwards_over_tls(
    syslog_server: Callable[..., ServerProcess], certificates: Certificates, tmp_path: Path
) -> None:
    """rsyslogd's own TLS (omfwd with the gtls stream driver) relays to the TLS listener, checking the
    listener's certificate against the test CA and its name (x509/name)."""
    port, relay = free_port(), free_port()
    server = syslog_server(*tls_listening(port, certificates))
    config = tmp_path / "rsyslog.conf"
    config.write_text(
        f'global(workDirectory="{tmp_path}" defaultNetstreamDriverCAFile="{certificates.ca}")\n'
        'module(load="imudp")\n'
        f'input(type="imudp" address="127.0.0.1" port="{relay}")\n'
        f'action(type="omfwd" target="127.0.0.1" port="{port}" protocol="tcp" '
        'streamDriver="gtls" streamDriverMode="1" streamDriverAuthMode="x509/name" '
        'streamDriverPermittedPeers="localhost" '
        'template="RSYSLOG_SyslogProtocol23Format" TCP_Framing="octet-counted")\n'
    )
    relaying = rsyslogd(config, tmp_path)
    try:
        deadline = time.monotonic() + 20
        logs: list[dict] = []
        while not logs and time.monotonic() < deadline:  # rsyslogd takes a moment to listen
            logger(relay, "--udp", "--rfc3164", "-t", "via-tls", "-p", "local4.err", "relayed over TLS")
            time.sleep(0.3)
            logs = recent(server)
    finally:
        relaying.terminate()
        relaying.wait(10)
    assert logs, server.log_path.read_text()
    assert {(log["service"], log["severity"], log["message"]) for log in logs} == {
        ("via-tls", "error", "relayed over TLS")
    }
    assert all(log["attributes"]["facility"] == "local4" and "parse_error" not in log["attributes"] for log in logs)


def test_lines_that_do_not_parse_are_stored_whole_and_counted(syslog_server: Callable[..., ServerProcess]) -> None:
    port = free_port()
    server = syslog_server(*listening(port))
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(
            b"garbage line\n<13>1 2026-12-04T00:00:00Z half\n<14>1 - h fine - - - good\n<13>no newline at the end"
        )
    logs = wait_for(server, 4)
    assert sorted(log["message"] for log in logs) == [
        "<13>1 2026-12-04T00:00:00Z half",
        "garbage line",
        "good",
        "no newline at the end",
    ]
    errors = {log["message"]: log["attributes"].get("parse_error") for log in logs}
    assert errors["garbage line"] == "no <PRI> at the start: not a syslog message"
    assert errors["<13>1 2026-12-04T00:00:00Z half"] == "the RFC 5424 header does not parse"
    assert errors["good"] is None and errors["no newline at the end"] is None
    assert settled_metric(server, "loglake_syslog_unparsed_records_total", 2) == 2
    assert settled_metric(server, ACCEPTED, 4) == 4


def test_senders_outside_the_allow_list_are_refused(syslog_server: Callable[..., ServerProcess]) -> None:
    port = free_port()
    server = syslog_server(*listening(port), "--syslog-allow", "192.0.2.0/24")
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.settimeout(10)
            try:
                sock.sendall(b"<14>1 - h tcp - - - refused\n")
                assert sock.recv(100) == b""  # closed by the server
            except ConnectionResetError:
                pass
    assert settled_metric(server, "loglake_syslog_refused_connections_total", 3) == 3
    said = [line for line in server.log_path.read_text().splitlines() if "refused a connection from" in line]
    assert len(said) == 1, said  # the next two within the minute are not said: a scanner cannot flood the log
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.sendto(b"<14>1 - h udp - - - refused", ("127.0.0.1", port))
    deadline = time.monotonic() + 20
    while metric(server, REJECTED) < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert metric(server, REJECTED) == 1  # the datagram; the connection was closed before it sent anything
    assert recent(server) == []


@pytest.fixture
def killed_and_restarted(tmp_path: Path) -> Iterator[list[ServerProcess]]:
    servers: list[ServerProcess] = []
    yield servers
    for server in servers:
        server.kill()


def test_what_metrics_counted_as_stored_survives_kill_9(tmp_path: Path, killed_and_restarted: list) -> None:
    port = free_port()
    args = ("--no-auth", "--syslog-tcp", f"127.0.0.1:{port}")
    server = ServerProcess(tmp_path / "data", free_port(), tmp_path / "server.log", args)
    killed_and_restarted.append(server)
    server.start(timeout=60)
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"".join(b"<14>1 - h survivor - - - message %d\n" % i for i in range(3000)))
    deadline = time.monotonic() + 20
    while metric(server, ACCEPTED) < 3000 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert metric(server, ACCEPTED) == 3000
    assert metric(server, 'loglake_records_ingested_total{service="survivor",severity="info"}') == 3000
    server.kill()
    again = ServerProcess(tmp_path / "data", free_port(), tmp_path / "server.log", args)
    killed_and_restarted.append(again)
    again.start(timeout=60)
    sql = "SELECT count(*), count(DISTINCT message) FROM logs WHERE service = 'survivor'"
    answer = httpx.post(again.url + "/query", json={"sql": sql}, timeout=30).json()
    assert answer["rows"] == [[3000, 3000]]


def test_a_syslog_port_in_use_stops_the_server_with_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = ServerProcess(
            tmp_path / "data", free_port(), tmp_path / "server.log", ("--syslog-tcp", f"127.0.0.1:{port}")
        )
        try:
            in_use = rf"--syslog-tcp: port {port} on 127.0.0.1 is already in use"
            with pytest.raises(RuntimeError, match=in_use):
                server.start()
            assert "First start" not in server.log_path.read_text()  # no admin key shown by a start that failed
        finally:
            server.log.close()


def test_a_first_start_that_fails_on_its_tls_files_shows_no_admin_key(
    certificates: Certificates, tmp_path: Path
) -> None:
    """The first-start key is shown once: a start that showed it, then failed on its settings, lost it."""
    wrong = tmp_path / "wrong.key"
    other = ec.generate_private_key(ec.SECP256R1())
    wrong.write_bytes(
        other.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    data = tmp_path / "fresh"
    listener = ("--syslog-tls", f"127.0.0.1:{free_port()}", "--syslog-tls-cert", str(certificates.cert))
    serve = [sys.executable, "-m", "loglake", "serve", "--data-dir", str(data), "--port", str(free_port())]
    failed = subprocess.run(
        [*serve, *listener, "--syslog-tls-key", str(wrong)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert failed.returncode == 1 and "KEY_VALUES_MISMATCH" in failed.stderr, failed.stderr
    assert "llk_" not in failed.stdout + failed.stderr and "First start" not in failed.stdout
    server = ServerProcess(
        data, free_port(), tmp_path / "fixed.log", (*listener, "--syslog-tls-key", str(certificates.key))
    )
    try:
        server.start(timeout=60)
        assert "First start: created the admin API key" in server.log_path.read_text()
    finally:
        server.stop()
