"""`loglake send` in a pipe: how fast it ships a file, and how soon a line written to an open pipe is stored.

Throughput: the --rows data set (default 200,000 records, from make_dataset.py) on the stdin of
`loglake send` (a file, as in `loglake send < records.ndjson`); records/s from the command's start to its
exit, counted only when the server committed them all. Each round gets a fresh server.

Latency: `loglake send --max-wait W` reading a pipe the benchmark keeps open, as `tail -f app.log |
loglake send` does, with one line written every --interval seconds; for each line, the time from writing
it to seeing it in GET /logs/recent (polled every 5 ms). A line waits for its batch up to --max-wait,
then for one request, so that is what to expect. Reported: p50, p99 and max in ms.

    .venv/bin/python bench/send_pipe.py                          # 200k records, 3 rounds; 50 lines at 0.1 s
    .venv/bin/python bench/send_pipe.py --rows 1000000 --rounds 1
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from typing import Any

import httpx

import common


def throughput_round(args: Any, data: Any, number: int) -> dict[str, Any]:
    with common.Server() as server, data.open("rb") as stdin:
        command = [*common.LOGLAKE, "send", "--url", server.url, "--api-key", server.key, "--service", "bench"]
        started = time.perf_counter()
        done = subprocess.run(command, stdin=stdin, capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - started
        committed = sum(v for name, _, v in server.metrics() if name == "loglake_records_ingested_total")
    if done.returncode != 0 or committed != args.rows:
        sys.exit(
            f"round {number} failed: exit {done.returncode}, {committed:,.0f} of {args.rows:,} committed\n{done.stderr}"
        )
    row = {
        "round": number,
        "records": args.rows,
        "seconds": round(seconds, 3),
        "records_per_s": round(args.rows / seconds),
    }
    print(
        f"throughput round {number}: {row['records_per_s']:>9,} records/s ({args.rows:,} in {seconds:.2f} s)",
        flush=True,
    )
    return row


def newest_message(client: httpx.Client, service: str) -> str | None:
    logs = client.get("/logs/recent", params={"service": service, "limit": 1}).json()["logs"]
    return logs[0]["message"] if logs else None


def latency(args: Any) -> dict[str, Any]:
    service = f"latency-{uuid.uuid4().hex[:8]}"
    with common.Server() as server:
        read_end, write_end = os.pipe()
        command = [*common.LOGLAKE, "send", "--url", server.url, "--api-key", server.key, "--service", service]
        sender = subprocess.Popen([*command, "--max-wait", str(args.max_wait)], stdin=read_end, stderr=subprocess.PIPE)
        os.close(read_end)
        waits: list[float] = []
        try:
            with httpx.Client(base_url=server.url, headers=server.headers, timeout=10) as client:
                for number in range(1, args.lines + 1):
                    written = time.perf_counter()
                    os.write(write_end, f"line {number}\n".encode())
                    while newest_message(client, service) != f"line {number}":
                        if time.perf_counter() - written > 30:
                            sys.exit(f"line {number} was not stored within 30 s")
                        time.sleep(0.005)
                    waits.append(time.perf_counter() - written)
                    time.sleep(args.interval)
        finally:
            os.close(write_end)
            sender.wait(60)
    result = {
        "lines": args.lines,
        "max_wait_s": args.max_wait,
        "p50_ms": round(common.percentile(waits, 50) * 1000, 1),
        "p99_ms": round(common.percentile(waits, 99) * 1000, 1),
        "max_ms": round(max(waits) * 1000, 1),
    }
    print(
        f"latency (--max-wait {args.max_wait:g}): p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms, "
        f"max {result['max_ms']} ms over {args.lines} lines",
        flush=True,
    )
    return result


def main() -> None:
    parser = common.argument_parser(__doc__)
    parser.add_argument("--rows", type=int, default=200_000, help="records in the file sent")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--lines", type=int, default=50, help="lines written to the open pipe")
    parser.add_argument("--interval", type=float, default=0.1, help="seconds between those lines")
    parser.add_argument("--max-wait", type=float, default=0.2, help="loglake send --max-wait for the latency run")
    args = parser.parse_args()
    hardware = common.print_hardware()
    data = common.dataset(args.rows)
    rounds = [throughput_round(args, data, number) for number in range(1, args.rounds + 1)]
    median = common.median([r["records_per_s"] for r in rounds])
    print(f"throughput median: {median:,.0f} records/s", flush=True)
    waited = latency(args)
    common.write_json(
        args.json,
        {
            "hardware": hardware,
            "args": vars(args),
            "throughput": rounds,
            "median_records_per_s": median,
            "latency": waited,
        },
    )


if __name__ == "__main__":
    main()
