"""`loglake amplify ...`, the HTTP reports and status, and the server's schedule."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from loglake.amplify import reports
from loglake.amplify.collector import Collector
from loglake.amplify.config import parse_config
from loglake.amplify.jobs import AmplifySchedule, CollectionBusy, collection_lock
from loglake.amplify.lake_rows import use_schemas
from loglake.amplify.reports import SAVED_QUERIES
from loglake.api.app import LoglakeApp
from loglake.config import Settings
from loglake.lake.layout import amplify_access_key
from loglake.lake.manifest import MANIFEST, LakeFile, add_files
from loglake.lake.objectstore import LocalObjectStore, ObjectStoreError
from loglake.store.base import StoreUnavailable
from loglake.store.sqlite import SQLiteHotStore
from tests.amplify.logs import USER_AGENTS, access_log, varied_requests
from tests.amplify.server import FakeAmplify, FakeApp
from tests.amplify.test_collector import DANSE, HORIZON, ms
from tests.conftest import asgi_client, free_port, key_for, run_cli, threads_waiting_for_a_fifo_writer
from tests.test_self_events import _fill, _fired

pytestmark = pytest.mark.usefixtures("no_loglake_environment")

SINCE = datetime(2026, 11, 1, tzinfo=UTC)
UNTIL = datetime(2026, 11, 8, tzinfo=UTC)


def write_config(path: Path, **changes: object) -> Path:
    document = {
        "applications": [DANSE | {"appName": "danse_tech"}, HORIZON | {"appName": "digital_horizon"}],
        "s3": {"bucket": "", "prefix": ""},
        "schedule": {"frequency": "weekly", "dayOfWeek": "Monday", "timeOfDay": "01:00"},
        "logRetention": {"days": 365},
        "timeChunkSize": {"days": 3},
    } | changes
    path.write_text(json.dumps(document))
    return path


def serve_week(amplify: FakeAmplify) -> FakeApp:
    danse = FakeApp("danse.tech", varied_requests(3_000, ms(SINCE), ms(UNTIL) - ms(SINCE), "w"))
    amplify.apps.update({DANSE["appId"]: danse, HORIZON["appId"]: FakeApp(HORIZON["domainName"])})
    return danse


def test_collect_prints_a_report_and_the_rows_answer_sql(amplify: FakeAmplify, tmp_path: Path) -> None:
    danse = serve_week(amplify)
    config, data = write_config(tmp_path / "amplify.json"), tmp_path / "data"
    window = ["--since", "2026-11-01", "--until", "2026-11-08T00:00:00Z"]
    result = run_cli("amplify", "collect", "--config", str(config), "--data-dir", str(data), *window)
    assert result.exit_code == 0, result.output
    assert "danse_tech" in result.stdout and "3/3" in result.stdout and "3,000" in result.stdout
    assert "danse_tech               [####################] 3/3 windows  3,000 rows" in result.stderr
    # what each app does, as it goes (a window can take half an hour)
    assert "danse_tech               window 1/3: fetching 2026-11-01T00:00:00Z .. 2026-11-04T00:00:00Z" in result.stderr
    counted = run_cli("query", "--data-dir", str(data), "--format", "json", "SELECT count(*) AS n FROM amplify_access")
    assert json.loads(counted.stdout)["rows"] == [[len(danse.requests)]]

    again = run_cli("amplify", "collect", "--config", str(config), "--data-dir", str(data), "--json", *window)
    report = json.loads(again.stdout)
    assert report["ok"] and [a["rows"] for a in report["apps"]] == [0, 0]
    assert report["apps"][0]["duplicates"] == 3_000

    status = run_cli("amplify", "status", "--data-dir", str(data))
    assert "run " in status.stdout and ": ok, 3,000 rows, 0 failed window(s)" in status.stdout
    assert "danse_tech: collected up to" not in status.stdout  # a range by hand starts no watermark


def test_dry_run_lists_windows_and_fetches_nothing(amplify: FakeAmplify, tmp_path: Path) -> None:
    danse = serve_week(amplify)
    config = write_config(tmp_path / "amplify.json")
    result = run_cli(
        "amplify", "collect", "--config", str(config), "--data-dir", str(tmp_path / "d"), "--app", "danse_tech",
        "--since", "2026-11-01", "--until", "2026-11-08", "--dry-run",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "danse_tech: 3 window(s) of at most 3 day(s)",
        "  2026-11-01T00:00:00Z .. 2026-11-04T00:00:00Z",
        "  2026-11-04T00:00:00Z .. 2026-11-07T00:00:00Z",
        "  2026-11-07T00:00:00Z .. 2026-11-08T00:00:00Z",
    ]
    assert danse.calls == []
    assert not (tmp_path / "d").exists()  # a dry run writes nothing
    assert "warning" not in result.stderr
    stranger = write_config(tmp_path / "stranger.json", applications=[DANSE | {"appName": "x", "profile": "nobody"}])
    warned = run_cli("amplify", "collect", "--config", str(stranger), "--data-dir", str(tmp_path / "d"), "--dry-run")
    assert "warning: AWS profile 'nobody' is not in the AWS config or credentials files" in warned.stderr


def test_dry_run_lists_the_hours_fetched_again_for_their_late_logs(amplify: FakeAmplify, tmp_path: Path) -> None:
    danse = serve_week(amplify)
    config = write_config(tmp_path / "amplify.json")
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    store = SQLiteHotStore(tmp_path / "d" / "hot.db")
    use_schemas(store)
    collected = (ms(hour - timedelta(hours=1)), ms(hour - timedelta(hours=48)))  # its watermark; rechecked to
    store.run_in_writer(
        lambda conn: conn.execute(
            "INSERT INTO amplify_watermarks (app, until_ms, updated_ms, rechecked_ms) VALUES ('danse_tech', ?, 0, ?)",
            collected,
        )
    )
    store.close()
    result = run_cli(
        "amplify", "collect", "--config", str(config), "--data-dir", str(tmp_path / "d"), "--app", "danse_tech",
        "--dry-run",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    iso = "%Y-%m-%dT%H:00:00Z"
    again = f"  {(hour - timedelta(hours=48)):{iso}} .. {(hour - timedelta(hours=24)):{iso}} again, for its late logs"
    said = result.stdout.splitlines()
    assert said[0].endswith(", and 1 fetched again for their late logs") and said[1] == again, said  # (first, as run)
    assert danse.calls == []


def test_ranges_beyond_what_can_be_kept_are_narrowed_with_a_note(amplify: FakeAmplify, tmp_path: Path) -> None:
    serve_week(amplify)
    config = write_config(tmp_path / "amplify.json", logRetention={"days": 30})
    result = run_cli(
        "amplify", "collect", "--config", str(config), "--data-dir", str(tmp_path / "d"), "--app", "danse_tech",
        "--since", "2020-01-01", "--until", "2099-01-01", "--dry-run",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "note: collecting up to " in result.stderr and "later logs are still arriving" in result.stderr
    assert "logRetention.days (30) would drop anything older" in result.stderr
    windows = result.stdout.splitlines()[1:]
    first, last = windows[0].split(" .. ")[0].strip(), windows[-1].split(" .. ")[1]
    now = datetime.now(UTC)
    assert datetime.fromisoformat(first.replace("Z", "+00:00")) >= now - timedelta(days=31)
    assert datetime.fromisoformat(last.replace("Z", "+00:00")) <= now - timedelta(hours=1)
    ages = run_cli(
        "amplify", "collect", "--config", str(config), "--data-dir", str(tmp_path / "d"), "--app", "danse_tech",
        "--since", "7d", "--dry-run",
    )  # fmt: skip
    assert ages.exit_code == 0 and "window(s)" in ages.stdout
    ahead = run_cli(
        "amplify", "collect", "--config", str(config), "--data-dir", str(tmp_path / "d"), "--app", "danse_tech",
        "--since", "2099-01-01", "--dry-run",
    )  # fmt: skip
    assert ahead.exit_code == 0 and "danse_tech: 0 window(s)" in ahead.stdout
    assert "note: nothing to collect: --since is at or after " in ahead.stderr  # (it said nothing)
    behind = run_cli(
        "amplify", "collect", "--config", str(config), "--data-dir", str(tmp_path / "d"), "--app", "danse_tech",
        "--since", "2020-01-01", "--until", "2020-02-01", "--dry-run",
    )  # fmt: skip
    assert behind.exit_code == 0 and "danse_tech: 0 window(s)" in behind.stdout
    # (it said it collected from the retention's start, then collected nothing)
    assert "note: nothing to collect: --until is at or before " in behind.stderr
    assert "collecting from" not in behind.stderr


def test_a_failed_window_fails_the_command_with_the_reason(amplify: FakeAmplify, tmp_path: Path) -> None:
    serve_week(amplify)
    amplify.apps[HORIZON["appId"]].refuse = "UnauthorizedException"
    config = write_config(tmp_path / "amplify.json")
    result = run_cli(
        "amplify", "collect", "--config", str(config), "--data-dir", str(tmp_path / "d"),
        "--since", "2026-11-01", "--until", "2026-11-02",
    )  # fmt: skip
    assert result.exit_code == 1
    assert (
        "digital_horizon: error: 2026-11-01T00:00:00Z .. 2026-11-02T00:00:00Z: UnauthorizedException" in result.stderr
    )
    # Its progress shows the failure, where a full bar of # read as done.
    assert "digital_horizon          [xxxxxxxxxxxxxxxxxxxx] 1/1 windows, 1 failed  0 rows" in result.stderr
    status = run_cli("amplify", "status", "--data-dir", str(tmp_path / "d"))
    assert "FAILED" in status.stdout and "digital_horizon: 2026-11-01T00:00:00Z .. 2026-11-02" in status.stdout


def test_bad_configuration_and_arguments_are_refused_clearly(tmp_path: Path) -> None:
    bad = write_config(tmp_path / "bad.json", timeChunkSize={"days": 30})
    result = run_cli("amplify", "collect", "--config", str(bad), "--data-dir", str(tmp_path / "d"))
    assert (
        result.exit_code == 1
        and "timeChunkSize.days: 30 is not a whole number of days between 1 and 14" in result.output
    )
    good = write_config(tmp_path / "good.json")
    result = run_cli("amplify", "collect", "--config", str(good), "--data-dir", str(tmp_path / "d"), "--app", "nope")
    assert result.exit_code == 2 and "no application named 'nope'" in result.output
    result = run_cli("amplify", "collect", "--config", str(good), "--data-dir", str(tmp_path / "d"), "--since", "soon")
    assert result.exit_code == 2 and "--since: 'soon' is not a time" in result.output


def test_import_loads_a_console_download_once(tmp_path: Path) -> None:
    requests = varied_requests(500, ms(SINCE), ms(UNTIL) - ms(SINCE), "i")
    file = tmp_path / "console.csv.gz"
    file.write_bytes(gzip.compress(access_log(requests)))
    data = str(tmp_path / "data")
    first = run_cli("amplify", "import", str(file), "--app", "danse_tech", "--data-dir", data)
    assert first.exit_code == 0, first.output
    assert "500 rows read, 500 stored in amplify_access (app=danse_tech), 0 already there, 0 malformed" in first.stdout
    second = run_cli("amplify", "import", str(file), "--app", "danse_tech", "--data-dir", data)
    assert "0 stored" in second.stdout and "500 already there" in second.stdout
    not_a_log = tmp_path / "other.csv"
    not_a_log.write_text("a,b\n1,2\n")
    refused = run_cli("amplify", "import", str(not_a_log), "--app", "danse_tech", "--data-dir", data)
    assert refused.exit_code == 1 and "not an Amplify access log" in refused.output


def test_import_waits_for_no_collection(tmp_path: Path) -> None:
    # Beside a collection (the server's schedule) each found the other's rows not stored yet: both stored them.
    file = tmp_path / "console.csv"
    file.write_bytes(access_log(varied_requests(50, ms(SINCE), ms(UNTIL) - ms(SINCE), "w")))
    data = tmp_path / "data"
    with collection_lock(data):
        refused = run_cli("amplify", "import", str(file), "--app", "danse_tech", "--data-dir", str(data))
    assert refused.exit_code == 1 and "another Amplify collection is running" in refused.output
    imported = run_cli("amplify", "import", str(file), "--app", "danse_tech", "--data-dir", str(data))
    assert imported.exit_code == 0 and "50 stored" in imported.stdout


def test_import_of_a_damaged_gzip_file_says_so(tmp_path: Path) -> None:
    # A download cut short ended in click's bare "Aborted!" (gzip's EOFError), with nothing to say what was wrong.
    whole = gzip.compress(access_log(varied_requests(500, ms(SINCE), ms(UNTIL) - ms(SINCE), "g")))
    for name, data in [("cut.csv.gz", whole[: len(whole) // 2]), ("bad.csv.gz", whole[:10] + b"not deflate" * 50)]:
        file = tmp_path / name
        file.write_bytes(data)
        refused = run_cli("amplify", "import", str(file), "--app", "danse_tech", "--data-dir", str(tmp_path / "data"))
        assert refused.exit_code == 1
        assert f"{file}: not a readable gzip file" in refused.output and "Aborted" not in refused.output


def test_import_and_reports_show_control_characters_in_the_file_escaped(tmp_path: Path) -> None:
    """An access log is written by whoever sends requests: a referrer or a request id may hold escape
    sequences that would recolour or retitle the terminal showing them."""
    good, bad = varied_requests(2, ms(SINCE), 3_600_000, "esc")
    requests = [
        replace(good, referer="https://evil.example/\x1b]0;pwned\x07"),
        replace(bad, request_id="\x1b[2Jwiped", status=4242),  # malformed: a status has three digits
    ]
    file = tmp_path / "hostile.csv"
    file.write_bytes(access_log(requests))
    data = str(tmp_path / "data")
    loaded = run_cli("amplify", "import", str(file), "--app", "danse_tech", "--data-dir", data)
    assert loaded.exit_code == 0, loaded.output
    assert "1 malformed" in loaded.stdout
    assert "malformed: request \\x1b[2Jwiped" in loaded.stderr and "\x1b" not in loaded.output
    week = ["--since", "2026-11-01T00:00:00Z", "--until", "2026-11-08T00:00:00Z"]
    report = run_cli("amplify", "report", "--app", "danse_tech", "--data-dir", data, "--report", "top_referrers", *week)
    assert report.exit_code == 0, report.output
    assert "https://evil.example/\\x1b]0;pwned\\x07" in report.stdout and "\x1b" not in report.output
    as_json = run_cli("amplify", "report", "--app", "danse_tech", "--data-dir", data, "--json", *week)
    (referrers,) = [r for r in json.loads(as_json.stdout) if r["name"] == "top_referrers"]
    assert referrers["rows"] == [["https://evil.example/\x1b]0;pwned\x07", 1]]  # exact
    backwards = ["--since", "2026-11-08T00:00:00Z", "--until", "2026-11-01T00:00:00Z"]  # (seven empty reports)
    refused = run_cli("amplify", "report", "--app", "danse_tech", "--data-dir", data, *backwards)
    assert refused.exit_code == 2 and "--until must be after --since" in refused.output


def imported(tmp_path: Path, count: int = 2_000) -> tuple[Path, list]:
    requests = varied_requests(count, ms(SINCE), ms(UNTIL) - ms(SINCE), "r")
    requests[::50] = [replace(r, status=0) for r in requests[::50]]  # (Amplify's 000)
    file = tmp_path / "week.csv"
    file.write_bytes(access_log(requests))
    data = tmp_path / "data"
    assert run_cli("amplify", "import", str(file), "--app", "danse_tech", "--data-dir", str(data)).exit_code == 0
    return data, requests


def test_reports_answer_what_people_look_at(tmp_path: Path) -> None:
    data, requests = imported(tmp_path)
    week = ["--since", "2026-11-01T00:00:00Z", "--until", "2026-11-08T00:00:00Z"]
    result = run_cli("amplify", "report", "--app", "danse_tech", "--data-dir", str(data), "--json", *week)
    assert result.exit_code == 0, result.output
    reports = {r["name"]: r for r in json.loads(result.stdout)}
    assert list(reports) == [
        "top_paths",
        "status_classes",
        "bytes_served",
        "cache_hit_ratio",
        "edge_locations",
        "top_referrers",
        "bots_vs_humans",
    ]
    paths = Counter(r.path for r in requests)
    assert [tuple(row[:2]) for row in reports["top_paths"]["rows"]] == sorted(
        paths.items(), key=lambda p: (-p[1], p[0])
    )
    statuses = Counter("000" if r.status == 0 else f"{r.status // 100}xx" for r in requests)
    assert statuses["000"]  # (a viewer that left before the answer: no class of answers)
    assert {row[0]: row[1] for row in reports["status_classes"]["rows"]} == dict(statuses)
    bots = sum(1 for r in requests if r.user_agent in (USER_AGENTS[2], USER_AGENTS[3]))  # Googlebot, curl
    assert {row[0]: row[1] for row in reports["bots_vs_humans"]["rows"]} == {"bot": bots, "human": len(requests) - bots}
    hits = sum(1 for r in requests if r.result in ("Hit", "RefreshHit"))
    assert sum(row[1] for row in reports["cache_hit_ratio"]["rows"]) == len(requests)
    assert reports["cache_hit_ratio"]["rows"][0][0] == "2026-11-01" and hits > 0
    assert sum(row[2] for row in reports["bytes_served"]["rows"]) == sum(r.sc_bytes for r in requests)
    edges = {row[0] for row in reports["edge_locations"]["rows"]}
    assert edges == {"FRA", "CDG", "AMS", "LHR"}
    table = run_cli("amplify", "report", "--app", "danse_tech", "--data-dir", str(data), "--report", "top_paths", *week)
    assert table.stdout.startswith("Top paths\npath") and "requests" in table.stdout
    unknown = run_cli("amplify", "report", "--app", "nosuch", "--data-dir", str(data))
    assert unknown.exit_code == 1 and "holds no rows of app 'nosuch' (apps with rows: danse_tech)" in unknown.output
    assert "Usage:" not in unknown.output  # a fact about the data, not a mistake in the command


def test_reports_and_status_over_http(tmp_path: Path, server_factory, admin_key_of) -> None:
    data, requests = imported(tmp_path, 300)
    server = server_factory(data)
    key = admin_key_of(server)
    headers = {"authorization": f"Bearer {key}"}
    params = {"app": "danse_tech", "since": "2026-11-01T00:00:00Z", "until": "2026-11-08T00:00:00Z"}
    two = params | {"report": "top_paths,status_classes"}
    answer = httpx.get(f"{server.url}/amplify/reports", params=two, headers=headers)
    assert answer.status_code == 200, answer.text
    top, statuses = answer.json()["reports"]
    assert sum(row[1] for row in top["rows"]) == sum(row[1] for row in statuses["rows"]) == len(requests)
    unknown = httpx.get(f"{server.url}/amplify/reports", params={"app": "nosuch"}, headers=headers)
    assert unknown.status_code == 404 and "apps with rows: danse_tech" in unknown.json()["error"]["message"]
    for bad, code, field in [({"app": "danse_tech", "report": "nope"}, "unknown_report", None),
                             ({}, "invalid_query", "app"),
                             ({"app": "x", "since": "99999999999999999"}, "invalid_query", "since"),
                             ({"app": "x", "since": "1h", "until": "2h"}, "invalid_query", "until")]:  # fmt: skip
        refused = httpx.get(f"{server.url}/amplify/reports", params=bad, headers=headers)
        assert (refused.status_code, refused.json()["error"]["code"]) == (400, code), refused.text
        if field is not None:  # a bad value names its parameter, as every route's invalid_query does
            assert [d["field"] for d in refused.json()["error"]["details"]] == [field], refused.text
    status = httpx.get(f"{server.url}/amplify/status", headers=headers).json()
    assert status["schedule"] is None and status["apps"] == []
    assert status["schedule_setting"] == {"flag": "--amplify-config", "env": "LOGLAKE_AMPLIFY_CONFIG"}  # (for a page)
    cli = run_cli("amplify", "report", "--app", "danse_tech", "--url", server.url, "--api-key", key, "--json",
                  "--since", "2026-11-01T00:00:00Z", "--until", "2026-11-08T00:00:00Z")  # fmt: skip
    assert cli.exit_code == 0, cli.output
    assert len(json.loads(cli.stdout)) == len(SAVED_QUERIES)


async def test_an_unknown_report_is_refused_and_a_bug_is_not_passed_off_as_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data, _ = imported(tmp_path, 50)
    app = LoglakeApp.from_settings(Settings(data_dir=data, access_log="off"))
    try:
        async with asgi_client(app, key_for(app, "read")) as client:
            week = {"app": "danse_tech", "since": "2026-11-01", "until": "2026-11-08"}
            unknown = await client.get("/amplify/reports", params=week | {"report": "top_paths,nope"})
            assert (unknown.status_code, unknown.json()["error"]["code"]) == (400, "unknown_report")
            assert unknown.json()["error"]["message"].startswith("unknown report nope; known: top_paths, ")

            def broken(result: object) -> dict:  # a fault injected deep in the reports code
                raise KeyError("columns")

            monkeypatch.setattr(reports, "result_to_dict", broken)
            failed = await client.get("/amplify/reports", params=week)
            assert (failed.status_code, failed.json()["error"]["code"]) == (500, "internal_error")
    finally:
        app.close()


async def test_long_reports_wait_on_the_sql_slots_and_never_hold_up_search(settings: Settings) -> None:
    # Reports that cannot finish: their one lake file is a FIFO, which DuckDB blocks opening until
    # a writer comes. They hold every SQL slot; search, on the engine's own connections, still answers.
    app = LoglakeApp.from_settings(replace(settings, query_concurrency=2, query_timeout_seconds=3))
    assert app.lake is not None
    key = amplify_access_key("danse_tech", SINCE.date(), "part-blocking.parquet")
    fifo = app.lake.objects.root / key
    fifo.parent.mkdir(parents=True)
    os.mkfifo(fifo)
    listed = LakeFile(key, "amplify_access", SINCE.date().isoformat(), ms(SINCE), ms(SINCE), 1, 1)
    app.store.in_write_transaction(lambda conn: add_files(conn, [listed], ms(SINCE))).result()
    params = {"app": "danse_tech", "since": "2026-11-01T00:00:00Z", "until": "2026-11-02T00:00:00Z"}
    try:
        async with asgi_client(app, key_for(app, "admin")) as client:
            assert (await client.post("/logs", json={"message": "find me"})).status_code == 201
            reports = [asyncio.create_task(client.get("/amplify/reports", params=params)) for _ in range(2)]
            for _ in range(400):
                if threads_waiting_for_a_fifo_writer() == 2:
                    break
                await asyncio.sleep(0.05)
            assert threads_waiting_for_a_fifo_writer() == 2, "the reports did not reach their lake file"
            search = await client.get("/logs/search", params={"q": "find", "since": "1h"})
            sql = await client.post("/query", json={"sql": "SELECT 1"})
            assert not any(report.done() for report in reports)
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))  # let the reports go: they fail on it
            await asyncio.gather(*reports)
    finally:
        app.close()
    assert search.status_code == 200, search.text
    assert [r["message"] for r in search.json()["logs"]] == ["find me"]
    assert (sql.status_code, sql.json()["error"]["code"]) == (503, "busy")  # the reports hold the SQL slots


def test_the_server_shows_its_next_collection(tmp_path: Path, server_factory, admin_key_of) -> None:
    config = write_config(tmp_path / "amplify.json")
    server = server_factory(tmp_path / "data", "--amplify-config", str(config))
    headers = {"authorization": f"Bearer {admin_key_of(server)}"}
    health = httpx.get(f"{server.url}/healthz", headers=headers).json()
    assert health["amplify"]["schedule"] == "weekly, Monday 01:00 UTC"
    next_run = datetime.fromisoformat(health["amplify"]["next_run"].replace("Z", "+00:00"))
    assert next_run.weekday() == 0 and (next_run.hour, next_run.minute) == (1, 0)
    assert timedelta(0) < next_run - datetime.now(UTC) <= timedelta(days=7)


def test_a_bad_amplify_config_stops_the_server_from_starting(tmp_path: Path) -> None:
    bad = write_config(tmp_path / "bad.json", schedule={"frequency": "hourly", "timeOfDay": "01:00"})
    port = str(free_port())
    result = run_cli("serve", "--data-dir", str(tmp_path / "data"), "--port", port, "--amplify-config", str(bad))
    assert result.exit_code != 0
    assert (
        "amplify_config:" in result.output
        and "schedule.frequency: 'hourly' is not one of daily, weekly" in result.output
    )


def test_the_schedule_runs_the_collection_when_its_time_comes(amplify: FakeAmplify, tmp_path: Path) -> None:
    danse = serve_week(amplify)
    # (14 days back: the week served, in a few windows; 365 days were 244 fetches)
    written = write_config(tmp_path / "amplify.json", logRetention={"days": 14})
    config = parse_config(json.loads(written.read_text()))
    now = [datetime(2026, 11, 8, 23, 0, tzinfo=UTC).timestamp()]  # Sunday night
    store = SQLiteHotStore(tmp_path / "data" / "hot.db")
    try:
        collector = Collector(config, store, LocalObjectStore(tmp_path / "data" / "lake"), clock=lambda: now[0])
        reports = []
        schedule = AmplifySchedule(collector, config.schedule, tmp_path / "data", lambda: now[0], reports.append)
        assert schedule.next_run == datetime(2026, 11, 9, 1, 0, tzinfo=UTC)
        assert schedule.tick() is None and danse.calls == []  # not yet
        now[0] = datetime(2026, 11, 9, 1, 0, 30, tzinfo=UTC).timestamp()
        report = schedule.tick()
        assert report is not None and reports == [report] and danse.calls
        # the first run reaches back logRetention.days, up to the last settled hour (Monday 00:00)
        assert collector.watermark("danse_tech") == datetime(2026, 11, 9, tzinfo=UTC)
        assert sum(a.rows for a in report.apps) == len(danse.requests)
        assert schedule.next_run == datetime(2026, 11, 16, 1, 0, tzinfo=UTC)
        assert schedule.status()["last_run"]["ok"] is True
        with collection_lock(tmp_path / "data"):  # a collection by hand holds the data dir
            now[0] = datetime(2026, 11, 16, 1, 0, 30, tzinfo=UTC).timestamp()
            assert schedule.tick() is None and "another Amplify collection is running" in schedule.last_error
            with pytest.raises(CollectionBusy), collection_lock(tmp_path / "data"):
                pass
        # the scheduled run waits for it, a minute at a time, not for the next week
        assert schedule.next_run == datetime(2026, 11, 16, 1, 1, 30, tzinfo=UTC)
        now[0] = datetime(2026, 11, 16, 1, 1, 30, tzinfo=UTC).timestamp()
        assert schedule.tick() is not None and schedule.last_error is None
        assert schedule.next_run == datetime(2026, 11, 23, 1, 0, tzinfo=UTC)
    finally:
        store.close()


class ManifestDeniedLake(LocalObjectStore):
    """A lake that refuses the tables' manifests (a bucket policy that lets loglake write the apps' folders alone): a
    run fails as a whole when it publishes them, after its apps were collected."""

    def put(self, key: str, data: bytes) -> None:
        if key.endswith(MANIFEST):
            raise ObjectStoreError(f"cannot write {key}: AccessDenied")
        super().put(key, data)


def scheduled_app(amplify: FakeAmplify, tmp_path: Path, now: list[float]) -> LoglakeApp:
    """A server's app collecting on its schedule (weekly, Monday 01:00) into a lake that refuses its manifests."""
    serve_week(amplify)
    config = write_config(tmp_path / "amplify.json", logRetention={"days": 14})
    settings = Settings(data_dir=tmp_path / "data", access_log="off", amplify_config=str(config))
    app = LoglakeApp.from_settings(settings, clock=lambda: now[0])
    assert app.runtime.collector is not None
    app.runtime.collector.lake = ManifestDeniedLake(tmp_path / "data" / "lake")
    return app


async def test_a_scheduled_run_that_fails_as_a_whole_is_recorded_as_its_apps_failures(
    amplify: FakeAmplify, tmp_path: Path
) -> None:
    """A collection failing at every run (here after collecting, as it published the manifests) only set /healthz's
    last_error: no collection_failed event, so the starter rule "Amplify log collection failing" never fired, and
    no run report, so `amplify status` and the UI showed the last good run."""
    now = [datetime(2026, 11, 8, 23, 0, tzinfo=UTC).timestamp()]
    app = scheduled_app(amplify, tmp_path, now)
    try:
        schedule, events = app.runtime.amplify, app.runtime.self_events
        assert schedule is not None and events is not None
        now[0] = datetime(2026, 11, 9, 1, 0, 30, tzinfo=UTC).timestamp()
        assert schedule.tick() is None and "ObjectStoreError: cannot write" in schedule.last_error
        assert schedule.status()["last_run"]["ok"] is False
        assert events.write() == 2  # one per app
        fired = _fired(app, int(now[0] * 1000) - 300_000, int(now[0] * 1000) + 60_000)
        assert {
            f"Amplify logs of {name} are not being collected" for name in ("danse_tech", "digital_horizon")
        } <= fired
        async with asgi_client(app, key_for(app, "read", "reader")) as client:
            (run,) = (await client.get("/amplify/status")).json()["runs"]
        assert run["ok"] is False and run["error"].startswith("ObjectStoreError: cannot write")
    finally:
        app.close()
    status = run_cli("amplify", "status", "--data-dir", str(tmp_path / "data"))
    assert "FAILED" in status.stdout and "  the whole run: ObjectStoreError: cannot write" in status.stdout


async def test_a_scheduled_run_that_fails_as_a_whole_keeps_what_its_apps_collected(
    amplify: FakeAmplify, tmp_path: Path
) -> None:
    """Its report said every app collected nothing (0 rows, 0 windows done), while their rows were in the lake and
    their watermarks had moved: `amplify status`, /healthz and the UI said the run had collected nothing."""
    now = [datetime(2026, 11, 8, 23, 0, tzinfo=UTC).timestamp()]
    app = scheduled_app(amplify, tmp_path, now)
    danse = amplify.apps[DANSE["appId"]]
    try:
        schedule = app.runtime.amplify
        assert schedule is not None
        now[0] = datetime(2026, 11, 9, 1, 0, 30, tzinfo=UTC).timestamp()
        assert schedule.tick() is None and "ObjectStoreError: cannot write" in schedule.last_error
        assert schedule.status()["last_run"]["rows"] == len(danse.requests)
        async with asgi_client(app, key_for(app, "read", "reader")) as client:
            (run,) = (await client.get("/amplify/status")).json()["runs"]
    finally:
        app.close()
    assert run["ok"] is False and run["error"].startswith("ObjectStoreError: cannot write")
    by_app = {a["app"]: a for a in run["apps"]}
    assert by_app["danse_tech"]["rows"] == len(danse.requests) and by_app["danse_tech"]["windows_ok"] > 0
    assert by_app["danse_tech"]["watermark_after"] == "2026-11-09T00:00:00Z"
    status = run_cli("amplify", "status", "--data-dir", str(tmp_path / "data"))
    assert f"FAILED, {len(danse.requests):,} rows" in status.stdout


def test_a_collection_by_hand_that_fails_as_a_whole_prints_what_its_apps_collected(
    amplify: FakeAmplify, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It printed the error alone, as a traceback with a local lake, and not what the apps had collected before (their
    rows in the lake): the user could not tell whether to collect again, nor what from."""
    danse = serve_week(amplify)
    put = LocalObjectStore.put

    def manifest_denied(lake: LocalObjectStore, key: str, data: bytes) -> None:  # (ManifestDeniedLake's, in the CLI)
        if key.endswith(MANIFEST):
            raise ObjectStoreError(f"cannot write {key}: AccessDenied")
        put(lake, key, data)

    monkeypatch.setattr(LocalObjectStore, "put", manifest_denied)
    config, data = write_config(tmp_path / "amplify.json"), tmp_path / "data"
    window = ["--since", "2026-11-01", "--until", "2026-11-08T00:00:00Z"]
    result = run_cli("amplify", "collect", "--config", str(config), "--data-dir", str(data), *window)
    assert result.exit_code == 1
    assert "danse_tech" in result.stdout and "3/3" in result.stdout and f"{len(danse.requests):,}" in result.stdout
    (said,) = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert said == (
        "Error: the collection failed as a whole, after what the report says: ObjectStoreError: cannot write"
        " type=amplify_access/_manifest.json: AccessDenied; once that is fixed, run the command again"
    )
    assert "Traceback" not in result.stderr
    as_json = run_cli("amplify", "collect", "--config", str(config), "--data-dir", str(data), "--json", *window)
    report = json.loads(as_json.stdout)
    assert (as_json.exit_code, report["ok"], report["error"]) == (1, False, said.split(": ", 2)[2].split(";")[0])
    assert report["apps"][0]["duplicates"] == len(danse.requests)  # (stored by the first run)


def test_a_failed_run_the_store_cannot_record_is_told_once_and_recorded_when_it_can(
    amplify: FakeAmplify, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    now = [datetime(2026, 11, 8, 23, 0, tzinfo=UTC).timestamp()]
    app = scheduled_app(amplify, tmp_path, now)
    try:
        schedule, events = app.runtime.amplify, app.runtime.self_events
        assert schedule is not None and events is not None
        _fill(app)  # the store is full: it refuses writes, the run's report of its failure too
        filler = "INSERT INTO amplify_runs (started_ms, finished_ms, report) VALUES (0, 0, ?)"
        with pytest.raises(StoreUnavailable):  # (the table of run reports has room left in its pages: fill it)
            for _ in range(1000):
                app.store.in_write_transaction(lambda conn: conn.execute(filler, ("x" * 500,))).result()
        for monday in (9, 16):
            now[0] = datetime(2026, 11, monday, 1, 0, 30, tzinfo=UTC).timestamp()
            assert schedule.tick() is None and schedule.last_error is not None  # the schedule goes on
        told = [r for r in caplog.records if r.getMessage().startswith("recording a failed Amplify collection")]
        assert len(told) == 1 and told[0].exc_info is not None and told[0].exc_info[0] is StoreUnavailable
        assert events.write() == 0  # kept for when the store takes writes
        app.store.set_max_size(0)
        assert events.write() == 2
        fired = _fired(app, int(now[0] * 1000) - 300_000, int(now[0] * 1000) + 60_000)
        assert "Amplify logs of danse_tech are not being collected" in fired
    finally:
        app.close()


@pytest.mark.parametrize(
    ("user_agent", "bot"),
    [
        ("sqlmap/1.7.2#stable (https://sqlmap.org)", True),  # a new user's trial saw it counted as a person
        ("Mozilla/5.00 (Nikto/2.5.0) (Evasions:None) (Test:Port Check)", True),
        ("Mozilla/5.0 (compatible; Nmap Scripting Engine; https://nmap.org/book/nse.html)", True),
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:120.0) Gecko/20100101 Firefox/120.0", False),
        ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148", False),
    ],
)
def test_the_bot_pattern_names_scanners_and_not_browsers(user_agent: str, bot: bool) -> None:
    import duckdb

    from loglake.amplify.reports import BOT_PATTERN

    with duckdb.connect() as conn:
        assert conn.execute(f"SELECT regexp_matches($ua, '{BOT_PATTERN}')", {"ua": user_agent}).fetchone()[0] is bot


def test_collect_into_an_s3_lake_whose_prefix_the_config_writes_without_its_slash(
    amplify: FakeAmplify, s3_server, s3_bucket: tuple, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lake set up as the help says (`--lake-prefix 'loglake/'`) and the collector's file naming it `loglake` are
    the same folder: the collection was refused, "writes to s3://b/loglake but the lake is s3://b/loglake/"."""
    from tests.s3_server import ACCESS_KEY, SECRET_KEY

    danse = serve_week(amplify)
    client, bucket, prefix = s3_bucket
    lake = {"BUCKET": bucket, "PREFIX": f"{prefix}/", "ENDPOINT": s3_server.endpoint, "REGION": "us-east-1"}
    for name, value in lake.items():
        monkeypatch.setenv(f"LOGLAKE_LAKE_{name}", value)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)  # (the lake's; the apps' profiles name their own)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    config = write_config(tmp_path / "amplify.json", s3={"bucket": bucket, "prefix": prefix})
    data = tmp_path / "data"
    window = ["--since", "2026-11-01", "--until", "2026-11-08T00:00:00Z", "--app", "danse_tech"]
    result = run_cli("amplify", "collect", "--config", str(config), "--data-dir", str(data), *window)
    assert result.exit_code == 0, result.output
    counted = run_cli("query", "--data-dir", str(data), "--format", "json", "SELECT count(*) AS n FROM amplify_access")
    assert json.loads(counted.stdout)["rows"] == [[len(danse.requests)]]
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/").get("Contents", [])]
    assert any(k.startswith(f"{prefix}/type=amplify_access/app=danse_tech/date=") for k in keys), keys
    other = write_config(tmp_path / "other.json", s3={"bucket": bucket, "prefix": "elsewhere"})
    refused = run_cli("amplify", "collect", "--config", str(other), "--data-dir", str(data), *window)
    assert refused.exit_code == 1
    assert f"writes to s3://{bucket}/elsewhere but the lake is s3://{bucket}/{prefix}:" in refused.output
