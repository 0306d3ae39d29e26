"""An Amplify collection's rows into the lake: Parquet parts, one per event date, of the rows whose request id
the lake does not hold yet, published in one catalog transaction with the app's watermark."""

from __future__ import annotations

import io
import shutil
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from loglake.amplify.parse import MAX_EXAMPLES, ParsedLog
from loglake.amplify.run_reports import AppReport, epoch_ms
from loglake.amplify.schema import AMPLIFY_SCHEMA
from loglake.lake.flush import Step, publish
from loglake.lake.layout import amplify_access_key, new_part_name, partition_prefix, partitions_of
from loglake.lake.manifest import LakeFile, list_files, reading
from loglake.lake.objectstore import ObjectStore
from loglake.lake.parts import PAGE_CHECKSUMS, READ_CHECKED, by_utc_day, file_name
from loglake.lake.schema import LAKE_SCHEMA
from loglake.lake.scratch import new_work_folder
from loglake.lake.sorted_merge import background_duckdb
from loglake.lake.tables import AMPLIFY_ACCESS_TABLE
from loglake.lake.writers import WriterLock
from loglake.store.sqlite import SQLiteHotStore
from loglake.times import DAY_MS

ROW_GROUP_ROWS = 64 * 1024


def use_schemas(store: SQLiteHotStore) -> None:
    """The collector's tables, and the lake catalog it adds its files to."""
    store.use_schema(LAKE_SCHEMA)
    store.use_schema(AMPLIFY_SCHEMA)


def store_rows(
    store: SQLiteHotStore,
    lake: ObjectStore,
    app: str,
    parsed: list[ParsedLog],
    report: AppReport,
    now_ms: int,
    watermark: datetime | None = None,
    on_step: Step = lambda step: None,
) -> None:
    """Add the rows that are not in the lake yet as Parquet parts, one per event date, and move the
    app's watermark (if given), in one catalog transaction. The round is journaled under a writer
    identity (lake/writers.py): a collection runs outside the maintenance lock, and maintenance must
    not undo its round while it is under way (`on_step`: the steps of flush.publish, for tests)."""
    use_schemas(store)
    work = new_work_folder(store.path.parent, "amplify-")
    try:
        with reading(store):  # the partitions' stored parts are read to drop rows already there
            files = new_parts(lake, app, parsed, report, now_ms, work, lambda prefix: _catalogued(store, prefix))

        def finish(conn: sqlite3.Connection) -> None:
            if watermark is not None:
                conn.execute(
                    "INSERT INTO amplify_watermarks (app, until_ms, updated_ms) VALUES (?, ?, ?)"
                    " ON CONFLICT (app) DO UPDATE SET until_ms = max(until_ms, excluded.until_ms),"
                    " updated_ms = excluded.updated_ms",
                    (app, epoch_ms(watermark), now_ms),
                )

        writer = WriterLock(store.path.parent)
        try:
            publish(store, lake, work, files, now_ms, on_step, finish, writer.hold()).result()
        finally:
            writer.release()  # an entry left by a failed round is recovery's to undo from now on
    finally:
        shutil.rmtree(work, ignore_errors=True)


def new_parts(
    lake: ObjectStore,
    app: str,
    parsed: list[ParsedLog],
    report: AppReport,
    now_ms: int,
    work: Path,
    stored_keys: Callable[[str], list[str]],
) -> list[LakeFile]:
    """The parts (written to `work`, one per event date) of the rows whose request id the partition
    does not hold yet; `stored_keys(prefix)` names the partition's stored parts. Tallies the report."""
    for log in parsed:
        report.malformed += log.malformed.count
        report.duplicates += log.duplicates
        report.outside += log.outside
        room = MAX_EXAMPLES - len(report.malformed_examples)
        report.malformed_examples.extend(log.malformed.examples[: max(room, 0)])
    table = pa.concat_tables([log.table for log in parsed]) if parsed else None
    files: list[LakeFile] = []
    if table is not None and table.num_rows:
        for day, of_day in by_utc_day(table):
            prefix = partition_prefix(AMPLIFY_ACCESS_TABLE.directory, app=app, date=day)
            rows = _without_stored(lake, stored_keys(prefix), of_day, report)
            if rows.num_rows:
                files.append(_write_part(rows, amplify_access_key(app, day, new_part_name(now_ms)), work))
    report.rows += sum(f.records for f in files)
    return files


def _catalogued(store: SQLiteHotStore, prefix: str) -> list[str]:
    day = partitions_of(prefix)["date"]
    return [f.key for f in _files_of_day(store, day) if f.key.startswith(prefix)]


def _without_stored(lake: ObjectStore, keys: list[str], rows: pa.Table, report: AppReport) -> pa.Table:
    """`rows` less those whose request id the given stored parts hold already."""
    if not keys:
        return rows
    stored = pa.concat_arrays([_request_ids(lake, key) for key in keys])
    kept = rows.filter(pc.invert(pc.is_in(rows.column("x_edge_request_id"), value_set=stored)))
    report.duplicates += rows.num_rows - kept.num_rows
    return kept


def _request_ids(lake: ObjectStore, key: str) -> pa.Array:
    """A stored part's request ids; a part that cannot be read (damaged outside loglake) fails the window naming
    it and the way out: which rows it holds cannot be told, and collecting them again could store them twice."""
    try:
        table = pq.read_table(io.BytesIO(lake.get(key)), columns=["x_edge_request_id"], **READ_CHECKED)
        return table.column(0).combine_chunks()
    except (OSError, ValueError) as e:  # (pyarrow: ArrowInvalid is a ValueError, a bad checksum an OSError)
        raise StoredPartUnreadable(
            f"the stored part {key} cannot be read ({str(e).splitlines()[0] if str(e) else type(e).__name__});"
            " `loglake verify` checks the lake, and `loglake verify --quarantine` takes a damaged part out (or"
            " restore it from a backup): until then this window cannot be told apart from what the part holds"
        ) from None


class StoredPartUnreadable(Exception):
    """A stored part of the day a window writes to cannot be read (the message says which, and what to do)."""


def _files_of_day(store: SQLiteHotStore, day: str) -> list[LakeFile]:
    start = epoch_ms(datetime.fromisoformat(day).replace(tzinfo=UTC))
    return list_files(store.read, AMPLIFY_ACCESS_TABLE.name, start, start + DAY_MS)


def _write_part(rows: pa.Table, key: str, work: Path) -> LakeFile:
    rows = rows.sort_by([("timestamp", "ascending")])
    path = work / file_name(key)
    pq.write_table(rows, path, row_group_size=ROW_GROUP_ROWS, **_part_options(rows.column_names))
    span = pc.min_max(rows.column("timestamp").cast(pa.int64()))
    day = partitions_of(key)["date"]
    return LakeFile(
        key,
        AMPLIFY_ACCESS_TABLE.name,
        day,
        span["min"].as_py(),
        span["max"].as_py(),
        rows.num_rows,
        path.stat().st_size,
    )


def _part_options(columns: list[str]) -> dict[str, Any]:
    """How a part of the table is written (pyarrow's writer options), by a collection and by a merge alike."""
    return {
        "compression": "zstd",
        "use_dictionary": [
            c for c in columns if c not in ("x_edge_request_id", "timestamp", "cs_cookie", "cs_uri_query")
        ],
        **PAGE_CHECKSUMS,
    }


def merge_parts(lake: ObjectStore, keys: list[str], output: Path, work: Path, memory_mb: int) -> int:
    """Merge stored parts of one partition (lake objects `keys`, downloaded to `work`) into `output`, written as a
    collection writes a part (sorted by time), one row per request id, in `memory_mb` (DuckDB, spilling to `work`);
    returns its rows. Raises (`output` not to be published) unless every request id of the inputs made it."""
    from loglake.lake.compact import downloaded
    from loglake.lake.query_views import sql_string  # (DuckDB: loaded by the merges alone, not by a collection)

    files = ", ".join(sql_string(str(path)) for path in downloaded(lake, keys, work))
    rows = f"read_parquet([{files}], hive_partitioning = false, union_by_name = true)"  # (older parts may lack some)
    schema = AMPLIFY_ACCESS_TABLE.schema
    with background_duckdb(work / "spill", memory_mb) as con:
        ((ids,),) = con.sql(f"SELECT count(DISTINCT x_edge_request_id) FROM {rows}").fetchall()
        ordered = con.sql(f'SELECT * FROM (SELECT DISTINCT ON (x_edge_request_id) * FROM {rows}) ORDER BY "timestamp"')
        with pq.ParquetWriter(output, schema, **_part_options(schema.names)) as writer:
            for batch in ordered.to_arrow_reader(ROW_GROUP_ROWS):
                writer.write_table(AMPLIFY_ACCESS_TABLE.conform(pa.Table.from_batches([batch])), ROW_GROUP_ROWS)
    written = pq.read_metadata(output).num_rows
    if written != ids:  # never delete inputs whose rows did not all make it
        raise RuntimeError(f"merging amplify_access parts wrote {written} of {ids} requests of {output.name}")
    return written
