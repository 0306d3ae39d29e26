"""Bulk batches over HTTP: into lake parts (a small one after waiting to be joined with others), answered
like any batch, readable at once by every read, counted in the metrics, and all-or-nothing."""

from __future__ import annotations

import gzip
import json
import os

import httpx
import pytest

from loglake.api.app import LoglakeApp
from loglake.ingest import BULK_MIN_RECORDS

NOW_MS = 1_793_577_600_000  # 2026-11-02T00:00:00Z
COUNT = BULK_MIN_RECORDS + 500


pytestmark = pytest.mark.clock_at(NOW_MS)  # the `app` fixture's: the bodies' times are placed from it


def records(count: int = COUNT, tag: str = "bulk") -> list[dict]:
    """One record a second back from now, over services a-c; every 10th an error with attributes."""
    return [
        {
            "timestamp": NOW_MS - 1000 * (i + 1),
            "service": "abc"[i % 3],
            "severity": "error" if i % 10 == 0 else "info",
            "message": f"{tag} record {i}",
            **({"attributes": {"user": f"u{i % 7}"}} if i % 10 == 0 else {}),
        }
        for i in range(count)
    ]


def ndjson(items: list[dict]) -> bytes:
    return b"\n".join(json.dumps(r).encode() for r in items)


async def post_ndjson(client: httpx.AsyncClient, body: bytes, **headers: str) -> httpx.Response:
    return await client.post("/logs", content=body, headers={"content-type": "application/x-ndjson", **headers})


def lake_rows(app: LoglakeApp) -> list[tuple]:
    assert app.lake is not None
    return app.lake.store.read("SELECT key, records FROM lake_files")


def waiting_rows(app: LoglakeApp) -> int:
    """The records of the bulk batches waiting to be moved into lake parts (lake/waiting.py)."""
    assert app.lake is not None
    return app.lake.store.read("SELECT coalesce(sum(rows), 0) FROM bulk_batches")[0][0]


async def test_a_bulk_batch_waits_then_goes_to_lake_parts_and_every_read_finds_it_once(
    app: LoglakeApp, client: httpx.AsyncClient
) -> None:
    sent = records()
    response = await post_ndjson(client, ndjson(sent))
    assert response.status_code == 201, response.text
    answer = response.json()
    assert answer["count"] == COUNT and len(set(answer["logIds"])) == COUNT
    # written as any batch's answer is (send_json): compact JSON, then a newline
    assert response.headers["content-type"] == "application/json"
    assert response.content == json.dumps(answer, separators=(",", ":")).encode() + b"\n"
    assert app.runtime.store.count() == 0, "a bulk batch went through the hot store"
    assert waiting_rows(app) == COUNT and lake_rows(app) == []  # a small batch waits to be joined into a part
    await every_read_finds_it_once(client, sent, answer["logIds"])
    assert "loglake_hot_records 1500" in (await client.get("/metrics")).text

    assert app.lake is not None
    app.lake.flush(everything=True)
    assert waiting_rows(app) == 0 and sum(n for _, n in lake_rows(app)) == COUNT
    await every_read_finds_it_once(client, sent, answer["logIds"])
    assert "loglake_hot_records 0" in (await client.get("/metrics")).text


async def test_metrics_say_what_the_records_not_in_the_lake_take_on_disk_and_the_room_left(
    app: LoglakeApp, client: httpx.AsyncClient
) -> None:
    """Trial s16: nothing told an operator how big hot.db and the waiting batches were, or how much disk was left,
    until writes were refused."""
    response = await post_ndjson(client, ndjson(records()))
    assert response.status_code == 201, response.text
    text = (await client.get("/metrics")).text
    gauges = {
        name: float(value) for name, value in (line.rsplit(" ", 1) for line in text.splitlines() if line[0] != "#")
    }
    waiting_files = sum(f.stat().st_size for f in (app.settings.data_dir / "waiting").iterdir())
    hot_db = (app.settings.data_dir / "hot.db").stat().st_size
    assert gauges["loglake_hot_bytes"] >= waiting_files + hot_db > hot_db
    disk = os.statvfs(app.settings.data_dir)
    assert abs(gauges["loglake_data_dir_free_bytes"] - disk.f_bavail * disk.f_frsize) < 256 * 1024 * 1024


async def every_read_finds_it_once(client: httpx.AsyncClient, sent: list[dict], log_ids: list[str]) -> None:
    # Each id answers its own record, in the body's order.
    for index in (0, 1, COUNT // 2, COUNT - 1):
        got = (await client.get(f"/logs/{log_ids[index]}")).json()
        assert (got["message"], got["timestamp"]) == (sent[index]["message"], sent[index]["timestamp"])
    got = (await client.get(f"/logs/{log_ids[0]}")).json()
    assert got["attributes"] == {"user": "u0"} and got["severity"] == "error"

    recent = (await client.get("/logs/recent", params={"service": "b", "limit": "5"})).json()
    assert [r["message"] for r in recent["logs"]] == [f"bulk record {i}" for i in (1, 4, 7, 10, 13)]
    errors = (await client.get("/logs/recent", params={"severity": "error", "limit": "1000"})).json()
    assert errors["count"] == len([r for r in sent if r["severity"] == "error"])

    found = (await client.get("/logs/search", params={"q": "user:u3", "limit": "1000"})).json()
    assert sorted(r["message"] for r in found["logs"]) == sorted(
        r["message"] for r in sent if r.get("attributes") == {"user": "u3"}
    )
    query = await client.post(
        "/query", json={"sql": "SELECT service, count(*) FROM logs GROUP BY service ORDER BY service"}
    )
    assert query.json()["rows"] == [["a", 500], ["b", 500], ["c", 500]]

    metrics = (await client.get("/metrics")).text
    assert 'loglake_records_ingested_total{service="a",severity="error"} 50' in metrics


async def test_a_gzipped_json_array_takes_the_bulk_path_too(app: LoglakeApp, client: httpx.AsyncClient) -> None:
    body = gzip.compress(json.dumps(records()).encode())
    response = await client.post(
        "/logs", content=body, headers={"content-type": "application/json", "content-encoding": "gzip"}
    )
    assert response.status_code == 201, response.text
    assert response.json()["count"] == COUNT
    assert waiting_rows(app) + sum(n for _, n in lake_rows(app)) == COUNT


async def test_one_bad_record_refuses_the_whole_bulk_batch_naming_it(
    app: LoglakeApp, client: httpx.AsyncClient
) -> None:
    sent = records()
    sent[1234]["severity"] = "loud"
    sent[77]["message"] = ""
    response = await post_ndjson(client, ndjson(sent))
    assert response.status_code == 400
    details = response.json()["error"]["details"]
    assert [(d["index"], d["field"]) for d in details] == [(77, "message"), (1234, "severity")]
    assert lake_rows(app) == [] and waiting_rows(app) == 0 and app.runtime.store.count() == 0


async def test_a_bulk_batch_with_client_ids_is_deduplicated_by_the_hot_store(
    app: LoglakeApp, client: httpx.AsyncClient
) -> None:
    sent = [{**r, "id": f"00000000-0000-4000-8000-{i:012d}"} for i, r in enumerate(records())]
    first = await post_ndjson(client, ndjson(sent))
    again = await post_ndjson(client, ndjson(sent))
    assert first.status_code == again.status_code == 201
    assert first.json()["logIds"] == again.json()["logIds"]
    assert app.runtime.store.count() == COUNT and lake_rows(app) == []


async def test_a_follower_gets_a_bulk_batch_in_arrival_order(app: LoglakeApp, client: httpx.AsyncClient) -> None:
    cursor = (await client.get("/logs/recent", params={"follow": "true"})).json()["follow_cursor"]
    sent = records()
    assert (await post_ndjson(client, ndjson(sent))).status_code == 201
    page = (await client.get("/logs/recent", params={"after": cursor, "service": "c", "limit": "1000"})).json()
    # arrival order is the batch's own order, whatever the records' times (here newest first)
    assert [r["message"] for r in page["logs"]] == [r["message"] for r in sent if r["service"] == "c"]


TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.mark.parametrize("count", [1, COUNT], ids=["hot store", "bulk"])
async def test_trace_and_span_ids_are_stored_answered_searched_and_queried(
    app: LoglakeApp, client: httpx.AsyncClient, count: int
) -> None:
    sent_trace = TRACE.upper() if count == 1 else TRACE  # capitals are stored in lowercase (by the record path)
    sent = [{**r, "trace_id": sent_trace, "span_id": f"{i + 1:016x}"} for i, r in enumerate(records(count))]
    response = await post_ndjson(client, ndjson(sent))
    assert response.status_code == 201, response.text
    assert (app.runtime.store.count() == 0) == (count == COUNT)  # the bulk batch went to lake parts
    last = response.json()["logIds"][-1]
    got = (await client.get(f"/logs/{last}")).json()
    assert (got["trace_id"], got["span_id"]) == (TRACE, f"{count:016x}")
    found = (await client.get("/logs/search", params={"q": f"span_id:{count:016x} trace_id:{TRACE}"})).json()
    assert [r["logId"] for r in found["logs"]] == [last]
    query = await client.post("/query", json={"sql": "SELECT count(DISTINCT span_id), min(trace_id) FROM logs"})
    assert query.json()["rows"] == [[count, TRACE]]
    recent = (await client.get("/logs/recent", params={"limit": "1"})).json()["logs"][0]
    assert (recent["trace_id"], recent["span_id"]) == (TRACE, f"{1:016x}")


async def test_a_bad_trace_id_refuses_the_batch_naming_it(app: LoglakeApp, client: httpx.AsyncClient) -> None:
    sent = records()
    sent[5]["trace_id"] = "not-a-trace"
    response = await post_ndjson(client, ndjson(sent))
    assert response.status_code == 400
    assert [(d["index"], d["field"]) for d in response.json()["error"]["details"]] == [(5, "trace_id")]
    assert lake_rows(app) == [] and waiting_rows(app) == 0 and app.runtime.store.count() == 0
