"""The newest records of the lake for "recent logs", read straight from Parquet row groups.

A SQL engine answers "the newest 100 of service X" by scanning every row group the filters cannot
exclude; this reader instead visits row groups newest first, by what the files' footers say of them
(kept in memory: lake files never change), and stops as soon as no unvisited row group can hold
anything newer than the page it has. Files are sorted by service in small row groups, so a service's
newest records sit in one or two row groups, and a footer names the newest time of each severity in
each row group (parts.SEVERITY_INDEX_KEY), so "the newest errors" visits only row groups holding
errors, newest errors first.

Two passes keep the reads small: the filter columns of the row groups visited, then the other
columns (log ids, messages, attributes) of only the row groups that hold the page's records. Both are
kept decoded for the next query, in a cache of bounded size: "recent logs" asks about the newest
records again and again (a dashboard, a second page), and decoding is most of what it costs.
"""

from __future__ import annotations

import contextlib
import heapq
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from loglake.ids import format_uuid
from loglake.lake.manifest import LakeFile
from loglake.lake.objectstore import LocalObjectStore, ObjectStore
from loglake.lake.parquet_objects import ParquetObjects
from loglake.lake.query_answers import LakeUnreadable
from loglake.lake.row_groups import FILTER_COLUMNS, OpenFile
from loglake.lake.table_records import log_id_text, stored_record
from loglake.lake.tables import APP_LOGS_TABLE
from loglake.model import SEVERITY_NAMES, StoredRecord
from loglake.store.base import RecentQuery

OPEN_FILES = 256
# Decoded row groups: the filter columns take 20 bytes a record, the others about 130 (the benchmark
# set's messages), so this holds the filter columns of ~3M records or all columns of ~400,000.
CACHE_BYTES = 64 * 2**20
_MS = pa.timestamp("ms")
_REST_COLUMNS = [c for c in APP_LOGS_TABLE.schema.names if c != "timestamp" and c not in FILTER_COLUMNS]
# Read as dictionaries, as they are stored: no string is built per row to compare or to take a few.
_DICTIONARY_COLUMNS = [*FILTER_COLUMNS, "attributes", "client_id"]


class LakeRecentReader:
    def __init__(self, lake: ObjectStore, cache_bytes: int = CACHE_BYTES) -> None:
        self.lake = lake
        self._files: OrderedDict[str, OpenFile] = OrderedDict()
        self._decoded = _DecodedCache(cache_bytes)
        self._lock = threading.Lock()
        self._objects = ParquetObjects(lake)

    def recent(self, files: list[LakeFile], query: RecentQuery) -> list[StoredRecord]:
        """The newest `query.limit` records of these files matching the query, newest first."""
        since, until = query.since_ms, query.until_ms
        wanted = _wanted_values(query)
        candidates = []  # (newest time a match can have, file key, row group)
        for f in files:
            for index, group in enumerate(self._file(f.key).row_groups):
                newest = group.newest_match(wanted)
                if newest is None or newest < since or (until is not None and group.oldest >= until):
                    continue
                candidates.append((newest, f.key, index))
        candidates.sort(reverse=True)
        found: list[tuple[str, int, _Filters, pa.Array]] = []  # (file key, row group, its filters, rows)
        newest_times: list[int] = []  # of the newest `limit` matches so far, newest first
        for newest, key, index in candidates:
            if len(newest_times) >= query.limit and newest < newest_times[-1]:
                break  # nothing left can be newer than the page's oldest record
            filters = self._filters_of(key, index)
            rows = _matching_rows(filters, query, wanted, lambda key=key, index=index: self._rest_of(key, index))
            if len(rows):
                found.append((key, index, filters, rows))
                newest_times = heapq.nlargest(query.limit, newest_times + filters.millis.take(rows).to_pylist())
        oldest_kept = newest_times[-1] if len(newest_times) >= query.limit else since
        page: list[dict] = []
        for key, index, filters, rows in found:
            kept = rows.filter(pc.greater_equal(filters.millis.take(rows), pa.scalar(oldest_kept, pa.int64())))
            if len(kept):
                page += _whole_rows(self._rest_of(key, index), filters, kept)
        page.sort(key=log_id_text, reverse=True)
        return [r for r in map(stored_record, page[: query.limit]) if r is not None]

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
        self._decoded.clear()

    def _filters_of(self, key: str, index: int) -> _Filters:
        found = self._decoded.get((key, index, "filters"))
        if found is None:
            parquet = self._file(key).parquet
            with _reading(key):
                found = _Filters.read(parquet, index)
            self._decoded.put((key, index, "filters"), found, found.nbytes)
        return found

    def _rest_of(self, key: str, index: int) -> pa.Table:
        """The row group's columns other than the filter columns."""
        found = self._decoded.get((key, index, "rest"))
        if found is None:
            parquet = self._file(key).parquet
            present = [name for name in _REST_COLUMNS if name in parquet.schema_arrow.names]  # older files lack some
            with _reading(key):
                found = parquet.read_row_group(index, columns=present, use_threads=False)
            found = APP_LOGS_TABLE.with_added_columns(found, _REST_COLUMNS)
            self._decoded.put((key, index, "rest"), found, found.nbytes)
        return found

    def _file(self, key: str) -> OpenFile:
        """An open Parquet file with what its footer says of each row group, kept for the next query
        (least recently used go)."""
        with self._lock:
            found = self._files.get(key)
            if found is not None:
                self._files.move_to_end(key)
                return found
        with _reading(key):
            opened = OpenFile(self._open(key))
        with self._lock:
            self._files[key] = opened
            while len(self._files) > OPEN_FILES:
                self._files.popitem(last=False)[1].parquet.close()
        return opened

    def _open(self, key: str) -> pq.ParquetFile:
        return self._objects.open(key, read_dictionary=_DICTIONARY_COLUMNS)


@contextlib.contextmanager
def _reading(key: str) -> Iterator[None]:
    """Reading lake file `key`: a file removed under the read (by hand), a storage that failed, or a file
    damaged outside loglake (cut short: ArrowInvalid; pages overwritten: an OSError with no errno) is
    LakeUnreadable naming it (a 503), not a 500."""
    try:
        yield
    except (OSError, pa.ArrowInvalid) as e:
        reason = os.strerror(e.errno) if isinstance(e, OSError) and e.errno else str(e).split("\n")[0]
        raise LakeUnreadable(f"{key}: {reason}") from None


@dataclass(frozen=True, slots=True)
class _Filters:
    """A row group's times (epoch ms) and its service, log_type and severity as dictionary codes with
    their dictionaries: what every query filters on, decoded once."""

    millis: pa.Int64Array
    codes: dict[str, pa.Array]
    dictionaries: dict[str, list[str]]

    @classmethod
    def read(cls, parquet: pq.ParquetFile, index: int) -> _Filters:
        # One thread: a request's reads are small, and requests share the cores.
        table = parquet.read_row_group(index, columns=["timestamp", *FILTER_COLUMNS], use_threads=False)
        times = table.column("timestamp").cast(_MS, safe=False).cast(pa.int64()).combine_chunks()
        codes, dictionaries = {}, {}
        for name in FILTER_COLUMNS:
            column = table.column(name).unify_dictionaries().combine_chunks()
            codes[name] = column.indices
            dictionaries[name] = column.dictionary.to_pylist()
        return cls(times, codes, dictionaries)

    @property
    def nbytes(self) -> int:
        return self.millis.nbytes + sum(c.nbytes for c in self.codes.values())

    def equal(self, column: str, values: list[str]) -> pa.BooleanArray | bool:
        """Which rows hold one of `values` in `column`; False when none does, True when all do (a row
        group holds one service, and often one log type)."""
        wanted = [value in values for value in self.dictionaries[column]]
        codes = self.codes[column]
        if not any(wanted):
            return False
        if all(wanted) and codes.null_count == 0:
            return True
        return pa.array(wanted, pa.bool_()).take(codes)  # null codes stay null: no match

    def values(self, column: str, rows: pa.Array) -> list[str | None]:
        dictionary, codes = self.dictionaries[column], self.codes[column].take(rows).to_pylist()
        return [None if code is None else dictionary[code] for code in codes]


class _DecodedCache:
    """Decoded parts of row groups by (file key, row group, part): lake files never change, so an entry
    stays right; the least recently used go past the byte budget."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[tuple[str, int, str], tuple[Any, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: tuple[str, int, str]) -> Any:
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                return None
            self._entries.move_to_end(key)
            return found[0]

    def put(self, key: tuple[str, int, str], value: Any, nbytes: int) -> None:
        with self._lock:
            if key in self._entries:
                return
            self._entries[key] = (value, nbytes)
            self._bytes += nbytes
            while self._bytes > self.max_bytes and self._entries:
                self._bytes -= self._entries.popitem(last=False)[1][1]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0


def _matching_rows(
    filters: _Filters, query: RecentQuery, wanted: list[tuple[str, list[str]]], rest: Callable[[], pa.Table]
) -> pa.Array:
    """Row numbers of the row group's newest `query.limit` matches (and any as old as the last of them);
    `wanted`: the query's filter columns and values (_wanted_values); `rest` gives the other columns,
    which a cursor (log ids) or a text to look for (messages) needs."""
    millis = filters.millis
    keep = pc.greater_equal(millis, pa.scalar(query.since_ms, pa.int64()))  # typed: 5x faster than an int
    if query.until_ms is not None:
        keep = pc.and_(keep, pc.less(millis, pa.scalar(query.until_ms, pa.int64())))
    for column, values in wanted:
        matching = filters.equal(column, values)
        if matching is False:
            return _NO_ROWS
        if matching is not True:
            keep = pc.and_(keep, matching)
    rows = pc.indices_nonzero(keep)  # nulls (no time, no value) are no match
    if len(rows) and (query.before_id is not None or query.contains):
        rows = _text_matches(rest(), rows, query)
    if len(rows) <= query.limit:
        return rows
    # The newest `limit` by time, and every row tied with the last of them (ids decide among equal
    # times once read): the limit-th newest time found by a partial sort (select_k takes 10x longer).
    times = millis.take(rows)
    cut = len(times) - query.limit
    return rows.filter(pc.greater_equal(times, times[pc.partition_nth_indices(times, pivot=cut)[cut].as_py()]))


def _wanted_values(query: RecentQuery) -> list[tuple[str, list[str]]]:
    """The filter columns the query names, each with the values it accepts."""
    wanted = []
    if query.service is not None:
        wanted.append(("service", [query.service]))
    if query.log_type is not None:
        wanted.append(("log_type", [query.log_type]))
    if query.severities is not None:
        wanted.append(("severity", [SEVERITY_NAMES[s] for s in query.severities]))
    return wanted


_NO_ROWS = pa.array([], pa.uint64())


def _text_matches(rest: pa.Table, rows: pa.Array, query: RecentQuery) -> pa.Array:
    """Those of `rows` below the cursor and with the text, by the row group's log ids and messages."""
    chosen = rest.take(rows)
    keep = pa.array([True] * len(rows))
    if query.before_id is not None:
        keep = pc.and_(keep, pc.less(chosen.column("log_id"), format_uuid(query.before_id)))
    if query.contains:
        keep = pc.and_(keep, pc.match_substring(chosen.column("message"), query.contains, ignore_case=True))
    # An array, not the ChunkedArray the table's columns make: pyarrow's partition_nth_indices of a chunked
    # array (_matching_rows) answers other indices than the array's, and a page lost matches for older ones.
    return rows.filter(keep.combine_chunks())


def _whole_rows(rest: pa.Table, filters: _Filters, rows: pa.Array) -> list[dict]:
    """These rows of a row group with every column (the time as epoch ms `ts`)."""
    read = rest.take(rows)
    columns = {name: read.column(name).to_pylist() for name in _REST_COLUMNS}
    columns["ts"] = filters.millis.take(rows).to_pylist()
    for name in FILTER_COLUMNS:
        columns[name] = filters.values(name, rows)
    return [dict(zip(columns, values, strict=True)) for values in zip(*columns.values(), strict=True)]
