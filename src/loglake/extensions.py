"""loglake's extension points, named in one place.

Each is a small interface with the implementations loglake ships and the contract tests every
implementation must pass. A new backend implements the interface, passes the same contract suite,
and is handed to `runtime.Runtime` (or, at the HTTP edge, to the app) instead of the default.

- hot store: `store.base.HotStore`. Implementations: `store.sqlite.SQLiteHotStore` (the default),
  `store.dynamodb.DynamoDBHotStore`. Contract: `tests/store/contract.py`.
- object store: `lake.objectstore.ObjectStore`. Implementations: `LocalObjectStore` (the default),
  `S3ObjectStore`. Contract: `tests/lake/test_objectstore.py` (a folder and a real S3 server).
- query engine: `SqlEngine` below. Implementations: `lake.query.QueryEngine` (DuckDB, the default),
  `aws.athena.AthenaQueryEngine`. Tests: `tests/lake/test_query.py`, `tests/aws/test_athena.py`.
- record search: `service.RecordSearch`. Implementations: `lake.reads.EngineSearch` (DuckDB over the
  hot store and the lake), `aws.athena_search.AthenaSearch`. Contract: `tests/aws/test_athena_search.py`
  (every answer equals the local search's).
- authenticator: `api.auth.Authenticator`, at the HTTP edge since it reads requests: Bearer API keys
  and SigV4 over `key_ring.KeyRing`. Tests: `tests/api/test_auth_sigv4.py`, `tests/api/test_sigv4.py`.
  On AWS the web UI's function has `aws.ui_auth.SessionCookieAuth` (Cognito sign-ins' session cookies
  only). Tests: `tests/aws/test_ui_sign_in.py`.
"""

from __future__ import annotations

from typing import Protocol

from loglake.lake.objectstore import ObjectStore
from loglake.lake.query_answers import QueryResult
from loglake.service import RecordSearch
from loglake.store.base import HotStore

__all__ = ["HotStore", "ObjectStore", "RecordSearch", "SqlEngine"]


class SqlEngine(Protocol):
    """Runs one user SELECT through the SQL sandbox (lake.sql_guard) within the engine's limits."""

    def query(
        self, sql: str, *, limit: int | None = None, timeout_seconds: float | None = None, explain: bool = False
    ) -> QueryResult:
        """At most `limit` rows (the engine's cap wins), within `timeout_seconds` (the engine's wins);
        QueryError for SQL the sandbox refuses or the engine rejects, QueryBusy when it cannot run now."""
        ...
