"""The newest records of the lake for "recent logs", read straight from Parquet row groups.

A SQL engine answers "the newest 100 of service X" by scanning every row group the filters cannot
exclude; this reader instead visits row groups newest first, by the timestamp statistics in the
files' footers (kept in memory: lake files never change), and stops as soon as no unvisited row
group can hold anything newer than the page it has. Files are sorted by (service, timestamp) in
small row groups, so a service's newest records sit in one or two row groups.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from loglake import readback
from loglake.ids import format_uuid
from loglake.lake.manifest import LakeFile
from loglake.lake.objectstore import LocalObjectStore, ObjectStore, S3ObjectStore
from loglake.lake.tables import APP_LOGS_TABLE
from loglake.model import SEVERITY_NAMES, StoredRecord
from loglake.store.base import RecentQuery

OPEN_FILES = 256
_MS = pa.timestamp("ms")


class LakeRecentReader:
    def __init__(self, lake: ObjectStore) -> None:
        self.lake = lake
        self._files: OrderedDict[str, pq.ParquetFile] = OrderedDict()
        self._lock = threading.Lock()
        self._filesystem: Any = None

    def recent(self, files: list[LakeFile], query: RecentQuery) -> list[StoredRecord]:
        """The newest `query.limit` records of these files matching the query, newest first."""
        since, until, service = query.since_ms, query.until_ms, query.service
        candidates = []  # (newest timestamp in the row group, file key, row group)
        for f in files:
            for index, (oldest, newest, first_service, last_service) in enumerate(self._file(f.key).spans):
                if newest < since or (until is not None and oldest >= until):
                    continue
                if service is not None and not first_service <= service <= last_service:
                    continue
                candidates.append((newest, f.key, index))
        candidates.sort(reverse=True)
        page: list[dict] = []
        for newest, key, index in candidates:
            if len(page) >= query.limit and newest < page[query.limit - 1]["ts"]:
                break  # nothing left can be newer than the page's oldest record
            rows = self._matching(self._file(key).parquet, index, query)
            page = sorted(page + rows, key=_id_text, reverse=True)[: query.limit]
        return [r for r in map(_record, page) if r is not None]

    @staticmethod
    def _matching(parquet: pq.ParquetFile, index: int, query: RecentQuery) -> list[dict]:
        """The row group's newest matches (at most `query.limit`). The filter columns are read first;
        the wide ones (message, attributes) only when something matched, and only for those rows."""
        narrow = parquet.read_row_group(index, columns=_narrow_columns(query))
        rows = _matching_rows(narrow, query)
        if len(rows) == 0:
            return []
        wide = [c for c in APP_LOGS_TABLE.schema.names if c not in narrow.schema.names]
        chosen = narrow.take(rows)
        rest = parquet.read_row_group(index, columns=wide).take(rows)
        for name in wide:
            chosen = chosen.append_column(name, rest.column(name))
        return _rows(chosen)

    def forget_deleted(self) -> int:
        """Close the open files the lake no longer has: a local file deleted while open keeps its disk
        space (on S3 nothing is held). Returns how many."""
        if not isinstance(self.lake, LocalObjectStore):
            return 0
        with self._lock:
            gone = [key for key in self._files if not (self.lake.root / key).exists()]
            for key in gone:
                self._files.pop(key).parquet.close()
        return len(gone)

    def close(self) -> None:
        with self._lock:
            for opened in self._files.values():
                opened.parquet.close()
            self._files.clear()

    def _file(self, key: str) -> _OpenFile:
        """An open Parquet file with its row groups' spans, kept for the next query (least recently used go)."""
        with self._lock:
            found = self._files.get(key)
            if found is not None:
                self._files.move_to_end(key)
                return found
        opened = _OpenFile(self._open(key))
        with self._lock:
            self._files[key] = opened
            while len(self._files) > OPEN_FILES:
                self._files.popitem(last=False)[1].parquet.close()
        return opened

    def _open(self, key: str) -> pq.ParquetFile:
        if isinstance(self.lake, LocalObjectStore):
            return pq.ParquetFile(self.lake.root / key)
        assert isinstance(self.lake, S3ObjectStore)
        if self._filesystem is None:
            self._filesystem = self.lake.arrow_filesystem()
        return pq.ParquetFile(self._filesystem.open_input_file(self.lake.arrow_path(key)))


class _OpenFile:
    """A Parquet file and, per row group, (oldest ms, newest ms, first service, last service) from its
    statistics; a row group without them spans everything, so it is always read."""

    def __init__(self, parquet: pq.ParquetFile) -> None:
        self.parquet = parquet
        metadata = parquet.metadata
        self.spans = [_span(metadata.row_group(i)) for i in range(metadata.num_row_groups)]


def _narrow_columns(query: RecentQuery) -> list[str]:
    """The columns the filters need; log ids (36 bytes each) only to page past a cursor."""
    columns = ["timestamp", "service", "log_type", "severity"]
    if query.before_id is not None:
        columns.append("log_id")
    if query.contains:
        columns.append("message")
    return columns


def matches(table: pa.Table, query: RecentQuery) -> pa.ChunkedArray | pa.Array:
    """Which rows of a table of `logs` columns (those the query filters on suffice) match the query's
    filters and id range: true, false, or null for a row with a null in a filtered column."""
    ts = table.column("timestamp")
    keep = pc.greater_equal(ts, pa.scalar(query.since_ms, _MS).cast(ts.type))
    if query.until_ms is not None:
        keep = pc.and_(keep, pc.less(ts, pa.scalar(query.until_ms, _MS).cast(ts.type)))
    if query.before_id is not None:
        keep = pc.and_(keep, pc.less(table.column("log_id"), format_uuid(query.before_id)))
    if query.service is not None:
        keep = pc.and_(keep, pc.equal(table.column("service"), query.service))
    if query.log_type is not None:
        keep = pc.and_(keep, pc.equal(table.column("log_type"), query.log_type))
    if query.severities is not None:
        names = pa.array([SEVERITY_NAMES[s] for s in query.severities])
        keep = pc.and_(keep, pc.is_in(table.column("severity"), value_set=names))
    if query.contains:
        keep = pc.and_(keep, pc.match_substring(table.column("message"), query.contains, ignore_case=True))
    return keep


def _matching_rows(table: pa.Table, query: RecentQuery) -> pa.Array:
    """Row numbers of the newest `query.limit` rows matching the query."""
    ts = table.column("timestamp")
    rows = pc.indices_nonzero(matches(table, query))
    if len(rows) <= query.limit:
        return rows
    if "log_id" in table.column_names:
        ids = pa.table({"log_id": table.column("log_id").take(rows)})
        return rows.take(pc.select_k_unstable(ids, query.limit, [("log_id", "descending")]))
    # Without ids: the newest `limit` by time, and every row tied with the last of them (ids decide
    # among equal times once read).
    times = ts.take(rows)
    newest = pc.select_k_unstable(pa.table({"t": times}), query.limit, [("t", "descending")])
    return rows.filter(pc.greater_equal(times, pc.min(times.take(newest))))


_TIMESTAMP = APP_LOGS_TABLE.schema.get_field_index("timestamp")
_SERVICE = APP_LOGS_TABLE.schema.get_field_index("service")


def _span(row_group: pq.RowGroupMetaData) -> tuple[int, int, str, str]:
    times = row_group.column(_TIMESTAMP).statistics
    services = row_group.column(_SERVICE).statistics
    oldest, newest = (_millis(times.min), _millis(times.max)) if times and times.has_min_max else (0, 1 << 62)
    first, last = (services.min, services.max) if services and services.has_min_max else ("", "\U0010ffff")
    return oldest, newest, first, last


def _millis(value: Any) -> int:
    if isinstance(value, int):
        return value
    return int(pa.scalar(value, _MS).cast(pa.int64()).as_py())


def table_records(table: pa.Table) -> list[StoredRecord]:
    """The records of a table with the `logs` columns, in its order (see _record)."""
    return [r for r in map(_record, _rows(table)) if r is not None]


def _rows(table: pa.Table) -> list[dict]:
    """The rows of a table with the `logs` columns as dicts, the timestamp as epoch ms under "ts"."""
    millis = table.column("timestamp").cast(pa.int64())
    return table.set_column(table.schema.get_field_index("timestamp"), "ts", millis).to_pylist()


def _id_text(row: dict) -> str:
    return row["log_id"] or ""  # a file written by another tool may hold a null


def _record(row: dict) -> StoredRecord | None:
    """The row's record, its unreadable values named (readback.py); None when its log id is unreadable."""
    log_id = readback.stored_id(row["log_id"], "the lake")
    if log_id is None:
        return None
    return readback.record(
        log_id,
        row["ts"],
        row["service"],
        row["log_type"],
        row["severity"],
        row["message"],
        row["attributes"],
        row["client_id"],
    )
