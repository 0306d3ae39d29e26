"""B1 single-record ingest (and M, the server's peak RSS during it).

wrk posts one real record per request (cycling through --records lines of the make_dataset.py set, see
b1_single_ingest.lua) to POST /logs on a fresh loglake server: 1 thread, 32 connections, 10 s, --latency.
Each round gets a fresh server and data dir and a short warm-up run first; the report gives req/s, p50 and
p99 per round and their median, and the server's peak RSS (VmHWM). Any non-2xx response or socket error
fails the run: wrk's own count and the server's /metrics count of POST /logs responses by status are both
checked, and so is that the server stored as many rows as it acknowledged.

    .venv/bin/python bench/b1_single_ingest.py                       # 3 rounds of 10 s, durability full
    .venv/bin/python bench/b1_single_ingest.py --durability process --rounds 5
    .venv/bin/python bench/b1_single_ingest.py --duration 3s --rounds 1   # quick check
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import common

LUA = Path(__file__).resolve().with_suffix(".lua")


def run_wrk(args: argparse.Namespace, server: common.Server, bodies: Path, duration: str) -> tuple[dict, str]:
    cmd = [
        args.wrk,
        f"-t{args.threads}",
        f"-c{args.connections}",
        f"-d{duration}",
        f"--timeout={args.timeout}",
        "--latency",
        "-s",
        str(LUA),
        f"{server.url}/logs",
        "--",
        str(bodies),
        server.key,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"wrk failed ({proc.returncode}): {proc.stderr or proc.stdout}")
    for line in proc.stdout.splitlines():
        if line.startswith("B1_RESULT "):
            return json.loads(line.removeprefix("B1_RESULT ")), proc.stdout
    sys.exit(f"wrk printed no B1_RESULT line:\n{proc.stdout}\n{proc.stderr}")


def one_round(args: argparse.Namespace, bodies: Path, number: int) -> dict[str, Any]:
    with common.Server(durability=args.durability, access_log=args.access_log) as server:
        if args.warmup:
            run_wrk(args, server, bodies, f"{args.warmup}s")
        before = server.statuses("/logs")
        committed_before = _committed(server)
        cpu_before, loop_before = server.cpu_seconds(), server.loop_cpu_seconds()
        result, raw = run_wrk(args, server, bodies, args.duration)
        cpu, loop_cpu = server.cpu_seconds() - cpu_before, server.loop_cpu_seconds() - loop_before
        server.check_alive()
        after = server.statuses("/logs")
        committed = _committed(server) - committed_before
        _, peak = server.rss()
        if args.verbose:
            print(raw)
        failures = _failures(result, before, after, committed)
        seconds = result["duration_us"] / 1e6
        row = {
            "round": number,
            "requests": result["requests"],
            "seconds": round(seconds, 3),
            "req_per_s": round(result["requests"] / seconds, 1),
            "p50_ms": result["lat_p50_us"] / 1000,
            "p90_ms": result["lat_p90_us"] / 1000,
            "p99_ms": result["lat_p99_us"] / 1000,
            "max_ms": result["lat_max_us"] / 1000,
            "non_2xx": result["errors_status"],
            "socket_errors": sum(result[f"errors_{k}"] for k in ("connect", "read", "write", "timeout")),
            "server_statuses": {k: after.get(k, 0) - before.get(k, 0) for k in after},
            "rows_committed": int(committed),
            "peak_rss_mib": round(common.mib(peak), 1),
            # CPU per request is steadier than req/s on a busy machine; the event loop's share is the
            # ceiling of one process (it holds the GIL for HTTP and the checks).
            "server_cpu_us_per_request": round(cpu * 1e6 / max(1, result["requests"]), 1),
            "loop_cpu_us_per_request": round(loop_cpu * 1e6 / max(1, result["requests"]), 1),
        }
        _print_row(row)
        if failures:
            print(f"\nFAILED in round {number}:\n  " + "\n  ".join(failures), file=sys.stderr)
            print(f"\nwrk output:\n{raw}\nserver log tail:\n{server.log_tail()}", file=sys.stderr)
            sys.exit(1)
        return row


def _committed(server: common.Server) -> float:
    return sum(v for name, _, v in server.metrics() if name == "loglake_store_rows_committed_total")


def _failures(result: dict, before: dict[str, int], after: dict[str, int], committed: float) -> list[str]:
    problems = []
    if result["errors_status"]:
        problems.append(f"wrk counted {result['errors_status']} responses with status >= 400")
    for kind in ("connect", "read", "write", "timeout"):
        if result[f"errors_{kind}"]:
            problems.append(f"wrk counted {result[f'errors_{kind}']} socket {kind} errors")
    bad = {status: after[status] - before.get(status, 0) for status in after if status != "201"}
    bad = {k: v for k, v in bad.items() if v}
    if bad:
        problems.append(f"the server answered POST /logs with non-201 statuses: {bad}")
    ok = after.get("201", 0) - before.get("201", 0)
    if committed < ok:
        problems.append(f"the server acknowledged {ok} records but committed only {int(committed)} rows")
    return problems


def _print_row(row: dict[str, Any]) -> None:
    print(
        f"round {row['round']}: {row['req_per_s']:>9,.0f} req/s  p50 {row['p50_ms']:6.2f} ms  "
        f"p99 {row['p99_ms']:6.2f} ms  max {row['max_ms']:7.2f} ms  ({row['requests']:,} requests, "
        f"non-2xx {row['non_2xx']}, socket errors {row['socket_errors']}, "
        f"server peak RSS {row['peak_rss_mib']:.1f} MiB; server CPU {row['server_cpu_us_per_request']:.0f} us/request, "
        f"event loop {row['loop_cpu_us_per_request']:.0f})",
        flush=True,
    )


def main() -> None:
    ap = common.argument_parser(__doc__)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", default="10s", help="wrk -d per round (default 10s)")
    ap.add_argument("--threads", type=int, default=1, help="wrk -t (default 1)")
    ap.add_argument("--connections", type=int, default=32, help="wrk -c (default 32)")
    ap.add_argument("--timeout", default="2s", help="wrk --timeout: slower responses count as socket errors")
    ap.add_argument("--warmup", type=int, default=1, help="seconds of unmeasured load before each round (0: none)")
    ap.add_argument("--durability", choices=("full", "process"), default="full")
    ap.add_argument("--access-log", default="-", help='the server\'s --access-log (default "-", stderr, as shipped)')
    ap.add_argument("--records", type=int, default=5000, help="distinct records wrk cycles through")
    ap.add_argument("--wrk", default=shutil.which("wrk") or "/usr/bin/wrk")
    ap.add_argument("-v", "--verbose", action="store_true", help="print wrk's own report of each round")
    args = ap.parse_args()
    if not Path(args.wrk).exists():
        sys.exit(f"wrk not found at {args.wrk} (Debian/Ubuntu: apt-get install wrk)")

    hw = common.print_hardware()
    bodies = common.dataset(args.records)
    print(
        f"B1: POST /logs, one record per request, wrk -t{args.threads} -c{args.connections} -d{args.duration} "
        f"--latency, {args.records:,} distinct real records, durability {args.durability}, {args.rounds} round(s)",
        flush=True,
    )
    rows = [one_round(args, bodies, n) for n in range(1, args.rounds + 1)]
    summary = {key: common.median([r[key] for r in rows]) for key in ("req_per_s", "p50_ms", "p99_ms", "peak_rss_mib")}
    print(
        f"median of {len(rows)}: {summary['req_per_s']:,.0f} req/s  p50 {summary['p50_ms']:.2f} ms  "
        f"p99 {summary['p99_ms']:.2f} ms  peak RSS {summary['peak_rss_mib']:.1f} MiB "
        f"(max over rounds {max(r['peak_rss_mib'] for r in rows):.1f} MiB)"
    )
    common.write_json(
        args.json, {"workload": "B1", "args": vars(args), "hardware": hw, "rounds": rows, "median": summary}
    )


if __name__ == "__main__":
    main()
