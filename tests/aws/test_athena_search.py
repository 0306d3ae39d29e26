"""Search, histogram and lookup by id on AWS (Athena SQL) answer exactly what the local engine does.

The records go through the local server and its flush, so the Parquet files are the lake's real
ones; the Athena SQL then runs on DuckDB over those files (tests/aws/athena_duckdb.py) and every
answer is compared with the local DuckDB search over the same records.
"""

from __future__ import annotations

import pytest

from loglake import ids
from loglake.api.app import LoglakeApp
from loglake.aws.athena import AthenaQueryEngine
from loglake.aws.athena_search import AthenaSearch
from loglake.ids import format_uuid
from loglake.lake.query_limits import QueryLimits
from loglake.lake.stop import CLIENT_GONE, SERVER_STOPPING, Stop, Stopped
from loglake.recent_params import InvalidQuery
from loglake.service import LogService
from tests.api.test_lake_api import KEY_SEARCHES, NOW_MS, SPECIAL_KEYS, flush_all, rec, send
from tests.api.test_search_groups import ARRAY_RECORDS, ARRAY_SEARCHES
from tests.api.test_unreadable_records import publish_rows
from tests.aws.athena_duckdb import DuckDBAthena
from tests.conftest import asgi_client, key_for

pytestmark = pytest.mark.usefixtures("seeded_lake")

SEARCHES = [
    {"q": "TIMEOUT"},
    {"q": '"talking to db" service:web'},
    {"q": "timeout -service:db"},
    {"q": "user:u1 http.status:200"},
    {"q": "user-agent:curl"},
    {"q": "o'brien"},  # a quote in a literal
    {"q": '50% "(of)" [it]*'},  # regex specials match literally (parentheses quoted: outside quotes they group)
    {"q": "-ok"},
    {"q": "user:u* -http.status:5* REQ*"},  # a value's or a word's start
    {"q": "* -user:*"},  # every record; an attribute that is there
    {"q": "request", "limit": "7"},
    {"q": "service:api (timeout OR o'brien)"},
    {"q": "user:u1 OR http.status:500 OR severity:warning", "limit": "4"},
    {"q": "-(timeout OR severity:info) request"},
    {"q": "NOT (service:web ok) -user:u3"},  # a missing attribute: not u3, as locally
    {"severity": "error"},
    {"min_severity": "warning", "service": "web"},
    {"log_type": "audit"},
    {"q": "timeout", "since": "1h"},
    {"since": "2026-10-31T12:00:00Z", "until": "2026-11-01T06:00:00Z"},
    {"since": "30d"},
]


@pytest.fixture
def lake_app(settings) -> LoglakeApp:
    application = LoglakeApp.from_settings(settings, clock=lambda: NOW_MS / 1000)
    yield application
    application.close()


@pytest.fixture
async def seeded_lake(lake_app: LoglakeApp, settings) -> None:
    """40 records over two days, all flushed to the lake (Athena reads only the lake)."""
    records = [
        rec(
            m * 70 + 5,
            f"request {m} {'ERROR timeout talking to db' if m % 5 == 0 else 'ok'}"
            + (" o'brien 50% (of) [it]*" if m % 7 == 0 else ""),
            service=("api", "web", "db")[m % 3],
            severity=("error", "warning", "info", "info", "debug")[m % 5],
            log_type="audit" if m % 6 == 0 else "application",
            attributes={"user": f"U{m % 4}", "http": {"status": 500 if m % 5 == 0 else 200}, "user-agent": "curl"}
            if m % 2
            else None,
        )
        for m in range(40)
    ]
    async with asgi_client(lake_app, key_for(lake_app, "ingest")) as client:
        await send(client, records)
    assert flush_all(lake_app) == 40


@pytest.fixture
def athena(settings) -> DuckDBAthena:
    return DuckDBAthena(settings.lake_dir, page_size=5)  # small pages: paging is exercised


@pytest.fixture
def aws_service(lake_app: LoglakeApp, athena: DuckDBAthena) -> LogService:
    engine = AthenaQueryEngine(athena, "loglake", "primary", QueryLimits(timeout_seconds=25), sleep=lambda s: None)
    return LogService(lake_app.store, clock=lake_app.service.clock, record_search=AthenaSearch(engine))


@pytest.mark.parametrize("params", SEARCHES, ids=[str(p) for p in SEARCHES])
def test_search_pages_match_the_local_engine(lake_app: LoglakeApp, aws_service: LogService, params: dict) -> None:
    local, remote = dict(params), dict(params)
    while True:
        expected, got = lake_app.service.search(local), aws_service.search(remote)
        assert [r.log_id for r in got.records] == [r.log_id for r in expected.records]
        assert got.records == expected.records  # every field, attributes and client id included
        assert got.next_cursor == expected.next_cursor
        if expected.next_cursor is None:
            break
        local["cursor"] = remote["cursor"] = expected.next_cursor


def test_searches_find_something(lake_app: LoglakeApp) -> None:
    """The comparisons above compare answers, not empty lists."""
    found = [len(lake_app.service.search(p).records) for p in SEARCHES]
    assert [p for p, n in zip(SEARCHES, found, strict=True) if not n] == []


def test_each_search_reads_only_its_days(aws_service: LogService, athena: DuckDBAthena) -> None:
    aws_service.search({"q": "timeout", "since": "2026-10-31T12:00:00Z", "until": "2026-11-01T06:00:00Z"})
    assert "\"date\" >= '2026-10-31' AND \"date\" <= '2026-11-01'" in athena.sql_sent[-1]
    aws_service.search({"q": "timeout", "since": "3h"})
    assert "\"date\" >= '2026-11-01'" in athena.sql_sent[-1] and '"date" <=' not in athena.sql_sent[-1]


def test_a_grouped_search_is_one_parenthesised_condition_with_its_text_escaped(
    aws_service: LogService, athena: DuckDBAthena
) -> None:
    aws_service.search({"q": "service:api -(timeout OR o'brien)", "since": "1d"})
    assert (
        " AND service = 'api'"
        " AND NOT coalesce((regexp_like(message, '(?i)timeout') OR regexp_like(message, '(?i)o''brien')), false)"
        " ORDER BY"
    ) in athena.sql_sent[-1]


@pytest.mark.parametrize(
    "params",
    [
        {"since": "2d", "interval": "5h"},
        {"since": "25h", "q": "timeout"},
        {"severity": "error,debug"},
        {"since": "2d", "q": "timeout OR -(ok OR service:db)"},
    ],
)
def test_histograms_match_the_local_engine(lake_app: LoglakeApp, aws_service: LogService, params: dict) -> None:
    expected = lake_app.service.histogram(params)
    assert expected["total"] > 0
    assert aws_service.histogram(params) == expected


@pytest.mark.parametrize("reason", [CLIENT_GONE, SERVER_STOPPING])
def test_a_search_or_histogram_told_to_stop_is_cancelled_in_athena(
    aws_service: LogService, athena: DuckDBAthena, reason: str
) -> None:
    """Their client went away, or the server is stopping: the same Stop as the local engine takes (run_search)."""
    for ask in (aws_service.search, aws_service.histogram):
        stop = Stop()
        stop.stop(reason)
        sent = len(athena.sql_sent)
        with pytest.raises(Stopped) as caught:
            ask({"q": "timeout", "since": "1d"}, stop)
        assert caught.value.reason == reason
        assert len(athena.sql_sent) == sent + 1 and athena.stopped == [f"q-{sent + 1}"]
        athena.stopped.clear()


def test_an_id_no_longer_hot_is_found_in_its_day(lake_app: LoglakeApp, aws_service: LogService, athena) -> None:
    newest = lake_app.service.search({"since": "2d", "limit": "1"}).records[0]
    found = aws_service.get(format_uuid(newest.log_id))
    assert found == newest
    assert "\"date\" = '2026-11-01'" in athena.sql_sent[-1]
    assert aws_service.get("0190b0c8-0000-7000-8000-000000000000") is None  # a day with no such record
    assert aws_service.get("6f1c1b2a-51d4-4b51-9d2e-38d1c0a3f001") is None  # a client id: not looked up there


def test_athenas_own_failures_are_busy_and_the_sqls_are_invalid(aws_service: LogService, athena: DuckDBAthena) -> None:
    from loglake.lake.query_answers import QueryBusy
    from loglake.lake.sql_guard import QueryError

    athena.system_failures = 1
    with pytest.raises(QueryBusy, match="on its side"):  # the API answers 503 with Retry-After
        aws_service.search({"q": "timeout"})
    engine = aws_service.record_search.engine
    with pytest.raises(QueryError) as caught:
        engine.query("SELECT no_such_column FROM logs")
    assert caught.value.code == "invalid_sql"


def test_bad_searches_are_still_invalid_queries(aws_service: LogService, athena: DuckDBAthena) -> None:
    sent = len(athena.sql_sent)
    with pytest.raises(InvalidQuery):
        aws_service.search({"q": '"unclosed'})
    assert len(athena.sql_sent) == sent  # rejected before Athena is asked (and billed)


@pytest.mark.parametrize(("q", "messages"), KEY_SEARCHES)
async def test_searches_for_any_attribute_key_match_the_local_engine(
    lake_app: LoglakeApp, aws_service: LogService, q: str, messages: list[str]
) -> None:
    async with asgi_client(lake_app, key_for(lake_app, "ingest")) as client:
        await send(client, SPECIAL_KEYS)
    flush_all(lake_app)
    expected = lake_app.service.search({"q": q, "since": "1h"})
    assert [r.message for r in expected.records] == messages
    assert aws_service.search({"q": q, "since": "1h"}).records == expected.records


async def test_array_attributes_are_found_by_their_elements_as_in_the_local_engine(
    lake_app: LoglakeApp, aws_service: LogService
) -> None:
    async with asgi_client(lake_app, key_for(lake_app, "ingest")) as client:
        await send(client, ARRAY_RECORDS)
    flush_all(lake_app)
    sent = {record["message"] for record in ARRAY_RECORDS}  # (beside the seeded lake's)
    for q, messages in ARRAY_SEARCHES.items():
        expected = lake_app.service.search({"q": q, "since": "1h"})
        assert sorted(r.message for r in expected.records if r.message in sent) == messages, q
        assert aws_service.search({"q": q, "since": "1h"}).records == expected.records, q


def test_unreadable_values_in_the_lake_read_as_in_the_local_engine(
    lake_app: LoglakeApp, aws_service: LogService
) -> None:
    """Athena's rows go through the same reading: what cannot be read is named, a row without a log id left out."""
    theirs = format_uuid(ids.uuid7_bytes(NOW_MS - 60_000))
    publish_rows(
        lake_app,
        [
            {"log_id": theirs, "severity": "loud", "message": "theirs", "attributes": '{"u": ', "client_id": "zz"},
            {"log_id": "not-a-uuid", "severity": "info", "message": "no id"},
        ],
        NOW_MS - 60_000,
    )
    for params in ({"since": "1h"}, {"since": "1h", "q": "-u:nobody"}):
        expected = lake_app.service.search(params)
        assert [(r.message, [f for f, _ in r.unreadable]) for r in expected.records][:1] == [
            ("theirs", ["severity", "attributes", "id"])
        ]
        assert aws_service.search(params).records == expected.records
    assert aws_service.get(theirs) == lake_app.service.get(theirs)
    assert aws_service.histogram({"since": "2h"}) == lake_app.service.histogram({"since": "2h"})
