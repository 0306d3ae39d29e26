"""The committing side of the syslog listeners: what every connection parsed, committed to disk in groups.

Batches gather and are committed together once BATCH_RECORDS are pending or BATCH_SECONDS after the
first, as one write: a bulk batch becomes lake parts (the columnar path of POST /logs), a small one goes
to the hot store. At most MAX_COMMITS_IN_FLIGHT commits run at once; while they fall behind, or while
the listeners are over their rate, the streams are told to stop reading (TCP flow control then holds
the senders back) and datagrams are dropped once MAX_PENDING_RECORDS wait. Each commit is reported as a
SyslogTally: metrics count a message as accepted only once it is on disk.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import pyarrow as pa

from loglake import ids
from loglake.ingest import BULK_MIN_RECORDS
from loglake.ingest_columns import valid_columns_table
from loglake.model import SEVERITY_ALIASES, NewRecord
from loglake.protocols.syslog_batches import SyslogBatch
from loglake.protocols.syslog_parse import LOG_TYPE
from loglake.service import LogService

BATCH_RECORDS = 20_000
BATCH_SECONDS = 0.2
MAX_COMMITS_IN_FLIGHT = 2
MAX_PENDING_RECORDS = 100_000  # UDP datagrams beyond this many parsed, uncommitted records are dropped
_log = logging.getLogger("loglake.syslog")


@dataclass(frozen=True)
class SyslogTally:
    """What one commit (or one refusal) did, for metrics and loglake's own events."""

    accepted: int = 0  # stored
    unparsed: int = 0  # of those, kept whole with a parse_error
    rate_limited: int = 0  # UDP datagrams over the rate, or while commits fell behind
    not_allowed: int = 0  # UDP datagrams from outside syslog_allow
    unstored: int = 0  # parsed, but the store refused the write
    tls_handshakes_failed: int = 0  # TLS connections whose handshake failed: nothing was read from them
    connections_refused: int = 0  # TCP and TLS connections from outside syslog_allow: nothing was read from them
    # TCP and TLS connections past syslog_max_connections_per_sender: nothing was read from them
    connections_over_limit: int = 0
    # TCP and TLS connections past the listeners' share of the file limit (connection_limit): nothing was read
    connections_server_full: int = 0
    by_service_and_severity: dict[tuple[str, int], int] = field(default_factory=dict)

    @property
    def rejected(self) -> int:
        return self.rate_limited + self.not_allowed + self.unstored


class Allowance:
    """A listener's rate: messages per second, with a second's worth of burst. Taken after the fact (a
    read's messages are parsed already), so it can go into debt; the debt is how long to stop reading."""

    def __init__(self, rate: float, now: float) -> None:
        self.rate = rate
        # At least one message: under one a second, a datagram never fitted, and every one was dropped.
        self.burst = max(rate, 1.0)
        self.tokens = self.burst
        self.updated = now

    def spend(self, count: int, now: float) -> float:
        """Take `count` messages; the seconds to wait before the next read (0: none)."""
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate) - count
        self.updated = now
        return -self.tokens / self.rate if self.tokens < 0 else 0.0

    def take_one(self, now: float) -> bool:
        """Whether one more message (a datagram) fits now."""
        if self.spend(0, now) == 0.0 and self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class Reader(Protocol):
    """A connection the batcher may pause: its reads stop while commits fall behind or its listener is over its rate
    (`allowance`)."""

    allowance: Allowance

    def reading(self, wanted: bool) -> None: ...

    def close(self) -> None: ...


class Batcher:
    """Parsed batches from every connection, committed together; reading paused while commits fall behind.
    Lives on the listeners' event loop."""

    def __init__(
        self,
        service: LogService,
        report: Callable[[SyslogTally], None],
        monotonic: Callable[[], float],
    ) -> None:
        self.service = service
        self.report = report
        self.monotonic = monotonic
        self.loop = asyncio.get_running_loop()
        self.pending: list[SyslogBatch] = []
        self.pending_count = 0
        self.streams: set[Reader] = set()
        self.in_flight: set[asyncio.Task] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._due = False  # a commit is due, waiting for one in flight to finish
        self._resume: dict[Allowance, asyncio.TimerHandle] = {}  # a listener over its rate: its streams read again then

    def add(self, batch: SyslogBatch) -> None:
        self.pending.append(batch)
        self.pending_count += len(batch)
        if self.pending_count >= BATCH_RECORDS:
            self.commit()
        elif self._timer is None and not self._due:
            self._timer = self.loop.call_later(BATCH_SECONDS, self.commit)
        self.pause_or_resume()

    def spend(self, count: int, allowance: Allowance) -> None:
        """A stream's read of `count` messages: over its listener's rate (`allowance`), that listener's streams are
        not read until it has recovered."""
        wait = allowance.spend(count, self.monotonic())
        if wait and allowance not in self._resume:
            self._resume[allowance] = self.loop.call_later(wait, self._resumed, allowance)
            self.pause_or_resume()

    def full(self) -> bool:
        """Whether datagrams must be dropped: this many records wait for commits that fall behind."""
        return self.pending_count >= MAX_PENDING_RECORDS

    def commit(self) -> None:
        """Commit what is pending now, or as soon as a commit in flight is done."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self.pending_count:
            return
        if len(self.in_flight) >= MAX_COMMITS_IN_FLIGHT:
            self._due = True
            return
        self._due = False
        batch = SyslogBatch.concat(self.pending)
        self.pending, self.pending_count = [], 0
        task = self.loop.create_task(self._write(batch))
        self.in_flight.add(task)
        task.add_done_callback(self._committed)

    def _committed(self, task: asyncio.Task) -> None:
        self.in_flight.discard(task)
        if self._due or self.pending_count >= BATCH_RECORDS:
            self.commit()
        self.pause_or_resume()

    def _resumed(self, allowance: Allowance) -> None:
        del self._resume[allowance]
        wait = allowance.spend(0, self.monotonic())
        if wait:  # still in debt (the rate changed nothing meanwhile): wait out the rest
            self._resume[allowance] = self.loop.call_later(wait, self._resumed, allowance)
        self.pause_or_resume()

    def pause_or_resume(self) -> None:
        behind = len(self.in_flight) >= MAX_COMMITS_IN_FLIGHT and self.pending_count >= BATCH_RECORDS
        for stream in self.streams:
            stream.reading(not behind and stream.allowance not in self._resume)

    async def _write(self, batch: SyslogBatch) -> None:
        count = len(batch)
        try:
            table = None
            if count >= BULK_MIN_RECORDS and self.service.lake is not None:
                table = valid_columns_table(
                    batch.timestamps,
                    batch.services,
                    pa.repeat(pa.scalar(LOG_TYPE), count),
                    batch.severities,
                    batch.messages,
                    batch.attributes.cast(pa.binary()).to_pylist(),
                    self.service.limits,
                    self.service.now_ms(),
                    trace_ids=None if batch.trace_ids is None else batch.trace_ids.to_pylist(),
                    span_ids=None if batch.span_ids is None else batch.span_ids.to_pylist(),
                )
            if table is not None:
                await self.service.write_table(table)
            else:
                await self.service.write(_records(batch))
        except Exception as e:  # StoreUnavailable, or a failed write of lake parts: counted, and said why
            _log.warning("syslog: %d message(s) not stored: %s", count, e)
            self.report(SyslogTally(unstored=count))
            return
        self.report(SyslogTally(accepted=count, unparsed=batch.unparsed, by_service_and_severity=_counts(batch)))

    def close_streams(self) -> None:
        for stream in list(self.streams):
            stream.close()

    async def drain(self) -> None:
        self.commit()
        while self.in_flight:
            await asyncio.gather(*self.in_flight, return_exceptions=True)


def _records(batch: SyslogBatch) -> list[NewRecord]:
    """A batch as NewRecords for the hot store: valid by construction (syslog_parse and syslog_batches keep
    every field within the record's rules)."""
    timestamps = batch.timestamps.to_pylist()
    columns = (batch.services, batch.severities, batch.messages, batch.attributes.cast(pa.binary()))
    services, severities, messages, attributes = (column.to_pylist() for column in columns)
    none = [None] * len(timestamps)
    trace_ids, span_ids = (
        none if column is None else column.to_pylist() for column in (batch.trace_ids, batch.span_ids)
    )
    return [
        NewRecord(log_id, ts, service, LOG_TYPE, SEVERITY_ALIASES[severity], message, attributes, None, trace, span)
        for log_id, ts, service, severity, message, attributes, trace, span in zip(
            ids.uuid7_many(timestamps),
            timestamps,
            services,
            severities,
            messages,
            attributes,
            trace_ids,
            span_ids,
            strict=True,
        )
    ]


def _counts(batch: SyslogBatch) -> dict[tuple[str, int], int]:
    """Messages per (service, severity), for the metrics."""
    table = pa.table({"service": batch.services, "severity": batch.severities})
    counts = table.group_by(["service", "severity"]).aggregate([([], "count_all")]).to_pylist()
    return {(row["service"], SEVERITY_ALIASES[row["severity"]]): row["count_all"] for row in counts}
