from __future__ import annotations

import logging
import os
import re
from dataclasses import fields
from pathlib import Path

import pytest
from click.testing import CliRunner

from loglake.cli import main
from loglake.config import ConfigError, Settings, env_name
from loglake.config_load import (
    DEPRECATED_NAMES,
    OTHER_VARIABLES,
    configured_data_dir,
    load_settings,
    warn_of_unknown_variables,
)


def test_precedence_flags_over_env_over_file(tmp_path: Path) -> None:
    config = tmp_path / "loglake.toml"
    config.write_text('port = 9000\nregion = "eu-west-1"\nrate_limit = 50.5\n[extra]\n')
    with pytest.raises(ConfigError, match="unknown setting"):
        load_settings(config_file=config, environ={})
    config.write_text('port = 9000\nregion = "eu-west-1"\nrate_limit = 50.5\nauth = true\n')
    s = load_settings(config_file=config, environ={"LOGLAKE_PORT": "9100"})
    assert (s.port, s.region, s.rate_limit) == (9100, "eu-west-1", 50.5)
    s = load_settings({"port": 9200}, config_file=config, environ={"LOGLAKE_PORT": "9100"})
    assert s.port == 9200
    s = load_settings(environ={"LOGLAKE_CONFIG": str(config)})
    assert s.port == 9000


def test_loglake_table_in_toml(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[loglake]\ndata_dir = "/srv/logs"\ndurability = "process"\n')
    s = load_settings(config_file=config, environ={})
    assert (s.data_dir, s.durability) == (Path("/srv/logs"), "process")


@pytest.mark.parametrize(
    ("environ", "match"),
    [
        ({"LOGLAKE_PORT": "eighty"}, "LOGLAKE_PORT"),
        ({"LOGLAKE_AUTH": "maybe"}, "LOGLAKE_AUTH"),
        ({"LOGLAKE_DURABILITY": "sometimes"}, "LOGLAKE_DURABILITY"),
        ({"LOGLAKE_PORT": "70000"}, "LOGLAKE_PORT"),
        ({"LOGLAKE_HOST": "0.0.0.0", "LOGLAKE_AUTH": "false"}, "auth disabled"),
        ({"LOGLAKE_HOST": "10.1.2.3", "LOGLAKE_AUTH": "off"}, "auth disabled"),
        ({"LOGLAKE_PUBLIC_URL": "loglake.example.com"}, "LOGLAKE_PUBLIC_URL must be an http"),
    ],
)
def test_bad_settings_are_refused_clearly(environ: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        load_settings(environ=environ)


def test_the_public_url_is_off_by_default_and_read_from_the_environment() -> None:
    assert load_settings(environ={}).public_url == ""
    given = load_settings(environ={"LOGLAKE_PUBLIC_URL": "https://loglake.example.com"})
    assert given.public_url == "https://loglake.example.com"


def test_no_auth_is_allowed_on_loopback() -> None:
    for host in ("127.0.0.1", "::1", "localhost"):
        assert load_settings({"host": host, "auth": False}, environ={}).auth is False


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(config_file=tmp_path / "nope.toml", environ={})


def test_an_empty_config_variable_names_no_file_and_a_folder_is_refused_clearly(tmp_path: Path) -> None:
    assert load_settings(environ={"LOGLAKE_CONFIG": ""}) == load_settings(environ={})  # not the folder "."
    with pytest.raises(ConfigError, match=f"config file {tmp_path} cannot be read: Is a directory"):
        load_settings(config_file=tmp_path, environ={})


def test_every_problem_with_the_settings_is_named_at_once() -> None:
    environ = {
        "LOGLAKE_PORT": "http",
        "LOGLAKE_QUERY_THREADS": "0",
        "LOGLAKE_DURABILITY": "sometimes",
        "LOGLAKE_RETENTION_DAYS": "-1",
        "LOGLAKE_RATE_LIMIT": "nan",
        "LOGLAKE_RATE_BURST": "1000000000000",
        # (each started a server that refused every record: "the limit is 0, split the batch")
        "LOGLAKE_MAX_RECORDS": "0",
        "LOGLAKE_MAX_BODY_BYTES": "-5",
        "LOGLAKE_MAX_ATTRIBUTE_DEPTH": "0",
        "LOGLAKE_MAX_STORE_MB": "-1",
        "LOGLAKE_MAX_FUTURE_SECONDS": "-100",
    }
    with pytest.raises(ConfigError) as raised:
        load_settings(environ=environ)
    message = str(raised.value)
    named = [
        "LOGLAKE_PORT must be an integer, got 'http'",
        "LOGLAKE_QUERY_THREADS must be positive, got 0",
        "LOGLAKE_DURABILITY must be one of full, process, got 'sometimes'",
        "LOGLAKE_RETENTION_DAYS must be 0 (keep forever) or positive, got -1",
        "LOGLAKE_RATE_LIMIT must be a finite number, got 'nan'",
        "LOGLAKE_RATE_BURST must be at most 1,000,000,000, got 1000000000000",
        "LOGLAKE_MAX_RECORDS must be positive, got 0",
        "LOGLAKE_MAX_BODY_BYTES must be positive, got -5",
        "LOGLAKE_MAX_ATTRIBUTE_DEPTH must be positive, got 0",
        "LOGLAKE_MAX_STORE_MB must be 0 (only the disk limits it) or positive, got -1",
        "LOGLAKE_MAX_FUTURE_SECONDS must be 0 (none ahead of now) or positive, got -100",
    ]
    assert [said for said in named if said not in message] == []


def test_a_default_rate_limit_too_small_to_wait_for_is_refused() -> None:
    """(A key's wait for its next request, 1/rate, was infinite at 5e-324: each request after its first a 500.)"""
    with pytest.raises(ConfigError, match="LOGLAKE_RATE_LIMIT must be at least 1e-06, got 1e-09"):
        load_settings(environ={"LOGLAKE_RATE_LIMIT": "1e-9"})


def test_a_bad_value_is_named_as_it_was_given(tmp_path: Path) -> None:
    """The flag, the environment variable or the config file's key that was typed: a person who typed
    --query-threads 0 is not told of query_threads."""
    config = tmp_path / "loglake.toml"
    config.write_text('port = "nine"\nquery_threads = 0\n')
    with pytest.raises(ConfigError) as raised:
        load_settings(config_file=config, environ={})
    assert str(raised.value) == (
        f"port in {config} must be an integer, got 'nine'; query_threads in {config} must be positive, got 0"
    )
    for given, environ, said in [
        ({"query_threads": "ten"}, {}, "--query-threads must be an integer, got 'ten'"),
        ({"query_threads": 0}, {}, "--query-threads must be positive, got 0"),
        ({}, {"LOGLAKE_QUERY_THREADS": "0"}, "LOGLAKE_QUERY_THREADS must be positive, got 0"),
        ({"port": 0}, {"LOGLAKE_PORT": "1"}, "--port must be 1-65535, got 0"),  # the flag wins: it is what counts
        ({"session_hours": 0}, {}, "--session-hours must be more than 0 and at most 8784"),
        ({"flush_interval_seconds": -1}, {}, "--flush-interval-seconds must be 0 (never) or positive, got -1"),
        ({"llm_daily_tokens": -1}, {}, "--llm-daily-tokens must be 0 or positive, got -1"),
        ({}, {"LOGLAKE_SYSLOG_RATE_LIMIT": "0"}, "LOGLAKE_SYSLOG_RATE_LIMIT must be positive, got 0"),
        ({}, {"LOGLAKE_SYSLOG_UDP": "x:y"}, "LOGLAKE_SYSLOG_UDP: 'x:y' is not HOST:PORT"),
        ({"cors_allow_origins": "ui.example.com"}, {}, "--cors-allow-origins: 'ui.example.com' is not an origin"),
        ({"durability": "never"}, {}, "--durability must be one of full, process, got 'never'"),
    ]:
        with pytest.raises(ConfigError) as raised:
            load_settings(given, environ=environ)
        assert str(raised.value).startswith(said), (given, environ, str(raised.value))


def test_a_toml_value_of_another_type_is_refused_not_converted(tmp_path: Path) -> None:
    """true is no number of days, and 19206.5 no port: int() and float() would take them as 1 and 19206."""
    config = tmp_path / "loglake.toml"
    config.write_text("retention_days = true\nport = 19206.5\nrate_limit = false\ndata_dir = 5\n")
    with pytest.raises(ConfigError) as raised:
        load_settings(config_file=config, environ={})
    assert str(raised.value) == "; ".join(
        [
            f"retention_days in {config} must be an integer, got True",
            f"port in {config} must be an integer, got 19206.5",
            f"rate_limit in {config} must be a finite number, got False",
            f"data_dir in {config} must be a path, got 5",
        ]
    )
    config.write_text("port = 9000.0\nrate_limit = 50\n")  # the same number, written as the other type
    settings = load_settings(config_file=config, environ={})
    assert (settings.port, settings.rate_limit) == (9000, 50.0)


def test_a_number_setting_is_finite() -> None:
    """inf was taken, and a server so set stopped with a traceback at start (int(inf): query_timeout_seconds,
    llm_rate_per_minute) or ran on it (an LLM price of nan)."""
    for variable in ("LOGLAKE_QUERY_TIMEOUT_SECONDS", "LOGLAKE_LLM_RATE_PER_MINUTE", "LOGLAKE_LLM_INPUT_PRICE"):
        for value in ("inf", "-inf", "nan"):
            with pytest.raises(ConfigError, match=f"^{variable} must be a finite number, got '{value}'$"):
                load_settings(environ={variable: value})


def test_a_comma_separated_setting_may_be_a_toml_array(tmp_path: Path) -> None:
    """`syslog_allow = ["10.0.0.0/8", "127.0.0.1"]`, as a TOML file naturally lists them, was read as its Python text
    split at commas: "'['10.0.0.0/8'' is not an IP address", then that syslog on 0.0.0.0 was taken from anywhere
    (a new-user trial). An array of strings is the comma-separated text; any other array or table is refused."""
    config = tmp_path / "loglake.toml"
    config.write_text(
        'syslog_tcp = "0.0.0.0:5514"\nsyslog_allow = ["10.0.0.0/8", "127.0.0.1"]\n'
        'cors_allow_origins = ["https://ui.example.com"]\nloki_service_labels = ["app", "job"]\n'
    )
    settings = load_settings(config_file=config, environ={})
    assert settings.syslog_allow == "10.0.0.0/8,127.0.0.1"
    assert settings.cors_allow_origins == "https://ui.example.com"
    assert settings.loki_service_labels == "app,job"
    config.write_text('syslog_allow = [10]\nregion = ["us-east-1"]\n')
    with pytest.raises(ConfigError) as raised:
        load_settings(config_file=config, environ={})
    assert str(raised.value) == (
        f"syslog_allow in {config} must be a string (or a list of strings), got [10]; "
        f"region in {config} must be a string, got ['us-east-1']"
    )


@pytest.mark.parametrize(
    ("given", "cores", "expected"), [("-1", 1, 0), ("-1", 2, 1), ("-1", 3, 2), ("-1", 64, 4), ("0", 2, 0), ("8", 2, 2)]
)
def test_the_decode_workers_leave_one_core_to_the_server_at_most_4_and_never_more_than_the_cores(
    monkeypatch: pytest.MonkeyPatch, given: str, cores: int, expected: int
) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: cores)
    assert load_settings(environ={"LOGLAKE_DECODE_WORKERS": given}).decode_processes == expected


def test_decode_workers_below_minus_one_are_refused() -> None:
    with pytest.raises(
        ConfigError, match=r"LOGLAKE_DECODE_WORKERS must be -1 \(by the cores\), 0 \(none\) or positive, got -2"
    ):
        load_settings(environ={"LOGLAKE_DECODE_WORKERS": "-2"})
    with pytest.raises(ConfigError, match=r"^--decode-workers must be -1 \(by the cores\)"):
        load_settings({"decode_workers": -2}, environ={})


def test_the_former_name_of_decode_workers_is_taken_with_a_line_saying_it_is_deprecated(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """--otlp-decode-workers (LOGLAKE_OTLP_DECODE_WORKERS, otlp_decode_workers in the file) was the setting's name
    when only OTLP used the workers: a configuration that names it keeps working, and is told the new name."""
    config = tmp_path / "loglake.toml"
    config.write_text("otlp_decode_workers = 0\n")
    given = {
        "flag": ({"otlp_decode_workers": "0"}, None, {}, "--otlp-decode-workers"),
        "variable": (None, None, {"LOGLAKE_OTLP_DECODE_WORKERS": "0"}, "LOGLAKE_OTLP_DECODE_WORKERS"),
        "file": (None, config, {}, f"otlp_decode_workers in {config}"),
    }
    for overrides, config_file, environ, named in given.values():
        caplog.clear()
        with caplog.at_level(logging.WARNING, "loglake.config"):
            assert load_settings(overrides, config_file, environ).decode_workers == 0
        assert [r.getMessage() for r in caplog.records] == [
            f"{named} is deprecated: it is now --decode-workers (LOGLAKE_DECODE_WORKERS)"
        ]
    both = {"LOGLAKE_OTLP_DECODE_WORKERS": "0", "LOGLAKE_DECODE_WORKERS": "2"}
    assert load_settings(environ=both).decode_workers == 2  # (the current name wins)


def test_a_command_says_a_former_name_is_deprecated_once_however_often_it_reads_the_settings(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """`rules list` read the settings twice (for its data dir, then the rest), `rules run-due` three times: each
    said the line each time."""
    environ = {"LOGLAKE_OTLP_DECODE_WORKERS": "0", "LOGLAKE_DATA_DIR": str(tmp_path), "LOGLAKE_CONFIG": None}
    for _ in range(2):  # (and again by the next command)
        caplog.clear()
        with caplog.at_level(logging.WARNING, "loglake.config"):
            ran = CliRunner().invoke(main, ["rules", "list"], env=environ)
        assert ran.exit_code == 1  # (no rules folder: the command ran, and read the settings)
        assert [r.getMessage() for r in caplog.records if "deprecated" in r.getMessage()] == [
            "LOGLAKE_OTLP_DECODE_WORKERS is deprecated: it is now --decode-workers (LOGLAKE_DECODE_WORKERS)"
        ]


def test_the_former_flag_of_decode_workers_is_taken_by_serve_but_not_shown() -> None:
    result = CliRunner().invoke(main, ["serve", "--otlp-decode-workers", "-5"])  # (refused once taken: no server)
    assert result.exit_code == 1
    assert "--otlp-decode-workers must be -1 (by the cores), 0 (none) or positive, got -5" in result.output
    shown = CliRunner().invoke(main, ["serve", "--help"]).output
    assert "--decode-workers" in shown and "--otlp-decode-workers" not in shown


def test_settings_that_need_another_name_it_as_it_is_typed(tmp_path: Path) -> None:
    """A person types --llm-model or LOGLAKE_LLM_MODEL, not llm_model: the message names what to type; and the
    setting given, as it was given (it was named as a flag, with its variable, though the config file gave it)."""
    with pytest.raises(ConfigError, match=r"^--llm-provider needs --llm-model \(LOGLAKE_LLM_MODEL\)"):
        load_settings({"llm_provider": "openai"}, environ={})
    config = tmp_path / "loglake.toml"
    config.write_text('llm_provider = "openai"\nlake_endpoint = "http://127.0.0.1:8333"\n')
    with pytest.raises(ConfigError) as refused:
        load_settings(config_file=config, environ={"LOGLAKE_LAKE_PREFIX": "logs/"})
    assert str(refused.value) == (
        f"llm_provider in {config} needs --llm-model (LOGLAKE_LLM_MODEL), the model's name; LOGLAKE_LAKE_PREFIX and "
        f"lake_endpoint in {config} need --lake-bucket (LOGLAKE_LAKE_BUCKET), the S3 bucket of the lake"
    )
    with pytest.raises(ConfigError, match=r"need --lake-bucket \(LOGLAKE_LAKE_BUCKET\), the S3 bucket of the lake"):
        load_settings(environ={"LOGLAKE_LAKE_PREFIX": "logs/"})


@pytest.mark.parametrize("endpoint", ["http://127.0.0.1:abc/v1", "http://x:99999", "localhost:11434", "ftp://x"])
def test_an_llm_endpoint_that_is_no_http_url_is_refused_at_start(endpoint: str) -> None:
    """`http://host:abc` started the server and failed each question at its send (httpx's InvalidURL)."""
    with pytest.raises(ConfigError, match=r"--llm-endpoint must be an http\(s\) URL such as http://127\.0\.0\.1"):
        load_settings({"llm_endpoint": endpoint}, environ={})


def test_a_misspelt_setting_is_told_the_one_it_likely_meant(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Trial s16: `retention_dayz = 3` in the file was named without what it meant, and LOGLAKE_RETENTON_DAYS=3
    was not said at all (the server kept 365 days). A variable of the client commands is no typo of a setting."""
    config = tmp_path / "loglake.toml"
    config.write_text("retention_dayz = 3\n")
    with pytest.raises(ConfigError) as refused:
        load_settings(config_file=config, environ={})
    assert "unknown setting(s) retention_dayz (did you mean retention_days?)" in str(refused.value)
    assert "`loglake serve --help` lists them" in str(refused.value)
    environ = {"LOGLAKE_RETENTON_DAYS": "3", "LOGLAKE_URL": "http://127.0.0.1:9", "LOGLAKE_API_KEY": "llk_x"}
    with caplog.at_level(logging.WARNING, "loglake.config"):
        assert load_settings(environ=environ).retention_days == 365
        warn_of_unknown_variables(environ)
    assert [r.getMessage() for r in caplog.records] == [
        "LOGLAKE_RETENTON_DAYS is not a setting, and is ignored: did you mean LOGLAKE_RETENTION_DAYS?"
    ]


def test_every_loglake_variable_that_is_not_read_is_said_once_as_a_command_starts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """LOGLAKE_RETENTION=30 (the setting is LOGLAKE_RETENTION_DAYS) was ignored without a word: only a typo within
    two letters of a setting was said, and only by the commands that read the settings (twice by some). The
    variables loglake reads elsewhere, and one a setting names as its secret (env:NAME), are not said."""
    environ = {
        "LOGLAKE_RETENTION": "30",
        "LOGLAKE_APIKEY": "llk_x",
        "LOGLAKE_WHATEVER": "1",
        "LOGLAKE_LLM_API_KEY": "env:LOGLAKE_OPENAI",
        "LOGLAKE_OPENAI": "sk-x",
        "LOGLAKE_URL": "http://127.0.0.1:9",
        "LOGLAKE_CONFIG": "",
        "LOGLAKE_SERVICE": "api",
        "LOGLAKE_PORT": "9000",
        "LOGLAKE_SYSLOG_UDP": "5514",
        "LOGLAKE_OTLP_DECODE_WORKERS": "1",  # (a former name: load_settings says so)
        "LOGLAKE_DYNAMODB_TABLE": "hot",
    }
    with caplog.at_level(logging.WARNING, "loglake.config"):
        ran = CliRunner().invoke(main, ["rules", "list", "--data-dir", str(tmp_path)], env=environ)
    assert ran.exit_code == 1  # (no rules folder: the command ran, and read the settings)
    assert [r.getMessage() for r in caplog.records if "is not a setting" in r.getMessage()] == [
        "LOGLAKE_APIKEY is not a setting, and is ignored: did you mean LOGLAKE_API_KEY?",
        "LOGLAKE_RETENTION is not a setting, and is ignored: did you mean LOGLAKE_RETENTION_DAYS?",
        "LOGLAKE_WHATEVER is not a setting, and is ignored (`loglake serve --help` lists the settings)",
    ]


def test_the_variables_loglake_reads_beside_its_settings_are_all_known_to_the_warning() -> None:
    """Every LOGLAKE_ name the code, the Makefile, the README and the deployment read is a setting's (or a former
    one's) or among OTHER_VARIABLES, so that none is warned of wrongly."""
    root = Path(__file__).parent.parent
    files = [root / "Makefile", root / "README.md", *(root / "src").rglob("*.py"), *(root / "src").rglob("*.js")]
    files += [*(root / "deploy").rglob("*"), *(root / "examples").rglob("*")]
    found = set()
    for file in files:
        if file.is_file():
            found |= set(re.findall(r"LOGLAKE_[A-Z0-9_]*[A-Z0-9](?![A-Z0-9_])", file.read_text(errors="replace")))
    settings = {env_name(name) for name in [*(f.name for f in fields(Settings)), *DEPRECATED_NAMES]}
    not_variables = {"LOGLAKE_KEYS", "LOGLAKE_RETENTON_DAYS", "LOGLAKE_RETENTION"}  # a constant, typos said of
    assert found - settings - OTHER_VARIABLES - not_variables == set()


def test_a_variable_with_two_letters_swapped_is_told_the_one_it_likely_meant(caplog: pytest.LogCaptureFixture) -> None:
    """LOGLAKE_PROT=9000 started the server on 8080 without a word: a swap was two edits, past a short name's one."""
    with caplog.at_level(logging.WARNING, "loglake.config"):
        warn_of_unknown_variables({"LOGLAKE_PROT": "9000", "LOGLAKE_HSOT": "0.0.0.0"})
    assert sorted(r.getMessage() for r in caplog.records) == [
        "LOGLAKE_HSOT is not a setting, and is ignored: did you mean LOGLAKE_HOST?",
        "LOGLAKE_PROT is not a setting, and is ignored: did you mean LOGLAKE_PORT?",
    ]


def test_serve_help_says_what_queries_past_the_concurrency_get() -> None:
    """The help said more queries than --query-concurrency wait; they are answered 503 at once (the README's
    word), and a client that believed the help did not retry."""
    shown = " ".join(CliRunner().invoke(main, ["serve", "--help"]).output.split())
    assert "SQL queries that run at once (more are answered 503, to retry)" in shown


@pytest.mark.parametrize("empty", ["", "  "])
def test_an_empty_data_dir_is_refused_not_taken_for_the_current_folder(empty: str, tmp_path: Path) -> None:
    """`data_dir = ""` served the folder the server was started in, tightened to 0700 and filled with databases."""
    config = tmp_path / "loglake.toml"
    config.write_text(f'data_dir = "{empty}"\n')
    with pytest.raises(ConfigError, match=f"data_dir in {config} must be a path, got '{empty}'"):
        load_settings(config_file=config, environ={})
    with pytest.raises(ConfigError, match=f"LOGLAKE_DATA_DIR must be a path, got '{empty}'"):
        load_settings(environ={"LOGLAKE_DATA_DIR": empty})


def test_a_config_files_relative_paths_are_taken_from_its_folder_not_the_current_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`loglake serve --config /etc/loglake/loglake.toml` with `data_dir = "data"`, started from another folder,
    made a new, empty data dir there. A flag's or a variable's relative path stays the current folder's."""
    folder = tmp_path / "etc" / "loglake"
    folder.mkdir(parents=True)
    config = folder / "loglake.toml"
    config.write_text(
        'data_dir = "data"\nrules_dir = "../rules"\naccess_log = "logs/access.log"\namplify_config = "amplify.json"\n'
        'syslog_tls = "6514"\nsyslog_tls_cert = "tls/cert.pem"\nsyslog_tls_key = "/srv/tls/key.pem"\n'
        'llm_api_key = "file:llm.key"\n'
    )
    monkeypatch.chdir(tmp_path)
    settings = load_settings(config_file=config, environ={})
    assert settings.data_dir == folder / "data"
    assert settings.rules_path == folder / "../rules"
    assert settings.access_log == str(folder / "logs/access.log")
    assert settings.amplify_config == str(folder / "amplify.json")
    assert (settings.syslog_tls_cert, settings.syslog_tls_key) == (str(folder / "tls/cert.pem"), "/srv/tls/key.pem")
    assert settings.llm_api_key == f"file:{folder / 'llm.key'}"
    assert configured_data_dir(config) == (folder / "data", f"data_dir in {config}")
    # a flag's and a variable's path as given, and so the words that are no path and a reference of another kind
    environ = {"LOGLAKE_RULES_DIR": "r"}
    settings = load_settings({"data_dir": Path("here")}, config_file=config, environ=environ)
    assert (settings.data_dir, settings.rules_dir) == (Path("here"), "r")
    config.write_text('access_log = "off"\nllm_api_key = "env:LLM_KEY"\nrules_dir = ""\n')
    settings = load_settings(config_file=config, environ={})
    assert (settings.access_log, settings.llm_api_key, settings.rules_dir) == ("off", "env:LLM_KEY", "")
    config.write_text('access_log = "-"\n')
    assert load_settings(config_file=config, environ={}).access_log == "-"
