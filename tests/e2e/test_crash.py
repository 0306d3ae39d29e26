"""kill -9 a real `loglake serve` while clients write: a 201 must survive, and only once."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from loglake.store.sqlite import SQLiteHotStore
from tests.conftest import ServerProcess
from tests.lake.test_flush import CRASH_SCRIPT, START, seed

pytestmark = pytest.mark.e2e

WRITERS = 6
ACKED_BEFORE_KILL = 50  # fewer would prove little
RUN_BEFORE_KILL_S = 1.0  # at least; longer on a busy machine, until ACKED_BEFORE_KILL records are in


@dataclass
class Writer:
    """One client thread's view: what the server acknowledged, and how the stream ended."""

    number: int
    run: str
    acked: dict[str, str] = field(default_factory=dict)  # logId -> message
    unexpected: list[str] = field(default_factory=list)
    ended_by: str | None = None

    def post(self, client: httpx.Client, sequence: int) -> None:
        """Even steps post one record, odd steps a JSON array of 2-4 records; every message is unique."""
        size = 1 if sequence % 2 == 0 else 2 + sequence % 3
        messages = [f"crash-{self.run}-w{self.number}-s{sequence}-r{i} payload" for i in range(size)]
        records = [{"message": m, "service": f"crash-w{self.number}", "severity": "info"} for m in messages]
        response = client.post("/logs", json=records[0] if size == 1 else records)
        if response.status_code != 201:
            self.unexpected.append(f"{response.status_code} {response.text[:200]}")
            return
        body = response.json()
        ids = [body["logId"]] if size == 1 else body["logIds"]
        if len(ids) != size:
            self.unexpected.append(f"{size} records acknowledged with {len(ids)} ids: {body}")
            return
        self.acked.update(zip(ids, messages, strict=True))

    def loop(self, url: str, key: str, stop: threading.Event) -> None:
        with httpx.Client(base_url=url, headers={"authorization": f"Bearer {key}"}, timeout=5.0) as client:
            sequence = 0
            while not stop.is_set():
                try:
                    self.post(client, sequence)
                except httpx.TransportError as e:
                    self.ended_by = type(e).__name__
                    return
                sequence += 1
        self.ended_by = "stopped"


def restart(data_dir: Path, port: int, log_path: Path) -> ServerProcess:
    return ServerProcess(data_dir, port, log_path).start()


def all_recent(client: httpx.Client, **params: str) -> list[dict]:
    """Every record GET /logs/recent returns, following next_cursor to the end."""
    logs: list[dict] = []
    cursor = None
    for _ in range(10_000):
        query = {"limit": "1000", **params, **({"cursor": cursor} if cursor else {})}
        response = client.get("/logs/recent", params=query)
        assert response.status_code == 200, response.text
        page = response.json()
        assert page["count"] == len(page["logs"])
        logs.extend(page["logs"])
        cursor = page["next_cursor"]
        if cursor is None:
            return logs
    raise AssertionError("next_cursor never ended")


def test_kill_9_loses_no_acknowledged_record_and_duplicates_none(server_factory, admin_key_of, tmp_path: Path):
    data_dir = tmp_path / "data"
    first = server_factory(data_dir)
    key = admin_key_of(first)
    run = uuid.uuid4().hex[:12]
    writers = [Writer(n, run) for n in range(WRITERS)]
    stop = threading.Event()
    threads = [threading.Thread(target=w.loop, args=(first.url, key, stop), daemon=True) for w in writers]
    for t in threads:
        t.start()
    time.sleep(RUN_BEFORE_KILL_S)
    deadline = time.monotonic() + 60
    while sum(len(w.acked) for w in writers) < ACKED_BEFORE_KILL and time.monotonic() < deadline:
        time.sleep(0.05)
    first.kill()
    for t in threads:
        t.join(10)
    stop.set()
    for t in threads:
        t.join(5)
    assert not any(t.is_alive() for t in threads), "a client thread hung after the kill"

    assert [w.unexpected for w in writers] == [[]] * WRITERS
    # Every client was mid-stream at the kill and noticed it as a failed request.
    assert all(w.ended_by not in (None, "stopped") for w in writers), [w.ended_by for w in writers]
    acked = {log_id: message for w in writers for log_id, message in w.acked.items()}
    assert len(acked) == sum(len(w.acked) for w in writers), "the server gave two records the same logId"
    assert len(acked) >= ACKED_BEFORE_KILL, (
        f"only {len(acked)} records acknowledged before the kill; the test proves little"
    )

    second = restart(data_dir, first.port, tmp_path / "server-restart.log")
    try:
        assert second.printed_keys() == [], "a restart on an existing data dir printed a new admin key"
        with httpx.Client(base_url=second.url, headers={"authorization": f"Bearer {key}"}, timeout=10) as client:
            missing = []
            for log_id, message in acked.items():
                response = client.get(f"/logs/{log_id}")
                if response.status_code != 200:
                    missing.append((log_id, response.status_code))
                    continue
                record = response.json()
                assert (record["logId"], record["message"]) == (log_id, message)
            assert missing == [], f"{len(missing)} of {len(acked)} acknowledged records lost: {missing[:5]}"

            stored = [r for r in all_recent(client, since="1h") if r["message"].startswith(f"crash-{run}-")]
        per_message = Counter(r["message"] for r in stored)
        assert [m for m, n in per_message.items() if n > 1] == [], "records stored twice"
        acked_messages = set(acked.values())
        assert acked_messages <= set(per_message), "acknowledged records missing from /logs/recent"
        assert len({r["logId"] for r in stored}) == len(stored)
        # Records in flight at the kill may or may not be there; those acknowledged keep their logId.
        assert {r["logId"] for r in stored if r["message"] in acked_messages} == set(acked)
    finally:
        second.kill()


def test_client_id_makes_a_retry_idempotent_across_kill_9(server_factory, admin_key_of, tmp_path: Path):
    data_dir = tmp_path / "data"
    first = server_factory(data_dir)
    key = admin_key_of(first)
    headers = {"authorization": f"Bearer {key}"}
    client_id = str(uuid.uuid4())
    message = f"idempotent-{uuid.uuid4().hex}"
    record = {"id": client_id, "message": message, "service": "retry", "severity": "warning"}

    created = httpx.post(first.url + "/logs", json=record, headers=headers, timeout=10)
    assert created.status_code == 201, created.text
    log_id = created.json()["logId"]
    assert log_id != client_id  # the server assigns its own time-ordered id
    first.kill()

    second = restart(data_dir, first.port, tmp_path / "server-restart.log")
    try:
        assert second.printed_keys() == []
        with httpx.Client(base_url=second.url, headers=headers, timeout=10) as client:
            retried = client.post("/logs", json=record)
            assert retried.status_code == 201, retried.text
            assert retried.json()["logId"] == log_id

            other = {"message": f"{message}-other", "service": "retry"}
            batch = client.post("/logs", json=[record, other])
            assert batch.status_code == 201, batch.text
            ids = batch.json()["logIds"]
            assert ids[0] == log_id and ids[1] != log_id

            stored = client.get(f"/logs/{log_id}")
            assert stored.status_code == 200
            assert stored.json()["message"] == message
            assert stored.json()["id"] == client_id
            found = all_recent(client, since="1h", service="retry", q=message)
        assert sorted(r["message"] for r in found) == [message, f"{message}-other"]
        assert [r["logId"] for r in found if r["message"] == message] == [log_id]
    finally:
        second.kill()


BULK_RECORDS = 1000  # ingest.BULK_MIN_RECORDS: batches take the bulk path straight into lake parts
DAY = 86_400_000


def bulk_loop(url: str, key: str, writer: int, run: str, stop: threading.Event, acked: list[str], sent: list[str]):
    """Post NDJSON bulk batches until the server goes away; note each batch's tag as sent, then as acked."""
    with httpx.Client(base_url=url, headers={"authorization": f"Bearer {key}"}, timeout=30.0) as client:
        number = 0
        while not stop.is_set():
            tag = f"bulk-{run}-w{writer}-b{number}"
            now_ms = int(time.time() * 1000)
            body = "\n".join(  # half of it yesterday: two lake parts, committed together or not at all
                json.dumps({"message": f"{tag} r{i}", "service": f"bulk-w{writer}", "timestamp": now_ms - i % 2 * DAY})
                for i in range(BULK_RECORDS)
            )
            sent.append(tag)
            try:
                response = client.post("/logs", content=body, headers={"content-type": "application/x-ndjson"})
            except httpx.TransportError:
                return
            if response.status_code == 201 and response.json()["count"] == BULK_RECORDS:
                acked.append(tag)
            number += 1


def test_kill_9_during_bulk_batches_keeps_each_batch_whole_or_absent(server_factory, admin_key_of, tmp_path: Path):
    data_dir = tmp_path / "data"
    first = server_factory(data_dir)
    key = admin_key_of(first)
    run = uuid.uuid4().hex[:12]
    acked: list[str] = []
    sent: list[str] = []
    stop = threading.Event()
    threads = [
        threading.Thread(target=bulk_loop, args=(first.url, key, n, run, stop, acked, sent), daemon=True)
        for n in range(3)
    ]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60
    while len(acked) < 6 and time.monotonic() < deadline:  # some batches in, and more under way
        time.sleep(0.05)
    first.kill()
    stop.set()
    for t in threads:
        t.join(30)
    assert len(acked) >= 6, "too few bulk batches acknowledged before the kill; the test proves little"

    second = restart(data_dir, first.port, tmp_path / "server-restart.log")
    try:
        with httpx.Client(base_url=second.url, headers={"authorization": f"Bearer {key}"}, timeout=30) as client:
            sql = (
                "SELECT regexp_extract(message, '^(\\S+) ', 1) AS tag, count(*), count(DISTINCT log_id) FROM logs"
                f" WHERE message LIKE 'bulk-{run}-%' GROUP BY tag"
            )
            response = client.post("/query", json={"sql": sql, "limit": 10000})
            assert response.status_code == 200, response.text
            stored = {tag: (n, distinct) for tag, n, distinct in response.json()["rows"]}
    finally:
        second.kill()
    assert set(acked) <= set(stored), "an acknowledged batch is missing"
    assert set(stored) <= set(sent)
    # Every batch there, acknowledged or caught by the kill after its commit, is whole and stored once.
    assert {tag: counts for tag, counts in stored.items() if counts != (BULK_RECORDS, BULK_RECORDS)} == {}


def test_a_server_says_what_it_undid_of_a_flush_a_killed_process_left_half_done(
    server_factory, admin_key_of, tmp_path: Path
):
    """A flush killed after it journaled its round (its parts written, its rows still hot): the next server's first
    maintenance turn undoes the round, flushes the records anew, and says so in its lake_maintenance line, so
    that an operator tells a recovery from a clean start (before: a line only if it flushed, without a word of
    the round undone)."""
    data = tmp_path / "data"
    store = SQLiteHotStore(data / "hot.db")
    everything = seed(store)
    store.close()
    crashed = subprocess.run(
        [sys.executable, "-c", CRASH_SCRIPT, str(data), "journaled", str(START + 3 * DAY), "False"],
        capture_output=True,
        timeout=60,
    )
    assert crashed.returncode == 9, crashed.stderr.decode()
    access = tmp_path / "access.log"
    server = server_factory(data, "--flush-interval-seconds", "1", "--access-log", str(access))
    key = admin_key_of(server)
    deadline = time.monotonic() + 30
    turns: list[dict] = []
    while not turns and time.monotonic() < deadline:
        time.sleep(0.2)
        lines = [json.loads(line) for line in access.read_text().splitlines()]
        turns = [line for line in lines if line.get("event") == "lake_maintenance"]
    assert turns and turns[0]["recovered_rounds"] == 1, turns
    assert turns[0]["flushed_records"] == len(everything)
    counted = httpx.post(
        f"{server.url}/query",
        json={"sql": "SELECT count(*), count(DISTINCT log_id) FROM logs"},
        headers={"authorization": f"Bearer {key}"},
    ).json()["rows"]
    assert counted == [[len(everything), len(everything)]]
