"""The logging handler in a real child process that is kill -9ed and restarted while it logs, against a real
`loglake serve` that is itself killed and restarted once meanwhile: every record the handler reported as sent
(its on_sent ids) is stored, and no record is stored twice (retries carry the record's own id). And a process
that exits: what is queued is sent; with no server to take it, the exit waits once and says what was lost."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ServerProcess, free_port

CHILD = """
import logging, sys, time
from loglake.logging import LoglakeHandler
from loglake.retry import Backoff

reported = open(sys.argv[2], "a")

def on_sent(ids):
    reported.write("".join(i + "\\n" for i in ids))
    reported.flush()

handler = LoglakeHandler(sys.argv[1], service="crashy", batch_size=20, flush_interval=0.02, on_sent=on_sent,
                         backoff=Backoff(first=0.05, cap=0.2))
logger = logging.getLogger("crashy")
logger.addHandler(handler)
logger.setLevel(logging.INFO)
number = 0
while True:
    logger.info("run %s record %d", sys.argv[3], number)
    number += 1
    time.sleep(0.002)
"""
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def started(server: ServerProcess) -> ServerProcess:
    """The server started (given a minute: the machine may be busy), its log closed if it does not start."""
    try:
        return server.start(timeout=60)
    except BaseException:
        server.log.close()
        raise


def reported_ids(path: Path) -> list[str]:
    """The ids the children reported, whole lines only (a kill may cut the last one short)."""
    return [line for line in path.read_text().split("\n") if UUID.fullmatch(line)]


def wait_for_more(path: Path, than: int) -> int:
    deadline = time.monotonic() + 30
    while len(reported_ids(path)) <= than and time.monotonic() < deadline:
        time.sleep(0.02)
    return len(reported_ids(path))


# A child Python finds loglake (and the test's packages) where this one does.
CHILD_ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}


def run_program(program: str, url: str) -> subprocess.CompletedProcess[str]:
    """Run `program` (its argv[1] the server's URL) to its end, its output captured."""
    return subprocess.run(
        [sys.executable, "-c", program, url], env=CHILD_ENV, capture_output=True, text=True, timeout=60
    )


def test_kill_9_of_the_logging_process_and_the_server(tmp_path: Path) -> None:
    port = free_port()
    server = started(ServerProcess(tmp_path / "data", port, tmp_path / "server.log", ("--no-auth",)))
    reported = tmp_path / "reported.txt"
    reported.touch()
    children: list[subprocess.Popen] = []
    try:
        for run in range(4):
            with (tmp_path / f"child-{run}.log").open("wb") as output:
                child = subprocess.Popen(
                    [sys.executable, "-c", CHILD, server.url, str(reported), str(run)], env=CHILD_ENV, stderr=output
                )
            children.append(child)
            wait_for_more(reported, len(reported_ids(reported)) + 50)
            if run == 1:  # the server goes away under a logging child, and comes back on the same port
                server.kill()
                time.sleep(0.3)
                server = started(ServerProcess(tmp_path / "data", port, tmp_path / "server.log", ("--no-auth",)))
                wait_for_more(reported, len(reported_ids(reported)) + 50)
            child.send_signal(signal.SIGKILL)
            child.wait(10)
            assert child.returncode == -signal.SIGKILL, (tmp_path / f"child-{run}.log").read_text()
        ids = reported_ids(reported)
        assert len(ids) >= 200 and len(set(ids)) == len(ids)
        sql = "SELECT client_id, count(*) AS n FROM logs WHERE service = 'crashy' GROUP BY client_id"
        answer = httpx.post(server.url + "/query", json={"sql": sql, "limit": 1_000_000}, timeout=60).json()
        counts = {client_id: n for client_id, n in answer["rows"]}
        assert not answer["truncated"]
        assert {i for i in ids if counts.get(i) != 1} == set()  # every reported record stored exactly once
        assert max(counts.values()) == 1  # and no record of any run twice
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait(10)
        server.kill()


def test_what_is_queued_is_sent_when_the_process_exits(tmp_path: Path) -> None:
    """No flush() in the program: logging's shutdown at exit sends what is still queued. On the root logger
    at INFO, the handler also hears httpx log each batch it sends: those it leaves out (they would come back
    with every batch, one more each time)."""
    server = started(ServerProcess(tmp_path / "data", free_port(), tmp_path / "server.log", ("--no-auth",)))
    program = (
        "import logging, sys\n"
        "from loglake.logging import LoglakeHandler\n"
        "logging.basicConfig(level=logging.INFO, handlers=[LoglakeHandler(sys.argv[1], service='exiting',"
        " flush_interval=3600)])\n"
        "for n in range(250):\n"
        "    logging.info('before exit %d', n)\n"
    )
    try:
        run_program(program, server.url).check_returncode()
        sql = "SELECT count(*), count(DISTINCT message) FROM logs WHERE service = 'exiting'"
        answer = httpx.post(server.url + "/query", json={"sql": sql}, timeout=60).json()
        assert answer["rows"] == [[250, 250]]
    finally:
        server.stop()


@pytest.fixture
def silent_url() -> Iterator[str]:
    """A server that takes connections and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


@pytest.mark.parametrize("server", ["down", "silent"])
def test_at_exit_with_no_server_one_wait_and_the_records_lost_said(server: str, silent_url: str) -> None:
    """The trial's case (no server at exit: nothing said, and exit took two flush_timeouts) and a server that
    never answers (then logging's own shutdown, which flushes the closed handler, waited a third time). The
    exit waits flush_timeout once (and the last attempt's 0.2 s): a bound close() promises, not a speed."""
    url = f"http://127.0.0.1:{free_port()}" if server == "down" else silent_url  # (nothing listens on the port)
    program = (
        "import atexit, sys, time\n"
        "atexit.register(lambda: print(time.monotonic() - ended))  # registered first: runs after the handler's\n"
        "import logging\n"
        "from loglake.logging import LoglakeHandler\n"
        "logging.basicConfig(level=logging.INFO, handlers=[LoglakeHandler(sys.argv[1], flush_timeout=2)])\n"
        "for n in range(5):\n"
        "    logging.info('lost %d', n)\n"
        "ended = time.monotonic()\n"
    )
    done = run_program(program, url)
    assert done.returncode == 0, done.stderr
    said = f"loglake.logging: closing: 5 record(s) not delivered to {url} (sent: 0, refused by the server: 0)"
    if server == "down":
        said += "; the last attempt failed: ConnectError: [Errno 111] Connection refused"
    assert done.stderr.splitlines() == [said]
    assert float(done.stdout) < 3.8  # one wait of 2 s and the last attempt; two waits would take over 4 s


def test_what_atexit_functions_log_as_the_program_ends_is_sent_or_said(tmp_path: Path) -> None:
    """The handler closed in an atexit function of its own, registered as it was made: one the program registered
    before that (its "shutting down" record) ran after the close, and its records were dropped without a word, after
    a closing line that said nothing was lost. Now the handler closes after every atexit function registered once
    loglake.logging was imported; a record logged after the close (by one registered before that) is said."""
    server = started(ServerProcess(tmp_path / "data", free_port(), tmp_path / "server.log", ("--no-auth",)))
    program = (
        "import atexit, sys\n"
        "atexit.register(lambda: logging.warning('after the close'))  # registered before loglake.logging's import\n"
        "import logging\n"
        "from loglake.logging import LoglakeHandler\n"
        "atexit.register(lambda: logging.warning('shutting down'))  # registered before the handler was made\n"
        "logging.basicConfig(level=logging.INFO, handlers=[LoglakeHandler(sys.argv[1], service='ending')])\n"
        "logging.info('working')\n"
    )
    try:
        done = run_program(program, server.url)
        assert done.returncode == 0, done.stderr
        sql = "SELECT message FROM logs WHERE service = 'ending' ORDER BY message"
        answer = httpx.post(server.url + "/query", json={"sql": sql}, timeout=60).json()
        assert answer["rows"] == [["shutting down"], ["working"]]
        said = done.stderr.splitlines()
        assert len(said) == 1 and said[0].startswith(
            f"loglake.logging: a record logged after the handler closed was not sent to {server.url}"
        ), done.stderr
    finally:
        server.stop()
