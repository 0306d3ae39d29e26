"""Hot-store rows (sqlite_rows.COLUMNS order) as an Arrow table with the lake's `logs` schema.

The flush writes these tables to Parquet and the query engine hands them to DuckDB next to the lake's
files, so hot and lake records look alike to SQL.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from loglake.ids import VARIANT_RFC
from loglake.lake.tables import APP_LOGS_TABLE
from loglake.model import SEVERITY_NAMES


def hot_rows_table(rows: list[tuple]) -> pa.Table:
    """The rows as an Arrow table; per-row Python work is kept to the log id text."""
    if not rows:
        return APP_LOGS_TABLE.schema.empty_table()
    columns = list(zip(*rows, strict=True))
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


def _uuid_strings(highs: tuple[int, ...], lows: tuple[int, ...]) -> pa.Array:
    """Canonical UUID text of (id_hi, id_lo) pairs: one hex string for all, then cut and joined by Arrow."""
    variant = VARIANT_RFC
    hex_text = "".join(map(_HEX_PAIR.format, highs, (low | variant for low in lows))).encode()
    count = len(highs)
    offsets = pa.array(range(0, 32 * count + 1, 32), pa.int32())
    plain = pa.StringArray.from_buffers(count, offsets.buffers()[1], pa.py_buffer(hex_text))
    pieces = [pc.utf8_slice_codeunits(plain, start, stop) for start, stop in _UUID_GROUPS]
    return pc.binary_join_element_wise(*pieces, "-")


_HEX_PAIR = "{:016x}{:016x}"
_UUID_GROUPS = ((0, 8), (8, 12), (12, 16), (16, 20), (20, 32))
