"""The delivery worker: routes new alert events into the outbox and sends what is due, in the background
of `loglake serve`.

One thread routes and dispatches; each destination sends on threads of its own, at most its
`concurrency` at once, each attempt bounded by its `timeout`, so a slow or failing destination only
ever holds up itself. A failed attempt is due again after an exponential pause with full jitter (the
receiver's Retry-After is a floor, up to the longest pause), and after the destination's last attempt it is
dead-lettered.
Only the process holding `<data>/alert-delivery.lock` delivers, so after a crash the next one resends
what was under way, with the same idempotency key.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from loglake.alerts.db import ALERTS_DB
from loglake.alerts.destinations.base import DeliveryFailed, DestinationConfig, Notice, SendContext
from loglake.alerts.outbox import ROUTE_BATCH, Claimed, DeadLetters, DeliveryRow, Outbox, RetryRefused, Sent
from loglake.alerts.redact import Redactor
from loglake.alerts.routing import Routing, RoutingFile
from loglake.alerts.secrets import SecretError, Secrets, scrub
from loglake.lake.repeated_failures import RepeatedFailures
from loglake.locks import exclusive_lock
from loglake.retry import Backoff
from loglake.times import parse_duration

log = logging.getLogger("loglake.alerts")

if TYPE_CHECKING:
    import httpx

LOCK_FILE = "alert-delivery.lock"
POLL_SECONDS = 1.0
LOCK_RETRY_SECONDS = 10.0  # how soon a new alert event is seen (the engine commits it; nothing signals us)
BACKOFF = Backoff(first=2.0, cap=600.0)  # pauses between attempts: up to 2 s, 4 s, ... then up to 10 min
KEEP_FINISHED_MS = 30 * 86_400_000  # sent and dead-lettered deliveries stay visible this long
PRUNE_EVERY_MS = 3_600_000
MAX_SEND_THREADS = 32  # per destination; its `concurrency` admits fewer


@dataclass
class DestinationCounts:
    """What this process did per destination, for /metrics."""

    sent: int = 0
    failed_attempts: int = 0
    dead_lettered: int = 0


def say_failed(row: DeliveryRow, error: str, attempts: int, retry_in_s: float | None) -> None:
    """A failed attempt of a delivery (of `attempts` at most) in the server's log, as a warning: retried in
    `retry_in_s`, or (None) dead-lettered. Not only in the outbox and the metrics: an operator reading the log
    sees which destination fails and why."""
    attempt = f"the {row.kind} of alert {row.alert_id} to {row.destination!r} (delivery {row.id})"
    if retry_in_s is None:
        log.warning(
            "%s dead-lettered after %d attempt(s): %s; once the destination takes it: loglake alerts retry %s",
            attempt, row.attempts + 1, error, row.id,
        )  # fmt: skip
    else:
        log.warning(
            "%s failed (attempt %d of %d): %s; retried in %.0f s", attempt, row.attempts + 1, attempts, error,
            retry_in_s,
        )  # fmt: skip


class AlertDelivery:
    """Delivers `<data>/alerts.db`'s alert events to the destinations of `<rules-dir>/alerting.yml`.
    Nothing is opened until `start` (or the first read of `outbox`)."""

    def __init__(
        self,
        data_dir: Path,
        rules_dir: Path,
        *,
        clock: Callable[[], float] = time.time,
        backoff: Backoff = BACKOFF,
        secrets: Secrets | None = None,
        poll_seconds: float = POLL_SECONDS,
        public_url: str = "",
    ) -> None:
        self.data_dir = Path(data_dir)
        self.public_url = public_url  # where people open the web UI: notices link to the alert's page
        self.routing_file = RoutingFile(rules_dir)
        self.clock = clock
        self.backoff = backoff
        self.secrets = secrets or Secrets()
        self.poll_seconds = poll_seconds
        self.counts: dict[str, DestinationCounts] = {}
        self.last_error: str | None = None  # of the worker loop itself (the database), not of a send
        self._in_flight: dict[str, int] = {}
        self._executors: dict[str, ThreadPoolExecutor] = {}
        self._clients: dict[str, tuple[DestinationConfig, httpx.Client]] = {}
        self._retired_clients: list[httpx.Client] = []
        self._state_lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._routed_with: Routing | None = None
        self._pruned_ms = 0
        self._unrecorded: list[DeliveryRow] = []  # attempts whose outcome the outbox could not take (_attempt)

    @cached_property
    def outbox(self) -> Outbox:
        return Outbox(self.data_dir)

    # -- the background thread --------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="loglake-delivery", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop routing and dispatching, let attempts under way finish (each within its timeout), close."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
        for executor in self._executors.values():
            executor.shutdown(wait=True, cancel_futures=True)
        for _, client in self._clients.values():
            client.close()
        for client in self._retired_clients:
            client.close()
        if "outbox" in self.__dict__:
            self.outbox.close()

    def wake(self) -> None:
        """Look for new events and due deliveries now rather than at the next poll."""
        self._wake.set()

    def _run(self) -> None:
        while not self._stopping.is_set():
            with exclusive_lock(self.data_dir / LOCK_FILE, wait=False) as holding:
                if holding:
                    self._deliver()
                    return
            # Another process on this data dir delivers (only it may resend what it has under way):
            # take over when it stops.
            self.last_error = f"another process holds {LOCK_FILE} and delivers this data dir's alerts"
            self._wake.wait(LOCK_RETRY_SECONDS)
            self._wake.clear()

    def _deliver(self) -> None:
        recovered = False
        # Said in the log too, once and not at every round: while it fails no alert reaches any destination, and
        # only /healthz and GET /alerts/deliveries (worker_error) said why.
        failures = RepeatedFailures(log, "alert delivery")
        while not self._stopping.is_set():
            try:
                if not recovered:
                    self.outbox.recover(self._now_ms())
                    recovered = True
                wait = self.step()
                self.last_error = None
                failures.succeeded()
            except Exception as e:  # the database is locked or full: try again next round
                failures.failed(e, self.poll_seconds)
                self.last_error = f"{type(e).__name__}: {e}"
                wait = self.poll_seconds
            self._wake.wait(wait)
            self._wake.clear()

    # -- one round --------------------------------------------------------------------------------

    def step(self) -> float:
        """Route new events, then start the due attempts each destination has room for. Returns how
        long the next round may wait (seconds). Call `recover` on the outbox once before the first."""
        now_ms = self._now_ms()
        self._release_unrecorded(now_ms)
        routing = self.routing_file.current()
        if routing is None:  # alerting.yml has problems and no good version was read: keep everything
            return self.poll_seconds
        changed = routing is not self._routed_with
        # No file at all (or one defining no destination): alerts are kept and sent nowhere until a file routes them,
        # so what waits waits too, rather than dead-lettered as to destinations "not defined" in a file not there.
        routes_nowhere = not routing.destinations
        if changed:
            self._routed_with = routing
        # At every round, not only when the file changed: another process (`loglake alerts retry --data-dir` reading
        # another alerting.yml) may make one pending, which no round would claim and every round would find due.
        if not routes_nowhere:
            self.outbox.dead_letter_unconfigured(routing, now_ms)
        while self.outbox.route(routing, now_ms) == ROUTE_BATCH:
            pass
        if routes_nowhere:  # (deliveries due that no destination can take are no reason to come back at once)
            return self.poll_seconds
        if changed:  # (after the events waiting were routed: what is left are alerts routed before it changed)
            self.outbox.tell_open_alerts(routing, now_ms)
        due = self.outbox.next_due_ms()
        if due is not None and due <= now_ms:
            for name, config in routing.destinations.items():
                with self._state_lock:
                    room = config.concurrency - self._in_flight.get(name, 0)
                for claimed in self.outbox.claim(name, room, now_ms):
                    self._submit(name, config, claimed)
        if now_ms - self._pruned_ms >= PRUNE_EVERY_MS:
            self._pruned_ms = now_ms
            self.outbox.prune(now_ms - KEEP_FINISHED_MS)
        # A destination with all its attempts under way cannot take its due deliveries before one ends, which wakes
        # this thread: counting them would make the next round start at once, again and again (a busy loop on the
        # database for as long as a slow receiver takes).
        with self._state_lock:
            busy = [n for n, c in routing.destinations.items() if self._in_flight.get(n, 0) >= c.concurrency]
        due = self.outbox.next_due_ms(busy)
        if due is None:
            return self.poll_seconds
        return min(self.poll_seconds, max(0.0, (due - self._now_ms()) / 1000))

    def waiting(self) -> dict[str, int]:
        """Deliveries waiting per destination; none before the data dir has a detections database."""
        if "outbox" not in self.__dict__ and not (self.data_dir / ALERTS_DB).exists():
            return {}
        return self.outbox.waiting_by_destination()

    def dead(self) -> dict[str, DeadLetters]:
        """Dead-lettered deliveries per destination, from the database (so they outlive a restart)."""
        if "outbox" not in self.__dict__ and not (self.data_dir / ALERTS_DB).exists():
            return {}
        return self.outbox.dead_by_destination()

    def retry(self, delivery_id: str) -> DeliveryRow:
        """Send a dead-lettered delivery again through this worker, its attempts reset (Outbox.retry)."""
        routing = self.routing_file.current()
        if routing is None:
            raise RetryRefused("alerting.yml has problems and no good version was read; fix it first")
        row = self.outbox.retry(delivery_id, routing.destinations, self._now_ms())
        self.wake()
        return row

    def idle(self) -> bool:
        """No attempt under way (tests wait for this between rounds)."""
        with self._state_lock:
            return not any(self._in_flight.values())

    def _submit(self, name: str, config: DestinationConfig, claimed: Claimed) -> None:
        with self._state_lock:
            self._in_flight[name] = self._in_flight.get(name, 0) + 1
            executor = self._executors.get(name)
            if executor is None:
                executor = self._executors[name] = ThreadPoolExecutor(
                    max_workers=MAX_SEND_THREADS, thread_name_prefix=f"loglake-send-{name}"
                )
        executor.submit(self._attempt, name, config, claimed)

    def _attempt(self, name: str, config: DestinationConfig, claimed: Claimed) -> None:
        try:
            self._send_and_record(name, config, claimed)
        except Exception as e:  # the outbox could not take the outcome (its database locked or full): the delivery
            # stayed `sending`, none the wiser until a restart; it is made due again once the database takes it
            self.last_error = f"{type(e).__name__}: {e}"
            log.warning(
                "the outcome of delivery %s to %s could not be recorded (%s); it is sent again, with its idempotency"
                " key, once the alerts database takes writes",
                claimed.row.id,
                name,
                self.last_error,
            )
            with self._state_lock:
                self._unrecorded.append(claimed.row)
        finally:
            with self._state_lock:
                self._in_flight[name] -= 1
            self._wake.set()

    def _send_and_record(self, name: str, config: DestinationConfig, claimed: Claimed) -> None:
        counts = self.counts.setdefault(name, DestinationCounts())
        try:
            sent = send_claimed(
                name, config, claimed, self.secrets, lambda: self._client(name, config), self.clock, self.public_url
            )
        except DeliveryFailed as failure:
            self._failed(config, claimed, failure, str(failure), counts)
        else:
            self.outbox.sent(claimed.row, self._now_ms(), sent)
            counts.sent += 1
            if sent.warning:
                row = claimed.row
                log.warning(
                    "the %s of alert %s to %r (delivery %s): %s", row.kind, row.alert_id, name, row.id, sent.warning
                )

    def _release_unrecorded(self, now_ms: int) -> None:
        """The attempts whose outcome could not be recorded, due again after a pause (one that fails for good
        would otherwise be sent at every round); those the database still refuses wait for the next round."""
        with self._state_lock:
            rows, self._unrecorded = self._unrecorded, []
        for index, row in enumerate(rows):
            try:
                self.outbox.release(row, now_ms + int(self.backoff.pause(row.attempts) * 1000), now_ms)
            except Exception:
                with self._state_lock:
                    self._unrecorded.extend(rows[index:])
                raise

    def _failed(
        self,
        config: DestinationConfig,
        claimed: Claimed,
        failure: DeliveryFailed,
        error: str,
        counts: DestinationCounts,
    ) -> None:
        row = claimed.row
        now_ms = self._now_ms()
        retry_at = None
        if failure.retryable and row.attempts + 1 < config.attempts:
            retry_at = now_ms + int(retry_pause(self.backoff, row.attempts, failure) * 1000)
        state = self.outbox.failed(row, now_ms, error, failure.status, retry_at)
        counts.failed_attempts += 1
        if state == "dead":
            counts.dead_lettered += 1
        say_failed(row, error, config.attempts, None if retry_at is None else (retry_at - now_ms) / 1000)

    def _client(self, name: str, config: DestinationConfig) -> httpx.Client:
        """The destination's HTTP client, made again when its settings change; httpx is imported only when some
        destination first sends. It keeps no connection between attempts: each attempt's own is the one its
        deadline shuts (SendContext.post)."""
        import httpx

        with self._state_lock:
            current = self._clients.get(name)
            if current is not None and current[0] == config:
                return current[1]
            if current is not None:
                self._retired_clients.append(current[1])  # attempts under way may still use it
            timeout = parse_duration(config.timeout) / 1000
            client = httpx.Client(
                timeout=httpx.Timeout(timeout),
                limits=httpx.Limits(max_connections=config.concurrency, max_keepalive_connections=0),
                follow_redirects=False,
            )
            self._clients[name] = (config, client)
            return client

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)


def retry_pause(backoff: Backoff, attempts: int, failure: DeliveryFailed) -> float:
    """Seconds until the next attempt after `attempts` failed ones, the last `failure`. Its Retry-After is a floor up
    to the longest pause: a receiver asking for a day (or 10**20 s, past what the outbox, or SQS, can even record)
    would hold its alert, and every later event of its key, that long."""
    asked = None if failure.retry_after is None else min(failure.retry_after, backoff.cap)
    return backoff.pause(attempts, asked)


def send_claimed(
    name: str,
    config: DestinationConfig,
    claimed: Claimed,
    secrets: Secrets,
    http: Callable[[], httpx.Client],
    clock: Callable[[], float],
    public_url: str = "",
) -> Sent:
    """One attempt of a claimed delivery to destination `name`: what to remember and the reply code,
    or DeliveryFailed whose message holds none of the secrets the attempt used (the local worker and
    the AWS router both send through here). `public_url`: the web UI's address, for a link to the alert."""
    row = claimed.row
    notice = Notice(
        key=row.id,
        destination=name,
        kind=row.kind,
        seq=row.event_seq,
        at_ms=claimed.at_ms,
        alert=Redactor(config.redact).alert(claimed.alert),
        attempt=row.attempts,
        remembered=claimed.remembered,
        public_url=public_url,
    )
    context = SendContext(secrets, http, clock, parse_duration(config.timeout) / 1000)
    try:
        try:
            return Sent(config.send(notice, context), context.status, context.warning)
        except SecretError as e:  # a file or a variable may appear later; retry like a failed send
            raise DeliveryFailed(str(e), retryable=True) from None
        except DeliveryFailed:
            raise
        except Exception as e:  # a payload we could not make: no later attempt makes it either
            raise DeliveryFailed(f"could not send: {type(e).__name__}: {e}", retryable=False) from None
    except DeliveryFailed as failure:
        raise DeliveryFailed(
            scrub(str(failure), context.resolved),
            retryable=failure.retryable,
            retry_after=failure.retry_after,
            status=failure.status,
        ) from None
