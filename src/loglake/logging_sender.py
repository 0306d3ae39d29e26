"""loglake.logging's background thread: the queue's entries into batches, POSTed to /logs until stored.

A batch holds at most `batch_size` records and BATCH_BYTES of JSON; it leaves when the queue holds a
batch's worth or `flush_interval` seconds after the last one. It is retried with backoff (the retry
helper, honouring Retry-After) on 408, 429, 5xx, 401/403 and when the server cannot be reached, for as
long as it takes (the application's queue meanwhile fills, and drops); while closing, the last attempt
comes at once. Records the server refuses for good (a 400 names them) are counted and the rest sent. A batch
over the server's limits of a request (413: a server started with a smaller --max-records or --max-body-bytes)
is halved until its parts fit, as `loglake send` does, rather than refused whole.
A refused key (401/403) is also said once on stderr: unlike a server that is down, it is the application's
setting to fix, and counters nobody reads would leave the logs silently queued and dropped. So is a batch refused
whole without naming a record (a url with `/logs` already in it answers 405 on `/logs/logs`; a proxy's 404): every
record would be refused so.
What httpx and httpcore log while the handler sends (httpx's INFO line for each request, httpcore's DEBUG ones) is
the handler's own doing, not the application's: a filter on their loggers drops it on the handler's threads only
(own_doing), so that it is neither printed by the application's handlers nor sent as records (another handler's
batch, sent, logged a record for this one, and so on for ever).
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import logging
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

import httpx

from loglake.bearer import bearer_header
from loglake.retry import Backoff, TryAgain, retry_after_seconds
from loglake.urls import endpoint_in

BATCH_BYTES = 4 * 1024 * 1024  # a batch's JSON stays well below a server's largest body (10 MiB by default)
_RETRY_STATUSES = frozenset({408, 429})
# The loggers httpx and httpcore log a request on (httpcore makes its own as it first uses each kind of connection).
_HTTP_LOGGERS = ("httpx", *(f"httpcore.{name}" for name in ("connection", "http11", "http2", "proxy", "socks")))


class _Own(threading.local):
    doing = False  # this thread is sending for a handler, or closing its client (a default: no AttributeError raised)


_own = _Own()  # (asked on each log call: a class attribute is read in tens of ns, getattr's default in hundreds)


@contextlib.contextmanager
def own_doing() -> Iterator[None]:
    """What is logged meanwhile on this thread is the handler's doing (see the module's docstring)."""
    was, _own.doing = _own.doing, True
    try:
        yield
    finally:
        _own.doing = was


def is_own_doing() -> bool:
    return _own.doing


class _NotOwnDoing(logging.Filter):
    """Keeps what httpx and httpcore log on the application's threads (its own requests): a logger's filter, unlike
    logging.disable or a level, is asked on the thread that logs."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not is_own_doing()


_NOT_OWN_DOING = _NotOwnDoing()
for _name in _HTTP_LOGGERS:  # (a logger's filter is not asked for its children's records: each is named)
    logging.getLogger(_name).addFilter(_NOT_OWN_DOING)


class Counters:
    """What became of the records (`sent`, `dropped`, `rejected`), `failed_attempts` to send, and `errors`
    (bad log calls, and the handler's own bugs). Changed under a lock: application threads (drops) and
    the handler's thread both add to them, on the rare paths only."""

    def __init__(self) -> None:
        self.sent = self.dropped = self.rejected = self.failed_attempts = self.errors = 0
        # Reentrant: a signal handler that logs runs on the thread it interrupted, which may be inside add() (a
        # record dropped from a full queue) and would wait for itself for ever. (Its count may then be lost.)
        self._lock = threading.RLock()

    def add(self, counter: str, amount: int = 1) -> None:
        with self._lock:
            setattr(self, counter, getattr(self, counter) + amount)


class Sender:
    """Takes entries from `queue` (a deque the application appends to) and sends them as batches, on a
    thread of its own. A threading.Event in the queue is a flush: set once what came before it is sent.
    `line(entry)` gives an entry's id and JSON line; `on_sent(ids)` hears each batch stored."""

    def __init__(
        self,
        url: str,
        queue: deque,
        line: Callable[[Any], tuple[str, bytes]],
        counters: Counters,
        *,
        batch_size: int,
        flush_interval: float,
        timeout: float,
        auth: httpx.Auth | None,
        backoff: Backoff | None,
        on_sent: Callable[[list[str]], None] | None,
    ) -> None:
        self.url = url
        self.queue = queue
        self.line = line
        self.counters = counters
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.on_sent = on_sent
        self.wake = threading.Event()
        self.closing = threading.Event()
        self.marks = 0  # flushes' markers in the queue: not records, they take none of the queue_size places
        self._marks_lock = threading.Lock()
        self._backoff = backoff or Backoff(first=0.2, cap=10.0, sleep=self._pause)
        self._http = httpx.Client(timeout=timeout, auth=auth)
        self._key_refused = False  # said on stderr; said again if it happens after a batch went in
        self._batch_refused = False  # likewise
        self.holding = 0  # records taken from the queue and not yet counted sent, refused or dropped
        # Taking a batch from the queue, and counting its records, against stop(): once stopped, what is left is
        # counted there, once, and the thread (still sending a batch: a server slow to answer) counts nothing more.
        self._taking = threading.Lock()
        self._stopped = False
        self.last_error: httpx.HTTPError | None = None  # of the last attempt that failed
        self.last_refusal: str | None = None  # why the server last refused a record for good, as it said
        self._thread = threading.Thread(target=self._run, name="loglake-handler", daemon=True)
        self._thread.start()

    def alive(self) -> bool:
        return self._thread.is_alive()

    def mark(self) -> threading.Event:
        """A flush's marker at the end of the queue, set once what came before it is sent. The last entry when it is
        one already: a flush called again and again while the server is down (and the queue not drained) adds none."""
        with self._marks_lock:
            with contextlib.suppress(IndexError):  # (empty)
                last = self.queue[-1]
                if type(last) is threading.Event:
                    return last  # (taken meanwhile: what came before it is sent once it is set, as for a new one)
            marker = threading.Event()
            self.queue.append(marker)
            self.marks += 1
            return marker

    def stop(self, timeout: float) -> None:
        """Send what is queued, each batch's last attempt at once, for at most `timeout` seconds; then what is left
        (queued, and a batch still under way) is counted as dropped, and the counters are final: the thread, still
        sending (a server slow to answer), takes no other batch and counts nothing more."""
        self.closing.set()
        self.wake.set()
        self._thread.join(timeout)
        with self._taking:
            self._stopped = True
            left = sum(1 for entry in self.queue if type(entry) is not threading.Event) + self.holding
            self.queue.clear()
            self.counters.add("dropped", left)

    def _run(self) -> None:
        with own_doing():  # (httpcore logs the connections closed)
            try:
                self._loop()
            finally:  # here, not in stop(): closed under a batch still under way, it failed as a bug
                self._http.close()

    def _count(self, counter: str, amount: int = 1) -> None:
        """Count what became of the batch under way (and of its attempts), unless stop() counted it already."""
        with self._taking:
            if self._stopped:
                return
            self.counters.add(counter, amount)
            if counter in ("sent", "rejected", "dropped"):
                self.holding -= amount

    def _loop(self) -> None:
        while not self.closing.is_set():
            self.wake.wait(self.flush_interval)
            self.wake.clear()
            try:
                self._drain()
            except Exception:  # a bug must not end the thread: what is queued would never leave
                self.counters.add("errors")

    def _drain(self) -> None:
        queue = self.queue
        while queue:
            batch: list[tuple[str, bytes]] = []
            size = 0
            marker = None
            with self._taking:
                if self._stopped:
                    return
                while queue and len(batch) < self.batch_size and size < BATCH_BYTES:
                    entry = queue.popleft()
                    if type(entry) is threading.Event:
                        marker = entry  # a flush waits for what came before it only
                        with self._marks_lock:
                            self.marks -= 1
                        break
                    try:
                        batch.append(self.line(entry))
                    except Exception:  # a bug: it loses that record (said at close), not the others of its batch
                        self.counters.add("errors")
                        self.counters.add("dropped")
                        continue
                    size += len(batch[-1][1])
                self.holding = len(batch)
            try:
                if batch:
                    self._send_counted(batch)
            finally:  # (a flush waiting for this batch goes on, whatever became of it)
                if marker is not None:
                    marker.set()

    def _send_counted(self, batch: list[tuple[str, bytes]]) -> None:
        """_send, and a batch an unexpected error (a bug, ours or a library's) cut short counted as dropped (said at
        close): it was lost without a count, and a flush waiting for it waited its whole timeout."""
        try:
            self._send(batch)
        except Exception:
            self._count("errors")
            self._count("dropped", self.holding)  # (what of it was not counted yet)

    def _send(self, batch: list[tuple[str, bytes]]) -> None:
        """POST the batch until it is stored; records refused for good are counted and left out."""
        while batch:
            body = gzip.compress(b"\n".join(line for _, line in batch), compresslevel=1)
            try:
                self._backoff.run(functools.partial(self._post, body, len(batch)))
            except _Refused as refused:
                if not refused.indexes and refused.answer.status_code == 413 and len(batch) > 1:
                    # Over a server's smaller limits (records or bytes a request): halved until each part
                    # fits, as `loglake send` does; the records themselves are not at fault.
                    middle = len(batch) // 2
                    self._send(batch[:middle])
                    self._send(batch[middle:])
                    return
                if not refused.indexes:
                    self._say_batch_refused(refused.answer)
                self.last_refusal = _refusal(refused.answer)
                bad = refused.indexes or set(range(len(batch)))
                self._count("rejected", len(bad))
                batch = [item for index, item in enumerate(batch) if index not in bad]
                continue
            except httpx.HTTPError:  # closing, and the server still does not take it
                self._count("dropped", len(batch))
                return
            ids = [record_id for record_id, _ in batch]
            self._count("sent", len(ids))
            if self.on_sent is not None:
                try:
                    self.on_sent(ids)
                except Exception:
                    self._count("errors")
            return

    def _post(self, body: bytes, count: int) -> None:
        headers = {"content-type": "application/x-ndjson", "content-encoding": "gzip"}
        try:
            answer = self._http.post(self.url + "/logs", content=body, headers=headers)
        except httpx.HTTPError as e:
            self._failed(e, None)
        status = answer.status_code
        if status < 300:
            self._key_refused = self._batch_refused = False
            return
        if status in (401, 403):  # retried too: a key being rotated, say (meanwhile the queue fills and drops)
            self._say_key_refused(answer)
        if status in _RETRY_STATUSES or status >= 500 or status in (401, 403):
            error = httpx.HTTPStatusError(f"HTTP {status}", request=answer.request, response=answer)
            self._failed(error, retry_after_seconds(answer.headers.get("retry-after"), time.time()))
        raise _Refused(_refused_indexes(answer, count), answer)

    def _say_key_refused(self, answer: httpx.Response) -> None:
        if self._key_refused:
            return
        self._key_refused = True
        # A SigV4 key's secret is what botocore finds (api_key is then not used at all).
        sigv4 = isinstance(self._http.auth, _SigV4)
        setting = (
            "the AWS credentials botocore finds (environment, profile, role)" if sigv4 else "api_key (LOGLAKE_API_KEY)"
        )
        say(
            f"{self.url} refused the API key (HTTP {answer.status_code}: {_reason(answer)}); records stay queued and"
            f" are retried, and dropped once the queue is full: check {setting} and that the key has the ingest scope"
        )

    def _say_batch_refused(self, answer: httpx.Response) -> None:
        if self._batch_refused:
            return
        self._batch_refused = True
        hint = ""
        if endpoint_in(self.url, answer.status_code):
            hint = "; url is the server's address, like http://127.0.0.1:8080, and the handler adds /logs to it"
        say(
            f"{answer.request.url} refused a batch of records whole (HTTP {answer.status_code}: {_reason(answer)});"
            f" they are counted as rejected, not retried{hint}"
        )

    def _failed(self, error: httpx.HTTPError, retry_after: float | None) -> NoReturn:
        """An attempt that may work later: tried again (TryAgain), unless the handler is closing."""
        self._count("failed_attempts")
        self.last_error = error
        if self.closing.is_set():
            raise error
        raise TryAgain(error, retry_after)

    def _pause(self, seconds: float) -> None:
        """The backoff's sleep: cut short when closing (the last attempt then comes at once)."""
        self.closing.wait(seconds)


def say(text: str) -> None:
    """One line on stderr, for what the application must hear though nobody reads the counters."""
    with contextlib.suppress(OSError, ValueError):  # (no stderr, or closed: the counters still say it)
        sys.stderr.write(f"loglake.logging: {text}\n")


class _Refused(Exception):
    def __init__(self, indexes: set[int], answer: httpx.Response) -> None:
        self.indexes = indexes
        self.answer = answer


def _reason(answer: httpx.Response) -> str:
    """What a refusal says: loglake's error message, else the status's phrase."""
    try:
        return str(answer.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return answer.reason_phrase


def _refusal(answer: httpx.Response) -> str:
    """Why a 400 refused a record (its first detail's field and reason), else the answer's message."""
    try:
        detail = answer.json()["error"]["details"][0]
        said = " ".join(filter(None, (detail["field"], detail["reason"])))  # (a record refused whole names no field)
        return f"HTTP {answer.status_code}: {said}"
    except (ValueError, KeyError, TypeError, IndexError):
        return f"HTTP {answer.status_code}: {_reason(answer)}"


def _refused_indexes(answer: httpx.Response, count: int) -> set[int]:
    """The records of a batch of `count` a 400 named (all of the batch when it names none). An answer naming no
    record of the batch (not loglake's: a proxy's) names none: left in the batch, it was sent again at once for
    ever, the 400 counting it rejected each time (as shipping._refused_records)."""
    try:
        details = answer.json()["error"]["details"]
        indexes = {d.get("index") if isinstance(d, dict) else None for d in details}
    except (ValueError, KeyError, TypeError):
        return set()
    return {index for index in indexes if type(index) is int and 0 <= index < count}


def auth(api_key: str | None, sigv4_region: str | None, credentials: Any) -> httpx.Auth | None:
    """Bearer with the API key (else LOGLAKE_API_KEY), or SigV4 when a region is given; ValueError for a key
    that no key is (bearer_header), and for credentials without a region."""
    if sigv4_region:
        return _SigV4(sigv4_region, credentials)
    if credentials is not None:
        # (else they were not used at all: requests went unsigned, and the 401 said to check api_key)
        raise ValueError("credentials are for AWS SigV4 signing: give sigv4_region too, like sigv4_region='us-east-1'")
    api_key = api_key or os.environ.get("LOGLAKE_API_KEY")
    return _Bearer(bearer_header(api_key)) if api_key else None


class _Bearer(httpx.Auth):
    def __init__(self, header: str) -> None:
        self.header = header

    def auth_flow(self, request: httpx.Request):  # type: ignore[no-untyped-def]
        request.headers["authorization"] = self.header
        yield request


class _SigV4(httpx.Auth):
    """Each request signed with AWS SigV4 (service execute-api), as loglake accepts for SigV4 keys."""

    requires_request_body = True

    def __init__(self, region: str, credentials: Any) -> None:
        import botocore.session  # only when asked for: botocore takes a while to import

        self.region = region
        if credentials is not None and not callable(getattr(credentials, "get_frozen_credentials", None)):
            # (else each attempt failed, for ever, and said so only at exit)
            raise ValueError(
                f"credentials {type(credentials).__name__} must be botocore Credentials, like"
                " boto3.Session().get_credentials(), or None for those botocore finds"
            )
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
        try:
            credentials = self.credentials.get_frozen_credentials()
        except Exception as e:
            # botocore could not refresh them (a role's credentials endpoint timed out, say): an attempt that failed,
            # tried again as a server that cannot be reached is, not an error that lost the batch without a word.
            raise httpx.TransportError(f"no AWS credentials to sign with: {type(e).__name__}: {e}") from e
        SigV4Auth(credentials, "execute-api", self.region).add_auth(signed)
        for name, value in signed.headers.items():
            request.headers[name] = value
        yield request
