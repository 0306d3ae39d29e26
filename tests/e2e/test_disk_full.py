"""A real server process whose disk fills up: 503 with nothing half-written, then recovery.

The child gets a file size limit (RLIMIT_FSIZE): writes past it fail with EFBIG exactly as a full
disk fails them with ENOSPC, and `prlimit` on the running process gives the space back.
"""

from __future__ import annotations

import json
import resource
import socket
import time
from pathlib import Path

import httpx
import pytest

from loglake.api.operation_routes import STORAGE_RECHECK_AFTER_S
from tests.conftest import ServerProcess, free_port

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not hasattr(resource, "prlimit"), reason="needs Linux prlimit"),
]
LIMIT = 3 * 1024 * 1024


def _limit_file_size() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT, resource.RLIM_INFINITY))


def test_full_disk_refuses_writes_cleanly_and_recovers(tmp_path: Path) -> None:
    server = ServerProcess(
        tmp_path / "data", free_port(), tmp_path / "server.log", ("--access-log", "off"), preexec_fn=_limit_file_size
    )
    server.start()
    try:
        key = server.admin_key()
        with httpx.Client(base_url=server.url, headers={"authorization": f"Bearer {key}"}, timeout=30) as client:
            _fill_then_recover(client, server)
    finally:
        server.stop()


def _fill_then_recover(client: httpx.Client, server: ServerProcess) -> None:
    acknowledged: list[str] = []
    batch_number = 0
    while True:
        batch = [{"message": f"b{batch_number}-{i} " + "x" * 2000} for i in range(100)]
        response = client.post("/logs", json=batch)
        if response.status_code != 201:
            break
        acknowledged.extend(response.json()["logIds"])
        batch_number += 1
        assert batch_number < 200, "the file size limit never bit"
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "storage_unavailable"
    assert response.headers["retry-after"]
    assert acknowledged, "some batches should have fit before the limit"
    assert client.get("/healthz").status_code == 503

    refused_marker = f"b{batch_number}-"
    resource.prlimit(server.process.pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    # With room again and nothing sent (a load balancer sends nothing to a server answering 503), /healthz finds
    # out by itself: an error that old, it tries a write that changes nothing.
    time.sleep(STORAGE_RECHECK_AFTER_S + 0.2)
    assert client.get("/healthz").status_code == 200
    response = client.post("/logs", json=[{"message": "after recovery"}])
    assert response.status_code == 201, response.text
    assert client.get("/healthz").status_code == 200

    for log_id in acknowledged[:: max(1, len(acknowledged) // 50)] + acknowledged[-1:]:
        assert client.get(f"/logs/{log_id}").status_code == 200
    everything = client.get("/logs/recent", params={"limit": 1000, "q": refused_marker}).json()
    assert everything["count"] == 0, "a refused batch left records behind"


def test_a_full_disk_refuses_bulk_batches_with_503_as_it_refuses_small_ones(tmp_path: Path) -> None:
    """Batches of 1,000 records or more skip the hot store (a waiting batch file, or lake parts): a full disk
    refuses them as it refuses the hot store's writes, 503 and nothing stored, in each protocol's form; before,
    pyarrow's OSError reached the client as a 500 (which `loglake send` and many shippers do not send again)
    and the access log as a traceback per request, and /healthz stayed 200."""
    log = tmp_path / "server.log"
    server = ServerProcess(tmp_path / "data", free_port(), log, preexec_fn=_limit_file_size)
    server.start()
    pad = "x" * 2000  # 2,000 records of 2 kB: a batch file or part past the 3 MiB limit
    native = "".join(json.dumps({"message": f"native-{i} {pad}"}) + "\n" for i in range(2000))
    bulk = "".join(
        json.dumps({"create": {"_index": "full"}}) + "\n" + json.dumps({"message": f"es-{i} {pad}"}) + "\n"
        for i in range(2000)
    )
    ndjson = {"content-type": "application/x-ndjson"}
    try:
        key = server.admin_key()
        with httpx.Client(base_url=server.url, headers={"authorization": f"Bearer {key}"}, timeout=60) as client:
            refused = client.post("/logs", content=native, headers=ndjson)
            assert refused.status_code == 503, refused.text
            assert refused.json()["error"]["code"] == "storage_unavailable"
            assert "the lake cannot accept writes: a file size limit was reached" in refused.json()["error"]["message"]
            assert refused.headers["retry-after"]
            assert client.get("/healthz").status_code == 503
            items = client.post("/_bulk", content=bulk, headers=ndjson).json()["items"]
            assert {item["create"]["status"] for item in items} == {503}

            resource.prlimit(server.process.pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY,) * 2)
            assert client.post("/logs", content=native.replace("native-", "again-"), headers=ndjson).status_code == 201
            assert client.get("/healthz").status_code == 200
            counts = client.post(
                "/query",
                json={"sql": "SELECT split_part(message, '-', 1) AS kind, count(*) AS n FROM logs GROUP BY 1"},
            ).json()["rows"]
            assert sorted(counts) == [["again", 2000]], "a refused batch left records behind"
    finally:
        server.stop()
    assert "unhandled_exception" not in log.read_text()


def test_an_s3_lake_that_cannot_be_reached_refuses_bulk_batches_with_503(tmp_path: Path) -> None:
    """The same for a lake on S3 whose endpoint does not answer (a port nothing listens on): its parts cannot be
    put, so the batch is refused with 503 and the operator's /healthz names the object store's error."""
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{probe.getsockname()[1]}"
    s3 = ("--lake-bucket", "lake", "--lake-endpoint", endpoint)
    keys = {"AWS_ACCESS_KEY_ID": "loglake-test", "AWS_SECRET_ACCESS_KEY": "loglake-test-secret"}
    server = ServerProcess(tmp_path / "data", free_port(), tmp_path / "server.log", s3, extra_env=keys)
    server.start()
    try:
        key = server.admin_key()
        with httpx.Client(base_url=server.url, headers={"authorization": f"Bearer {key}"}, timeout=60) as client:
            batch = "".join(json.dumps({"message": f"m{i}"}) + "\n" for i in range(5000))  # a part at once
            refused = client.post("/logs", content=batch, headers={"content-type": "application/x-ndjson"})
            assert refused.status_code == 503, refused.text
            assert refused.json()["error"]["message"] == (
                "the lake cannot accept writes: its object store failed the write; nothing was written"
            )
            store = client.get("/healthz").json()["store"]
            assert store["writable"] is False and "cannot put s3://lake/type=app_logs/" in store["error"]
    finally:
        server.stop()


def test_a_full_disk_refuses_sign_ins_and_new_keys_with_503(tmp_path: Path) -> None:
    """The server's other databases (sessions.db, keys.db) on a full disk: `503 storage_unavailable`, as the
    logs' own writes, rather than a 500 that reads as a bug (before: `internal_error` for both)."""
    server = ServerProcess(tmp_path / "data", free_port(), tmp_path / "server.log", ("--access-log", "off"))
    server.start()
    try:
        key = server.admin_key()
        with httpx.Client(base_url=server.url, headers={"authorization": f"Bearer {key}"}, timeout=30) as client:
            resource.prlimit(server.process.pid, resource.RLIMIT_FSIZE, (1, resource.RLIM_INFINITY))  # no room
            sign_in = client.post("/session", json={"key": key})
            new_key = client.post("/admin/keys", json={"name": "shipper", "scopes": ["ingest"]})
            for refused in (sign_in, new_key):
                assert refused.status_code == 503, refused.text
                assert refused.json()["error"]["code"] == "storage_unavailable"
                assert refused.json()["error"]["message"].startswith("the server cannot write now: ")
                assert refused.headers["retry-after"]

            resource.prlimit(server.process.pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY,) * 2)
            assert client.post("/session", json={"key": key}).status_code == 200
            assert client.post("/admin/keys", json={"name": "shipper", "scopes": ["ingest"]}).status_code == 201
    finally:
        server.stop()
