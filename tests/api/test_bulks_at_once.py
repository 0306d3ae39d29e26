"""Big NDJSON bodies checked at the same time: the server counts its ingest jobs, and a body that finds another
being checked is read by Arrow (ingest_arrow), which stores each record as msgspec's path does."""

from __future__ import annotations

import asyncio
import threading

import httpx
import msgspec

from loglake.api.app import LoglakeApp
from loglake.ingest import ARROW_READ_MIN_BYTES

NDJSON = {"content-type": "application/x-ndjson"}


async def test_the_ingest_jobs_in_flight_are_counted(app: LoglakeApp) -> None:
    release = threading.Event()
    first = asyncio.create_task(app.run_ingest(release.wait, 10))
    while app.ingest_jobs < 1:
        await asyncio.sleep(0.01)
    seen_by_a_second = await app.run_ingest(lambda: app.ingest_jobs)
    release.set()
    assert await first is True
    assert seen_by_a_second == 2 and app.ingest_jobs == 0


async def test_bodies_checked_at_once_are_stored_as_sent(client: httpx.AsyncClient) -> None:
    def body(sender: int) -> bytes:
        records = [
            {
                "timestamp": 1_793_491_200_000 + i,
                "service": f"svc-{sender}",
                "severity": "warn" if i % 3 else "info",
                "message": f'sender {sender} line {i} "quoted"\tand tabbed',
                "attributes": {"i": i, "tags": ["a", "b"], "user": {"id": f"u{i}", "admin": i % 2 == 0}},
            }
            for i in range(4000)
        ]
        return b"\n".join(msgspec.json.encode(record) for record in records) + b"\n"

    bodies = [body(sender) for sender in range(4)]
    assert all(len(b) >= ARROW_READ_MIN_BYTES for b in bodies)
    answers = await asyncio.gather(*(client.post("/logs", content=b, headers=NDJSON) for b in bodies))
    assert [answer.status_code for answer in answers] == [201] * 4
    sql = "SELECT service, count(*) AS n, min(message) AS first FROM logs GROUP BY service ORDER BY service"
    rows = (await client.post("/query", json={"sql": sql})).json()["rows"]
    assert [tuple(row[:2]) for row in rows] == [(f"svc-{s}", 4000) for s in range(4)]
    record = (await client.get(f"/logs/{answers[2].json()['logIds'][7]}")).json()
    assert record["message"] == 'sender 2 line 7 "quoted"\tand tabbed'
    assert record["severity"] == "warning"
    assert record["attributes"] == {"i": 7, "tags": ["a", "b"], "user": {"id": "u7", "admin": False}}
