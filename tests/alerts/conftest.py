"""Delivery under test: the real outbox in a data dir, alerting.yml in a rules folder, real receivers,
and a clock and jitter the test controls (no test waits for a backoff to pass)."""

from __future__ import annotations

import random
import sqlite3
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from loglake.alerts.db import open_alerts_db
from loglake.alerts.delivery import AlertDelivery
from loglake.retry import Backoff
from tests.alerts.receivers import Receiver

START = 1_764_700_300.0  # seconds; after the sample alerts' windows


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now

    @property
    def ms(self) -> int:
        return int(self.now * 1000)


class HighestDraw(random.Random):
    """Full jitter that always draws the bound, so a pause is exactly the exponential bound."""

    def uniform(self, a: float, b: float) -> float:
        return b


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "rules"
    folder.mkdir()
    return folder


@pytest.fixture
def alerts_db(data_dir: Path) -> Iterator[sqlite3.Connection]:
    conn = open_alerts_db(data_dir)
    yield conn
    conn.close()


def write_alerting(rules_dir: Path, text: str) -> Path:
    rules_dir.mkdir(parents=True, exist_ok=True)
    path = rules_dir / "alerting.yml"
    path.write_text(textwrap.dedent(text).lstrip())
    return path


@pytest.fixture
def make_delivery(data_dir: Path, rules_dir: Path, clock: Clock) -> Iterator[Callable[..., AlertDelivery]]:
    made: list[AlertDelivery] = []

    def make(alerting: str | None = None, **options: object) -> AlertDelivery:
        if alerting is not None:
            write_alerting(rules_dir, alerting)
        options = {"clock": clock, "backoff": Backoff(first=2.0, cap=600.0, rng=HighestDraw())} | options
        delivery = AlertDelivery(data_dir, rules_dir, **options)  # type: ignore[arg-type]
        made.append(delivery)
        return delivery

    yield make
    for delivery in made:
        delivery.stop()


def wait_idle(delivery: AlertDelivery, timeout: float = 30.0) -> None:
    """Until no attempt is under way (each ends within its destination's timeout)."""
    deadline = time.monotonic() + timeout
    while not delivery.idle():
        if time.monotonic() > deadline:
            raise AssertionError("attempts still under way")
        time.sleep(0.005)


def settle(delivery: AlertDelivery, rounds: int = 50) -> None:
    """Rounds until nothing more is due at the clock's time (later retries stay pending)."""
    for _ in range(rounds):
        delivery.step()
        wait_idle(delivery)
        due = delivery.outbox.next_due_ms()
        if due is None or due > int(delivery.clock() * 1000):
            return
    raise AssertionError("deliveries kept coming due")


def states(conn: sqlite3.Connection) -> list[tuple[str, str, str, int]]:
    """(destination, event kind, state, attempts) of every delivery, in event order."""
    return conn.execute(
        "SELECT destination, kind, state, attempts FROM deliveries ORDER BY event_seq, destination"
    ).fetchall()
