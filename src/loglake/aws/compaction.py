"""Compaction on AWS, where the lake has no catalog (Glue's partition projection needs none): the
stream flush writes a part per stream batch and day, so a day gathers many small files; this merges
them, as `loglake compact` does locally (same grouping, same sorted merge in bounded memory).

A merged file is written and published before its inputs are deleted, and its rows are counted
against theirs first; a reader listing the day in between (Athena) may see some rows twice for the
seconds that takes, never miss one. A small journal object names the inputs before the merged file is
published, so a run cut off between the two (a timeout, a crash) is finished by the next one: its
inputs are deleted if the merged file made it, the journal dropped otherwise. Merges keep one row per
log id, removing what the at-least-once stream flush may have written twice.

An hourly run merges the last week's days, and the older days the stream flush noted late parts of (a back-fill),
whatever their age, a bounded number of them per run (scheduled_days). It merges the `amplify_access` table's parts
too, a part per collection window and event date (amplify_steps.download), each (app, date) partition into one
(amplify/lake_rows.merge_parts: one row per request id): the table is listed whole, as a collection may write to any
day of an app's retention period, and merged it holds about a part per app and day.

Two runs must not merge the same parts (each would publish them): the handler holds the lake's maintenance lease
(aws/maintenance_lease.py) while a run works.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from loglake.amplify.lake_rows import merge_parts
from loglake.aws.stream_flush import LATE_PREFIX
from loglake.lake.compact import CompactReport, MergesFailed, merge_groups, merge_objects
from loglake.lake.layout import new_part_name, partition_prefix, partitions_of, quarantined_key
from loglake.lake.manifest import LakeFile
from loglake.lake.objectstore import ObjectInfo, ObjectStore, ObjectStoreError, check_key
from loglake.lake.parquet_objects import ParquetObjects
from loglake.lake.parts import file_name
from loglake.lake.tables import AMPLIFY_ACCESS_TABLE, APP_LOGS_TABLE
from loglake.lake.verify import MISSING_FROM_STORAGE, damaged_files

log = logging.getLogger("loglake.lake")

TARGET_BYTES = 128 * 1024 * 1024
MEMORY_MB = 1024
RECENT_DAYS = 7
LATE_DAYS_PER_RUN = 24
# A run starts no merge with less time left than this (the handler's Lambda context): a merge of a target's worth of
# parts (downloaded, sorted and de-duplicated by DuckDB in MEMORY_MB, uploaded) takes a minute or two; a third of the
# function's 15 minutes leaves it room.
MERGE_RESERVE_MS = 5 * 60_000


JOURNAL_PREFIX = "_state/compaction/"


@dataclass
class RunReport(CompactReport):
    # The partitions a run left (some of) their merges in, and those after, its time running out (`time_left`): the
    # next run merges them (a day's late notes are kept until it did).
    left: list[str] = field(default_factory=list)


def compact_days(
    lake: ObjectStore,
    days: list[date],
    now_ms: int,
    target_bytes: int = TARGET_BYTES,
    late: dict[date, list[str]] | None = None,
    time_left: Callable[[], bool] | None = None,
) -> RunReport:
    """Merge each day's small app_logs parts, and every amplify_access partition's, (under half the target) into
    files of about the target size. A merge that
    fails over a part damaged outside loglake (or gone meanwhile) merges the others of its group without it, which
    is moved to the lake's QUARANTINE folder (`report.damaged`, logged): one such part stopped the run, every later
    day unmerged, at every run; left in place, it was read whole again, and logged again, at every run (there is no
    catalog here to leave it out of, as the local lake does), and Athena failed on it.
    Other failures leave their group as it is; the other groups still merge, and MergesFailed is raised after.
    `late` (late_days): the notes of a day merged without such a failure are deleted. No merge starts once
    `time_left()` is false (`report.left`): a run cut off by Lambda's timeout failed, its work bounded by days,
    not by time, and its merge under way was finished or undone by the next run (the journal)."""
    report = RunReport()
    objects = ParquetObjects(lake)
    failures: list[BaseException] = []
    merge = functools.partial(_merge_group, report, lake, objects, failures, now_ms)
    finish_interrupted(lake, report, merge, target_bytes)
    partitions = _partitions(lake, days)
    for number, (prefix, listing) in enumerate(partitions):
        failed_before = len(failures)
        for group in merge_groups(_parts(prefix, listing()), target_bytes):
            if time_left is not None and not time_left():
                report.left = [prefix for prefix, _ in partitions[number:]]
                break
            merge(prefix, group)
        if report.left:
            break
        partition = partitions_of(prefix)
        if len(failures) == failed_before and partition["type"] == APP_LOGS_TABLE.directory:
            for note in (late or {}).get(date.fromisoformat(partition["date"]), []):
                lake.delete(note)
    if failures:
        raise MergesFailed(report, len(failures), failures[0]) from failures[0]
    return report


def _merge_group(
    report: CompactReport,
    lake: ObjectStore,
    objects: ParquetObjects,
    failures: list[BaseException],
    now_ms: int,
    prefix: str,
    group: list[LakeFile],
) -> bool:
    """Merge `group` (parts of the partition `prefix`), or, one of them damaged or gone, the others (see
    compact_days); False if it failed otherwise (in `failures`, logged), the parts left as they are."""
    try:
        _merge_into(report, lake, prefix, group, now_ms)
    except Exception as e:
        # (no catalog here says how many records a part holds: its pages alone are checked)
        found = damaged_files(objects, group, counted=False)
        for key, problem in found.items():
            _quarantine_part(lake, key, problem)
        report.damaged |= found
        rest = [f for f in group if f.key not in found]
        if not found:
            failures.append(e)
            log.warning("merging %s failed, they stay as they are (%s: %s)", prefix, type(e).__name__, e)
            return False
        if len(rest) > 1:
            _merge_into(report, lake, prefix, rest, now_ms)
    return True


def _partitions(lake: ObjectStore, days: list[date]) -> list[tuple[str, Callable[[], list[ObjectInfo]]]]:
    """The partitions to merge, each with what lists its objects: the app_logs `days` (each listed as its turn
    comes: a part written meanwhile is the next run's), then every amplify_access (app, date) partition."""
    partitions: list[tuple[str, Callable[[], list[ObjectInfo]]]] = []
    for day in days:
        prefix = partition_prefix(APP_LOGS_TABLE.directory, date=day)
        partitions.append((prefix, functools.partial(_listed, lake, prefix)))
    by_partition: dict[str, list[ObjectInfo]] = {}
    for found in lake.list(partition_prefix(AMPLIFY_ACCESS_TABLE.directory)):
        by_partition.setdefault(found.key.rsplit("/", 1)[0] + "/", []).append(found)
    return partitions + [(prefix, functools.partial(list, listed)) for prefix, listed in by_partition.items()]


def _listed(lake: ObjectStore, prefix: str) -> list[ObjectInfo]:
    return list(lake.list(prefix))


def _parts(prefix: str, listed: list[ObjectInfo]) -> list[LakeFile]:
    """The parts among the objects listed in the partition `prefix` (no catalog here: their sizes alone are known)."""
    partition = partitions_of(prefix)
    return [
        LakeFile(o.key, partition["type"], partition["date"], 0, 0, 0, o.size)
        for o in listed
        if o.key.endswith(".parquet")
    ]


def _merge_into(report: CompactReport, lake: ObjectStore, prefix: str, group: list[LakeFile], now_ms: int) -> None:
    report.written_files.append(_merge(lake, prefix, group, now_ms))
    report.merged_files += len(group)


def _quarantine_part(lake: ObjectStore, key: str, problem: str) -> None:
    """Take a damaged part out of the table (the bucket's versions keep what it was too), saying so once."""
    if problem == MISSING_FROM_STORAGE:
        log.warning("lake file %s is gone from the bucket (deleted meanwhile): its day is merged without it", key)
        return
    kept = _quarantined(lake, key)  # (a part merged is under half the target: it fits in memory)
    log.warning(
        "lake file %s is damaged (%s): moved to %s, out of Athena's reads and of later merges, and its day merged"
        " without it; its records are lost unless a good copy is put back at its key (from a backup, or the bucket's"
        " earlier versions of it)",
        key,
        problem,
        kept,
    )


def _quarantined(lake: ObjectStore, key: str) -> str:
    """Move the object to the lake's QUARANTINE folder (out of Athena's reads and of later runs); its new key."""
    kept = quarantined_key(key)
    lake.put(kept, lake.get(key))
    lake.delete(key)
    return kept


def recent_days(today: date, count: int = RECENT_DAYS) -> list[date]:
    """The days a scheduled run looks at first: today and the `count - 1` before it."""
    return [today - timedelta(days=n) for n in range(count)]


def late_days(lake: ObjectStore) -> dict[date, list[str]]:
    """The days the stream flush noted late parts of (stream_flush.LATE_PREFIX), with the notes' keys. To be listed
    before the days' parts: a note is written once its part is, so a part noted is listed with its day."""
    noted: dict[date, list[str]] = {}
    for found in lake.list(LATE_PREFIX):
        with contextlib.suppress(ValueError):  # (not a note: a folder's object, say)
            noted.setdefault(date.fromisoformat(partitions_of(found.key).get("date", "")), []).append(found.key)
    return noted


def scheduled_days(today: date, late: dict[date, list[str]]) -> list[date]:
    """The days an hourly run merges: the last RECENT_DAYS, then at most LATE_DAYS_PER_RUN older days that got late
    parts, oldest first (a back-fill of a year is merged within a day, each run's work bounded); the others wait,
    noted, for the next runs. A day before the last week got parts only from a back-fill: looking at the recent days
    alone left those parts unmerged for good, and every query over such a day read each of them."""
    recent = recent_days(today)
    return recent + sorted(set(late) - set(recent))[:LATE_DAYS_PER_RUN]


def finish_interrupted(
    lake: ObjectStore, report: CompactReport, merge: Callable[[str, list[LakeFile]], bool], target_bytes: int
) -> int:
    """Complete the merges an earlier run began: inputs deleted where the merged file exists. A journal that does
    not read as one (damaged outside loglake) is moved to the QUARANTINE folder (`report.damaged`, logged): it
    failed every run before its first merge, the lake never merged again. Its key names its merged file: if that
    was published, its inputs may be beside it, each record twice, and are unknown; it is merged (`merge`) again
    with the small parts beside it (one row per record), as, half the target or more, no later merge took it and
    those records stayed twice for good. (That merge failing, the journal stays for the next run to try again.)"""
    finished = 0
    for found in list(lake.list(JOURNAL_PREFIX)):
        if not found.key.endswith(".json"):
            continue  # not a journal (an S3 console's folder `_state/compaction/`, a key no store reads)
        entry = _journal_entry(lake.get(found.key))
        if entry is None:
            output = _merged_file_of(found.key)
            published = output is not None and lake.exists(output)
            if published and not _merged_again(lake, output, merge, target_bytes):
                continue
            report.damaged[found.key] = "not a compaction journal"
            kept = _quarantined(lake, found.key)
            log.warning(
                "compaction journal %s does not read as one: moved to %s. %s",
                found.key,
                kept,
                f"Its merged file {output} was published: merged again with the parts beside it, which may have been"
                " its inputs, its records kept once"
                if published
                else "The merge it named, if its merged file was published, left its inputs beside it: that day's"
                " records may be read twice (Athena) until those inputs are deleted",
            )
            continue
        output, inputs = entry
        if lake.exists(output):
            for key in inputs:
                lake.delete(key)
            finished += 1
        lake.delete(found.key)
    return finished


def _merged_file_of(journal: str) -> str | None:
    """The merged file a journal's key names (_merge), or None for a key that names none of the tables' parts."""
    key = journal.removeprefix(JOURNAL_PREFIX).removesuffix(".json")
    with contextlib.suppress(ObjectStoreError):
        partitions = partitions_of(check_key(key))
        if partitions.get("type") in MERGES and "date" in partitions and key.endswith(".parquet"):
            return key
    return None


def _merged_again(
    lake: ObjectStore, output: str, merge: Callable[[str, list[LakeFile]], bool], target_bytes: int
) -> bool:
    """Merge the published file `output` with the small parts of its partition (a merge's inputs are small)."""
    prefix = output.rsplit("/", 1)[0] + "/"
    group = [f for f in _parts(prefix, _listed(lake, prefix)) if f.key == output or f.bytes < target_bytes // 2]
    return len(group) < 2 or merge(prefix, group)


def _journal_entry(data: bytes) -> tuple[str, list[str]] | None:
    """A journal's (merged file, inputs), or None for one _merge did not write: its keys are the parts of one of the
    tables merged (a damaged one must not delete other objects)."""
    try:
        entry = json.loads(data)
        output, inputs = entry["output"], entry["inputs"]
        keys = [check_key(key) for key in (output, *inputs)] if isinstance(inputs, list) else []
    except (ValueError, TypeError, KeyError, AttributeError, ObjectStoreError):
        return None
    tables = [partition_prefix(directory) for directory in MERGES]
    return (output, inputs) if keys and any(all(key.startswith(t) for key in keys) for t in tables) else None


def _merge_app_logs(lake: ObjectStore, inputs: list[str], output: Path, work: Path) -> None:
    merge_objects(lake, inputs, output, work, MEMORY_MB, distinct_ids=True)


def _merge_amplify_access(lake: ObjectStore, inputs: list[str], output: Path, work: Path) -> None:
    merge_parts(lake, inputs, output, work, MEMORY_MB)


# How each table's parts merge, by its directory (`type=`); each raises, writing nothing to publish, unless every
# record of the inputs made it, once (app logs by log id, Amplify requests by request id).
MERGES = {APP_LOGS_TABLE.directory: _merge_app_logs, AMPLIFY_ACCESS_TABLE.directory: _merge_amplify_access}


def _merge(lake: ObjectStore, prefix: str, group: list[LakeFile], now_ms: int) -> str:
    """Merge `group`, parts of the partition `prefix`, into a new part of it; returns its key."""
    work = Path(tempfile.mkdtemp(prefix="loglake-compact-"))
    try:
        key = prefix + new_part_name(now_ms)
        output = work / file_name(key)
        inputs = [part.key for part in group]
        MERGES[partitions_of(prefix)["type"]](lake, inputs, output, work)
        journal = f"{JOURNAL_PREFIX}{key}.json"  # (named by the merged file: a damaged one still says which)
        lake.put(journal, json.dumps({"output": key, "inputs": inputs}).encode())
        lake.put_file(key, output)
        for part in inputs:  # only once the merged file is in place
            lake.delete(part)
        lake.delete(journal)
        return key
    finally:
        shutil.rmtree(work, ignore_errors=True)
