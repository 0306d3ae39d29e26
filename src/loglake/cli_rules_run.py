"""`loglake rules run`, `run-due` and `backtest`: the rules commands that run rules over the data dir's logs
(once over a window, what is due as the server runs it, or window by window over past days)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from loglake.cli_options import (
    data_dir_option,
    json_text,
    option_time,
    print_columns,
    printable,
    shown_json,
    until_ctrl_c,
)
from loglake.cli_rules_folder import (
    RULE_ID,
    find_rule_in,
    print_problems,
    require_rules_folder,
    rules_dir_option,
    rules_settings,
)
from loglake.rules.backtest_limits import EXAMPLES, MAX_EXAMPLES
from loglake.rules.summary import iso_seconds as _iso
from loglake.times import format_duration


@click.command("run")
@click.argument("rule_id", type=RULE_ID)
@click.option(
    "--since", default=None, help="Window start: ISO-8601, epoch ms or an age like 1h (default: the lookback)."
)
@click.option("--until", default=None, help="Window end, excluded, same forms (default: now less the rule's delay).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per match, with its evidence.")
@rules_dir_option
@data_dir_option
def rules_run(
    rule_id: str, since: str | None, until: str | None, as_json: bool, rules_dir: Path | None, data_dir: Path
) -> None:
    """Run a rule once over a window of the data dir's logs and print its matches (no alert is raised)."""
    from loglake.cli_lake import local_lake
    from loglake.rules.run import RuleRunError, run_rule

    now_ms = int(time.time() * 1000)
    times = _given_times(since, until, now_ms)  # before the folder is read: the command line first, as run-due
    settings = rules_settings(data_dir, rules_dir)
    rule = find_rule_in(settings, rule_id)
    since_ms, until_ms = _window(times, until, now_ms, now_ms - rule.delay_ms, rule.lookback_ms)
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
        _echo_match(rule.level.upper(), match, facts["evidence"], span, suppressed)
    truncated = " (more rows than the engine returns: some groups may be missing)" if result.truncated else ""
    click.echo(
        f"{len(result.matches)} match(es) of {printable(rule.title)} from {_iso(since_ms)} to {_iso(until_ms)}; "
        f"{result.rows_scanned:,} row(s) read ({result.bytes_scanned:,} bytes of lake files) in "
        f"{result.elapsed_ms:.0f} ms{truncated}",
        err=True,
    )


@click.command("run-due")
@click.option(
    "--now",
    "as_of",
    default=None,
    help="Run what was due at this earlier time instead: ISO-8601, epoch ms or an age like 2h (default: now).",
)
@rules_dir_option
@data_dir_option
def rules_run_due(as_of: str | None, rules_dir: Path | None, data_dir: Path) -> None:
    """Run what is due once, then exit (for cron): every enabled rule over the windows it has not
    evaluated yet, raising alerts as `loglake serve` does. Exit 1 if a run failed or a file did not load.
    Safe next to a running server on the same data dir: they take turns, and no window runs twice."""
    from loglake.cli_lake import local_runtime

    clock = time.time if as_of is None else _fixed_clock(as_of)
    settings = rules_settings(data_dir, rules_dir)
    folder = require_rules_folder(settings)
    with local_runtime(settings.data_dir, {"rules_dir": str(folder)}, clock=clock) as runtime:
        scheduler = runtime.rules
        scheduler.reload(log_problems=False)
        print_problems(scheduler.folder.problems)
        # On a thread of its own: Ctrl-C stops the rule's query at once (until_ctrl_c), where DuckDB on this
        # thread took it as the query's error (the run a failure, status 1, a traceback) half a minute later.
        report = until_ctrl_c(lambda stop: scheduler.run_round(wait=True, stop=stop))
    for rule, run in report.runs:
        figures = f"{run.matches} match(es), {run.new_alerts} new alert(s)" if run.outcome == "ok" else run.error
        window = f"{_iso(run.since_ms)} to {_iso(run.until_ms)}"
        click.echo(f"{run.outcome:<6} {printable(rule.title)}  {window}: {printable(figures)}")
    skipped = f", {report.skipped} range(s) skipped" if report.skipped else ""
    click.echo(
        f"{len(report.runs) - report.skipped} run(s), {report.failed} failed{skipped},"
        f" {len({p.file for p in scheduler.folder.problems})} file(s) with problems",
        err=True,
    )
    if report.failed or scheduler.folder.problems:
        raise SystemExit(1)


def _given_times(since: str | None, until: str | None, now_ms: int) -> tuple[int | None, int | None]:
    """The times --since and --until give (ISO-8601, epoch ms or ages before now_ms), None for one left out."""
    return (
        None if since is None else option_time(since, "--since", now_ms),
        None if until is None else option_time(until, "--until", now_ms),
    )


def _window(
    given: tuple[int | None, int | None], until: str | None, now_ms: int, default_until_ms: int, default_length_ms: int
) -> tuple[int, int]:
    """The window of the given times (_given_times); without --until it ends at default_until_ms, without
    --since it is default_length_ms long. A window that cannot be is a usage error, as a time that does not read."""
    since_ms, until_ms = given
    until_ms = default_until_ms if until_ms is None else until_ms
    since_ms = until_ms - default_length_ms if since_ms is None else since_ms
    if since_ms >= until_ms:
        raise click.BadParameter(f"must be before --until ({_iso(until_ms)})", param_hint="--since")
    if until_ms > now_ms:  # (a window not over yet: every rule about silence or absence fires in it)
        raise click.BadParameter(
            f"{printable(until or '')} is in the future ({_iso(until_ms)}): the records of a window not over"
            " yet have not arrived; end it at the latest now (leave --until out for the default)",
            param_hint="--until",
        )
    return since_ms, until_ms


def _fixed_clock(text: str) -> Callable[[], float]:
    """A clock stopped at `text`, not later than now: a window evaluated before its end has passed would
    be marked done without the records that arrive after the run."""
    now_ms = int(time.time() * 1000)
    as_of_ms = option_time(text, "--now", now_ms)
    if as_of_ms > now_ms:
        raise click.BadParameter(
            f"{text!r} is in the future: run-due only runs what was due by now", param_hint="--now"
        )
    return lambda: as_of_ms / 1000


NO_TIME_LIMIT_S = 10 * 365 * 86_400.0  # (a query's timeout the watchdog still counts down: ten years)


@click.command("backtest")
@click.argument("rule_id", type=RULE_ID)
@click.option("--since", required=True, help="Start of the history to replay: ISO-8601, epoch ms or an age like 30d.")
@click.option("--until", default=None, help="Its end, excluded, same forms (default: now).")
@click.option(
    "--examples",
    default=EXAMPLES,
    show_default=True,
    type=click.IntRange(0, MAX_EXAMPLES),
    help="Example alerts per day, with their evidence.",
)
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
    data_dir: Path,
) -> None:
    """Replay a rule over the data dir's history window by window (its schedule, lookback, delay,
    threshold, dedup and suppressions) and print the alerts it would have raised per day, with examples."""
    from loglake.cli_lake import local_lake
    from loglake.rules.backtest import Day, PeriodError, backtest, refuse_past_retention
    from loglake.rules.run import RuleRunError
    from loglake.rules.state import failed_until

    now_ms = int(time.time() * 1000)
    times = _given_times(since, until, now_ms)
    settings = rules_settings(data_dir, rules_dir)
    rule = find_rule_in(settings, rule_id)
    since_ms, until_ms = _window(times, until, now_ms, now_ms, rule.lookback_ms)  # (--since is required)
    try:
        refuse_past_retention(since_ms, now_ms, settings.retention_days)
    except PeriodError as e:
        raise click.BadParameter(str(e).removeprefix("since "), param_hint="--since") from None
    started = time.perf_counter()

    def progress(day: Day, done: int, total: int) -> None:
        click.echo(
            f"backtest: {day.day} done ({done}/{total} days, {day.alerts} alert(s),"
            f" {time.perf_counter() - started:.1f} s)",
            err=True,
        )

    # The command has no time limit (README; Ctrl-C stops it): the server's query timeout is for requests.
    with local_lake(settings.data_dir, {"query_timeout_seconds": NO_TIME_LIMIT_S}) as lake:
        try:
            report = until_ctrl_c(
                lambda stop: backtest(
                    rule,
                    lake.engine,
                    since_ms,
                    until_ms,
                    examples=examples,
                    progress=progress,
                    stop=stop,
                    failed_until_ms=failed_until(settings.data_dir, rule.id),
                )
            )
        except RuleRunError as e:
            raise click.ClickException(str(e)) from None
    if as_json:
        click.echo(json_text(report.to_dict()))
        return
    click.echo(
        f"{printable(rule.title)} ({rule.id}) from {_iso(since_ms)} to {_iso(until_ms)}: {report.windows:,} windows"
        f" ({rule.schedule}, each over {format_duration(rule.lookback_ms)}), {report.alerts:,} alert(s)"
    )
    rows = [(d.day, f"{d.windows:,}", f"{d.matches:,}", f"{d.alerts:,}", f"{d.suppressed:,}") for d in report.days]
    print_columns(("DAY", "WINDOWS", "MATCHES", "ALERTS", "SUPPRESSED"), rows)
    for day in report.days:
        for example in day.examples:
            facts = example.to_dict()
            _echo_match(facts["window"]["until"], example.match, facts["evidence"])
    truncated = "; some matches are missing (a day's matches passed the engine's row cap)" if report.truncated else ""
    click.echo(
        f"{report.matches:,} match(es), {report.alerts:,} alert(s), {report.suppressed:,} suppressed;"
        f" {report.queries:,} queries ({report.method}) read {report.rows_scanned:,} rows,"
        f" {report.bytes_scanned:,} bytes of lake files in {report.elapsed_ms / 1000:.1f} s{truncated}",
        err=True,
    )


def _echo_match(head: str, match: Any, evidence: list[Any], span: str = "", suppressed: str = "") -> None:
    """A match as `run` and `backtest` print it: its title, count and dedup key after `head` on one line, then
    each evidence row, indented."""
    click.echo(
        f"{head}  {printable(match.title)}  (count {match.count}{span},"
        f" dedup key {printable(match.dedup_key)}{suppressed})"
    )
    for row in evidence:
        click.echo("    " + shown_json(row))


RUN_COMMANDS = (rules_run, rules_run_due, rules_backtest)
