"""The C library's allocator in a long-lived process (the server): how many arenas its threads share, and
giving back what it freed once the process is quiet. Only glibc's malloc has these knobs; elsewhere both
do nothing."""

from __future__ import annotations

import contextlib
import ctypes
import threading
import time
from collections.abc import Callable

_M_ARENA_MAX = -8  # glibc's malloc.h


def _glibc() -> ctypes.CDLL | None:
    with contextlib.suppress(OSError):
        libc = ctypes.CDLL("libc.so.6")
        if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim"):
            return libc
    return None


def limit_arenas(arenas: int = 2) -> None:
    """glibc gives each thread that allocates its own arena (up to 8 per core), which keeps what it
    freed: bulk batches parsed and written on a dozen threads took peak RSS to ~300 MiB with the
    default, ~275 MiB with two arenas, at the same rate (B2, 4 senders). Call it before threads start."""
    libc = _glibc()
    if libc is not None:
        libc.mallopt(_M_ARENA_MAX, arenas)


def give_back_freed_memory() -> bool:
    """Return the free pages inside malloc's heaps to the system (malloc_trim(0)); False where there is no
    glibc. malloc gives back on its own only the free memory at the top of a heap, so a heap that a bulk
    load grew stays that size while a few live objects sit near its end: after 300,000 records the idle
    server held 314 MiB of RSS, 224 MiB once trimmed."""
    libc = _glibc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True


# The process is quiet over a check when it used less CPU than this share of one core: a trim then walks
# heaps nobody is growing, and what it gives back is not asked for again at once.
QUIET_CPU_SHARE = 0.02
CHECK_EVERY_S = 60.0


class TrimWhenQuiet:
    """Gives freed memory back (give_back_freed_memory) at the first quiet check after a busy one: once
    per lull, so an idle server walks its heaps once, and a busy one never (the pages would be asked
    for again at once, each a page fault)."""

    def __init__(
        self,
        every_s: float = CHECK_EVERY_S,
        cpu_seconds: Callable[[], float] = time.process_time,
        trim: Callable[[], bool] = give_back_freed_memory,
    ) -> None:
        self.every_s = every_s
        self.cpu_seconds = cpu_seconds
        self.trim = trim
        self._last = cpu_seconds()
        self._busy_since_trim = True  # what start-up freed is given back too

    def check(self) -> bool:
        """One check (every `every_s`): True if it trimmed."""
        now = self.cpu_seconds()
        quiet = now - self._last < QUIET_CPU_SHARE * self.every_s
        self._last = now
        if not quiet:
            self._busy_since_trim = True
            return False
        if not self._busy_since_trim:
            return False
        self._busy_since_trim = False
        return self.trim()

    def start(self) -> None:
        """Check every `every_s` on a daemon thread, for the life of the process."""

        def loop() -> None:
            while True:
                time.sleep(self.every_s)
                self.check()

        threading.Thread(target=loop, name="loglake-malloc-trim", daemon=True).start()
