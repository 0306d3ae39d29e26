"""Hot-store rows (sqlite_rows.COLUMNS order) as an Arrow table with the lake's `logs` schema.

The flush writes these tables to Parquet and the query engine streams them to DuckDB (HotRowsStream) next
to the lake's files, so hot and lake records look alike to SQL. The columns come as Python sequences (read
by the stdlib's sqlite3) or as Arrow arrays (read by the flush worker's ADBC driver).

Values pass through as stored, readable or not: the readers of the lake name what they cannot read
(readback.py), as those of the hot store do. Only a value the column's type cannot hold at all (a row
written by hand: a number as a message, bytes, a severity past critical) is converted, see _convertible.
"""

from __future__ import annotations

import array
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from loglake import readback
from loglake.ids import is_stored_split, timestamp_of_high
from loglake.lake.tables import APP_LOGS_TABLE
from loglake.model import SEVERITY_NAMES
from loglake.times import LATEST_MS


def hot_rows_table(columns: Sequence[Any]) -> pa.Table:
    """Hot rows, given as columns, as an Arrow table; per-row Python work is kept to the log id text."""
    if not columns or not len(columns[0]):
        return APP_LOGS_TABLE.schema.empty_table()
    try:
        return _table(columns, pc.take(pa.array(SEVERITY_NAMES), as_arrow(columns[5], pa.int8())))
    except (pa.ArrowException, TypeError, ValueError, OverflowError, IndexError):
        converted = _convertible(columns)
        return _table(converted, pa.array(converted[5], pa.string()))


class HotRowsStream:
    """Hot rows for DuckDB as an Arrow stream (the PyCapsule stream protocol), converted batch by batch as
    DuckDB pulls them: a query holds one batch of hot rows in memory, not all of them. `batches` gives
    the rows (as columns, hot_rows_table's input) afresh each time it is called: DuckDB asks for a new
    stream for each scan of the table (a join of `logs` with itself scans it twice) and once to learn
    its schema, which reads nothing. With a `time_order` ("ascending" or "descending"), each batch's rows
    are put in that order by their timestamps (SQLite leaves the order of a batch's rows open), for a
    reader of batches that come in that order and needs its rows to (hot_top.py)."""

    def __init__(self, batches: Callable[[], Iterator[Sequence[Any]]], time_order: str | None = None) -> None:
        self._batches = batches
        self._time_order = time_order

    def __arrow_c_stream__(self, requested_schema: object = None) -> object:
        reader = pa.RecordBatchReader.from_batches(APP_LOGS_TABLE.schema, self._record_batches())
        return reader.__arrow_c_stream__(requested_schema)

    def _record_batches(self) -> Iterator[pa.RecordBatch]:
        for columns in self._batches():
            table = hot_rows_table(columns)
            del columns  # the rows as Python objects go before the next batch is read, as Arrow ones do
            if self._time_order is not None:
                table = table.sort_by([("timestamp", self._time_order)])
            batches = table.to_batches()
            del table
            while batches:
                yield batches.pop(0)


def _table(columns: Sequence[Any], severities: pa.Array | pa.ChunkedArray) -> pa.Table:
    return pa.table(
        [
            uuid_strings(int64_bytes(columns[0]), int64_bytes(columns[1])),
            as_arrow(columns[2], pa.int64()).cast(pa.timestamp("ms")),
            as_arrow(columns[3], pa.string()),
            as_arrow(columns[4], pa.string()),
            severities,
            as_arrow(columns[6], pa.string()),
            as_arrow(columns[7], pa.string()),
            as_arrow(columns[8], pa.string()),  # a column that is all NULL comes from ADBC typed int64
            as_arrow(columns[9], pa.string()),
            as_arrow(columns[10], pa.string()),
        ],
        schema=APP_LOGS_TABLE.schema,
    )


def _convertible(columns: Sequence[Any]) -> list[list[Any]]:
    """The slow path, row by row, for columns holding values of another type than the schema's: a time
    that is not an integer is taken from the id, a severity becomes its name (or its text if it is
    not 0-4, to be named unreadable when read), any other value that is not text becomes text, and a
    row whose id is not two integers (no range read returns one) is left out."""
    rows = []
    for hi, lo, ts, *texts in zip(*(_as_list(c) for c in columns), strict=True):
        if not is_stored_split(hi, lo):
            readback.unreadable_id((hi, lo), "the hot store")
            continue
        if not (type(ts) is int and 0 <= ts < LATEST_MS):
            ts = timestamp_of_high(hi)
        service, log_type, severity, *rest = texts
        if type(severity) is not int or not 0 <= severity < len(SEVERITY_NAMES):
            severity = _text(severity)
        rows.append((hi, lo, ts, _text(service), _text(log_type), severity, *map(_text, rest)))
    columns = [list(c) for c in zip(*rows, strict=True)] or [[] for _ in range(len(columns))]
    columns[5] = [SEVERITY_NAMES[s] if type(s) is int else s for s in columns[5]]
    return columns


def _as_list(values: Sequence[Any] | pa.Array | pa.ChunkedArray) -> list[Any]:
    return values.to_pylist() if isinstance(values, pa.Array | pa.ChunkedArray) else list(values)


def _text(value: Any) -> str | None:
    return value if value is None or type(value) is str else readback.as_text(value)


def int64_bytes(values: Sequence[int] | pa.Array | pa.ChunkedArray) -> bytes:
    """Integers as native 64-bit machine words, straight from an Arrow buffer when they are Arrow's."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if isinstance(values, pa.Array):
        values = values.cast(pa.int64())
        start = values.offset * 8
        return values.buffers()[1].to_pybytes()[start : start + 8 * len(values)]
    return array.array("q", values).tobytes()


def as_arrow(values: Sequence[Any] | pa.Array | pa.ChunkedArray, arrow_type: pa.DataType) -> pa.Array | pa.ChunkedArray:
    if isinstance(values, pa.Array | pa.ChunkedArray):
        return values.cast(arrow_type)
    return pa.array(values, arrow_type)


def uuid_strings(highs: bytes, lows: bytes) -> pa.Array:
    """Canonical UUID text of (id_hi, id_lo) pairs, given as native int64 words, without a Python
    string per id: the halves are made big-endian and hexed in one call each, then every character
    position of the 36-byte text is filled for all ids at once by a strided slice assignment."""
    high, low = array.array("q", highs), array.array("q", lows)
    count = len(high)
    high.byteswap()
    low.byteswap()
    low_hex = bytearray(low.tobytes().hex().encode())
    # The low half is stored without its variant bits (ids.split_id), so its first hex digit is 0-3;
    # with the RFC variant (binary 10 in front) it reads 8-b.
    low_hex[0::16] = low_hex[0::16].translate(_WITH_VARIANT)
    hexes = (high.tobytes().hex().encode(), low_hex)
    text = bytearray(b"-" * (36 * count))
    for half, source, target in _UUID_POSITIONS:
        text[target::36] = hexes[half][source::16]
    # As fixed-size values first: Arrow then makes the offsets (a Python range of them took half the time).
    return pa.FixedSizeBinaryArray.from_buffers(_UUID_TEXT, count, [None, pa.py_buffer(text)]).cast(pa.string())


_WITH_VARIANT = bytes.maketrans(b"0123", b"89ab")
_UUID_TEXT = pa.binary(36)
# (half, hex digit in that half, position in the UUID text): 8-4-4 from id_hi, 4-12 from id_lo.
_UUID_POSITIONS = [(0, i, i + (i >= 8) + (i >= 12)) for i in range(16)] + [(1, i, 19 + i + (i >= 4)) for i in range(16)]
