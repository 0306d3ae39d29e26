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

from loglake.ids import format_uuid, parse_uuid
from loglake.lake.manifest import LakeFile
from loglake.lake.objectstore import LocalObjectStore, ObjectStore, S3ObjectStore
from loglake.lake.tables import APP_LOGS_TABLE
from loglake.model import SEVERITY_ALIASES, SEVERITY_NAMES, StoredRecord
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
        since, until = query.since_ms, query.until_ms
        candidates = []  # (newest timestamp in the row group, file key, row group)
        for f in files:
            metadata = self._file(f.key).metadata
            for index in range(metadata.num_row_groups):
                span = _span(metadata.row_group(index), query)
                if span is not None and span[1] >= since and (until is None or span[0] < until):
                    candidates.append((span[1], f.key, index))
        candidates.sort(reverse=True)
        page: list[dict] = []
        for newest, key, index in candidates:
            if len(page) >= query.limit and newest < page[query.limit - 1]["ts"]:
                break  # nothing left can be newer than the page's oldest record
            rows = self._matching(key, index, query)
            page = sorted(page + rows, key=lambda r: r["log_id"], reverse=True)[: query.limit]
        return [_record(r) for r in page]

    def _matching(self, key: str, index: int, query: RecentQuery) -> list[dict]:
        table = self._file(key).read_row_group(index)
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
        chosen = table.filter(keep)
        if chosen.num_rows > query.limit:
            chosen = chosen.take(pc.select_k_unstable(chosen, query.limit, [("log_id", "descending")]))
        chosen = chosen.set_column(
            chosen.schema.get_field_index("timestamp"), "ts", chosen.column("timestamp").cast(pa.int64())
        )
        return chosen.to_pylist()

    def _file(self, key: str) -> pq.ParquetFile:
        """An open Parquet file with its parsed footer, kept for the next query (least recently used go)."""
        with self._lock:
            found = self._files.get(key)
            if found is not None:
                self._files.move_to_end(key)
                return found
        opened = self._open(key)
        with self._lock:
            self._files[key] = opened
            while len(self._files) > OPEN_FILES:
                self._files.popitem(last=False)[1].close()
        return opened

    def _open(self, key: str) -> pq.ParquetFile:
        if isinstance(self.lake, LocalObjectStore):
            return pq.ParquetFile(self.lake.root / key)
        assert isinstance(self.lake, S3ObjectStore)
        if self._filesystem is None:
            self._filesystem = self.lake.arrow_filesystem()
        return pq.ParquetFile(self._filesystem.open_input_file(self.lake.arrow_path(key)))

    def close(self) -> None:
        with self._lock:
            for opened in self._files.values():
                opened.close()
            self._files.clear()


_TIMESTAMP = APP_LOGS_TABLE.schema.get_field_index("timestamp")
_SERVICE = APP_LOGS_TABLE.schema.get_field_index("service")


def _span(row_group: pq.RowGroupMetaData, query: RecentQuery) -> tuple[int, int] | None:
    """The row group's time span in ms, or None when its statistics rule the query's service out."""
    times = row_group.column(_TIMESTAMP).statistics
    if times is None or not times.has_min_max:
        return (0, 1 << 62)  # no statistics: it must be read
    if query.service is not None:
        services = row_group.column(_SERVICE).statistics
        if services is not None and services.has_min_max and not services.min <= query.service <= services.max:
            return None
    return _millis(times.min), _millis(times.max)


def _millis(value: Any) -> int:
    if isinstance(value, int):
        return value
    return int(pa.scalar(value, _MS).cast(pa.int64()).as_py())


def _record(row: dict) -> StoredRecord:
    attributes, client_id = row["attributes"], row["client_id"]
    return StoredRecord(
        parse_uuid(row["log_id"]),
        row["ts"],
        row["service"],
        row["log_type"],
        int(SEVERITY_ALIASES[row["severity"]]),
        row["message"],
        attributes.encode() if attributes is not None else None,
        parse_uuid(client_id) if client_id is not None else None,
    )
