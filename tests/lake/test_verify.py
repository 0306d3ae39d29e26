"""Page checksums in every lake file, checked by loglake's own reads and by `loglake verify`, which also checks the
catalog's record counts and the databases."""

from __future__ import annotations

import http.server
import io
import logging
import random
import sqlite3
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime
from pathlib import Path

import boto3
import pyarrow.parquet as pq
import pytest
from botocore.config import Config
from botocore.credentials import Credentials

from loglake.lake.compact import Compactor, MergesFailed
from loglake.lake.flush import Flusher
from loglake.lake.lake import Lake, LakePolicy
from loglake.lake.layout import QUARANTINE, quarantined_key
from loglake.lake.manifest import LakeFile, list_files
from loglake.lake.objectstore import LocalObjectStore, ObjectStore, ObjectStoreError, S3ObjectStore
from loglake.lake.parquet_objects import ParquetObjects
from loglake.lake.query_answers import LakeUnreadable, QueryResult
from loglake.lake.recent_reader import LakeRecentReader
from loglake.lake.tables import APP_LOGS_TABLE
from loglake.lake.verify import VerifyReport, lake_file_problem, verify_data_dir, verify_lake
from loglake.store.base import RecentQuery
from loglake.store.sqlite import SQLiteHotStore
from tests.conftest import run_cli as run
from tests.damage import damage_table_page
from tests.lake.test_compact import NOW, catalog, flush_in_small_rounds, parts
from tests.lake.test_flush import DAY, START, seed
from tests.store.contract import record

pytestmark = pytest.mark.usefixtures("no_loglake_environment")


def flipped(data: bytes, position: int) -> bytes:
    damaged = bytearray(data)
    damaged[position] ^= 0x10
    return bytes(damaged)


def pages_of(data: bytes) -> range:
    """The bytes of a Parquet file's pages: after its magic, before its footer."""
    footer = int.from_bytes(data[-8:-4], "little")
    return range(4, len(data) - 8 - footer)


def unchecked_read(data: bytes, position: int) -> str:
    """How the file with that byte flipped reads when its pages are not checked (as DuckDB reads them): "failed",
    "misread" (other values than the file's) or "same" (the byte was one no read uses: a page header's statistics)."""
    try:
        values = pq.read_table(io.BytesIO(flipped(data, position)))
    except (OSError, ValueError):
        return "failed"
    return "same" if values == pq.read_table(io.BytesIO(data)) else "misread"


def test_every_byte_flipped_in_a_lake_files_pages_is_found(store: SQLiteHotStore, object_store: ObjectStore) -> None:
    """Unchecked, 31 of 100 random flips in a Snappy part read as other values; with page checksums every flip that
    changes what is read is found, naming the row group and the column."""
    flush_in_small_rounds(store, object_store)
    files = list_files(store.read, APP_LOGS_TABLE.name)
    objects = ParquetObjects(object_store)
    assert [lake_file_problem(objects, file) for file in files] == [None] * len(files)
    chosen = random.Random(7)
    outcomes = []
    for _ in range(40):
        file = chosen.choice(files)
        data = object_store.get(file.key)
        position = chosen.choice(pages_of(data))
        outcomes.append(unchecked_read(data, position))
        object_store.put(file.key, flipped(data, position))
        try:
            problem = lake_file_problem(objects, file)
        finally:
            object_store.put(file.key, data)
        if outcomes[-1] != "same":
            assert problem is not None and problem.startswith("row group "), (position, outcomes[-1], problem)
    assert outcomes.count("misread") > 0  # (some of the flips are those the checksums alone catch)


def test_a_merge_leaves_a_part_with_a_damaged_page_as_it_is_rather_than_write_its_values_anew(
    store: SQLiteHotStore, tmp_path: Path
) -> None:
    """Unchecked, a merge read a flipped bit as another value and wrote it into the day's new file, with a checksum
    of its own: the damage could no longer be found."""
    objects = LocalObjectStore(tmp_path / "lake")
    flush_in_small_rounds(store, objects, days=2)
    day, key, _ = catalog(store)[0]
    data = objects.get(key)
    position = next(p for p in pages_of(data) if unchecked_read(data, p) == "misread")
    objects.put(key, flipped(data, position))
    lake = Lake(store, objects, tmp_path, policy=LakePolicy(grace_ms=0))
    try:
        report = lake.compact()
    finally:
        lake.close()
    assert list(report.damaged) == [key] and "CRC checksum verification failed" in report.damaged[key]
    days = [d for d, _, _ in catalog(store)]
    assert days.count(day) == 2 and key in [k for _, k, _ in catalog(store)]  # its day merged without it
    assert days.count("2026-11-02") == 1  # the other day merged
    report = verify_data_dir(tmp_path, store, objects, lambda *progress: None)
    assert [d.what for d in report.damaged] == [key]
    assert "CRC checksum verification failed" in report.damaged[0].problem


@pytest.mark.parametrize("command", [["compact"], ["flush", "--all"]])
def test_compact_over_a_damaged_part_says_what_merged_and_what_failed(tmp_path: Path, command: list[str]) -> None:
    """`loglake compact` and `flush --all` ended in a traceback of the damaged part's read error: what had merged went
    unsaid, and the files those merges replaced stayed on disk until the next maintenance."""
    data = tmp_path / "data"
    store = SQLiteHotStore(data / "hot.db")
    objects = LocalObjectStore(data / "lake")
    flush_in_small_rounds(store, objects, days=2)
    _, damaged, _ = catalog(store)[0]
    objects.put(damaged, b"not a Parquet file")
    store.close()

    result = run(*command, "--data-dir", str(data))
    assert result.exit_code == 1
    assert "merged 9 file(s) (540 records) into 2 in " in result.stdout  # the other day, and the rest of its own
    assert f"DAMAGED {damaged}: " in result.stderr and "its day merged without it" in result.stderr
    assert "Error: 1 damaged lake file(s) left as they are" in result.stderr
    assert "`loglake verify --quarantine` takes them out of the catalog" in result.stderr
    assert len(parts(objects)) == 2 + 1 and objects.exists(damaged)  # the merged small files deleted


@pytest.mark.parametrize("lost", [False, True])
def test_a_damaged_part_is_said_once_and_its_day_merges_without_it(
    store: SQLiteHotStore, tmp_path: Path, caplog: pytest.LogCaptureFixture, lost: bool
) -> None:
    """Every compaction turn read the damaged (or lost) part again, failed its day's merge and logged it again: the
    day's files were never merged."""
    objects = LocalObjectStore(tmp_path / "lake")
    flush_in_small_rounds(store, objects, days=1)
    _, damaged, _ = catalog(store)[0]
    if lost:
        objects.delete(damaged)
    else:
        objects.put(damaged, b"not a Parquet file")
    lake = Lake(store, objects, tmp_path, policy=LakePolicy(grace_ms=0))
    try:
        with caplog.at_level(logging.WARNING, "loglake.lake"):
            first = lake.compact()
            flush_in_small_rounds(store, objects, days=1)  # five more parts of the day
            second = lake.compact()
    finally:
        lake.close()
    assert list(first.damaged) == [damaged] and second.damaged == {}
    assert (first.merged_files, first.records) == (4, 240)
    assert (second.merged_files, second.records) == (6, 540)  # the day merged again, still without it
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1, said
    assert said[0].startswith(f"lake file {damaged} is damaged (") and "`loglake verify --quarantine`" in said[0]
    assert sorted(k for _, k, _ in catalog(store))[0] == damaged and len(catalog(store)) == 2


def test_verify_checks_a_data_dir_and_exits_1_naming_what_is_damaged(tmp_path: Path) -> None:
    data, files = flushed_data_dir(tmp_path, days=2)
    assert len(files) == 2

    result = run("verify", "--data-dir", str(data))
    assert result.exit_code == 0, result.output
    checked, ok = result.stdout.splitlines()
    assert checked.startswith(f"checked 1 database(s) and 2 lake file(s) (600 records, {_mb(files)}) in ")
    assert ok == "all ok"

    counted, missing = files
    with sqlite3.connect(data / "hot.db") as conn:
        conn.execute("UPDATE lake_files SET records = records + 1 WHERE key = ?", [counted.key])
    (data / "lake" / missing.key).unlink()
    database = data / "sessions.db"
    with sqlite3.connect(database) as conn:
        conn.execute("CREATE TABLE t (x TEXT)")
        conn.executemany("INSERT INTO t VALUES (?)", [("x" * 200,)] * 2000)
    conn.close()
    with database.open("r+b") as f:  # a page in the middle overwritten
        f.seek(4096 * 5)
        f.write(b"\xff" * 4096)

    result = run("verify", "--data-dir", str(data))
    assert result.exit_code == 1
    database_line, *file_lines, checked = result.stdout.splitlines()
    assert database_line.startswith("DAMAGED sessions.db: ")  # (the databases first)
    assert file_lines == [
        f"DAMAGED {counted.key}: holds 300 records where the catalog says 301",
        f"DAMAGED {missing.key}: missing from the lake's storage",
    ]
    assert checked.startswith("checked 2 database(s) and 2 lake file(s)")
    assert "3 damaged: restore them from a backup of the data dir" in result.stderr


def test_a_file_replaced_by_maintenance_while_verify_runs_is_passed_over(store: SQLiteHotStore, tmp_path: Path) -> None:
    objects = LocalObjectStore(tmp_path / "lake")
    flush_in_small_rounds(store, objects, days=1)
    listed = len(catalog(store))
    lake = Lake(store, objects, tmp_path, policy=LakePolicy(grace_ms=0))
    seen: list[tuple[int, int]] = []

    def progress(done: int, files: int, done_bytes: int, total_bytes: int) -> None:
        seen.append((done, files))
        if done == 1:  # the day's other files merged and deleted before their turn
            lake.compact()
            lake.collect_garbage()

    try:
        report = verify_data_dir(tmp_path, store, objects, progress)
    finally:
        lake.close()
    assert report.damaged == [] and report.files == 1 and report.replaced == listed - 1
    assert seen == [(n, listed) for n in range(1, listed + 1)]


def _mb(files: list[LakeFile]) -> str:
    return f"{sum(f.bytes for f in files) / 1e6:,.1f} MB"


def test_recent_logs_over_a_part_with_a_damaged_page_say_so_rather_than_answer_its_values(
    store: SQLiteHotStore, object_store: ObjectStore
) -> None:
    flush_in_small_rounds(store, object_store, days=1)
    files = list_files(store.read, APP_LOGS_TABLE.name)
    data = object_store.get(files[0].key)
    position = next(p for p in pages_of(data) if unchecked_read(data, p) == "misread")
    object_store.put(files[0].key, flipped(data, position))
    reader = LakeRecentReader(object_store)
    try:
        with pytest.raises(LakeUnreadable, match=f"{files[0].key}: could not verify page integrity"):
            reader.recent(files, RecentQuery(since_ms=START, limit=1000))
    finally:
        reader.close()


def flushed_data_dir(tmp_path: Path, days: int) -> tuple[Path, list[LakeFile]]:
    """A data dir of `days` seeded days, all flushed into its lake (a file a day), and the files."""
    data = tmp_path / "data"
    store = SQLiteHotStore(data / "hot.db")
    seed(store, days=days)
    Flusher(store, LocalObjectStore(data / "lake"), worker_process=False).flush(before_ms=START + days * DAY)
    files = list_files(store.read, APP_LOGS_TABLE.name)
    store.close()
    return data, files


def test_verify_names_a_damaged_hot_db_before_it_opens_the_lake(tmp_path: Path) -> None:
    """Opening the lake reads (and could migrate) hot.db: a damaged one was an `Error:` line, not a DAMAGED one."""
    data, _ = flushed_data_dir(tmp_path, days=1)
    damage_table_page(data / "hot.db", "schema_versions", length=192)  # (opening the store meets it)
    result = run("verify", "--data-dir", str(data))
    assert result.exit_code == 1
    assert result.stdout.startswith("DAMAGED hot.db: "), result.output
    assert "checked 1 database(s) and 0 lake file(s)" in result.stdout
    assert "the lake was not checked: its catalog is in the damaged hot.db" in result.stdout
    assert "1 damaged: restore them from a backup" in result.stderr and "lake file" not in result.stderr


def test_quarantine_takes_damaged_and_lost_files_out_of_the_catalog_and_keeps_what_is_left(
    store: SQLiteHotStore, object_store: ObjectStore, tmp_path: Path
) -> None:
    """With no backup, a lake file gone from storage failed every SQL query for good (DuckDB opens every file the
    view lists): taken out of the catalog, the lake answers again without its records."""
    flush_in_small_rounds(store, object_store)
    files = list_files(store.read, APP_LOGS_TABLE.name)
    damaged, lost = files[0], files[-1]
    data = flipped(object_store.get(damaged.key), pages_of(object_store.get(damaged.key))[50])
    object_store.put(damaged.key, data)
    object_store.delete(lost.key)
    lake = Lake(store, object_store, tmp_path, policy=LakePolicy(grace_ms=0))
    try:
        with pytest.raises(LakeUnreadable):
            lake.engine.query("SELECT count(*) FROM logs")
        taken = lake.quarantine([damaged.key, lost.key, "type=app_logs/date=2026-11-01/part-never-listed.parquet"])
        assert taken == [(damaged, True), (lost, False)]
        assert object_store.get(f"{QUARANTINE}/{damaged.key}") == data  # kept as it was
        assert not object_store.exists(damaged.key)  # (collected at once: nobody reads it)
        remaining = sum(f.records for f in files) - damaged.records - lost.records
        assert lake.engine.query("SELECT count(*) FROM logs").rows == [(remaining,)]
        report = verify_data_dir(tmp_path, store, object_store, lambda *progress: None)
        assert report.damaged == [] and report.files == len(files) - 2
    finally:
        lake.close()


def test_retention_deletes_the_quarantined_files_of_the_days_it_drops(
    store: SQLiteHotStore, object_store: ObjectStore, tmp_path: Path
) -> None:
    """A file `verify --quarantine` kept under _quarantine/ stayed there for good: retention dropped its day's other
    files, and the records the retention said were gone stayed in storage. Those of the days kept stay."""
    seed(store, days=3)
    Flusher(store, object_store).flush(before_ms=START + 3 * DAY)
    first, _, last = list_files(store.read, APP_LOGS_TABLE.name)
    # today is 2026-11-01 + 400 days: keeping 398 days keeps 2026-11-03 on
    lake = Lake(store, object_store, tmp_path, policy=LakePolicy(retention_days=398, grace_ms=0), clock=lambda: NOW)
    try:
        assert [kept for _, kept in lake.quarantine([first.key, last.key])] == [True, True]
        objects, _ = lake.expired_quarantine()
        assert [found.key for found in objects] == [quarantined_key(first.key)]
        assert object_store.exists(quarantined_key(first.key)), "told, not deleted yet"
        lake.expire()
        assert not object_store.exists(quarantined_key(first.key))
        assert object_store.exists(quarantined_key(last.key))
        assert lake.expired_quarantine() == ([], [])
    finally:
        lake.close()


def test_a_quarantined_records_client_id_stores_it_again_when_resent(
    store: SQLiteHotStore, object_store: ObjectStore, tmp_path: Path
) -> None:
    """The flush's map of client ids still named a quarantined record: its resend, the only copy left, was answered as
    a duplicate and dropped. A client id of a record in another file of the quarantined file's time span still is."""
    lost_id, kept_id = uuid.UUID(int=1).bytes, uuid.UUID(int=2).bytes
    lake = Lake(store, object_store, tmp_path, policy=LakePolicy(grace_ms=0, retention_days=0))
    try:
        store.put([record(START, "first", client_id=lost_id), record(START + 2000, "third")])
        lake.flush(everything=True)
        store.put([record(START + 1000, "second, late", client_id=kept_id)])  # in the first file's span
        lake.flush(everything=True)
        first, _ = list_files(store.read, APP_LOGS_TABLE.name)
        object_store.delete(first.key)
        assert [file.key for file, _ in lake.quarantine([first.key])] == [first.key]
        resent, again = record(START, "first, resent", client_id=lost_id), record(START + 1000, "x", client_id=kept_id)
        assert store.put([resent, again]) == [resent.log_id, store.flushed_id_of(kept_id)]
        rows = lake.engine.query("SELECT message FROM logs ORDER BY timestamp").rows
        assert rows == [("first, resent",), ("second, late",)]
    finally:
        lake.close()


def test_verify_quarantine_says_what_it_took_out(tmp_path: Path) -> None:
    data, files = flushed_data_dir(tmp_path, days=2)
    lost = files[0]
    (data / "lake" / lost.key).unlink()
    refused = run("verify", "--data-dir", str(data))
    assert refused.exit_code == 1 and "`loglake verify --quarantine` takes them out of the catalog" in refused.stderr
    taken = run("verify", "--quarantine", "--data-dir", str(data))
    assert taken.exit_code == 1  # (damage was found: records are gone)
    assert f"QUARANTINED {lost.key}: its 300 records out of the catalog, no file left" in taken.stdout
    again = run("verify", "--data-dir", str(data))
    assert again.exit_code == 0 and again.stdout.splitlines()[-1] == "all ok"
    assert "1 lake file(s) (300 records" in again.stdout


def test_retention_by_hand_says_and_deletes_the_quarantined_files_of_the_days_it_drops(tmp_path: Path) -> None:
    data, files = flushed_data_dir(tmp_path, days=2)
    for file in files:
        (data / "lake" / file.key).write_bytes(flipped((data / "lake" / file.key).read_bytes(), 200))
    assert run("verify", "--quarantine", "--data-dir", str(data)).stdout.count("QUARANTINED") == 2
    days = (datetime.now(UTC).date() - date(2026, 11, 2)).days  # keeping 2026-11-02 on
    planned = run("retention", "--dry-run", "--days", str(days), "--data-dir", str(data))
    assert "  and 1 quarantined file(s) of days before 2026-11-02 (0.0 MB)" in planned.stdout.splitlines()
    kept = [data / "lake" / QUARANTINE / file.key for file in files]
    assert [path.exists() for path in kept] == [True, True]
    done = run("retention", "--days", str(days), "--data-dir", str(data))
    assert "  and 1 quarantined file(s) of days before 2026-11-02 (0.0 MB)" in done.stdout.splitlines()
    assert [path.exists() for path in kept] == [False, True]


def footer_damaged(data: bytes) -> bytes:
    """A Parquet file's footer overwritten (its length and magic left): DuckDB's error for it named no file."""
    footer = int.from_bytes(data[-8:-4], "little")
    damaged = bytearray(data)
    damaged[-8 - footer : -8] = bytes(b ^ 0x5A for b in damaged[-8 - footer : -8])
    return bytes(damaged)


@pytest.mark.parametrize("which", [0, 7])  # (DuckDB reads the first listed file's footer as the view is bound)
def test_sql_whose_date_filter_leaves_out_a_lost_or_damaged_files_day_answers(
    store: SQLiteHotStore, tmp_path: Path, which: int
) -> None:
    """One lake file gone from storage failed every SQL query, even one whose `date` filter leaves its day out (DuckDB
    opens every file a view lists); a damaged footer's 503 did not name the file."""
    objects = LocalObjectStore(tmp_path / "lake")
    flush_in_small_rounds(store, objects, days=3)
    files = list_files(store.read, APP_LOGS_TABLE.name)
    lost, damaged = files[which], files[-1]  # (of the first day or the second, and of the third)
    kept = objects.get(lost.key)
    objects.delete(lost.key)
    objects.put(damaged.key, footer_damaged(objects.get(damaged.key)))
    lake = Lake(store, objects, tmp_path)
    try:
        other_day = "2026-11-02" if lost.day == "2026-11-01" else "2026-11-01"
        for sql in [f"SELECT count(*) FROM logs WHERE date = '{other_day}'", "SELECT count(*) FROM logs"] * 2:
            try:
                answer = lake.engine.query(sql)
            except LakeUnreadable as e:
                answer = e
            if "WHERE" in sql:  # its day and the damaged one's left out
                assert isinstance(answer, QueryResult) and answer.rows == [(300,)]
            else:
                assert isinstance(answer, LakeUnreadable), answer
                assert lost.key in str(answer) or damaged.key in str(answer)  # (the first its read meets)
        for sql in [
            f"SELECT count(*) FROM logs WHERE service = 'web' AND date <> '{other_day}'",
            *[f"SELECT count(*) FROM logs WHERE date = '{day}'" for day in (lost.day, damaged.day)],
        ]:  # (any filter but one leaving out their days: their records may be wanted)
            with pytest.raises(LakeUnreadable, match=f"({lost.key}|{damaged.key})"):
                lake.engine.query(sql)
        with pytest.raises(LakeUnreadable, match=f"{damaged.key}: damaged: "):
            lake.engine.query(f"SELECT count(*) FROM logs WHERE date = '{damaged.day}'")
        objects.put(lost.key, kept)  # restored
        assert lake.engine.query(f"SELECT count(*) FROM logs WHERE date = '{lost.day}'").rows == [(300,)]
    finally:
        lake.close()


def test_queries_meeting_a_lost_file_together_all_read_around_it(
    store: SQLiteHotStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Queries on several connections whose views all listed a file gone meanwhile: the first to look for it found it,
    and each of the others, looking after, no longer counted it among the files to look at and answered 503 naming
    it, although its `date` filter leaves the file's day out."""
    objects = LocalObjectStore(tmp_path / "lake")
    flush_in_small_rounds(store, objects, days=3)
    lost = list_files(store.read, APP_LOGS_TABLE.name)[0]
    lake = Lake(store, objects, tmp_path)
    sql = "SELECT count(*) FROM logs WHERE date = '2026-11-02'"
    connections = lake.engine.limits.concurrency
    together = threading.Barrier(connections, timeout=30)

    def query(_: int) -> object:
        together.wait()  # (so each connection defines its views)
        try:
            return lake.engine.query(sql).rows
        except LakeUnreadable as e:
            return e

    try:
        with ThreadPoolExecutor(connections) as threads:
            assert list(threads.map(query, range(connections))) == [[(300,)]] * connections
        objects.delete(lost.key)
        views = lake.engine._views
        find_unreadable, one_at_a_time = views.find_unreadable, threading.Lock()

        def after_all_failed(cursor: object, error: Exception) -> bool:
            together.wait()
            with one_at_a_time:
                return find_unreadable(cursor, error)

        monkeypatch.setattr(views, "find_unreadable", after_all_failed)
        with ThreadPoolExecutor(connections) as threads:
            assert list(threads.map(query, range(connections))) == [[(300,)]] * connections
    finally:
        lake.close()


class _ThrottlingS3(http.server.BaseHTTPRequestHandler):
    """An S3 endpoint that asks every request to slow down, as S3 does under load (503 SlowDown)."""

    def _slow_down(self) -> None:
        body = b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
        self.send_response(503)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_HEAD = do_GET = do_PUT = do_POST = do_DELETE = _slow_down

    def log_message(self, *args: object) -> None:
        pass


def test_an_s3_lake_throttling_a_merge_leaves_no_file_taken_for_damaged(
    store: SQLiteHotStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A merge that S3 failed (throttling, or out of reach) had each file of its group read again to find the damaged
    one, which the storage failed alike: each was taken for damaged, left out of merges for the process's life and
    logged for `loglake verify --quarantine` to take out of the catalog, as verify itself called them damaged."""
    seed(store, days=1)
    Flusher(store, LocalObjectStore(tmp_path / "lake"), rows_per_round=150).flush(before_ms=START + DAY)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ThrottlingS3)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    client = boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{server.server_address[1]}",
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )
    lake = S3ObjectStore(client, "lake", credentials=Credentials("key", "secret"))
    try:
        compactor = Compactor(store, lake, target_bytes=10_000_000, grace_ms=0)
        with caplog.at_level(logging.WARNING, "loglake.lake"), pytest.raises(MergesFailed):
            compactor.compact()
        assert compactor.damaged == {}  # merged at the next turn, once S3 answers
        assert not any("is damaged" in r.getMessage() for r in caplog.records)
        with pytest.raises(ObjectStoreError, match=r"cannot read s3://lake/type=app_logs/.*HTTP status 503"):
            verify_lake(VerifyReport(), store, lake, lambda *progress: None)
    finally:
        server.shutdown()
        server.server_close()
