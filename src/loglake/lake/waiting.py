"""Small bulk batches waiting, durable, until they add up to a lake part of a flush round's size.

A part per small batch (Filebeat's 1,600 documents, the OpenTelemetry SDK's 512) cost a Parquet file, its
fsync and catalog commit per request, then merges that rewrote every record again: twice the CPU per record
of 10,000-record batches. So such a batch is written as an Arrow IPC stream to a file of its own in
`waiting/` beside hot.db (fsynced, with its folder), and then named by a row of `bulk_batches`, committed by
the hot store's writer: the answer waits for that commit. lake/bulk.py moves the batches into parts later,
with the flush's protocol: the parts are added to the catalog and the rows deleted in ONE transaction
(`delete_moved_batches`); the files go after that commit.

Why a file and not the table as a BLOB in hot.db: SQLite writes a blob a 4 KiB page at a time, to the WAL,
again at the checkpoint, and walks its pages again to delete it: about 1 us of CPU per record of a
1,600-record batch, as much as the parts it saves (measured, see the branch's report). A file costs one
write and its fsyncs, and is read back by memory-mapping it.

Readers take the rows from the same SQLite snapshot as the hot rows and the catalog, so each record is read
exactly once whether it waits or was moved: SQL over `logs` (query_views.py), recent logs and the search's
bounds (reads.py), the counts of records not in the lake yet (lake.py). A reader holds the catalog's
readers lock (manifest.reading) while it reads, and a moved batch's file is deleted only when nobody holds
it (else at a later move), as compaction's replaced parts are: a snapshot from before the move may still
name it.

A file whose row is missing belongs to a write that failed or died before its commit, or to a move that
committed and could not delete it yet: `sweep` deletes those whose writer is gone.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Callable, Container, Iterable, Iterator, Sequence
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import pyarrow as pa
import pyarrow.compute as pc

from loglake.lake import writers
from loglake.lake.layout import day_of
from loglake.lake.manifest import nobody_reading
from loglake.lake.query_answers import UNREADABLE_FILE, LakeUnreadable
from loglake.lake.table_records import matches, table_records
from loglake.lake.tables import APP_LOGS_TABLE
from loglake.model import StoredRecord
from loglake.private_files import fsync_together, private_dir, private_file
from loglake.store.base import RecentQuery

if TYPE_CHECKING:
    from loglake.store.sqlite import SQLiteHotStore

Read = Callable[[str, Sequence[Any]], list[tuple]]

WAITING_DIR = "waiting"
QUARANTINE_DIR = "_quarantine"  # in WAITING_DIR: the files of batches `loglake verify --quarantine` took out
_SUFFIX = ".arrow"
_MS = pa.timestamp("ms")
_MAX_INT64 = 2**63 - 1


class Waiting(NamedTuple):
    batches: int
    rows: int
    bytes: int
    newest_ms: int | None


def waiting_dir(data_dir: Path) -> Path:
    return data_dir / WAITING_DIR


def batch_file_name(owner: str, number: int) -> str:
    """The name of a writer's (`owner`'s) `number`-th batch file: its writer first, for `sweep`."""
    return f"{owner}-{number}{_SUFFIX}"


def write_batch_file(folder: Path, name: str, table: pa.Table) -> int:
    """Write a batch's table to a new file in `folder` and make it durable (the file and its name); returns
    its size."""
    private_dir(folder)
    path = private_file(folder / name)  # (pyarrow would make it with the umask's mode: 0644)
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    fsync_together([path, folder])
    return path.stat().st_size


class BatchRow(NamedTuple):
    """A written batch file's row of `bulk_batches`."""

    rows: int
    min_ts: int
    max_ts: int
    bytes: int
    file: str


def batch_row(table: pa.Table, file: str, size: int) -> BatchRow:
    """The row naming a written batch file (write_batch_file), worked out before the hot store's writer
    stores it (that thread is every write's: it should only insert)."""
    span = pc.min_max(table.column("timestamp").cast(pa.int64()))
    return BatchRow(table.num_rows, span["min"].as_py(), span["max"].as_py(), size, file)


def store_batches(conn: sqlite3.Connection, rows: Sequence[BatchRow]) -> None:
    """Name written batch files in `bulk_batches`: from this commit on, they wait."""
    conn.executemany("INSERT INTO bulk_batches (rows, min_ts, max_ts, bytes, file) VALUES (?, ?, ?, ?, ?)", rows)


class BatchUnreadable(LakeUnreadable):
    """A waiting batch's file cannot be read: gone (a copy of the data dir without `waiting/`) or damaged outside
    loglake. Its acknowledged records are in no other place: a 503 naming it, as a damaged lake file's, never a 500
    or a move tried again for good."""

    def __init__(self, file: str, problem: str) -> None:
        self.file = file
        self.problem = problem
        super().__init__(f"{WAITING_DIR}/{file}: {problem}")


def read_batch_file(folder: Path, file: str) -> pa.Table:
    """A waiting batch's table, memory-mapped (still readable after the file is deleted); BatchUnreadable if it
    cannot be read."""
    try:
        return pa.ipc.open_stream(pa.memory_map(str(folder / file))).read_all()
    except FileNotFoundError:
        raise BatchUnreadable(file, "missing from the data dir") from None
    except (OSError, pa.ArrowInvalid) as e:  # (cut short: ArrowInvalid; bytes overwritten: either)
        raise BatchUnreadable(file, "damaged: " + (str(e).split("\n")[0] or type(e).__name__)) from None


def batch_problem(folder: Path, file: str, rows: int) -> str | None:
    """What is wrong with a waiting batch's file that should hold `rows` records (`loglake verify`), or None."""
    try:
        found = read_batch_file(folder, file).num_rows
    except BatchUnreadable as e:
        return e.problem
    return None if found == rows else f"holds {found:,} records where hot.db says {rows:,}"


def is_named(read: Read, file: str) -> bool:
    """Whether a batch file is still named by a row (else it was moved, by another process say, or quarantined)."""
    return bool(read("SELECT EXISTS (SELECT 1 FROM bulk_batches WHERE file = ?)", (file,))[0][0])


def rows_of(read: Read, files: Iterable[str]) -> int:
    """The records of the waiting batches of these files (those still waiting)."""
    files = list(files)
    marks = ", ".join("?" * len(files))
    return read(f"SELECT coalesce(sum(rows), 0) FROM bulk_batches WHERE file IN ({marks})", files)[0][0]


def batch_files(read: Read) -> list[tuple[str, int, int]]:
    """Each waiting batch's file, records and newest record's time, oldest first."""
    return read("SELECT file, rows, max_ts FROM bulk_batches ORDER BY batch_id", ())


def waiting(read: Read) -> Waiting:
    """How many batches wait, their records and bytes, and the newest record's time (None: none waits)."""
    batches, rows, size, newest = read(
        "SELECT count(*), coalesce(sum(rows), 0), coalesce(sum(bytes), 0), max(max_ts) FROM bulk_batches", ()
    )[0]
    return Waiting(batches, rows, size, newest)


def any_waiting(read: Read, since_ms: int | None, until_ms: int | None) -> bool:
    """Whether a waiting batch holds any of [since, until) (either bound optional)."""
    since = -_MAX_INT64 if since_ms is None else since_ms
    until = _MAX_INT64 if until_ms is None else until_ms
    sql = "SELECT EXISTS (SELECT 1 FROM bulk_batches WHERE max_ts >= ? AND min_ts < ?)"
    return bool(read(sql, (since, until))[0][0])


def waiting_batches_in(read: Read, since_ms: int | None, until_ms: int | None) -> int:
    """How many waiting batches hold any of [since, until) (either bound optional)."""
    since = -_MAX_INT64 if since_ms is None else since_ms
    until = _MAX_INT64 if until_ms is None else until_ms
    sql = "SELECT count(*) FROM bulk_batches WHERE max_ts >= ? AND min_ts < ?"
    return read(sql, (since, until))[0][0]


def expired_batches(read: Read, before_ms: int) -> list[tuple[str, int]]:
    """The waiting batches whose records are all timestamped before `before_ms`, by their rows (unread): file and
    records, oldest first. What drop_expired_batches drops."""
    return read("SELECT file, rows FROM bulk_batches WHERE max_ts < ? ORDER BY batch_id", (before_ms,))


def drop_expired_batches(store: SQLiteHotStore, folder: Path, before_ms: int) -> None:
    """Drop the waiting batches whose records are all timestamped before `before_ms` (the retention's start), by their
    rows, without reading their files: such a batch holds nothing kept, and one damaged (which moves pass over) stayed
    waiting past any retention, failing every SQL query. Their files go now unless a reader holds the catalog (its
    snapshot may name them): then `sweep` deletes them at a later move, as it deletes a moved batch's."""

    def take_out(conn: sqlite3.Connection) -> list[tuple]:
        # (a move under way that read one of them finds its row gone at its commit: MovedElsewhere, rolled back)
        return conn.execute("DELETE FROM bulk_batches WHERE max_ts < ? RETURNING file", (before_ms,)).fetchall()

    dropped = store.in_write_transaction(take_out).result()
    if dropped and nobody_reading(store):
        for (file,) in dropped:
            with contextlib.suppress(FileNotFoundError):
                (folder / file).unlink()


def waiting_rows_in(read: Read, since_ms: int | None, until_ms: int | None) -> int:
    """The records of the waiting batches holding any of [since, until) (either bound optional): whole
    batches, so at most a batch's records more than the window holds (an estimate's count)."""
    since = -_MAX_INT64 if since_ms is None else since_ms
    until = _MAX_INT64 if until_ms is None else until_ms
    sql = "SELECT coalesce(sum(rows), 0) FROM bulk_batches WHERE max_ts >= ? AND min_ts < ?"
    return read(sql, (since, until))[0][0]


def waiting_tables(
    read: Read, folder: Path, since_ms: int | None = None, until_ms: int | None = None
) -> Iterator[pa.Table]:
    """The waiting records timestamped in [since, until) (either bound optional), a table per batch, each
    read as it is asked for (hold manifest.reading meanwhile)."""
    since = -_MAX_INT64 if since_ms is None else since_ms
    until = _MAX_INT64 if until_ms is None else until_ms
    found = read("SELECT file FROM bulk_batches WHERE max_ts >= ? AND min_ts < ? ORDER BY batch_id", (since, until))
    for (file,) in found:
        table = read_batch_file(folder, file)
        ts = table.column("timestamp")
        keep = pc.and_(pc.greater_equal(ts, pa.scalar(since, _MS)), pc.less(ts, pa.scalar(until, _MS)))
        yield table if pc.all(keep).as_py() else table.filter(keep)


class WaitingStream:
    """The waiting records of [since, until) for DuckDB as an Arrow stream (the PyCapsule stream protocol),
    read batch by batch as DuckDB pulls them, afresh at each scan, from the snapshot `read` reads in."""

    def __init__(self, read: Read, folder: Path, since_ms: int | None, until_ms: int | None) -> None:
        self._read = read
        self._args = (folder, since_ms, until_ms)

    def __arrow_c_stream__(self, requested_schema: object = None) -> object:
        return pa.RecordBatchReader.from_batches(APP_LOGS_TABLE.schema, self._batches()).__arrow_c_stream__(
            requested_schema
        )

    def _batches(self) -> Iterator[pa.RecordBatch]:
        try:
            for table in waiting_tables(self._read, *self._args):
                yield from table.to_batches()
        except BatchUnreadable as e:  # DuckDB fails the query with the text of an OSError: what the engine looks for
            raise OSError(UNREADABLE_FILE + e.reason) from None


def waiting_records(read: Read, folder: Path, query: RecentQuery) -> list[StoredRecord]:
    """The newest `query.limit` waiting records matching the query's filters, newest (highest id) first."""
    found = []
    for table in waiting_tables(read, folder, query.since_ms, query.until_ms):
        matching = table.filter(matches(table, query))
        found.append(matching.sort_by([("log_id", "descending")]).slice(0, query.limit))
    if not found:
        return []
    return table_records(pa.concat_tables(found).sort_by([("log_id", "descending")]).slice(0, query.limit))


def quarantine_batches(store: SQLiteHotStore, folder: Path, files: Iterable[str]) -> list[tuple[str, int, Path | None]]:
    """Take waiting batches whose files cannot be read out of `bulk_batches`, and so out of every read and move
    (`loglake verify --quarantine`: a batch no backup holds); each file still there is kept in QUARANTINE_DIR, for
    whatever can be read of it, in the folder of its newest record's day (`date=YYYY-MM-DD`, as the lake's
    quarantined files: the retention deletes it once it passed that day, quarantined_batches_before). Each batch taken
    out, its records, and where its file was kept (None: gone)."""
    taken = []
    for file in files:
        named = store.read("SELECT max_ts FROM bulk_batches WHERE file = ?", (file,))
        if not named:
            continue  # (moved meanwhile, or taken out by another run)
        kept = quarantined_batch_file(folder, file, named[0][0])
        if (folder / file).exists():  # (a file gone leaves nothing to keep: no empty folder is made for it)
            private_dir(kept.parent)
            with contextlib.suppress(FileNotFoundError):
                os.replace(folder / file, kept)  # (first: a batch taken out, its file unnamed, would be swept)

        def take_out(conn: sqlite3.Connection, file: str = file) -> list[tuple]:
            return conn.execute("DELETE FROM bulk_batches WHERE file = ? RETURNING rows", (file,)).fetchall()

        if rows := store.in_write_transaction(take_out).result():
            # (kept by this run, or by one killed before the row went: that file is no "file gone")
            taken.append((file, rows[0][0], kept if kept.exists() else None))
    return taken


def quarantined_batch_file(folder: Path, file: str, newest_ms: int) -> Path:
    """Where quarantine_batches keeps a batch's file: by its newest record's day."""
    return folder / QUARANTINE_DIR / f"date={day_of(newest_ms)}" / file


def quarantined_batches_before(folder: Path, cutoff: date) -> list[Path]:
    """The files of quarantined batches (quarantine_batches) whose newest record's day is before `cutoff`."""
    return [
        path
        for path in sorted((folder / QUARANTINE_DIR).glob(f"date=*/*{_SUFFIX}"))
        if path.parent.name.removeprefix("date=") < cutoff.isoformat()
    ]


def delete_quarantined_batch(folder: Path, path: Path) -> None:
    """Delete a quarantined batch's file, and the folders it leaves empty (its day's, then QUARANTINE_DIR)."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    for emptied in (path.parent, folder / QUARANTINE_DIR):
        with contextlib.suppress(OSError):  # (not empty)
            emptied.rmdir()


class Batches(NamedTuple):
    ids: list[int]
    files: list[str]
    rows: int


def oldest_batches(read: Read, max_rows: int, passed_over: Container[str] = ()) -> Batches:
    """The oldest waiting batches up to `max_rows` records (at least one batch, if any waits), but those whose
    files are `passed_over` (unreadable)."""
    ids, files, rows = [], [], 0
    for batch_id, count, file in read("SELECT batch_id, rows, file FROM bulk_batches ORDER BY batch_id", ()):
        if file in passed_over:
            continue
        if ids and rows + count > max_rows:
            break
        ids.append(batch_id)
        files.append(file)
        rows += count
    return Batches(ids, files, rows)


class MovedElsewhere(Exception):
    """Batches a move read were moved meanwhile by another process (`loglake flush` beside a server)."""


def delete_moved_batches(conn: sqlite3.Connection, batch_ids: list[int]) -> None:
    """In the transaction that adds their parts to the catalog: the batches go. If one is gone already,
    another mover took it, and the transaction must roll back (else its records would be in two parts)."""
    marks = ", ".join("?" * len(batch_ids))
    deleted = conn.execute(f"DELETE FROM bulk_batches WHERE batch_id IN ({marks})", batch_ids).rowcount
    if deleted != len(batch_ids):
        raise MovedElsewhere(f"{len(batch_ids) - deleted} of {len(batch_ids)} waiting batches were moved meanwhile")


def sweep(read: Read, folder: Path, data_dir: Path, owner: str, in_flight: Callable[[], set[str]]) -> None:
    """Delete the files no row names (moved, or never committed) of writers that are gone, and those of
    this process's writer (`owner`) but the ones it is writing now (`in_flight`). Call it only when no
    reader holds the catalog (manifest.reading)."""
    if not folder.is_dir():
        return
    # In this order: a file listed here was in flight before (its writer adds it first, then creates it), so it
    # still is when `in_flight` is asked, or it left after its commit, which the rows read next then show.
    files = list(folder.glob(f"*{_SUFFIX}"))
    writing = in_flight()
    named = {file for (file,) in read("SELECT file FROM bulk_batches", ())}
    for path in files:
        if path.name in named or path.name in writing:
            continue
        writer = path.name.rsplit("-", 1)[0]
        if writer == owner or not writers.is_running(data_dir, writer):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
