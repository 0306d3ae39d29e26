"""Where a user's SQL runs (POST /query, the answers `ask` runs): on the server's own engine when no value it
makes can grow past what it reads (sql_growth.py: counts, filters, groups, substrings, dates, its memory what
DuckDB's limit bounds), else in a query worker whose memory the server watches (query_workers.py). Most queries
take the first way, without a worker's start or the memory of its process."""

from __future__ import annotations

from loglake.lake.query import QueryEngine
from loglake.lake.query_answers import QueryResult
from loglake.lake.query_workers import QueryWorkers
from loglake.lake.sql_growth import values_stay_small
from loglake.lake.sql_guard import QueryError, parse_tree
from loglake.lake.stop import Stop


class UsersSql:
    def __init__(self, engine: QueryEngine, workers: QueryWorkers) -> None:
        self.engine = engine
        self.workers = workers

    def query(
        self,
        sql: str,
        *,
        limit: int | None = None,
        timeout_seconds: float | None = None,
        explain: bool = False,
        stop: Stop | None = None,
    ) -> QueryResult:
        runs = self.engine if _stays_small(sql) else self.workers
        return runs.query(sql, limit=limit, timeout_seconds=timeout_seconds, explain=explain, stop=stop)

    def close(self) -> None:
        self.workers.close()


def _stays_small(sql: str) -> bool:
    """Whether the query's values stay small; a query that does not parse is the engine's to refuse, saying why."""
    try:
        return values_stay_small(parse_tree(sql))
    except (QueryError, RecursionError):
        return True
