"""The `loglake` command through click's CliRunner, against temp data dirs and one real running server."""

from __future__ import annotations

import csv
import fnmatch
import functools
import gzip
import http.server
import importlib.metadata
import io
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import click
import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from click.testing import CliRunner

from loglake import __version__
from loglake.cli import main
from loglake.cli_options import say_retrying, say_retrying_now_and_then, until_ctrl_c
from loglake.client import ClientError
from loglake.lake.stop import INTERRUPTED, Stop
from loglake.shipping import MAX_LINE_BYTES
from tests.conftest import ServerProcess, free_port
from tests.conftest import run_cli as run

pytestmark = pytest.mark.usefixtures("no_loglake_environment")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("cli-server")
    process = ServerProcess(root / "data", free_port(), root / "server.log").start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def admin_key(server: ServerProcess) -> str:
    keys = server.printed_keys()
    assert len(keys) == 1, server.log_path.read_text()
    return keys[0]


@pytest.fixture
def api(server: ServerProcess, admin_key: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers={"authorization": f"Bearer {admin_key}"}, timeout=10) as client:
        yield client


def keys_json(data_dir: Path, *flags: str) -> list[dict]:
    return [
        json.loads(line)
        for line in run("keys", "list", "--json", *flags, "--data-dir", str(data_dir)).stdout.splitlines()
    ]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


# -- keys --------------------------------------------------------------------------------------


def test_keys_create_prints_only_the_secret(tmp_path: Path):
    result = run("keys", "create", "--name", "shipper", "--scopes", "ingest,read", "--data-dir", str(tmp_path))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 1 and result.stdout == lines[0] + "\n"
    assert lines[0].startswith("llk_") and len(lines[0]) > 30


def test_keys_create_without_a_data_dir_asks_for_the_servers_and_makes_no_stray_folder(tmp_path: Path):
    missing = tmp_path / "loglake-data"
    result = run("keys", "create", "--name", "ci", "--data-dir", str(missing))
    assert result.exit_code == 1 and not missing.exists()
    said = " ".join(result.stderr.split())
    assert f"no loglake data dir at {missing}: point --data-dir / LOGLAKE_DATA_DIR at the server's data dir" in said
    assert "create the folder first for a server that will be started with it" in said


def test_the_keys_commands_name_the_config_files_data_dir_when_it_named_the_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """A data dir that --config's (or LOGLAKE_CONFIG's) file names: its errors said to check --data-dir and
    LOGLAKE_DATA_DIR, which the person had not given."""
    config = tmp_path / "loglake.toml"
    config.write_text('data_dir = "data"\n')
    create = run("keys", "create", "--name", "ci", "--config", str(config))
    assert create.exit_code == 1
    said = " ".join(create.stderr.split())
    assert f"no loglake data dir at {tmp_path / 'data'}: point data_dir in {config} at the server's data dir" in said
    monkeypatch.setenv("LOGLAKE_CONFIG", str(config))
    listed = run("keys", "list")
    assert listed.exit_code == 1 and f"check data_dir in {config}" in listed.stderr
    assert "LOGLAKE_DATA_DIR" not in listed.stderr
    monkeypatch.setenv("LOGLAKE_DATA_DIR", str(tmp_path / "other"))  # (the variable wins over the file)
    assert "check --data-dir / LOGLAKE_DATA_DIR" in run("keys", "list").stderr


def test_keys_create_sigv4_prints_access_key_id_then_secret(tmp_path: Path):
    result = run("keys", "create", "--name", "awscurl", "--sigv4", "--data-dir", str(tmp_path))
    assert result.exit_code == 0, result.output
    access_key_id, secret = result.stdout.splitlines()
    assert access_key_id.startswith("LLAK") and access_key_id.isalnum()
    assert len(secret) >= 30 and secret != access_key_id and not secret.startswith("llk_")


def test_keys_list_shows_names_and_never_a_secret(tmp_path: Path):
    bearer = run("keys", "create", "--name", "web-shipper", "--scopes", "ingest,read", "--data-dir", str(tmp_path))
    sigv4 = run("keys", "create", "--name", "lambda.sender", "--sigv4", "--data-dir", str(tmp_path))
    bearer_secret = bearer.stdout.strip()
    access_key_id, sigv4_secret = sigv4.stdout.splitlines()

    listed = run("keys", "list", "--data-dir", str(tmp_path))
    assert listed.exit_code == 0, listed.output
    header, *rows = listed.stdout.splitlines()
    assert header.split()[:3] == ["NAME", "KIND", "SCOPES"]
    assert [row.split()[:3] for row in rows] == [
        ["web-shipper", "bearer", "ingest,read"],
        ["lambda.sender", "sigv4", "ingest"],
    ]
    assert bearer_secret[:8] in rows[0]  # a hint to tell keys apart
    assert bearer_secret not in listed.output and bearer_secret[8:20] not in listed.output
    assert sigv4_secret not in listed.output and sigv4_secret[:12] not in listed.output
    assert all(row.rstrip().endswith("active") for row in rows)
    assert access_key_id not in listed.output and access_key_id[:8] in rows[1]  # only its hint


def test_keys_list_json(tmp_path: Path):
    secret = run("keys", "create", "--name", "reader", "--scopes", "read", "--data-dir", str(tmp_path)).stdout.strip()
    run("keys", "create", "--name", "writer", "--scopes", "read,ingest", "--data-dir", str(tmp_path))
    result = run("keys", "list", "--json", "--data-dir", str(tmp_path))
    assert result.exit_code == 0, result.output
    keys = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(k["name"], k["kind"], k["scopes"], k["revoked_at"]) for k in keys] == [
        ("reader", "bearer", ["read"], None),
        ("writer", "bearer", ["ingest", "read"], None),
    ]
    assert keys[0]["hint"] == secret[:8]
    assert all("secret" not in k for k in keys) and secret not in result.output


def test_keys_revoke_hides_the_key_unless_all(tmp_path: Path):
    for name in ("keep", "drop"):
        assert run("keys", "create", "--name", name, "--data-dir", str(tmp_path)).exit_code == 0
    revoked = run("keys", "revoke", "drop", "--data-dir", str(tmp_path))
    assert revoked.exit_code == 0, revoked.output
    assert "drop" in revoked.stderr

    listed = run("keys", "list", "--data-dir", str(tmp_path)).stdout
    assert [row.split()[0] for row in listed.splitlines()[1:]] == ["keep"]
    every = run("keys", "list", "--all", "--data-dir", str(tmp_path)).stdout.splitlines()[1:]
    assert [row.split()[0] for row in every] == ["keep", "drop"]
    assert every[0].endswith("active") and not every[1].endswith("active")
    assert every[1].split()[-1].endswith("Z")  # the revocation time
    assert [(k["name"], k["revoked_at"] is None) for k in keys_json(tmp_path, "--all")] == [
        ("keep", True),
        ("drop", False),
    ]

    again = run("keys", "revoke", "drop", "--data-dir", str(tmp_path))
    assert again.exit_code == 1
    assert f"no active key named 'drop' in {tmp_path} (loglake keys list shows them)" in again.stderr


def test_keys_revoke_of_the_last_admin_key_says_the_flag_that_revokes_it_anyway(tmp_path: Path):
    assert run("keys", "create", "--name", "admin", "--scopes", "admin", "--data-dir", str(tmp_path)).exit_code == 0
    refused = run("keys", "revoke", "admin", "--data-dir", str(tmp_path))
    assert refused.exit_code == 1
    assert "'admin' is the last active admin key; create another admin key first, or add --force" in refused.stderr
    assert "from the CLI" not in refused.stderr  # (this is the CLI)
    assert run("keys", "revoke", "admin", "--force", "--data-dir", str(tmp_path)).exit_code == 0


def test_keys_create_refuses_a_duplicate_active_name(tmp_path: Path):
    assert run("keys", "create", "--name", "twice", "--data-dir", str(tmp_path)).exit_code == 0
    duplicate = run("keys", "create", "--name", "twice", "--data-dir", str(tmp_path))
    assert duplicate.exit_code != 0
    assert duplicate.stdout == ""  # no secret printed for a key that was not made
    assert "an active key named 'twice' exists" in duplicate.stderr
    assert [k["name"] for k in keys_json(tmp_path)] == ["twice"]

    run("keys", "revoke", "twice", "--data-dir", str(tmp_path))
    reused = run("keys", "create", "--name", "twice", "--data-dir", str(tmp_path))
    assert reused.exit_code == 0 and reused.stdout.startswith("llk_")


@pytest.mark.parametrize("scopes", ["ingest,delete", "", "READ-ALL"])
def test_keys_create_refuses_bad_scopes(tmp_path: Path, scopes: str):
    result = run("keys", "create", "--name", "x", "--scopes", scopes, "--data-dir", str(tmp_path))
    assert result.exit_code == 2  # a usage error, as the README says of a command line that does not read
    assert result.stdout == ""
    assert "Invalid value for --scopes: must be a comma-separated subset of ingest, read, alerts, admin" in (
        result.stderr
    )
    assert keys_json(tmp_path) == []


def test_keys_create_says_which_scope_a_misspelt_one_meant(tmp_path: Path):
    """`--scopes injest` was refused without the "did you mean" the severities and parameters have."""
    result = run("keys", "create", "--name", "x", "--scopes", "read,injest", "--data-dir", str(tmp_path))
    assert result.exit_code == 2 and result.stderr.endswith(
        "Error: Invalid value for --scopes: did you mean 'ingest'? must be a comma-separated subset of ingest, read,"
        " alerts, admin, got 'read,injest'\n"
    )


def test_keys_create_refuses_a_bad_name(tmp_path: Path):
    result = run("keys", "create", "--name", "has space", "--data-dir", str(tmp_path))
    assert result.exit_code == 2 and "Invalid value for --name: a key name is 1-64 characters" in result.stderr
    long = run("keys", "create", "--name", "x" * 65, "--data-dir", str(tmp_path / "nowhere"))  # the value first
    assert long.exit_code == 2 and "Invalid value for --name" in long.stderr


@pytest.mark.parametrize(
    "limits",
    [
        ("--rate-limit", "-5"),
        ("--rate-limit", "0"),
        ("--burst", "-1"),
        ("--rate-limit", "1e308"),  # (a traceback: too large for the key store)
        ("--rate-limit", "1e-320"),  # (every request after the first answered 500: the schemathesis trial)
        ("--rate-burst", "99999999999999999999"),
        ("--rate-limit", "nan"),  # (exit 1, the key store's refusal, where a bad option value is a usage error)
    ],
)
def test_keys_create_refuses_a_rate_limit_that_is_not_positive(tmp_path: Path, limits: tuple[str, str]):
    """POST /admin/keys refuses these; from the CLI they would make a key that is refused (429) forever."""
    result = run("keys", "create", "--name", "limited", *limits, "--data-dir", str(tmp_path))
    assert result.exit_code == 2
    assert result.stdout == ""
    assert limits[0] in result.output
    assert keys_json(tmp_path) == []


def test_a_running_server_honours_cli_key_changes_at_once(server: ServerProcess):
    data_dir = str(server.data_dir)
    name = unique("live")
    created = run("keys", "create", "--name", name, "--scopes", "ingest,read", "--data-dir", data_dir)
    assert created.exit_code == 0, created.output
    headers = {"authorization": f"Bearer {created.stdout.strip()}"}

    with httpx.Client(base_url=server.url, headers=headers, timeout=10) as client:
        posted = client.post("/logs", json={"message": f"from {name}", "service": "cli-keys"})
        assert posted.status_code == 201, posted.text
        assert client.get(f"/logs/{posted.json()['logId']}").status_code == 200
        assert client.get("/admin/keys").status_code == 403  # the scopes given on the command line hold

        assert run("keys", "revoke", name, "--data-dir", data_dir).exit_code == 0
        refused = client.get("/logs/recent", params={"limit": "1"})
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "unauthorized"
        assert client.post("/logs", json={"message": "after revoke"}).status_code == 401


def test_a_cli_sigv4_key_signs_requests_to_a_running_server(server: ServerProcess):
    data_dir = str(server.data_dir)
    name = unique("sigv4")
    created = run("keys", "create", "--name", name, "--scopes", "read", "--sigv4", "--data-dir", data_dir)
    access_key_id, secret = created.stdout.splitlines()

    def signed_get(key_secret: str) -> httpx.Response:
        request = AWSRequest(method="GET", url=f"{server.url}/logs/recent?limit=1")
        SigV4Auth(Credentials(access_key_id, key_secret), "execute-api", "us-east-1").add_auth(request)
        return httpx.get(request.url, headers=dict(request.headers.items()), timeout=10)

    assert signed_get(secret).status_code == 200
    assert signed_get(secret[::-1]).status_code == 401
    run("keys", "revoke", name, "--data-dir", data_dir)
    assert signed_get(secret).status_code == 401


# -- send ----------------------------------------------------------------------------------------


def requests_counted(api: httpx.Client, route: str, status: str) -> int:
    """loglake_http_requests_total for one route and status, from the server's /metrics."""
    wanted = f'loglake_http_requests_total{{route="{route}",status="{status}"}} '
    for line in api.get("/metrics").text.splitlines():
        if line.startswith(wanted):
            return int(line.removeprefix(wanted))
    return 0


def test_send_one_message_prints_its_log_id(server: ServerProcess, admin_key: str, api: httpx.Client):
    message = unique("Database connection timeout")
    result = run(
        "send", "--url", server.url, "--api-key", admin_key, "--service", "checkout", "--severity", "ERR", message
    )
    assert result.exit_code == 0, result.output
    (log_id,) = result.stdout.split()
    stored = api.get(f"/logs/{log_id}")
    assert stored.status_code == 200
    record = stored.json()
    assert (record["message"], record["service"], record["severity"]) == (message, "checkout", "error")


@pytest.mark.parametrize("command", [["send", "hello"], ["recent"]])
def test_a_url_with_an_endpoint_in_it_is_told_to_be_the_servers_address(
    server: ServerProcess, admin_key: str, command: list[str]
) -> None:
    """LOGLAKE_URL=http://host:8080/logs made `loglake send` fail with `HTTP 405: POST is not allowed on /logs/logs`,
    nothing said of the url (a new-user trial)."""
    result = run(*command[:1], "--url", server.url + "/logs", "--api-key", admin_key, *command[1:])
    assert result.exit_code == 1
    assert "LOGLAKE_URL is the server's address, like http://127.0.0.1:8080, without /logs" in result.output


def test_a_url_of_a_web_ui_page_is_told_to_be_the_servers_address(server: ServerProcess, admin_key: str) -> None:
    """LOGLAKE_URL=http://host:8080/ui/ (the address the server prints for the web UI) made `loglake recent` fail
    with `HTTP 303: See Other` alone: the UI's redirect to its sign-in page, which the client does not follow (a
    new-user trial)."""
    result = run("recent", "--url", server.url + "/ui/", "--api-key", admin_key)
    assert result.exit_code == 1
    assert "LOGLAKE_URL is the server's address, like http://127.0.0.1:8080, without /ui" in result.output
    assert "redirected to /login" in result.output


def test_a_url_of_a_web_server_that_is_not_loglake_says_so_without_its_page(tmp_path: Path) -> None:
    """Its HTML error page was printed as the message (`HTTP 501: <!DOCTYPE HTML>...`: a new-user trial)."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as web:
        threading.Thread(target=web.serve_forever, daemon=True).start()
        try:
            result = run("recent", "--url", f"http://127.0.0.1:{web.server_address[1]}", "--api-key", "llk_x")
        finally:
            web.shutdown()
    assert result.exit_code == 1
    said = result.stderr.splitlines()[-1]  # (the web server logs its requests to stderr too)
    assert said == "Error: HTTP 404: File not found, an HTML page: is --url / LOGLAKE_URL a loglake server?"


def test_get_prints_one_record(server: ServerProcess, admin_key: str):
    message = unique("fetch me")
    log_id = run("send", "--url", server.url, "--api-key", admin_key, message).stdout.strip()
    result = run("get", "--url", server.url, "--api-key", admin_key, log_id)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["message"] == message
    missing = run("get", "--url", server.url, "--api-key", admin_key, "not-an-id")
    assert missing.exit_code != 0 and "404" in missing.output


def test_json_output_has_no_infinity_or_nan_for_a_number_past_a_double(
    server: ServerProcess, admin_key: str, api: httpx.Client
):
    """JSON has no Infinity: the number the API answered (1e400) is what the CLI prints."""
    service = unique("huge")
    body = f'{{"message": "huge", "service": "{service}", "attributes": {{"n": 1e400, "m": -1e400}}}}'
    sent = api.post("/logs", content=body, headers={"content-type": "application/json"})
    assert sent.status_code == 201, sent.text

    def strict(text: str) -> dict:
        return json.loads(text, parse_constant=lambda word: pytest.fail(f"{word} in {text}"))

    auth = ("--url", server.url, "--api-key", admin_key)
    one = run("get", *auth, sent.json()["logId"])
    assert one.exit_code == 0, one.output
    assert strict(one.stdout)["attributes"] == {"n": float("inf"), "m": float("-inf")}
    assert '"n": 1e400' in one.stdout and '"m": -1e400' in one.stdout
    recent = run("recent", "--json", "--service", service, *auth)
    assert recent.exit_code == 0, recent.output
    assert strict(recent.stdout)["attributes"]["n"] == float("inf")


def test_send_survives_bytes_that_are_not_utf8(server: ServerProcess, admin_key: str, api: httpx.Client):
    service = unique("latin1")
    result = CliRunner().invoke(
        main,
        ["send", "--url", server.url, "--api-key", admin_key, "--service", service],
        input="caf\xe9 au lait\nplain ascii\n".encode("latin-1"),
    )
    assert result.exit_code == 0, result.output
    messages = [r["message"] for r in api.get("/logs/recent", params={"service": service}).json()["logs"]]
    assert sorted(messages) == ["caf\ufffd au lait", "plain ascii"]


def test_send_of_a_file_name_says_how_to_send_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`loglake send app.log` stored one record whose message was "app.log" (a trial): refused, before any
    server is asked, saying how to send its lines."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "app.log").write_text('{"message": "a line"}\n')
    result = run("send", "app.log", "--url", "http://127.0.0.1:9")
    assert result.exit_code == 2, result.output
    assert "'app.log' is a file: to send its lines, run `loglake send < app.log`" in result.output


def test_send_refuses_gzip_input_saying_how_to_send_it() -> None:
    """`loglake send < app.ndjson.gz` stored one record of binary garbage and exited 0 (a trial): refused, before
    any server is asked, saying how to send the lines."""
    result = run("send", "--url", "http://127.0.0.1:9", input=gzip.compress(b'{"message": "a line"}\n'))
    assert result.exit_code == 1, result.output
    assert "the input is gzip-compressed: nothing was sent" in result.stderr
    assert "zcat FILE.gz | loglake send" in result.stderr


def test_send_joins_message_words(server: ServerProcess, admin_key: str, api: httpx.Client):
    marker = unique("words")
    result = run("send", "--url", server.url, "--api-key", admin_key, marker, "and", "more")
    assert result.exit_code == 0, result.output
    assert api.get(f"/logs/{result.stdout.strip()}").json()["message"] == f"{marker} and more"


def test_send_stdin_ndjson_and_plain_text_in_batches(server: ServerProcess, admin_key: str, api: httpx.Client):
    service = unique("stdin")
    lines = [
        json.dumps({"message": "ndjson one", "severity": "warn", "attributes": {"user": 7}}),
        "plain text line",
        "",
        json.dumps({"message": "ndjson two", "log_type": "audit"}),
        "{not json, so plain text",
        "last plain line",
    ]
    before = requests_counted(api, "/logs", "201")
    args = ("--url", server.url, "--api-key", admin_key, "--service", service, "--batch-size", "2")
    result = run("send", *args, input="\n".join(lines) + "\n")
    assert result.exit_code == 0, result.output
    assert "sent 5 record(s)" in result.stderr
    assert requests_counted(api, "/logs", "201") - before == 3  # 5 records, 2 per request

    page = api.get("/logs/recent", params={"service": service}).json()
    got = [(r["message"], r["severity"], r["log_type"], r["attributes"]) for r in reversed(page["logs"])]
    assert got == [
        ("ndjson one", "warning", "application", {"user": 7}),
        ("plain text line", "info", "application", {}),
        ("ndjson two", "info", "audit", {}),
        ("{not json, so plain text", "info", "application", {}),
        ("last plain line", "info", "application", {}),
    ]


def test_send_reports_and_counts_a_line_too_long_to_be_a_record(server: ServerProcess, admin_key: str):
    """As the README says: the line is reported, skipped, counted at the end, and the exit status is 1."""
    service = unique("too-long")
    lines = ["before", "x" * (MAX_LINE_BYTES + 1), "after"]
    result = run("send", "--url", server.url, "--api-key", admin_key, "--service", service, input="\n".join(lines))
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "line 2: not stored: the line is too long to be a record",
        "sent 2 record(s)",
        "Error: 1 line(s) could not be stored (see above)",
    ]


def test_send_stores_a_record_the_server_would_refuse_and_says_what_it_changed(
    server: ServerProcess, admin_key: str, api: httpx.Client
):
    service = unique("changed")
    good = [json.dumps({"message": f"fine {i}"}) for i in range(3)]
    too_large = "y" * 300_000
    lines = [good[0], "", json.dumps({"message": "loud", "severity": "loud"}), too_large, *good[1:]]
    args = ("--url", server.url, "--api-key", admin_key, "--service", service, "--batch-size", "2")
    result = run("send", *args, input="\n".join(lines) + "\n")
    assert result.exit_code == 0, result.stderr
    # The line number counts from the start of the input (blank lines too).
    assert "line 4: stored with a change: message of 300000 bytes cut to 262144" in result.stderr
    assert "sent 5 record(s)" in result.stderr and "not stored" not in result.stderr
    stored = {
        r["message"][:5]: r["attributes"] for r in api.get("/logs/recent", params={"service": service}).json()["logs"]
    }
    assert stored == {
        "fine ": {},  # three of them
        "loud": {"severity": "loud"},
        "yyyyy": {"loglake.truncated_bytes": 300_000},
    }


def test_send_says_when_it_stamps_a_line_with_the_time_read_instead_of_the_time_sent(
    server: ServerProcess, admin_key: str, api: httpx.Client
):
    service = unique("restamped")
    two_days_ahead = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 2 * 86_400))
    lines = [
        json.dumps({"message": "fine", "time": int(time.time())}),
        json.dumps({"message": "ahead", "time": two_days_ahead}),
        json.dumps({"message": "far ahead", "time": "2030-01-01T00:00:00Z"}),
    ]
    before_ms = int(time.time() * 1000)
    result = run("send", "--url", server.url, "--api-key", admin_key, "--service", service, input="\n".join(lines))
    assert result.exit_code == 0, result.stderr
    changes = [line for line in result.stderr.splitlines() if "stored with a change" in line]
    assert [line.split(" is ")[0] for line in changes] == [
        f'line 2: stored with a change: time "{two_days_ahead}"',
        'line 3: stored with a change: time "2030-01-01T00:00:00Z"',
    ]
    assert all("is more than 24 h ahead of this machine's clock: stamped with the time read, 20" in c for c in changes)
    stored = {r["message"]: r for r in api.get("/logs/recent", params={"service": service}).json()["logs"]}
    assert stored["far ahead"]["attributes"] == {"time": "2030-01-01T00:00:00Z"}
    assert stored["ahead"]["attributes"] == {"time": two_days_ahead}
    assert before_ms <= stored["ahead"]["timestamp"] <= int(time.time() * 1000)


@pytest.mark.parametrize(
    ("option", "value"), [("--severity", "loud"), ("--service", "has space"), ("--log-type", "a/b")]
)
def test_send_refuses_a_bad_default_before_reading_anything(option: str, value: str):
    result = run("send", "--url", f"http://127.0.0.1:{free_port()}", option, value, input="a line\n")
    assert result.exit_code == 2 and option in result.stderr


def test_send_without_a_valid_key_fails_with_a_hint(server: ServerProcess):
    result = run("send", "--url", server.url, "--api-key", "llk_not-a-real-key", "hello")
    assert result.exit_code != 0
    assert "HTTP 401" in result.stderr and "--api-key" in result.stderr


def test_a_key_with_a_newline_works_and_one_holding_what_no_key_holds_is_refused_without_quoting_it(
    server: ServerProcess, admin_key: str
):
    """LOGLAKE_API_KEY read from a file with its newline failed with the whole key in the error (`Illegal header
    value b'Bearer llk_...\\n'`); a hint pasted from `keys list` (`llk_AbCd…`) was a traceback."""
    sent = run("send", "--url", server.url, "--api-key", f"{admin_key}\n", "hello")
    assert sent.exit_code == 0, sent.stderr
    for api_key, holds in ((f"{admin_key[:8]}…", "HORIZONTAL ELLIPSIS at character 9"), (f"{admin_key}\x01", "U+0001")):
        for command in (("recent",), ("send", "hello"), ("alerts", "list")):
            result = run(*command, "--url", server.url, "--api-key", api_key)
            assert result.exit_code == 1, result.stderr
            assert f"the API key holds {holds}" in result.stderr and "LOGLAKE_API_KEY" in result.stderr
            assert admin_key[4:8] not in result.stderr


def test_send_to_a_server_that_is_not_there():
    url = f"http://127.0.0.1:{free_port()}"
    result = run("send", "--url", url, "--api-key", "llk_x", "--retry-for", "0.3", "hello")
    assert result.exit_code == 1
    assert "cannot reach loglake" in result.stderr and result.stderr.endswith(
        "; 0 record(s) sent, 1 read but not sent\n"
    )


@pytest.mark.parametrize(
    ("option", "value", "takes"),
    [
        ("--retry-for", "abc", "a number of seconds, 0 or more (inf: retry forever)"),  # was "not a valid float range"
        ("--retry-for", "-1", "a number of seconds, 0 or more (inf: retry forever)"),
        ("--max-wait", "0", "a number of seconds, 0.01 or more"),
        ("--batch-size", "many", "a number of records from 1 to 10,000"),
    ],
)
def test_send_says_what_a_numeric_option_takes(option: str, value: str, takes: str):
    result = run("send", "--url", f"http://127.0.0.1:{free_port()}", option, value, "hello")
    assert result.exit_code == 2
    assert f"Invalid value for '{option}': '{value}' is not {takes}" in result.stderr


# -- recent --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def recent_service(server: ServerProcess, admin_key: str) -> tuple[str, list[tuple[str, str]]]:
    """A service with four records, oldest first: (message, severity)."""
    service = unique("recent")
    records = [(f"{service} step {i}", severity) for i, severity in enumerate(["info", "warning", "error", "error"])]
    ndjson = "".join(json.dumps({"message": m, "severity": s}) + "\n" for m, s in records)
    result = run("send", "--url", server.url, "--api-key", admin_key, "--service", service, input=ndjson)
    assert result.exit_code == 0, result.output
    return service, records


def test_recent_prints_a_table_with_the_newest_at_the_bottom(server: ServerProcess, admin_key: str, recent_service):
    service, records = recent_service
    result = run("recent", "--url", server.url, "--api-key", admin_key, "--service", service, "--limit", "3")
    assert result.exit_code == 0, result.output
    rows = result.stdout.splitlines()
    assert len(rows) == 3
    for row, (message, severity) in zip(rows, records[1:], strict=True):
        assert row.endswith(message)
        assert row.split()[1:3] == [severity.upper(), service]
        assert row.split()[0].endswith("Z") and "T" in row.split()[0]
    assert "\x1b[" not in result.stdout  # no colour codes when not on a terminal


def test_recent_json_is_ndjson_of_the_same_records(
    server: ServerProcess, admin_key: str, api: httpx.Client, recent_service
):
    service, records = recent_service
    result = run("recent", "--url", server.url, "--api-key", admin_key, "--service", service, "--limit", "3", "--json")
    assert result.exit_code == 0, result.output
    printed = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["message"], r["severity"]) for r in printed] == records[1:]
    from_api = api.get("/logs/recent", params={"service": service, "limit": "3"}).json()["logs"]
    assert printed == list(reversed(from_api))


def test_recent_filters_by_severity(server: ServerProcess, admin_key: str, recent_service):
    service, records = recent_service
    args = ("recent", "--url", server.url, "--api-key", admin_key, "--service", service, "--json")
    errors = [json.loads(line) for line in run(*args, "--severity", "error").stdout.splitlines()]
    assert [r["message"] for r in errors] == [m for m, s in records if s == "error"]
    several = [json.loads(line) for line in run(*args, "--severity", "info,warning").stdout.splitlines()]
    assert [r["message"] for r in several] == [m for m, s in records if s in ("info", "warning")]
    at_least = [json.loads(line) for line in run(*args, "--min-severity", "warning").stdout.splitlines()]
    assert [r["message"] for r in at_least] == [m for m, s in records if s != "info"]


def test_recent_search_and_tail_refuse_a_bad_filter_naming_the_option_typed(server: ServerProcess, admin_key: str):
    """The server's reason, for the option the person typed: it said `HTTP 400: min_severity: must be ...` (the API's
    parameter) and exited 1, where a value click refuses is a usage error (exit 2) naming the option."""
    auth = ("--url", server.url, "--api-key", admin_key)
    result = run("recent", *auth, "--severity", "loud")
    assert result.exit_code == 2
    assert "Invalid value for --severity: must be one or more (comma-separated) of debug" in result.stderr
    result = run("search", "x", *auth, "--min-severity", "loud", "--log-type", "Bad Type")
    assert result.exit_code == 2
    assert "Invalid value for --min-severity: must be one of debug" in result.stderr
    assert "Invalid value for --log-type: must be 1-128 characters" in result.stderr
    result = run("search", "x (", *auth)
    assert (result.exit_code, result.stderr.splitlines()[-1]) == (
        2,
        "Error: Invalid value for TERMS: the ( at character 3 is never closed; add a ) after its group",
    )
    # tail opens the same search: it said `HTTP 400: q: ...` and `HTTP 400: severity: ...`, exit 1
    result = run("tail", "x (", *auth)
    assert result.exit_code == 2 and "Invalid value for TERMS: the ( at character 3 is never closed" in result.stderr
    result = run("tail", *auth, "--severity", "loud")
    assert result.exit_code == 2 and "Invalid value for --severity: must be one or more" in result.stderr
    result = run("alerts", "list", *auth, "--level", "loud")
    assert result.exit_code == 2 and "Invalid value for --level: must be one or more" in result.stderr
    refused = run("recent", *auth[:2], "--api-key", "llk_" + "x" * 43)  # (not a value of a filter: as the server said)
    assert refused.exit_code == 1 and "HTTP 401" in refused.stderr


def test_recent_and_search_say_on_stderr_when_no_record_matches(server: ServerProcess, admin_key: str, recent_service):
    service, _ = recent_service
    auth = ("--url", server.url, "--api-key", admin_key)
    word = unique("absent")
    for output in ((), ("--json",)):
        nothing = run("search", word, *auth, "--service", service, *output)
        assert (nothing.exit_code, nothing.stdout) == (0, "")
        assert (
            nothing.stderr == f"(no record matches `{word}` in the last 24 h; widen it with --since, e.g. --since 7d)\n"
        )
        none_recent = run("recent", *auth, "--service", unique("absent"), "--since", "2h", "--until", "1h", *output)
        assert (none_recent.exit_code, none_recent.stdout) == (0, "")
        assert none_recent.stderr == "(no record matches these filters since 2h until 1h)\n"
    found = run("search", "step", *auth, "--service", service)
    assert found.exit_code == 0 and len(found.stdout.splitlines()) == 4 and found.stderr == ""
    # text with a colon reads as key:value: the answer names the keys and says to quote such text
    keyed = run("search", "at", "10:42:01", "-host.name:x", *auth, "--service", service, "--since", "1h")
    assert keyed.stderr == (
        "(no record matches `at 10:42:01 -host.name:x` since 1h; 10:, host.name: named an attribute: quote text"
        " that holds a colon)\n"
    )


def test_search_without_terms_finds_every_record_of_the_filters(server: ServerProcess, admin_key: str, recent_service):
    """`loglake search --since 7d` was a usage error (Missing argument 'TERMS...'), where the API and the UI take an
    empty search: every record of the window and filters."""
    service, records = recent_service
    auth = ("--url", server.url, "--api-key", admin_key)
    found = run("search", *auth, "--service", service, "--min-severity", "error", "--since", "1h", "--json")
    assert found.exit_code == 0, found.output
    assert [json.loads(line)["message"] for line in found.stdout.splitlines()] == [m for m, _ in records[:1:-1]]
    nothing = run("search", *auth, "--service", unique("absent"), "--since", "2h", "--until", "1h")
    assert (nothing.exit_code, nothing.stdout) == (0, "")
    assert nothing.stderr == "(no record matches these filters since 2h until 1h)\n"


# -- what a terminal shows -------------------------------------------------------------------------

HOSTILE = "\x1b[31mred\x1b]0;retitled\x07 csi\x9b2J del\x7f tab\tend\u202eevil\u2028hid\u200bden\nsecond line"
# What a terminal shows instead (written out): every control character as an escape, a newline as ⏎.
SHOWN = "\\x1b[31mred\\x1b]0;retitled\\x07 csi\\x9b2J del\\x7f tab\\tend\\u202eevil\\u2028hid\\u200bden⏎second line"
RAW_CONTROLS = ("\x1b", "\x07", "\x9b", "\x7f", "\t", "\u202e", "\u2028", "\u200b")


@pytest.fixture(scope="module")
def hostile_service(server: ServerProcess, admin_key: str) -> str:
    service = unique("hostile")
    with httpx.Client(base_url=server.url, headers={"authorization": f"Bearer {admin_key}"}, timeout=10) as client:
        posted = client.post("/logs", json={"service": service, "message": HOSTILE, "attributes": {"k": HOSTILE}})
    assert posted.status_code == 201, posted.text
    return service


def assert_shown_safely(text: str) -> None:
    assert SHOWN in text
    assert not any(c in text for c in RAW_CONTROLS), repr(text)


def test_recent_and_search_tables_escape_control_characters(
    server: ServerProcess, admin_key: str, hostile_service: str
):
    auth = ("--url", server.url, "--api-key", admin_key)
    recent_rows = run("recent", *auth, "--service", hostile_service)
    assert recent_rows.exit_code == 0, recent_rows.output
    assert_shown_safely(recent_rows.stdout)
    found = run("search", "retitled", *auth, "--service", hostile_service)
    assert found.exit_code == 0, found.output
    assert_shown_safely(found.stdout)


def test_json_output_stays_exact_and_shows_no_raw_control_characters(
    server: ServerProcess, admin_key: str, hostile_service: str
):
    auth = ("--url", server.url, "--api-key", admin_key)
    for command in (("recent", "--json"), ("search", "retitled", "--json")):
        result = run(*command, *auth, "--service", hostile_service)
        assert result.exit_code == 0, result.output
        (record,) = [json.loads(line) for line in result.stdout.splitlines()]
        assert record["message"] == HOSTILE and record["attributes"] == {"k": HOSTILE}
        assert not any(c in result.stdout for c in RAW_CONTROLS if c not in "\u202e\u200b")
    one = run("get", *auth, record["logId"])
    assert json.loads(one.stdout)["message"] == HOSTILE
    assert not any(c in one.stdout for c in RAW_CONTROLS if c not in "\u202e\u200b")


def test_query_tables_escape_control_characters_and_csv_stays_exact(
    server: ServerProcess, admin_key: str, hostile_service: str
):
    auth = ("--url", server.url, "--api-key", admin_key)
    sql = f"SELECT message, attributes FROM logs WHERE service = '{hostile_service}'"
    table = run("query", sql, *auth)
    assert table.exit_code == 0, table.output
    row = table.stdout.splitlines()[1]
    assert row.startswith(SHOWN[:59] + "…")  # cells are cut at 60 characters
    assert not any(c in row for c in RAW_CONTROLS), repr(row)
    as_csv = run("query", sql, "--format", "csv", *auth)
    message, attributes = list(csv.reader(io.StringIO(as_csv.stdout)))[1]
    assert message == HOSTILE and json.loads(attributes) == {"k": HOSTILE}
    as_json = run("query", sql, "--format", "json", *auth)
    ((message, attributes),) = json.loads(as_json.stdout)["rows"]
    assert message == HOSTILE and json.loads(attributes) == {"k": HOSTILE}


def test_errors_quoting_what_was_sent_escape_control_characters(server: ServerProcess, admin_key: str):
    result = run("query", 'SELECT "\x1b]0;retitled\x07" FROM logs', "--url", server.url, "--api-key", admin_key)
    assert result.exit_code == 1
    assert "\\x1b]0;retitled\\x07" in result.stderr and "\x1b" not in result.stderr
    assert "\n" in result.stderr.strip()  # a message of several lines keeps them
    missing = run("get", "\x1b[2Jgone", "--url", server.url, "--api-key", admin_key)
    assert missing.exit_code == 1 and "\x1b" not in missing.stderr


# -- serve and --version ---------------------------------------------------------------------------


README = Path(__file__).resolve().parent.parent / "README.md"


def serve_help_entries() -> dict[str, str]:
    """`loglake serve --help` as {flag: the entry's text, whitespace collapsed}."""
    result = run("serve", "--help")
    assert result.exit_code == 0, result.output
    options = result.stdout.split("Options:", 1)[1]
    entries = re.split(r"\n(?=  -)", options)
    found = {}
    for entry in entries:
        flags = re.match(r"\s*(?:-\w, )?(--[a-z-]+)(?: / (--[a-z-]+))?", entry)
        if flags:
            found[flags.group(1)] = " ".join(entry.split())
    return found


def readme_configuration_table() -> list[str]:
    section = README.read_text().split("## Configuration", 1)[1].split("\n## ", 1)[0]
    return [line for line in section.splitlines() if line.startswith("| `--")]


def test_serve_help_and_the_readme_document_the_same_options():
    """The README's configuration table against what `serve --help` offers, both ways; and each option
    names its LOGLAKE_ variable, which the README promises for every one."""
    entries = serve_help_entries()
    table = readme_configuration_table()
    documented = {flag for row in table for flag in re.findall(r"`(--[a-z*-]+)", row)}
    assert {"--data-dir", "--port", "--auth", "--durability", "--max-attribute-*"} <= documented
    for flag in documented:
        assert any(fnmatch.fnmatch(f, flag) for f in entries), f"the README documents {flag}; serve has no such option"
    readme = README.read_text()
    for flag in entries.keys() - {"--help", "--config"}:
        in_table = any(fnmatch.fnmatch(flag, pattern) for pattern in documented)
        assert in_table or f"`{flag}" in readme or f" {flag} " in readme, f"the README does not mention {flag}"
    for flag, text in entries.items():
        if flag != "--help":
            assert f"env LOGLAKE_{flag[2:].replace('-', '_').upper()}" in text, text
    named = {name for row in table for name in re.findall(r"`(LOGLAKE_[A-Z_]+)`", row)}
    assert {"LOGLAKE_DATA_DIR", "LOGLAKE_RATE_BURST"} <= named
    assert all(name in " ".join(entries.values()) for name in named)
    assert "[full|process]" in entries["--durability"]  # choices are shown
    assert "--no-auth" in entries["--auth"]


def test_serve_refuses_a_public_address_without_auth(tmp_path: Path):
    """Run as a real process with a timeout: if the check were missing it would start serving, not hang us."""
    data_dir = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGLAKE_")}
    args = ("--host", "0.0.0.0", "--no-auth", "--port", str(free_port()), "--data-dir", str(data_dir))
    completed = subprocess.run(
        [sys.executable, "-m", "loglake", "serve", *args],
        capture_output=True,
        text=True,
        timeout=20,
        env=env,
    )
    assert completed.returncode != 0
    assert "refusing to serve 0.0.0.0 with auth disabled" in completed.stderr
    assert completed.stdout == ""
    assert not (data_dir / "keys.db").exists()


def test_serve_on_a_port_in_use_fails_clearly(server: ServerProcess, tmp_path: Path):
    result = run("serve", "--port", str(server.port), "--data-dir", str(tmp_path / "data"))
    assert result.exit_code != 0
    assert f"port {server.port} on 127.0.0.1 is already in use" in result.stderr
    assert "llk_" not in result.output  # no admin key made for a server that never started
    assert not (tmp_path / "data" / "keys.db").exists()


def test_serve_names_a_setting_it_cannot_use_as_it_was_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """An access log that cannot be opened, a syslog port in use: said as `--access-log (LOGLAKE_ACCESS_LOG)`, the
    flag, whether the flag, the variable or the config file had given it."""
    config = tmp_path / "loglake.toml"
    config.write_text('access_log = "no-such-folder/access.log"\n')
    data = ("--port", str(free_port()), "--data-dir", str(tmp_path / "data"))
    from_file = run("serve", "--config", str(config), *data)
    assert from_file.exit_code == 1
    assert from_file.stderr.startswith(f"Error: access_log in {config}: cannot open {tmp_path / 'no-such-folder'}")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        monkeypatch.setenv("LOGLAKE_SYSLOG_TCP", str(port))
        from_variable = run("serve", *data)
        assert from_variable.exit_code == 1
        assert from_variable.stderr.startswith(f"Error: LOGLAKE_SYSLOG_TCP: port {port} on 127.0.0.1 is already in use")
        from_flag = run("serve", "--syslog-tcp", str(port), *data)
        assert from_flag.stderr.startswith(f"Error: --syslog-tcp: port {port} on 127.0.0.1 is already in use")


def test_serve_names_the_environment_variable_with_a_bad_value(tmp_path: Path):
    result = CliRunner(env={"LOGLAKE_PORT": "eighty"}).invoke(main, ["serve", "--data-dir", str(tmp_path)])
    assert result.exit_code != 0
    assert "LOGLAKE_PORT" in result.stderr and "'eighty'" in result.stderr


def test_python_m_loglake_version():
    completed = subprocess.run(
        [sys.executable, "-m", "loglake", "--version"], capture_output=True, text=True, timeout=20, check=False
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == f"loglake, version {__version__}"


class _EnoughShown(Exception):
    pass


def test_a_follow_names_the_recent_command_that_lists_what_it_could_not_keep_up_with():
    """The overflow gap (the restart's is run for real in tests/e2e/test_follow.py): a command, not a route."""
    from loglake.cli import _not_shown

    gap = {"reason": "overflow", "missed": 3, "since": "2026-12-05T04:00:00.000Z", "until": None, "message": "..."}
    said = _not_shown(gap, {"service": "api", "severity": None, "q": "time out"}, "http://127.0.0.1:18924")
    assert said == (
        "3 record(s) (of any filter) arrived faster than this follow read them; those it would show are not shown: "
        "`loglake recent --since 2026-12-05T04:00:00.000Z --service api --query 'time out' --url "
        "http://127.0.0.1:18924` lists them by time"
    )


def test_follow_prints_only_what_comes_after_the_newest_shown(server: ServerProcess, admin_key: str, api: httpx.Client):
    """`recent --follow --limit 1`: the first page shows the newest record; records sharing its
    millisecond but older must not appear afterwards as if new, and later records must."""
    from loglake.cli import RecentlyShown, _follow
    from loglake.client import LoglakeClient

    service, ts = unique("follow"), 1_793_577_600_000
    sent = api.post("/logs", json=[{"timestamp": ts, "service": service, "message": f"same ms {i}"} for i in range(3)])
    params = {"service": service, "since": str(ts), "limit": "1", "follow": "true"}
    first_page = api.get("/logs/recent", params=params).json()
    assert [r["logId"] for r in first_page["logs"]] == [sent.json()["logIds"][-1]]
    api.post("/logs", json={"timestamp": ts + 5, "service": service, "message": "later"})

    shown: list[str] = []

    def show(record: dict) -> None:
        shown.append(record["message"])
        raise _EnoughShown

    with LoglakeClient(server.url, admin_key) as client, pytest.raises(_EnoughShown):
        seen = RecentlyShown(r["logId"] for r in first_page["logs"])
        _follow(client, {"service": service}, first_page["follow_cursor"], seen, show, 0.01, server.url)
    assert shown == ["later"]


def test_recently_shown_remembers_the_last_ids_it_was_given():
    from loglake.cli import RecentlyShown

    shown = RecentlyShown(["a", "b"], keep=3)
    assert [shown.first_time(i) for i in ("a", "c", "c", "d")] == [False, True, False, True]
    assert shown.first_time("a")  # forgotten: b, c and d came after it
    assert not shown.first_time("d")


REPOSITORY = Path(__file__).resolve().parents[1]


def test_aws_synth_without_the_cdk_gives_the_install_command_of_a_clone() -> None:
    """In a clone (an editable install, as the README sets one up) the CDK comes with `-e '.[aws]'` and the
    clone's own pip; `pip install 'loglake[aws]'` would fetch another loglake from the package index."""
    direct_url = importlib.metadata.distribution("loglake").read_text("direct_url.json") or "{}"
    if not json.loads(direct_url).get("dir_info", {}).get("editable"):
        pytest.skip("loglake is not installed editable here: a clone's command does not apply")
    blocked = "import sys; sys.modules['aws_cdk'] = None; from loglake.cli import main; main()"
    result = subprocess.run(
        [sys.executable, "-c", blocked, "aws", "synth", "--config", "deploy/loglake-aws.json", "--out", "cdk.out"],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=60,
    )
    pip = Path(sys.executable).with_name("pip").absolute().relative_to(REPOSITORY)
    assert result.returncode == 1
    assert f"the CDK is not installed: {pip} install -e '.[aws]' (Node.js must be on PATH)" in result.stderr, (
        result.stderr
    )


@pytest.mark.parametrize(
    "args",
    [
        ("alerts", "show", ""),
        ("alerts", "ack", " "),
        ("alerts", "resolve", ""),
        ("alerts", "list", "--rule", ""),
        ("rules", "show", ""),
        ("rules", "run", ""),
        ("rules", "backtest", "", "--since", "1d"),
        ("get", ""),
        ("keys", "revoke", ""),
        ("ask", "--conversation", "", "why?"),
    ],
    ids=lambda args: " ".join(a or '""' for a in args),
)
def test_an_empty_id_or_name_is_a_usage_error(args: tuple[str, ...]) -> None:
    """`loglake alerts show ""` asked the server for GET /alerts/ (a route's 404); `rules show ""` took the empty
    text as the start of every rule's id (the folder's only rule, shown)."""
    result = run(*args)
    assert result.exit_code == 2, result.output
    assert "is empty: give " in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("pause", "said"),
    [(0.34, "trying again in 0.3 s"), (0.04, "trying again now"), (12.0, "trying again in 12.0 s")],
)
def test_a_retry_is_said_with_its_pause_and_a_pause_under_a_twentieth_of_a_second_is_now(
    pause: float, said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    say_retrying(ConnectionError("cannot reach loglake"), pause)
    assert capsys.readouterr().err == f"loglake: cannot reach loglake; {said}\n"


def test_recent_follow_refuses_until_as_a_follow_has_no_end() -> None:
    refused = CliRunner().invoke(main, ["recent", "--follow", "--since", "5m", "--until", "1m"])
    assert refused.exit_code == 2, refused.output
    assert "--until: a follow has no end: it starts at since" in refused.output


CLIENT_COMMANDS_WITH_TIMES = [
    ("recent", "--since", "--until"),
    ("search", "--since", "--until", "timeout"),
    ("alerts", "list", "--since"),
    ("amplify", "report", "--app", "x", "--since", "--until"),
]


@pytest.mark.parametrize("command", CLIENT_COMMANDS_WITH_TIMES)
def test_a_client_commands_time_that_does_not_read_is_a_usage_error_before_the_server_is_asked(
    command: tuple[str, ...],
) -> None:
    """`loglake search foo --since banana` with no server running said the server could not be reached, and with
    one exited 1 on its refusal: the time is read first, as the commands that read a data dir read it."""
    nobody = f"http://127.0.0.1:{free_port()}"  # (nothing listens there)
    words = [word for word in command if not word.startswith("--since") and word != "--until"]
    for option in (word for word in command if word in ("--since", "--until")):
        refused = run(*words, option, "banana", "--url", nobody)
        assert refused.exit_code == 2, refused.output
        assert f"Invalid value for {option}: 'banana' is not a time: use epoch milliseconds" in refused.stderr
        assert "cannot reach" not in refused.stderr
    empty = [] if command[0] == "amplify" else ["--since", ""]  # (empty: not given, as the server takes it)
    reached = run(*words, *empty, "--url", nobody)
    assert reached.exit_code == 1 and "cannot reach loglake" in reached.stderr, reached.output


def test_a_server_that_cannot_be_reached_is_said_with_how_to_name_another() -> None:
    """A server started with LOGLAKE_PORT=19550 while the commands asked the default port: "is `loglake serve`
    running?" (it was, elsewhere) said nothing of the option that names it."""
    nobody = f"http://127.0.0.1:{free_port()}"  # (nothing listens there)
    reached = run("recent", "--url", nobody)
    assert reached.exit_code == 1, reached.output
    assert f"cannot reach loglake at {nobody}: " in reached.stderr
    assert "is `loglake serve` running there? (--url or LOGLAKE_URL names the server)" in reached.stderr


@pytest.mark.parametrize("command", [("recent",), ("search", "timeout")])
def test_a_client_commands_window_that_ends_before_it_starts_is_a_usage_error(command: tuple[str, ...]) -> None:
    """`loglake recent --since 2h --until 3h` exited 1 on the server's refusal (and said the server was down when it
    was), where `rules run` with the same mistake exits 2, a usage error: the command checks the window itself."""
    nobody = f"http://127.0.0.1:{free_port()}"  # (nothing listens there)
    for window in (["--since", "2h", "--until", "3h"], ["--since", "2h", "--until", "2h"]):
        refused = run(*command, *window, "--url", nobody)
        assert refused.exit_code == 2, refused.output
        assert "Invalid value for --since: must be before --until (" in refused.stderr
    refused = run(*command, "--until", "48h", "--url", nobody)  # (before the server's default window, the last 24 h)
    assert refused.exit_code == 2, refused.output
    assert "Invalid value for --until: is before the start of the default window, the last 24 h: give --since" in (
        " ".join(refused.stderr.split())
    )
    for window in (["--until", "23h"], ["--since", "2d", "--until", "25h"], ["--since", "1h"]):
        reached = run(*command, *window, "--url", nobody)
        assert reached.exit_code == 1 and "cannot reach loglake" in reached.stderr, reached.output


def test_ctrl_c_while_the_work_starts_stops_the_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Ctrl-C that came while `until_ctrl_c` waited for its thread to start (the work already running) left the
    work untold: the command waited for the rule's whole query, then ended with a traceback, not status 130 (seen
    once in the suite). Here the KeyboardInterrupt comes as the submit returns, deterministically."""
    submit = ThreadPoolExecutor.submit

    def interrupted_submit(self: ThreadPoolExecutor, *args: object) -> object:
        submit(self, *args)
        raise KeyboardInterrupt

    told: list[str | None] = []

    def work(stop: Stop) -> None:
        deadline = time.monotonic() + 5
        while stop.reason is None and time.monotonic() < deadline:
            time.sleep(0.01)
        told.append(stop.reason)

    monkeypatch.setattr(ThreadPoolExecutor, "submit", interrupted_submit)
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        until_ctrl_c(work)
    assert told == [INTERRUPTED] and time.monotonic() - started < 4


@pytest.mark.parametrize("interval", ["-1", "nan", "inf", "0"])
def test_recent_follow_refuses_an_interval_it_cannot_wait(interval: str) -> None:
    """`recent --follow --interval -1` (or nan, inf) ended in a traceback from time.sleep after the first page, and
    0 polled the server without a pause."""
    refused = CliRunner().invoke(main, ["recent", "--follow", "--interval", interval])
    assert refused.exit_code == 2, refused.output
    assert f"'{interval}' is not a number of seconds from 0.01 to 3600" in refused.output


@pytest.mark.parametrize("command", [["recent"], ["query", "SELECT 1"], ["ask", "errors today?"], ["alerts", "list"]])
@pytest.mark.parametrize("url", ["http://127.0.0.1:abc", "ftp://127.0.0.1", "127.0.0.1:8080"])
def test_a_server_url_that_is_no_http_url_is_a_usage_error(
    command: list[str], url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--url http://127.0.0.1:abc` (or LOGLAKE_URL) ended every client command in httpx's InvalidURL traceback."""
    monkeypatch.setenv("LOGLAKE_URL", url)
    refused = CliRunner().invoke(main, command)
    assert refused.exit_code == 2, refused.output
    said = "is not an http(s) URL such as http://127.0.0.1:8080"
    assert f"Invalid value for '--url': '{url}' (from LOGLAKE_URL) {said}" in refused.output
    monkeypatch.delenv("LOGLAKE_URL")
    refused = CliRunner().invoke(main, [*command, "--url", url])
    assert refused.exit_code == 2 and f"Invalid value for '--url': '{url}' {said}" in refused.output


def test_every_command_that_reads_the_settings_takes_the_config_file_as_serve_does() -> None:
    """Only `serve` took --config; the commands that read the same settings (those working on a data dir) took the
    file from LOGLAKE_CONFIG alone. `amplify collect` keeps its --config, the collector's own file."""

    def commands(group: click.Group, path: tuple[str, ...] = ()) -> Iterator[tuple[str, click.Command]]:
        for name, command in group.commands.items():
            if isinstance(command, click.Group):
                yield from commands(command, (*path, name))
            else:
                yield " ".join((*path, name)), command

    for name, command in commands(main):
        options = {opt: param for param in command.params for opt in getattr(param, "opts", ())}
        if "--data-dir" in options and name != "amplify collect":
            assert "--config" in options, name
            assert options["--config"].envvar == "LOGLAKE_CONFIG", name


def test_a_command_waiting_out_its_server_says_why_once_then_briefly_how_long_now_and_then(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A new-user trial: over a 5-minute outage `loglake tail` said the whole first line (its advice, and "trying
    again in 0.3 s") again every 10 s, thirty times."""
    now = [100.0]
    say = say_retrying_now_and_then(clock=lambda: now[0])
    error = ClientError("cannot reach loglake at http://127.0.0.1:1: [Errno 111] Connection refused; is it running?")
    for step in (0.0, 0.3, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 9.0):  # tries at 100, 100.3 ... 112.3, 121.3
        now[0] += step
        say(error, 2.0)
    lines = capsys.readouterr().err.splitlines()
    refused = "cannot reach loglake at http://127.0.0.1:1: [Errno 111] Connection refused"
    assert lines == [
        f"loglake: {refused}; is it running?; trying again in 2.0 s",
        f"loglake: still trying, for 10 s now: {refused}",
        f"loglake: still trying, for 21 s now: {refused}",
    ]
