"""`loglake recent --follow` as a real process following a real `loglake serve`: records print in the
order they arrive, whatever their time, and a restart of the server is said, not hidden."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.conftest import ServerProcess
from tests.e2e.test_send import Sender

pytestmark = pytest.mark.e2e

WAIT_S = 60  # bounds every wait: a test that would hang fails instead


class Follower:
    """`loglake recent --follow --json ARGS`, its output lines collected as they come."""

    def __init__(self, server: ServerProcess, key: str, *args: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LOGLAKE_")}
        command = ["recent", "--follow", "--json", "--interval", "0.1", "--url", server.url, "--api-key", key, *args]
        self.process = subprocess.Popen(
            [sys.executable, "-m", "loglake", *command],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
        )
        self.records: list[dict] = []
        self.stderr: list[str] = []
        self._readers = [
            threading.Thread(target=self._collect, args=(self.process.stdout, self._record), daemon=True),
            threading.Thread(target=self._collect, args=(self.process.stderr, self.stderr.append), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _record(self, line: str) -> None:
        self.records.append(json.loads(line))

    @staticmethod
    def _collect(stream: object, keep: Callable[[str], None]) -> None:
        for line in stream:
            keep(line)

    def messages(self) -> list[str]:
        return [r["message"] for r in self.records]

    def wait_for(self, message: str) -> None:
        deadline = time.monotonic() + WAIT_S
        while message not in self.messages():
            assert time.monotonic() < deadline, f"not printed: {message!r}; printed {self.messages()}, {self.stderr}"
            assert self.process.poll() is None, f"the follower exited: {self.stderr}"
            time.sleep(0.02)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        for reader in self._readers:
            reader.join(10)
        self.process.stdout.close()
        self.process.stderr.close()


@pytest.fixture
def followers() -> Iterator[Callable[..., Follower]]:
    started: list[Follower] = []

    def start(server: ServerProcess, key: str, *args: str) -> Follower:
        started.append(Follower(server, key, *args))
        return started[-1]

    yield start
    for follower in started:
        follower.stop()


@pytest.fixture
def sender() -> Iterator[Callable[..., Sender]]:
    started: list[Sender] = []

    def start(server: ServerProcess, key: str, *args: str) -> Sender:
        started.append(Sender(server, key, *args))
        return started[-1]

    yield start
    for one in started:
        one.clean_up()


def post(server: ServerProcess, key: str, record: dict) -> None:
    headers = {"authorization": f"Bearer {key}"}
    assert httpx.post(f"{server.url}/logs", json=record, headers=headers, timeout=10).status_code == 201


def test_a_record_a_second_shipper_stamped_before_one_already_shown_is_printed(
    server_factory, admin_key_of, followers, sender
) -> None:
    """The new user's case: a second shipper batches for a second, so its record reaches the server
    after a newer one from the first shipper was printed."""
    server = server_factory()
    key = admin_key_of(server)
    service = f"follow-{uuid.uuid4().hex[:8]}"
    follower = followers(server, key, "--service", service)
    shown_at = int(time.time() * 1000)
    post(server, key, {"message": "from the first shipper", "service": service, "timestamp": shown_at})
    follower.wait_for("from the first shipper")

    second = sender(server, key, "--service", service, "--max-wait", "1")
    second.write(json.dumps({"message": "from the second shipper", "timestamp": shown_at - 1000}))
    follower.wait_for("from the second shipper")
    second.close()
    assert second.finish() == 0, second.stderr
    assert follower.messages() == ["from the first shipper", "from the second shipper"]
    assert [r["timestamp"] for r in follower.records] == [shown_at, shown_at - 1000]
    assert follower.stderr == []


def test_a_follow_outlives_a_restart_of_the_server_and_says_what_it_may_not_show(
    server_factory, admin_key_of, followers
) -> None:
    server = server_factory()
    key = admin_key_of(server)
    service = f"follow-{uuid.uuid4().hex[:8]}"
    follower = followers(server, key, "--service", service, "--since", "7d")
    post(server, key, {"message": "before the restart", "service": service})
    follower.wait_for("before the restart")

    server.stop()
    server.start()
    # stamped long before it reached the server: before the look back, and before recent's default window of a day
    # (the command said for it listed that window alone, not the follow's since)
    late = {"message": "late", "service": service, "timestamp": int(time.time() * 1000) - 6 * 86_400_000}
    post(server, key, late)
    post(server, key, {"message": "after the restart", "service": service})
    follower.wait_for("after the restart")
    # "before the restart" is in the look back after the restart too, and printed once. ("late" too, if it reached
    # the server after the follow's first read there.)
    assert [m for m in follower.messages() if m != "late"] == ["before the restart", "after the restart"]
    said = "".join(follower.stderr)
    assert "the server restarted" in said and "not shown" in said, said
    # What it may have missed: a command to run, not an HTTP route, carrying the follow's filters and server.
    hint = re.search(r"`(loglake recent [^`]*)` lists them by time", said)
    assert hint and "GET /logs" not in said, said
    words = shlex.split(hint.group(1))
    assert words[words.index("--service") + 1] == service and words[words.index("--url") + 1] == server.url, words
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGLAKE_")} | {"LOGLAKE_API_KEY": key}
    listed = subprocess.run(
        [sys.executable, "-m", "loglake", *words[1:], "--json"], capture_output=True, env=env, text=True, timeout=WAIT_S
    )
    assert listed.returncode == 0, listed.stderr
    assert "late" in [json.loads(line)["message"] for line in listed.stdout.splitlines()], listed.stdout


def test_a_follow_away_from_its_server_says_so_once_then_now_and_then(server_factory, admin_key_of, followers) -> None:
    """As `loglake tail`: why it is away once, then at most every SAY_AWAY_EVERY_S (a line at every try, some
    four in the first 6 s, buried the rest: a new-user trial)."""
    server = server_factory()
    key = admin_key_of(server)
    follower = followers(server, key)
    post(server, key, {"message": "while up"})
    follower.wait_for("while up")
    server.stop()
    time.sleep(6)  # (pauses of about 0.1, 0.7, 1, 3.5 s: some four tries, fewer than SAY_AWAY_EVERY_S)
    away = [line for line in follower.stderr if "; trying again" in line]
    assert len(away) == 1, follower.stderr
    # (back with the server: test_a_follow_outlives_a_restart_of_the_server_and_says_what_it_may_not_show)


def test_a_follow_waiting_for_its_server_says_its_pause_in_tenths_of_a_second(
    server_factory, admin_key_of, followers
) -> None:
    server = server_factory()
    follower = followers(server, admin_key_of(server))
    post(server, admin_key_of(server), {"message": "while up"})
    follower.wait_for("while up")
    server.stop()
    deadline = time.monotonic() + WAIT_S
    while not any("trying again" in line for line in follower.stderr):
        assert time.monotonic() < deadline, f"no word of the server being down: {follower.stderr}"
        time.sleep(0.02)
    said = next(line for line in follower.stderr if "trying again" in line)
    # The first pauses are under a second: in whole seconds they would read "in 0 s"; under 0.05 s, "now".
    assert re.search(r"^loglake: .*; trying again (in \d+\.\d s|now)$", said.rstrip()), said
