"""Rules in real processes: `loglake serve` runs the rules folder on schedule (reloading it, reporting a
bad file, metrics), and a `loglake rules run-due` or a `loglake serve` killed with -9 in the middle of
a rule's run leaves its window to the next run, which evaluates it once and raises its alert once,
delivered once to each of its destinations."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from loglake.lake.layout import app_logs_key
from loglake.lake.manifest import LakeFile, add_files, retire_files
from loglake.lake.schema import LAKE_SCHEMA
from loglake.lake.tables import APP_LOGS_TABLE
from loglake.model import Limits, validate_batch
from loglake.store.sqlite import SQLiteHotStore
from tests.conftest import ServerProcess
from tests.rules.conftest import write_rule

pytestmark = pytest.mark.e2e

HOUR = 3_600_000
CRITICAL = """
title: Critical records
id: aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee
level: critical
logsource: {{product: loglake, service: app_logs}}
detection: {{sel: {{severity: critical}}, condition: sel}}
loglake: {{schedule: {schedule}, delay: {delay}, group_by: [service]}}
"""


def wait_for(condition: Callable[[], object], what: str, timeout: float = 120.0, data: Path | None = None) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.1)
    runs = query(data, "SELECT * FROM rule_runs ORDER BY id DESC LIMIT 20") if data else []
    raise AssertionError(f"gave up waiting for {what}; the last runs: {runs}")


def query(data: Path, sql: str) -> list[tuple]:
    conn = sqlite3.connect(data / "alerts.db")
    try:
        return conn.execute(sql).fetchall()
    except sqlite3.OperationalError:  # not made yet
        return []
    finally:
        conn.close()


def test_serve_runs_the_rules_folder_reloads_it_and_reports_a_bad_file(
    server_factory: Callable[..., ServerProcess], admin_key_of: Callable[[ServerProcess], str], tmp_path: Path
) -> None:
    rules = tmp_path / "rules"
    write_rule(rules, "critical.yml", CRITICAL.format(schedule="2s", delay="1s"))
    write_rule(rules, "bad.yml", "title: [unclosed\n")
    # A busy machine may fall behind a 2-second schedule: catching up must not skip the record's window.
    catch_up = ("--rules-catch-up-windows", "100000")
    server = server_factory(tmp_path / "data", "--rules-dir", str(rules), "--no-auth", *catch_up)
    data = server.data_dir
    # A rule seen for the first time starts with its latest window: the record comes after that.
    wait_for(lambda: query(data, "SELECT 1 FROM rule_runs WHERE outcome = 'ok'"), "the first run", data=data)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        sent = client.post("/logs", json={"service": "db", "severity": "critical", "message": "disk gone"})
        assert sent.status_code == 201
        alerts = wait_for(lambda: query(data, "SELECT title, level, status FROM alerts"), "the alert", data=data)
        assert alerts == [("Critical records", "critical", "open")]
        assert query(data, "SELECT kind FROM alert_events") == [("trigger",)]
        metrics = client.get("/metrics").text
        assert 'loglake_rule_runs_total{rule="aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee",outcome="ok"}' in metrics
        assert 'loglake_rule_matches_total{rule="aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"} 1' in metrics
        assert "loglake_rule_files_with_problems 1" in metrics and "loglake_rules_loaded 1" in metrics
        health = client.get("/healthz").json()["rules"]
        assert (health["folder"], health["rules"], health["error"]) == (str(rules), 1, None)
        assert [p.split(": ", 1)[0] for p in health["problems"]] == [str(rules / "bad.yml")]
        (rules / "bad.yml").unlink()
        write_rule(
            rules, "second.yml", CRITICAL.format(schedule="2s", delay="0s").replace("eeeeeeeeeeee", "ffffffffffff")
        )
        wait_for(lambda: "loglake_rules_loaded 2" in client.get("/metrics").text, "the folder to be loaded again")
        assert "loglake_rule_files_with_problems 0" in client.get("/metrics").text
    log = server.log_path.read_text()
    assert "bad.yml: line 2, column 1: not valid YAML" in log
    # Three runs at least (one after the first window's), however fast the steps above went.
    ok_runs = "SELECT count(*) >= 3 FROM rule_runs WHERE rule_id LIKE '%eeeeeeeeeeee' AND outcome = 'ok'"
    wait_for(lambda: query(data, ok_runs)[0][0], "three runs of the first rule", data=data)
    # One query for both ends: a run landing between two queries gave one list an extra window.
    windows = query(
        data,
        "SELECT since_ms, until_ms FROM rule_runs WHERE rule_id LIKE '%eeeeeeeeeeee' AND outcome = 'ok' ORDER BY id",
    )
    starts = [start for start, _ in windows]
    ends = [end for _, end in windows]
    assert len(ends) > 2 and starts[1:] == ends[:-1]  # contiguous, each window once


def test_kill_9_during_a_rule_run_leaves_the_window_to_run_once_with_one_alert(tmp_path: Path) -> None:
    data, rules = tmp_path / "data", tmp_path / "rules"
    write_rule(rules, "critical.yml", CRITICAL.format(schedule="1h", delay="0s"))
    if time.time() % 3600 > 3540:  # the run must find the hour's window set up here: wait for the next one
        time.sleep(3600 - time.time() % 3600)
    now = int(time.time() * 1000)
    window_end = now - now % HOUR
    store = SQLiteHotStore(data / "hot.db", durability="process")
    store.use_schema(LAKE_SCHEMA)
    store.submit(
        validate_batch(
            [{"service": "db", "severity": "critical", "message": "disk gone", "timestamp": window_end - 120_000}],
            Limits(),
            now,
        )
    ).result()
    # A lake file of the window that is a FIFO: the run's query blocks opening it, at a known point.
    day = datetime.fromtimestamp(window_end / 1000, UTC).date()
    key = app_logs_key(day, "part-blocking.parquet")
    fifo = data / "lake" / key
    fifo.parent.mkdir(parents=True)
    os.mkfifo(fifo)
    listed = LakeFile(key, APP_LOGS_TABLE.name, day.isoformat(), window_end - 60_000, window_end - 60_000, 1, 1)
    store.in_write_transaction(lambda conn: add_files(conn, [listed], now)).result()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGLAKE_")}
    command = [sys.executable, "-m", "loglake", "rules", "run-due", "--data-dir", str(data), "--rules-dir", str(rules)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: _waits_for_a_fifo_writer(process.pid), "the run to reach the FIFO")
        assert query(data, "SELECT outcome FROM rule_runs") == [("running",)]
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(10)
    fifo.unlink()
    store.in_write_transaction(lambda conn: retire_files(conn, [key], now)).result()
    store.close()
    for _ in range(2):  # the restart evaluates the window; the next finds nothing due in it
        again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        assert again.returncode == 0, again.stderr
    runs = query(data, "SELECT outcome, since_ms, until_ms FROM rule_runs ORDER BY id")
    window = (window_end - HOUR, window_end)
    assert runs[0] == ("interrupted", *window)
    assert [r for r in runs if r[1:] == window] == [runs[0], ("ok", *window)]
    assert query(data, "SELECT title, match_count FROM alerts") == [("Critical records", 1)]
    assert query(data, "SELECT kind FROM alert_events") == [("trigger",)]


def _waits_for_a_fifo_writer(pid: int) -> bool:
    """Whether a thread of the process is blocked opening a FIFO for reading (Linux: wchan wait_for_partner)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            if (task / "wchan").read_text() == "wait_for_partner":
                return True
        except OSError:
            continue
    return False


def test_kill_9_of_serve_during_a_rule_run_evaluates_the_window_once_and_delivers_once_per_destination(
    tmp_path: Path, server_factory: Callable[..., ServerProcess]
) -> None:
    from tests.alerts.conftest import write_alerting
    from tests.alerts.receivers import Receiver

    data, rules = tmp_path / "data", tmp_path / "rules"
    write_rule(rules, "critical.yml", CRITICAL.format(schedule="5s", delay="0s"))
    receiver = Receiver()
    write_alerting(
        rules,
        f"""
        destinations:
          a: {{type: webhook, url: "{receiver.url}/a"}}
          b: {{type: webhook, url: "{receiver.url}/b"}}
        routes: [{{to: [a, b]}}]
        """,
    )
    now = int(time.time() * 1000)
    store = SQLiteHotStore(data / "hot.db", durability="process")
    store.use_schema(LAKE_SCHEMA)
    # A lake file listed for the hours around now that is a FIFO: whichever window the server's first
    # run evaluates, its query blocks opening it, at a known point.
    day = datetime.fromtimestamp(now / 1000, UTC).date()
    key = app_logs_key(day, "part-blocking.parquet")
    fifo = data / "lake" / key
    fifo.parent.mkdir(parents=True)
    os.mkfifo(fifo)
    listed = LakeFile(key, APP_LOGS_TABLE.name, day.isoformat(), now - HOUR, now + HOUR, 1, 1)
    store.in_write_transaction(lambda conn: add_files(conn, [listed], now)).result()
    # No background flush or merge: nothing but the rule's run opens the lake's files.
    args = ("--rules-dir", str(rules), "--rules-catch-up-windows", "100000", "--flush-interval-seconds", "0")
    try:
        server = server_factory(data, *args, "--no-auth")
        wait_for(
            lambda: (
                query(data, "SELECT 1 FROM rule_runs WHERE outcome = 'running'")
                and _waits_for_a_fifo_writer(server.process.pid)
            ),
            "the run to reach the FIFO",
            data=data,
        )
        server.kill()  # kill -9 in the middle of the rule's run
        [(since, until)] = query(data, "SELECT since_ms, until_ms FROM rule_runs WHERE outcome = 'running'")
        fifo.unlink()
        store.in_write_transaction(lambda conn: retire_files(conn, [key], now)).result()
        record = {"service": "db", "severity": "critical", "message": "disk gone", "timestamp": until - 1000}
        store.submit(validate_batch([record], Limits(), now + HOUR)).result()
        # (no wait for shippers' backlogs after the start: nothing sends here, the record above is in)
        server = server_factory(data, *args, "--no-auth", "--rules-wait-after-start-seconds", "0")
        receiver.wait_until(lambda r: {q.path for q in r.requests} == {"/a", "/b"})
        wait_for(
            lambda: query(
                data, "SELECT 1 FROM rule_runs WHERE outcome = 'ok' AND until_ms > ?".replace("?", str(until))
            ),
            "a run after the killed one's window",
            data=data,
        )
        server.stop()
    finally:
        receiver.close()
        store.close()
    runs = query(data, "SELECT outcome, since_ms, until_ms FROM rule_runs WHERE outcome != 'skipped' ORDER BY id")
    assert [r for r in runs if r[1:] == (since, until)] == [("interrupted", since, until), ("ok", since, until)]
    assert len({r[1:] for r in runs if r[0] == "ok"}) == len([r for r in runs if r[0] == "ok"])  # each window once
    assert query(data, "SELECT title, match_count FROM alerts") == [("Critical records", 1)]
    assert query(data, "SELECT kind FROM alert_events") == [("trigger",)]
    per_destination = sorted((r.path, r.json()["event"]) for r in receiver.requests)
    assert per_destination == [("/a", "trigger"), ("/b", "trigger")]  # once each, not lost, not repeated
    assert query(data, "SELECT destination, state FROM deliveries ORDER BY destination") == [
        ("a", "sent"),
        ("b", "sent"),
    ]
