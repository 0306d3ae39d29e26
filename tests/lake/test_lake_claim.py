"""An S3 lake is catalogued by one data dir: a second data dir given the same bucket and prefix is refused, saying
which data dir has it (a new-user trial: a second data dir's `loglake flush` rewrote the lake's manifest to list
its own 2,002 records, and readers through it lost the first one's 70,528)."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlsplit

import pytest

from loglake.config import ConfigError, Settings
from loglake.lake import objectstore
from loglake.lake.claim import CATALOG_ID_FILE, CLAIM_KEY, catalog_id
from loglake.lake.lake import object_store
from loglake.lake.location import LOCATION_FILE
from loglake.lake.objectstore import ObjectStoreError
from loglake.store.sqlite import SQLiteHotStore
from tests.s3_server import ACCESS_KEY, SECRET_KEY, S3Server
from tests.store.contract import record

AWS = {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in AWS.items():
        monkeypatch.setenv(name, value)


def _settings(data_dir: Path, s3_server: S3Server, bucket: str, prefix: str) -> Settings:
    data_dir.mkdir(exist_ok=True)
    return Settings(data_dir=data_dir, lake_bucket=bucket, lake_prefix=prefix, lake_endpoint=s3_server.endpoint)


def test_a_second_data_dir_on_a_claimed_lake_is_refused_naming_the_first(
    s3_server: S3Server, s3_bucket: tuple, tmp_path: Path, aws: None
) -> None:
    client, bucket, prefix = s3_bucket
    first = _settings(tmp_path / "a", s3_server, bucket, prefix)
    object_store(first)
    claim = json.loads(client.get_object(Bucket=bucket, Key=f"{prefix}/{CLAIM_KEY}")["Body"].read())
    assert claim["catalog"] == (tmp_path / "a" / CATALOG_ID_FILE).read_text().strip()
    assert claim["data_dir"] == str((tmp_path / "a").resolve())

    with pytest.raises(ConfigError) as refused:
        object_store(_settings(tmp_path / "b", s3_server, bucket, prefix))
    said = str(refused.value)
    assert f"is catalogued by another loglake data dir ({(tmp_path / 'a').resolve()} on " in said
    assert "--lake-prefix" in said

    object_store(first)  # (its own lake, opened again)
    object_store(_settings(tmp_path / "b", s3_server, bucket, f"{prefix}/b"))  # (a lake of its own)


def test_a_lake_whose_bucket_its_first_write_makes_is_claimed_by_the_first_data_dir(
    s3_server: S3Server, tmp_path: Path, aws: None
) -> None:
    """An S3 server that makes a bucket at its first write (SeaweedFS): the claim was skipped while the bucket did
    not exist, so both data dirs opened the lake, and the second one's manifest left out the first one's parts (an
    operator's trial of the Amplify collector)."""
    bucket = f"made-at-first-write-{time.monotonic_ns()}"
    object_store(_settings(tmp_path / "a", s3_server, bucket, "lake"))
    with pytest.raises(ConfigError, match="is catalogued by another loglake data dir"):
        object_store(_settings(tmp_path / "b", s3_server, bucket, "lake"))


def test_a_data_dir_keeps_its_lake_when_moved(s3_server: S3Server, s3_bucket: tuple, tmp_path: Path, aws: None) -> None:
    """The claim names the data dir's id, which moves with it (a restore on a new machine opens its lake)."""
    _, bucket, prefix = s3_bucket
    object_store(_settings(tmp_path / "old", s3_server, bucket, prefix))
    (tmp_path / "old").rename(tmp_path / "new")
    object_store(_settings(tmp_path / "new", s3_server, bucket, prefix))


def test_flush_from_a_second_data_dir_is_refused_and_leaves_the_lake_as_it_was(
    s3_server: S3Server, s3_bucket: tuple, tmp_path: Path
) -> None:
    client, bucket, prefix = s3_bucket
    lake = {"LOGLAKE_LAKE_BUCKET": bucket, "LOGLAKE_LAKE_PREFIX": prefix, "LOGLAKE_LAKE_ENDPOINT": s3_server.endpoint}
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("LOGLAKE_", "AWS_"))} | lake | AWS
    hour_ago = int(time.time() * 1000) - 3_600_000
    for name, records in (("a", 30), ("b", 7)):
        store = SQLiteHotStore(tmp_path / name / "hot.db")
        store.put([record(hour_ago + i, f"{name} {i}") for i in range(records)])
        store.close()
    flush = [sys.executable, "-m", "loglake", "flush", "--all", "--data-dir"]
    first = subprocess.run([*flush, str(tmp_path / "a")], capture_output=True, text=True, env=clean, timeout=120)
    assert first.returncode == 0, first.stderr
    manifest_key = next(
        item["Key"]
        for item in client.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]
        if item["Key"].endswith("_manifest.json")
    )
    manifest = client.get_object(Bucket=bucket, Key=manifest_key)["Body"].read()
    assert sum(entry["records"] for entry in json.loads(manifest)) == 30

    second = subprocess.run([*flush, str(tmp_path / "b")], capture_output=True, text=True, env=clean, timeout=120)
    assert second.returncode == 1 and "Traceback" not in second.stderr, second.stderr
    assert "is catalogued by another loglake data dir" in second.stderr
    assert client.get_object(Bucket=bucket, Key=manifest_key)["Body"].read() == manifest


@contextlib.contextmanager
def unreachable_until_opened(endpoint: str) -> Iterator[tuple[str, Callable[[], None]]]:
    """An endpoint that refuses connections until `open_it()`, then forwards them to `endpoint` (a store back up)."""
    target = urlsplit(endpoint)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    listeners: list[socket.socket] = []
    connections: list[socket.socket] = []

    def forward(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def serve(listener: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while True:
                client, _ = listener.accept()
                upstream = socket.create_connection((target.hostname, target.port))
                connections.extend((client, upstream))
                for a, b in ((client, upstream), (upstream, client)):
                    threading.Thread(target=forward, args=(a, b), daemon=True).start()

    def open_it() -> None:
        listeners.append(socket.create_server(("127.0.0.1", port)))
        threading.Thread(target=serve, args=(listeners[0],), daemon=True).start()

    yield f"http://127.0.0.1:{port}", open_it
    for opened in listeners + connections:
        opened.close()


def test_a_lake_unreachable_when_opened_is_claimed_before_its_first_write(
    s3_server: S3Server, s3_bucket: tuple, tmp_path: Path, aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server started while its lake could not be reached (a warning) never claimed it: once the store was back,
    its flushes wrote their parts, and the manifest, into a lake another data dir had claimed meanwhile (a trial)."""
    monkeypatch.setattr(objectstore, "S3_ATTEMPTS", 1)
    client, bucket, prefix = s3_bucket
    with unreachable_until_opened(s3_server.endpoint) as (endpoint, open_it):
        late = object_store(replace(_settings(tmp_path / "late", s3_server, bucket, prefix), lake_endpoint=endpoint))
        own = replace(_settings(tmp_path / "own", s3_server, bucket, f"{prefix}/own"), lake_endpoint=endpoint)
        unclaimed = object_store(own)
        object_store(_settings(tmp_path / "first", s3_server, bucket, prefix))  # (claims the lake)
        open_it()
        with pytest.raises(ObjectStoreError, match="is catalogued by another loglake data dir"):
            late.put("type=app_logs/_manifest.json", b"[]")
        assert "Contents" not in client.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/type=")
        assert not (tmp_path / "late" / LOCATION_FILE).exists()

        unclaimed.put("type=app_logs/_manifest.json", b"[]")  # (a lake no one claimed meanwhile: now its)
    claim = json.loads(client.get_object(Bucket=bucket, Key=f"{prefix}/own/{CLAIM_KEY}")["Body"].read())
    assert claim["catalog"] == catalog_id(tmp_path / "own")
    assert json.loads((tmp_path / "own" / LOCATION_FILE).read_text())["prefix"] == f"{prefix}/own"


def test_a_data_dir_has_one_id_however_many_processes_make_it_at_once(tmp_path: Path) -> None:
    made: list[str | None] = []
    threads = [threading.Thread(target=lambda: made.append(catalog_id(tmp_path))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(made)) == 1 and made[0] == (tmp_path / CATALOG_ID_FILE).read_text().strip()
    assert sorted(path.name for path in tmp_path.iterdir()) == [CATALOG_ID_FILE]  # (no temporary file left)
    assert catalog_id(tmp_path / "none") is None and not (tmp_path / "none").exists()


def test_a_local_lake_is_not_claimed(tmp_path: Path) -> None:
    """The data dir's own folder: no other data dir can name it."""
    object_store(Settings(data_dir=tmp_path))
    assert not (tmp_path / CATALOG_ID_FILE).exists() and not (tmp_path / "lake" / CLAIM_KEY).exists()


def test_writes_beside_the_first_wait_for_its_claim() -> None:
    """The claim made before the first write: another thread's write meanwhile (a bulk batch's part and manifest
    beside a maintenance turn's) went ahead while the claim was under way, into a lake the claim then found to be
    another data dir's."""
    written: list[str] = []
    client = SimpleNamespace(put_object=lambda **kwargs: written.append(kwargs["Key"]))
    objects = objectstore.S3ObjectStore(client, "bucket")
    claiming, refuse = threading.Event(), threading.Event()

    def claim() -> bool:
        objects.put(CLAIM_KEY, b"{}")  # (the claim's own write passes)
        claiming.set()
        refuse.wait(5)
        raise ObjectStoreError("the lake is catalogued by another loglake data dir", "LakeClaimed")

    objects.claim_before_writing(claim)
    failed: list[str] = []

    def write(key: str) -> None:
        try:
            objects.put(key, b"[]")
        except ObjectStoreError as e:
            failed.append(f"{key}: {e.code}")

    first = threading.Thread(target=write, args=("type=app_logs/part-1.parquet",))
    first.start()
    assert claiming.wait(5)
    beside = threading.Thread(target=write, args=("type=app_logs/_manifest.json",))
    beside.start()
    time.sleep(0.1)
    refuse.set()
    first.join(5)
    beside.join(5)
    assert set(written) == {CLAIM_KEY}  # (the claim's own writes, the second's once the first's was refused)
    assert sorted(failed) == ["type=app_logs/_manifest.json: LakeClaimed", "type=app_logs/part-1.parquet: LakeClaimed"]
