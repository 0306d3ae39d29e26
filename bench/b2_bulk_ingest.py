"""B2 bulk ingest (and M, the server's peak RSS during it).

Sends the --rows record set (default 1,000,000, from make_dataset.py) to POST /logs as NDJSON batches of
--batch records (default 10,000) with 1 and with 4 concurrent senders (threads, one httpx client each,
taking the next unsent batch). The batches are split into bytes before the clock starts, so the client
does not time its own encoding. A record counts only when its batch was answered 201 with the full count.
Each round gets a fresh server and data dir; the report gives records/s and MB/s (10^6 bytes of NDJSON)
per round and the median per sender count, the server's peak RSS (VmHWM) and the server's CPU use.
Any failed batch fails the run.

    .venv/bin/python bench/b2_bulk_ingest.py                          # 1M records, 1 and 4 senders, 3 rounds
    .venv/bin/python bench/b2_bulk_ingest.py --durability process
    .venv/bin/python bench/b2_bulk_ingest.py --rows 100000 --rounds 1   # quick check
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import common


def one_round(args: argparse.Namespace, bodies: list[bytes], senders: int, number: int) -> dict[str, Any]:
    with common.Server(durability=args.durability) as server:
        cpu_before = server.cpu_seconds()
        result = common.bulk_send(server.url, server.headers, bodies, senders)
        server.check_alive()
        cpu = server.cpu_seconds() - cpu_before
        _, peak = server.rss()
        statuses = server.statuses("/logs")
        # Counted once stored: in the hot store (single records, small batches) or in lake parts (bulk).
        committed = sum(v for name, _, v in server.metrics() if name == "loglake_records_ingested_total")
        row = {
            "senders": senders,
            "round": number,
            "records": result.records,
            "seconds": round(result.seconds, 3),
            "records_per_s": round(result.records_per_s, 1),
            "mb_per_s": round(result.mb_per_s, 2),
            "server_cpu_percent": round(100 * cpu / result.seconds, 1),
            "server_statuses": statuses,
            "records_stored": int(committed),
            "peak_rss_mib": round(common.mib(peak), 1),
        }
        print(
            f"senders {senders} round {number}: {row['records_per_s']:>9,.0f} records/s  "
            f"{row['mb_per_s']:6.1f} MB/s  ({row['records']:,} records in {row['seconds']:.2f} s, "
            f"server CPU {row['server_cpu_percent']:.0f}%, peak RSS {row['peak_rss_mib']:.1f} MiB)",
            flush=True,
        )
        problems = list(result.failures[:20])
        expected = sum(body.count(b"\n") for body in bodies)
        if result.records != expected:
            problems.append(f"{result.records:,} of {expected:,} records acknowledged")
        if committed < result.records:
            problems.append(f"{result.records:,} records acknowledged but only {int(committed):,} stored")
        if problems:
            print(f"\nFAILED (senders {senders}, round {number}):\n  " + "\n  ".join(problems), file=sys.stderr)
            print(f"server statuses for /logs: {statuses}\nserver log tail:\n{server.log_tail()}", file=sys.stderr)
            sys.exit(1)
        return row


def main() -> None:
    ap = common.argument_parser(__doc__)
    ap.add_argument("--rows", type=int, default=1_000_000, help="records in the data set (default 1,000,000)")
    ap.add_argument("--batch", type=int, default=10_000, help="records per request (default 10,000)")
    ap.add_argument("--senders", default="1,4", help="comma-separated sender counts (default 1,4)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds per sender count (default 3)")
    ap.add_argument("--durability", choices=("full", "process"), default="full")
    args = ap.parse_args()
    sender_counts = [int(s) for s in args.senders.split(",") if s.strip()]

    hw = common.print_hardware()
    path = common.dataset(args.rows)
    bodies = common.batches(common.read_lines(path), args.batch)
    total = sum(len(b) for b in bodies)
    print(
        f"B2: POST /logs NDJSON, {args.rows:,} records ({total / 1e6:.1f} MB) in {len(bodies)} batches of "
        f"{args.batch:,}, senders {sender_counts}, durability {args.durability}, {args.rounds} round(s) each",
        flush=True,
    )
    rows = []
    summary = {}
    for senders in sender_counts:
        these = [one_round(args, bodies, senders, n) for n in range(1, args.rounds + 1)]
        rows += these
        med = {k: common.median([r[k] for r in these]) for k in ("records_per_s", "mb_per_s", "peak_rss_mib")}
        summary[str(senders)] = med
        print(
            f"senders {senders}: median of {len(these)}: {med['records_per_s']:,.0f} records/s  "
            f"{med['mb_per_s']:.1f} MB/s  peak RSS {med['peak_rss_mib']:.1f} MiB "
            f"(max {max(r['peak_rss_mib'] for r in these):.1f} MiB)",
            flush=True,
        )
    common.write_json(
        args.json, {"workload": "B2", "args": vars(args), "hardware": hw, "rounds": rows, "median": summary}
    )


if __name__ == "__main__":
    main()
