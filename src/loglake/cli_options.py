"""Options shared by the `loglake` commands."""

from __future__ import annotations

import contextlib
import errno
import importlib.metadata
import json
import math
import re
import shlex
import shutil
import signal
import sqlite3
import sys
import time
import urllib.parse
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import click
import msgspec

from loglake.alerts.evidence import raw_decoded
from loglake.client import ClientError
from loglake.config import ConfigError, Settings, env_name, flag_name, option_fields
from loglake.config_load import configured_data_dir, load_settings
from loglake.digits import number_text
from loglake.lake.objectstore import ObjectStoreError
from loglake.lake.stop import INTERRUPTED, Stop
from loglake.private_files import FolderNotMade
from loglake.sqlitedb import RESTORE_FROM_BACKUP, DamagedDatabase, NewerSchema, is_damaged
from loglake.urls import is_http_url

DEFAULT_URL = "http://127.0.0.1:8080"
SEVERITY_COLOURS = {"debug": "bright_black", "info": None, "warning": "yellow", "error": "red", "critical": "magenta"}
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 110}
SAY_AWAY_EVERY_S = 10.0  # how often a command waiting out its server says why (say_retrying_now_and_then)


class Named(click.ParamType):
    """What names one thing (an id, the start of one, a file's or a key's name): given as an empty string
    (`loglake alerts show ""`), a usage error, rather than the start of every id or a path with no id in it."""

    name = "text"

    def __init__(self, what: str) -> None:
        self.what = what

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and not value.strip():
            self.fail(f"is empty: give {self.what}", param, ctx)
        return value


def option_time(text: str, option: str, now_ms: int) -> int:
    """The time an option gives, as every loglake command takes it (loglake.times), in epoch ms; a usage error
    naming the option (exit 2) when it does not read."""
    from loglake.times import TimeFormatError, parse_time

    try:
        return parse_time(text, now_ms)
    except TimeFormatError as e:
        raise click.BadParameter(str(e), param_hint=option) from None


def check_times(since: str | None, until: str | None) -> None:
    """--since and --until of a command that asks a server, read before it is asked, as the commands that read a
    data dir read them: one that does not read, or a window that ends before it starts (without --since, the
    server's default one), is a usage error naming its option (exit 2), where it was sent and met a server not
    running as a connection error, the mistake unsaid, or the server's refusal (exit 1; `rules run` said 2). (The
    server reads the texts again: an age is before its clock's now.) Empty is not given, as the server takes it."""
    from loglake.recent_params import DEFAULT_WINDOW_MS  # the server's default window (imported only for this)
    from loglake.times import format_datetime

    now_ms = int(time.time() * 1000)
    given = ((since, "--since"), (until, "--until"))
    since_ms, until_ms = (option_time(text, option, now_ms) if text else None for text, option in given)
    if until_ms is None:
        return
    if since_ms is not None and since_ms >= until_ms:
        raise click.BadParameter(f"must be before --until ({format_datetime(until_ms)})", param_hint="--since")
    if since_ms is None and until_ms <= now_ms - DEFAULT_WINDOW_MS:
        raise click.BadParameter(
            f"is before the start of the default window, the last {DEFAULT_WINDOW_MS // 3_600_000} h: give --since",
            param_hint="--until",
        )


class Described:
    """A click range type whose refusal says what the option takes (`what`), where click said of a text that is no
    number "'abc' is not a valid float range." and of one out of range only the bounds ("x>=0")."""

    def __init__(self, what: str, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.what = what

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            return super().convert(value, param, ctx)  # type: ignore[misc]
        except click.BadParameter:
            self.fail(f"{value!r} is not {self.what}", param, ctx)  # type: ignore[attr-defined]


class Number(Described, click.FloatRange):
    """A number in a range, described: `Number("seconds, 0 or more", 0)`."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if math.isnan(number):  # (click's range takes nan: no comparison with a bound is true of it)
            self.fail(f"{value!r} is not {self.what}", param, ctx)
        return number


class WholeNumber(Described, click.IntRange):
    """A whole number in a range, described."""


class TermsCommand(click.Command):
    """A command whose words are a search, where `-word` excludes a word: click would take -healthcheck
    for -h and an unknown -x for an error, so words starting with one dash are the search's; -h alone
    still asks for help, and an unknown --option is refused as every command refuses one, not searched for."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["context_settings"] = CONTEXT | {"ignore_unknown_options": True, "help_option_names": ["--help"]}
        super().__init__(*args, **kwargs)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        known = {name for param in self.params for name in getattr(param, "opts", ())} | {"--help"}
        for number, arg in enumerate(args):
            if arg == "--":
                break
            if arg == "-h":
                args = [*args[:number], "--help", *args[number + 1 :]]
            elif arg.startswith("--") and arg.split("=", 1)[0] not in known:
                raise click.NoSuchOption(arg.split("=", 1)[0], possibilities=sorted(known), ctx=ctx)
        return super().parse_args(ctx, args)

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """click's list of options, with --help shown as `-h, --help` as every other command shows it: -h works
        (parse_args), though the parser knows --help alone."""
        records = [record for param in self.get_params(ctx) if (record := param.get_help_record(ctx))]
        records = [("-h, --help" if names == "--help" else names, text) for names, text in records]
        if records:
            with formatter.section("Options"):
                formatter.write_dl(records)


_CONFIG_FILE = "loglake.config_file"  # (the key of the file config_option took in the command's ctx.meta)


def _take_config_file(ctx: click.Context, param: click.Parameter, given: Path | None) -> None:
    ctx.meta[_CONFIG_FILE] = given


# --config of every command that reads loglake's settings (the data dir's, the lake's, the rules folder's...): a
# server started with --config FILE is worked on with the same FILE, where the other commands took only the variable.
config_option = click.option(
    "--config",
    type=click.Path(path_type=Path),  # (a folder, a missing file: said by load_settings, as of LOGLAKE_CONFIG)
    metavar="FILE",
    envvar=env_name("config"),
    default=None,
    is_eager=True,  # (taken before --data-dir, whose default its file may name)
    expose_value=False,
    callback=_take_config_file,
    help=f"TOML file of loglake's settings, as `loglake serve` reads it (top level or a [loglake] table; its relative "
    f"paths from its folder) [env {env_name('config')}].",
)


def given_config_file() -> Path | None:
    """The file config_option took for the command running (--config, else LOGLAKE_CONFIG), None for none."""
    ctx = click.get_current_context(silent=True)
    return ctx.meta.get(_CONFIG_FILE) if ctx is not None else None


def command_settings(overrides: dict[str, Any]) -> Settings:
    """Settings as `loglake serve` reads them (`overrides` as its flags, then LOGLAKE_*, then the command's
    --config file), a problem with them the command's error."""
    try:
        return load_settings(overrides, given_config_file())
    except ConfigError as e:
        raise click.ClickException(str(e)) from None


_DATA_DIR_GIVEN_AS = "loglake.data_dir_given_as"  # (how _configured_data_dir's setting was given, in ctx.meta)


def _configured_data_dir(ctx: click.Context, param: click.Parameter, given: Path | None) -> Path:
    """--data-dir as given, else what `loglake serve` would take: LOGLAKE_DATA_DIR, the --config (or LOGLAKE_CONFIG)
    file's data_dir, or the default."""
    if given is not None:
        return given
    try:
        found, ctx.meta[_DATA_DIR_GIVEN_AS] = configured_data_dir(given_config_file())
    except ConfigError as e:
        raise click.ClickException(str(e)) from None
    return found


def data_dir_named() -> str:
    """Where the running command's data dir is set, for the errors that ask to check it: `data_dir in FILE` when
    the settings' file named it (the flag and the variable, which the person did not give, sent them looking in
    the wrong place), else the flag and its variable."""
    ctx = click.get_current_context(silent=True)
    given_as = ctx.meta.get(_DATA_DIR_GIVEN_AS) if ctx is not None else None
    from_file = given_as is not None and given_as != env_name("data_dir")
    return given_as if from_file else f"--data-dir / {env_name('data_dir')}"


def data_dir_option_with(help_text: str, config: bool = True) -> Callable[[Callable], Callable]:
    """A --data-dir option for a command that works on a data dir directly (never through a server), with the
    --config option that may name it; without (`config` false) for a command whose --config is a file of its own,
    which takes the settings' file from LOGLAKE_CONFIG alone."""
    named_by = "the --config file" if config else f"the {env_name('config')} file"
    data_dir = click.option(
        "--data-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        callback=_configured_data_dir,
        help=f"{help_text} [default: {env_name('data_dir')}, else data_dir in {named_by}, else {Settings().data_dir}]",
    )
    return (lambda command: data_dir(config_option(command))) if config else data_dir


data_dir_option = data_dir_option_with("loglake's data folder.")


def checked_url(ctx: click.Context, param: click.Parameter, given: str | None) -> str | None:
    """--url as given, refused unless an http(s) URL (`http://127.0.0.1:abc` ended every command in a traceback)."""
    if given is not None and not is_http_url(given):
        source = ctx.get_parameter_source(param.name) if param.name else None
        named = f" (from {env_name('url')})" if source == click.core.ParameterSource.ENVIRONMENT else ""
        raise click.BadParameter(f"{given!r}{named} is not an http(s) URL such as {DEFAULT_URL}", ctx, param)
    return given


url_option = click.option(
    "--url",
    envvar=env_name("url"),
    default=DEFAULT_URL,
    show_default=True,
    callback=checked_url,
    help=f"Server URL [env {env_name('url')}].",
)
key_option = click.option(
    "--api-key", envvar=env_name("api_key"), default=None, help=f"API key [env {env_name('api_key')}]."
)


# Control characters in what a terminal shows could recolour it, retitle it, move the cursor or
# worse (a message holding "\x1b]0;title\x07"): human-facing output shows them as escapes. C0, DEL and
# C1 are the control characters; the bidirectional overrides can make a line read as something else;
# the line and paragraph separators break a line in some terminals; zero-width characters hide text.
_CONTROLS = [*range(0x20), *range(0x7F, 0xA0)]
_BIDI = [*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x061C]
_INVISIBLE = [0x2028, 0x2029, *range(0x200B, 0x200E), 0x2060, 0xFEFF]
_ESCAPES = {c: f"\\x{c:02x}" for c in _CONTROLS} | {c: f"\\u{c:04x}" for c in (*_BIDI, *_INVISIBLE)}
_ESCAPES |= {ord("\t"): "\\t", ord("\r"): "\\r"}
_ONE_LINE = str.maketrans(_ESCAPES | {ord("\n"): "⏎"})
_LINES = str.maketrans({c: e for c, e in _ESCAPES.items() if c != ord("\n")})
# In JSON text, C0 is escaped already; DEL and C1 may appear raw, and as \uXXXX they mean the same.
_JSON_RAW = str.maketrans({c: f"\\u{c:04x}" for c in (*range(0x7F, 0xA0), 0x2028, 0x2029)})


class SafeErrors(click.Group):
    """A command group whose errors (often quoting a server, a file or a record) show as printable text,
    and whose commands stopped by Ctrl-C say so in one line and exit 130, as a shell's commands do
    (click's own answer is `Aborted!` and 1; Python's, a traceback)."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except click.ClickException as e:
            e.message = printable(e.message, multiline=True)
            raise
        except (OSError, sqlite3.DatabaseError, ObjectStoreError, NewerSchema) as e:
            said = storage_error_text(e)
            if said is None:
                raise
            raise click.ClickException(printable(said, multiline=True)) from None
        except KeyboardInterrupt:
            start = "\n" if sys.stderr.isatty() else ""  # after the terminal's ^C, on a line of its own
            groups = [c.info_name for c in _chain(ctx) if c.parent is not None]
            click.echo(f"{start}{' '.join(['loglake', *groups, ctx.invoked_subcommand or ''])}: interrupted", err=True)
            ctx.exit(INTERRUPTED_EXIT)


# What the file system says when the user running loglake may not write where it must: a data dir that cannot be
# made, or whose files cannot be written (a read-only mount, another user's folder, an immutable file).
_NOT_WRITABLE = {errno.EACCES, errno.EPERM, errno.EROFS}
# SQLite's words for the same, when it opens hot.db, keys.db, ... (its error names no file)
_SQLITE_NOT_WRITABLE = ("unable to open database file", "attempt to write a readonly database", "readonly database")


def storage_error_text(error: BaseException) -> str | None:
    """What a command says, in one line with what to do, for a data dir it cannot write (or whose databases a
    newer loglake migrated) or an S3 lake that refused or failed it (a configuration mistake or an outage, not a
    bug: no traceback); None for any other error, which stays a traceback."""
    if isinstance(error, ObjectStoreError) and "s3://" in str(error):  # (a local lake's error would be a bug)
        return (
            f"the lake's object store failed: {str(error).rstrip('. ')}. Check the lake's settings (the server's "
            "LOGLAKE_LAKE_BUCKET, LOGLAKE_LAKE_PREFIX, LOGLAKE_LAKE_ENDPOINT), its credentials (the standard AWS "
            "chain: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, the instance role) and that the store "
            "is up, then run the command again"
        )
    if isinstance(error, DamagedDatabase):
        return f"{error}: {RESTORE_FROM_BACKUP}"
    if isinstance(error, NewerSchema):  # (a downgrade: the message says which database and to upgrade)
        return str(error)
    if is_damaged(error):  # met past opening, in a page the open did not read: SQLite's words name no file
        return (
            f"a database of the data dir is damaged (SQLite: {error}; `loglake verify` names it): {RESTORE_FROM_BACKUP}"
        )
    if isinstance(error, sqlite3.OperationalError) and str(error) in _SQLITE_NOT_WRITABLE:
        return (
            f"cannot open the data dir's databases for writing (SQLite: {error}): make the data dir "
            f"({data_dir_named()}) and the files in it writable by the user running loglake, or point loglake at "
            "another folder"
        )
    if isinstance(error, OSError) and error.errno in _NOT_WRITABLE:
        where = f": {error.filename}" if error.filename else ""
        return (
            f"{error.strerror}{where}: give the user running loglake access to it (write access, for the data dir "
            f"({data_dir_named()}) and what it holds), or point loglake at another path"
        )
    if isinstance(error, FolderNotMade):  # (a path the person gave: `rules init --data-dir /proc/x`)
        return f"cannot make the folder {error.filename}: {error.strerror}; point loglake at another path"
    return None


def _chain(ctx: click.Context) -> list[click.Context]:
    """The contexts from the outermost command's to `ctx`."""
    return [*_chain(ctx.parent), ctx] if ctx.parent is not None else [ctx]


INTERRUPTED_EXIT = 128 + 2  # a shell's status for a command ended by SIGINT
T = TypeVar("T")


def until_ctrl_c(work: Callable[[Stop], T]) -> T:
    """`work(stop)` on a thread of its own, stopped through `stop` on Ctrl-C, which then ends the command.

    Ctrl-C reaches only the main thread, and DuckDB running a query there notices it only between its
    tasks (seconds, at times half a minute, measured on a range scan). Waiting here, the main thread
    hears it at once, and the stop interrupts the query as a server's stopping does."""
    stop = Stop()
    with ThreadPoolExecutor(1, thread_name_prefix="loglake-cli-work") as worker:
        try:  # (the submit too: Ctrl-C may come while it waits for the thread to start, the work under way)
            return worker.submit(work, stop).result()
        except KeyboardInterrupt:
            stop.stop(INTERRUPTED)
            raise  # leaving the block waits for the work to end: its query interrupted, its files closed


# The commands that let Ctrl-C through themselves (let_ctrl_c_through): the CLI's group lets it through for the others.
FOLLOWING_COMMANDS = ("tail", "recent")


def let_ctrl_c_through(follows: bool) -> None:
    """Let through the SIGINT the `loglake` command held while its CLI was imported (__main__), and, for a command
    that follows (`tail`, `recent --follow`), let Ctrl-C or a `kill -INT` end it as it ends it in a terminal, also
    when a shell script started it in the background: the shell then starts it with SIGINT ignored, which leaves
    Python without its KeyboardInterrupt (`serve` takes SIGINT so too, as uvicorn and gunicorn do)."""
    if follows and signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


class _NoProgress:
    """What progress_bar gives where no terminal shows stderr: it shows nothing."""

    def __enter__(self) -> _NoProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, n_steps: int) -> None:
        return None


def progress_bar(length: int, label: str, show_pos: bool = False) -> Any:
    """click's progress bar on stderr, for a terminal; elsewhere (a log file, a pipe, cron's mail) nothing, where
    click's writes its label alone (a bare `flushing` line): the command's own line says what was done."""
    if not sys.stderr.isatty():
        return _NoProgress()
    return click.progressbar(length=length, label=label, file=sys.stderr, show_pos=show_pos)


def printable(value: object, multiline: bool = False) -> str:
    """Text for a terminal: control characters as visible escapes; a newline as ⏎, unless `multiline`."""
    return str(value).translate(_LINES if multiline else _ONE_LINE)


def json_text(value: object, indent: int | None = None) -> str:
    """JSON (exact: it decodes to the same value) that a terminal shows without obeying anything in it."""
    try:
        text = json.dumps(value, ensure_ascii=False, indent=indent, allow_nan=False, default=raw_decoded)
    except ValueError:  # an infinite or NaN float, which Python would write as Infinity or NaN: not JSON
        text = _json_without_nan(value, indent)
    return text.translate(_JSON_RAW)


def shown_json(value: object) -> str:
    """json_text for a line a person reads (an alert's evidence, a nested value in a table of rows): its numbers
    written as number_text writes them (10000000000000000, 1, not Python's 1e+16 and 1.0), still JSON."""
    return _json_with_floats(value, None, _json_number, decode_raw=True).translate(_JSON_RAW)


def _json_number(value: float) -> str:
    """A double in JSON: number_text's, or as _json_without_nan writes what JSON has no number for."""
    return number_text(value) if math.isfinite(value) else _NOT_FINITE.get(value, "null")


# An infinite float as 1e400 (what an API answer of a number past a double held, and what any JSON reader reads back
# as infinite) and NaN as null (JSON has no word for it).
_NOT_FINITE = {math.inf: "1e400", -math.inf: "-1e400"}


def _json_without_nan(value: object, indent: int | None) -> str:
    """JSON with a float JSON has no number for as _NOT_FINITE writes it."""
    return _json_with_floats(value, indent, lambda f: None if math.isfinite(f) else _NOT_FINITE.get(f, "null"))


def _json_with_floats(
    value: object, indent: int | None, written: Callable[[float], str | None], decode_raw: bool = False
) -> str:
    """JSON with each float for which `written` has text written as that text (a float it answers None for as json
    writes it); with `decode_raw`, the floats of with_attributes_decoded's JSON text too."""
    marker = f"loglake-number-{uuid.uuid4()}"

    def marked(item: object) -> object:
        if decode_raw and isinstance(item, msgspec.Raw):
            item = raw_decoded(item)
        if isinstance(item, float):
            text = written(item)
            return item if text is None else f"{marker}{text}"
        if isinstance(item, dict):
            return {k: marked(v) for k, v in item.items()}
        if isinstance(item, list | tuple):
            return [marked(v) for v in item]
        return item

    text = json.dumps(marked(value), ensure_ascii=False, indent=indent, default=raw_decoded)
    return re.sub(f'"{marker}([^"]+)"', r"\1", text)


def print_record_json(record: dict) -> None:
    click.echo(json_text(record))


def print_record_row(record: dict) -> None:
    width = shutil.get_terminal_size((120, 20)).columns
    severity = printable(record["severity"].upper())
    head = f"{printable(record['datetime'])}  {severity:<8}  {printable(record['service']):<16}  "
    message = printable(record["message"])
    if len(head) + len(message) > width and sys.stdout.isatty():
        message = message[: max(10, width - len(head) - 1)] + "…"
    colour = SEVERITY_COLOURS.get(record["severity"])
    click.echo(click.style(head, fg=colour) + message if colour else head + message)


def path_from_here(path: Path) -> str:
    """A path as a person types it from the current folder: relative under it (`.venv/bin/pip`, `.`), else
    absolute; quoted for a shell."""
    with contextlib.suppress(ValueError):
        return shlex.quote(str(path.absolute().relative_to(Path.cwd())))
    return shlex.quote(str(path.absolute()))


def install_command(extra: str) -> str:
    """The command that adds an extra (`aws`) to this installation, with its own pip: from its folder when it
    is an editable install (a clone, as the README sets one up), else from the package index."""
    pip = Path(sys.executable).with_name("pip")
    installer = f"{path_from_here(pip)} install" if pip.exists() else f"{shlex.quote(sys.executable)} -m pip install"
    source = editable_source()
    if source is None:
        return f"{installer} {shlex.quote(f'loglake[{extra}]')}"
    return f"{installer} -e {shlex.quote(f'{path_from_here(source)}[{extra}]')}"


def editable_source() -> Path | None:
    """The folder an editable install of loglake runs from (pip's direct_url.json says), None for another."""
    try:
        found = json.loads(importlib.metadata.distribution("loglake").read_text("direct_url.json") or "{}")
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return None
    url = found.get("url", "")
    if not found.get("dir_info", {}).get("editable") or not url.startswith("file://"):
        return None
    return Path(urllib.parse.unquote(urllib.parse.urlsplit(url).path))


def say_retrying(error: Exception, pause: float) -> None:
    """Say on stderr why a command that outlives its server's restarts (or waits for a busy one) retries, and
    when: every command that retries says it so. A pause that rounds to 0.0 s is "now"."""
    when = f"in {pause:.1f} s" if pause >= 0.05 else "now"
    click.echo(f"loglake: {printable(error)}; trying again {when}", err=True)


def say_retrying_now_and_then(clock: Callable[[], float] = time.monotonic) -> Callable[[Exception, float], None]:
    """say_retrying for a command that waits out its server for as long as it takes (tail, recent --follow): for
    the first retry, then at most every SAY_AWAY_EVERY_S (a line at every try, three a second, buried the rest), as
    one short line of how long it has been trying: the first line's advice and "trying again in 0.3 s", said again
    every 10 s of a long outage, read as noise (a new-user trial)."""
    first_at: float | None = None
    said_at = 0.0

    def now_and_then(error: Exception, pause: float) -> None:
        nonlocal first_at, said_at
        now = clock()
        if first_at is None:
            first_at = said_at = now
            say_retrying(error, pause)
        elif now - said_at >= SAY_AWAY_EVERY_S:
            said_at = now
            why = printable(error).split("; ", 1)[0]  # (what failed, without the advice the first line gave)
            click.echo(f"loglake: still trying, for {now - first_at:.0f} s now: {why}", err=True)

    return now_and_then


def command_line(command: str, options: dict[str, str | None], url: str, search: str | None = None) -> str:
    """`loglake COMMAND` as a line a shell runs: each option that has a value, in order (`--log-type api`), the
    URL if not the default (never the API key, which a shell's history would keep), then the search."""
    words = ["loglake", command]
    for name, value in options.items():
        if value:
            words += [flag_name(name), value]
    if url != DEFAULT_URL:
        words += ["--url", url]
    if search:
        words += ["--", search] if search.startswith("-") else [search]  # (-- : not an option, whatever follows)
    return shlex.join(words)


def typed_names(aliases: Mapping[str, str] | None = None) -> dict[str, str]:
    """The running command's parameters by name, as a person types them (`min_severity`: `--min-severity`; an
    argument by its metavar, `TERMS`), and `aliases`: another name (the API's) for one of them."""
    params = click.get_current_context().command.params
    typed = {p.name: max(p.opts, key=len) if isinstance(p, click.Option) else p.human_readable_name for p in params}
    return typed | {alias: typed[name] for alias, name in (aliases or {}).items()}


def values_refused(problems: Sequence[tuple[str, str]], aliases: Mapping[str, str] | None = None) -> click.UsageError:
    """Problems with values the command line gave ((name, reason), each name a parameter's, or one of `aliases`), as
    click says a bad option's value: a usage error (exit 2) naming the option (typed_names)."""
    typed = typed_names(aliases)
    named = [(typed.get(name, name), reason) for name, reason in problems]
    if len(named) == 1:
        return click.BadParameter(named[0][1], param_hint=named[0][0])
    return click.UsageError("; ".join(f"Invalid value for {option}: {reason}" for option, reason in named))


def server_refused(error: ClientError, aliases: Mapping[str, str] | None = None) -> click.ClickException:
    """A server's refusal as the command says it: a 400 whose every detail is a value of the command's own parameters
    (by the API's name: the parameter's, or one of `aliases`) is values_refused, naming the option typed where the
    server named its parameter (`HTTP 400: min_severity: must be ...`, exit 1); anything else, its message."""
    found = [(d.get("field"), d.get("reason")) for d in error.details if isinstance(d, dict)]
    typed = typed_names(aliases)
    if error.status == 400 and found and all(name in typed and reason for name, reason in found):
        return values_refused(found, aliases)
    return click.ClickException(str(error))


def say_none_found(matching: str, since: str | None, until: str | None, hint: str = "") -> None:
    """Say on stderr that no record was found, where grep-like tools say nothing (the exit status stays 0): a
    blank answer leaves a person wondering whether the search ran, and over which time. `matching`: what
    the records had to match (empty: nothing more than the time); `hint`: what else to say, after the window."""
    from loglake.recent_params import DEFAULT_WINDOW_MS  # the server's default window (imported only for this)

    window = f"since {since}" if since else f"in the last {DEFAULT_WINDOW_MS // 3_600_000} h"
    window += f" until {until}" if until else ""
    advice = "" if since else "; widen it with --since, e.g. --since 7d"
    click.echo(printable(f"(no record {matching}{' ' if matching else ''}{window}{advice}{hint})"), err=True)


def print_columns(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    """Rows of text under a header, each column as wide as its widest cell."""
    cells = [[printable(c) for c in row] for row in (header, *rows)]
    widths = [max(len(c) for c in column) for column in zip(*cells, strict=True)]
    for row in cells:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def settings_options(prefix: str = "") -> Callable[[Any], Any]:
    """A decorator adding one --option per Settings field (those whose name starts with `prefix`), each
    also read from LOGLAKE_<NAME> and the TOML file."""

    def decorate(command: Any) -> Any:
        for f in reversed([f for f in option_fields() if f.name.startswith(prefix)]):
            flag = flag_name(f.name)
            help_text = f"{f.metadata['help']} [env {env_name(f.name)}; default {_show_default(f.default)}]"
            if f.type == "bool":
                decl = [f"{flag}/--no-{f.name.replace('_', '-')}", f.name]
                command = click.option(*decl, default=None, help=help_text)(command)
            else:
                kind = {"int": int, "float": float}.get(f.type, str)
                choices = f.metadata.get("choices")
                param_type = click.Choice(choices) if choices else kind
                command = click.option(flag, f.name, type=param_type, default=None, help=help_text)(command)
                if "deprecated_name" in f.metadata:  # (load_settings takes it for the current name, and says so)
                    old = f.metadata["deprecated_name"]
                    command = click.option(flag_name(old), old, type=param_type, default=None, hidden=True)(command)
        return command

    return decorate


def _show_default(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value) if value not in ("", None) else "none"
