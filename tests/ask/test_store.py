"""The stores of asking, one contract for both: ask.db (SQLite) and the AWS table (DynamoDB through a
real moto server). Conversations are their owner's and expire; cached answers expire; the daily token
budget is kept by reservation. And for ask.db: a write locked out past the busy timeout says so."""

from __future__ import annotations

import sqlite3
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from loglake.ask.store import ASK_DB, CACHE_MS, AskStore, AskStoreBusy, NoSuchConversation
from loglake.aws.ask_store import DynamoDBAskStore
from tests.conftest import Clock
from tests.moto_server import lambda_environment

HOUR_MS = 3_600_000
DAY = "2026-11-04"


@pytest.fixture
def clock() -> Clock:
    return Clock(1_793_750_400.0)  # 2026-11-04 00:00 UTC


@pytest.fixture(params=["sqlite", "dynamodb"])
def store(request: pytest.FixtureRequest, tmp_path: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch) -> Iterator:
    if request.param == "sqlite":
        found = AskStore(tmp_path, clock, HOUR_MS)
    else:
        endpoint = request.getfixturevalue("moto_endpoint")
        lambda_environment(monkeypatch, "eu-west-1", AWS_ENDPOINT_URL=endpoint)
        client = boto3.client("dynamodb")
        table = f"ask-{uuid.uuid4().hex[:8]}"
        DynamoDBAskStore.create_table(client, table)
        found = DynamoDBAskStore(client, table, clock, HOUR_MS)
    yield found
    found.close()


def test_a_conversation_is_its_owner_s_and_keeps_its_turns_in_order(store) -> None:
    first = store.add_turn(None, "alice", "errors by service", {"sql": "SELECT 1", "n": 1})
    assert store.add_turn(first, "alice", "only payments", {"sql": "SELECT 2", "n": 2}) == first
    turns = store.turns(first, "alice")
    assert [(t.question, t.answer["n"]) for t in turns] == [("errors by service", 1), ("only payments", 2)]
    with pytest.raises(NoSuchConversation):
        store.turns(first, "bob")
    with pytest.raises(NoSuchConversation):
        store.add_turn(first, "bob", "mine now", {})
    with pytest.raises(NoSuchConversation):
        store.turns("no-such-id", "alice")
    assert len(store.turns(first, "alice")) == 2


def test_a_conversation_expires_unless_it_goes_on(store, clock: Clock) -> None:
    talk = store.add_turn(None, "alice", "q1", {})
    clock.now += 0.9 * HOUR_MS / 1000
    store.add_turn(talk, "alice", "q2", {})  # moves its expiry
    clock.now += 0.9 * HOUR_MS / 1000
    assert len(store.turns(talk, "alice")) == 2
    clock.now += 0.2 * HOUR_MS / 1000
    with pytest.raises(NoSuchConversation):
        store.turns(talk, "alice")
    with pytest.raises(NoSuchConversation):
        store.add_turn(talk, "alice", "q3", {})


def test_cached_answers_expire(store, clock: Clock) -> None:
    store.cache("k", {"sql": "SELECT 1"})
    assert store.cached("k") == {"sql": "SELECT 1"} and store.cached("other") is None
    clock.now += CACHE_MS / 1000
    assert store.cached("k") is None


def test_reservations_hold_the_budget_until_settled_or_released(store) -> None:
    assert store.reserve("openai", DAY, 600, 1000).granted
    refused = store.reserve("openai", DAY, 500, 1000)  # 600 held: 500 more would pass 1000
    assert not refused.granted and (refused.used, refused.held) == (0, 600)
    store.settle("openai", DAY, 600, 150, 50)  # the call used 200 of the 600 it held
    granted = store.reserve("openai", DAY, 800, 1000)
    assert granted.granted and (granted.used, granted.held) == (200, 0)
    store.release("openai", DAY, 800)  # that call failed: nothing used
    again = store.reserve("openai", DAY, 800, 1000)
    assert again.granted and (again.used, again.held) == (200, 0)
    full = store.reserve("openai", DAY, 1, 1000)
    assert not full.granted and (full.used, full.held) == (200, 800)
    assert store.reserve("anthropic", DAY, 1000, 1000).granted  # each provider has its own budget
    assert store.reserve("openai", "2026-11-05", 1000, 1000).granted  # and each day


def test_a_reservation_larger_than_the_budget_is_refused(store) -> None:
    refused = store.reserve("openai", DAY, 1001, 1000)
    assert not refused.granted and (refused.used, refused.held) == (0, 0)


def test_concurrent_reservations_never_pass_the_budget(tmp_path: Path, clock: Clock) -> None:
    """Sixteen threads, each with its own connection to ask.db (as processes have), reserve at once."""
    stores = [AskStore(tmp_path, clock, HOUR_MS) for _ in range(16)]
    start = threading.Barrier(len(stores))
    granted = []

    def reserve(one: AskStore) -> None:
        start.wait()
        granted.append(one.reserve("openai", DAY, 300, 1000).granted)

    threads = [threading.Thread(target=reserve, args=(one,)) for one in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for one in stores:
        one.close()
    assert granted.count(True) == 3 and len(granted) == 16


def test_a_write_locked_out_past_the_busy_timeout_says_so(tmp_path: Path, clock: Clock) -> None:
    store = AskStore(tmp_path, clock, HOUR_MS, busy_timeout_s=0.1)
    store.cache("warm", {})  # opened and migrated
    holder = sqlite3.connect(tmp_path / ASK_DB, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process writing ask.db
    try:
        with pytest.raises(AskStoreBusy, match=r"ask\.db stayed locked by another process's write for 0\.1 s"):
            store.reserve("openai", DAY, 10, 1000)
    finally:
        holder.execute("COMMIT")
        holder.close()
    assert store.reserve("openai", DAY, 10, 1000).granted
    store.close()
