"""Real local receivers for alert delivery tests: a threaded HTTP server that records every request
and answers from a script (a status, headers, a delay, or a hold until the test releases it), and
alert rows written the way the detections database keeps them."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from loglake.sqlitedb import write_transaction


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]  # names in lower case
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


ENDLESS_CHUNK = 64 * 1024
ENDLESS_LIMIT = 256 * 1024 * 1024


@dataclass
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"ok"
    delay: float = 0.0  # seconds before answering (past a destination's timeout: a timeout)
    hold: threading.Event | None = None  # answer only once this is set
    trickle: float = 0.0  # seconds between the body's bytes, sent one by one (each wait shorter than a timeout)
    endless: bool = False  # a chunked body of 64 KiB chunks that ends only when the client stops reading


class Receiver:
    """An HTTP server on a free loopback port. `answers` are used one per request, in order (then
    `default`); `answer_for` (if set) decides instead. Every whole request is recorded, and the ones with
    an `Idempotency-Key` seen before are counted as repeats, as an idempotent receiver would drop them."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.endless_sent = 0  # bytes of endless bodies written (Answer.endless)
        self.answers: list[Answer] = []
        self.default = Answer()
        self.answer_for: Callable[[Received], Answer] | None = None
        self.arrived = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                if len(body) < length:  # the sender was killed mid-request: no receiver takes a cut body
                    self.close_connection = True
                    return
                got = Received("POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                with receiver.arrived:
                    receiver.requests.append(got)
                    answer = receiver.answer_for(got) if receiver.answer_for else None
                    if answer is None:
                        answer = receiver.answers.pop(0) if receiver.answers else receiver.default
                    receiver.arrived.notify_all()
                if answer.hold is not None:
                    answer.hold.wait(30)
                if answer.delay:
                    time.sleep(answer.delay)
                try:
                    self.send_response(answer.status)
                    for name, value in answer.headers.items():
                        self.send_header(name, value)
                    if answer.endless:
                        self.send_header("transfer-encoding", "chunked")
                        self.end_headers()
                        self.close_connection = True
                        chunk = b"%x\r\n%s\r\n" % (ENDLESS_CHUNK, b"x" * ENDLESS_CHUNK)
                        while receiver.endless_sent < ENDLESS_LIMIT:  # (bounded: a client that reads it all fails)
                            self.wfile.write(chunk)
                            receiver.endless_sent += ENDLESS_CHUNK
                        self.wfile.write(b"0\r\n\r\n")
                        return
                    self.send_header("content-length", str(len(answer.body)))
                    self.end_headers()
                    if answer.trickle:
                        for i in range(len(answer.body)):
                            self.wfile.write(answer.body[i : i + 1])
                            self.wfile.flush()
                            time.sleep(answer.trickle)
                    else:
                        self.wfile.write(answer.body)
                except OSError:  # the client gave up (a timeout) or was killed
                    pass

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def wait_for(self, count: int, timeout: float = 20.0) -> list[Received]:
        """The requests, once at least `count` arrived (AssertionError after `timeout` seconds)."""
        with self.arrived:
            if not self.arrived.wait_for(lambda: len(self.requests) >= count, timeout):
                raise AssertionError(f"{len(self.requests)} request(s) arrived, waited for {count}")
            return list(self.requests)

    def wait_until(self, done: Callable[[Receiver], bool], timeout: float = 60.0) -> None:
        """Until `done(self)` holds, checked at each request (AssertionError after `timeout` seconds)."""
        with self.arrived:
            if not self.arrived.wait_for(lambda: done(self), timeout):
                raise AssertionError(f"not done after {len(self.requests)} request(s)")

    def unique(self) -> dict[str, Received]:
        """The requests an idempotent receiver keeps: the first of each Idempotency-Key."""
        kept: dict[str, Received] = {}
        for request in self.requests:
            kept.setdefault(request.headers["idempotency-key"], request)
        return kept

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def receiver_fixture() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.close()


# -- alerts as the engine writes them ---------------------------------------------------------------

_counter = iter(range(1, 1_000_000))


def insert_alert(conn: sqlite3.Connection, **values: Any) -> dict[str, Any]:
    """An open alert with its `trigger` event, in one transaction as the engine writes them; `values`
    override the columns (lists and dicts are stored as JSON)."""
    n = next(_counter)
    alert: dict[str, Any] = {
        "id": f"alert-{n:06d}",
        "rule_id": "5f4c8e12-7a8b-4c2d-9e0f-1a2b3c4d5e6f",
        "rule_title": "Repeated authentication failures",
        "title": f"Authentication failures for user{n}",
        "level": "high",
        "tags": ["attack.t1110", "attack.credential-access"],
        "status": "open",
        "dedup_key": f"auth-failures:user{n}",
        "group_values": {"user": f"user{n}"},
        "first_seen_ms": 1_764_700_000_000,
        "last_seen_ms": 1_764_700_060_000,
        "match_count": 7,
        "window_start_ms": 1_764_699_900_000,
        "window_end_ms": 1_764_700_200_000,
        "evidence": [
            {
                "logId": "0193a1b2-0000-7000-8000-000000000001",
                "timestamp": 1_764_700_000_000,
                "service": "auth",
                "severity": "warning",
                "message": f"login failed for user{n} from 203.0.113.9",
                "attributes": {"user": f"user{n}"},
            }
        ],
        "query": "SELECT * FROM logs WHERE message LIKE '%login failed%'",
        "runbook": "https://runbooks.example/auth-failures",
        "destinations": None,
        "created_ms": 1_764_700_200_000,
        "updated_ms": 1_764_700_200_000,
    } | values
    stored = {k: json.dumps(v) if isinstance(v, list | dict) else v for k, v in alert.items()}
    columns = ", ".join(stored)
    with write_transaction(conn):
        conn.execute(f"INSERT INTO alerts ({columns}) VALUES ({', '.join('?' * len(stored))})", tuple(stored.values()))
        conn.execute(
            "INSERT INTO alert_events (alert_id, kind, at_ms) VALUES (?, 'trigger', ?)",
            (alert["id"], alert["created_ms"]),
        )
    return alert


def change_alert(
    conn: sqlite3.Connection, alert_id: str, kind: str, at_ms: int = 1_764_700_500_000, **values: Any
) -> None:
    """An update, acknowledgement or resolution: the alert's columns and the event, in one transaction."""
    values = {"update": {}, "acknowledge": {"status": "acknowledged"}, "resolve": {"status": "resolved"}}[kind] | values
    stored = {k: json.dumps(v) if isinstance(v, list | dict) else v for k, v in values.items()}
    with write_transaction(conn):
        if stored:
            sets = ", ".join(f"{k} = ?" for k in stored)
            conn.execute(f"UPDATE alerts SET {sets} WHERE id = ?", (*stored.values(), alert_id))
        conn.execute("INSERT INTO alert_events (alert_id, kind, at_ms) VALUES (?, ?, ?)", (alert_id, kind, at_ms))
