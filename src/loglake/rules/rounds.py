"""Running many rules over windows that end at the same moment (a scheduler's round) with one scan.

Each rule's own run reads its window from the lake: on a compacted day file (one service per row
group, so every row group spans the whole day) a 5-minute window still decodes the day's timestamps,
tens of milliseconds per rule however few records the window holds. A round of a hundred rules would
pay that a hundred times. So the rules of a round that read only `logs` and at most SHARED_SPAN_MS
back are run together: the records of the span they read are fetched once through the engine (hot
store and lake, one snapshot), and each rule's SQL (the same SQL, the same parameters) runs on them in
a private in-memory DuckDB, which has no files to reach. The others run on their own (run_rule).
A span holding more than MAX_SHARED_ROWS records is not fetched: those rules run on their own too,
so memory stays bounded.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import duckdb
import pyarrow as pa

from loglake.lake.query import QueryEngine, TimeRange
from loglake.lake.query_answers import QueryBusy, QueryResult
from loglake.lake.sql_guard import QueryError
from loglake.lake.tables import APP_LOGS_TABLE, sql_type
from loglake.rules.model import Rule
from loglake.rules.run import RuleRunError, RunResult, naive_utc, result_of, run_parameters, run_rule
from loglake.rules.sources import quote_name

SHARED_SPAN_MS = 15 * 60_000
MAX_SHARED_ROWS = 200_000
_COLUMNS = [*(c.name for c in APP_LOGS_TABLE.columns), "date"]
_SCHEMA = pa.schema([*((c.name, c.type) for c in APP_LOGS_TABLE.columns), ("date", pa.date32())])


@dataclass(frozen=True)
class Round:
    results: dict[str, RunResult | RuleRunError]  # by rule id
    shared_rules: int  # how many ran on the shared records
    shared_rows: int
    shared_ms: float  # fetching them


def run_round(rules: Sequence[Rule], engine: QueryEngine, until_ms: int, now_ms: int | None = None) -> Round:
    """Each rule over its lookback ending at `until_ms`; a rule that fails has its RuleRunError."""
    shared = [r for r in rules if r.plan.tables == (APP_LOGS_TABLE,) and _reach(r) <= SHARED_SPAN_MS]
    results: dict[str, RunResult | RuleRunError] = {}
    fetched = _fetch(engine, until_ms - max(map(_reach, shared)), until_ms) if len(shared) > 1 else None
    if fetched is None:
        shared = []
    else:
        evaluator = _evaluator()
        with evaluator.holding(fetched):
            for rule in shared:
                results[rule.id] = evaluator.run(rule, until_ms, now_ms, engine.limits.max_rows, len(fetched.rows))
    for rule in rules:
        if rule.id not in results:
            try:
                results[rule.id] = run_rule(rule, engine, until_ms - rule.lookback_ms, until_ms, now_ms)
            except RuleRunError as e:
                results[rule.id] = e
    return Round(
        {r.id: results[r.id] for r in rules},
        len(shared),
        0 if fetched is None else len(fetched.rows),
        0.0 if fetched is None else fetched.elapsed_ms,
    )


def _reach(rule: Rule) -> int:
    return rule.lookback_ms + rule.plan.reach_ms


def _fetch(engine: QueryEngine, since_ms: int, until_ms: int) -> QueryResult | None:
    """The records of [since_ms, until_ms), or None if there are too many (or the engine refuses)."""
    columns = ", ".join(quote_name(c) for c in _COLUMNS)
    sql = (
        f'SELECT {columns} FROM logs WHERE "timestamp" >= $since AND "timestamp" < $until'
        ' AND "date" BETWEEN CAST($since AS DATE) AND CAST($until AS DATE)'
    )
    params = {"since": naive_utc(since_ms), "until": naive_utc(until_ms)}
    try:
        result = engine.run_saved(sql, params, TimeRange(since_ms, until_ms), MAX_SHARED_ROWS, (APP_LOGS_TABLE,))
    except (QueryError, QueryBusy):
        return None  # each rule runs on its own and reports its own error
    return None if result.truncated else result


_evaluators = threading.local()


def _evaluator() -> _Evaluator:
    found = getattr(_evaluators, "evaluator", None)
    if found is None:
        found = _evaluators.evaluator = _Evaluator()
    return found


class _Evaluator:
    """A private in-memory DuckDB where `logs` is the records of a round's span (one per thread)."""

    def __init__(self) -> None:
        self._db = duckdb.connect(config={"enable_external_access": False, "threads": 1})
        self._db.execute("SET python_enable_replacements = false")
        # The engine's `logs` as its rules see it: the same names and SQL types (Arrow's ms timestamp
        # would be DuckDB's TIMESTAMP_MS; the lake's is TIMESTAMP).
        casts = ", ".join(
            f"CAST({quote_name(c.name)} AS {sql_type(c.type)}) AS {quote_name(c.name)}" for c in APP_LOGS_TABLE.columns
        )
        self._db.register("_loglake_arrow", _SCHEMA.empty_table())
        self._db.execute("CREATE TEMP TABLE _loglake_shared AS SELECT * FROM _loglake_arrow")
        self._db.unregister("_loglake_arrow")
        self._db.execute(f'CREATE TEMP VIEW logs AS SELECT {casts}, "date" FROM _loglake_shared')

    def holding(self, fetched: QueryResult) -> _Holding:
        return _Holding(
            self._db,
            pa.Table.from_pylist([dict(zip(_COLUMNS, row, strict=True)) for row in fetched.rows], schema=_SCHEMA),
        )

    def run(self, rule: Rule, until_ms: int, now_ms: int | None, cap: int, rows: int) -> RunResult | RuleRunError:
        """The rule's run on the records held (`rows` of them), as run_rule would answer it."""
        since_ms = until_ms - rule.lookback_ms
        params, _ = run_parameters(rule, since_ms, until_ms)
        started = time.perf_counter()
        try:
            cursor = self._db.execute(rule.plan.executed, params)
            columns = [(d[0], str(d[1])) for d in cursor.description or []]
            found = cursor.fetchmany(cap + 1)
        except duckdb.Error as e:
            return RuleRunError(f"rule {rule.id} ({rule.path}): {str(e).splitlines()[0]}")
        elapsed = (time.perf_counter() - started) * 1000
        result = QueryResult(columns, found[:cap], len(found) > cap, elapsed, 0, 0, rows_scanned=rows)
        return result_of(rule, since_ms, until_ms, result, now_ms)


class _Holding:
    """The records of a round as the table under `logs` while the round runs (DuckDB's own storage:
    a hundred queries scan it faster than they would scan the Arrow table)."""

    def __init__(self, db: duckdb.DuckDBPyConnection, table: pa.Table) -> None:
        self._db, self._table = db, table

    def __enter__(self) -> None:
        self._db.register("_loglake_arrow", self._table)
        self._db.execute("CREATE OR REPLACE TEMP TABLE _loglake_shared AS SELECT * FROM _loglake_arrow")
        self._db.unregister("_loglake_arrow")

    def __exit__(self, *_: object) -> None:
        self._db.execute("DELETE FROM _loglake_shared")
