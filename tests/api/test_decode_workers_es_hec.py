"""Elasticsearch bulks and Splunk HEC batches decoded in worker processes (decode_workers.py): the same answers
(bytes, but for a bulk's `took` and the record ids it answers for documents sent without an _id) and the same
records as decoded in the server's process, whatever the body holds; a worker killed while it holds a bulk costs
no record. Real worker processes, spawned as the server spawns them (fixtures of test_decode_workers.py)."""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import os
import signal
import uuid
from collections.abc import Callable

import httpx
import pytest

from loglake import decode_workers
from loglake.api.app import LoglakeApp
from loglake.protocols import elastic_columns
from tests.api.test_decode_workers import (  # noqa: F401 (the fixtures apps and clients)
    apps,
    clients,
    decoded_where,
    everything_stored,
    worker_processes,
)
from tests.api.test_decode_workers import started as workers_started
from tests.api.test_otlp import NOW_MS

PADDING = 1_500  # documents or events of ~250 bytes: a body the workers take
NDJSON = {"content-type": "application/x-ndjson"}
FILEBEAT_FILTER_PATH = "errors,items.*.error,items.*.status"


def ndjson(*lines: object) -> bytes:
    return b"".join((line if type(line) is bytes else json.dumps(line).encode()) + b"\n" for line in lines)


def padding_documents(index: str = "padding") -> list[object]:
    """PADDING create actions of ECS documents as Beats write them (random text: each a record of its own)."""
    lines: list[object] = []
    for i in range(PADDING):
        lines.append({"create": {"_index": index}})
        lines.append(
            {
                "@timestamp": f"2026-11-01T23:{i % 60:02d}:{i % 59:02d}.{i % 1000:03d}Z",
                "message": f"padding {i} {os.urandom(48).hex()}",
                "log": {"level": ("info", "WARN", "error", "debug")[i % 4]},
                "service": {"name": f"svc-{i % 3}"},
                "host": {"name": "h1"},
                "n": i,
            }
        )
    return lines


def ids_documents() -> list[object]:
    """Index and create actions with document ids (a UUID, a name, a number), each twice: a create of an id stored
    before conflicts, an index of one is kept as first stored (noop)."""
    lines: list[object] = []
    for i in range(PADDING // 2):
        doc_id: object = (str(uuid.UUID(int=i + 1)), f"doc-{i}", i)[i % 3]
        for action in ("create", "index") if i % 2 else ("index", "create"):
            lines.append({action: {"_index": "with-ids", "_id": doc_id}})
            lines.append({"@timestamp": NOW_MS - i, "message": f"document {i}", "log.level": "warn"})
    return lines


def failing_documents() -> list[object]:
    """Items that fail alone among the padding: no message, a message that is no text, a bad time, a time in the
    future, update and delete, no index, a source that is no JSON object."""
    return [
        {"create": {"_index": "bad"}},
        {"@timestamp": "2026-11-01T00:00:00Z", "msg_missing": True},
        {"index": {"_index": "bad"}},
        {"message": {"not": "text"}},
        {"create": {"_index": "bad"}},
        {"message": "bad time", "@timestamp": "yesterday"},
        {"create": {"_index": "bad"}},
        {"message": "from the future", "@timestamp": NOW_MS + 10 * 86_400_000},
        {"update": {"_index": "bad", "_id": "1"}},
        {"doc": {"message": "x"}},
        {"delete": {"_index": "bad", "_id": "1"}},
        {"create": {}},
        {"message": "no index"},
        {"create": {"_index": "bad"}},
        b"[1, 2, 3]",
        *padding_documents(),
    ]


def big_regular_bulk() -> bytes:
    """A bulk as Vector sends it, over 2 MiB: read by Arrow (elastic_columns.read_regular_bulk) in the worker."""
    lines = []
    for i in range(10_000):
        lines.append({"create": {"_index": "vector"}})
        lines.append(
            {
                "@timestamp": f"2026-11-01T23:{i % 60:02d}:{i % 59:02d}.{i % 1000:03d}Z",
                "message": f"line {i} {os.urandom(64).hex()}",
                "log.level": ("info", "error")[i % 2],
                "n": i,
            }
        )
    return b"".join(json.dumps(line, separators=(",", ":")).encode() + b"\n" for line in lines)  # (compact)


BULKS: dict[str, tuple[Callable[[], bytes], str]] = {  # each as (body, query)
    "good documents": (lambda: ndjson(*padding_documents()), ""),
    "good documents, Filebeat's filter_path": (lambda: ndjson(*padding_documents()), FILEBEAT_FILTER_PATH),
    "a bulk Arrow reads (2 MiB and more)": (big_regular_bulk, ""),
    "failing items": (lambda: ndjson(*failing_documents()), ""),
    "failing items, Filebeat's filter_path": (lambda: ndjson(*failing_documents()), FILEBEAT_FILTER_PATH),
    "index and create actions with ids": (lambda: ndjson(*ids_documents(), *padding_documents()), ""),
    "no final newline": (lambda: ndjson(*padding_documents())[:-1], ""),
    "a malformed action line": (lambda: ndjson(*padding_documents(), {"create": 5}, {"message": "x"}), ""),
}


async def bulk(client: httpx.AsyncClient, body: bytes, filter_path: str = "") -> httpx.Response:
    query = f"?filter_path={filter_path}" if filter_path else ""
    return await client.post(f"/_bulk{query}", content=body, headers=NDJSON)


def comparable(response: httpx.Response, body: bytes) -> object:
    """The answer's bytes, or where it has `took` or the record ids of documents sent without an _id (which
    differ between any two runs), its JSON with those replaced."""
    if b'"took"' not in response.content and b'"_id"' not in response.content:
        return response.content
    answer = response.json()
    answer.pop("took", None)
    sent = {str(meta["_id"]) for line in map(json.loads, body.splitlines()) for meta in _action_meta(line)}
    for item in answer.get("items", []):
        for entry in item.values():
            if entry.get("_id") not in sent:
                entry["_id"] = "(a record id)"
    return answer


def _action_meta(line: object) -> list[dict]:
    """An action line's metadata when it names a document id (as a list: none for other lines)."""
    if type(line) is dict and len(line) == 1 and next(iter(line)) in ("create", "index", "update", "delete"):
        meta = next(iter(line.values()))
        return [meta] if type(meta) is dict and "_id" in meta else []
    return []


async def started(app: LoglakeApp, client: httpx.AsyncClient, protocol: str) -> None:
    """Once the workers take a body: they start at the first one (bodies meanwhile are decoded in process)."""
    workers_started(app.decode_workers)
    assert (await decoded_where(client, protocol)).get("worker", 0) == 0


@pytest.mark.parametrize("name", BULKS)
async def test_a_worker_answers_a_bulk_and_stores_what_the_servers_process_does(
    apps: dict[int, LoglakeApp],  # noqa: F811 (test_decode_workers' fixtures)
    clients: dict[int, httpx.AsyncClient],  # noqa: F811
    name: str,
) -> None:
    make, filter_path = BULKS[name]
    body = make()
    assert len(body) >= decode_workers.MIN_BODY_BYTES
    assert ("Arrow" in name) == (elastic_columns.read_regular_bulk(body, None) is not None)
    in_process = await bulk(clients[0], body, filter_path)
    assert await decoded_where(clients[0], "elasticsearch") == {"server": 1}
    await started(apps[1], clients[1], "elasticsearch")
    by_worker = await bulk(clients[1], body, filter_path)
    assert await decoded_where(clients[1], "elasticsearch") == {"worker": 1}
    assert by_worker.status_code == in_process.status_code
    assert by_worker.headers["content-type"] == in_process.headers["content-type"]
    assert comparable(by_worker, body) == comparable(in_process, body)
    rows = await everything_stored(clients[1])
    assert rows == await everything_stored(clients[0])
    if "malformed" in name or "newline" in name:
        assert in_process.status_code == 400 and rows == []
        assert b"illegal_argument_exception" in in_process.content
    elif "failing" in name:
        assert in_process.status_code == 200 and b'"errors":true' in in_process.content
        assert len(rows) == PADDING
    elif "ids" in name:  # (a create of an id stored before conflicts, an index of one is a noop)
        assert b'"status":409' in in_process.content and b'"result":"noop"' in in_process.content
        assert len(rows) == PADDING + PADDING // 2
    else:
        assert in_process.status_code == 200 and b'"errors":false' in in_process.content
        assert len(rows) == (10_000 if "Arrow" in name else PADDING)


def hec_events(count: int = PADDING) -> list[dict]:
    """Events as the OpenTelemetry Collector's HEC exporter sends them (random text)."""
    return [
        {
            "time": (NOW_MS - i * 7) / 1000,
            "host": "h1",
            "source": "app",
            "sourcetype": "loghub",
            "event": f"event {i} {os.urandom(48).hex()}",
            "fields": {"service.name": f"svc-{i % 3}", "severity": ("info", "WARN")[i % 2], "n": str(i)},
        }
        for i in range(count)
    ]


def concatenated(events: list[object]) -> bytes:
    return b"".join(json.dumps(event).encode() for event in events)


def other_shapes() -> list[dict]:
    """Events the plain path does not take: objects with a message, `time` as text, fields with ids, no time."""
    return [
        {"event": {"message": "an object", "level": "error", "user": "joe"}, "time": str(NOW_MS / 1000 - 1)},
        {"event": {"no": "message"}, "index": "main"},
        {"event": [1, 2], "fields": {"trace_id": "5b8efff798038103d269b633813fc60c", "span_id": "eee19b7ec3c1b174"}},
        {"event": "no time"},
    ]


def raw_lines() -> bytes:
    return b"\n".join(f"raw line {i} {os.urandom(48).hex()}".encode() for i in range(PADDING * 2)) + b"\n"


RAW_QUERY = f"?host=h2&source=syslog&sourcetype=access_combined&index=web&time={NOW_MS / 1000 - 5}"
HEC_BODIES: dict[str, tuple[str, Callable[[], bytes], dict[str, str]]] = {  # (path, body, headers)
    "events as shippers send them": ("/services/collector/event", lambda: concatenated(hec_events()), {}),
    "events, gzipped": (
        "/services/collector",
        lambda: gzip.compress(concatenated(hec_events())),
        {"content-encoding": "gzip"},
    ),
    "events of other shapes": ("/services/collector/event", lambda: concatenated(other_shapes() + hec_events()), {}),
    "raw lines": (f"/services/collector/raw{RAW_QUERY}", raw_lines, {}),
    "a bad event (no event field)": ("/services/collector", lambda: concatenated([*hec_events(), {"time": 1}]), {}),
    "a bad event (a blank event)": ("/services/collector", lambda: concatenated([*hec_events(), {"event": ""}]), {}),
    "an event refused by the check": (
        "/services/collector",
        lambda: concatenated([*hec_events(), {"event": "future", "time": NOW_MS / 1000 + 10 * 86_400}]),
        {},
    ),
    "a malformed body": ("/services/collector", lambda: concatenated(hec_events()) + b'{"event": "x"', {}),
    "raw, not UTF-8": ("/services/collector/raw", lambda: raw_lines() + b"\xff\xfe\n", {}),
    "not gzip": (
        "/services/collector",
        lambda: b"\x1f\x8b\x00" + bytes(decode_workers.MIN_BODY_BYTES),
        {"content-encoding": "gzip"},
    ),
}


@pytest.mark.parametrize("name", HEC_BODIES)
async def test_a_worker_answers_a_hec_batch_and_stores_what_the_servers_process_does(
    apps: dict[int, LoglakeApp],  # noqa: F811 (test_decode_workers' fixtures)
    clients: dict[int, httpx.AsyncClient],  # noqa: F811
    name: str,
) -> None:
    path, make, headers = HEC_BODIES[name]
    body = make()
    in_process = await clients[0].post(path, content=body, headers=headers)
    assert await decoded_where(clients[0], "splunk") == {"server": 1}
    await started(apps[1], clients[1], "splunk")
    by_worker = await clients[1].post(path, content=body, headers=headers)
    # (a body the worker cannot inflate is left to the server's process, which answers its error)
    assert await decoded_where(clients[1], "splunk") == ({"server": 1} if name == "not gzip" else {"worker": 1})
    assert (by_worker.status_code, by_worker.content) == (in_process.status_code, in_process.content)
    rows = await everything_stored(clients[1])
    assert rows == await everything_stored(clients[0])
    if "bad" in name or "refused" in name or "malformed" in name or "not" in name:
        assert in_process.status_code in (400, 413) and rows == []
    else:
        assert in_process.json() == {"text": "Success", "code": 0}
        assert len(rows) == (2 * PADDING if "raw" in name else PADDING + ("other" in name) * len(other_shapes()))


async def test_a_bulk_whose_worker_is_killed_while_it_holds_it_is_answered_from_the_servers_process(
    apps: dict[int, LoglakeApp],  # noqa: F811 (test_decode_workers' fixtures)
    clients: dict[int, httpx.AsyncClient],  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A worker killed with a bulk in its hands (out of memory, say): the bulk is read in the server's process
    and answered as it would have been, every record stored; the next body starts a fresh pool."""
    body = ndjson(*failing_documents())
    in_process = await bulk(clients[0], body)
    await started(apps[1], clients[1], "elasticsearch")
    [worker] = worker_processes()
    os.kill(worker.pid, signal.SIGSTOP)  # (so that it cannot answer before it is killed)
    with caplog.at_level(logging.WARNING, "loglake.decode"):
        sending = asyncio.create_task(bulk(clients[1], body))
        await asyncio.sleep(2)  # (the bulk reaches the stopped worker: no answer can come meanwhile)
        assert not sending.done()
        os.kill(worker.pid, signal.SIGKILL)
        by_server = await sending
    # No line: the bulk was in the worker's hands, not refused by a pool found broken (which would say so).
    assert [r.getMessage() for r in caplog.records if r.name == "loglake.decode"] == []
    assert await decoded_where(clients[1], "elasticsearch") == {"server": 1}
    assert by_server.status_code == 200
    assert comparable(by_server, body) == comparable(in_process, body)
    assert await everything_stored(clients[1]) == await everything_stored(clients[0])
    workers_started(apps[1].decode_workers)
    [fresh] = worker_processes()
    assert fresh.pid != worker.pid
