"""Work in progress (parts before they are published, merges) is written in the data dir, in a folder
per process, and what a killed process left there is removed by the next one."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from loglake.lake.bulk import BulkWriter
from loglake.lake.compact import Compactor
from loglake.lake.flush import Flusher
from loglake.lake.objectstore import ObjectStore
from loglake.lake.schema import LAKE_SCHEMA
from loglake.lake.scratch import new_work_folder
from loglake.store.sqlite import SQLiteHotStore
from tests.lake.test_bulk import batch
from tests.lake.test_flush import DAY, START, seed

WORK_AND_DIE = """
import os, sys
from pathlib import Path
from loglake.lake.scratch import new_work_folder
(new_work_folder(Path(sys.argv[1]), "bulk-") / "part.parquet").write_bytes(b"x" * 1000)
os.kill(os.getpid(), 9)
"""


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteHotStore]:
    s = SQLiteHotStore(tmp_path / "hot.db")
    s.use_schema(LAKE_SCHEMA)
    yield s
    s.close()


def files_at_work(data_dir: Path) -> list[str]:
    return sorted(p.name for p in (data_dir / "tmp" / "work").rglob("*") if p.is_file())


def test_work_left_by_a_killed_process_is_removed_by_the_next_one(tmp_path: Path) -> None:
    child = subprocess.run([sys.executable, "-c", WORK_AND_DIE, str(tmp_path)], capture_output=True, timeout=60)
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert files_at_work(tmp_path) == ["part.parquet"]
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / "tmp" / "work" / f"process-{alive.pid}").mkdir()  # a running process's folder stays
        mine = new_work_folder(tmp_path, "flush-")
        left = sorted(p.name for p in (tmp_path / "tmp" / "work").iterdir())
        assert left == sorted([f"process-{alive.pid}", f"process-{os.getpid()}"])
        assert mine.parent.name == f"process-{os.getpid()}" and files_at_work(tmp_path) == []
        assert oct(mine.stat().st_mode & 0o777) == oct(0o700)
    finally:
        alive.kill()
        alive.wait()


def seen_at(step: str, data_dir: Path, seen: list[list[str]]) -> Callable[[str], None]:
    return lambda at: seen.append(files_at_work(data_dir)) if at == step else None


def test_bulk_parts_flush_rounds_and_merges_are_written_in_the_data_dir_and_removed_after(
    store: SQLiteHotStore, object_store: ObjectStore, tmp_path: Path
) -> None:
    seen: list[list[str]] = []
    writer = BulkWriter(store, object_store, on_step=seen_at("written", tmp_path, seen), wait_below_rows=0)
    try:
        writer.submit(batch(days=2, per_day=600)).result()
    finally:
        writer.close()
    assert [len(files) for files in seen] == [2]  # the batch's two parts, one per day
    seed(store, days=2)
    Flusher(store, object_store, rows_per_round=60, on_step=seen_at("written", tmp_path, seen)).flush(
        before_ms=START + 2 * DAY
    )
    assert len(seen) > 2 and all(seen[1:])  # each round's parts
    before = len(seen)
    compactor = Compactor(
        store, object_store, target_bytes=10_000_000, grace_ms=0, on_step=seen_at("written", tmp_path, seen)
    )
    assert compactor.compact().merged_files > 0
    assert len(seen) > before and all(seen[before:])  # each merge's output
    assert files_at_work(tmp_path) == []


def test_a_flush_round_that_cannot_write_its_parts_leaves_no_work_behind(
    store: SQLiteHotStore, object_store: ObjectStore, tmp_path: Path
) -> None:
    """A full disk fails every flush round, and the server's job retries each second: a round's folder (and
    what it had written) left behind each time piled up, taking the room that was freed, until a restart."""
    seed(store, days=2)
    flusher = Flusher(store, object_store, rows_per_round=60)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (100, hard))  # writes past 100 bytes fail, as on a full disk
    try:
        with pytest.raises(OSError):
            flusher.flush(before_ms=START + 2 * DAY)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert list((tmp_path / "tmp" / "work").rglob("flush-*")) == []
    assert store.count_before(START + 2 * DAY, at_most=1000) == 600  # nothing moved


def test_a_process_that_ends_normally_leaves_no_folder_behind(tmp_path: Path) -> None:
    """Each `loglake query --data-dir` (and `flush`, `compact`, ...) left an empty tmp/duckdb/process-<pid>
    folder, which only the next process removed: a normal exit removes its own, spills and work alike."""
    SQLiteHotStore(tmp_path / "hot.db").close()
    loglake = [sys.executable, "-m", "loglake"]
    query = subprocess.run(
        [*loglake, "query", "SELECT count(*) FROM logs", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert query.returncode == 0, query.stderr
    assert (tmp_path / "tmp" / "duckdb").is_dir()
    work = "from pathlib import Path; import sys; from loglake.lake.scratch import new_work_folder;"
    work += " new_work_folder(Path(sys.argv[1]), 'flush-')"
    child = subprocess.run([sys.executable, "-c", work, str(tmp_path)], capture_output=True, timeout=60)
    assert child.returncode == 0, child.stderr
    assert list((tmp_path / "tmp").rglob("process-*")) == []
