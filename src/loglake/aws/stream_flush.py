"""DynamoDB Streams to the lake: each batch of new hot-table records becomes Parquet parts with the
local lake's layout (`type=app_logs/date=YYYY-MM-DD/part-<id>.parquet`, sorted by service and time,
one service per row group), so Athena, the Glue tables and `loglake query` read the same files.

On AWS the lake receives every record as it arrives (within a stream batch), while the table keeps
it for the hot window (TTL): Athena reads the lake alone, "recent logs" read the table. Streams
deliver at least once, so a part's name is derived from what it holds (the stream, its day and the
first and last sequence numbers of that day's records): a retried batch writes the same objects
again, never a second copy. (A batch Lambda splits after failures may name a day's records
differently; the compaction keeps one row per log id.)

A part is written as a day's final merge writes (parts.SMALL: ZSTD, a service per row group): AWS compaction
merges only a day's small parts, so a part alone in its day stays as written, and Athena, which bills the bytes
it scans, reads these parts until then. (The local lake writes Snappy parts that its compaction rewrites soon,
and rewrites a quiet day's lone part into its final form: compact.final_groups.)
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import tempfile
import uuid
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from loglake.lake.hot_rows import hot_rows_table
from loglake.lake.layout import app_logs_key, day_of
from loglake.lake.objectstore import ObjectStore
from loglake.lake.parts import SMALL, by_utc_day, file_name, write_part
from loglake.model import NewRecord
from loglake.store.dynamodb_items import record_from_item
from loglake.store.sqlite_rows import row_values

# A part for a day before yesterday (a back-fill, records sent or delivered late) is noted here too, under its key:
# the hourly compaction looks at the last week's days (where the others stay for five more days of runs), and at
# the days noted, whatever their age (aws/compaction.py).
LATE_PREFIX = "_state/late_parts/"


def flush_stream_batch(event: dict[str, Any], lake: ObjectStore, today: date | None = None) -> list[str]:
    """Write the batch's new records as parts; returns their object keys. `today`: the UTC day now."""
    late_before = (today or datetime.now(UTC).date()) - timedelta(days=1)
    new = [(r, e["dynamodb"].get("SequenceNumber", "")) for e in event.get("Records", []) if (r := _new_record(e))]
    if not new:
        return []
    stream = event["Records"][0].get("eventSourceARN", "")
    records = [r for r, _ in new]
    table = hot_rows_table(_columns(records))
    work = Path(tempfile.mkdtemp(prefix="loglake-stream-"))
    keys = []
    try:
        for day, rows in by_utc_day(table):
            sequences = [seq for (r, seq) in new if day_of(r.timestamp) == day]
            held = f"{stream}|{day}|{sequences[0]}|{sequences[-1]}|{len(sequences)}"
            part_id = uuid.UUID(bytes=hashlib.sha256(held.encode()).digest()[:16])
            key = app_logs_key(day, f"part-{part_id}.parquet")
            write_part(rows, key, work, codec=SMALL)
            lake.put_file(key, work / file_name(key))
            if day < late_before:  # (once the part is written: a note the compaction lists is of a part it lists)
                lake.put(LATE_PREFIX + key, b"")
            keys.append(key)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return keys


def _new_record(event_record: dict[str, Any]) -> NewRecord | None:
    """A log record from an INSERT's new image; None for removals (TTL) and for the table's own
    bookkeeping items (client-id claims, the hours directory), whose partition starts with '#'."""
    if event_record.get("eventName") != "INSERT":
        return None
    image = event_record["dynamodb"].get("NewImage") or {}
    if image.get("service_name", {}).get("S", "#").startswith("#"):
        return None
    return record_from_item(image, _binary)


def _binary(value: dict[str, Any]) -> bytes:
    """Lambda hands binary attributes over base64-encoded."""
    data = value["B"]
    return data if isinstance(data, bytes) else base64.b64decode(data)


def _columns(records: Iterable[NewRecord]) -> list[tuple]:
    """The hot store's columns (sqlite_rows.COLUMNS), which hot_rows_table reads."""
    return list(zip(*map(row_values, records), strict=True))
