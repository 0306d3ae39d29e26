"""The Amplify collector's state in hot.db: per app, how far collection got, and each run's report.

The collector applies this schema (SQLiteHotStore.use_schema) before using it. The first step creates
the tables only if missing: databases made before this package kept its own schema have them from the
hot store's history.
"""

from __future__ import annotations

from loglake.sqlitedb import Schema

AMPLIFY_SCHEMA = Schema(
    "amplify",
    [
        """
        -- Per app, the end of the last window collected in full (every window before it succeeded).
        CREATE TABLE IF NOT EXISTS amplify_watermarks (
            app        TEXT PRIMARY KEY,   -- the configuration's appName
            until_ms   INTEGER NOT NULL,   -- epoch ms, exclusive
            updated_ms INTEGER NOT NULL
        ) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS amplify_runs (
            run_id      INTEGER PRIMARY KEY,
            started_ms  INTEGER NOT NULL,
            finished_ms INTEGER NOT NULL,
            report      TEXT NOT NULL      -- JSON: per app windows, rows, bytes, retries, errors, duration
        );
        """,
        """
        -- Per app, the end of the hours collected once they were collector.LATE old (late logs and all), NULL
        -- until the first scheduled run that knows of it.
        ALTER TABLE amplify_watermarks ADD COLUMN rechecked_ms INTEGER;
        """,
    ],
)
