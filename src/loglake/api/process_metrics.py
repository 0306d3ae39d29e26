"""The server process's own figures for /metrics: the process_* metrics every Prometheus client library exports
(CPU, resident memory, open files, start time), and its CPU time by thread group.

The groups are the server's thread pools (`loglake-ingest`, `loglake-bulk`, `loglake-merge`, ...; the event
loop is `MainThread`): where the CPU goes (checking bodies, writing parts, merging, answering) says what to
tune or scale, and whether a busy server is short of CPU or waits (a server at 1.3 of 2 cores whose threads
each wait half of the time for the GIL looks idle in `top`). Read from /proc at scrape time (Linux: elsewhere
only what `os` tells of the whole process). A thread's time counts until the last scrape that saw it: a group's
counter keeps what its ended threads used by then, so it never goes back.
"""

from __future__ import annotations

import os
import re
import resource
import threading
import time
from pathlib import Path

from loglake.api.metrics import Counter, gauge_lines
from loglake.connection_limit import open_file_limit

_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100  # (where /proc exists, sysconf does)
_PAGE_BYTES = resource.getpagesize()
_PROC_SELF = Path("/proc/self")
# A pool's threads are numbered (`loglake-ingest_0`); the group is the name without its number.
_NUMBERED = re.compile(r"[_-]\d+$")
# Groups named as they are: the server's own threads and the event loop's. Any other thread (a library's) is
# counted under OTHER, so that what a label can hold stays a short, known list.
_OWN_PREFIX = "loglake-"
_KEPT = frozenset({"MainThread", "asyncio"})
OTHER = "other"


def thread_group(name: str) -> str:
    """The label a thread's CPU time is counted under."""
    group = _NUMBERED.sub("", name)
    return group if group.startswith(_OWN_PREFIX) or group in _KEPT else OTHER


class ProcessFigures:
    """What the process_* lines and the thread groups' CPU need kept between scrapes (one per server)."""

    def __init__(self) -> None:
        self.started = _process_start() or time.time()
        self._lock = threading.Lock()  # (scrapes may overlap: each runs on a read thread)
        self._last: dict[int, tuple[str, float]] = {}  # native thread id -> (group, CPU seconds at the last scrape)
        self._ended: dict[str, float] = {}  # group -> CPU seconds of its threads gone since

    def lines(self) -> bytes:
        times = os.times()
        cpu = Counter("process_cpu_seconds_total", "User and system CPU time the process spent, in seconds.", ())
        cpu.inc((), round(times.user + times.system, 2))
        lines = [
            *cpu.render(),
            *gauge_lines(
                "process_start_time_seconds",
                "When the process started, in seconds since the epoch.",
                (),
                {(): round(self.started, 2)},
            ),
            *gauge_lines(
                "process_max_fds",
                "The most open file descriptors the process may hold.",
                (),
                {(): open_file_limit()},
            ),
        ]
        if _PROC_SELF.is_dir():
            rss_pages = int((_PROC_SELF / "statm").read_text().split()[1])
            lines += gauge_lines(
                "process_resident_memory_bytes",
                "Resident memory of the process, in bytes.",
                (),
                {(): rss_pages * _PAGE_BYTES},
            )
            lines += gauge_lines(
                "process_open_fds",
                "Open file descriptors of the process.",
                (),
                {(): len(os.listdir(_PROC_SELF / "fd"))},
            )
            threads = Counter(
                "loglake_thread_cpu_seconds_total",
                "CPU time of the server's threads, in seconds, by group: its thread pools, MainThread the event loop.",
                ("threads",),
            )
            for group, seconds in self.thread_cpu().items():
                threads.inc((group,), round(seconds, 2))
            lines += threads.render()
        return ("\n".join(lines) + "\n").encode()

    def thread_cpu(self) -> dict[str, float]:
        """CPU seconds by thread group, of the threads running now and those that ended since they were last seen."""
        now: dict[int, tuple[str, float]] = {}
        for thread in threading.enumerate():
            seconds = None if thread.native_id is None else _thread_seconds(thread.native_id)
            if seconds is not None:  # (None: not started, or it ended between the two reads)
                now[thread.native_id] = (thread_group(thread.name), seconds)  # type: ignore[index]
        with self._lock:
            for native_id, (group, seconds) in self._last.items():
                if native_id not in now:
                    self._ended[group] = self._ended.get(group, 0.0) + seconds
            self._last = now
            totals = dict(self._ended)
        for group, seconds in now.values():
            totals[group] = totals.get(group, 0.0) + seconds
        return totals


def _process_start() -> float | None:
    """When this process started, in seconds since the epoch (Linux: its start in ticks after the boot)."""
    try:
        started_ticks = int((_PROC_SELF / "stat").read_text().rsplit(")", 1)[1].split()[19])
        boot = next(line for line in Path("/proc/stat").read_text().splitlines() if line.startswith("btime "))
    except (OSError, StopIteration, ValueError, IndexError):
        return None
    return int(boot.split()[1]) + started_ticks / _TICKS_PER_SECOND


def _thread_seconds(native_id: int) -> float | None:
    try:
        stat = (_PROC_SELF / "task" / str(native_id) / "stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # (after the name, which may hold spaces)
    return (int(fields[11]) + int(fields[12])) / _TICKS_PER_SECOND  # utime, stime
