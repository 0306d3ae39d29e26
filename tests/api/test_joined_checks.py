"""Smaller bulk bodies that wait for the joining ingest thread are checked together (api/joined_checks.py): each
is still its own batch, answered with its own records, and a body the check refuses gets its own error while the
bodies checked beside it are stored."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import msgspec
import pytest

from loglake.api.app import LoglakeApp
from loglake.api.joined_checks import JOIN_BELOW_BYTES, JoinedChecks
from loglake.api.routes import OFF_LOOP_BODY_BYTES
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


async def while_the_joining_thread_is_busy(
    app: LoglakeApp, checks: JoinedChecks, posts: list[Any]
) -> list[httpx.Response]:
    """The posts' answers, sent while the joining thread of `checks` checks another body: they all wait for it."""
    release = threading.Event()

    def held() -> bytes:  # (a body whose reading fails once released: nothing of it is stored)
        release.wait(30)
        raise ValueError("held")

    checks.submit(held, 1)
    sending = [asyncio.ensure_future(post) for post in posts]
    while app.ingest_jobs < len(posts):
        await asyncio.sleep(0.01)
    release.set()
    return list(await asyncio.gather(*sending))


def test_the_bodies_are_of_the_size_that_joins() -> None:
    for body in (records_body(0), bulk_body(0)):
        assert OFF_LOOP_BODY_BYTES <= len(body) < JOIN_BELOW_BYTES


async def test_bodies_waiting_are_checked_together_and_answered_each_with_its_own(
    app: LoglakeApp, client: httpx.AsyncClient, spied: list[int]
) -> None:
    posts = [client.post("/logs", content=records_body(b), headers=NDJSON) for b in range(3)]
    answers = await while_the_joining_thread_is_busy(app, app.ndjson_checks, posts)
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
    answers = await while_the_joining_thread_is_busy(app, app.ndjson_checks, posts)
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
    answers = await while_the_joining_thread_is_busy(app, app.bulk_checks, posts)
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
    answers = await while_the_joining_thread_is_busy(app, app.bulk_checks, posts)
    assert spied == [3]
    assert [answer.json()["errors"] for answer in answers] == [False, False, True]
    failed = [(i, item["create"]) for i, item in enumerate(answers[2].json()["items"]) if "error" in item["create"]]
    assert [(i, entry["status"]) for i, entry in failed] == [(3, 400)]
    assert "not a JSON object" in json.dumps(failed[0][1]["error"])
    sql = "SELECT service, count(*) FROM logs GROUP BY service ORDER BY service"
    rows = (await client.post("/query", json={"sql": sql})).json()["rows"]
    assert rows == [["svc-0", RECORDS], ["svc-1", RECORDS], ["svc-2", RECORDS - 1]]


def test_a_check_cut_short_leaves_no_body_waiting_for_good() -> None:
    """Whatever escapes a check (here a KeyboardInterrupt on its thread), its body is told and the next body is
    checked: the joining thread's count of jobs is not left at its most, which would hold every later body."""

    def check_alone(body: bytes, contended: bool) -> bytes:
        if body == b"boom":
            raise KeyboardInterrupt
        return body.upper()

    with ThreadPoolExecutor(2) as executor:
        checks: JoinedChecks[bytes] = JoinedChecks(executor, check_alone, lambda bodies: None)
        cut = checks.submit(lambda: b"boom", 4)
        with pytest.raises(RuntimeError, match="cut short"):
            cut.result(10)
        assert checks.submit(lambda: b"next", 4).result(10) == b"NEXT"
