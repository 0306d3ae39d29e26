"""python-logging-loki, a Loki client of its own making, pushes JSON to a real `loglake serve` as it
would to Loki (it authenticates with HTTP basic only, so this server runs without keys); and a protobuf push whose
answer is lost, sent again as Promtail sends it."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator

import httpx
import logging_loki
import pytest

from tests.api.test_loki import entry, protobuf_push
from tests.conftest import ServerProcess, poll

pytestmark = pytest.mark.e2e


@pytest.fixture
def server(server_factory) -> Iterator[ServerProcess]:
    yield server_factory(None, "--no-auth")


def test_python_logging_loki_pushes_records_with_their_labels(server: ServerProcess) -> None:
    handler = logging_loki.LokiHandler(url=f"{server.url}/loki/api/v1/push", tags={"app": "shop"}, version="1")
    handler.handleError = lambda record: pytest.fail(f"the push of {record.getMessage()!r} failed")  # type: ignore[method-assign]
    logger = logging.getLogger("tests.loki.shop")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        logger.warning("stock low", extra={"tags": {"sku": "A-1"}})
        logger.error("payment failed")
    finally:
        logger.removeHandler(handler)
        handler.close()
    page = httpx.get(f"{server.url}/logs/search", params={"q": "service:shop", "since": "1h"}).json()
    by_message = {r["message"]: r for r in page["logs"]}
    assert by_message["stock low"]["severity"] == "warning"
    assert by_message["stock low"]["attributes"] == {"logger": "tests.loki.shop", "sku": "A-1"}
    assert by_message["payment failed"]["severity"] == "error"


def test_a_push_whose_answer_was_lost_is_stored_once_when_sent_again(server: ServerProcess) -> None:
    """Promtail's retry after a timeout: the first push reached the server and was stored, its answer never read
    (the connection closed unread), and the same bytes come again: Loki would store its entries once."""
    now = time.time_ns()
    body = protobuf_push(('{job="promtail", host="h1"}', [entry(now, "sent once"), entry(now + 1, "sent once too")]))
    head = (
        f"POST /loki/api/v1/push HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-protobuf\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()

    def stored() -> int:
        page = httpx.get(f"{server.url}/logs/search", params={"q": "service:promtail", "since": "1h"}).json()
        return len(page["logs"])

    with socket.create_connection(("127.0.0.1", server.port)) as lost:
        lost.sendall(head + body)
        poll(stored, "the first push stored")  # the answer is never read
    retried = httpx.post(
        f"{server.url}/loki/api/v1/push", content=body, headers={"content-type": "application/x-protobuf"}
    )
    assert (retried.status_code, retried.content) == (204, b"")
    assert stored() == 2
    metrics = httpx.get(f"{server.url}/metrics").text
    assert 'loglake_resent_pushes_total{protocol="loki"} 1' in metrics
