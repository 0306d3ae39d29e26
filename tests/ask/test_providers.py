"""The three provider clients against a local server speaking their APIs: answers, usage, time-outs
and errors (502/503), keys by reference and never in a message."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from loglake.alerts.secrets import Secrets
from loglake.ask.errors import NoProvider, ProviderError
from loglake.ask.providers import (
    ANTHROPIC_VERSION,
    MAX_ANSWER_BYTES,
    BedrockProvider,
    Message,
    Provider,
    provider_from_settings,
)
from loglake.config import ConfigError, Settings
from loglake.config_load import load_settings
from loglake.lake.stop import CLIENT_GONE, Stop, Stopped
from tests.ask.model_server import DRIP, STALL, Failure, ModelServer
from tests.conftest import free_port
from tests.e2e.test_backtest_serve import eventually

KEY = "sk-test-0123456789abcdef"


def _settings(kind: str, server: ModelServer, tmp_path: Path, **more: object) -> Settings:
    values: dict = {
        "data_dir": tmp_path,
        "llm_provider": kind,
        "llm_endpoint": server.url + ("/v1" if kind == "openai" else ""),
        "llm_model": "test-model",
        "llm_api_key": "env:TEST_LLM_KEY" if kind != "bedrock" else "",
    }
    return Settings(**{**values, **more})


@pytest.fixture(autouse=True)
def aws_and_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_LLM_KEY", KEY)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


@pytest.mark.parametrize("kind", ["openai", "anthropic", "bedrock"])
def test_each_provider_answers_through_its_real_client(kind: str, model_server: ModelServer, tmp_path: Path) -> None:
    model_server.say("```sql\nSELECT 1\n```")
    provider = provider_from_settings(_settings(kind, model_server, tmp_path))
    completion = provider.complete("the system prompt", [Message("user", "how many?")])
    assert completion.text == "```sql\nSELECT 1\n```"
    assert completion.input_tokens > 0 and completion.output_tokens == len(completion.text) // 4
    (seen,) = model_server.seen
    assert seen.system == "the system prompt" and seen.texts == ["how many?"]
    if kind == "openai":
        assert seen.path == "/v1/chat/completions" and seen.headers["authorization"] == f"Bearer {KEY}"
        assert seen.body["model"] == "test-model"
    elif kind == "anthropic":
        assert seen.path == "/v1/messages" and seen.headers["x-api-key"] == KEY
        assert seen.headers["anthropic-version"] == ANTHROPIC_VERSION and seen.body["max_tokens"] > 0
    else:
        assert seen.path == "/model/test-model/converse"
        assert seen.headers["authorization"].startswith("AWS4-HMAC-SHA256")  # signed by botocore


@pytest.mark.parametrize("kind", ["openai", "anthropic", "bedrock"])
def test_a_call_told_to_stop_is_not_waited_for(kind: str, model_server: ModelServer, tmp_path: Path) -> None:
    """The question's client went away (or the server is stopping) while the model thinks: Stopped at once,
    not the model's answer or its time-out (Bedrock's call is left to end by its time-out, unwaited for)."""
    model_server.say(STALL)
    provider = provider_from_settings(_settings(kind, model_server, tmp_path, llm_timeout_seconds=5))
    stop = Stop()
    raised: list[BaseException] = []

    def ask() -> None:
        try:
            provider.complete("s", [Message("user", "q")], stop)
        except BaseException as e:
            raised.append(e)

    asking = threading.Thread(target=ask)
    asking.start()
    eventually(lambda: len(model_server.seen) == 1, "the call to reach the model")
    stop.stop(CLIENT_GONE)
    asking.join(10)
    assert [type(e) for e in raised] == [Stopped] and raised[0].reason == CLIENT_GONE, raised


@pytest.mark.parametrize("kind", ["openai", "anthropic", "bedrock"])
def test_a_model_that_does_not_answer_in_time_is_a_503(kind: str, model_server: ModelServer, tmp_path: Path) -> None:
    model_server.say(STALL)
    provider = provider_from_settings(_settings(kind, model_server, tmp_path, llm_timeout_seconds=0.3))
    with pytest.raises(ProviderError) as raised:
        provider.complete("s", [Message("user", "q")])
    assert raised.value.status == 503
    assert "did not answer within 0.3 s" in raised.value.message and "llm_timeout_seconds" in raised.value.message


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_a_model_that_answers_a_byte_at_a_time_is_a_503_in_time(
    kind: str, model_server: ModelServer, tmp_path: Path
) -> None:
    """httpx's timeout bounds each wait for a byte: an answer trickling in held the question for ever."""
    model_server.say(DRIP)
    provider = provider_from_settings(_settings(kind, model_server, tmp_path, llm_timeout_seconds=0.5))
    started = time.monotonic()
    with pytest.raises(ProviderError) as raised:
        provider.complete("s", [Message("user", "q")])
    assert time.monotonic() - started < 3
    assert raised.value.status == 503 and "did not answer within 0.5 s" in raised.value.message


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_an_answer_larger_than_asked_for_is_a_502(kind: str, model_server: ModelServer, tmp_path: Path) -> None:
    """An endless answer was held in memory and parsed whole (50 MB of SQL took 87 s and 400 MB in a server)."""
    text = "x" * (MAX_ANSWER_BYTES + 1)
    model_server.say(Failure(200, f'{{"choices": [{{"message": {{"content": "{text}"}}}}], "content": []}}'))
    with pytest.raises(ProviderError) as raised:
        provider_from_settings(_settings(kind, model_server, tmp_path)).complete("s", [Message("user", "q")])
    assert raised.value.status == 502 and "answer is over 1 MiB" in raised.value.message


@pytest.mark.parametrize("kind", ["openai", "anthropic", "bedrock"])
@pytest.mark.parametrize(("status", "expected"), [(500, 502), (502, 502), (429, 503), (503, 503)])
def test_server_errors_are_502_and_overload_503(
    kind: str, status: int, expected: int, model_server: ModelServer, tmp_path: Path
) -> None:
    # The error body echoes the key, as some gateways do: it must not reach our message (Bedrock signs
    # with AWS credentials instead, which no answer holds).
    model_server.say(Failure(status, f'{{"message": "upstream failed for key {KEY}"}}'))
    provider = provider_from_settings(_settings(kind, model_server, tmp_path))
    with pytest.raises(ProviderError) as raised:
        provider.complete("s", [Message("user", "q")])
    assert raised.value.status == expected
    assert str(status) in raised.value.message
    assert (KEY not in raised.value.message) or kind == "bedrock"


def test_a_wrong_endpoint_is_a_502_naming_the_settings(model_server: ModelServer, tmp_path: Path) -> None:
    settings = _settings("anthropic", model_server, tmp_path, llm_endpoint=model_server.url + "/x")
    with pytest.raises(ProviderError) as raised:
        provider_from_settings(settings).complete("s", [Message("user", "q")])
    assert raised.value.status == 502 and "404" in raised.value.message and "check llm_endpoint" in raised.value.message


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_a_password_in_the_endpoint_is_never_in_a_message(kind: str, tmp_path: Path) -> None:
    """A model behind a proxy's basic auth (http://user:password@host, which httpx sends as Basic): its 503 named
    the endpoint, password and all, to any key with the read scope (POST /ask, the Ask page)."""
    endpoint = f"http://ollama:pa%24%24word-9@127.0.0.1:{free_port()}/v1"
    settings = Settings(data_dir=tmp_path, llm_provider=kind, llm_endpoint=endpoint, llm_model="m")
    with pytest.raises(ProviderError) as raised:
        provider_from_settings(settings).complete("s", [Message("user", "q")])
    assert raised.value.status == 503 and "cannot be reached" in raised.value.message
    assert "pa%24%24word-9" not in raised.value.message and "pa$$word-9" not in raised.value.message
    assert f"http://ollama:***@127.0.0.1:{endpoint.rpartition(':')[2]}" in raised.value.message


@pytest.mark.parametrize("kind", ["openai", "anthropic", "bedrock"])
def test_an_answer_of_another_shape_is_a_502(kind: str, model_server: ModelServer, tmp_path: Path) -> None:
    model_server.say(Failure(200, '{"result": "not what the API answers"}'))
    with pytest.raises(ProviderError) as raised:
        provider_from_settings(_settings(kind, model_server, tmp_path)).complete("s", [Message("user", "q")])
    assert raised.value.status == 502 and "answer has no" in raised.value.message


def test_a_missing_key_variable_is_named_never_its_value(
    model_server: ModelServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TEST_LLM_KEY")
    provider = provider_from_settings(_settings("openai", model_server, tmp_path))
    with pytest.raises(ProviderError) as raised:
        provider.complete("s", [Message("user", "q")])
    assert raised.value.status == 503 and "TEST_LLM_KEY" in raised.value.message
    assert model_server.seen == []


def test_a_key_from_a_file_is_read_at_each_call(model_server: ModelServer, tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("first-key\n")
    settings = _settings("openai", model_server, tmp_path, llm_api_key=f"file:{key_file}")
    provider = provider_from_settings(settings, Secrets())
    model_server.say("a", "b")
    provider.complete("s", [Message("user", "q")])
    key_file.write_text("rotated-key\n")
    provider.complete("s", [Message("user", "q")])
    assert [s.headers["authorization"] for s in model_server.seen] == ["Bearer first-key", "Bearer rotated-key"]


def test_the_key_setting_takes_only_a_reference() -> None:
    with pytest.raises(ConfigError, match="--llm-api-key takes a reference") as raised:
        load_settings({"llm_provider": "openai", "llm_model": "m", "llm_api_key": KEY}, environ={})
    assert KEY not in str(raised.value)
    assert load_settings({"llm_api_key": "env:OPENAI_API_KEY"}, environ={}).llm_api_key == "env:OPENAI_API_KEY"


def test_every_llm_setting_comes_from_the_environment_too() -> None:
    environ = {
        "LOGLAKE_LLM_PROVIDER": "anthropic",
        "LOGLAKE_LLM_ENDPOINT": "http://127.0.0.1:9",
        "LOGLAKE_LLM_MODEL": "claude-test",
        "LOGLAKE_LLM_API_KEY": "env:ANTHROPIC_API_KEY",
        "LOGLAKE_LLM_TIMEOUT_SECONDS": "12.5",
    }
    settings = load_settings(environ=environ)
    assert (settings.llm_provider, settings.llm_endpoint, settings.llm_model) == (
        "anthropic",
        "http://127.0.0.1:9",
        "claude-test",
    )
    assert (settings.llm_api_key, settings.llm_timeout_seconds) == ("env:ANTHROPIC_API_KEY", 12.5)


def test_without_a_provider_ask_says_how_to_configure_one(tmp_path: Path) -> None:
    with pytest.raises(NoProvider, match="--llm-provider openai"):
        provider_from_settings(Settings(data_dir=tmp_path))


def test_bedrock_takes_an_injected_client(model_server: ModelServer) -> None:
    client = boto3.client(
        "bedrock-runtime",
        endpoint_url=model_server.url,
        region_name="eu-west-1",
        config=Config(retries={"total_max_attempts": 1}),
    )
    provider: Provider = BedrockProvider("", "anthropic.claude-test", 5, client=client)
    model_server.say("hello")
    assert provider.complete("s", [Message("user", "q")]).text == "hello"
    assert model_server.seen[0].path == "/model/anthropic.claude-test/converse"


_ANSWERS = {
    "openai": '{{"choices": [{{"message": {{"content": "SELECT 1"}}}}], "usage": {{"prompt_tokens": {count}}}}}',
    "anthropic": '{{"content": [{{"type": "text", "text": "SELECT 1"}}], "usage": {{"input_tokens": {count}}}}}',
    "bedrock": '{{"output": {{"message": {{"content": [{{"text": "SELECT 1"}}]}}}}, '
    '"usage": {{"inputTokens": {count}}}}}',
}


@pytest.mark.parametrize("kind", ["openai", "anthropic", "bedrock"])
@pytest.mark.parametrize("count", ["-5000000", '"many"', "[1]", "1e30", "100000000000000000000000000000"])
def test_a_token_count_that_is_no_count_is_a_502(
    kind: str, count: str, model_server: ModelServer, tmp_path: Path
) -> None:
    """The counts are charged to the daily budget: a negative one gave it back, and one that was no number (or
    too large for ask.db) failed the question with a 500 after the model was paid."""
    model_server.say(Failure(200, _ANSWERS[kind].format(count=count)))
    with pytest.raises(ProviderError) as raised:
        provider_from_settings(_settings(kind, model_server, tmp_path)).complete("s", [Message("user", "q")])
    assert raised.value.status == 502
    # botocore's own parse refuses counts that are no number, before ours
    assert "token count" in raised.value.message or "other than a Converse answer" in raised.value.message


@pytest.mark.parametrize("kind", ["openai", "anthropic", "bedrock"])
def test_a_token_count_not_reported_counts_0(kind: str, model_server: ModelServer, tmp_path: Path) -> None:
    model_server.say(Failure(200, _ANSWERS[kind].format(count="null")))
    completion = provider_from_settings(_settings(kind, model_server, tmp_path)).complete("s", [Message("user", "q")])
    assert (completion.text, completion.input_tokens, completion.output_tokens) == ("SELECT 1", 0, 0)


@pytest.mark.parametrize("content", ['"SELECT 1"', '["SELECT 1"]'])
def test_anthropic_content_that_is_no_list_of_parts_is_a_502(
    content: str, model_server: ModelServer, tmp_path: Path
) -> None:
    model_server.say(Failure(200, f'{{"content": {content}}}'))
    with pytest.raises(ProviderError) as raised:
        provider_from_settings(_settings("anthropic", model_server, tmp_path)).complete("s", [Message("user", "q")])
    assert raised.value.status == 502 and "answer has no content" in raised.value.message
