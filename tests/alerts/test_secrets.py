"""Secrets by reference: env, file and AWS Secrets Manager (a real moto server), resolved when used,
and never shown: not in errors, reprs, the deliveries API or /metrics."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import boto3
import pytest

from loglake.alerts.db import open_alerts_db
from loglake.alerts.routing import RoutingFile
from loglake.alerts.secrets import SecretError, SecretRef, Secrets
from loglake.api.app import LoglakeApp
from loglake.config import Settings
from tests.alerts.conftest import wait_idle, write_alerting
from tests.alerts.receivers import Answer, insert_alert
from tests.conftest import asgi_client, key_for


def test_env_and_file_references_resolve_when_used(tmp_path, monkeypatch):
    secrets = Secrets()
    monkeypatch.setenv("HOOK_SECRET", "from-env")
    (tmp_path / "secret").write_text("from-file\n")
    assert secrets.value(SecretRef(env="HOOK_SECRET")) == "from-env"
    assert secrets.value(SecretRef(file=str(tmp_path / "secret"))) == "from-file"
    (tmp_path / "secret").write_text("rotated\n")
    assert secrets.value(SecretRef(file=str(tmp_path / "secret"))) == "rotated"
    assert secrets.value("plain text setting") == "plain text setting"


def test_a_reference_that_does_not_resolve_names_the_reference(tmp_path, monkeypatch):
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    with pytest.raises(
        SecretError,
        match=r"secret \{env: NOT_SET_ANYWHERE\} is not set: set NOT_SET_ANYWHERE in the server.s environment and"
        r" restart the server",
    ):
        Secrets().value(SecretRef(env="NOT_SET_ANYWHERE"))
    with pytest.raises(SecretError, match=r"secret \{file: .*missing\} cannot be read"):
        Secrets().value(SecretRef(file=str(tmp_path / "missing")))


@pytest.fixture
def secretsmanager(moto_endpoint, monkeypatch):
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)
    return lambda: boto3.client("secretsmanager", endpoint_url=moto_endpoint, region_name="eu-west-1")


def test_secrets_manager_references_are_read_with_boto3_and_kept_a_few_minutes(secretsmanager):
    client = secretsmanager()
    arn = client.create_secret(Name="loglake/test/pd-key", SecretString="pd-routing-key")["ARN"]
    now = [0.0]
    secrets = Secrets(secretsmanager_client=secretsmanager, clock=lambda: now[0])
    assert secrets.value(SecretRef(secretsmanager="loglake/test/pd-key")) == "pd-routing-key"
    assert secrets.value(SecretRef(secretsmanager=arn)) == "pd-routing-key"
    client.put_secret_value(SecretId=arn, SecretString="rotated-key")
    assert secrets.value(SecretRef(secretsmanager=arn)) == "pd-routing-key"
    now[0] = 301.0
    assert secrets.value(SecretRef(secretsmanager=arn)) == "rotated-key"
    with pytest.raises(SecretError, match=r"\{secretsmanager: loglake/none\} could not be read .*ResourceNotFound"):
        secrets.value(SecretRef(secretsmanager="loglake/none"))


def test_boto3_is_not_loaded_by_a_file_that_names_secrets_manager(tmp_path):
    write_alerting(tmp_path, "destinations: {p: {type: pagerduty, routing_key: {secretsmanager: pd}}}\n")
    script = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from loglake.alerts.routing import RoutingFile
        assert RoutingFile(Path({str(tmp_path)!r})).current() is not None
        print(sorted(m for m in ("boto3", "botocore", "httpx") if m in sys.modules))
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == "[]"


async def test_secret_values_never_reach_errors_reprs_the_api_or_metrics(data_dir, rules_dir, receiver, monkeypatch):
    url_token = "T0K3N-in-the-url-7f3a"
    monkeypatch.setenv("HOOK_URL", f"{receiver.url}/hooks/{url_token}")
    monkeypatch.setenv("HOOK_SECRET", "whsec-TOPSECRET-value")
    # A receiver that echoes what it got, as some do in their error bodies.
    receiver.answer_for = lambda r: Answer(500, body=f"bad {r.path} {r.headers['x-loglake-signature']}".encode())
    write_alerting(
        rules_dir,
        """
        destinations: {hook: {type: webhook, url: {env: HOOK_URL}, secret: {env: HOOK_SECRET}, attempts: 1}}
        routes: [{to: [hook]}]
        """,
    )
    app = LoglakeApp.from_settings(Settings(data_dir=data_dir, rules_dir=str(rules_dir), access_log="off"))
    try:
        delivery = app.runtime.delivery
        assert delivery is not None
        conn = open_alerts_db(data_dir)
        insert_alert(conn)
        conn.close()
        delivery.step()
        wait_idle(delivery)
        async with asgi_client(app, key_for(app, "read")) as client:
            answer = (await client.get("/alerts/deliveries")).text
            metrics = (await client.get("/metrics")).text
        (request,) = receiver.requests
        signature = request.headers["x-loglake-signature"]
        (row,) = delivery.outbox.page()
        assert row.state == "dead"
        assert row.last_error == f"HTTP 500: bad [secret] {signature}"  # the URL's path is its credential
        shown = " ".join([answer, metrics, repr(RoutingFile(rules_dir).current()), row.last_error or ""])
        for secret in (url_token, "whsec-TOPSECRET-value"):
            assert secret not in shown
    finally:
        app.close()


def test_a_token_in_a_urls_query_is_hidden_when_a_receiver_echoes_it_alone(make_delivery, alerts_db, receiver, caplog):
    # Azure's `code=`, Teams Workflows' `sig=`, a webhook's `token=`: the credential is one value of the query,
    # and a receiver's refusal quotes that value, not the whole query.
    token, signature = "T0K3N-in-the-query-9c1d", "sig/with+and=="
    receiver.default = Answer(401, body=f"token {token} unknown; sig {signature} wrong".encode())
    delivery = make_delivery(
        f"""
        destinations:
          hook: {{type: webhook, url: "{receiver.url}/hook?api-version=1&token={token}&sig=sig%2Fwith%2Band%3D%3D"}}
        routes: [{{to: [hook]}}]
        """
    )
    insert_alert(alerts_db)
    delivery.step()
    wait_idle(delivery)
    (row,) = delivery.outbox.page()
    assert row.last_error == "HTTP 401: token [secret] unknown; sig [secret] wrong"
    assert token not in caplog.text and signature not in caplog.text
