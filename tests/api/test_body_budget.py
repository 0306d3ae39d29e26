"""The request bodies the server holds at once are bounded (api/body_budget.py): a request reserves its body's bytes
before reading any, holds them until answered, and waits its turn when others hold the budget, answered 503 with
Retry-After after a bounded wait. A security trial: one ingest key's client with a thousand connections, each
sending a 10 MiB body, made the server hold 10 GB."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace

import pytest

from loglake.api import body_budget
from loglake.api.app import LoglakeApp
from loglake.api.body_budget import BodyBudget
from loglake.api.http import ApiError
from loglake.config import Settings
from tests.conftest import key_for

MIB = 2**20


class StalledClient:
    """A raw ASGI client that sends its body's first piece, then the rest only once let go."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.pieces = [body[: len(body) // 2], body[len(body) // 2 :]]
        self.go_on = asyncio.Event()
        self.started_reading = asyncio.Event()
        self.status = 0
        self.answer = b""
        self.events: list[str] = []

    async def receive(self) -> dict:
        self.events.append("receive")
        if len(self.pieces) == 1:
            self.started_reading.set()
            await self.go_on.wait()
        if not self.pieces:
            return {"type": "http.disconnect"}
        piece = self.pieces.pop(0)
        return {"type": "http.request", "body": piece, "more_body": bool(self.pieces)}

    async def send(self, message: dict) -> None:
        if message["type"] == "http.response.start":
            self.events.append("answer")
            self.status = message["status"]
            self.headers = dict(message["headers"])
        else:
            self.answer += message.get("body", b"")

    async def post(self, app: LoglakeApp, key: str) -> None:
        headers = [
            (b"authorization", f"Bearer {key}".encode()),
            (b"content-type", b"application/x-ndjson"),
            (b"content-length", str(len(self.body)).encode()),
        ]
        scope = {"type": "http", "method": "POST", "path": "/logs", "raw_path": b"/logs", "query_string": b""}
        await app(scope | {"headers": headers}, self.receive, self.send)


def ndjson(records: int, tag: str) -> bytes:
    return b"".join(json.dumps({"message": f"{tag} {i} " + "x" * 400}).encode() + b"\n" for i in range(records))


async def test_bodies_past_the_budget_wait_their_turn_then_are_answered_503(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(body_budget, "BODIES_BYTES", 2 * MIB)
    monkeypatch.setattr(body_budget, "WAIT_SECONDS", 0.5)
    app = LoglakeApp.from_settings(replace(settings, max_body_bytes=MIB, max_bulk_body_bytes=MIB))
    try:
        key = key_for(app)
        holding = [StalledClient(ndjson(2000, f"held{n}")) for n in range(2)]  # ~0.8 MiB each: two fit
        assert all(2 * len(c.body) > MIB for c in holding)
        tasks = [asyncio.create_task(c.post(app, key)) for c in holding]
        await asyncio.gather(*(c.started_reading.wait() for c in holding))

        # a third waits for room, and is told to come back once none was made in time
        refused = StalledClient(ndjson(2000, "refused"))
        refused.go_on.set()
        await refused.post(app, key)
        assert refused.status == 503 and refused.headers[b"retry-after"] == b"1"
        assert json.loads(refused.answer)["error"]["code"] == "server_busy"
        assert refused.events[0] == "answer"  # (refused before a byte of it was read; then it is drained)
        assert 'loglake_bodies_rejected_total{code="server_busy"} 1' in list(app.metrics.rejected_bodies.render())

        # one that waits is let in as soon as a held one is answered
        waiting = StalledClient(ndjson(2000, "waiting"))
        waiting.go_on.set()
        waits = asyncio.create_task(waiting.post(app, key))
        await asyncio.sleep(0.1)
        assert not waiting.started_reading.is_set()
        holding[0].go_on.set()
        await asyncio.wait_for(waits, 5)
        assert holding[0].status == 201 and waiting.status == 201
        holding[1].go_on.set()
        await asyncio.gather(*tasks)
        assert holding[1].status == 201 and app.body_budget.held == 0
    finally:
        app.close()


async def test_a_reservation_given_up_makes_way_and_one_granted_as_it_is_cancelled_goes_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(body_budget, "BODIES_BYTES", 10)
    budget = BodyBudget(10)
    first = await budget.reserve(6)
    late = asyncio.create_task(budget.reserve(6))
    behind = asyncio.create_task(budget.reserve(4))
    await asyncio.sleep(0)
    assert not late.done() and not behind.done()  # (first come, first served: the 4 waits behind the 6)
    late.cancel()
    assert await behind == 4 and budget.held == 10
    budget.release(first)
    budget.release(4)
    assert budget.held == 0

    held = await budget.reserve(10)
    granted_then_cancelled = asyncio.create_task(budget.reserve(5))
    await asyncio.sleep(0)
    budget.release(held)  # grants it...
    granted_then_cancelled.cancel()  # ...as its request is cancelled, before it ran again
    with pytest.raises(asyncio.CancelledError):
        await granted_then_cancelled
    assert budget.held == 0


async def test_a_body_larger_than_the_budget_still_gets_in_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(body_budget, "BODIES_BYTES", 10)
    monkeypatch.setattr(body_budget, "WAIT_SECONDS", 0.05)
    budget = BodyBudget(10)
    assert await budget.reserve(50) == 10
    with pytest.raises(ApiError) as refused:
        await budget.reserve(1)
    assert refused.value.status == 503


async def test_a_signed_request_without_a_body_reserves_none_of_the_budget(settings: Settings) -> None:
    """SigV4 reads the body to check its signature, so a signed GET goes through the body's reservation: with no
    Content-Length it reserved a whole body of the route's limit (10 MiB), and a signed live tail held it for as
    long as it streamed (some 25 tails left no room for any ingest). A request with neither Content-Length nor
    Transfer-Encoding has no body (RFC 9112 6.3)."""
    from tests.api.test_auth_sigv4 import sign

    app = LoglakeApp.from_settings(settings)
    try:
        new = app.keystore.create("signer", frozenset({"read"}), sigv4=True)
        url = "http://loglake.test/logs/tail"
        headers = [
            (k.lower().encode(), v.encode()) for k, v in sign("GET", url, b"", (new.access_key_id, new.secret)).items()
        ]
        streaming, leave = asyncio.Event(), asyncio.Event()
        held_while_streaming: list[int] = []

        async def receive() -> dict:
            if not held_while_streaming:
                held_while_streaming.append(-1)
                return {"type": "http.request", "body": b"", "more_body": False}
            await leave.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict) -> None:
            if message["type"] == "http.response.start":
                assert message["status"] == 200
                held_while_streaming[:] = [app.body_budget.held]
                streaming.set()

        scope = {"type": "http", "method": "GET", "path": "/logs/tail", "raw_path": b"/logs/tail", "query_string": b""}
        scope |= {"headers": [(b"host", b"loglake.test"), *headers]}
        task = asyncio.create_task(app(scope, receive, send))
        await asyncio.wait_for(streaming.wait(), 5)
        leave.set()
        await asyncio.wait_for(task, 5)
        assert held_while_streaming == [0] and app.body_budget.held == 0
    finally:
        app.close()


async def test_a_reservation_of_nothing_waits_for_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """A request that holds no body (one without, or one whose Content-Length is past the route's limit, refused 413
    at once) reserves 0 bytes: it waited behind a body waiting for room, and was answered 503 server_busy after
    WAIT_SECONDS rather than read (a signed GET) or told its body is too large."""
    monkeypatch.setattr(body_budget, "BODIES_BYTES", 10)
    monkeypatch.setattr(body_budget, "WAIT_SECONDS", 5)
    budget = BodyBudget(10)
    held = await budget.reserve(8)
    waiting = asyncio.create_task(budget.reserve(5))
    await asyncio.sleep(0)
    assert await asyncio.wait_for(budget.reserve(0), 0.5) == 0
    budget.release(held)
    assert await waiting == 5 and budget.held == 5
