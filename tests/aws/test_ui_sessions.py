"""The web UI's sessions and sign-ins under way in DynamoDB (moto server), on an injected clock."""

from __future__ import annotations

import uuid

import pytest

from loglake.aws.ui_sessions import DynamoDBSessions, SignInAttempt
from tests.conftest import Clock
from tests.store.test_dynamodb import dynamodb_client


@pytest.fixture
def sessions(moto_endpoint: str) -> tuple[DynamoDBSessions, Clock]:
    client = dynamodb_client(moto_endpoint, "eu-west-1")
    table = f"loglake-sessions-{uuid.uuid4().hex[:10]}"
    DynamoDBSessions.create_table(client, table)
    clock = Clock(1_796_000_000.0)
    return DynamoDBSessions(client, table, clock), clock


def test_a_session_lasts_its_lifetime_and_stores_only_a_hash(sessions) -> None:
    store, clock = sessions
    new = store.create("ada@example.com", frozenset({"read", "alerts"}), 3600)
    found = store.find(new.token)
    assert found is not None and found.user == "ada@example.com" and found.scopes == {"read", "alerts"}
    assert found.csrf_token == new.session.csrf_token and found.expires_at == 1_796_003_600
    assert found.key.name == "ada@example.com" and found.key.allows("read") and not found.key.allows("ingest")
    items = store.client.scan(TableName=store.table)["Items"]
    assert len(items) == 1 and new.token not in str(items)  # the cookie's token is not in the table
    assert items[0]["expires_at"] == {"N": "1796003600"}  # DynamoDB's TTL reads whole epoch seconds

    clock.now += 3599
    assert store.find(new.token) is not None
    clock.now += 1  # expired, though DynamoDB may not have deleted it yet
    assert store.find(new.token) is None
    assert store.find("a-made-up-token") is None


def test_sign_out_ends_a_session(sessions) -> None:
    store, _ = sessions
    new = store.create("ada@example.com", frozenset({"admin"}), 3600)
    store.end(new.token)
    assert store.find(new.token) is None
    store.end(new.token)  # again: nothing happens


def test_a_sign_in_is_taken_once_and_only_in_time(sessions) -> None:
    store, clock = sessions
    attempt = SignInAttempt("verifier-0123456789", "nonce-0123456789", "/ui/sql")
    store.remember_sign_in("state-1", attempt, 600)
    assert store.take_sign_in("state-1") == attempt
    assert store.take_sign_in("state-1") is None  # a replayed callback
    store.remember_sign_in("state-2", attempt, 600)
    clock.now += 600
    assert store.take_sign_in("state-2") is None
    assert store.client.scan(TableName=store.table)["Items"] == []
