"""A top-N by time reads only the hot rows it can use, and answers as the same query over the lake does."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from loglake.lake.flush import Flusher
from loglake.lake.hot_top import hot_top
from loglake.lake.objectstore import LocalObjectStore
from loglake.lake.query import QueryEngine, QueryError
from loglake.lake.query_limits import QueryLimits
from loglake.lake.sql_guard import parse_tree
from loglake.model import Severity
from loglake.store.sqlite import SQLiteHotStore
from tests.lake.test_flush import DAY, START
from tests.store.contract import record

COUNT = 3000  # over two days; the hot rows are read in batches of 64, 256, 1024, ... rows
SERVICES = ["web", "api", "db"]
CAP = 100  # the engine's row cap: a sort without LIMIT answers this many

# Each with a discriminating datum: the messages sort against time, severities and services repeat
# with periods 5 and 3, so a query given the wrong hot rows answers otherwise.
PUSHED = [
    "SELECT * FROM logs ORDER BY timestamp DESC LIMIT 50",
    "SELECT log_id, message FROM logs ORDER BY timestamp LIMIT 50",
    "SELECT log_id, message FROM logs ORDER BY timestamp ASC LIMIT 1500",
    "SELECT l.message FROM logs AS l WHERE l.severity = 'error' AND l.service <> 'db'"
    " ORDER BY l.timestamp DESC LIMIT 20 OFFSET 7",
    "SELECT message FROM logs WHERE message ILIKE '%77%' ORDER BY timestamp DESC LIMIT 30",
    "SELECT message, date FROM logs WHERE date = '2026-11-01' ORDER BY timestamp DESC LIMIT 10",
    "SELECT message FROM Logs ORDER BY Timestamp DESC",  # no LIMIT: the first CAP rows, truncated
    "SELECT message FROM logs WHERE severity = 'critical' ORDER BY timestamp DESC OFFSET 40",
    "SELECT upper(message) AS m, timestamp FROM logs WHERE length(message) > 3 ORDER BY timestamp DESC LIMIT 5",
    "SELECT message FROM logs WHERE attributes->>'$.i' = '7' OR service = 'web' ORDER BY timestamp DESC LIMIT 9",
]
# The same shape in part, but the hot rows a top-N would read are not the only ones the answer needs.
NOT_PUSHED = [
    "SELECT message AS timestamp FROM logs ORDER BY timestamp DESC LIMIT 3",
    "SELECT * REPLACE (message AS timestamp) FROM logs ORDER BY timestamp DESC LIMIT 3",
    "SELECT message, row_number() OVER (ORDER BY timestamp) AS n FROM logs ORDER BY timestamp DESC LIMIT 3",
    "SELECT service, max(timestamp) AS t FROM logs GROUP BY service ORDER BY t DESC LIMIT 2",
    "SELECT service, timestamp FROM logs GROUP BY ALL ORDER BY timestamp DESC LIMIT 5",
    "SELECT unnest(CASE WHEN service = 'web' THEN [message] ELSE [] END) FROM logs ORDER BY timestamp DESC LIMIT 5",
    "SELECT message FROM logs WHERE timestamp > (SELECT min(timestamp) FROM logs) ORDER BY timestamp LIMIT 3",
    "SELECT message FROM logs ORDER BY timestamp DESC, message LIMIT 3",
    "SELECT message FROM logs ORDER BY message DESC LIMIT 3",
    "SELECT message, upper(service) AS s FROM logs WHERE s = 'WEB' ORDER BY timestamp DESC LIMIT 3",
    "SELECT message FROM logs WHERE random() < 2 ORDER BY timestamp DESC LIMIT 3",
    "SELECT DISTINCT ON (service) service, message FROM logs ORDER BY timestamp DESC LIMIT 3",
    "SELECT a.message FROM logs a JOIN logs b USING (log_id) ORDER BY a.timestamp DESC LIMIT 3",
    "WITH logs AS (SELECT * FROM logs WHERE service = 'db') SELECT message FROM logs ORDER BY timestamp DESC LIMIT 3",
    "SELECT message FROM logs ORDER BY timestamp DESC LIMIT 10 %",
    "SELECT message FROM logs ORDER BY timestamp DESC LIMIT 1 + 2",
    "SELECT message FROM logs USING SAMPLE 10 ORDER BY timestamp DESC LIMIT 3",
    "SELECT string_agg(message, ',') FROM logs",
]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteHotStore]:
    s = SQLiteHotStore(tmp_path / "hot.db")
    s.put(
        [
            record(
                START + i * (2 * DAY // COUNT),
                f"{COUNT - i:06d} m",
                service=SERVICES[i % 3],
                severity=Severity(i % 5),
                attributes=b'{"i":%d}' % (i % 10),
            )
            for i in range(COUNT)
        ]
    )
    yield s
    s.close()


@pytest.fixture
def engine(store: SQLiteHotStore, tmp_path: Path) -> Iterator[QueryEngine]:
    e = QueryEngine(store, LocalObjectStore(tmp_path / "lake"), tmp_path / "duckdb", QueryLimits(max_rows=CAP))
    yield e
    e.close()


def answers(engine: QueryEngine, queries: list[str]) -> list[tuple[list, bool]]:
    return [(r.rows, r.truncated) for r in (engine.query(sql) for sql in queries)]


def test_the_top_n_shapes_are_told_apart() -> None:
    assert [sql for sql in PUSHED if hot_top(parse_tree(sql), CAP) is None] == []
    assert [sql for sql in NOT_PUSHED if hot_top(parse_tree(sql), CAP) is not None] == []


def test_a_top_n_answers_as_over_the_lake_whether_its_records_are_hot_or_in_the_lake(
    store: SQLiteHotStore, engine: QueryEngine, tmp_path: Path
) -> None:
    queries = PUSHED + [sql for sql in NOT_PUSHED if "SAMPLE" not in sql and "string_agg" not in sql]  # not random
    hot = answers(engine, queries)
    flusher = Flusher(store, LocalObjectStore(tmp_path / "lake"), worker_process=False)
    flusher.flush(before_ms=START + DAY)  # the first day to the lake, the second hot
    half = answers(engine, queries)
    flusher.flush(before_ms=START + 2 * DAY)
    assert store.read("SELECT count(*) FROM logs") == [(0,)]
    lake = answers(engine, queries)
    assert [(sql, h) for sql, h, answer in zip(queries, hot, lake, strict=True) if h != answer] == []
    assert [(sql, h) for sql, h, answer in zip(queries, half, lake, strict=True) if h != answer] == []
    assert lake[0][0][0][5] == "000001 m" and len(lake[0][0]) == 50  # the newest record first
    assert lake[6] == ([(f"{n:06d} m",) for n in range(1, CAP + 1)], True)


def test_late_hot_records_older_than_the_lakes_answer_as_over_the_lake(
    store: SQLiteHotStore, engine: QueryEngine, tmp_path: Path
) -> None:
    """Records that arrive late, older than some already in the lake, are hot and come in their turn."""
    Flusher(store, LocalObjectStore(tmp_path / "lake"), worker_process=False).flush(before_ms=START + 2 * DAY)
    store.put([record(START + 5 + i * 1_000_000, f"late {i:03d}", service="web") for i in range(100)])
    queries = [PUSHED[0], PUSHED[2], "SELECT message FROM logs WHERE service = 'web' ORDER BY timestamp LIMIT 40"]
    mixed = answers(engine, queries)
    Flusher(store, LocalObjectStore(tmp_path / "lake"), worker_process=False).flush(before_ms=START + 3 * DAY)
    assert mixed == answers(engine, queries)
    assert [m for (m,) in mixed[2][0][:3]] == ["003000 m", "late 000", "002997 m"]


def test_a_top_n_reads_about_as_many_hot_rows_as_it_answers(engine: QueryEngine) -> None:
    newest = engine.query("SELECT * FROM logs ORDER BY timestamp DESC LIMIT 50")
    assert len(newest.rows) == 50
    # 64 rows in the first batch; DuckDB may ask for the next batch before it stops
    assert 50 <= newest.rows_scanned <= 64 + 256
    errors = engine.query("SELECT * FROM logs WHERE severity = 'error' ORDER BY timestamp LIMIT 20")  # one in 5
    assert len(errors.rows) == 20
    assert 100 <= errors.rows_scanned <= 64 + 256 + 1024
    # The same query in another shape (an order DuckDB must see every row for) reads them all.
    assert engine.query("SELECT * FROM logs ORDER BY timestamp + INTERVAL 0 SECOND DESC LIMIT 50").rows_scanned == COUNT


def test_a_predicate_the_query_cannot_bind_fails_as_the_query_does(engine: QueryEngine) -> None:
    with pytest.raises(QueryError) as failed:
        engine.query("SELECT * FROM logs WHERE severity + 1 > 2 ORDER BY timestamp DESC LIMIT 5")
    assert failed.value.code == "invalid_query" and "+" in failed.value.message
    assert len(engine.query("SELECT * FROM logs ORDER BY timestamp DESC LIMIT 5").rows) == 5
