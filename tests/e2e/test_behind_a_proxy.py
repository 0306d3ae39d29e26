"""A real `loglake serve` behind a proxy that ends TLS, as the README says: its X-Forwarded-Proto and
X-Forwarded-For are taken from a proxy on the server's own machine, and from one elsewhere once
FORWARDED_ALLOW_IPS names it; from anyone else they are not (a client could claim TLS, or another address)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.conftest import ServerProcess, free_port

pytestmark = pytest.mark.e2e

FORWARDED = {"x-forwarded-proto": "https", "x-forwarded-for": "203.0.113.7"}


def signed_in_through_a_proxy(folder: Path, env: dict[str, str]) -> tuple[str, str]:
    """The session cookie a sign-in through a proxy got, and the client the access log named for it."""
    server = ServerProcess(folder / "data", free_port(), folder / "server.log", extra_env=env).start()
    try:
        key = server.admin_key()
        answer = httpx.post(server.url + "/session", json={"key": key}, headers=FORWARDED, timeout=10)
        assert answer.status_code == 200, answer.text
    finally:
        server.stop()
    lines = [json.loads(line) for line in server.log_path.read_text().splitlines() if line.startswith("{")]
    (request,) = [line for line in lines if line.get("event") == "request" and line.get("route") == "/session"]
    return answer.headers["set-cookie"], request["client"]


def test_a_proxy_on_the_same_machine_is_taken_at_its_word(tmp_path: Path) -> None:
    cookie, client = signed_in_through_a_proxy(tmp_path, {})
    assert cookie.endswith("; Secure") and client == "203.0.113.7"


def test_a_proxy_elsewhere_is_taken_once_forwarded_allow_ips_names_it_and_no_one_else(tmp_path: Path) -> None:
    """(Here the proxy, 127.0.0.1, is not the address named: what a client elsewhere would be.)"""
    cookie, client = signed_in_through_a_proxy(tmp_path, {"FORWARDED_ALLOW_IPS": "192.0.2.10"})
    assert "Secure" not in cookie and client == "127.0.0.1"
