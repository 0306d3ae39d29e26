"""The admin API for keys: bodies checked like every other body, conflicts as 409, writes off the event loop,
and the same rate limits as the CLI shows."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import httpx
import pytest

from loglake.api.app import LoglakeApp
from loglake.keys import KeyStore
from tests.conftest import asgi_client, run_cli


@pytest.mark.parametrize(
    ("spec", "named"),
    [
        ({"name": "s", "sigv4": "false"}, "sigv4: must be a boolean, not a string"),
        ({"name": "s", "sigv4": 0}, "sigv4: must be a boolean, not an integer"),
        ({"name": "s", "rate_limit": "50"}, "rate_limit: must be a number or null, not a string"),
        ({"name": "s", "rate_limit": True}, "rate_limit: must be a number or null, not a boolean"),
        ({"name": "s", "rate_burst": 2.5}, "rate_burst: must be an integer or null, not a number"),
        ({"name": "s", "rate_burst": 0}, "rate_burst: must be an integer >= 1"),
        # (too large for the key store: answered 500)
        ({"name": "s", "rate_limit": 1e308}, "rate_limit: must be a number <= 1000000000"),
        ({"name": "s", "rate_limit": 5e-324}, "rate_limit: must be a number >= 1e-06"),  # (then 500s: a trial)
        ({"name": "s", "rate_burst": 99999999999999999999}, "rate_burst: must be an integer <= 1000000000"),
        ({"name": "s", "scopes": [["read"]]}, "scopes[0]: must be a string, not an array"),
        ({"name": "s", "scopes": "read"}, "scopes: must be an array, not a string"),  # as rate_limit's "50" is
        ({"name": "s", "scopes": []}, "scopes: must be an array of length >= 1"),
        (
            {"name": "s", "scopes": ["ingest", "nope"]},
            "scopes must be a list of some of ingest, read, alerts, admin: 'nope' is not one",
        ),
        (
            {"name": "s", "scopes": ["raed"]},
            "did you mean 'read'? scopes must be a list of some of ingest, read, alerts, admin: 'raed' is not one",
        ),
        ({"name": ["s"]}, "name: must be a string, not an array"),
        ({"scopes": ["read"]}, "has no `name`, which is required"),
        ({"name": "s", "owner": "me"}, "has an unknown field `owner`"),
    ],
)
async def test_a_key_spec_of_the_wrong_types_is_400_naming_the_field(
    client: httpx.AsyncClient, spec: dict, named: str
) -> None:
    response = await client.post("/admin/keys", json=spec)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_key_spec" and named in error["message"]
    assert "s" not in {k["name"] for k in (await client.get("/admin/keys")).json()["keys"]}


@pytest.mark.parametrize("name", [".", ".."])
async def test_a_name_that_urls_read_as_a_path_step_is_refused(client: httpx.AsyncClient, name: str) -> None:
    """DELETE /admin/keys/.. is DELETE /admin/ once a browser (the Status page's Revoke) or curl has resolved the
    URL's dot segments, %2E%2E too: a key so named was made, and could be revoked by the CLI alone."""
    response = await client.post("/admin/keys", json={"name": name, "scopes": ["read"]})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_key_spec" and "other than '.' and '..'" in error["message"]
    assert (await client.post("/admin/keys", json={"name": "...", "scopes": ["read"]})).status_code == 201
    assert (await client.delete("/admin/keys/...")).status_code == 200


async def test_sigv4_false_makes_a_bearer_key(client: httpx.AsyncClient) -> None:
    bearer = await client.post("/admin/keys", json={"name": "plain", "scopes": ["read"], "sigv4": False})
    assert bearer.status_code == 201 and bearer.json()["kind"] == "bearer" and "access_key_id" not in bearer.json()
    signer = await client.post("/admin/keys", json={"name": "signer", "scopes": ["ingest"], "sigv4": True})
    assert signer.status_code == 201 and signer.json()["kind"] == "sigv4"
    assert not signer.json()["secret"].startswith("-")


async def test_a_name_in_use_is_409_and_an_unknown_name_404(client: httpx.AsyncClient) -> None:
    assert (await client.post("/admin/keys", json={"name": "ci", "scopes": ["ingest"]})).status_code == 201
    again = await client.post("/admin/keys", json={"name": "ci", "scopes": ["read"]})
    assert again.status_code == 409 and again.json()["error"]["code"] == "key_exists"
    assert "revoke it first or pick another name" in again.json()["error"]["message"]
    missing = await client.delete("/admin/keys/nobody")
    assert missing.status_code == 404
    assert missing.json()["error"]["message"] == "no active key named 'nobody'; GET /admin/keys lists them"


async def test_the_api_and_the_cli_show_the_same_rate_limits(client: httpx.AsyncClient, app: LoglakeApp) -> None:
    """`--rate-limit 50` alone means a burst of 50: GET /admin/keys says so, as `loglake keys list` does."""
    for spec in (
        {"name": "own-rate", "scopes": ["read"], "rate_limit": 50},
        {"name": "own-both", "scopes": ["read"], "rate_limit": 2.5, "rate_burst": 7},
        {"name": "own-burst", "scopes": ["read"], "rate_burst": 9},
        {"name": "defaults", "scopes": ["read"]},
    ):
        assert (await client.post("/admin/keys", json=spec)).status_code == 201
    listed = {k["name"]: (k["rate_limit"], k["rate_burst"]) for k in (await client.get("/admin/keys")).json()["keys"]}
    assert listed["own-rate"] == (50, 50)
    assert listed["own-both"] == (2.5, 7)
    assert listed["own-burst"] == (None, 9)
    assert listed["defaults"] == (None, None)

    cli = run_cli("keys", "list", "--json", "--data-dir", str(app.settings.data_dir))
    from_cli = {k["name"]: (k["rate_limit"], k["rate_burst"]) for k in map(json.loads, cli.output.splitlines())}
    assert {name: from_cli[name] for name in listed} == listed
    table = run_cli("keys", "list", "--data-dir", str(app.settings.data_dir)).output
    rows = {line.split()[0]: line for line in table.splitlines()[1:]}
    assert "50/s, burst 50" in rows["own-rate"] and "2.5/s, burst 7" in rows["own-both"]
    assert "server rate, burst 9" in rows["own-burst"] and "server default" in rows["defaults"]


async def test_a_key_with_its_own_rate_is_limited_at_that_rate_at_once(app: LoglakeApp) -> None:
    """The stored burst is the one the limiter applies: 2/s means two requests, then 429."""
    secret = app.keystore.create("slow", frozenset({"read"}), rate_limit=2).secret
    async with asgi_client(app, secret) as slow:
        statuses = [(await slow.get("/logs/recent")).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]


def _hold_the_keys_write_lock(data_dir: Path) -> sqlite3.Connection:
    """What another process writing keys.db at that moment does (e.g. `loglake keys create`)."""
    holder = sqlite3.connect(data_dir / "keys.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    return holder


@pytest.mark.parametrize("change", ["create", "revoke"])
async def test_key_writes_do_not_stop_the_event_loop(client: httpx.AsyncClient, app: LoglakeApp, change: str) -> None:
    """A key write waits for the keys database (and fsyncs); meanwhile the server answers other requests."""
    app.keystore.create("doomed", frozenset({"read"}))
    holder = _hold_the_keys_write_lock(app.settings.data_dir)
    try:
        if change == "create":
            write = asyncio.create_task(client.post("/admin/keys", json={"name": "while-locked", "scopes": ["read"]}))
        else:
            write = asyncio.create_task(client.delete("/admin/keys/doomed"))
        await asyncio.sleep(0.1)  # lets the write start: it waits for the lock (in a thread, or blocking the loop)
        health = await client.get("/healthz")
        assert health.status_code == 200
        assert not write.done(), "the key write finished while another process held the database's write lock"
    finally:
        holder.execute("COMMIT")
        holder.close()
    response = await write
    assert response.status_code == (201 if change == "create" else 200), response.text


async def test_listing_keys_takes_only_all_true_or_false(client: httpx.AsyncClient) -> None:
    await client.post("/admin/keys", json={"name": "gone", "scopes": ["read"]})
    await client.delete("/admin/keys/gone")
    for value, shows_revoked in (("true", True), ("1", True), ("false", False), ("0", False)):
        names = {k["name"] for k in (await client.get("/admin/keys", params={"all": value})).json()["keys"]}
        assert ("gone" in names) is shows_revoked
    for params, says in (({"all": "yes"}, "all: must be true"), ({"include": "revoked"}, "known: all")):
        response = await client.get("/admin/keys", params=params)  # once listed active keys only, silently
        assert response.status_code == 400 and says in response.json()["error"]["message"]


@pytest.mark.parametrize("change", ["create", "revoke"])
async def test_a_key_write_that_waits_past_the_busy_timeout_is_503_then_works(app: LoglakeApp, change: str) -> None:
    app.keystore.create("doomed", frozenset({"read"}))
    # The server's key store with a busy timeout of 0.1 s instead of 10 s, so the test need not wait.
    app.runtime.keystore = KeyStore(app.settings.data_dir, busy_timeout_s=0.1)
    admin = app.keystore.create("admin", frozenset({"admin"})).secret
    async with asgi_client(app, admin) as client:

        async def write() -> httpx.Response:
            if change == "create":
                return await client.post("/admin/keys", json={"name": "while-locked", "scopes": ["read"]})
            return await client.delete("/admin/keys/doomed")

        holder = _hold_the_keys_write_lock(app.settings.data_dir)
        try:
            busy = await write()
        finally:
            holder.execute("COMMIT")
            holder.close()
        assert busy.status_code == 503 and busy.headers["retry-after"] == "1", busy.text
        assert busy.json()["error"]["message"] == (
            "keys.db stayed locked by another process's write for 0.1 s; retry shortly"
        )
        assert (await write()).status_code == (201 if change == "create" else 200)
