"""Property tests: any valid record round-trips exactly; any invalid record is refused and stores nothing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loglake.api.app import LoglakeApp
from loglake.config import Settings
from tests.conftest import asgi_client, key_for

# The severities and their aliases as the design states them (written out, not taken from the code).
SEVERITIES = {
    "debug": "debug",
    "trace": "debug",
    "info": "info",
    "notice": "info",
    "warning": "warning",
    "warn": "warning",
    "error": "error",
    "err": "error",
    "critical": "critical",
    "fatal": "critical",
}
NAMES = st.from_regex(r"[A-Za-z0-9._-]{1,128}", fullmatch=True)
JSON_SCALARS = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=40)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
NOW_MS = int(time.time() * 1000)

VALID_RECORDS = st.fixed_dictionaries(
    {"message": st.text(min_size=1, max_size=300)},
    optional={
        "timestamp": st.integers(100_000_000_000, NOW_MS),
        "service": NAMES,
        "log_type": NAMES,
        "severity": st.sampled_from(sorted(SEVERITIES)).flatmap(
            lambda s: st.sampled_from([s, s.upper(), s.capitalize()])
        ),
        "attributes": st.dictionaries(st.text(max_size=12), JSON_VALUES, max_size=6),
    },
)

INVALID_RECORDS = st.one_of(
    st.fixed_dictionaries({"message": st.just("")}),
    st.fixed_dictionaries({"message": st.integers() | st.lists(st.text()) | st.none()}),
    st.fixed_dictionaries(
        {
            "message": st.just("m"),
            "service": st.text(min_size=1).filter(
                lambda s: not all(c.isascii() and (c.isalnum() or c in "._-") for c in s) or len(s) > 128
            ),
        }
    ),
    st.fixed_dictionaries(
        {"message": st.just("m"), "severity": st.text().filter(lambda s: s.lower() not in SEVERITIES)}
    ),
    st.fixed_dictionaries(
        {
            "message": st.just("m"),
            "timestamp": st.floats(allow_nan=False, allow_infinity=False) | st.text("abcxyz :-", max_size=10),
        }
    ),
    st.fixed_dictionaries({"message": st.just("m"), "attributes": st.lists(st.integers()) | st.text()}),
    st.text(min_size=1, max_size=20)
    .filter(lambda k: k not in {"id", "timestamp", "service", "log_type", "severity", "message", "attributes"})
    .map(lambda unknown: {"message": "m", unknown: 1}),
    st.integers() | st.text() | st.lists(st.integers(), max_size=2),
)


@pytest.fixture(scope="module")
def shared_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LoglakeApp, str]]:
    """One app for all examples (a fresh one per example would dominate the run time)."""
    data_dir: Path = tmp_path_factory.mktemp("props")
    # Any plausible time round-trips: no retention, which would refuse the oldest (tested in test_logs.py).
    unlimited = Settings(data_dir=data_dir, access_log="off", rate_limit=1e9, rate_burst=10**9, retention_days=0)
    app = LoglakeApp.from_settings(unlimited)
    yield app, key_for(app, "admin", "props-admin")
    app.close()


def run(coro):  # hypothesis drives sync tests; each example runs its own small event loop
    return asyncio.run(coro)


def expected_severity(given_value: str | None) -> str:
    return SEVERITIES[given_value.lower()] if given_value else "info"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(record=VALID_RECORDS)
def test_valid_records_round_trip(shared_app: tuple[LoglakeApp, str], record: dict) -> None:
    app, key = shared_app

    async def scenario() -> None:
        async with asgi_client(app, key) as client:
            response = await client.post("/logs", json=record)
            assert response.status_code == 201, response.text
            got = (await client.get(f"/logs/{response.json()['logId']}")).json()
        assert got["message"] == record["message"]
        assert got["service"] == record.get("service", "default")
        assert got["log_type"] == record.get("log_type", "application")
        assert got["severity"] == expected_severity(record.get("severity"))
        assert got["attributes"] == record.get("attributes", {})
        if "timestamp" in record:
            assert got["timestamp"] == record["timestamp"]

    run(scenario())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(good=st.lists(VALID_RECORDS, max_size=3), bad=INVALID_RECORDS, position=st.integers(0, 3))
def test_invalid_records_are_refused_and_store_nothing(
    shared_app: tuple[LoglakeApp, str], good: list[dict], bad: object, position: int
) -> None:
    app, key = shared_app
    batch = [*good]
    batch.insert(min(position, len(batch)), bad)

    async def scenario() -> None:
        async with asgi_client(app, key) as client:
            before = app.store.count()
            response = await client.post("/logs", json=batch)
            assert response.status_code == 400, response.text
            details = response.json()["error"]["details"]
            assert min(position, len(good)) in {d["index"] for d in details}
            assert app.store.count() == before

    run(scenario())
