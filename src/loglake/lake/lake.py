"""The lake as one object: its storage, the catalog, SQL, and the jobs that keep it in shape.

`Lake` is what the server, the CLI and tests use. Maintenance (flush, compaction, retention, deleting
retired objects) changes the lake, and two processes doing it at once could undo each other's
interrupted rounds, so it runs under an exclusive lock file in the data dir: `loglake flush` by hand
waits for the server's background job, and the job skips its turn while a manual run holds the lock.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import Any

from loglake.config import ConfigError, Settings
from loglake.ids import LAST_STORABLE_MS
from loglake.lake.bulk import BulkWriter
from loglake.lake.claim import claim_lake
from loglake.lake.compact import TIER_FILES, Background, Compactor, CompactReport
from loglake.lake.flush import Flusher, FlushReport
from loglake.lake.layout import QUARANTINE, day_of, partitions_of, quarantined_key
from loglake.lake.location import check_lake_location, lake_description
from loglake.lake.lost_client_ids import lost_client_ids
from loglake.lake.manifest import LakeFile, collect_garbage, list_files, listed_file, retire_files
from loglake.lake.objectstore import LocalObjectStore, ObjectInfo, ObjectStore, ObjectStoreError, s3_objects
from loglake.lake.query import QueryEngine
from loglake.lake.query_limits import QueryLimits
from loglake.lake.query_workers import QueryWorkers, worker_spec
from loglake.lake.recent_reader import LakeRecentReader
from loglake.lake.repeated_failures import RepeatedFailures
from loglake.lake.scratch import new_work_folder
from loglake.lake.tables import APP_LOGS_TABLE, TABLES, Column, LakeTable, LiveTable, partition_type, sql_type
from loglake.lake.users_sql import UsersSql
from loglake.lake.waiting import (
    delete_quarantined_batch,
    drop_expired_batches,
    expired_batches,
    quarantined_batches_before,
    waiting,
    waiting_batches_in,
    waiting_dir,
)
from loglake.locks import exclusive_lock
from loglake.model import retention_start_ms
from loglake.store.sqlite import SQLiteHotStore
from loglake.store.sqlite_moved import forget_client_ids, forget_flushed_client_ids
from loglake.times import format_datetime

log = logging.getLogger("loglake.lake")


_DEFAULTS = Settings()  # the policy's defaults are the settings' (one definition)


@dataclass(frozen=True)
class LakePolicy:
    hot_window_ms: int = _DEFAULTS.hot_window_seconds * 1000
    hot_max_records: int = _DEFAULTS.hot_max_records
    compact_target_bytes: int = _DEFAULTS.compact_target_mb * 1024 * 1024
    # A day that got no new file for this long gets its final merge (compact.py); until then, by tiers.
    quiet_ms: int = 60_000
    retention_days: int = _DEFAULTS.retention_days  # 0 = keep forever
    # Retired objects stay this long after leaving the catalog, for queries already reading them.
    grace_ms: int = 120_000


@dataclass(frozen=True)
class ExpiredPartition:
    table: str
    day: str
    files: int
    records: int
    bytes: int


@dataclass(frozen=True)
class TableTotals:
    table: str
    files: int
    records: int
    bytes: int
    newest_ms: int | None  # the newest record's time; None without files


@dataclass(frozen=True)
class LakeState:
    """The lake as its catalog has it now, whichever process changed it (the server's job, `loglake
    flush` or `retention` from a shell, an Amplify collection): what /metrics shows of it."""

    tables: list[TableTotals]
    retired_files: int  # replaced or expired, waiting for the queries that may read them
    hot_records: int
    hot_bytes: int  # what the records not in the lake yet take: hot.db, its WAL and the waiting batches' files
    free_bytes: int  # left on the data dir's file system for this user: writes are refused once none is


@dataclass
class MaintenanceReport:
    flushed: FlushReport = field(default_factory=FlushReport)
    compacted: CompactReport = field(default_factory=CompactReport)
    expired: list[ExpiredPartition] = field(default_factory=list)
    garbage_deleted: int = 0
    recovered_rounds: int = 0  # flush or bulk rounds a process that died left half done, undone first


def object_store(settings: Settings) -> ObjectStore:
    """The lake's storage from the settings: an S3 bucket when one is named, else the data dir's folder; ConfigError
    when the data dir's catalog lists another lake's files (location.py), or another data dir's catalog lists the
    lake's (claim.py)."""
    if not settings.lake_bucket:
        check_lake_location(settings)
        return LocalObjectStore(settings.lake_dir)
    check_lake_location(settings, record=False)  # (recorded once the lake is the data dir's: claimed)
    objects = s3_objects(settings.lake_bucket, settings.lake_prefix, settings.lake_endpoint, settings.lake_region)
    if claim_lake(objects, settings, lake_description(settings)):
        check_lake_location(settings)
    else:  # unreachable now: a server started so claims it before it writes there (else two data dirs write it)
        objects.claim_before_writing(lambda: _claim_later(objects, settings))
    return objects


def _claim_later(objects: ObjectStore, settings: Settings) -> bool:
    """claim_lake for a write: another data dir's claim refuses the write (ObjectStoreError, which the lake's
    writes report: /healthz, a bulk batch's 503), saying whose the lake is."""
    try:
        claimed = claim_lake(objects, settings, lake_description(settings))
        if claimed:
            check_lake_location(settings)
    except ConfigError as e:
        raise ObjectStoreError(str(e), "LakeClaimed") from None
    return claimed


class Lake:
    def __init__(
        self,
        store: SQLiteHotStore,
        objects: ObjectStore,
        data_dir: Path,
        *,
        policy: LakePolicy | None = None,
        limits: QueryLimits | None = None,
        clock: Callable[[], float] = time.time,
        live_tables: Iterable[LiveTable] = (),
    ) -> None:
        self.store = store
        self.objects = objects
        self.policy = policy or LakePolicy()
        self.clock = clock
        self.flusher = Flusher(store, objects, clock=clock)
        self.bulk = BulkWriter(store, objects, clock=clock, on_published=self._bulk_published)
        self._new_parts = 0
        self._counting = threading.Lock()
        self.on_parts_piling_up: Callable[[], None] = lambda: None
        self.background = Background()
        self.compactor = Compactor(
            store,
            objects,
            target_bytes=self.policy.compact_target_bytes,
            grace_ms=self.policy.grace_ms,
            clock=clock,
            background=self.background,
        )
        live_tables = tuple(live_tables)
        self.engine = QueryEngine(store, objects, data_dir / "tmp" / "duckdb", limits, live_tables)
        # Users' SQL (POST /query, ask's answers): on this engine, or in query workers if its values may grow
        # (users_sql.py); the workers get the spill room the engine found.
        alerts_dir = data_dir if any(t.name == "alerts" for t in live_tables) else None
        limits = replace(self.engine.limits, spill_mb=self.engine.spill_mb)
        spec = worker_spec(store.path, objects, data_dir / "tmp" / "duckdb", limits, alerts_dir)
        self.users_sql = UsersSql(self.engine, QueryWorkers(spec, limits.memory_mb))
        self.recent_reader = LakeRecentReader(objects)
        self._lock_path = data_dir / "lake.lock"
        self.recovered_rounds = 0  # what the last hold of the maintenance lock undid first (maintenance())

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        store: SQLiteHotStore,
        clock: Callable[[], float] = time.time,
        live_tables: Iterable[LiveTable] = (),
    ) -> Lake:
        policy = LakePolicy(
            hot_window_ms=settings.hot_window_seconds * 1000,
            hot_max_records=settings.hot_max_records,
            compact_target_bytes=settings.compact_target_mb * 1024 * 1024,
            retention_days=settings.retention_days,
            grace_ms=int(max(120.0, 2 * settings.query_timeout_seconds) * 1000),
        )
        limits = QueryLimits(
            timeout_seconds=settings.query_timeout_seconds,
            max_rows=settings.query_max_rows,
            concurrency=settings.query_concurrency,
            memory_mb=settings.query_memory_mb,
            spill_mb=settings.query_spill_mb,
            threads=settings.query_threads,
            max_response_mb=settings.query_max_response_mb,
        )
        return cls(
            store,
            object_store(settings),
            settings.data_dir,
            policy=policy,
            limits=limits,
            clock=clock,
            live_tables=live_tables,
        )

    def close(self) -> None:
        self.bulk.close()
        self.flusher.close()
        self.background.close()
        self.recent_reader.close()
        self.users_sql.close()
        self.engine.close()

    def describe_tables(self) -> list[dict[str, Any]]:
        """What GET /tables shows: each lake table's columns, partition keys and partitions (from the
        catalog), then the live tables' columns."""
        described = []
        for table in TABLES.values():
            partitions = self.store.read(
                "SELECT day, count(*), sum(records), sum(bytes), min(min_ts), max(max_ts) FROM lake_files"
                " WHERE table_name = ? GROUP BY day ORDER BY day",
                (table.name,),
            )
            entry: dict[str, Any] = {
                "name": table.name,
                "description": table.description,
                "columns": described_columns(table),
                "partition_keys": list(table.partitions),
                "partitions": [
                    {
                        "date": day,
                        "files": files,
                        "records": records,
                        "bytes": size,
                        "oldest": format_datetime(oldest),
                        "newest": format_datetime(newest),
                    }
                    for day, files, records, size, oldest, newest in partitions
                ],
                "lake_records": sum(p[2] for p in partitions),
                "lake_bytes": sum(p[3] for p in partitions),
            }
            if table is APP_LOGS_TABLE:
                entry["hot_records"] = self.hot_records()
            described.append(entry)
        for live in self.engine.live_tables:
            described.append(
                {
                    "name": live.name,
                    "description": live.description,
                    "columns": [_column(c) for c in live.columns],
                    "partition_keys": [],
                    "live": True,
                }
            )
        return described

    def state(self) -> LakeState:
        with self.store.snapshot():
            rows = self.store.read(
                "SELECT table_name, count(*), sum(records), sum(bytes), max(max_ts) FROM lake_files GROUP BY table_name"
            )
            ((retired,),) = self.store.read("SELECT count(*) FROM lake_garbage")
            hot_records = self.store.count()
            batches = waiting(self.store.read)
        found = {name: totals for name, *totals in rows}
        tables = [TableTotals(t.name, *found.get(t.name, (0, 0, 0, None))) for t in TABLES.values()]
        hot_bytes = batches.bytes + sum(_size(Path(f"{self.store.path}{suffix}")) for suffix in ("", "-wal"))
        disk = os.statvfs(self.store.path.parent)
        return LakeState(tables, retired, hot_records + batches.rows, hot_bytes, disk.f_bavail * disk.f_frsize)

    def hot_records(self) -> int:
        """The records in hot.db, not in the lake yet: hot rows and the bulk batches waiting to be moved
        (in the caller's snapshot, if it holds one)."""
        return self.store.count() + waiting(self.store.read).rows

    # -- maintenance ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def maintenance(self, wait: bool = True) -> Iterator[bool]:
        """Hold the data dir's maintenance lock (yields False, without waiting, if `wait` is off and
        another process holds it); interrupted rounds of a previous holder are undone first."""
        with exclusive_lock(self._lock_path, wait) as holding:
            if holding:
                self.recovered_rounds = self.flusher.recover()
                if isinstance(self.objects, LocalObjectStore):
                    self.objects.remove_unfinished()
            yield holding

    def due_before_ms(self, everything: bool = False) -> int:
        """Records timestamped before this are due: older than the hot window, or beyond the hot
        store's record cap (then the oldest go first)."""
        if everything:
            return LAST_STORABLE_MS
        before = int(self.clock() * 1000) - self.policy.hot_window_ms
        beyond_cap = self.store.newest_ms(skip=self.policy.hot_max_records)
        if beyond_cap is not None:
            before = max(before, beyond_cap + 1)
        return before

    def flush(self, everything: bool = False, progress: Callable[[int], None] | None = None) -> FlushReport:
        """Move the due hot records into the lake, and the small bulk batches waiting to be joined into
        larger parts (lake/bulk.py): all of them with `everything`, else those of an earlier process."""
        moved, parts = self.bulk.move_waiting(everything)
        if moved and progress is not None:
            progress(moved)
        report = self.flusher.flush(self.due_before_ms(everything), progress=progress)
        report.records += moved
        report.objects.extend(f.key for f in parts)
        return report

    def count_due(self, everything: bool = False) -> int:
        return self.store.count_before(self.due_before_ms(everything))

    def compact(self, everything: bool = True, stop: threading.Event | None = None) -> CompactReport:
        """Merge small files: all of them, or (the background job) days still written to by tiers only;
        until `stop` is set, if given."""
        if everything:
            return self.compactor.compact(stop=stop)
        return self.compactor.compact(int(self.clock() * 1000) - self.policy.quiet_ms, stop)

    def _bulk_published(self, parts: int) -> None:
        """Bulk ingest adds parts between maintenance turns: once a tier's worth is there, ask for a turn
        now rather than at the next interval, so the number of files a query opens stays small."""
        with self._counting:  # bulk writers publish from several threads
            self._new_parts += parts
            piling_up = self._new_parts >= TIER_FILES
            if piling_up:
                self._new_parts = 0
        if piling_up:
            self.on_parts_piling_up()

    def expired_partitions(self) -> list[ExpiredPartition]:
        """Whole days older than the retention, per table (nothing when retention is 0)."""
        if not self.policy.retention_days:
            return []
        expired = []
        for table in TABLES.values():
            by_day: dict[str, list[LakeFile]] = {}
            for f in list_files(self.store.read, table.name, until_ms=self.retention_start_ms()):
                by_day.setdefault(f.day, []).append(f)
            for day, files in sorted(by_day.items()):
                records, size = sum(f.records for f in files), sum(f.bytes for f in files)
                expired.append(ExpiredPartition(table.name, day, len(files), records, size))
        return expired

    def retention_cutoff(self) -> date:
        """The oldest day kept: today (UTC) minus the retention days."""
        return day_of(self.retention_start_ms())

    def retention_start_ms(self) -> int:
        """The oldest time kept (0: everything)."""
        return retention_start_ms(int(self.clock() * 1000), self.policy.retention_days)

    def expire(self) -> list[ExpiredPartition]:
        """Drop the expired partitions from the catalog (and the client ids of their records); their
        objects go after the grace period. The records older than the retention that are not in the lake yet
        (hot rows, waiting bulk batches) are moved into their days first, to go with them: a `loglake retention
        --days N` shorter than the server's left them in every read, and the lake's days they moved to later; but the
        waiting batches whose records are all older go unread (expired_batches: a damaged one, which no move reads,
        stayed for good). The files of those days that quarantine() kept go too, at once (expired_quarantine)."""
        if not self.policy.retention_days:
            return []
        kept_from = self.retention_start_ms()
        drop_expired_batches(self.store, waiting_dir(self.store.path.parent), kept_from)
        self._move_expiring(kept_from)
        expired = self.expired_partitions()
        if expired:
            keys = [f.key for t in TABLES.values() for f in list_files(self.store.read, t.name, until_ms=kept_from)]
            delete_after = int(self.clock() * 1000) + self.policy.grace_ms

            def drop(conn: sqlite3.Connection) -> None:
                retire_files(conn, keys, delete_after)
                forget_flushed_client_ids(conn, kept_from)

            self.store.in_write_transaction(drop).result()
        objects, batches = self.expired_quarantine()
        for found in objects:
            self.objects.delete(found.key)
        for path in batches:
            delete_quarantined_batch(waiting_dir(self.store.path.parent), path)
        return expired

    def expired_quarantine(self) -> tuple[list[ObjectInfo], list[Path]]:
        """The files `loglake verify --quarantine` kept of days older than the retention, which expire() deletes (the
        retention says their records are gone, as their days' other files): the lake's objects under QUARANTINE (of
        the AWS compaction too, on a bucket) and the waiting batches' files (waiting.QUARANTINE_DIR, by their newest
        record's day). Nothing when retention is 0."""
        if not self.policy.retention_days:
            return [], []
        cutoff = self.retention_cutoff()
        objects = [
            found
            for found in self.objects.list(f"{QUARANTINE}/")
            # (by the day its key names, as the tables' partitions; one naming none is kept)
            if partitions_of(found.key).get("date", cutoff.isoformat()) < cutoff.isoformat()
        ]
        return objects, quarantined_batches_before(waiting_dir(self.store.path.parent), cutoff)

    def not_moved_before(self, before_ms: int) -> tuple[int, int]:
        """The hot records timestamped before `before_ms`, and the waiting bulk batches holding some and later ones
        too: what expire() moves into the lake first (it drops those holding only older ones, expired_batches)."""
        # ([before, before): a batch whose newest record is from `before` on and whose oldest is before it)
        return self.store.count_before(before_ms), waiting_batches_in(self.store.read, before_ms, before_ms)

    def expired_batches(self) -> list[tuple[str, int]]:
        """The waiting bulk batches whose records are all older than the retention, which expire() drops without
        reading them: each one's file and records. Nothing when retention is 0."""
        if not self.policy.retention_days:
            return []
        return expired_batches(self.store.read, self.retention_start_ms())

    def _move_expiring(self, before_ms: int) -> None:
        hot, batches = self.not_moved_before(before_ms)
        if batches:
            self.bulk.move_waiting()  # (all of them: they would move within seconds anyway)
        if hot:
            self.flusher.flush(before_ms)

    def quarantine(self, keys: Iterable[str]) -> list[tuple[LakeFile, bool]]:
        """Take lake files out of the catalog, and so out of every query, with their records and the client ids that
        named them (a damaged or lost file that no backup holds: one gone from storage failed every SQL query; a
        client may send such a record again); each object still in storage is kept
        as QUARANTINE/<key>, for whatever can be read of it. Under the maintenance lock; each file taken out, and
        whether its object was kept."""
        taken = []
        with self.maintenance():
            work = new_work_folder(self.store.path.parent, "quarantine-")
            try:
                for number, key in enumerate(keys):
                    file = listed_file(self.store.read, key)
                    if file is None:
                        continue  # (replaced by a merge, or expired, meanwhile)
                    kept = work / f"object-{number}"  # (one each: a download that failed may leave a part behind)
                    try:
                        self.objects.get_file(key, kept)
                    except ObjectStoreError:  # gone from storage: nothing to keep
                        taken.append((file, False))
                    else:
                        self.objects.publish_file(quarantined_key(key), kept)
                        taken.append((file, True))
            finally:
                shutil.rmtree(work, ignore_errors=True)
            gone = [file.key for file, _ in taken]
            # (their client ids go in the same commit: a resend of such a record was answered as a duplicate)
            lost = lost_client_ids(self.store.read, self.objects, [file for file, _ in taken])
            now_ms = int(self.clock() * 1000)

            def take_out(conn: sqlite3.Connection) -> None:
                retire_files(conn, gone, now_ms)
                forget_client_ids(conn, lost)

            self.store.in_write_transaction(take_out).result()
            self.collect_garbage()
        return taken

    def collect_garbage(self) -> int:
        deleted = collect_garbage(self.store, self.objects, int(self.clock() * 1000))
        self.recent_reader.forget_deleted()  # by this process or another: their disk space comes back
        return deleted

    def maintain(
        self, *, compact: bool = True, expire: bool = True, stop: threading.Event | None = None
    ) -> MaintenanceReport | None:
        """One turn of the background job; None when another process holds the maintenance lock. Its
        merges end early once `stop` is set."""
        with self.maintenance(wait=False) as holding:
            if not holding:
                return None
            report = MaintenanceReport(recovered_rounds=self.recovered_rounds)
            report.flushed = self.flush()
            try:
                if compact:
                    report.compacted = self.compact(everything=False, stop=stop)
            finally:  # a merge that fails every turn (a damaged part) must not stop retention and deletions
                if expire:
                    report.expired = self.expire()
                report.garbage_deleted = self.collect_garbage()
            return report


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:  # (no WAL between checkpoints)
        return 0


EXPIRE_EVERY_TURNS = 10  # retention runs every this many maintenance turns: it rarely has work


class LakeJobs:
    """The server's background thread: every `interval` seconds, or sooner when bulk ingest piles up
    parts (`wake`), one maintenance turn (retention every EXPIRE_EVERY_TURNS turns, and with it `expire_others`,
    the retention of the data dir's other databases, which is told the stop). Errors are logged and retried next
    turn."""

    def __init__(
        self,
        lake: Lake,
        interval_seconds: float,
        on_report: Callable[[MaintenanceReport], None],
        expire_others: Callable[[threading.Event], object] = lambda stop: None,
    ) -> None:
        self.lake = lake
        self.interval = interval_seconds
        self.on_report = on_report
        self.expire_others = expire_others
        self.last_error: str | None = None
        self.last_run_ms: int | None = None
        self._failures = RepeatedFailures(log, "lake maintenance")
        # (its own: a locked alerts.db is no failure of the lake's maintenance, nor the lake's one of it)
        self._others_failures = RepeatedFailures(log, "alert retention")
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="loglake-lake-jobs", daemon=True)
        lake.on_parts_piling_up = self._wake.set

    def start(self) -> None:
        if self.interval > 0:
            self._thread.start()

    def store_unwritable(self, error: Exception) -> bool:
        """The lake's store could not be written at the start (server.check_lake_store): a failure of maintenance
        from now (/healthz says degraded), until a turn finds it writable. False when no turns run, to clear it."""
        if self.interval <= 0:
            return False
        self.last_error = f"{type(error).__name__}: {error}"
        return True

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            # A turn ends at its next merge; the merges (and a flush in its worker process) are stopped now so
            # that one in a worker has the worker's grace to land, then is killed: a stuck one held the server's
            # stop for good.
            self.lake.flusher.close()
            self.lake.background.close()
            self._thread.join()

    def _loop(self) -> None:
        turn = 0
        while True:
            self._wake.wait(self.interval)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                # Failing, a turn first writes to the store: one with nothing to move touches it not, and said the
                # maintenance worked again (an idle server whose S3 lake was down said "ok" at /healthz).
                if self.last_error is not None:
                    self.lake.objects.probe_write()
                report = self.lake.maintain(expire=turn % EXPIRE_EVERY_TURNS == 0, stop=self._stop)
                self.last_error = None
                self._failures.succeeded()
                self.last_run_ms = int(self.lake.clock() * 1000)
                if report is not None:
                    self.on_report(report)
            except Exception as e:  # keep the server up; the next turn retries (recovery undoes half rounds)
                if self._stop.is_set():  # a merge or flush the stop cut short (its inputs stay, moved again later)
                    log.info("lake maintenance stopped mid-turn (%s: %s)", type(e).__name__, e)
                    return
                self.last_error = f"{type(e).__name__}: {e}"
                self._failures.failed(e, self.interval)
            if turn % EXPIRE_EVERY_TURNS == 0:
                self._expire_others()
            turn += 1

    def _expire_others(self) -> None:
        try:
            self.expire_others(self._stop)
            self._others_failures.succeeded()
        except Exception as e:  # (a database locked past its busy timeout: the next retention turn tries again)
            self._others_failures.failed(e, self.interval * EXPIRE_EVERY_TURNS)


def described_columns(table: LakeTable) -> list[dict[str, str]]:
    """A lake table's columns as GET /tables shows them, its partition keys last."""
    return [_column(c) for c in table.columns] + [_partition_column(key) for key in table.partitions]


def _column(column: Column) -> dict[str, str]:
    return {"name": column.name, "type": sql_type(column.type), "description": column.description}


def _partition_column(key: str) -> dict[str, str]:
    what = "the record's UTC day" if key == "date" else f"the {key} it belongs to"
    return {"name": key, "type": sql_type(partition_type(key)), "description": f"partition: {what}"}
