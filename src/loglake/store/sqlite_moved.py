"""The lake's writes of hot rows, in its own transaction on the store's writer connection: deleting the rows a
flush moved into the lake (keeping their client ids), and forgetting client ids whose records retention dropped or
quarantine took out."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence

from loglake.ids import smallest_high


def delete_moved(
    conn: sqlite3.Connection,
    first: tuple[int, int],
    last: tuple[int, int],
    count: int,
    ids: Iterable[tuple[int, int]],
    client_ids: Sequence[tuple[str, int, int]],
) -> None:
    """In the lake's transaction (conn: the writer's), delete the `count` rows a flush round moved,
    the oldest due, ids (id_hi, id_lo) from `first` to `last`, and keep their client ids (client id,
    id_hi, id_lo), which still name the record for retries. Unless a late record arrived among them
    since, that is the whole id range: a range delete, about three times faster than deleting row by
    row, which is the fallback."""
    conn.executemany("INSERT OR IGNORE INTO flushed_client_ids (client_id, id_hi, id_lo) VALUES (?, ?, ?)", client_ids)
    bounds = (*first, *last)
    in_range = "(id_hi, id_lo) >= (?, ?) AND (id_hi, id_lo) <= (?, ?)"
    if conn.execute(f"SELECT count(*) FROM logs WHERE {in_range}", bounds).fetchone()[0] == count:
        conn.execute(f"DELETE FROM logs WHERE {in_range}", bounds)
    else:
        conn.executemany("DELETE FROM logs WHERE id_hi = ? AND id_lo = ?", ids)


def forget_flushed_client_ids(conn: sqlite3.Connection, before_ms: int) -> None:
    """In the lake's transaction: client ids of records timestamped before `before_ms`, which
    retention dropped, no longer name a record."""
    conn.execute("DELETE FROM flushed_client_ids WHERE id_hi < ?", (smallest_high(before_ms),))


def forget_client_ids(conn: sqlite3.Connection, client_ids: Iterable[str]) -> None:
    """In the lake's transaction: these client ids of moved records, taken out of the lake, no longer name one."""
    conn.executemany("DELETE FROM flushed_client_ids WHERE client_id = ?", ((client_id,) for client_id in client_ids))
