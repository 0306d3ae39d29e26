"""A real server whose disk is full answers the shippers' protocols in their own terms and stores nothing
it did not acknowledge: each Elasticsearch bulk item fails with 503, a HEC batch gets Splunk's "Server is
busy" with Retry-After; once space is back both store again.

As in test_disk_full.py, a file size limit (RLIMIT_FSIZE) fails writes as a full disk does."""

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
PAD = "x" * 2000  # as big as the batches that filled the disk: a small write may still fit in what is left


def bulk(*messages: str) -> bytes:
    return b"".join(b'{"create": {"_index": "full"}}\n{"message": "%s"}\n' % m.encode() for m in messages)


def hec(*messages: str) -> bytes:
    return b"".join(b'{"event": "%s"}' % m.encode() for m in messages)


def _limit_file_size() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT, resource.RLIM_INFINITY))


def test_a_full_disk_fails_bulk_items_and_hec_batches_in_their_protocols_form(tmp_path: Path) -> None:
    server = ServerProcess(
        tmp_path / "data", free_port(), tmp_path / "server.log", ("--access-log", "off"), preexec_fn=_limit_file_size
    )
    server.start()
    try:
        key = server.admin_key()
        with httpx.Client(base_url=server.url, headers={"authorization": f"Bearer {key}"}, timeout=30) as client:
            ndjson = {"content-type": "application/x-ndjson"}
            for batch in range(200):  # bulks until the disk is full
                refused = client.post(
                    "/_bulk", content=bulk(*(f"es-{batch}-{i} {PAD}" for i in range(100))), headers=ndjson
                )
                assert refused.status_code == 200 and refused.headers["x-elastic-product"] == "Elasticsearch"
                if refused.json()["errors"]:
                    break
            else:
                pytest.fail("the file size limit never bit")
            assert {item["create"]["status"] for item in refused.json()["items"]} == {503}
            refused_bulk = f"es-{batch}-"
            for batch in range(200):  # HEC batches until the disk refuses one (a failed write may free some)
                busy = client.post("/services/collector", content=hec(*(f"hec-{batch}-{i} {PAD}" for i in range(100))))
                if busy.status_code != 200:
                    break
            assert busy.status_code == 503 and busy.json()["code"] == 9 and busy.headers["retry-after"]
            refused_hec = f"hec-{batch}-"
            assert client.get("/services/collector/health").json()["code"] == 18

            resource.prlimit(server.process.pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY,) * 2)
            assert client.post("/_bulk", content=bulk("after-es"), headers=ndjson).json()["errors"] is False
            assert client.post("/services/collector", content=hec("after-hec")).json()["code"] == 0
            stored = {log["message"] for log in client.get("/logs/recent", params={"limit": "1000"}).json()["logs"]}
            assert {"after-es", "after-hec"} <= stored
            assert not any(m.startswith((refused_bulk, refused_hec)) for m in stored)  # nothing of what was refused
    finally:
        server.stop()
