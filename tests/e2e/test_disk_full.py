"""A real server process whose disk fills up: 503 with nothing half-written, then recovery.

The child gets a file size limit (RLIMIT_FSIZE): writes past it fail with EFBIG exactly as a full
disk fails them with ENOSPC, and `prlimit` on the running process gives the space back.
"""

from __future__ import annotations

import resource
from pathlib import Path

import httpx
import pytest

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
    response = client.post("/logs", json=[{"message": "after recovery"}])
    assert response.status_code == 201, response.text
    assert client.get("/healthz").status_code == 200

    for log_id in acknowledged[:: max(1, len(acknowledged) // 50)] + acknowledged[-1:]:
        assert client.get(f"/logs/{log_id}").status_code == 200
    everything = client.get("/logs/recent", params={"limit": 1000, "q": refused_marker}).json()
    assert everything["count"] == 0, "a refused batch left records behind"
