"""The AWS deployment's lake has no catalog (its functions list the bucket, and its compaction deletes the parts it
merges): its hourly compaction claims the bucket, and a data dir given it is refused, rather than cataloguing files
that the next compaction deletes from under it."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest

from loglake.aws import handlers
from loglake.config import ConfigError, Settings
from loglake.lake.claim import CLAIM_KEY
from loglake.lake.lake import object_store
from tests.aws.test_retention import CONTEXT, scheduled_event
from tests.aws.test_stream_flush import lake_bucket  # noqa: F401 (fixture)


def _data_dir_on(path: Path, bucket: str, moto_endpoint: str) -> Settings:
    path.mkdir()
    return Settings(data_dir=path, lake_bucket=bucket, lake_endpoint=moto_endpoint, lake_region="eu-west-1")


def test_the_deployment_claims_its_lake_and_a_data_dir_given_it_is_refused(
    lake_bucket: str,  # noqa: F811
    moto_endpoint: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
) -> None:
    handlers.compact(scheduled_event(), CONTEXT)
    claim = json.loads(boto3.client("s3").get_object(Bucket=lake_bucket, Key=CLAIM_KEY)["Body"].read())
    assert claim["deployment"] == "aws" and claim["bucket"] == lake_bucket
    assert "lake_claimed" not in capsys.readouterr().out  # (nobody had it: nothing to say)

    with pytest.raises(ConfigError) as refused:
        object_store(_data_dir_on(tmp_path / "laptop", lake_bucket, moto_endpoint))
    said = str(refused.value)
    assert f"the lake s3://{lake_bucket}" in said and "is the AWS deployment's" in said
    assert "--lake-prefix" in said  # what to do
    handlers.compact(scheduled_event(), CONTEXT)  # (its own claim: kept as it is)
    assert json.loads(boto3.client("s3").get_object(Bucket=lake_bucket, Key=CLAIM_KEY)["Body"].read()) == claim


def test_a_data_dir_that_claimed_the_deployment_s_bucket_first_loses_it_with_a_warning(
    lake_bucket: str,  # noqa: F811
    moto_endpoint: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
) -> None:
    laptop = _data_dir_on(tmp_path / "laptop", lake_bucket, moto_endpoint)
    object_store(laptop)  # claimed before the deployment's first compaction
    handlers.compact(scheduled_event(), CONTEXT)
    warned = [json.loads(line) for line in capsys.readouterr().out.splitlines() if "lake_claimed" in line]
    assert warned[0]["level"] == "WARNING"
    assert warned[0]["replaced_claim"]["data_dir"] == str(laptop.data_dir.resolve())
    with pytest.raises(ConfigError, match="is the AWS deployment's"):
        object_store(laptop)
