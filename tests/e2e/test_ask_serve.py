"""A real `loglake serve` configured by its --llm-* flags asks a local Anthropic-style model server."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx

from tests.ask.model_server import Failure, ModelServer, model_server, sql_reply  # noqa: F401
from tests.conftest import ServerProcess

KEY = "sk-ant-e2e-5c1e2a7f0b9d"


def test_serve_answers_questions_runs_them_and_never_shows_the_key(
    server_factory: Callable[..., ServerProcess],
    admin_key_of: Callable[[ServerProcess], str],
    model_server: ModelServer,  # noqa: F811 (the fixture imported above)
    tmp_path: Path,
) -> None:
    key_file = tmp_path / "anthropic.key"
    key_file.write_text(KEY + "\n")
    server = server_factory(
        None,
        "--llm-provider",
        "anthropic",
        "--llm-endpoint",
        model_server.url,
        "--llm-model",
        "claude-e2e",
        "--llm-api-key",
        f"file:{key_file}",
    )
    headers = {"authorization": f"Bearer {admin_key_of(server)}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as client:
        sent = client.post("/logs", json=[{"message": "disk full", "severity": "error", "service": "db"}] * 3)
        assert sent.status_code == 201
        sql = "SELECT service, count(*) AS errors FROM logs WHERE severity = 'error' GROUP BY 1"
        model_server.say(sql_reply(sql, "Counts errors by service."))
        answer = client.post("/ask", json={"question": "errors by service?", "run": True})
        assert answer.status_code == 200, answer.text
        assert answer.json()["result"]["rows"] == [["db", 3]]
        # A provider error that echoes the key: scrubbed from the answer and from the server's output.
        model_server.say(Failure(500, f'{{"error": "bad key {KEY}"}}'))
        failed = client.post("/ask", json={"question": "anything else?"})
        assert failed.status_code == 502 and KEY not in failed.text
        metrics = client.get("/metrics").text
    assert model_server.seen[0].headers["x-api-key"] == KEY
    assert 'loglake_llm_requests_total{provider="anthropic"} 1' in metrics  # the answered calls
    assert 'loglake_ask_questions_total{outcome="provider_error"} 1' in metrics
    server.stop()
    assert KEY not in server.log_path.read_text()
