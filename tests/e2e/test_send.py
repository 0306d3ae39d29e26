"""`loglake send` as a real process in a pipe, shipping to real `loglake serve` processes: other loggers'
lines, input that stays open, a server that restarts mid-stream, and Ctrl-C."""

from __future__ import annotations

import array
import fcntl
import os
import re
import signal
import subprocess
import sys
import termios
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.conftest import ServerProcess

pytestmark = pytest.mark.e2e

WAIT_S = 60  # bounds every wait: a test that would hang fails instead


class Sender:
    """`loglake send ARGS` reading a pipe this test writes to; its stderr is collected as it comes."""

    def __init__(self, server: ServerProcess, key: str, *args: str) -> None:
        self.read_end, self.write_end = os.pipe()
        env = {k: v for k, v in os.environ.items() if not k.startswith("LOGLAKE_")}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "loglake", "send", "--url", server.url, "--api-key", key, *args],
            stdin=self.read_end,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
        )
        self.stderr: list[str] = []
        self._reader = threading.Thread(target=self._collect, daemon=True)
        self._reader.start()

    def _collect(self) -> None:
        for line in self.process.stderr:
            self.stderr.append(line)

    def write(self, *lines: str) -> None:
        os.write(self.write_end, "".join(line + "\n" for line in lines).encode())

    def wait_until_read(self) -> None:
        """Until the sender has taken everything written from the pipe (the pipe holds no bytes)."""
        waiting = array.array("i", [0])
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            fcntl.ioctl(self.read_end, termios.FIONREAD, waiting)
            if waiting[0] == 0:
                return
            time.sleep(0.02)
        raise AssertionError(f"the sender did not read its input: {self.stderr}")

    def wait_for_stderr(self, text: str) -> None:
        deadline = time.monotonic() + WAIT_S
        while not any(text in line for line in self.stderr):
            assert time.monotonic() < deadline, f"no {text!r} on stderr: {self.stderr}"
            assert self.process.poll() is None, f"the sender exited: {self.stderr}"
            time.sleep(0.02)

    def close(self) -> None:
        os.close(self.write_end)
        self.write_end = -1

    def finish(self) -> int:
        returncode = self.process.wait(WAIT_S)
        self._reader.join(WAIT_S)
        return returncode

    def clean_up(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self._reader.join(10)
        self.process.stdout.close()
        self.process.stderr.close()
        for fd in (self.read_end, self.write_end):
            if fd >= 0:
                os.close(fd)


@pytest.fixture
def senders():
    started: list[Sender] = []

    def start(server: ServerProcess, key: str, *args: str) -> Sender:
        started.append(Sender(server, key, *args))
        return started[-1]

    yield start
    for sender in started:
        sender.clean_up()


def stored(server: ServerProcess, key: str, service: str) -> list[dict]:
    headers = {"authorization": f"Bearer {key}"}
    page = httpx.get(f"{server.url}/logs/recent", params={"service": service}, headers=headers, timeout=10).json()
    return list(reversed(page["logs"]))


def wait_for_records(server: ServerProcess, key: str, service: str, count: int) -> list[dict]:
    deadline = time.monotonic() + WAIT_S
    while len(found := stored(server, key, service)) < count:
        assert time.monotonic() < deadline, f"{len(found)} of {count} records arrived"
        time.sleep(0.05)
    return found


def service_name() -> str:
    return f"send-{uuid.uuid4().hex[:8]}"


def test_plain_and_other_loggers_lines_are_all_stored(server_factory, admin_key_of) -> None:
    """The new user's trial, with a few more loggers."""
    server = server_factory()
    key = admin_key_of(server)
    service = service_name()
    lines = (
        "starting app\n"
        '{"level":"info","msg":"request done","host":"web1"}\n'
        "after structured\n"
        '{"level":50,"time":1795322781801,"pid":7,"hostname":"web1","msg":"pino error","req":{"id":1}}\n'
        '{"level":"warning","msg":"logrus","time":"2026-11-22T05:46:21+01:00","func":"main.run"}\n'
        '{"level":"warn","ts":1795322781.5,"caller":"main.go:12","msg":"zap"}\n'
        f'{{"@timestamp":"2026-11-22T04:46:21.801Z","log.level":"error","message":"ecs","service":{{"name":"{service}-ecs"}}}}\n'
    )
    done = subprocess.run(
        [sys.executable, "-m", "loglake", "send", "--service", service, "--url", server.url, "--api-key", key],
        input=lines,
        capture_output=True,
        text=True,
        timeout=WAIT_S,
        env={k: v for k, v in os.environ.items() if not k.startswith("LOGLAKE_")},
    )
    assert done.returncode == 0, done.stderr
    assert "sent 7 record(s)" in done.stderr
    headers = {"authorization": f"Bearer {key}"}
    params = {"service": service, "since": "2026-11-22T00:00:00Z"}
    page = httpx.get(f"{server.url}/logs/recent", params=params, headers=headers, timeout=10).json()
    got = {r["message"]: (r["severity"], r["attributes"], r["timestamp"]) for r in page["logs"]}
    read_at = got["starting app"][2]
    assert got == {
        "starting app": ("info", {}, read_at),
        "request done": ("info", {"host": "web1"}, read_at),
        "after structured": ("info", {}, read_at),
        "pino error": ("error", {"pid": 7, "hostname": "web1", "req": {"id": 1}}, 1_795_322_781_801),
        "logrus": ("warning", {"func": "main.run"}, 1_795_322_781_000),
        "zap": ("warning", {"caller": "main.go:12"}, 1_795_322_781_500),
    }
    params["service"] = f"{service}-ecs"  # ECS's service.name, as the Elasticsearch endpoint maps it
    page = httpx.get(f"{server.url}/logs/recent", params=params, headers=headers, timeout=10).json()
    assert [(r["message"], r["severity"], r["attributes"], r["timestamp"]) for r in page["logs"]] == [
        ("ecs", "error", {}, 1_795_322_781_801)
    ]


def test_the_second_trials_lines_are_all_stored_and_changes_said(server_factory, admin_key_of) -> None:
    server = server_factory()
    key = admin_key_of(server)
    service = service_name()
    long_line = "z" * (300 * 1024)
    lines = (
        b'{"severity":"EMERGENCY","message":"gcp emerg"}\n'
        b'{"severity":"EMERGENCY","message":"gcp emerg2","trace":"t1"}\n'
        b'{"severity":"DEFAULT","message":"gcp default"}\n'
        b'{"message":"bad service","service":"a b"}\n'
        b'{"msg":"pino deep","a":{"b":{"c":{"d":{"e":{"f":1}}}}}}\n' + long_line.encode() + b"\nlatin1 caf\xe9\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "loglake", "send", "--service", service, "--url", server.url, "--api-key", key],
        input=lines,
        capture_output=True,
        timeout=WAIT_S,
        env={k: v for k, v in os.environ.items() if not k.startswith("LOGLAKE_")},
    )
    stderr = done.stderr.decode()
    assert done.returncode == 0, stderr
    assert "sent 7 record(s)" in stderr
    assert "line 6: stored with a change: message of 307200 bytes cut to 262144" in stderr
    assert "line 7: stored with a change: bytes that are no UTF-8 replaced by U+FFFD" in stderr
    got = [(r["message"][:20], r["severity"], r["attributes"]) for r in wait_for_records(server, key, service, 7)]
    assert got == [
        ("gcp emerg", "critical", {}),
        ("gcp emerg2", "critical", {"trace": "t1"}),
        ("gcp default", "info", {"severity": "DEFAULT"}),
        ("bad service", "info", {"service": "a b"}),
        ("pino deep", "info", {"a": {"b": {"c": {"d": {"e": '{"f":1}'}}}}}),
        ("z" * 20, "info", {"loglake.truncated_bytes": 307200}),
        ("latin1 caf\ufffd", "info", {"loglake.invalid_utf8": True}),
    ]


def test_input_that_stays_open_is_shipped_and_its_end_ends_the_sender(server_factory, admin_key_of, senders) -> None:
    server = server_factory()
    key = admin_key_of(server)
    service = service_name()
    sender = senders(server, key, "--service", service, "--max-wait", "0.05")
    sender.write("first", "second")
    assert [r["message"] for r in wait_for_records(server, key, service, 2)] == ["first", "second"]
    assert sender.process.poll() is None  # still reading
    sender.write("third")
    sender.close()
    assert sender.finish() == 0, sender.stderr
    assert [r["message"] for r in stored(server, key, service)] == ["first", "second", "third"]
    assert "Fatal Python error" not in "".join(sender.stderr)


def test_a_failure_while_the_input_is_open_exits_cleanly(server_factory, admin_key_of, senders) -> None:
    """It used to die with `Fatal Python error: _enter_buffered_busy` (exit 134): a reader thread still
    held stdin when the interpreter shut down."""
    server = server_factory()
    sender = senders(server, "llk_not-a-key", "--max-wait", "0.05")
    sender.write("refused: the key is not valid")
    returncode = sender.process.wait(WAIT_S)  # the input is still open
    assert returncode == 1, sender.stderr
    sender.finish()
    assert "HTTP 401" in "".join(sender.stderr) and "Fatal Python error" not in "".join(sender.stderr)


def test_a_server_restart_mid_stream_loses_nothing(tmp_path: Path, server_factory, admin_key_of, senders) -> None:
    server = server_factory()
    key = admin_key_of(server)
    service = service_name()
    sender = senders(server, key, "--service", service, "--max-wait", "0.05", "--retry-for", "120")
    sender.write(*(f"line {i}" for i in range(1, 5)))
    wait_for_records(server, key, service, 4)

    server.stop()
    sender.write(*(f"line {i}" for i in range(5, 9)))
    sender.wait_for_stderr("trying again")  # it found the server away and keeps the lines
    restarted = ServerProcess(server.data_dir, server.port, tmp_path / "restarted.log").start()
    try:
        sender.write(*(f"line {i}" for i in range(9, 13)))
        sender.close()
        assert sender.finish() == 0, sender.stderr
        messages = [r["message"] for r in stored(restarted, key, service)]
    finally:
        restarted.stop()
    assert sorted(messages, key=lambda m: int(m.split()[1])) == [f"line {i}" for i in range(1, 13)]  # each once
    # (said as `loglake tail` and `recent --follow` say it)
    assert any(
        re.match(r"loglake: cannot reach loglake .*; trying again (in \d+\.\d s|now)$", line) for line in sender.stderr
    )


def test_a_sender_away_from_its_server_says_so_once_then_now_and_then(server_factory, admin_key_of, senders) -> None:
    """As `loglake tail` and `recent --follow`: why once, then at most every SAY_AWAY_EVERY_S."""
    server = server_factory()
    key = admin_key_of(server)
    service = service_name()
    sender = senders(server, key, "--service", service, "--max-wait", "0.05", "--retry-for", "120")
    server.stop()
    sender.write("held")
    sender.wait_for_stderr("trying again")
    time.sleep(6)  # (pauses of about 0.1, 0.7, 1, 3.5 s: some four tries, fewer than SAY_AWAY_EVERY_S)
    assert len([line for line in sender.stderr if "trying again" in line]) == 1, sender.stderr
    # (what it held reaches the server once it is back: test_a_server_restart_mid_stream_loses_nothing; waited
    # for here, the sender's pauses grown to 8-16 s made this test the suite's slowest)


@pytest.mark.parametrize("signal_number", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_ctrl_c_sends_what_was_read_then_stops(server_factory, admin_key_of, senders, signal_number) -> None:
    server = server_factory()
    key = admin_key_of(server)
    service = service_name()
    sender = senders(server, key, "--service", service, "--max-wait", "3600", "--batch-size", "1000")
    sender.write("one", "two", "three")
    sender.wait_until_read()
    assert stored(server, key, service) == []  # held for a batch that is not due for an hour
    sender.process.send_signal(signal_number)
    assert sender.finish() == 0, sender.stderr
    assert [r["message"] for r in stored(server, key, service)] == ["one", "two", "three"]
    assert "sent 3 record(s)" in "".join(sender.stderr)


def test_a_second_ctrl_c_gives_up_on_the_unsent_lines_with_one_line_and_status_130(
    server_factory, admin_key_of, senders
) -> None:
    """Ctrl-C that cuts work short exits 130 in every command (it was 1 here, with `Error: interrupted`)."""
    server = server_factory()
    key = admin_key_of(server)
    sender = senders(server, key, "--service", service_name(), "--max-wait", "0.05", "--retry-for", "120")
    server.stop()
    sender.write("one", "two")
    sender.wait_for_stderr("trying again")  # the server is away: the lines are held
    sender.process.send_signal(signal.SIGINT)
    sender.wait_for_stderr("stopping: sending the lines read first")
    sender.process.send_signal(signal.SIGINT)
    assert sender.finish() == 130, sender.stderr
    assert "loglake send: interrupted; 0 record(s) sent, 2 read but not sent" in "".join(sender.stderr)
    assert "Traceback" not in "".join(sender.stderr)
