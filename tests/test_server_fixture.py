"""The `loglake serve` fixture cleans up after a server that does not come up: a child still running and
its open log would outlive the test (and fail a later one with ResourceWarnings)."""

from __future__ import annotations

import pytest

from tests.conftest import ServerProcess, free_port


def test_a_server_that_does_not_answer_in_time_is_stopped(tmp_path) -> None:
    server = ServerProcess(tmp_path / "data", free_port(), tmp_path / "server.log")
    with pytest.raises(RuntimeError, match="did not answer in 0s"):
        server.start(timeout=0)
    assert server.process.poll() is not None
    assert server.log.closed
