"""A round of due rules against a store of window claims: how the AWS detection function runs rules
(alerts/dynamodb.py keeps the claims and alerts in DynamoDB; the local scheduler keeps them in
alerts.db, rules/scheduler.py).

Each enabled rule's due windows (scheduler.due_windows: contiguous, catch-up bounded), oldest first.
A window is claimed before its SQL runs, its alerts (and their deliveries) are written, and only
then is the window moved on by the claim's holder. A run that fails (whatever stopped it, as
locally) lets the window go and counts a failure (`failing_after` in a row raise the rule's own
alert, resolved by its next good run, as locally); the window is tried again at the rule's next
firing, not by every round before it (the function may run more often than the rule). A run whose
claim ran out before it finished is `superseded` (the run that took the window over finds the same
alerts already written, so nothing is made twice). The range the catch-up bound left out is named (a
`skipped` run) by the run that moves the window past it. A round stops starting windows when
`time_left()` says so (a function's timeout).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from loglake.rules.model import Rule
from loglake.rules.run import RunResult, run_failure
from loglake.rules.scheduler import CatchUp, Window, due_windows
from loglake.rules.state import RuleState


class WindowStore(Protocol):
    """What a round needs of the store (alerts/dynamodb.py's DynamoDBDetections)."""

    def window_state(self, rule_id: str) -> RuleState: ...

    def claim_window(
        self, rule_id: str, expected_end_ms: int | None, since_ms: int, now_ms: int, lease_ms: int
    ) -> Any | None: ...

    def apply_matches(self, rule: Rule, result: RunResult, now_ms: int) -> tuple[int, list[dict[str, str]]]: ...

    def advance(self, claim: Any, until_ms: int) -> bool: ...

    def fail(self, claim: Any, now_ms: int) -> int | None: ...

    def rule_failing(
        self, rule: Rule, error: str, failures: int, since_ms: int, until_ms: int, now_ms: int
    ) -> list[dict[str, str]]: ...

    def rule_recovered(self, rule: Rule, now_ms: int, skipped: Window | None) -> list[dict[str, str]]: ...


# Runs a rule over [since_ms, until_ms) at now_ms, its fresh rows from the previous window's end (None: the
# whole window), as aws/athena_rules.py's run_rule_on_athena bound to its engine does.
RuleRunner = Callable[[Rule, int, int, int, int | None], RunResult]


@dataclass(frozen=True)
class WindowRun:
    rule_id: str
    since_ms: int
    until_ms: int
    outcome: str  # ok, error, superseded, or skipped (a range left out by the catch-up bound)
    matches: int = 0
    new_alerts: int = 0
    deliveries: list[dict[str, str]] = field(default_factory=list)  # the deliveries its alerts made (id, ...)
    error: str | None = None
    failures: int | None = None  # runs in a row that failed, after an error


def run_due(
    rules: list[Rule],
    store: WindowStore,
    run: RuleRunner,
    now_ms: int,
    *,
    lease_ms: int,
    catch_up: CatchUp | None = None,
    time_left: Callable[[], bool] = lambda: True,
    failing_after: int = 3,
) -> Iterator[WindowRun]:
    """Every enabled rule's due windows at `now_ms`, each claimed for `lease_ms` (see the module's
    notes), each run as it ends (its deliveries may be queued at once)."""
    for rule in rules:
        if not rule.enabled:
            continue
        found = store.window_state(rule.id)
        previous = found.window_end_ms
        due = due_windows(rule, previous, now_ms, catch_up or CatchUp(), found.failed_ms)
        skipped, recovered = due.skipped, False
        for window in due.windows:
            if not time_left():
                return
            claim = store.claim_window(rule.id, previous, window.since_ms, now_ms, lease_ms)
            if claim is None:  # another invocation holds or moved the window
                break
            try:
                result = run(rule, window.since_ms, window.until_ms, now_ms, previous)
            except Exception as caught:  # (Athena's API failing past botocore's retries stopped the round)
                e = run_failure(rule, caught)
                failures = store.fail(claim, now_ms)
                raised = []
                if failures is not None and failures >= failing_after:
                    raised = store.rule_failing(rule, str(e), failures, window.since_ms, window.until_ms, now_ms)
                yield WindowRun(
                    rule.id,
                    window.since_ms,
                    window.until_ms,
                    "error",
                    deliveries=raised,
                    error=str(e),
                    failures=failures,
                )
                break
            made, deliveries = store.apply_matches(rule, result, now_ms)
            moved = store.advance(claim, window.until_ms)
            if moved and not recovered:
                # (once a round: its first good run resolves the alert of the failures before it, if any)
                deliveries += store.rule_recovered(rule, now_ms, skipped)
                recovered = True
            if moved and skipped is not None:
                # Named once, by the run that moved the window past it, as locally: not by each round that failed
                # (or found the window held) while the range stays left out.
                yield WindowRun(rule.id, skipped.since_ms, skipped.until_ms, "skipped", error=due.skipped_why)
                skipped = None
            yield WindowRun(
                rule.id,
                window.since_ms,
                window.until_ms,
                "ok" if moved else "superseded",
                len(result.matches),
                made,
                deliveries,
            )
            if not moved:
                break
            previous = window.until_ms
