"""The estimate against what DuckDB really reads for the same query on a real lake."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from loglake.ask.estimate import NO_TIME_FILTER, NOW_PRUNES_NOTHING, Estimator, conditions_of
from loglake.ask.footers import Footers
from loglake.lake.lake import Lake
from loglake.lake.objectstore import LocalObjectStore
from loglake.lake.query import QueryEngine
from loglake.lake.sql_guard import QueryError
from loglake.store.sqlite import SQLiteHotStore
from loglake.times import format_datetime
from tests.ask.lakes import build_lake, fill
from tests.lake.test_bulk import batch


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SQLiteHotStore, Lake]]:
    store, lake = build_lake(tmp_path_factory.mktemp("lake"))
    yield store, lake
    lake.close()
    store.close()


@pytest.fixture
def engine(lake: tuple[SQLiteHotStore, Lake]) -> QueryEngine:
    return lake[1].engine


@pytest.fixture
def estimator(lake: tuple[SQLiteHotStore, Lake]) -> Estimator:
    return Estimator(lake[1].engine, Footers(lake[1].objects))


def real_bytes(engine: QueryEngine, sql: str) -> int:
    """What DuckDB reports reading for the query, as a running server reads it: footers cached."""
    engine.query(sql)
    return engine.query(sql).bytes_scanned


QUERIES = [
    "SELECT severity, count(*) FROM logs GROUP BY 1",
    "SELECT severity, count(*) FROM logs WHERE timestamp >= TIMESTAMP '2026-11-02 12:00:00' GROUP BY 1",
    "SELECT count(*) FROM logs WHERE timestamp >= TIMESTAMP '2026-11-03 06:00:00' AND severity = 'error'",
    "SELECT service, count(*) FROM logs WHERE date = DATE '2026-11-02' GROUP BY 1",
    "SELECT count(*) FROM logs WHERE service = 'payments' AND message ILIKE '%declined%'",
    "SELECT service, max(length(message)) FROM logs"
    " WHERE timestamp BETWEEN '2026-11-01 06:00:00' AND '2026-11-01 07:00:00' GROUP BY 1",
    "WITH e AS (SELECT * FROM logs WHERE severity IN ('error', 'critical')) SELECT service, count(*) FROM e GROUP BY 1",
    "SELECT attributes ->> 'user' AS u, count(*) FROM logs WHERE date >= DATE '2026-11-02' GROUP BY 1 ORDER BY 2 DESC",
    "SELECT service, severity, count(*) FROM logs GROUP BY ALL",  # columns a small gap apart are read in one go
    "SELECT timestamp, service, message FROM logs WHERE message ILIKE '%failed%' AND timestamp >= TIMESTAMP"
    " '2026-11-02 06:00:00' AND timestamp < TIMESTAMP '2026-11-02 07:00:00' ORDER BY timestamp DESC LIMIT 100",
]


@pytest.mark.parametrize("sql", QUERIES)
def test_the_estimate_is_within_ten_percent_of_the_bytes_duckdb_reads(
    sql: str, estimator: Estimator, engine: QueryEngine
) -> None:
    real = real_bytes(engine, sql)
    estimated = estimator.estimate(sql).bytes
    assert real > 0
    assert abs(estimated - real) <= 0.1 * real, (estimated, real)


def test_a_time_filter_shrinks_the_estimate_and_drops_the_warning(estimator: Estimator, engine: QueryEngine) -> None:
    everything = estimator.estimate("SELECT count(*) FROM logs WHERE message ILIKE '%timeout%'")
    one_hour = estimator.estimate(
        "SELECT count(*) FROM logs WHERE message ILIKE '%timeout%'"
        " AND timestamp >= TIMESTAMP '2026-11-02 10:00:00' AND timestamp < TIMESTAMP '2026-11-02 11:00:00'"
    )
    assert everything.files == 3 and one_hour.files == 1
    assert one_hour.bytes < everything.bytes / 2
    assert one_hour.data_since_ms is not None and everything.data_since_ms is not None
    assert one_hour.data_since_ms > everything.data_since_ms
    assert NO_TIME_FILTER.format(tables="logs") in everything.warnings
    assert not one_hour.warnings and one_hour.time_filtered
    assert everything.total_files == one_hour.total_files == 3


def test_a_range_computed_from_now_prunes_nothing_and_says_so(estimator: Estimator, engine: QueryEngine) -> None:
    """DuckDB pushes `timestamp >= now() - ...` into no scan: every file is read, where the literal reads none
    of these days (the lake's are in November 2026; now is later)."""
    now_ms = int(time.time() * 1000)
    relative = "SELECT count(*) FROM logs WHERE timestamp >= now() - INTERVAL 1 HOUR"
    found = estimator.estimate(relative, now_ms)
    literal = f"timestamp >= '{format_datetime(now_ms - 3_600_000)}'"
    assert found.warnings == [NOW_PRUNES_NOTHING.format(tables="logs", literal=literal)]
    assert found.time_range() == {"since": format_datetime(now_ms - 3_600_000), "until": None, "relative_to_now": True}
    assert found.files == found.total_files == 3
    assert real_bytes(engine, relative) > 10 * real_bytes(engine, f"SELECT count(*) FROM logs WHERE {literal}")


@pytest.mark.parametrize(
    ("where", "since", "until"),
    [
        ("date <= DATE '9999-12-31'", None, "9999-12-31T23:59:59.999Z"),  # ends in the year 10000
        ("timestamp >= now() - INTERVAL 99999999 DAY", "0001-01-01T00:00:00.000Z", None),  # before the year 1
        ("timestamp < now() + INTERVAL 99999999 WEEK", None, "9999-12-31T23:59:59.999Z"),
    ],
)
def test_a_range_beyond_the_years_a_time_is_written_in_is_cut_to_them(
    where: str, since: str | None, until: str | None, estimator: Estimator
) -> None:
    # Such a bound was formatted, and counted in the hot store, as it was: a 500 of /ask.
    found = estimator.estimate(f"SELECT count(*) FROM logs WHERE {where}", int(time.time() * 1000))
    assert found.time_filtered and found.hot_records is not None
    assert (found.time_range()["since"], found.time_range()["until"]) == (since, until)
    assert found.warnings == [] or "timestamp" in where  # (now() on timestamp: its own warning, as a literal)


def test_a_very_large_scan_is_warned_about(lake: tuple[SQLiteHotStore, Lake]) -> None:
    small_limit = Estimator(lake[1].engine, Footers(lake[1].objects), very_large_bytes=1000)
    found = small_limit.estimate("SELECT message FROM logs WHERE date = DATE '2026-11-01'")
    assert any(w.startswith("a very large scan") for w in found.warnings)


def test_a_query_the_sandbox_refuses_is_not_estimated(estimator: Estimator) -> None:
    with pytest.raises(QueryError, match="read_csv"):
        estimator.estimate("SELECT * FROM read_csv('/etc/passwd')")


def test_filters_it_cannot_read_prune_nothing() -> None:
    assert conditions_of("(lower(service) = 'api')") == []
    assert conditions_of("((severity = 'error') OR (service = 'db'))") == []
    (condition,) = conditions_of("optional: (service IN ('api', 'db'))")
    assert condition.may_hold("auth", "billing") is False and condition.may_hold("a", "b") is True


def test_filters_split_only_at_ands_and_commas_outside_quotes_and_parentheses() -> None:
    text = "((service = 'a AND (b') AND (severity IN ('x, y)', 'z'))) AND (log_type = 'it''s (AND)')"
    assert [(c.column, c.op, c.values) for c in conditions_of(text)] == [
        ("service", "=", ("a AND (b",)),
        ("severity", "in", ("x, y)", "z")),
        ("log_type", "=", ("it's (AND)",)),
    ]
    assert conditions_of("(service = 'a') AND ((severity = 'b') OR (log_type = 'c'))") == [
        conditions_of("service = 'a'")[0]
    ]


def test_an_empty_lake_estimates_nothing_and_still_warns(tmp_path: Path) -> None:
    store = SQLiteHotStore(tmp_path / "hot.db")
    lake = Lake(store, LocalObjectStore(tmp_path / "lake"), tmp_path)
    try:
        found = Estimator(lake.engine, Footers(lake.objects)).estimate("SELECT count(*) FROM logs")
        assert (found.files, found.bytes, found.total_files) == (0, 0, 0)
        assert found.warnings == [NO_TIME_FILTER.format(tables="logs")]
    finally:
        lake.close()
        store.close()


@pytest.mark.parametrize(
    "where",
    [
        "date = '2026-11-02'",  # text: DuckDB's plan casts it, the estimate prunes nothing by it
        "date = DATE '2026-11-02'",
        "timestamp >= TIMESTAMP '2026-11-01 00:00:00' AND date BETWEEN DATE '2026-11-01' AND DATE '2026-11-03'",
        "timestamp >= now() - INTERVAL 1 HOUR",  # pushed into no scan, bounded all the same
    ],
)
def test_a_query_bounded_by_time_is_time_filtered_whatever_it_prunes(where: str, estimator: Estimator) -> None:
    found = estimator.estimate(f"SELECT service, count(*) FROM logs WHERE {where} GROUP BY 1")
    assert found.time_filtered and not any(w.startswith("no time filter") for w in found.warnings)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT count(*) FROM logs WHERE severity = 'error' OR timestamp > TIMESTAMP '2026-11-02 00:00:00'",
        "SELECT count(*) FROM logs l JOIN logs r ON l.log_id = r.log_id WHERE l.date = DATE '2026-11-02'",
        "SELECT count(*) FROM logs WHERE length(message) > 10",
    ],
)
def test_a_read_of_every_day_is_not_time_filtered(sql: str, estimator: Estimator) -> None:
    found = estimator.estimate(sql)
    assert not found.time_filtered and NO_TIME_FILTER.format(tables="logs") in found.warnings


def test_records_only_in_the_hot_store_are_time_filtered_by_the_sql(tmp_path: Path) -> None:
    store = SQLiteHotStore(tmp_path / "hot.db")
    fill(store, per_day=100)
    lake = Lake(store, LocalObjectStore(tmp_path / "lake"), tmp_path)
    try:
        found = Estimator(lake.engine, Footers(lake.objects)).estimate(
            "SELECT service, count(*) FROM logs WHERE timestamp >= TIMESTAMP '2026-11-01 00:00:00'"
            " AND date BETWEEN DATE '2026-11-01' AND DATE '2026-11-01' GROUP BY 1"
        )
        assert found.files == 0 and found.time_filtered and found.warnings == []
        # What it reads is the hot store's records of that day, and the range is the SQL's, not the data's.
        assert found.hot_records == 100 and found.data_since_ms is None
        assert found.time_range() == {
            "since": "2026-11-01T00:00:00.000Z",
            "until": "2026-11-02T00:00:00.000Z",
            "relative_to_now": False,
        }
    finally:
        lake.close()
        store.close()


def test_records_of_bulk_batches_waiting_to_be_moved_are_counted_with_the_hot_ones(tmp_path: Path) -> None:
    store = SQLiteHotStore(tmp_path / "hot.db")
    fill(store, per_day=100)
    lake = Lake(store, LocalObjectStore(tmp_path / "lake"), tmp_path)
    try:
        lake.bulk.submit(batch(days=2, per_day=1000)).result()  # 2026-11-01 and 02, waiting (test_waiting.py)
        found = Estimator(lake.engine, Footers(lake.objects)).estimate(
            "SELECT count(*) FROM logs WHERE timestamp >= TIMESTAMP '2026-11-02 00:00:00'"
            " AND timestamp < TIMESTAMP '2026-11-03 00:00:00'"
        )
        assert found.hot_records == 100 + 2000  # the batch holds that day: all of it counts (an estimate)
        found = Estimator(lake.engine, Footers(lake.objects)).estimate(
            "SELECT count(*) FROM logs WHERE timestamp >= TIMESTAMP '2026-11-05 00:00:00'"
        )
        assert found.hot_records == 0
    finally:
        lake.close()
        store.close()


def test_a_lake_file_gone_from_storage_is_estimated_around_with_a_warning(tmp_path: Path) -> None:
    """One listed file gone (removed outside loglake) made the estimate's plan, and /ask, a 500 (DuckDB's IOException
    naming the server's path): the plan reads around it as queries do, and the estimate says which file."""
    store, lake = build_lake(tmp_path, per_day=2_000)
    try:
        [gone, *_] = store.read("SELECT key FROM lake_files WHERE table_name = 'logs' ORDER BY key")[0]
        (lake.objects.root / gone).unlink()
        found = Estimator(lake.engine, Footers(lake.objects)).estimate("SELECT count(*) FROM logs")
        assert found.total_files > found.files > 0
        [said] = [warning for warning in found.warnings if gone in warning]
        assert "missing from the lake's storage" in said and "loglake verify" in said and str(tmp_path) not in said
    finally:
        lake.close()
        store.close()
