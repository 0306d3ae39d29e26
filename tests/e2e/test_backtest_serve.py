"""A long backtest (or query) in a real `loglake serve`: it holds its SQL query slot only while its
client waits for it, and a stopping server (Ctrl-C, SIGTERM) stops it and ends at once instead of
waiting for it."""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.api.test_backtest_bounds import EVERY_MINUTE, EVERY_MINUTE_ID
from tests.conftest import ServerProcess, poll
from tests.rules.conftest import write_rule

pytestmark = pytest.mark.e2e

WAIT_S = 10.0
LONG_BACKTEST = {"since": "30d"}  # 43,200 windows, a query each: minutes of work


def serve_one_query_slot(server_factory: Callable[..., ServerProcess], tmp_path: Path) -> ServerProcess:
    write_rule(tmp_path / "rules", "minute.yml", EVERY_MINUTE)
    rules = ("--rules-dir", str(tmp_path / "rules"))
    server = server_factory(tmp_path / "data", *rules, "--no-auth", "--query-concurrency", "1")
    rule = f"{server.url}/rules/{EVERY_MINUTE_ID}"
    eventually(lambda: httpx.get(rule).status_code == 200, "the server's first round to load the rule")
    return server


def query_status(server: ServerProcess) -> int:
    return httpx.post(f"{server.url}/query", json={"sql": "SELECT 1"}, timeout=WAIT_S).status_code


def eventually(condition: Callable[[], bool], what: str) -> None:
    poll(condition, what, WAIT_S)


def test_a_backtest_whose_client_went_away_gives_its_query_slot_back(
    server_factory: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    server = serve_one_query_slot(server_factory, tmp_path)
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{server.url}/rules/{EVERY_MINUTE_ID}/backtest", json=LONG_BACKTEST, timeout=1)
    eventually(lambda: query_status(server) == 200, "the backtest's slot to be free")
    eventually(lambda: backtests_logged(server) == [499], "the access log's line for the backtest")


def backtests_logged(server: ServerProcess) -> list[int]:
    """The statuses of the backtests in the server's access log (its output)."""
    logged = [json.loads(line) for line in server.log_path.read_text().splitlines() if line.startswith("{")]
    return [line["status"] for line in logged if line.get("route") == "/rules/{ruleId}/backtest"]


def test_a_query_whose_client_went_away_is_interrupted_and_gives_its_slot_back(
    server_factory: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    server = serve_one_query_slot(server_factory, tmp_path)
    endless = "SELECT count(*) FROM range(1000000000000) a"  # runs until the query timeout (30 s)
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{server.url}/query", json={"sql": endless}, timeout=1)
    eventually(lambda: query_status(server) == 200, "the query's slot to be free")


@pytest.mark.parametrize("signal_number", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_stopping_server_stops_its_backtest_and_ends_promptly(
    server_factory: Callable[..., ServerProcess], tmp_path: Path, signal_number: int
) -> None:
    server = serve_one_query_slot(server_factory, tmp_path)
    answers: list[httpx.Response] = []

    def backtest() -> None:  # again while the checks below hold the slot
        url = f"{server.url}/rules/{EVERY_MINUTE_ID}/backtest"
        while not answers or answers[-1].json()["error"]["code"] == "busy":
            answers.append(httpx.post(url, json=LONG_BACKTEST, timeout=60))

    client = threading.Thread(target=backtest)
    client.start()
    eventually(lambda: query_status(server) == 503, "the backtest to take the only query slot")
    assert server.process is not None
    server.process.send_signal(signal_number)
    assert server.process.wait(WAIT_S) in (0, -signal_number)  # (Ctrl-C ends `loglake serve` with 0)
    client.join(WAIT_S)
    assert answers and answers[-1].status_code == 503
    assert answers[-1].json()["error"]["code"] == "server_stopping"
    log = server.log_path.read_text()
    assert "timeout graceful shutdown exceeded" not in log and "Traceback" not in log
