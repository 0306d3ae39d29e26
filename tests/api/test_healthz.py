"""GET /healthz: anyone may ask whether the server is healthy; only read keys see why not."""

from __future__ import annotations

from dataclasses import replace

from loglake.api.app import LoglakeApp
from loglake.config import Settings
from tests.conftest import asgi_client, key_for


async def test_anonymous_callers_get_a_status_and_a_short_reason_not_server_paths(settings: Settings) -> None:
    app = LoglakeApp.from_settings(replace(settings, max_store_mb=1))
    try:
        async with asgi_client(app, key_for(app, "ingest")) as shipper:
            for _ in range(20):  # fill the 1 MB store until it refuses writes
                if (await shipper.post("/logs", json=[{"message": "z" * 200_000}] * 4)).status_code == 503:
                    break
            assert app.storage_error is not None
        data_dir = str(settings.data_dir.resolve())

        async with asgi_client(app) as anonymous:
            response = await anonymous.get("/healthz")
        assert response.status_code == 503
        assert response.json() == {"status": "degraded", "reason": "storage cannot accept writes"}

        for key in ("llk_wrong", key_for(app, "ingest")):  # credentials that do not allow reading: the same
            async with asgi_client(app, key) as caller:
                response = await caller.get("/healthz")
            assert response.status_code == 503 and data_dir not in response.text
            assert set(response.json()) == {"status", "reason"}

        async with asgi_client(app, key_for(app, "read")) as reader:
            response = await reader.get("/healthz")
        assert response.status_code == 503
        detail = response.json()
        assert detail["status"] == "degraded" and detail["store"]["writable"] is False
        assert data_dir in detail["store"]["error"] and "lake" in detail
    finally:
        app.close()


async def test_a_healthy_server_says_ok_to_anyone(app: LoglakeApp) -> None:
    async with asgi_client(app) as anonymous:
        response = await anonymous.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok", "reason": None}
    async with asgi_client(app, key_for(app, "read")) as reader:
        detail = (await reader.get("/healthz")).json()
    assert detail["status"] == "ok" and detail["store"] == {"writable": True, "error": None}


async def test_without_auth_every_caller_sees_the_details(settings: Settings) -> None:
    """--no-auth (loopback only) makes every caller an admin, so /healthz shows everything."""
    app = LoglakeApp.from_settings(replace(settings, auth=False))
    try:
        async with asgi_client(app) as anyone:
            assert (await anyone.get("/healthz")).json()["store"] == {"writable": True, "error": None}
    finally:
        app.close()


async def test_rule_files_with_problems_make_it_degraded(settings: Settings) -> None:
    """A new user's trial: a second file with a running rule's id stopped that rule (both refused, as designed),
    and /healthz still said ok."""
    rules = settings.data_dir / "rules"
    rules.mkdir(parents=True)
    rule = "title: T\nid: {id}\nlevel: low\nlogsource: {{product: loglake, service: app_logs}}\n"
    rule += "detection: {{sel: {{severity: error}}, condition: sel}}\n"
    (rules / "a.yml").write_text(rule.format(id="aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"))
    app = LoglakeApp.from_settings(settings)
    try:
        assert app.runtime.rules is not None and app.runtime.rules.folder.reload()
        async with asgi_client(app) as anonymous:
            assert (await anonymous.get("/healthz")).json() == {"status": "ok", "reason": None}
            (rules / "b.yml").write_text(rule.format(id="aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"))
            assert app.runtime.rules.folder.reload()
            answer = await anonymous.get("/healthz")
        assert answer.status_code == 200  # (the server takes logs)
        assert answer.json() == {
            "status": "degraded",
            "reason": "2 problem(s) in the rule files or alerting.yml: what they hold does not run",
        }
    finally:
        app.close()
