"""The server's allocator: freed memory goes back to the system once the process is quiet, once per lull."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from loglake.malloc import QUIET_CPU_SHARE, TrimWhenQuiet


def test_a_heap_a_burst_of_work_grew_gives_its_free_pages_back() -> None:
    # In a fresh interpreter: ~200 MiB of malloc'd objects (2 KiB bytes each, past pymalloc's sizes), all
    # freed but one in 64, which keep the heap from shrinking on its own (free() gives back only its top).
    code = textwrap.dedent("""\
        from loglake.malloc import give_back_freed_memory

        def rss_mib():
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * 4096 / 2**20

        held = [bytes(2048) for _ in range(100_000)]
        kept = held[::64]
        del held
        before = rss_mib()
        assert give_back_freed_memory()
        print(before, rss_mib(), len(kept))
        """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    before, after, _ = (float(v) for v in done.stdout.split())
    assert before - after > 100, (before, after)


class _Cpu:
    def __init__(self) -> None:
        self.seconds = 0.0

    def __call__(self) -> float:
        return self.seconds


def test_it_trims_once_per_lull_and_never_while_busy() -> None:
    cpu, trims = _Cpu(), []
    quiet = TrimWhenQuiet(every_s=60, cpu_seconds=cpu, trim=lambda: trims.append(cpu.seconds) or True)
    busy_minute, idle_minute = 60 * QUIET_CPU_SHARE * 2, 60 * QUIET_CPU_SHARE / 4

    cpu.seconds += idle_minute
    assert quiet.check()  # what start-up freed
    cpu.seconds += idle_minute
    assert not quiet.check()  # nothing freed since
    for _ in range(3):
        cpu.seconds += busy_minute
        assert not quiet.check()
    cpu.seconds += idle_minute
    assert quiet.check()  # the lull after the work
    cpu.seconds += idle_minute
    assert not quiet.check()
    assert len(trims) == 2
