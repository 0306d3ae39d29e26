"""`loglake` commands that read the lake: query, tables, search (its upkeep: cli_maintenance.py); opening a data
dir's lake or runtime in this process, for every command that works on one directly."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click

from loglake.cli_options import (
    CONTEXT,
    Number,
    TermsCommand,
    check_times,
    command_settings,
    config_option,
    json_text,
    key_option,
    print_record_json,
    print_record_row,
    printable,
    say_none_found,
    server_refused,
    shown_json,
    until_ctrl_c,
    url_option,
)
from loglake.client import ClientError, LoglakeClient
from loglake.config import ConfigError, Settings
from loglake.digits import number_text
from loglake.lake.query_limits import MIN_TIMEOUT_SECONDS
from loglake.lake.search_terms import attribute_keys
from loglake.model import MAX_PAGE_LIMIT
from loglake.shorten import shortened

FORMATS = ("table", "json", "csv", "ndjson")
_MORE_ROWS = "narrow the query, raise --limit, or raise the server's cap (query_max_rows)"

_local_data_dir = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Work on this data folder directly instead of through a server (--url).",
)


def local_data_dir_option(command: Callable) -> Callable:
    """--data-dir of a command that works through a server unless given one, with the --config its settings
    (the lake's, the queries' limits) are then read from."""
    return _local_data_dir(config_option(command))


@contextlib.contextmanager
def local_lake(data_dir: Path, overrides: dict[str, Any] | None = None, create: bool = False) -> Iterator[Any]:
    """The lake of a data dir, opened in this process (next to a running server is fine: SQLite in WAL
    mode takes concurrent readers and writers, and maintenance takes the data dir's lock). A data dir
    that holds no loglake data yet is refused, unless `create`."""
    with local_runtime(data_dir, overrides, create) as runtime:
        yield runtime.lake


def require_loglake_data(data_dir: Path) -> Path:
    """The data dir's hot.db, refused when there is none (a folder that is not loglake's)."""
    hot_db = Settings(data_dir=data_dir).hot_db_path
    if not hot_db.exists():
        raise click.ClickException(
            f"no loglake data in {data_dir} (no {hot_db.name}); pass the folder `loglake serve` uses"
        )
    return hot_db


@contextlib.contextmanager
def local_runtime(
    data_dir: Path,
    overrides: dict[str, Any] | None = None,
    create: bool = False,
    clock: Callable[[], float] = time.time,
) -> Iterator[Any]:
    """A Runtime over a data dir (its jobs not started), as local_lake opens it."""
    from loglake.runtime import Runtime

    settings = command_settings({"data_dir": data_dir, **(overrides or {})})
    if not create:
        require_loglake_data(data_dir)
    try:
        runtime = Runtime(settings, clock=clock)
    except ConfigError as e:
        raise click.ClickException(str(e)) from None
    try:
        yield runtime
    finally:
        runtime.close()


# -- SQL ---------------------------------------------------------------------------------------


@click.command(context_settings=CONTEXT)
@click.argument("sql")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True, help="Output format.")
@click.option("--limit", type=click.IntRange(1), default=None, help="Most rows to fetch (the server caps it too).")
@click.option(
    "--timeout",
    type=Number(f"a number of seconds, at least {MIN_TIMEOUT_SECONDS:g}", MIN_TIMEOUT_SECONDS),
    default=None,
    help="Seconds before giving up.",
)
@click.option("--explain", is_flag=True, help="Run it and print the plan with what each step read (EXPLAIN ANALYZE).")
@click.option(
    "--engine",
    type=click.Choice(["duckdb", "athena"]),
    default="duckdb",
    show_default=True,
    help="duckdb: the server's (or --data-dir's) engine; athena: Athena over the lake on S3 (the AWS deployment).",
)
@click.option(
    "--athena-database", envvar="LOGLAKE_ATHENA_DATABASE", help="Glue database [env LOGLAKE_ATHENA_DATABASE]."
)
@click.option(
    "--athena-workgroup", envvar="LOGLAKE_ATHENA_WORKGROUP", help="Athena workgroup [env LOGLAKE_ATHENA_WORKGROUP]."
)
@click.option("--profile", default=None, help="AWS profile for Athena (default: the standard AWS chain).")
@click.option("--region", default=None, help="AWS region of the deployment (default: the profile's or AWS_REGION).")
@local_data_dir_option
@url_option
@key_option
def query(
    sql: str,
    fmt: str,
    limit: int | None,
    timeout: float | None,
    explain: bool,
    engine: str,
    athena_database: str | None,
    athena_workgroup: str | None,
    profile: str | None,
    region: str | None,
    data_dir: Path | None,
    url: str,
    api_key: str | None,
) -> None:
    """Run one SQL SELECT over `logs` (hot and lake records, each once) and the other tables `loglake tables`
    lists (amplify_access, alerts); SQL '-' reads stdin.

    \b
    Examples:
      loglake query "SELECT service, severity, count(*) FROM logs GROUP BY ALL ORDER BY 3 DESC"
      loglake query --format csv "SELECT * FROM logs WHERE date = '2026-11-01' AND message ILIKE '%timeout%'"
      loglake query --engine athena --athena-database DB --athena-workgroup WG \\
          "SELECT severity, count(*) FROM logs WHERE date = '2026-11-01' GROUP BY 1"
    """
    if sql == "-":
        sql = sys.stdin.read()
    if engine == "athena":
        session = {"profile_name": profile, "region_name": region}
        result = _athena_query(sql, limit, timeout, explain, athena_database, athena_workgroup, session)
    elif data_dir is not None:
        from loglake.lake.query import QueryError
        from loglake.lake.query_answers import QueryBusy, result_to_dict

        with local_lake(data_dir) as lake:
            try:
                options = {"limit": limit, "timeout_seconds": timeout, "explain": explain}
                answer = until_ctrl_c(lambda stop: lake.engine.query(sql, **options, stop=stop))
            except (QueryError, QueryBusy) as e:
                raise click.ClickException(str(e)) from None
            result = result_to_dict(answer)
    else:
        try:
            with LoglakeClient(url, api_key, timeout=(timeout or 300) + 10) as client:
                result = client.query(sql, limit=limit, timeout_seconds=timeout, explain=explain or None)
        except ClientError as e:
            raise click.ClickException(str(e)) from None
    print_result(result, fmt)


def _athena_query(
    sql: str,
    limit: int | None,
    timeout: float | None,
    explain: bool,
    database: str | None,
    workgroup: str | None,
    session: dict[str, str | None],
) -> dict[str, Any]:
    """Athena over the deployed lake (Athena SQL, i.e. Trino's dialect), with the caller's AWS credentials."""
    if not database or not workgroup:
        raise click.UsageError(
            "--engine athena needs --athena-database and --athena-workgroup: the AthenaDatabase and "
            "AthenaWorkgroup outputs `cdk deploy` printed (or see `aws cloudformation describe-stacks`)"
        )
    import boto3
    import botocore.exceptions

    from loglake.aws.athena import AthenaQueryEngine
    from loglake.lake.query_answers import result_to_dict
    from loglake.lake.query_limits import QueryLimits
    from loglake.lake.sql_guard import QueryError

    try:
        client = boto3.Session(**session).client("athena")
        engine = AthenaQueryEngine(client, database, workgroup, QueryLimits(timeout_seconds=timeout or 300))
        return result_to_dict(engine.query(sql, limit=limit, timeout_seconds=timeout, explain=explain))
    except QueryError as e:
        raise click.ClickException(str(e)) from None
    except botocore.exceptions.NoRegionError:
        raise click.ClickException("Athena: no AWS region; pass --region (or set AWS_REGION)") from None
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as e:
        raise click.ClickException(f"Athena: {e}") from None


def print_result(result: dict[str, Any], fmt: str) -> None:
    if "plan" in result:
        click.echo(json_text(result, indent=2) if fmt == "json" else printable(result["plan"], multiline=True))
        return
    names = [c["name"] for c in result["columns"]]
    if result["truncated"] and fmt != "table":
        click.echo(f"note: only the first {result['row_count']:,} rows; {_MORE_ROWS}", err=True)
    if fmt == "json":
        click.echo(json_text(result, indent=2))
    elif fmt == "ndjson":
        keys = _unique(names)  # (a join's two `service` columns were one key, the second's value)
        for row in result["rows"]:
            click.echo(json_text(dict(zip(keys, row, strict=True))))
    elif fmt == "csv":
        for row in [names, *result["rows"]]:  # (not click.echo, which takes out a value's ANSI escapes)
            sys.stdout.write(",".join(map(_csv_cell, row)) + "\n")
    else:
        _print_table(names, result["rows"])
        more = f" (only the first ones: {_MORE_ROWS})" if result["truncated"] else ""
        summary = (
            f"{result['row_count']} row(s){more} in {result['elapsed_ms']:.0f} ms, "
            f"{result['bytes_scanned'] / 1e6:.1f} MB read from {result['files_scanned']} lake file(s)"
        )
        click.echo(summary, err=True)


def _cell_text(value: Any) -> str:
    """A value of a row as the table and CSV show it: a number as a person writes it (number_text), a JSON value
    as its text, with its numbers so, true and false as SQL says them."""
    if isinstance(value, float):
        return number_text(value)
    return shown_json(value) if isinstance(value, dict | list | bool) else str(value)


def _csv_cell(value: Any) -> str:
    """A CSV field as DuckDB's COPY and PostgreSQL's COPY CSV write one: NULL an empty field, the empty string
    "" (Python's csv writes both as nothing), other values as _cell_text."""
    if value is None:
        return ""
    text = _cell_text(value)
    if text and not any(c in text for c in _CSV_SPECIALS):
        return text
    return '"' + text.replace('"', '""') + '"'


_CSV_SPECIALS = frozenset(',"\r\n')


def _print_table(names: list[str], rows: list[list[Any]], max_width: int = 60) -> None:
    def text(value: Any) -> str:
        shown = printable("NULL" if value is None else _cell_text(value))
        return shortened(shown, max_width)

    cells = [[text(v) for v in row] for row in rows]
    names = [printable(n) for n in names]
    widths = [max([len(n)] + [len(r[i]) for r in cells]) for i, n in enumerate(names)]
    click.echo(click.style("  ".join(n.ljust(w) for n, w in zip(names, widths, strict=True)).rstrip(), bold=True))
    for row in cells:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


@click.command(context_settings=CONTEXT)
@click.option("--json", "as_json", is_flag=True, help="The full description as JSON.")
@local_data_dir_option
@url_option
@key_option
def tables(as_json: bool, data_dir: Path | None, url: str, api_key: str | None) -> None:
    """List the tables SQL can query, with their columns and partitions."""
    if data_dir is not None:
        with local_lake(data_dir) as lake:
            described = lake.describe_tables()
    else:
        try:
            with LoglakeClient(url, api_key) as client:
                described = client.tables()
        except ClientError as e:
            raise click.ClickException(str(e)) from None
    if as_json:
        click.echo(json_text(described, indent=2))
        return
    for table in described:
        click.echo(click.style(printable(table["name"]), bold=True) + f"  {printable(table['description'])}")
        if not table.get("live"):
            hot = f", {table['hot_records']:,} hot" if "hot_records" in table else ""
            click.echo(
                f"  {table['lake_records']:,} records in the lake ({table['lake_bytes'] / 1e6:.1f} MB, "
                f"{len(table['partitions'])} partition(s)){hot}"
            )
        columns = [[printable(c[part]) for part in ("name", "type", "description")] for c in table["columns"]]
        width = max(len(name) for name, _, _ in columns)
        for name, kind, description in columns:
            click.echo(f"  {name:<{width}}  {kind:<10} {description}")


# -- search ------------------------------------------------------------------------------------


@click.command(cls=TermsCommand)
@click.argument("terms", nargs=-1, type=click.UNPROCESSED)
@click.option("--since", default=None, help="Start: epoch ms, ISO-8601 or an age like 15m, 1h30m, 7d (default 24h).")
@click.option("--until", default=None, help="End (exclusive), same forms as --since.")
@click.option("--service", default=None, help="Only this service.")
@click.option("--log-type", default=None, help="Only this log type.")
@click.option("--severity", default=None, help="Only these severities (comma-separated).")
@click.option("--min-severity", default=None, help="This severity or worse.")
@click.option(
    "--limit", default=50, show_default=True, type=click.IntRange(1, MAX_PAGE_LIMIT), help="How many records."
)
@click.option("--json", "as_json", is_flag=True, help="NDJSON output, one record per line.")
@url_option
@key_option
def search(
    terms: tuple[str, ...],
    since: str | None,
    until: str | None,
    service: str | None,
    log_type: str | None,
    severity: str | None,
    min_severity: str | None,
    limit: int,
    as_json: bool,
    url: str,
    api_key: str | None,
) -> None:
    """Search messages across hot and lake, newest first: words, "phrases", field:value, -exclusions,
    OR and (groups). No terms: every record of the window and filters, as the API's empty q.

    \b
    Examples:
      loglake search timeout --since 7d
      loglake search --service api --min-severity error --since 1h
      loglake search '"connection refused"' service:api -healthcheck
      loglake search 'service:api (timeout OR refused) -(severity:debug OR healthcheck)'
      loglake search user:alice severity:error
      loglake search host.name:web-7 'service:web*' '-trace_id:*'
    """
    check_times(since, until)
    params = {
        "q": " ".join(terms),
        "since": since,
        "until": until,
        "service": service,
        "log_type": log_type,
        "severity": severity,
        "min_severity": min_severity,
        "limit": limit,
    }
    try:
        with LoglakeClient(url, api_key) as client:
            page = client.search(params)
    except ClientError as e:
        raise server_refused(e, {"q": "terms"}) from None  # (the API's q: the terms given)
    for record in page["logs"]:
        (print_record_json if as_json else print_record_row)(record)
    if not page["logs"] and not terms:
        filtered = any((service, log_type, severity, min_severity))
        say_none_found("matches these filters" if filtered else "", since, until)  # as recent says it
    elif not page["logs"]:
        keys = attribute_keys(params["q"])
        hint = f"; {', '.join(f'{k}:' for k in keys)} named an attribute: quote text that holds a colon" if keys else ""
        say_none_found(f"matches `{params['q']}`", since, until, hint)  # (`: a search holds quotes)
    if page["next_cursor"] and not as_json:
        click.echo(f"(more: raise --limit, or narrow with --since/--until; {page['count']} shown)", err=True)


COMMANDS = (query, tables, search)


def _unique(names: list[str]) -> list[str]:
    """Column names as keys of one object: a name met again gets the first free suffix, as DuckDB names a
    subquery's columns (a, a_1, a_2; a_1_1 when a_1 is taken), as the web UI's JSON download does."""
    taken: set[str] = set()
    keys = []
    for name in names:
        key, number = name, 0
        while key in taken:
            number += 1
            key = f"{name}_{number}"
        taken.add(key)
        keys.append(key)
    return keys
