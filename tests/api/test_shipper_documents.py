"""What the shipper protocols do with documents beyond the record's limits and with those they refuse: a document
nested deeper than the attributes may be is kept as `loglake send` keeps it (record_fit), on every protocol and
both Elasticsearch bulk paths; a refused one counts where POST /logs's refused records count (the metric and
loglake's own `records_rejected` events, which the starter rule watches); a bulk takes bodies larger than other
routes, as Logstash sends them."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator

import httpx
import pytest

from loglake.api.app import LoglakeApp
from loglake.config import Settings
from loglake.protocols import elastic_columns
from loglake.protocols.syslog import SyslogTally
from tests.conftest import asgi_client, key_for

NDJSON = {"content-type": "application/x-ndjson"}
# Six levels as attributes (the object itself is the first), one more than the limit of 5.
DEEP = {"kubernetes": {"pod": {"labels": {"app": {"tier": {"name": "web"}}}}}}
# As `loglake send` keeps it: the fifth level's containers as their JSON text.
FOLDED = {"kubernetes": {"pod": {"labels": {"app": {"tier": '{"name":"web"}'}}}}}


@pytest.fixture
def app(settings: Settings) -> Iterator[LoglakeApp]:
    application = LoglakeApp.from_settings(settings)
    yield application
    application.close()


def ndjson(*lines: object) -> bytes:
    return b"".join(json.dumps(line, separators=(",", ":")).encode() + b"\n" for line in lines)


async def stored(client: httpx.AsyncClient, **params: str) -> list[dict]:
    response = await client.get("/logs/recent", params={"since": "0", "limit": "1000", **params})
    assert response.status_code == 200, response.text
    return response.json()["logs"]


async def test_an_elasticsearch_document_nested_deeper_than_attributes_may_be_is_kept_folded(
    client: httpx.AsyncClient,
) -> None:
    body = ndjson({"create": {"_index": "k8s"}}, {"message": "deep", **DEEP}, {"create": {"_index": "k8s"}}, {"x": 1})
    answer = (await client.post("/_bulk", content=body, headers=NDJSON)).json()
    assert [entry["create"]["status"] for entry in answer["items"]] == [201, 400]
    [log] = await stored(client, log_type="k8s")
    assert log["message"] == "deep" and log["attributes"] == FOLDED


async def test_a_big_bulk_of_deep_documents_read_by_arrow_is_kept_folded(client: httpx.AsyncClient) -> None:
    count = 9000
    body = b"".join(
        b'{"create":{"_index":"k8s"}}\n'
        + json.dumps({"message": f"deep {i}", "pad": "p" * 200, **DEEP}, separators=(",", ":")).encode()
        + b"\n"
        for i in range(count)
    )
    assert len(body) >= elastic_columns._MIN_BYTES and elastic_columns.read_regular_bulk(body, None) is not None
    answer = (await client.post("/_bulk?filter_path=errors", content=body, headers=NDJSON)).json()
    assert answer == {"errors": False}
    logs = await stored(client, log_type="k8s")
    assert len(logs) == 1000 and all(log["attributes"] == {"pad": "p" * 200, **FOLDED} for log in logs)


async def test_a_splunk_event_nested_too_deep_is_kept_folded(client: httpx.AsyncClient) -> None:
    hec = {"event": {"message": "hec deep", **DEEP}, "sourcetype": "hec"}
    assert (await client.post("/services/collector/event", json=hec)).status_code == 200
    [log] = await stored(client)
    assert log["attributes"] == {**FOLDED, "sourcetype": "hec"}


async def test_an_otlp_record_nested_too_deep_is_kept_folded(client: httpx.AsyncClient) -> None:
    value: dict = {"stringValue": "web"}
    for key in ("name", "tier", "app", "labels", "pod"):  # a kvlist in a kvlist...: DEEP's shape
        value = {"kvlistValue": {"values": [{"key": key, "value": value}]}}
    record = {"body": {"stringValue": "otlp deep"}, "attributes": [{"key": "kubernetes", "value": value}]}
    otlp = {"resourceLogs": [{"scopeLogs": [{"logRecords": [record]}]}]}
    response = await client.post("/v1/logs", json=otlp)
    assert response.status_code == 200 and "partialSuccess" not in response.text, response.text
    [log] = await stored(client)
    assert log["message"] == "otlp deep" and log["attributes"] == FOLDED


async def test_a_loki_entry_with_more_metadata_than_attributes_may_hold_is_kept(client: httpx.AsyncClient) -> None:
    wide = {f"meta_{i:03d}": "v" for i in range(200)}
    loki = {"streams": [{"stream": {"job": "loki"}, "values": [[str(time.time_ns()), "loki wide", wide]]}]}
    response = await client.post("/loki/api/v1/push", json=loki)
    assert response.status_code == 204, response.text
    [log] = await stored(client)
    overflow = json.loads(log["attributes"].pop("loglake.overflow"))
    assert log["service"] == "loki" and {**log["attributes"], **overflow} == wide  # (`job` names the service)


def _events(app: LoglakeApp) -> list[tuple[str, str]]:
    return app.store.read(
        "SELECT message, json_extract(attributes, '$.reason') FROM logs WHERE service = 'loglake' ORDER BY message"
    )


async def test_records_the_shipper_protocols_refuse_count_as_post_logs_refused_ones(
    app: LoglakeApp, client: httpx.AsyncClient
) -> None:
    bulk = ndjson(
        {"create": {"_index": "a"}},
        {"no": "message"},
        {"create": {"_index": "a"}},
        {"message": "bad time", "@timestamp": "yesterday"},
        {"create": {"_index": "a"}},
        {"message": "old", "@timestamp": "2000-01-01T00:00:00Z"},  # before the retention
        {"create": {"_index": "a"}},
        {"message": "kept"},
    )
    answer = (await client.post("/_bulk", content=bulk, headers=NDJSON)).json()
    assert [entry["create"]["status"] for entry in answer["items"]] == [400, 400, 400, 201]
    hec = b'{"event": "fine"}{"event": "old", "time": 946684800}'  # 2000: before the retention
    assert (await client.post("/services/collector/event", content=hec)).status_code == 400
    assert (await client.post("/services/collector/event", json={"time": 1})).status_code == 400  # no event
    app.metrics.on_syslog(SyslogTally(unstored=4))  # as a syslog commit the store refused reports itself
    metrics = (await client.get("/metrics")).text
    assert 'loglake_records_rejected_total{reason="message"} 2' in metrics
    assert 'loglake_records_rejected_total{reason="timestamp"} 3' in metrics
    assert 'loglake_records_rejected_total{reason="storage_unavailable"} 4' in metrics
    events = app.runtime.self_events
    assert events is not None and events.write() == 4  # per protocol and key, each with its first refusal's reason
    no_message = "the document has no message: send it as a string in `message` (ECS), `log`, `msg` or `MESSAGE`"
    no_event = "event 0 (counted from 0, as Splunk does) has no `event` field: put the log line in it"
    old = "is older than the retention of 365 days (records before "
    assert [(message.split(" e.g. ")[0], reason) for message, reason in _events(app)] == [
        ("refused 1 invalid record(s): message (elasticsearch, key test-admin;", "message"),
        ("refused 1 invalid record(s): message (splunk, key test-admin;", "message"),
        ("refused 1 invalid record(s): timestamp (splunk, key test-admin;", "timestamp"),
        ("refused 2 invalid record(s): timestamp (elasticsearch, key test-admin;", "timestamp"),
    ]
    examples = [message.split(" e.g. ")[1] for message, _ in _events(app)]
    assert examples[:2] == [f"{no_message})", f"{no_event})"]
    assert examples[2].startswith(old) and examples[3].startswith("timestamp: 'yesterday' is not an ISO-8601 date")


async def test_a_bulk_takes_a_body_larger_than_other_routes_up_to_its_own_limit(settings: Settings) -> None:
    limited = dataclasses.replace(settings, max_body_bytes=64 * 1024, max_bulk_body_bytes=256 * 1024)
    application = LoglakeApp.from_settings(limited)
    try:
        async with asgi_client(application, key_for(application, "ingest,read")) as client:
            records = [{"message": f"{i} " + "x" * 100} for i in range(1000)]  # ~110 KiB
            logs = await client.post("/logs", content=ndjson(*records), headers=NDJSON)
            assert logs.status_code == 413
            bulk = ndjson(*[line for record in records for line in ({"create": {"_index": "big"}}, record)])
            answer = await client.post("/_bulk?filter_path=errors", content=bulk, headers=NDJSON)
            assert answer.status_code == 200 and answer.json() == {"errors": False}
            too_big = await client.post("/_bulk", content=bulk * 3, headers=NDJSON)
            assert too_big.status_code == 413 and too_big.json()["error"]["type"] == "content_too_long_exception"
    finally:
        application.close()
