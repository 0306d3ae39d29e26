"""A DuckDB result whose values may each hold many, fetched within the answer's size cap (query_answers.fetch_within's
counterpart for them): its rows read as Arrow, measured before any becomes Python objects."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import pyarrow as pa
import pyarrow.compute as pc

from loglake.lake.query_answers import answer_too_large, counted_row


def fetch_arrow_within(
    batches: Iterable[pa.RecordBatch], rows_of: Callable[[pa.RecordBatch], list[tuple]], cap: int, max_bytes: int
) -> list[tuple]:
    """fetch_within for a result whose values may each hold many (lists, structs, maps): one row of a list
    aggregate can hold millions of values, each a Python object once fetched (`list(message)` over a cross join
    took a server to 1.8 GB, four at once to 4.7 GB, with 1 GiB of query memory). The rows come as Arrow record
    batches, and become Python rows (`rows_of`) a slice at a time, each slice no larger as Arrow than what is left
    of the answer (halved until it is, down to one row); a row whose JSON cannot fit (json_floor) is refused
    before it is made."""
    rows: list[tuple] = []
    size = 0
    for batch in batches:
        start = 0
        while start < batch.num_rows:
            if len(rows) == cap:
                return [*rows, ()]  # (one more row: the answer is truncated; it need not be made)
            count = min(batch.num_rows - start, cap - len(rows))
            while count > 1 and batch.slice(start, count).nbytes > max_bytes - size:
                count //= 2
            piece = batch.slice(start, count)
            if piece.nbytes > max_bytes - size and sum(map(json_floor, piece.columns)) > max_bytes - size:
                raise answer_too_large(max_bytes, len(rows))
            for row in rows_of(piece):
                size = counted_row(row, size, len(rows), max_bytes)
                rows.append(row)
            start += count
    return rows


def json_floor(values: pa.Array) -> int:
    """The fewest bytes the values take in an answer's JSON: each at least a character and a comma, a text or
    bytes at least as many as it holds (found without a Python object per value)."""
    kind = values.type
    floor = 2 * len(values)
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_binary(kind):
        floor += pc.sum(pc.binary_length(values)).as_py() or 0
    elif pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind):
        floor += json_floor(values.flatten())  # (a map is a list of its entries)
    elif pa.types.is_struct(kind):
        floor += sum(map(json_floor, values.flatten()))
    return floor
