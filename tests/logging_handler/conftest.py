"""One real `loglake serve` for the logging handler's tests (each test logs under a service of its own),
its admin key, and handlers sending to it that are closed after each test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from loglake.logging import LoglakeHandler
from tests.conftest import ServerProcess, free_port
from tests.logging_handler.support import FAST


@pytest.fixture(scope="package")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    folder = tmp_path_factory.mktemp("handler")
    server = ServerProcess(folder / "data", free_port(), folder / "server.log")
    try:
        server.start(timeout=60)
    except BaseException:
        server.log.close()
        raise
    yield server
    server.stop()


@pytest.fixture(scope="package")
def key(server: ServerProcess) -> str:
    return server.admin_key()


@pytest.fixture
def handlers() -> Iterator[list[LoglakeHandler]]:
    made: list[LoglakeHandler] = []
    yield made
    for handler in made:
        handler.close()


@pytest.fixture
def make_handler(server: ServerProcess, key: str, handlers: list) -> Callable[..., LoglakeHandler]:
    def make(**options: Any) -> LoglakeHandler:
        options = {"url": server.url, "api_key": key, "backoff": FAST} | options
        handlers.append(LoglakeHandler(**options))
        return handlers[-1]

    return make
