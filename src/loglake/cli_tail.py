"""`loglake tail`: print records as they arrive, as GET /logs/tail streams them."""

from __future__ import annotations

import sys

import click

from loglake.cli_options import TermsCommand, key_option, print_record_json, print_record_row, printable, url_option
from loglake.client import ClientError, LoglakeClient

# Read timeout: well past the server's heartbeat (every 15 s), so only a server that went silent ends it.
_READ_TIMEOUT_SECONDS = 60.0


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
    """Print each new record matching the search as it arrives, until Ctrl-C.

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
        with LoglakeClient(url, api_key, timeout=_READ_TIMEOUT_SECONDS) as client:
            for event, data in client.tail(params):
                if event == "record":
                    show(data)
                    sys.stdout.flush()
                elif event == "dropped":
                    click.echo(f"loglake: {data['count']} record(s) not shown: they came faster than read", err=True)
                elif event == "error":
                    raise click.ClickException(printable(data["message"]))
                elif event == "end":
                    click.echo(f"loglake: the tail ended: {printable(data['reason'])}", err=True)
    except ClientError as e:
        raise click.ClickException(str(e)) from None
    except KeyboardInterrupt:
        pass


COMMANDS = (tail,)
