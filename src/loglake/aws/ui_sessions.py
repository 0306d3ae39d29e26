"""The web UI's sessions on AWS, in DynamoDB: every Lambda container sees the same ones.

Two kinds of item share one table, keyed by the SHA-256 of a secret the browser holds (so a copy of
the table signs nobody in): a session (`session#...`, the cookie's token) and a sign-in under way
(`login#...`, the OAuth `state`: the PKCE verifier, the nonce and where to go afterwards). Both carry
`expires_at` (epoch seconds), the table's TTL attribute; DynamoDB deletes expired items within days,
so reads check the time themselves.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import botocore.exceptions

from loglake.keys import ApiKey
from loglake.store.base import StoreUnavailable

TTL_ATTRIBUTE = "expires_at"
PARTITION_KEY = "pk"
_TOKEN_BYTES = 32


@dataclass(frozen=True, slots=True)
class UiSession:
    """A signed-in person: their Cognito user name and the scopes their groups gave at sign-in."""

    user: str
    scopes: frozenset[str]
    csrf_token: str
    created_at: float
    expires_at: float  # epoch seconds

    @property
    def key(self) -> ApiKey:
        """The session as the caller the routes authorize, rate-limit and name."""
        return ApiKey(name=self.user, kind="cognito", scopes=self.scopes, hint="", created_at=int(self.created_at))


@dataclass(frozen=True, slots=True)
class NewUiSession:
    token: str  # the cookie's value: shown to the browser once, stored only hashed
    session: UiSession


@dataclass(frozen=True, slots=True)
class SignInAttempt:
    """What /auth/login remembers for its callback (PKCE's verifier, the ID token's nonce)."""

    code_verifier: str
    nonce: str
    next_path: str


def _key(kind: str, secret: str) -> dict[str, Any]:
    return {PARTITION_KEY: {"S": f"{kind}#{hashlib.sha256(secret.encode()).hexdigest()}"}}


class DynamoDBSessions:
    def __init__(self, client: Any, table: str, clock: Callable[[], float]) -> None:
        self.client = client
        self.table = table
        self.clock = clock

    @staticmethod
    def create_table(client: Any, table: str) -> None:
        """The table as the CDK app defines it (aws/infra/ui.py), for tests; waits until active."""
        client.create_table(
            TableName=table,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": PARTITION_KEY, "AttributeType": "S"}],
            KeySchema=[{"AttributeName": PARTITION_KEY, "KeyType": "HASH"}],
        )
        client.get_waiter("table_exists").wait(TableName=table)
        client.update_time_to_live(
            TableName=table, TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE}
        )

    # -- sessions (the interface of sessions.SessionStore that the session routes use) -------------

    def create(self, user: str, scopes: frozenset[str], lifetime_seconds: float) -> NewUiSession:
        now = self.clock()
        token = secrets.token_urlsafe(_TOKEN_BYTES)
        expires_at = float(int(now + lifetime_seconds))  # whole seconds, as TTL attributes are
        session = UiSession(user, scopes, secrets.token_urlsafe(_TOKEN_BYTES), now, expires_at)
        item = _key("session", token) | {
            "user": {"S": user},
            "scopes": {"L": [{"S": s} for s in sorted(scopes)]},
            "csrf_token": {"S": session.csrf_token},
            "created_at": {"N": repr(now)},
            TTL_ATTRIBUTE: {"N": str(int(expires_at))},
        }
        self._call("put_item", TableName=self.table, Item=item)
        return NewUiSession(token, session)

    def find(self, token: str) -> UiSession | None:
        """The live session of a cookie's token; None when it is unknown, ended or expired."""
        item = self._call("get_item", TableName=self.table, Key=_key("session", token), ConsistentRead=True).get("Item")
        if item is None or float(item[TTL_ATTRIBUTE]["N"]) <= self.clock():
            return None
        return UiSession(
            item["user"]["S"],
            frozenset(s["S"] for s in item["scopes"]["L"]),
            item["csrf_token"]["S"],
            float(item["created_at"]["N"]),
            float(item[TTL_ATTRIBUTE]["N"]),
        )

    def end(self, token: str) -> None:
        self._call("delete_item", TableName=self.table, Key=_key("session", token))

    def close(self) -> None:
        """Nothing to release: the client is shared (for SessionStore's interface)."""

    # -- sign-ins under way -------------------------------------------------------------------------

    def remember_sign_in(self, state: str, attempt: SignInAttempt, lifetime_seconds: float) -> None:
        item = _key("login", state) | {
            "code_verifier": {"S": attempt.code_verifier},
            "nonce": {"S": attempt.nonce},
            "next_path": {"S": attempt.next_path},
            TTL_ATTRIBUTE: {"N": str(int(self.clock() + lifetime_seconds))},
        }
        self._call("put_item", TableName=self.table, Item=item)

    def take_sign_in(self, state: str) -> SignInAttempt | None:
        """The attempt of a `state`, forgotten as it is read: a callback is answered once, so a code and
        state seen twice (a replay, a reload of the callback) sign nobody in. None when unknown or old."""
        item = self._call("delete_item", TableName=self.table, Key=_key("login", state), ReturnValues="ALL_OLD").get(
            "Attributes"
        )
        if item is None or float(item[TTL_ATTRIBUTE]["N"]) <= self.clock():
            return None
        return SignInAttempt(item["code_verifier"]["S"], item["nonce"]["S"], item["next_path"]["S"])

    def _call(self, operation: str, **request: Any) -> dict[str, Any]:
        try:
            return getattr(self.client, operation)(**request)
        except botocore.exceptions.ClientError as e:
            code = e.response.get("Error", {}).get("Code", "")
            raise StoreUnavailable(f"the sessions table {self.table} cannot answer now ({code}); retry") from None
        except botocore.exceptions.BotoCoreError as e:
            raise StoreUnavailable(f"cannot reach DynamoDB for the sessions table: {e}") from None
