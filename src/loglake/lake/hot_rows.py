"""Hot-store rows (sqlite_rows.COLUMNS order) as an Arrow table with the lake's `logs` schema.

The flush writes these tables to Parquet and the query engine hands them to DuckDB next to the lake's
files, so hot and lake records look alike to SQL.
"""

from __future__ import annotations

import array
from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

from loglake.lake.tables import APP_LOGS_TABLE
from loglake.model import SEVERITY_NAMES


def hot_rows_table(columns: Sequence[Sequence]) -> pa.Table:
    """Hot rows, given as columns, as an Arrow table; per-row Python work is kept to the log id text."""
    if not columns or not columns[0]:
        return APP_LOGS_TABLE.schema.empty_table()
    return pa.table(
        [
            _uuid_strings(columns[0], columns[1]),
            pa.array(columns[2], pa.int64()).cast(pa.timestamp("ms")),
            columns[3],
            columns[4],
            pc.take(pa.array(SEVERITY_NAMES), pa.array(columns[5], pa.int8())),
            columns[6],
            columns[7],
            columns[8],
        ],
        schema=APP_LOGS_TABLE.schema,
    )


def _uuid_strings(highs: Sequence[int], lows: Sequence[int]) -> pa.Array:
    """Canonical UUID text of (id_hi, id_lo) pairs without a Python string per id: the halves are packed
    big-endian by `array` and hexed in one call each, then every character position of the 36-byte
    text is filled for all ids at once by a strided slice assignment."""
    count = len(highs)
    high, low = array.array("q", highs), array.array("q", lows)
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
    offsets = pa.array(range(0, 36 * count + 1, 36), pa.int32())
    return pa.StringArray.from_buffers(count, offsets.buffers()[1], pa.py_buffer(text))


_WITH_VARIANT = bytes.maketrans(b"0123", b"89ab")
# (half, hex digit in that half, position in the UUID text): 8-4-4 from id_hi, 4-12 from id_lo.
_UUID_POSITIONS = [(0, i, i + (i >= 8) + (i >= 12)) for i in range(16)] + [(1, i, 19 + i + (i >= 4)) for i in range(16)]
