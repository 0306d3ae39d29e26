"""Python logging into loglake: `LoglakeHandler` for the standard `logging` module, `LoglakeProcessor` for structlog.

    import logging
    from loglake.logging import LoglakeHandler
    logging.getLogger().addHandler(LoglakeHandler("http://127.0.0.1:8080", api_key="llk_...", service="billing"))

A log call only appends to a bounded queue (a few microseconds; nothing is encoded, nothing waits); a
background thread sends the queue as gzipped NDJSON batches to POST /logs, at most `batch_size` records
at a time and at least every `flush_interval` seconds. A batch is retried with backoff (the retry helper,
honouring Retry-After) on 408, 429, 5xx and when the server cannot be reached, for as long as it takes:
meanwhile the queue fills, and once it holds `queue_size` records new ones are dropped and counted
(`dropped`). Every record carries its own id, made once, so a batch sent again after an answer was lost
is stored once. Records the server refuses for good (400) are counted in `rejected`, the rest of their
batch is sent. Nothing here raises into the application or blocks it: `flush()` and `close()` (run at
exit by logging's own shutdown, and by atexit) wait at most `flush_timeout` seconds.

Mapping: the log message (its `%` arguments applied at the call) → `message`; the level → `severity`
(CRITICAL, ERROR, WARNING, INFO, and DEBUG or below); the record's creation time → `timestamp`; the
`service` of the handler → `service`; `attributes`: the logger's name as `logger`, a logged exception as
`exception` (`type`, `message`, `traceback`), and the `extra=` fields (values JSON cannot hold as their
`str()`).

This module is `loglake.logging`: inside the package every import is absolute, so `import logging` here
and elsewhere in loglake is the standard library's.
"""

from __future__ import annotations

import atexit
import functools
import gzip
import logging
import os
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, NoReturn

import httpx
import msgspec

from loglake.ids import format_uuid, uuid7_bytes
from loglake.model import DEFAULT_SERVICE, Limits, is_valid_name
from loglake.retry import Backoff, TryAgain, retry_after_seconds

# A LogRecord's own fields: anything else in its __dict__ came with `extra=`.
_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}
_RETRY_STATUSES = frozenset({408, 429})
BATCH_BYTES = 4 * 1024 * 1024  # a batch's JSON stays well below a server's largest body (10 MiB by default)
_LIMITS = Limits()  # a server's defaults: what a record must fit so that it is not refused
_encode = msgspec.json.Encoder(enc_hook=str).encode
_SEVERITIES = ((logging.CRITICAL, "critical"), (logging.ERROR, "error"), (logging.WARNING, "warning"))
_SEVERITIES += ((logging.INFO, "info"),)

# (created, levelno, logger name, message, exc_info or None, extra attributes or None)
Entry = tuple[float, int, str, str, Any, "dict | None"]


class _Line(msgspec.Struct):
    """A record as POST /logs takes it, with the handler's own id (a retry is then stored once)."""

    id: str
    timestamp: int
    service: str
    log_type: str
    severity: str
    message: str
    attributes: msgspec.Raw


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
        self.batch_size, self.flush_interval, self.queue_size = batch_size, flush_interval, queue_size
        self.flush_timeout = flush_timeout
        self.on_sent = on_sent
        self.sent = self.dropped = self.rejected = self.failed_attempts = self.errors = 0
        self._queue: deque[Entry | threading.Event] = deque()
        self._counting = threading.Lock()
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._backoff = backoff or Backoff(first=0.2, cap=10.0, sleep=self._pause)
        self._http = httpx.Client(timeout=timeout, auth=_auth(api_key, sigv4_region, credentials))
        self._thread = threading.Thread(target=self._run, name="loglake-handler", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    # -- on the application's threads: append, never wait ---------------------------------------------

    def handle(self, record: logging.LogRecord) -> bool:  # type: ignore[override]
        """Filter and emit without the handler's lock: the queue is thread-safe on its own."""
        if not self.filter(record):
            return False
        self.emit(record)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self._thread.ident:  # httpx's own log of a batch sent: it would feed itself
            return
        try:
            try:
                message = record.getMessage()  # now: the arguments may change after the call
            except Exception:  # arguments that do not fit the format: the format and the arguments as text
                message = f"{record.msg} {record.args!r}"
                self._count("errors")
            # What the record's own fields are not: the `extra=` ones. Taken now, so that the queue holds
            # no LogRecord (fewer objects for the garbage collector to go over while they wait).
            fields = record.__dict__
            extra_names = fields.keys() - _RECORD_FIELDS
            extra = {name: fields[name] for name in extra_names} if extra_names else None
            exc_info = record.exc_info if record.exc_info and record.exc_info[1] is not None else None
            self._put((record.created, record.levelno, record.name, message, exc_info, extra))
        except Exception:  # never into the application
            self._count("errors")

    def enqueue(self, level: int, logger: str, message: str, attributes: dict | None = None) -> None:
        """A record from elsewhere than a LogRecord (the structlog processor), stamped now."""
        try:
            self._put((time.time(), level, logger, message, None, attributes))
        except Exception:
            self._count("errors")

    def _put(self, entry: Entry) -> None:
        queue = self._queue
        if len(queue) >= self.queue_size or self._closing.is_set():
            self._count("dropped")
            return
        queue.append(entry)
        if len(queue) >= self.batch_size:
            self._wake.set()

    def _count(self, counter: str, amount: int = 1) -> None:
        """Add to a counter that application threads and the handler's thread both change (the rare paths:
        the common one, a record queued, counts nothing)."""
        with self._counting:
            setattr(self, counter, getattr(self, counter) + amount)

    @property
    def pending(self) -> int:
        """Records queued, not yet taken into a batch."""
        return sum(1 for entry in list(self._queue) if type(entry) is tuple)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until what was logged before this call is sent (or refused), at most `timeout` seconds
        (default flush_timeout); whether it was."""
        if not self._thread.is_alive():
            return not self._queue
        done = threading.Event()
        self._queue.append(done)
        self._wake.set()
        return done.wait(self.flush_timeout if timeout is None else timeout)

    def close(self) -> None:
        """Send what is queued (waiting at most flush_timeout seconds), then stop; what is left is dropped."""
        if self._closing.is_set():
            return
        self.flush()
        self._closing.set()
        self._wake.set()
        self._thread.join(self.flush_timeout)
        self._count("dropped", self.pending)
        self._queue.clear()
        self._http.close()
        atexit.unregister(self.close)
        super().close()

    # -- on the handler's thread ----------------------------------------------------------------------

    def _run(self) -> None:
        while not self._closing.is_set():
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            try:
                self._drain()
            except Exception:  # a bug must not end the thread: what is queued would never leave
                self._count("errors")

    def _drain(self) -> None:
        queue = self._queue
        while queue:
            batch: list[tuple[str, bytes]] = []
            size = 0
            marker = None
            while queue and len(batch) < self.batch_size and size < BATCH_BYTES:
                entry = queue.popleft()
                if type(entry) is not tuple:
                    marker = entry  # a flush waits for what came before it only
                    break
                batch.append(self._record(entry))
                size += len(batch[-1][1])
            if batch:
                self._send(batch)
            if marker is not None:
                marker.set()  # type: ignore[attr-defined]

    def _record(self, entry: Entry) -> tuple[str, bytes]:
        """A queued entry as its id and its JSON line, made once: a retry sends the same bytes."""
        created, level, logger, message, exc_info, extra = entry
        timestamp = int(created * 1000)
        record_id = format_uuid(uuid7_bytes(timestamp))
        attributes: dict[str, Any] = {"logger": logger}
        if extra:
            attributes |= extra
        if exc_info is not None:
            attributes["exception"] = _exception(exc_info)
        line = _Line(
            record_id,
            timestamp,
            self.service,
            self.log_type,
            _severity(level),
            _fit_message(message),
            msgspec.Raw(_fit_attributes(attributes, logger)),
        )
        return record_id, _encode(line)

    def _send(self, batch: list[tuple[str, bytes]]) -> None:
        """POST the batch until it is stored; records refused for good are counted and left out."""
        while batch:
            body = gzip.compress(b"\n".join(line for _, line in batch), compresslevel=1)
            try:
                self._backoff.run(functools.partial(self._post, body))
            except _Refused as refused:
                bad = refused.indexes or set(range(len(batch)))
                self.rejected += len(bad)
                batch = [item for index, item in enumerate(batch) if index not in bad]
                continue
            except httpx.HTTPError:  # closing, and the server still does not take it
                self._count("dropped", len(batch))
                return
            ids = [record_id for record_id, _ in batch]
            self.sent += len(ids)
            if self.on_sent is not None:
                try:
                    self.on_sent(ids)
                except Exception:
                    self._count("errors")
            return

    def _post(self, body: bytes) -> None:
        headers = {"content-type": "application/x-ndjson", "content-encoding": "gzip"}
        try:
            answer = self._http.post(self.url + "/logs", content=body, headers=headers)
        except httpx.HTTPError as e:
            self._failed(e, None)
        status = answer.status_code
        if status < 300:
            return
        # 401/403 too: a key being rotated, say (meanwhile the queue fills and drops, counted)
        if status in _RETRY_STATUSES or status >= 500 or status in (401, 403):
            error = httpx.HTTPStatusError(f"HTTP {status}", request=answer.request, response=answer)
            self._failed(error, retry_after_seconds(answer.headers.get("retry-after"), time.time()))
        raise _Refused(_refused_indexes(answer))

    def _failed(self, error: httpx.HTTPError, retry_after: float | None) -> NoReturn:
        """An attempt that may work later: tried again (TryAgain), unless the handler is closing."""
        self.failed_attempts += 1
        if self._closing.is_set():
            raise error
        raise TryAgain(error, retry_after)

    def _pause(self, seconds: float) -> None:
        """The backoff's sleep: cut short when closing (the last attempt then comes at once)."""
        self._closing.wait(seconds)


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
            self.handler._count("errors")
        return event_dict


class _Refused(Exception):
    def __init__(self, indexes: set[int]) -> None:
        self.indexes = indexes


def _refused_indexes(answer: httpx.Response) -> set[int]:
    """The records a 400 named (all of the batch when it names none)."""
    try:
        details = answer.json()["error"]["details"]
        return {d["index"] for d in details if d.get("index", -1) >= 0}
    except (ValueError, KeyError, TypeError):
        return set()


def _auth(api_key: str | None, sigv4_region: str | None, credentials: Any) -> httpx.Auth | None:
    if sigv4_region:
        return _SigV4(sigv4_region, credentials)
    api_key = api_key or os.environ.get("LOGLAKE_API_KEY")
    return _Bearer(api_key) if api_key else None


class _Bearer(httpx.Auth):
    def __init__(self, key: str) -> None:
        self.header = f"Bearer {key}"

    def auth_flow(self, request: httpx.Request):  # type: ignore[no-untyped-def]
        request.headers["authorization"] = self.header
        yield request


class _SigV4(httpx.Auth):
    """Each request signed with AWS SigV4 (service execute-api), as loglake accepts for SigV4 keys."""

    requires_request_body = True

    def __init__(self, region: str, credentials: Any) -> None:
        import botocore.session  # only when asked for: botocore takes a while to import

        self.region = region
        self.credentials = credentials or botocore.session.get_session().get_credentials()
        if self.credentials is None:
            raise ValueError("sigv4_region is set but botocore finds no AWS credentials (environment, profile, role)")

    def auth_flow(self, request: httpx.Request):  # type: ignore[no-untyped-def]
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        signed = AWSRequest(method=request.method, url=str(request.url), data=request.content, headers={})
        for name in ("content-type", "content-encoding"):
            if name in request.headers:
                signed.headers[name] = request.headers[name]
        SigV4Auth(self.credentials.get_frozen_credentials(), "execute-api", self.region).add_auth(signed)
        for name, value in signed.headers.items():
            request.headers[name] = value
        yield request


def _severity(level: int) -> str:
    for floor, name in _SEVERITIES:
        if level >= floor:
            return name
    return "debug"


def _exception(exc_info: Any) -> dict[str, str]:
    kind, value, trace = exc_info
    return {
        "type": kind.__name__ if kind is not None else "",
        "message": str(value),
        "traceback": "".join(traceback.format_exception(kind, value, trace)),
    }


def _fit_message(message: str) -> str:
    """A message the server takes: not empty, within its size (cut at a character boundary)."""
    if not message:
        return "(empty message)"
    limit = _LIMITS.max_message_bytes
    if len(message) * 4 > limit and len(message.encode()) > limit:
        return message.encode()[:limit].decode("utf-8", "ignore")
    return message


def _fit_attributes(attributes: dict[str, Any], logger: str) -> bytes:
    """The attributes as JSON within the server's limits; when they do not fit, the logger's name and why."""
    try:
        data = _encode(attributes)
    except Exception as e:  # a value whose str() raises, a key that is not text
        return _encode({"logger": logger, "attributes_dropped": f"not JSON: {e}"})
    problem = None
    if len(data) > _LIMITS.max_attribute_bytes:
        problem = f"over {_LIMITS.max_attribute_bytes} bytes as JSON"
    elif len(attributes) > _LIMITS.max_attribute_keys:
        problem = f"over {_LIMITS.max_attribute_keys} keys"
    elif (
        data.count(b"{") + data.count(b"[") > _LIMITS.max_attribute_depth
        and _depth(msgspec.json.decode(data)) > _LIMITS.max_attribute_depth
    ):
        problem = f"nested deeper than {_LIMITS.max_attribute_depth} levels"
    if problem is None:
        return data
    return _encode({"logger": logger, "attributes_dropped": problem})


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0
