"""The ObjectStore contract, run against a local folder and a real S3 server (SeaweedFS)."""

from __future__ import annotations

import contextlib
import os
import socket
import stat
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from loglake.config import Settings
from loglake.lake.objectstore import (
    UNFINISHED_AFTER_SECONDS,
    LocalObjectStore,
    ObjectStore,
    ObjectStoreError,
    S3ObjectStore,
)


@pytest.fixture
def store(object_store: ObjectStore) -> ObjectStore:
    return object_store


def test_put_get_list_delete(store: ObjectStore) -> None:
    store.put("type=app_logs/date=2026-11-01/part-b.parquet", b"second")
    store.put("type=app_logs/date=2026-11-01/part-a.parquet", b"first")
    store.put("type=app_logs/date=2026-11-02/part-c.parquet", b"other day")
    assert store.get("type=app_logs/date=2026-11-01/part-a.parquet") == b"first"
    listed = list(store.list("type=app_logs/date=2026-11-01/"))
    assert [(o.key, o.size) for o in listed] == [
        ("type=app_logs/date=2026-11-01/part-a.parquet", 5),
        ("type=app_logs/date=2026-11-01/part-b.parquet", 6),
    ]
    assert len(list(store.list())) == 3
    store.delete("type=app_logs/date=2026-11-01/part-a.parquet")
    store.delete("type=app_logs/date=2026-11-01/part-a.parquet")  # deletes are idempotent
    assert not store.exists("type=app_logs/date=2026-11-01/part-a.parquet")
    assert store.exists("type=app_logs/date=2026-11-01/part-b.parquet")


def test_put_replaces_whole_objects(store: ObjectStore) -> None:
    store.put("k/obj", b"x" * 1000)
    store.put("k/obj", b"short")
    assert store.get("k/obj") == b"short"


def test_put_file_streams_large_objects(store: ObjectStore, tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    payload = os.urandom(9 * 1024 * 1024)  # over the S3 multipart threshold
    big.write_bytes(payload)
    store.put_file("big/part-1.parquet", big)
    assert store.get("big/part-1.parquet") == payload


def test_missing_objects_and_bad_keys_fail_clearly(store: ObjectStore) -> None:
    with pytest.raises(ObjectStoreError, match="nope"):
        store.get("nope")
    for bad in ("", "/abs", "a/../b", "a//b", "./a"):
        with pytest.raises(ObjectStoreError, match="invalid object key"):
            store.put(bad, b"x")


def test_s3_uri_and_prefix(s3_bucket: tuple) -> None:
    client, bucket, prefix = s3_bucket
    store = S3ObjectStore(client, bucket, prefix=f"/{prefix}/lake/")
    store.put("a/b", b"1")
    assert store.uri("a/b") == f"s3://{bucket}/{prefix}/lake/a/b"
    assert client.get_object(Bucket=bucket, Key=f"{prefix}/lake/a/b")["Body"].read() == b"1"


def test_local_writes_are_atomic_and_leftovers_are_not_objects(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "lake")
    store.put("p/obj", b"old")
    leftover = tmp_path / "lake" / "p" / ".obj.123.tmp"
    leftover.write_bytes(b"half a write")  # what a crash mid-write leaves
    under_way = tmp_path / "lake" / "p" / ".other.456.tmp"
    under_way.write_bytes(b"a write that another thread is doing now")
    os.utime(leftover, (time.time() - UNFINISHED_AFTER_SECONDS - 1,) * 2)
    assert [o.key for o in store.list()] == ["p/obj"]
    assert store.remove_unfinished() == 1
    assert not leftover.exists()
    assert under_way.exists(), "maintenance removed a write under way (bulk ingest writes while it runs)"
    assert store.uri("p/obj") == str(tmp_path / "lake" / "p" / "obj")


def test_s3_errors_name_the_object(s3_server) -> None:
    import boto3

    wrong = boto3.client(
        "s3",
        endpoint_url=s3_server.endpoint,
        aws_access_key_id="nobody",
        aws_secret_access_key="wrong",
        region_name="us-east-1",
    )
    store = S3ObjectStore(wrong, "loglake-tests", prefix="denied")
    with pytest.raises(ObjectStoreError, match=r"s3://loglake-tests/denied/k"):
        store.put("k", b"x")


def test_local_folders_go_with_their_last_object(tmp_path: Path) -> None:
    root = tmp_path / "lake"
    store = LocalObjectStore(root)
    store.put("type=t/date=2026-11-01/part-a", b"a")
    store.put("type=t/date=2026-11-02/part-b", b"b")
    store.delete("type=t/date=2026-11-01/part-a")
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*")) == [
        "type=t",
        "type=t/date=2026-11-02",
        "type=t/date=2026-11-02/part-b",
    ]
    store.delete("type=t/date=2026-11-02/part-b")
    assert root.is_dir() and list(root.iterdir()) == []
    store.put("type=t/date=2026-11-02/part-c", b"c")  # a folder removed as it emptied is made again
    assert store.get("type=t/date=2026-11-02/part-c") == b"c"
    (root / "type=t" / "date=2026-11-09").mkdir()  # left empty by an older version
    store.remove_unfinished()
    assert not (root / "type=t" / "date=2026-11-09").exists() and store.exists("type=t/date=2026-11-02/part-c")


def test_publish_file_stores_the_whole_file(store: ObjectStore, tmp_path: Path) -> None:
    part = tmp_path / "part.parquet"
    payload = os.urandom(3 * 1024 * 1024)
    part.write_bytes(payload)
    store.publish_file("day/part-2.parquet", part)
    assert store.get("day/part-2.parquet") == payload


def test_local_publish_file_moves_the_file_into_place_private(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "lake")
    part = tmp_path / "work" / "part.parquet"
    part.parent.mkdir()
    part.write_bytes(b"rows")
    part.chmod(0o644)  # as pyarrow's writer leaves it under a usual umask
    store.publish_file("date=2026-12-04/part-1.parquet", part)
    published = tmp_path / "lake" / "date=2026-12-04" / "part-1.parquet"
    assert published.read_bytes() == b"rows"
    assert published.stat().st_mode & 0o777 == 0o600
    assert not part.exists()  # moved, not copied
    assert not [p for p in published.parent.iterdir() if p.name.startswith(".")]  # no temp file left


def test_local_publish_file_returns_once_the_object_and_its_folder_are_synced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its name may show before its bytes are synced (flush.publish journals the key first), but the round's
    catalog commit follows publish_file: by then both the bytes and the name must be on disk."""
    synced = set()
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        real_fsync(fd)
        info = os.fstat(fd)
        synced.add((info.st_dev, info.st_ino))

    monkeypatch.setattr(os, "fsync", recording_fsync)
    store = LocalObjectStore(tmp_path / "lake")
    part = tmp_path / "work" / "part.parquet"
    part.parent.mkdir()
    part.write_bytes(b"rows")
    store.publish_file("date=2026-12-04/part-1.parquet", part)
    published = tmp_path / "lake" / "date=2026-12-04" / "part-1.parquet"
    for path in (published, published.parent):
        info = path.stat()
        assert (info.st_dev, info.st_ino) in synced, path


@pytest.mark.skipif(not Path("/dev/shm").is_dir(), reason="needs a second file system (/dev/shm)")
def test_local_publish_file_copies_across_file_systems(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "lake")
    with tempfile.TemporaryDirectory(dir="/dev/shm") as other:
        part = Path(other) / "part.parquet"
        part.write_bytes(b"rows from elsewhere")
        if os.stat(other).st_dev == tmp_path.stat().st_dev:
            pytest.skip("/dev/shm is on the same file system as the test's folder here")
        store.publish_file("k/part.parquet", part)
    published = tmp_path / "lake" / "k" / "part.parquet"
    assert published.read_bytes() == b"rows from elsewhere"
    assert published.stat().st_mode & 0o777 == 0o600


@pytest.fixture
def hung_endpoint() -> Iterator[str]:
    """An S3 endpoint that takes connections and never answers (a store stopped with SIGSTOP, as a trial did)."""
    listener = socket.create_server(("127.0.0.1", 0))
    taken: list[socket.socket] = []
    stop = threading.Event()

    def take() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError, OSError):
                taken.append(listener.accept()[0])

    thread = threading.Thread(target=take, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join()
    for connection in taken:
        connection.close()
    listener.close()


def test_a_hung_s3_store_fails_a_write_and_a_read_within_the_timeouts(
    hung_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """botocore's defaults (60 s a try, 5 tries) held a write for 6 minutes; the lake's client and its pyarrow
    filesystem both give up after S3_READ_TIMEOUT_S a try, S3_ATTEMPTS tries (made short here)."""
    from loglake.lake import objectstore
    from loglake.lake.lake import object_store

    monkeypatch.setattr(objectstore, "S3_READ_TIMEOUT_S", 0.3)
    monkeypatch.setattr(objectstore, "S3_ATTEMPTS", 1)
    for name, value in (
        ("AWS_ACCESS_KEY_ID", "k"),
        ("AWS_SECRET_ACCESS_KEY", "s"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
    ):
        monkeypatch.setenv(name, value)
    store = object_store(Settings(data_dir=tmp_path, lake_bucket="lake", lake_endpoint=hung_endpoint))
    started = time.monotonic()
    with pytest.raises(ObjectStoreError, match=r"cannot put s3://lake/type=app_logs/x\.parquet"):
        store.put("type=app_logs/x.parquet", b"parquet")
    assert time.monotonic() - started < 10
    started = time.monotonic()
    with pytest.raises(OSError):
        store.arrow_filesystem().open_input_file(store.arrow_path("type=app_logs/x.parquet"))
    assert time.monotonic() - started < 10


async def test_a_lake_that_refuses_writes_keeps_healthz_503_until_it_takes_one(
    hung_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bulk batch refused by an S3 lake that hung: /healthz said ok again at the next single record (a hot store
    commit) or its own probe (of the hot store), while every bulk batch was still refused. Now only a write to the
    lake, or /healthz's probe of it, clears it."""
    from loglake.api import operation_routes
    from loglake.api.app import LoglakeApp
    from loglake.lake import objectstore
    from tests.conftest import asgi_client, key_for

    monkeypatch.setattr(objectstore, "S3_READ_TIMEOUT_S", 0.2)
    monkeypatch.setattr(objectstore, "S3_ATTEMPTS", 1)
    monkeypatch.setattr(operation_routes, "STORAGE_RECHECK_AFTER_S", 0.2)
    for name, value in (("AWS_ACCESS_KEY_ID", "k"), ("AWS_SECRET_ACCESS_KEY", "s"), ("AWS_DEFAULT_REGION", "eu-1")):
        monkeypatch.setenv(name, value)
    settings = Settings(data_dir=tmp_path / "data", access_log="off", lake_bucket="lake", lake_endpoint=hung_endpoint)
    app = LoglakeApp.from_settings(settings)
    try:
        async with asgi_client(app, key_for(app, "admin")) as client:
            bulk = [{"message": f"m{i}", "service": "bulk"} for i in range(5000)]  # (a part of its own: S3)
            refused = await client.post("/logs", json=bulk)
            assert refused.status_code == 503, refused.text
            assert (await client.get("/healthz")).status_code == 503
            assert (await client.post("/logs", json={"message": "one", "service": "single"})).status_code == 201
            time.sleep(0.3)  # (past the recheck's interval: /healthz probes the store that refused)
            health = await client.get("/healthz")
            assert health.status_code == 503, health.text
            assert "the lake cannot accept writes" in health.json()["store"]["error"]
    finally:
        app.close()


class _Down(LocalObjectStore):
    """A lake whose store refuses every write while `down` is set, as an S3 lake that cannot be reached."""

    down = True

    def put(self, key: str, data: bytes) -> None:
        if self.down:
            raise ObjectStoreError(f"cannot put s3://lake/{key}: Could not connect to the endpoint URL")
        super().put(key, data)


def test_maintenance_that_failed_stays_failing_until_the_store_takes_a_write(tmp_path: Path) -> None:
    """A turn with nothing to move touches no store: a server whose lake was down at its start (or failed a move)
    said its maintenance worked again at its next idle turn, and /healthz said "ok", while the lake was still down."""
    from loglake.lake.lake import Lake, LakeJobs
    from loglake.store.sqlite import SQLiteHotStore

    store = SQLiteHotStore(tmp_path / "hot.db")
    objects = _Down(tmp_path / "lake")
    lake = Lake(store, objects, tmp_path)
    jobs = LakeJobs(lake, interval_seconds=0.05, on_report=lambda report: None)
    try:
        with pytest.raises(ObjectStoreError) as refused:
            objects.probe_write()
        assert jobs.store_unwritable(refused.value)
        jobs.start()
        time.sleep(0.5)  # (turns)
        assert jobs.last_error is not None and "cannot put s3://lake/_state/probe" in jobs.last_error
        objects.down = False
        deadline = time.monotonic() + 10
        while jobs.last_error is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert jobs.last_error is None
    finally:
        jobs.stop()
        lake.close()
        store.close()
    assert not LakeJobs(lake, interval_seconds=0, on_report=lambda report: None).store_unwritable(refused.value)


def test_a_local_object_got_as_a_file_takes_no_room_again_and_is_the_owners_alone(tmp_path: Path) -> None:
    """What a merge reads: a link to the object (a copy took the inputs' room again on the disk the lake fills, and
    was 0644 whatever the lake's files are), which outlives the object's deletion; a copy where no link can be."""
    store = LocalObjectStore(tmp_path / "lake")
    store.put("type=app_logs/date=2026-11-01/part-a.parquet", b"first")
    got = tmp_path / "work" / "input-0.parquet"
    got.parent.mkdir()
    store.get_file("type=app_logs/date=2026-11-01/part-a.parquet", got)
    assert got.stat().st_ino == (tmp_path / "lake/type=app_logs/date=2026-11-01/part-a.parquet").stat().st_ino
    assert stat.S_IMODE(got.stat().st_mode) == 0o600
    store.delete("type=app_logs/date=2026-11-01/part-a.parquet")
    assert got.read_bytes() == b"first"

    elsewhere = Path("/dev/shm") / f"loglake-test-{os.getpid()}.parquet"  # (another file system: no link)
    store.put("k/obj", b"second")
    try:
        store.get_file("k/obj", elsewhere)
        assert elsewhere.read_bytes() == b"second" and stat.S_IMODE(elsewhere.stat().st_mode) == 0o600
    finally:
        elsewhere.unlink(missing_ok=True)
