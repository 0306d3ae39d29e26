"""Smaller bulk bodies that wait for the joining ingest thread are checked together (api/joined_checks.py): each
is still its own batch, answered with its own records, and a body the check refuses gets its own error while the
bodies checked beside it are stored."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import msgspec
import pytest

from loglake.api import elastic_routes
from loglake.api.app import INGEST_THREADS, LoglakeApp
from loglake.api.joined_checks import JOIN_BELOW_BYTES, JoinedChecks
from loglake.api.routes import OFF_LOOP_BODY_BYTES
from loglake.ingest import BULK_MIN_RECORDS
from loglake.protocols import elastic_columns

NDJSON = {"content-type": "application/x-ndjson"}
NOW_MS = 1_793_491_200_000
RECORDS = 1200  # (of ~250 bytes: a body the ingest threads check, small enough to join)


def records_body(body: int) -> bytes:
    return b"".join(
        msgspec.json.encode(
            {
                "timestamp": NOW_MS + i,
                "service": f"svc-{body}",
                "severity": "info",
                "message": f"body {body} line {i} " + "x" * 180,
                "attributes": {"line": i},
            }
        )
        + b"\n"
        for i in range(RECORDS)
    )


def bulk_body(body: int) -> bytes:
    action = b'{"create":{"_index":"filebeat-9"}}\n'
    return b"".join(
        action
        + msgspec.json.encode(
            {
                "@timestamp": "2026-11-01T00:00:00.000Z",
                "message": f"bulk {body} document {i} " + "x" * 180,
                "log": {"level": "info"},
                "service": {"name": f"svc-{body}"},
            }
        )
        + b"\n"
        for i in range(RECORDS)
    )


@pytest.fixture
def spied(app: LoglakeApp, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """How many bodies each joined check of POST /logs and of /_bulk took (the real checks run)."""
    joined: list[int] = []
    for checks in (app.ndjson_checks, app.bulk_checks):
        check = checks._check_joined

        def counted(bodies: list[bytes], check: Callable[[list[bytes]], Any] = check) -> Any:
            joined.append(len(bodies))
            return check(bodies)

        monkeypatch.setattr(checks, "_check_joined", counted)
    yield joined


async def while_the_ingest_threads_are_busy(app: LoglakeApp, posts: list[Any]) -> list[httpx.Response]:
    """The posts' answers, sent while every ingest thread is at other work: their bodies all wait for the joining
    thread's job, which then takes them at once."""
    release = threading.Event()
    holding = [asyncio.ensure_future(app.run_ingest(release.wait, 30)) for _ in range(INGEST_THREADS)]
    while app.ingest_jobs < INGEST_THREADS:
        await asyncio.sleep(0.01)
    sending = [asyncio.ensure_future(post) for post in posts]
    while app.ingest_jobs < INGEST_THREADS + len(posts):
        await asyncio.sleep(0.01)
    release.set()
    await asyncio.gather(*holding)
    return list(await asyncio.gather(*sending))


async def test_bodies_waiting_are_checked_together_and_answered_each_with_its_own(
    app: LoglakeApp, client: httpx.AsyncClient, spied: list[int]
) -> None:
    posts = [client.post("/logs", content=records_body(b), headers=NDJSON) for b in range(3)]
    answers = await while_the_ingest_threads_are_busy(app, posts)
    assert spied == [3]
    assert [answer.status_code for answer in answers] == [201] * 3
    for b, answer in enumerate(answers):
        ids = answer.json()["logIds"]
        assert answer.json()["count"] == len(ids) == RECORDS
        for line in (0, 700, RECORDS - 1):
            record = (await client.get(f"/logs/{ids[line]}")).json()
            assert record["message"].startswith(f"body {b} line {line} ")
            assert record["attributes"] == {"line": line}
    sql = "SELECT service, count(*) FROM logs GROUP BY service ORDER BY service"
    rows = (await client.post("/query", json={"sql": sql})).json()["rows"]
    assert rows == [[f"svc-{b}", RECORDS] for b in range(3)]


async def test_a_body_refused_beside_others_gets_its_own_error_and_theirs_are_stored(
    app: LoglakeApp, client: httpx.AsyncClient, spied: list[int]
) -> None:
    bodies = [records_body(b) for b in range(3)]
    lines = bodies[1].splitlines(keepends=True)
    lines[4] = lines[4].replace(b'"severity":"info"', b'"severity":"loud"')
    bodies[1] = b"".join(lines)
    posts = [client.post("/logs", content=body, headers=NDJSON) for body in bodies]
    answers = await while_the_ingest_threads_are_busy(app, posts)
    assert spied == [3]  # (they were tried together, then each alone)
    assert [answer.status_code for answer in answers] == [201, 400, 201]
    refused = answers[1].json()["error"]
    assert refused["code"] == "invalid_records"
    assert [(d["index"], d["field"]) for d in refused["details"]] == [(4, "severity")]  # its own line, not the join's
    sql = "SELECT service, count(*) FROM logs GROUP BY service ORDER BY service"
    rows = (await client.post("/query", json={"sql": sql})).json()["rows"]
    assert rows == [["svc-0", RECORDS], ["svc-2", RECORDS]]


async def test_elasticsearch_bulks_waiting_are_checked_together(
    app: LoglakeApp, client: httpx.AsyncClient, spied: list[int]
) -> None:
    bodies = [bulk_body(b) for b in range(3)]
    assert elastic_columns.read_regular_bulk(bodies[0], None) is not None  # (a shipper's regular bulk)
    posts = [client.post("/_bulk", content=body, headers=NDJSON) for body in bodies]
    answers = await while_the_ingest_threads_are_busy(app, posts)
    assert spied == [3]
    for b, answer in enumerate(answers):
        assert answer.status_code == 200 and answer.json()["errors"] is False
        items = answer.json()["items"]
        assert len(items) == RECORDS and {item["create"]["status"] for item in items} == {201}
        record = (await client.get(f"/logs/{items[9]['create']['_id']}")).json()
        assert record["message"].startswith(f"bulk {b} document 9 ") and record["service"] == f"svc-{b}"


async def test_a_bulk_with_a_refused_document_beside_others_answers_that_item_alone(
    app: LoglakeApp, client: httpx.AsyncClient, spied: list[int]
) -> None:
    bodies = [bulk_body(b) for b in range(3)]
    lines = bodies[2].splitlines(keepends=True)
    lines[7] = b'"no object"\n'  # (its 4th document)
    bodies[2] = b"".join(lines)
    posts = [client.post("/_bulk", content=body, headers=NDJSON) for body in bodies]
    answers = await while_the_ingest_threads_are_busy(app, posts)
    assert spied == [3]
    assert [answer.json()["errors"] for answer in answers] == [False, False, True]
    failed = [(i, item["create"]) for i, item in enumerate(answers[2].json()["items"]) if "error" in item["create"]]
    assert [(i, entry["status"]) for i, entry in failed] == [(3, 400)]
    assert "not a JSON object" in json.dumps(failed[0][1]["error"])
    sql = "SELECT service, count(*) FROM logs GROUP BY service ORDER BY service"
    rows = (await client.post("/query", json={"sql": sql})).json()["rows"]
    assert rows == [["svc-0", RECORDS], ["svc-1", RECORDS], ["svc-2", RECORDS - 1]]


def test_a_check_cut_short_leaves_no_body_waiting_for_good() -> None:
    """Whatever escapes a check (here a KeyboardInterrupt on its thread), its body is told, and a body that came
    meanwhile is still checked: the joining thread's job was gone with its count at its most, which held every later
    body (the next one submitted then started a job, not before)."""
    started, go = threading.Event(), threading.Event()

    def check_alone(body: bytes) -> bytes:
        if body == b"boom":
            started.set()
            go.wait(10)
            raise KeyboardInterrupt
        return body.upper()

    with ThreadPoolExecutor(2) as executor:
        checks: JoinedChecks[bytes] = JoinedChecks(executor, check_alone, lambda bodies: None)
        cut = checks.submit(b"boom")
        assert started.wait(10)
        meanwhile = checks.submit(b"meanwhile")  # (waits for the job at work)
        go.set()
        with pytest.raises(RuntimeError, match="cut short"):
            cut.result(10)
        assert meanwhile.result(10) == b"MEANWHILE"
        assert checks.submit(b"next").result(10) == b"NEXT"


async def test_bulks_too_small_for_a_table_alone_are_not_joined_into_one(app: LoglakeApp) -> None:
    """Two bulks of fewer than BULK_MIN_RECORDS documents each were checked as one table, which each alone is
    not (its records go through the hot store)."""
    action = b'{"create":{"_index":"filebeat-9"}}\n'
    document = msgspec.json.encode({"message": "m" * 400, "log": {"level": "info"}}) + b"\n"
    small = [(action + document) * (BULK_MIN_RECORDS - 1)] * 2
    assert len(small[0]) >= OFF_LOOP_BODY_BYTES
    assert elastic_routes.parsed_bulks(app, small) is None
    assert elastic_routes.parsed_bulks(app, [bulk_body(0), bulk_body(1)]) is not None


async def test_compressed_bodies_are_checked_as_before_not_joined(
    app: LoglakeApp, client: httpx.AsyncClient, spied: list[int]
) -> None:
    """A compressed body's size says little of what it inflates to: one of 130 KB held 1.5 MB of records, and the
    joining thread took dozens of them, inflated, at once. They are checked on the ingest threads as before."""

    def random_lines(body: bytes) -> bytes:  # (random hex in each line: a body that compresses to half)
        return b"\n".join(line.replace(b"x" * 180, os.urandom(200).hex().encode()) for line in body.split(b"\n"))

    bodies = [gzip.compress(random_lines(records_body(b))) for b in range(2)]
    assert all(OFF_LOOP_BODY_BYTES <= len(body) < JOIN_BELOW_BYTES for body in bodies)  # (as sent: joinable)
    headers = {**NDJSON, "content-encoding": "gzip"}
    answers = await while_the_ingest_threads_are_busy(
        app, [client.post("/logs", content=b, headers=headers) for b in bodies]
    )
    assert [answer.status_code for answer in answers] == [201, 201]
    assert spied == []
