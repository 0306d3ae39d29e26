"""A real `loglake serve` whose stderr, where the access log goes by default, is a pipe nobody reads for
a while (a stuck log shipper): requests are answered meanwhile, and once the pipe is read again and
the server stops, every line is there, in order."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port

pytestmark = pytest.mark.e2e

REQUESTS = 2000  # ~500 KB of access log: several times what a pipe holds
INVALID_REQUESTS = 2000  # as plain text, ~90 KB of warnings: more than a pipe holds


class ServerOnAPipe:
    """`loglake serve` whose stderr, where the access log goes by default, is a pipe this test reads
    only when it wants to."""

    def __init__(self, tmp_path: Path) -> None:
        self.read_fd, write_fd = os.pipe()
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("LOGLAKE_")}
        command = [sys.executable, "-m", "loglake", "serve", "--data-dir", str(tmp_path / "data")]
        with (tmp_path / "stdout.log").open("wb") as stdout:
            self.process = subprocess.Popen(
                [*command, "--port", str(self.port)], stdout=stdout, stderr=write_fd, env=env
            )
        os.close(write_fd)
        self.received = bytearray()
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=30)
        for _ in range(400):
            try:
                self.client.get("/healthz")
                return
            except httpx.TransportError:
                time.sleep(0.05)

    def stop_and_read(self) -> list[dict]:
        """Read the pipe again, stop the server (SIGTERM), and return the JSON lines it wrote."""

        def read() -> None:
            while chunk := os.read(self.read_fd, 65536):
                self.received.extend(chunk)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(60)  # uvicorn stops gracefully, then ends by the signal it caught
        reader.join(60)
        return [json.loads(line) for line in self.received.splitlines() if line.startswith(b"{")]

    def close(self) -> None:
        self.client.close()
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        os.close(self.read_fd)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerOnAPipe]:
    running = ServerOnAPipe(tmp_path)
    yield running
    running.close()


def test_a_stderr_pipe_nobody_reads_blocks_no_request_and_loses_no_line(server: ServerOnAPipe) -> None:
    # A server that wrote its log on the event loop would stop answering once the pipe is full, and
    # these requests would time out.
    statuses = [server.client.get("/healthz", headers={"x-request-id": f"r-{i}"}).status_code for i in range(REQUESTS)]
    assert statuses == [200] * REQUESTS
    lines = server.stop_and_read()
    ids = [line["request_id"] for line in lines if line.get("request_id", "").startswith("r-")]
    assert ids == [f"r-{i}" for i in range(REQUESTS)]
    assert not [line for line in lines if line["event"] == "access_log_dropped"]


def test_the_http_servers_own_warnings_do_not_block_it_either(server: ServerOnAPipe) -> None:
    """uvicorn logs a warning for each invalid request; written to a full stderr on the event loop,
    such warnings (from a scanner, say) would stall every client."""
    for _ in range(INVALID_REQUESTS):
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
            sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
            assert sock.recv(1024).startswith(b"HTTP/1.1 400")
    assert server.client.get("/healthz").status_code == 200
    lines = server.stop_and_read()
    warnings = [line for line in lines if line["event"] == "log" and line["logger"] == "uvicorn.error"]
    assert len(warnings) == INVALID_REQUESTS
    assert {(w["level"], w["message"]) for w in warnings} == {("warning", "Invalid HTTP request received.")}
