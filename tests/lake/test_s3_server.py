"""A server whose lake is an S3 bucket (the real SeaweedFS server): flushes land there, SQL reads them."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from loglake.times import DAY_MS
from tests.conftest import free_port
from tests.s3_server import ACCESS_KEY, SECRET_KEY, S3Server


def test_a_server_flushes_into_an_s3_lake_and_queries_it(
    s3_server: S3Server, s3_bucket: tuple, tmp_path: Path, server_factory, admin_key_of
) -> None:
    client, bucket, prefix = s3_bucket
    aws = {
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
    }
    lake_args = (
        *("--lake-bucket", bucket, "--lake-prefix", prefix, "--lake-endpoint", s3_server.endpoint),
        *("--lake-region", "us-east-1", "--hot-window-seconds", "60", "--flush-interval-seconds", "0.2"),
    )
    server = server_factory(None, *lake_args, extra_env=aws)
    # (the start line names the lake, not only the data dir: a trial ran commands without its settings)
    assert f", lake: s3://{bucket}/{prefix} (endpoint {s3_server.endpoint})," in server.log_path.read_text()
    headers = {"authorization": f"Bearer {admin_key_of(server)}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=10) as api:
        old = int(time.time() * 1000) - 3 * DAY_MS
        records = [{"timestamp": old + i, "service": "s3", "message": f"to the bucket {i}"} for i in range(100)]
        ids = api.post("/logs", json=records).json()["logIds"]
        deadline = time.monotonic() + 20
        while api.get("/tables").json()["tables"][0]["lake_records"] < 100 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert api.get("/tables").json()["tables"][0]["lake_records"] == 100, "the flush never reached the bucket"
        keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/").get("Contents", [])]
        (part,) = [k for k in keys if k.endswith(".parquet")]
        assert part.startswith(f"{prefix}/type=app_logs/date=")
        # for engines outside loglake; and which data dir catalogues the lake (claim.py), outside every table
        assert set(keys) - {part} <= {f"{prefix}/type=app_logs/_manifest.json", f"{prefix}/_state/catalog.json"}
        result = api.post("/query", json={"sql": "SELECT count(*), min(message), max(date) FROM logs"}).json()
        assert result["rows"][0][:2] == [100, "to the bucket 0"]
        assert api.get(f"/logs/{ids[42]}").json()["message"] == "to the bucket 42"
        # A lake file gone from the bucket (a store that fails, or a hand that removed it): the storage's fault,
        # 503 to retry, as for a local lake's file; it was a 400 query_failed that blamed the SQL.
        client.delete_object(Bucket=bucket, Key=part)
        gone = api.post("/query", json={"sql": "SELECT count(*) FROM logs"})
        assert gone.status_code == 503, gone.text
        assert gone.json()["error"]["message"].startswith("a lake file could not be read from storage")


def _aws(tmp_path: Path, secret: str = SECRET_KEY) -> dict[str, str]:
    return {
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": secret,
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
    }


def test_a_server_whose_s3_lake_refuses_its_credentials_does_not_start(
    s3_server: S3Server, s3_bucket: tuple, tmp_path: Path
) -> None:
    """It started, took records into the hot store and answered "ok" at /healthz while every move into the lake
    failed with SignatureDoesNotMatch, said only in tracebacks of its log (a new-user trial)."""
    _, bucket, prefix = s3_bucket
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOGLAKE_", "AWS_"))} | _aws(tmp_path, "wrong")
    lake = ("--lake-bucket", bucket, "--lake-prefix", prefix, "--lake-endpoint", s3_server.endpoint)
    args = ("--port", str(free_port()), "--data-dir", str(tmp_path / "data"), "--lake-region", "us-east-1", *lake)
    completed = subprocess.run(
        [sys.executable, "-m", "loglake", "serve", *args], capture_output=True, text=True, timeout=60, env=env
    )
    assert completed.returncode == 1, completed.stderr
    assert "Traceback" not in completed.stderr
    assert f"Error: the lake s3://{bucket}/{prefix} (endpoint {s3_server.endpoint}) refused loglake " in (
        completed.stderr
    )
    assert "(SignatureDoesNotMatch): check the AWS credentials loglake finds (AWS_ACCESS_KEY_ID" in completed.stderr
    assert "llk_" not in completed.stdout  # (no key shown for a server that never started: it would be lost)


def test_an_idle_server_whose_s3_lake_cannot_be_reached_says_degraded_from_the_start(
    tmp_path: Path, server_factory, admin_key_of
) -> None:
    """The start's warning said "/healthz says so meanwhile", yet /healthz said "ok" until a move into the lake
    failed: never, on a server with nothing to move (its maintenance turns touched no store, and succeeded)."""
    lake_args = (
        *("--lake-bucket", "lake", "--lake-endpoint", f"http://127.0.0.1:{free_port()}", "--lake-region", "us-east-1"),
        *("--flush-interval-seconds", "0.2"),
    )
    server = server_factory(None, *lake_args, extra_env=_aws(tmp_path))
    assert "until it can; /healthz says degraded meanwhile" in server.log_path.read_text()
    reason = "lake maintenance is failing: records stay in the hot store until it succeeds"
    for _ in range(3):  # (turns, each with nothing to move, in between)
        assert httpx.get(f"{server.url}/healthz", timeout=10).json() == {"status": "degraded", "reason": reason}
        time.sleep(0.5)
    headers = {"authorization": f"Bearer {admin_key_of(server)}"}
    assert (
        "cannot put s3://lake/_state/probe"
        in httpx.get(f"{server.url}/healthz", headers=headers).json()["lake"]["error"]
    )


def test_a_server_whose_s3_lake_cannot_be_reached_warns_and_says_degraded(
    tmp_path: Path, server_factory, admin_key_of
) -> None:
    """A store down at the start (a port nothing listens on) is a warning, not a refusal: records wait in the hot
    store; /healthz says degraded once a maintenance turn failed, where it said "ok"."""
    endpoint = f"http://127.0.0.1:{free_port()}"
    lake_args = (
        *("--lake-bucket", "lake", "--lake-endpoint", endpoint, "--lake-region", "us-east-1"),
        *("--hot-window-seconds", "1", "--flush-interval-seconds", "0.2"),
    )
    server = server_factory(None, *lake_args, extra_env=_aws(tmp_path))
    assert "warning: the lake s3://lake/ (endpoint " in server.log_path.read_text()
    headers = {"authorization": f"Bearer {admin_key_of(server)}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as api:
        old = int(time.time() * 1000) - 60_000
        assert api.post("/logs", json=[{"timestamp": old, "message": "waits"}]).status_code == 201
        deadline = time.monotonic() + 30
        while api.get("/healthz").json()["reason"] is None and time.monotonic() < deadline:
            time.sleep(0.2)
        health = httpx.get(f"{server.url}/healthz", timeout=10)
        assert health.status_code == 200
        assert health.json() == {
            "status": "degraded",
            "reason": "lake maintenance is failing: records stay in the hot store until it succeeds",
        }
        assert "cannot put s3://lake/" in api.get("/healthz").json()["lake"]["error"]
        assert api.post("/query", json={"sql": "SELECT message FROM logs"}).json()["rows"] == [["waits"]]
