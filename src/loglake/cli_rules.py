"""`loglake rules ...`: detection rules from the rules folder, checked, tested, shown, run once, and
run when due (`run-due`, for cron)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from loglake.cli_options import CONTEXT, SafeErrors, json_text, print_columns, printable, until_ctrl_c
from loglake.config import ConfigError, Settings, env_name, load_settings
from loglake.rules.summary import iso_seconds as _iso

rules_dir_option = click.option(
    "--rules-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help=f"The rules folder [env {env_name('rules_dir')}; default: `rules` in the data dir].",
)
data_dir_option = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help=f"loglake's data folder [env {env_name('data_dir')}; default {Settings().data_dir}].",
)


def _settings(data_dir: Path | None, rules_dir: Path | None) -> Settings:
    """Settings as `serve` reads them (flags, then LOGLAKE_*, then LOGLAKE_CONFIG's file)."""
    try:
        return load_settings({"data_dir": data_dir, "rules_dir": str(rules_dir) if rules_dir else None})
    except ConfigError as e:
        raise click.ClickException(str(e)) from None


def _load(path: Path) -> Any:
    from loglake.rules.loader import load_rules

    return load_rules(path)


def _print_problems(problems: list[Any]) -> None:
    for problem in problems:
        click.echo(printable(str(problem)), err=True)


@click.group(cls=SafeErrors, context_settings=CONTEXT)
def rules() -> None:
    """Detection rules: Sigma and SQL rules in the rules folder, one per YAML file."""


@rules.command("init")
@rules_dir_option
@data_dir_option
def rules_init(rules_dir: Path | None, data_dir: Path | None) -> None:
    """Copy the starter pack into the rules folder (files already there are kept as they are)."""
    from loglake.rules.starter import copy_starter_pack

    folder = _settings(data_dir, rules_dir).rules_path
    copied, kept = copy_starter_pack(folder)
    for name in copied:
        click.echo(printable(str(folder / name)))
    if kept:
        click.echo(f"kept {len(kept)} file(s) already in {printable(folder)}: {printable(', '.join(kept))}", err=True)


@rules.command("validate")
@rules_dir_option
@data_dir_option
def rules_validate(rules_dir: Path | None, data_dir: Path | None) -> None:
    """Load every rule file (YAML, fields, options, Sigma conversion, SQL sandbox and columns) and the
    folder's alerting.yml; exit 1 on any problem, each named with its file and field."""
    from loglake.alerts.routing import load_routing
    from loglake.rules.files import ROUTING_FILE

    folder = _settings(data_dir, rules_dir).rules_path
    found = _load(folder)
    routing = load_routing(folder / ROUTING_FILE) if (folder / ROUTING_FILE).is_file() else []
    problems = [*found.problems, *(routing if isinstance(routing, list) else [])]  # (a Routing: it loaded)
    _print_problems(problems)
    files = len({p.file for p in problems})
    click.echo(f"{len(found.rules)} rule(s) valid, {files} file(s) with problems in {printable(folder)}", err=True)
    if problems:
        raise SystemExit(1)


@rules.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per rule.")
@rules_dir_option
@data_dir_option
def rules_list(as_json: bool, rules_dir: Path | None, data_dir: Path | None) -> None:
    """The rules with their last run (from the data dir), and the problems of the files that did not
    load (on stderr)."""
    from loglake.rules.state import read_summaries
    from loglake.rules.summary import rule_facts, runs_facts

    settings = _settings(data_dir, rules_dir)
    found = _load(settings.rules_path)
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
        headers = ("ID", "LEVEL", "KIND", "SCHEDULE", "ENABLED", "LAST RUN", "MATCHES", "ERRORS", "TITLE")
        print_columns(headers, rows)
    _print_problems(found.problems)


@rules.command("show")
@click.argument("rule_id")
@rules_dir_option
@data_dir_option
def rules_show(rule_id: str, rules_dir: Path | None, data_dir: Path | None) -> None:
    """A rule's facts, options, the SQL it runs and its last runs in the data dir (RULE_ID: its id, the
    start of it, or its file's name)."""
    from loglake.rules.state import read_runs

    settings = _settings(data_dir, rules_dir)
    rule = _find(settings.rules_path, rule_id)
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
        ("schedule", f"{rule.schedule}, each run over the last {rule.lookback_ms / 1000:g} s"),
        ("delay", f"{rule.delay_ms / 1000:g} s"),
        ("threshold", _threshold(rule)),
        ("dedup", f"{options.dedup.key or '(rule id and group values)'} per {options.dedup.window}"),
        ("alert title", options.alert_title or rule.title),
        ("destinations", ", ".join(options.destinations) or "(the routes)"),
        ("runbook", options.runbook or ""),
        ("auto-resolve", f"after {options.resolve_after} clear" if options.resolve_after else ""),
        ("suppress", "; ".join(f"{s.where} until {s.until or 'further notice'}" for s in options.suppress)),
        ("tests", str(len(rule.tests))),
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
            f"{run.rows_scanned:,} rows, {run.bytes_scanned:,} bytes read, {run.matches} match(es),"
            f" {run.new_alerts} new alert(s), {run.duration_ms:.0f} ms"
            if run.outcome == "ok"
            else run.error or ""
        )
        click.echo(f"  {run.outcome:<12} {_iso(run.since_ms)} to {_iso(run.until_ms)}  {printable(figures)}")


SHOWN_RUNS = 10  # by `rules show`


def _threshold(rule: Any) -> str:
    groups = ", ".join(rule.plan.group_fields) or "rule"
    if rule.kind == "sigma correlation":
        return f"the correlation's condition, per {groups}"
    if rule.kind == "anomaly":
        return f"a deviation from the seasonal baseline (the file's metric and baseline), per {groups}"
    return f"{rule.options.threshold} matching row(s) per {groups}"


def _find(folder: Path, rule_id: str) -> Any:
    from loglake.rules.model import AmbiguousRule, NoSuchRule, find_rule

    found = _load(folder)
    try:
        return find_rule(found.rules, rule_id)
    except AmbiguousRule as e:
        raise click.ClickException(f"{e} (loglake rules list shows them)") from None
    except NoSuchRule:
        hint = f"; {len(found.problems)} problem(s) kept some files from loading (loglake rules validate)"
        raise click.ClickException(
            f"no rule {rule_id!r} in {folder} (loglake rules list shows them){hint if found.problems else ''}"
        ) from None


@rules.command("test")
@click.argument("path", required=False, type=click.Path(path_type=Path))
@rules_dir_option
@data_dir_option
def rules_test(path: Path | None, rules_dir: Path | None, data_dir: Path | None) -> None:
    """Run the rules' inline tests against a throwaway loglake (PATH: a rule file or folder; default the
    rules folder); exit 1 if a test fails or a file does not load."""
    from loglake.rules.testing import run_tests

    started = time.perf_counter()
    found = _load(path or _settings(data_dir, rules_dir).rules_path)
    _print_problems(found.problems)
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


@rules.command("run")
@click.argument("rule_id")
@click.option(
    "--since", default=None, help="Window start: ISO-8601, epoch ms or an age like 1h (default: the lookback)."
)
@click.option("--until", default=None, help="Window end, excluded, same forms (default: now less the rule's delay).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per match, with its evidence.")
@rules_dir_option
@data_dir_option
def rules_run(
    rule_id: str, since: str | None, until: str | None, as_json: bool, rules_dir: Path | None, data_dir: Path | None
) -> None:
    """Run a rule once over a window of the data dir's logs and print its matches (no alert is raised)."""
    from loglake.cli_lake import local_lake
    from loglake.rules.run import RuleRunError, run_rule
    from loglake.times import TimeFormatError, parse_time

    settings = _settings(data_dir, rules_dir)
    rule = _find(settings.rules_path, rule_id)
    now_ms = int(time.time() * 1000)
    try:
        until_ms = parse_time(until, now_ms) if until else now_ms - rule.delay_ms
        since_ms = parse_time(since, now_ms) if since else until_ms - rule.lookback_ms
    except TimeFormatError as e:
        raise click.ClickException(str(e)) from None
    if since_ms >= until_ms:
        raise click.ClickException("--since must be before --until")
    with local_lake(settings.data_dir) as lake:
        try:
            result = run_rule(rule, lake.engine, since_ms, until_ms, now_ms)
        except RuleRunError as e:
            raise click.ClickException(str(e)) from None
    for match in result.matches:
        if as_json:
            click.echo(json_text(match.to_dict()))
            continue
        facts = match.to_dict()
        # A SQL rule's rows may have no timestamp column: then there is no span to show.
        span = f", {facts['first_seen']} to {facts['last_seen']}" if match.first_ms is not None else ""
        suppressed = f", suppressed: {match.suppressed}" if match.suppressed else ""
        click.echo(
            f"{rule.level.upper()}  {printable(match.title)}  (count {match.count}{span},"
            f" dedup key {printable(match.dedup_key)}{suppressed})"
        )
        for row in match.evidence:
            click.echo("    " + json_text(row))
    truncated = " (more rows than the engine returns: some groups may be missing)" if result.truncated else ""
    click.echo(
        f"{len(result.matches)} match(es) of {printable(rule.title)} from {_iso(since_ms)} to {_iso(until_ms)}; "
        f"{result.rows_scanned:,} rows, {result.bytes_scanned:,} bytes of lake files read in "
        f"{result.elapsed_ms:.0f} ms{truncated}",
        err=True,
    )


@rules.command("run-due")
@click.option(
    "--now",
    "as_of",
    default=None,
    help="Run what was due at this earlier time instead: ISO-8601, epoch ms or an age like 2h (default: now).",
)
@rules_dir_option
@data_dir_option
def rules_run_due(as_of: str | None, rules_dir: Path | None, data_dir: Path | None) -> None:
    """Run what is due once, then exit (for cron): every enabled rule over the windows it has not
    evaluated yet, raising alerts as `loglake serve` does. Exit 1 if a run failed or a file did not load.
    Safe next to a running server on the same data dir: they take turns, and no window runs twice."""
    from loglake.cli_lake import local_runtime

    clock = time.time if as_of is None else _fixed_clock(as_of)
    settings = _settings(data_dir, rules_dir)
    if not settings.rules_path.is_dir():
        raise click.ClickException(f"no rules folder {settings.rules_path} (loglake rules init makes one)")
    with local_runtime(settings.data_dir, {"rules_dir": str(settings.rules_path)}, clock=clock) as runtime:
        scheduler = runtime.rules
        scheduler.reload()
        _print_problems(scheduler.folder.problems)
        report = scheduler.run_round(wait=True)
    for rule, run in report.runs:
        figures = f"{run.matches} match(es), {run.new_alerts} new alert(s)" if run.outcome == "ok" else run.error
        window = f"{_iso(run.since_ms)} to {_iso(run.until_ms)}"
        click.echo(f"{run.outcome:<6} {printable(rule.title)}  {window}: {printable(figures)}")
    click.echo(
        f"{len(report.runs)} run(s), {report.failed} failed, {len({p.file for p in scheduler.folder.problems})}"
        " file(s) with problems",
        err=True,
    )
    if report.failed or scheduler.folder.problems:
        raise SystemExit(1)


def _fixed_clock(text: str) -> Callable[[], float]:
    """A clock stopped at `text`, not later than now: a window evaluated before its end has passed would
    be marked done without the records that arrive after the run."""
    from loglake.times import TimeFormatError, parse_time

    now_ms = int(time.time() * 1000)
    try:
        as_of_ms = parse_time(text, now_ms)
    except TimeFormatError as e:
        raise click.BadParameter(str(e), param_hint="--now") from None
    if as_of_ms > now_ms:
        raise click.BadParameter(
            f"{text!r} is in the future: run-due only runs what was due by now", param_hint="--now"
        )
    return lambda: as_of_ms / 1000


@rules.command("backtest")
@click.argument("rule_id")
@click.option("--since", required=True, help="Start of the history to replay: ISO-8601, epoch ms or an age like 30d.")
@click.option("--until", default=None, help="Its end, excluded, same forms (default: now).")
@click.option("--examples", default=3, show_default=True, type=click.IntRange(0, 100), help="Example alerts per day.")
@click.option("--json", "as_json", is_flag=True, help="The report as one JSON object.")
@rules_dir_option
@data_dir_option
def rules_backtest(
    rule_id: str,
    since: str,
    until: str | None,
    examples: int,
    as_json: bool,
    rules_dir: Path | None,
    data_dir: Path | None,
) -> None:
    """Replay a rule over the data dir's history window by window (its schedule, lookback, delay,
    threshold, dedup and suppressions) and print the alerts it would have raised per day, with examples."""
    from loglake.cli_lake import local_lake
    from loglake.rules.backtest import Day, PeriodError, backtest, refuse_past_retention
    from loglake.rules.run import RuleRunError
    from loglake.times import TimeFormatError, parse_time

    settings = _settings(data_dir, rules_dir)
    rule = _find(settings.rules_path, rule_id)
    now_ms = int(time.time() * 1000)
    try:
        until_ms = parse_time(until, now_ms) if until else now_ms
        since_ms = parse_time(since, now_ms)
    except TimeFormatError as e:
        raise click.ClickException(str(e)) from None
    if since_ms >= until_ms:
        raise click.ClickException("--since must be before --until")
    try:
        refuse_past_retention(since_ms, now_ms, settings.retention_days)
    except PeriodError as e:
        raise click.ClickException(str(e).replace("since ", "--since ", 1)) from None
    started = time.perf_counter()

    def progress(day: Day, done: int, total: int) -> None:
        click.echo(
            f"backtest: {day.day} done ({done}/{total} days, {day.alerts} alert(s),"
            f" {time.perf_counter() - started:.1f} s)",
            err=True,
        )

    with local_lake(settings.data_dir) as lake:
        try:
            report = until_ctrl_c(
                lambda stop: backtest(
                    rule, lake.engine, since_ms, until_ms, examples=examples, progress=progress, stop=stop
                )
            )
        except RuleRunError as e:
            raise click.ClickException(str(e)) from None
    if as_json:
        click.echo(json_text(report.to_dict()))
        return
    click.echo(
        f"{printable(rule.title)} ({rule.id}) from {_iso(since_ms)} to {_iso(until_ms)}: {report.windows:,} windows"
        f" ({rule.schedule}, each over {rule.lookback_ms / 1000:g} s), {report.alerts:,} alert(s)"
    )
    rows = [(d.day, f"{d.windows:,}", f"{d.matches:,}", f"{d.alerts:,}", f"{d.suppressed:,}") for d in report.days]
    print_columns(("DAY", "WINDOWS", "MATCHES", "ALERTS", "SUPPRESSED"), rows)
    for day in report.days:
        for example in day.examples:
            facts = example.to_dict()
            click.echo(
                f"{facts['window']['until']}  {printable(example.match.title)}  (count {example.match.count},"
                f" dedup key {printable(example.match.dedup_key)})"
            )
            for row in facts["evidence"]:
                click.echo("    " + json_text(row))
    truncated = "; some matches are missing (a day's matches passed the engine's row cap)" if report.truncated else ""
    click.echo(
        f"{report.matches:,} match(es), {report.alerts:,} alert(s), {report.suppressed:,} suppressed;"
        f" {report.queries:,} queries ({report.method}) read {report.rows_scanned:,} rows,"
        f" {report.bytes_scanned:,} bytes of lake files in {report.elapsed_ms / 1000:.1f} s{truncated}",
        err=True,
    )


COMMANDS = (rules,)
