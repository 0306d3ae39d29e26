"""The language models `ask` can use, behind one small interface: a system prompt and a conversation
in, one text answer and its token counts out.

Three wire formats cover the field: OpenAI's chat completions (OpenAI, Azure OpenAI, vLLM, Ollama,
llama.cpp, LM Studio all serve it), Anthropic's Messages API, and Amazon Bedrock's Converse API
(through boto3, so AWS credentials and regions work as everywhere else). A provider never retries:
the caller's user is waiting, and a failed answer is reported as 502 (the API answered, badly) or
503 (it did not answer in time, or is overloaded), with a message that names the provider and never
its key. Told to stop (the user went away, the server is stopping), a call raises Stopped at once instead
of waiting for the model: a call over HTTP shuts its connection, Bedrock's is left to end by its timeout.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from loglake.alerts.secrets import SecretError, Secrets, reference_of, scrub
from loglake.ask.errors import NoProvider, ProviderError
from loglake.config import Settings, as_typed
from loglake.http_call import Connection
from loglake.lake.stop import Stop, unless_stopped
from loglake.urls import without_password

ANTHROPIC_VERSION = "2023-06-01"  # the Messages API version this client speaks (anthropic-version header)
DEFAULT_ENDPOINTS = {"openai": "https://api.openai.com/v1", "anthropic": "https://api.anthropic.com"}
MAX_ANSWER_TOKENS = 1024
# An answer's body, at most: MAX_ANSWER_TOKENS of text and the API's JSON around them take a few KiB.
MAX_ANSWER_BYTES = 1024**2
# Tokens a chat template adds around each message (role markers, separators): a few; counted generously.
TEMPLATE_TOKENS_PER_MESSAGE = 16
_ERROR_EXCERPT = 300  # characters of a provider's error body quoted in ours
# More tokens than any model's context holds: a count above it is no count (nor may it pass SQLite's INTEGER).
MAX_TOKEN_COUNT = 10**9


@dataclass(frozen=True)
class Message:
    role: str  # "user" or "assistant"
    text: str


@dataclass(frozen=True)
class Completion:
    text: str
    input_tokens: int
    output_tokens: int


def most_tokens(system: str, messages: Sequence[Message]) -> int:
    """The most tokens one call can use: its text's UTF-8 bytes (the models' tokenizers are byte-level
    BPE or fall back to bytes, so a token stands for at least one byte), the template's tokens around
    each message, and the longest answer asked for (max_tokens). An upper bound, so that the budget's
    reservations hold."""
    text = len(system.encode()) + sum(len(m.text.encode()) for m in messages)
    return text + TEMPLATE_TOKENS_PER_MESSAGE * (len(messages) + 1) + MAX_ANSWER_TOKENS


class Provider(Protocol):
    name: str
    model: str

    def complete(self, system: str, messages: Sequence[Message], stop: Stop | None = None) -> Completion: ...


class _HttpProvider:
    """What the two HTTP APIs share: one client, the key resolved at each call (a rotated key is
    picked up at once), errors mapped to 502/503 with the key scrubbed from anything quoted."""

    name = ""

    def __init__(
        self,
        endpoint: str,
        model: str,
        key: str,
        timeout: float,
        secrets: Secrets,
        endpoint_setting: str = as_typed("llm_endpoint"),
    ) -> None:
        self.endpoint = (endpoint or DEFAULT_ENDPOINTS[self.name]).rstrip("/")
        self._endpoint_setting = endpoint_setting  # as the person gave it (Settings.named), for what to check
        self.model = model
        self.timeout = timeout
        self._key = reference_of(key) if key else None
        self._secrets = secrets
        import httpx  # on first use: a server that never asks does without it (~5 MiB)

        # No connection kept between calls: each call's own is the one a stop shuts (http_call), and
        # its handshake is nothing beside the seconds a model takes.
        self._client = httpx.Client(timeout=timeout, limits=httpx.Limits(max_keepalive_connections=0))

    def _post(
        self, path: str, body: dict[str, Any], headers: Callable[[str], dict[str, str]], stop: Stop | None
    ) -> dict[str, Any]:
        import httpx

        try:
            key = self._secrets.value(self._key) if self._key is not None else ""
        except SecretError as e:
            raise ProviderError(503, f"the {self.name} API key cannot be read: {e}") from None
        url = self.endpoint + path
        connection = Connection()
        watched = contextlib.nullcontext() if stop is None else stop.watched_by(connection.shut)
        # The whole call gets the timeout (http_call): a model that sends a byte now and then would hold the
        # question (and one of the two ask threads) for ever.
        deadline = connection.deadline(self.timeout)
        try:
            with watched:
                deadline.start()
                request = self._client.stream(
                    "POST", url, json=body, headers=headers(key), extensions={"trace": connection.trace}
                )
                with request as answer:
                    content = self._read(answer)
        except httpx.HTTPError as e:
            if stop is not None:
                stop.check()  # Stopped, when that is why the connection ended
            if isinstance(e, httpx.TimeoutException) or connection.timed_out:
                raise ProviderError(
                    503,
                    f"the {self.name} model did not answer within {self.timeout:g} s (llm_timeout_seconds); "
                    "retry, or give it more time",
                ) from None
            raise ProviderError(
                503,
                f"the {self.name} API at {without_password(self.endpoint)} cannot be reached ({e}): check that the "
                f"model server runs there, and that {self._endpoint_setting} names it",
            ) from None
        finally:
            deadline.cancel()
        if answer.status_code != 200:
            text = content[: _ERROR_EXCERPT * 4].decode("utf-8", "replace")[:_ERROR_EXCERPT]
            excerpt = scrub(text, [key] if key else [])
            status = 503 if answer.status_code in (429, 503, 529) else 502
            advice = "retry later" if status == 503 else "check llm_endpoint, llm_model and llm_api_key"
            raise ProviderError(
                status, f"the {self.name} API answered {answer.status_code} ({excerpt.strip()}); {advice}"
            )
        try:
            return json.loads(content)
        except ValueError:
            raise ProviderError(502, f"the {self.name} API answered something that is not JSON") from None

    def _read(self, answer: Any) -> bytes:
        """The answer's body, refused (502) past MAX_ANSWER_BYTES: what was asked for fits in far less, and a
        broken or hostile endpoint's endless answer would otherwise be held in memory and parsed whole."""
        content = bytearray()
        for chunk in answer.iter_bytes():
            content += chunk
            if len(content) > MAX_ANSWER_BYTES:
                raise ProviderError(
                    502,
                    f"the {self.name} API's answer is over {MAX_ANSWER_BYTES // 1024**2} MiB, though at most "
                    f"{MAX_ANSWER_TOKENS} tokens were asked for; check llm_endpoint",
                )
        return bytes(content)

    def _shape_error(self, what: str) -> ProviderError:
        return ProviderError(502, f"the {self.name} API's answer has no {what}; is llm_provider right?")


class OpenAIProvider(_HttpProvider):
    """POST {endpoint}/chat/completions."""

    name = "openai"

    def complete(self, system: str, messages: Sequence[Message], stop: Stop | None = None) -> Completion:
        body = {
            "model": self.model,
            "messages": [{"role": "system", "content": system}]
            + [{"role": m.role, "content": m.text} for m in messages],
            "max_tokens": MAX_ANSWER_TOKENS,
            "temperature": 0,
        }
        answer = self._post(
            "/chat/completions", body, lambda key: {"authorization": f"Bearer {key}"} if key else {}, stop
        )
        try:
            text = answer["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise self._shape_error("choices[0].message.content") from None
        counts = token_counts(answer.get("usage"), ("prompt_tokens", "completion_tokens"), self.name)
        return Completion(str(text or ""), *counts)


class AnthropicProvider(_HttpProvider):
    """POST {endpoint}/v1/messages."""

    name = "anthropic"

    def complete(self, system: str, messages: Sequence[Message], stop: Stop | None = None) -> Completion:
        body = {
            "model": self.model,
            "system": system,
            "messages": [{"role": m.role, "content": m.text} for m in messages],
            "max_tokens": MAX_ANSWER_TOKENS,
            "temperature": 0,
        }
        answer = self._post(
            "/v1/messages", body, lambda key: {"x-api-key": key, "anthropic-version": ANTHROPIC_VERSION}, stop
        )
        try:
            text = "".join(part["text"] for part in answer["content"] if part.get("type") == "text")
        except (KeyError, TypeError, AttributeError):  # (AttributeError: a part that is no object)
            raise self._shape_error("content") from None
        counts = token_counts(answer.get("usage"), ("input_tokens", "output_tokens"), self.name)
        return Completion(text, *counts)


class BedrockProvider:
    """Amazon Bedrock's Converse API through boto3 (credentials and region from the AWS configuration;
    `endpoint` replaces the bedrock-runtime endpoint). `client` is injected in tests.

    Told to stop, a call is no longer waited for (Stopped at once), but it is not cut: boto3 gives no hold
    on its connection, so the call goes on, on a thread of its own, until Bedrock answers or the client's
    read timeout (llm_timeout_seconds, _bedrock_client) ends it."""

    name = "bedrock"

    def __init__(self, endpoint: str, model: str, timeout: float, client: Any = None) -> None:
        self.model = model
        self.timeout = timeout
        self._client = client if client is not None else _bedrock_client(endpoint, timeout)

    def complete(self, system: str, messages: Sequence[Message], stop: Stop | None = None) -> Completion:
        import botocore.exceptions

        def converse() -> dict[str, Any]:
            return self._client.converse(
                modelId=self.model,
                system=[{"text": system}],
                messages=[{"role": m.role, "content": [{"text": m.text}]} for m in messages],
                inferenceConfig={"maxTokens": MAX_ANSWER_TOKENS, "temperature": 0},
            )

        try:
            answer = converse() if stop is None else unless_stopped(converse, stop, "loglake-bedrock")
        except (botocore.exceptions.ReadTimeoutError, botocore.exceptions.ConnectTimeoutError):
            raise ProviderError(
                503, f"the bedrock model did not answer within {self.timeout:g} s (llm_timeout_seconds); retry"
            ) from None
        except botocore.exceptions.EndpointConnectionError:
            raise ProviderError(503, "the bedrock-runtime endpoint cannot be reached; retry") from None
        except botocore.exceptions.ClientError as e:
            error = e.response.get("Error", {})
            status = int(e.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 502)
            code = error.get("Code", "error")
            retry = status in (429, 503) or code in ("ThrottlingException", "ServiceUnavailableException")
            raise ProviderError(
                503 if retry else 502, f"bedrock answered {status} {code}: {error.get('Message', '')[:_ERROR_EXCERPT]}"
            ) from None
        except botocore.exceptions.BotoCoreError as e:
            raise ProviderError(502, f"bedrock: {e}") from None
        except (ValueError, TypeError):  # botocore's parse of an answer whose fields have other types
            raise ProviderError(502, "the bedrock API answered something other than a Converse answer") from None
        try:
            text = "".join(part.get("text", "") for part in answer["output"]["message"]["content"])
        except (KeyError, TypeError):
            raise ProviderError(502, "the bedrock API's answer has no output.message.content") from None
        counts = token_counts(answer.get("usage"), ("inputTokens", "outputTokens"), self.name)
        return Completion(text, *counts)


def token_counts(usage: Any, names: tuple[str, str], provider: str) -> tuple[int, int]:
    """The input and output tokens an answer's `usage` reports under `names`; one not reported counts 0 (local
    servers may count nothing). Anything but a whole count is a 502: a negative one would give today's budget
    back, and one that is no number failed the question with a 500 once the model was paid."""
    if usage is None:
        return 0, 0
    if not isinstance(usage, dict):
        raise ProviderError(502, f"the {provider} API's answer has a usage that is not an object")
    found = []
    for name in names:
        count = usage.get(name) or 0
        if isinstance(count, float) and count.is_integer():
            count = int(count)
        if type(count) is not int or not 0 <= count <= MAX_TOKEN_COUNT:
            raise ProviderError(502, f"the {provider} API's answer has no token count in usage.{name}: {count!r:.40}")
        found.append(count)
    return found[0], found[1]


def _bedrock_client(endpoint: str, timeout: float) -> Any:
    import boto3
    from botocore.config import Config

    config = Config(read_timeout=timeout, connect_timeout=min(timeout, 10), retries={"total_max_attempts": 1})
    return boto3.client("bedrock-runtime", endpoint_url=endpoint or None, config=config)


_SETTINGS = (
    "llm_provider (openai, anthropic or bedrock), llm_model, and llm_endpoint and llm_api_key as the provider needs"
)
# The example every message about a missing model gives: the flags of a local Ollama.
OLLAMA = "`--llm-provider openai --llm-endpoint http://127.0.0.1:11434/v1 --llm-model llama3.1` for a local Ollama"
NOT_CONFIGURED = (
    f"no language model is configured: set {_SETTINGS} (flags --llm-*, LOGLAKE_LLM_* or the TOML file), e.g. {OLLAMA}"
)
# What a server's clients (the API, the UI, `loglake ask --url`) are told: the settings are the server's, not theirs.
NOT_CONFIGURED_ON_SERVER = (
    f"this server has no language model configured: whoever runs it sets {_SETTINGS} in the server's settings "
    f"(`loglake serve` flags --llm-*, LOGLAKE_LLM_* in its environment or its TOML file) and restarts it, e.g. "
    f"with {OLLAMA}"
)


def provider_from_settings(settings: Settings, secrets: Secrets | None = None) -> Provider:
    """The configured provider; NoProvider when none is."""
    secrets = secrets or Secrets()
    name, timeout = settings.llm_provider, settings.llm_timeout_seconds
    http = (settings.llm_endpoint, settings.llm_model, settings.llm_api_key, timeout, secrets)
    if name == "openai":
        return OpenAIProvider(*http, endpoint_setting=settings.named("llm_endpoint"))
    if name == "anthropic":
        return AnthropicProvider(*http, endpoint_setting=settings.named("llm_endpoint"))
    if name == "bedrock":
        return BedrockProvider(settings.llm_endpoint, settings.llm_model, timeout)
    raise NoProvider(NOT_CONFIGURED)
