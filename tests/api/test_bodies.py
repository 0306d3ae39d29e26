"""Request bodies at the edge: nesting past what a decoder follows, byte order marks, NDJSON sent as JSON,
and bodies the server answers before reading (they are taken off the connection, within a bound)."""

from __future__ import annotations

import asyncio
import codecs
import gzip
import json
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loglake.api.app import LoglakeApp
from loglake.config import JSON_BODY_BYTES, Settings
from tests.conftest import asgi_client, key_for

JSON = {"content-type": "application/json"}
NDJSON = {"content-type": "application/x-ndjson"}


def nested(depth: int, kinds: str) -> bytes:
    """A JSON value nested `depth` levels, cycling through `kinds` ('o': object, 'a': array)."""
    opening, closing = [], []
    for level in range(depth):
        if kinds[level % len(kinds)] == "o":
            opening.append(b'{"k":')
            closing.append(b"}")
        else:
            opening.append(b"[")
            closing.append(b"]")
    return b"".join(opening) + b"1" + b"".join(reversed(closing))


@pytest.fixture(scope="module")
def shared_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LoglakeApp, str]]:
    data_dir: Path = tmp_path_factory.mktemp("bodies")
    app = LoglakeApp.from_settings(Settings(data_dir=data_dir, access_log="off", rate_limit=1e9, rate_burst=10**9))
    yield app, key_for(app, "admin", "bodies-admin")
    app.close()


def post(app: LoglakeApp, key: str, path: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    async def call() -> httpx.Response:
        async with asgi_client(app, key) as client:
            return await client.post(path, content=body, headers=headers)

    return asyncio.run(call())


# Every route that decodes a client's JSON, with the deep value placed where that body could hold it.
PLACES = {
    "logs, in attributes": ("/logs", JSON, lambda v: b'{"message": "m", "attributes": {"a": ' + v + b"}}"),
    "logs, a whole record": ("/logs", JSON, lambda v: b"[" + v + b"]"),
    "logs, the body": ("/logs", JSON, lambda v: v),
    "ndjson, second line": ("/logs", NDJSON, lambda v: b'{"message": "m"}\n{"message": "m", "attributes": ' + v + b"}"),
    "ndjson, a line": ("/logs", NDJSON, lambda v: v + b"\n"),
    "query, a field": ("/query", JSON, lambda v: b'{"sql": "SELECT 1", "limit": ' + v + b"}"),
    "query, the body": ("/query", JSON, lambda v: v),
    "admin keys, scopes": ("/admin/keys", JSON, lambda v: b'{"name": "deep", "scopes": ' + v + b"}"),
}


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    place=st.sampled_from(sorted(PLACES)),
    depth=st.one_of(st.integers(1, 12), st.integers(900, 3000)),
    kinds=st.text(alphabet="oa", min_size=1, max_size=3),
)
def test_nesting_of_any_depth_is_answered_never_with_a_500(
    shared_app: tuple[LoglakeApp, str], place: str, depth: int, kinds: str
) -> None:
    app, key = shared_app
    path, headers, build = PLACES[place]
    response = post(app, key, path, build(nested(depth, kinds)), headers)
    assert response.status_code < 500, response.text
    if depth > 12:  # never a valid body: a 400 that names the depth limit when that is what is wrong
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        text = error["message"] + json.dumps(error["details"])
        if error["code"] == "too_deep" or "deep" in text:
            assert "nest" in text and ("5 levels" in text or "flat object" in text), text


@pytest.mark.parametrize(
    ("path", "headers"),
    [("/logs", JSON), ("/logs", NDJSON), ("/query", JSON), ("/admin/keys", JSON)],
)
async def test_a_2_kb_body_nested_1000_deep_is_a_400_naming_the_limit(
    client: httpx.AsyncClient, path: str, headers: dict[str, str]
) -> None:
    deep = nested(1000, "o")
    body = {
        "/logs": b'{"message": "m", "attributes": ' + deep + b"}",
        "/query": b'{"sql": "SELECT 1", "x": ' + deep + b"}",
        "/admin/keys": b'{"name": "n", "x": ' + deep + b"}",
    }[path]
    response = await client.post(path, content=body, headers=headers)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    reason = error["message"] + " ".join(d["reason"] for d in error["details"])
    assert "nests too deeply" in reason
    assert ("at most 5 levels" if path == "/logs" else "flat object") in reason


async def test_attributes_at_every_depth_around_the_decoders_limit_are_400(client: httpx.AsyncClient) -> None:
    """Near the depth where the decoder gives up, a value it decoded must not make the attribute rule's own
    depth check give up in turn (a recursive check did, a few levels short of the decoder's limit)."""
    for depth in range(850, 1100):
        body = b'{"message": "m", "attributes": ' + nested(depth, "o") + b"}"
        response = await client.post("/logs", content=body, headers=JSON)
        assert response.status_code == 400, (depth, response.text)


# -- byte order marks and NDJSON sent as JSON -----------------------------------------------------

BOM = codecs.BOM_UTF8


async def test_a_utf8_byte_order_mark_is_accepted(client: httpx.AsyncClient) -> None:
    one = await client.post("/logs", content=BOM + b'{"message": "bom json"}', headers=JSON)
    assert one.status_code == 201, one.text
    lines = await client.post("/logs", content=BOM + b'{"message": "bom 1"}\n{"message": "bom 2"}\n', headers=NDJSON)
    assert lines.status_code == 201 and lines.json()["count"] == 2, lines.text
    packed = await client.post(
        "/logs", content=gzip.compress(BOM + b'[{"message": "bom gzip"}]'), headers={**JSON, "content-encoding": "gzip"}
    )
    assert packed.status_code == 201, packed.text
    recent = (await client.get("/logs/recent")).json()["logs"]
    assert sorted(r["message"] for r in recent) == ["bom 1", "bom 2", "bom gzip", "bom json"]

    query = await client.post("/query", content=BOM + b'{"sql": "SELECT 1 AS one"}', headers=JSON)
    assert query.status_code == 200 and query.json()["rows"] == [[1]], query.text
    key = await client.post("/admin/keys", content=BOM + b'{"name": "bom", "scopes": ["read"]}', headers=JSON)
    assert key.status_code == 201, key.text


async def test_a_byte_order_mark_inside_the_body_is_still_refused(client: httpx.AsyncClient) -> None:
    response = await client.post("/logs", content=b'{"message": "a"}\n' + BOM + b'{"message": "b"}', headers=NDJSON)
    assert response.status_code == 400


@pytest.mark.parametrize(
    "body",
    [b'{"message": "a"}\n{"message": "b"}\n', b'{"message": "a"}{"message": "b"}'],  # the second: curl -d
)
async def test_ndjson_sent_as_json_says_which_content_type_to_use(client: httpx.AsyncClient, body: bytes) -> None:
    response = await client.post("/logs", content=body, headers=JSON)
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert "trailing characters" in message and "Content-Type: application/x-ndjson" in message
    assert await all_logs(client) == []
    assert (await client.post("/logs", content=body, headers=NDJSON)).status_code == 201


async def test_trailing_garbage_gets_no_ndjson_hint(client: httpx.AsyncClient) -> None:
    response = await client.post("/logs", content=b'{"message": "a"} oops', headers=JSON)
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert "trailing characters" in message and "ndjson" not in message.lower()


async def all_logs(client: httpx.AsyncClient) -> list[dict]:
    return (await client.get("/logs/recent")).json()["logs"]


# -- early answers: the rest of the body is received and dropped, within a bound ---------------------


class Client:
    """A raw ASGI client sending a body in chunks, recording what the app received and answered in order."""

    def __init__(self, body: bytes, chunk: int = 64 * 1024) -> None:
        self.chunks = [body[i : i + chunk] for i in range(0, len(body), chunk)] or [b""]
        self.events: list[str] = []
        self.answer = b""
        self.status = 0

    async def receive(self) -> dict:
        if not self.chunks:
            self.events.append("disconnect")
            return {"type": "http.disconnect"}
        self.events.append("receive")
        chunk = self.chunks.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(self.chunks)}

    async def send(self, message: dict) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.events.append("start")
        else:
            self.answer += message.get("body", b"")
            self.events.append("body" if message.get("more_body") else "end")

    async def post(self, app: LoglakeApp, key: str, length: int, path: str = "/logs") -> None:
        headers = [
            (b"authorization", f"Bearer {key}".encode()),
            (b"content-type", b"application/json"),
            (b"content-length", str(length).encode()),
        ]
        scope = {"type": "http", "method": "POST", "path": path, "raw_path": path.encode(), "query_string": b""}
        await app(scope | {"headers": headers}, self.receive, self.send)


async def test_a_body_over_the_limit_is_answered_then_read_to_its_end(settings: Settings) -> None:
    app = LoglakeApp.from_settings(replace(settings, max_body_bytes=1024 * 1024))
    try:
        body = b"x" * (1024 * 1024 + 300 * 1024)
        client = Client(body)
        await client.post(app, key_for(app), len(body))
        assert client.status == 413 and json.loads(client.answer)["error"]["code"] == "payload_too_large"
        assert client.chunks == [], "the rest of the body was left on the connection"
        assert client.events[:2] == ["start", "body"] and client.events[-1] == "end"
    finally:
        app.close()


async def test_a_body_far_over_the_limit_is_not_read_to_be_polite(settings: Settings) -> None:
    app = LoglakeApp.from_settings(replace(settings, max_body_bytes=64 * 1024))
    try:
        body = b"x" * (10 * 64 * 1024)
        client = Client(body, chunk=16 * 1024)
        await client.post(app, key_for(app), len(body))
        assert client.status == 413 and "receive" not in client.events
    finally:
        app.close()


async def test_a_refused_key_is_answered_before_the_body_is_read(app: LoglakeApp) -> None:
    body = b'{"message": "' + b"x" * 200_000 + b'"}'
    client = Client(body)
    await client.post(app, "llk_wrong", len(body))
    assert client.status == 401
    assert client.events.index("start") < client.events.index("receive"), client.events
    assert client.chunks == []


# Each ingest route with a content type it takes (the body itself is never read as its protocol's).
INGEST_ROUTES = [
    ("/logs", "application/json"),
    ("/v1/logs", "application/x-protobuf"),
    ("/loki/api/v1/push", "application/json"),
    ("/services/collector", "application/json"),
    ("/_bulk", "application/x-ndjson"),
]


@pytest.mark.parametrize(("path", "content_type"), INGEST_ROUTES)
async def test_a_body_the_http_layer_refuses_is_counted_on_every_ingest_route(
    settings: Settings, path: str, content_type: str
) -> None:
    """Not gzip, another encoding, too large once inflated or as sent: loglake_bodies_rejected_total counts them
    by code, whatever the protocol's form of the answer."""
    limits = {"max_body_bytes": 10_000, "max_bulk_body_bytes": 10_000}
    application = LoglakeApp.from_settings(replace(settings, **limits))
    try:
        async with asgi_client(application, key_for(application)) as client:
            bodies = [
                ({"content-encoding": "gzip"}, b"not gzip at all", 400),
                ({"content-encoding": "br"}, b"anything", 415),
                ({"content-encoding": "gzip"}, gzip.compress(b" " * 20_000), 413),
                ({}, b" " * 20_000, 413),
            ]
            for headers, body, status in bodies:
                response = await client.post(path, content=body, headers={"content-type": content_type, **headers})
                assert response.status_code == status, (headers, response.text)
            metrics = (await client.get("/metrics")).text
    finally:
        application.close()
    counted = dict(line.split(" ") for line in metrics.splitlines() if line.startswith("loglake_bodies_rejected"))
    assert counted == {
        'loglake_bodies_rejected_total{code="bad_gzip"}': "1",
        'loglake_bodies_rejected_total{code="unsupported_encoding"}': "1",
        'loglake_bodies_rejected_total{code="payload_too_large"}': "2",
    }


# Every JSON API route, with a body of valid JSON (its padding whitespace) just over the JSON APIs' bound; gzipped
# too where the route reads the body before anything else (a backtest first looks its rule up: here a 404).
JSON_API_CALLS = [
    ("/query", b'{"sql": "SELECT 1"}', (False, True)),
    ("/ask", b'{"question": "errors today?"}', (False, True)),
    ("/admin/keys", b'{"name": "big", "scopes": ["read"]}', (False, True)),
    ("/alerts/00000000000000000000000000/acknowledge", b'{"note": "on it"}', (False, True)),
    ("/rules/nosuchrule/backtest", b'{"since": "-1d"}', (False,)),
]


@pytest.mark.parametrize(
    ("path", "body", "gzipped"),
    [(path, body, gzipped) for path, body, forms in JSON_API_CALLS for gzipped in forms],
    ids=[f"{path}{', gzipped' if gzipped else ''}" for path, _, forms in JSON_API_CALLS for gzipped in forms],
)
def test_a_json_api_body_is_bounded_well_below_a_batch_of_records(
    shared_app: tuple[LoglakeApp, str], path: str, body: bytes, gzipped: bool
) -> None:
    """The JSON APIs take what such a request needs many times over (JSON_BODY_BYTES), not max_body_bytes,
    which is sized for batches of records: a body up to that was inflated and decoded on the event loop, holding
    every other request for tens of milliseconds."""
    app, key = shared_app
    assert app.settings.max_body_bytes > JSON_BODY_BYTES
    padded = body[:-1] + b" " * (JSON_BODY_BYTES - len(body) + 1) + b"}"
    headers = {**JSON, "content-encoding": "gzip"} if gzipped else JSON
    response = post(app, key, path, gzip.compress(padded) if gzipped else padded, headers)
    assert response.status_code == 413, response.text
    error = response.json()["error"]
    assert error["code"] == "payload_too_large" and str(JSON_BODY_BYTES) in error["message"]
    assert error["message"].endswith("; send less in one request")  # (not to split it into batches: it is no batch)
    assert ("after decompression" in error["message"]) is gzipped


async def test_post_logs_counts_an_empty_body_and_one_of_another_media_type(client: httpx.AsyncClient) -> None:
    """Both are refused whole (400, 415): loglake_bodies_rejected_total counted neither."""
    assert (await client.post("/logs", content=b"  ", headers={"content-type": "application/json"})).status_code == 400
    assert (await client.post("/logs", content=b"{}", headers={"content-type": "text/plain"})).status_code == 415
    metrics = (await client.get("/metrics")).text
    assert 'loglake_bodies_rejected_total{code="empty_body"} 1' in metrics
    assert 'loglake_bodies_rejected_total{code="unsupported_media_type"} 1' in metrics


@pytest.mark.parametrize("charset", ["latin-1", "ISO-8859-1", '"windows-1252"'])
async def test_a_json_body_in_another_charset_is_415_naming_it(client: httpx.AsyncClient, charset: str) -> None:
    """It was read as UTF-8 and refused as "not valid JSON in UTF-8", its charset unsaid."""
    for path in ("/logs", "/query"):
        sent = await client.post(
            path,
            content='{"message": "caf\u00e9"}'.encode("latin-1"),
            headers={"content-type": f"application/json; charset={charset}"},
        )
        assert sent.status_code == 415, sent.text
        assert sent.json()["error"]["message"].startswith(f"charset {charset} is not accepted: JSON is UTF-8")
    for utf8 in ("utf-8", "UTF8", '"utf-8"'):
        stored = await client.post(
            "/logs",
            content='{"message": "caf\u00e9"}'.encode(),
            headers={"content-type": f"application/json;charset={utf8}"},
        )
        assert stored.status_code == 201, stored.text


@pytest.mark.parametrize(
    ("path", "content_type", "body"),
    [
        ("/logs", "application/x-ndjson", b'{"message":"zipped"}\n'),
        ("/logs", "application/json", b'{"message":"zipped"}'),
        ("/_bulk", "application/x-ndjson", b'{"create":{"_index":"app"}}\n{"message":"zipped"}\n'),
        ("/services/collector/event", "application/json", b'{"event":"zipped"}'),
        ("/services/collector/raw", "text/plain", b"zipped\n"),
        ("/v1/logs", "application/json", b'{"resourceLogs":[]}'),
        ("/v1/logs", "application/x-protobuf", b"\n\x00"),
        ("/loki/api/v1/push", "application/json", b'{"streams":[]}'),
    ],
)
async def test_a_gzipped_body_without_its_content_encoding_is_told_to_add_it(
    client: httpx.AsyncClient, path: str, content_type: str, body: bytes
) -> None:
    """Each protocol's parser said only that it could not read it: `invalid character (byte 0)`, `Wire format was
    corrupt`, `The bulk request must be terminated by a newline`, `the body is not UTF-8`."""
    answer = await client.post(path, content=gzip.compress(body), headers={"content-type": content_type})
    assert answer.status_code == 400
    assert "add Content-Encoding: gzip" in answer.text
    assert (await client.post("/query", json={"sql": "SELECT count(*) FROM logs"})).json()["rows"] == [[0]]


def otlp_export(*messages: str) -> bytes:
    """An ExportLogsServiceRequest in protobuf of one record a message."""
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    export = ExportLogsServiceRequest()
    records = export.resource_logs.add().scope_logs.add().log_records
    for message in messages:
        records.add().body.string_value = message
    return export.SerializeToString()


@pytest.mark.parametrize(
    ("path", "content_type", "body"),
    [
        ("/logs", "application/x-ndjson", b'{"message":"one"}\n{"message":"two"}\n'),
        (
            "/_bulk",
            "application/x-ndjson",
            b'{"create":{"_index":"a"}}\n{"message":"one"}\n{"create":{"_index":"a"}}\n{"message":"two"}\n',
        ),
        ("/services/collector/event", "application/json", b'{"event":"one"}{"event":"two"}'),
        ("/services/collector/raw", "text/plain", b"one\ntwo\n"),
        ("/v1/logs", "application/x-protobuf", otlp_export("one", "two")),
        (
            "/loki/api/v1/push",
            "application/json",
            b'{"streams":[{"stream":{},"values":[["%d","one"],["%d","two"]]}]}' % ((time.time_ns(),) * 2),
        ),
    ],
    ids=["logs", "bulk", "hec-event", "hec-raw", "otlp", "loki"],  # (the same in every xdist worker: no time in them)
)
async def test_a_body_of_several_gzip_members_is_read_whole(
    client: httpx.AsyncClient, path: str, content_type: str, body: bytes
) -> None:
    """Its halves gzipped one after the other (`cat a.gz b.gz`), as gzip and Go's and Java's readers take them: the
    first member alone was read, and what the others held was answered stored and dropped, or failed to parse."""
    half = len(body) // 2
    members = gzip.compress(body[:half]) + gzip.compress(body[half:])
    headers = {"content-type": content_type, "content-encoding": "gzip"}
    answer = await client.post(path, content=members, headers=headers)
    assert answer.status_code < 300, answer.text
    rows = (await client.post("/query", json={"sql": "SELECT message FROM logs ORDER BY 1"})).json()["rows"]
    assert rows == [["one"], ["two"]]


async def test_padding_after_gzip_data_is_ignored_and_other_bytes_refused(client: httpx.AsyncClient) -> None:
    headers = {"content-type": "application/json", "content-encoding": "gzip"}
    zipped = gzip.compress(b'{"message":"padded"}')
    assert (await client.post("/logs", content=zipped + b"\0" * 512, headers=headers)).status_code == 201
    refused = await client.post("/logs", content=zipped + b"trailing", headers=headers)
    assert refused.status_code == 400
    assert "8 bytes after its gzip data are not gzip" in refused.json()["error"]["message"]
