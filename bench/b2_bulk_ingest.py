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
    .venv/bin/python bench/b2_bulk_ingest.py --senders 4 --rounds 1 --gil-profile /tmp/b2-gil

--gil-profile DIR attaches py-spy (from the venv) to the server for each round's send, sampling only the
thread that holds the GIL (`py-spy record --gil --threads --nonblocking`, raw stacks into DIR), and reports
the time the GIL was held per record: samples / rate / records (an upper bound on a loaded machine, where
the holder can wait for a core), split by thread (the event loop, ingest, bulk writers...).
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import common


def one_round(args: argparse.Namespace, bodies: list[bytes], senders: int, number: int) -> dict[str, Any]:
    with common.Server(durability=args.durability) as server:
        profile = None if args.gil_profile is None else Path(args.gil_profile, f"senders-{senders}-round-{number}.txt")
        spy = None if profile is None else _start_gil_profile(server, profile)
        cpu_before = server.cpu_seconds()
        result = common.bulk_send(server.url, server.headers, bodies, senders)
        cpu = server.cpu_seconds() - cpu_before
        gil_us = None if spy is None or profile is None else _gil_us_per_record(spy, profile, result.records)
        server.check_alive()
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
            "server_cpu_s_per_million": round(cpu * 1e6 / max(result.records, 1), 2),
            "gil_us_per_record": gil_us,
        }
        print(
            f"senders {senders} round {number}: {row['records_per_s']:>9,.0f} records/s  "
            f"{row['mb_per_s']:6.1f} MB/s  ({row['records']:,} records in {row['seconds']:.2f} s, "
            f"server CPU {row['server_cpu_percent']:.0f}%, peak RSS {row['peak_rss_mib']:.1f} MiB)"
            + ("" if gil_us is None else f"\n  GIL held {gil_us['total']:.2f} us/record: {_by_thread(gil_us)}"),
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


GIL_SAMPLES_PER_S = 500


def _start_gil_profile(server: common.Server, out: Path) -> subprocess.Popen:
    assert server.process is not None
    out.parent.mkdir(parents=True, exist_ok=True)
    spy = [str(Path(sys.executable).with_name("py-spy")), "record", "--gil", "--threads", "--nonblocking", "-f", "raw"]
    process = subprocess.Popen(
        [*spy, "--rate", str(GIL_SAMPLES_PER_S), "--pid", str(server.process.pid), "-o", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.0)  # py-spy takes a moment to attach; the idle server holds no GIL meanwhile
    return process


def _gil_us_per_record(spy: subprocess.Popen, out: Path, records: int) -> dict[str, float]:
    """Stop py-spy (it writes its profile on SIGINT): the GIL holder's samples as time per record, in all
    ("total") and per thread (its name without the pool's number: loglake-ingest, loglake-bulk...)."""
    spy.send_signal(signal.SIGINT)
    spy.wait(timeout=60)
    samples: Counter[str] = Counter()
    for line in out.read_text().splitlines():
        if line.strip():
            stack, count = line.rsplit(" ", 1)
            thread = stack.split(";", 1)[0].split(": ", 1)[-1].strip('"').rstrip("0123456789_")
            samples[thread] += int(count)
    us = {thread: round(n / GIL_SAMPLES_PER_S / max(records, 1) * 1e6, 2) for thread, n in samples.most_common()}
    return {"total": round(sum(us.values()), 2), **us}


def _by_thread(gil_us: dict[str, float]) -> str:
    return ", ".join(f"{thread} {us:.2f}" for thread, us in gil_us.items() if thread != "total")


def main() -> None:
    ap = common.argument_parser(__doc__)
    ap.add_argument("--rows", type=int, default=1_000_000, help="records in the data set (default 1,000,000)")
    ap.add_argument("--batch", type=int, default=10_000, help="records per request (default 10,000)")
    ap.add_argument("--senders", default="1,4", help="comma-separated sender counts (default 1,4)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds per sender count (default 3)")
    ap.add_argument("--durability", choices=("full", "process"), default="full")
    ap.add_argument("--gil-profile", metavar="DIR", help="sample the GIL holder with py-spy (see above)")
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
