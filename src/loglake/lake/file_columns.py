"""Which columns a lake file lacks because it was written before they were added (Column.added_later).

DuckDB reads a list of Parquet files with the first file's columns, and fails on a later file that
lacks one (or drops a column the first file lacks). Its `union_by_name` reads every file's footer
before the query starts, even of files a date filter would skip, so the query engine instead reads
the files in groups of the same columns, each with nulls for what it lacks. A lake object never
changes once written, so each file's footer is read once per process.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

import pyarrow as pa
import pyarrow.parquet as pq

from loglake.lake.tables import LakeTable


def by_missing_columns(table: LakeTable, paths: Iterable[str]) -> dict[tuple[str, ...], list[str]]:
    """The paths of `table`'s local files grouped by the added columns each lacks (() for none), in order."""
    added = tuple(c.name for c in table.columns if c.added_later)
    groups: dict[tuple[str, ...], list[str]] = {}
    for path in paths:
        groups.setdefault(_lacking(path, added) if added else (), []).append(path)
    return groups


@functools.lru_cache(maxsize=65_536)
def _lacking(path: str, added: tuple[str, ...]) -> tuple[str, ...]:
    try:
        names = pq.read_schema(path).names
    except (OSError, pa.ArrowException):
        return ()  # damaged or gone: the query reads it as it is and names the problem
    return tuple(name for name in added if name not in names)
