"""One flush round: read the oldest due hot rows and write them as one Parquet file per UTC date.

Two readers, one result. A small flush reads with the hot store's own sqlite3 connections, in a thread.
A backlog (`loglake flush --all`, a server catching up) is read in a worker process with the ADBC SQLite
driver, which hands rows over as Arrow columns with no Python object per value (about three times faster
than sqlite3), and that process also converts and writes the files, so the flushing process is left
with committing. ADBC's driver carries its own copy of SQLite: it must never open hot.db in a process
that also opens it with Python's sqlite3, since two SQLite copies in one process release each other's
POSIX locks; the worker process exists for that reason as much as for speed.
"""

from __future__ import annotations

import array
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from loglake.lake.hot_rows import as_arrow, hot_rows_table, int64_bytes
from loglake.lake.layout import app_logs_key, new_part_name
from loglake.lake.manifest import LakeFile
from loglake.lake.parts import by_utc_day, write_part
from loglake.lake.scratch import new_work_folder
from loglake.store.sqlite import SQLiteHotStore
from loglake.store.sqlite_rows import due_rows

_ID_HI, _ID_LO, _CLIENT_ID = 0, 1, 8  # positions in COLUMNS


@dataclass(frozen=True)
class RoundRows:
    """Which hot rows a round read: what its commit deletes. The ids are native int64 words (picklable,
    compact) and `client_ids` the (client id, id_hi, id_lo) of the rows that carry one."""

    count: int
    first_id: tuple[int, int]
    last_id: tuple[int, int]
    highs: bytes
    lows: bytes
    client_ids: list[tuple[str, int, int]]

    @classmethod
    def of(cls, columns: list[Any]) -> RoundRows:
        highs, lows = (as_arrow(columns[i], pa.int64()) for i in (_ID_HI, _ID_LO))
        first, last = _id_bounds(highs, lows)
        return cls(len(highs), first, last, int64_bytes(highs), int64_bytes(lows), _client_ids(columns))

    def ids(self) -> zip:
        return zip(array.array("q", self.highs), array.array("q", self.lows), strict=True)


@dataclass(frozen=True)
class WrittenRound:
    rows: RoundRows
    files: list[LakeFile]
    work: Path  # the folder holding the files until they are published


def read_round(
    store: SQLiteHotStore, before_ms: int, after: tuple[int, int] | None, limit: int
) -> tuple[pa.Table, RoundRows] | None:
    """The round's rows through the hot store's sqlite3 readers."""
    columns = store.due_columns(before_ms, after, limit)
    return _as_round(columns) if columns is not None else None


def write_round(rows: tuple[pa.Table, RoundRows] | None, now_ms: int, data_dir: Path) -> WrittenRound | None:
    """The round's files in a new work folder, one per UTC date of the records' own timestamps."""
    if rows is None:
        return None
    table, read = rows
    work = new_work_folder(data_dir, "flush-")
    try:
        files = [write_part(rows, app_logs_key(day, new_part_name(now_ms)), work) for day, rows in by_utc_day(table)]
    except BaseException:  # a full disk fails each retry: this process's folder is only reaped after it ends
        shutil.rmtree(work, ignore_errors=True)
        raise
    return WrittenRound(read, files, work)


def read_and_write_in_worker(
    db_path: str, before_ms: int, after: tuple[int, int] | None, limit: int, now_ms: int
) -> WrittenRound | None:
    """A worker process's round: read with ADBC (read-only), convert and write the files."""
    cursor = _adbc_connection(db_path).cursor()
    try:
        # One batch for the whole round: the driver infers a column's type from its first batch.
        cursor.adbc_statement.set_options(**{"adbc.sqlite.query.batch_rows": str(limit)})
        cursor.execute(*due_rows(before_ms, after, limit))
        table = cursor.fetch_arrow_table()
    finally:
        cursor.close()
    return write_round(_as_round(table.columns) if table.num_rows else None, now_ms, Path(db_path).parent)


_adbc_connections: dict[str, Any] = {}


def _adbc_connection(db_path: str) -> Any:
    if db_path not in _adbc_connections:
        import adbc_driver_sqlite.dbapi  # only ever imported in a flush worker process, see above

        uri = Path(db_path).absolute().as_uri() + "?mode=ro"
        # autocommit: each round reads a fresh snapshot, no transaction left open between rounds
        _adbc_connections[db_path] = adbc_driver_sqlite.dbapi.connect(uri, autocommit=True)
    return _adbc_connections[db_path]


def _as_round(columns: list[Any]) -> tuple[pa.Table, RoundRows]:
    return hot_rows_table(columns), RoundRows.of(columns)


def _id_bounds(highs: pa.Array, lows: pa.Array) -> tuple[tuple[int, int], tuple[int, int]]:
    """The smallest and the largest (id_hi, id_lo) pair, computed column-wise (no tuple per row)."""
    bounds = []
    for pick in (pc.min, pc.max):
        high = pick(highs)
        bounds.append((high.as_py(), pick(pc.filter(lows, pc.equal(highs, high))).as_py()))
    return bounds[0], bounds[1]


def _client_ids(columns: list[Any]) -> list[tuple[str, int, int]]:
    client_ids, highs, lows = columns[_CLIENT_ID], columns[_ID_HI], columns[_ID_LO]
    if isinstance(client_ids, pa.ChunkedArray | pa.Array):
        present = pc.is_valid(client_ids)
        if not pc.any(present).as_py():
            return []
        client_ids, highs, lows = (pc.filter(c, present).to_pylist() for c in (client_ids, highs, lows))
    return [(c, hi, lo) for c, hi, lo in zip(client_ids, highs, lows, strict=True) if c is not None]
