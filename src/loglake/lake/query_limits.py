"""What a query may use: rows, time, memory, disk to spill to, threads, and how many run at once; the defaults
are the settings' (one definition)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from loglake.config import Settings

SPILL_SHARE_OF_FREE_DISK = 0.1
# The least time a query may ask for (timeout_seconds, --timeout): less is no time at all, which no query is kept
# to (its watchdog interrupts a due query every 5 ms, RETRY_SECONDS: `timeout_seconds: 5e-324` ran queries whole)
# and which a busy server's wait for a query connection reads as 'busy for 5e-324 s'.
MIN_TIMEOUT_SECONDS = 0.01

_DEFAULTS = Settings()  # the limits' defaults are the settings' (one definition)


@dataclass(frozen=True)
class QueryLimits:
    timeout_seconds: float = _DEFAULTS.query_timeout_seconds
    max_rows: int = _DEFAULTS.query_max_rows
    concurrency: int = _DEFAULTS.query_concurrency
    memory_mb: int = _DEFAULTS.query_memory_mb
    spill_mb: int = _DEFAULTS.query_spill_mb  # 0: a tenth of the free disk space where the engine spills
    threads: int = _DEFAULTS.query_threads
    max_response_mb: int = _DEFAULTS.query_max_response_mb  # a user's query: its rows as JSON

    def rows_for(self, limit: int | None) -> int:
        """The rows a query may fetch: what it asks for, never more than max_rows (all of them for None)."""
        return self.max_rows if limit is None else max(0, min(limit, self.max_rows))

    def seconds_for(self, timeout_seconds: float | None) -> float:
        """The time a query may take: a request may ask for less than timeout_seconds, never more."""
        return self.timeout_seconds if timeout_seconds is None else min(timeout_seconds, self.timeout_seconds)


def default_spill_mb(folder: Path) -> int:
    """A tenth of the free space of the disk that holds `folder`, in MiB (at least 1)."""
    return max(1, int(shutil.disk_usage(folder).free * SPILL_SHARE_OF_FREE_DISK) // 2**20)
