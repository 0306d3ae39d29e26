"""Python logging into loglake: `LoglakeHandler` for the standard `logging` module, `LoglakeProcessor` for structlog.

    import logging
    from loglake.logging import LoglakeHandler
    logging.getLogger().addHandler(LoglakeHandler("http://127.0.0.1:8080", api_key="llk_...", service="billing"))

A log call only takes a copy of the LogRecord's fields and appends it to a bounded queue (about a
microsecond; nothing is formatted or encoded, and a lock is taken only briefly, to wake the sending thread once
a batch is queued or to count a record dropped); a background thread
(logging_sender) makes each entry a record (logging_lines) and sends them as gzipped NDJSON batches to
POST /logs, at most `batch_size` records at a time and at least every `flush_interval` seconds. A batch
is retried with backoff on 408, 429, 5xx and when the server cannot be reached, for as long as it
takes: meanwhile the queue fills, and once it holds `queue_size` records new ones are dropped and
counted (`dropped`). Every record carries its own id, made once, so a batch sent again after an answer
was lost is stored once. Records the server refuses for good (400) are counted in `rejected`, the rest
of their batch is sent. Nothing here raises into the application or blocks it: `flush()` and `close()`
(run at exit by logging's own shutdown, and by atexit) wait at most `flush_timeout` seconds. Records
`close()` could not deliver, or that the server refused, are said in one line on stderr: at exit nobody
reads the counters. At exit the handlers close in an atexit function registered as this module is imported,
before any handler is made: atexit runs the functions registered later first, so an application's own (a
"shutting down" record) are sent; one registered before the import runs after the close, and a record it logs
is said on stderr too (once), not only counted after the closing line. A settings value the handler cannot
work with (a batch_size of 0, an ftp:// url) is a ValueError at construction.

A process forked after the handler was made (gunicorn's or celery's pre-fork workers, multiprocessing's
fork start method) gets a queue, counters and background thread of its own at once
(os.register_at_fork): what the parent had queued stays the parent's to send, so nothing is sent twice.

Mapping: the log message (its `%` arguments applied as at the call: arguments that could change
afterwards, anything but str, numbers, bool, None and bytes, are applied at the call) → `message`; the
level → `severity` (CRITICAL, ERROR, WARNING, INFO, and DEBUG or below); the record's creation time →
`timestamp`; the `service` of the handler → `service`; `attributes`: the logger's name as `logger`, a
logged exception as `exception` (`type`, `message`, `traceback`), a `stack_info=True` call's stack as `stack`
(structlog's StackInfoRenderer's key), and the `extra=` fields (values JSON
cannot hold as their `str()`); `trace_id` and `span_id`: the OpenTelemetry span's current at the call, or
`extra=` ids (logging_lines.take_trace_ids). A record is made to fit the server's limits as `loglake send`
fits a line (record_fit): nothing is dropped, what is cut is marked. As with the standard library's QueueHandler, an
`extra=` value is read when its batch is made: pass values, not objects the program changes right after
the call.

This module is `loglake.logging`: inside the package every import is absolute, so `import logging` here
and elsewhere in loglake is the standard library's.
"""

from __future__ import annotations

import atexit
import functools
import logging
import math
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

try:  # (optional: with OpenTelemetry's API installed, the span current at a log call is its record's trace context)
    from opentelemetry.trace import get_current_span
except ImportError:  # pragma: no cover - the suite installs it
    get_current_span = None

from loglake.logging_lines import (
    PLAIN_ARGUMENTS,
    Event,
    LineMaker,
    exception_from_text,
    exception_of,
    message_of,
)
from loglake.logging_sender import Counters, Sender, auth, is_own_doing, say
from loglake.model import DEFAULT_SERVICE, Limits, is_valid_name
from loglake.retry import Backoff
from loglake.urls import is_http_url

_LogRecord = logging.LogRecord
# The least close() waits for the sender's last attempt, made at once when closing (a server that is down
# refuses it in milliseconds), when flushing took all of flush_timeout.
_LAST_ATTEMPT_S = 0.2
_MOST_RECORDS = Limits().max_records  # a server refuses a larger request whole (by default)


def _seconds(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# Each numeric setting: whether a value is one the handler can work with, and what that is.
_NUMBERS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "batch_size": (
        lambda v: _count(v) and 1 <= v <= _MOST_RECORDS,
        f"a whole number from 1 to {_MOST_RECORDS} (the most records a server takes in a request)",
    ),
    "queue_size": (lambda v: _count(v) and v >= 1, "a whole number from 1"),
    "flush_interval": (lambda v: _seconds(v) and v > 0, "a number of seconds above 0"),
    "flush_timeout": (lambda v: _seconds(v) and v >= 0, "a number of seconds from 0"),
    "timeout": (lambda v: _seconds(v) and v > 0, "a number of seconds above 0"),
}


def _check_numbers(**settings: Any) -> None:
    """A ValueError naming the first numeric setting the handler cannot work with, and what it takes."""
    for name, value in settings.items():
        fits, accepted = _NUMBERS[name]
        if not fits(value):
            raise ValueError(f"{name} {value!r} must be {accepted}")


class LoglakeHandler(logging.Handler):
    """Sends log records to a loglake server from a background thread (see the module's docstring).

    `url` and `api_key` default to LOGLAKE_URL and LOGLAKE_API_KEY, `service` to LOGLAKE_SERVICE (else
    `default`). `sigv4_region` signs requests with AWS SigV4 instead (botocore's credentials: environment,
    profile or role; or `credentials`, botocore Credentials). `on_sent(ids)` hears the ids of each batch
    the server stored. Counters: `sent`, `dropped`, `rejected`, `failed_attempts`, `errors`."""

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        service: str | None = None,
        *,
        log_type: str = "application",
        level: int = logging.NOTSET,
        batch_size: int = 1000,
        flush_interval: float = 1.0,
        queue_size: int = 100_000,
        flush_timeout: float = 5.0,
        timeout: float = 10.0,
        sigv4_region: str | None = None,
        credentials: Any = None,
        on_sent: Callable[[list[str]], None] | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        super().__init__(level)
        # Closed until built: logging's shutdown flushes and closes every handler whose __init__ got past
        # the line above, even one that then raised (a refused setting, no AWS credentials).
        self._closed = True
        named = "service" if service else "service (LOGLAKE_SERVICE)"  # (said as the url's variable is)
        service = service or os.environ.get("LOGLAKE_SERVICE") or DEFAULT_SERVICE
        for name, value in ((named, service), ("log_type", log_type)):
            if not is_valid_name(value):
                raise ValueError(f"{name} {value!r} must be 1-128 of A-Z a-z 0-9 . _ -")
        _check_numbers(
            batch_size=batch_size,
            queue_size=queue_size,
            flush_interval=flush_interval,
            flush_timeout=flush_timeout,
            timeout=timeout,
        )
        given = url or os.environ.get("LOGLAKE_URL") or "http://127.0.0.1:8080"
        if not isinstance(given, str) or not is_http_url(given):
            setting = "url" if url else "url (LOGLAKE_URL)"
            raise ValueError(f"{setting} {given!r} must be http:// or https:// and a host, like http://127.0.0.1:8080")
        self.url = given.rstrip("/")
        self.service, self.log_type = service, log_type
        self.batch_size, self.queue_size, self.flush_timeout = batch_size, queue_size, flush_timeout
        lines = LineMaker(service, log_type, on_error=lambda: self.counters.add("errors"))
        self._new_sender = functools.partial(
            Sender,
            url=self.url,
            line=lines.line,
            batch_size=batch_size,
            flush_interval=flush_interval,
            timeout=timeout,
            auth=auth(api_key, sigv4_region, credentials),
            backoff=backoff,
            on_sent=on_sent,
        )
        self._start()
        self._dropped_after_close_said = False
        self._closed = False
        _OPEN_HANDLERS[self] = None

    def _start(self) -> None:
        """A queue, counters and background thread of this process's own: made again in a forked child,
        where the parent's thread does not run, its queue holds the parent's records (the parent sends
        them) and its HTTP connections are the parent's sockets."""
        self.counters = Counters()
        self._queue: deque[dict | Event | threading.Event] = deque()
        self._sender = self._new_sender(queue=self._queue, counters=self.counters)

    # -- on the application's threads: copy, append, never wait ---------------------------------------

    def handle(self, record: logging.LogRecord) -> bool:  # type: ignore[override]
        """Filter and emit without the handler's lock: the queue is thread-safe on its own."""
        if self.filters:
            verdict = self.filter(record)
            if not verdict:
                return False
            if isinstance(verdict, _LogRecord):  # Python 3.12: a filter may give a record in its place
                record = verdict
        self.emit(record)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        try:
            # A record logged while a handler sends (a library's, or on_sent's) would feed itself: a batch for each.
            # (Asked of this thread: record.thread is None when logging.logThreads is off.)
            if is_own_doing():
                return
            fields = record.__dict__.copy()  # the record as it is now: another handler may change it later
            with_current_trace(fields)
            args = fields["args"]
            later = type(fields["msg"]) is str and type(record) is _LogRecord
            if args and later:
                later = type(args) is tuple and PLAIN_ARGUMENTS.issuperset(map(type, args))
            if not later:  # arguments that may change, a message or a record class that formats itself: now
                fields["msg"] = self._message_now(record)
                fields["args"] = None
            self._put(fields)
        except Exception:  # never into the application
            self.counters.add("errors")

    def _message_now(self, record: logging.LogRecord) -> str:
        if type(record) is _LogRecord:
            message, fitted = message_of(record.msg, record.args)
        else:
            try:
                message, fitted = record.getMessage(), True
            except Exception:
                message, fitted = message_of(record.msg, record.args)
        if not fitted:
            self.counters.add("errors")
        return message

    def enqueue(
        self,
        level: int,
        logger: str,
        message: str,
        attributes: dict | None = None,
        exception: dict[str, str] | None = None,
    ) -> None:
        """A record from elsewhere than a LogRecord (the structlog processor), stamped now."""
        if is_own_doing():  # (as in emit: an event logged by on_sent would feed itself, a batch for each)
            return
        try:
            self._put(Event(time.time(), level, logger, message, attributes, exception))
        except Exception:
            self.counters.add("errors")

    def _put(self, entry: dict | Event) -> None:
        queue = self._queue
        if len(queue) - self._sender.marks >= self.queue_size or self._closed:
            self.counters.add("dropped")
            if self._closed:
                self._say_dropped_after_close()
            return
        queue.append(entry)
        if len(queue) >= self.batch_size:
            wake = self._sender.wake
            # Set once, not on every call while the thread sends (Event.set takes a lock): it clears the
            # event before it drains the queue, so an entry appended meanwhile is drained or sets it again.
            if not wake.is_set():
                wake.set()

    def _say_dropped_after_close(self) -> None:
        """A record logged once the handler closed (at exit, by an atexit function that runs after the close) is
        lost, and was not in the line close() said: said once, as that line is."""
        if self._dropped_after_close_said:
            return
        self._dropped_after_close_said = True
        say(
            f"a record logged after the handler closed was not sent to {self.url}, nor will those after it be "
            "(handler.dropped counts them). At exit it closes after the atexit functions registered once "
            "loglake.logging was imported: register one that logs after that import"
        )

    # -- the counters, flush and close ------------------------------------------------------------------

    sent = property(lambda self: self.counters.sent, doc="Records the server stored.")
    dropped = property(lambda self: self.counters.dropped, doc="Records dropped: queue full, or never sent.")
    rejected = property(lambda self: self.counters.rejected, doc="Records the server refused for good (400).")
    failed_attempts = property(lambda self: self.counters.failed_attempts, doc="Attempts to send that failed.")
    errors = property(lambda self: self.counters.errors, doc="Log calls that did not fit their format; bugs.")

    @property
    def pending(self) -> int:
        """Records queued, not yet taken into a batch."""
        return sum(1 for entry in list(self._queue) if type(entry) is not threading.Event)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until what was logged before this call is sent (or refused), at most `timeout` seconds
        (default flush_timeout); whether it was."""
        if self._closed:  # nothing left: logging's shutdown flushes a handler after closing it, or half-built
            return True
        if not self._sender.alive():
            return not self._queue
        done = self._sender.mark()
        self._sender.wake.set()
        return done.wait(self.flush_timeout if timeout is None else timeout)

    def close(self) -> None:
        """Send what is queued, waiting at most flush_timeout seconds in all, then stop. What is left is dropped
        and, with what was dropped before, said on stderr."""
        if self._closed:
            return
        deadline = time.monotonic() + self.flush_timeout
        self.flush()
        self._closed = True
        # (what is left, a batch still under way too, is counted as dropped: not known to be delivered)
        self._sender.stop(max(deadline - time.monotonic(), _LAST_ATTEMPT_S))
        undelivered = self.counters.dropped
        if undelivered:
            error = self._sender.last_error
            why = f"; the last attempt failed: {type(error).__name__}: {error}" if error is not None else ""
            counts = f"sent: {self.sent}, refused by the server: {self.rejected}"
            say(f"closing: {undelivered} record(s) not delivered to {self.url} ({counts}){why}")
        elif self.rejected:  # all else delivered: refusals were said nowhere, and nobody reads the counters at exit
            why = f"; the last refusal: {self._sender.last_refusal}" if self._sender.last_refusal else ""
            say(f"closing: {self.rejected} record(s) refused by {self.url} and not stored (sent: {self.sent}){why}")
        _OPEN_HANDLERS.pop(self, None)
        super().close()


# The handlers not yet closed, in the order they were made: what a forked child starts again, and what is closed
# at exit (kept here till then: a handler the application let go still sends what it had queued).
_OPEN_HANDLERS: dict[LoglakeHandler, None] = {}


def _start_again_in_child() -> None:
    for handler in list(_OPEN_HANDLERS):
        handler._start()


def _close_at_exit() -> None:
    """Registered once, as the module is imported: later than every atexit function registered after the import
    (an application's that logs as it ends), where a handler's own, registered as it was made, ran before those
    registered between, and their records were dropped after its closing line."""
    for handler in reversed(list(_OPEN_HANDLERS)):
        handler.close()


os.register_at_fork(after_in_child=_start_again_in_child)
atexit.register(_close_at_exit)


_METHOD_LEVELS = {"exception": "error"}  # structlog's .exception() logs an error, as logging's does


class LoglakeProcessor:
    """A structlog processor that sends each event through a LoglakeHandler and passes it on unchanged:
    `event` → message, the level (`level`, else the method's; `exception` is error) → severity, `logger`
    (else the processor's name) → attributes.logger, an exception → attributes.exception as the handler
    stores it (from `exc_info`, or from the text structlog's format_exc_info made of it when that runs
    first), the other keys → attributes. As for a LogRecord, the handler's level and filters decide what is
    sent: filters are given a LogRecord made of the event (its keys as attributes); what they change in it
    is not sent.

        structlog.configure(processors=[LoglakeProcessor(handler), structlog.processors.JSONRenderer()])"""

    def __init__(self, handler: LoglakeHandler, logger_name: str = "structlog") -> None:
        self.handler = handler
        self.logger_name = logger_name

    def __call__(self, logger: Any, method_name: str, event_dict: Mapping[str, Any]) -> Mapping[str, Any]:
        handler = self.handler
        try:
            fields = dict(event_dict)
            level_name = str(fields.pop("level", _METHOD_LEVELS.get(method_name, method_name)))
            level = logging.getLevelName(level_name.upper())
            level = level if type(level) is int else logging.INFO
            if level < handler.level:
                return event_dict
            message = str(fields.pop("event", ""))
            name = str(fields.pop("logger", self.logger_name))
            exc_info = _exc_info(fields.pop("exc_info")) if "exc_info" in fields else None
            if handler.filters:
                record = logging.LogRecord(name, level, "", 0, message, None, exc_info)
                vars(record).update({key: value for key, value in fields.items() if key not in vars(record)})
                if not handler.filter(record):
                    return event_dict
            exception = _exception(exc_info, fields) if exc_info is not None or "exception" in fields else None
            with_current_trace(fields)
            handler.enqueue(level, name, message, fields, exception)
        except Exception:
            handler.counters.add("errors")
        return event_dict


def with_current_trace(fields: dict[str, Any]) -> None:
    """Give a log call's fields the OpenTelemetry span current at the call (as hex, as logging_lines.take_trace_ids
    takes it), unless the call gives a trace id of its own."""
    if get_current_span is None or "trace_id" in fields or "otelTraceID" in fields:
        return
    context = get_current_span().get_span_context()
    if context.is_valid:
        fields["trace_id"] = f"{context.trace_id:032x}"
        fields["span_id"] = f"{context.span_id:016x}"


def _exception(exc_info: tuple | None, fields: dict[str, Any]) -> dict[str, str] | None:
    """An event's exception as the `exception` attribute: from its exc_info, else from the text structlog's
    format_exc_info made of it (then taken out of `fields`, the event's other keys)."""
    if exc_info is not None:
        return exception_of(exc_info)
    text = fields.get("exception")
    exception = exception_from_text(text) if type(text) is str else None
    if exception is not None:
        del fields["exception"]
    return exception


def _exc_info(value: Any) -> tuple | None:
    """structlog's `exc_info` (an exception, a sys.exc_info() tuple, or true for the exception being
    handled) as a sys.exc_info() tuple, as structlog reads it; None when it gives no exception."""
    if isinstance(value, BaseException):
        return type(value), value, value.__traceback__
    if isinstance(value, tuple) and len(value) == 3 and isinstance(value[1], BaseException):
        return value
    if value:
        current = sys.exc_info()
        return current if current[1] is not None else None
    return None
