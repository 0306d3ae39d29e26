"""Compaction of a catalog-less lake (as on AWS): a day's stream-flush parts merged into one, on a
local folder and on S3 (SeaweedFS)."""

from __future__ import annotations

import io
from datetime import date

import pyarrow.parquet as pq
import pytest

from loglake.aws import compaction
from loglake.aws.compaction import compact_days, late_days, recent_days, scheduled_days
from loglake.aws.stream_flush import LATE_PREFIX, flush_stream_batch
from loglake.ids import format_uuid
from loglake.lake.layout import QUARANTINE
from loglake.lake.manifest import LakeFile
from loglake.lake.objectstore import ObjectStore, S3ObjectStore
from loglake.model import Severity
from loglake.store.dynamodb_items import record_item
from tests.lake.test_flush import DAY, SERVICES, START, one_service_per_row_group
from tests.store.contract import record


def stream_batch(records, number: int) -> dict:
    """A DynamoDB Streams batch of INSERTs as the flush function receives it."""
    events = [
        {"eventName": "INSERT", "eventSourceARN": "arn:stream",
         "dynamodb": {"NewImage": record_item(r, 0, 0), "SequenceNumber": f"{number:06d}{i:04d}"}}
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


def test_days_past_the_last_week_that_got_parts_are_merged_a_bounded_number_a_run(
    object_store: ObjectStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A back-filled (or late) record's day before the last week kept its small parts for good: the scheduled runs
    looked at the last seven days only, and every query over that day read each part."""
    today = date(2026, 12, 31)
    for batch in range(3):  # parts for days long past (day n: 2026-11-0n), and for today, which is not noted
        old = [record(START + n * DAY + batch * 10 + i, f"b{batch}-{n}-{i}") for n in range(4) for i in range(3)]
        flush_stream_batch(stream_batch(old, batch), object_store, today=today)
        flush_stream_batch(stream_batch([record(START + 60 * DAY + batch, "now")], 10 + batch), object_store, today)
    assert len(list(object_store.list(LATE_PREFIX))) == 12  # a note per late part
    late = late_days(object_store)
    assert sorted(late) == [date(2026, 11, 1 + n) for n in range(4)]
    days = scheduled_days(today, late)
    assert days[:7] == recent_days(today) and days[7:] == [date(2026, 11, 1 + n) for n in range(4)]

    monkeypatch.setattr(compaction, "LATE_DAYS_PER_RUN", 3)  # the work of a run is bounded
    days = scheduled_days(today, late)
    assert days[7:] == [date(2026, 11, 1), date(2026, 11, 2), date(2026, 11, 3)]
    report = compact_days(object_store, days, START + 61 * DAY, late=late)
    assert report.merged_files == 3 * 4
    for n in range(3):
        assert len(list(object_store.list(f"type=app_logs/date=2026-11-0{n + 1}/"))) == 1
    assert len(list(object_store.list("type=app_logs/date=2026-11-04/"))) == 3  # the next run's
    assert sorted(late_days(object_store)) == [date(2026, 11, 4)]  # the merged days' notes gone, its kept

    report = compact_days(object_store, scheduled_days(today, late_days(object_store)), START + 61 * DAY,
                          late=late_days(object_store))  # fmt: skip
    assert report.merged_files == 3 and list(object_store.list(LATE_PREFIX)) == []


def test_records_the_stream_delivered_twice_are_kept_once(object_store: ObjectStore) -> None:
    records = [record(START + i, f"r{i}", service=SERVICES[i % 3]) for i in range(30)]
    flush_stream_batch(stream_batch(records, 1), object_store)
    flush_stream_batch(stream_batch(records[10:], 2), object_store)  # a retried half, under another name
    report = compact_days(object_store, [date(2026, 11, 1)], START + DAY)
    (merged,) = report.written_files
    ids = pq.read_table(io.BytesIO(object_store.get(merged))).column("log_id").to_pylist()
    assert sorted(ids) == sorted(format_uuid(r.log_id) for r in records)


def test_a_run_cut_off_before_deleting_its_inputs_is_finished_by_the_next(object_store: ObjectStore) -> None:
    import json

    from loglake.aws.compaction import JOURNAL_PREFIX

    for batch in range(3):
        flush_stream_batch(stream_batch([record(START + batch * 10 + i, f"b{batch}") for i in range(5)], batch),
                           object_store)  # fmt: skip
    inputs = sorted(o.key for o in object_store.list("type=app_logs/date=2026-11-01/"))
    # as a run cut off after publishing its merged file: the journal, the output, the inputs still there
    merged = "type=app_logs/date=2026-11-01/part-merged.parquet"
    object_store.put(merged, object_store.get(inputs[0]))
    object_store.put(f"{JOURNAL_PREFIX}a.json", json.dumps({"output": merged, "inputs": inputs[1:]}).encode())
    # and one cut off before: a journal whose output never arrived
    never = {"output": "type=app_logs/date=2026-11-01/part-never.parquet", "inputs": inputs[:1]}
    object_store.put(f"{JOURNAL_PREFIX}b.json", json.dumps(never).encode())

    compact_days(object_store, [], START + DAY)

    left = sorted(o.key for o in object_store.list("type=app_logs/"))
    assert left == sorted([inputs[0], merged])  # the finished merge's inputs went; the other's stayed
    assert list(object_store.list(JOURNAL_PREFIX)) == []


def test_a_split_retry_rewrites_the_parts_of_days_it_holds_whole(object_store: ObjectStore) -> None:
    """Lambda bisects a failing batch: a day whose records all fall in one half gets the same part name."""
    day_one = [record(START + i, f"one{i}") for i in range(4)]
    day_two = [record(START + DAY + i, f"two{i}") for i in range(4)]
    whole = stream_batch(day_one + day_two, 7)
    first_half = {"Records": whole["Records"][:4]}
    keys_whole = flush_stream_batch(whole, object_store)
    keys_half = flush_stream_batch(first_half, object_store)
    assert keys_half == [k for k in keys_whole if "date=2026-11-01" in k]
    assert len(list(object_store.list("type=app_logs/"))) == 2


def test_a_damaged_part_is_quarantined_once_and_the_others_merge(
    object_store: ObjectStore, caplog: pytest.LogCaptureFixture
) -> None:
    """One part damaged outside loglake failed the run at its day, every later day unmerged, at every run; then,
    left in place, it was read whole again and logged again at every run (and Athena failed on it)."""
    for batch in range(3):
        records = [record(START + batch * 100 + i, f"b{batch}-{i}") for i in range(10)]
        flush_stream_batch(stream_batch(records, batch), object_store)
        flush_stream_batch(stream_batch([record(START + DAY + batch, f"d2-{batch}")], 10 + batch), object_store)
    damaged = "type=app_logs/date=2026-11-01/part-damaged.parquet"
    object_store.put(damaged, b"PAR1 this is no Parquet file PAR1")
    days = [date(2026, 11, 1), date(2026, 11, 2)]
    report = compact_days(object_store, days, START + 2 * DAY)
    assert list(report.damaged) == [damaged] and report.merged_files == 6
    assert len(list(object_store.list("type=app_logs/date=2026-11-01/"))) == 1  # the three parts merged
    assert len(list(object_store.list("type=app_logs/date=2026-11-02/"))) == 1
    assert object_store.get(f"{QUARANTINE}/{damaged}") == b"PAR1 this is no Parquet file PAR1"  # kept, out of reads
    (said,) = [r.getMessage() for r in caplog.records if damaged in r.getMessage()]
    assert f"moved to {QUARANTINE}/{damaged}" in said
    # the next run neither reads nor names it again
    flush_stream_batch(stream_batch([record(START + 500 + i, f"late{i}") for i in range(3)], 20), object_store)
    caplog.clear()
    again = compact_days(object_store, days, START + 3 * DAY)
    assert again.damaged == {} and again.merged_files == 2
    assert not [r for r in caplog.records if damaged in r.getMessage()]


def test_a_damaged_journal_is_quarantined_and_does_not_stop_compaction(
    object_store: ObjectStore, caplog: pytest.LogCaptureFixture
) -> None:
    """A journal object that does not read (damaged outside loglake, cut short, not loglake's) failed every run
    before its first merge: the lake's parts were never merged again."""
    from loglake.aws.compaction import JOURNAL_PREFIX

    for batch in range(3):
        flush_stream_batch(stream_batch([record(START + batch * 10 + i, f"b{batch}") for i in range(5)], batch),
                           object_store)  # fmt: skip
    claim = b'{"output": "_state/catalog.json", "inputs": ["_state/catalog.json"]}'  # (valid JSON: no part's keys)
    damaged = {f"{JOURNAL_PREFIX}cut.json": b'{"output": "type=app_lo', f"{JOURNAL_PREFIX}list.json": b"[1, 2]",
               f"{JOURNAL_PREFIX}odd.json": claim,
               f"{JOURNAL_PREFIX}type=app_logs/x.parquet.json": b"{}"}  # (a key naming no day's part)  # fmt: skip
    for key, data in damaged.items():
        object_store.put(key, data)
    report = compact_days(object_store, [date(2026, 11, 1)], START + DAY)
    assert report.merged_files == 3 and set(report.damaged) == set(damaged)
    assert list(object_store.list(JOURNAL_PREFIX)) == []
    for key, data in damaged.items():
        assert object_store.get(f"{QUARANTINE}/{key}") == data
        (said,) = [r.getMessage() for r in caplog.records if key in r.getMessage()]
        assert f"moved to {QUARANTINE}/{key}" in said and "twice" in said
    # what is not a journal at all (an S3 console's folder) is passed over
    if isinstance(object_store, S3ObjectStore):
        object_store.client.put_object(Bucket=object_store.bucket, Key=f"{object_store.prefix}{JOURNAL_PREFIX}")
        assert compact_days(object_store, [date(2026, 11, 1)], START + DAY).damaged == {}


def amplify_parts(lake: ObjectStore, app: str, windows: list[list], now_ms: int, checked: bool = True) -> None:
    """A part per window and event date, as the collection's download step stores them (amplify_steps.download);
    not `checked`, the rows already stored are not left out (two downloads of a window at once)."""
    import tempfile
    from pathlib import Path

    from loglake.amplify.lake_rows import new_parts
    from loglake.amplify.parse import parse_access_log
    from loglake.amplify.run_reports import AppReport
    from loglake.lake.parts import file_name
    from tests.amplify.logs import access_log

    for number, requests in enumerate(windows):
        work = Path(tempfile.mkdtemp())
        parsed = [parse_access_log(access_log(requests))]
        for part in new_parts(lake, app, parsed, AppReport(app), now_ms + number, work,
                              lambda prefix: [o.key for o in lake.list(prefix)] if checked else []):  # fmt: skip
            lake.put_file(part.key, work / file_name(part.key))


def test_amplify_access_parts_are_merged_into_one_per_app_and_day(object_store: ObjectStore) -> None:
    """A collection stores a part per window and event date (and its rechecks more): the deployment's compaction
    merged app_logs alone, and amplify_access kept each of those parts for good, each read by every query."""
    from tests.amplify.logs import varied_requests

    requests = varied_requests(90, START, DAY // 2, salt="a")
    windows = [requests[:30], requests[30:60], requests[60:]]  # three windows' parts of 2026-11-01
    amplify_parts(object_store, "danse_tech", windows, START + DAY)
    amplify_parts(object_store, "danse_tech", [requests[50:70]], START + DAY, checked=False)  # some stored twice
    amplify_parts(object_store, "horizon", [varied_requests(5, START, DAY // 2, salt="h")], START + DAY)
    day = "type=amplify_access/app=danse_tech/date=2026-11-01/"
    assert len(list(object_store.list(day))) == 4
    report = compact_days(object_store, [], START + DAY)
    (merged,) = [o.key for o in object_store.list(day)]
    assert report.written_files == [merged] and report.merged_files == 4
    data = pq.read_table(io.BytesIO(object_store.get(merged)))
    assert sorted(data.column("x_edge_request_id").to_pylist()) == sorted(r.request_id for r in requests)
    assert data.column("timestamp").to_pylist() == sorted(data.column("timestamp").to_pylist())
    first = pq.ParquetFile(io.BytesIO(object_store.get(merged))).metadata.row_group(0).column(0)
    assert first.compression == "ZSTD"  # written as the collection writes a part
    assert len(list(object_store.list("type=amplify_access/app=horizon/"))) == 1  # a lone part stays as it is
    assert compact_days(object_store, [], START + DAY).merged_files == 0


def test_a_journal_damaged_after_its_merge_was_published_leaves_no_record_twice(
    object_store: ObjectStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A journal found damaged was quarantined, its merge's inputs left beside the merged file that holds their
    records: merged again among themselves, but never with that file once it is half the target or more (big files
    are not rewritten), the day's records stayed twice for good, in every query over it."""
    from loglake.aws.compaction import JOURNAL_PREFIX, _merge

    for batch in range(3):
        records = [record(START + batch * 100 + i, f"b{batch}-{i}") for i in range(20)]
        flush_stream_batch(stream_batch(records, batch), object_store)
    day = "type=app_logs/date=2026-11-01/"
    inputs = [LakeFile(o.key, "logs", "2026-11-01", 0, 0, 0, o.size) for o in object_store.list(day)]
    with monkeypatch.context() as cut_off:  # a merge cut off once its merged file was published: all stays
        cut_off.setattr(object_store, "delete", lambda key: None)
        output = _merge(object_store, day, inputs, START + DAY)
    (journal,) = [o.key for o in object_store.list(JOURNAL_PREFIX)]
    object_store.put(journal, b'{"output": "type=app_lo')  # then damaged
    target = 2 * next(o.size for o in object_store.list(output)) - 1  # the merged file: past half the target
    report = compact_days(object_store, [date(2026, 11, 1)], START + DAY, target_bytes=target)
    assert journal in report.damaged and report.merged_files == 4
    left = [o.key for o in object_store.list(day)]
    ids = [i for key in left for i in pq.read_table(io.BytesIO(object_store.get(key))).column("log_id").to_pylist()]
    assert len(ids) == len(set(ids)) == 60
