"""How many connections the server holds at once: its open file limit, less what it keeps for its own files, shared
between the HTTP server's connections (http_protocol) and the syslog TCP and TLS listeners' (protocols/syslog).

By nothing but the process's file limit, a server at it could not accept (uvloop accepted and closed each new one)
and every file it opened failed as well: DuckDB's queries (`Too many open files`, answered 400 invalid_query), bulk
batches' parts (500), the lake's flushes (/healthz degraded); syslog connections, which many senders (or one with many
source addresses) may open, took every descriptor just as HTTP clients did. A connection past its bound is closed as
soon as it is accepted, as HAProxy's maxconn or nginx's worker_connections leave it unserved.
"""

from __future__ import annotations

import contextlib
import logging
import resource
import sys
from collections.abc import Callable

# File descriptors of the process's limit kept from connections for the server's own files, or half the limit if
# that is less: SQLite's databases and WALs, the lake's parts that DuckDB's threads and flushes open, the access
# log, outbound connections (alerts, S3), the syslog listeners' sockets, the query workers' pipes (an idle server
# holds about 30).
RESERVED_FILES = 1024
# What the reserve leaves is split when the syslog TCP or TLS listener is on: its connections may take this share,
# the HTTP server's the rest. Apart, so that neither can take the other's: a flood of syslog senders must not shut
# out the API, the web UI and HTTP shippers (where one looks to see what is going on), nor a flood of HTTP clients
# stop syslog; and together no more than the reserve leaves, so that the server's own files always have it.
SYSLOG_SHARE = 0.5
# Connections refused less than this apart are one episode, which the log tells once: its first.
REFUSALS_QUIET_SECONDS = 60.0

_http_log = logging.getLogger("uvicorn.error")  # (uvicorn's own warnings about requests went there: kept)


def open_file_limit() -> int:
    """The process's open file limit (RLIMIT_NOFILE's soft one), which the connections and the server's files share."""
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def raise_file_limit() -> None:
    """Raise the process's open file limit to its hard limit, as nginx (worker_rlimit_nofile) and Go's runtime do:
    it bounds the connections the server holds, and a shell's usual soft limit (1024, under a hard one of a million)
    held a server to 512."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        with contextlib.suppress(ValueError, OSError):  # (macOS refuses an unlimited one: the soft limit stays)
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class ConnectionLimit:
    """The connections of one kind (`what`: HTTP, syslog) a server holds at once: at most `most`, its `share` of the
    process's file limit less what is reserved; one past it is closed as soon as it is accepted, counted by
    `on_refused` (in /metrics, as `counted_in`), and the log says so once per episode (not once per connection: a
    flood would flood the log)."""

    def __init__(
        self,
        files: int,
        on_refused: Callable[[], object] = lambda: None,
        *,
        share: float = 1.0,
        what: str = "HTTP",
        counted_in: str = "loglake_http_connections_refused_total",
        log: logging.Logger = _http_log,
    ) -> None:
        self.files = files  # the process's file limit (RLIMIT_NOFILE's soft one)
        reserved = min(RESERVED_FILES, files // 2)
        self.most = sys.maxsize if files == resource.RLIM_INFINITY else int((files - reserved) * share)
        self.share = share
        self.what = what
        self.counted_in = counted_in
        self._log = log
        self._on_refused = on_refused
        self._last_refused: float | None = None

    @classmethod
    def http(cls, files: int, on_refused: Callable[[], object], syslog: bool) -> ConnectionLimit:
        """The HTTP server's, beside the syslog TCP or TLS listener's connections when `syslog`."""
        return cls(files, on_refused, share=1.0 - SYSLOG_SHARE if syslog else 1.0)

    @classmethod
    def syslog(cls, files: int, on_refused: Callable[[], object]) -> ConnectionLimit:
        """The syslog TCP and TLS listeners', together."""
        return cls(
            files,
            on_refused,
            share=SYSLOG_SHARE,
            what="syslog",
            counted_in="loglake_syslog_connections_server_full_total",
            log=logging.getLogger("loglake.syslog"),
        )

    def refused(self, now: float) -> None:
        """Count a connection closed for want of room (`now`: a monotonic clock's time), and say so if it begins an
        episode."""
        self._on_refused()
        last, self._last_refused = self._last_refused, now
        if last is None or now - last >= REFUSALS_QUIET_SECONDS:
            share = "" if self.share == 1.0 else f"{self.share:.0%} of "
            self._log.warning(
                "the server holds %d %s connections, the most it may (%sits open file limit, %d, less %d for its own "
                "files): new ones are closed as soon as they open until some close (%s counts them); raise the "
                "limit (ulimit -n, systemd's LimitNOFILE) to hold more",
                self.most,
                self.what,
                share,
                self.files,
                min(RESERVED_FILES, self.files // 2),
                self.counted_in,
            )
