"""A database of the data dir damaged while the server runs (a disk's fault, a copy cut short): what reads it is a
503 saying what the operator must do, and /healthz says so, where each such read was a 500 (a corruption trial)."""

from __future__ import annotations

import os

from loglake.api.app import LoglakeApp
from loglake.config import Settings
from tests.conftest import asgi_client, key_for


async def test_a_read_of_a_damaged_hot_store_is_a_503_that_says_what_to_do_and_healthz_tells_it(
    settings: Settings,
) -> None:
    app = LoglakeApp.from_settings(settings)
    try:
        async with asgi_client(app, key_for(app, "admin")) as client:
            for batch in range(10):
                records = [{"message": f"record {batch} {i} " + "x" * 300, "service": "web"} for i in range(500)]
                assert (await client.post("/logs", json=records)).status_code == 201
    finally:
        app.close()
    hot = settings.data_dir / "hot.db"
    size = hot.stat().st_size
    with open(hot, "r+b") as file:  # the middle half of its pages overwritten: records' pages, not the schema's
        file.seek(size // 4)
        file.write(os.urandom(size // 2))

    app = LoglakeApp.from_settings(settings)
    try:
        async with asgi_client(app, key_for(app, "read")) as reader:
            searched = await reader.get("/logs/search", params={"q": "record"})
            # (a user's SQL runs in a query worker: lake/query_workers.py)
            queried = await reader.post("/query", json={"sql": "SELECT max(length(message || '.')) FROM logs"})
            for answer in (searched, queried):
                assert answer.status_code == 503, answer.text
                error = answer.json()["error"]
                assert error["code"] == "storage_unavailable"
                assert "damaged" in error["message"] and "restore the data dir from a backup" in error["message"]
            health = (await reader.get("/healthz")).json()
        assert health["status"] == "degraded" and "damaged" in health["reason"]
    finally:
        app.close()
