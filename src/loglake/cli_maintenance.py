"""`loglake` commands that keep the lake of a data dir in shape (the server does the same in the background):
flush, compact, retention; verify, which checks what is stored; and catalog, the entries other engines read the lake
with."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from loglake.alerts.db import ALERTS_DB
from loglake.alerts.retention import count_expired_alerts
from loglake.cli_lake import local_lake, local_runtime, require_loglake_data
from loglake.cli_options import CONTEXT, WholeNumber, data_dir_option_with, progress_bar
from loglake.config import Settings
from loglake.lake.compact import CompactReport, MergesFailed
from loglake.lake.lake import EXPIRE_EVERY_TURNS, Lake, quarantined_key
from loglake.lake.layout import day_of
from loglake.lake.verify import verify_databases, verify_lake, verify_waiting
from loglake.lake.waiting import WAITING_DIR, quarantine_batches, waiting_dir

if TYPE_CHECKING:
    from loglake.runtime import Runtime

maintenance_data_dir_option = data_dir_option_with(
    "loglake's data folder; lake settings come from LOGLAKE_* and the --config file."
)


@click.command(context_settings=CONTEXT)
@click.option(
    "--all",
    "everything",
    is_flag=True,
    help="Move every hot record, not only those the policy says are due, then merge every day's small files "
    "(as `loglake compact` does): the lake in its final shape.",
)
@click.option(
    "--older-than",
    # (1 or more, as the hot_window_seconds it stands for: 0 was refused naming --hot-window-seconds, no flag of flush)
    type=WholeNumber("a whole number of seconds, 1 or more (--all moves every record)", 1),
    default=None,
    help="Move records older than this many seconds (default: the settings' hot_window_seconds).",
)
@maintenance_data_dir_option
def flush(everything: bool, older_than: int | None, data_dir: Path) -> None:
    """Move records from the hot store into the lake now (the server also does this in the background)."""
    overrides = {"hot_window_seconds": older_than} if older_than is not None else {}
    with local_lake(data_dir, overrides) as lake:
        with lake.maintenance(wait=False) as holding:
            if not holding:
                click.echo("another loglake process is maintaining this lake; waiting for it...", err=True)
        with lake.maintenance():
            due = lake.count_due(everything)
            with progress_bar(due, "flushing", show_pos=True) as bar:
                report = lake.flush(everything, progress=bar.update)
            merged = _compacted(lake) if everything else None
            lake.collect_garbage()  # the tables' manifests list the new files
            unread, unread_records = lake.bulk.passed_over()
    rate = f" ({report.records / report.seconds:,.0f} records/s)" if report.seconds >= 1 else ""
    moved = f"moved {report.records:,} records into {len(report.objects)} lake file(s)"
    click.echo(f"{moved} in {report.seconds:.1f} s{rate}")
    if merged is not None:
        _tell_merged(*merged)
    if unread:  # (each named by the move's warning above; the exit status 0 said every record had moved)
        raise click.ClickException(
            f"{len(unread)} waiting bulk batch(es) ({unread_records:,} records) could not be read and stay waiting: "
            "restore them from a backup of the data dir, or `loglake verify --quarantine` takes them out, their "
            "records with them"
        )


@click.command(context_settings=CONTEXT)
@maintenance_data_dir_option
def compact(data_dir: Path) -> None:
    """Merge each day's small lake files into larger ones (the server does this in the background)."""
    with local_lake(data_dir) as lake, lake.maintenance():
        merged = _compacted(lake)
        lake.collect_garbage()  # the replaced files, unless a query is reading them
    _tell_merged(*merged)


def _compacted(lake: Lake) -> tuple[CompactReport, MergesFailed | None]:
    """What compacting the lake did, with the merges that failed (a damaged file: a traceback was all it said)."""
    try:
        return lake.compact(), None
    except MergesFailed as e:
        return e.report, e


def _tell_merged(report: CompactReport, failed: MergesFailed | None) -> None:
    """Say what merged; then exit 1 saying which merges failed, and which lake files were found damaged (their
    days merged without them)."""
    alone = report.rewritten_alone
    click.echo(
        f"merged {report.merged_files} file(s) ({report.records:,} records) into {len(report.written_files)} "
        f"in {report.seconds:.1f} s"
        + (f" ({alone} of them rewritten alone into their day's final form)" if alone else "")
    )
    for key, problem in report.damaged.items():
        click.echo(f"DAMAGED {key}: {problem}; its day merged without it", err=True)
    if failed is not None:
        raise click.ClickException(str(failed))
    if report.damaged:
        raise click.ClickException(
            f"{len(report.damaged)} damaged lake file(s) left as they are: restore them from a backup of the data dir,"
            " or `loglake verify --quarantine` takes them out of the catalog"
        )


@click.command(
    context_settings=CONTEXT,
    help="Delete lake partitions older than retention_days (default 365), and the alerts resolved more than "
    f"alerts_retention_days ago (default {Settings.alerts_retention_days}) with their evidence, events and sent "
    f"deliveries. The server does this every {EXPIRE_EVERY_TURNS}th maintenance turn: every "
    f"{EXPIRE_EVERY_TURNS * Settings.flush_interval_seconds / 60:g} minutes at the default --flush-interval-seconds, "
    "more often while bulk ingest wakes it.",
)
@click.option("--dry-run", is_flag=True, help="Only list the partitions (and count the alerts) that would be deleted.")
@click.option(
    "--days",
    type=click.IntRange(0),
    default=None,
    help="Keep this many days, this run only: a running server keeps its own retention_days (default: retention_days).",
)
@click.option(
    "--alerts-days",
    type=click.IntRange(0),
    default=None,
    help="Keep the alerts resolved in this many days (default: alerts_retention_days; 0 keeps every alert).",
)
@maintenance_data_dir_option
def retention(dry_run: bool, days: int | None, alerts_days: int | None, data_dir: Path) -> None:
    overrides = {"retention_days": days} if days is not None else {}
    if alerts_days is not None:
        overrides["alerts_retention_days"] = alerts_days
    with local_runtime(data_dir, overrides) as runtime:
        _lake_retention(runtime, dry_run, days is not None)
        if (runtime.settings.data_dir / ALERTS_DB).exists():  # (a data dir no rule ever ran on has none to keep)
            _alerts_retention(runtime, dry_run, alerts_days is not None)


def _lake_retention(runtime: Runtime, dry_run: bool, days_given: bool) -> None:
    with runtime.lake.maintenance():
        lake = runtime.lake
        if not lake.policy.retention_days:  # (named as it was given: the variable, the config file or --days)
            setting = "--days" if days_given else runtime.settings.named("retention_days")
            click.echo(f"{setting} is 0: the lake keeps everything")
            return
        cutoff = lake.retention_cutoff()
        not_moved = lake.not_moved_before(lake.retention_start_ms()) if dry_run else (0, 0)
        objects, files = lake.expired_quarantine()  # (told before expire() deletes them)
        unread = lake.expired_batches()  # (likewise)
        quarantined = len(objects) + len(files), sum(o.size for o in objects) + sum(f.stat().st_size for f in files)
        expired = lake.expired_partitions() if dry_run else lake.expire()
        if not dry_run:
            lake.collect_garbage()
        waiting = lake.store.read("SELECT count(*) FROM lake_garbage")[0][0]
    verb = "would delete" if dry_run else "deleted"
    days = lake.policy.retention_days
    click.echo(f"keeping {cutoff} on (today, UTC, and the {days} days before); {verb} {len(expired)} partition(s)")
    for p in expired:
        click.echo(f"  {p.table}  date={p.day}  {p.files} file(s)  {p.records:,} records  {p.bytes / 1e6:.1f} MB")
    hot, batches = not_moved
    if hot or batches:  # (a real run moves them into their days first, which it then lists)
        click.echo(f"  and, older, not in the lake yet: {hot:,} hot record(s), {batches} waiting bulk batch(es)")
    if unread:  # (all their records older: gone without being read, so a damaged one too)
        records = sum(rows for _, rows in unread)
        click.echo(f"  and {len(unread)} waiting bulk batch(es) of records all before {cutoff} ({records:,} records)")
    count, size = quarantined
    if count:  # (`loglake verify --quarantine` kept them: the days' records that could not be read)
        click.echo(f"  and {count} quarantined file(s) of days before {cutoff} ({size / 1e6:.1f} MB)")
    if waiting and not dry_run:
        click.echo(f"({waiting} object(s) that a running query may be reading go when it ends, in minutes at most)")


def _alerts_retention(runtime: Runtime, dry_run: bool, days_given: bool) -> None:
    days = runtime.settings.alerts_retention_days
    if not days:
        setting = "--alerts-days" if days_given else runtime.settings.named("alerts_retention_days")
        click.echo(f"{setting} is 0: alerts.db keeps every alert")
        return
    cutoff_ms = runtime.alerts_cutoff_ms()
    if dry_run:
        verb, count = "would delete", count_expired_alerts(runtime.settings.data_dir, cutoff_ms)
    else:
        verb, count = "deleted", runtime.expire_alerts()
    click.echo(
        f"keeping the alerts resolved from {day_of(cutoff_ms)} on (today, UTC, and the {days} days before), and every "
        f"one not resolved or with a delivery waiting or dead-lettered; {verb} {count} resolved alert(s)"
    )


@click.group(context_settings=CONTEXT)
def catalog() -> None:
    """Catalog entries so other engines (Athena, Trino, Spark) read the lake in place."""


@catalog.command("ddl", context_settings=CONTEXT)
@click.option("--engine", type=click.Choice(["athena"]), default="athena", show_default=True)
@click.option("--location", required=True, help="Where the lake is, e.g. s3://bucket/prefix.")
@click.option("--database", default="loglake", show_default=True, help="Glue/Athena database name.")
@click.option("--since", default="2020-01-01", show_default=True, help="First day of the date partition projection.")
def catalog_ddl(engine: str, location: str, database: str, since: str) -> None:
    """Print CREATE EXTERNAL TABLE statements (with partition projection: no crawler, no MSCK REPAIR)."""
    from loglake.lake.catalog import CatalogError, athena_ddl

    try:
        click.echo(athena_ddl(location, database=database, since=since))
    except CatalogError as e:  # (a --location, --database or --since it cannot use: a bad value, as click's, exit 2)
        raise click.UsageError(str(e)) from None


@click.command(context_settings=CONTEXT)
@click.option(
    "--quarantine",
    is_flag=True,
    help="Take the damaged lake files out of the catalog, and their records out of every query (for a file no backup "
    "holds), keeping each under the lake's _quarantine/ folder.",
)
@maintenance_data_dir_option
def verify(quarantine: bool, data_dir: Path) -> None:
    """Check what is stored: each database (SQLite's quick_check), then every lake file read whole, each page against
    its checksum and its records against the catalog; exit status 1 naming what is damaged. SQL does not check
    checksums: run this after a restore, a disk error or a copy, and now and then. It only reads, beside a server
    (but for --quarantine, and a data dir an older loglake made, which it upgrades first as every command does)."""
    started = said = time.monotonic()

    def progress(done: int, listed: int, done_bytes: int, listed_bytes: int) -> None:
        nonlocal said
        now = time.monotonic()
        if now - said >= PROGRESS_EVERY_S and done < listed:
            said = now
            click.echo(
                f"verified {done:,} of {listed:,} lake files ({_mb(done_bytes)} of {_mb(listed_bytes)})", err=True
            )

    hot_db = require_loglake_data(data_dir)
    report = verify_databases(data_dir)  # (first: opening the lake could migrate a damaged hot.db)
    catalog_damaged = any(damaged.what == hot_db.name for damaged in report.damaged)
    if not catalog_damaged:
        with local_lake(data_dir) as lake:
            verify_lake(report, lake.store, lake.objects, progress)
            verify_waiting(report, lake.store)
    seconds = time.monotonic() - started
    for damaged in report.damaged:
        click.echo(f"DAMAGED {damaged.what}: {damaged.problem}")
    databases = len(report.databases)
    click.echo(
        f"checked {databases} database(s) and {report.files:,} lake file(s)"
        + (f" and {report.waiting:,} waiting bulk batch(es)" if report.waiting else "")
        + f" ({report.records:,} records, {_mb(report.bytes)}) in {seconds:.1f} s"
        + (f"; {report.replaced} replaced by maintenance meanwhile were passed over" if report.replaced else "")
        + (f"; the lake was not checked: its catalog is in the damaged {hot_db.name}" if catalog_damaged else "")
    )
    if not report.damaged:
        click.echo("all ok")
        return
    lake_files = [damaged.what for damaged in report.damaged if damaged.what not in report.databases]
    batches = [file.removeprefix(f"{WAITING_DIR}/") for file in lake_files if file.startswith(f"{WAITING_DIR}/")]
    if quarantine and lake_files:
        with local_lake(data_dir) as lake:
            # (in the order DAMAGED named them, as before waiting batches were checked too)
            parts = [file for file in lake_files if not file.startswith(f"{WAITING_DIR}/")]
            for file, kept in lake.quarantine(parts):
                where = f"the file kept as {lake.objects.uri(quarantined_key(file.key))}" if kept else "no file left"
                click.echo(f"QUARANTINED {file.key}: its {file.records:,} records out of the catalog, {where}")
            folder = waiting_dir(data_dir)
            for name, rows, kept in quarantine_batches(lake.store, folder, batches):
                where = f"the file kept as {kept}" if kept else "no file left"
                click.echo(f"QUARANTINED {WAITING_DIR}/{name}: its {rows:,} records out of hot.db, {where}")
        sys.exit(1)
    backup = "restore them from a backup of the data dir (README: Where the data lives)."
    advice = f"{len(report.damaged)} damaged: {backup}"
    if lake_files:
        advice += (
            " Until then a query that reads a damaged lake file fails naming it (or, as SQL does not check checksums,"
            " may read other values), and merges leave it as it is; with no backup, `loglake verify --quarantine` takes"
            " them out of the catalog, their records with them."
        )
    click.echo(advice, err=True)
    sys.exit(1)


# Seconds between two progress lines of `verify`.
PROGRESS_EVERY_S = 2.0


def _mb(size: int) -> str:
    return f"{size / 1e6:,.1f} MB"


COMMANDS = (flush, compact, retention, catalog, verify)
