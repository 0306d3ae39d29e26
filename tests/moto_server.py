"""A real moto server (the AWS API emulator, `moto[server]` from PyPI) on a free loopback port, for
the DynamoDB backend; started once per session by the `moto_endpoint` fixture."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_moto(tmp_path_factory.mktemp("moto") / "moto.log") as endpoint:
        yield endpoint


@contextlib.contextmanager
def running_moto(log_path: Path, **env: str) -> Iterator[str]:
    """A moto server process on a free port (extra environment variables: `env`), until the block ends."""
    port = _free_port()
    server = Path(sys.executable).with_name("moto_server")
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [str(server), "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "MOTO_ALLOW_NONEXISTENT_REGION": "true", **env},
        )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{endpoint}/moto-api/", timeout=1)
                break
            except httpx.HTTPError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto_server did not start:\n{log_path.read_text()}") from None
                time.sleep(0.1)
        yield endpoint
    finally:
        process.terminate()
        process.wait(timeout=10)


def lambda_environment(monkeypatch: pytest.MonkeyPatch, region: str, **variables: str) -> None:
    """What a Lambda function finds in its environment, pointed at moto: a region, credentials, and
    the given variables (endpoint overrides such as AWS_ENDPOINT_URL_S3, the handler's settings)."""
    base = {"AWS_DEFAULT_REGION": region, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    for name, value in (base | variables).items():
        monkeypatch.setenv(name, value)
