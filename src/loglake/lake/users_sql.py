"""Where a user's SQL runs (POST /query, the answers `ask` runs): on the server's own engine when no value it
makes can grow past what it reads (sql_growth.py: counts, filters, groups, substrings, dates, its memory what
DuckDB's limit bounds), else in a query worker whose memory the server watches (query_workers.py). Most queries
take the first way, without a worker's start or the memory of its process."""

from __future__ import annotations

from typing import Any

from loglake.lake.query import QueryEngine
from loglake.lake.query_answers import QueryResult
from loglake.lake.query_workers import QueryWorkers
from loglake.lake.sql_growth import values_stay_small
from loglake.lake.sql_guard import checked_select, nested_too_deep


class UsersSql:
    def __init__(self, engine: QueryEngine, workers: QueryWorkers) -> None:
        self.engine = engine
        self.workers = workers

    def query(self, sql: str, **options: Any) -> QueryResult:
        """As QueryEngine.query (extensions.SqlEngine), on the engine or in a worker. The sandbox checks it
        first, once: SQL it refuses starts no worker."""
        checked = checked_select(sql, self.engine.table_names)
        try:
            small = values_stay_small(checked[0])
        except RecursionError:  # (nested deeper than the sandbox's own walk met)
            raise nested_too_deep() from None
        if small:
            return self.engine.query(sql, checked=checked, **options)
        return self.workers.query(sql, **options)

    def close(self) -> None:
        self.workers.close()
