"""Long reads and slow models in a real `loglake serve`: a search (here a histogram: search, histogram and
facets run alike) or a question to the model stops when its client goes away, freeing its thread, and
a stopping server (Ctrl-C, SIGTERM) stops them and ends at once instead of waiting for them."""

from __future__ import annotations

import json
import signal
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.ask.model_server import STALL, ModelServer, model_server  # noqa: F401
from tests.conftest import ServerProcess
from tests.e2e.test_backtest_serve import WAIT_S, eventually

pytestmark = pytest.mark.e2e

BIG_MESSAGE = "x" * 50_000
BIG_RECORDS = 3_000  # 150 MB of messages: each of the histogram's 20 terms reads all of them (seconds)
SLOW_HISTOGRAM = {"since": "1d", "q": " ".join(f"-absent{i}" for i in range(20))}
SIGNALS = pytest.mark.parametrize("signal_number", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])


def serve_big_messages(server_factory: Callable[..., ServerProcess], tmp_path: Path) -> ServerProcess:
    server = server_factory(tmp_path / "data", "--no-auth", "--query-threads", "1")
    batch = [{"message": BIG_MESSAGE, "service": "big"}] * 100
    with httpx.Client(base_url=server.url, timeout=60) as client:
        for _ in range(BIG_RECORDS // len(batch)):
            assert client.post("/logs", json=batch).status_code == 201
    return server


def statuses_logged(server: ServerProcess, route: str) -> list[int]:
    """The statuses of a route's requests in the server's access log (its output)."""
    logged = [json.loads(line) for line in server.log_path.read_text().splitlines() if line.startswith("{")]
    return [line["status"] for line in logged if line.get("route") == route]


def assert_ended_promptly(server: ServerProcess, signal_number: int) -> None:
    assert server.process is not None
    server.process.send_signal(signal_number)
    assert server.process.wait(WAIT_S) == 0  # `loglake serve` ends with 0 on Ctrl-C and on SIGTERM alike
    log = server.log_path.read_text()
    assert "timeout graceful shutdown exceeded" not in log and "Traceback" not in log


def asked_then_gone(server: ServerProcess, question: str, reached_model: Callable[[], bool]) -> None:
    """POST /ask over a socket of its own, closed once the question has reached the model."""
    body = json.dumps({"question": question}).encode()
    address = urllib.parse.urlsplit(server.url)
    head = (
        f"POST /ask HTTP/1.1\r\nHost: {address.netloc}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    with socket.create_connection((address.hostname, address.port), timeout=WAIT_S) as connection:
        connection.sendall(head.encode() + body)
        eventually(reached_model, f"the question {question!r} to reach the model")


def answered_in_background(request: Callable[[], httpx.Response]) -> tuple[threading.Thread, list[httpx.Response]]:
    answers: list[httpx.Response] = []
    client = threading.Thread(target=lambda: answers.append(request()))
    client.start()
    return client, answers


def test_a_histogram_whose_client_went_away_is_interrupted(
    server_factory: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    server = serve_big_messages(server_factory, tmp_path)
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(f"{server.url}/logs/histogram", params=SLOW_HISTOGRAM, timeout=0.5)
    # Interrupted (499), where it used to run to its end and answer nobody (200).
    eventually(lambda: statuses_logged(server, "/logs/histogram") == [499], "the access log's line for it")


@SIGNALS
def test_a_stopping_server_stops_its_histogram_and_ends_promptly(
    server_factory: Callable[..., ServerProcess], tmp_path: Path, signal_number: int
) -> None:
    server = serve_big_messages(server_factory, tmp_path)
    url = f"{server.url}/logs/histogram"
    client, answers = answered_in_background(lambda: httpx.get(url, params=SLOW_HISTOGRAM, timeout=60))
    time.sleep(1)  # the histogram is running (it takes seconds)
    assert_ended_promptly(server, signal_number)
    client.join(WAIT_S)
    assert answers and answers[0].status_code == 503, answers[0].text[:300] if answers else "no answer"
    assert answers[0].json()["error"]["code"] == "server_stopping"


# Anthropic's API over HTTP (its connection is shut), and Bedrock's through boto3 (no longer waited for).
PROVIDERS = pytest.mark.parametrize("provider", ["anthropic", "bedrock"])
AWS_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def serve_a_model(
    server_factory: Callable[..., ServerProcess], model: ModelServer, tmp_path: Path, provider: str
) -> ServerProcess:
    endpoint = ("--llm-provider", provider, "--llm-endpoint", model.url, "--llm-model", "claude-e2e")
    if provider == "bedrock":
        # A model that stalls is waited for 60 s (llm_timeout_seconds): longer than any wait below.
        return server_factory(tmp_path / "data", "--no-auth", *endpoint, extra_env=AWS_ENV)
    key_file = tmp_path / "anthropic.key"
    key_file.write_text("sk-ant-e2e-stop\n")
    return server_factory(tmp_path / "data", "--no-auth", *endpoint, "--llm-api-key", f"file:{key_file}")


@PROVIDERS
def test_questions_whose_clients_went_away_give_their_threads_back(
    server_factory: Callable[..., ServerProcess],
    model_server: ModelServer,  # noqa: F811 (the fixture imported above)
    tmp_path: Path,
    provider: str,
) -> None:
    server = serve_a_model(server_factory, model_server, tmp_path, provider)
    model_server.say(STALL, STALL)  # both ask threads wait on the model
    for asked, question in enumerate(("first?", "second?"), start=1):
        # The client goes away once its question is with the model (a fixed client timeout raced a busy
        # machine: a question dropped before it reached the model left its STALL to the third).
        asked_then_gone(server, question, lambda asked=asked: len(model_server.seen) == asked)
    # The model has not answered either, yet the third question has a thread at once.
    third = httpx.post(f"{server.url}/ask", json={"question": "third?"}, timeout=WAIT_S)
    assert third.status_code == 200, third.text
    eventually(lambda: statuses_logged(server, "/ask") == [499, 499, 200], "the access log's lines for them")


@SIGNALS
@PROVIDERS
def test_a_stopping_server_does_not_wait_for_a_slow_model(
    server_factory: Callable[..., ServerProcess],
    model_server: ModelServer,  # noqa: F811 (the fixture imported above)
    tmp_path: Path,
    signal_number: int,
    provider: str,
) -> None:
    server = serve_a_model(server_factory, model_server, tmp_path, provider)
    model_server.say(STALL)
    url = f"{server.url}/ask"
    client, answers = answered_in_background(lambda: httpx.post(url, json={"question": "slow?"}, timeout=60))
    eventually(lambda: len(model_server.seen) == 1, "the question to reach the model")
    assert_ended_promptly(server, signal_number)
    client.join(WAIT_S)
    assert answers and answers[0].status_code == 503, answers[0].text[:300] if answers else "no answer"
    assert answers[0].json()["error"]["code"] == "server_stopping"
