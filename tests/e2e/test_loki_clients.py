"""python-logging-loki, a Loki client of its own making, pushes JSON to a real `loglake serve` as it
would to Loki (it authenticates with HTTP basic only, so this server runs without keys)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import httpx
import logging_loki
import pytest

from tests.conftest import ServerProcess

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
