"""Compaction of a catalog-less lake (as on AWS): a day's stream-flush parts merged into one, on a
local folder and on S3 (SeaweedFS)."""

from __future__ import annotations

import io
from datetime import date

import pyarrow.parquet as pq

from loglake.aws.compaction import compact_days, recent_days
from loglake.aws.stream_flush import flush_stream_batch
from loglake.ids import format_uuid
from loglake.lake.objectstore import ObjectStore
from loglake.model import Severity
from loglake.store.dynamodb import record_item
from tests.lake.test_flush import DAY, SERVICES, START, one_service_per_row_group
from tests.store.contract import record


def stream_batch(records, number: int) -> dict:
    """A DynamoDB Streams batch of INSERTs as the flush function receives it."""
    events = [
        {"eventName": "INSERT", "eventSourceARN": "arn:stream",
         "dynamodb": {"NewImage": record_item(r, 0, "0#0"), "SequenceNumber": f"{number:06d}{i:04d}"}}
        for i, r in enumerate(records)
    ]  # fmt: skip
    return {"Records": events}


def test_a_days_small_parts_become_one_sorted_file(object_store: ObjectStore) -> None:
    written = []
    for batch in range(6):  # six stream batches: six parts for the day
        records = [
            record(START + batch * 100 + i, f"b{batch}-{i}", service=SERVICES[i % 3], severity=Severity(i % 5))
            for i in range(40)
        ]
        flush_stream_batch(stream_batch(records, batch), object_store)
        written.extend(records)
    day = date(2026, 11, 1)
    assert len(list(object_store.list("type=app_logs/date=2026-11-01/"))) == 6
    report = compact_days(object_store, [day, date(2026, 11, 2)], START + DAY)
    (merged,) = [o.key for o in object_store.list("type=app_logs/date=2026-11-01/")]
    assert report.merged_files == 6 and report.written_files == [merged]
    data = object_store.get(merged)
    rows = pq.read_table(io.BytesIO(data)).to_pylist()
    assert sorted(r["log_id"] for r in rows) == sorted(format_uuid(r.log_id) for r in written)
    assert [(r["service"], r["timestamp"]) for r in rows] == sorted((r["service"], r["timestamp"]) for r in rows)
    assert one_service_per_row_group(pq.ParquetFile(io.BytesIO(data)).metadata)
    assert compact_days(object_store, [day], START + DAY).merged_files == 0  # nothing left to merge


def test_a_scheduled_run_looks_at_the_last_week() -> None:
    assert recent_days(date(2026, 11, 22), 3) == [date(2026, 11, 22), date(2026, 11, 21), date(2026, 11, 20)]
