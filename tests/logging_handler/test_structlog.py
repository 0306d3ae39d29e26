"""LoglakeProcessor, structlog's way into loglake.logging, with the real structlog against a real
`loglake serve`: the event's mapping, its exception stored as LoglakeHandler stores a LogRecord's (whether
structlog's format_exc_info ran before the processor or not), and the handler's level and filters."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from opentelemetry.sdk.trace import TracerProvider

from loglake.logging import LoglakeProcessor
from tests.logging_handler.support import a_logger, stored


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


class OrderError(Exception):
    pass


def test_an_exception_is_stored_as_the_handler_stores_a_records(server, key, make_handler) -> None:
    """The new-user trial's case: `.exception()` through the processor stored `exc_info: true` and no
    traceback, and after format_exc_info a plain string. Now the same `exception` object as a LogRecord's,
    from structlog's exc_info or from the text format_exc_info made of it, and `.exception()` is an error."""
    handler = make_handler(service="structexc")
    rendered: list[str] = []
    keep = structlog.processors.JSONRenderer()
    after = configure(LoglakeProcessor(handler), keep, lambda _, __, text: rendered.append(text) or text)
    try:
        raise OrderError("order 7 failed")
    except OrderError as e:
        error = e
        a_logger("stdlib", handler).exception("through logging")
        after.exception("processor first")
        before = configure(structlog.processors.format_exc_info, LoglakeProcessor(handler), keep)
        before.exception("format_exc_info first")
    # Outside the except block: format_exc_info formats the exception given; its type is read from the text.
    before.error("given, formatted first", exc_info=error)
    configure(LoglakeProcessor(handler), keep).error("given", exc_info=error)
    before.info("an exception of the caller's own", exception="timeout")
    assert handler.flush()
    logs = stored(server, key, "structexc")
    assert [(log["severity"], log["message"]) for log in logs] == [
        ("error", "through logging"),
        ("error", "processor first"),
        ("error", "format_exc_info first"),
        ("error", "given, formatted first"),
        ("error", "given"),
        ("info", "an exception of the caller's own"),
    ]
    exception = logs[0]["attributes"]["exception"]
    assert (exception["type"], exception["message"]) == ("OrderError", "order 7 failed")
    assert exception["traceback"].startswith("Traceback (most recent call last):")
    assert 'raise OrderError("order 7 failed")' in exception["traceback"]
    for log in logs[1:5]:
        assert log["attributes"] == {"logger": "structlog", "exception": exception}, log["message"]
    assert logs[5]["attributes"] == {"logger": "structlog", "exception": "timeout"}
    assert '"exc_info": true' in rendered[0]  # the event passed on unchanged


def test_the_handlers_level_and_filters_decide_what_is_sent(server, key, make_handler) -> None:
    handler = make_handler(service="structlevel")
    handler.setLevel(logging.WARNING)
    handler.addFilter(lambda record: "health" not in record.getMessage())
    handler.addFilter(lambda record: not getattr(record, "noisy", False))  # an event's key, as an attribute
    log = configure(LoglakeProcessor(handler), structlog.processors.JSONRenderer())
    log.debug("debugging")
    log.info("informing")
    log.warning("careful")
    log.warning("health check failed")
    log.error("retrying", noisy=True)
    log.error("failed", noisy=False)
    configure(structlog.processors.add_log_level, LoglakeProcessor(handler)).info("still informing")
    assert handler.flush()
    logs = stored(server, key, "structlevel")
    assert [(log["severity"], log["message"]) for log in logs] == [("warning", "careful"), ("error", "failed")]
    assert logs[1]["attributes"] == {"logger": "structlog", "noisy": False}


def test_an_event_logged_by_on_sent_is_not_sent_for_ever(server, key, make_handler) -> None:
    """on_sent runs on the handler's thread: an event it logged through the processor was queued, and its batch,
    sent, logged another, one batch every flush interval for ever (a LogRecord it logs is not sent either)."""
    batches: list[list[str]] = []

    def on_sent(ids: list[str]) -> None:
        batches.append(ids)
        log.info("batch stored", count=len(ids))

    handler = make_handler(service="structured-on-sent", flush_interval=0.02, on_sent=on_sent)
    log = configure(LoglakeProcessor(handler))
    log.info("the application's event")
    assert handler.flush()
    time.sleep(0.3)  # fifteen flush intervals: a batch each, were on_sent's events sent
    assert handler.flush()
    assert [event["message"] for event in stored(server, key, "structured-on-sent")] == ["the application's event"]
    assert len(batches) == 1 and handler.sent == 1 and handler.dropped == 0


def test_an_events_trace_context_is_its_trace_and_span_ids(server, key, make_handler) -> None:
    handler = make_handler(service="structured-traced")
    log = configure(structlog.processors.add_log_level, LoglakeProcessor(handler), lambda _, __, event: "")
    with TracerProvider().get_tracer("tests").start_as_current_span("pay") as span:
        log.info("paid", amount=3)
        context = span.get_span_context()
    log.info("given", trace_id="4bf92f3577b34da6a3ce929d0e0e4736")
    assert handler.flush()
    logs = {record["message"]: record for record in stored(server, key, "structured-traced")}
    assert (logs["paid"]["trace_id"], logs["paid"]["span_id"]) == (
        f"{context.trace_id:032x}",
        f"{context.span_id:016x}",
    )
    assert logs["paid"]["attributes"] == {"logger": "structlog", "amount": 3}
    assert logs["given"]["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736" and logs["given"].get("span_id") is None
