"""Running the rules folder on schedule: each enabled rule over contiguous windows of the `logs` view
(hot store and lake), every window once, its alerts committed with the window.

Windows. A rule fires at its schedule's times (schedule.py); the window of a firing at `t` ends at
`t - delay` (records may arrive up to `delay` late) and starts where the rule's previous window ended,
so windows are contiguous. The range a run reads reaches back `lookback` from the window's end (or
further, to the previous end, when the schedule left a longer gap). A rule seen for the first time
evaluates only its latest window.

Catch-up. After downtime a rule evaluates the windows it missed, one by one, at most
`CatchUp.windows` of them and none that ended more than `CatchUp.max_age_ms` ago; the older ones are
skipped, and the range left out is recorded as a `skipped` run (rules list, the run records). So is a
window whose runs kept failing until it was past the bound (its records were never checked): its record
says so (skip_reason), as the server was not down.

Once. A round holds `rules.lock` in the data dir (a server and a cron `loglake rules run-due` take
turns; the lock goes with a killed process). A run is recorded as `running` before its SQL starts;
then ONE write transaction moves the window, finishes the run record, and makes the alerts and their
events, and only if the window still ends where the run found it (state.py: a compare-and-set). A
process killed during a run left the window where it was: the next round evaluates it, once. A run
that fails leaves the window too and counts a failure; the window is tried again at the rule's next
firing (not at the next round: the server looks for due rules every few seconds, and a 1m rule's
failing SQL would run, and be recorded, a dozen times a minute). `failing_after` failures in a row
raise the rule's own alert, resolved by its next good run.

Together. A round runs the rules' next windows together (rounds.py: the rules that read little share
one scan of the span they read), one window per rule at a time; each rule's claim, outcome and
alerts stay its own (see run_round).
"""

from __future__ import annotations

import collections
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import astuple, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from loglake.alerts.apply import (
    apply_matches,
    resolve_cleared,
    resolve_failing_of_stopped_rules,
    rule_failing,
    rule_recovered,
)
from loglake.alerts.db import ALERTS_DB
from loglake.lake.query import QueryEngine
from loglake.lake.repeated_failures import RepeatedFailures
from loglake.lake.stop import Stop
from loglake.locks import exclusive_lock
from loglake.rules import rounds, state
from loglake.rules.files import ROUTING_FILE
from loglake.rules.model import Problem, Rule, warnings_of
from loglake.rules.run import RuleRunError
from loglake.sqlitedb import write_transaction
from loglake.times import format_datetime

log = logging.getLogger("loglake.rules")
LOCK_FILE = "rules.lock"
POLL_SECONDS = 5.0  # how often the server looks for changed rule files (and due rules, between firings)


@dataclass(frozen=True)
class CatchUp:
    """How much a rule catches up after downtime: the most windows, and the oldest window end."""

    windows: int = 24
    max_age_ms: int = 24 * 3_600_000
    # After the server starts, how long the rules that ran before wait to run again: shippers send what they held
    # while it was down once it answers, after their retry backoff (Fluent Bit, Filebeat, Vector: seconds to a
    # minute), and a window evaluated before that would never see those records.
    wait_after_start_ms: int = 0


@dataclass(frozen=True)
class Window:
    since_ms: int  # what the run reads: from here...
    until_ms: int  # ...to here (exclusive), the window's end


@dataclass(frozen=True)
class Due:
    windows: list[Window]
    skipped: Window | None = None  # the range left out by the catch-up bound
    skipped_why: str = ""  # why, as its record says (skip_reason)


def due_windows(
    rule: Rule, previous_end_ms: int | None, now_ms: int, catch_up: CatchUp, failed_ms: int | None = None
) -> Due:
    """The windows of `rule` due at `now_ms`, oldest first, after a window that ended at
    `previous_end_ms` (None: the rule never ran; only its latest window is due). `failed_ms`: when the
    last run of the next window failed (None: it did not); none is due before the rule's next firing
    after that."""
    if failed_ms is not None and rule.schedule.next_after(failed_ms) > now_ms:
        return Due([])
    delay, lookback = rule.delay_ms, rule.lookback_ms
    first_run = previous_end_ms is None
    after = now_ms - lookback if first_run else previous_end_ms + delay
    # A firing at t ends its window at t - delay: firings before `oldest` end windows past the age bound.
    oldest = now_ms - catch_up.max_age_ms + delay
    ends: collections.deque[int] = collections.deque(maxlen=1 if first_run else catch_up.windows)
    fire = rule.schedule.next_after(max(after, oldest - 1))
    while fire <= now_ms:
        ends.append(fire - delay)
        fire = rule.schedule.next_after(fire)
    if not ends:
        return Due([])
    skipped, why = None, ""
    last = previous_end_ms
    if not first_run and ends[0] != rule.schedule.next_after(after) - delay:
        start = ends[0] - lookback
        if start > previous_end_ms:
            skipped, why = Window(previous_end_ms, start), skip_reason(catch_up, failed_ms)
        last = None  # the bound cut the chain: the first kept window reads its lookback only
    windows = []
    for end in ends:
        since = end - lookback if last is None else min(last, end - lookback)
        windows.append(Window(since, end))
        last = end
    return Due(windows, skipped, why)


def skip_reason(catch_up: CatchUp, failed_ms: int | None) -> str:
    """Why a range was left out by the catch-up bound: the rule's runs of it failed (the last at `failed_ms`)
    until it was past the bound, or (None) the rule did not run that long."""
    hours = catch_up.max_age_ms / 3_600_000
    bound = f"the catch-up bound (at most {catch_up.windows} windows, none older than {hours:g} h)"
    if failed_ms is not None:
        return (
            f"not evaluated: the rule's runs of this range failed (the last at {format_datetime(failed_ms)}) until it"
            f" was past {bound}; these records were not checked"
        )
    return f"not evaluated: down longer than {bound}"


class RuleObserver(Protocol):
    """What the scheduler tells its edge (the server: metrics and its log)."""

    def on_rule_run(self, rule: Rule, record: state.RunRecord) -> None: ...

    def on_rules_loaded(self, rules: list[Rule], problems: list[Problem]) -> None: ...


class RuleFolder:
    """A rules folder, loaded again when its files change (names, sizes or modification times); its
    problems are those of its rule files and of its alerting.yml (alerts/routing.py).

    The loader (and pySigma, ~10 MiB) is imported once there is a folder: a server without rules
    does without."""

    def __init__(self, path: Path, required: bool = True) -> None:
        self.path = path
        self.required = required  # a missing folder is a problem (else: no rules)
        self.rules: list[Rule] = []
        self.problems: list[Problem] = []
        self._signature: tuple | None = None

    def reload(self) -> bool:
        """Load the folder if its files changed since the last load; True if it did."""
        signature = self._signature_now()
        if signature == self._signature:
            return False
        rules, problems = [], []
        if self.path.exists() or self.required:
            from loglake.alerts.routing import folder_routing, problems_in, with_destination_warnings
            from loglake.rules.loader import load_rules

            loaded = load_rules(self.path)
            routing = folder_routing(self.path)  # (read once: its problems, and the rules' destinations)
            rules = with_destination_warnings(loaded.rules, routing)
            problems = [*loaded.problems, *problems_in(routing)]
        # only once loaded: a load that fails keeps the rules running and is tried again (not an empty folder)
        self.rules, self.problems, self._signature = rules, problems, signature
        return True

    def _signature_now(self) -> tuple:
        if not self.path.exists():
            return ()
        from loglake.rules.loader import rule_files

        found = []
        for file in [*rule_files(self.path), self.path / ROUTING_FILE]:
            try:
                stat = file.stat()
            except OSError:  # removed while looking, or no alerting.yml
                continue
            found.append((str(file), stat.st_mtime_ns, stat.st_size))
        return tuple(found)


@dataclass
class _Chain:
    """A rule's windows due in a round, as far as it got: `previous` is where its last window ended."""

    rule: Rule
    previous: int | None
    due: Due
    going: bool = True  # False once a window failed or another process took the rule's windows


@dataclass
class RoundReport:
    runs: list[tuple[Rule, state.RunRecord]] = field(default_factory=list)
    busy: bool = False  # another process held the rules lock: nothing ran
    shared: int = 0  # runs that shared a scan with others (rounds.py)

    @property
    def failed(self) -> int:
        return sum(record.outcome == "error" for _, record in self.runs)

    @property
    def skipped(self) -> int:
        """Of `runs`, the ranges the catch-up bound left out (no run: their records)."""
        return sum(record.outcome == "skipped" for _, record in self.runs)


class RuleScheduler:
    """Runs the rules of a folder over the data dir's logs. `run_round()` does what is due now (tests
    call it with their own clock; `loglake rules run-due` calls it once); `start()` runs rounds on a
    thread of its own, so the rules' SQL never runs on the server's event loop."""

    def __init__(
        self,
        folder: RuleFolder,
        engine: QueryEngine,
        data_dir: Path,
        *,
        clock: Callable[[], float] = time.time,
        catch_up: CatchUp | None = None,
        failing_after: int = 3,
        observer: RuleObserver | None = None,
    ) -> None:
        self.folder = folder
        self.engine = engine
        self.data_dir = Path(data_dir)
        self.clock = clock
        self.catch_up = catch_up or CatchUp()
        self.failing_after = failing_after
        self.observer = observer
        self.last_round_ms: int | None = None  # when the server's last round ended
        self.last_error: str | None = None  # why it failed, if it did
        self.resumes_ms: int | None = None  # until then, the rules that ran before the start wait (start())
        self._held: dict[str, bool] = {}  # while they wait: which rules had run before (rule id: held)
        self._conn: sqlite3.Connection | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="loglake-rules", daemon=True)

    def reload(self, *, log_problems: bool = True) -> bool:
        """Read the rules folder again if it changed (True then); `log_problems`: log each file that did not
        load (the server's log; `rules run-due` prints them itself)."""
        changed = self.folder.reload()
        if changed:
            for problem in self.folder.problems if log_problems else ():
                log.warning("not loaded: %s", problem)
            if self.observer is not None:
                self.observer.on_rules_loaded(self.folder.rules, self.folder.problems)
            # (a folder gone is a problem of its own: its rules' alerts stay; a data dir without alerts.db has none)
            if self.folder.path.exists() and (self._conn is not None or (self.data_dir / ALERTS_DB).exists()):
                unloadable = {problem.file for problem in self.folder.problems}
                with write_transaction(self._db()) as conn:
                    resolve_failing_of_stopped_rules(conn, self.folder.rules, unloadable, self._now())
        return changed

    def start(self) -> None:
        self.wait_for_backlogs()
        self._thread.start()

    def wait_for_backlogs(self) -> None:
        """From now, the rules that ran before wait CatchUp.wait_after_start_ms before they run again (the server
        starts: what shippers held while it was down comes first). `loglake rules run-due` runs at once."""
        if self.catch_up.wait_after_start_ms > 0:
            self.resumes_ms = self._now() + self.catch_up.wait_after_start_ms

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def run_round(self, wait: bool = False, stop: Stop | None = None) -> RoundReport:
        """Every enabled rule's due windows. Without `wait`, a round that finds the rules lock taken
        does nothing (`busy`). Told to stop (`stop`: Ctrl-C), Stopped: the windows being run stay due, as a
        killed process leaves them.

        The rules' next windows are run together (rounds.run_round: one scan for those that read
        little), in steps: each step claims the next window of every rule that has one, runs them,
        and commits each rule's outcome in its own transaction, so the guarantees stay per rule (a
        rule's windows one after the other, each claimed before it runs and committed only if its
        window has not moved; a failing rule stops its own catch-up only). Catching up, a step holds
        one window of each rule: a rule's next window cannot be claimed before its previous one is
        committed (the compare-and-set), so two windows of a rule never share a scan."""
        report = RoundReport()
        if not self.folder.rules:  # nothing to run: no alerts.db in data dirs that have no rules
            return report
        with exclusive_lock(self.data_dir / LOCK_FILE, wait=wait, stop=stop) as holding:
            if not holding:
                report.busy = True
                return report
            conn = self._db()
            with write_transaction(conn):
                state.interrupt_unfinished(conn, self._now())
            now = self._now()
            waiting = self.resumes_ms is not None and now < self.resumes_ms
            if not waiting:
                self._held.clear()
            chains = []
            for rule in self.folder.rules:
                if rule.enabled:
                    found = state.state_of(conn, rule.id)
                    # (a rule new to the data dir has no backlog to wait for: it starts now, and goes on)
                    if waiting and self._held.setdefault(rule.id, found.window_end_ms is not None):
                        continue
                    due = due_windows(rule, found.window_end_ms, now, self.catch_up, found.failed_ms)
                    chains.append(_Chain(rule, found.window_end_ms, due))
            chains = [c for c in chains if c.due.windows]
            while chains and not self._stop.is_set():  # a stopping server leaves the windows due
                self._run_step(conn, chains, report, stop)
                chains = [c for c in chains if c.going and c.due.windows]
        return report

    def _run_step(
        self, conn: sqlite3.Connection, chains: list[_Chain], report: RoundReport, stop: Stop | None = None
    ) -> None:
        """The next window of each chain: claimed, run together, each rule's outcome committed (and
        added to the report)."""
        started = self._now()
        claimed = []
        with write_transaction(conn):
            for chain in chains:
                window = chain.due.windows[0]
                run_id = state.claim(conn, chain.rule.id, chain.previous, window.since_ms, window.until_ms, started)
                if run_id is None:  # another process moved the window before this one started
                    chain.going = False
                else:
                    claimed.append((chain, run_id))
        found = rounds.run_round(
            [rounds.Run(chain.rule, *astuple(chain.due.windows[0]), chain.previous) for chain, _ in claimed],
            self.engine,
            started,
            stop,
        )
        report.shared += found.shared_rules
        for chain, run_id in claimed:
            # (a range the catch-up bound left out comes first, as its record: told as the runs are, or it showed only
            # in `rules show`, not in run-due's lines or the server's log)
            *skipped, record = self._commit(conn, chain, run_id, started, found)
            for told in (*skipped, record):
                report.runs.append((chain.rule, told))
                if self.observer is not None:
                    self.observer.on_rule_run(chain.rule, told)
            if record.outcome == "ok":
                chain.previous, chain.due = record.until_ms, Due(chain.due.windows[1:])
            else:  # an error: tried again next time; superseded: the other process goes on
                chain.going = False

    def _commit(
        self, conn: sqlite3.Connection, chain: _Chain, run_id: int, started: int, found: rounds.Round
    ) -> tuple[state.RunRecord, ...]:
        """One transaction: the run's outcome, the window moved (or a failure counted), the alerts; the run's record,
        after the record of the range the window moved past, if it did."""
        rule, window, skipped = chain.rule, chain.due.windows[0], chain.due.skipped
        previous = window.since_ms if chain.previous is None else chain.previous
        result = found.results[rule.id]
        error = str(result) if isinstance(result, RuleRunError) else None
        now = self._now()
        record = state.RunRecord(
            run_id,
            rule.id,
            "ok" if error is None else "error",
            window.since_ms,
            window.until_ms,
            started,
            now,
            found.durations_ms[rule.id],
            error=error,
        )
        with write_transaction(conn):
            if isinstance(result, RuleRunError):
                failures = state.count_failure(conn, rule.id, previous, now)
                if failures is None:
                    return (self._superseded(conn, record),)
                if failures >= self.failing_after:
                    rule_failing(conn, rule, str(error), failures, window.since_ms, window.until_ms, now)
                return (state.finish(conn, record),)
            if not state.advance(conn, rule.id, previous, window.until_ms):
                return (self._superseded(conn, record),)
            left_out: tuple[state.RunRecord, ...] = ()
            if skipped is not None:
                why = chain.due.skipped_why
                left_out = (state.record_skipped(conn, rule.id, skipped.since_ms, skipped.until_ms, now, why),)
            new_alerts = apply_matches(conn, rule, result, now)
            resolve_cleared(conn, rule, window.until_ms, now)
            rule_recovered(conn, rule, now, skipped)
            record = replace(
                record,
                rows_scanned=result.rows_scanned,
                bytes_scanned=result.bytes_scanned,
                files_scanned=result.files_scanned,
                matches=len(result.matches),
                new_alerts=new_alerts,
            )
            return (*left_out, state.finish(conn, record))

    def _superseded(self, conn: sqlite3.Connection, record: state.RunRecord) -> state.RunRecord:
        return state.finish(conn, replace(record, outcome="superseded", error="another process evaluated this window"))

    def status(self) -> dict[str, Any]:
        """What /healthz shows of the rules (with a read key: it names files and errors)."""
        return {
            "folder": str(self.folder.path),
            "rules": len(self.folder.rules),
            "problems": [str(p) for p in self.folder.problems],
            "warnings": warnings_of(self.folder.rules),
            "last_round": None if self.last_round_ms is None else format_datetime(self.last_round_ms),
            "resumes": self._resumes(),
            "error": self.last_error,
        }

    def _resumes(self) -> str | None:
        """When the rules that ran before the start run again, while they wait for shippers' backlogs."""
        if self.resumes_ms is None or self._now() >= self.resumes_ms:
            return None
        return format_datetime(self.resumes_ms)

    def next_due_ms(self) -> int | None:
        """When the earliest enabled rule fires next (None: no rule), or the waiting rules resume."""
        now = self._now()
        times = [rule.schedule.next_after(now) for rule in self.folder.rules if rule.enabled]
        if times and self.resumes_ms is not None and now < self.resumes_ms:
            times.append(self.resumes_ms)
        return min(times) if times else None

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = state.open_state(self.data_dir)
        return self._conn

    def _now(self) -> int:
        return int(self.clock() * 1000)

    def _loop(self) -> None:
        failures = RepeatedFailures(log, "a round of the rules")
        while not self._stop.is_set():
            try:
                self.reload()
                self.run_round()
                self.last_error = None
                failures.succeeded()
            except Exception as e:  # the schedule goes on; the next round retries
                failures.failed(e, POLL_SECONDS)
                self.last_error = f"{type(e).__name__}: {e}"
            self.last_round_ms = self._now()
            due = self.next_due_ms()
            wait = POLL_SECONDS if due is None else (due - self._now()) / 1000
            self._stop.wait(min(max(wait, 0.05), POLL_SECONDS))
