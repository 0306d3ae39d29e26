"""What the lake's Parquet footers say about each row group: its rows, each column's compressed size
and (for short values) its smallest and largest value. Read once per file: lake files never change
once published, so the estimate and the prompt's sample values read a file's footer only once.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pyarrow.compute as pc
import pyarrow.parquet as pq

from loglake.lake.objectstore import ObjectStore
from loglake.lake.parquet_objects import ParquetObjects

MAX_BOUND_CHARS = 256  # longer min/max values (messages) prune nothing worth their memory
MAX_FILES = 100_000  # footers kept; a 10M-record lake has tens of files, a year of busy days thousands
READ_GAP = 1 << 14  # DuckDB's Parquet read-ahead reads two chunks at most this far apart as one (measured)


@dataclass(frozen=True)
class RowGroup:
    rows: int
    spans: dict[str, tuple[int, int]]  # column -> (offset in the file, compressed bytes): what is read of it
    bounds: dict[str, tuple[Any, Any]]  # column -> (min, max), where the footer has them

    def bytes_read(self, columns: Iterable[str]) -> int:
        """What reading `columns` of this row group reads: their chunks, and the gaps between chunks
        close enough that DuckDB reads them in one go (its read-ahead merges reads up to READ_GAP apart)."""
        spans = sorted(self.spans[c] for c in columns if c in self.spans)
        total, start, end = 0, -1, -1
        for offset, size in spans:
            if start >= 0 and offset - end <= READ_GAP:
                end = max(end, offset + size)
                continue
            total += end - start
            start, end = offset, offset + size
        return total + end - start


class Footers:
    def __init__(self, lake: ObjectStore, max_files: int = MAX_FILES) -> None:
        self.lake = lake
        self.max_files = max_files
        self._objects = ParquetObjects(lake)
        self._cache: OrderedDict[str, tuple[RowGroup, ...]] = OrderedDict()
        self._values: OrderedDict[str, list[Any]] = OrderedDict()  # (values(): by file, row group and column)
        self._lock = threading.Lock()

    def of(self, key: str) -> tuple[RowGroup, ...]:
        with self._lock:
            found = self._cache.get(key)
            if found is not None:
                self._cache.move_to_end(key)
                return found
        groups = _row_groups(self._metadata(key))
        with self._lock:
            self._cache[key] = groups
            while len(self._cache) > self.max_files:
                self._cache.popitem(last=False)
        return groups

    def values(self, key: str, index: int, column: str, most: int) -> list[Any]:
        """Up to `most` distinct values of a column in row group `index` of a file: what its footer's smallest and
        largest values leave out where the row group holds several (a bulk batch's part holds a few services
        each). The column's chunk alone is read (a dictionary-encoded text: some kilobytes), once per file kept."""
        cache_key = f"{key}\0{index}\0{column}"
        with self._lock:
            found = self._values.get(cache_key)
        if found is None:
            chunk = self._objects.open(key).read_row_group(index, columns=[column]).column(0)
            found = pc.unique(chunk).drop_null()[:most].to_pylist()
            with self._lock:
                self._values[cache_key] = found
                while len(self._values) > self.max_files:
                    self._values.popitem(last=False)
        return found

    def _metadata(self, key: str) -> pq.FileMetaData:
        return self._objects.metadata(key)


def _row_groups(metadata: pq.FileMetaData) -> tuple[RowGroup, ...]:
    groups = []
    for index in range(metadata.num_row_groups):
        group = metadata.row_group(index)
        spans, bounds = {}, {}
        for c in range(group.num_columns):
            column = group.column(c)
            offset = column.dictionary_page_offset if column.has_dictionary_page else column.data_page_offset
            spans[column.path_in_schema] = (offset, column.total_compressed_size)
            stats = column.statistics
            if stats is not None and stats.has_min_max and _short(stats.min) and _short(stats.max):
                bounds[column.path_in_schema] = (stats.min, stats.max)
        groups.append(RowGroup(group.num_rows, spans, bounds))
    return tuple(groups)


def _short(value: Any) -> bool:
    return not isinstance(value, str | bytes) or len(value) <= MAX_BOUND_CHARS
