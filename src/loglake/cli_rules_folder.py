"""What every `loglake rules` command shares: the rules folder option (the data dir's is cli_options'), settings read as
`serve` reads them, loading the folder's rules and finding one of them, and printing problems."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from loglake.cli_options import Named, command_settings, data_dir_named, printable
from loglake.config import Settings, env_name

rules_dir_option = click.option(
    "--rules-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help=f"The rules folder [env {env_name('rules_dir')}; default: `rules` in the data dir].",
)
RULE_ID = Named("a rule's id, the start of one, or its file's name")


def rules_settings(data_dir: Path, rules_dir: Path | None) -> Settings:
    """Settings as `serve` reads them (flags, then LOGLAKE_*, then the --config file)."""
    return command_settings({"data_dir": data_dir, "rules_dir": str(rules_dir) if rules_dir else None})


def load_rules_from(path: Path) -> Any:
    """The rules under `path` (a folder or one file), warned of destinations their alerting.yml lacks."""
    from loglake.alerts.routing import folder_routing, with_destination_warnings
    from loglake.rules.loader import load_rules

    found = load_rules(path)
    found.rules = with_destination_warnings(found.rules, folder_routing(path if path.is_dir() else path.parent))
    return found


def print_problems(problems: list[Any]) -> None:
    for problem in problems:
        click.echo(printable(str(problem)), err=True)


def print_warnings(rules: list[Any]) -> int:
    """Each rule's warnings, on stderr; how many rules have any."""
    for rule in rules:
        for warning in rule.warnings:
            click.echo(printable(f"warning: {warning}"), err=True)
    return sum(bool(rule.warnings) for rule in rules)


def require_rules_folder(settings: Settings) -> Path:
    """The rules folder of these settings; refused when it is not there, rather than each rule reported missing
    from it. The folder is read on this machine, from where the command runs: the message says where it looked,
    where else the rules may be, and that a server's rules are asked of the server (a stray folder made here
    would be read by no server)."""
    folder = settings.rules_path
    if folder.is_dir():
        return folder
    said = [f"no rules folder at {folder.absolute()}."]
    if settings.rules_dir:
        said.append(f"It is the rules folder given by --rules-dir, {env_name('rules_dir')} or the settings file.")
        said.append("`loglake rules init --rules-dir DIR` makes one, for the server given the same folder.")
    else:
        said.append(f"Is the data dir elsewhere? Give it with {data_dir_named()}.")
        said.append("`loglake rules init --data-dir DIR` makes one, for the server whose data dir is DIR.")
    server = os.environ.get(env_name("url"))
    if server:
        said.append(
            f"This command reads the folder here; the server at {server} answers with the rules it runs:"
            f' curl -s "${env_name("url")}/rules" -H "Authorization: Bearer ${env_name("api_key")}"'
            " (and `loglake alerts list` with its alerts)."
        )
    raise click.ClickException(printable(" ".join(said)))


def find_rule_in(settings: Settings, rule_id: str) -> Any:
    from loglake.rules.model import AmbiguousRule, NoSuchRule, find_rule

    folder = require_rules_folder(settings)
    found = load_rules_from(folder)
    try:
        return find_rule(found.rules, rule_id)
    except AmbiguousRule as e:
        raise click.ClickException(f"{e} (loglake rules list shows them)") from None
    except NoSuchRule:
        hint = f"; {len(found.problems)} problem(s) kept some files from loading (loglake rules validate)"
        raise click.ClickException(
            f"no rule {rule_id!r} in {folder}{_file_names_started(found.rules, rule_id)} (loglake rules list shows "
            f"them){hint if found.problems else ''}"
        ) from None


def _file_names_started(rules: list[Any], text: str) -> str:
    """What to say of the rule files whose names `text` starts (`app` of app-error-burst.yml, ...), which a rule
    is not found by (its id's start is, or its file's whole name): which it could mean."""
    from loglake.ids import AmbiguousId

    names = sorted({rule.path.name for rule in rules if rule.path.name.startswith(text)})
    if not names:
        return ""
    shown = ", ".join(names[: AmbiguousId.SHOWN]) + (" ..." if len(names) > AmbiguousId.SHOWN else "")
    return (
        f": it starts the name of {len(names)} rule file(s) ({shown}): give one whole (its extension may be left out)"
    )
