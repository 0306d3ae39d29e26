"""`loglake rules ...`: exit codes and messages, through the real command over real folders."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from loglake.cli import main
from loglake.model import Limits, validate_batch
from loglake.store.sqlite import SQLiteHotStore
from tests.rules.conftest import write_rule

RULE = """
title: Critical records
id: aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee
level: critical
logsource: {product: loglake, service: app_logs}
detection: {sel: {severity: critical}, condition: sel}
loglake: {schedule: 5m, group_by: [service], alert_title: "critical in {service}"}
tests:
  - name: a critical record fires
    events: [{service: db, severity: critical, message: disk gone}]
    match: true
    title: critical in db
"""
FAILING_TEST = """
  - name: errors do not
    events:
      - {service: db, severity: error, message: slow}
      - {service: db, severity: critical, message: disk gone}
    match: false
"""
BAD = """
title: Bad
id: aaaaaaaa-bbbb-4ccc-8ddd-ffffffffffff
level: low
logsource: {product: aws, service: amplify}
detection: {sel: {user: bob}, condition: sel}
"""


def rules(*args: str, env: dict[str, str | None] | None = None) -> Result:
    environment = {"LOGLAKE_CONFIG": None, "LOGLAKE_DATA_DIR": None, "LOGLAKE_RULES_DIR": None, **(env or {})}
    return CliRunner().invoke(main, ["rules", *args], env=environment, catch_exceptions=False)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    write_rule(tmp_path / "rules", "critical.yml", RULE)
    return tmp_path / "rules"


def test_validate(folder: Path) -> None:
    ok = rules("validate", "--rules-dir", str(folder))
    assert ok.exit_code == 0 and "1 rule(s) valid, 0 file(s) with problems" in ok.stderr
    write_rule(folder, "bad.yml", BAD)
    bad = rules("validate", "--rules-dir", str(folder))
    assert bad.exit_code == 1
    assert f"{folder / 'bad.yml'}: detection.sel.user: amplify_access has no field 'user'" in bad.stderr
    assert "1 rule(s) valid, 1 file(s) with problems" in bad.stderr


def test_validate_checks_alerting_yml_too(folder: Path) -> None:
    bad = 'destinations: {hook: {type: webhook, url: "ftp://x"}}\nroutes: [{to: [nowhere]}]\n'
    write_rule(folder, "alerting.yml", bad)
    result = rules("validate", "--rules-dir", str(folder))
    assert result.exit_code == 1
    assert f"{folder / 'alerting.yml'}: destinations.hook.url: is not an http(s) URL" in result.stderr
    assert f"{folder / 'alerting.yml'}: routes[0].to: 'nowhere' is not a destination (hook)" in result.stderr
    assert "1 rule(s) valid, 1 file(s) with problems" in result.stderr
    listed = rules("list", "--rules-dir", str(folder))  # as a rule file that does not load is listed
    assert f"{folder / 'alerting.yml'}: routes[0].to: 'nowhere' is not a destination (hook)" in listed.stderr
    alone = rules("validate", str(folder / "alerting.yml"))  # it was called "neither a Sigma rule ... nor a SQL rule"
    assert alone.exit_code == 1 and "destinations.hook.url: is not an http(s) URL" in alone.stderr
    assert alone.stderr.endswith(f"{folder / 'alerting.yml'}: alert routing with problems\n")
    write_rule(folder, "alerting.yml", 'destinations: {hook: {type: webhook, url: "https://x.test"}}\n')
    validated = rules("validate", "--rules-dir", str(folder))
    assert validated.exit_code == 0 and validated.stderr.endswith(f"in {folder} and its alerting.yml\n")
    alone = rules("validate", str(folder / "alerting.yml"))
    assert alone.exit_code == 0 and alone.stderr == f"{folder / 'alerting.yml'}: alert routing valid\n"
    write_rule(folder, "alerting.yml", "destinations: {hook: {type: webhook, url: {env: FIXD_NEVER_SET_URL}}}\n")
    warned = rules("validate", "--rules-dir", str(folder))  # (valid: the server's environment may have it)
    assert (
        warned.exit_code == 0
        and (
            f"warning: {folder / 'alerting.yml'}: destinations.hook.url: secret {{env: FIXD_NEVER_SET_URL}} is not set:"
            " set FIXD_NEVER_SET_URL in the server's environment and restart the server"
            " (not set in this shell either)\n"
        )
        in warned.stderr
    )


def test_validate_warns_of_a_secret_file_it_cannot_read_as_of_an_unset_variable(folder: Path, tmp_path: Path) -> None:
    """The README's Slack destination takes its URL from `{file: /run/secrets/slack_url}`: a file that is not there
    was said of by no command (an unset `{env: ...}` is), and each delivery to it failed."""
    (tmp_path / "empty").write_text("\n")
    routing = (
        f"destinations:\n  chat: {{type: slack, url: {{file: {tmp_path / 'missing'}}}}}\n"
        f"  ops: {{type: slack, url: {{file: {tmp_path / 'empty'}}}}}\n"
    )
    write_rule(folder, "alerting.yml", routing)
    warned = rules("validate", "--rules-dir", str(folder))  # (valid: the server's machine may have it)
    assert warned.exit_code == 0, warned.output
    assert (
        f"warning: {folder / 'alerting.yml'}: destinations.chat.url: secret {{file: {tmp_path / 'missing'}}} cannot"
        " be read: No such file or directory (as read from this shell)\n" in warned.stderr
    )
    said = f"warning: {folder / 'alerting.yml'}: destinations.ops.url: secret {{file: {tmp_path / 'empty'}}} is empty"
    assert said in warned.stderr
    (tmp_path / "missing").write_text("https://hooks.slack.test/services/T/B/x\n")
    (tmp_path / "empty").write_text("https://hooks.slack.test/services/T/B/y\n")
    assert "warning" not in rules("validate", "--rules-dir", str(folder)).stderr


def test_a_rule_naming_a_destination_alerting_yml_lacks_is_warned_of(folder: Path) -> None:
    """A new user's trial: a rule with `destinations: [hookZ]` loaded without a word, and its alerts' deliveries
    were dead-lettered when they fired."""
    write_rule(folder, "critical.yml", RULE.replace("alert_title:", "destinations: [hookZ], alert_title:"))
    write_rule(folder, "alerting.yml", 'destinations: {hookA: {type: webhook, url: "https://x.test"}}\n')
    warning = (
        f"warning: {folder / 'critical.yml'}: loglake.destinations: 'hookZ' not defined in alerting.yml: this"
        " rule's alerts would be dead-lettered there; define it there, or correct the name (defined: hookA)"
    )
    result = rules("validate", "--rules-dir", str(folder))
    assert result.exit_code == 0 and warning in result.stderr  # (it loads and runs: a warning)
    assert "1 rule(s) valid (1 with warnings)" in result.stderr
    assert warning in rules("list", "--rules-dir", str(folder)).stderr
    write_rule(folder, "alerting.yml", 'destinations: {hookZ: {type: webhook, url: "https://x.test"}}\n')
    assert "warning" not in rules("validate", "--rules-dir", str(folder)).stderr


TRIAL_RULE = """
title: Everything wrong at once
id: 5d1f8e12-7a8b-4c2d-9e0f-1a2b3c4d5e6f
level: high
logsource: {product: loglake, service: app_logs}
detection:
  sel: {message|foo: x, message|re: "(["}
  condition: sel and missing
loglake: {schedule: 5 minutes, bogus_opt: 1}
"""
TRIAL_ALERTING = """
destinations: {hook: {type: webhook, url: "ftp://x", bogus: 1}}
routes: [{match: {level: highest}, to: [nowhere]}]
"""


def test_validate_reports_every_problem_of_a_file_in_one_pass(tmp_path: Path, capfd: pytest.CaptureFixture) -> None:
    """The second new-user trial's files took four runs: each stage's problems hid the next stage's."""
    folder = tmp_path / "rules"
    rule = write_rule(folder, "rule.yml", TRIAL_RULE)
    alerting = write_rule(folder, "alerting.yml", TRIAL_ALERTING)
    result = rules("validate", "--rules-dir", str(folder))
    assert result.exit_code == 1
    expected = [
        f"{rule}: loglake: unknown field bogus_opt",
        f"{rule}: loglake.schedule: '5 minutes' has 2 fields; cron takes five",
        f"{rule}: detection.sel.message|foo: unknown modifier |foo: loglake takes |all, |base64,",
        f"{rule}: detection.sel.message|re: Regular expression '([' is invalid: missing ]: [; loglake's regexes are"
        " RE2, which has no lookaround (such as (?=x) or (?!x)) and no backreferences (\\1)\n",
        f"{rule}: detection.condition: names 'missing', which is no selection of the detection (selections: sel)",
        f"{alerting}: routes[0].match.level: expected `array`, got `str`",
        f"{alerting}: routes[0].match.level: 'highest' is not one of informational, low, medium, high, critical",
        f"{alerting}: destinations.hook: unknown field bogus",
        f"{alerting}: destinations.hook.url: is not an http(s) URL",
        f"{alerting}: routes[0].to: 'nowhere' is not a destination (hook)",
    ]
    for line in expected:
        assert line in result.stderr
    assert "0 rule(s) valid, 2 file(s) with problems" in result.stderr
    leaked = capfd.readouterr().err  # what RE2 writes past Python, straight to the process's stderr
    assert "re2.cc" not in leaked and "absl" not in leaked


def test_list(folder: Path) -> None:
    write_rule(folder, "bad.yml", BAD)
    result = rules("list", "--rules-dir", str(folder))
    assert result.exit_code == 0
    # the last run's matches: "MATCHES" alone was read as the rule's, 0 a minute after it fired
    assert re.split(r"\s{2,}", result.stdout.splitlines()[0]) == [
        "ID", "LEVEL", "KIND", "SCHEDULE", "ENABLED", "LAST RUN", "LAST RUN MATCHES", "ERRORS IN A ROW", "TITLE"
    ]  # fmt: skip
    assert "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee  critical  sigma" in result.stdout
    assert " never " in result.stdout
    assert "bad.yml: detection.sel.user" in result.stderr
    as_json = rules("list", "--json", "--rules-dir", str(folder))
    assert json.loads(as_json.stdout)["title"] == "Critical records"


def test_show(folder: Path) -> None:
    result = rules("show", "aaaaaaaa", "--rules-dir", str(folder))
    assert result.exit_code == 0
    assert "title:        Critical records" in result.stdout
    assert 'WITH "logs" AS (SELECT * FROM "logs" WHERE "timestamp" >= $read_since' in result.stdout
    assert "\"severity\" ILIKE 'critical'" in result.stdout
    for file_name in ("critical", "critical.yml"):
        by_file = rules("show", file_name, "--rules-dir", str(folder))
        assert by_file.stdout == result.stdout
    missing = rules("show", "nosuch", "--rules-dir", str(folder))
    assert missing.exit_code == 1 and "no rule 'nosuch'" in missing.stderr
    no_folder = rules("show", "aaaaaaaa", "--rules-dir", str(folder / "nowhere"))
    assert no_folder.exit_code == 1
    assert f"no rules folder at {folder / 'nowhere'}. It is the rules folder given by --rules-dir" in no_folder.stderr


YEAR_EVERY_MINUTE = """
title: Everything, a year of it each minute
id: aaaaaaaa-bbbb-4ccc-8ddd-000000000001
level: low
logsource: {product: loglake, service: app_logs}
detection: {sel: {message|contains: ''}, condition: sel}
loglake: {schedule: 1m, lookback: 365d, delay: 90s}
"""


def test_durations_are_in_human_units_and_a_costly_rule_is_warned_of(folder: Path) -> None:
    """The trial's rule: validated without a word, and shown as `each run over the last 3.1536e+07 s`."""
    path = write_rule(folder, "scan.yml", YEAR_EVERY_MINUTE)
    shown = rules("show", "scan", "--rules-dir", str(folder))
    assert "schedule:     every 1 min, each run over the last 365 d\n" in shown.stdout
    assert "delay:        1 min 30 s\n" in shown.stdout
    assert "warnings:     detection.sel.message|contains: '' matches any message" in shown.stdout
    validated = rules("validate", "--rules-dir", str(folder))
    assert validated.exit_code == 0  # warned of, not refused
    warnings = [line for line in validated.stderr.splitlines() if line.startswith("warning: ")]
    assert warnings == [
        f"warning: {path}: detection.sel.message|contains: '' matches any message: this selection matches every"
        " record that has it; give the text to look for",
        f"warning: {path}: loglake.lookback: 365 d is 525,600 times the schedule (every 1 min): each run reads it"
        " all again; a lookback near the schedule reads each record about once",
    ]
    assert "2 rule(s) valid (1 with warnings), 0 file(s) with problems" in validated.stderr
    listed = rules("list", "--rules-dir", str(folder))
    assert [line for line in listed.stderr.splitlines() if line.startswith("warning: ")] == warnings
    assert " every 1 min " in listed.stdout and " every 5 min " in listed.stdout
    as_json = [json.loads(line) for line in rules("list", "--json", "--rules-dir", str(folder)).stdout.splitlines()]
    scan = next(r for r in as_json if r["title"].startswith("Everything"))
    assert scan["timing"] == "every 1 min, each run over the last 365 d"
    assert scan["warnings"] == [w.removeprefix("warning: ") for w in warnings]


def test_validate_takes_a_file_or_a_folder(folder: Path, tmp_path: Path) -> None:
    elsewhere = write_rule(tmp_path / "elsewhere", "bad.yml", BAD)
    of_file = rules("validate", str(elsewhere))
    assert of_file.exit_code == 1 and f"{elsewhere}: detection.sel.user" in of_file.stderr
    assert "0 rule(s) valid, 1 file(s) with problems" in of_file.stderr
    of_folder = rules("validate", str(folder))
    assert of_folder.exit_code == 0 and f"1 rule(s) valid, 0 file(s) with problems in {folder}" in of_folder.stderr


def test_two_files_with_one_id_are_both_named_and_neither_is_valid(folder: Path) -> None:
    original = folder / "critical.yml"
    copy = write_rule(folder, "copy.yml", original.read_text().replace("Critical records", "A copy"))
    result = rules("validate", "--rules-dir", str(folder))
    assert result.exit_code == 1
    said = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee is the id of {} too; give each rule its own"
    assert f"{original}: id: {said.format(copy)}" in result.stderr
    assert f"{copy}: id: {said.format(original)}" in result.stderr
    assert "0 rule(s) valid, 2 file(s) with problems" in result.stderr


def test_the_start_of_several_ids_names_them(folder: Path) -> None:
    rule = (folder / "critical.yml").read_text()
    write_rule(folder, "twin.yml", rule.replace("id: aaaaaaaa", "id: aaaaaaab").replace("Critical", "Twin"))
    result = rules("show", "aaaaaaa", "--rules-dir", str(folder))
    assert result.exit_code == 1
    assert "'aaaaaaa' is the start of 2 rules' ids (aaaaaaaa-" in result.stderr and "aaaaaaab-" in result.stderr


def test_test_passes(folder: Path) -> None:
    result = rules("test", str(folder))
    assert result.exit_code == 0
    assert "ok    Critical records: a critical record fires" in result.stdout
    assert "1 test(s), 0 failed, 0 file(s) with problems" in result.stderr


def test_a_failing_test_names_the_rule_the_test_and_what_differed(folder: Path) -> None:
    (folder / "critical.yml").write_text((folder / "critical.yml").read_text() + FAILING_TEST.lstrip("\n"))
    result = rules("test", "--rules-dir", str(folder))
    assert result.exit_code == 1
    assert "FAIL  Critical records: errors do not" in result.stdout
    assert f"{folder / 'critical.yml'}: expected no match, got 1: 'critical in db'" in result.stdout
    assert "'message': 'disk gone'" in result.stdout  # the event that matched
    assert "2 test(s), 1 failed" in result.stderr


def test_a_bad_test_event_is_named(folder: Path) -> None:
    text = RULE.replace("[{service: db, severity: critical, message: disk gone}]", "[{service: db, severity: huge}]")
    (folder / "critical.yml").write_text(text)
    result = rules("test", str(folder / "critical.yml"))
    assert result.exit_code == 1
    assert "events[0].severity: " in result.stdout and "events[0].message: " in result.stdout


def test_a_bad_event_of_a_later_test_names_the_test_too(folder: Path) -> None:
    bad = FAILING_TEST.replace("{service: db, severity: error, message: slow}", "{service: db, severity: huge}")
    (folder / "critical.yml").write_text((folder / "critical.yml").read_text() + bad.lstrip("\n"))
    result = rules("test", str(folder))
    assert result.exit_code == 1
    assert "tests[1].events[0].severity: " in result.stdout and "tests[1].events[0].message: " in result.stdout


def test_a_missed_match_below_the_threshold_says_the_threshold_and_the_rows_that_matched(folder: Path) -> None:
    text = (folder / "critical.yml").read_text().replace("group_by: [service],", "group_by: [service], threshold: 3,")
    one = "[{service: db, severity: critical, message: disk gone}]"
    events = "[{service: db, severity: critical, message: a}, {service: db, severity: critical, message: b},"
    events += " {service: db, severity: error, message: c}, {service: api, severity: critical, message: d}]"
    (folder / "critical.yml").write_text(text.replace(one, events))
    result = rules("test", str(folder))
    assert result.exit_code == 1
    expected = "expected a match, got none: at most 2 matching row(s) per service, below the rule's threshold of 3"
    assert expected in result.stdout


def test_a_file_that_does_not_load_fails_the_tests(folder: Path) -> None:
    write_rule(folder, "bad.yml", BAD)
    result = rules("test", str(folder))
    assert result.exit_code == 1 and "bad.yml: detection.sel.user" in result.stderr


def test_run_prints_the_matches(folder: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    store = SQLiteHotStore(data / "hot.db")
    now = int(time.time() * 1000)
    records = [
        {
            "service": "db",
            "severity": "critical",
            "message": "disk gone",
            "timestamp": now - 120_000,
            "attributes": {"disk": "sda"},
        },
        {"service": "db", "severity": "info", "message": "fine", "timestamp": now - 60_000},
        {"service": "api", "severity": "critical", "message": "long ago", "timestamp": now - 7_200_000},
    ]
    store.submit(validate_batch(records, Limits(), now)).result()
    store.close()
    args = ["--rules-dir", str(folder), "--data-dir", str(data)]
    result = rules("run", "aaaaaaaa", "--since", "1h", *args)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("CRITICAL  critical in db  (count 1, ")
    assert '"message": "disk gone"' in result.stdout and "long ago" not in result.stdout
    assert "1 match(es) of Critical records" in result.stderr
    assert re.search(r"; \d+ row\(s\) read \(", result.stderr)  # (one row read was "1 rows")
    as_json = rules("run", "aaaaaaaa", "--since", "3h", "--json", *args)
    assert sorted(json.loads(line)["group"]["service"] for line in as_json.stdout.splitlines()) == ["api", "db"]
    # the attributes as the object they are, as the alerts' API gives them (they were JSON text in the JSON)
    assert '"attributes": {"disk": "sda"}' in result.stdout
    evidence = [json.loads(line)["evidence"][0] for line in as_json.stdout.splitlines()]
    assert {"disk": "sda"} in [record["attributes"] for record in evidence]
    default_window = rules("run", "aaaaaaaa", *args)  # the rule's lookback: the last 5 minutes
    assert default_window.stdout.count("CRITICAL") == 1
    bad = rules("run", "aaaaaaaa", "--since", "yesterday", *args)  # a usage error (exit 2) that names the option
    assert bad.exit_code == 2 and "Invalid value for --since: 'yesterday' is not a time" in bad.stderr
    no_folder = rules("run", "aaaaaaaa", "--until", "bogus", "--rules-dir", str(tmp_path / "none"))
    assert no_folder.exit_code == 2 and "Invalid value for --until: 'bogus'" in no_folder.stderr  # checked first
    ahead = rules("run", "aaaaaaaa", "--since", "1h", "--until", "2099-01-01", *args)  # (accepted: every service
    assert ahead.exit_code == 2, ahead.output  # "went silent" in the hours to come, a new-user trial)
    assert "Invalid value for --until: 2099-01-01 is in the future (2099-01-01T00:00:00Z)" in ahead.stderr


def test_run_of_a_sql_rule_whose_rows_have_no_timestamp_shows_no_span(tmp_path: Path) -> None:
    folder, data = tmp_path / "rules", tmp_path / "data"
    SQLiteHotStore(data / "hot.db").close()
    rule = "id: 22222222-3333-4444-8555-666666666666\ntitle: Count\nlevel: low\nquery: SELECT count(*) AS n FROM logs\n"
    write_rule(folder, "count.yml", rule)
    result = rules("run", "2222", "--since", "2h", "--rules-dir", str(folder), "--data-dir", str(data))
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == "LOW  Count  (count 1, dedup key 22222222-3333-4444-8555-666666666666)"


def test_the_rules_folder_comes_from_the_settings(folder: Path, tmp_path: Path) -> None:
    by_env = rules("list", env={"LOGLAKE_RULES_DIR": str(folder)})
    assert "Critical records" in by_env.stdout
    config = tmp_path / "loglake.toml"
    config.write_text(f'rules_dir = "{folder}"\n')
    by_file = rules("list", env={"LOGLAKE_CONFIG": str(config)})
    assert "Critical records" in by_file.stdout
    data = tmp_path / "data"
    write_rule(data / "rules", "critical.yml", RULE)
    by_data_dir = rules("list", "--data-dir", str(data))
    assert "Critical records" in by_data_dir.stdout
    nowhere = rules("validate", "--data-dir", str(tmp_path / "empty"))
    assert nowhere.exit_code == 1 and f"no rules folder at {tmp_path / 'empty' / 'rules'}." in nowhere.stderr


@pytest.mark.parametrize(
    "command",
    [("list",), ("validate",), ("test",), ("show", "aaaa"), ("run", "aaaa"), ("run-due",), ("backtest", "aaaa")],
)
def test_a_rules_command_run_away_from_the_data_dir_says_where_it_looked_and_where_else_the_rules_are(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: tuple[str, ...]
) -> None:
    """A new user ran `loglake rules list` from another folder, with LOGLAKE_URL naming the server: told to
    create the folder, they would have made a stray `./loglake-data/rules` that no server reads."""
    monkeypatch.chdir(tmp_path)
    args = ["--since", "1d"] if command[0] == "backtest" else []
    result = rules(*command, *args, env={"LOGLAKE_URL": "http://127.0.0.1:18921"})
    assert result.exit_code == 1, result.output
    said = " ".join(result.stderr.split())
    assert f"no rules folder at {tmp_path / 'loglake-data' / 'rules'}. Is the data dir elsewhere?" in said, said
    assert "Give it with --data-dir / LOGLAKE_DATA_DIR." in said
    assert "`loglake rules init --data-dir DIR` makes one, for the server whose data dir is DIR" in said
    assert "the server at http://127.0.0.1:18921 answers with the rules it runs:" in said
    assert 'curl -s "$LOGLAKE_URL/rules" -H "Authorization: Bearer $LOGLAKE_API_KEY"' in said
    assert not (tmp_path / "loglake-data").exists()
    without_server = rules(*command, *args, env={"LOGLAKE_URL": None})
    assert "LOGLAKE_DATA_DIR" in without_server.stderr and "the server at" not in without_server.stderr


def test_a_rules_command_whose_data_dir_the_config_file_named_says_so(tmp_path: Path) -> None:
    """It said to give the data dir with --data-dir or LOGLAKE_DATA_DIR, where the --config file had given it."""
    config = tmp_path / "loglake.toml"
    config.write_text('data_dir = "data"\n')
    result = rules("list", "--config", str(config))
    assert result.exit_code == 1
    said = " ".join(result.stderr.split())
    assert (
        f"no rules folder at {tmp_path / 'data' / 'rules'}. Is the data dir elsewhere? Give it with data_dir in "
        f"{config}." in said
    ), said


def test_a_rule_asked_for_by_the_start_of_its_files_name_is_told_which_files_it_could_mean(tmp_path: Path) -> None:
    """`loglake rules backtest app` said only "no rule 'app'", where app starts five of the starter pack's files."""
    assert rules("init", "--data-dir", str(tmp_path)).exit_code == 0
    for command in (["backtest", "app", "--since", "1d"], ["show", "app"], ["run", "app"]):
        result = rules(*command, "--data-dir", str(tmp_path))
        assert result.exit_code == 1
        said = " ".join(result.stderr.split())
        assert (
            f"no rule 'app' in {tmp_path / 'rules'}: it starts the name of 5 rule file(s) "
            "(app-auth-failures-source.yml, app-auth-failures-user.yml, app-critical-record.yml, app-error-burst.yml, "
            "app-service-silent.yml): give one whole (its extension may be left out) (loglake rules list shows them)"
        ) in said, said
    assert rules("show", "app-critical-record", "--data-dir", str(tmp_path)).exit_code == 0
    nothing = rules("show", "zzz", "--data-dir", str(tmp_path))
    assert f"no rule 'zzz' in {tmp_path / 'rules'} (loglake rules list shows them)" in nothing.stderr


def test_init_copies_the_starter_pack_and_keeps_what_is_there(tmp_path: Path) -> None:
    folder = tmp_path / "rules"
    write_rule(folder, "app-critical-record.yml", RULE)
    result = rules("init", "--rules-dir", str(folder))
    assert result.exit_code == 0
    assert f"{folder / 'amplify-scanner-paths.yml'}" in result.stdout
    assert "kept 1 file(s) already in" in result.stderr and "app-critical-record.yml" in result.stderr
    assert "Critical records" in (folder / "app-critical-record.yml").read_text()
    assert oct((folder / "amplify-scanner-paths.yml").stat().st_mode & 0o777) == "0o600"


def test_init_leaves_out_a_starter_rule_the_folder_holds_under_another_name(tmp_path: Path) -> None:
    # It was copied again beside the renamed one, and the two files of one id were both refused: the
    # operator's own version of the rule stopped running.
    folder = tmp_path / "rules"
    assert rules("init", "--rules-dir", str(folder)).exit_code == 0
    burst = (folder / "app-error-burst.yml").read_text()
    (folder / "my-burst.yml").write_text(burst.replace("df464ae4-94d2", "DF464AE4-94D2"))  # the same id
    (folder / "app-error-burst.yml").unlink()
    result = rules("init", "--rules-dir", str(folder))
    assert result.exit_code == 0
    assert not (folder / "app-error-burst.yml").exists()
    assert f"left out app-error-burst.yml: its rule's id is in {folder / 'my-burst.yml'}" in result.stderr
    assert rules("validate", "--rules-dir", str(folder)).exit_code == 0


def test_run_due_runs_what_is_due_once_and_list_shows_it(
    folder: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = tmp_path / "data"
    store = SQLiteHotStore(data / "hot.db")
    now = int(time.time() * 1000)
    window_end = now - now % 3_600_000 - 3_600_000  # an hour boundary over an hour ago: the clock is not read
    as_of = str(window_end + 1_800_000)  # half an hour later, when that hour's window was the latest due
    records = [{"service": "db", "severity": "critical", "message": "disk gone", "timestamp": window_end - 1000 + i}
               for i in range(2)]  # fmt: skip
    store.submit(validate_batch(records, Limits(), now)).result()
    store.close()
    hourly = (folder / "critical.yml").read_text().replace("schedule: 5m", "schedule: 1h, delay: 0s")
    (folder / "critical.yml").write_text(hourly)
    write_rule(folder, "numbers.yml", NUMBERS)
    write_rule(folder, "bad.yml", BAD)
    args = ["--rules-dir", str(folder), "--data-dir", str(data)]
    first = rules("run-due", "--now", as_of, *args)
    assert first.exit_code == 1  # a run failed and a file did not load
    assert "ok     Critical records" in first.stdout and "1 match(es), 1 new alert(s)" in first.stdout
    hour = datetime.fromtimestamp(window_end / 1000, UTC)
    assert f"{hour - timedelta(hours=1):%Y-%m-%dT%H:%M:%SZ} to {hour:%Y-%m-%dT%H:%M:%SZ}" in first.stdout
    assert "error  Numbers" in first.stdout and "Could not convert string" in first.stdout
    assert "bad.yml: detection.sel.user" in first.stderr
    assert not [r for r in caplog.records if "bad.yml" in r.getMessage()]  # (it was said twice: logged, then printed)
    assert "2 run(s), 1 failed, 1 file(s) with problems" in first.stderr
    (folder / "numbers.yml").unlink()
    (folder / "bad.yml").unlink()
    again = rules("run-due", "--now", as_of, *args)
    assert again.exit_code == 0 and "0 run(s), 0 failed" in again.stderr  # its window was evaluated: not again
    listed = {json.loads(line)["id"]: json.loads(line) for line in rules("list", "--json", *args).stdout.splitlines()}
    last = listed["aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"]["last_run"]
    assert (last["outcome"], last["matches"], last["new_alerts"]) == ("ok", 1, 1)
    table = rules("list", *args).stdout
    assert " ok " in table and "Critical records" in table
    shown = rules("show", "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee", *args).stdout
    assert f"Last runs in {data}:" in shown
    assert "  ok           " in shown and "1 match(es), 1 new alert(s)" in shown
    assert "Z  2 row(s), 0 bytes read, 1 match(es)" in shown  # (a run of one row said "1 rows")
    assert "No runs yet." in rules("show", "aaaaaaaa", "--rules-dir", str(folder)).stdout  # another data dir
    missing = rules("run-due", "--rules-dir", str(tmp_path / "none"), "--data-dir", str(data))
    assert missing.exit_code == 1 and "no rules folder" in missing.stderr


def test_run_due_prints_the_range_the_catch_up_bound_left_out(folder: Path, tmp_path: Path) -> None:
    """It printed the runs alone: a day not evaluated (cron stopped, the server down) showed only in `rules show`."""
    data = tmp_path / "data"
    SQLiteHotStore(data / "hot.db").close()
    hourly = (folder / "critical.yml").read_text().replace("schedule: 5m", "schedule: 1h, delay: 0s")
    (folder / "critical.yml").write_text(hourly)
    args = ["--rules-dir", str(folder), "--data-dir", str(data)]
    now = int(time.time() * 1000)
    hour = now - now % 3_600_000 - 3_600_000
    assert rules("run-due", "--now", str(hour - 40 * 3_600_000 + 60_000), *args).exit_code == 0
    later = rules("run-due", "--now", str(hour + 60_000), *args)  # 40 hours later: 16 of them left out
    assert later.exit_code == 0
    left_out = (hour - 40 * 3_600_000, hour - 24 * 3_600_000)
    since, until = (f"{datetime.fromtimestamp(t / 1000, UTC):%Y-%m-%dT%H:%M:%SZ}" for t in left_out)
    assert f"skipped Critical records  {since} to {until}: not evaluated: down longer than" in later.stdout
    assert "24 run(s), 0 failed, 1 range(s) skipped, 0 file(s) with problems" in later.stderr


def test_run_due_runs_nothing_ahead_of_the_clock(folder: Path, tmp_path: Path) -> None:
    args = ["--rules-dir", str(folder), "--data-dir", str(tmp_path / "data")]
    SQLiteHotStore(tmp_path / "data" / "hot.db").close()
    future = rules("run-due", "--now", str(int(time.time() * 1000) + 3_600_000), *args)
    # a usage error (exit 2) that names the option
    assert future.exit_code == 2 and "Invalid value for --now:" in future.stderr
    assert "is in the future: run-due only runs what was due by now" in future.stderr
    bad = rules("run-due", "--now", "tomorrow", *args)
    assert bad.exit_code == 2 and "Invalid value for --now: 'tomorrow' is not a time" in bad.stderr
    no_folder = rules("run-due", "--now", "tomorrow", "--rules-dir", str(tmp_path / "none"))
    assert no_folder.exit_code == 2 and "--now" in no_folder.stderr  # the value is checked first
    assert not (tmp_path / "data" / "alerts.db").exists()  # nothing ran


NUMBERS = """
id: aaaaaaaa-bbbb-4ccc-8ddd-000000000000
title: Numbers
level: low
schedule: 1h
delay: 0s
query: SELECT CAST(message AS INTEGER) AS n, "timestamp" FROM logs
"""


def test_a_servers_rules_folder_warns_of_a_destination_alerting_yml_lacks_and_reloads_with_it(folder: Path) -> None:
    """What the server loads (GET /rules, /healthz's rules.warnings, the rules_loaded log line): alerting.yml's
    changes load the folder again, so the warning goes once the destination is defined."""
    from loglake.rules.scheduler import RuleFolder

    write_rule(folder, "critical.yml", RULE.replace("alert_title:", "destinations: [hookZ], alert_title:"))
    write_rule(folder, "alerting.yml", 'destinations: {hookA: {type: webhook, url: "https://x.test"}}\n')
    loaded = RuleFolder(folder)
    assert loaded.reload()
    assert [w.field for w in loaded.rules[0].warnings] == ["loglake.destinations"]
    time.sleep(0.01)  # (a modification time of its own)
    write_rule(folder, "alerting.yml", 'destinations: {hookZ: {type: webhook, url: "https://x.test"}}\n\n')
    assert loaded.reload() and loaded.rules[0].warnings == ()
