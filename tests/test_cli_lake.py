"""The lake commands (query, tables, search, flush, compact, retention, catalog) against real servers
and data dirs, and the server's own background flush."""

from __future__ import annotations

import csv
import io
import json
import time
from dataclasses import replace
from pathlib import Path

import duckdb
import httpx
import pytest
import sqlglot

from loglake.api.app import LoglakeApp
from loglake.config import ConfigError, Settings
from loglake.lake.lake import EXPIRE_EVERY_TURNS
from loglake.store.sqlite import SQLiteHotStore
from loglake.times import DAY_MS
from tests.conftest import asgi_client, key_for
from tests.conftest import run_cli as run
from tests.store.contract import record

pytestmark = pytest.mark.usefixtures("no_loglake_environment")


def old_records(now_ms: int, days_ago: int, count: int, service: str = "api") -> list[dict]:
    base = now_ms - days_ago * DAY_MS
    return [
        {
            "timestamp": base + i,
            "service": service,
            "severity": "error" if i % 4 == 0 else "info",
            "message": f"{'Timeout' if i % 4 == 0 else 'fine'} #{i} {days_ago}d",
        }
        for i in range(count)
    ]


def post(server_url: str, key: str, records: list[dict]) -> None:
    response = httpx.post(server_url + "/logs", json=records, headers={"authorization": f"Bearer {key}"})
    assert response.status_code == 201, response.text


async def test_metrics_show_the_lake_after_maintenance_run_from_the_cli(tmp_path: Path) -> None:
    """The lake's gauges come from the catalog, so a flush or retention by another process counts."""
    data = tmp_path / "data"
    app = LoglakeApp.from_settings(Settings(data_dir=data, access_log="off"))
    try:
        async with asgi_client(app, key_for(app, "admin", "admin")) as client:

            async def gauges() -> dict[str, float]:
                text = (await client.get("/metrics")).text
                wanted = ('loglake_lake_records{table="logs"}', 'loglake_lake_files{table="logs"}',
                          "loglake_hot_records", "loglake_lake_retired_files")  # fmt: skip
                return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                        if line.startswith(wanted)}  # fmt: skip

            sent = await client.post("/logs", json=old_records(int(time.time() * 1000), 3, 30))
            assert sent.status_code == 201, sent.text
            assert (await gauges())["loglake_hot_records"] == 30
            assert run("flush", "--all", "--data-dir", str(data)).exit_code == 0
            assert await gauges() == {
                'loglake_lake_files{table="logs"}': 1,
                'loglake_lake_records{table="logs"}': 30,
                "loglake_lake_retired_files": 0,
                "loglake_hot_records": 0,
            }
            assert run("retention", "--days", "1", "--data-dir", str(data)).exit_code == 0
            assert (await gauges())['loglake_lake_records{table="logs"}'] == 0
    finally:
        app.close()


def test_the_server_flushes_in_the_background_and_the_cli_queries_it(server_factory, admin_key_of) -> None:
    server = server_factory(None, "--hot-window-seconds", "60", "--flush-interval-seconds", "0.2")
    key = admin_key_of(server)
    now = int(time.time() * 1000)
    post(server.url, key, old_records(now, 2, 40) + old_records(now, 1, 20, "web"))
    post(server.url, key, [{"service": "web", "message": "just now, stays hot"}])
    lake_records = 0
    deadline = time.monotonic() + 20
    while lake_records < 60 and time.monotonic() < deadline:
        time.sleep(0.1)
        listed = run("tables", "--json", "--url", server.url, "--api-key", key)
        lake_records = json.loads(listed.output)[0]["lake_records"]
    assert lake_records == 60, "the background job did not flush the records older than the hot window"
    assert json.loads(listed.output)[0]["hot_records"] == 1
    # The turn that flushed them logs its line once its other steps are done (merges, retention): waited for, as
    # read at once it was missing on a busy machine (CI), the records already in the lake.
    flushed, deadline = 0, time.monotonic() + 20
    while flushed < 60 and time.monotonic() < deadline:
        lines = server.log_path.read_text().splitlines()
        flushed = sum(json.loads(line)["flushed_records"] for line in lines if '"lake_maintenance"' in line)
        time.sleep(0.1)
    assert flushed == 60
    health = httpx.get(server.url + "/healthz", headers={"authorization": f"Bearer {key}"}).json()["lake"]
    assert health["last_maintenance"] is not None and health["error"] is None
    metrics = httpx.get(server.url + "/metrics", headers={"authorization": f"Bearer {key}"}).text
    assert 'loglake_lake_records{table="logs"} 60' in metrics and "loglake_hot_records 1" in metrics

    sql = "SELECT service, count(*) AS n FROM logs GROUP BY service ORDER BY service"
    as_table = run("query", sql, "--url", server.url, "--api-key", key)
    assert as_table.exit_code == 0, as_table.output
    assert as_table.stdout.splitlines()[1:] == ["api      40", "web      21"]
    as_csv = run("query", sql, "--format", "csv", "--url", server.url, "--api-key", key)
    assert list(csv.reader(io.StringIO(as_csv.stdout))) == [["service", "n"], ["api", "40"], ["web", "21"]]
    as_ndjson = run("query", sql, "--format", "ndjson", "--url", server.url, "--api-key", key)
    assert [json.loads(line) for line in as_ndjson.stdout.splitlines()] == [
        {"service": "api", "n": 40},
        {"service": "web", "n": 21},
    ]
    as_json = json.loads(run("query", sql, "--format", "json", "--url", server.url, "--api-key", key).stdout)
    assert as_json["rows"] == [["api", 40], ["web", 21]] and as_json["files_scanned"] >= 1
    plan = run(
        "query",
        "SELECT count(*) FROM logs WHERE date = current_date",
        "--explain",
        "--url",
        server.url,
        "--api-key",
        key,
    )
    assert "Scanning Files: 0/2" in plan.stdout  # the two days in the lake, neither of them today

    refused = run("query", "COPY (SELECT 1) TO 'x.csv'", "--url", server.url, "--api-key", key)
    assert refused.exit_code == 1 and "only SELECT" in refused.output

    found = run("search", "timeout", "--since", "3d", "--json", "--url", server.url, "--api-key", key)
    messages = [json.loads(line)["message"] for line in found.stdout.splitlines()]
    assert len(messages) == 15 and all("Timeout" in m for m in messages)
    assert messages[0].endswith("1d") and messages[-1].endswith("2d")  # newest first
    older = run("search", "timeout", "-1d", "--since", "3d", "--json", "--url", server.url, "--api-key", key)
    assert len(older.stdout.splitlines()) == 10  # -term excludes, without needing `--`
    not_help = run(
        "search", "timeout", "-healthcheck", "--since", "3d", "--json", "--url", server.url, "--api-key", key
    )
    assert len(not_help.stdout.splitlines()) == 15  # -h... is a term too, not the help option
    of_type = [
        run(
            "search",
            "timeout",
            "--log-type",
            log_type,
            "--since",
            "3d",
            "--json",
            "--url",
            server.url,
            "--api-key",
            key,
        )
        for log_type in ("application", "nginx")
    ]
    assert [len(found.stdout.splitlines()) for found in of_type] == [15, 0]
    # OR in a group, over the lake and the hot record: the shell's words are joined into one search
    either = run(
        "search",
        "service:web",
        "(timeout",
        "OR",
        "hot)",
        "--since",
        "3d",
        "--json",
        "--url",
        server.url,
        "--api-key",
        key,
    )
    messages = [json.loads(line)["message"] for line in either.stdout.splitlines()]
    assert messages == ["just now, stays hot"] + [f"Timeout #{i} 1d" for i in (16, 12, 8, 4, 0)]


@pytest.mark.parametrize("command", ["search", "tail"])
def test_search_words_may_start_with_a_dash_but_unknown_options_are_refused(command: str) -> None:
    asked = run(command, "-h")  # help, not a search for everything but "h" (tail would never end)
    assert asked.exit_code == 0 and f" {command} [OPTIONS]" in asked.stdout
    assert "  -h, --help " in asked.stdout  # listed as every other command lists it
    for unknown in ("--bogus", "--until=1h" if command == "tail" else "--follow"):
        refused = run(command, unknown, "timeout", "--url", "http://127.0.0.1:9")
        assert refused.exit_code == 2 and f"No such option '{unknown.split('=')[0]}'" in refused.output


def test_retention_help_says_how_often_the_server_expires_days() -> None:
    """It said "the server does this daily", where the server's job expires days every tenth turn (5 minutes)."""
    said = " ".join(run("retention", "--help").output.split())
    assert "daily" not in said
    assert f"every {EXPIRE_EVERY_TURNS}th maintenance turn: every 5 minutes at the default" in said


async def test_flush_without_a_terminal_says_what_it_did_in_one_line_with_no_bare_progress_label(
    tmp_path: Path,
) -> None:
    """With stderr not a terminal (cron, a log file), click's progress bar wrote its label alone: a bare `flushing`
    line on stderr for every flush."""
    data = tmp_path / "data"
    app = LoglakeApp.from_settings(Settings(data_dir=data, access_log="off"))
    try:
        async with asgi_client(app, key_for(app, "admin", "admin")) as client:
            sent = await client.post("/logs", json=old_records(int(time.time() * 1000), 3, 5))
            assert sent.status_code == 201, sent.text
    finally:
        app.close()
    flushed = run("flush", "--data-dir", str(data))
    assert flushed.exit_code == 0, flushed.output
    assert flushed.stderr == ""
    assert flushed.stdout.startswith("moved 5 records into 1 lake file(s) in ")
    assert len(flushed.stdout.splitlines()) == 1


@pytest.mark.parametrize("seconds", ["0", "-5", "soon"])
def test_flush_older_than_takes_seconds_from_1_and_says_so_of_its_own_option(seconds: str, tmp_path: Path) -> None:
    """`loglake flush --older-than 0` (taken by the option) was refused with "--hot-window-seconds must be positive",
    a flag flush does not have."""
    SQLiteHotStore(tmp_path / "hot.db").close()
    refused = run("flush", "--older-than", seconds, "--data-dir", str(tmp_path))
    assert refused.exit_code == 2
    said = " ".join(refused.stderr.split())
    assert f"Invalid value for '--older-than': {seconds!r} is not a whole number of seconds, 1 or more" in said


def test_flush_compact_and_retention_by_hand(server_factory, admin_key_of, monkeypatch) -> None:
    # No background job: only the CLI moves records. A server keeping everything takes the 400-day-old
    # records; the retention run by hand below applies 365 days.
    server = server_factory(None, "--flush-interval-seconds", "0", "--retention-days", "0")
    key = admin_key_of(server)
    data_dir = str(server.data_dir)
    now = int(time.time() * 1000)
    for batch in range(3):  # three days, and three flushes of the oldest day -> small files to merge
        post(server.url, key, old_records(now, 400, 10) + old_records(now, 30 + batch, 10))
    post(server.url, key, [{"service": "web", "message": "fresh"}])

    none_due = run("flush", "--older-than", str(500 * 86_400), "--data-dir", data_dir)
    assert "moved 0 records" in none_due.stdout
    due = run("flush", "--data-dir", data_dir)
    assert due.exit_code == 0, due.output
    assert "moved 60 records" in due.stdout  # all but the fresh one: it is inside the hot window
    post(server.url, key, old_records(now, 400, 5))
    run("flush", "--data-dir", data_dir)
    everything = run("flush", "--all", "--data-dir", data_dir)
    assert "moved 1 records" in everything.stdout
    # --all leaves the lake in its final shape: the oldest day's two files merged, and each other day's one file
    # (a flush's, Snappy) rewritten by the final merge
    assert "merged 6 file(s) (66 records) into 5" in everything.stdout
    assert "(4 of them rewritten alone into their day's final form)" in everything.stdout

    counted = run(
        "query",
        "SELECT count(*) AS n, count(DISTINCT log_id) AS ids FROM logs",
        "--format",
        "json",
        "--data-dir",
        data_dir,
    )
    assert json.loads(counted.stdout)["rows"] == [[66, 66]]

    post(server.url, key, old_records(now, 400, 3))
    run("flush", "--data-dir", data_dir)
    merged = run("compact", "--data-dir", data_dir)
    assert merged.exit_code == 0 and "merged 2 file(s)" in merged.stdout

    assert (
        "would delete 0 partition(s)" in run("retention", "--dry-run", "--data-dir", data_dir, "--days", "500").stdout
    )
    monkeypatch.setenv("LOGLAKE_RETENTION_DAYS", "365")
    dry = run("retention", "--dry-run", "--data-dir", data_dir)
    assert "would delete 1 partition(s)" in dry.stdout and "38 records" in dry.stdout
    assert json.loads(run("query", "SELECT count(*) FROM logs", "--format", "json", "--data-dir", data_dir).stdout)[
        "rows"
    ] == [[69]]
    done = run("retention", "--data-dir", data_dir)
    assert "deleted 1 partition(s)" in done.stdout
    left = run("query", "SELECT count(*) FROM logs", "--format", "json", "--url", server.url, "--api-key", key)
    assert json.loads(left.stdout)["rows"] == [[31]]


def test_query_on_a_folder_without_data_says_so(tmp_path: Path) -> None:
    result = run("query", "SELECT 1", "--data-dir", str(tmp_path / "nothing"))
    assert result.exit_code == 1 and "no loglake data" in result.output


def test_ndjson_keeps_every_column_of_names_alike(tmp_path: Path) -> None:
    """A join's two `service` columns were one key of each line, holding the second's value (as the web UI's JSON
    download did): later ones get a suffix, as DuckDB names a subquery's columns."""
    SQLiteHotStore(tmp_path / "hot.db").close()
    for sql, keys in [
        ("SELECT 1 AS a, 2 AS a, 3 AS a", ["a", "a_1", "a_2"]),
        ("SELECT 1 AS a, 2 AS a, 3 AS a_1", ["a", "a_1", "a_1_1"]),
    ]:
        result = run("query", sql, "--format", "ndjson", "--data-dir", str(tmp_path))
        assert result.exit_code == 0, result.output
        assert [json.loads(line) for line in result.stdout.splitlines()] == [dict(zip(keys, [1, 2, 3], strict=True))]
        assert list(duckdb.sql(f"SELECT * FROM ({sql})").columns) == keys  # (as DuckDB names them)


def test_query_csv_tells_null_from_the_empty_string(tmp_path: Path) -> None:
    """As DuckDB writes and reads CSV: NULL an empty field, '' a quoted one (both were an empty field)."""
    SQLiteHotStore(tmp_path / "hot.db").close()
    sql = """SELECT NULL AS "a", '' AS "b,c", 'say "hi"' AS d, true AS e, 1.5 AS f, [1, 2] AS g, 'x\ny' AS h"""
    result = run("query", sql, "--format", "csv", "--data-dir", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert result.stdout == 'a,"b,c",d,e,f,g,h\n,"","say ""hi""",true,1.5,"[1, 2]","x\ny"\n'
    (tmp_path / "out.csv").write_text(result.stdout)
    read = duckdb.sql(f"SELECT * FROM read_csv('{tmp_path / 'out.csv'}', allow_quoted_nulls = false)").fetchall()
    assert read == [(None, "", 'say "hi"', True, 1.5, "[1, 2]", "x\ny")]


def test_query_prints_numbers_as_a_person_writes_them_in_the_table_and_csv(tmp_path: Path) -> None:
    """They were Python's: 1e+16, 1.0 (and True in the table); JSON stays JSON."""
    SQLiteHotStore(tmp_path / "hot.db").close()
    sql = "SELECT 1e16::DOUBLE AS a, 1.0::DOUBLE AS b, 1.5e-9 AS c, 1e21::DOUBLE AS d, [2.0::DOUBLE] AS e, true AS f"
    table = run("query", sql, "--data-dir", str(tmp_path))
    assert table.exit_code == 0, table.output
    assert table.stdout.splitlines()[1].split() == ["10000000000000000", "1", "1.5e-9", "1e+21", "[2]", "true"]
    as_csv = run("query", sql, "--format", "csv", "--data-dir", str(tmp_path))
    assert as_csv.stdout.splitlines()[1] == "10000000000000000,1,1.5e-9,1e+21,[2],true"
    (tmp_path / "out.csv").write_text(as_csv.stdout)  # (exact: read back, the same doubles)
    assert duckdb.sql(f"SELECT a, b, c, d FROM read_csv('{tmp_path / 'out.csv'}')").fetchall() == [
        (1e16, 1, 1.5e-9, 1e21)
    ]
    as_json = json.loads(run("query", sql, "--format", "json", "--data-dir", str(tmp_path)).stdout)
    assert as_json["rows"] == [[1e16, 1.0, 1.5e-9, 1e21, [2.0], True]]


def test_query_limit_takes_one_row_or_more(tmp_path: Path) -> None:
    """As POST /query's limit: --limit 0 printed no rows, as if none had matched."""
    SQLiteHotStore(tmp_path / "hot.db").close()
    refused = run("query", "SELECT 1", "--limit", "0", "--data-dir", str(tmp_path))
    assert refused.exit_code == 2 and "0 is not in the range x>=1" in refused.output


@pytest.mark.parametrize("seconds", ["nan", "0", "5e-324", "0.009"])
def test_query_timeout_takes_a_number_of_seconds(tmp_path: Path, seconds: str) -> None:
    """`--timeout nan` ran the query (click's range takes nan: no comparison with a bound is true of it), as did
    5e-324, a timeout of no time at all."""
    SQLiteHotStore(tmp_path / "hot.db").close()
    refused = run("query", "SELECT 1", "--timeout", seconds, "--data-dir", str(tmp_path))
    assert refused.exit_code == 2 and f"'{seconds}' is not a number of seconds, at least 0.01" in refused.output


def test_a_local_query_too_large_to_answer_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    SQLiteHotStore(tmp_path / "hot.db").close()
    monkeypatch.setenv("LOGLAKE_QUERY_MAX_RESPONSE_MB", "1")
    wide = (
        "SELECT CASE WHEN i < 4096 THEN repeat('x', 10000) ELSE error('read past the cap') END FROM range(10000) t(i)"
    )
    result = run("query", wide, "--format", "csv", "--data-dir", str(tmp_path))
    assert result.exit_code == 1 and "query_max_response_mb" in result.output and "fewer rows" in result.output


def test_catalog_ddl_prints_athena_tables() -> None:
    result = run("catalog", "ddl", "--engine", "athena", "--location", "s3://my-lake/logs")
    assert result.exit_code == 0, result.output
    logs, amplify = sqlglot.parse(result.stdout, read="athena")
    assert "s3://my-lake/logs/type=app_logs/" in logs.sql(dialect="athena")
    assert "s3://my-lake/logs/type=amplify_access/app=${app}/date=${date}/" in amplify.sql(dialect="athena")
    # a value it cannot use is a usage error (exit 2), as every command's bad option value is; it exited 1
    for option, value, said in [("--location", "/not/s3", "s3://"), ("--since", "7d", "YYYY-MM-DD"),
                                ("--database", "bad-db;", "a-z 0-9 _")]:  # fmt: skip
        bad = run("catalog", "ddl", "--location", "s3://my-lake/logs", option, value)
        assert bad.exit_code == 2 and said in bad.stderr and "catalog ddl --help" in bad.stderr


def test_a_data_dir_whose_lake_is_in_s3_refuses_commands_that_name_no_bucket(tmp_path: Path) -> None:
    """`loglake flush` without the server's LOGLAKE_LAKE_* settings wrote parts into a folder of the data dir while
    its catalog listed the bucket's files; compaction then failed on them, and the server's queries broke."""
    from loglake.lake.location import LOCATION_FILE, check_lake_location

    data_dir = tmp_path / "data"
    data_dir.mkdir()
    SQLiteHotStore(data_dir / "hot.db").close()
    s3 = Settings(data_dir=data_dir, lake_bucket="trial-lake", lake_prefix="/loglake/", lake_endpoint="http://s3:9")
    check_lake_location(s3)  # (as the server's start does: the first lake opened is the data dir's)
    assert (data_dir / LOCATION_FILE).stat().st_mode & 0o777 == 0o600
    check_lake_location(replace(s3, lake_prefix="loglake", lake_endpoint="http://127.0.0.1:9"))  # the same lake
    for command in (["flush", "--all"], ["compact"], ["query", "SELECT 1"], ["tables"]):
        refused = run(*command, "--data-dir", str(data_dir))
        assert refused.exit_code != 0, (command, refused.output)
        assert "holds the catalog of s3://trial-lake/loglake (endpoint http://s3:9)" in refused.output, refused.output
        assert "LOGLAKE_LAKE_BUCKET=trial-lake LOGLAKE_LAKE_PREFIX=loglake LOGLAKE_LAKE_ENDPOINT=http://s3:9" in (
            refused.output
        )
        assert "Traceback" not in refused.output
    assert not (data_dir / "lake").exists()  # (nothing written to a lake of its own)
    local = tmp_path / "local"
    local.mkdir()
    check_lake_location(Settings(data_dir=local))
    with pytest.raises(ConfigError, match=r"holds the catalog of the folder .*local/lake, but these settings name s3"):
        check_lake_location(replace(s3, data_dir=local))


@pytest.mark.parametrize("command", [["flush"], ["compact"], ["retention", "--dry-run"]])
def test_maintenance_commands_take_the_default_data_dir_as_the_others_do(
    command: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """They stopped with "Missing option '--data-dir'" where keys, query and ask take ./loglake-data."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LOGLAKE_DATA_DIR", raising=False)
    (tmp_path / "loglake-data").mkdir()
    SQLiteHotStore(tmp_path / "loglake-data" / "hot.db").close()
    result = run(*command)
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("given_by", ["LOGLAKE_CONFIG", "--config"])
@pytest.mark.parametrize(
    "command",
    [["flush"], ["compact"], ["retention", "--dry-run"], ["verify"], ["keys", "list"], ["rules", "list"]],
)
def test_commands_on_a_data_dir_take_the_one_the_config_file_names_as_serve_does(
    command: list[str], given_by: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With data_dir given only in LOGLAKE_CONFIG's file, `serve` used it and flush, compact, retention and keys
    looked in ./loglake-data ("no loglake data in loglake-data"); and only `serve` took --config FILE, so a server
    started with it was worked on only with the variable exported."""
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "elsewhere"
    Settings(data_dir=data).hot_db_path.parent.mkdir()
    SQLiteHotStore(data / "hot.db").close()
    assert run("keys", "create", "--name", "ops", "--data-dir", str(data)).exit_code == 0
    assert run("rules", "init", "--data-dir", str(data)).exit_code == 0
    config = tmp_path / "loglake.toml"
    config.write_text(f'data_dir = "{data}"\n')
    if given_by == "--config":
        command = [*command, "--config", str(config)]
    else:
        monkeypatch.setenv("LOGLAKE_CONFIG", str(config))
    result = run(*command)
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "loglake-data").exists()


def test_the_config_flag_wins_over_the_variable_and_brings_the_lake_settings(tmp_path: Path, monkeypatch) -> None:
    """--config FILE names the settings' file as LOGLAKE_CONFIG does, and wins over it as a flag wins over a
    variable: the settings beyond the data dir (here retention_days) come from it too."""
    data = tmp_path / "data"
    Settings(data_dir=data).hot_db_path.parent.mkdir()
    SQLiteHotStore(data / "hot.db").close()
    kept = tmp_path / "kept.toml"
    kept.write_text(f'data_dir = "{data}"\nretention_days = 0\n')
    other = tmp_path / "other.toml"
    other.write_text(f'data_dir = "{tmp_path / "nowhere"}"\nretention_days = 30\n')
    monkeypatch.setenv("LOGLAKE_CONFIG", str(other))
    result = run("retention", "--dry-run", "--config", str(kept))
    assert result.exit_code == 0, result.output
    assert result.stdout == f"retention_days in {kept} is 0: the lake keeps everything\n"
    missing = run("query", "SELECT 1", "--data-dir", str(data), "--config", str(tmp_path / "no.toml"))
    assert missing.exit_code == 1 and f"config file {tmp_path / 'no.toml'} does not exist" in missing.stderr


def test_retention_days_0_names_the_flag_when_the_flag_gave_it(tmp_path: Path) -> None:
    """`loglake retention --days 0` answered "retention_days is 0", a setting the person had not given."""
    data = tmp_path / "data"
    Settings(data_dir=data).hot_db_path.parent.mkdir()
    SQLiteHotStore(data / "hot.db").close()
    result = run("retention", "--dry-run", "--days", "0", "--data-dir", str(data))
    assert result.exit_code == 0, result.output
    assert result.stdout == "--days is 0: the lake keeps everything\n"


def test_retention_days_0_names_the_variable_or_the_config_file_that_gave_it(tmp_path: Path, monkeypatch) -> None:
    """Said "retention_days is 0" whatever gave it: LOGLAKE_RETENTION_DAYS=0 was not named."""
    data = tmp_path / "data"
    Settings(data_dir=data).hot_db_path.parent.mkdir()
    SQLiteHotStore(data / "hot.db").close()
    config = tmp_path / "loglake.toml"
    config.write_text("retention_days = 0\n")
    from_file = run("retention", "--dry-run", "--data-dir", str(data), "--config", str(config))
    assert from_file.exit_code == 0, from_file.output
    assert from_file.stdout == f"retention_days in {config} is 0: the lake keeps everything\n"
    monkeypatch.setenv("LOGLAKE_RETENTION_DAYS", "0")
    from_variable = run("retention", "--dry-run", "--data-dir", str(data), "--config", str(config))
    assert from_variable.stdout == "LOGLAKE_RETENTION_DAYS is 0: the lake keeps everything\n"


def test_a_retention_reaching_before_1970_keeps_everything(tmp_path: Path) -> None:
    """`loglake retention --days 1000000` (the server's retention_days too) ended in a traceback: its first kept
    day was before the year 1, no date."""
    data = tmp_path / "data"
    Settings(data_dir=data).hot_db_path.parent.mkdir()
    SQLiteHotStore(data / "hot.db").close()
    result = run("retention", "--dry-run", "--days", "1000000", "--data-dir", str(data))
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("keeping 1970-01-01 on (today, UTC, and the 1000000 days before)")


def test_retention_by_hand_drops_the_old_records_still_hot(tmp_path: Path) -> None:
    """A record 60 days old still in hot.db (the server stopped before its flush) stayed in every read after
    `loglake retention --days 30`, and was flushed into its day later."""
    data = tmp_path / "data"
    Settings(data_dir=data).hot_db_path.parent.mkdir()
    store = SQLiteHotStore(data / "hot.db")
    now_ms = int(time.time() * 1000)
    store.put([record(now_ms - 60 * DAY_MS, "old"), record(now_ms - 60_000, "new")])
    store.close()
    dry = run("retention", "--dry-run", "--days", "30", "--data-dir", str(data))
    assert "would delete 0 partition(s)" in dry.stdout
    assert "  and, older, not in the lake yet: 1 hot record(s), 0 waiting bulk batch(es)\n" in dry.stdout
    done = run("retention", "--days", "30", "--data-dir", str(data))
    assert done.exit_code == 0 and "deleted 1 partition(s)" in done.stdout, done.output
    left = run("query", "--format", "csv", "--data-dir", str(data), "SELECT message FROM logs")
    assert left.stdout.splitlines() == ["message", "new"]


def test_a_data_dir_of_the_wrong_type_in_the_config_file_is_named(tmp_path: Path, monkeypatch) -> None:
    config = tmp_path / "loglake.toml"
    config.write_text("data_dir = 5\n")
    monkeypatch.setenv("LOGLAKE_CONFIG", str(config))
    result = run("compact")
    assert result.exit_code == 1
    assert f"data_dir in {config} must be a path, got 5" in result.output
