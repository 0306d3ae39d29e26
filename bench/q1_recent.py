"""Q1 recent: latency of GET /logs/recent (last 100 of one service) with >= 5M records stored.

Loads --rows records (default 5,000,000; make_dataset.py with --days 1, so they span one day) into a data
dir with B2-style bulk posts (--load-senders threads, NDJSON batches of 10,000), restarts the server on
that data dir, then times sequential requests from one keep-alive httpx client: a warm-up, then
--requests requests per query kind, and reports p50/p90/p99/max in ms. Query kinds:

  service       ?service=S&limit=100   cycling through the data set's services (the Q1 workload)
  all           ?limit=100             no filter
  min_error     ?min_severity=error&limit=100
  service_error ?service=S&min_severity=error&limit=100   (the services that have error records)
  healthz       GET /healthz           the floor: HTTP + client overhead with no query

The data set's time stamps lie in the past, and the endpoint's default window is the last 24 h from now,
so every query passes explicit since/until covering the data set's range. Every response is checked
(200, `limit` records unless fewer match, all matching the filter, newest first) outside the timing.

Loading takes a while; --data-dir keeps the loaded data and a later run with the same --data-dir and
--rows reuses it (a marker file in it records what was loaded).

    .venv/bin/python bench/q1_recent.py --data-dir /tmp/loglake-bench/q1-5m          # load once, then query
    .venv/bin/python bench/q1_recent.py --data-dir /tmp/loglake-bench/q1-5m          # reuses the loaded data
    .venv/bin/python bench/q1_recent.py --rows 300000 --requests 500                  # quick check
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import msgspec

import common

MARKER = "bench-q1-loaded.json"
SEVERITIES = ("debug", "info", "warning", "error", "critical")


class Record(msgspec.Struct):
    timestamp: int
    service: str
    severity: str


class Page(msgspec.Struct):
    count: int
    logs: list[Record]
    next_cursor: str | None = None


def span_and_services(path: Path, scan: int = 200_000) -> tuple[int, int, dict[str, set[str]]]:
    """First and last time stamp of the data set, and each service's severities seen in its first `scan` lines."""
    services: dict[str, set[str]] = {}
    first = None
    with path.open("rb") as f:
        for n, line in enumerate(f):
            if n >= scan:
                break
            record = json.loads(line)
            first = record["timestamp"] if first is None else first
            services.setdefault(record["service"], set()).add(record["severity"])
        f.seek(max(0, path.stat().st_size - 65536))
        last = json.loads(f.read().splitlines()[-1])["timestamp"]
    if first is None:
        sys.exit(f"empty data set {path}")
    return first, last, services


def load(args: argparse.Namespace, path: Path, data_dir: Path) -> dict[str, Any]:
    """Bulk-load the data set into data_dir (which must be new or empty) and leave a marker."""
    if data_dir.exists() and any(data_dir.iterdir()):
        sys.exit(f"{data_dir} is not empty and holds no {MARKER}: not loading into it (pick a new --data-dir)")
    print(f"loading {args.rows:,} records into {data_dir} with {args.load_senders} sender(s) ...", flush=True)
    with common.Server(data_dir=data_dir, durability=args.durability) as server:
        result = common.bulk_send(
            server.url, server.headers, common.stream_batches(path, args.batch), args.load_senders
        )
        server.check_alive()
        _, peak = server.rss()
        if result.failures or result.records != args.rows:
            print("\n".join(result.failures[:20]), file=sys.stderr)
            print(f"server log tail:\n{server.log_tail()}", file=sys.stderr)
            sys.exit(f"load failed: {result.records:,} of {args.rows:,} records acknowledged")
    info = {
        "dataset": path.name,
        "rows": result.records,
        "load_seconds": round(result.seconds, 1),
        "load_records_per_s": round(result.records_per_s, 1),
        "load_peak_rss_mib": round(common.mib(peak), 1),
    }
    (data_dir / MARKER).write_text(json.dumps(info, indent=2) + "\n")
    print(
        f"loaded {result.records:,} records in {result.seconds:.1f} s ({result.records_per_s:,.0f} records/s, "
        f"server peak RSS {common.mib(peak):.1f} MiB)",
        flush=True,
    )
    return info


def check(kind: str, params: dict[str, Any], page: Page, limit: int, newest: int) -> str | None:
    """Why this response is wrong, or None."""
    if page.count != len(page.logs):
        return f"count {page.count} but {len(page.logs)} logs"
    if page.count != limit and page.next_cursor is not None:
        return f"{page.count} records (limit {limit}) but a next_cursor"
    if page.count == 0:
        return "no records"
    stamps = [r.timestamp for r in page.logs]
    if stamps != sorted(stamps, reverse=True):
        return "records are not newest first"
    if not all(params["since"] <= t < params["until"] for t in stamps):
        return "a record outside since/until"
    if "service" in params and any(r.service != params["service"] for r in page.logs):
        return f"a record of another service than {params['service']}"
    if "min_severity" in params:
        floor = SEVERITIES.index(params["min_severity"])
        if any(SEVERITIES.index(r.severity) < floor for r in page.logs):
            return f"a record below {params['min_severity']}"
    if kind == "all" and stamps[0] != newest:
        return f"newest record has timestamp {stamps[0]}, the data set's newest is {newest}"
    return None


def measure(
    client: httpx.Client, kind: str, variants: list[dict[str, Any]], count: int, warmup: int, newest: int
) -> dict[str, Any]:
    decode = msgspec.json.Decoder(Page).decode
    path = "/healthz" if kind == "healthz" else "/logs/recent"
    timings = []
    for n in range(warmup + count):
        params = variants[n % len(variants)]
        began = time.perf_counter()
        response = client.get(path, params=params)
        elapsed = time.perf_counter() - began
        if response.status_code != 200:
            sys.exit(f"{kind}: GET {path} {params} -> HTTP {response.status_code}: {response.text[:500]}")
        if kind != "healthz":
            problem = check(kind, params, decode(response.content), params["limit"], newest)
            if problem:
                sys.exit(f"{kind}: GET {path} {params}: {problem}")
        if n >= warmup:
            timings.append(elapsed * 1000)
    return {
        "kind": kind,
        "requests": len(timings),
        "p50_ms": round(common.percentile(timings, 50), 3),
        "p90_ms": round(common.percentile(timings, 90), 3),
        "p99_ms": round(common.percentile(timings, 99), 3),
        "max_ms": round(max(timings), 3),
        "mean_ms": round(sum(timings) / len(timings), 3),
    }


def run(
    args: argparse.Namespace, path: Path, data_dir: Path, first: int, last: int, services: dict[str, set[str]]
) -> tuple[dict[str, Any], list[dict[str, Any]], int]:
    """Load (or reuse) the data dir, then measure every query kind on a freshly started server."""
    marker = data_dir / MARKER
    if marker.exists():
        info = json.loads(marker.read_text())
        if info.get("dataset") != path.name:
            sys.exit(f"{data_dir} holds {info.get('dataset')}, not {path.name}: pick another --data-dir")
        print(f"reusing {data_dir}: {info['rows']:,} records of {info['dataset']} loaded before", flush=True)
    else:
        info = load(args, path, data_dir)

    window = {"since": first, "until": last + 1, "limit": args.limit}
    erring = sorted(s for s, severities in services.items() if severities & {"error", "critical"})
    print(
        f"Q1: GET /logs/recent limit={args.limit} at {info['rows']:,} stored records, since/until = the data "
        f"set's span ({(last - first) / 3_600_000:.1f} h), {len(services)} services, {args.warmup} warm-up + "
        f"{args.requests} timed sequential requests per kind, one keep-alive client",
        flush=True,
    )
    kinds = {
        "service": [{"service": s, **window} for s in sorted(services)],
        "all": [window],
        "min_error": [{"min_severity": "error", **window}],
        "service_error": [{"service": s, "min_severity": "error", **window} for s in erring],
        "healthz": [{}],
    }
    results = []
    with common.Server(data_dir=data_dir, durability=args.durability) as server:
        with httpx.Client(base_url=server.url, headers=server.headers, timeout=60.0) as client:
            for kind, variants in kinds.items():
                row = measure(client, kind, variants, args.requests, args.warmup, last)
                results.append(row)
                print(
                    f"{kind:<14} p50 {row['p50_ms']:7.2f} ms  p90 {row['p90_ms']:7.2f} ms  "
                    f"p99 {row['p99_ms']:7.2f} ms  max {row['max_ms']:7.2f} ms  ({row['requests']} requests)",
                    flush=True,
                )
        server.check_alive()
        _, peak = server.rss()
    print(f"server peak RSS while querying: {common.mib(peak):.1f} MiB", flush=True)
    return info, results, peak


def main() -> None:
    ap = common.argument_parser(__doc__)
    ap.add_argument("--rows", type=int, default=5_000_000, help="records to store (default 5,000,000)")
    ap.add_argument("--days", type=float, default=1.0, help="make_dataset.py --days (default 1)")
    ap.add_argument("--data-dir", type=Path, help="keep the loaded data here; reused when it was loaded before")
    ap.add_argument("--load-senders", type=int, default=2, help="concurrent bulk senders while loading (default 2)")
    ap.add_argument("--batch", type=int, default=10_000, help="records per bulk request while loading")
    ap.add_argument("--durability", choices=("full", "process"), default="full")
    ap.add_argument("--requests", type=int, default=2000, help="timed requests per query kind (default 2000)")
    ap.add_argument("--warmup", type=int, default=200, help="untimed requests per query kind first (default 200)")
    ap.add_argument("--limit", type=int, default=100)
    args = ap.parse_args()

    hw = common.print_hardware()
    path = common.dataset(args.rows, days=args.days)
    first, last, services = span_and_services(path)

    keep = args.data_dir is not None
    data_dir = args.data_dir or common.RUNS_DIR / f"q1-{args.rows}-{time.monotonic_ns()}"
    try:
        info, results, peak = run(args, path, data_dir, first, last, services)
    finally:
        if not keep:
            shutil.rmtree(data_dir, ignore_errors=True)
    if keep:
        print(f"data kept in {data_dir} (reuse it with --data-dir {data_dir})")
    common.write_json(
        args.json,
        {
            "workload": "Q1",
            "args": {k: str(v) for k, v in vars(args).items()},
            "hardware": hw,
            "load": info,
            "query_peak_rss_mib": round(common.mib(peak), 1),
            "results": results,
        },
    )


if __name__ == "__main__":
    main()
