"""`loglake amplify`: collect Amplify Hosting access logs into the lake, import a file, print reports."""

from __future__ import annotations

import contextlib
import gzip
import tempfile
import threading
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from loglake.cli_lake import local_data_dir_option, local_lake, print_result
from loglake.cli_options import (
    CONTEXT,
    command_settings,
    data_dir_option,
    data_dir_option_with,
    json_text,
    key_option,
    option_time,
    print_columns,
    printable,
    storage_error_text,
    url_option,
)
from loglake.client import ClientError, LoglakeClient
from loglake.config import ConfigError


@click.group(context_settings=CONTEXT)
def amplify() -> None:
    """AWS Amplify Hosting access logs: collect them into the lake (table amplify_access) and report on them."""


config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="The collector's JSON configuration (default: the CONFIG_JSON environment variable).",
)
# (its --config is the collector's: loglake's settings file is LOGLAKE_CONFIG's alone)
collect_data_dir_option = data_dir_option_with("loglake's data folder.", config=False)


@amplify.command(context_settings=CONTEXT)
@config_option
@collect_data_dir_option
@click.option("--app", "apps", multiple=True, help="Only this appName (repeat for more); default: every app.")
@click.option(
    "--since",
    default=None,
    help="Start: ISO-8601 (UTC without an offset), epoch ms or an age (default: each app's watermark).",
)
@click.option("--until", default=None, help="End, excluded, same forms (default: the last settled hour).")
@click.option("--dry-run", is_flag=True, help="Print the windows that would be fetched, and fetch nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the run report as JSON.")
def collect(
    config_path: Path | None,
    data_dir: Path,
    apps: tuple[str, ...],
    since: str | None,
    until: str | None,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Download the access logs of the configured apps into the lake.

    Each app continues from where the last complete collection ended (its watermark); the first run
    goes back logRetention.days. Ranges are fetched in chunks of timeChunkSize.days, split when
    Amplify finds them too large and retried when throttled; re-running never stores a row twice.

    \b
    Examples:
      loglake amplify collect --config amplify.json --data-dir ./loglake-data
      loglake amplify collect --config amplify.json --app danse_tech --since 2026-10-01 --until 2026-10-15
    """
    from loglake.amplify.collector import Collector
    from loglake.amplify.config import AmplifyConfigError
    from loglake.amplify.jobs import CollectionBusy, collection_lock
    from loglake.amplify.run_reports import RunReport, from_ms, iso_utc
    from loglake.amplify.source import missing_profiles

    config = _config(config_path)
    try:
        start = _collect_time(since, "--since")
        end = _collect_time(until, "--until")
        for name in apps:
            config.app(name)
    except AmplifyConfigError as e:
        raise click.UsageError(str(e)) from None
    if start and end and end <= start:
        raise click.UsageError("--until must be after --since")
    # A dry run writes nothing: on a data dir that does not exist yet it plans from an empty one.
    scratch = (
        tempfile.TemporaryDirectory(prefix="loglake-dry-run-")
        if dry_run and not (data_dir / "hot.db").exists()
        else None
    )
    with scratch or contextlib.nullcontext(), _lake_for(Path(scratch.name) if scratch else data_dir, config) as lake:
        progress = _Progress()
        collector = Collector(config, lake.store, lake.objects, on_progress=progress, on_activity=progress.activity)
        try:
            _note_bounds(collector, start, end)
            chosen = config.chosen(apps)
            for profile in missing_profiles(chosen):
                click.echo(f"warning: AWS profile {profile!r} is not in the AWS config or credentials files", err=True)
            if dry_run:
                for app in chosen:
                    windows = collector.plan(app, start, end)
                    rechecks = (  # (a run fetches them first)
                        collector.recheck_plan(collector.watermark(app.app_name), collector.rechecked(app.app_name))
                        if start is None
                        else []
                    )
                    again = f", and {len(rechecks)} fetched again for their late logs" if rechecks else ""
                    click.echo(f"{app.app_name}: {len(windows)} window(s) of at most {config.chunk_days} day(s){again}")
                    for window in rechecks:
                        click.echo(f"  {window} again, for its late logs")
                    for window in windows:
                        click.echo(f"  {window}")
                return
            report, failure = RunReport(started=""), None  # filled in as the run goes
            with collection_lock(data_dir):
                try:
                    collector.run(list(apps) or None, start, end, report=report)
                except Exception as e:  # failed as a whole: said with what its apps collected before (in the lake)
                    failure = storage_error_text(e) or f"{type(e).__name__}: {e}"
                    report.error, report.finished = failure, iso_utc(from_ms(_now_ms()))
        except CollectionBusy as e:
            raise click.ClickException(str(e)) from None
        finally:
            collector.source.close()
    if as_json:
        click.echo(json_text(report.to_dict(), indent=2))
    else:
        _print_report(report.to_dict())
    if failure is not None:
        # (what the report says was stored stays, and is not stored twice: running the command again collects the rest)
        again = "" if failure.endswith("run the command again") else "; once that is fixed, run the command again"
        raise click.ClickException(f"the collection failed as a whole, after what the report says: {failure}{again}")
    if not report.ok:
        raise click.exceptions.Exit(1)


@amplify.command("import", context_settings=CONTEXT)
@click.argument("file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--app", "app_name", required=True, help="The appName its rows belong to (the app= partition).")
@data_dir_option
def import_file(file: Path, app_name: str, data_dir: Path) -> None:
    """Load an access-log CSV downloaded from the Amplify console (plain or .gz) into the lake.

    Rows already in the lake (same x-edge-request-id) are skipped, so importing twice is harmless."""
    from loglake.amplify.config import AmplifyConfigError, check_app_name
    from loglake.amplify.jobs import CollectionBusy, collection_lock
    from loglake.amplify.lake_rows import store_rows
    from loglake.amplify.parse import NotAnAccessLog, parse_access_log
    from loglake.amplify.run_reports import AppReport

    try:
        check_app_name(app_name)
    except AmplifyConfigError as e:
        raise click.UsageError(f"--app: {e}") from None
    data = file.read_bytes()
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (EOFError, OSError, zlib.error) as e:  # (click reads an EOFError as Ctrl-D: a bare "Aborted!")
            raise click.ClickException(f"{file}: not a readable gzip file ({e}); download it again") from None
    try:
        parsed = parse_access_log(data)
    except NotAnAccessLog as e:
        raise click.ClickException(f"{file}: {e}") from None
    with _lake_for(data_dir, None) as lake:
        report = AppReport(app_name)
        try:
            # (a collection's lock: beside one, each would find the other's rows not stored yet and store them too)
            with collection_lock(data_dir):
                store_rows(lake.store, lake.objects, app_name, [parsed], report, _now_ms())
        except CollectionBusy as e:
            raise click.ClickException(str(e)) from None
        lake.collect_garbage()  # the table's manifest lists the new files
    click.echo(
        f"{file}: {parsed.rows_read:,} rows read, {report.rows:,} stored in amplify_access (app={app_name}), "
        f"{report.duplicates:,} already there, {report.malformed:,} malformed"
    )
    for example in report.malformed_examples:
        click.echo(f"  malformed: {printable(example)}", err=True)


@amplify.command(context_settings=CONTEXT)
@click.option("--app", "app_name", required=True, help="The appName to report on.")
@click.option("--since", default="7d", show_default=True, help="Start: an age like 7d, 24h, or ISO-8601.")
@click.option("--until", default=None, help="End (excluded), same forms (default: now).")
@click.option("--report", "names", multiple=True, help="Only this report (repeat); default: all of them.")
@click.option("--json", "as_json", is_flag=True, help="All reports as one JSON document.")
@local_data_dir_option
@url_option
@key_option
def report(
    app_name: str,
    since: str,
    until: str | None,
    names: tuple[str, ...],
    as_json: bool,
    data_dir: Path | None,
    url: str,
    api_key: str | None,
) -> None:
    """Print the saved reports on an app's traffic: top paths, status classes, bytes served, cache hit
    ratio, edge locations, top referrers, bots vs. humans."""
    now_ms = _now_ms()  # (read here with a server too: a usage error, rather than a server down or its refusal)
    since_ms, until_ms = option_time(since, "--since", now_ms), option_time(until or "now", "--until", now_ms)
    if until_ms <= since_ms:  # (as GET /amplify/reports refuses it: it printed seven empty reports)
        raise click.UsageError("--until must be after --since")
    if data_dir is not None:
        from loglake.amplify.reports import UnknownReport, apps_with_rows, run_reports, unknown_app_message

        with local_lake(data_dir) as lake:
            known = apps_with_rows(lake.store.read)
            if app_name not in known:
                raise click.ClickException(unknown_app_message(app_name, known))  # data, not usage: exit 1
            try:
                reports = run_reports(lake.engine, app_name, since_ms, until_ms, list(names) or None)
            except UnknownReport as e:
                raise click.UsageError(str(e)) from None
    else:
        params: dict[str, Any] = {"app": app_name, "since": since, "until": until, "report": ",".join(names) or None}
        try:
            with LoglakeClient(url, api_key) as client:
                reports = client.amplify_reports({k: v for k, v in params.items() if v})
        except ClientError as e:
            raise click.ClickException(str(e)) from None
    if as_json:
        click.echo(json_text(reports, indent=2))
        return
    for number, result in enumerate(reports):
        if number:
            click.echo("")
        click.echo(click.style(printable(result["title"]), bold=True))
        print_result(result, "table")


@amplify.command(context_settings=CONTEXT)
@data_dir_option
def status(data_dir: Path) -> None:
    """Each app's watermark (collected up to) and the last runs."""
    from loglake.amplify.collector import collection_status
    from loglake.amplify.run_reports import from_ms, iso_utc

    with local_lake(data_dir) as lake:
        marks, runs = collection_status(lake.store, runs=5)
    if not marks and not runs:
        click.echo("no Amplify collection has run on this data dir yet")
        return
    for app, until_ms in marks:
        click.echo(f"{printable(app)}: collected up to {iso_utc(from_ms(until_ms))}")
    for run in runs:
        rows = sum(a["rows"] for a in run["apps"])
        failed = sum(a["windows_failed"] for a in run["apps"])
        click.echo(
            f"run {run['started']} .. {run['finished']}: {'ok' if run['ok'] else 'FAILED'}, {rows:,} rows, "
            f"{failed} failed window(s)"
        )
        if run.get("error"):  # (it failed as a whole; reports stored before there were such have none)
            click.echo(f"  the whole run: {printable(run['error'])}")
        for app in run["apps"]:
            for error in app["errors"][:3]:
                click.echo(f"  {printable(app['app'])}: {printable(error)}")
            if len(app["errors"]) > 3:
                click.echo(f"  {printable(app['app'])}: ... and {len(app['errors']) - 3} more error(s)")


def _collect_time(text: str | None, option: str) -> datetime | None:
    return datetime.fromtimestamp(option_time(text, option, _now_ms()) / 1000, UTC) if text else None


def _note_bounds(collector: Any, start: datetime | None, end: datetime | None) -> None:
    """Say so when the range asked for reaches where nothing can be collected for good."""
    from loglake.amplify.run_reports import iso_utc

    settled, kept = collector.default_until(), collector.retention_start()
    if start is not None and start >= settled:  # (it said nothing, and collected nothing: 0 windows)
        click.echo(
            f"note: nothing to collect: --since is at or after {iso_utc(settled)}, the end of the last hour whose "
            "logs have all arrived (they arrive for an hour after it ends)",
            err=True,
        )
    elif end is not None and end > settled:
        click.echo(f"note: collecting up to {iso_utc(settled)} only; later logs are still arriving", err=True)
    if end is not None and end <= kept:  # (it said it collected from the retention's start on, then collected nothing)
        click.echo(
            f"note: nothing to collect: --until is at or before {iso_utc(kept)}; logRetention.days "
            f"({collector.config.retention_days}) would drop anything older",
            err=True,
        )
    elif start is not None and start < kept:
        click.echo(
            f"note: collecting from {iso_utc(kept)} only; logRetention.days "
            f"({collector.config.retention_days}) would drop anything older",
            err=True,
        )


def _config(path: Path | None) -> Any:
    from loglake.amplify.config import AmplifyConfigError, load_config

    try:
        return load_config(path)
    except AmplifyConfigError as e:
        raise click.ClickException(str(e)) from None


@contextlib.contextmanager
def _lake_for(data_dir: Path, config: Any) -> Iterator[Any]:
    """The data dir's lake (made if new), in the configuration's bucket when it names one."""
    from loglake.amplify.jobs import settings_for

    settings = command_settings({"data_dir": data_dir})
    try:
        if config is not None:
            settings = settings_for(settings, config)
    except ConfigError as e:
        raise click.ClickException(str(e)) from None
    overrides = {"lake_bucket": settings.lake_bucket, "lake_prefix": settings.lake_prefix}
    with local_lake(data_dir, overrides, create=True) as lake:
        yield lake


class _Progress:
    """One line per app each time a window is done (apps run in parallel threads); failed windows
    fill the bar with x, not #, and are counted. Between them, a line for what each app does as it goes (a window
    can take half an hour)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()

    def __call__(self, app: str, done: int, total: int, rows: int, failed: int) -> None:
        width = 20
        crossed = max(1, width * failed // total) if failed else 0  # one failed window of many still shows
        filled = max(crossed, width * done // total if total else width)
        bar = "x" * crossed + "#" * (filled - crossed) + "." * (width - filled)
        failures = f", {failed} failed" if failed else ""
        with self.lock:
            click.echo(f"{app:<24} [{bar}] {done}/{total} windows{failures}  {rows:,} rows", err=True)

    def activity(self, app: str, doing: str) -> None:
        with self.lock:  # (what it says can quote the service)
            click.echo(f"{app:<24} {printable(doing)}", err=True)


def _print_report(report: dict[str, Any]) -> None:
    header = (
        "app",
        "windows",
        "failed",
        "rows",
        "late",
        "duplicates",
        "malformed",
        "MB",
        "retries",
        "splits",
        "s",
        "collected up to",
    )
    rows = [
        (
            a["app"],
            f"{a['windows_ok']}/{a['windows']}",
            str(a["windows_failed"]),
            f"{a['rows']:,}",
            f"{a.get('late_rows', 0):,}",  # (a report stored before late logs were rechecked has none)
            f"{a['duplicates']:,}",
            f"{a['malformed']:,}",
            f"{a['bytes'] / 1e6:.1f}",
            str(a["retries"]),
            str(a["splits"]),
            f"{a['seconds']:.1f}",
            a["watermark_after"] or "-",
        )
        for a in report["apps"]
    ]
    print_columns(header, rows)
    for a in report["apps"]:
        for error in a["errors"]:
            click.echo(f"{printable(a['app'])}: error: {printable(error)}", err=True)
        for example in a["malformed_examples"]:
            click.echo(f"{printable(a['app'])}: malformed: {printable(example)}", err=True)


def _now_ms() -> int:
    return int(datetime.now(UTC).timestamp() * 1000)


COMMANDS = [amplify]
