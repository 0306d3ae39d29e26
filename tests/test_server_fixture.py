"""The `loglake serve` fixture cleans up after a server that does not come up: a child still running and
its open log would outlive the test (and fail a later one with ResourceWarnings)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.conftest import ServerProcess, free_port


def test_a_server_that_does_not_answer_in_time_is_stopped(tmp_path) -> None:
    server = ServerProcess(tmp_path / "data", free_port(), tmp_path / "server.log")
    with pytest.raises(RuntimeError, match="did not answer in 0s"):
        server.start(timeout=0)
    assert server.process.poll() is not None
    assert server.log.closed


def test_another_server_answering_on_its_port_is_not_taken_for_it(tmp_path) -> None:
    """Two tests may be given one free port (free_port closes it before the server binds it): a 200 from /healthz
    on it is this server's only once it said that it listens (a test ran against another test's server, which
    printed no key)."""
    port = free_port()

    class Healthy(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    other = ThreadingHTTPServer(("127.0.0.1", port), Healthy)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    try:
        server = ServerProcess(tmp_path / "data", port, tmp_path / "server.log")
        with pytest.raises(RuntimeError, match="already in use"):
            server.start()
    finally:
        other.shutdown()
        other.server_close()
