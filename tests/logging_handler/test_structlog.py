"""LoglakeProcessor, structlog's way into loglake.logging, with the real structlog against a real
`loglake serve`: the event's mapping."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from loglake.logging import LoglakeProcessor
from tests.logging_handler.support import stored


@pytest.fixture(autouse=True)
def structlog_defaults() -> Iterator[None]:
    yield
    structlog.reset_defaults()


def configure(*processors: object) -> Any:
    structlog.configure(processors=list(processors), logger_factory=structlog.ReturnLoggerFactory())
    return structlog.get_logger()


def test_the_structlog_processor(server, key, make_handler) -> None:
    handler = make_handler(service="structured")
    captured: list[dict] = []
    log = configure(
        structlog.processors.add_log_level,
        LoglakeProcessor(handler),
        lambda _, __, event: captured.append(event) or "",
    )
    log.warning("user signed in", user="ada", attempts=2)
    assert handler.flush()
    (log,) = stored(server, key, "structured")
    assert (log["severity"], log["message"]) == ("warning", "user signed in")
    assert log["attributes"] == {"logger": "structlog", "user": "ada", "attempts": 2}
    assert captured == [{"event": "user signed in", "user": "ada", "attempts": 2, "level": "warning"}]  # passed on
