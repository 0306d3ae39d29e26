"""`loglake tail`: print records as they arrive, as GET /logs/tail streams them."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator

import click

from loglake.cli_options import (
    TermsCommand,
    command_line,
    key_option,
    let_ctrl_c_through,
    print_record_json,
    print_record_row,
    printable,
    say_retrying_now_and_then,
    server_refused,
    url_option,
)
from loglake.client import ClientError, LoglakeClient
from loglake.model import format_datetime
from loglake.retry import Backoff

# Read timeout: well past the server's heartbeat (every 15 s), so only a server that went silent ends it.
_READ_TIMEOUT_SECONDS = 60.0
# Waits between reconnects stay short: what arrives while a tail is away is not shown (a follow, which catches
# up, may wait longer).
RECONNECT_BACKOFF = Backoff(first=0.25, cap=2.0)


@click.command(cls=TermsCommand)
@click.argument("terms", nargs=-1, type=click.UNPROCESSED)
@click.option("--service", default=None, help="Only this service.")
@click.option("--log-type", default=None, help="Only this log type.")
@click.option("--severity", default=None, help="Only these severities (comma-separated).")
@click.option("--min-severity", default=None, help="This severity or worse.")
@click.option("--json", "as_json", is_flag=True, help="NDJSON output, one record per line.")
@url_option
@key_option
def tail(
    terms: tuple[str, ...],
    service: str | None,
    log_type: str | None,
    severity: str | None,
    min_severity: str | None,
    as_json: bool,
    url: str,
    api_key: str | None,
) -> None:
    """Print each new record matching the search as it arrives, until Ctrl-C (a restart of the server is
    waited out, and the records that arrived meanwhile are said not to be shown).

    The search is that of `loglake search` (words, "phrases", field:value, -exclusions, OR, groups);
    without one, every new record.

    \b
    Examples:
      loglake tail
      loglake tail timeout service:api -healthcheck
      loglake tail --min-severity error --json
    """
    params = {
        "q": " ".join(terms) or None,
        "service": service,
        "log_type": log_type,
        "severity": severity,
        "min_severity": min_severity,
    }
    show = print_record_json if as_json else print_record_row
    try:
        let_ctrl_c_through(follows=True)  # (in the try: a Ctrl-C held since the start ends it well too)
        with LoglakeClient(url, api_key, timeout=_READ_TIMEOUT_SECONDS, backoff=RECONNECT_BACKOFF) as client:
            events = client.tail(params)
            while True:  # until Ctrl-C: a tail waits out a restart of its server, as `recent --follow` does
                why = _print_events(events, show)
                away_since = format_datetime(int(time.time() * 1000))
                click.echo(f"loglake: the tail ended ({why}); reconnecting", err=True)
                events = client.tail(params, wait_for_server=say_retrying_now_and_then())
                back_at = format_datetime(int(time.time() * 1000))
                click.echo(
                    f"loglake: the tail is back; records that arrived while it was away (from {away_since}) are not "
                    f"shown: `{_missed_command(params, away_since, back_at, url)}` lists them by time",
                    err=True,
                )
    except ClientError as e:
        raise server_refused(e, {"q": "terms"}) from None  # a bad filter or search: a usage error, as search says it
    except KeyboardInterrupt:
        pass


def _missed_command(params: dict[str, str | None], since: str, until: str, url: str) -> str:
    """The command that lists the records of the tail's search and filters stamped from `since` until `until`:
    `loglake search` (`recent` takes no search, only a substring), or `recent` for a tail without a search."""
    search = params["q"]
    filters = {name: value for name, value in params.items() if name != "q"}  # each the option of the same name
    return command_line("search" if search else "recent", {"since": since, "until": until, **filters}, url, search)


def _print_events(events: Iterator[tuple[str, dict]], show: Callable[[dict], None]) -> str:
    """Print a tail's records as they come, and say on stderr what the server could not send; why the
    stream ended (the server stopped it, or was lost). An error of the tail's search ends the command."""
    try:
        for event, data in events:
            if event == "record":
                show(data)
                sys.stdout.flush()
            elif event == "dropped":
                click.echo(f"loglake: {data['count']} record(s) not shown: they came faster than read", err=True)
            elif event == "error":
                raise click.ClickException(printable(data["message"]))
            elif event == "end":
                return printable(data["reason"])
    except ClientError as e:  # the server went away mid-stream (killed, or silent past the read timeout)
        return str(e)
    return "the server closed it"


COMMANDS = (tail,)
