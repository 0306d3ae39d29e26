"""POST /loki/api/v1/push: Loki's JSON push and its protobuf push in a snappy block, each mapping rule,
all-or-nothing checks and Loki's plain-text errors, against the in-process app.

The protobuf pushes are encoded here, byte by byte, from Loki's published push format (logproto.PushRequest:
1 streams {1 labels, 2 entries {1 timestamp {1 seconds, 2 nanos}, 2 line, 3 structuredMetadata {1 name,
2 value}}}), independently of the descriptor loglake builds to decode them."""

from __future__ import annotations

import asyncio
import gzip
import json
from dataclasses import replace
from pathlib import Path

import cramjam
import httpx
import pytest

from loglake.api.app import LoglakeApp
from loglake.config import Settings
from loglake.ingest import BULK_MIN_RECORDS
from tests.conftest import asgi_client, key_for

NOW_MS = 1_793_577_600_000  # 2026-11-02T00:00:00Z
NANOS = 1_000_000
JSON = {"content-type": "application/json"}
PROTOBUF = {"content-type": "application/x-protobuf"}


pytestmark = pytest.mark.clock_at(NOW_MS)  # the `app` fixture's: the bodies' times are placed from it


# -- protobuf, by hand -------------------------------------------------------------------------


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def field(number: int, payload: bytes | str | int) -> bytes:
    if isinstance(payload, int):
        return varint(number << 3) + varint(payload)
    data = payload.encode() if isinstance(payload, str) else payload
    return varint(number << 3 | 2) + varint(len(data)) + data


def entry(at_ns: int, line: str | bytes, metadata: dict[str, str | bytes] | None = None) -> bytes:
    seconds, nanos = divmod(at_ns, 1_000_000_000)
    timestamp = field(1, seconds) + (field(2, nanos) if nanos else b"")
    pairs = b"".join(field(3, field(1, k) + field(2, v)) for k, v in (metadata or {}).items())
    return field(1, timestamp) + field(2, line) + pairs


def protobuf_push(*streams: tuple[str, list[bytes]]) -> bytes:
    """A PushRequest of (labels, entries) in a snappy block, as Promtail sends it."""
    message = b"".join(
        field(1, field(1, labels) + b"".join(field(2, e) for e in entries)) for labels, entries in streams
    )
    return bytes(cramjam.snappy.compress_raw(message))


def json_push(*streams: tuple[dict, list[list]]) -> bytes:
    return json.dumps({"streams": [{"stream": labels, "values": values} for labels, values in streams]}).encode()


def ns(ms_before_now: int) -> int:
    return (NOW_MS - ms_before_now) * NANOS


async def push(client: httpx.AsyncClient, body: bytes, headers: dict[str, str] = PROTOBUF) -> httpx.Response:
    return await client.post("/loki/api/v1/push", content=body, headers=headers)


async def stored(client: httpx.AsyncClient) -> dict[str, dict]:
    page = await client.get("/logs/recent", params={"since": "2026-10-01T00:00:00Z", "limit": "1000"})
    assert page.status_code == 200, page.text
    return {r["message"]: r for r in page.json()["logs"]}


# -- the mapping -------------------------------------------------------------------------------


async def test_a_protobuf_push_maps_labels_and_metadata(client: httpx.AsyncClient) -> None:
    body = protobuf_push(
        (
            '{app="shop", service_name="checkout", level="WARN", log_type="access", env="prod", quote="a \\"b\\"\\n"}',
            [
                entry(ns(2000) + 123_456, "GET /cart 200"),
                entry(ns(1000), "GET /pay 502", {"trace": "t-1", "level": "error"}),
            ],
        ),
        ('{job="varlogs", filename="/var/log/syslog"}', [entry(ns(500), "kernel: eth0 up")]),
    )  # fmt: skip
    response = await push(client, body)
    assert (response.status_code, response.content) == (204, b"")
    records = await stored(client)
    cart, pay, kernel = records["GET /cart 200"], records["GET /pay 502"], records["kernel: eth0 up"]
    assert (cart["service"], cart["severity"], cart["log_type"]) == ("checkout", "warning", "access")
    assert cart["timestamp"] == NOW_MS - 2000  # nanoseconds cut to milliseconds
    assert cart["attributes"] == {"app": "shop", "env": "prod", "quote": 'a "b"\n'}
    assert pay["severity"] == "error" and pay["attributes"] == {
        "app": "shop",
        "env": "prod",
        "quote": 'a "b"\n',
        "trace": "t-1",
    }
    assert (kernel["service"], kernel["severity"], kernel["log_type"]) == ("varlogs", "info", "application")
    assert kernel["attributes"] == {"filename": "/var/log/syslog"}


TRACE = "5b8efff798038103d269b633813fc60c"
SPAN = "eee19b7ec3c1b174"


async def test_trace_and_span_ids_fill_the_records_columns_as_otlps_do(client: httpx.AsyncClient) -> None:
    body = protobuf_push(
        (
            f'{{job="api", trace_id="{TRACE}"}}',
            [
                entry(ns(4), "from the label"),
                entry(ns(3), "from metadata", {"trace_id": TRACE.upper(), "span_id": SPAN, "user": "ann"}),
                entry(ns(2), "not ids", {"trace_id": "1-5759e988-bd862e3fe1be46a994272793", "span_id": "0" * 16}),
            ],
        ),
        ('{job="batch"}', [entry(ns(1), "none")]),
    )
    assert (await push(client, body)).status_code == 204
    records = await stored(client)
    label, metadata = records["from the label"], records["from metadata"]
    assert (label["trace_id"], label.get("span_id"), label["attributes"]) == (TRACE, None, {})
    assert (metadata["trace_id"], metadata["span_id"], metadata["attributes"]) == (TRACE, SPAN, {"user": "ann"})
    not_ids = records["not ids"]  # another tracer's id, an all-zero span: attributes, as sent
    assert "trace_id" not in not_ids and "span_id" not in not_ids
    assert not_ids["attributes"] == {"trace_id": "1-5759e988-bd862e3fe1be46a994272793", "span_id": "0" * 16}
    assert "trace_id" not in records["none"]
    found = await client.get("/logs/search", params={"q": f"trace_id:{TRACE}", "since": "2026-10-01T00:00:00Z"})
    assert found.status_code == 200, found.text
    assert sorted(r["message"] for r in found.json()["logs"]) == ["from metadata", "from the label"]


@pytest.mark.parametrize(
    ("labels", "service"),
    [
        ({"service_name": "a", "service": "b", "app": "c", "job": "d"}, "a"),
        ({"service": "b", "app": "c", "job": "d"}, "b"),
        ({"app": "c", "job": "d"}, "c"),
        ({"job": "d"}, "d"),
        ({"host": "h"}, "default"),
        ({"job": "integrations/node exporter"}, "integrations_node_exporter"),
    ],
)
async def test_the_service_comes_from_the_first_service_label(
    client: httpx.AsyncClient, labels: dict, service: str
) -> None:
    assert (await push(client, json_push((labels, [[str(ns(1)), "line"]])), JSON)).status_code == 204
    record = (await stored(client))["line"]
    assert record["service"] == service
    if service == "integrations_node_exporter":
        assert record["attributes"] == {"job": "integrations/node exporter"}  # as sent, beside the valid name


async def test_the_service_labels_are_a_setting(settings: Settings) -> None:
    application = LoglakeApp.from_settings(replace(settings, loki_service_labels="component, job"))
    try:
        async with asgi_client(application, key_for(application, "admin")) as client:
            body = json_push(({"service_name": "ignored", "component": "db", "job": "x"}, [[str(ns(1)), "line"]]))
            assert (await push(client, body, JSON)).status_code == 204
            record = (await stored(client))["line"]
            assert record["service"] == "db" and record["attributes"] == {"service_name": "ignored", "job": "x"}
    finally:
        application.close()


@pytest.mark.parametrize(
    ("labels", "severity", "kept"),
    [
        ({"level": "debug"}, "debug", {}),
        ({"severity": "Err"}, "error", {}),
        ({"detected_level": "fatal"}, "critical", {}),
        ({"level": "verbose"}, "debug", {}),  # Serilog's word, as every route reads it
        ({"level": "chatty", "severity": "warn"}, "warning", {"level": "chatty"}),
        ({"level": "loud"}, "info", {"level": "loud"}),
    ],
)
async def test_the_severity_comes_from_the_level_labels(
    client: httpx.AsyncClient, labels: dict, severity: str, kept: dict
) -> None:
    assert (await push(client, json_push(({"job": "j", **labels}, [[str(ns(1)), "line"]])), JSON)).status_code == 204
    record = (await stored(client))["line"]
    assert (record["severity"], record["attributes"]) == (severity, kept)


async def test_a_protobuf_line_that_is_not_utf8_is_read_with_u_fffd(client: httpx.AsyncClient) -> None:
    """protobufjs writes a string cut in the middle of an emoji as bytes that are no UTF-8: the push was refused
    whole ("String field had bad UTF-8"), and winston-loki resent it, and all it logged after, for ever (the
    Node.js trial). Loki takes such a line as it is."""
    half = "Launch 🚀".encode()[:-2]  # (the emoji's last two bytes cut off)
    body = protobuf_push(('{job="j"}', [entry(ns(1), half), entry(ns(2), "fine")]))
    assert (await push(client, body)).status_code == 204
    assert sorted(await stored(client)) == ["Launch \ufffd", "fine"]


async def test_a_label_named_twice_refuses_the_push_as_loki_does(client: httpx.AsyncClient) -> None:
    """`{job="a", job="b"}` was stored as job b, a dropped without a word (an adversarial trial)."""
    body = protobuf_push(('{job="a", job="b"}', [entry(ns(1), "twice")]))
    answer = await push(client, body)
    assert answer.status_code == 400 and "'job' twice" in answer.text, answer.text
    assert await stored(client) == {}


async def test_protobuf_structured_metadata_that_is_not_utf8_is_read_with_u_fffd(client: httpx.AsyncClient) -> None:
    """As a line's: the pair was refused, and the whole push with it, where its labels and lines were read with
    U+FFFD (an adversarial trial)."""
    half = "🚀".encode()[:-2]
    body = protobuf_push(('{job="j"}', [entry(ns(1), "cut", {"user": b"ann " + half}), entry(ns(2), "fine")]))
    assert (await push(client, body)).status_code == 204
    records = await stored(client)
    assert records["cut"]["attributes"] == {"user": "ann \ufffd"} and "fine" in records


async def test_a_lone_surrogate_in_a_json_push_is_read_as_u_fffd(client: httpx.AsyncClient) -> None:
    """winston-loki's push of a cut emoji was refused whole, and it resent it (with all it logged after) for ever
    (the Node.js trial)."""
    body = json_push(({"job": "j"}, [[str(ns(1)), "Launch \ud83d"], [str(ns(2)), "fine \ud83d\ude80"]]))
    assert b"\\ud83d" in body  # (json.dumps writes the lone escape as JavaScript does)
    assert (await push(client, body, JSON)).status_code == 204
    assert sorted(await stored(client)) == ["Launch \ufffd", "fine \U0001f680"]


@pytest.mark.parametrize("gzipped", [False, True], ids=["plain", "gzip"])
async def test_a_json_push_with_structured_metadata(client: httpx.AsyncClient, gzipped: bool) -> None:
    body = json_push(
        ({"service_name": "api", "level": "info"}, [[str(ns(3)), "first"], [str(ns(2)), "second", {"user": "ann"}]])
    )
    headers = JSON
    if gzipped:
        body, headers = gzip.compress(body), {**JSON, "content-encoding": "gzip"}
    assert (await push(client, body, headers)).status_code == 204
    records = await stored(client)
    assert records["first"]["attributes"] == {} and records["second"]["attributes"] == {"user": "ann"}
    assert records["second"]["timestamp"] == NOW_MS - 2


async def test_a_bulk_sized_push_is_written_as_lake_parts(app: LoglakeApp, client: httpx.AsyncClient) -> None:
    count = BULK_MIN_RECORDS + 10
    body = protobuf_push(('{job="bulk", level="info"}', [entry(ns(i + 1), f"line {i}") for i in range(count)]))
    assert (await push(client, body)).status_code == 204
    assert app.runtime.store.count() == 0
    query = await client.post("/query", json={"sql": "SELECT count(*), min(service) FROM logs"})
    assert query.json()["rows"] == [[count, "bulk"]]
    metrics = (await client.get("/metrics")).text
    assert f'loglake_protocol_records_total{{protocol="loki",outcome="accepted"}} {count}' in metrics


async def test_a_bulk_sized_push_fills_trace_ids_from_metadata_too(app: LoglakeApp, client: httpx.AsyncClient) -> None:
    count = BULK_MIN_RECORDS + 10
    lines = [entry(ns(i + 1), f"line {i}", {"trace_id": TRACE, "user": "ann"}) for i in range(count)]
    assert (await push(client, protobuf_push(('{job="bulk"}', lines)))).status_code == 204
    assert app.runtime.store.count() == 0
    query = await client.post("/query", json={"sql": "SELECT count(*), min(trace_id), min(attributes) FROM logs"})
    assert query.json()["rows"] == [[count, TRACE, '{"user":"ann"}']]


# -- entries refused one by one, as Loki's distributor refuses them, and Loki's errors -------------------


async def test_an_entry_that_cannot_be_stored_is_refused_and_the_others_are_stored(
    app: LoglakeApp, client: httpx.AsyncClient
) -> None:
    body = protobuf_push(
        ('{job="a"}', [entry(ns(1), "fine")]),
        ('{job="b"}', [entry(ns(2), "fine too"), entry(NOW_MS * NANOS + 3 * 86_400_000 * NANOS, "from the future")]),
    )
    response = await push(client, body)
    assert response.status_code == 400 and response.headers["content-type"].startswith("text/plain")
    assert response.text.startswith(
        "1 of 3 entries cannot be stored, the other 2 were stored: stream 2, entry 2: timestamp"
    )
    query = await client.post("/query", json={"sql": "SELECT service, message FROM logs ORDER BY service"})
    assert query.json()["rows"] == [["a", "fine"], ["b", "fine too"]]
    metrics = (await client.get("/metrics")).text
    assert 'loglake_protocol_records_total{protocol="loki",outcome="rejected"} 1' in metrics
    assert 'loglake_protocol_records_total{protocol="loki",outcome="accepted"} 2' in metrics


@pytest.mark.parametrize("entries", [3, BULK_MIN_RECORDS + 10])
async def test_a_blank_line_in_a_tailed_file_is_stored_as_loki_stores_it(
    client: httpx.AsyncClient, entries: int
) -> None:
    """Loki stores an entry with an empty line: refused (a record needs a message), it made the push's answer a 400,
    for which Promtail logs an error and counts the whole batch dropped."""
    lines = [entry(ns(i + 1), "" if i == 1 else f"line {i}") for i in range(entries)]
    response = await push(client, protobuf_push(('{job="tail"}', lines)))
    assert response.status_code == 204, response.text
    json_push = {"streams": [{"stream": {"job": "json"}, "values": [[str(ns(1)), ""]]}]}
    assert (await client.post("/loki/api/v1/push", json=json_push)).status_code == 204
    sql = "SELECT service, count(*) FROM logs WHERE message = '(empty line)' GROUP BY 1 ORDER BY 1"
    assert (await client.post("/query", json={"sql": sql})).json()["rows"] == [["json", 1], ["tail", 1]]
    assert (await client.post("/query", json={"sql": "SELECT count(*) FROM logs"})).json()["rows"] == [[entries + 1]]


async def test_a_push_of_only_entries_that_cannot_be_stored_stores_none(
    app: LoglakeApp, client: httpx.AsyncClient
) -> None:
    future = NOW_MS * NANOS + 3 * 86_400_000 * NANOS
    response = await push(client, protobuf_push(('{job="a"}', [entry(future, "a"), entry(future + 1, "b")])))
    assert response.status_code == 400
    assert response.text.startswith("2 of 2 entries cannot be stored, so none was: stream 1, entry 1: timestamp")
    assert app.runtime.store.count() == 0
    metrics = (await client.get("/metrics")).text
    assert 'loglake_protocol_records_total{protocol="loki",outcome="rejected"} 2' in metrics


async def test_streams_and_entries_are_counted_from_1_as_the_readme_shows(client: httpx.AsyncClient) -> None:
    future = NOW_MS * NANOS + 3 * 86_400_000 * NANOS
    body = protobuf_push(('{job="a"}', [entry(ns(3), "one"), entry(ns(2), "two"), entry(future, "three")]))
    response = await push(client, body)
    assert response.status_code == 400
    named = "stream 1, entry 3: timestamp"
    assert named in response.text
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    assert f"`{named} ...`" in readme
    unreadable = json_push(({"job": "a"}, [[str(ns(1)), "fine"]]), ({"job": "b"}, [[str(ns(1)), "fine"], [str(ns(1))]]))
    assert "stream 2, entry 2: an entry is" in (await push(client, unreadable, JSON)).text
    bad_labels = protobuf_push(('{job="a"}', [entry(ns(1), "l")]), ("job=b", [entry(ns(1), "l")]))
    assert (await push(client, bad_labels)).text.startswith("stream 2: labels")


@pytest.mark.parametrize(
    ("body", "headers", "status", "reason"),
    [
        (b"not snappy at all", PROTOBUF, 400, "not snappy-compressed"),
        (bytes(cramjam.snappy.compress_raw(b"\x0a\xff\xff")), PROTOBUF, 400, "not a Loki PushRequest in protobuf"),
        (protobuf_push(("job=x", [entry(ns(1), "l")])), PROTOBUF, 400, "not of the form"),
        (protobuf_push(('{job="x"}', [entry(ns(1), "l") + field(3, b"\n\x05ab")])), PROTOBUF, 400, "metadata pair"),
        (protobuf_push(('{job="x" level="y"}', [entry(ns(1), "l")])), PROTOBUF, 400, "cannot read labels"),
        (b'{"streams": 1}', JSON, 400, "not a Loki push in JSON"),
        (b'{"streams": [', JSON, 400, "it ends before the JSON does (was it cut short?)"),
        (b"", JSON, 400, 'the body is empty: send {"streams": '),
        (json_push(({"job": "x"}, [["soon", "l"]])), JSON, 400,
         'stream 1, entry 1: the timestamp must be a string of Unix nanoseconds, like "1793577600000000000"'),
        (json_push(({"job": "x"}, [["²", "l"]])), JSON, 400, "stream 1, entry 1: the timestamp must be a string"),
        (json_push(({"job": "x"}, [[str(ns(1)), 5]])), JSON, 400, "stream 1, entry 1: the line must be a string"),
        (json_push(({"job": 5}, [[str(ns(1)), "l"]])), JSON, 400,
         "stream 1, the labels: each value must be a string, not an integer"),
        (json_push(({"job": "x"}, [[str(ns(1)), "l"], [str(ns(1)), "l", {"k": 5}]])), JSON, 400,
         "stream 1, entry 2, the structured metadata: each value must be a string, not an integer"),
        (json_push(({"job": "x"}, [[str(ns(1))]])), JSON, 400, "an entry is [timestamp, line]"),
        # (a stream without `values`, misspelt or Loki's old `entries` form, was answered 204 and stored nothing)
        (b'{"streams": [{"stream": {"job": "x"}, "value": [["1793577600000000000", "l"]]}]}', JSON, 400,
         "stream 1: has no `values`, which is required"),
        (b'{"streams": [{"labels": "{job=\\"x\\"}", "entries": [{"ts": "2026-11-02T00:00:00Z", "line": "l"}]}]}',
         JSON, 400, "stream 1: has no `values`"),
        (b"line", {"content-type": "text/plain"}, 415, "unsupported Content-Type"),
        (b'{"streams": []}', {}, 400, ") (no Content-Type: read as protobuf, as Loki reads it; a JSON push needs"
         " Content-Type: application/json); the push"),
        (b"x", {**PROTOBUF, "content-encoding": "br"}, 415, "Content-Encoding 'br' is not supported"),
    ],
)  # fmt: skip
async def test_a_malformed_push_gets_a_line_of_text_and_stores_nothing(
    app: LoglakeApp, client: httpx.AsyncClient, body: bytes, headers: dict, status: int, reason: str
) -> None:
    response = await push(client, body, headers)
    assert response.status_code == status and response.headers["content-type"] == "text/plain; charset=utf-8"
    assert reason in response.text, response.text
    if status == 400:  # said apart from the answer naming entries refused alone, the others stored
        assert response.text.endswith("; the push is refused whole: nothing of it was stored\n")
    assert app.runtime.store.count() == 0


async def test_an_entry_timed_before_1973_is_refused_alone_and_the_others_stored(
    app: LoglakeApp, client: httpx.AsyncClient
) -> None:
    """Such a time is milliseconds or seconds sent for nanoseconds: one entry of it refused the whole push, which
    Fluent Bit's loki output then drops, the good entries with it (a real-shipper trial)."""
    body = json_push(({"job": "x"}, [[str(ns(1)), "good"], ["1", "l"], ["1793577600000", "l"], [1793577600, "l"]]))
    response = await push(client, body, JSON)
    assert response.status_code == 400
    like = 'send Unix nanoseconds (19 digits), like "1793577600000000000"'
    assert response.text == (
        "3 of 4 entries cannot be stored, the other 1 was stored: "
        f"stream 1, entry 2: timestamp '1' is before 1973-03-03: {like}; "
        f"stream 1, entry 3: timestamp '1793577600000' is before 1973-03-03: it looks like epoch milliseconds; {like}; "
        f"stream 1, entry 4: timestamp 1793577600 is before 1973-03-03: it looks like epoch seconds; {like}\n"
    )
    assert list(await stored(client)) == ["good"]


async def test_an_empty_push_is_taken(client: httpx.AsyncClient) -> None:
    assert (await push(client, json_push(), JSON)).status_code == 204
    assert (await push(client, protobuf_push())).status_code == 204


async def test_pushes_need_an_ingest_key_as_post_logs_does(app: LoglakeApp) -> None:
    """Refused as Loki answers its errors: the message as text."""
    body = json_push(({"job": "x"}, [[str(ns(1)), "line"]]))

    def refused_as_text(response: httpx.Response, status: int, says: str) -> None:
        assert response.status_code == status, response.text
        assert response.headers["content-type"] == "text/plain; charset=utf-8"
        assert says in response.text and not response.text.startswith("{")

    async with asgi_client(app) as anonymous:
        refused_as_text(await push(anonymous, body, JSON), 401, "missing credentials")
    async with asgi_client(app, key_for(app, "read")) as reader:
        refused_as_text(await push(reader, body, JSON), 403, "ingest")
    async with asgi_client(app, key_for(app, "ingest", rate_limit=1, rate_burst=1)) as limited:
        assert (await push(limited, body, JSON)).status_code == 204
        refused = await push(limited, body, JSON)
        refused_as_text(refused, 429, "too many requests")
        assert refused.headers["retry-after"]


async def test_a_push_is_bounded_by_its_size_not_by_post_logs_record_count(settings: Settings) -> None:
    """Promtail and Alloy batch up to 1 MiB of lines, which can be far more than POST /logs's max_records."""
    application = LoglakeApp.from_settings(replace(settings, max_records=100), clock=lambda: NOW_MS / 1000)
    try:
        async with asgi_client(application, key_for(application, "admin")) as client:
            lines = [[str(ns(i + 1)), f"line {i}"] for i in range(150)]
            assert (await push(client, json_push(({"job": "many"}, lines)), JSON)).status_code == 204
            assert application.runtime.store.count() == 150
            native = "\n".join(json.dumps({"message": f"line {i}"}) for i in range(150))
            posted = await client.post("/logs", content=native, headers={"content-type": "application/x-ndjson"})
            assert posted.status_code == 413
    finally:
        application.close()


async def test_a_snappy_block_that_inflates_past_the_body_limit_is_refused_before_it_is_inflated(
    settings: Settings,
) -> None:
    """The body limit holds after decompression for a push's snappy block too, as for gzip: a block inflates up
    to ~21 times its size (a 9.8 MB one, 200 MiB inflated, held the server's memory at 1.1 GiB). Its header says
    how far before any of it is inflated; one within the limit is taken."""
    application = LoglakeApp.from_settings(replace(settings, max_body_bytes=64 * 1024), clock=lambda: NOW_MS / 1000)
    try:
        async with asgi_client(application, key_for(application, "admin")) as client:
            bomb = protobuf_push(('{job="a"}', [entry(ns(1), "a" * (100 * 1024))]))
            assert len(bomb) < 8 * 1024
            response = await push(client, bomb)
            assert response.status_code == 413, response.text
            assert response.headers["content-type"] == "text/plain; charset=utf-8"
            assert "snappy block inflates to" in response.text and "65536" in response.text
            assert application.runtime.store.count() == 0
            within = protobuf_push(('{job="a"}', [entry(ns(1), "a" * (60 * 1024))]))
            assert (await push(client, within)).status_code == 204
            assert application.runtime.store.count() == 1
    finally:
        application.close()


# -- a push sent again after a lost answer (Promtail's and Alloy's retries) -------------------------------------


def _lines(count: int) -> list[bytes]:
    return [entry(ns(i + 1), f"line {i}") for i in range(count)]


@pytest.mark.parametrize(
    ("body", "headers", "count"),
    [
        (protobuf_push(('{job="a"}', _lines(3))), PROTOBUF, 3),
        (protobuf_push(('{job="a"}', _lines(BULK_MIN_RECORDS + 10))), PROTOBUF, BULK_MIN_RECORDS + 10),
        (json_push(({"job": "a"}, [[str(ns(i + 1)), f"line {i}"] for i in range(3)])), JSON, 3),
    ],
    ids=["protobuf", "protobuf-bulk", "json"],
)
async def test_a_push_sent_again_is_stored_once_as_loki_stores_it(
    client: httpx.AsyncClient, body: bytes, headers: dict[str, str], count: int
) -> None:
    """Promtail and Alloy send a batch's bytes again after a timeout, a 429 or a 5xx; Loki drops entries identical
    to ones in their stream, so the retry of a push whose answer was lost adds nothing."""
    for _ in range(3):
        response = await push(client, body, headers)
        assert (response.status_code, response.content) == (204, b"")
    query = await client.post("/query", json={"sql": "SELECT count(*), count(DISTINCT message) FROM logs"})
    assert query.json()["rows"] == [[count, count]]
    metrics = (await client.get("/metrics")).text
    assert f'loglake_protocol_records_total{{protocol="loki",outcome="accepted"}} {count}' in metrics
    assert 'loglake_resent_pushes_total{protocol="loki"} 2' in metrics


async def test_a_push_sent_again_while_the_first_is_being_stored_is_stored_once(client: httpx.AsyncClient) -> None:
    """A retry after a client's timeout can arrive while the first push is still being stored."""
    body = protobuf_push(('{job="a"}', _lines(50)))
    answers = await asyncio.gather(*(push(client, body) for _ in range(4)))
    assert [a.status_code for a in answers] == [204] * 4
    query = await client.post("/query", json={"sql": "SELECT count(*) FROM logs"})
    assert query.json()["rows"] == [[50]]


async def test_a_partly_refused_push_sent_again_is_answered_alike_and_stores_nothing_more(
    client: httpx.AsyncClient,
) -> None:
    body = protobuf_push(('{job="a"}', [entry(ns(1), "fine"), entry(NOW_MS * NANOS + 3 * 86_400_000 * NANOS, "")]))
    first, again = await push(client, body), await push(client, body)
    assert first.status_code == again.status_code == 400
    assert again.text == first.text and first.text.startswith("1 of 2 entries cannot be stored, the other 1 was")
    query = await client.post("/query", json={"sql": "SELECT count(*) FROM logs"})
    assert query.json()["rows"] == [[1]]


async def test_pushes_of_other_bytes_are_each_stored(client: httpx.AsyncClient) -> None:
    """Only the same bytes are the same push: a push of one more entry, or the same entries in JSON, is new."""
    assert (await push(client, protobuf_push(('{job="a"}', _lines(2))))).status_code == 204
    assert (await push(client, protobuf_push(('{job="a"}', _lines(3))))).status_code == 204
    json_body = json_push(({"job": "a"}, [[str(ns(i + 1)), f"line {i}"] for i in range(2)]))
    assert (await push(client, json_body, JSON)).status_code == 204
    query = await client.post("/query", json={"sql": "SELECT count(*) FROM logs"})
    assert query.json()["rows"] == [[7]]
