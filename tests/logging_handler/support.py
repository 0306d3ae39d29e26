"""What the logging handler's tests share: reading back what a service stored, and a logger of its own."""

from __future__ import annotations

import logging

import httpx

from loglake.retry import Backoff
from tests.conftest import ServerProcess

FAST = Backoff(first=0.01, cap=0.05)


def stored(server: ServerProcess, key: str, service: str) -> list[dict]:
    answer = httpx.get(
        server.url + "/logs/recent",
        params={"service": service, "limit": "1000"},
        headers={"authorization": f"Bearer {key}"},
        timeout=10,
    )
    answer.raise_for_status()
    return answer.json()["logs"][::-1]  # oldest first


def a_logger(name: str, handler: logging.Handler) -> logging.Logger:
    logger = logging.getLogger(name)
    logger.handlers[:] = [handler]
    logger.setLevel(1)
    logger.propagate = False
    return logger
