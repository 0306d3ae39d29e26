"""The `loglake` command: a thin layer over the library (server, keys, client)."""

from __future__ import annotations

import os
import sys
import time
from collections import deque
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import click

from loglake import __version__
from loglake.cli_alerts import COMMANDS as ALERTS_COMMANDS
from loglake.cli_amplify import COMMANDS as AMPLIFY_COMMANDS
from loglake.cli_ask import COMMANDS as ASK_COMMANDS
from loglake.cli_aws import COMMANDS as AWS_COMMANDS
from loglake.cli_lake import COMMANDS as LAKE_COMMANDS
from loglake.cli_maintenance import COMMANDS as MAINTENANCE_COMMANDS
from loglake.cli_options import (
    CONTEXT,
    FOLLOWING_COMMANDS,
    Named,
    Number,
    SafeErrors,
    check_times,
    command_line,
    command_settings,
    config_option,
    data_dir_named,
    data_dir_option,
    json_text,
    key_option,
    let_ctrl_c_through,
    print_columns,
    print_record_json,
    print_record_row,
    printable,
    say_none_found,
    say_retrying_now_and_then,
    server_refused,
    settings_options,
    url_option,
)
from loglake.cli_rules import COMMANDS as RULES_COMMANDS
from loglake.cli_send import COMMANDS as SEND_COMMANDS
from loglake.cli_tail import COMMANDS as TAIL_COMMANDS
from loglake.client import ClientError, LoglakeClient
from loglake.config import REQUEST_UNIT, ConfigError
from loglake.config_load import deprecations_said_once, warn_of_unknown_variables
from loglake.keys import (
    MAX_RATE_BURST,
    MAX_RATE_LIMIT,
    MIN_RATE_LIMIT,
    SCOPES,
    ApiKey,
    KeyStore,
    KeyStoreError,
    LastAdminKey,
    NoSuchKey,
    check_key_name,
    parse_scopes,
)
from loglake.model import MAX_PAGE_LIMIT

# The longest pause between a follow's polls (inf never polled again; time.sleep refused it with a traceback).
MAX_FOLLOW_INTERVAL_S = 3600.0


@click.group(cls=SafeErrors, context_settings=CONTEXT)
@click.version_option(__version__, prog_name="loglake")
@click.pass_context
def main(ctx: click.Context) -> None:
    """loglake: durable log ingest over HTTP and recent logs in milliseconds.

    Start a server with `loglake serve`, then send logs with `loglake send` or POST /logs.
    """
    if ctx.invoked_subcommand not in FOLLOWING_COMMANDS:
        let_ctrl_c_through(follows=False)
    warn_of_unknown_variables(os.environ)
    ctx.with_resource(deprecations_said_once())


# -- serve -------------------------------------------------------------------------------------


@main.command(context_settings=CONTEXT)
@config_option
@settings_options()
def serve(**options: Any) -> None:
    """Run the HTTP server. Precedence: these flags, then LOGLAKE_* variables, then the --config file."""
    from loglake.server import serve as run_server

    settings = command_settings(options)
    try:
        run_server(settings)
    except ConfigError as e:
        raise click.ClickException(str(e)) from None
    except KeyboardInterrupt:  # uvicorn re-raises Ctrl-C after its graceful shutdown
        click.echo("loglake stopped", err=True)


# -- keys --------------------------------------------------------------------------------------


@main.group(context_settings=CONTEXT)
def keys() -> None:
    """Create, list and revoke API keys (a running server honours changes at once)."""


@keys.command("create")
@click.option("--name", required=True, help="A unique name for the key, e.g. the shipper that uses it.")
@click.option(
    "--scopes",
    default="ingest",
    show_default=True,
    help=f"Comma-separated: {', '.join(SCOPES)} (alerts: acknowledge and resolve alerts; admin: everything).",
)
@click.option("--sigv4", is_flag=True, help="Make an AWS SigV4 key pair: prints the access key id, then the secret.")
@click.option(
    "--rate-limit",
    type=Number(
        f"a number of requests a second from {MIN_RATE_LIMIT:g} to {MAX_RATE_LIMIT:,}", MIN_RATE_LIMIT, MAX_RATE_LIMIT
    ),
    default=None,
    help=f"Requests/s for this key, a request counting {REQUEST_UNIT} (default: the server's).",
)
@click.option(
    "--rate-burst",
    "--burst",
    "burst",
    type=click.IntRange(min=1, max=MAX_RATE_BURST),
    default=None,
    help="Burst size for this key (default: one second's worth of --rate-limit, else the server's).",
)
@data_dir_option
def keys_create(
    name: str, scopes: str, sigv4: bool, rate_limit: float | None, burst: int | None, data_dir: Path
) -> None:
    """Create a key and print only its secret on stdout, so a script can capture it."""
    try:  # (the command line first: a usage error, exit 2, whatever the data dir holds)
        check_key_name(name)
    except KeyStoreError as e:
        raise click.BadParameter(str(e), param_hint="--name") from None
    try:
        chosen = parse_scopes(scopes)
    except KeyStoreError as e:
        raise click.BadParameter(str(e), param_hint="--scopes") from None
    if not data_dir.is_dir():
        raise click.ClickException(
            f"no loglake data dir at {data_dir.absolute()}: point {data_dir_named()} at the "
            "server's data dir, or create the folder first for a server that will be started with it"
        )
    store = KeyStore(data_dir)
    try:
        new = store.create(name, chosen, sigv4=sigv4, rate_limit=rate_limit, rate_burst=burst)
    except KeyStoreError as e:
        raise click.ClickException(str(e)) from None
    finally:
        store.close()
    if new.access_key_id:
        click.echo(new.access_key_id)
    click.echo(new.secret)


@keys.command("list")
@click.option("--all", "include_revoked", is_flag=True, help="Include revoked keys.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per key.")
@data_dir_option
def keys_list(include_revoked: bool, as_json: bool, data_dir: Path) -> None:
    """List keys (never their secrets)."""
    store = _existing_keystore(data_dir)
    try:
        found = store.list(include_revoked)
    finally:
        store.close()
    if as_json:
        for key in found:
            click.echo(json_text(key.as_dict()))
        return
    rows = [
        (
            k.name,
            k.kind,
            ",".join(sorted(k.scopes)),
            k.hint + "…",
            _rate_limit_of(k),
            _iso(k.created_at),
            f"revoked {_iso(k.revoked_at)}" if k.revoked_at else "active",
        )
        for k in found
    ]
    print_columns(("NAME", "KIND", "SCOPES", "STARTS WITH", "RATE LIMIT", "CREATED", "STATUS"), rows)


def _rate_limit_of(key: ApiKey) -> str:
    """A key's rate limit as GET /admin/keys gives it: its own rate and burst, each else the server's."""
    rate = f"{key.rate_limit:g}/s" if key.rate_limit else "server rate"
    return f"{rate}, burst {key.rate_burst}" if key.rate_burst else "server default"


@keys.command("revoke")
@click.argument("name", type=Named("the name of a key (loglake keys list shows them)"))
@click.option("--force", is_flag=True, help="Also revoke the last active admin key.")
@data_dir_option
def keys_revoke(name: str, force: bool, data_dir: Path) -> None:
    """Revoke a key; requests with it fail from now on."""
    store = _existing_keystore(data_dir)
    try:
        store.revoke(name, allow_last_admin=force)
    except LastAdminKey as e:
        raise click.ClickException(f"{e}, or add --force to revoke it anyway") from None
    except NoSuchKey as e:  # (named in the data dir it looked in: another server's dir is the usual mistake)
        raise click.ClickException(f"{e} in {data_dir} (loglake keys list shows them)") from None
    except KeyStoreError as e:
        raise click.ClickException(str(e)) from None
    finally:
        store.close()
    click.echo(f"revoked {printable(name)}", err=True)


def _existing_keystore(data_dir: Path) -> KeyStore:
    if not (data_dir / "keys.db").exists():
        raise click.ClickException(f"no loglake keys in {data_dir}; check {data_dir_named()}")
    return KeyStore(data_dir)


# -- client commands ---------------------------------------------------------------------------


@main.command(context_settings=CONTEXT)
@click.option("--service", default=None, help="Only this service.")
@click.option("--log-type", default=None, help="Only this log type.")
@click.option("--severity", default=None, help="Only these severities (comma-separated).")
@click.option("--min-severity", default=None, help="This severity or worse.")
@click.option(
    "--since",
    default=None,
    help="Start: epoch ms, ISO-8601 or an age like 15m, 2h (default 24h). With --follow, where it starts: the "
    "first page is the newest records since then.",
)
@click.option("--until", default=None, help="End (exclusive), same forms as --since; not with --follow.")
@click.option("-q", "--query", "q", default=None, help="Case-insensitive substring of the message.")
@click.option(
    "--limit", default=20, show_default=True, type=click.IntRange(1, MAX_PAGE_LIMIT), help="How many records."
)
@click.option(
    "-f",
    "--follow",
    is_flag=True,
    help="Keep printing records as they arrive, whatever their time, like tail -f (waits out a server restart).",
)
@click.option(
    "--interval",
    default=1.0,
    show_default=True,
    type=Number(f"a number of seconds from 0.01 to {MAX_FOLLOW_INTERVAL_S:g}", 0.01, MAX_FOLLOW_INTERVAL_S),
    help="Seconds between polls with --follow.",
)
@click.option("--json", "as_json", is_flag=True, help="NDJSON output, one record per line.")
@url_option
@key_option
def recent(
    service: str | None,
    log_type: str | None,
    severity: str | None,
    min_severity: str | None,
    since: str | None,
    until: str | None,
    q: str | None,
    limit: int,
    follow: bool,
    interval: float,
    as_json: bool,
    url: str,
    api_key: str | None,
) -> None:
    """Print the most recent records (oldest of them first, so the newest ends up at the bottom)."""
    if follow and until is not None:
        from loglake.recent_params import UNTIL_WITH_FOLLOW  # (imported only for this)

        raise click.UsageError(f"--until: {UNTIL_WITH_FOLLOW}")
    check_times(since, until)
    params = {
        "service": service,
        "log_type": log_type,
        "severity": severity,
        "min_severity": min_severity,
        "since": since,
        "until": until,
        "q": q,
        "limit": limit,
    }
    show = print_record_json if as_json else print_record_row
    try:
        let_ctrl_c_through(follows=follow)  # (in the try: a Ctrl-C held since the start ends a follow well too)
        with LoglakeClient(url, api_key) as client:
            page = client.recent(params | {"follow": "true" if follow else None})
            logs = list(reversed(page["logs"]))
            if not as_json and sys.stdout.isatty():
                click.echo(click.style(f"{'TIME (UTC)':<24}  {'SEVERITY':<8}  {'SERVICE':<16}  MESSAGE", bold=True))
            for record in logs:
                show(record)
            if not logs and not follow:
                filtered = any(params[name] for name in FOLLOW_FILTERS)
                say_none_found("matches these filters" if filtered else "", since, until)
            if follow:
                filters = {name: params[name] for name in FOLLOW_FILTERS}
                shown = RecentlyShown(record["logId"] for record in logs)
                _follow(client, filters, page["follow_cursor"], shown, show, interval, url)
    except ClientError as e:
        raise server_refused(e) from None
    except KeyboardInterrupt:
        if not follow:
            raise  # work cut short: 130 (SafeErrors); a follow has no end but Ctrl-C, which ends it well (0)


FOLLOW_FILTERS = ("service", "log_type", "severity", "min_severity", "q")


class RecentlyShown:
    """The ids of the last records printed (up to `keep`), so that a record given twice prints once."""

    def __init__(self, log_ids: Iterable[str], keep: int = 10_000) -> None:
        self._order: deque[str] = deque(maxlen=keep)
        self._ids: set[str] = set()
        for log_id in log_ids:
            self.first_time(log_id)

    def first_time(self, log_id: str) -> bool:
        if log_id in self._ids:
            return False
        if len(self._order) == self._order.maxlen:
            self._ids.discard(self._order[0])
        self._order.append(log_id)
        self._ids.add(log_id)
        return True


def _follow(
    client: LoglakeClient, filters: dict, cursor: str, shown: RecentlyShown, show: Any, interval: float, url: str
) -> None:
    """Print what arrives after the cursor in the order it arrives, whatever its timestamp, asking
    every `interval` seconds (at once while more waits); say on stderr when the server could not keep
    records for this follow, and wait for it while it cannot be reached (a restart). A record can come
    twice (committed while the first page was read, or in the look back after a restart): it prints once."""

    more = False
    while True:
        if not more:
            time.sleep(interval)
        params = {**filters, "after": cursor, "limit": MAX_PAGE_LIMIT}
        page = client.recent(params, wait_for_server=say_retrying_now_and_then())
        if page["gap"] is not None:
            click.echo(f"loglake: {_not_shown(page['gap'], filters, url)}", err=True)
        for record in page["logs"]:
            if shown.first_time(record["logId"]):
                show(record)
        sys.stdout.flush()
        cursor, more = page["follow_cursor"], page["more"]


def _not_shown(gap: dict, filters: dict, url: str) -> str:
    """What a follow says of the records the server's `gap` says it cannot show, naming the `loglake recent`
    command that lists them by time (the gap's message names the HTTP route)."""
    options = {"since": gap["since"], "until": gap["until"]}
    options |= {("query" if name == "q" else name): value for name, value in filters.items()}  # (-q, --query)
    if gap["reason"] == "restart":
        why = (
            f"the server restarted since this follow's last read; records that reached it stamped before {gap['until']}"
        )
    else:
        why = (
            f"{gap['missed']} record(s) (of any filter) arrived faster than this follow read them; those it would show"
        )
    return printable(f"{why} are not shown: `{command_line('recent', options, url)}` lists them by time")


@main.command(context_settings=CONTEXT)
@click.argument("log_id", type=Named("a record's logId (or the id it was sent with)"))
@url_option
@key_option
def get(log_id: str, url: str, api_key: str | None) -> None:
    """Print one record as JSON, by its logId (or the id it was sent with)."""
    try:
        with LoglakeClient(url, api_key) as client:
            click.echo(json_text(client.get(log_id), indent=2))
    except ClientError as e:
        raise click.ClickException(str(e)) from None


# -- helpers -----------------------------------------------------------------------------------


def _iso(epoch_s: int | None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch_s)) if epoch_s else ""


for _command in [
    *SEND_COMMANDS,
    *LAKE_COMMANDS,
    *MAINTENANCE_COMMANDS,
    *AMPLIFY_COMMANDS,
    *RULES_COMMANDS,
    *ALERTS_COMMANDS,
    *AWS_COMMANDS,
    *TAIL_COMMANDS,
    *ASK_COMMANDS,
]:
    main.add_command(_command)
