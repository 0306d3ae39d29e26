"""Damage a SQLite database as a failing disk would: bytes of one table's root page overwritten."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def damage_table_page(database: Path, table: str, length: int = 64) -> None:
    """Flip `length` bytes of `table`'s root page just past its header (which opening a database reads intact), the
    write-ahead log checkpointed into the file first."""
    with sqlite3.connect(database) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        ((page,),) = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", [table])
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.close()
    data = bytearray(database.read_bytes())
    start = (page - 1) * page_size + 8
    data[start : start + length] = bytes(b ^ 0x5A for b in data[start : start + length])
    database.write_bytes(bytes(data))
