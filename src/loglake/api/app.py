"""The ASGI application: routing (by route_table.py), auth, rate limits, errors, metrics and the access log
around the routes."""

from __future__ import annotations

import asyncio
import functools
import os
import re
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from loglake.api import ask_routes, elastic_routes, tail_routes
from loglake.api.accesslog import AccessLog, internal_error
from loglake.api.auth import Authenticator, require_scope
from loglake.api.body_budget import BodyBudget
from loglake.api.cors import allows as cors_allows
from loglake.api.cors import preflight_headers
from loglake.api.cors import response_headers as cors_headers
from loglake.api.http import (
    ApiError,
    ClientGone,
    EncodedApiError,
    Receive,
    Request,
    Send,
    body_reservation,
    discard_body,
    read_body,
    send_bytes,
    send_json,
    server_stopping,
    storage_unavailable,
    wait_for_disconnect,
)
from loglake.api.joined_checks import JoinedChecks
from loglake.api.metrics import Metrics
from loglake.api.process_metrics import ProcessFigures
from loglake.api.ratelimit import RateLimiter, request_units
from loglake.api.resent_pushes import ResentPushes
from loglake.api.route_table import ROUTES, Route, Router
from loglake.api.routes import Result, checked_ndjson, checked_ndjson_joined, count_if_body_refused
from loglake.api.runtime_events import RuntimeEvents
from loglake.api.security_headers import NO_STORE, SECURITY_HEADERS
from loglake.config import REQUEST_UNIT, REQUEST_UNIT_BYTES, Settings, parse_origins
from loglake.decode_workers import DecodeWorkers
from loglake.extensions import SqlEngine
from loglake.keys import ApiKey, KeyStore
from loglake.lake.query_answers import QueryBusy
from loglake.lake.stop import CLIENT_GONE, SERVER_STOPPING, Stop, Stopped
from loglake.runtime import Runtime
from loglake.sessions import SessionStore
from loglake.sqlitedb import RESTORE_FROM_BACKUP, is_damaged
from loglake.store.base import StoreUnavailable
from loglake.store.sqlite import write_refusal
from loglake.tail import TailHub

T = TypeVar("T")
# Checking a big body holds the GIL most of the time (a Python object per value): past two threads they
# only take turns, each holding a decoded batch (B2 with 4 senders, 2 cores: the same rate with 2 as with
# 4, and ~10 MiB less peak RSS).
INGEST_THREADS = 2
READ_THREADS = 4  # each of the two pools of blocking reads: quick ones (recent, get, keys) and searches
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_READS = frozenset({"GET", "HEAD"})  # the methods whose answers a browser's cache keeps


async def _stop_when_gone(request: Request, stop: Stop) -> None:
    await wait_for_disconnect(request)
    stop.stop(CLIENT_GONE)


class LoglakeApp(RuntimeEvents):
    """The HTTP edge of one loglake Runtime: routing, auth, rate limits, errors, metrics and the access
    log, plus the threads that keep reads and users' SQL off the event loop; what the runtime reports is
    heard as RuntimeEvents (api/runtime_events.py)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        runtime.observe(self)
        # The route handlers' view of the runtime.
        self.settings = settings = runtime.settings
        self.store = runtime.store
        self.lake = runtime.lake
        self.lake_jobs = runtime.lake_jobs
        self.amplify = runtime.amplify
        self.service = runtime.service
        self.metrics = Metrics()
        self.process_figures = ProcessFigures()
        self.storage_error: str | None = None
        self.damaged_database: str | None = None  # SQLite's error, once a request met a damaged database
        self.storage_error_in_lake = False
        self.storage_checked_at = 0.0
        self.sessions = SessionStore(settings.data_dir, runtime.clock)  # web UI sign-ins (session_routes)
        self._cors_origins = parse_origins(settings.cors_allow_origins)
        self.auth = Authenticator(
            runtime.keyring if settings.auth else None,
            settings.region,
            runtime.clock,
            self.sessions,
            self._cors_origins,
        )
        self.ratelimiter = RateLimiter(settings.rate_limit, settings.rate_burst)
        self.loki_pushes: ResentPushes[Result] = ResentPushes()  # Loki pushes sent again after a lost answer
        self.router = Router(ROUTES)
        self.body_budget = BodyBudget(max(route.body_limit(settings) for route in ROUTES if route.reads_body))
        arrivals = runtime.service.arrivals
        self.tails = TailHub(arrivals, settings.max_tails_per_key, self.service.now_ms) if arrivals else None
        self.access_log = AccessLog.open(settings.access_log, settings.named("access_log"))
        self._request_prefix = os.urandom(6).hex()
        self._request_counter = 0
        self._readers = ThreadPoolExecutor(max_workers=READ_THREADS, thread_name_prefix="loglake-read")
        # Searches scan the lake and wait for the engine's connections: on threads of their own, so a
        # burst of slow searches never keeps recent records and lookups by id waiting.
        self._searches = ThreadPoolExecutor(max_workers=READ_THREADS, thread_name_prefix="loglake-search")
        # Big ingest bodies are checked on threads of their own (routes.OFF_LOOP_BODY_BYTES).
        self._ingests = ThreadPoolExecutor(max_workers=INGEST_THREADS, thread_name_prefix="loglake-ingest")
        self.ingest_jobs = 0  # run_ingest's and run_joined's jobs queued or running (only the event loop changes it)
        # POST /logs's smaller NDJSON bulk bodies are checked on one of them, those that wait together (joined_checks);
        self.ndjson_checks = JoinedChecks(
            self._ingests,
            functools.partial(checked_ndjson, self),
            functools.partial(checked_ndjson_joined, self),
        )
        # Elasticsearch bulks to /_bulk likewise.
        self.bulk_checks = JoinedChecks(
            self._ingests,
            functools.partial(elastic_routes.parsed_bulk, self),
            functools.partial(elastic_routes.parsed_bulks, self),
        )
        # Big OTLP exports are decoded in processes of their own (started at the first one).
        self.decode_workers = DecodeWorkers(settings.decode_processes)
        # Users' SQL runs on its own threads, so long queries never queue the API's reads behind them.
        self._queries = ThreadPoolExecutor(max_workers=settings.query_concurrency, thread_name_prefix="loglake-sql")
        self._queries_running = 0
        self._stops: set[Stop] = set()  # of the work running on the search, query and ask threads
        self._stopping = False
        self.asking = ask_routes.Asking(self)
        self._loop: asyncio.AbstractEventLoop | None = None  # the server's, once the lifespan started

    @property
    def keystore(self) -> KeyStore:
        return self.runtime.keystore

    @property
    def sql_engine(self) -> SqlEngine | None:
        """What runs users' SQL (POST /query, ask's answers), when there is a lake (lake/users_sql.py)."""
        return self.lake.users_sql if self.lake is not None else None

    @classmethod
    def from_settings(cls, settings: Settings, **runtime_options: Any) -> LoglakeApp:
        """An app over a new Runtime (what `loglake serve` runs; tests pass a clock or a store)."""
        return cls(Runtime(settings, **runtime_options))

    def _next_request_id(self) -> str:
        """Unique per process run and cheap: a random prefix and a counter (os.urandom is slow on VMs)."""
        self._request_counter += 1
        return f"{self._request_prefix}-{self._request_counter:x}"

    async def run_read(self, fn: Callable[..., T], *args: Any) -> T:
        """Run blocking store work (reads, key writes) off the event loop, so it never delays ingest."""
        return await asyncio.get_running_loop().run_in_executor(self._readers, fn, *args)

    async def run_ingest(self, fn: Callable[..., T], *args: Any) -> T:
        """Run the check of a big ingest body off the event loop."""
        self.ingest_jobs += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._ingests, fn, *args)
        finally:
            self.ingest_jobs -= 1

    async def run_joined(self, checks: JoinedChecks[T], body: bytes) -> T:
        """Check an ingest body off the event loop, with the bodies waiting beside it (joined_checks)."""
        self.ingest_jobs += 1
        try:
            return await asyncio.wrap_future(checks.submit(body))
        finally:
            self.ingest_jobs -= 1

    async def run_search(self, fn: Callable[[Stop], T], request: Request) -> T:
        """Run a search, histogram or facets off the event loop, apart from the quick reads of run_read;
        stopped as run_query's work is (a search nobody waits for frees its thread and connection)."""
        return await self.run_watched(self._searches, fn, request)

    async def run_query(self, fn: Callable[[Stop], T], request: Request, budget_s: float | None = None) -> T:
        """Run a user's SQL (or a rule's backtest) on the query threads (run_watched); QueryBusy at once
        when all of them are taken."""
        if self._queries_running >= self.settings.query_concurrency:
            raise QueryBusy(f"all {self.settings.query_concurrency} SQL query slots are busy")
        self._queries_running += 1
        try:
            return await self.run_watched(self._queries, fn, request, budget_s)
        finally:
            self._queries_running -= 1

    async def run_watched(
        self, threads: ThreadPoolExecutor, fn: Callable[[Stop], T], request: Request, budget_s: float | None = None
    ) -> T:
        """Run long work for a request on `threads`. `fn` gets the work's Stop (with `budget_s`, if given):
        it is told to stop when the client goes away (ClientGone: nobody reads the answer, the thread is
        free again) or when the server is stopping (503: uvicorn waits for the answers in flight, and
        then for the threads)."""
        stop = Stop(budget_s)
        if self._stopping:
            stop.stop(SERVER_STOPPING)
        self._stops.add(stop)
        watcher = asyncio.ensure_future(_stop_when_gone(request, stop))
        try:
            return await asyncio.get_running_loop().run_in_executor(threads, fn, stop)
        except Stopped as e:
            if e.reason == CLIENT_GONE:
                raise ClientGone() from None
            raise server_stopping(e.reason) from None
        except asyncio.CancelledError:  # uvicorn gave up waiting for the answer: the work is not wanted either
            stop.stop(SERVER_STOPPING)
            raise
        finally:
            watcher.cancel()
            self._stops.discard(stop)

    @property
    def is_stopping(self) -> bool:
        """Whether stopping() was called: the server is on its way out."""
        return self._stopping

    def stopping(self) -> None:
        """The server is stopping: end the open event streams (live tails) and stop the work in flight
        (run_watched's), whose answers uvicorn would otherwise wait for (a tail never ends by itself, a
        backtest may run long, a model may be slow)."""
        self._stopping = True
        if self.tails is not None:
            self.tails.stop_all()
        for stop in list(self._stops):
            stop.stop(SERVER_STOPPING)

    def open_databases(self) -> None:
        """The data dir's databases that jobs and routes open at first use, opened now (`loglake serve`, before
        it listens): one a newer loglake migrated stops the start."""
        self.runtime.open_databases()
        self.sessions.open()
        self.asking.open()

    def close(self) -> None:
        # Requests in flight finish first, on the store they started with; then the runtime stops its
        # jobs and closes the store and the lake.
        self._ingests.shutdown(wait=True)
        self.decode_workers.close()
        self._readers.shutdown(wait=True)
        self._searches.shutdown(wait=True)
        self._queries.shutdown(wait=True)
        if self.tails is not None:
            self.tails.shutdown()
        self.asking.close()
        self.runtime.close()
        self.sessions.close()
        self.access_log.close()

    # -- ASGI ----------------------------------------------------------------------------------

    def __call__(self, scope: dict, receive: Receive, send: Send) -> Awaitable[None]:
        # (the handler's coroutine itself, not one awaiting it: a frame less for the event loop to resume on
        # every await of every request)
        if scope["type"] == "http":
            return self._http(scope, receive, send)
        return self._lifespan(receive, send)  # (the one other scope: loglake's HTTP protocol makes no websocket)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._loop = asyncio.get_running_loop()
                self.runtime.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: dict, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        request = Request(scope, receive)
        incoming = request.header(b"x-request-id")
        # (most requests bring none: the regex is not asked about an empty text, ~0.1 us a request)
        request.request_id = incoming if incoming and _REQUEST_ID.fullmatch(incoming) else self._next_request_id()
        cors = cors_headers(request.header(b"origin"), self._cors_origins) if self._cors_origins else []
        own = [(b"x-request-id", request.request_id.encode()), *SECURITY_HEADERS]  # on every answer
        common = [*cors, *own] if cors else own
        template = "unmatched"
        error_form = None
        body_limit = self.settings.max_body_bytes
        status = 500
        sent = 0
        try:
            if request.method == "OPTIONS" and request.header(b"access-control-request-method"):
                template = "preflight"  # answered before auth: browsers never sign preflights
                if not cors_allows(request.header(b"origin"), self._cors_origins):
                    origin = request.header(b"origin") or "(none)"
                    raise ApiError(
                        403,
                        "origin_not_allowed",
                        f"origin {origin} may not call this API from a browser; the server allows the "
                        "origins of its cors_allow_origins setting (--cors-allow-origins)",
                    )
                status = 204
                preflight = preflight_headers(request.header(b"origin"), self._cors_origins)
                await send_bytes(send, status, b"", [*preflight, *own])
                return
            if elastic_routes.is_elasticsearch_path(request.path):  # (a 404 or 405 from the router too)
                error_form = elastic_routes.elastic_error
            route, params = self.router.match(request.method, request.path)
            template, error_form, body_limit = route.template, route.error_form, route.body_limit(self.settings)
            await self._admit(route, request, receive)
            result = await route.handler(self, request, *params)
            status = result.status
            headers = [*result.headers, *common]
            if request.principal is not None and request.method in _READS:  # (what credentials read)
                headers.append(NO_STORE)
            if isinstance(result.payload, tail_routes.EventStream):
                sent = await result.payload.stream(send, receive, status, headers)
            elif type(result.payload) is bytes:
                await send_bytes(send, status, result.payload, headers)
                sent = len(result.payload)
            else:
                sent = await send_json(send, status, result.payload, headers)
        except ApiError as e:
            count_if_body_refused(self, e)  # (before a protocol's error form renames it)
            if error_form is not None:
                e = error_form(e, request)
            status = e.status
            sent = await self._send_error(request, receive, send, e, [*e.headers, *common], body_limit)
        except ClientGone as e:
            status = e.status
        except Exception as e:
            unavailable = _unavailable_now(e)
            if is_damaged(e):  # not the client's doing, nor a bug: the operator's to mend (also in /healthz)
                self.damaged_database = str(e)
                self.access_log.error(request.request_id, e)
                unavailable = storage_unavailable(f"a database of the data dir is damaged ({e}): {RESTORE_FROM_BACKUP}")
            if unavailable is not None:
                status = 503
                headers = [*unavailable.headers, *common]
                sent = await self._send_error(request, receive, send, unavailable, headers, body_limit)
            else:  # a bug: answer 500 with the request id, log the traceback
                status = 500
                self.access_log.error(request.request_id, e)
                error = internal_error(request.request_id)
                sent = await self._send_error(request, receive, send, error, common, body_limit)
        finally:
            if request.body_held:
                self.body_budget.release(request.body_held)
            elapsed = time.perf_counter() - started
            self.metrics.requests.inc((template, str(status)))
            self.metrics.latency.observe((template,), elapsed)
            self.access_log.request(request, template, status, elapsed, sent)

    async def _send_error(
        self,
        request: Request,
        receive: Receive,
        send: Send,
        error: ApiError,
        headers: list[tuple[bytes, bytes]],
        body_limit: int,
    ) -> int:
        """Answer with the error, then take the rest of an unread body off the connection (see discard_body; the
        route takes bodies of body_limit bytes)."""
        unread = request.body_unread()
        if isinstance(error, EncodedApiError):
            await send_bytes(send, error.status, error.encoded, headers, more_body=unread)
            sent = len(error.encoded)
        else:
            sent = await send_json(send, error.status, error.body(), headers, more_body=unread)
        if unread:
            await discard_body(request, receive, body_limit)
            await send({"type": "http.response.body", "body": b""})
        return sent

    async def _admit(self, route: Route, request: Request, receive: Receive) -> None:
        """Authenticate, authorise and rate-limit, reading the body when the route (or SigV4) needs it.

        Everything that can be checked without the body is checked before reading it, so a caller
        without valid credentials never makes the server buffer (or hash) up to max_body_bytes."""
        signed = route.scope is not None and self.auth.needs_body(request)
        if route.reads_body or signed:
            if signed:
                self.auth.check_before_body(request)
            elif route.scope is not None:
                self._authorize(route, request)
            request.takes_records = route.takes_records
            limit = route.body_limit(self.settings)
            request.body_held = await self.body_budget.reserve(body_reservation(request, limit))
            request.body = await read_body(request, receive, limit)
        if route.scope is not None and request.principal is None:
            self._authorize(route, request)
        if len(request.body) > REQUEST_UNIT_BYTES and request.principal is not None:  # (never a single record)
            # Let in for one token, the request costs one more per REQUEST_UNIT_BYTES beyond the first (request_units),
            # whatever the bucket holds: the key's next requests wait until its rate has paid for it.
            self.ratelimiter.charge(request.principal.name, request_units(len(request.body)) - 1)

    def _authorize(self, route: Route, request: Request) -> None:
        key = self.auth.authenticate(request)
        assert route.scope is not None
        request.principal = key  # (the access log names it even when it is refused next: which shipper is off)
        require_scope(key, route.scope)
        self.rate_limit(key)

    def rate_limit(self, key: ApiKey) -> None:
        """Take one of the key's requests from its bucket; ApiError 429 with Retry-After when it is empty (a big
        body's cost is taken once it is read: see _admit)."""
        wait = self.ratelimiter.check(key.name, key.rate_limit, key.rate_burst)
        if wait:
            retry = str(max(1, int(wait + 0.999))).encode()
            rate, burst = self.ratelimiter.limits(key.rate_limit, key.rate_burst)
            raise ApiError(
                429,
                "rate_limited",
                f"too many requests for key {key.name!r} (its rate limit: {rate:g}/s, burst {burst}, a request "
                f"counting {REQUEST_UNIT}); retry after {retry.decode()} s",
                headers=[(b"retry-after", retry)],
            )


def _unavailable_now(error: Exception) -> ApiError | None:
    """The 503 of an error that means "not now" rather than a bug: a read the store could not serve (throttled,
    unreachable), a full disk under keys.db, sessions.db, alerts.db... (/healthz's storage error stays the hot
    store's: one that no commit would clear); None for any other error."""
    if isinstance(error, StoreUnavailable):
        return storage_unavailable(str(error))
    refusal = write_refusal(error)
    return None if refusal is None else storage_unavailable(f"the server cannot write now: {refusal}; try again later")
