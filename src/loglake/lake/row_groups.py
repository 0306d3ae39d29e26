"""What a lake file's footer says of its row groups (lake files never change, so it is read once): each row
group's span of times and of filter column values from its statistics, and the newest time of each severity
in it (parts.SEVERITY_INDEX_KEY), by which the recent reader visits row groups newest first."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from loglake.lake.parts import SEVERITY_INDEX_KEY
from loglake.lake.tables import APP_LOGS_TABLE

FILTER_COLUMNS = ("service", "log_type", "severity")  # what every recent query may filter on


class OpenFile:
    """A Parquet file and what its footer says of each row group."""

    def __init__(self, parquet: pq.ParquetFile) -> None:
        self.parquet = parquet
        metadata = parquet.metadata
        by_severity = _severity_index(metadata)
        self.row_groups = [
            RowGroup.of(metadata.row_group(i), by_severity[i] if by_severity else None)
            for i in range(metadata.num_row_groups)
        ]


@dataclass(frozen=True, slots=True)
class RowGroup:
    """A row group's span from its statistics: its times, and the first and last value of each filter
    column (a row group without them spans everything, so it is always read); and, from
    parts.SEVERITY_INDEX_KEY, the newest time of each severity in it."""

    oldest: int
    newest: int
    ranges: dict[str, tuple[str, str]]
    newest_by_severity: dict[str, int] | None

    @classmethod
    def of(cls, row_group: pq.RowGroupMetaData, newest_by_severity: dict[str, int] | None) -> RowGroup:
        oldest, newest = map(_millis, _bounds(row_group, _TIMESTAMP, (0, 1 << 62)))
        ranges = {name: _bounds(row_group, _FILTER_INDEXES[name], ("", _LAST_TEXT)) for name in FILTER_COLUMNS}
        return cls(oldest, newest, ranges, newest_by_severity)

    def newest_match(self, wanted: list[tuple[str, list[str]]]) -> int | None:
        """The newest time a record of this row group holding one of the wanted values of each filter
        column (_wanted_values) can have; None: no such record is in it."""
        for column, values in wanted:
            first, last = self.ranges[column]
            if not any(first <= value <= last for value in values):
                return None
        severities = dict(wanted).get("severity")
        if severities is None or self.newest_by_severity is None:
            return self.newest
        return max((self.newest_by_severity[s] for s in severities if s in self.newest_by_severity), default=None)


def _severity_index(metadata: pq.FileMetaData) -> list[dict[str, int]] | None:
    """The file's per-row-group newest time of each severity, when it has one that fits its row groups
    (files written before it, or by other tools, have none: min/max statistics stand in)."""
    text = (metadata.metadata or {}).get(SEVERITY_INDEX_KEY)
    if text is None:
        return None
    try:
        index = json.loads(text)
    except ValueError:
        return None
    if not (isinstance(index, list) and len(index) == metadata.num_row_groups):
        return None
    for group in index:
        if not isinstance(group, dict) or not all(type(ms) is int for ms in group.values()):
            return None
    return index


_TIMESTAMP = APP_LOGS_TABLE.schema.get_field_index("timestamp")
_FILTER_INDEXES = {name: APP_LOGS_TABLE.schema.get_field_index(name) for name in FILTER_COLUMNS}
_LAST_TEXT = "\U0010ffff"


def _bounds(row_group: pq.RowGroupMetaData, column: int, unknown: tuple[Any, Any]) -> tuple[Any, Any]:
    stats = row_group.column(column).statistics
    return (stats.min, stats.max) if stats and stats.has_min_max else unknown


def _millis(value: Any) -> int:
    if isinstance(value, int):
        return value
    return int(pa.scalar(value, pa.timestamp("ms")).cast(pa.int64()).as_py())
