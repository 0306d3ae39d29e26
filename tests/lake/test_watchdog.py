"""One thread interrupts the queries it watches: at each one's deadline, or when it is told to stop, never after."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import duckdb
import pytest

from loglake.lake.watchdog import QueryWatchdog

ENDLESS = "SELECT count(*) FROM range(10000000000000) a"  # half an hour of work: only an interrupt ends it
LONG = "SELECT count(*) FROM range(100000000000) a"  # seconds of work: it ends by itself if not interrupted
NAME = "test-query-watchdog"


@pytest.fixture
def watchdog() -> Iterator[QueryWatchdog]:
    w = QueryWatchdog(NAME)
    yield w
    w.close()


@pytest.fixture
def db() -> Iterator[duckdb.DuckDBPyConnection]:
    con = duckdb.connect(config={"threads": 1})
    yield con
    con.close()


def run_watched(
    watchdog: QueryWatchdog, connection: duckdb.DuckDBPyConnection, deadline: float, sql: str = ENDLESS
) -> str:
    """What the query came to ("interrupted" or its answer), run in a watched block."""
    with watchdog.watching(connection, deadline):
        try:
            return str(connection.execute(sql).fetchall())
        except duckdb.InterruptException:
            return "interrupted"


def watchdog_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == NAME]


def test_a_query_past_its_deadline_is_interrupted_and_its_connection_works_again(
    watchdog: QueryWatchdog, db: duckdb.DuckDBPyConnection
) -> None:
    assert run_watched(watchdog, db, time.perf_counter() + 0.2) == "interrupted"
    assert run_watched(watchdog, db, time.perf_counter() + 60, "SELECT 42") == "[(42,)]"


def test_a_query_whose_deadline_passed_before_it_started_is_interrupted(
    watchdog: QueryWatchdog, db: duckdb.DuckDBPyConnection
) -> None:
    """The interrupt lands before DuckDB starts the query: it is repeated until the query stops."""
    assert run_watched(watchdog, db, time.perf_counter() - 1) == "interrupted"


def endless_in_a_thread(
    watchdog: QueryWatchdog, connection: duckdb.DuckDBPyConnection
) -> tuple[threading.Thread, Callable[[], None], list[str]]:
    """An endless query watched until an hour from now, on a thread of its own, once it runs: the thread, what
    tells it to stop (as a Stop does), and the list that gets what it came to."""
    interrupts: list[Callable[[], None]] = []
    answers: list[str] = []

    def query() -> None:
        with watchdog.watching(connection, time.perf_counter() + 3600) as interrupt:
            interrupts.append(interrupt)
            try:
                answers.append(str(connection.execute(ENDLESS).fetchall()))
            except duckdb.InterruptException:
                answers.append("interrupted")

    thread = threading.Thread(target=query)
    thread.start()
    while not interrupts:
        time.sleep(0.01)
    return thread, interrupts[0], answers


def test_an_earlier_deadline_wakes_the_watchdog_that_sleeps_until_a_later_one(watchdog: QueryWatchdog) -> None:
    """The first query's deadline is an hour away (the thread sleeps until then); a second query's is
    sooner: it is interrupted at its own deadline, and the first goes on until told to stop."""
    first_db, second_db = duckdb.connect(config={"threads": 1}), duckdb.connect(config={"threads": 1})
    thread, stop_first, first_result = endless_in_a_thread(watchdog, first_db)
    try:
        assert run_watched(watchdog, second_db, time.perf_counter() + 0.2, LONG) == "interrupted"
        assert thread.is_alive() and not first_result  # the first query still runs
    finally:
        stop_first()
        thread.join(30)
        first_db.close()
        second_db.close()
    assert first_result == ["interrupted"]


def test_a_query_told_to_stop_is_interrupted_before_its_deadline(
    watchdog: QueryWatchdog, db: duckdb.DuckDBPyConnection
) -> None:
    thread, interrupt, answers = endless_in_a_thread(watchdog, db)
    interrupt()  # as a Stop does when the client goes away
    thread.join(30)
    assert answers == ["interrupted"]


def test_a_connection_is_left_alone_after_its_watched_block(
    watchdog: QueryWatchdog, db: duckdb.DuckDBPyConnection
) -> None:
    """Told to stop after its block ended (a late client disconnect), the connection's next query runs."""
    with watchdog.watching(db, time.perf_counter() + 0.05) as interrupt:
        assert db.execute("SELECT 1").fetchall() == [(1,)]
    interrupt()
    time.sleep(0.2)  # past the old deadline too
    assert db.execute("SELECT count(*) FROM range(3000000)").fetchall() == [(3000000,)]


def test_one_thread_watches_every_query_and_ends_with_close(db: duckdb.DuckDBPyConnection) -> None:
    watchdog = QueryWatchdog(NAME)
    assert watchdog_threads() == []  # started by the first query, not before
    for _ in range(20):
        run_watched(watchdog, db, time.perf_counter() + 60, "SELECT 1")
    assert len(watchdog_threads()) == 1
    watchdog.close()
    assert watchdog_threads() == []
    with pytest.raises(RuntimeError, match="closed"):
        run_watched(watchdog, db, time.perf_counter() + 60, "SELECT 1")
