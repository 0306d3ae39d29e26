"""A lake of realistic shape for the ask tests: three days of varied records from six services,
flushed and compacted by the real lake code into the files and row groups the estimate reads."""

from __future__ import annotations

import random
from pathlib import Path

from loglake.lake.lake import Lake
from loglake.lake.objectstore import LocalObjectStore
from loglake.model import Severity
from loglake.store.sqlite import SQLiteHotStore
from tests.lake.test_flush import DAY, START
from tests.store.contract import record

SERVICES = ("api", "auth", "billing", "db", "payments", "web")
WORDS = [
    "request",
    "user",
    "session",
    "token",
    "timeout",
    "connection",
    "refused",
    "retry",
    "upstream",
    "cache",
    "miss",
    "hit",
    "login",
    "failed",
    "password",
    "accepted",
    "payment",
    "card",
    "declined",
    "order",
    "shipped",
    "queue",
    "backlog",
    "disk",
    "full",
    "latency",
    "slow",
    "query",
    "index",
    "rebuilt",
    "worker",
    "started",
    "stopped",
    "crashed",
    "restarted",
    "memory",
    "high",
    "cpu",
    "throttled",
]
DAYS = 3


def fill(store: SQLiteHotStore, per_day: int, seed: int = 7) -> None:
    """`per_day` records on each of DAYS days from START, spread over each whole day."""
    rng = random.Random(seed)
    step = DAY // per_day
    for day in range(DAYS):
        batch = []
        for i in range(per_day):
            severity = rng.choices(list(Severity), weights=(10, 60, 15, 12, 3))[0]
            words = " ".join(rng.choices(WORDS, k=rng.randint(4, 24)))
            attributes = b'{"user":"u%d","ms":%d}' % (rng.randint(1, 500), rng.randint(1, 5000))
            batch.append(
                record(
                    START + day * DAY + i * step + rng.randint(0, step - 1),
                    f"{words} #{rng.randint(1, 10**6)}",
                    service=rng.choice(SERVICES),
                    severity=severity,
                    attributes=attributes if rng.random() < 0.7 else None,
                )
            )
        store.put(batch)


def build_lake(data_dir: Path, per_day: int = 30_000) -> tuple[SQLiteHotStore, Lake]:
    """A data dir whose records are all in the lake, compacted (one or more files a day)."""
    store = SQLiteHotStore(data_dir / "hot.db")
    fill(store, per_day)
    lake = Lake(store, LocalObjectStore(data_dir / "lake"), data_dir, clock=lambda: (START + (DAYS + 1) * DAY) / 1000)
    lake.flush(everything=True)
    lake.compact()
    return store, lake
