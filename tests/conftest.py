"""Shared fixtures: a data dir, an in-process app with keys, and real `loglake serve` processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result

from loglake.api.app import LoglakeApp
from loglake.cli import main
from loglake.config import Settings
from tests.certificates import certificates  # noqa: F401  (fixtures for every test)
from tests.moto_server import moto_endpoint  # noqa: F401  (fixtures for every test)
from tests.s3_server import object_store, s3_bucket, s3_server  # noqa: F401


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--network", action="store_true", help="Also run the tests that need the network.")


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """`-n auto` (make test): one worker more than the CPUs. Much of the suite waits on server processes,
    subprocesses and a browser rather than computing: on 2 cores, 3 workers ran it in 9 min 28 s where 2
    took 10 min 52 s, the CPUs 92 % busy (make test's --maxprocesses still caps it)."""
    return (os.cpu_count() or 1) + 1


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "clock_at(ms): the `app` fixture's clock stands still at ms (epoch ms)")
    # The processes tests start get Ctrl-C as at a terminal, however the suite was started: a shell's background
    # job (`make test &` without job control) starts with SIGINT ignored, which every child inherits through
    # exec, and the tests of what Ctrl-C does then saw it ignored (7 failed so). A handler is reset on exec.
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `network` (they ask the package registry) run only with --network: the suite runs offline."""
    if config.getoption("--network"):
        return
    skip = pytest.mark.skip(reason="needs the network; run with --network")
    for item in items:
        if "network" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def settings(data_dir: Path) -> Settings:
    return Settings(data_dir=data_dir, access_log="off")


@pytest.fixture
def app(request: pytest.FixtureRequest, settings: Settings) -> Iterator[LoglakeApp]:
    """The in-process app; under `pytest.mark.clock_at(ms)` its clock stands still at ms, so that records placed
    relative to that moment fall where the tests say."""
    marker = request.node.get_closest_marker("clock_at")
    options = {} if marker is None else {"clock": lambda: marker.args[0] / 1000}
    application = LoglakeApp.from_settings(settings, **options)
    yield application
    application.close()


def poll(condition: Callable[[], Any], what: str, timeout: float = 90.0) -> Any:
    """condition()'s first truthy answer, asked every 0.05 s; AssertionError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)
    return found


class Clock:
    """A clock the test sets (`now`, epoch seconds), for what takes a `clock=`."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def key_for(app: LoglakeApp, scopes: str = "admin", name: str | None = None, **kwargs: object) -> str:
    name = name or f"k-{scopes.replace(',', '-')}-{len(app.keystore.list(include_revoked=True))}"
    return app.keystore.create(name, frozenset(scopes.split(",")), **kwargs).secret


def threads_waiting_for_a_fifo_writer() -> int:
    """This process's threads blocked opening a FIFO for reading (Linux: wchan wait_for_partner): tests
    make a lake file a FIFO to hold a query at a known point for as long as they like."""
    return sum((task / "wchan").read_text() == "wait_for_partner" for task in Path("/proc/self/task").iterdir())


def asgi_client(app: LoglakeApp, key: str | None = None) -> httpx.AsyncClient:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://localhost", headers=headers)


@pytest.fixture
async def client(app: LoglakeApp) -> AsyncIterator[httpx.AsyncClient]:
    """An admin client of the in-process app."""
    async with asgi_client(app, key_for(app, "admin", "test-admin")) as c:
        yield c


# -- real server processes ---------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class ServerProcess:
    """A `loglake serve` child process on a free loopback port."""

    data_dir: Path
    port: int
    log_path: Path
    extra_args: tuple[str, ...] = ()
    process: subprocess.Popen | None = None
    preexec_fn: Callable[[], None] | None = None  # runs in the child before exec, e.g. to set rlimits
    extra_env: dict[str, str] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def printed_keys(self) -> list[str]:
        """The API keys the server printed in its log (a first start prints its admin key)."""
        return [line.strip() for line in self.log_path.read_text().splitlines() if line.strip().startswith("llk_")]

    def admin_key(self) -> str:
        """The admin key the server printed on its first start."""
        keys = self.printed_keys()
        assert keys, f"no key printed:\n{self.log_path.read_text()}"
        return keys[0]

    def start(self, timeout: float = 20.0) -> ServerProcess:
        cmd = [
            sys.executable,
            "-m",
            "loglake",
            "serve",
            "--data-dir",
            str(self.data_dir),
            "--port",
            str(self.port),
            *self.extra_args,
        ]
        env = {k: v for k, v in os.environ.items() if not k.startswith("LOGLAKE_")} | (self.extra_env or {})
        self.log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env, preexec_fn=self.preexec_fn
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.log.close()
                raise RuntimeError(f"loglake serve exited early:\n{self.log_path.read_text()}")
            try:
                # (ours: it says so before it serves; another test's server may answer on a port both were given)
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200 and self._announced():
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.stop()  # no caller will: it never got a server back (a running child and an open log would leak)
        raise RuntimeError(f"loglake serve did not answer in {timeout}s:\n{self.log_path.read_text()}")

    def _announced(self) -> bool:
        """Whether this server printed that it listens on its port (it does before it serves)."""
        return f":{self.port} (data: " in self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """kill -9: no shutdown handler runs."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)
        self.log.close()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.log.close()


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[callable]:
    started: list[ServerProcess] = []

    def start(data_dir: Path | None = None, *args: str, port: int | None = None, **options: Any) -> ServerProcess:
        """Options go to ServerProcess (extra_env, preexec_fn)."""
        data = data_dir or tmp_path / "server-data"
        attempts = 1 if port is not None else 3
        while True:
            server = ServerProcess(data, port or free_port(), tmp_path / "server.log", args, **options)
            attempts -= 1
            try:
                started.append(server.start())
            except RuntimeError as e:  # a free port another test's server took meanwhile: take another
                if attempts and "already in use" in str(e):
                    continue
                raise
            return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def admin_key_of() -> callable:
    """The admin key a server printed on its first start."""

    return ServerProcess.admin_key


# -- the CLI -----------------------------------------------------------------------------------


@pytest.fixture
def no_loglake_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The commands read LOGLAKE_* variables; the caller's shell must not steer these tests."""
    for name in list(os.environ):
        if name.startswith("LOGLAKE_"):
            monkeypatch.delenv(name)


def run_cli(*args: str, input: str | None = None) -> Result:
    """`loglake ARGS` in process, through click's CliRunner."""
    return CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)
