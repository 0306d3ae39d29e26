"""The official `elasticsearch` Python client (9.x) against a real `loglake serve`: it connects (the product
check), its bulk helper stores documents, failing items come back as the helper reports them, and its auth
forms (api_key as text or as an (id, key) pair, basic auth) are accepted; its single-document calls
(`index`, `create`) store a document each."""

from __future__ import annotations

import uuid

import httpx
import pytest
from elasticsearch import (
    ApiError,
    AuthenticationException,
    BadRequestError,
    ConflictError,
    Elasticsearch,
    NotFoundError,
    helpers,
)

pytestmark = pytest.mark.e2e


@pytest.fixture
def server(server_factory: callable, admin_key_of: callable) -> tuple[str, str]:
    """A server and an ingest+read key on it."""
    started = server_factory()
    made = httpx.post(
        started.url + "/admin/keys",
        json={"name": "shipper", "scopes": ["ingest", "read"]},
        headers={"authorization": f"Bearer {admin_key_of(started)}"},
    )
    return started.url, made.json()["secret"]


def recent(url: str, key: str, **params: str) -> list[dict]:
    response = httpx.get(
        url + "/logs/recent",
        params={"since": "0", "limit": "1000", **params},
        headers={"authorization": f"Bearer {key}"},
    )
    return response.json()["logs"]


def test_the_bulk_helper_stores_documents_and_reports_failing_items(server: tuple[str, str]) -> None:
    url, key = server
    with Elasticsearch(url, api_key=key) as es:
        assert es.info()["version"]["number"].startswith("9.")
        docs = [
            {"_index": "checkout", "message": f"order {i} paid", "log.level": "info", "service.name": "shop"}
            for i in range(250)
        ]
        done, failed = helpers.bulk(es, docs, chunk_size=100)
        assert (done, failed) == (250, [])
        bad = [
            {"_index": "checkout", "message": "fine", "service": {"name": "shop"}},
            {"_index": "checkout", "@timestamp": "not a time", "message": "bad"},
            {"_op_type": "delete", "_index": "checkout", "_id": "x"},
        ]
        done, errors = helpers.bulk(es, bad, raise_on_error=False)
        assert done == 1
        assert [(next(iter(e)), e[next(iter(e))]["status"]) for e in errors] == [("index", 400), ("delete", 400)]
        with pytest.raises(helpers.BulkIndexError) as raised:
            helpers.bulk(es, bad[1:2])
        assert "timestamp" in raised.value.errors[0]["index"]["error"]["reason"]
    logs = recent(url, key, service="shop")
    assert len(logs) == 251 and {log["log_type"] for log in logs} == {"checkout"}


def test_the_clients_auth_forms_are_accepted_and_a_wrong_key_refused(server: tuple[str, str]) -> None:
    url, key = server
    for options in ({"api_key": ("some-id", key)}, {"basic_auth": ("elastic", key)}):
        with Elasticsearch(url, **options) as es:
            assert es.bulk(operations=[{"create": {"_index": "auth"}}, {"message": "in"}])["errors"] is False
    with Elasticsearch(url, api_key="llk_wrong") as es, pytest.raises(AuthenticationException) as refused:
        es.bulk(operations=[{"create": {"_index": "auth"}}, {"message": "out"}])
    assert refused.value.meta.status == 401
    assert [log["message"] for log in recent(url, key, log_type="auth")] == ["in", "in"]


def test_the_clients_single_document_calls_store_one_document_each(server: tuple[str, str]) -> None:
    url, key = server
    doc_id = str(uuid.uuid4())
    with Elasticsearch(url, api_key=key) as es:
        indexed = es.index(index="single", document={"message": "order 1 paid", "log.level": "info"})
        assert indexed.meta.status == 201 and indexed["result"] == "created" and indexed["_index"] == "single"
        for _ in range(2):  # a retry with the same uuid id stores the document once
            assert es.index(index="single", id=doc_id, document={"message": "order 2 paid"})["_id"] == doc_id
        assert es.create(index="single", id="order-3", document={"message": "order 3 paid"})["_id"] == "order-3"
        with pytest.raises(ConflictError) as conflict:  # a create of an id stored before, as Elasticsearch answers
            es.create(index="single", id="order-3", document={"message": "order 3 paid again"})
        assert conflict.value.meta.status == 409 and "version_conflict_engine_exception" in str(conflict.value)
        assert es.index(index="single", id="order-3", document={"message": "order 3 again"})["result"] == "noop"
        with pytest.raises(BadRequestError) as refused:
            es.index(index="single", document={"@timestamp": "not a time", "message": "bad"})
        assert refused.value.meta.status == 400 and "timestamp" in str(refused.value)
    logs = recent(url, key, log_type="single")
    assert sorted(log["message"] for log in logs) == ["order 1 paid", "order 2 paid", "order 3 paid"]


def test_the_bulk_helper_reads_an_answer_filtered_as_shippers_ask(server: tuple[str, str]) -> None:
    """With Beats' and Logstash's filter_path each entry is a status (and error): the helper still reports
    which items failed."""
    url, key = server
    shippers = "errors,items.*.error,items.*.status"
    with Elasticsearch(url, api_key=key) as es:
        docs = [{"_index": "filtered", "message": f"line {i}"} for i in range(30)]
        bad = {"_index": "filtered", "@timestamp": "not a time", "message": "bad"}
        done, errors = helpers.bulk(es, [*docs, bad], raise_on_error=False, filter_path=shippers)
        assert done == 30
        assert [e["index"]["status"] for e in errors] == [400]
        assert "timestamp" in errors[0]["index"]["error"]["reason"]
        answer = es.bulk(operations=[{"create": {"_index": "filtered"}}, {"message": "one more"}], filter_path=shippers)
        assert answer.body == {"errors": False, "items": [{"create": {"status": 201}}]}
    assert len(recent(url, key, log_type="filtered")) == 31


def test_the_clients_bulk_options_are_taken_and_a_parameter_elasticsearch_lacks_is_refused(
    server: tuple[str, str],
) -> None:
    url, key = server
    operations = [{"create": {"_index": "options"}}, {"message": "with options"}]
    with Elasticsearch(url, api_key=key) as es:
        answer = es.bulk(
            operations=operations,
            refresh="wait_for",
            pipeline="logs-default",
            routing="user-1",
            timeout="30s",
            wait_for_active_shards="1",
            require_alias=False,
            require_data_stream=False,
            include_source_on_error=False,
            source=False,
            pretty=True,
            human=True,
            error_trace=True,
        )
        assert answer["errors"] is False and answer["items"][0]["create"]["status"] == 201
        with pytest.raises(BadRequestError) as refused:
            es.perform_request(
                "POST",
                "/_bulk",
                params={"refesh": "true"},
                headers={"content-type": "application/x-ndjson", "accept": "application/json"},
                body=operations,
            )
        assert refused.value.meta.status == 400
        assert refused.value.body["error"]["reason"] == (
            "request [/_bulk] contains unrecognized parameter: [refesh] -> did you mean [refresh]?"
        )
    assert [log["message"] for log in recent(url, key, log_type="options")] == ["with options"]


def test_the_bulk_helpers_big_chunks_are_stored_as_written(server: tuple[str, str]) -> None:
    """Chunks of some MB (read by Arrow on the server, protocols/elastic_columns.py): the client's own JSON, with
    text JSON escapes and text beyond ASCII, stored with each field mapped and the rest as sent."""
    url, key = server
    docs = [
        {
            "_index": "bulk-big",
            "@timestamp": f"2026-11-01T23:59:{i % 60:02d}.250Z",
            "message": f'order {i} "paid"\tin €',
            "log": {"level": "warning"},
            "service": {"name": "shop"},
            "cart": {"items": i % 7, "note": "x" * 300, "paid": True},
        }
        for i in range(10_000)
    ]
    with Elasticsearch(url, api_key=key) as es:
        done, failed = helpers.bulk(es, docs, chunk_size=10_000, max_chunk_bytes=100 * 1024 * 1024)
    assert (done, failed) == (10_000, [])
    logs = recent(url, key, log_type="bulk-big")
    assert len(logs) == 1000
    newest = next(log for log in logs if log["message"] == 'order 9959 "paid"\tin €')  # (of the last second)
    assert (newest["service"], newest["severity"]) == ("shop", "warning")
    assert newest["attributes"] == {"cart": {"items": 9959 % 7, "note": "x" * 300, "paid": True}}


def test_the_clients_index_calls_are_answered_as_elasticsearch_answers_them(server: tuple[str, str]) -> None:
    """A script that creates its index when it does not exist, then sends, works; deleting is refused (nothing
    was deleted), in the form the client raises for Elasticsearch's own refusals."""
    url, key = server
    with Elasticsearch(url, api_key=key) as es:
        assert not es.indices.exists(index="newidx")
        created = es.indices.create(index="newidx")
        assert created["acknowledged"] is True and created["index"] == "newidx"
        with pytest.raises(NotFoundError) as missing:
            es.indices.get(index="newidx")
        assert missing.value.meta.status == 404 and "index_not_found_exception" in str(missing.value)
        es.index(index="newidx", document={"message": "after create"})
        with pytest.raises(ApiError) as refused:
            es.indices.delete(index="newidx")
        assert refused.value.meta.status == 405 and "does not delete indices" in str(refused.value)
        # a setup script's look before installing: each exists, in Elasticsearch's shape (it answered {})
        assert es.indices.get_index_template(name="logs")["index_templates"][0]["name"] == "logs"
        assert "logs" in es.ilm.get_lifecycle(name="logs") and "logs" in es.ingest.get_pipeline(id="logs")
    assert [log["message"] for log in recent(url, key, log_type="newidx")] == ["after create"]


def test_the_parallel_bulk_helpers_chunks_are_each_stored_once_whole(server: tuple[str, str]) -> None:
    """Four threads sending Filebeat-sized bulks (1,600 documents, ~500 KB) at once: bulks that arrive together
    are checked in one pass on the server (api/joined_checks.py), each answered for its own documents; every
    document is stored exactly once."""
    url, key = server
    count = 16_000
    docs = (
        {"_index": "parallel", "message": f"doc {i} " + "p" * 250, "log.level": "info", "seq": i} for i in range(count)
    )
    with Elasticsearch(url, api_key=key) as es:
        outcomes = list(helpers.parallel_bulk(es, docs, chunk_size=1600, thread_count=4, queue_size=4))
    assert len(outcomes) == count and all(ok for ok, _ in outcomes)
    ids = [item["create"]["_id"] if "create" in item else item["index"]["_id"] for _, item in outcomes]
    assert len(set(ids)) == count
    for i in (0, 1599, 1600, 8001, count - 1):  # (the helper yields the chunks' items in order)
        record = httpx.get(f"{url}/logs/{ids[i]}", headers={"authorization": f"Bearer {key}"}).json()
        assert record["message"] == f"doc {i} " + "p" * 250 and record["attributes"] == {"seq": i}
    sql = "SELECT count(*), count(DISTINCT attributes->>'$.seq'), min(message) FROM logs WHERE log_type = 'parallel'"
    answer = httpx.post(url + "/query", json={"sql": sql}, headers={"authorization": f"Bearer {key}"}).json()
    assert answer["rows"] == [[count, count, "doc 0 " + "p" * 250]]
