"""Starting and stopping real `loglake` processes: one server per data dir, SIGTERM ending a server as
Ctrl-C does, and Ctrl-C stopping a command's long work in process with one line and status 130."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shlex
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from loglake.lake.flush import ROWS_PER_ROUND, WORKER_MIN_ROUNDS
from loglake.store.sqlite import SQLiteHotStore
from tests.api.test_decode_workers import padded
from tests.ask.lakes import DAY, DAYS, START
from tests.conftest import ServerProcess, free_port, run_cli
from tests.e2e.test_backtest_serve import WAIT_S, eventually
from tests.store.contract import record

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("no_loglake_environment")]


def loglake(*args: str, **options: object) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGLAKE_")}
    return subprocess.Popen(
        [sys.executable, "-m", "loglake", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        **options,
    )


def test_a_second_server_on_the_same_data_dir_is_refused_and_names_the_first(
    server_factory: Callable[..., ServerProcess], admin_key_of: Callable[[ServerProcess], str]
) -> None:
    first = server_factory()
    assert first.process is not None
    second = loglake("serve", "--data-dir", str(first.data_dir), "--port", str(free_port()))
    out, err = second.communicate(timeout=30)
    assert second.returncode == 1, out + err
    assert f"another loglake server (pid {first.process.pid}) is serving {first.data_dir.resolve()} already" in err
    assert f"kill {first.process.pid}" in err and "--data-dir" in err
    # The first one serves on, alone.
    headers = {"authorization": f"Bearer {admin_key_of(first)}"}
    assert httpx.post(first.url + "/logs", json={"message": "still here"}, headers=headers).status_code == 201


def test_commands_on_the_data_dir_work_beside_its_server(
    server_factory: Callable[..., ServerProcess], admin_key_of: Callable[[ServerProcess], str]
) -> None:
    """Only servers exclude each other: keys (SQLite) and queries (read-only) share the data dir with its
    server; flush, compact and retention take turns with it (test_cli_lake's by-hand test)."""
    server = server_factory()
    data_dir = str(server.data_dir)
    created = run_cli("keys", "create", "--name", "beside", "--scopes", "ingest", "--data-dir", data_dir)
    assert created.exit_code == 0, created.output
    headers = {"authorization": f"Bearer {created.stdout.strip()}"}
    assert httpx.post(server.url + "/logs", json={"message": "beside"}, headers=headers).status_code == 201
    counted = run_cli("query", "SELECT count(*) FROM logs", "--format", "json", "--data-dir", data_dir)
    assert counted.exit_code == 0, counted.output
    assert json.loads(counted.stdout)["rows"] == [[1]]


def test_a_killed_servers_data_dir_can_be_served_again(
    server_factory: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    first = server_factory(tmp_path / "data")
    first.kill()  # kill -9: no shutdown ran, the lock went with the process
    again = server_factory(tmp_path / "data")
    assert httpx.get(again.url + "/healthz").status_code == 200


def test_sigterm_stops_the_server_as_ctrl_c_does(server_factory: Callable[..., ServerProcess]) -> None:
    server = server_factory()
    assert server.process is not None
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(WAIT_S) == 0  # it was 143: killed by the signal uvicorn raised again
    assert server.log_path.read_text().rstrip().endswith("loglake stopped")


def test_sigint_stops_a_server_started_with_sigint_ignored_as_it_stops_one_started_at_a_terminal(
    server_factory: Callable[..., ServerProcess],
) -> None:
    """A shell starts a background job (`make run &` in a script, `setsid make run &`) with SIGINT ignored. A
    `kill -INT` is still a request to stop, as uvicorn and gunicorn read it (they handle SIGINT whatever they
    inherited): the server stopped gracefully, but uvicorn then raised SIGINT again into the inherited
    SIG_IGN, so `loglake stopped` was never said (a new-user trial)."""
    server = server_factory(preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    assert server.process is not None
    server.process.send_signal(signal.SIGINT)
    assert server.process.wait(WAIT_S) == 0
    log = server.log_path.read_text()
    assert log.rstrip().endswith("loglake stopped") and "Traceback" not in log, log


def test_the_first_start_names_a_keys_command_that_runs_where_loglake_is_not_on_path(
    server_factory: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    """As after `make run`, which starts .venv/bin/loglake without putting .venv/bin on PATH."""
    bare = {"PATH": "/usr/bin:/bin"}
    server = server_factory(None, extra_env=bare)
    told = next(line for line in server.log_path.read_text().splitlines() if " keys create " in line)
    command = shlex.split(told.split(" keys create ")[0])
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGLAKE_")} | bare
    ran = subprocess.run([*command, "--version"], capture_output=True, text=True, env=env, timeout=30, check=False)
    assert ran.returncode == 0 and ran.stdout.startswith("loglake, version"), (told, ran.stderr)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_ctrl_c_stops_a_local_query_with_one_line_and_status_130(
    server_factory: Callable[..., ServerProcess],
) -> None:
    data_dir = server_factory().data_dir
    # SQL '-' is read from stdin: blocked there, the command has started (Ctrl-C before it is Python's).
    with loglake("query", "--data-dir", str(data_dir), "--timeout", "60", "-", stdin=subprocess.PIPE) as query:
        assert query.stdin is not None and query.stdout is not None and query.stderr is not None
        eventually(lambda: "pipe_read" in Path(f"/proc/{query.pid}/wchan").read_text(), "the command to read stdin")
        started = cpu_seconds(query.pid)
        query.stdin.write("SELECT count(*) FROM range(100000000000) a")
        query.stdin.close()
        # Opening the data dir and planning take a fraction of a second of CPU; DuckDB's scan, all it gets.
        while cpu_seconds(query.pid) - started < 2:
            assert query.poll() is None, query.stderr.read()
            time.sleep(0.05)
        query.send_signal(signal.SIGINT)
        status = query.wait(WAIT_S)  # promptly: it took DuckDB up to half a minute to notice Ctrl-C
        out, err = query.stdout.read(), query.stderr.read()
    assert status == 130, err
    assert err == "loglake query: interrupted\n"  # where it was a traceback ending in `Query interrupted`
    assert out == ""


def rule_runs(data_dir: Path) -> list[str]:
    """The outcomes of the rule runs recorded in the data dir, oldest first."""
    try:
        with contextlib.closing(sqlite3.connect(data_dir / "alerts.db")) as db:
            return [outcome for (outcome,) in db.execute("SELECT outcome FROM rule_runs ORDER BY id")]
    except sqlite3.OperationalError:  # not made yet
        return []


def test_ctrl_c_stops_rules_run_due_with_one_line_and_status_130_leaving_the_window_due(tmp_path: Path) -> None:
    """The rule's query ran on the main thread, where DuckDB took Ctrl-C for the query's error half a minute
    later: the run recorded as the rule's failure, a traceback, status 1."""
    data_dir, rules_dir = tmp_path / "data", tmp_path / "rules"
    data_dir.mkdir()
    rules_dir.mkdir()
    store = SQLiteHotStore(data_dir / "hot.db")
    now_ms = int(time.time() * 1000)
    store.submit([record(now_ms - 900_000 + i * 900, f"m{i}") for i in range(1000)]).result()  # the last 15 min
    store.close()
    (rules_dir / "slow.yml").write_text(
        "title: slow\nid: 55555555-6666-4777-8888-999999999999\nlevel: low\nschedule: 5m\n"
        "query: SELECT count(*) AS n FROM logs, range(100000000000) r WHERE r.range % 7 = 3\n"
    )
    with loglake("rules", "run-due", "--rules-dir", str(rules_dir), "--data-dir", str(data_dir)) as due:
        assert due.stderr is not None
        eventually(lambda: rule_runs(data_dir) == ["running"] or due.poll() is not None, "the rule's run to start")
        due.send_signal(signal.SIGINT)
        status = due.wait(WAIT_S)
        err = due.stderr.read()
    assert status == 130, err
    assert err == "loglake rules run-due: interrupted\n"
    assert rule_runs(data_dir) == ["running"]  # no failure: the next round marks it interrupted and runs it again


def test_ctrl_c_stops_rules_run_due_waiting_for_the_rules_lock(tmp_path: Path) -> None:
    """Waiting for another process's round (the rules lock), run-due ends at Ctrl-C, not when the lock is free."""
    data_dir, rules_dir = tmp_path / "data", tmp_path / "rules"
    data_dir.mkdir()
    rules_dir.mkdir()
    SQLiteHotStore(data_dir / "hot.db").close()
    (rules_dir / "any.yml").write_text(
        "title: any\nid: 55555555-6666-4777-8888-999999999999\nlevel: low\nquery: SELECT * FROM logs\n"
    )
    with (data_dir / "rules.lock").open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # as a server's round holds it
        with loglake("rules", "run-due", "--rules-dir", str(rules_dir), "--data-dir", str(data_dir)) as due:
            assert due.stderr is not None
            try:
                eventually(lambda: bool(having_open([due.pid], data_dir / "rules.lock")), "run-due to wait for it")
                due.send_signal(signal.SIGINT)
                status = due.wait(WAIT_S)
            finally:  # a run-due still waiting would wait for this test's lock for ever
                if due.poll() is None:
                    due.kill()
            err = due.stderr.read()
    assert status == 130, err
    assert err == "loglake rules run-due: interrupted\n"
    assert rule_runs(data_dir) == []


def test_ctrl_c_stops_recent_waiting_for_its_page_with_status_130_and_ends_a_follow_with_0(
    server_factory: Callable[..., ServerProcess],
) -> None:
    """Ctrl-C that cuts work short is 130 in every command (`recent` said 0); a follow has no other end: 0."""
    with socket.create_server(("127.0.0.1", 0)) as silent:  # takes the connection, never answers
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        with loglake("recent", "--url", url, "--api-key", "llk_x") as recent:
            assert recent.stdout is not None and recent.stderr is not None
            connection, _ = silent.accept()
            with connection:
                recent.send_signal(signal.SIGINT)
                status = recent.wait(WAIT_S)
            err = recent.stderr.read()
    assert status == 130, err
    assert err == "loglake recent: interrupted\n"
    server = server_factory()
    made = run_cli(
        "keys", "create", "--name", "follower", "--scopes", "ingest,read", "--data-dir", str(server.data_dir)
    )
    key = made.stdout.strip()
    sent = httpx.post(
        f"{server.url}/logs", json=[{"service": "web", "message": "hello"}], headers={"authorization": f"Bearer {key}"}
    )
    assert sent.status_code < 300, sent.text
    with loglake("recent", "--follow", "--url", server.url, "--api-key", key) as follow:
        assert follow.stdout is not None
        assert "hello" in follow.stdout.readline()  # the first page is printed: it follows now
        follow.send_signal(signal.SIGINT)
        assert follow.wait(WAIT_S) == 0


def children(pid: int) -> list[int]:
    """The child processes of `pid`, whichever of its threads started them (each thread lists its own)."""
    try:
        return [int(c) for task in Path(f"/proc/{pid}/task").iterdir() for c in (task / "children").read_text().split()]
    except FileNotFoundError:  # it has ended (or a thread of it, meanwhile)
        return []


def having_open(pids: list[int], path: Path) -> list[int]:
    """The processes among `pids` that have `path` open (and are still there)."""
    found = []
    for pid in pids:
        with contextlib.suppress(FileNotFoundError):  # gone meanwhile
            if any(os.path.realpath(fd) == str(path) for fd in Path(f"/proc/{pid}/fd").iterdir()):
                found.append(pid)
    return found


@pytest.fixture(scope="module")
def worker_backlog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A hot.db past two rounds of records (flush.py WORKER_MIN_ROUNDS), so that a worker process reads them:
    made once (it takes seconds), copied by each test that flushes it."""
    hot_db = tmp_path_factory.mktemp("backlog") / "hot.db"
    store = SQLiteHotStore(hot_db, durability="process")
    count = WORKER_MIN_ROUNDS * ROWS_PER_ROUND + 20_000
    step = DAYS * DAY // count
    for first in range(0, count, 20_000):  # (plain lines: lakes.fill's made them in 11 s, 28 s on a busy machine)
        last = min(count, first + 20_000)
        store.put([record(START + i * step, f"a line of the backlog, number {i}") for i in range(first, last)])
    store.close()
    return hot_db


def data_dir_with(hot_db: Path, tmp_path: Path) -> Path:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    shutil.copyfile(hot_db, data_dir / "hot.db")
    return data_dir


def test_ctrl_c_at_a_terminal_stops_a_flush_and_its_worker_with_one_line_and_status_130(
    tmp_path: Path, worker_backlog: Path
) -> None:
    """A terminal's Ctrl-C reaches the whole process group: the flush's worker process too, whose
    interrupted task used to fail the flush with its own traceback (NotSupportedError from the SQLite
    reader's cancel), exit status 1."""
    data_dir = data_dir_with(worker_backlog, tmp_path)
    with loglake("flush", "--all", "--data-dir", str(data_dir), start_new_session=True) as flush:
        assert flush.stdout is not None and flush.stderr is not None
        # At work: it has hot.db open (its initializer has run; Ctrl-C before it is the bootstrap's).
        workers: list[int] = []

        def worker_reading() -> bool:
            workers[:] = having_open(children(flush.pid), data_dir / "hot.db")
            return bool(workers) or flush.poll() is not None

        eventually(worker_reading, "the flush's worker to read the hot store")
        assert workers, f"the flush ended first: {flush.wait()}, {flush.stderr.read()}"
        for worker in workers:  # held: the flush waits on its worker when Ctrl-C comes
            os.kill(worker, signal.SIGSTOP)
        os.killpg(flush.pid, signal.SIGINT)
        time.sleep(0.5)  # the flush has it; so had its worker, pending, while it was in the terminal's group
        for worker in workers:
            os.kill(worker, signal.SIGCONT)
        status = flush.wait(WAIT_S)
        err = flush.stderr.read()
    assert status == 130, err
    assert err.endswith("loglake flush: interrupted\n") and "Traceback" not in err, err


def test_ctrl_c_at_a_terminal_while_the_flush_worker_starts_is_one_line_and_status_130(
    tmp_path: Path, worker_backlog: Path
) -> None:
    """Before its initializer took it out of the terminal's process group, a starting worker died of the Ctrl-C
    with its own traceback, and the flush with BrokenProcessPool in place of the Ctrl-C: status 1."""
    data_dir = data_dir_with(worker_backlog, tmp_path)
    status, err = _ctrl_c_while_its_worker_starts(
        "the flush's worker process", "flush", "--all", "--data-dir", str(data_dir)
    )
    assert status == 130, err
    assert err.endswith("loglake flush: interrupted\n") and "Traceback" not in err, err


def _ctrl_c_while_its_worker_starts(worker: str, *command: str) -> tuple[int, str]:
    """A Ctrl-C at a terminal (SIGINT to the command's process group) once `command`'s worker process has started
    (Python runs in it; its imports take half a second): the command's status and stderr."""
    with loglake(*command, start_new_session=True) as process:
        assert process.stderr is not None
        workers: list[int] = []

        def worker_starting() -> bool:
            for pid in children(process.pid):
                with contextlib.suppress(FileNotFoundError):  # gone meanwhile
                    if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes():
                        workers.append(pid)
            return bool(workers) or process.poll() is not None

        eventually(worker_starting, f"{worker} to start")
        assert workers, f"the command ended first: {process.wait()}, {process.stderr.read()}"
        time.sleep(0.1)
        os.killpg(process.pid, signal.SIGINT)
        return process.wait(WAIT_S), process.stderr.read()


def _ended(pid: int) -> bool:
    """Gone, or a zombie left for whoever reaps orphans."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


@pytest.mark.parametrize("end", ["SIGTERM", "kill -9"])
def test_the_decode_workers_end_with_their_server(
    server_factory: Callable[..., ServerProcess], admin_key_of: Callable[[ServerProcess], str], end: str
) -> None:
    server = server_factory(None, "--decode-workers", "1")
    assert server.process is not None
    headers = {"authorization": f"Bearer {admin_key_of(server)}", "content-type": "application/x-protobuf"}
    body = padded(ExportLogsServiceRequest()).SerializeToString()
    workers: list[int] = []

    def a_worker_decoded() -> bool:  # (the first exports are decoded in the server while its worker starts)
        assert httpx.post(server.url + "/v1/logs", content=body, headers=headers).status_code == 200
        metrics = httpx.get(server.url + "/metrics", headers=headers).text
        workers[:] = children(server.process.pid)
        return 'loglake_bodies_decoded_total{protocol="otlp",where="worker"}' in metrics

    eventually(a_worker_decoded, "an export decoded by a worker")
    assert workers
    if end == "SIGTERM":
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(WAIT_S) == 0
    else:
        server.process.kill()
        server.process.wait(WAIT_S)
    eventually(lambda: all(map(_ended, workers)), "the decode worker to end")


def test_ctrl_c_at_a_terminal_while_the_merge_worker_starts_is_one_line_and_status_130(tmp_path: Path) -> None:
    """As the flush's: before its initializer took it out of the terminal's process group, the compaction's
    starting merge worker died of the Ctrl-C with its own traceback, and the command with BrokenProcessPool."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    store = SQLiteHotStore(data_dir / "hot.db")
    day = 1_793_491_200_000  # 2026-11-01T00:00:00Z
    store.put([record(day + i * 300, f"merge me {i}", service=f"s{i % 7}") for i in range(260_000)])
    store.close()
    flushed = run_cli("flush", "--older-than", "60", "--data-dir", str(data_dir))  # not --all: it merges them
    # Two files (flush rounds of 200,000 rows) with more records than a merge in memory takes: the worker merges them.
    assert flushed.exit_code == 0, flushed.output
    status, err = _ctrl_c_while_its_worker_starts(
        "the compaction's merge worker", "compact", "--data-dir", str(data_dir)
    )
    assert status == 130, err
    assert err.endswith("loglake compact: interrupted\n") and "Traceback" not in err, err
