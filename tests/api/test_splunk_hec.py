"""Splunk's HTTP Event Collector in process, with requests as Splunk's documentation gives them: the mapping
of each event field, batches all-or-nothing, Splunk's status codes for bad data and bad tokens, raw and health."""

from __future__ import annotations

import base64
import dataclasses
import gzip
import json
import time
from collections.abc import Iterator

import httpx
import pytest

from loglake.api import splunk_routes
from loglake.api.app import LoglakeApp
from loglake.config import Settings
from loglake.ingest import BULK_MIN_RECORDS
from loglake.protocols.mapping import EXAMPLE_SECONDS
from tests.conftest import asgi_client, key_for

NOW_MS = 1_793_577_600_000  # 2026-11-02T00:00:00Z
# curl -d sends this content type; Splunk reads the body whatever it is.
FORM = {"content-type": "application/x-www-form-urlencoded"}


pytestmark = pytest.mark.clock_at(NOW_MS)  # the `app` fixture's: the bodies' times are placed from it


@pytest.fixture
def key(app: LoglakeApp) -> str:
    return key_for(app, "ingest,read")


@pytest.fixture
async def hec(app: LoglakeApp, key: str) -> Iterator[httpx.AsyncClient]:
    """A client sending the key as Splunk clients do."""
    async with asgi_client(app) as client:
        client.headers["authorization"] = f"Splunk {key}"
        yield client


async def stored(app: LoglakeApp, key: str, **params: str) -> list[dict]:
    async with asgi_client(app, key) as reader:
        response = await reader.get("/logs/recent", params={"since": "0", "limit": "1000", **params})
    return response.json()["logs"]


async def test_the_documented_event_with_every_field_is_mapped(
    app: LoglakeApp, key: str, hec: httpx.AsyncClient
) -> None:
    body = (
        b'{"time": 1793577590.25, "host": "localhost", "source": "random-data-generator", '
        b'"sourcetype": "my_sample_data", "index": "main", '
        b'"event": {"message": "Something happened", "severity": "WARN", "user": "joe"}, '
        b'"fields": {"device": "macbook", "users": ["joe", "bob"], "service.name": "checkout"}}'
    )
    response = await hec.post("/services/collector/event", content=body, headers=FORM)
    assert response.status_code == 200 and response.json() == {"text": "Success", "code": 0}
    (record,) = await stored(app, key)
    assert record["message"] == "Something happened"
    assert (record["timestamp"], record["severity"], record["service"]) == (NOW_MS - 9750, "warning", "checkout")
    assert record["log_type"] == "my_sample_data"
    assert record["attributes"] == {
        "user": "joe",
        "host": "localhost",
        "source": "random-data-generator",
        "sourcetype": "my_sample_data",
        "index": "main",
        "device": "macbook",
        "users": ["joe", "bob"],
    }


@pytest.mark.parametrize("event", ["checkout failed", {"message": "checkout failed", "order": 7}])
async def test_trace_and_span_ids_in_fields_become_the_records_as_otlp_and_elasticsearch_ids_do(
    app: LoglakeApp, key: str, hec: httpx.AsyncClient, event: object
) -> None:
    """Where OpenTelemetry's Splunk HEC exporter puts a log's trace context: `fields.trace_id` and `span_id`, hex.
    A string event takes the batch's rule-by-rule path, an object the event-by-event one: the same records."""
    trace, span = "4BF92F3577B34DA6A3CE929D0E0E4736", "00f067aa0ba902b7"
    events = [
        {"time": 1793577590, "event": event, "fields": {"trace_id": trace, "span_id": span, "k8s.pod.name": "p"}},
        {"time": 1793577591, "event": event, "fields": {"trace_id": "not-hex", "span_id": "00f067aa"}},
        {"time": 1793577592, "event": event, "fields": {"trace_id": "0" * 32, "span_id": 5}},
    ]
    body = b"".join(json.dumps(one).encode() for one in events)
    response = await hec.post("/services/collector/event", content=body)
    assert response.status_code == 200, response.text
    records = sorted(await stored(app, key), key=lambda record: record["timestamp"])
    assert [(record.get("trace_id"), record.get("span_id")) for record in records] == [
        (trace.lower(), span),
        (None, None),
        (None, None),
    ]
    # What is no id (not hex, the wrong length, all zeros, not text) stays in the attributes, as sent.
    assert [{k: v for k, v in record["attributes"].items() if k.endswith("_id")} for record in records] == [
        {},
        {"trace_id": "not-hex", "span_id": "00f067aa"},
        {"trace_id": "0" * 32, "span_id": 5},
    ]


async def test_an_event_objects_own_severity_service_and_ids_are_the_records_without_fields(
    app: LoglakeApp, key: str, hec: httpx.AsyncClient
) -> None:
    """splunk-logging sends `{"event": {"message": ..., "severity": ...}}` and cannot send `fields`: its records
    always had the default service (the Node.js trial). The indexed fields, when an event has them, come first."""
    trace, span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    own = {"message": "paid", "severity": "error", "service": "shop", "trace_id": trace, "span_id": span, "k": 1}
    events = [{"time": 1793577590, "event": own}, {"time": 1793577591, "event": own, "fields": {"service": "cart"}}]
    body = b"".join(json.dumps(one).encode() for one in events)
    assert (await hec.post("/services/collector/event", content=body)).status_code == 200
    records = sorted(await stored(app, key), key=lambda record: record["timestamp"])
    assert [(r["severity"], r["service"], r.get("trace_id"), r.get("span_id")) for r in records] == [
        ("error", "shop", trace, span),
        ("error", "cart", trace, span),
    ]
    assert records[0]["attributes"] == {"k": 1}


async def test_a_batch_of_concatenated_events_is_stored_whole(
    app: LoglakeApp, key: str, hec: httpx.AsyncClient
) -> None:
    body = (
        b'{"event": "Pony 1 has left the barn"}{"event": "Pony 2 has left the barn"}'
        b'{"event": "Pony 3 has left the barn", "nested": {"key1": "value1"}}\n'
        b'  {"event": "braces }{ inside a string", "sourcetype": "aws:cloudtrail"}'
        b'{"event": {"status": 200}, "time": "1793577599"}'
    )
    response = await hec.post("/services/collector", content=body, headers=FORM)
    assert response.json() == {"text": "Success", "code": 0}, response.text
    records = {r["message"]: r for r in await stored(app, key)}
    assert sorted(records) == [
        "Pony 1 has left the barn",
        "Pony 2 has left the barn",
        "Pony 3 has left the barn",
        "braces }{ inside a string",
        '{"status":200}',
    ]
    assert records["braces }{ inside a string"]["log_type"] == "aws_cloudtrail"
    assert records["braces }{ inside a string"]["attributes"] == {"sourcetype": "aws:cloudtrail"}
    assert records['{"status":200}']["timestamp"] == NOW_MS - 1000
    assert records["Pony 1 has left the barn"]["log_type"] == "application"


async def test_an_event_timed_where_no_clock_could_be_is_stored_at_its_arrival_with_the_time_it_carried(
    app: LoglakeApp, key: str, hec: httpx.AsyncClient
) -> None:
    """Splunk indexes such an event (its MAX_DAYS_HENCE re-stamps it); it refused the batch here, and Fluent Bit's
    splunk output drops a refused batch (a real-shipper trial: 6 of 6 lost for one event's 2099)."""
    body = (
        b'{"event": "ok", "time": 1793577590}{"event": "1970", "time": 1}'
        b'{"event": "2099", "time": 4102444800, "fields": {"k": "v"}}'
    )
    response = await hec.post("/services/collector/event", content=body, headers=FORM)
    assert response.json() == {"text": "Success", "code": 0}
    records = {r["message"]: r for r in await stored(app, key)}
    assert (records["ok"]["timestamp"], records["ok"].get("attributes", {})) == (NOW_MS - 10_000, {})
    assert (records["1970"]["timestamp"], records["1970"]["attributes"]) == (NOW_MS, {"time_sent": 1000})
    assert records["2099"]["timestamp"] == NOW_MS
    assert records["2099"]["attributes"] == {"k": "v", "time_sent": 4_102_444_800_000}


@pytest.mark.parametrize(
    ("body", "code", "number"),
    [
        (b"", 5, None),
        (b"   \n", 5, None),
        (b'{"event": "ok"}{"event": "cut', 6, 1),
        (b'{"event": "ok"}["event"]', 6, 1),
        (b'{"event": "ok"}{"host": "h"}', 12, 1),
        (b'{"event": "ok"}{"event": ""}', 13, 1),
        (b'{"event": "ok"}{"event": "x", "time": "noon"}', 6, 1),
        (b'{"event": "ok"}{"event": "x", "time": "1_796_651_454"}', 6, 1),  # (Python's float() reads it)
        (b'{"event": "ok"}{"event": "x", "time": "\xd9\xa1\xd9\xa2"}', 6, 1),  # Arabic-Indic digits
        (b'{"event": "ok"}{"event": "x", "host": 7}', 6, 1),
        (b'{"event": "ok"}{"event": "x", "fields": {"a": {"b": 1}}}', 15, 1),
    ],
)
async def test_a_bad_event_refuses_the_batch_with_splunks_code_and_its_number(
    app: LoglakeApp, key: str, hec: httpx.AsyncClient, body: bytes, code: int, number: int | None
) -> None:
    response = await hec.post("/services/collector/event", content=body, headers=FORM)
    assert response.status_code == 400
    answer = response.json()
    assert answer["code"] == code and answer.get("invalid-event-number") == number, answer
    assert answer["text"] in {
        "No data",
        "Invalid data format",
        "Event field is required",
        "Event field cannot be blank",
        "Error in handling indexed fields",
    }
    assert answer["reason"]
    assert await stored(app, key) == []


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/services/collector", b" \n"),
        ("/services/collector/raw", b"\n"),
        ("/services/collector", b'{"event": "\xff"}'),
        ("/services/collector/raw", b"\xff\xfe"),
    ],
    ids=["empty events", "empty raw", "events not UTF-8", "raw not UTF-8"],
)
async def test_a_body_of_no_events_is_counted_as_a_body_refused(
    app: LoglakeApp, key: str, hec: httpx.AsyncClient, path: str, body: bytes
) -> None:
    """As POST /logs, OTLP and Loki count the bodies they refuse whole (an event at fault is a refused record)."""
    response = await hec.post(path, content=body)
    assert response.status_code == 400 and response.json()["code"] in (5, 6), response.text
    async with asgi_client(app, key) as reader:
        metrics = (await reader.get("/metrics")).text
    assert 'loglake_bodies_rejected_total{code="invalid_hec"} 1' in metrics


async def test_an_event_of_the_wrong_shape_is_named_in_words(app: LoglakeApp, hec: httpx.AsyncClient) -> None:
    response = await hec.post("/services/collector/event", content=b'{"event": "ok"}{"event": "x", "host": 7}')
    answer = response.json()
    counted = "event 1 (counted from 0, as Splunk does)"
    assert answer["reason"] == f"{counted}: host: must be a string or null, not an integer"
    assert answer["invalid-event-number"] == 1


@pytest.mark.parametrize("body", [b'{"event": "x \\ud83d y"}', b'{"event": "ok"}{"event": {"m": "\\udc00"}}'])
async def test_a_lone_surrogate_is_read_as_u_fffd_not_a_500(
    app: LoglakeApp, key: str, hec: httpx.AsyncClient, body: bytes
) -> None:
    """It answered 500 (msgspec refusing what Python's reader had taken), and splunk-logging, which reads no error
    but Splunk's, took the batch for sent (the Node.js trial)."""
    response = await hec.post("/services/collector/event", content=body)
    assert (response.status_code, response.json()) == (200, {"text": "Success", "code": 0}), response.text
    assert any("\ufffd" in record["message"] for record in await stored(app, key))


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("1796397860000", 1796397860000),  # epoch ms
        ('"1796397860000000"', "1796397860000000"),  # epoch us, as text
        ("1796397860123456789", 1796397860123456789),  # epoch ns: each digit kept, as a float cannot
        ("1e300", 1e300),  # no time in any unit
    ],
    ids=["ms", "us-text", "ns", "1e300"],
)
async def test_a_time_in_a_finer_unit_than_seconds_is_kept_as_sent_and_the_record_stored_at_its_arrival(
    app: LoglakeApp, key: str, hec: httpx.AsyncClient, sent: str, kept: object
) -> None:
    """It refused the batch whole (Fluent Bit takes that for delivered: every event of it lost), where the README
    says a time no clock could mean is stored at the time it arrives and kept as `time_sent` (a new-user trial);
    on the path of plain events too."""
    body = f'{{"event": "ok", "time": 1793577500}}{{"event": "ms", "time": {sent}}}'.encode()
    response = await hec.post("/services/collector/event", content=body)
    assert (response.status_code, response.json()) == (200, {"text": "Success", "code": 0}), response.text
    records = {record["message"]: record for record in await stored(app, key)}
    assert records["ok"]["timestamp"] == 1_793_577_500_000 and records["ok"]["attributes"] == {}
    assert records["ms"]["timestamp"] == NOW_MS and records["ms"]["attributes"] == {"time_sent": kept}
    assert type(records["ms"]["attributes"]["time_sent"]) is type(kept)  # (1e300 as sent, not its 301 digits)
    raw = await hec.post(f"/services/collector/raw?time={1796397860000}&host=h1", content=b"a raw line\n", headers=FORM)
    assert raw.json()["code"] == 0
    (line,) = [record for record in await stored(app, key) if record["message"] == "a raw line"]
    assert (line["timestamp"], line["attributes"]) == (NOW_MS, {"host": "h1", "time_sent": "1796397860000"})


async def test_the_time_the_advice_shows_is_one_that_is_taken(
    app: LoglakeApp, key: str, hec: httpx.AsyncClient
) -> None:
    response = await hec.post("/services/collector/event", content=b'{"event": "x", "time": "soon"}')
    example = response.json()["reason"].rsplit("like ", 1)[1]
    response = await hec.post("/services/collector/event", content=f'{{"event": "x", "time": {example}}}'.encode())
    assert response.json() == {"text": "Success", "code": 0}
    assert [r["timestamp"] for r in await stored(app, key)] == [1_793_577_600_123]


def test_the_example_time_of_advice_stays_within_the_default_retention_of_today() -> None:
    """The example is fixed (tests compare messages); once it is older than the retention, a reader who sends
    it back is refused, as 1426279439.123 (Splunk's documentation's, from 2015) was: move it forward then."""
    retention_days = Settings().retention_days
    assert (time.time() - EXAMPLE_SECONDS) / 86_400 < retention_days - 30


async def test_raw_lines_take_the_querys_metadata(app: LoglakeApp, key: str, hec: httpx.AsyncClient) -> None:
    response = await hec.post(
        "/services/collector/raw?channel=FE0ECFAD-13D5-401B-847D-77833BD77131&sourcetype=syslog&host=h1&time=1793577500",
        content=b"1, 2, 3... Hello, world!\n\nsecond line\n",
        headers=FORM,
    )
    assert response.json() == {"text": "Success", "code": 0}
    records = await stored(app, key)
    assert sorted(r["message"] for r in records) == ["1, 2, 3... Hello, world!", "second line"]
    assert {(r["log_type"], r["timestamp"]) for r in records} == {("syslog", NOW_MS - 100_000)}
    assert records[0]["attributes"] == {"sourcetype": "syslog", "host": "h1"}
    gzipped = await hec.post(
        "/services/collector/raw", content=gzip.compress(b"zipped"), headers=FORM | {"content-encoding": "gzip"}
    )
    assert gzipped.json()["code"] == 0
    empty = await hec.post("/services/collector/raw", content=b"\n\n", headers=FORM)
    assert empty.status_code == 400 and empty.json()["code"] == 5


@pytest.mark.parametrize("third", ['{"event": "third"}', '{"event": {"message": "third"}}'], ids=["plain", "object"])
async def test_events_take_the_querys_metadata_where_they_give_none(
    app: LoglakeApp, key: str, hec: httpx.AsyncClient, third: str
) -> None:
    """Splunk takes an event's host, source, sourcetype and index from the query when the event gives none (Splunk's
    own syslog connector sends `?index=`): they were ignored, a `?sourcetype=access` batch stored as `application`."""
    body = '{"event": "first"}{"event": "second", "sourcetype": "mine", "host": "h2"}' + third
    response = await hec.post(
        "/services/collector/event?sourcetype=access&index=web&host=h1&source=&channel=FE0ECFAD-13D5-401B-847D-77833BD77131",
        content=body.encode(),
        headers=FORM,
    )
    assert response.json() == {"text": "Success", "code": 0}
    records = {record["message"]: record for record in await stored(app, key)}
    assert {message: (r["log_type"], r["attributes"]) for message, r in records.items()} == {
        "first": ("access", {"host": "h1", "sourcetype": "access", "index": "web"}),
        "second": ("mine", {"host": "h2", "sourcetype": "mine", "index": "web"}),
        "third": ("access", {"host": "h1", "sourcetype": "access", "index": "web"}),
    }


async def test_token_errors_answer_splunks_codes_and_statuses(app: LoglakeApp, key: str) -> None:
    body = b'{"event": "x"}'
    cases = [
        (None, 401, 2),
        ("Token abc", 401, 3),
        ("Splunk llk_not-a-key", 403, 4),
        (f"Splunk {key_for(app, 'read')}", 403, 4),
    ]
    async with asgi_client(app) as client:
        for authorization, status, code in cases:
            headers = FORM | ({"authorization": authorization} if authorization else {})
            response = await client.post("/services/collector/event", content=body, headers=headers)
            assert (response.status_code, response.json()["code"]) == (status, code), authorization
        accepted = [f"Bearer {key}", "Basic " + base64.b64encode(f"x:{key}".encode()).decode()]
        for authorization in accepted:
            response = await client.post(
                "/services/collector", content=body, headers=FORM | {"authorization": authorization}
            )
            assert response.json()["code"] == 0
    assert len(await stored(app, key)) == 2


async def test_indexer_acknowledgment_is_answered_as_splunk_answers_a_token_without_it(
    hec: httpx.AsyncClient,
) -> None:
    """Not loglake's 404: a shipper set up for acknowledgment reads Splunk's code and says why."""
    response = await hec.post("/services/collector/ack", json={"acks": [0, 1]})
    assert response.status_code == 400
    assert response.json() == {"text": "ACK is disabled", "code": 14, "reason": splunk_routes.NO_ACKS}


async def test_the_rate_limit_is_splunks_server_busy(app: LoglakeApp) -> None:
    async with asgi_client(app) as client:
        headers = FORM | {"authorization": f"Splunk {key_for(app, 'ingest', rate_limit=0.5, rate_burst=1)}"}
        assert (await client.post("/services/collector", content=b'{"event": "a"}', headers=headers)).status_code == 200
        busy = await client.post("/services/collector", content=b'{"event": "b"}', headers=headers)
        assert busy.status_code == 503 and busy.json()["code"] == 9 and busy.headers["retry-after"] == "2"


async def test_health_needs_no_token_and_batches_past_post_logs_record_limit_are_taken(settings: Settings) -> None:
    """Shippers batch HEC events by size (the OpenTelemetry Collector up to 2 MiB: more than POST /logs's
    max_records short events), and Splunk counts none: a batch of more was refused whole, and dropped by them."""
    application = LoglakeApp.from_settings(dataclasses.replace(settings, max_records=2))
    try:
        async with asgi_client(application) as anonymous:
            health = await anonymous.get("/services/collector/health")
            assert health.status_code == 200 and health.json() == {"text": "HEC is healthy", "code": 17}
        key = key_for(application, "ingest,read")
        async with asgi_client(application) as client:
            response = await client.post(
                "/services/collector",
                content=b'{"event": "a"}{"event": "b"}{"event": "c"}',
                headers={"authorization": f"Splunk {key}"},
            )
            assert response.status_code == 200 and response.json()["code"] == 0
            metrics = (await client.get("/metrics", headers={"authorization": f"Bearer {key}"})).text
            assert 'loglake_protocol_records_total{protocol="splunk",outcome="accepted"} 3' in metrics
        assert sorted(record["message"] for record in await stored(application, key)) == ["a", "b", "c"]
    finally:
        application.close()


async def test_a_bulk_sized_batch_is_written_as_lake_parts_mapped_as_a_small_one_is(
    app: LoglakeApp, key: str, hec: httpx.AsyncClient
) -> None:
    def events(first: int, count: int) -> bytes:
        return b"".join(
            b'{"time": 1793577590.25, "host": "h1", "sourcetype": "access:combined", "index": "main", '
            b'"event": {"message": "m %d.", "level": "ERROR", "user": "joe"}, "fields": {"service.name": "shop", '
            b'"n": 7}}' % i
            for i in range(first, first + count)
        )

    assert (await hec.post("/services/collector", content=events(0, 2))).json()["code"] == 0
    assert (await hec.post("/services/collector", content=events(2, BULK_MIN_RECORDS))).json()["code"] == 0
    assert app.runtime.store.count() == 2  # the bulk-sized batch went to the lake
    [small] = await stored(app, key, q="m 1.")
    [bulk] = await stored(app, key, q=f"m {BULK_MIN_RECORDS + 1}.")
    expected = {
        "timestamp": NOW_MS - 9750,
        "service": "shop",
        "severity": "error",
        "log_type": "access_combined",
        "attributes": {"user": "joe", "host": "h1", "sourcetype": "access:combined", "index": "main", "n": 7},
    }
    assert {name: small[name] for name in expected} == expected
    assert {name: bulk[name] for name in expected} == expected
