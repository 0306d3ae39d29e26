"""POST /ask, /ask/explain and /ask/{conversation}/rule in process, with a local model server."""

from __future__ import annotations

import sqlite3
import stat
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from loglake.api.app import LoglakeApp
from loglake.ask.errors import BudgetExhausted
from loglake.ask.providers import Message, most_tokens
from loglake.ask.rule_draft import NO_THRESHOLD
from loglake.ask.service import Question
from loglake.ask.store import ASK_DB
from loglake.config import Settings
from loglake.rules.loader import load_rules
from tests.ask.lakes import DAYS, fill
from tests.ask.model_server import STALL, Failure, ModelServer, sql_reply
from tests.conftest import Clock, asgi_client, key_for
from tests.lake.test_flush import DAY, START

NOW = (START + DAYS * DAY + 3_600_000) / 1000  # an hour after the last day of the lake
COUNT_ERRORS = "SELECT count(*) AS errors FROM logs WHERE severity = 'error'"


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


@pytest.fixture
def ask_settings(data_dir: Path, model_server: ModelServer, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("TEST_LLM_KEY", "sk-test")
    return Settings(
        data_dir=data_dir,
        access_log="off",
        llm_provider="openai",
        llm_endpoint=model_server.url + "/v1",
        llm_model="test-model",
        llm_api_key="env:TEST_LLM_KEY",
        llm_input_price=2.0,
        llm_output_price=10.0,
    )


def make_app(settings: Settings, clock: Clock) -> LoglakeApp:
    application = LoglakeApp.from_settings(settings, clock=clock)
    fill(application.store, per_day=3000)
    assert application.lake is not None
    application.lake.flush(everything=True)
    return application


@pytest.fixture
def ask_app(ask_settings: Settings, clock: Clock) -> Iterator[LoglakeApp]:
    application = make_app(ask_settings, clock)
    yield application
    application.close()


@pytest.fixture
async def reader(ask_app: LoglakeApp) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(ask_app, key_for(ask_app, "read", "reader")) as c:
        yield c


async def test_a_question_becomes_checked_sql_with_its_estimate_and_nothing_runs(
    reader: httpx.AsyncClient, model_server: ModelServer, ask_app: LoglakeApp
) -> None:
    model_server.say(sql_reply(COUNT_ERRORS, "Counts the error records."))
    answer = await reader.post("/ask", json={"question": "how many errors were logged?"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["sql"] == "SELECT\n  COUNT(*) AS errors\nFROM logs\nWHERE\n  severity = 'error'\nLIMIT 10000"
    assert body["explanation"] == "Counts the error records."
    assert body["tables"] == ["logs"] and body["attempts"] == 1 and not body["cached"]
    assert body["estimate"]["files"] == DAYS and body["estimate"]["bytes"] > 0
    # It names no time; the records it reads span the lake's three days, none left in the hot store.
    assert body["time_range"] == {"since": None, "until": None, "relative_to_now": False}
    assert body["estimate"]["data_since"].startswith("2026-11-01T00:0")
    assert body["estimate"]["data_until"].startswith("2026-11-03T23:5")
    assert body["estimate"]["hot_records"] == 0
    assert any(w.startswith("no time filter") for w in body["warnings"])
    assert body["changes"] == ["LIMIT 10000 added (the most rows an answer returns)"]
    assert "result" not in body
    assert ask_app.metrics.queries.values == {}  # nothing ran
    # The prompt was built from the live catalog.
    system = model_server.seen[0].system
    assert "Table logs:" in system and "- service VARCHAR" in system and "'payments'" in system
    assert "Current time: 2026-11-04 01:00:00 UTC" in system and "DuckDB" in system


async def test_run_true_answers_the_rows_as_post_query_does(
    reader: httpx.AsyncClient, model_server: ModelServer
) -> None:
    model_server.say(sql_reply(COUNT_ERRORS))
    answer = (await reader.post("/ask", json={"question": "how many errors?", "run": True})).json()
    direct = (await reader.post("/query", json={"sql": answer["sql"]})).json()
    assert answer["result"]["rows"] == direct["rows"] and answer["result"]["rows"][0][0] > 0
    assert answer["result"]["columns"] == direct["columns"]


async def test_a_run_that_fails_answers_its_error_with_the_answer_beside_it(
    reader: httpx.AsyncClient, model_server: ModelServer
) -> None:
    """Only the run's error came back: the SQL, its estimate and the conversation, which the model's call made, were
    lost (the SQL trial)."""
    # (min: the one value that fails is the same in both runs; a cast of every row failed on whichever row DuckDB's
    # threads reached first, 'api' in one run and 'auth' in the other)
    model_server.say(sql_reply("SELECT CAST(min(service) AS INTEGER) AS n FROM logs"))
    failed = await reader.post("/ask", json={"question": "services as numbers?", "run": True})
    assert failed.status_code == 400, failed.text
    body = failed.json()
    direct = (await reader.post("/query", json={"sql": body["answer"]["sql"]})).json()
    assert body["error"] == direct["error"]
    assert body["answer"]["sql"].startswith("SELECT") and body["answer"]["conversation_id"]
    assert "result" not in body["answer"] and body["answer"]["estimate"]["files"] == DAYS


async def test_refused_answers_go_back_to_the_model_with_the_reason(
    reader: httpx.AsyncClient, model_server: ModelServer
) -> None:
    model_server.say(
        sql_reply("COPY logs TO '/tmp/stolen.csv'"),
        sql_reply("SELECT * FROM read_csv('/etc/passwd')"),
        sql_reply(COUNT_ERRORS),
    )
    body = (await reader.post("/ask", json={"question": "how many errors?"})).json()
    assert body["attempts"] == 3 and "severity = 'error'" in body["sql"]
    second, third = model_server.seen[1].texts, model_server.seen[2].texts
    assert second[-1].startswith("That answer was refused: only SELECT queries are allowed")
    assert third[-1].startswith("That answer was refused: read_csv() is not available")
    assert second[:2] == ["how many errors?", sql_reply("COPY logs TO '/tmp/stolen.csv'")]


async def test_after_two_refused_retries_the_reason_is_reported(
    reader: httpx.AsyncClient, model_server: ModelServer
) -> None:
    model_server.say(sql_reply("SELECT 1; DROP TABLE logs"), "DROP TABLE logs", sql_reply("SELECT * FROM nowhere"))
    answer = await reader.post("/ask", json={"question": "delete everything"})
    assert answer.status_code == 502
    error = answer.json()["error"]
    assert error["code"] == "model_answer_refused"
    assert "refused 3 times" in error["message"] and "'nowhere' is not a table" in error["message"]
    assert len(model_server.seen) == 3


async def test_an_unknown_column_is_refused_and_retried(reader: httpx.AsyncClient, model_server: ModelServer) -> None:
    model_server.say(sql_reply("SELECT country, count(*) FROM logs GROUP BY 1"), sql_reply(COUNT_ERRORS))
    body = (await reader.post("/ask", json={"question": "logins by country"})).json()
    assert body["attempts"] == 2 and '"country" not found' in model_server.seen[1].texts[-1]


async def test_a_question_s_time_range_is_added_when_the_sql_has_none(
    reader: httpx.AsyncClient, model_server: ModelServer
) -> None:
    model_server.say(sql_reply(COUNT_ERRORS))
    body = (await reader.post("/ask", json={"question": "errors yesterday?", "time_zone": "Europe/Berlin"})).json()
    # Berlin's yesterday (2026-11-03) is 2026-11-02 23:00 to 2026-11-03 23:00 UTC.
    assert "'2026-11-02 23:00:00'" in body["sql"] and "'2026-11-03 23:00:00'" in body["sql"]
    assert body["estimate"]["time_filtered"] and not any(w.startswith("no time filter") for w in body["warnings"])
    assert body["estimate"]["files"] == 2
    # The question's range, not the span of the records the two files hold.
    assert body["time_range"] == {
        "since": "2026-11-02T23:00:00.000Z",
        "until": "2026-11-03T23:00:00.000Z",
        "relative_to_now": False,
    }
    assert body["estimate"]["data_since"] < body["time_range"]["since"]
    assert body["changes"][1] == "the time range of 'yesterday' added (the SQL filtered on no time)"


async def test_a_question_the_tables_cannot_answer_gets_the_model_s_words_and_no_sql(
    reader: httpx.AsyncClient, model_server: ModelServer
) -> None:
    model_server.say("These tables hold no weather data, so I cannot answer that.")
    body = (await reader.post("/ask", json={"question": "will it rain tomorrow?", "run": True})).json()
    assert body["sql"] is None and body["estimate"] is None and "result" not in body
    assert body["explanation"] == "These tables hold no weather data, so I cannot answer that."


async def test_follow_ups_carry_the_conversation_and_it_is_the_key_s_own(
    reader: httpx.AsyncClient, model_server: ModelServer, ask_app: LoglakeApp
) -> None:
    first_sql = "SELECT service, count(*) AS errors FROM logs WHERE severity = 'error' GROUP BY 1"
    model_server.say(
        sql_reply(first_sql), sql_reply(first_sql.replace("GROUP BY", "AND service = 'payments' GROUP BY"))
    )
    first = (await reader.post("/ask", json={"question": "errors by service"})).json()
    follow = await reader.post(
        "/ask", json={"question": "only for service payments", "conversation_id": first["conversation_id"]}
    )
    assert follow.status_code == 200 and follow.json()["conversation_id"] == first["conversation_id"]
    texts = model_server.seen[1].texts
    assert texts[0] == "errors by service" and first["sql"] in texts[1] and texts[2] == "only for service payments"
    async with asgi_client(ask_app, key_for(ask_app, "read", "someone-else")) as other:
        stolen = await other.post("/ask", json={"question": "and by day", "conversation_id": first["conversation_id"]})
    assert (
        stolen.status_code == 404
        and "a POST /ask without conversation_id starts one" in stolen.json()["error"]["message"]
    )


async def test_conversations_expire(
    reader: httpx.AsyncClient, model_server: ModelServer, clock: Clock, ask_settings: Settings
) -> None:
    model_server.say(sql_reply(COUNT_ERRORS))
    first = (await reader.post("/ask", json={"question": "how many errors?"})).json()
    clock.now += ask_settings.llm_conversation_hours * 3600 + 1
    later = await reader.post("/ask", json={"question": "by day", "conversation_id": first["conversation_id"]})
    assert later.status_code == 404


async def test_a_question_and_its_negation_are_cached_apart(
    reader: httpx.AsyncClient, model_server: ModelServer
) -> None:
    model_server.answers = {
        "errors from the api service": sql_reply("SELECT count(*) FROM logs WHERE service = 'api'"),
        "errors not from the api service": sql_reply("SELECT count(*) FROM logs WHERE service <> 'api'"),
    }
    positive = (await reader.post("/ask", json={"question": "errors from the api service"})).json()
    again = (await reader.post("/ask", json={"question": "  Errors from the  API service "})).json()
    negative = (await reader.post("/ask", json={"question": "errors not from the api service"})).json()
    assert again["cached"] and again["sql"] == positive["sql"]
    assert not negative["cached"] and "<> 'api'" in negative["sql"] and "= 'api'" in positive["sql"]
    assert len(model_server.seen) == 2  # the repeated question never reached the model


async def test_an_answer_bound_by_time_is_not_served_once_now_has_moved_on(
    reader: httpx.AsyncClient, model_server: ModelServer, clock: Clock
) -> None:
    model_server.say(sql_reply(COUNT_ERRORS), sql_reply(COUNT_ERRORS), sql_reply(COUNT_ERRORS))
    first = (await reader.post("/ask", json={"question": "errors today"})).json()
    again = (await reader.post("/ask", json={"question": "errors today"})).json()  # the same second: the same SQL
    assert again["cached"] and "< CAST('2026-11-04 01:00:01' AS TIMESTAMP)" in first["sql"]
    clock.now += 90
    later = (await reader.post("/ask", json={"question": "errors today"})).json()
    assert not later["cached"] and "< CAST('2026-11-04 01:01:31' AS TIMESTAMP)" in later["sql"]
    # An answer that filters on no time holds whenever it is asked.
    untimed = (await reader.post("/ask", json={"question": "errors"})).json()
    clock.now += 90
    assert not untimed["cached"] and (await reader.post("/ask", json={"question": "errors"})).json()["cached"]
    assert len(model_server.seen) == 3


async def test_the_same_words_in_a_conversation_are_not_the_first_question_s_answer(
    reader: httpx.AsyncClient, model_server: ModelServer
) -> None:
    model_server.say(sql_reply(COUNT_ERRORS), sql_reply(COUNT_ERRORS), sql_reply(COUNT_ERRORS + " AND service = 'db'"))
    first = (await reader.post("/ask", json={"question": "errors"})).json()
    await reader.post("/ask", json={"question": "only db", "conversation_id": first["conversation_id"]})
    fresh = (await reader.post("/ask", json={"question": "only db"})).json()
    assert not fresh["cached"] and len(model_server.seen) == 3


async def test_each_key_has_its_rate_of_questions(
    ask_settings: Settings, clock: Clock, model_server: ModelServer
) -> None:
    application = make_app(Settings(**{**ask_settings.__dict__, "llm_rate_per_minute": 2}), clock)
    try:
        model_server.answers = {"q": sql_reply(COUNT_ERRORS)}
        async with asgi_client(application, key_for(application, "read", "fast")) as fast:
            statuses = [(await fast.post("/ask", json={"question": "q"})).status_code for _ in range(3)]
            limited = await fast.post("/ask", json={"question": "q"})
        async with asgi_client(application, key_for(application, "read", "calm")) as calm:
            assert (await calm.post("/ask", json={"question": "q"})).status_code == 200
            metrics = (await calm.get("/metrics")).text
    finally:
        application.close()
    assert statuses == [200, 200, 429]
    # Every question has its outcome (the refused ones were missing from the sum).
    outcomes = [line for line in metrics.splitlines() if line.startswith("loglake_ask_questions_total{")]
    assert 'loglake_ask_questions_total{outcome="rate_limited"} 2' in outcomes
    assert sum(float(line.rsplit(" ", 1)[1]) for line in outcomes) == 5
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
    assert "llm_rate_per_minute" in limited.json()["error"]["message"]


def most_a_question_may_use(application: LoglakeApp, question: str) -> int:
    """The tokens a question's call reserves: its prompt's bytes, the template's and the longest answer."""
    prompt = application.asking.asker().source.prompt(int(NOW * 1000), "UTC").system
    return most_tokens(prompt, [Message("user", question)])


async def test_the_daily_token_budget_stops_questions_until_midnight_utc(
    ask_settings: Settings, clock: Clock, model_server: ModelServer
) -> None:
    probe = make_app(ask_settings, clock)
    try:
        reserved = most_a_question_may_use(probe, "a")
    finally:
        probe.close()
    # Room for one question's reservation; what it really uses (a quarter of that) leaves too little for another.
    application = make_app(Settings(**{**ask_settings.__dict__, "llm_daily_tokens": reserved + reserved // 8}), clock)
    try:
        model_server.say(sql_reply(COUNT_ERRORS), sql_reply(COUNT_ERRORS))
        async with asgi_client(application, key_for(application, "read", "r")) as client:
            assert (await client.post("/ask", json={"question": "a"})).status_code == 200
            spent = await client.post("/ask", json={"question": "b"})
            clock.now += 23 * 3600  # the next UTC day
            renewed = await client.post("/ask", json={"question": "c"})
    finally:
        application.close()
    assert spent.status_code == 429 and spent.json()["error"]["code"] == "token_budget_spent"
    assert "renews at 00:00 UTC" in spent.json()["error"]["message"]
    assert int(spent.headers["retry-after"]) == 23 * 3600  # NOW is 01:00 UTC
    assert renewed.status_code == 200
    assert len(model_server.seen) == 2


async def test_a_budget_too_small_for_any_question_says_to_raise_it(
    ask_settings: Settings, clock: Clock, model_server: ModelServer
) -> None:
    application = make_app(Settings(**{**ask_settings.__dict__, "llm_daily_tokens": 10}), clock)
    try:
        async with asgi_client(application, key_for(application, "read", "r")) as client:
            refused = await client.post("/ask", json={"question": "a"})
    finally:
        application.close()
    assert refused.status_code == 429 and "raise llm_daily_tokens" in refused.json()["error"]["message"]
    assert model_server.seen == []


def test_questions_asked_at_once_never_spend_more_than_the_budget(
    ask_settings: Settings, clock: Clock, model_server: ModelServer
) -> None:
    """Eight threads ask at once; the model answers only when all have called (or after two seconds),
    so questions that were let through wait for each other. Without reservations all eight pass the
    check of what is spent (nothing yet) and together spend twice the budget."""
    probe = make_app(ask_settings, clock)
    try:
        reserved = most_a_question_may_use(probe, "question 0")
    finally:
        probe.close()
    budget = reserved + reserved // 4
    application = make_app(Settings(**{**ask_settings.__dict__, "llm_daily_tokens": budget}), clock)
    model_server.gather = 8
    model_server.answers = {f"question {i}": sql_reply(COUNT_ERRORS) for i in range(8)}
    asker = application.asking.asker()
    start = threading.Barrier(8)
    outcomes: list[str] = []

    def ask(i: int) -> None:
        start.wait()
        try:
            asker.ask(Question(f"question {i}"))
            outcomes.append("answered")
        except BudgetExhausted:
            outcomes.append("refused")

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        (use,) = application.asking.store.usage()
    finally:
        application.close()
    assert len(outcomes) == 8 and outcomes.count("answered") >= 1 and outcomes.count("refused") >= 1
    assert use.requests == outcomes.count("answered") == len(model_server.seen)
    assert use.input_tokens + use.output_tokens <= budget


async def test_a_locked_ask_db_is_a_503_with_retry_after_and_nothing_is_asked(
    ask_app: LoglakeApp, model_server: ModelServer, ask_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("loglake.ask.store.BUSY_TIMEOUT_S", 0.1)  # instead of 10 s, so the test need not wait
    model_server.say(sql_reply(COUNT_ERRORS))
    async with asgi_client(ask_app, key_for(ask_app, "read", "r")) as client:
        assert (await client.post("/ask", json={"question": "warm up"})).status_code == 200
        holder = sqlite3.connect(ask_settings.data_dir / ASK_DB, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # a `loglake ask` writing ask.db
        try:
            busy = await client.post("/ask", json={"question": "how many errors?"})
            ask_app.asking.store.close()  # the next use opens ask.db again, as a freshly started server does
            metrics = await client.get("/metrics")
        finally:
            holder.execute("COMMIT")
            holder.close()
    assert busy.status_code == 503 and busy.headers["retry-after"] == "1", busy.text
    assert busy.json()["error"]["message"] == "ask.db stayed locked by another process's write for 0.1 s; retry shortly"
    assert len(model_server.seen) == 1  # the budget's reservation comes first: the model was not called
    assert metrics.status_code == 200 and "loglake_ask_questions_total" in metrics.text


async def test_model_failures_are_502_and_503_with_clear_messages(
    ask_settings: Settings, clock: Clock, model_server: ModelServer
) -> None:
    application = make_app(Settings(**{**ask_settings.__dict__, "llm_timeout_seconds": 0.3}), clock)
    try:
        model_server.say(Failure(500, '{"error": "boom"}'), STALL)
        async with asgi_client(application, key_for(application, "read", "r")) as client:
            broken = await client.post("/ask", json={"question": "a"})
            slow = await client.post("/ask", json={"question": "b"})
    finally:
        application.close()
    assert broken.status_code == 502 and "answered 500" in broken.json()["error"]["message"]
    assert slow.status_code == 503 and "did not answer within 0.3 s" in slow.json()["error"]["message"]
    assert slow.headers["retry-after"] == "5"


async def test_without_a_provider_ask_says_how_to_configure_one(client: httpx.AsyncClient) -> None:
    answer = await client.post("/ask", json={"question": "anything"})
    assert answer.status_code == 501 and "--llm-provider" in answer.json()["error"]["message"]


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({}, "question"),
        ({"question": ""}, "question"),
        ({"question": "x", "colour": "red"}, "colour"),
        ({"question": "x", "run": "yes"}, "run"),
        ({"question": "x", "time_zone": "Mars/Olympus"}, "IANA time zone"),
    ],
)
async def test_bad_requests_are_400_naming_the_field(reader: httpx.AsyncClient, body: dict, says: str) -> None:
    answer = await reader.post("/ask", json=body)
    assert answer.status_code == 400 and says in answer.json()["error"]["message"]


async def test_ask_needs_the_read_scope(ask_app: LoglakeApp) -> None:
    async with asgi_client(ask_app, key_for(ask_app, "ingest", "shipper")) as shipper:
        assert (await shipper.post("/ask", json={"question": "x"})).status_code == 403


async def test_usage_is_in_metrics_and_the_store_is_private(
    reader: httpx.AsyncClient, model_server: ModelServer, ask_settings: Settings
) -> None:
    model_server.say(sql_reply(COUNT_ERRORS))
    await reader.post("/ask", json={"question": "how many errors?"})
    seen_in = len(__import__("json").dumps(model_server.seen[0].body)) // 4
    seen_out = len(sql_reply(COUNT_ERRORS)) // 4
    text = (await reader.get("/metrics")).text
    assert 'loglake_llm_requests_total{provider="openai"} 1' in text
    assert f'loglake_llm_tokens_total{{provider="openai",kind="input"}} {seen_in}' in text
    assert f'loglake_llm_tokens_total{{provider="openai",kind="output"}} {seen_out}' in text
    cost = (seen_in * 2.0 + seen_out * 10.0) / 1e6
    assert f'loglake_llm_cost_usd_total{{provider="openai"}} {cost!r}' in text
    assert 'loglake_ask_questions_total{outcome="answered"} 1' in text
    assert stat.S_IMODE((ask_settings.data_dir / ASK_DB).stat().st_mode) == 0o600


async def test_explain_sql_says_it_in_words_with_the_estimate(
    reader: httpx.AsyncClient, model_server: ModelServer
) -> None:
    model_server.say("It counts the error records of every day.")
    body = (await reader.post("/ask/explain", json={"sql": COUNT_ERRORS})).json()
    assert body["explanation"] == "It counts the error records of every day." and body["sql"] == COUNT_ERRORS
    assert body["estimate"]["files"] == DAYS
    refused = await reader.post("/ask/explain", json={"sql": "COPY logs TO '/tmp/x'"})
    assert refused.status_code == 400 and "only SELECT" in refused.json()["error"]["message"]
    assert len(model_server.seen) == 1


async def test_explaining_sql_nested_deeper_than_the_parser_reads_is_refused_before_the_model(
    reader: httpx.AsyncClient, model_server: ModelServer
) -> None:
    """DuckDB reads lists 100 deep; sqlglot's parse of them hit Python's recursion limit (a 500, after the
    model had been paid for its explanation)."""
    refused = await reader.post("/ask/explain", json={"sql": "SELECT " + "[" * 100 + "1" + "]" * 100 + " AS l"})
    assert refused.status_code == 400 and "nests too deep" in refused.json()["error"]["message"]
    assert model_server.seen == []
    model_server.say(*[sql_reply("SELECT " + "[" * 100 + "1" + "]" * 100 + " AS l")] * 3)  # a model's answer, alike
    answer = await reader.post("/ask", json={"question": "a list in a list in a list ..."})
    assert answer.status_code == 502 and "nests too deep" in answer.json()["error"]["message"]


async def test_an_answer_becomes_a_rule_written_only_when_confirmed(
    reader: httpx.AsyncClient, model_server: ModelServer, ask_app: LoglakeApp, ask_settings: Settings
) -> None:
    model_server.say(
        sql_reply(COUNT_ERRORS.replace("count(*) AS errors", "service, count(*) AS errors") + " GROUP BY 1")
    )
    first = (await reader.post("/ask", json={"question": "errors by service today"})).json()
    path = f"/ask/{first['conversation_id']}/rule"
    draft = (await reader.post(path)).json()
    assert draft["valid"] and draft["problems"] == [] and draft["written"] is None
    assert "schedule: 5m" in draft["yaml"] and "group_by:\n- service" in draft["yaml"]
    assert "2026-" not in draft["yaml"] and "LIMIT" not in draft["yaml"]  # the answer's own range and cap are out
    assert "title: Errors by service\n" in draft["yaml"]  # not "... today": the rule reads each window
    assert draft["warnings"] == [NO_THRESHOLD]  # every service with an error would raise an alert
    assert not ask_settings.rules_path.exists()
    assert (await reader.post(path, json={"confirm": True})).status_code == 403  # writing needs admin
    async with asgi_client(ask_app, key_for(ask_app, "admin", "boss")) as admin:
        unknown = await admin.post("/ask/no-such-conversation/rule", json={"confirm": True})
        # The admin key did not start the conversation: it is not its to draft from.
        foreign = await admin.post(path, json={"confirm": True})
    assert unknown.status_code == 404 and foreign.status_code == 404
    # What to do next, said so that it fits this route, whose conversation is in the path: no field to leave out.
    assert "a POST /ask without conversation_id starts one" in unknown.json()["error"]["message"]
    boss_key = key_for(ask_app, "admin,read", "owner-admin")
    async with asgi_client(ask_app, boss_key) as owner:
        model_server.say(sql_reply(COUNT_ERRORS))
        mine = (await owner.post("/ask", json={"question": "how many errors?"})).json()
        written = (await owner.post(f"/ask/{mine['conversation_id']}/rule", json={"confirm": True})).json()
    rules = load_rules(ask_settings.rules_path)
    assert rules.problems == [] and [r.title for r in rules.rules] == ["How many errors"]
    assert written["written"] == str(ask_settings.rules_path / written["file"])
    # Private as `rules init` makes them (before: the folder 0755 and the file 0644 under the usual umask)
    assert stat.S_IMODE(ask_settings.rules_path.stat().st_mode) == 0o700
    assert stat.S_IMODE(Path(written["written"]).stat().st_mode) == 0o600


async def test_a_question_about_alerts_reads_the_live_table_and_no_lake_file(
    reader: httpx.AsyncClient, model_server: ModelServer
) -> None:
    model_server.say(sql_reply("SELECT title, status FROM alerts WHERE status = 'open'"), "It lists open alerts.")
    body = (await reader.post("/ask", json={"question": "which alerts are open?", "run": True})).json()
    assert body["tables"] == ["alerts"] and body["estimate"]["files"] == 0 and body["warnings"] == []
    assert body["result"]["rows"] == []
    explained = (await reader.post("/ask/explain", json={"sql": "SELECT count(*) FROM alerts, logs"})).json()
    assert explained["tables"] == ["alerts", "logs"] and explained["estimate"]["tables"] == ["logs"]
