"""A real server process at its open file limit: connections past its bound are closed at once, and the connections
it holds, and its own files, keep working.

The child gets a low file limit (RLIMIT_NOFILE: a soft one of 64, which the server raises to the hard one, 256):
without a bound, connections took every descriptor, and then DuckDB's queries failed (`Too many open files`, a 400),
bulk batches' parts (a 500) and the lake's flushes.
"""

from __future__ import annotations

import json
import resource
import socket
import time
from pathlib import Path

import httpx
import pytest

from loglake.connection_limit import ConnectionLimit
from tests.conftest import ServerProcess, free_port

pytestmark = pytest.mark.e2e
FILES = 256


def _limit_files() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, FILES))


def test_connections_past_the_bound_are_closed_and_the_server_keeps_working(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    server = ServerProcess(tmp_path / "data", free_port(), log, preexec_fn=_limit_files)
    server.start()
    most = ConnectionLimit(FILES).most
    flood: list[socket.socket] = []
    try:
        headers = {"authorization": f"Bearer {server.admin_key()}"}
        with httpx.Client(base_url=server.url, headers=headers, timeout=30) as client:
            assert client.get("/healthz").status_code == 200  # (its connection, kept alive, is one the server holds)
            for _ in range(FILES + 50):  # more than the process could open
                sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
                sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\n")  # a head begun: held for its time
                flood.append(sock)
            time.sleep(0.5)
            held = [sock for sock in flood if _open(sock)]
            assert most - 5 <= len(held) < most, (len(held), most)  # (the client's and the start's probes)

            # What takes the server's own files still works on the connection it holds: a bulk batch (its parts,
            # written at once), a query (DuckDB opening them), the health check.
            batch = "".join(json.dumps({"message": f"bulk {i}"}) + "\n" for i in range(1500))
            stored = client.post("/logs", content=batch, headers={"content-type": "application/x-ndjson"})
            assert stored.status_code == 201, stored.text
            counted = client.post("/query", json={"sql": "SELECT count(*) FROM logs"})
            assert counted.status_code == 200 and counted.json()["rows"] == [[1500]], counted.text
            assert client.get("/healthz").json()["status"] == "ok"
            metrics = client.get("/metrics").text
            assert f"loglake_http_connections_refused_total {len(flood) - len(held)}\n" in metrics
            assert f"process_max_fds {FILES}\n" in metrics  # (the soft limit raised to the hard one)
        for sock in flood:
            sock.close()
        time.sleep(0.3)
        assert httpx.get(server.url + "/healthz", timeout=10).status_code == 200  # (room again)
    finally:
        for sock in flood:
            sock.close()
        server.stop()
    _refusals_said_once(log, "HTTP", most)


def test_syslog_connections_past_their_share_are_closed_and_the_server_keeps_working(tmp_path: Path) -> None:
    """The syslog TCP listener's connections were bounded per sender only: senders enough (here one with many
    source addresses) took every descriptor, and then the server's own files failed as above."""
    log = tmp_path / "server.log"
    syslog_port = free_port()
    listen = ("--no-auth", "--syslog-tcp", f"127.0.0.1:{syslog_port}", "--syslog-allow", "127.0.0.0/8")
    server = ServerProcess(tmp_path / "data", free_port(), log, listen, preexec_fn=_limit_files)
    server.start()
    most = ConnectionLimit.syslog(FILES, lambda: None).most
    assert most < ConnectionLimit(FILES).most  # (HTTP's share is the rest: half)
    flood: list[socket.socket] = []
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            assert client.get("/healthz").status_code == 200
            for n in range(FILES + 50):  # more than the process could open, 20 from each address (a sender's 64)
                sock = socket.socket()
                sock.bind((f"127.0.1.{n // 20 + 1}", 0))
                sock.settimeout(5)
                sock.connect(("127.0.0.1", syslog_port))
                flood.append(sock)
            time.sleep(0.5)
            held = [sock for sock in flood if _open(sock)]
            assert len(held) == most, (len(held), most)
            held[0].sendall(b"<14>1 2026-01-01T00:00:00Z host app - - - over a held connection\n")

            batch = "".join(json.dumps({"message": f"bulk {i}"}) + "\n" for i in range(1500))
            stored = client.post("/logs", content=batch, headers={"content-type": "application/x-ndjson"})
            assert stored.status_code == 201, stored.text
            assert _counted(client, 1501) == 1501  # (a query: DuckDB opening the lake's parts)
            assert client.get("/healthz").json()["status"] == "ok"
            metrics = client.get("/metrics").text
            assert f"loglake_syslog_connections_server_full_total {len(flood) - most}\n" in metrics, metrics
            for sock in flood:
                sock.close()
            time.sleep(0.3)
            with socket.create_connection(("127.0.0.1", syslog_port), timeout=5) as sock:  # (room again)
                sock.sendall(b"<14>1 2026-01-01T00:00:01Z host app - - - after the flood\n")
            assert _counted(client, 1502) == 1502
    finally:
        for sock in flood:
            sock.close()
        server.stop()
    _refusals_said_once(log, "syslog", most)


def _refusals_said_once(log: Path, what: str, most: int) -> None:
    """The server's log said once (not at each refused connection) that it held the most `what` connections it
    may, and none of its own files failed for want of a descriptor."""
    said = [line for line in log.read_text().splitlines() if f"{what} connections, the most it may" in line]
    assert len(said) == 1 and f"holds {most} {what} connections" in said[0], said
    assert "Too many open files" not in log.read_text()


def _counted(client: httpx.Client, expected: int) -> int:
    """The records stored, once they are `expected` or after 10 s (syslog's are committed within 0.2 s)."""
    deadline = time.monotonic() + 10
    while True:
        counted = client.post("/query", json={"sql": "SELECT count(*) FROM logs"})
        assert counted.status_code == 200, counted.text
        count = counted.json()["rows"][0][0]
        if count == expected or time.monotonic() > deadline:
            return count
        time.sleep(0.1)


def _open(sock: socket.socket) -> bool:
    """Whether the server still holds the connection (it sent nothing back, nor closed it)."""
    sock.settimeout(0.01)
    try:
        return sock.recv(1) != b""
    except TimeoutError:
        return True
    except OSError:
        return False
