"""`loglake ask` on a data dir, with the local model server behind it."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from loglake.ask.rule_draft import NO_THRESHOLD
from loglake.ask.store import ASK_DB
from loglake.rules.loader import load_rules
from loglake.store.sqlite import SQLiteHotStore
from tests.ask.lakes import fill
from tests.ask.model_server import ModelServer, sql_reply
from tests.conftest import run_cli

COUNT = "SELECT service, count(*) AS records FROM logs GROUP BY 1"


@pytest.fixture
def data_dir(tmp_path: Path, model_server: ModelServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    store = SQLiteHotStore(folder / "hot.db")
    fill(store, per_day=200)
    store.close()
    monkeypatch.setenv("LOGLAKE_LLM_PROVIDER", "anthropic")
    monkeypatch.setenv("LOGLAKE_LLM_ENDPOINT", model_server.url)
    monkeypatch.setenv("LOGLAKE_LLM_MODEL", "claude-test")
    monkeypatch.setenv("LOGLAKE_LLM_API_KEY", "env:TEST_ANTHROPIC_KEY")
    monkeypatch.setenv("TEST_ANTHROPIC_KEY", "sk-ant-test")
    return folder


def test_ask_prints_the_sql_its_estimate_and_runs_it_when_told(data_dir: Path, model_server: ModelServer) -> None:
    model_server.say(sql_reply(COUNT, "Counts the records of each service."), sql_reply(COUNT))
    shown = run_cli("ask", "--data-dir", str(data_dir), "how many records per service?")
    assert shown.exit_code == 0, shown.output
    assert "SELECT\n  service,\n  COUNT(*) AS records" in shown.stdout
    assert "Counts the records of each service." in shown.stdout and "reads logs: 0 of 0 lake files" in shown.stdout
    assert "time range: all time (the query names no time)" in shown.stdout
    # the model's SQL had no LIMIT: said as the web UI says it
    assert "\n\nloglake changed the model's SQL: LIMIT " in shown.stdout and "⏎" not in shown.stdout  # (a blank line)
    assert " added (the most rows an answer returns)" in shown.stdout
    assert "and 600 records not yet in the lake (the hot store; not in the bytes)" in shown.stdout
    assert "warning: no time filter" in shown.stderr and "conversation: " in shown.stderr
    # The records are all in the hot store: the prompt's sample services come from its service index.
    assert "- service VARCHAR: emitting service; values include 'api', 'auth'" in model_server.seen[0].system
    ran = run_cli("ask", "--data-dir", str(data_dir), "--run", "--json", "how many per service, again?")
    assert ran.exit_code == 0, ran.output
    answer = json.loads(ran.stdout)  # one document, as POST /ask answers "run": the rows its result
    assert answer["sql"].startswith("SELECT") and answer["result"]["columns"][1]["name"] == "records"
    assert ["payments"] in [row[:1] for row in answer["result"]["rows"]]


def test_a_query_of_no_table_says_so(data_dir: Path, model_server: ModelServer) -> None:
    model_server.say(sql_reply("SELECT 1 AS one"))
    shown = run_cli("ask", "--data-dir", str(data_dir), "what is one?")
    assert shown.exit_code == 0, shown.output
    assert "\nreads no table\n" in shown.stdout and "lake files" not in shown.stdout  # was "reads : 0 of 0 lake files"


def test_a_range_computed_from_now_is_shown_as_such(data_dir: Path, model_server: ModelServer) -> None:
    """It was shown as "all time (the query names no time)"."""
    last_hour = "SELECT count(*) AS n FROM logs WHERE timestamp >= now() - INTERVAL 1 HOUR LIMIT 10"
    model_server.say(sql_reply(last_hour))
    before = datetime.now(UTC) - timedelta(hours=1)
    shown = run_cli("ask", "--data-dir", str(data_dir), "errors in the last hour")
    after = datetime.now(UTC) - timedelta(hours=1)
    assert shown.exit_code == 0, shown.output
    [line] = [line for line in shown.stdout.splitlines() if line.startswith("time range: ")]
    since, rest = line.removeprefix("time range: ").split(" to ", 1)
    assert before - timedelta(seconds=1) <= datetime.fromisoformat(since) <= after
    assert rest == "now (relative to now(): the range moves with each run)"
    assert "warning: the query compares timestamp with a time computed from now(), which prunes no lake files" in (
        shown.stderr
    )
    assert "loglake changed" not in shown.stdout  # it had its LIMIT


def test_a_follow_up_by_conversation_id_and_the_flags_override_the_environment(
    data_dir: Path, model_server: ModelServer
) -> None:
    model_server.say(sql_reply(COUNT), sql_reply(COUNT + " HAVING count(*) > 10"))
    first = run_cli("ask", "--data-dir", str(data_dir), "--json", "records per service")
    conversation = json.loads(first.stdout)["conversation_id"]
    follow = run_cli(
        "ask", "--data-dir", str(data_dir), "--conversation", conversation, "--llm-model", "other", "only the busy ones"
    )
    assert follow.exit_code == 0, follow.output
    assert model_server.seen[1].texts[0] == "records per service" and model_server.seen[1].body["model"] == "other"


def test_explain_sql_in_words(data_dir: Path, model_server: ModelServer) -> None:
    model_server.say("It counts the records of each service.")
    shown = run_cli("ask", "--data-dir", str(data_dir), "--explain-sql", COUNT)
    assert shown.exit_code == 0 and "It counts the records of each service." in shown.stdout
    assert model_server.seen[0].texts == [COUNT]


def test_an_explanation_in_a_fence_or_under_a_label_is_shown_as_its_words(
    data_dir: Path, model_server: ModelServer
) -> None:
    model_server.say("```\nIt counts the records of each service.\n```", "**Explanation:** It counts them per service.")
    fenced = run_cli("ask", "--data-dir", str(data_dir), "--json", "--explain-sql", COUNT)
    assert json.loads(fenced.stdout)["explanation"] == "It counts the records of each service."
    labelled = run_cli("ask", "--data-dir", str(data_dir), "--json", "--explain-sql", COUNT)
    assert json.loads(labelled.stdout)["explanation"] == "It counts them per service."


def test_as_rule_writes_only_when_confirmed(data_dir: Path, model_server: ModelServer) -> None:
    model_server.say(sql_reply(COUNT), sql_reply(COUNT))
    declined = run_cli("ask", "--data-dir", str(data_dir), "--as-rule", "records per service", input="n\n")
    assert declined.exit_code == 0 and "group_by:\n- service" in declined.stdout
    assert f"warning: {NO_THRESHOLD}" in declined.stderr  # a count per service, every service alerting
    assert not (data_dir / "rules").exists()
    accepted = run_cli("ask", "--data-dir", str(data_dir), "--as-rule", "records per service!", input="y\n")
    assert accepted.exit_code == 0 and "written: " in accepted.stdout
    assert [r.title for r in load_rules(data_dir / "rules").rules] == ["Records per service!"]


def test_interactive_questions_make_one_conversation(data_dir: Path, model_server: ModelServer) -> None:
    copy = "```sql\nCOPY logs TO '/tmp/x'\n```"
    model_server.say(sql_reply(COUNT), copy, "```sql\nDROP TABLE logs\n```", copy, sql_reply(COUNT + " ORDER BY 2"))
    lines = "records per service\nnow the busiest first\nthe quietest first\n/run\n/quit\n"
    shown = run_cli("ask", "--data-dir", str(data_dir), input=lines)
    assert shown.exit_code == 0, shown.output
    # The second question's answers were refused three times: reported, and the session went on.
    assert "Error: the model's answers were refused; the last reason: only SELECT" in shown.stderr
    third = model_server.seen[4].texts
    assert len(third) == 3 and third[0] == "records per service" and "COUNT(*) AS records" in third[1]
    assert third[2] == "the quietest first"  # the refused question is not part of the conversation
    assert "payments" in shown.stdout.rsplit("ORDER BY", 1)[1]  # /run ran the last answer


def test_an_answer_without_sql_prints_the_models_words_and_exits_0(data_dir: Path, model_server: ModelServer) -> None:
    """As the README says: no SQL is no error."""
    model_server.say("These tables hold no weather data, so I cannot answer that.")
    shown = run_cli("ask", "--data-dir", str(data_dir), "--run", "will it rain tomorrow?")
    assert shown.exit_code == 0, shown.output
    assert shown.stdout.strip() == "These tables hold no weather data, so I cannot answer that."


def test_interactive_refuses_a_mistyped_command_without_asking_the_model(
    data_dir: Path, model_server: ModelServer
) -> None:
    model_server.say(sql_reply(COUNT))
    shown = run_cli("ask", "--data-dir", str(data_dir), input="/runn\n/bogus now\nrecords per service\n/quit\n")
    assert shown.exit_code == 0, shown.output
    assert "Error: unknown command /runn; commands: /run, /rule, /quit" in shown.stderr
    assert "Error: unknown command /bogus; commands: /run, /rule, /quit" in shown.stderr
    [asked] = model_server.seen  # only the question reached the model
    assert asked.texts == ["records per service"]


def test_a_model_server_that_cannot_be_reached_is_said_with_the_setting_that_names_it(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not only "retry": retrying a wrong endpoint, or one whose server is not running, fails again. The setting
    as it was given: the variable's was said to be --llm-endpoint (LOGLAKE_LLM_ENDPOINT) as the flag's was."""
    shown = run_cli("ask", "--data-dir", str(data_dir), "--llm-endpoint", "http://127.0.0.1:1/v1", "anything")
    assert shown.exit_code == 1
    assert "the anthropic API at http://127.0.0.1:1/v1 cannot be reached (" in shown.stderr, shown.output
    assert "check that the model server runs there, and that --llm-endpoint names it" in shown.stderr
    monkeypatch.setenv("LOGLAKE_LLM_ENDPOINT", "http://127.0.0.1:1/v1")
    shown = run_cli("ask", "--data-dir", str(data_dir), "anything")
    assert shown.exit_code == 1 and "and that LOGLAKE_LLM_ENDPOINT names it" in shown.stderr, shown.output


def test_without_a_model_it_says_how_to_configure_one(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOGLAKE_LLM_PROVIDER")
    shown = run_cli("ask", "--data-dir", str(data_dir), "anything")
    assert shown.exit_code == 1 and "--llm-provider" in shown.output


def test_without_a_data_dir_or_a_model_it_says_first_that_no_model_is_configured(
    tmp_path: Path, no_loglake_environment: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOGLAKE_DATA_DIR", str(tmp_path / "nothing-here"))
    shown = run_cli("ask", "how many errors today?")
    assert shown.exit_code == 1
    assert "no language model is configured" in shown.output and "no loglake data" not in shown.output


def test_ask_through_a_running_server(
    data_dir: Path, model_server: ModelServer, server_factory, admin_key_of, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--url: the server's model and data answer (POST /ask, /query, /ask/{id}/rule), whatever this
    shell's LOGLAKE_LLM_* say; --run, --conversation, --as-rule and interactive mode work as locally."""
    server = server_factory(
        data_dir,
        *("--llm-provider", "openai", "--llm-endpoint", model_server.url + "/v1", "--llm-model", "served-model"),
    )
    monkeypatch.setenv("LOGLAKE_API_KEY", admin_key_of(server))
    model_server.say(sql_reply(COUNT, "Counts the records of each service."), sql_reply(COUNT + " ORDER BY 2 DESC"))
    ran = run_cli("ask", "--url", server.url, "--run", "--json", "records per service")
    assert ran.exit_code == 0, ran.output
    answer = json.loads(ran.stdout)
    assert answer["sql"].startswith("SELECT") and ["payments"] in [row[:1] for row in answer["result"]["rows"]]
    assert model_server.seen[0].path == "/v1/chat/completions" and model_server.seen[0].body["model"] == "served-model"
    follow = run_cli("ask", "--url", server.url, "--conversation", answer["conversation_id"], "busiest first")
    assert follow.exit_code == 0, follow.output
    assert model_server.seen[1].texts[0] == "records per service" and "ORDER BY" in follow.stdout
    rule = run_cli(
        "ask", "--url", server.url, "--conversation", answer["conversation_id"], "--as-rule", "--yes", "again"
    )
    assert rule.exit_code == 0, rule.output
    written = rule.stdout.rsplit("written: ", 1)[1].strip()
    assert Path(written).parent == data_dir / "rules" and "group_by:\n- service" in Path(written).read_text()
    drop = "```sql\nDROP TABLE logs\n```"
    model_server.say(drop, drop, drop, sql_reply(COUNT))
    chat = run_cli("ask", "--url", server.url, input="drop it\nrecords per service\n/run\n/quit\n")
    assert chat.exit_code == 0, chat.output
    assert "Error: HTTP 502: the model's answers were refused 3 times" in chat.stderr
    assert "payments" in chat.stdout.rsplit("COUNT(*) AS records", 1)[1]  # /run ran the last answer (POST /query)
    model_server.replies.clear()
    model_server.say(sql_reply("SELECT CAST(service AS INTEGER) AS n FROM logs"))
    failed = run_cli("ask", "--url", server.url, "--run", "services as numbers")  # (its error came alone)
    assert failed.exit_code == 1 and "CAST(service AS INT" in failed.stdout and "HTTP 400" in failed.stderr, (
        failed.output
    )


def test_through_a_server_without_a_model_it_says_so_before_the_prompt_and_whose_settings_they_are(
    data_dir: Path, server_factory, admin_key_of, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = server_factory(data_dir)  # this shell's LOGLAKE_LLM_* (the fixture's) are not the server's
    monkeypatch.setenv("LOGLAKE_API_KEY", admin_key_of(server))
    chat = run_cli("ask", "--url", server.url, input="how many errors today?\n/quit\n")
    assert chat.exit_code == 1
    assert "ask>" not in chat.stderr  # said at the start, where it used to come after the first question
    assert "this server has no language model configured" in chat.stderr and "the server's settings" in chat.stderr
    once = run_cli("ask", "--url", server.url, "how many errors today?")
    assert once.exit_code == 1 and "HTTP 501: this server has no language model configured" in once.stderr
    assert "--llm-* flags" not in once.stderr  # --url given: the server's model is the one wanted


def test_a_server_asked_only_because_the_environment_names_it_says_how_this_command_runs_a_model_itself(
    data_dir: Path, server_factory, admin_key_of, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No --url: a person may expect the command to run the model itself, as it does with the --llm-* flags."""
    server = server_factory(data_dir)
    monkeypatch.setenv("LOGLAKE_API_KEY", admin_key_of(server))
    monkeypatch.setenv("LOGLAKE_URL", server.url)  # as `loglake serve`'s banner suggests
    for asked in (["how many errors today?"], ["--explain-sql", "SELECT 1"], []):
        shown = run_cli("ask", *asked, input="/quit\n")
        assert shown.exit_code == 1, shown.output
        said = shown.stderr
        assert "this server has no language model configured" in said, said
        assert f"because LOGLAKE_URL names it ({server.url})" in said and "give it the --llm-* flags" in said, said
        assert "--llm-provider openai --llm-endpoint" in said, said


def test_url_and_a_local_model_or_data_dir_do_not_mix(data_dir: Path) -> None:
    both = run_cli("ask", "--url", "http://127.0.0.1:9", "--data-dir", str(data_dir), "q")
    assert both.exit_code == 2 and "not both" in both.output
    model = run_cli("ask", "--url", "http://127.0.0.1:9", "--llm-model", "m", "q")
    assert model.exit_code == 2 and "--llm-model" in model.output and "the server's model" in model.output
    config = data_dir.parent / "loglake.toml"
    config.write_text(f'data_dir = "{data_dir}"\n')
    settings = run_cli("ask", "--url", "http://127.0.0.1:9", "--config", str(config), "q")  # (it was left unread)
    assert settings.exit_code == 2 and "--config: with --url the server's model answers" in settings.output


def test_a_config_file_on_the_command_line_wins_over_an_exported_url_as_a_data_dir_does(
    data_dir: Path, model_server: ModelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`ask --config FILE` (its data dir and model) asked the server LOGLAKE_URL names instead, the file unread."""
    config = data_dir.parent / "loglake.toml"
    config.write_text(f'data_dir = "{data_dir}"\n')
    monkeypatch.setenv("LOGLAKE_URL", "http://127.0.0.1:9")  # (nothing listens there)
    model_server.say(sql_reply(COUNT))
    asked = run_cli("ask", "--config", str(config), "records per service")
    assert asked.exit_code == 0, asked.output
    assert "COUNT(*) AS records" in asked.stdout and model_server.seen[0].path == "/v1/messages"


def test_local_flags_win_over_a_url_only_exported(
    data_dir: Path, model_server: ModelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOGLAKE_URL", "http://127.0.0.1:9")  # as `loglake serve`'s banner suggests; nothing there
    model_server.say(sql_reply(COUNT), sql_reply(COUNT))
    local = run_cli("ask", "--data-dir", str(data_dir), "records per service")
    assert local.exit_code == 0, local.output
    monkeypatch.setenv("LOGLAKE_DATA_DIR", str(data_dir))
    model = run_cli("ask", "--llm-model", "other", "records per service?")
    assert model.exit_code == 0, model.output
    assert model_server.seen[1].body["model"] == "other"


def test_a_locked_ask_db_is_said_plainly(
    data_dir: Path, model_server: ModelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    model_server.say(sql_reply(COUNT))
    assert run_cli("ask", "--data-dir", str(data_dir), "records per service").exit_code == 0  # ask.db made
    monkeypatch.setattr("loglake.ask.store.BUSY_TIMEOUT_S", 0.1)  # instead of 10 s, so the test need not wait
    holder = sqlite3.connect(data_dir / ASK_DB, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # a server writing ask.db
    try:
        busy = run_cli("ask", "--data-dir", str(data_dir), "records per service?")
    finally:
        holder.execute("COMMIT")
        holder.close()
    assert busy.exit_code == 1 and "Traceback" not in busy.output
    assert "ask.db stayed locked by another process's write for 0.1 s; retry shortly" in busy.stderr
    assert len(model_server.seen) == 1


def test_as_rule_through_a_server_with_a_key_that_cannot_write_rules_says_so_before_asking_the_model(
    data_dir: Path, model_server: ModelServer, server_factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The question was asked (the model's tokens spent) and only writing the rule was refused, with a 403."""
    server = server_factory(
        data_dir,
        *("--llm-provider", "openai", "--llm-endpoint", model_server.url + "/v1", "--llm-model", "served-model"),
    )
    reader = run_cli("keys", "create", "--name", "reader", "--scopes", "read", "--data-dir", str(data_dir))
    monkeypatch.setenv("LOGLAKE_API_KEY", reader.stdout.strip())
    model_server.say(sql_reply(COUNT), sql_reply(COUNT))
    for confirm in (["--yes"], []):
        refused = run_cli("ask", "--url", server.url, "--as-rule", *confirm, "records per service", input="y\n")
        assert refused.exit_code == 1, refused.output
        assert "writing a rule needs a key with the 'admin' scope" in refused.stderr, refused.stderr
        assert refused.stdout == ""
    assert model_server.seen == []
    chat = run_cli("ask", "--url", server.url, input="records per service\n/rule\n/quit\n")  # a draft: read scope
    assert chat.exit_code == 0, chat.output
    assert "group_by:\n- service" in chat.stdout and "Write it" not in chat.output
    assert "writing a rule needs a key with the 'admin' scope" in chat.stderr
