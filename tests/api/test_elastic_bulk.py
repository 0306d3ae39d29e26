"""Elasticsearch's bulk API in process: the ECS mapping, per-item answers in Elasticsearch's shape, whole-request
errors and auth failures in its error form, the calls shippers make before sending, the product header."""

from __future__ import annotations

import base64
import dataclasses
import gzip
import json
import os
import threading
import uuid
from collections.abc import Iterator

import httpx
import pytest

from loglake.api import elastic_routes, http
from loglake.api.app import LoglakeApp
from loglake.api.routes import OFF_LOOP_COMPRESSED_BYTES
from loglake.config import Settings
from loglake.ingest import BULK_MIN_RECORDS
from loglake.protocols import elastic_columns
from tests.conftest import asgi_client, key_for

NOW_MS = 1_793_577_600_000  # 2026-11-02T00:00:00Z
NDJSON = {"content-type": "application/x-ndjson"}


@pytest.fixture
def app(settings: Settings) -> Iterator[LoglakeApp]:
    application = LoglakeApp.from_settings(settings, clock=lambda: NOW_MS / 1000)
    yield application
    application.close()


def ndjson(*lines: object) -> bytes:
    return b"".join((line if type(line) is bytes else json.dumps(line).encode()) + b"\n" for line in lines)


async def stored(client: httpx.AsyncClient, **params: str) -> list[dict]:
    response = await client.get("/logs/recent", params={"since": "0", "limit": "1000", **params})
    assert response.status_code == 200, response.text
    return response.json()["logs"]


async def test_ecs_fields_nested_or_dotted_become_the_record_and_the_rest_attributes(
    client: httpx.AsyncClient,
) -> None:
    nested = ndjson(
        {"create": {"_index": "nginx-access"}},
        {
            "@timestamp": "2026-11-01T23:59:58.250Z",
            "message": "GET /index.html 200",
            "log": {"level": "WARN", "file": {"path": "/var/log/nginx/access.log"}},
            "service": {"name": "web", "version": "1.2"},
            "host": {"name": "h1"},
        },
    )
    response = await client.post("/_bulk?refresh=false", content=nested, headers=NDJSON)
    assert response.status_code == 200, response.text
    assert response.headers["x-elastic-product"] == "Elasticsearch"
    answer = response.json()
    assert answer["errors"] is False and list(answer["items"][0]) == ["create"]
    first = answer["items"][0]["create"]
    assert first["status"] == 201 and first["result"] == "created" and first["_index"] == "nginx-access"
    web = (await stored(client, service="web"))[0]
    assert web["logId"] == first["_id"]
    assert web["timestamp"] == NOW_MS - 1750 and web["severity"] == "warning" and web["log_type"] == "nginx-access"
    assert web["message"] == "GET /index.html 200"
    assert web["attributes"] == {
        "log": {"file": {"path": "/var/log/nginx/access.log"}},
        "service": {"version": "1.2"},
        "host": {"name": "h1"},
    }

    dotted = ndjson(
        {"index": {}},
        {
            "@timestamp": NOW_MS - 5000,
            "message": "disk almost full",
            "log.level": "error",
            "service.name": "disk-watch",
            "labels": {"mount": "/"},
        },
    )
    response = await client.post("/alerts/_bulk", content=dotted, headers=NDJSON)
    assert response.json()["errors"] is False and list(response.json()["items"][0]) == ["index"], response.text
    disk = (await stored(client, service="disk-watch"))[0]
    assert (disk["timestamp"], disk["severity"], disk["log_type"]) == (NOW_MS - 5000, "error", "alerts")
    assert disk["attributes"] == {"labels": {"mount": "/"}}


async def test_fluent_bits_log_line_is_the_message_and_filebeats_log_object_an_attribute(
    client: httpx.AsyncClient,
) -> None:
    body = ndjson(
        {"create": {"_index": "fb"}},
        {"log": "a line from fluent bit", "stream": "stdout"},
        {"create": {"_index": "fb"}},
        {"log": {"offset": 7}, "message": "a line from filebeat"},
    )
    assert (await client.post("/_bulk", content=body, headers=NDJSON)).json()["errors"] is False
    logs = {log["message"]: log["attributes"] for log in await stored(client, log_type="fb")}
    assert logs == {"a line from fluent bit": {"stream": "stdout"}, "a line from filebeat": {"log": {"offset": 7}}}


async def test_syslog_ngs_default_document_is_stored(client: httpx.AsyncClient) -> None:
    """syslog-ng's elasticsearch-http() sends format-json --scope rfc5424: every item was refused for its message, and
    syslog-ng, which does not read the answer's items, dropped them all without a word (the shipper trial)."""
    source = {  # (and its @timestamp)
        "PROGRAM": "app",
        "PRIORITY": "notice",
        "PID": "42",
        "MESSAGE": "shiptrial 7",
        "HOST": "shiphost",
        "FACILITY": "user",
    }
    body = ndjson({"index": {"_index": "sng"}}, source, {"index": {"_index": "sng"}}, {**source, "MESSAGE": "8"})
    assert (await client.post("/_bulk", content=body, headers=NDJSON)).json()["errors"] is False
    logs = {log["message"]: log for log in await stored(client, log_type="sng")}
    assert sorted(logs) == ["8", "shiptrial 7"]
    assert logs["8"]["attributes"] == {k: v for k, v in source.items() if k != "MESSAGE"}


async def test_a_message_that_is_not_text_is_named_as_such(client: httpx.AsyncClient) -> None:
    body = ndjson({"create": {"_index": "app"}}, {"message": {"a": 1}})
    [entry] = (await client.post("/_bulk", content=body, headers=NDJSON)).json()["items"]
    assert entry["create"]["status"] == 400
    assert entry["create"]["error"]["reason"].startswith("`message` must be a string"), entry  # not "no message"


async def test_a_refused_item_without_an_id_is_answered_with_an_id_of_its_own(client: httpx.AsyncClient) -> None:
    """Elasticsearch answers a failed item the id it generated for it, as it answers a stored one's: clients that
    key their retries or dead letters by `_id` need one (they got null)."""
    body = ndjson(
        {"create": {"_index": "app"}},
        {"message": {"a": 1}},
        {"create": {"_index": "app"}},
        {"message": {"b": 2}},
        {"create": {"_index": "app", "_id": "given"}},
        {"message": {"c": 3}},
    )
    entries = [entry["create"] for entry in (await client.post("/_bulk", content=body, headers=NDJSON)).json()["items"]]
    assert [entry["status"] for entry in entries] == [400, 400, 400]
    first, second, given = (entry["_id"] for entry in entries)
    assert uuid.UUID(first) and uuid.UUID(second) and first != second
    assert given == "given"


async def test_a_lone_surrogate_is_named_as_post_logs_names_it(client: httpx.AsyncClient) -> None:
    body = b'{"create": {"_index": "app"}}\n{"message": "bad surrogate \\ud800 end"}\n'
    [entry] = (await client.post("/_bulk", content=body, headers=NDJSON)).json()["items"]
    reason = entry["create"]["error"]["reason"]
    assert reason == (
        "failed to parse the source: it is not a JSON object in UTF-8:"
        " a string holds a lone surrogate escape such as \\ud800, which is no character"
    )


async def test_a_document_timed_where_no_clock_could_be_is_stored_at_its_arrival_with_the_time_it_carried(
    client: httpx.AsyncClient,
) -> None:
    """Elasticsearch stores it; a 400 item here lost it, as Fluent Bit counts a bulk with one 201 as delivered and
    logs nothing (a real-shipper trial). A time before the retention is a real one: still refused."""
    body = ndjson(
        {"create": {"_index": "app"}},
        {"@timestamp": "2099-01-01T00:00:00Z", "message": "ahead", "k": "v"},
        {"create": {"_index": "app"}},
        {"@timestamp": 86_400_000, "message": "1970"},
        {"create": {"_index": "app"}},
        {"@timestamp": "2026-11-01T23:59:59Z", "message": "now"},
        {"create": {"_index": "app"}},
        {"@timestamp": "2020-01-01T00:00:00Z", "message": "before the retention"},
    )
    answer = (await client.post("/_bulk", content=body, headers=NDJSON)).json()
    assert [entry["create"]["status"] for entry in answer["items"]] == [201, 201, 201, 400]
    records = {r["message"]: r for r in await stored(client)}
    assert (records["ahead"]["timestamp"], records["ahead"]["attributes"]) == (
        NOW_MS,
        {"k": "v", "time_sent": "2099-01-01T00:00:00Z"},
    )
    assert (records["1970"]["timestamp"], records["1970"]["attributes"]) == (NOW_MS, {"time_sent": 86_400_000})
    assert records["now"]["timestamp"] == NOW_MS - 1000 and "time_sent" not in records["now"].get("attributes", {})


async def test_a_failing_item_is_answered_with_its_status_and_reason_and_the_others_are_stored(
    client: httpx.AsyncClient, app: LoglakeApp
) -> None:
    body = ndjson(
        {"create": {"_index": "app"}},
        {"message": "kept 1"},
        {"create": {"_index": "app"}},
        {"@timestamp": "yesterday-ish", "message": "bad time"},
        {"index": {"_index": "app", "_id": "a1"}},
        b'{"message": "not json',
        {"delete": {"_index": "app", "_id": "a1"}},
        {"update": {"_index": "app", "_id": "a1"}},
        {"doc": {"message": "x"}},
        {"create": {"_index": "app"}},
        {"count": 3, "log": {"file": {"path": "/var/log/app.log"}}},
        {"index": {}},
        {"message": "no index"},
        {"index": {"_index": "app"}},
        {"message": "kept 2", "log.level": "loud"},
    )
    response = await client.post("/_bulk", content=body, headers=NDJSON)
    assert response.status_code == 200
    answer = response.json()
    assert answer["errors"] is True
    statuses = [(action, item["status"]) for entry in answer["items"] for action, item in entry.items()]
    assert statuses == [
        ("create", 201),
        ("create", 400),
        ("index", 400),
        ("delete", 400),
        ("update", 400),
        ("create", 400),
        ("index", 400),
        ("index", 201),
    ]
    errors = [item.get("error") for entry in answer["items"] for item in entry.values()]
    assert errors[1]["type"] == "document_parsing_exception" and "timestamp" in errors[1]["reason"]
    assert errors[2]["type"] == "document_parsing_exception" and "not a JSON object" in errors[2]["reason"]
    assert answer["items"][2]["index"]["_id"] == "a1"
    assert "append-only" in errors[3]["reason"] and "append-only" in errors[4]["reason"]
    assert "no message" in errors[5]["reason"]
    assert errors[6]["type"] == "action_request_validation_exception" and "index is missing" in errors[6]["reason"]
    logs = await stored(client, log_type="app")
    assert sorted(log["message"] for log in logs) == ["kept 1", "kept 2"]
    # A level that names no severity stays as sent, among the attributes.
    assert next(log for log in logs if log["message"] == "kept 2")["attributes"] == {"log.level": "loud"}
    metrics = (await client.get("/metrics")).text
    assert 'loglake_protocol_records_total{protocol="elasticsearch",outcome="accepted"} 2' in metrics
    assert 'loglake_protocol_records_total{protocol="elasticsearch",outcome="rejected"} 6' in metrics
    # Each refused document counts as POST /logs counts a refused record (syslog-ng and rsyslog read no item errors:
    # these and loglake's own events are how a refusal is seen), by its field: the index is the log type; an
    # update or delete, or a source that is no JSON object, is refused as a whole.
    rejected = {
        line.split()[0]: line.split()[1] for line in metrics.splitlines() if line.startswith("loglake_records_rejected")
    }
    assert rejected == {
        'loglake_records_rejected_total{reason="timestamp"}': "1",
        'loglake_records_rejected_total{reason="record"}': "3",
        'loglake_records_rejected_total{reason="message"}': "1",
        'loglake_records_rejected_total{reason="log_type"}': "1",
    }


async def test_an_empty_document_id_is_refused_as_elasticsearch_refuses_it_not_stored_as_a_client_id(
    client: httpx.AsyncClient,
) -> None:
    """`_id: ""` is no id (Elasticsearch: "if _id is specified it must not be empty"): stored with the client id "",
    it made every later document sent so a duplicate of it, answered 200 noop and dropped (a new-user trial)."""
    body = ndjson(
        {"create": {"_index": "app", "_id": ""}},
        {"message": "first"},
        {"index": {"_index": "app", "_id": ""}},
        {"message": "second"},
        {"create": {"_index": "app"}},
        {"message": "kept"},
    )
    answer = (await client.post("/_bulk", content=body, headers=NDJSON)).json()
    statuses = [(action, item["status"]) for entry in answer["items"] for action, item in entry.items()]
    assert statuses == [("create", 400), ("index", 400), ("create", 201)]
    error = answer["items"][0]["create"]["error"]
    assert error["type"] == "action_request_validation_exception" and "must not be empty" in error["reason"]
    assert [log["message"] for log in await stored(client, log_type="app")] == ["kept"]
    metrics = (await client.get("/metrics")).text
    assert 'loglake_records_rejected_total{reason="id"} 2' in metrics


async def test_an_id_over_512_bytes_and_an_empty_index_are_refused_as_elasticsearch_refuses_them(
    client: httpx.AsyncClient,
) -> None:
    """Both were stored (an adversarial trial): the index "" as log type `_`, the id whole."""
    body = ndjson(
        {"create": {"_index": "app", "_id": "x" * 513}},
        {"message": "long id"},
        {"create": {"_index": ""}},
        {"message": "empty index"},
        {"create": {"_index": "app", "_id": "x" * 512}},
        {"message": "kept"},
    )
    answer = (await client.post("/_bulk", content=body, headers=NDJSON)).json()
    errors = [item.get("error", {}).get("reason", "") for entry in answer["items"] for item in entry.values()]
    assert "is too long, must be no longer than 512 bytes but was: 513" in errors[0]
    assert errors[1] == "Invalid index name [], must not be empty" and not errors[2]
    assert [log["message"] for log in await stored(client, log_type="app")] == ["kept"]
    assert await stored(client, log_type="_") == []


async def test_a_document_stored_before_is_counted_ingested_once(client: httpx.AsyncClient) -> None:
    """A create of an _id stored before (409) and an index of it (noop) store nothing: no record counted ingested
    again, nor refused (it is stored, from before)."""
    body = ndjson({"create": {"_index": "app", "_id": "a1"}}, {"message": "once", "service.name": "shop"})
    await client.post("/_bulk", content=body, headers=NDJSON)
    again = (await client.post("/_bulk", content=body, headers=NDJSON)).json()
    assert again["items"][0]["create"]["status"] == 409
    indexed = body.replace(b'"create"', b'"index"')
    assert (await client.post("/_bulk", content=indexed, headers=NDJSON)).json()["items"][0]["index"]["status"] == 200
    metrics = (await client.get("/metrics")).text
    assert 'loglake_records_ingested_total{service="shop",severity="info"} 1' in metrics
    assert "loglake_records_rejected_total{" not in metrics


async def test_an_index_action_with_op_type_create_is_a_create(client: httpx.AsyncClient) -> None:
    """`{"index": {"op_type": "create"}}` is a create, as Elasticsearch's bulk parser takes it: answered under
    `create`, and an _id stored before is a 409 there, not a noop (it was taken for an index action)."""
    body = ndjson({"index": {"_index": "app", "_id": "a1", "op_type": "create"}}, {"message": "once"})
    first = (await client.post("/_bulk", content=body, headers=NDJSON)).json()
    assert first["items"][0]["create"]["status"] == 201
    again = (await client.post("/_bulk", content=body, headers=NDJSON)).json()
    assert again["errors"] is True and again["items"][0]["create"]["status"] == 409
    assert again["items"][0]["create"]["error"]["type"] == "version_conflict_engine_exception"
    # without an _id, as shippers write a bulk (compact: big ones are read by Arrow), into one index or two
    for into in ({"op_type": "create"}, {"_index": "app", "op_type": "create"}, {"_index": "two", "op_type": "create"}):
        actions = [{"index": into if i % 2 else {**into, "_index": "one"}} for i in range(6000)]
        lines = [compact for i, action in enumerate(actions) for compact in (action, {"message": f"m{i}"})]
        body = b"".join(json.dumps(line, separators=(",", ":")).encode() + b"\n" for line in lines)
        answer = (await client.post("/app/_bulk", content=body, headers=NDJSON)).json()
        assert {key for item in answer["items"] for key in item} == {"create"}, into


async def test_a_uuid_document_id_makes_a_retry_store_the_document_once(client: httpx.AsyncClient) -> None:
    doc_id = str(uuid.uuid4())
    body = ndjson({"index": {"_index": "app", "_id": doc_id}}, {"message": "once"})
    statuses = []
    for _ in range(2):
        answer = (await client.put("/_bulk", content=body, headers=NDJSON)).json()
        assert answer["errors"] is False and answer["items"][0]["index"]["_id"] == doc_id
        statuses.append((answer["items"][0]["index"]["status"], answer["items"][0]["index"]["result"]))
    assert statuses == [(201, "created"), (200, "noop")]  # loglake keeps the first: it does not overwrite
    [record] = await stored(client)
    assert (record["message"], record["id"]) == ("once", doc_id)
    other = ndjson({"create": {"_index": "app", "_id": "my-id"}}, {"message": "named"})
    assert (await client.post("/_bulk", content=other, headers=NDJSON)).json()["items"][0]["create"]["_id"] == "my-id"
    assert (await stored(client, q="named"))[0]["attributes"] == {"_id": "my-id"}


@pytest.mark.parametrize("doc_id", ["order-17", "4f1c8a52-9e0b-4d2c-8a7e-3b5d6c7e8f90"])
async def test_a_create_of_a_document_id_stored_before_conflicts_and_the_other_items_are_stored(
    client: httpx.AsyncClient, doc_id: str
) -> None:
    body = ndjson(
        {"create": {"_index": "orders", "_id": doc_id}},
        {"message": "first"},
        {"create": {"_index": "orders"}},
        {"message": "between"},
        {"create": {"_index": "orders", "_id": doc_id}},
        {"message": "again in the same bulk"},
        {"create": {"_index": "returns", "_id": "order-17"}},  # an id names a document of its index
        {"message": "another index"},
    )
    answer = (await client.post("/_bulk", content=body, headers=NDJSON)).json()
    assert answer["errors"] is True
    assert [item["create"]["status"] for item in answer["items"]] == [201, 201, 409, 201]
    conflict = answer["items"][2]["create"]
    assert conflict["_id"] == doc_id and conflict["error"] == {
        "type": "version_conflict_engine_exception",
        "reason": f"[{doc_id}]: version conflict, document already exists (current version [1])",
    }
    again = ndjson({"create": {"_index": "orders", "_id": doc_id}}, {"message": "sent again"})
    answer = (await client.post("/_bulk", content=again, headers=NDJSON)).json()
    assert answer["errors"] is True and answer["items"][0]["create"]["status"] == 409
    for path in (f"/orders/_create/{doc_id}", f"/orders/_doc/{doc_id}?op_type=create"):
        single = await client.put(path, json={"message": "once more"})
        assert single.status_code == 409 and single.json()["error"]["type"] == "version_conflict_engine_exception"
    other = await client.put(f"/orders/_doc/{doc_id}?op_type=upsert", json={"message": "once more"})
    assert other.status_code == 400 and "opType must be 'create' or 'index'" in other.json()["error"]["reason"]
    assert sorted(log["message"] for log in await stored(client)) == ["another index", "between", "first"]
    metrics = (await client.get("/metrics")).text
    assert 'loglake_protocol_records_total{protocol="elasticsearch",outcome="rejected"} 4' in metrics


async def test_a_big_bulk_is_stored_as_one_batch_and_each_item_answers_its_record_id(
    client: httpx.AsyncClient,
) -> None:
    count = BULK_MIN_RECORDS + 200
    lines: list[object] = []
    for i in range(count):
        lines += [{"create": {}}, {"@timestamp": NOW_MS - i - 1, "message": f"big {i}", "service.name": "bulk"}]
    response = await client.post(
        "/big/_bulk", content=gzip.compress(ndjson(*lines)), headers=NDJSON | {"content-encoding": "gzip"}
    )
    answer = response.json()
    assert answer["errors"] is False and len(answer["items"]) == count
    ids = [item["create"]["_id"] for item in answer["items"]]
    for i in (0, count // 2, count - 1):
        record = (await client.get(f"/logs/{ids[i]}")).json()
        assert record["message"] == f"big {i}" and record["log_type"] == "big"


async def test_a_big_regular_bulk_with_a_document_the_check_refuses_answers_it_alone_and_stores_the_rest(
    client: httpx.AsyncClient, app: LoglakeApp
) -> None:
    """A bulk read by Arrow as shippers write it (its items made alike, checked in groups of max_records), one of
    whose documents the check refuses (a message over the limit) in its second group: that item alone is refused,
    with the check's reason; each other is answered its own record's id, the one after it too."""
    count = app.service.limits.max_records + 500
    bad = app.service.limits.max_records + 7
    sources = [
        {"@timestamp": "2026-11-01T23:59:58.250Z", "message": f"m{i}", "service": {"name": "web"}} for i in range(count)
    ]
    sources[bad]["message"] = "x" * (app.service.limits.max_message_bytes + 1)
    body = b"".join(
        b'{"create":{"_index":"filebeat-9.0.0"}}\n' + json.dumps(source, separators=(",", ":")).encode() + b"\n"
        for source in sources
    )
    assert len(body) >= elastic_columns._MIN_BYTES and elastic_columns.read_regular_bulk(body, None) is not None
    response = await client.post("/_bulk", content=body, headers=NDJSON)
    answer = response.json()
    assert answer["errors"] is True
    statuses = [entry["create"]["status"] for entry in answer["items"]]
    assert statuses == [201] * bad + [400] + [201] * (count - bad - 1)
    refused = answer["items"][bad]["create"]
    assert refused["error"]["type"] == "document_parsing_exception" and "message" in refused["error"]["reason"]
    for row in (0, bad - 1, bad + 1, count - 1):
        record = (await client.get(f"/logs/{answer['items'][row]['create']['_id']}")).json()
        assert record["message"] == f"m{row}"
    metrics = (await client.get("/metrics")).text
    assert f'loglake_protocol_records_total{{protocol="elasticsearch",outcome="accepted"}} {count - 1}' in metrics
    assert 'loglake_protocol_records_total{protocol="elasticsearch",outcome="rejected"} 1' in metrics


async def test_a_big_bulk_as_shippers_write_it_is_stored_with_each_field_mapped(client: httpx.AsyncClient) -> None:
    """Compact JSON, as Beats write it, in a bulk big enough (some MB) to be read by Arrow (elastic_columns)."""
    count = BULK_MIN_RECORDS + 600
    sources = [
        {
            "@timestamp": f"2026-11-01T23:59:{i % 60:02d}.250Z",
            "message": f'GET "/{i}" 200',
            "log": {"level": "warn" if i % 2 else "info", "offset": i},
            "service": {"name": "web"},
            "host": {"name": "h1"},
            "event": {"original": f"{i} " * 500},
        }
        for i in range(count)
    ]
    body = b"".join(
        b'{"create":{"_index":"filebeat-9.0.0"}}\n' + json.dumps(source, separators=(",", ":")).encode() + b"\n"
        for source in sources
    )
    assert len(body) >= elastic_columns._MIN_BYTES and elastic_columns.read_regular_bulk(body, None) is not None
    response = await client.post("/_bulk?filter_path=errors,items.*.error,items.*.status", content=body, headers=NDJSON)
    assert response.json() == {"errors": False, "items": [{"create": {"status": 201}}] * count}
    logs = {log["message"]: log for log in await stored(client, log_type="filebeat-9.0.0")}
    assert len(logs) == 1000  # (the newest: as many as one read gives)
    assert {key: logs['GET "/1599" 200'][key] for key in ("service", "severity", "attributes", "timestamp")} == {
        "service": "web",
        "severity": "warning",
        "attributes": {"log": {"offset": 1599}, "host": {"name": "h1"}, "event": {"original": "1599 " * 500}},
        "timestamp": 1_793_577_579_250,  # 2026-11-01T23:59:39.250Z
    }


async def test_keys_after_an_actions_first_are_ignored_as_elasticsearch_8_ignores_them(
    client: httpx.AsyncClient,
) -> None:
    """winston-elasticsearch writes {"index": {...}, "attempts": 0}: refused, it retried 400 times in a second and
    crashed the app, storing nothing (the Node.js trial)."""
    body = ndjson(
        {"index": {"_index": "winston", "pipeline": None}, "attempts": 0},
        {"message": "first"},
        {"create": {"_index": "winston"}, "index": {}},
        {"message": "second"},
    )
    answer = (await client.post("/_bulk", content=body, headers=NDJSON)).json()
    assert answer["errors"] is False and [list(item) for item in answer["items"]] == [["index"], ["create"]]
    assert sorted(log["message"] for log in await stored(client, log_type="winston")) == ["first", "second"]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"create": {}}\n{"message": "x"}', "terminated by a newline"),
        # (told of the newline, a sender adding one to its array was refused again: a new-user trial)
        (b'[{"message": "array"}]', "a bulk request is NDJSON, not a JSON array"),
        (b'[{"message": "array"}]\n', "a bulk request is NDJSON, not a JSON array"),
        (b'{"create": {}}\n', "no source line"),
        (b'{}\n{"message": "x"}\n', "Malformed action/metadata line [1]"),
        (b'{"upsert": {}}\n{"message": "x"}\n', "but found [upsert]"),
        (b"not json\n", "Malformed action/metadata line [1]"),
        (b"\n", "no requests added"),
        (b"", "request body is required"),  # (as Elasticsearch says it; it was "must be terminated by a newline")
    ],
)
async def test_a_body_that_is_no_bulk_request_is_refused_whole_in_elasticsearchs_form(
    client: httpx.AsyncClient, body: bytes, reason: str
) -> None:
    response = await client.post("/_bulk", content=body, headers=NDJSON)
    assert response.status_code == 400, response.text
    assert response.headers["x-elastic-product"] == "Elasticsearch"
    error = response.json()
    assert error["status"] == 400 and reason in error["error"]["reason"]
    assert error["error"]["root_cause"][0]["type"] == error["error"]["type"]
    assert await stored(client) == []
    # Counted as POST /logs, OTLP and Loki count the bodies they refuse whole.
    assert 'loglake_bodies_rejected_total{code="invalid_bulk"} 1' in (await client.get("/metrics")).text


async def test_other_media_types_are_refused_and_the_clients_vendor_types_accepted(client: httpx.AsyncClient) -> None:
    body = ndjson({"create": {"_index": "app"}}, {"message": "vendor"})
    text = await client.post("/_bulk", content=body, headers={"content-type": "text/plain"})
    assert text.status_code == 406 and "text/plain" in text.json()["error"]["reason"]
    assert text.json()["error"]["reason"].endswith("send application/x-ndjson")
    # (a single document's API takes JSON: it was told to send NDJSON too, a new-user trial)
    document = await client.post("/app/_doc", content=b'{"message": "m"}', headers={"content-type": "text/plain"})
    assert document.status_code == 406 and document.json()["error"]["reason"].endswith("send application/json")
    vendor = {"content-type": "application/vnd.elasticsearch+x-ndjson; compatible-with=9"}
    assert (await client.post("/_bulk", content=body, headers=vendor)).json()["errors"] is False


async def test_a_bulk_of_more_actions_than_a_batch_may_hold_is_stored_in_groups(settings: Settings) -> None:
    """Vector sends bulks of up to 10 MB whatever their count: stored max_records at a time, all answered."""
    application = LoglakeApp.from_settings(dataclasses.replace(settings, max_records=2))
    try:
        async with asgi_client(application, key_for(application, "ingest,read")) as client:
            body = ndjson(*[line for i in range(5) for line in ({"create": {"_index": "a"}}, {"message": f"{i}"})])
            answer = (await client.post("/_bulk", content=body, headers=NDJSON)).json()
            assert answer["errors"] is False and len({item["create"]["_id"] for item in answer["items"]}) == 5
            assert sorted(log["message"] for log in await stored(client)) == ["0", "1", "2", "3", "4"]
    finally:
        application.close()


@pytest.mark.parametrize("refused", [False, True], ids=["all-stored", "one-refused"])
async def test_each_item_of_a_bulk_checked_as_tables_answers_its_own_records_id(
    settings: Settings, refused: bool
) -> None:
    """A bulk of several table-sized groups: each stored item's _id is its own record's logId, whether every item was
    stored (the ids joined from the tables) or one was refused (each item's own)."""
    application = LoglakeApp.from_settings(dataclasses.replace(settings, max_records=BULK_MIN_RECORDS))
    count = 3 * BULK_MIN_RECORDS  # (three groups, each checked as a table when all are stored)
    lines: list[object] = []
    for i in range(count):
        action = "update" if refused and i == BULK_MIN_RECORDS + 50 else "create"
        lines += [{action: {"_index": "tables"}}, {"@timestamp": NOW_MS - i - 1, "message": f"t {i}"}]
    try:
        async with asgi_client(application, key_for(application, "ingest,read")) as client:
            answer = (await client.post("/_bulk", content=ndjson(*lines), headers=NDJSON)).json()
            assert answer["errors"] is refused and len(answer["items"]) == count
            entries = [next(iter(item.values())) for item in answer["items"]]
            assert sum(entry["status"] == 201 for entry in entries) == count - refused
            for i in (
                0,
                BULK_MIN_RECORDS - 1,
                BULK_MIN_RECORDS,
                BULK_MIN_RECORDS + 49,
                BULK_MIN_RECORDS + 51,
                count - 1,
            ):
                assert entries[i]["status"] == 201
                record = (await client.get(f"/logs/{entries[i]['_id']}")).json()
                assert record["message"] == f"t {i}"
    finally:
        application.close()


# -- auth in the forms Elasticsearch's clients send it ---------------------------------------------------


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


async def test_every_form_of_the_key_is_accepted(app: LoglakeApp) -> None:
    key = key_for(app, "ingest,read")
    forms = [
        f"Bearer {key}",
        basic("elastic", key),
        basic("", key),
        f"ApiKey {key}",
        "ApiKey " + base64.b64encode(f"any-id:{key}".encode()).decode(),
    ]
    async with asgi_client(app) as client:
        for number, form in enumerate(forms):
            body = ndjson({"create": {"_index": "auth"}}, {"message": f"form {number}"})
            response = await client.post("/_bulk", content=body, headers=NDJSON | {"authorization": form})
            assert response.status_code == 200 and response.json()["errors"] is False, form
    async with asgi_client(app, key) as reader:
        assert len(await stored(reader, log_type="auth")) == len(forms)


async def test_auth_failures_answer_in_elasticsearchs_form(app: LoglakeApp) -> None:
    body = ndjson({"create": {"_index": "auth"}}, {"message": "refused"})
    async with asgi_client(app) as client:
        for authorization in (None, basic("elastic", "wrong"), "ApiKey " + base64.b64encode(b"id:wrong").decode()):
            headers = NDJSON | ({"authorization": authorization} if authorization else {})
            response = await client.post("/_bulk", content=body, headers=headers)
            assert response.status_code == 401
            assert response.json()["error"]["type"] == "security_exception" and response.json()["status"] == 401
            assert response.headers["x-elastic-product"] == "Elasticsearch"
            assert response.headers.get_list("www-authenticate") == ['Basic realm="loglake" charset="UTF-8"', "ApiKey"]
        reader = {"authorization": f"Bearer {key_for(app, 'read')}"}
        forbidden = await client.post("/_bulk", content=body, headers=NDJSON | reader)
        assert forbidden.status_code == 403 and forbidden.json()["error"]["type"] == "security_exception"
        assert "ingest" in forbidden.json()["error"]["reason"]
        probe = await client.get("/_license")
        assert probe.status_code == 401 and probe.json()["error"]["type"] == "security_exception"
    async with asgi_client(app, key_for(app, "read")) as reader:
        assert await stored(reader) == []


async def test_the_key_rate_limit_answers_429_in_elasticsearchs_form(app: LoglakeApp) -> None:
    body = ndjson({"create": {"_index": "limited"}}, {"message": "x"})
    async with asgi_client(app, key_for(app, "ingest", rate_limit=0.5, rate_burst=1)) as client:
        assert (await client.post("/_bulk", content=body, headers=NDJSON)).status_code == 200
        limited = await client.post("/_bulk", content=body, headers=NDJSON)
        assert limited.status_code == 429 and limited.headers["retry-after"] == "2"
        assert limited.json()["error"]["type"] == "es_rejected_execution_exception"


# -- what shippers ask before sending ----------------------------------------------------------------------


async def test_the_root_answers_a_version_document_and_sends_browsers_to_the_ui(app: LoglakeApp) -> None:
    async with asgi_client(app) as anonymous:
        root = await anonymous.get("/", headers={"accept": "application/json"})
        assert root.status_code == 200 and root.headers["x-elastic-product"] == "Elasticsearch"
        assert root.json()["version"]["number"].startswith("9.")
        head = await anonymous.head("/")
        assert head.status_code == 200 and head.headers["x-elastic-product"] == "Elasticsearch"
        browser = await anonymous.get("/", headers={"accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
        assert browser.status_code == 302 and browser.headers["location"] == "/ui/"


async def test_wrong_credentials_fail_the_connection_check_at_the_root(app: LoglakeApp) -> None:
    """Beats, Logstash and the clients' info()/ping() check the connection with GET / or HEAD /: a wrong password
    passed it, and failed only at every bulk after it (trial s14 T2)."""
    async with asgi_client(app) as anonymous:
        for method in ("GET", "HEAD"):
            wrong = await anonymous.request(method, "/", auth=("elastic", "not-a-key"))
            assert wrong.status_code == 401 and wrong.headers["x-elastic-product"] == "Elasticsearch", method
            assert "Basic" in wrong.headers["www-authenticate"]
        assert (await anonymous.get("/", headers={"authorization": "ApiKey bm9wZQ=="})).status_code == 401
        assert (await anonymous.get("/", headers={"authorization": "Bearer nope"})).json()["status"] == 401
        good = await anonymous.get("/", auth=("elastic", key_for(app, "ingest")))
        assert good.status_code == 200 and good.json()["version"]["number"].startswith("9.")


async def test_the_setup_calls_of_beats_logstash_and_vector_are_answered(client: httpx.AsyncClient) -> None:
    license_ = await client.get("/_license")
    assert license_.json()["license"]["status"] == "active"
    assert license_.headers["x-elastic-product"] == "Elasticsearch"
    assert (await client.get("/_xpack")).json()["features"]["ilm"]["available"] is False
    assert (await client.get("/_cluster/health")).json()["status"] == "green"
    assert (await client.head("/_cat/health")).status_code == 200  # rsyslog's check (a 404: the shipper trial)
    line = (await client.get("/_cat/health", params={"v": "true"})).text.splitlines()
    assert line[0].split()[:4] == ["epoch", "timestamp", "cluster", "status"] and line[1].split()[2:4] == [
        "loglake",
        "green",
    ]
    assert (await client.get("/_cat/health", params={"format": "json"})).json()[0]["status"] == "green"
    for path in ("/_refresh", "/node-es/_refresh"):  # the bulk helper's refreshOnCompletion (a 404: the Node.js trial)
        refreshed = await client.post(path)
        assert refreshed.json() == {"_shards": {"total": 1, "successful": 1, "failed": 0}}, refreshed.text
    # GET in the shape Elasticsearch gives each kind (it answered {}: a script reading index_templates failed)
    shapes = {
        "_index_template": lambda got: got["index_templates"][0]["name"],
        "_template": lambda got: next(iter(got)),
        "_component_template": lambda got: got["component_templates"][0]["name"],
        "_ilm/policy": lambda got: next(iter(got)) if "policy" in got["filebeat-9.0.0"] else None,
        "_ingest/pipeline": lambda got: next(iter(got)) if "processors" in got["filebeat-9.0.0"] else None,
    }
    for kind, named in shapes.items():
        assert named((await client.get(f"/{kind}/filebeat-9.0.0")).json()) == "filebeat-9.0.0", kind
    for kind in ("_index_template", "_template", "_component_template", "_ilm/policy", "_ingest/pipeline"):
        assert (await client.head(f"/{kind}/filebeat-9.0.0")).status_code == 200
        put = await client.put(f"/{kind}/filebeat-9.0.0", json={"index_patterns": ["filebeat-*"]})
        assert put.json() == {"acknowledged": True} and put.headers["x-elastic-product"] == "Elasticsearch"


async def test_an_elasticsearch_call_loglake_does_not_serve_is_a_404_in_elasticsearchs_form(
    client: httpx.AsyncClient,
) -> None:
    """What shippers and the official clients may call that loglake does not serve (node sniffing, mappings,
    data streams): a 404 they can read, with the product header; loglake's own paths keep their own form."""
    for method, path in (("GET", "/_nodes/http"), ("GET", "/filebeat-9.0.0/_mapping"), ("PUT", "/_data_stream/x")):
        response = await client.request(method, path)
        assert response.status_code == 404 and response.headers["x-elastic-product"] == "Elasticsearch", path
        answer = response.json()
        assert answer["status"] == 404 and answer["error"]["type"] == "resource_not_found_exception", answer
        assert path in answer["error"]["reason"]
    for method in ("GET", "HEAD"):
        unserved = await client.request(method, "/_nodes")  # an API's path, not an index's
        assert unserved.status_code == 404 and unserved.headers["x-elastic-product"] == "Elasticsearch", method
    own = await client.get("/no-such/page")
    assert own.status_code == 404 and "x-elastic-product" not in own.headers and own.json()["error"]["code"]


async def test_an_indexs_calls_are_answered_in_elasticsearchs_form(client: httpx.AsyncClient) -> None:
    """`/{index}` (which loglake's 404 answered without the product header): loglake keeps no indices, so none
    exists, as Elasticsearch answers a missing one (a script that checks before sending creates it, then goes
    on); creating it is acknowledged, deleting it refused (nothing is deleted)."""
    assert (await client.head("/newidx")).status_code == 404
    got = await client.get("/newidx")
    assert got.status_code == 404 and got.headers["x-elastic-product"] == "Elasticsearch"
    assert got.json()["error"]["type"] == "index_not_found_exception"
    assert got.json()["error"]["reason"].startswith("no such index [newidx]: loglake keeps no indices")
    created = await client.put("/newidx", json={"mappings": {"properties": {"message": {"type": "text"}}}})
    assert created.headers["x-elastic-product"] == "Elasticsearch"
    assert created.json() == {"acknowledged": True, "shards_acknowledged": True, "index": "newidx"}
    for method in ("DELETE", "POST"):
        refused = await client.request(method, "/newidx")
        assert refused.status_code == 405 and refused.headers["x-elastic-product"] == "Elasticsearch", method
        assert refused.headers["allow"] == "GET, HEAD, PUT"
        assert refused.json()["status"] == 405 and refused.json()["error"]["type"] == "illegal_argument_exception"
    assert "does not delete indices" in (await client.delete("/newidx")).json()["error"]["reason"]
    unknown = await client.put("/newidx", params={"shards": "1"})
    assert unknown.status_code == 400 and "unrecognized parameter: [shards]" in unknown.json()["error"]["reason"]


async def test_a_record_id_route_and_a_bulk_into_an_index_of_the_same_name_both_work(
    client: httpx.AsyncClient,
) -> None:
    assert (await client.get("/logs/_bulk")).status_code == 404
    bulk = await client.post("/logs/_bulk", content=ndjson({"create": {}}, {"message": "m"}), headers=NDJSON)
    assert bulk.json()["items"][0]["create"]["_index"] == "logs"
    assert (await client.delete("/logs/_bulk")).status_code == 405
    document = await client.post("/logs/_doc", json={"message": "one"})  # a document into the index `logs`
    assert document.status_code == 201 and document.json()["_index"] == "logs"


async def test_a_bulk_sized_bulk_of_ecs_documents_is_mapped_as_a_small_one_is(
    app: LoglakeApp, client: httpx.AsyncClient
) -> None:
    def bulk(first: int, count: int) -> bytes:
        lines: list[object] = []
        for i in range(first, first + count):
            lines += [
                {"create": {"_index": "filebeat-9.0.0"}},
                {
                    "@timestamp": "2026-11-01T23:59:58.250Z",
                    "message": f"m {i}.",
                    "log": {"level": "warn", "logger": "app"},
                    "service": {"name": "shop"},
                    "host": {"name": "h1"},
                    "event": "E9",
                },
            ]
        return ndjson(*lines)

    for first, count in ((0, 2), (2, BULK_MIN_RECORDS)):
        assert (await client.post("/_bulk", content=bulk(first, count), headers=NDJSON)).json()["errors"] is False
    assert app.runtime.store.count() == 2  # the bulk-sized one went to the lake
    expected = {
        "timestamp": NOW_MS - 1750,
        "service": "shop",
        "severity": "warning",
        "log_type": "filebeat-9.0.0",
        "attributes": {"log": {"logger": "app"}, "host": {"name": "h1"}, "event": "E9"},
    }
    for message in ("m 1.", f"m {BULK_MIN_RECORDS + 1}."):
        [record] = await stored(client, q=message)
        assert {name: record[name] for name in expected} == expected


@pytest.mark.parametrize("count", [1, BULK_MIN_RECORDS])  # a small bulk, and one mapped column by column
async def test_the_flat_fields_of_pino_fluent_bit_and_winston_map_as_ecs_ones_do(
    app: LoglakeApp, client: httpx.AsyncClient, count: int
) -> None:
    """pino-elasticsearch sends pino's `level` (a number) and `time`, Fluent Bit `level` and `service`, winston
    `severity`: each stayed an attribute, every record stored as info at its arrival (the Node.js and Fluent Bit
    trials). What is no level, time or id stays an attribute."""
    trace, span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    pino = {"level": 50, "time": NOW_MS - 1750, "msg": "pino", "trace_id": trace, "span_id": span, "pid": 7}
    fluent = {"@timestamp": "2026-11-01T23:59:58.250Z", "log": "fluent", "level": "warn", "service": "shop"}
    winston = {"message": "winston", "severity": "crit", "timestamp": NOW_MS - 1750}
    odd = {"message": "odd", "level": 99, "time": "soon", "trace_id": "abc", "service": {"name": "api"}}
    lines: list[object] = []
    for doc in (pino, fluent, winston, odd):
        for i in range(count):
            lines += [{"create": {"_index": "node"}}, {**doc, "n": i}]
    assert (await client.post("/_bulk", content=ndjson(*lines), headers=NDJSON)).json()["errors"] is False
    found = {}
    for message in ("pino", "fluent", "winston", "odd"):
        [found[message]] = [r for r in await stored(client, q=message, limit="1000") if r["attributes"]["n"] == 0]
    assert {m: (r["severity"], r["service"], r["timestamp"]) for m, r in found.items() if m != "odd"} == {
        "pino": ("error", "default", NOW_MS - 1750),
        "fluent": ("warning", "shop", NOW_MS - 1750),
        "winston": ("critical", "default", NOW_MS - 1750),
    }
    assert (found["pino"]["trace_id"], found["pino"]["span_id"], found["pino"]["attributes"]) == (
        trace, span, {"pid": 7, "n": 0}
    )  # fmt: skip
    odd = found["odd"]
    assert (odd["severity"], odd["service"]) == ("info", "api")
    assert odd["attributes"] == {"level": 99, "time": "soon", "trace_id": "abc", "n": 0}


async def test_a_single_document_is_stored_as_a_one_action_bulk_and_answered_as_elasticsearch_does(
    client: httpx.AsyncClient,
) -> None:
    doc_id = str(uuid.uuid4())
    pretty = json.dumps({"message": "order 7\npaid", "log": {"level": "warn"}, "service.name": "shop"}, indent=2)
    calls = [
        ("POST", "/app/_doc", None),
        ("PUT", f"/app/_doc/{doc_id}", doc_id),
        ("PUT", f"/app/_doc/{doc_id}", doc_id),  # a retry: a uuid id is the record's client id, stored once
        ("POST", "/app/_create/named-1", "named-1"),
    ]
    for number, (method, path, expected_id) in enumerate(calls):
        answer = await client.request(method, path, content=pretty, headers={"content-type": "application/json"})
        body = answer.json()
        assert answer.headers["x-elastic-product"] == "Elasticsearch"
        expected = (200, "noop") if number == 2 else (201, "created")
        assert (answer.status_code, body["result"]) == expected, answer.text
        assert (body["_index"], body["_version"]) == ("app", 1)
        assert body["_shards"] == {"total": 1, "successful": 1, "failed": 0}
        assert body["_id"] == expected_id or (expected_id is None and uuid.UUID(body["_id"]))
    logs = await stored(client, log_type="app")
    assert [(log["message"], log["severity"], log["service"]) for log in logs] == [
        ("order 7\npaid", "warning", "shop")
    ] * 3
    assert sorted(log["attributes"].get("_id", "") for log in logs) == ["", "", "named-1"]


async def test_a_single_document_that_cannot_be_stored_is_an_error_in_elasticsearchs_form(
    client: httpx.AsyncClient,
) -> None:
    json_type = {"content-type": "application/json"}
    bad_time = await client.post("/app/_doc", json={"@timestamp": "not a time", "message": "bad"})
    assert bad_time.status_code == 400 and bad_time.json()["error"]["type"] == "document_parsing_exception"
    assert "timestamp" in bad_time.json()["error"]["reason"]
    not_json = await client.put("/app/_doc/1", content=b"{not json", headers=json_type)
    assert not_json.status_code == 400 and not_json.json()["status"] == 400
    empty = await client.post("/app/_doc", content=b"", headers=json_type)
    assert empty.status_code == 400 and "request body is required" in empty.json()["error"]["reason"]
    assert (await client.get("/app/_doc/1")).status_code in (404, 405)
    assert await stored(client, log_type="app") == []


async def test_a_filter_path_answers_only_what_it_names_as_elasticsearch_does(client: httpx.AsyncClient) -> None:
    """Beats and Logstash send `filter_path=errors,items.*.error,items.*.status` with every bulk: a stored item's
    entry is then its status alone (no id, version or shards to write and read back)."""
    body = ndjson(
        {"create": {"_index": "app"}},
        {"message": "kept"},
        {"create": {"_index": "app"}},
        {"@timestamp": "yesterday-ish", "message": "bad time"},
    )
    shipper = await client.post("/_bulk?filter_path=errors,items.*.error,items.*.status", content=body, headers=NDJSON)
    assert shipper.status_code == 200
    answer = shipper.json()
    assert answer.keys() == {"errors", "items"} and answer["errors"] is True
    assert answer["items"][0] == {"create": {"status": 201}}
    (failed,) = answer["items"][1].values()
    assert failed.keys() == {"status", "error"} and failed["status"] == 400
    assert failed["error"]["type"] == "document_parsing_exception"
    # Only the errors: the stored item's entry holds nothing asked for, and is left out.
    errors_only = await client.post("/app/_bulk", params={"filter_path": "items.*.error"}, content=body, headers=NDJSON)
    assert errors_only.json() == {"items": [{"create": {"error": failed["error"]}}]}
    nothing_failed = await client.post(
        "/app/_bulk?filter_path=items.*.error", content=body[: body.index(b"\n", 30) + 1], headers=NDJSON
    )
    assert nothing_failed.status_code == 200 and nothing_failed.json() == {}
    # A form loglake does not apply (an exclusion) answers the whole, never less than asked.
    whole = await client.post("/_bulk?filter_path=-took", content=body, headers=NDJSON)
    assert whole.json().keys() == {"errors", "took", "items"}
    assert whole.json()["items"][0]["create"].keys() >= {"_index", "_id", "status", "result"}
    assert [log["message"] for log in await stored(client, log_type="app")] == ["kept"] * 4


async def test_a_big_bulk_with_a_source_that_is_not_utf8_stores_the_others_and_refuses_it(
    client: httpx.AsyncClient,
) -> None:
    """Arrow's JSON reader keeps a string's bytes unchecked: a big bulk (read by Arrow) with a byte that is no UTF-8
    in one source stored that text in the lake, where every read of it then failed. It is refused as the smaller
    bulks' path refuses it, the others stored."""
    count = BULK_MIN_RECORDS + 600
    action = b'{"create":{"_index":"app"}}\n'
    sources = [
        json.dumps({"message": f"line {i}", "pad": "p" * 2000}, separators=(",", ":")).encode() for i in range(count)
    ]
    sources[7] = sources[7].replace(b"line 7", b"line \xff7")
    body = b"".join(action + source + b"\n" for source in sources)
    assert len(body) >= elastic_columns._MIN_BYTES
    response = await client.post("/_bulk?filter_path=errors,items.*.error,items.*.status", content=body, headers=NDJSON)
    answer = response.json()
    assert answer["errors"] is True
    assert answer["items"][7]["create"]["status"] == 400
    assert (
        answer["items"][7]["create"]["error"]["reason"]
        == "`message` is not valid UTF-8: send the log line as text in UTF-8"
    )
    assert [item["create"]["status"] for item in answer["items"][:7] + answer["items"][8:]] == [201] * (count - 1)
    assert len(await stored(client, log_type="app")) == 1000  # (the newest: as many as one read gives), each readable


async def test_a_big_gzipped_bulk_is_inflated_off_the_event_loop_and_stored(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A shipper's big gzipped bulk (Beats, Logstash and Vector can gzip theirs) is inflated on an ingest thread, as
    every other protocol's body is, not on the event loop that serves everyone else (it was: ~1 ms a Filebeat bulk)."""
    inflated_on = []

    def decode_content(request: object, body: bytes, limit: int) -> bytes:
        inflated_on.append(threading.current_thread().name)
        return http.decode_content(request, body, limit)

    monkeypatch.setattr(elastic_routes, "decode_content", decode_content)
    documents = [
        {"@timestamp": "2026-11-01T23:00:00.000Z", "message": f"line {i} {uuid.uuid4()}", "log.level": "warn"}
        for i in range(3000)
    ]
    body = gzip.compress(ndjson(*(line for document in documents for line in ({"create": {}}, document))))
    assert len(body) >= OFF_LOOP_COMPRESSED_BYTES
    headers = {**NDJSON, "content-encoding": "gzip"}
    response = await client.post("/logs-app/_bulk", content=body, headers=headers)
    assert (response.status_code, response.json()["errors"]) == (200, False)
    assert inflated_on and all(name.startswith("loglake-ingest") for name in inflated_on), inflated_on
    query = await client.post("/query", json={"sql": "SELECT count(*), min(log_type) FROM logs"})
    assert query.json()["rows"] == [[3000, "logs-app"]]


async def test_a_big_gzipped_document_is_inflated_off_the_event_loop_and_stored(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The single-document API inflates as the bulk API does: a big gzipped body on an ingest thread."""
    inflated_on = []

    def decode_content(request: object, body: bytes, limit: int) -> bytes:
        inflated_on.append(threading.current_thread().name)
        return http.decode_content(request, body, limit)

    monkeypatch.setattr(elastic_routes, "decode_content", decode_content)
    message = base64.b64encode(os.urandom(60_000)).decode()  # (random: gzip keeps it big)
    body = gzip.compress(json.dumps({"@timestamp": "2026-11-01T23:00:00.000Z", "message": message}).encode())
    assert len(body) >= OFF_LOOP_COMPRESSED_BYTES
    response = await client.post("/app/_doc", content=body, headers={**NDJSON, "content-encoding": "gzip"})
    assert response.status_code == 201, response.text
    assert inflated_on and all(name.startswith("loglake-ingest") for name in inflated_on), inflated_on
    stored = await client.post("/query", json={"sql": "SELECT length(message), log_type FROM logs"})
    assert stored.json()["rows"] == [[len(message), "app"]]
