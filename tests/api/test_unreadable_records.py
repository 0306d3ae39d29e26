"""A stored record holding values ingest refuses today (left by an older loglake, another tool or a hand
edit) is shown with those values named in `unreadable`: never a 500 for every page it is on, neither
while it is hot nor once flushed, nor when a Parquet file in the lake holds such values."""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from pathlib import Path

import httpx
import pyarrow as pa
import pytest

from loglake import ids
from loglake.api.app import LoglakeApp
from loglake.config import Settings
from loglake.lake.flush import publish
from loglake.lake.layout import app_logs_key, day_of, new_part_name
from loglake.lake.parts import write_part
from loglake.lake.tables import APP_LOGS_TABLE
from tests.api.test_lake_api import NOW_MS, flush_all, rec, send

pytestmark = pytest.mark.clock_at(NOW_MS)  # the `app` fixture's: records are placed from it


def insert_by_hand(settings: Settings, ts: int, **values: object) -> str:
    """A row written into hot.db through a connection of its own, as a hand edit or an older loglake left it."""
    log_id = ids.uuid7_bytes(ts)
    high, low = ids.split_id(log_id)
    row = {
        "id_hi": high,
        "id_lo": low,
        "timestamp": ts,
        "service": "api",
        "log_type": "application",
        "severity": 1,
        "message": "by hand",
        "attributes": None,
        "client_id": None,
    } | values
    conn = sqlite3.connect(settings.hot_db_path, timeout=10)
    with conn:
        conn.execute(f"INSERT INTO logs ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", list(row.values()))
    conn.close()
    return ids.format_uuid(log_id)


def publish_rows(app: LoglakeApp, rows: list[dict], ts: int) -> None:
    """Rows of the lake's `logs` columns (service and log type filled in), all at `ts`, as a Parquet
    file published into the lake and its catalog the way a flush publishes its files."""
    assert app.lake is not None
    defaults = {"timestamp": ts, "service": "api", "log_type": "application"}
    table = pa.Table.from_pylist([defaults | r for r in rows], schema=APP_LOGS_TABLE.schema)
    work = Path(tempfile.mkdtemp())
    try:
        part = write_part(table, app_logs_key(day_of(ts), new_part_name(ts)), work)
        publish(app.lake.store, app.lake.objects, work, [part], ts, lambda step: None, lambda conn: None).result()
    finally:
        shutil.rmtree(work)


async def answers(client: httpx.AsyncClient) -> dict[str, httpx.Response]:
    """What the read endpoints answer over the last hour: recent, searches (words, attributes) and histogram."""
    window = {"since": "1h"}
    return {
        "recent": await client.get("/logs/recent", params=window),
        "search": await client.get("/logs/search", params=window),
        "search_words": await client.get("/logs/search", params=window | {"q": "-nothing"}),
        "search_attribute": await client.get("/logs/search", params=window | {"q": "-user:nobody"}),
        "histogram": await client.get("/logs/histogram", params=window | {"interval": "1h"}),
    }


def unreadable_fields(record: dict) -> list[str]:
    return [entry["field"] for entry in record.get("unreadable", [])]


@pytest.mark.parametrize(
    ("values", "hot_store_names", "elsewhere_names"),
    [
        # What an older loglake stored for the client id "0123456789abcdef0123456789abcd  " (15 bytes).
        pytest.param({"client_id": "01234567-89ab-cdef-0123-456789abcd"}, ["id"], ["id"], id="15-byte-client-id"),
        pytest.param({"severity": 7}, ["severity"], ["severity"], id="severity-past-critical"),
        pytest.param({"attributes": '{"user": '}, ["attributes"], ["attributes"], id="attributes-not-json"),
        pytest.param({"attributes": "[1, 2]"}, ["attributes"], ["attributes"], id="attributes-not-an-object"),
        # Values of another type than their column's: the hot store's reads name them; SQL and the flush
        # see them converted to the lake's types (text as text, the time from the log id).
        pytest.param({"timestamp": "soon"}, ["timestamp"], [], id="timestamp-text"),
        pytest.param({"message": b"\xff\xfe by hand"}, ["message"], [], id="message-bytes"),
        pytest.param({"service": b"api"}, ["service"], [], id="service-bytes"),
    ],
)
async def test_a_row_with_unreadable_values_is_shown_with_them_named_before_and_after_the_flush(
    app: LoglakeApp,
    client: httpx.AsyncClient,
    settings: Settings,
    values: dict,
    hot_store_names: list[str],
    elsewhere_names: list[str],
) -> None:
    older, newer = await send(client, [rec(3, "older"), rec(1, "newer")])
    bad = insert_by_hand(settings, NOW_MS - 120_000, **values)
    for where in ("hot", "lake"):
        found = await answers(client)
        assert {name: r.status_code for name, r in found.items()} == dict.fromkeys(found, 200), where
        for name in ("recent", "search", "search_words", "search_attribute"):
            named = hot_store_names if (where, name) == ("hot", "recent") else elsewhere_names
            logs = found[name].json()["logs"]
            assert [r["logId"] for r in logs] == [newer, bad, older], (where, name)
            assert [unreadable_fields(r) for r in logs] == [[], named, []], (where, name)
        assert found["histogram"].json()["total"] == 3, where
        got = await client.get(f"/logs/{bad}")
        assert got.status_code == 200, where
        assert got.json()["timestamp"] == NOW_MS - 120_000, where
        assert unreadable_fields(got.json()) == (hot_store_names if where == "hot" else elsewhere_names), where
        if where == "hot":
            assert flush_all(app) == 3


async def test_a_record_left_by_the_old_client_id_bug_is_readable_and_its_id_still_refused(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    """The record the issue reported: its client id was stored as 15 bytes. It reads back with the id
    named, its message intact, and sending that id again is now refused."""
    bad = insert_by_hand(settings, NOW_MS - 60_000, client_id="01234567-89ab-cdef-0123-456789abcd", message="x")
    got = (await client.get(f"/logs/{bad}")).json()
    assert got["message"] == "x" and "id" not in got
    assert (
        got["unreadable"][0]["field"] == "id" and "01234567-89ab-cdef-0123-456789abcd" in got["unreadable"][0]["reason"]
    )
    again = await client.post("/logs", json={"message": "x", "id": "0123456789abcdef0123456789abcd  "})
    assert again.status_code == 400 and again.json()["error"]["details"][0]["field"] == "id"


async def test_a_parquet_file_with_unreadable_values_in_the_lake_is_read_around(
    app: LoglakeApp, client: httpx.AsyncClient
) -> None:
    """A file in the lake (another tool's, or written by an older loglake) whose rows hold values no
    record can have: each is shown with them named; a row whose log id is not one is left out."""
    (ours,) = await send(client, [rec(1, "ours")])
    assert flush_all(app) == 1
    theirs = [ids.format_uuid(ids.uuid7_bytes(NOW_MS - 120_000 - n)) for n in range(2)]
    rows = [
        {"log_id": theirs[0], "severity": "loud", "message": "theirs", "attributes": '{"user": ', "client_id": "zz"},
        {"log_id": theirs[1], "severity": "warning", "message": None, "attributes": None, "client_id": None},
        {"log_id": "not-a-uuid", "severity": "info", "message": "no id", "attributes": None, "client_id": None},
    ]
    publish_rows(app, rows, NOW_MS - 120_000)

    found = await answers(client)
    assert {name: r.status_code for name, r in found.items()} == dict.fromkeys(found, 200)
    expected = [(ours, []), (theirs[0], ["severity", "attributes", "id"]), (theirs[1], ["message"])]
    for name in ("recent", "search", "search_words", "search_attribute"):
        logs = found[name].json()["logs"]
        assert [(r["logId"], unreadable_fields(r)) for r in logs] == expected, name
    assert found["histogram"].json()["total"] == 4  # counts every row, the one without a log id too
    got = await client.get(f"/logs/{theirs[0]}")
    assert got.status_code == 200 and got.json()["severity"] == "info" and got.json()["attributes"] == {}


async def test_a_hot_row_whose_id_is_not_a_log_id_is_left_out_and_stops_nothing(
    app: LoglakeApp, client: httpx.AsyncClient, settings: Settings
) -> None:
    older, newer = await send(client, [rec(3, "older"), rec(1, "newer")])
    for high in ("x", 1.5):  # SQLite keeps a text or a fraction in an INTEGER column as it is given
        insert_by_hand(settings, NOW_MS - 120_000, id_hi=high)
    for where in ("hot", "lake"):
        found = await answers(client)
        assert {name: r.status_code for name, r in found.items()} == dict.fromkeys(found, 200), where
        for name in ("recent", "search", "search_words", "search_attribute"):
            assert [r["logId"] for r in found[name].json()["logs"]] == [newer, older], (where, name)
        assert found["histogram"].json()["total"] == 2
        if where == "hot":
            assert app.lake is not None
            assert app.lake.maintain() is not None  # flush, compaction, retention: none of them stops
            assert flush_all(app) == 2
    assert flush_all(app) == 0  # they are never due
