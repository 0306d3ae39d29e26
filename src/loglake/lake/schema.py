"""The lake's tables in hot.db: the flush journal and the catalog (see manifest.py and flush.py).

They live in the hot store's database because a flush deletes hot rows and adds their files to the
catalog in one transaction. The lake's classes apply this schema (SQLiteHotStore.use_schema) before
using it. The first step creates the tables only if missing: databases made before this package kept
its own schema have them from the hot store's history.
"""

from __future__ import annotations

from loglake.sqlitedb import Schema

LAKE_SCHEMA = Schema(
    "lake",
    [
        """
        -- Lake flushes under way: their objects may be in the lake while their rows are still hot.
        -- A query skips these objects. A flush deletes its rows and its row here in one transaction.
        CREATE TABLE IF NOT EXISTS flushes (
            flush_id   INTEGER PRIMARY KEY,
            started_ms INTEGER NOT NULL,
            objects    TEXT NOT NULL,      -- JSON array of lake keys
            records    INTEGER NOT NULL
        );
        -- The lake's catalog: every lake object a query reads. A flush adds its objects here in the
        -- transaction that deletes their rows, so one snapshot of logs + lake_files holds each record
        -- exactly once, without listing the object store.
        CREATE TABLE IF NOT EXISTS lake_files (
            key        TEXT PRIMARY KEY,   -- object key, e.g. type=app_logs/date=2026-11-01/part-<uuid7>.parquet
            table_name TEXT NOT NULL,      -- the SQL table it belongs to (lake.tables)
            day        TEXT NOT NULL,      -- its date partition, YYYY-MM-DD
            min_ts     INTEGER NOT NULL,   -- epoch ms of its oldest and newest record
            max_ts     INTEGER NOT NULL,
            records    INTEGER NOT NULL,
            bytes      INTEGER NOT NULL,
            created_ms INTEGER NOT NULL
        );
        CREATE INDEX IF NOT EXISTS lake_files_by_day ON lake_files (table_name, day);
        -- Objects that compaction replaced or retention dropped: no longer in lake_files, deleted from
        -- the object store once no query that started before can still be reading them.
        CREATE TABLE IF NOT EXISTS lake_garbage (
            key             TEXT PRIMARY KEY,
            delete_after_ms INTEGER NOT NULL
        );
        """,
        # Bulk ingest publishes outside the maintenance lock: its rounds name their writer (lake/bulk.py).
        "ALTER TABLE flushes ADD COLUMN owner TEXT",
        # Small bulk batches wait until they add up to a part of a flush round's size (lake/waiting.py): a
        # part per batch cost its writes and fsyncs, then merges of tiny parts.
        """
        CREATE TABLE bulk_batches (
            batch_id INTEGER PRIMARY KEY,
            rows     INTEGER NOT NULL,
            min_ts   INTEGER NOT NULL,     -- epoch ms of its oldest and newest record
            max_ts   INTEGER NOT NULL,
            bytes    INTEGER NOT NULL,
            file     TEXT NOT NULL         -- its checked table as an Arrow IPC stream, in waiting/ beside hot.db
        )
        """,
        # Whether a day's final merge wrote the file (ZSTD, a service per row group: parts.py); a quiet day's
        # other files are rewritten into that shape, alone if need be (compact.final_groups). Files cataloged
        # before are taken as final: an upgrade rewrites nothing.
        "ALTER TABLE lake_files ADD COLUMN final INTEGER NOT NULL DEFAULT 1",
    ],
)
