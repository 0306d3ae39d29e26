"""The Lambda handlers cache per container what they build from the environment; tests change it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from loglake.aws import handlers
from tests.ask.model_server import model_server  # noqa: F401  (Bedrock's stand-in, for the ask function)


@pytest.fixture(autouse=True)
def fresh_lambda_container() -> Iterator[None]:
    handlers.reset()
    yield
    handlers.reset()
