"""A real `loglake serve` answering before it has read a body (413, 401): ordinary Python clients, which
send the whole body before they read the answer, must get the answer and its JSON, not a reset."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from urllib.parse import urlsplit

import pytest

from tests.conftest import ServerProcess

pytestmark = pytest.mark.e2e

MAX_BODY = 10 * 1024 * 1024  # the server's default --max-body-bytes
ELEVEN_MIB = b'{"message": "' + b"x" * (11 * 1024 * 1024) + b'"}'

Post = Callable[[str, bytes, dict[str, str]], tuple[int, bytes]]


def post_with_urllib(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    """urllib sends `Connection: close`, so the server closes right after answering."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=body, headers=headers), timeout=60) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def post_with_requests(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    """requests if installed, else http.client: a client that keeps the connection alive."""
    try:
        import requests
    except ImportError:
        import http.client

        parts = urlsplit(url)
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
        try:
            connection.request("POST", parts.path, body=body, headers=headers)
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()
    response = requests.post(url, data=body, headers=headers, timeout=60)
    return response.status_code, response.content


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> ServerProcess:
    from tests.conftest import free_port

    tmp = tmp_path_factory.mktemp("early")
    running = ServerProcess(tmp / "data", free_port(), tmp / "server.log").start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def admin_key(server: ServerProcess) -> str:
    return server.admin_key()


@pytest.mark.parametrize("post", [post_with_urllib, post_with_requests])
def test_an_11_mib_body_gets_the_413_and_its_json(server: ServerProcess, admin_key: str, post: Post) -> None:
    headers = {"Authorization": f"Bearer {admin_key}", "Content-Type": "application/json"}
    status, body = post(f"{server.url}/logs", ELEVEN_MIB, headers)
    assert status == 413
    error = json.loads(body)["error"]
    assert error["code"] == "payload_too_large" and str(MAX_BODY) in error["message"]


@pytest.mark.parametrize("post", [post_with_urllib, post_with_requests])
def test_a_bad_key_with_a_large_body_gets_the_401(server: ServerProcess, post: Post) -> None:
    """Refused before the body is read, like the 413: the same reset unless the body is taken off the line."""
    headers = {"Authorization": "Bearer llk_wrong", "Content-Type": "application/json"}
    status, body = post(f"{server.url}/logs", b'{"message": "' + b"y" * (9 * 1024 * 1024) + b'"}', headers)
    assert status == 401 and json.loads(body)["error"]["code"] == "unauthorized"


def test_the_connection_stays_usable_after_an_early_answer(server: ServerProcess, admin_key: str) -> None:
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        headers = {"Authorization": f"Bearer {admin_key}", "Content-Type": "application/json"}
        connection.request("POST", "/logs", body=ELEVEN_MIB, headers=headers)
        first = connection.getresponse()
        assert first.status == 413 and json.loads(first.read())["error"]["code"] == "payload_too_large"
        connection.request("POST", "/logs", body=b'{"message": "after the 413"}', headers=headers)
        second = connection.getresponse()
        assert second.status == 201, second.read()
    finally:
        connection.close()
