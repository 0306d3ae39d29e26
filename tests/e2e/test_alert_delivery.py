"""Alert delivery in a real `loglake serve`: it delivers in the background, and a kill -9 at any
moment of a delivery loses none and, after the receiver drops repeated idempotency keys, sends none
twice."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from loglake.alerts.db import open_alerts_db
from tests.alerts.conftest import write_alerting
from tests.alerts.receivers import Answer, Receiver, insert_alert

pytestmark = pytest.mark.e2e


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


def add_alerts(data_dir: Path, count: int) -> list[dict]:
    conn = open_alerts_db(data_dir)
    try:
        return [insert_alert(conn) for _ in range(count)]
    finally:
        conn.close()


def wait_for_cursor(data_dir: Path, seq: int) -> None:
    """Until the server's delivery has routed the events up to `seq`."""
    conn = open_alerts_db(data_dir)
    deadline = time.monotonic() + 30
    try:
        while True:
            with contextlib.suppress(sqlite3.OperationalError):  # its tables are not made yet
                if conn.execute("SELECT seq FROM delivery_cursor").fetchall() == [(seq,)]:
                    return
            assert time.monotonic() < deadline, f"the server did not route event {seq}"
            time.sleep(0.05)
    finally:
        conn.close()


def wait_until_all_sent(data_dir: Path, count: int) -> None:
    """Until the server has recorded `count` deliveries sent: the receiver may hold every idempotency key before then,
    when a kill cut a delivery short after the receiver had it (the next server recovers it and sends it again)."""
    conn = open_alerts_db(data_dir)
    deadline = time.monotonic() + 30
    try:
        while conn.execute("SELECT count(*) FROM deliveries WHERE state = 'sent'").fetchone() != (count,):
            assert time.monotonic() < deadline, "the server did not record every delivery sent"
            time.sleep(0.05)
    finally:
        conn.close()


def at(receiver: Receiver, path: str) -> list:
    """The requests that came to `path`, in arrival order."""
    return [r for r in list(receiver.requests) if r.path == path]


def kept(receiver: Receiver, path: str) -> list[int]:
    """The event ids an idempotent receiver at `path` kept, in arrival order."""
    return [r.json()["event_id"] for r in receiver.unique().values() if r.path == path]


def test_kill_9_during_deliveries_loses_none_and_repeats_only_idempotency_keys(tmp_path, server_factory, receiver):
    """Two destinations: each gets every event once (after an idempotent receiver drops repeated
    keys), and the one held up never holds up the other."""
    data_dir, rules_dir = tmp_path / "data", tmp_path / "rules"
    write_alerting(
        rules_dir,
        f"""
        destinations:
          hook: {{type: webhook, url: "{receiver.url}/in", concurrency: 1}}
          backup: {{type: webhook, url: "{receiver.url}/backup", concurrency: 1}}
        routes: [{{to: [hook, backup]}}]
        """,
    )
    held = threading.Event()

    def answer(request) -> Answer:
        # The 4th request to `hook` is held unanswered: the server is killed while it waits for the answer.
        return Answer(hold=held) if request.path == "/in" and len(at(receiver, "/in")) == 4 else Answer()

    receiver.answer_for = answer
    add_alerts(data_dir, 10)
    server = server_factory(data_dir, "--rules-dir", str(rules_dir))
    receiver.wait_until(lambda r: len(at(r, "/in")) == 4 and len(kept(r, "/backup")) == 10)  # `backup` goes on
    server.kill()  # kill -9 mid-delivery
    held.set()
    cut_short = at(receiver, "/in")[3].headers["idempotency-key"]

    add_alerts(data_dir, 5)  # the engine goes on while delivery is down
    server = server_factory(data_dir, "--rules-dir", str(rules_dir))
    receiver.wait_until(lambda r: len(r.unique()) >= 18)
    server.kill()  # and again, wherever it is now
    server = server_factory(data_dir, "--rules-dir", str(rules_dir))
    receiver.wait_until(lambda r: len(r.unique()) == 30)
    wait_until_all_sent(data_dir, 30)
    server.stop()

    for path in ("/in", "/backup"):  # each event once per destination: none lost
        assert sorted(kept(receiver, path)) == list(range(1, 16)), path
    keys: dict[tuple[str, int], set[str]] = {}
    for request in receiver.requests:
        keys.setdefault((request.path, request.json()["event_id"]), set()).add(request.headers["idempotency-key"])
    assert all(len(found) == 1 for found in keys.values())  # a resend reuses its key
    assert [r.headers["idempotency-key"] for r in receiver.requests].count(cut_short) >= 2
    conn = open_alerts_db(data_dir)
    assert conn.execute("SELECT destination, state, count(*) FROM deliveries GROUP BY 1, 2 ORDER BY 1").fetchall() == [
        ("backup", "sent", 15),
        ("hook", "sent", 15),
    ]
    conn.close()


def test_serve_picks_up_alerting_yml_changes_without_a_restart(tmp_path, server_factory, receiver):
    data_dir, rules_dir = tmp_path / "data", tmp_path / "rules"
    rules_dir.mkdir()
    server_factory(data_dir, "--rules-dir", str(rules_dir))
    add_alerts(data_dir, 1)  # no alerting.yml yet: kept, sent nowhere
    wait_for_cursor(data_dir, 1)
    assert receiver.requests == []
    write_alerting(
        rules_dir, f'destinations: {{h: {{type: webhook, url: "{receiver.url}/h"}}}}\nroutes: [{{to: [h]}}]\n'
    )
    add_alerts(data_dir, 1)
    receiver.wait_for(2)  # the new one, and the open one the file now routes (told as its trigger)
    assert sorted(r.json()["event_id"] for r in receiver.requests) == [1, 2]
