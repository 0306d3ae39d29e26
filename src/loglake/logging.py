"""Python logging into loglake: `LoglakeHandler` for the standard `logging` module, `LoglakeProcessor` for structlog.

    import logging
    from loglake.logging import LoglakeHandler
    logging.getLogger().addHandler(LoglakeHandler("http://127.0.0.1:8080", api_key="llk_...", service="billing"))

A log call only takes a copy of the LogRecord's fields and appends it to a bounded queue (about a
microsecond; nothing is formatted or encoded, no lock is taken but the queue's own); a background thread
(logging_sender) makes each entry a record (logging_lines) and sends them as gzipped NDJSON batches to
POST /logs, at most `batch_size` records at a time and at least every `flush_interval` seconds. A batch
is retried with backoff on 408, 429, 5xx and when the server cannot be reached, for as long as it
takes: meanwhile the queue fills, and once it holds `queue_size` records new ones are dropped and
counted (`dropped`). Every record carries its own id, made once, so a batch sent again after an answer
was lost is stored once. Records the server refuses for good (400) are counted in `rejected`, the rest
of their batch is sent. Nothing here raises into the application or blocks it: `flush()` and `close()`
(run at exit by logging's own shutdown, and by atexit) wait at most `flush_timeout` seconds. Records
`close()` could not deliver are said in one line on stderr: at exit nobody reads the counters.

Mapping: the log message (its `%` arguments applied as at the call: arguments that could change
afterwards, anything but str, numbers, bool, None and bytes, are applied at the call) → `message`; the
level → `severity` (CRITICAL, ERROR, WARNING, INFO, and DEBUG or below); the record's creation time →
`timestamp`; the `service` of the handler → `service`; `attributes`: the logger's name as `logger`, a
logged exception as `exception` (`type`, `message`, `traceback`), and the `extra=` fields (values JSON
cannot hold as their `str()`). A record is made to fit the server's limits as `loglake send` fits a line
(record_fit): nothing is dropped, what is cut is marked. As with the standard library's QueueHandler, an
`extra=` value is read when its batch is made: pass values, not objects the program changes right after
the call.

This module is `loglake.logging`: inside the package every import is absolute, so `import logging` here
and elsewhere in loglake is the standard library's.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from loglake.logging_lines import PLAIN_ARGUMENTS, Event, LineMaker, message_of
from loglake.logging_sender import Counters, Sender, auth, say
from loglake.model import DEFAULT_SERVICE, is_valid_name
from loglake.retry import Backoff

_LogRecord = logging.LogRecord
# The least close() waits for the sender's last attempt, made at once when closing (a server that is down
# refuses it in milliseconds), when flushing took all of flush_timeout.
_LAST_ATTEMPT_S = 0.2


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
        service = service or os.environ.get("LOGLAKE_SERVICE") or DEFAULT_SERVICE
        for name, value in (("service", service), ("log_type", log_type)):
            if not is_valid_name(value):
                raise ValueError(f"{name} {value!r} must be 1-128 of A-Z a-z 0-9 . _ -")
        self.url = (url or os.environ.get("LOGLAKE_URL") or "http://127.0.0.1:8080").rstrip("/")
        self.service, self.log_type = service, log_type
        self.batch_size, self.queue_size, self.flush_timeout = batch_size, queue_size, flush_timeout
        self.counters = Counters()
        self._queue: deque[dict | Event | threading.Event] = deque()
        self._closed = False
        lines = LineMaker(service, log_type, on_error=lambda: self.counters.add("errors"))
        self._sender = Sender(
            self.url,
            self._queue,
            lines.line,
            self.counters,
            batch_size=batch_size,
            flush_interval=flush_interval,
            timeout=timeout,
            auth=auth(api_key, sigv4_region, credentials),
            backoff=backoff,
            on_sent=on_sent,
        )
        self._sender_thread = self._sender.thread_id
        atexit.register(self.close)

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
            if record.thread == self._sender_thread:  # httpx's own log of a batch sent: it would feed itself
                return
            fields = record.__dict__.copy()  # the record as it is now: another handler may change it later
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

    def enqueue(self, level: int, logger: str, message: str, attributes: dict | None = None) -> None:
        """A record from elsewhere than a LogRecord (the structlog processor), stamped now."""
        try:
            self._put(Event(time.time(), level, logger, message, attributes))
        except Exception:
            self.counters.add("errors")

    def _put(self, entry: dict | Event) -> None:
        queue = self._queue
        if len(queue) >= self.queue_size or self._closed:
            self.counters.add("dropped")
            return
        queue.append(entry)
        if len(queue) >= self.batch_size:
            self._sender.wake.set()

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
        if self._closed or not self._sender.alive():  # (logging's shutdown flushes the handler after close)
            return not self._queue
        done = threading.Event()
        self._queue.append(done)
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
        self._sender.stop(max(deadline - time.monotonic(), _LAST_ATTEMPT_S))
        self.counters.add("dropped", self.pending)
        self._queue.clear()
        # A batch still under way (a server that does not answer) is not known to be delivered either.
        undelivered = self.counters.dropped + (self._sender.holding if self._sender.alive() else 0)
        if undelivered:
            error = self._sender.last_error
            why = f"; the last attempt failed: {type(error).__name__}: {error}" if error is not None else ""
            counts = f"sent: {self.sent}, refused by the server: {self.rejected}"
            say(f"closing: {undelivered} record(s) not delivered to {self.url} ({counts}){why}")
        atexit.unregister(self.close)
        super().close()


class LoglakeProcessor:
    """A structlog processor that sends each event through a LoglakeHandler and passes it on unchanged:
    `event` → message, the method's level → severity, `logger` (else the processor's name) → attributes.logger,
    the other keys → attributes.

        structlog.configure(processors=[LoglakeProcessor(handler), structlog.processors.JSONRenderer()])"""

    def __init__(self, handler: LoglakeHandler, logger_name: str = "structlog") -> None:
        self.handler = handler
        self.logger_name = logger_name

    def __call__(self, logger: Any, method_name: str, event_dict: Mapping[str, Any]) -> Mapping[str, Any]:
        try:
            fields = dict(event_dict)
            message = str(fields.pop("event", ""))
            level = logging.getLevelName(str(fields.pop("level", method_name)).upper())
            name = str(fields.pop("logger", self.logger_name))
            self.handler.enqueue(level if type(level) is int else logging.INFO, name, message, fields)
        except Exception:
            self.handler.counters.add("errors")
        return event_dict
