"""GET /logs/tail and `loglake tail` against a real `loglake serve`: matching records stream as they are
acknowledged, a slow reader is told what it missed, a key's tails are limited, and a stopping server
ends its streams instead of waiting on them."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime

import httpx
import pytest

from loglake.client import server_sent_events
from tests.conftest import ServerProcess

pytestmark = pytest.mark.e2e

WAIT_S = 30  # bounds every wait: a test that would hang fails instead


class TailReader:
    """A GET /logs/tail read on a thread, its events collected as they come."""

    def __init__(self, url: str, headers: dict, params: dict, start_reading: threading.Event | None = None) -> None:
        self.events: queue.Queue[tuple[str, dict]] = queue.Queue()
        self.status: int | None = None
        self.headers: httpx.Headers | None = None
        self.opened = threading.Event()
        self.ended = threading.Event()
        self._client = httpx.Client(base_url=url, headers=headers, timeout=WAIT_S)
        self._params = params
        self._start_reading = start_reading
        self._socket: socket.socket | None = None
        self._closing = False
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        assert self.opened.wait(WAIT_S), "the tail did not answer"

    def _read(self) -> None:
        try:
            with self._client.stream("GET", "/logs/tail", params=self._params) as response:
                self.status, self.headers = response.status_code, response.headers
                self._socket = response.extensions["network_stream"].get_extra_info("socket")
                self.opened.set()
                if self._start_reading is not None:
                    assert self._start_reading.wait(WAIT_S)
                for event in server_sent_events(response.iter_lines()):
                    self.events.put(event)
        except (httpx.HTTPError, OSError):
            if not self._closing:
                raise
        finally:
            self.opened.set()
            self.ended.set()

    def next(self) -> tuple[str, dict]:
        return self.events.get(timeout=WAIT_S)

    def records(self, count: int) -> list[dict]:
        found = []
        while len(found) < count:
            name, data = self.next()
            assert name == "record", (name, data)
            found.append(data)
        return found

    def close(self) -> None:
        """Hang up, as a browser closing its tab does (the reading thread wakes up to the closed socket)."""
        self._closing = True
        if self._socket is not None and not self.ended.is_set():
            self._socket.shutdown(socket.SHUT_RDWR)
        self._thread.join(WAIT_S)
        self._client.close()


@pytest.fixture
def server(server_factory: Callable[..., ServerProcess]) -> ServerProcess:
    return server_factory(None, "--max-tails-per-key", "2", "--access-log", "off")


@pytest.fixture
def key(server: ServerProcess, admin_key_of: Callable[[ServerProcess], str]) -> str:
    return admin_key_of(server)


@contextmanager
def tail_of(server: ServerProcess, key: str, **params: str) -> Iterator[TailReader]:
    reader = TailReader(server.url, {"authorization": f"Bearer {key}"}, params)
    try:
        yield reader
    finally:
        reader.close()


def send(server: ServerProcess, key: str, records: list[dict]) -> list[str]:
    response = httpx.post(
        f"{server.url}/logs", json=records, headers={"authorization": f"Bearer {key}"}, timeout=WAIT_S
    )
    assert response.status_code == 201, response.text
    return response.json()["logIds"]


def test_matching_records_stream_as_they_are_acknowledged(server: ServerProcess, key: str) -> None:
    with tail_of(server, key, q='timeout "db pool" user:alice -service:web') as tail:
        assert tail.status == 200 and tail.headers is not None
        assert tail.headers["content-type"] == "text/event-stream; charset=utf-8"
        assert "frame-ancestors 'none'" in tail.headers["content-security-policy"]
        sent = send(
            server,
            key,
            [
                {"service": "api", "message": "timeout in db pool", "attributes": {"user": "alice"}},
                {"service": "web", "message": "timeout in db pool", "attributes": {"user": "alice"}},
                {"service": "api", "message": "timeout in db", "attributes": {"user": "alice"}},
                {"service": "api", "message": "timeout in db pool", "attributes": {"user": "bob"}},
                # a late record, stamped a day ago: a tail shows what arrives, whatever its time
                {
                    "service": "api",
                    "message": "TIMEOUT in DB POOL again",
                    "attributes": {"user": "Alice"},
                    "timestamp": int(time.time() * 1000) - 86_400_000,
                },
            ],
        )
        first, late = tail.records(2)
        assert [first["logId"], late["logId"]] == [sent[0], sent[4]]
        stored = httpx.get(f"{server.url}/logs/{sent[0]}", headers={"authorization": f"Bearer {key}"}).json()
        assert first == stored  # the record as the API shows it anywhere else
        send(server, key, [{"service": "api", "message": "timeout db pool", "attributes": {"user": "alice"}}])
        assert tail.records(1)[0]["message"] == "timeout db pool"
        assert tail.events.empty()


def test_filters_apply_and_a_tail_starts_with_what_arrives_after_it(server: ServerProcess, key: str) -> None:
    send(server, key, [{"service": "api", "severity": "error", "message": "before the tail"}])
    with tail_of(server, key, service="api", min_severity="warning") as tail:
        send(
            server,
            key,
            [
                {"service": "api", "severity": "info", "message": "too mild"},
                {"service": "db", "severity": "error", "message": "other service"},
                {"service": "api", "severity": "critical", "message": "this one"},
            ],
        )
        assert [r["message"] for r in tail.records(1)] == ["this one"]


def test_a_slow_reader_is_told_how_many_records_it_missed(server: ServerProcess, key: str) -> None:
    """The client reads nothing while 40 MB of matching records arrive: its socket fills, the server's
    queue for it fills, and the rest is dropped and counted. Every matching record is either sent or
    counted, none twice."""
    go = threading.Event()
    reader = TailReader(server.url, {"authorization": f"Bearer {key}"}, {"q": "bulky"}, start_reading=go)
    try:
        batches, per_batch = 40, 100
        for b in range(batches):
            send(server, key, [{"message": f"bulky {b}-{i} " + "x" * 10_000} for i in range(per_batch)])
        send(server, key, [{"message": "bulky last"}])
        go.set()
        delivered, dropped = [], 0
        while len(delivered) + dropped < batches * per_batch + 1:
            name, data = reader.next()
            if name == "record":
                delivered.append(data["message"].split(" x")[0])
            else:
                assert name == "dropped", (name, data)
                dropped += data["count"]
        assert dropped > 0
        assert len(delivered) + dropped == batches * per_batch + 1
        assert len(set(delivered)) == len(delivered)
    finally:
        reader.close()


def test_a_key_holds_a_limited_number_of_tails(server: ServerProcess, key: str) -> None:
    other = httpx.post(
        f"{server.url}/admin/keys",
        json={"name": "other", "scopes": ["read"]},
        headers={"authorization": f"Bearer {key}"},
    ).json()["secret"]
    with tail_of(server, key), tail_of(server, key) as second:
        third = httpx.get(f"{server.url}/logs/tail", headers={"authorization": f"Bearer {key}"})
        assert third.status_code == 429
        error = third.json()["error"]
        assert error["code"] == "too_many_tails" and "already has 2 live tails open" in error["message"]
        with tail_of(server, other) as others:  # another key's tails are its own
            assert others.status == 200
        second.close()
        _eventually(lambda: _opens(server, key))  # one closed: room for one more, once the server saw it go


def test_a_browser_session_tails_with_its_cookie(server: ServerProcess, key: str) -> None:
    session = httpx.post(f"{server.url}/session", json={"key": key})
    cookie = {"cookie": f"loglake_session={session.cookies['loglake_session']}"}
    reader = TailReader(server.url, cookie, {"q": "from-browser"})
    try:
        assert reader.status == 200
        send(server, key, [{"message": "from-browser hello"}])
        assert reader.records(1)[0]["message"] == "from-browser hello"
    finally:
        reader.close()


def test_revoking_a_key_ends_its_open_tails(server: ServerProcess, key: str) -> None:
    """A key revoked (by `loglake keys revoke`, another process) ends the tails it holds, its bearer's and its
    browser session's, with an error event, and they send nothing after: before, they streamed on for as long as
    their connections lasted, while the key's next request was refused."""
    admin = {"authorization": f"Bearer {key}"}
    made = httpx.post(f"{server.url}/admin/keys", json={"name": "dashboard", "scopes": ["read"]}, headers=admin)
    secret = made.json()["secret"]
    session = httpx.post(f"{server.url}/session", json={"key": secret})
    cookie = {"cookie": f"loglake_session={session.cookies['loglake_session']}"}
    bearer, browser = (
        TailReader(server.url, {"authorization": f"Bearer {secret}"}, {}),
        TailReader(server.url, cookie, {}),
    )
    try:
        send(server, key, [{"message": "before the revocation"}])
        for tail in (bearer, browser):
            assert tail.records(1)[0]["message"] == "before the revocation"
        env = {k: v for k, v in os.environ.items() if not k.startswith("LOGLAKE_")}
        revoke = [sys.executable, "-m", "loglake", "keys", "revoke", "dashboard", "--data-dir", str(server.data_dir)]
        subprocess.run(revoke, check=True, env=env, capture_output=True)
        send(server, key, [{"message": "after the revocation"}])
        for tail in (bearer, browser):
            name, data = tail.next()
            assert name == "error" and data["message"].startswith("revoked API key"), (name, data)
            assert tail.ended.wait(WAIT_S)
            assert tail.events.empty()
    finally:
        bearer.close()
        browser.close()


def test_signing_out_ends_the_tails_the_session_opened(server: ServerProcess, key: str) -> None:
    """A tail opened in a browser session ends when the session does (signed out in another tab), as the session's
    next request would be refused; before, it streamed on while its key stayed active."""
    admin = {"authorization": f"Bearer {key}"}
    secret = httpx.post(f"{server.url}/admin/keys", json={"name": "viewer", "scopes": ["read"]}, headers=admin)
    session = httpx.post(f"{server.url}/session", json={"key": secret.json()["secret"]})
    cookie = {"cookie": f"loglake_session={session.cookies['loglake_session']}"}
    browser = TailReader(server.url, cookie, {})
    try:
        send(server, key, [{"message": "before signing out"}])
        assert browser.records(1)[0]["message"] == "before signing out"
        signed_out = httpx.delete(
            f"{server.url}/session", headers={**cookie, "x-csrf-token": session.json()["csrf_token"]}
        )
        assert signed_out.status_code == 204
        send(server, key, [{"message": "after signing out"}])
        name, data = browser.next()
        assert name == "error" and data["message"].startswith("the session has expired or was signed out"), data
        assert browser.ended.wait(WAIT_S)
        assert browser.events.empty()
    finally:
        browser.close()


def test_a_stopping_server_ends_its_tails_instead_of_waiting_for_them(
    server_factory: Callable[..., ServerProcess], admin_key_of: Callable[[ServerProcess], str]
) -> None:
    server = server_factory()  # its log on stderr: uvicorn says there when it gave up waiting for a response
    key = admin_key_of(server)
    with tail_of(server, key) as tail:
        assert server.process is not None
        server.process.send_signal(signal.SIGTERM)
        name, data = tail.next()
        assert name == "end" and data["reason"] == "the server is stopping"
        assert tail.ended.wait(WAIT_S)
        assert server.process.wait(WAIT_S) == 0  # SIGTERM stops serve as Ctrl-C does
    assert "timeout graceful shutdown exceeded" not in server.log_path.read_text()


def test_loglake_tail_prints_records_as_they_arrive_until_ctrl_c(server: ServerProcess, key: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGLAKE_")}
    command = [sys.executable, "-m", "loglake", "tail", "--json", "--url", server.url, "--api-key", key]
    with subprocess.Popen(
        [*command, "deploy", "-service:web"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True
    ) as process:
        try:
            lines: queue.Queue[str] = queue.Queue()
            threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True).start()
            deadline = time.monotonic() + WAIT_S
            printed: list[dict] = []
            while not printed and time.monotonic() < deadline:  # records sent before the tail opened never show
                send(
                    server, key, [{"service": "web", "message": "deploy web"}, {"service": "api", "message": "deploy"}]
                )
                with contextlib.suppress(queue.Empty):
                    printed.append(json.loads(lines.get(timeout=0.5)))
            assert printed and printed[0]["service"] == "api" and printed[0]["message"] == "deploy"
            process.send_signal(signal.SIGINT)
            assert process.wait(WAIT_S) == 0
            assert "Traceback" not in process.stderr.read()
        finally:
            if process.poll() is None:
                process.kill()


@pytest.mark.parametrize("command", [["tail", "--json"], ["recent", "--follow", "--json", "--since", "now"]])
def test_a_follow_started_in_the_background_by_a_script_stops_on_sigint(
    server: ServerProcess, key: str, command: list[str]
) -> None:
    """A script's `loglake tail > f &` starts with SIGINT ignored (POSIX shells do that to background jobs), which
    left Python without KeyboardInterrupt: `kill -INT` and `timeout -s INT` did nothing (trial s16 found three
    follows still running). Taken as `serve` takes it: the command ends as Ctrl-C ends it, exit 0."""
    with _started_by_a_script(server, key, command) as process:
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True).start()
        assert _printed_while_sending(server, key, lines, "following")  # it runs, past its start
        process.send_signal(signal.SIGINT)
        assert process.wait(WAIT_S) == 0


@pytest.mark.parametrize("command", [["tail", "--json"], ["recent", "--follow", "--json", "--since", "now"]])
def test_a_sigint_sent_while_the_command_starts_is_not_lost(
    server: ServerProcess, key: str, command: list[str]
) -> None:
    """`loglake tail & P=$!; kill -INT $P` in a script: the signal came while Python imported the CLI, before the
    command let Ctrl-C through, and SIGINT ignored dropped it: the tail ran on (a new-user trial)."""
    with _started_by_a_script(server, key, command) as process:
        # Sent once `loglake` holds SIGINT (its first step), while the CLI is still being imported (half a second or
        # more): earlier, Python itself is still starting (a hundred ms on a busy machine), and the signal is lost as
        # for any program started with it ignored.
        deadline = time.monotonic() + WAIT_S
        while not _sigint_blocked(process.pid):
            assert time.monotonic() < deadline and process.poll() is None, "loglake never held SIGINT"
            time.sleep(0.001)
        process.send_signal(signal.SIGINT)
        assert process.wait(WAIT_S) == 0


@contextmanager
def _started_by_a_script(server: ServerProcess, key: str, command: list[str]) -> Iterator[subprocess.Popen]:
    """`loglake COMMAND` as a shell script starts it in the background: with SIGINT ignored; killed at the end."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGLAKE_")}
    follow = [sys.executable, "-m", "loglake", *command, "--url", server.url, "--api-key", key]
    ignore_sigint = lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)  # noqa: E731 - what the shell does
    with subprocess.Popen(
        follow, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True, preexec_fn=ignore_sigint
    ) as process:
        try:
            yield process
        finally:
            if process.poll() is None:
                process.kill()


def _sigint_blocked(pid: int) -> bool:
    """Whether the process blocks SIGINT (Linux: /proc's SigBlk mask)."""
    with open(f"/proc/{pid}/status") as status_file:
        status = status_file.read()
    mask = int(next(line for line in status.splitlines() if line.startswith("SigBlk:")).split()[1], 16)
    return bool(mask & (1 << (signal.SIGINT - 1)))


def _opens(server: ServerProcess, key: str) -> bool:
    headers = {"authorization": f"Bearer {key}"}
    with httpx.stream("GET", f"{server.url}/logs/tail", headers=headers, timeout=WAIT_S) as response:
        return response.status_code == 200


def _eventually(check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not check():
        assert time.monotonic() < deadline
        time.sleep(0.05)


@pytest.mark.parametrize(
    ("stop", "ended"),
    [("stop", "(the server is stopping); reconnecting"), ("kill", "(lost loglake at http://127.0.0.1:")],
)
def test_loglake_tail_waits_out_a_restart_of_the_server_and_goes_on(
    server_factory: Callable[..., ServerProcess], admin_key_of: Callable[[ServerProcess], str], stop: str, ended: str
) -> None:
    """Stopped (the server ends the stream) or killed (the stream is lost): either way the tail goes on."""
    server = server_factory(None, "--access-log", "off")
    key = admin_key_of(server)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGLAKE_")}
    command = [sys.executable, "-m", "loglake", "tail", "--json", "--url", server.url, "--api-key", key, "restartme"]
    with _tail_process(command, env) as (process, lines, said):
        assert _printed_while_sending(server, key, lines, "restartme before")
        getattr(server, stop)()
        server.start()
        assert _printed_while_sending(server, key, lines, "restartme after")
        assert process.poll() is None  # still tailing
        process.send_signal(signal.SIGINT)
        assert process.wait(WAIT_S) == 0
        stderr = "".join(said)
        assert f"loglake: the tail ended {ended}" in stderr and "reconnecting" in stderr, stderr
        assert "the tail is back" in stderr and "are not shown" in stderr, stderr
        assert "Traceback" not in stderr


def test_back_after_a_restart_the_tail_names_the_command_that_lists_what_it_missed(
    server_factory: Callable[..., ServerProcess], admin_key_of: Callable[[ServerProcess], str]
) -> None:
    """The command carries the tail's search and filters (and its server): it lists what the tail would have
    shown while it was away, and nothing else."""
    server = server_factory(None, "--access-log", "off")
    key = admin_key_of(server)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGLAKE_")} | {"LOGLAKE_API_KEY": key}
    filters = ["--service", "api", "--min-severity", "warning"]
    command = [sys.executable, "-m", "loglake", "tail", "--json", "--url", server.url, *filters, "-healthcheck", "gone"]
    with _tail_process(command, env) as (process, lines, said):
        assert _printed_while_sending(server, key, lines, "gone before", severity="error")
        server.stop()
        server.start()
        assert _printed_while_sending(server, key, lines, "gone after", severity="error")
        process.send_signal(signal.SIGINT)
        assert process.wait(WAIT_S) == 0
    hint = re.search(r"`(loglake search [^`]*)` lists them by time", "".join(said))
    assert hint, said
    words = shlex.split(hint.group(1))
    assert words[words.index("--service") : words.index("--service") + 4] == filters, words
    assert words[words.index("--url") + 1] == server.url and words[-2:] == ["--", "-healthcheck gone"], words
    since = words[words.index("--since") + 1]
    stamped = int(datetime.fromisoformat(since).timestamp() * 1000)  # a moment the tail was away
    missed = {"service": "api", "severity": "error", "message": "gone missed", "timestamp": stamped}
    send(server, key, [missed])
    for other in ({"service": "web"}, {"severity": "info"}, {"message": "gone healthcheck"}, {"message": "other"}):
        send(server, key, [missed | other])  # each unlike the tail's search or filters in one way
    listed = subprocess.run(
        [sys.executable, "-m", "loglake", "search", "--json", *words[2:]],
        capture_output=True,
        env=env,
        text=True,
        timeout=WAIT_S,
    )
    assert listed.returncode == 0, listed.stderr
    messages = {json.loads(line)["message"] for line in listed.stdout.splitlines()}
    assert messages - {"gone after"} == {"gone missed"}  # ("gone after" too, if sent before the tail was back)


@contextmanager
def _tail_process(
    command: list[str], env: dict[str, str]
) -> Iterator[tuple[subprocess.Popen, queue.Queue[str], list[str]]]:
    """`command` (a `loglake tail`) running: its stdout's lines in a queue and its stderr's in a list as they come;
    killed if the block leaves it running."""
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True) as process:
        try:
            lines: queue.Queue[str] = queue.Queue()
            said: list[str] = []
            threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True).start()
            threading.Thread(target=lambda: [said.append(line) for line in process.stderr], daemon=True).start()
            yield process, lines, said
        finally:
            if process.poll() is None:
                process.kill()


def _printed_while_sending(
    server: ServerProcess, key: str, lines: queue.Queue[str], message: str, **fields: str
) -> bool:
    """Send `message` until the tail prints it (what arrives before a tail opens is not shown)."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        send(server, key, [{"service": "api", "message": message, **fields}])
        with contextlib.suppress(queue.Empty):
            while True:
                if json.loads(lines.get(timeout=0.5))["message"] == message:
                    return True
    return False


def test_loglake_tail_away_from_its_server_says_so_once_and_is_back_soon_after_it(
    server_factory: Callable[..., ServerProcess], admin_key_of: Callable[[ServerProcess], str]
) -> None:
    """What arrives while a tail is away is not shown, so it asks again at least every 2 s (cli_tail's
    RECONNECT_BACKOFF: a client's pauses grow to 30 s), and it says why it is away once, then at most every
    SAY_AWAY_EVERY_S: a line at every try, three a second, buried the rest (a new-user trial)."""
    server = server_factory(None, "--access-log", "off")
    key = admin_key_of(server)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGLAKE_")}
    command = [sys.executable, "-m", "loglake", "tail", "--json", "--url", server.url, "--api-key", key, "away"]
    with _tail_process(command, env) as (process, lines, said):
        assert _printed_while_sending(server, key, lines, "away before")
        server.stop()
        time.sleep(6)  # (some ten tries at the 2 s cap's pauses, fewer than SAY_AWAY_EVERY_S)
        away = [line for line in said if "; trying again" in line]  # (the first: a stopping server's 503)
        assert len(away) == 1, said
        server.start()
        assert _printed_while_sending(server, key, lines, "away after")
        process.send_signal(signal.SIGINT)
        assert process.wait(WAIT_S) == 0
