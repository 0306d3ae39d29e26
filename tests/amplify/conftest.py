"""Fixtures: the fake Amplify service, AWS profiles pointing at it, a hot store and a local lake."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from loglake.lake.objectstore import LocalObjectStore
from loglake.store.sqlite import SQLiteHotStore
from tests.amplify.server import FakeAmplify


@pytest.fixture
def amplify(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAmplify]:
    """The fake service, and the standard AWS files and endpoint override that lead boto3 to it."""
    config, credentials = tmp_path / "aws-config", tmp_path / "aws-credentials"
    profiles = ["HylmarJ", "JiHy__vsb__299"]
    config.write_text("".join(f"[profile {p}]\nregion = us-east-1\n" for p in profiles))
    credentials.write_text(
        "".join(
            f"[{p}]\naws_access_key_id = AKIDTEST{i}\naws_secret_access_key = secret{i}\n"
            for i, p in enumerate(profiles)
        )
    )
    for name in (
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    with FakeAmplify() as fake:
        monkeypatch.setenv("AWS_ENDPOINT_URL_AMPLIFY", fake.url)
        yield fake


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteHotStore]:
    s = SQLiteHotStore(tmp_path / "data" / "hot.db")
    yield s
    s.close()


@pytest.fixture
def lake(tmp_path: Path) -> LocalObjectStore:
    return LocalObjectStore(tmp_path / "data" / "lake")
