"""What loglake.logging.LoglakeHandler adds to a log call on the application's thread.

A logger with a NullHandler and the same logger with a LoglakeHandler (sending to a real `loglake serve`
in the background, as in use) each take --calls `logger.info("order %s placed", n, extra={...})` calls in
a loop; the figure is the difference of the two loops' time per call, so the logging module's own cost
(the LogRecord, the level check) is not counted. Two differences are reported: of the application
thread's CPU time (time.thread_time: what the handler's emit costs the caller, the target figure), and of
wall time (also counting the waits for the GIL while the handler's thread encodes and sends, which a
program that does nothing but log in a loop pays). Rounds alternate between the two loggers; the report
gives each round and the medians. The handler's counters must say that every record was sent (a record
dropped from a full queue costs less than one sent, so drops would flatter the figure: the run fails).

    .venv/bin/python bench/logging_handler.py                     # 200,000 calls, 5 rounds
    .venv/bin/python bench/logging_handler.py --calls 50000 --rounds 3
"""

from __future__ import annotations

import logging
import sys
import time

import common
from loglake.logging import LoglakeHandler


def loop(logger: logging.Logger, calls: int) -> tuple[float, float]:
    """(CPU time of this thread, wall time) of `calls` log calls, in µs per call."""
    info = logger.info
    cpu, wall = time.thread_time(), time.perf_counter()
    for n in range(calls):
        info("order %s placed", n, extra={"order_id": n, "customer": "c-17"})
    return (time.thread_time() - cpu) / calls * 1e6, (time.perf_counter() - wall) / calls * 1e6


def main() -> None:
    ap = common.argument_parser(__doc__)
    ap.add_argument("--calls", type=int, default=200_000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    hw = common.print_hardware()
    with common.Server() as server:
        handler = LoglakeHandler(server.url, api_key=server.key, service="bench", queue_size=args.calls + 1)
        plain = logging.getLogger("bench.plain")
        plain.addHandler(logging.NullHandler())
        shipped = logging.getLogger("bench.shipped")
        shipped.addHandler(handler)
        for logger in (plain, shipped):
            logger.setLevel(logging.INFO)
            logger.propagate = False
        rows = []
        for number in range(1, args.rounds + 1):
            base_cpu, base_wall = loop(plain, args.calls)
            cpu, wall = loop(shipped, args.calls)
            row = {"round": number, "added_cpu_us": cpu - base_cpu, "added_wall_us": wall - base_wall}
            rows.append(row | {"null_handler_cpu_us": base_cpu, "null_handler_wall_us": base_wall})
            print(
                f"round {number}: a call with a NullHandler {base_cpu:.2f} µs CPU ({base_wall:.2f} wall); the "
                f"LoglakeHandler adds {row['added_cpu_us']:.2f} µs CPU ({row['added_wall_us']:.2f} wall)",
                flush=True,
            )
            handler.flush(timeout=120)
        handler.close()
        median = {k: common.median([r[k] for r in rows]) for k in ("added_cpu_us", "added_wall_us")}
        print(
            f"median of {len(rows)}: {median['added_cpu_us']:.2f} µs of the application thread's CPU added per log "
            f"call ({median['added_wall_us']:.2f} µs wall) (sent {handler.sent:,}, dropped {handler.dropped}, "
            f"rejected {handler.rejected})",
            flush=True,
        )
        if handler.dropped or handler.rejected or handler.sent != args.calls * args.rounds:
            print("FAILED: not every record was sent", file=sys.stderr)
            sys.exit(1)
    common.write_json(
        args.json, {"workload": "logging_handler", "args": vars(args), "hardware": hw, "rounds": rows, "median": median}
    )


if __name__ == "__main__":
    main()
