"""The lake's catalog in hot.db (`lake_files`): which objects make up each table, with their time span.

Queries take the file list from here, in the same SQLite snapshot as the hot rows, instead of listing
the object store: a listing is slow on S3 and cannot tell a flush's published-but-uncommitted object
from a committed one. Writers change it only inside transactions that also move the rows (flush) or
swap files (compaction, retention), so a snapshot is always exactly-once.

Removed objects are not deleted at once: a query that started on the previous snapshot may still be
reading them. They wait in `lake_garbage` for a grace period longer than any query may run.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple

from loglake.lake.layout import day_of
from loglake.lake.objectstore import ObjectStore
from loglake.model import LATEST_MS
from loglake.store.sqlite import SQLiteHotStore


class LakeFile(NamedTuple):
    key: str
    table_name: str
    day: str  # YYYY-MM-DD
    min_ts: int
    max_ts: int
    records: int
    bytes: int


_FILE_COLUMNS = "key, table_name, day, min_ts, max_ts, records, bytes"


def add_files(conn: sqlite3.Connection, files: Iterable[LakeFile], now_ms: int) -> None:
    conn.executemany(
        f"INSERT INTO lake_files ({_FILE_COLUMNS}, created_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
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
    return [LakeFile(*row) for row in read(sql + " ORDER BY day, min_ts", params)]


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


def collect_garbage(store: SQLiteHotStore, lake: ObjectStore, now_ms: int) -> int:
    """Delete the retired objects whose grace period is over (outside the writer: S3 calls are slow)."""
    due = store.read("SELECT key FROM lake_garbage WHERE delete_after_ms <= ?", (now_ms,))
    for (key,) in due:
        lake.delete(key)
    store.run_in_writer(lambda conn: conn.executemany("DELETE FROM lake_garbage WHERE key = ?", due))
    return len(due)
