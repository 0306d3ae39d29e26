"""Lake Parquet files ("parts"): how a flush or a compaction writes rows so that queries prune well."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import NamedTuple

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from loglake.lake.layout import day_of, partitions_of
from loglake.lake.manifest import LakeFile
from loglake.lake.tables import APP_LOGS_TABLE
from loglake.times import DAY_MS

# How lake files are written (measured on the 10M-record bench set, see bench/README.md):
# - one service per row group, at most 8Ki rows: a service's newest records sit in one, which is all
#   "recent logs" reads (16Ki doubles that read; 4Ki costs Q2 25% and Q3 50% in per-row-group work);
# - the files that compaction rewrites soon (a flush round's, a bulk batch's, a tier merge's) in Snappy, the
#   cheapest to write and to read back for the next merge: 160k bench records written in 0.37 and read in
#   0.26 us each, against ZSTD level 1's 0.47 and 0.30, in 1.7x the bytes, for files that live minutes; under
#   sustained bulk ingest writing and merging them is most of the server's CPU after the check (10M records
#   from 4 senders, bench/sustained_ingest.py, alternated pairs: 342k and 361k -> 375k and 378k records/s).
#   A day's final merge, once the day is quiet, writes ZSTD: level 8 for the log ids (neighbours share long
#   prefixes: 8.8 -> 5 MB per 1M records) and 9 for the text (messages 8% smaller); a quiet day's file that no
#   final merge wrote is rewritten so, alone if need be (compact.final_groups).
# - the timestamps delta-encoded (sorted per service: 4.9 -> 1.6 MB per 1M), everything short and
#   repetitive dictionary-encoded, messages not (most are distinct).
# - in the footer's key-value metadata, per row group, the newest time of each severity in it
#   (SEVERITY_INDEX_KEY): "recent errors" then reads only the row groups that can hold the newest
#   errors, where min/max statistics of the names say little (a row group of debug..warning may
#   hold no error) and the row group's newest time says nothing of its errors.
# - every page with its CRC-32 (PAGE_CHECKSUMS), which loglake's own reads of lake files verify (READ_CHECKED): a
#   bit flipped on the disk or in a copy fails the read naming the file, where unchecked it was read as other values
#   (31 of 100 single-bit flips in a Snappy part, DuckDB's reads alike) and a merge wrote them into a new file with
#   checksums of its own. Writing and checking them costs nothing measurable (160k bench records: 0.34-0.37 us each
#   to write in Snappy, 0.18-0.23 to read, either way). DuckDB does not check them: `loglake verify` does.
# Plain Parquet 1.0 pages with PLAIN, RLE_DICTIONARY and DELTA_BINARY_PACKED, compressed with Snappy or ZSTD:
# Athena/Trino, DuckDB and Spark >= 3.3 read them; other readers ignore the key-value metadata and the checksums.
ROW_GROUP_ROWS = 8 * 1024
SORT_ORDER = [("service", "ascending"), ("timestamp", "ascending")]  # of every lake file's rows
SEVERITY_INDEX_KEY = b"loglake.newest_ms_by_severity"
PAGE_CHECKSUMS = {"write_page_checksum": True}  # of every lake file loglake writes
READ_CHECKED = {"page_checksum_verification": True}  # of every read of a lake file's pages that loglake makes


class Codec(NamedTuple):
    """How a file's pages are compressed: the Parquet codec and, for ZSTD, the level of the log ids and of the
    text columns."""

    name: str
    levels: tuple[int, int] | None = None


FAST = Codec("snappy")  # files compaction rewrites soon
SMALL = Codec("zstd", (8, 9))  # a day's final merge


def parquet_writer(path: Path, codec: Codec = FAST) -> pq.ParquetWriter:
    by_column = None
    if codec.levels is not None:
        id_level, text_level = codec.levels
        by_column = {name: text_level for name in APP_LOGS_TABLE.schema.names} | {"log_id": id_level, "timestamp": 1}
    return pq.ParquetWriter(
        path,
        APP_LOGS_TABLE.schema,
        compression=codec.name,
        compression_level=by_column,
        use_dictionary=["service", "log_type", "severity", "attributes", "client_id"],
        column_encoding={"timestamp": "DELTA_BINARY_PACKED"},
        **PAGE_CHECKSUMS,
    )


class ServiceRowGroups:
    """Writes rows sorted by (service, timestamp) so that each row group holds one service only (at most
    ROW_GROUP_ROWS of it): a service filter then skips every other row group by its statistics, and a
    row group's time span is that service's alone, which "recent logs" relies on to read one.
    `finish` writes the last row group and the severity index (SEVERITY_INDEX_KEY). Without
    `by_service`, row groups are plain runs of ROW_GROUP_ROWS sorted rows (a few services each, which
    their statistics say): half the write time, for files that compaction rewrites soon."""

    def __init__(self, writer: pq.ParquetWriter, by_service: bool = True) -> None:
        self.writer = writer
        self.by_service = by_service
        self.pending: list[pa.Table] = []
        self.pending_rows = 0
        self.service: str | None = None
        self.newest_by_severity: list[dict[str, int]] = []  # per row group written

    def add(self, table: pa.Table) -> None:
        if not self.by_service:
            self.pending.append(table)
            self.pending_rows += table.num_rows
            if self.pending_rows >= ROW_GROUP_ROWS:
                self.flush(whole_groups_only=True)
            return
        services = table.column("service")
        changes = pc.indices_nonzero(pc.not_equal(services.slice(1), services.slice(0, len(services) - 1)))
        start = 0
        for end in [*(i + 1 for i in changes.to_pylist()), table.num_rows]:
            if end > start:
                self._add_run(table.slice(start, end - start), services[start].as_py())
            start = end

    def _add_run(self, run: pa.Table, service: str) -> None:
        if service != self.service:
            self.flush()
            self.service = service
        self.pending.append(run)
        self.pending_rows += run.num_rows
        if self.pending_rows >= ROW_GROUP_ROWS:
            self.flush(whole_groups_only=True)

    def flush(self, whole_groups_only: bool = False) -> None:
        """Write the pending rows as row groups; with `whole_groups_only`, the rows short of a whole
        row group stay pending (rows added a batch at a time, as a merge does, then still fill them)."""
        if self.pending:
            rows = pa.concat_tables(self.pending)
            end = rows.num_rows - rows.num_rows % ROW_GROUP_ROWS if whole_groups_only else rows.num_rows
            for start in range(0, end, ROW_GROUP_ROWS):
                group = rows.slice(start, min(ROW_GROUP_ROWS, end - start)).combine_chunks()
                self.writer.write_table(group, row_group_size=ROW_GROUP_ROWS)  # one row group
                self.newest_by_severity.append(newest_by_severity(group))
            self.pending = [rows.slice(end)] if end < rows.num_rows else []
            self.pending_rows = rows.num_rows - end

    def finish(self) -> None:
        self.flush()
        self.writer.add_key_value_metadata({SEVERITY_INDEX_KEY: json.dumps(self.newest_by_severity)})


def newest_by_severity(rows: pa.Table) -> dict[str, int]:
    """Each severity of these rows (as written) and the newest epoch ms it has (nulls left out)."""
    times = pa.table({"severity": rows.column("severity"), "ms": rows.column("timestamp").cast(pa.int64())})
    newest = times.drop_null().group_by("severity", use_threads=False).aggregate([("ms", "max")])  # small: inline
    return dict(zip(newest["severity"].to_pylist(), newest["ms_max"].to_pylist(), strict=True))


def write_part(table: pa.Table, key: str, work: Path, *, by_service: bool = True, codec: Codec = FAST) -> LakeFile:
    """One day's records as a Parquet object-to-be in `work`, sorted by (service, timestamp), one
    service per row group unless `by_service` is off (a bulk batch's part, see ServiceRowGroups), compressed
    with `codec` (FAST for a part that compaction rewrites soon)."""
    table = table.sort_by(SORT_ORDER)
    path = work / file_name(key)
    with parquet_writer(path, codec) as writer:
        groups = ServiceRowGroups(writer, by_service)
        groups.add(table)
        groups.finish()
    span = pc.min_max(table.column("timestamp").cast(pa.int64()))
    day = partitions_of(key)["date"]
    return LakeFile(
        key, APP_LOGS_TABLE.name, day, span["min"].as_py(), span["max"].as_py(), table.num_rows, path.stat().st_size
    )


def file_name(key: str) -> str:
    """The last part of an object key: the name its file has in a work folder before it is published."""
    return key.rsplit("/", 1)[1]


def by_utc_day(table: pa.Table) -> Iterator[tuple[date, pa.Table]]:
    """A table's rows per UTC day of their `timestamp`: the lake's date partitions."""
    days = pc.divide(table.column("timestamp").cast(pa.int64()), DAY_MS)  # integer division: UTC days
    span = pc.min_max(days)
    if span["min"].is_valid and span["min"] == span["max"]:  # all of one day (a bulk batch, mostly): no filtered copy
        yield day_of(span["min"].as_py() * DAY_MS), table
        return
    for day_number in pc.unique(days).to_pylist():
        yield day_of(day_number * DAY_MS), table.filter(pc.equal(days, day_number))
