"""A real `loglake serve` whose stderr, where the access log goes by default, is a pipe nobody reads for
a while (a stuck log shipper): requests are answered meanwhile, and once the pipe is read again and
the server stops, every request's line is there, in order."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port

pytestmark = pytest.mark.e2e

REQUESTS = 2000  # ~500 KB of access log: several times what a pipe holds


def test_a_stderr_pipe_nobody_reads_blocks_no_request_and_loses_no_line(tmp_path: Path) -> None:
    read_fd, write_fd = os.pipe()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGLAKE_")}
    with (tmp_path / "stdout.log").open("wb") as stdout:
        server = subprocess.Popen(
            [sys.executable, "-m", "loglake", "serve", "--data-dir", str(tmp_path / "data"), "--port", str(port)],
            stdout=stdout,
            stderr=write_fd,
            env=env,
        )
    os.close(write_fd)
    received = bytearray()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            for _ in range(200):
                try:
                    client.get("/healthz")
                    break
                except httpx.TransportError:
                    time.sleep(0.05)
            # A server that wrote its log on the event loop would stop answering once the pipe is
            # full, and these requests would time out.
            statuses = [client.get("/healthz", headers={"x-request-id": f"r-{i}"}).status_code for i in range(REQUESTS)]
        assert statuses == [200] * REQUESTS

        def read() -> None:
            while chunk := os.read(read_fd, 65536):
                received.extend(chunk)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        server.send_signal(signal.SIGTERM)
        server.wait(60)  # uvicorn stops gracefully, then ends by the signal it caught
        reader.join(60)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(10)
        os.close(read_fd)
    lines = [json.loads(line) for line in received.splitlines() if line.startswith(b"{")]
    ids = [line["request_id"] for line in lines if line.get("request_id", "").startswith("r-")]
    assert ids == [f"r-{i}" for i in range(REQUESTS)]
    assert not [line for line in lines if line["event"] == "access_log_dropped"]
