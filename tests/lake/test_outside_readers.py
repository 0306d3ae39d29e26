"""The lake folder as an engine outside loglake reads it (DuckDB here, as the README shows): per-table
globs, the tables' manifests, and what they see right after `loglake compact` and `loglake retention`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import pytest

from loglake.lake.flush import Flusher
from loglake.lake.manifest import collect_garbage, reading
from loglake.lake.objectstore import LocalObjectStore
from loglake.store.sqlite import SQLiteHotStore
from tests.amplify.logs import access_log, varied_requests
from tests.conftest import run_cli
from tests.lake.test_flush import DAY, START, seed

pytestmark = pytest.mark.usefixtures("no_loglake_environment")

# As the README gives them, run from the folder that holds the data dir.
APP_LOGS_GLOB = (
    "SELECT count(*) FROM read_parquet('loglake-data/lake/type=app_logs/*/*.parquet', hive_partitioning = true)"
)
AMPLIFY_GLOB = (
    "SELECT count(*) FROM read_parquet('loglake-data/lake/type=amplify_access/*/*/*.parquet', hive_partitioning = true)"
)
MANIFEST_FILES = (
    "SET VARIABLE app_logs = (SELECT list('loglake-data/lake/' || path)"
    " FROM read_json('loglake-data/lake/type=app_logs/_manifest.json'))"
)
MANIFEST_COUNT = "SELECT count(*) FROM read_parquet(getvariable('app_logs'), hive_partitioning = true)"


@pytest.fixture
def data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """loglake-data with three days of 300 records each, flushed 60 records a round (five files a day)."""
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "loglake-data"
    store = SQLiteHotStore(folder / "hot.db")
    seed(store, days=3)
    Flusher(store, LocalObjectStore(folder / "lake"), rows_per_round=60).flush(before_ms=START + 3 * DAY)
    store.close()
    yield folder


def outside(*statements: str) -> int:
    """What a DuckDB of the user's own counts (the last statement's one value)."""
    with duckdb.connect() as con:
        for statement in statements[:-1]:
            con.execute(statement)
        return con.execute(statements[-1]).fetchone()[0]


def loglake(*args: str) -> str:
    result = run_cli(*args, "--data-dir", "loglake-data")
    assert result.exit_code == 0, result.output
    return result.output


def folders(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_dir())


def test_after_compact_an_outside_glob_counts_each_record_once(data: Path) -> None:
    assert outside(APP_LOGS_GLOB) == 900
    loglake("compact")
    assert outside(APP_LOGS_GLOB) == 900, "the replaced files are still there"
    assert outside(MANIFEST_FILES, MANIFEST_COUNT) == 900
    assert len(list((data / "lake").rglob("*.parquet"))) == 3


def test_a_query_reading_the_lake_keeps_the_replaced_files_until_it_ends(data: Path) -> None:
    loglake("flush")  # writes the manifest
    store, lake = SQLiteHotStore(data / "hot.db"), LocalObjectStore(data / "lake")
    try:
        with reading(store):  # as a loglake query from any process holds it while it reads
            loglake("compact")
            assert len(list((data / "lake").rglob("*.parquet"))) == 3 * 5 + 3, "deleted under a reader"
            assert outside(MANIFEST_FILES, MANIFEST_COUNT) == 900, "the manifest lists the new snapshot only"
            assert outside(APP_LOGS_GLOB) == 1800  # a glob sees both, until the reader is done
        assert collect_garbage(store, lake, now_ms=0) == 15  # the next turn, long before the grace period ends
        assert outside(APP_LOGS_GLOB) == 900
    finally:
        store.close()


def test_after_retention_outside_readers_no_longer_see_the_days_nor_their_folders(data: Path) -> None:
    loglake("retention", "--days", str((datetime.now(UTC).date() - date(2026, 11, 3)).days))  # keeps 2026-11-03 on
    assert outside(APP_LOGS_GLOB) == 300
    assert outside(MANIFEST_FILES, MANIFEST_COUNT) == 300
    assert folders(data / "lake") == ["type=app_logs", "type=app_logs/date=2026-11-03"]


def test_each_table_has_its_own_glob_once_amplify_tables_exist(data: Path, tmp_path: Path) -> None:
    export = tmp_path / "export.csv"
    export.write_bytes(access_log(varied_requests(40, START, DAY, "o")))
    loglake("amplify", "import", str(export), "--app", "site")
    with pytest.raises(duckdb.Error, match="Hive partition"):  # the README says why: two layouts
        outside("SELECT count(*) FROM read_parquet('loglake-data/lake/**/*.parquet', hive_partitioning = true)")
    assert outside(APP_LOGS_GLOB) == 900
    assert outside(AMPLIFY_GLOB) == 40
    manifest = json.loads((data / "lake" / "type=amplify_access" / "_manifest.json").read_text())
    assert [(m["app"], m["date"], m["records"]) for m in manifest] == [("site", "2026-11-01", 40)]


def test_the_readme_shows_these_statements() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    for statement in (APP_LOGS_GLOB, AMPLIFY_GLOB, MANIFEST_FILES, MANIFEST_COUNT):
        assert statement in readme
