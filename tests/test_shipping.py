"""Reading lines from a stream and shipping them to a real `loglake serve` process."""

from __future__ import annotations

import contextlib
import gzip
import http.server
import io
import json
import os
import threading
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from loglake.client import ClientError, LoglakeClient
from loglake.retry import Backoff
from loglake.shipping import Line, LineReader, Shipper
from tests.conftest import ServerProcess, free_port

READ_MS = 1_796_000_000_000


def now_ms() -> int:
    return int(time.time() * 1000)


def read_all(reader: LineReader) -> list[Line]:
    lines = []
    while not reader.eof:
        lines.extend(reader.read())
    return lines


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    read_end, write_end = os.pipe()
    yield read_end, write_end
    for fd in (read_end, write_end):
        with contextlib.suppress(OSError):
            os.close(fd)


def test_lines_split_across_reads_and_the_last_without_a_newline(pipe: tuple[int, int]) -> None:
    read_end, write_end = pipe
    reader = LineReader(io.FileIO(read_end, closefd=False), lambda: READ_MS)
    os.write(write_end, b"\xef\xbb\xbffirst\r\nsec")
    assert [(line.number, line.text) for line in reader.read()] == [(1, "first\r")]  # the BOM is dropped
    os.write(write_end, b"ond\n\ncaf\xe9\nno newline at the end")
    os.close(write_end)
    lines = read_all(reader)
    assert [(line.number, line.text) for line in lines] == [
        (2, "second"),
        (3, ""),
        (4, "caf\ufffd"),  # bytes that are not UTF-8 do not stop the stream
        (5, "no newline at the end"),
    ]
    assert {line.read_ms for line in lines} == {READ_MS}
    assert reader.bytes_read == len(b"first\r\nsecond\n\ncaf\xe9\nno newline at the end")


def test_waiting_says_whether_input_is_ready(pipe: tuple[int, int]) -> None:
    read_end, write_end = pipe
    reader = LineReader(io.FileIO(read_end, closefd=False), lambda: READ_MS)
    assert reader.wait(0) is False  # the pipe is open and quiet
    os.write(write_end, b"one\n")
    assert reader.wait(None) is True
    assert [line.text for line in reader.read()] == ["one"]
    os.close(write_end)
    assert reader.wait(None) is True and reader.read() == [] and reader.eof


def test_a_line_too_long_is_skipped_and_the_next_one_read() -> None:
    data = b"short\n" + b"x" * 25 + b"\nafter\n" + b"y" * 40
    reader = LineReader(io.BytesIO(data), lambda: READ_MS, max_line_bytes=10)
    assert [(line.number, line.text) for line in read_all(reader)] == [
        (1, "short"),
        (2, None),
        (3, "after"),
        (4, None),
    ]


def test_a_stream_without_a_file_descriptor_is_read_too() -> None:
    reader = LineReader(io.BytesIO(b"a\nb\n"), lambda: READ_MS)
    assert reader.wait(None) is True
    assert [line.text for line in read_all(reader)] == ["a", "b"]


# -- shipping to a real server -------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_bodies(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server that takes bodies of at most 2 KiB, and messages of at most 300 bytes."""
    root = tmp_path_factory.mktemp("shipping")
    args = ("--max-body-bytes", "2048", "--max-message-bytes", "300", "--access-log", "off")
    process = ServerProcess(root / "data", free_port(), root / "server.log", args).start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def key(small_bodies: ServerProcess) -> str:
    return next(line.strip() for line in small_bodies.log_path.read_text().splitlines() if "llk_" in line)


def stored(server: ServerProcess, key: str, service: str) -> list[dict]:
    headers = {"authorization": f"Bearer {key}"}
    page = httpx.get(f"{server.url}/logs/recent", params={"service": service}, headers=headers, timeout=10).json()
    return list(reversed(page["logs"]))


class Refusals(list):
    def __call__(self, line_number: int, reason: str) -> None:
        self.append((line_number, reason))


def shipper(client: LoglakeClient, service: str, refusals: Refusals, **options: object) -> Shipper:
    settings = {"batch_size": 100, "max_wait": 60.0, "give_up_after": 30.0} | options
    return Shipper(client, {"service": service}, on_refused=refusals, **settings)


def test_refused_records_are_reported_and_the_others_stored(small_bodies: ServerProcess, key: str) -> None:
    service = f"refused-{uuid.uuid4().hex[:8]}"
    lines = ["plain one", "larger than this server takes " + "x" * 300, '{"msg": "structured"}', "plain two"]
    refusals = Refusals()
    with LoglakeClient(small_bodies.url, key) as client:
        ship = shipper(client, service, refusals)
        ship.ship(LineReader(io.BytesIO("\n".join(lines).encode()), now_ms))
    assert refusals == [(2, "message: is larger than 300 bytes of UTF-8")]
    assert (ship.tally.records, ship.tally.sent, ship.tally.refused) == (4, 3, 1)
    assert [r["message"] for r in stored(small_bodies, key, service)] == ["plain one", "structured", "plain two"]


def test_a_line_stored_with_a_change_says_so(small_bodies: ServerProcess, key: str) -> None:
    service = f"changed-{uuid.uuid4().hex[:8]}"
    data = (
        b"latin1 caf\xe9\n"
        b'{"severity":"EMERGENCY","message":"gcp emerg"}\n'
        b'{"msg":"d","a":{"b":{"c":{"d":{"e":{"f":1}}}}}}'
    )
    refusals, changes = Refusals(), Refusals()
    with LoglakeClient(small_bodies.url, key) as client:
        ship = shipper(client, service, refusals, on_changed=changes)
        ship.ship(LineReader(io.BytesIO(data), now_ms))
    assert refusals == []
    assert changes == [(1, "bytes that are no UTF-8 replaced by U+FFFD (the record has loglake.invalid_utf8: true)")]
    got = [(r["message"], r["severity"], r["attributes"]) for r in stored(small_bodies, key, service)]
    assert got == [
        ("latin1 caf\ufffd", "info", {"loglake.invalid_utf8": True}),
        ("gcp emerg", "critical", {}),
        ("d", "info", {"a": {"b": {"c": {"d": {"e": '{"f":1}'}}}}}),
    ]


def test_a_batch_too_large_is_halved_until_the_record_too_large_is_alone(small_bodies: ServerProcess, key: str) -> None:
    service = f"halved-{uuid.uuid4().hex[:8]}"
    lines = [f"line {i} " + "x" * 200 for i in range(12)]
    lines[7] = "too large for this server " + "y" * 3000
    refusals = Refusals()
    with LoglakeClient(small_bodies.url, key) as client:
        ship = shipper(client, service, refusals)
        ship.ship(LineReader(io.BytesIO("\n".join(lines).encode()), now_ms))
    assert [number for number, _ in refusals] == [8]
    assert "HTTP 413" in refusals[0][1]
    assert [r["message"] for r in stored(small_bodies, key, service)] == lines[:7] + lines[8:]


def test_a_due_batch_leaves_while_the_input_stays_open(
    small_bodies: ServerProcess, key: str, pipe: tuple[int, int]
) -> None:
    service = f"due-{uuid.uuid4().hex[:8]}"
    read_end, write_end = pipe
    refusals = Refusals()
    with LoglakeClient(small_bodies.url, key) as client:
        ship = shipper(client, service, refusals, max_wait=0.05)
        worker = threading.Thread(target=ship.ship, args=(LineReader(io.FileIO(read_end, closefd=False), now_ms),))
        worker.start()
        os.write(write_end, b"first\nsecond\n")
        deadline = time.monotonic() + 30
        while len(stored(small_bodies, key, service)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [r["message"] for r in stored(small_bodies, key, service)] == ["first", "second"]  # input still open
        assert worker.is_alive()
        os.write(write_end, b"third\n")
        os.close(write_end)
        worker.join(30)
    assert not worker.is_alive() and refusals == []
    assert [r["message"] for r in stored(small_bodies, key, service)] == ["first", "second", "third"]


class BrokenAfterOneRead(io.RawIOBase):
    def __init__(self, first: bytes) -> None:
        self.first: bytes | None = first

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self.first is None:
            raise OSError(5, "Input/output error")
        data, self.first = self.first, None
        return data


def test_what_was_read_is_sent_when_the_input_breaks(small_bodies: ServerProcess, key: str) -> None:
    service = f"broken-{uuid.uuid4().hex[:8]}"
    with LoglakeClient(small_bodies.url, key) as client:
        ship = shipper(client, service, Refusals())
        with pytest.raises(OSError, match="Input/output error"):
            ship.ship(LineReader(BrokenAfterOneRead(b"one\ntwo\n"), now_ms))
    assert [r["message"] for r in stored(small_bodies, key, service)] == ["one", "two"]


def test_an_unreachable_server_is_retried_then_given_up_on() -> None:
    retries: list[str] = []
    with LoglakeClient(f"http://127.0.0.1:{free_port()}", "llk_x") as client:
        ship = Shipper(
            client,
            {},
            batch_size=10,
            max_wait=1.0,
            give_up_after=1.0,
            on_refused=Refusals(),
            on_retry=lambda error, pause: retries.append(str(error)),
        )
        with pytest.raises(ClientError, match="cannot reach loglake"):
            ship.ship(LineReader(io.BytesIO(b"one\ntwo\n"), now_ms))
    assert retries and all("cannot reach loglake" in r for r in retries)
    assert (ship.tally.records, ship.tally.sent, ship.tally.unsent) == (2, 0, 2)


# -- answers a loglake server gives rarely, from a stand-in server ---------------------------------


class StandIn(http.server.BaseHTTPRequestHandler):
    """Answers POST /logs like loglake, except: 503 with Retry-After while `busy` counts down, and 500
    for any batch that holds the message "poison" (as a server bug tripped by one record would)."""

    busy = 0
    batches: list[list[str]] = []

    def do_POST(self) -> None:
        body = gzip.decompress(self.rfile.read(int(self.headers["content-length"])))
        messages = [json.loads(line)["message"] for line in body.splitlines()]
        StandIn.batches.append(messages)
        if StandIn.busy:
            StandIn.busy -= 1
            self.answer(503, {"error": {"code": "busy", "message": "busy", "details": []}}, {"retry-after": "7"})
        elif "poison" in messages:
            self.answer(500, {"error": {"code": "internal_error", "message": "internal error", "details": []}})
        else:
            self.answer(201, {"count": len(messages), "logIds": [f"id-{m}" for m in messages]})

    def answer(self, status: int, document: dict, headers: dict | None = None) -> None:
        data = json.dumps(document).encode()
        self.send_response(status)
        for name, value in {"content-type": "application/json", **(headers or {})}.items():
            self.send_header(name, value)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def stand_in() -> Iterator[str]:
    StandIn.busy, StandIn.batches = 0, []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), StandIn)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(10)


def test_a_record_that_makes_the_server_fail_is_found_and_reported(stand_in: str) -> None:
    pauses: list[float] = []
    refusals = Refusals()
    lines = [f"line {i}" for i in range(8)]
    lines[5] = "poison"
    with LoglakeClient(stand_in, "llk_x", backoff=Backoff(sleep=pauses.append)) as client:
        ship = shipper(client, "svc", refusals)
        ship.ship(LineReader(io.BytesIO("\n".join(lines).encode()), now_ms))
    assert [number for number, _ in refusals] == [6] and "HTTP 500" in refusals[0][1]
    stored_batches = [b for b in StandIn.batches if "poison" not in b]
    assert sorted(m for b in stored_batches for m in b) == sorted(lines[:5] + lines[6:])  # each once
    assert StandIn.batches.count(["poison"]) == 3 and len(pauses) == 2  # a lone record is tried 3 times


def test_busy_answers_are_retried_no_sooner_than_retry_after(stand_in: str) -> None:
    StandIn.busy = 2
    pauses: list[float] = []
    with LoglakeClient(stand_in, "llk_x", backoff=Backoff(sleep=pauses.append)) as client:
        ship = shipper(client, "svc", Refusals())
        ship.ship(LineReader(io.BytesIO(b"one\ntwo\n"), now_ms))
    assert ship.tally.sent == 2 and StandIn.batches == [["one", "two"]] * 3
    assert len(pauses) == 2 and all(pause >= 7 for pause in pauses)


class LakeUnreadableStandIn(StandIn):
    """Answers every GET as a server over a lake file removed outside loglake does."""

    gets = 0

    def do_GET(self) -> None:
        LakeUnreadableStandIn.gets += 1
        error = {"code": "lake_unreadable", "message": "a lake file could not be read from storage", "details": []}
        self.answer(503, {"error": error})


def test_a_lake_file_that_cannot_be_read_is_not_asked_again_and_again() -> None:
    """A 503 lake_unreadable was retried like a busy server's (six tries, a minute at most; `recent --follow`, for
    good), though a damaged or removed file does not come back."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), LakeUnreadableStandIn)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    pauses: list[float] = []
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        with (
            LoglakeClient(url, "llk_x", backoff=Backoff(sleep=pauses.append)) as client,
            pytest.raises(ClientError, match="HTTP 503: a lake file could not be read") as refused,
        ):
            client.recent({"since": "1h"})
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
    assert refused.value.code == "lake_unreadable" and LakeUnreadableStandIn.gets == 1 and pauses == []
