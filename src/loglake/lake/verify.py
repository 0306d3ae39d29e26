"""Verify a data dir's stored data whole (`loglake verify`): every page of every lake file the catalog lists, read
and checked against its CRC-32 (parts.PAGE_CHECKSUMS) and its file's row count against the catalog's, and each
SQLite database's own check (`PRAGMA quick_check`).

SQL reads lake files with DuckDB, which does not verify page checksums: a bit flipped on a disk or in a copy is
read as another value there (loglake's own reads, merges among them, refuse it). This is the check to run after a
restore, a disk's error or a copy between stores, and now and then. It only reads, beside a running server: a file
that a merge or retention replaces while it runs is passed over, not called damaged. A file written before loglake
wrote page checksums has none to check: decoding it whole finds most damage, not all.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq

from loglake.lake.manifest import LakeFile, list_files, listed_file, reading
from loglake.lake.objectstore import ObjectStore, ObjectStoreError
from loglake.lake.parquet_objects import ParquetObjects
from loglake.lake.tables import TABLES
from loglake.lake.waiting import (
    WAITING_DIR,
    batch_files,
    batch_problem,
    is_named,
    quarantined_batch_file,
    waiting_dir,
)
from loglake.sqlitedb import integrity_problem
from loglake.store.sqlite import SQLiteHotStore


@dataclass(slots=True)
class Damaged:
    what: str  # a lake file's key, or a database's file name
    problem: str


@dataclass(slots=True)
class VerifyReport:
    files: int = 0  # lake files checked (those replaced meanwhile left out)
    waiting: int = 0  # waiting bulk batches checked (lake/waiting.py: acknowledged records not in the lake yet)
    records: int = 0
    bytes: int = 0
    replaced: int = 0  # listed at the start, replaced by a merge or retention before their turn
    databases: list[str] = field(default_factory=list)
    damaged: list[Damaged] = field(default_factory=list)


# What is wrong with a lake file the catalog lists that its storage no longer holds (removed outside loglake).
MISSING_FROM_STORAGE = "missing from the lake's storage"
# Called after each lake file: (files done, files listed, bytes done, bytes listed).
Progress = Callable[[int, int, int, int], None]
# pyarrow's words for an S3 lake's storage failing a read (unreachable, throttling, refusing the credentials):
# `AWS Error NETWORK_CONNECTION during HeadObject operation`, `AWS Error UNKNOWN (HTTP status 503) during ...`. Not
# the object's bytes, which the next read may well find whole (NO_SUCH_KEY: the object gone meanwhile, not an outage).
_STORAGE_FAILED = re.compile(r"AWS Error (?!NO_SUCH_KEY\b)")


def verify_databases(data_dir: Path) -> VerifyReport:
    """Check each database of `data_dir` (read only: before anything opens them, which could migrate them)."""
    report = VerifyReport()
    for database in sorted(data_dir.glob("*.db")):
        report.databases.append(database.name)
        if problem := database_problem(database):
            report.damaged.append(Damaged(database.name, problem))
    return report


def verify_data_dir(data_dir: Path, store: SQLiteHotStore, lake: ObjectStore, progress: Progress) -> VerifyReport:
    """Check each database of `data_dir`, then each lake file the catalog lists."""
    report = verify_databases(data_dir)
    verify_lake(report, store, lake, progress)
    return report


def verify_lake(report: VerifyReport, store: SQLiteHotStore, lake: ObjectStore, progress: Progress) -> None:
    """Check each lake file the catalog in `store` lists, into `report`."""
    files = [file for table in TABLES for file in list_files(store.read, table)]
    listed_bytes = sum(file.bytes for file in files)
    objects = ParquetObjects(lake)
    done_bytes = 0
    for number, file in enumerate(files, 1):
        with reading(store):  # (a file replaced from here on waits for this read to end)
            if listed_file(store.read, file.key) is None:
                report.replaced += 1
            else:
                report.files += 1
                report.records += file.records
                report.bytes += file.bytes
                if problem := lake_file_problem(objects, file):
                    report.damaged.append(Damaged(file.key, problem))
        done_bytes += file.bytes
        progress(number, len(files), done_bytes, listed_bytes)


def verify_waiting(report: VerifyReport, store: SQLiteHotStore) -> None:
    """Check each waiting bulk batch's file (read whole, its records counted against its row), into `report` as
    `waiting/<file>`: a batch that cannot be read failed every SQL query and recent logs."""
    folder = waiting_dir(store.path.parent)
    for file, rows, newest_ms in batch_files(store.read):
        with reading(store):  # (a batch moved from here on keeps its file until this read ends)
            if not is_named(store.read, file):
                continue  # (moved into the lake meanwhile: its records are checked there)
            report.waiting += 1
            report.records += rows
            if problem := batch_problem(folder, file, rows):
                kept = quarantined_batch_file(folder, file, newest_ms)
                if kept.exists():  # (not lost: the one thing left to do is the run's)
                    problem += f", but in {kept.relative_to(folder.parent)}: `loglake verify --quarantine` was stopped"
                    problem += " before it took the batch out of hot.db; run it again"
                report.damaged.append(Damaged(f"{WAITING_DIR}/{file}", problem))


def lake_file_problem(objects: ParquetObjects, file: LakeFile, counted: bool = True) -> str | None:
    """What is wrong with a lake file, read whole a row group at a time (its pages checked as read), or None.
    `counted`: its records are checked against the catalog's count too (a lake without a catalog has none).
    ObjectStoreError if an S3 lake's storage failed the read: that says nothing of the file (_STORAGE_FAILED)."""
    try:
        parquet = objects.open(file.key)
        rows = 0
        for index in range(parquet.metadata.num_row_groups):
            try:
                rows += parquet.read_row_group(index, use_threads=False).num_rows
            except (OSError, ValueError) as e:  # (pyarrow: ArrowInvalid is a ValueError, a bad checksum an OSError)
                _raise_if_storage_failed(objects, file, e)
                return f"row group {index}{_column_at_fault(parquet, index)}: {_first_line(e)}"
    except FileNotFoundError:
        return MISSING_FROM_STORAGE
    except (OSError, ValueError) as e:  # an unreadable footer
        _raise_if_storage_failed(objects, file, e)
        return _first_line(e)
    if counted and rows != file.records:
        return f"holds {rows:,} records where the catalog says {file.records:,}"
    return None


def damaged_files(objects: ParquetObjects, files: list[LakeFile], counted: bool = True) -> dict[str, str]:
    """The files of `files` found damaged or gone (lake_file_problem), by key, with what is wrong; none while an S3
    lake's storage fails the reads: a merge that failed in an outage or under throttling is a failure to try again,
    its files not damaged ones to leave out of merges and to quarantine."""
    try:
        return {f.key: problem for f in files if (problem := lake_file_problem(objects, f, counted)) is not None}
    except ObjectStoreError:
        return {}


def _raise_if_storage_failed(objects: ParquetObjects, file: LakeFile, error: Exception) -> None:
    if isinstance(error, OSError) and _STORAGE_FAILED.search(str(error)):
        raise ObjectStoreError(f"cannot read {objects.store.uri(file.key)}: {_first_line(error)}") from None


def database_problem(path: Path) -> str | None:
    """What SQLite's quick_check finds wrong with a database (read-only), or None."""
    try:
        with contextlib.closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as conn:
            return integrity_problem(conn)
    except sqlite3.DatabaseError as e:  # (cannot be opened at all)
        return str(e)


def _column_at_fault(parquet: pq.ParquetFile, index: int) -> str:
    """`, column message` for the first column of row group `index` that fails alone; "" if none does."""
    for name in parquet.schema_arrow.names:
        try:
            parquet.read_row_group(index, columns=[name], use_threads=False)
        except (OSError, ValueError):
            return f", column {name}"
    return ""


def _first_line(error: BaseException) -> str:
    return str(error).split("\n")[0] or type(error).__name__
