"""The SQL a rule runs: its query, limited to the window and turned into matches with their evidence.

Every rule's SQL is one SELECT, checked by the same sandbox as `POST /query`, that reads the tables
through WITH clauses of the same names, already limited to the window:

    WITH logs AS (SELECT * FROM logs WHERE "timestamp" >= $read_since AND "timestamp" < $until
                  AND "date" BETWEEN CAST($read_since AS DATE) AND CAST($until AS DATE)), ...

so a rule's own query cannot forget the lookback, and the time predicate reaches the Parquet scans
(files of other days are not even listed: the engine takes the window too). `$since` and `$until`
are the window; `$read_since` is where reading starts, earlier than `$since` by what a correlation
looks back from the window's first events (its timespan). A rule's query may use `$since` and
`$until` itself.

What a run reads back is the evidence: rows of the rule's query (events, or whatever a SQL rule
selects), at most `evidence` per group, with four columns added: `_loglake_count` (the group's
matching rows, or a correlation's value), `_loglake_rank` (1, 2, ... in time order),
`_loglake_first` and `_loglake_last` (the time span of the group's matches, when rows have a
`timestamp`), and, with a `timestamp` too, `_loglake_fresh`: the group's rows at or after
`$fresh_since`, the end of the rule's previous window, i.e. the rows no earlier run has read (a
lookback longer than the schedule reads records again; the alert counts only these once more), and
`_loglake_fresh_first`, the time of the first of them (where a new alert after a resolved one starts).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb

from loglake.lake.sql_guard import QueryError, check_select, rewrite_text_filters
from loglake.lake.tables import TABLES, LakeTable, sql_type
from loglake.lake.watchdog import QueryWatchdog
from loglake.rules.sources import BY_TABLE, quote_name

COUNT, RANK, FIRST, LAST = "_loglake_count", "_loglake_rank", "_loglake_first", "_loglake_last"
FRESH, FRESH_FIRST = "_loglake_fresh", "_loglake_fresh_first"
RESERVED_PREFIX = "_loglake_"
QUERY_PARAMETERS = ("since", "until")  # what a rule's own query may use; `read_since` is the views'


@dataclass(frozen=True)
class Plan:
    query: str  # the rule's own query: Sigma's conversion, or the SELECT of a SQL rule
    sql: str  # the SQL of a run (see the module's notes), as people read it
    executed: str  # the same with its text filters rewritten as the engine rewrites users' queries
    tables: tuple[LakeTable, ...]
    reach_ms: int  # how much earlier than the window the SQL reads
    group_fields: tuple[str, ...]  # columns of the evidence that make a match's group
    parameters: tuple[str, ...]  # the window parameters the SQL uses

    def read_since(self, since_ms: int) -> int:
        """Where a run of the window from since_ms begins to read: its start, less how much earlier the SQL reads (a
        Sigma rule's timespan; window_moments clamps it at 0 for the SQL). A run's reading overlaps an alert's when
        this is before the alert's window's end, whether or not its window does: a 10-minute timespan run every 5
        minutes read again half of what the run before it counted (alerts.apply)."""
        return since_ms - self.reach_ms


def window_moments(reach_ms: int, since_ms: int, until_ms: int, fresh_since_ms: int | None = None) -> dict[str, int]:
    """The moments a run's SQL names ($since, $until, $read_since, $fresh_since), in ms: the window
    [since_ms, until_ms), read from `reach_ms` earlier; rows from `fresh_since_ms` (the end of the
    rule's previous window; default: the whole window) are the ones no earlier run read."""
    if until_ms <= since_ms:
        raise ValueError(f"the window must end after it starts ({since_ms} >= {until_ms})")
    fresh = since_ms if fresh_since_ms is None else max(since_ms, fresh_since_ms)
    return {"since": since_ms, "until": until_ms, "read_since": max(0, since_ms - reach_ms), "fresh_since": fresh}


def window_views(tables: Iterable[LakeTable]) -> str:
    """The WITH clauses that stand for the tables, limited to the window."""
    return ",\n".join(
        f'{quote_name(t.name)} AS (SELECT * FROM {quote_name(t.name)} WHERE "timestamp" >= $read_since'
        ' AND "timestamp" < $until AND "date" BETWEEN CAST($read_since AS DATE) AND CAST($until AS DATE))'
        for t in tables
    )


def partition(fields: Iterable[str]) -> str:
    names = ", ".join(quote_name(f) for f in fields)
    return f"PARTITION BY {names} " if names else ""


def rows_plan(
    query: str, tables: tuple[LakeTable, ...], group_fields: tuple[str, ...], threshold: int, evidence: int, timed: bool
) -> str:
    """The SQL of a rule whose query gives matching rows (a Sigma detection, a SQL rule): a group
    matches with at least `threshold` rows; `timed`: its rows have a `timestamp`."""
    group = partition(group_fields)
    order = 'ORDER BY "timestamp"' if timed else ""
    span = (
        f'min("timestamp") OVER ({group}) AS {FIRST}, max("timestamp") OVER ({group}) AS {LAST},'
        f' sum(CASE WHEN "timestamp" >= $fresh_since THEN 1 ELSE 0 END) OVER ({group}) AS {FRESH},'
        f' min(CASE WHEN "timestamp" >= $fresh_since THEN "timestamp" END) OVER ({group}) AS {FRESH_FIRST}'
        if timed
        else f"NULL::TIMESTAMP AS {FIRST}, NULL::TIMESTAMP AS {LAST}"
    )
    select = (
        f"SELECT * FROM (SELECT *, count(*) OVER ({group}) AS {COUNT}, row_number() OVER ({group}{order}) AS {RANK},"
        f" {span} FROM _loglake_rows) WHERE {COUNT} >= {threshold} AND {RANK} <= {evidence}"
        f" ORDER BY {', '.join([*(quote_name(f) for f in group_fields), RANK])}"
    )
    return f"WITH {window_views(tables)},\n_loglake_rows AS (\n{query}\n)\n{select}"


def finish(sql: str, query: str, reach_ms: int, group_fields: tuple[str, ...]) -> Plan:
    """The plan of a rule, its SQL checked by the sandbox (QueryError if it refuses it) and its text
    filters rewritten as the engine rewrites users' queries."""
    tree = check_select(sql)
    executed = rewrite_text_filters(sql, tree)
    if executed != sql:
        check_select(executed)  # what runs passes the sandbox too, not only what it was made from
    parameters = tuple(sorted(parameters_of(tree)))
    return Plan(query, sql, executed, tables_of(tree), reach_ms, group_fields, parameters)


def parameters_of(tree: Any) -> set[str]:
    """The names of the `$name` parameters in a parse tree."""
    found: set[str] = set()
    if isinstance(tree, list):
        for item in tree:
            found |= parameters_of(item)
    elif isinstance(tree, dict):
        if tree.get("class") == "PARAMETER" and tree.get("identifier"):
            found.add(tree["identifier"])
        for value in tree.values():
            found |= parameters_of(value)
    return found


def tables_of(tree: Any) -> tuple[LakeTable, ...]:
    """The lake tables a parse tree names (in the registry's order)."""
    names: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item)
        elif isinstance(node, dict):
            if node.get("type") == "BASE_TABLE":
                names.add(str(node.get("table_name", "")).lower())
            for value in node.values():
                walk(value)

    walk(tree)
    return tuple(t for name, t in TABLES.items() if name in names)


_binders = threading.local()
# A rule's SQL runs on no rows when it is loaded; a query that loops without reading a row (an endless
# WITH RECURSIVE) would hold the loader, and with it the rules thread and the server's stop, for good.
BIND_SECONDS = 5.0
_BIND_WATCHDOG = QueryWatchdog("loglake-rule-binder")


def binder() -> Binder:
    """This thread's Binder (made on first use: a DuckDB and its tables take some 30 ms)."""
    found = getattr(_binders, "binder", None)
    if found is None:
        found = _binders.binder = Binder()
    return found


class Binder:
    """Empty copies of the tables in a private DuckDB: a rule's SQL is bound (and run on no rows) at
    load time, so a column that does not exist or a type that does not fit is a problem then, not at
    the first run. Not shared between threads (binder() gives each its own)."""

    def __init__(self) -> None:
        self._db = duckdb.connect(config={"enable_external_access": False, "threads": 1})
        for name, source in BY_TABLE.items():
            columns = ", ".join(f"{quote_name(c)} {sql_type(t)}" for c, t in source.columns.items())
            self._db.execute(f"CREATE TABLE {quote_name(name)} ({columns})")

    def columns(self, sql: str, parameters: Iterable[str]) -> list[str]:
        """The names of the columns `sql` answers; QueryError with DuckDB's message if it cannot run."""
        return list(self.types(sql, parameters))

    def types(self, sql: str, parameters: Iterable[str]) -> dict[str, str]:
        """The columns `sql` answers and their SQL types; QueryError if it cannot run."""
        moment = datetime(2026, 1, 1)
        try:
            with _BIND_WATCHDOG.watching(self._db, time.perf_counter() + BIND_SECONDS):
                result = self._db.execute(sql, {name: moment for name in parameters})
        except duckdb.InterruptException:
            raise QueryError(
                "invalid_query",
                f"did not finish within {BIND_SECONDS:g} s on tables without rows (a WITH RECURSIVE without an end?)",
            ) from None
        except duckdb.Error as e:
            raise QueryError("invalid_query", str(e).split("\n\nLINE")[0]) from None
        return {d[0]: str(d[1]) for d in result.description or []}
