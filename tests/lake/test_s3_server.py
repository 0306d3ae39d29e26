"""A server whose lake is an S3 bucket (the real SeaweedFS server): flushes land there, SQL reads them."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from loglake.times import DAY_MS
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
        assert set(keys) - {part} <= {f"{prefix}/type=app_logs/_manifest.json"}  # for engines outside loglake
        result = api.post("/query", json={"sql": "SELECT count(*), min(message), max(date) FROM logs"}).json()
        assert result["rows"][0][:2] == [100, "to the bucket 0"]
        assert api.get(f"/logs/{ids[42]}").json()["message"] == "to the bucket 42"
        # A lake file gone from the bucket (a store that fails, or a hand that removed it): the storage's fault,
        # 503 to retry, as for a local lake's file; it was a 400 query_failed that blamed the SQL.
        client.delete_object(Bucket=bucket, Key=part)
        gone = api.post("/query", json={"sql": "SELECT count(*) FROM logs"})
        assert gone.status_code == 503, gone.text
        assert gone.json()["error"]["message"].startswith("a lake file could not be read from storage")
