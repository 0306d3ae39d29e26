"""`loglake alerts` through click's CliRunner: against a real `loglake serve` (--url) and on a data dir
(--data-dir), with alerts written into alerts.db as the detection engine writes them."""

from __future__ import annotations

import getpass
import json
import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from loglake.alerts import db as alerts_db
from loglake.alerts.db import open_alerts_db
from loglake.config import Settings
from loglake.runtime import Runtime
from tests.alerts.receivers import Answer, Receiver
from tests.alerts.rows import T0, insert_alert
from tests.conftest import ServerProcess, free_port, poll
from tests.conftest import run_cli as run
from tests.rules.conftest import write_rule

pytestmark = pytest.mark.usefixtures("no_loglake_environment")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("alerts-server")
    process = ServerProcess(root / "data", free_port(), root / "server.log").start()
    yield process
    process.stop()


@pytest.fixture
def alerts(server: ServerProcess) -> Iterator[sqlite3.Connection]:
    """The server's alerts.db, emptied for each test."""
    conn = open_alerts_db(server.data_dir)
    conn.execute("DELETE FROM alert_events")
    conn.execute("DELETE FROM alerts")
    yield conn
    conn.close()


_made = iter(range(1_000_000))


def key(server: ServerProcess, scopes: str) -> str:
    name = f"cli-{scopes.replace(',', '-')}-{next(_made)}"
    result = run("keys", "create", "--name", name, "--scopes", scopes, "--data-dir", str(server.data_dir))
    assert result.exit_code == 0, result.output
    return result.stdout.strip()


def remote(server: ServerProcess, api_key: str, *args: str) -> object:
    return run("alerts", *args, "--url", server.url, "--api-key", api_key)


def test_list_prints_a_table_newest_first_with_the_counts_and_pages(
    server: ServerProcess, alerts: sqlite3.Connection
) -> None:
    older = insert_alert(alerts, T0, title="Disk full on db-1", level="critical")
    newer = insert_alert(alerts, T0 + 1, status="acknowledged")
    reader = key(server, "read")
    listed = remote(server, reader, "list")
    assert listed.exit_code == 0, listed.output
    header, first, second = listed.stdout.splitlines()
    assert header.split()[:3] == ["ID", "LEVEL", "STATUS"]
    assert first.split()[:3] == [newer, "high", "acknowledged"] and first.endswith("Errors burst in api")
    assert second.split()[:3] == [older, "critical", "open"] and second.endswith("Disk full on db-1")
    assert "by status: 1 open, 1 acknowledged, 0 resolved, 0 suppressed" in listed.stderr
    page = remote(server, reader, "list", "--limit", "1", "--json")
    assert [json.loads(line)["id"] for line in page.stdout.splitlines()] == [newer]
    cursor = page.stderr.split("--cursor ")[1].split()[0]
    rest = remote(server, reader, "list", "--limit", "1", "--json", "--cursor", cursor)
    assert [json.loads(line)["id"] for line in rest.stdout.splitlines()] == [older] and "--cursor" not in rest.stderr
    only = remote(server, reader, "list", "--level", "critical", "--status", "open", "--json")
    assert [json.loads(line)["id"] for line in only.stdout.splitlines()] == [older]


def test_show_prints_the_evidence_and_the_query_and_json_is_the_apis(
    server: ServerProcess, alerts: sqlite3.Connection
) -> None:
    title = "Errors burst\x1b]0;retitled\x07"
    alert_id = insert_alert(alerts, title=title, evidence=[{"log_id": "x1", "message": "boom\x1b[31m"}])
    reader = key(server, "read")
    shown = remote(server, reader, "show", alert_id)
    assert shown.exit_code == 0, shown.output
    lines = shown.stdout.splitlines()
    assert lines[0] == "Errors burst\\x1b]0;retitled\\x07"  # control characters shown, not obeyed
    assert remote(server, reader, "list").stdout.splitlines()[1].endswith("Errors burst\\x1b]0;retitled\\x07")
    assert any(line.split() == ["status", "open"] for line in lines)
    assert '  {"log_id": "x1", "message": "boom\\u001b[31m"}' in lines  # escaped for the terminal
    assert "  SELECT * FROM logs WHERE severity = 'error'" in lines
    as_json = json.loads(remote(server, reader, "show", alert_id, "--json").stdout)
    with httpx.Client(headers={"authorization": f"Bearer {reader}"}) as client:
        assert as_json == client.get(f"{server.url}/alerts/{alert_id}").json()


def test_ack_and_resolve_record_the_keys_name_and_refuse_what_the_status_does_not_allow(
    server: ServerProcess, alerts: sqlite3.Connection
) -> None:
    alert_id = insert_alert(alerts)
    pager = key(server, "read,alerts")
    pager_name = next(k["name"] for k in _keys(server) if k["hint"] and pager.startswith(k["hint"]))
    acked = remote(server, pager, "ack", alert_id, "--note", "on it")
    assert acked.exit_code == 0, acked.output
    assert acked.stdout == f"acknowledged {alert_id}: Errors burst in api\n"
    shown = json.loads(remote(server, pager, "show", alert_id, "--json").stdout)
    assert shown["status_change"]["by"] == pager_name and shown["status_change"]["note"] == "on it"
    resolved = remote(server, pager, "resolve", alert_id, "--json")
    assert json.loads(resolved.stdout)["status"] == "resolved"
    again = remote(server, pager, "resolve", alert_id)
    assert again.exit_code == 1 and f"HTTP 409: alert {alert_id} is already resolved by {pager_name}" in again.stderr


def test_ack_and_show_take_the_start_of_an_alert_id(server: ServerProcess, alerts: sqlite3.Connection) -> None:
    alert_id = insert_alert(alerts)
    acked = remote(server, key(server, "read,alerts"), "ack", alert_id[:13])
    assert acked.exit_code == 0, acked.output
    assert acked.stdout == f"acknowledged {alert_id}: Errors burst in api\n"
    shown = json.loads(remote(server, key(server, "read"), "show", alert_id[:8], "--json").stdout)
    assert (shown["id"], shown["status"]) == (alert_id, "acknowledged")


def test_changing_needs_the_alerts_scope(server: ServerProcess, alerts: sqlite3.Connection) -> None:
    alert_id = insert_alert(alerts)
    refused = remote(server, key(server, "read"), "ack", alert_id)
    assert refused.exit_code == 1
    assert "HTTP 403" in refused.stderr and "lacks the 'alerts' scope: use a key that has it" in refused.stderr
    assert "loglake keys create --name NAME --scopes alerts` on the server's data dir makes one" in refused.stderr
    missing = remote(server, key(server, "alerts"), "resolve", "0193a0b0-0000-7000-8000-000000000000")
    assert missing.exit_code == 1 and "HTTP 404" in missing.stderr


def test_a_bad_filter_is_named(server: ServerProcess, alerts: sqlite3.Connection) -> None:
    result = remote(server, key(server, "read"), "list", "--status", "closed")
    # (as the option typed, a usage error, as the local list names it)
    assert result.exit_code == 2 and "Invalid value for --status: must be one or more (comma-separated) of open" in (
        result.stderr
    )


def test_an_unknown_or_ambiguous_id_points_to_the_command_that_lists_them(
    server: ServerProcess, alerts: sqlite3.Connection
) -> None:
    first, second = insert_alert(alerts, T0), insert_alert(alerts, T0 + 1)
    shared = next(first[:i] for i, (a, b) in enumerate(zip(first, second, strict=True)) if a != b)
    reader = key(server, "read")
    both = remote(server, reader, "show", shared)
    assert both.exit_code == 1 and "GET /alerts" not in both.stderr
    assert f"{shared!r} is part of 2 alerts' ids: " in both.stderr
    assert both.stderr.count(f"({first})") == both.stderr.count(f"({second})") == 1
    assert both.stderr.rstrip().endswith("`loglake alerts list` lists them")
    missing = remote(server, key(server, "alerts"), "resolve", "0193a0b0-0000-7000-8000-000000000000")
    assert missing.exit_code == 1 and "GET /alerts" not in missing.stderr
    assert "no alert with id '0193a0b0-0000-7000-8000-000000000000'; `loglake alerts list` lists them" in missing.stderr
    rule = remote(server, reader, "list", "--rule", "5eaf2")
    assert rule.exit_code == 1 and "GET /rules" not in rule.stderr
    assert "no rule with id '5eaf2' is loaded; `loglake rules list` on the server's machine lists them" in rule.stderr
    delivery = remote(server, key(server, "read,alerts"), "retry", "3f0c2a57")
    assert delivery.exit_code == 1 and "GET /alerts/deliveries" not in delivery.stderr
    assert "no delivery with id '3f0c2a57'; `loglake alerts deliveries --state dead` lists the dead ones" in (
        delivery.stderr
    )


def _keys(server: ServerProcess) -> list[dict]:
    listed = run("keys", "list", "--json", "--data-dir", str(server.data_dir)).stdout.splitlines()
    return [json.loads(line) for line in listed]


# -- --data-dir --------------------------------------------------------------------------------


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A data dir that holds loglake data (made by a first run, as `loglake serve` makes it)."""
    folder = tmp_path / "data"
    Runtime(Settings(data_dir=folder, access_log="off")).close()
    return folder


def test_on_a_data_dir_the_changes_are_recorded_with_the_users_name(data_dir: Path) -> None:
    conn = open_alerts_db(data_dir)
    alert_id = insert_alert(conn, title="Bot surge")
    listed = run("alerts", "list", "--data-dir", str(data_dir), "--json")
    assert [json.loads(line)["title"] for line in listed.stdout.splitlines()] == ["Bot surge"]
    assert run("alerts", "ack", alert_id, "--data-dir", str(data_dir)).exit_code == 0
    resolved = run("alerts", "resolve", alert_id, "--note", "false alarm", "--json", "--data-dir", str(data_dir))
    change = json.loads(resolved.stdout)["status_change"]
    assert (change["by"], change["note"]) == (getpass.getuser(), "false alarm")
    assert conn.execute("SELECT kind FROM alert_events ORDER BY seq").fetchall() == [
        ("trigger",),
        ("acknowledge",),
        ("resolve",),
    ]
    again = run("alerts", "resolve", alert_id, "--data-dir", str(data_dir))
    assert again.exit_code == 1 and "is already resolved" in again.stderr
    shown = run("alerts", "show", alert_id, "--data-dir", str(data_dir))
    assert f"resolved by {getpass.getuser()} at" in shown.stdout and "false alarm" in shown.stdout
    conn.close()


def test_show_prints_the_evidences_numbers_as_a_person_writes_them(data_dir: Path) -> None:
    """They were printed as Python reads them: 1e+16, 1.0, and 100.0 for an attribute sent as 1E2."""
    conn = open_alerts_db(data_dir)
    evidence = [{"took": 1e16, "ratio": 1.0, "share": 0.25, "tiny": 1.5e-9, "attributes": '{"n": 1E2, "ok": 2.50}'}]
    alert_id = insert_alert(conn, evidence=evidence, group_values={"bucket": 3.0})
    conn.close()
    shown = run("alerts", "show", alert_id, "--data-dir", str(data_dir))
    assert shown.exit_code == 0, shown.output
    lines = shown.stdout.splitlines()
    assert (
        '  {"took": 10000000000000000, "ratio": 1, "share": 0.25, "tiny": 1.5e-9, "attributes": {"n": 100, "ok": 2.5}}'
        in lines
    )
    assert any(line.split() == ["group", '{"bucket":', "3}"] for line in lines)
    as_json = json.loads(run("alerts", "show", alert_id, "--json", "--data-dir", str(data_dir)).stdout)
    assert as_json["evidence"][0]["took"] == 1e16 and as_json["group"] == {"bucket": 3.0}  # JSON stays JSON


def test_on_a_data_dir_alerts_are_named_by_a_part_of_their_id(data_dir: Path) -> None:
    conn = open_alerts_db(data_dir)
    first, second = insert_alert(conn, T0, title="Bot surge"), insert_alert(conn, T0 + 1)
    conn.close()
    shared = next(first[:i] for i, (a, b) in enumerate(zip(first, second, strict=True)) if a != b)
    acked = run("alerts", "ack", first[: len(shared) + 1], "--data-dir", str(data_dir))
    assert acked.exit_code == 0 and acked.stdout == f"acknowledged {first}: Bot surge\n"
    shown = run("alerts", "show", first[: len(shared) + 1], "--json", "--data-dir", str(data_dir))
    assert json.loads(shown.stdout)["status"] == "acknowledged"
    both = run("alerts", "show", shared, "--data-dir", str(data_dir))
    assert both.exit_code == 1
    named = re.search(
        rf"{shared!r} is part of 2 alerts' ids: (\w+) \({first}\), (\w+) \({second}\)",
        both.stderr,
    )
    assert named, both.stderr
    for part, alert_id in ((named[1], first), (named[2], second)):  # each part it offers names its alert
        shown = run("alerts", "show", part, "--json", "--data-dir", str(data_dir))
        assert json.loads(shown.stdout)["id"] == alert_id


def test_on_a_data_dir_unknown_alerts_and_bad_filters_are_refused(data_dir: Path) -> None:
    missing = run("alerts", "show", "0193a0b0-0000-7000-8000-000000000000", "--data-dir", str(data_dir))
    assert missing.exit_code == 1 and "no alert with id" in missing.stderr
    bad = run("alerts", "list", "--since", "soon", "--data-dir", str(data_dir))  # a usage error (exit 2)
    assert bad.exit_code == 2 and "Invalid value for --since: 'soon' is not a time" in bad.stderr
    several = run("alerts", "list", "--status", "closed", "-q", "", "--limit", "0", "--data-dir", str(data_dir))
    assert several.exit_code == 2 and "Invalid value for --status: must be one or more" in several.stderr
    assert "Invalid value for --limit: must be" in several.stderr


def test_on_a_data_dir_alerts_of_a_rule_are_listed_by_the_start_of_its_id_or_its_file_name(data_dir: Path) -> None:
    rule = "5f4c8e12-7a8b-4c2d-9e0f-1a2b3c4d5e6f"  # insert_alert's
    write_rule(
        data_dir / "rules",
        "errors.yml",
        f"title: Errors\nid: {rule}\nlevel: low\nquery: SELECT count(*) AS n FROM logs HAVING count(*) > 10\n",
    )
    conn = open_alerts_db(data_dir)
    mine = insert_alert(conn, title="Errors burst")
    insert_alert(conn, T0 + 1, rule_id="0b7e0a3c-1111-4222-8333-444455556666")
    conn.close()
    for given in ("5f4c", "errors.yml", rule):
        listed = run("alerts", "list", "--rule", given, "--data-dir", str(data_dir), "--json")
        assert [json.loads(line)["id"] for line in listed.stdout.splitlines()] == [mine], listed.output
    unknown = run("alerts", "list", "--rule", "5f4d", "--data-dir", str(data_dir))
    assert unknown.exit_code == 1 and "no rule '5f4d' in" in unknown.stderr


def test_on_a_data_dir_a_change_that_waits_past_the_busy_timeout_is_refused_clearly(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = open_alerts_db(data_dir)
    alert_id = insert_alert(conn, title="Bot surge")
    monkeypatch.setattr(alerts_db, "BUSY_TIMEOUT_S", 0.1)  # instead of 10 s, so the test need not wait
    conn.execute("BEGIN IMMEDIATE")  # the server writing a rule's window
    try:
        busy = run("alerts", "ack", alert_id, "--data-dir", str(data_dir))
    finally:
        conn.execute("COMMIT")
    assert busy.exit_code == 1 and "Traceback" not in busy.output
    assert f"alerts.db in {data_dir} stayed locked by another process's write" in busy.stderr
    assert "for 0.1 s; retry shortly, or go through the server (--url)" in busy.stderr
    assert run("alerts", "ack", alert_id, "--data-dir", str(data_dir)).exit_code == 0
    conn.close()


def test_a_folder_without_loglake_data_is_refused(tmp_path: Path) -> None:
    result = run("alerts", "list", "--data-dir", str(tmp_path))
    assert result.exit_code == 1 and "no loglake data in" in result.stderr
    assert not (tmp_path / "alerts.db").exists()


@contextmanager
def _refusing_hook(server: ServerProcess) -> Iterator[Receiver]:
    """A webhook every alert is routed to, refusing it (400) until told otherwise."""
    receiver = Receiver()
    alerting = server.data_dir / "rules" / "alerting.yml"
    try:
        receiver.default = Answer(400, body=b"not now")
        alerting.parent.mkdir(exist_ok=True)
        alerting.write_text(
            f'destinations: {{hook: {{type: webhook, url: "{receiver.url}/hook"}}}}\nroutes: [{{to: [hook]}}]\n'
        )
        yield receiver
    finally:
        alerting.unlink(missing_ok=True)
        receiver.close()


def test_deliveries_lists_what_died_and_retry_sends_it_again(server: ServerProcess, alerts: sqlite3.Connection) -> None:
    with _refusing_hook(server) as receiver:
        alert_id = insert_alert(alerts)
        reader, oncall = key(server, "read"), key(server, "read,alerts")

        def dead_row() -> str | None:
            listed = remote(server, reader, "deliveries", "--state", "dead", "--alert", alert_id)
            assert listed.exit_code == 0, listed.output
            return next((line for line in listed.stdout.splitlines() if alert_id in line), None)

        row = poll(dead_row, "the delivery to be dead-lettered")
        delivery_id, _, event, destination, state, attempts, *error = row.split()
        assert (event, destination, state, attempts, " ".join(error)) == (
            "trigger",
            "hook",
            "dead",
            "1",
            "HTTP 400: not now",
        )
        refused = remote(server, reader, "retry", delivery_id)
        assert refused.exit_code == 1 and "HTTP 403" in refused.stderr
        receiver.default = Answer(200)
        retried = remote(server, oncall, "retry", delivery_id[:8])  # its start: said back whole (it echoed the start)
        assert retried.exit_code == 0, retried.output
        assert retried.stdout == f"delivery {delivery_id} to hook is pending again\n"
        receiver.wait_for(2)
        assert [r.headers["idempotency-key"] for r in receiver.requests] == [delivery_id, delivery_id]
        again = remote(server, oncall, "retry", delivery_id)
        assert again.exit_code == 1 and "not dead; only a dead delivery is retried" in again.stderr


def test_deliveries_come_in_pages_and_say_when_more_are_left(server: ServerProcess, alerts: sqlite3.Connection) -> None:
    # An on-call engineer counting what died must not be shown the first page as if it were all of them.
    with _refusing_hook(server):
        ids = {insert_alert(alerts, dedup_key=f"key-{n}") for n in range(3)}
        reader = key(server, "read")

        def dead() -> list[str] | None:
            listed = remote(server, reader, "deliveries", "--state", "dead", "--json")
            rows = [json.loads(line) for line in listed.stdout.splitlines()]
            return rows if {r["alert_id"] for r in rows} >= ids else None

        newest_first = [r["alert_id"] for r in poll(dead, "the deliveries to be dead-lettered") if r["alert_id"] in ids]
        first = remote(server, reader, "deliveries", "--state", "dead", "--limit", "2")
        assert first.exit_code == 0, first.output
        assert [line.split()[1] for line in first.stdout.splitlines()[1:]] == newest_first[:2]
        cursor = re.search(r"more: the next page with --cursor (\S+)", first.stderr)
        assert cursor, first.stderr
        rest = remote(server, reader, "deliveries", "--state", "dead", "--cursor", cursor[1])
        assert rest.exit_code == 0, rest.output
        assert newest_first[2] in [line.split()[1] for line in rest.stdout.splitlines()[1:]]


def test_on_a_data_dir_retry_reads_alerting_yml_in_the_servers_rules_folder(data_dir: Path, tmp_path: Path) -> None:
    """A server run with --rules-dir elsewhere: retry read the data dir's rules/ (where there was no alerting.yml)
    and refused every dead delivery as to a destination 'not defined in alerting.yml'."""
    from loglake.alerts.delivery import AlertDelivery

    rules = tmp_path / "server-rules"
    rules.mkdir()
    receiver = Receiver()
    try:
        receiver.default = Answer(400, body=b"not now")
        (rules / "alerting.yml").write_text(
            f'destinations: {{hook: {{type: webhook, url: "{receiver.url}/hook"}}}}\nroutes: [{{to: [hook]}}]\n'
        )
        conn = open_alerts_db(data_dir)
        insert_alert(conn)
        delivery = AlertDelivery(data_dir, rules)  # the server's worker
        delivery.step()
        receiver.wait_for(1)
        delivery_id = poll(
            lambda: conn.execute("SELECT id FROM deliveries WHERE state = 'dead'").fetchone(), "a dead delivery"
        )[0]
        delivery.stop()
        lacking = run("alerts", "retry", delivery_id, "--data-dir", str(data_dir))
        assert lacking.exit_code == 1
        assert f"(read {data_dir / 'rules' / 'alerting.yml'}; --rules-dir gives the server's)" in lacking.stderr
        retried = run("alerts", "retry", delivery_id, "--data-dir", str(data_dir), "--rules-dir", str(rules))
        assert retried.exit_code == 0, retried.output
        assert conn.execute("SELECT state FROM deliveries").fetchall() == [("pending",)]
        conn.close()
    finally:
        receiver.close()
