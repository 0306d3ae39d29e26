"""Options shared by the `loglake` commands."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import click

from loglake.config import Settings, env_name

DEFAULT_URL = "http://127.0.0.1:8080"
SEVERITY_COLOURS = {"debug": "bright_black", "info": None, "warning": "yellow", "error": "red", "critical": "magenta"}
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 110}

data_dir_option = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar=env_name("data_dir"),
    default=Settings().data_dir,
    show_default=True,
    help=f"loglake's data folder [env {env_name('data_dir')}].",
)

url_option = click.option(
    "--url", envvar=env_name("url"), default=DEFAULT_URL, show_default=True, help=f"Server URL [env {env_name('url')}]."
)
key_option = click.option(
    "--api-key", envvar=env_name("api_key"), default=None, help=f"API key [env {env_name('api_key')}]."
)


def print_record_json(record: dict) -> None:
    click.echo(json.dumps(record, ensure_ascii=False))


def print_record_row(record: dict) -> None:
    width = shutil.get_terminal_size((120, 20)).columns
    severity = record["severity"].upper()
    head = f"{record['datetime']}  {severity:<8}  {record['service']:<16}  "
    message = record["message"].replace("\n", "⏎")
    if len(head) + len(message) > width and sys.stdout.isatty():
        message = message[: max(10, width - len(head) - 1)] + "…"
    colour = SEVERITY_COLOURS.get(record["severity"])
    click.echo(click.style(head, fg=colour) + message if colour else head + message)


def print_columns(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    """Rows of text under a header, each column as wide as its widest cell."""
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows, strict=False)]
    for row in (header, *rows):
        click.echo("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
