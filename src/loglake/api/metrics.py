"""Prometheus metrics in text exposition format 0.0.4, small enough to sit on the ingest hot path.

Counters count what this process did (requests, records ingested, queries). The lake's numbers are
gauges read from its catalog at scrape time instead: flushes, compactions and retention also run from
the CLI and in other processes, and a counter of this process would not see them.

Counters and histograms are plain dicts keyed by label values. The event loop is the only writer
except for storage commit latency, which the store's writer thread reports, and the rules' figures,
which the rule scheduler's thread reports; CPython makes the dict updates involved atomic, so no
lock is needed.
"""

from __future__ import annotations

import bisect
import sqlite3
from collections.abc import Iterable
from typing import TYPE_CHECKING

from loglake.api.resent_pushes import WINDOW_MINUTES as RESENT_WINDOW_MINUTES
from loglake.model import SEVERITY_NAMES

if TYPE_CHECKING:
    from loglake.alerts.delivery import AlertDelivery
    from loglake.lake.lake import LakeState
    from loglake.protocols.syslog import SyslogTally
    from loglake.rules.model import Problem, Rule
    from loglake.rules.state import RunRecord

MAX_SERVICES = 1000
OTHER_SERVICE = "other"
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Counter:
    def __init__(self, name: str, help: str, labels: tuple[str, ...]) -> None:
        self.name, self.help, self.labels = name, help, labels
        self.values: dict[tuple[str, ...], float] = {}

    def inc(self, key: tuple[str, ...], amount: float = 1) -> None:
        values = self.values
        values[key] = values.get(key, 0) + amount

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} counter"
        for key, value in sorted(self.values.items()):
            yield f"{self.name}{_labels(self.labels, key)} {_number(value)}"


class Histogram:
    def __init__(self, name: str, help: str, labels: tuple[str, ...], buckets: tuple[float, ...] = LATENCY_BUCKETS):
        self.name, self.help, self.labels, self.buckets = name, help, labels, buckets
        self.series: dict[tuple[str, ...], list[float]] = {}  # bucket counts..., +Inf count, sum

    def observe(self, key: tuple[str, ...], value: float) -> None:
        series = self.series.get(key)
        if series is None:
            series = self.series[key] = [0.0] * (len(self.buckets) + 2)
        series[bisect.bisect_left(self.buckets, value)] += 1
        series[-1] += value

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} histogram"
        for key, series in sorted(self.series.items()):
            cumulative = 0.0
            for bound, count in zip((*self.buckets, float("inf")), series[:-1], strict=True):
                cumulative += count
                le = "+Inf" if bound == float("inf") else _number(bound)
                yield f"{self.name}_bucket{_labels((*self.labels, 'le'), (*key, le))} {_number(cumulative)}"
            yield f"{self.name}_sum{_labels(self.labels, key)} {series[-1]!r}"
            yield f"{self.name}_count{_labels(self.labels, key)} {_number(cumulative)}"


class Metrics:
    """Everything /metrics shows."""

    def __init__(self) -> None:
        self.requests = Counter(
            "loglake_http_requests_total", "HTTP requests by route and status.", ("route", "status")
        )
        self.latency = Histogram("loglake_http_request_duration_seconds", "HTTP request latency by route.", ("route",))
        self.ingested = Counter(
            "loglake_records_ingested_total",
            "Records durably stored, by service and severity.",
            ("service", "severity"),
        )
        self.rejected = Counter(
            "loglake_records_rejected_total",
            "Records refused, by the field of their first problem (or storage_unavailable).",
            ("reason",),
        )
        self.rejected_bodies = Counter(
            "loglake_bodies_rejected_total", "Request bodies refused as a whole, by error code.", ("code",)
        )
        self.protocol_records = Counter(
            "loglake_protocol_records_total",
            "Records received through a shipper's protocol (otlp, loki, elasticsearch, splunk, syslog), by outcome:"
            " accepted (stored) or rejected.",
            ("protocol", "outcome"),
        )
        self.resent_pushes = Counter(
            "loglake_resent_pushes_total",
            f"Pushes sent again byte for byte within {RESENT_WINDOW_MINUTES} minutes of being stored (a Promtail or"
            " Alloy retry after a lost answer), answered as the first was and not stored again, by protocol (loki).",
            ("protocol",),
        )
        self.bodies_decoded = Counter(
            "loglake_bodies_decoded_total",
            "Request bodies of a protocol (otlp, loki) decoded, by where: worker (a decode process,"
            " decode_workers) or server (the server's own process: a small body, or the workers busy, starting or"
            " off).",
            ("protocol", "where"),
        )
        self.store_write = Histogram(
            "loglake_store_write_duration_seconds",
            "Hot store commit latency (one group commit, and its fsync with durability full).",
            (),
        )
        self.store_rows = Counter("loglake_store_rows_committed_total", "Rows committed to the hot store.", ())
        self.queries = Counter("loglake_queries_total", "SQL queries by outcome (ok or an error code).", ("outcome",))
        self.rule_runs = Counter(
            "loglake_rule_runs_total",
            "Rule runs by rule id and outcome (ok; error: the rule's SQL failed; superseded: another process ran it).",
            ("rule", "outcome"),
        )
        self.rule_duration = Histogram(
            "loglake_rule_run_duration_seconds", "How long a rule's run over one window took, by rule id.", ("rule",)
        )
        self.rule_matches = Counter(
            "loglake_rule_matches_total", "Matches (groups that met the rule's condition) by rule id.", ("rule",)
        )
        self.syslog_unparsed = Counter(
            "loglake_syslog_unparsed_records_total",
            "Syslog lines that did not parse, stored whole with attributes.parse_error.",
            (),
        )
        self.syslog_tls_handshakes_failed = Counter(
            "loglake_syslog_tls_handshake_failures_total",
            "Connections to the syslog TLS listener whose TLS handshake failed (plain syslog sent to it, a sender "
            "that does not trust the certificate, a scanner); nothing was read from them.",
            (),
        )
        self.syslog_connections_refused = Counter(
            "loglake_syslog_refused_connections_total",
            "Connections to the syslog TCP (or TLS) listener from outside syslog_allow, closed before anything was "
            "read from them.",
            (),
        )
        self.syslog_connections_over_limit = Counter(
            "loglake_syslog_connections_over_limit_total",
            "Connections to the syslog TCP (or TLS) listener from a sender that held syslog_max_connections_per_sender "
            "open already, closed before anything was read from them.",
            (),
        )
        self.syslog_connections_server_full = Counter(
            "loglake_syslog_connections_server_full_total",
            "Connections to the syslog TCP (or TLS) listener closed as soon as they opened, nothing read from them: "
            "the listeners held as many as they may (their share of the open file limit less what the server keeps "
            "for its own files).",
            (),
        )
        self.connections_refused = Counter(
            "loglake_http_connections_refused_total",
            "HTTP connections closed as soon as they opened, unanswered: the server held as many as it may (its open "
            "file limit less what it keeps for its own files; half of that beside a syslog TCP or TLS listener).",
            (),
        )
        self.rules_loaded = 0
        self.rule_files_with_problems = 0
        self._services: set[str] = set()

    def count_ingested(self, by_service_and_severity: dict[tuple[str, int], int]) -> None:
        """Service names come from clients: past MAX_SERVICES distinct ones, the rest share 'other',
        so a client cannot grow the number of series without bound."""
        seen = self._services
        for (service, severity), n in by_service_and_severity.items():
            if service not in seen:
                if len(seen) >= MAX_SERVICES:
                    service = OTHER_SERVICE
                else:
                    seen.add(service)
            self.ingested.inc((service, SEVERITY_NAMES[severity]), n)

    def on_commit(self, rows: int, seconds: float) -> None:
        self.store_write.observe((), seconds)
        self.store_rows.inc((), rows)

    def on_syslog(self, tally: SyslogTally) -> None:
        if tally.accepted:
            self.protocol_records.inc(("syslog", "accepted"), tally.accepted)
            self.count_ingested(tally.by_service_and_severity)
        if tally.rejected:
            self.protocol_records.inc(("syslog", "rejected"), tally.rejected)
        if tally.unstored:  # as POST /logs counts records the store refused
            self.rejected.inc(("storage_unavailable",), tally.unstored)
        if tally.unparsed:
            self.syslog_unparsed.inc((), tally.unparsed)
        if tally.tls_handshakes_failed:
            self.syslog_tls_handshakes_failed.inc((), tally.tls_handshakes_failed)
        if tally.connections_refused:
            self.syslog_connections_refused.inc((), tally.connections_refused)
        if tally.connections_over_limit:
            self.syslog_connections_over_limit.inc((), tally.connections_over_limit)
        if tally.connections_server_full:
            self.syslog_connections_server_full.inc((), tally.connections_server_full)

    def on_rule_run(self, rule: Rule, record: RunRecord) -> None:
        self.rule_runs.inc((rule.id, record.outcome))
        if record.duration_ms is not None:
            self.rule_duration.observe((rule.id,), record.duration_ms / 1000)
        if record.matches:
            self.rule_matches.inc((rule.id,), record.matches)

    def on_rules_loaded(self, rules: list[Rule], problems: list[Problem]) -> None:
        self.rules_loaded = len(rules)
        self.rule_files_with_problems = len({p.file for p in problems})

    def render(
        self, lake: LakeState | None = None, access_log_dropped: int = 0, syslog_udp_drops: int | None = None
    ) -> bytes:
        """The counters of this process, and the lake's gauges read from its catalog at scrape time; the kernel's
        drops of the syslog UDP listener's datagrams, when it has one (syslog_udp.kernel_drops)."""
        lines: list[str] = []
        # Every counter and histogram this object holds, in the order made: a metric added above is rendered
        # without a second list to keep in step (one that named a family twice rendered it twice).
        metrics = [value for value in vars(self).values() if isinstance(value, Counter | Histogram)]
        for metric in metrics:
            lines.extend(metric.render())
        lines.extend(
            gauge_lines("loglake_rules_loaded", "Rules loaded from the rules folder.", (), {(): self.rules_loaded})
        )
        lines.extend(
            gauge_lines(
                "loglake_rule_files_with_problems",
                "Rule files and alerting.yml files that did not load (loglake rules validate names each problem).",
                (),
                {(): self.rule_files_with_problems},
            )
        )
        # Counted by the access log itself: a log that takes nothing more cannot report its own losses.
        dropped = Counter(
            "loglake_access_log_dropped_lines_total",
            "Access log lines dropped because their destination fell behind.",
            (),
        )
        dropped.inc((), access_log_dropped)
        lines.extend(dropped.render())
        if syslog_udp_drops is not None:  # (counted by the kernel: loglake never sees those datagrams)
            udp = Counter(
                "loglake_syslog_udp_kernel_drops_total",
                "Datagrams to the syslog UDP listener that the kernel dropped, its receive buffer full (a burst "
                "faster than the listener reads; see net.core.rmem_max); no sender hears of them.",
                (),
            )
            udp.inc((), syslog_udp_drops)
            lines.extend(udp.render())
        if lake is not None:
            lines.extend(_lake_gauges(lake))
        return ("\n".join(lines) + "\n").encode()


def _lake_gauges(lake: LakeState) -> Iterable[str]:
    by_table = ("table",)
    yield from gauge_lines(
        "loglake_lake_files", "Objects in the lake, by table.", by_table, {(t.table,): t.files for t in lake.tables}
    )
    yield from gauge_lines(
        "loglake_lake_records", "Records in the lake, by table.", by_table, {(t.table,): t.records for t in lake.tables}
    )
    yield from gauge_lines(
        "loglake_lake_bytes",
        "Bytes of the lake's objects, by table.",
        by_table,
        {(t.table,): t.bytes for t in lake.tables},
    )
    yield from gauge_lines(
        "loglake_lake_newest_record_timestamp_seconds",
        "Time of the newest record in the lake, by table (absent while a table has none).",
        by_table,
        {(t.table,): t.newest_ms / 1000 for t in lake.tables if t.newest_ms is not None},
    )
    yield from gauge_lines(
        "loglake_lake_retired_files",
        "Objects replaced by compaction or dropped by retention that wait for running queries.",
        (),
        {(): lake.retired_files},
    )
    yield from gauge_lines(
        "loglake_hot_records", "Records in the hot store, not yet moved to the lake.", (), {(): lake.hot_records}
    )
    yield from gauge_lines(
        "loglake_hot_bytes",
        "Bytes the records not yet in the lake take on disk: hot.db, its WAL and the waiting bulk batches.",
        (),
        {(): lake.hot_bytes},
    )
    yield from gauge_lines(
        "loglake_data_dir_free_bytes",
        "Bytes left for loglake on the data dir's file system: once none is, writes are refused with 503.",
        (),
        {(): lake.free_bytes},
    )


def delivery_lines(delivery: AlertDelivery | None) -> bytes:
    """Per destination: sent, failed attempts and dead-lettered deliveries by this process (counters),
    and deliveries waiting and dead in the outbox (gauges read from the database at scrape time, so
    they survive a restart)."""
    if delivery is None:
        return b""
    by_destination = ("destination",)
    sent = Counter("loglake_alert_deliveries_sent_total", "Alert deliveries sent, by destination.", by_destination)
    failed = Counter(
        "loglake_alert_delivery_failed_attempts_total",
        "Failed alert delivery attempts (each retry counts), by destination.",
        by_destination,
    )
    dead = Counter(
        "loglake_alert_deliveries_dead_lettered_total",
        "Alert deliveries given up after their last attempt, or refused for good, by destination.",
        by_destination,
    )
    for name, counts in list(delivery.counts.items()):
        sent.inc((name,), counts.sent)
        failed.inc((name,), counts.failed_attempts)
        dead.inc((name,), counts.dead_lettered)
    lines = [*sent.render(), *failed.render(), *dead.render()]
    try:
        waiting = {(name,): n for name, n in delivery.waiting().items()}
        dead_now = {(name,): dead.count for name, dead in delivery.dead().items()}
    except sqlite3.Error:  # the other metrics still answer; /healthz says what is wrong with alerts.db
        return ("\n".join(lines) + "\n").encode()
    lines.extend(
        gauge_lines(
            "loglake_alert_deliveries_pending",
            "Alert deliveries not yet sent nor dead-lettered, by destination.",
            by_destination,
            waiting,
        )
    )
    lines.extend(
        gauge_lines(
            "loglake_alert_deliveries_dead",
            "Dead-lettered alert deliveries kept in the outbox (30 days, or until retried), by destination.",
            by_destination,
            dead_now,
        )
    )
    return ("\n".join(lines) + "\n").encode()


def gauge_lines(name: str, help: str, labels: tuple[str, ...], values: dict[tuple[str, ...], float]) -> Iterable[str]:
    yield f"# HELP {name} {help}"
    yield f"# TYPE {name} gauge"
    for key, value in sorted(values.items()):
        yield f"{name}{_labels(labels, key)} {_number(value)}"


def _labels(names: tuple[str, ...], values: tuple[str, ...]) -> str:
    if not names:
        return ""
    return "{" + ",".join(f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True)) + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    return str(int(value)) if value == int(value) else repr(value)
