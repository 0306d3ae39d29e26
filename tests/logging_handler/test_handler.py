"""loglake.logging against a real `loglake serve`: the mapping of log records, Bearer and SigV4 auth,
retries on 429 and 503 (through a scripted proxy in front of the server), drops counted when the queue is
full, refusals counted, and a handler that never raises into the application."""

from __future__ import annotations

import http.server
import json
import logging
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from botocore.credentials import Credentials, RefreshableCredentials
from opentelemetry.sdk.trace import TracerProvider

from loglake.logging import LoglakeHandler
from tests.conftest import ServerProcess, free_port, run_cli
from tests.logging_handler.support import FAST, a_logger, stored


def test_a_key_read_with_its_newline_is_sent_without_it(server, key, make_handler) -> None:
    """A key from a file or a secret mount ends with a newline, which no HTTP header holds: it failed every
    attempt, and the handler's line at exit quoted the whole key (`Illegal header value b'Bearer llk_...\\n'`)."""
    handler = make_handler(service="key-with-newline", api_key=f"{key}\n")
    a_logger("app.newline", handler).info("sent")
    assert handler.flush()
    assert [log["message"] for log in stored(server, key, "key-with-newline")] == ["sent"]


def test_records_with_extra_fields_exceptions_and_levels(server, key, make_handler) -> None:
    handler = make_handler(service="billing")
    logger = a_logger("app.orders", handler)
    logger.debug("debugging")
    logger.info("order %s placed", 42, extra={"order_id": 42, "tags": ["a", "b"], "opaque": Opaque()})
    logger.warning("careful")
    try:
        raise KeyError("missing")
    except KeyError:
        logger.exception("lookup failed")
    logger.critical("down")
    logger.log(5, "below debug")
    assert handler.flush()
    logs = stored(server, key, "billing")
    assert [(log["severity"], log["message"]) for log in logs] == [
        ("debug", "debugging"),
        ("info", "order 42 placed"),
        ("warning", "careful"),
        ("error", "lookup failed"),
        ("critical", "down"),
        ("debug", "below debug"),
    ]
    assert logs[1]["attributes"] == {"logger": "app.orders", "order_id": 42, "tags": ["a", "b"], "opaque": "opaque!"}
    exception = logs[3]["attributes"]["exception"]
    assert (exception["type"], exception["message"]) == ("KeyError", "'missing'")
    assert exception["traceback"].startswith("Traceback (most recent call last):")
    assert 'raise KeyError("missing")' in exception["traceback"]
    assert all(log["log_type"] == "application" and log["id"] for log in logs)
    assert handler.sent == 6 and handler.dropped == handler.rejected == handler.errors == 0


def test_a_stack_info_call_keeps_its_stack(server, key, make_handler) -> None:
    """`stack_info=True` (a record's stack_info, which every Formatter prints) was a record field like any other
    and left out of the record: what the call asked to log was lost."""
    handler = make_handler(service="stacks")
    logger = a_logger("stacks", handler)
    logger.warning("how did we get here", stack_info=True, extra={"stack": "an extra of the name", "n": 1})
    logger.info("no stack")
    assert handler.flush()
    logs = stored(server, key, "stacks")
    stack = logs[0]["attributes"]["stack"]
    assert stack.startswith("Stack (most recent call last):") and "test_a_stack_info_call_keeps_its_stack" in stack
    assert list(logs[0]["attributes"]) == ["logger", "stack", "n"]
    assert logs[1]["attributes"] == {"logger": "stacks"}


def test_bytes_in_extra_are_their_str_as_in_a_message(server, key, make_handler) -> None:
    """msgspec wrote them as base64 (b"GET /" as "R0VUIC8="), where the handler says values JSON cannot hold are
    their str(), and `%s` shows bytes so in the message (the logging-handler trial)."""
    handler = make_handler(service="bytes-app")
    loop: list = []
    loop.append(loop)
    logger = a_logger("app.bytes", handler)
    logger.info("got %s", b"GET /", extra={"raw": b"GET /\x00", "nested": {"parts": [bytearray(b"a"), 1]}})
    logger.info("loops", extra={"loop": loop})  # (no JSON, as before: said, not looked into without end)
    assert handler.flush()
    logs = stored(server, key, "bytes-app")
    assert logs[0]["message"] == "got b'GET /'"
    assert logs[0]["attributes"] == {
        "logger": "app.bytes",
        "raw": "b'GET /\\x00'",
        "nested": {"parts": ["bytearray(b'a')", 1]},
    }
    assert logs[1]["attributes"]["logger"] == "app.bytes" and logs[1]["attributes"]["loop"].startswith("not JSON")


def test_closing_at_debug_level_counts_nothing_its_own_client_logs(server, key, make_handler, capfd) -> None:
    """A handler on the root logger at DEBUG gets httpcore's DEBUG records of its own client being closed, on the
    thread that closes it: they were counted as dropped, and every exit said '2 record(s) not delivered'."""
    handler = make_handler(service="debugging-app")
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        logging.getLogger("app").info("one record")
        assert handler.flush()
        handler.close()
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    assert [log["message"] for log in stored(server, key, "debugging-app")] == ["one record"]
    assert handler.sent == 1 and handler.dropped == 0
    assert "not delivered" not in capfd.readouterr().err


def test_the_handlers_own_requests_are_no_records_and_the_applications_are(server, key, make_handler) -> None:
    """httpx logs each request at INFO: each batch printed 'HTTP Request: POST .../logs' in an application showing
    INFO, and with two handlers on the root logger each sent a record of the other's batch, for ever (a record a
    batch while the application logged nothing). The application's own requests are still logged."""
    seen: list[str] = []
    console = logging.Handler()
    console.emit = lambda record: seen.append(record.getMessage())  # type: ignore[method-assign]
    first = make_handler(service="own-requests-1", flush_interval=0.05)
    second = make_handler(service="own-requests-2", flush_interval=0.05)
    root = logging.getLogger()
    level = root.level
    for handler in (console, first, second):
        root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        logging.getLogger("app").info("one record")
        httpx.get(server.url + "/healthz", timeout=10)  # the application's own request
        assert first.flush() and second.flush()
        time.sleep(0.5)  # ten flush intervals: batches enough for a trickle
        assert first.flush() and second.flush()
    finally:
        for handler in (console, first, second):
            root.removeHandler(handler)
        root.setLevel(level)
    application = ["one record", f'HTTP Request: GET {server.url}/healthz "HTTP/1.1 200 OK"']
    assert seen == application
    for service in ("own-requests-1", "own-requests-2"):
        assert [log["message"] for log in stored(server, key, service)] == application
    assert first.sent == second.sent == 2


def test_records_are_sent_when_logging_records_no_threads(server, key, make_handler, monkeypatch) -> None:
    """logging.logThreads off (an application saving its cost) leaves each record's thread None: every record was
    taken for one the handler's own closing thread logged, and silently not sent."""
    monkeypatch.setattr(logging, "logThreads", False)
    handler = make_handler(service="no-threads")
    a_logger("no-threads", handler).info("sent")
    assert handler.flush()
    assert [log["message"] for log in stored(server, key, "no-threads")] == ["sent"]
    assert handler.sent == 1 and handler.dropped == 0


class Opaque:
    def __str__(self) -> str:
        return "opaque!"


@pytest.mark.parametrize("source", ["given", "environment"])
def test_sigv4_with_botocore_credentials(server, make_handler, key, source, monkeypatch) -> None:
    name = f"sdk-{source}"
    created = run_cli(
        "keys", "create", "--name", name, "--scopes", "ingest", "--sigv4", "--data-dir", str(server.data_dir)
    )
    access_key_id, secret = created.stdout.split()
    credentials = Credentials(access_key_id, secret)
    if source == "environment":  # botocore's own chain finds them
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", access_key_id)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
        credentials = None
    handler = make_handler(api_key=None, sigv4_region="us-east-1", credentials=credentials, service=name)
    a_logger(name, handler).info("signed with SigV4")
    assert handler.flush()
    assert [log["message"] for log in stored(server, key, name)] == ["signed with SigV4"]
    assert handler.failed_attempts == 0


def test_sigv4_credentials_that_fail_to_refresh_are_retried_not_the_batch_lost(server, make_handler, key) -> None:
    """botocore raises when it cannot refresh expired credentials (a role's endpoint timing out): that escaped the
    sender, its batch was lost without being counted or said at close, and a flush waited its whole timeout."""
    created = run_cli(
        "keys", "create", "--name", "sdk-refresh", "--scopes", "ingest", "--sigv4", "--data-dir", str(server.data_dir)
    )
    access_key_id, secret = created.stdout.split()
    refreshes: list[int] = []

    def refresh() -> dict[str, str]:
        refreshes.append(1)
        if len(refreshes) == 1:
            raise RuntimeError("the credentials endpoint timed out")
        expiry = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        return {"access_key": access_key_id, "secret_key": secret, "token": "", "expiry_time": expiry}

    credentials = RefreshableCredentials(access_key_id, secret, "", datetime.now(UTC), refresh, "test")
    handler = make_handler(api_key=None, sigv4_region="us-east-1", credentials=credentials, service="sdk-refresh")
    a_logger("sdk-refresh", handler).info("signed once it could be")
    assert handler.flush()
    assert [log["message"] for log in stored(server, key, "sdk-refresh")] == ["signed once it could be"]
    assert (handler.sent, handler.failed_attempts, handler.errors) == (1, 1, 0)


def test_a_refused_sigv4_signature_points_at_the_aws_credentials_not_api_key(server, make_handler, capfd) -> None:
    """A wrong SigV4 secret was told to check api_key (LOGLAKE_API_KEY), a setting a SigV4 handler does not use."""
    created = run_cli(
        "keys", "create", "--name", "sdk-wrong", "--scopes", "ingest", "--sigv4", "--data-dir", str(server.data_dir)
    )
    access_key_id, _ = created.stdout.split()
    credentials = Credentials(access_key_id, "not-the-secret")
    handler = make_handler(sigv4_region="us-east-1", credentials=credentials, service="sdk-wrong", flush_timeout=0.5)
    a_logger("sdk-wrong", handler).info("never stored")
    assert handler.flush() is False
    said = [line for line in capfd.readouterr().err.splitlines() if "refused the API key" in line]
    assert len(said) == 1, said
    assert "check the AWS credentials botocore finds" in said[0] and "LOGLAKE_API_KEY" not in said[0], said


def test_a_wrong_key_is_retried_not_raised_and_nothing_is_stored(server, make_handler, key, capfd) -> None:
    handler = make_handler(api_key="llk_wrong", service="wrongkey", flush_timeout=0.5)
    a_logger("wrongkey", handler).info("never stored")
    assert handler.flush() is False
    a_logger("wrongkey", handler).info("nor this")
    assert handler.flush() is False
    assert handler.failed_attempts >= 2 and handler.sent == 0
    assert stored(server, key, "wrongkey") == []
    # Said once on stderr (not per attempt), with what to check: counters nobody reads would leave it silent.
    said = [line for line in capfd.readouterr().err.splitlines() if "refused the API key" in line]
    assert len(said) == 1 and "HTTP 401" in said[0] and "LOGLAKE_API_KEY" in said[0], said


def test_a_url_with_the_endpoint_in_it_is_said_once_not_left_to_the_counters(server, make_handler, key, capfd) -> None:
    """A url of `.../logs` (the endpoint, where the server's address belongs) made every batch go to /logs/logs,
    refused whole (405): each record counted as rejected, and nothing said, not even at exit (a new-user trial)."""
    handler = make_handler(url=server.url + "/logs", service="pathurl")
    for number in range(3):
        a_logger("pathurl", handler).info("sent to the wrong path %d", number)
        handler.flush()
    assert handler.rejected == 3 and handler.sent == 0
    said = [line for line in capfd.readouterr().err.splitlines() if "refused a batch of records whole" in line]
    assert len(said) == 1, said
    assert f"{server.url}/logs/logs" in said[0] and "HTTP 405" in said[0], said
    assert "url is the server's address, like http://127.0.0.1:8080, and the handler adds /logs" in said[0]
    assert stored(server, key, "pathurl") == []


class Script(http.server.ThreadingHTTPServer):
    """A proxy in front of the loglake server: answers POST /logs with the scripted statuses first, then
    passes requests on; a status of 0 means: hold the request until `release` is set."""

    def __init__(self, target: str, statuses: list[int]) -> None:
        self.target, self.statuses, self.release = target, statuses, threading.Event()
        self.seen: list[int] = []
        super().__init__(("127.0.0.1", 0), _Proxy)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Proxy(http.server.BaseHTTPRequestHandler):
    server: Script

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        status = self.server.statuses.pop(0) if self.server.statuses else None
        if status == 0:
            self.server.release.wait(30)
            status = 503
        if status is not None:
            self.server.seen.append(status)
            self.send_response(status)
            self.send_header("retry-after", "0")
            self.send_header("content-length", "0")
            self.end_headers()
            return
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
        answer = httpx.post(self.server.target + self.path, content=body, headers=headers, timeout=10)
        self.server.seen.append(answer.status_code)
        self.send_response(answer.status_code)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(answer.content)))
        self.end_headers()
        self.wfile.write(answer.content)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def proxy(server: ServerProcess) -> Iterator[Callable[[list[int]], Script]]:
    started: list[Script] = []

    def start(statuses: list[int]) -> Script:
        started.append(Script(server.url, statuses))
        return started[-1]

    yield start
    for script in started:
        script.release.set()
        script.shutdown()
        script.server_close()


def test_a_full_batch_leaves_at_once_not_after_the_interval(server, key, make_handler) -> None:
    """A batch leaves as soon as the queue holds batch_size records, again and again while the program logs
    (the thread is woken once per batch, not on every call), not only every flush_interval."""
    batches: queue.Queue[int] = queue.Queue()

    def on_sent(ids: list[str]) -> None:
        batches.put(len(ids))

    handler = make_handler(service="fullbatch", batch_size=5, flush_interval=600, on_sent=on_sent)
    logger = a_logger("fullbatch", handler)
    for batch in range(4):
        for n in range(5):
            logger.info("record %d", batch * 5 + n)
        assert batches.get(timeout=30) == 5  # no flush() is called: queue.Empty if it waited for the interval
    assert len(stored(server, key, "fullbatch")) == 20


def test_429_and_503_are_retried_and_the_batch_is_stored_once(server, key, make_handler, proxy) -> None:
    script = proxy([429, 503, 502])
    handler = make_handler(url=script.url, service="retried")
    logger = a_logger("retried", handler)
    for n in range(5):
        logger.info("record %d", n)
    assert handler.flush()
    assert script.seen == [429, 503, 502, 201]
    assert [log["message"] for log in stored(server, key, "retried")] == [f"record {n}" for n in range(5)]
    assert (handler.sent, handler.failed_attempts, handler.dropped) == (5, 3, 0)


def test_a_lost_answer_retried_is_stored_once(server, key, make_handler, proxy) -> None:
    """The server stored the batch but its answer never came back (a 504 from a proxy after it did):
    sent again with the same ids, the records are stored once."""
    script = proxy([])
    handler = make_handler(url=script.url, service="lostanswer")

    class StoredThenLost(_Proxy):
        def do_POST(self) -> None:
            if not self.server.seen:
                body = self.rfile.read(int(self.headers["content-length"]))
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                self.server.seen.append(
                    httpx.post(self.server.target + self.path, content=body, headers=headers).status_code
                )
                self.send_response(504)
                self.send_header("content-length", "0")
                self.end_headers()
                return
            super().do_POST()

    script.RequestHandlerClass = StoredThenLost
    a_logger("lostanswer", handler).info("only once")
    assert handler.flush()
    assert script.seen == [201, 201]
    assert [log["message"] for log in stored(server, key, "lostanswer")] == ["only once"]


def test_a_full_queue_drops_new_records_and_counts_them(server, make_handler, proxy) -> None:
    script = proxy([0])  # the first request is held: the handler's thread waits on it
    handler = make_handler(url=script.url, service="full", batch_size=3, queue_size=4, flush_interval=0.01)
    logger = a_logger("full", handler)
    for n in range(3):
        logger.info("first batch %d", n)
    while handler.pending:  # until the thread took the batch (the queue is then empty)
        threading.Event().wait(0.01)
    for n in range(10):
        logger.info("later %d", n)
    assert handler.dropped == 6  # 4 fit the queue
    script.release.set()
    assert handler.flush()
    assert handler.sent == 7


def test_flushes_while_the_server_does_not_answer_take_no_records_place(server, make_handler, proxy) -> None:
    """Each flush() put a marker in the queue, which counted as a record: an application flushing (at the end of
    each request, say) while the server was down had its records dropped as 'queue full' with the queue all markers."""
    script = proxy([0])  # the first request is held: the handler's thread waits on it
    handler = make_handler(url=script.url, service="flushes", queue_size=3)
    logger = a_logger("flushes", handler)
    logger.info("first")
    assert not handler.flush(timeout=0)
    while handler.pending:  # until the thread took it (and waits on the server)
        threading.Event().wait(0.01)
    for _ in range(10):
        assert not handler.flush(timeout=0)
    for n in range(3):
        logger.info("later %d", n)
        assert not handler.flush(timeout=0)
    assert handler.dropped == 0 and handler.pending == 3
    assert len(handler._queue) == 7  # a marker before and after each record at most, however many flushes
    script.release.set()
    assert handler.flush()
    assert handler.sent == 4 and handler.dropped == 0


def test_records_the_server_refuses_are_counted_and_the_rest_sent(server, key, make_handler, tmp_path) -> None:
    handler = make_handler(service="refusals")
    logger = a_logger("refusals", handler)
    logger.info("fine")
    record = logger.makeRecord("refusals", logging.INFO, __file__, 1, "too far ahead", (), None)
    record.created += 10 * 86_400  # the server refuses records more than a day ahead
    logger.handle(record)
    logger.info("also fine")
    assert handler.flush()
    assert [log["message"] for log in stored(server, key, "refusals")] == ["fine", "also fine"]
    assert (handler.sent, handler.rejected) == (2, 1)


def test_records_refused_when_all_else_was_delivered_are_said_at_close(server, key, make_handler, capfd) -> None:
    """A record the server refused for good (here: stamped days ahead) was counted in `rejected` only, and the exit
    said nothing, since nothing else was undelivered: the application never heard of it (a new-user trial)."""
    handler = make_handler(service="saidrefusals")
    logger = a_logger("saidrefusals", handler)
    logger.info("fine")
    record = logger.makeRecord("saidrefusals", logging.INFO, __file__, 1, "too far ahead", (), None)
    record.created += 10 * 86_400
    logger.handle(record)
    handler.close()
    assert (handler.sent, handler.rejected, handler.dropped) == (1, 1, 0)
    said = [line for line in capfd.readouterr().err.splitlines() if line.startswith("loglake.logging: closing")]
    assert len(said) == 1, said
    assert said[0].startswith(f"loglake.logging: closing: 1 record(s) refused by {server.url} and not stored (sent: 1)")
    assert "the last refusal: HTTP 400: timestamp" in said[0], said


def test_a_400_naming_no_record_of_the_batch_refuses_it_once_not_again_and_again(make_handler, proxy) -> None:
    """A 400 (a proxy's, not loglake's) whose details named an index outside the batch left every record in it:
    the batch was sent again at once, for ever (hundreds of requests a second), each answer counted as rejected."""
    script = proxy([])

    class NamesAnIndexOutside(_Proxy):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["content-length"]))
            self.server.seen.append(400)
            body = json.dumps({"error": {"message": "invalid", "details": [{"index": 99, "reason": "?"}, "?"]}})
            self.send_response(400)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body.encode())

    script.RequestHandlerClass = NamesAnIndexOutside
    handler = make_handler(url=script.url, service="outside")
    logger = a_logger("outside", handler)
    for n in range(3):
        logger.info("record %d", n)
    assert handler.flush()
    assert (script.seen, handler.rejected, handler.sent) == ([400], 3, 0)


def test_a_batch_over_a_servers_smaller_request_limits_is_split_not_refused(tmp_path, capfd) -> None:
    """A server started with --max-records or --max-body-bytes below the handler's batch answered each batch 413,
    and every record of it was counted as rejected and lost, though each fitted alone (a new-user trial);
    `loglake send` halves such a batch until its parts fit, and so does the handler now."""
    small = ServerProcess(tmp_path / "data", free_port(), tmp_path / "server.log")
    small.extra_args = ("--max-records", "10", "--max-body-bytes", "20000")
    small.start(timeout=60)
    try:
        key = small.admin_key()
        handler = LoglakeHandler(small.url, api_key=key, service="split", batch_size=100, backoff=FAST)
        try:
            logger = a_logger("split", handler)
            for number in range(40):
                logger.info("record %d %s", number, "x" * 1000)  # 40 KB in all: two limits over
            assert handler.flush(30)
            assert (handler.sent, handler.rejected) == (40, 0)
        finally:
            handler.close()
        messages = [log["message"] for log in stored(small, key, "split")]
        assert sorted(messages) == sorted(f"record {number} {'x' * 1000}" for number in range(40))
        assert "refused a batch of records whole" not in capfd.readouterr().err
    finally:
        small.stop()


def test_the_handler_never_raises_into_the_application(make_handler) -> None:
    handler = make_handler(url="http://127.0.0.1:9", service="unreachable", flush_timeout=0.2)  # nothing listens
    logger = a_logger("unreachable", handler)
    logger.info("%d items", "not a number")  # a format that does not fit its arguments
    logger.info("huge extra", extra={"blob": "x" * 100_000, "deep": {"a": {"b": {"c": {"d": {"e": {}}}}}}})
    logger.info("unprintable", extra={"bad": Unprintable()})
    assert handler.flush() is False  # nothing can be sent; the wait is bounded
    handler.close()
    logger.info("after close")
    assert handler.errors == 1  # the bad format
    assert handler.dropped == 4  # three never sent, one logged after close


def test_a_batch_an_unexpected_error_cut_short_is_counted_dropped_and_a_flush_waiting_for_it_goes_on(
    server, key, make_handler, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An error no attempt expects (a bug in httpx, say: here its post raises one) lost the batch without a count,
    and the flush waiting for it waited its whole timeout; the records after it are sent as ever."""
    handler = make_handler(service="bug", flush_timeout=30)
    logger = a_logger("bug", handler)
    post = httpx.Client.post
    failures = iter([RuntimeError("a bug")])

    def post_once_failing(client: httpx.Client, *args: Any, **kwargs: Any) -> httpx.Response:
        failure = next(failures, None)
        if failure is not None:
            raise failure
        return post(client, *args, **kwargs)

    monkeypatch.setattr(httpx.Client, "post", post_once_failing)
    for number in range(3):
        logger.info("lost %d", number)
    started = time.monotonic()
    assert handler.flush() is True
    assert time.monotonic() - started < 10  # (not the flush_timeout of 30 s)
    assert (handler.dropped, handler.errors, handler.sent) == (3, 1, 0)
    logger.info("after the bug")
    assert handler.flush() is True
    assert [log["message"] for log in stored(server, key, "bug")] == ["after the bug"]
    assert handler.sent == 1


LOGGING_IN_A_SIGNAL_HANDLER = """
import logging, signal
from loglake.logging import LoglakeHandler
handler = LoglakeHandler("http://127.0.0.1:9", queue_size=1, flush_timeout=0.2)  # nothing listens: a full queue
logger = logging.getLogger("signalled")
logger.addHandler(handler)
signal.signal(signal.SIGUSR1, lambda *_: logger.warning("signalled"))
logger.warning("fills the queue")
with handler.counters._lock:  # as add() holds it, counting a record dropped, when the signal comes
    signal.raise_signal(signal.SIGUSR1)
print(handler.dropped)
"""


def test_a_signal_handler_that_logs_while_a_drop_is_counted_does_not_hang() -> None:
    """A signal handler runs on the thread it interrupts: one that logged while that thread counted a record dropped
    (the queue full, a server down) waited for the counters' lock its own thread held, and the program hung."""
    ran = subprocess.run(
        [sys.executable, "-c", LOGGING_IN_A_SIGNAL_HANDLER], capture_output=True, text=True, timeout=30
    )
    assert (ran.returncode, ran.stdout) == (0, "1\n"), ran.stderr


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no")


def test_records_over_the_limits_are_fitted_as_loglake_send_fits_them(server, key, make_handler) -> None:
    """The new-user trial's cases: an `extra=` over a limit no longer costs the record its other attributes
    and its traceback. It is folded at the fifth level, or kept as JSON text in `loglake.overflow`, and a
    message that is cut says its size, as `loglake send` does it."""
    handler = make_handler(service="fitting")
    logger = a_logger("fitting", handler)
    try:
        raise KeyError("missing")
    except KeyError:
        logger.exception("deep", extra={"order": {"lines": [{"sku": {"meta": {"dims": {"w": 1}}}}]}, "user": "dave"})
        logger.exception("large", extra={"blob": "x" * 70_000, "user": "dave"})
        logger.exception("many", extra={f"k{n:03}": n for n in range(200)})
    logger.info("m" * 300_000)
    logger.info("€" * 100_000)  # 3 bytes each: cut at a character, not in one
    logger.info("unprintable", extra={"bad": Unprintable(), "user": "dave"})
    logger.info("")
    assert handler.flush()
    deep, large, many, long_ascii, long_euro, unprintable, empty = stored(server, key, "fitting")
    assert handler.sent == 7 and handler.rejected == 0
    for log in (deep, large, many):
        assert (log["attributes"]["logger"], log["attributes"]["exception"]["type"]) == ("fitting", "KeyError")
        assert 'raise KeyError("missing")' in log["attributes"]["exception"]["traceback"]
    assert deep["attributes"]["order"] == {"lines": [{"sku": {"meta": '{"dims":{"w":1}}'}}]}
    assert deep["attributes"]["user"] == "dave" and len(deep["attributes"]) == 4
    assert sorted(large["attributes"]) == ["exception", "logger", "loglake.overflow", "user"]
    assert large["attributes"]["user"] == "dave"
    overflow = large["attributes"]["loglake.overflow"]
    assert overflow.startswith('{"blob":"xxx') and overflow.endswith("x... [cut: 70011 bytes in all]")
    assert len(many["attributes"]) == 128
    kept = {name: value for name, value in many["attributes"].items() if name.startswith("k")}
    overflowed = json.loads(many["attributes"]["loglake.overflow"])
    assert len(kept) == 125 and kept | overflowed == {f"k{n:03}": n for n in range(200)}
    assert sorted(kept) == [f"k{n:03}" for n in range(125)]  # the last in the caller's order overflow, as with send
    assert long_ascii["message"] == "m" * 262_144
    assert long_ascii["attributes"] == {"logger": "fitting", "loglake.truncated_bytes": 300_000}
    assert long_euro["message"] == "€" * 87_381  # 262,143 bytes
    assert long_euro["attributes"] == {"logger": "fitting", "loglake.truncated_bytes": 300_000}
    # (the value that is no JSON says so in its place; the others stay: they went with it, the logger's name aside)
    assert unprintable["attributes"] == {"logger": "fitting", "bad": "not JSON: no", "user": "dave"}
    assert empty["message"] == "(empty message)"


def test_text_that_no_utf8_holds_is_replaced_and_marked_not_the_batch_lost(server, key, make_handler) -> None:
    """A file name read with os.listdir (or sys.argv, os.environ) keeps the bytes that are no UTF-8 as lone
    surrogates, which no JSON encoder takes: such a message made the handler's thread give up on its whole batch,
    the records logged before and after it in the same second lost without a word, and flush() said all was sent.
    They become U+FFFD and the record says so, as `loglake send` reads such bytes."""
    handler = make_handler(service="surrogates")
    logger = a_logger("surrogates", handler)
    name = os.fsdecode(b"report-\xff.csv")
    logger.info("before")
    logger.info("cannot read %s", name)
    logger.info("attributes", extra={"file": name, "files": {name: [name]}, "user": "dave"})
    try:
        raise FileNotFoundError(f"no {name}")
    except FileNotFoundError:
        logger.exception("exception")
    logger.info("after")
    assert handler.flush()
    logs = stored(server, key, "surrogates")
    assert [log["message"] for log in logs] == [
        "before",
        "cannot read report-\ufffd.csv",
        "attributes",
        "exception",
        "after",
    ]
    assert (handler.sent, handler.errors, handler.dropped) == (5, 0, 0)
    before, message, attributes, exception, after = (log["attributes"] for log in logs)
    assert message == {"logger": "surrogates", "loglake.invalid_utf8": True}
    assert attributes == {
        "logger": "surrogates",
        "file": "report-\ufffd.csv",
        "files": {"report-\ufffd.csv": ["report-\ufffd.csv"]},
        "user": "dave",
        "loglake.invalid_utf8": True,
    }
    assert exception["exception"]["message"] == "no report-\ufffd.csv"
    assert exception["loglake.invalid_utf8"] is True
    assert before == after == {"logger": "surrogates"}


def test_a_record_that_cannot_be_made_costs_itself_not_its_batch(server, key, make_handler, capfd) -> None:
    """A queued record the handler's thread failed to make into a line (here a filter broke its time) took the
    records already in its batch with it, counted nowhere but in `errors`: flush() said all was sent."""
    handler = make_handler(service="onebroken")
    logger = a_logger("onebroken", handler)

    def breaking(record: logging.LogRecord) -> bool:
        if record.msg == "broken":
            record.created = None  # type: ignore[assignment]
        return True

    handler.addFilter(breaking)
    logger.info("before")
    logger.info("broken")
    logger.info("after")
    assert handler.flush()
    assert [log["message"] for log in stored(server, key, "onebroken")] == ["before", "after"]
    handler.close()
    assert (handler.sent, handler.dropped, handler.errors) == (2, 1, 1)
    assert "closing: 1 record(s) not delivered" in capfd.readouterr().err


def test_what_a_log_call_passes_is_stored_as_it_was_at_the_call(server, key, make_handler) -> None:
    """The handler formats later, on its own thread, only what cannot change meanwhile: a list argument is
    formatted at the call, and the record's fields are copied then (a later handler may change them)."""
    handler = make_handler(service="asatcall")
    logger = a_logger("asatcall", handler)

    class Rewriting(logging.Handler):  # a handler after ours that changes the record it is given
        def emit(self, record: logging.LogRecord) -> None:
            record.msg, record.args, record.levelno = "rewritten", (), logging.CRITICAL

    logger.addHandler(Rewriting())
    items = ["a"]
    logger.info("items %s, count %d, ratio %.1f", items, 1, 0.5)
    items.append("b")
    logger.warning("plain %s %s %s", "text", None, b"bytes")
    assert handler.flush()
    logs = stored(server, key, "asatcall")
    assert [(log["severity"], log["message"]) for log in logs] == [
        ("info", "items ['a'], count 1, ratio 0.5"),
        ("warning", "plain text None b'bytes'"),
    ]


def test_a_record_class_or_a_message_object_that_formats_itself(server, key, make_handler) -> None:
    """Brace-style logging, as the logging cookbook shows it: a LogRecord subclass with its own getMessage,
    and a message object whose str() formats; the handler formats both at the call, as they would."""
    handler = make_handler(service="braces")
    logger = a_logger("braces", handler)

    class BraceRecord(logging.LogRecord):
        def getMessage(self) -> str:
            return str(self.msg).format(*self.args)

    class BraceMessage:
        def __init__(self, fmt: str, *args: object) -> None:
            self.fmt, self.args = fmt, args

        def __str__(self) -> str:
            return self.fmt.format(*self.args)

    factory = logging.getLogRecordFactory()
    logging.setLogRecordFactory(BraceRecord)
    try:
        logger.info("order {} placed", 7)
    finally:
        logging.setLogRecordFactory(factory)
    names = ["x"]
    logger.info(BraceMessage("names {}", names))
    names.append("y")
    assert handler.flush()
    assert [log["message"] for log in stored(server, key, "braces")] == ["order 7 placed", "names ['x']"]


def test_a_records_trace_context_is_its_trace_and_span_ids(server, key, make_handler) -> None:
    """`extra={"trace_id": ...}` stayed an attribute, and the OpenTelemetry span current at a log call was not
    read: a `trace_id:` search found none of the handler's records (a new-user trial)."""
    handler = make_handler(service="traced")
    logger = a_logger("app.traced", handler)
    trace, span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    logger.info("given", extra={"trace_id": trace.upper(), "span_id": span, "order": 1})
    logger.info("instrumented", extra={"otelTraceID": trace, "otelSpanID": span})  # (LoggingInstrumentor's names)
    logger.info("not an id", extra={"trace_id": "abc"})  # (kept as sent, as the server keeps it)
    logger.info("a number", extra={"trace_id": 12345})  # (an application's own numbering: an attribute)
    tracer = TracerProvider().get_tracer("tests")
    with tracer.start_as_current_span("checkout") as current:
        logger.info("in a span")
        context = current.get_span_context()
    logger.info("after it")
    assert handler.flush()
    logs = {log["message"]: log for log in stored(server, key, "traced")}
    assert (logs["given"]["trace_id"], logs["given"]["span_id"]) == (trace, span)
    assert logs["given"]["attributes"] == {"logger": "app.traced", "order": 1}
    assert (logs["instrumented"]["trace_id"], logs["instrumented"]["span_id"]) == (trace, span)
    assert logs["instrumented"]["attributes"] == {"logger": "app.traced"}
    assert logs["not an id"].get("trace_id") is None and logs["not an id"]["attributes"]["trace_id"] == "abc"
    assert logs["in a span"]["trace_id"] == format(context.trace_id, "032x")
    assert logs["in a span"]["span_id"] == format(context.span_id, "016x")
    assert logs["a number"].get("trace_id") is None and logs["a number"]["attributes"]["trace_id"] == 12345
    assert logs["after it"].get("trace_id") is None and "trace_id" not in logs["after it"]["attributes"]
    assert handler.sent == 6 and handler.rejected == 0


def test_the_counts_said_at_close_are_final_while_a_slow_server_is_still_sent_to(server, make_handler, proxy, capfd):
    """close() timing out while the thread still worked through a big queue (a slow server) closed the client under
    it: its next batches failed after the closing line, counted as errors and dropped (some records twice, as left
    in the queue too), and the counters did not say what the line had."""
    script = proxy([])

    class Slow(_Proxy):
        def do_POST(self) -> None:
            time.sleep(0.05)
            super().do_POST()

    script.RequestHandlerClass = Slow
    handler = make_handler(url=script.url, service="slowclose", batch_size=5, flush_interval=600, flush_timeout=0.3)
    logger = a_logger("slowclose", handler)
    for number in range(500):
        logger.info("record %d", number)
    handler.close()
    said = [line for line in capfd.readouterr().err.splitlines() if "closing:" in line]
    counts = (handler.sent, handler.dropped, handler.rejected, handler.errors)
    time.sleep(1)  # the thread's batch under way, were it still counted
    assert (handler.sent, handler.dropped, handler.rejected, handler.errors) == counts
    assert handler.sent + handler.dropped == 500 and handler.dropped > 0 and handler.errors == 0, counts
    assert len(said) == 1 and f"closing: {handler.dropped} record(s) not delivered" in said[0], said
