"""Splunk's documented HEC requests, sent with curl as the documentation writes them, to a real `loglake serve`."""

from __future__ import annotations

import json
import subprocess

import httpx
import pytest

pytestmark = pytest.mark.e2e


def test_the_documented_curl_requests_are_stored(server_factory: callable, admin_key_of: callable) -> None:
    server = server_factory()
    admin = {"authorization": f"Bearer {admin_key_of(server)}"}
    key = httpx.post(server.url + "/admin/keys", json={"name": "hec", "scopes": ["ingest"]}, headers=admin).json()
    documented = [
        ("/services/collector", '{"event": "Hello, world!", "sourcetype": "manual"}'),
        (
            "/services/collector/event",
            '{"event": "Pony 1 has left the barn"}{"event": "Pony 2 has left the barn"}'
            '{"event": "Pony 3 has left the barn", "nested": {"key1": "value1"}}',
        ),
        ("/services/collector/raw?channel=FE0ECFAD-13D5-401B-847D-77833BD77131", "1, 2, 3... Hello, world!"),
    ]
    for path, data in documented:
        answer = subprocess.run(
            ["curl", "-s", server.url + path, "-H", f"Authorization: Splunk {key['secret']}", "-d", data],
            capture_output=True,
            check=True,
        ).stdout
        assert json.loads(answer) == {"text": "Success", "code": 0}
    refused = subprocess.run(
        ["curl", "-s", server.url + "/services/collector", "-H", "Authorization: Splunk wrong", "-d", "{}"],
        capture_output=True,
        check=True,
    ).stdout
    assert json.loads(refused)["code"] == 4
    logs = httpx.get(server.url + "/logs/recent", params={"since": "0"}, headers=admin).json()["logs"]
    assert sorted(log["message"] for log in logs) == [
        "1, 2, 3... Hello, world!",
        "Hello, world!",
        "Pony 1 has left the barn",
        "Pony 2 has left the barn",
        "Pony 3 has left the barn",
    ]
