"""`loglake rules ...`: detection rules from the rules folder, checked, tested, shown, run once, and
run when due (`run-due`, for cron; the commands that run rules are in cli_rules_run.py)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from loglake.cli_options import CONTEXT, SafeErrors, data_dir_option, json_text, print_columns, printable
from loglake.cli_rules_folder import (
    RULE_ID,
    find_rule_in,
    load_rules_from,
    print_problems,
    print_warnings,
    require_rules_folder,
    rules_dir_option,
    rules_settings,
)
from loglake.cli_rules_run import RUN_COMMANDS
from loglake.rules.summary import iso_seconds as _iso
from loglake.rules.summary import timing_text
from loglake.times import format_duration

if TYPE_CHECKING:
    from loglake.alerts.routing import Routing
    from loglake.rules.model import Problem


@click.group(cls=SafeErrors, context_settings=CONTEXT)
def rules() -> None:
    """Detection rules: Sigma and SQL rules in the rules folder, one per YAML file."""


@rules.command("init")
@rules_dir_option
@data_dir_option
def rules_init(rules_dir: Path | None, data_dir: Path) -> None:
    """Copy the starter pack into the rules folder (files already there are kept as they are)."""
    from loglake.rules.starter import copy_starter_pack

    folder = rules_settings(data_dir, rules_dir).rules_path
    copied, kept, elsewhere = copy_starter_pack(folder)
    for name in copied:
        click.echo(printable(str(folder / name)))
    if kept:
        click.echo(f"kept {len(kept)} file(s) already in {printable(folder)}: {printable(', '.join(kept))}", err=True)
    for name, holder in elsewhere.items():
        click.echo(f"left out {printable(name)}: its rule's id is in {printable(holder)}", err=True)


@rules.command("validate")
@click.argument("path", required=False, type=click.Path(path_type=Path))
@rules_dir_option
@data_dir_option
def rules_validate(path: Path | None, rules_dir: Path | None, data_dir: Path) -> None:
    """Load every rule file (YAML, fields, options, Sigma conversion, SQL sandbox and columns) and the
    folder's alerting.yml (PATH: a rule file or folder; default the rules folder); exit 1 on any problem,
    each named with its file and field. Warnings (a rule that loads but is likely not what was meant) are
    printed too, and do not fail."""
    from loglake.alerts.routing import folder_routing, load_routing, problems_in
    from loglake.rules.files import ROUTING_FILE

    folder = path or require_rules_folder(rules_settings(data_dir, rules_dir))
    if folder.is_file() and folder.name == ROUTING_FILE:  # (it was called neither a Sigma nor a SQL rule)
        routing = load_routing(folder)
        problems = problems_in(routing)
        print_problems(problems)
        _warn_unset_secrets(routing, folder)
        click.echo(f"{printable(folder)}: alert routing {'with problems' if problems else 'valid'}", err=True)
        if problems:
            raise SystemExit(1)
        return
    found = load_rules_from(folder)
    routing = folder_routing(folder) if folder.is_dir() else None  # (None: no alerting.yml)
    problems = [*found.problems, *problems_in(routing)]
    print_problems(problems)
    warned = print_warnings(found.rules)
    _warn_unset_secrets(routing, folder / ROUTING_FILE)
    files = len({p.file for p in problems})
    with_warnings = f" ({warned} with warnings)" if warned else ""
    read_routing = f" and its {ROUTING_FILE}" if routing is not None else ""
    click.echo(
        f"{len(found.rules)} rule(s) valid{with_warnings}, {files} file(s) with problems in {printable(folder)}"
        f"{read_routing}",
        err=True,
    )
    if problems:
        raise SystemExit(1)


def _warn_unset_secrets(routing: Routing | list[Problem] | None, path: Path) -> None:
    """A warning for each secret in an environment variable this shell lacks, or in a file it cannot read: not a
    problem of the file (the server's environment may have it), but the server's deliveries fail without it (a
    new-user trial was told only by GET /alerts/deliveries)."""
    from loglake.alerts.routing import Routing, unreadable_files, unset_variables

    if isinstance(routing, Routing):
        for problem in unset_variables(routing, path):
            click.echo(f"warning: {problem} (not set in this shell either)", err=True)
        for problem in unreadable_files(routing, path):
            click.echo(f"warning: {problem} (as read from this shell)", err=True)


@rules.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per rule.")
@rules_dir_option
@data_dir_option
def rules_list(as_json: bool, rules_dir: Path | None, data_dir: Path) -> None:
    """The rules with their last run (from the data dir), and the problems of the files that did not
    load, alerting.yml's too (on stderr)."""
    from loglake.alerts.routing import routing_problems
    from loglake.rules.state import read_summaries
    from loglake.rules.summary import rule_facts, runs_facts

    settings = rules_settings(data_dir, rules_dir)
    found = load_rules_from(require_rules_folder(settings))
    runs = read_summaries(settings.data_dir)
    if as_json:
        for rule in found.rules:
            click.echo(json_text({**rule_facts(rule), **runs_facts(runs.get(rule.id))}))
    else:
        rows = []
        for rule in found.rules:
            summary = runs.get(rule.id)
            last = summary.last_run if summary else None
            rows.append(
                (
                    rule.id,
                    rule.level,
                    rule.kind,
                    str(rule.schedule),
                    "yes" if rule.enabled else "no",
                    f"{_iso(last.finished_ms)} {last.outcome}" if last and last.finished_ms else "never",
                    "" if last is None or last.matches is None else str(last.matches),
                    str(summary.failures) if summary else "0",
                    rule.title,
                )
            )
        # (runs in a row that failed, as the web UI says it: not all the rule's errors, which "ERRORS" was read as;
        # the last run's matches: "MATCHES" read as the rule's, 0 a minute after it fired)
        headers = (
            "ID",
            "LEVEL",
            "KIND",
            "SCHEDULE",
            "ENABLED",
            "LAST RUN",
            "LAST RUN MATCHES",
            "ERRORS IN A ROW",
            "TITLE",
        )
        print_columns(headers, rows)
    print_problems([*found.problems, *routing_problems(settings.rules_path)])
    print_warnings(found.rules)


@rules.command("show")
@click.argument("rule_id", type=RULE_ID)
@rules_dir_option
@data_dir_option
def rules_show(rule_id: str, rules_dir: Path | None, data_dir: Path) -> None:
    """A rule's facts, options, the SQL it runs and its last runs in the data dir (RULE_ID: its id, the
    start of it, or its file's name)."""
    from loglake.rules.state import read_runs

    settings = rules_settings(data_dir, rules_dir)
    rule = find_rule_in(settings, rule_id)
    options = rule.options
    lines = [
        ("id", rule.id),
        ("title", rule.title),
        ("file", str(rule.path)),
        ("kind", rule.kind),
        ("level", rule.level),
        ("status", rule.status),
        ("tags", ", ".join(rule.tags)),
        ("enabled", "yes" if rule.enabled else "no"),
        ("schedule", timing_text(rule)),
        ("delay", format_duration(rule.delay_ms)),
        ("threshold", _threshold(rule)),
        ("dedup", f"{options.dedup.key or '(rule id and group values)'} per {options.dedup.window}"),
        ("alert title", options.alert_title or rule.title),
        ("destinations", ", ".join(options.destinations) or "(the routes)"),
        ("runbook", options.runbook or ""),
        ("auto-resolve", f"after {options.resolve_after} clear" if options.resolve_after else ""),
        ("suppress", "; ".join(f"{s.where} until {s.until or 'further notice'}" for s in options.suppress)),
        ("tests", str(len(rule.tests))),
        ("warnings", "; ".join(f"{w.field}: {w.message}" for w in rule.warnings)),
    ]
    for name, value in lines:
        if value:
            click.echo(f"{name + ':':<14}{printable(value)}")
    if rule.description:
        click.echo(f"\n{printable(rule.description.strip(), multiline=True)}")
    click.echo("\nSQL of a run ($since and $until: the window; $read_since: where reading starts):")
    click.echo(printable(rule.plan.sql, multiline=True))
    runs = read_runs(settings.data_dir, rule.id, SHOWN_RUNS)
    click.echo(f"\nLast runs in {printable(settings.data_dir)}:" if runs else "\nNo runs yet.")
    for run in runs:
        figures = (
            f"{run.rows_scanned:,} row(s), {run.bytes_scanned:,} bytes read, {run.matches} match(es),"
            f" {run.new_alerts} new alert(s), {run.duration_ms:.0f} ms"
            if run.outcome == "ok"
            else run.error or ""
        )
        if run.attempts > 1:
            first = "" if run.first_started_ms is None else f" the first at {_iso(run.first_started_ms)},"
            figures = f"{run.attempts} attempts,{first} the last at {_iso(run.started_ms)}: {figures}"
        click.echo(f"  {run.outcome:<12} {_iso(run.since_ms)} to {_iso(run.until_ms)}  {printable(figures)}")


SHOWN_RUNS = 10  # by `rules show`


def _threshold(rule: Any) -> str:
    groups = ", ".join(rule.plan.group_fields) or "rule"
    if rule.kind == "sigma correlation":
        return f"the correlation's condition, per {groups}"
    if rule.kind == "anomaly":
        return f"a deviation from the seasonal baseline (the file's metric and baseline), per {groups}"
    return f"{rule.options.threshold} matching row(s) per {groups}"


@rules.command("test")
@click.argument("path", required=False, type=click.Path(path_type=Path))
@rules_dir_option
@data_dir_option
def rules_test(path: Path | None, rules_dir: Path | None, data_dir: Path) -> None:
    """Run the rules' inline tests against a throwaway loglake (PATH: a rule file or folder; default the
    rules folder); exit 1 if a test fails or a file does not load."""
    from loglake.rules.testing import run_tests

    started = time.perf_counter()
    found = load_rules_from(path or require_rules_folder(rules_settings(data_dir, rules_dir)))
    print_problems(found.problems)
    outcomes = run_tests(found.rules)
    for rule in found.rules:
        if not rule.tests:
            click.echo(f"-     {printable(rule.title)} ({printable(rule.path)}): no tests")
    for outcome in outcomes:
        mark = "ok   " if outcome.passed else "FAIL "
        click.echo(f"{mark} {printable(outcome.rule.title)}: {printable(outcome.test.name)}")
        for failure in outcome.failures:
            click.echo(f"        {printable(outcome.rule.path)}: {printable(failure)}")
    failed = sum(not o.passed for o in outcomes)
    seconds = time.perf_counter() - started
    click.echo(
        f"{len(outcomes)} test(s), {failed} failed, {len({p.file for p in found.problems})} file(s) with problems"
        f" ({seconds:.1f} s)",
        err=True,
    )
    if failed or found.problems:
        raise SystemExit(1)


for command in RUN_COMMANDS:
    rules.add_command(command)

COMMANDS = (rules,)
