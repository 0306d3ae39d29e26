"""Running many rules over windows that end at (about) the same moment (a scheduler's round) with one scan.

Each rule's own run reads its window from the lake: on a compacted day file (one service per row
group, so every row group spans the whole day) a 5-minute window still decodes the day's timestamps,
tens of milliseconds per rule however few records the window holds. A round of a hundred rules would
pay that a hundred times. So the runs of a round that read only `logs`, at most SHARED_SPAN_MS of it,
within the SHARED_SPAN_MS before the round's latest window end, are run together: the records of the
span they read are fetched once through the engine (hot store and lake, one snapshot), and each rule's
SQL (the same SQL, the same parameters: its views keep it to its own window) runs on them in a private
in-memory DuckDB, which has no files to reach. The others run on their own (run_rule). A span holding
more than MAX_SHARED_ROWS records is not fetched: those rules run on their own too, so memory stays
bounded.

A run on the shared records is held to the engine's limits as a run of its own is: at most its rows,
stopped at its query timeout (a rule whose SQL goes wrong fails alone, it does not stall the round).

What a run that shared the scan reports: the rows, bytes and files of the shared fetch (what it read),
and as its duration its own query's time plus an equal share of the fetch's (so a round's durations
add up to its engine time).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import duckdb
import pyarrow as pa

from loglake.lake.query import VALUE_OUT_OF_RANGE, QueryEngine, TimeRange
from loglake.lake.query_answers import QueryBusy, QueryResult
from loglake.lake.query_limits import QueryLimits
from loglake.lake.sql_guard import QueryError, client_error
from loglake.lake.stop import Stop, Stopped
from loglake.lake.tables import APP_LOGS_TABLE, sql_type
from loglake.lake.watchdog import QueryWatchdog
from loglake.rules.model import Rule
from loglake.rules.run import (
    RuleRunError,
    RuleTimedOut,
    RunResult,
    naive_utc,
    result_of,
    run_failure,
    run_parameters,
    run_rule,
    timed_out,
)
from loglake.rules.sources import quote_name

log = logging.getLogger("loglake.rules")
SHARED_SPAN_MS = 15 * 60_000
MAX_SHARED_ROWS = 200_000
_COLUMNS = [*(c.name for c in APP_LOGS_TABLE.columns), "date"]
_SCHEMA = pa.schema([*((c.name, c.type) for c in APP_LOGS_TABLE.columns), ("date", pa.date32())])


@dataclass(frozen=True)
class Run:
    """A rule to run over [since_ms, until_ms)."""

    rule: Rule
    since_ms: int
    until_ms: int
    fresh_since_ms: int | None = None  # where the rows no earlier run read begin (run_rule)

    @property
    def read_since_ms(self) -> int:
        return self.rule.plan.read_since(self.since_ms)


@dataclass(frozen=True)
class Round:
    results: dict[str, RunResult | RuleRunError]  # by rule id
    durations_ms: dict[str, float]  # by rule id: its engine time (see the module's notes)
    shared_rules: int  # how many ran on the shared records
    shared_rows: int
    shared_ms: float  # fetching them


def run_round(runs: Sequence[Run], engine: QueryEngine, now_ms: int | None = None, stop: Stop | None = None) -> Round:
    """Each run (one per rule); a rule that fails has its RuleRunError (a defect met by one rule too:
    it must not stop the others). Told to stop (`stop`: Ctrl-C), Stopped: the round ends where it is."""
    shared = _shareable(runs)
    results: dict[str, RunResult | RuleRunError] = {}
    durations: dict[str, float] = {}

    def run_one(run: Run, evaluate: Callable[[], RunResult | RuleRunError], extra_ms: float = 0.0) -> None:
        started = time.perf_counter()
        try:
            if stop is not None:
                stop.check()
            results[run.rule.id] = evaluate()
        except Stopped:  # not the rule's failure: its window stays as it was, for the next round
            raise
        except Exception as e:
            results[run.rule.id] = run_failure(run.rule, e)
        durations[run.rule.id] = (time.perf_counter() - started) * 1000 + extra_ms

    fetched = None
    if len(shared) > 1:
        fetched = _fetch(engine, min(r.read_since_ms for r in shared), max(r.until_ms for r in shared), stop)
    if fetched is None:
        shared = []
    else:
        evaluator, share_ms = _evaluator(), fetched.elapsed_ms / len(shared)
        with evaluator.holding(fetched):
            for run in shared:
                run_one(run, functools.partial(evaluator.run, run, now_ms, engine.limits, fetched, stop), share_ms)
    for run in runs:
        if run.rule.id not in results:
            run_one(
                run,
                functools.partial(
                    run_rule, run.rule, engine, run.since_ms, run.until_ms, now_ms, run.fresh_since_ms, stop
                ),
            )
    return Round(
        {r.rule.id: results[r.rule.id] for r in runs},
        durations,
        len(shared),
        0 if fetched is None else len(fetched.rows),
        0.0 if fetched is None else fetched.elapsed_ms,
    )


def _shareable(runs: Sequence[Run]) -> list[Run]:
    """The runs that read only `logs`, at most SHARED_SPAN_MS of it, all within the span of that length
    ending at the latest of their windows' ends."""
    short = [
        r for r in runs if r.rule.plan.tables == (APP_LOGS_TABLE,) and r.until_ms - r.read_since_ms <= SHARED_SPAN_MS
    ]
    if not short:
        return []
    end = max(r.until_ms for r in short)
    return [r for r in short if r.read_since_ms >= end - SHARED_SPAN_MS]


def _fetch(engine: QueryEngine, since_ms: int, until_ms: int, stop: Stop | None) -> QueryResult | None:
    """The records of [since_ms, until_ms), or None if there are too many (or the engine refuses)."""
    columns = ", ".join(quote_name(c) for c in _COLUMNS)
    sql = (
        f'SELECT {columns} FROM logs WHERE "timestamp" >= $since AND "timestamp" < $until'
        ' AND "date" BETWEEN CAST($since AS DATE) AND CAST($until AS DATE)'
    )
    params = {"since": naive_utc(since_ms), "until": naive_utc(until_ms)}
    try:
        result = engine.run_saved(sql, params, TimeRange(since_ms, until_ms), MAX_SHARED_ROWS, (APP_LOGS_TABLE,), stop)
    except (QueryError, QueryBusy):
        return None  # each rule runs on its own and reports its own error
    return None if result.truncated else result


_evaluators = threading.local()
# The evaluators' queries are stopped at their timeouts by one thread for the process (started by the first).
_WATCHDOG = QueryWatchdog("loglake-rule-timeout")


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

    def run(
        self, run: Run, now_ms: int | None, limits: QueryLimits, fetched: QueryResult, stop: Stop | None = None
    ) -> RunResult | RuleRunError:
        """The rule's run on the records held (`fetched`), as run_rule would answer it: at most the
        engine's rows, stopped after the engine's query timeout, or when told to (`stop`: Stopped), as the
        engine stops a rule's query."""
        rule = run.rule
        params, _ = run_parameters(rule, run.since_ms, run.until_ms, run.fresh_since_ms)
        started = time.perf_counter()
        try:
            with (
                _WATCHDOG.watching(self._db, started + limits.timeout_seconds) as interrupt,
                contextlib.nullcontext() if stop is None else stop.watched_by(interrupt),
            ):
                cursor = self._db.execute(rule.plan.executed, params)
                columns = [(d[0], str(d[1])) for d in cursor.description or []]
                found = cursor.fetchmany(limits.max_rows + 1)
        except duckdb.InterruptException:
            if stop is not None:
                stop.check()  # Stopped, when that is why it was interrupted
            return RuleTimedOut(timed_out(rule, limits.timeout_seconds))
        except duckdb.Error as e:
            # as the engine says it to a run of its own (run_rule): a failing rule that shares the scan in some rounds
            # only fails with one error, its failures one run record
            return RuleRunError(f"rule {rule.id} ({rule.path}): {client_error(e).message}")
        except OverflowError:
            return RuleRunError(f"rule {rule.id} ({rule.path}): {VALUE_OUT_OF_RANGE}")
        cap = limits.max_rows
        elapsed = (time.perf_counter() - started) * 1000
        result = QueryResult(
            columns,
            found[:cap],
            len(found) > cap,
            elapsed,
            fetched.bytes_scanned,
            fetched.files_scanned,
            rows_scanned=len(fetched.rows),
        )
        return result_of(rule, run.since_ms, run.until_ms, result, now_ms)


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
