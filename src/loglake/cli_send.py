"""`loglake send`: ship a message, or the lines of stdin, to a running server (the library: shipping.py)."""

from __future__ import annotations

import contextlib
import math
import os
import shlex
import signal
import stat
import sys
import time
from collections.abc import Iterator

import click

from loglake.cli_options import (
    CONTEXT,
    INTERRUPTED_EXIT,
    Number,
    WholeNumber,
    key_option,
    printable,
    progress_bar,
    say_retrying_now_and_then,
    url_option,
)
from loglake.client import ClientError, LoglakeClient
from loglake.model import Limits, Severity, is_valid_name
from loglake.shipping import CompressedInput, LineReader, Shipper, Tally, decode_line


@click.command(context_settings=CONTEXT)
@click.argument("message", nargs=-1)
@click.option("--service", default=None, help="Service of records that do not name one.")
@click.option("--severity", default=None, help="Severity of records that do not give one.")
@click.option("--log-type", default=None, help="Log type of records that do not give one.")
@click.option(
    "--batch-size",
    default=5000,
    show_default=True,
    type=WholeNumber(f"a number of records from 1 to {Limits().max_records:,}", 1, Limits().max_records),
    help="Most records per request (at most what a server takes by default).",
)
@click.option(
    "--max-wait",
    default=1.0,
    show_default=True,
    type=Number("a number of seconds, 0.01 or more", 0.01),
    help="Seconds a line may wait for its batch.",
)
@click.option(
    "--retry-for",
    default=300.0,
    show_default=True,
    type=Number("a number of seconds, 0 or more (inf: retry forever)", 0),
    help="Seconds to keep retrying a batch while the server is unreachable or busy ('inf': forever).",
)
@url_option
@key_option
def send(
    message: tuple[str, ...],
    service: str | None,
    severity: str | None,
    log_type: str | None,
    batch_size: int,
    max_wait: float,
    retry_for: float,
    url: str,
    api_key: str | None,
) -> None:
    """Send MESSAGE, or else lines from stdin: loglake records, other loggers' JSON lines, or plain text.

    A JSON line from another logger (pino, bunyan, logrus, zap, winston, ...) becomes a record with its
    message, level and time, and its other fields as attributes. Lines are sent in batches: when a
    batch is full, or after --max-wait seconds, whichever comes first. A line the server refuses is
    reported on stderr and skipped; the others are sent. Ctrl-C or the end of the input sends what
    was read, then stops (Ctrl-C twice: stop at once).

    \b
      loglake send --service api --severity error "Database connection timeout"
      tail -f app.log | loglake send --service app
      loglake send < records.ndjson
    """
    defaults = {k: v for k, v in (("service", service), ("severity", severity), ("log_type", log_type)) if v}
    _check_defaults(defaults)
    if message and not " ".join(message).strip():
        raise click.UsageError("MESSAGE is empty")
    if len(message) == 1 and os.path.isfile(message[0]):  # (it was sent as a record whose message is its name)
        raise click.UsageError(
            f"{message[0]!r} is a file: to send its lines, run `loglake send < {shlex.quote(message[0])}` "
            "(MESSAGE is the text of one record)"
        )
    if not message and sys.stdin.isatty():
        click.echo("reading records from stdin (Ctrl-D ends); give a MESSAGE to send just one", err=True)
    reader = None if message else LineReader(sys.stdin.buffer, _now_ms)
    progress = _Progress(_stdin_size() if reader else None, live=reader is not None)

    def on_sent(line_numbers: list[int], ids: list[str]) -> None:
        if message:
            click.echo(printable(ids[0]))
        progress.update(shipper.tally.sent, reader.bytes_read if reader else 0)

    def on_refused(line_number: int, reason: str) -> None:
        progress.done()
        where = "" if message else f"line {line_number}: "
        click.echo(f"{where}not stored: {printable(reason)}", err=True)

    def on_changed(line_number: int, change: str) -> None:
        progress.done()
        where = "" if message else f"line {line_number}: "
        click.echo(f"{where}stored with a change: {printable(change)}", err=True)

    say_retrying = say_retrying_now_and_then()  # (a line at every try of a batch buried the lines refused)

    def on_retry(error: Exception, pause: float) -> None:
        progress.done()
        say_retrying(error, pause)

    with LoglakeClient(url, api_key) as client:
        shipper = Shipper(
            client,
            defaults,
            batch_size=batch_size,
            max_wait=max_wait,
            give_up_after=None if retry_for == math.inf else retry_for,
            on_refused=on_refused,
            on_changed=on_changed,
            on_sent=on_sent,
            on_retry=on_retry,
        )
        try:
            with _stopping(shipper):
                if reader is None:
                    # argv holds undecodable bytes as surrogates: back to bytes, decoded as stdin's lines are
                    shipper.add(decode_line(os.fsencode(" ".join(message)), 1, _now_ms()))
                    shipper.flush()
                else:
                    shipper.ship(reader)
        except ClientError as e:
            progress.done()
            raise click.ClickException(f"{e}; {_unsent(shipper.tally)}") from None
        except KeyboardInterrupt:  # a second Ctrl-C: what was read and not sent is given up
            progress.done()
            click.echo(f"loglake send: interrupted; {_unsent(shipper.tally)}", err=True)
            raise SystemExit(INTERRUPTED_EXIT) from None
        except CompressedInput as e:
            progress.done()
            raise click.ClickException(str(e)) from None
        except OSError as e:
            progress.done()
            raise click.ClickException(f"reading stdin failed: {e}; {_unsent(shipper.tally)}") from None
    progress.done()
    tally = shipper.tally
    if not message:
        click.echo(f"sent {tally.sent} record(s)", err=True)
    if tally.refused:
        raise click.ClickException(f"{tally.refused} line(s) could not be stored (see above)")


def _check_defaults(defaults: dict[str, str]) -> None:
    """Refuse a bad --service, --severity or --log-type at once, rather than every line for it."""
    for name, value in defaults.items():
        if name == "severity":
            try:
                Severity.parse(value)
            except ValueError as e:
                raise click.BadParameter(str(e), param_hint="--severity") from None
        elif not is_valid_name(value):
            option = "--" + name.replace("_", "-")
            raise click.BadParameter("must be 1-128 characters of A-Z a-z 0-9 . _ -", param_hint=option)


def _unsent(tally: Tally) -> str:
    return f"{tally.sent} record(s) sent, {tally.unsent} read but not sent"


@contextlib.contextmanager
def _stopping(shipper: Shipper) -> Iterator[None]:
    """Ctrl-C and SIGTERM make the shipper send what it read and stop; a second one stops it at once."""
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def stop(signum: int, frame: object) -> None:
        if not shipper.stopping and shipper.tally.unsent:
            # os.write, not click.echo: this handler may run in the middle of another write to stderr.
            os.write(2, b"stopping: sending the lines read first (Ctrl-C again to stop without them)\n")
        shipper.stop()

    for sig in handlers:
        signal.signal(sig, stop)
    try:
        yield
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)


def _now_ms() -> int:
    return int(time.time() * 1000)


def _stdin_size() -> int | None:
    try:
        info = os.fstat(sys.stdin.fileno())
    except (OSError, ValueError):
        return None
    return info.st_size if stat.S_ISREG(info.st_mode) and info.st_size > 1_000_000 else None


class _Progress:
    """A progress bar on stderr for large inputs of known size, else a running count on a terminal."""

    def __init__(self, total_bytes: int | None, live: bool = True) -> None:
        self.bar = progress_bar(total_bytes, "sending") if total_bytes else None
        if self.bar is not None:
            self.bar.__enter__()
        self.live = live and self.bar is None and sys.stderr.isatty()
        self.started = time.monotonic()
        self.shown_bytes = 0

    def update(self, sent: int, bytes_read: int) -> None:
        if self.bar is not None:
            self.bar.update(bytes_read - self.shown_bytes)
            self.shown_bytes = bytes_read
        elif self.live:
            rate = sent / max(1e-6, time.monotonic() - self.started)
            click.echo(f"\rsent {sent} records ({rate:,.0f}/s)", err=True, nl=False)

    def done(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None
        elif self.live:
            click.echo("", err=True)
            self.live = False


COMMANDS = [send]
