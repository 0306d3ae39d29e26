"""The lake's catalog in hot.db (`lake_files`): which objects make up each table, with their time span.

Queries take the file list from here, in the same SQLite snapshot as the hot rows, instead of listing
the object store: a listing is slow on S3 and cannot tell a flush's published-but-uncommitted object
from a committed one. Writers change it only inside transactions that also move the rows (flush) or
swap files (compaction, retention), so a snapshot is always exactly-once.

Removed objects (replaced by compaction, dropped by retention) go as soon as no query can still be
reading them. Every reader of catalog-listed objects holds the catalog's readers lock (`reading`: a
shared flock on `lake-readers.lock` beside hot.db, in any process) from listing them to its last read;
after a change, `collect_garbage` deletes them at once when nobody holds it, since a reader that
starts later lists the new snapshot. Otherwise they wait in `lake_garbage` until nobody does, or at
most a grace period longer than any query may run.

Engines outside loglake (DuckDB, Spark, Polars reading the folder) cannot read the catalog: each
table's `type=<dir>/_manifest.json` lists its objects, a JSON array of {"path" (relative to the lake
root), the partitions ("date", "app"), "records", "bytes", "first", "last"}. `collect_garbage`
rewrites the manifests before it deletes anything, so an object leaves its manifest before it leaves
the store (files starting with `_` are ignored by Athena, Hive and Spark).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

from loglake.lake.layout import day_of, partitions_of
from loglake.lake.objectstore import ObjectStore, ObjectStoreError
from loglake.lake.tables import TABLES, LakeTable
from loglake.locks import exclusive_lock, nobody_holds, shared_lock
from loglake.store.sqlite import SQLiteHotStore
from loglake.times import LATEST_MS, format_datetime

READERS_LOCK = "lake-readers.lock"
PUBLISH_LOCK = "lake-publish.lock"  # one manifest writer and deleter at a time
MANIFEST = "_manifest.json"
EMPTY_MANIFEST = b"[]\n"


class LakeFile(NamedTuple):
    key: str
    table_name: str
    day: str  # YYYY-MM-DD
    min_ts: int
    max_ts: int
    records: int
    bytes: int
    final: bool = False  # written by a day's final merge (compact.final_groups)


_FILE_COLUMNS = "key, table_name, day, min_ts, max_ts, records, bytes, final"


def add_files(conn: sqlite3.Connection, files: Iterable[LakeFile], now_ms: int) -> None:
    conn.executemany(
        f"INSERT INTO lake_files ({_FILE_COLUMNS}, created_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [(*f, now_ms) for f in files],
    )


def retire_files(conn: sqlite3.Connection, keys: Sequence[str], delete_after_ms: int) -> None:
    """Take objects out of the catalog; the object store keeps them until `delete_after_ms`."""
    conn.executemany("DELETE FROM lake_files WHERE key = ?", [(k,) for k in keys])
    conn.executemany(
        "INSERT OR REPLACE INTO lake_garbage (key, delete_after_ms) VALUES (?, ?)",
        [(k, delete_after_ms) for k in keys],
    )


def list_files(
    read: Callable[[str, list], list[tuple]],
    table_name: str,
    since_ms: int | None = None,
    until_ms: int | None = None,
) -> list[LakeFile]:
    """A table's files, oldest day first; with bounds, only those holding records in [since, until)."""
    sql = f"SELECT {_FILE_COLUMNS} FROM lake_files WHERE table_name = ?"
    params: list = [table_name]
    if since_ms is not None:  # the day narrows by the index, the time span exactly
        sql += " AND day >= ? AND max_ts >= ?"
        params += [_day(since_ms), since_ms]
    if until_ms is not None:
        sql += " AND day <= ? AND min_ts < ?"
        params += [_day(until_ms), until_ms]
    return [LakeFile(*row[:-1], bool(row[-1])) for row in read(sql + " ORDER BY day, min_ts", params)]


def listed_file(read: Callable[[str, list], list[tuple]], key: str) -> LakeFile | None:
    """The catalog's entry of lake object `key`, None when the catalog does not list it (any more)."""
    rows = read(f"SELECT {_FILE_COLUMNS} FROM lake_files WHERE key = ?", [key])
    return LakeFile(*rows[0][:-1], bool(rows[0][-1])) if rows else None


def newest_file_ms(read: Callable[[str, list], list[tuple]], table_name: str) -> int | None:
    """The time of a table's newest record in the lake, None when it has no files."""
    return read("SELECT max(max_ts) FROM lake_files WHERE table_name = ?", [table_name])[0][0]


def files_span(
    read: Callable[[str, list], list[tuple]], table_name: str, since_ms: int, until_ms: int
) -> tuple[int | None, int | None, int | None]:
    """Of a table's files holding records in [since, until): how many records they hold, the time of
    their oldest and of their newest (None each when there are none)."""
    sql = (
        "SELECT sum(records), min(min_ts), max(max_ts) FROM lake_files"
        " WHERE table_name = ? AND max_ts >= ? AND min_ts < ?"
    )
    return read(sql, [table_name, since_ms, until_ms])[0]


def _day(ts_ms: int) -> str:
    """The date partition of a time, for any time a client can send (clamped to years 1970-9999)."""
    return day_of(min(max(ts_ms, 0), LATEST_MS - 1)).isoformat()


@contextlib.contextmanager
def reading(store: SQLiteHotStore) -> Iterator[None]:
    """Hold while using objects listed from the catalog, from the listing to the last byte read, so
    that collect_garbage does not delete them under the reader."""
    with shared_lock(_beside(store, READERS_LOCK)):
        yield


def nobody_reading(store: SQLiteHotStore) -> bool:
    """Whether no reader holds the catalog (`reading`) now: what it listed may be deleted."""
    return nobody_holds(_beside(store, READERS_LOCK))


def collect_garbage(store: SQLiteHotStore, lake: ObjectStore, now_ms: int) -> int:
    """After a change of the catalog: rewrite the manifests that changed, then delete the retired
    objects, all of them when no reader holds the catalog, else those whose grace period is over (S3
    calls are slow, so outside the writer). Returns how many were deleted."""
    with exclusive_lock(_beside(store, PUBLISH_LOCK)):
        publish_manifests(store, lake)
        if nobody_reading(store):
            due = store.read("SELECT key FROM lake_garbage")
        else:
            due = store.read("SELECT key FROM lake_garbage WHERE delete_after_ms <= ?", (now_ms,))
        for (key,) in due:
            lake.delete(key)
        store.run_in_writer(lambda conn: conn.executemany("DELETE FROM lake_garbage WHERE key = ?", due))
    return len(due)


def manifest_key(table: LakeTable) -> str:
    return f"type={table.directory}/{MANIFEST}"


def manifest(store: SQLiteHotStore, table: LakeTable) -> bytes:
    """The table's objects as outside engines read them (see the module's description)."""
    entries = [
        {
            "path": f.key,
            **{k: v for k, v in partitions_of(f.key).items() if k != "type"},
            "records": f.records,
            "bytes": f.bytes,
            "first": format_datetime(f.min_ts),
            "last": format_datetime(f.max_ts),
        }
        for f in list_files(store.read, table.name)
    ]
    return json.dumps(entries, separators=(",", ":")).encode() + b"\n"


def publish_manifests(store: SQLiteHotStore, lake: ObjectStore) -> None:
    """Rewrite each table's manifest that no longer matches the catalog; a table without objects has none."""
    for table in TABLES.values():
        key, current = manifest_key(table), manifest(store, table)
        try:
            stored = lake.get(key)
        except ObjectStoreError:
            stored = None
        if current == EMPTY_MANIFEST:
            if stored is not None:
                lake.delete(key)
        elif stored != current:
            lake.put(key, current)


def _beside(store: SQLiteHotStore, name: str) -> Path:
    """A lock file of the catalog, in the folder of its database (the data dir)."""
    return store.path.parent / name
