"""Sustained bulk ingest: does the lake keep up while records keep coming?

Sends the --rows record set (default 10,000,000, from make_dataset.py; ~2 GB, built once) to a default `loglake
serve` (background flush and compaction on, as shipped) as NDJSON batches of --batch records from --senders threads,
read from the file as they are sent. Every --every seconds it prints the records acknowledged so far, the rate over
that stretch, the lake's file count (what a query has to open), the records still in the hot store, the server's RSS
and its children's (the merge worker). At the end of the ingest it reports the peak RSS of the server alone (VmHWM)
and of the server with its children (their sum, sampled every second), the CPU seconds each used meanwhile, the
server's by thread group per record (its /metrics' loglake_thread_cpu_seconds_total: what ingest, writing and
merging each cost) and the machine's idle share. Then it asks Q2 (substring count) and Q3 (count by service and
severity) right after the ingest, stops the server, runs `loglake flush --all` (which leaves every day compacted),
restarts it and asks them again: the ratio says what a query pays for a lake that is still being merged.

    .venv/bin/python bench/sustained_ingest.py                      # 10M records, 4 senders
    .venv/bin/python bench/sustained_ingest.py --rows 1000000       # the same at 1M, to compare rates
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import httpx

import common

QUERIES = {
    "Q2": "SELECT count(*) FROM logs WHERE message ILIKE '%error%'",
    "Q3": "SELECT service, severity, count(*) FROM logs GROUP BY ALL",
}


def query_times(server: common.Server, reps: int = 5) -> dict[str, float]:
    """Median ms per query, after one warm-up."""
    out = {}
    with httpx.Client(base_url=server.url, headers=server.headers, timeout=600) as client:
        for name, sql in QUERIES.items():
            times = []
            for _ in range(reps + 1):
                began = time.perf_counter()
                response = client.post("/query", json={"sql": sql, "limit": 10000})
                response.raise_for_status()
                times.append(1000 * (time.perf_counter() - began))
            out[name] = round(statistics.median(times[1:]), 1)
            print(f"  {name}: {', '.join(f'{t:.0f}' for t in times)} ms", flush=True)
    return out


def lake_gauges(server: common.Server) -> dict[str, float]:
    found = {"files": 0.0, "hot": 0.0}
    for name, labels, value in server.metrics():
        if name == "loglake_lake_files" and labels.get("table") == "logs":
            found["files"] = value
        elif name == "loglake_hot_records":
            found["hot"] = value
    return found


def watch(
    server: common.Server, acked: list[int], every: float, stop: threading.Event, rows: list, peaks: dict
) -> None:
    began, last_count, last_time = time.perf_counter(), 0, time.perf_counter()
    while not stop.wait(min(every, 1.0)):  # RSS sampled every second, progress printed every `every`
        assert server.process is not None
        rss, _ = server.rss()
        children, children_peak = common.children_rss(server.process.pid)
        peaks["together_kib"] = max(peaks.get("together_kib", 0), rss + children)
        peaks["children_kib"] = max(peaks.get("children_kib", 0), children_peak)
        now, count = time.perf_counter(), acked[0]
        if now - last_time < every - 0.5:
            continue
        gauges = lake_gauges(server)
        row = {
            "t_s": round(now - began, 1),
            "acked": count,
            "rate": round((count - last_count) / (now - last_time)),
            "lake_files": int(gauges["files"]),
            "hot_records": int(gauges["hot"]),
            "rss_mib": round(common.mib(rss)),
            "children_rss_mib": round(common.mib(children)),
        }
        rows.append(row)
        print(
            f"{row['t_s']:7.1f} s  {count:>11,} acked  {row['rate']:>9,} rec/s  {row['lake_files']:>5} lake files  "
            f"{row['hot_records']:>9,} hot  RSS {row['rss_mib']} MiB + children {row['children_rss_mib']} MiB",
            flush=True,
        )
        last_count, last_time = count, now


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--senders", type=int, default=4)
    parser.add_argument("--every", type=float, default=10.0, help="seconds between progress lines")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    common.print_hardware()
    data = common.dataset(args.rows)
    result: dict[str, Any] = {"args": vars(args) | {"json": str(args.json)}, "progress": []}
    server = common.Server(keep_data=True, access_log="-").start()
    try:
        acked = [0]
        assert server.process is not None
        cpu_at_start = {"server": server.cpu_seconds(), "children": common.children_cpu_seconds(server.process.pid)}
        threads_at_start = server.thread_cpu()
        idle = common.MachineIdle().start()
        stop = threading.Event()
        peaks: dict[str, int] = {}
        watcher = threading.Thread(target=watch, args=(server, acked, args.every, stop, result["progress"], peaks))
        watcher.start()
        try:
            sent = common.bulk_send(
                server.url, server.headers, common.stream_batches(data, args.batch), args.senders, progress=acked
            )
        finally:
            stop.set()
            watcher.join()
        _, peak = server.rss()
        assert server.process is not None
        cpu = {"server": server.cpu_seconds(), "children": common.children_cpu_seconds(server.process.pid)}
        idle_share = idle.share()
        threads = common.thread_cpu_per_record(threads_at_start, server.thread_cpu(), max(sent.records, 1))
        result["ingest"] = {
            "records": sent.records,
            "seconds": round(sent.seconds, 1),
            "records_per_s": round(sent.records_per_s),
            "failures": sent.failures[:10],
            "peak_rss_mib": round(common.mib(peak)),
            "peak_children_rss_mib": round(common.mib(peaks.get("children_kib", 0))),
            "peak_rss_with_children_mib": round(common.mib(peaks.get("together_kib", 0))),
            "cpu_s": {who: round(seconds - cpu_at_start[who], 1) for who, seconds in cpu.items()},
            "threads_cpu_us_per_record": threads,
            "machine_idle": round(idle_share, 3),
            "lake_files_at_end": int(lake_gauges(server)["files"]),
        }
        print(f"ingest: {json.dumps(result['ingest'])}", flush=True)
        result["queries_right_after"] = query_times(server)
        print(f"right after ingest: {result['queries_right_after']}", flush=True)
        data_dir = server.data_dir
        server.stop()
        began = time.perf_counter()
        subprocess.run([*common.LOGLAKE, "flush", "--all", "--data-dir", str(data_dir)], check=True)
        result["flush_all_s"] = round(time.perf_counter() - began, 1)
        server = common.Server(data_dir=data_dir, access_log="-").start()
        result["queries_compacted"] = query_times(server)
        print(f"after flush --all: {result['queries_compacted']} ({result['flush_all_s']} s)", flush=True)
        result["ratio"] = {
            q: round(result["queries_right_after"][q] / result["queries_compacted"][q], 2) for q in QUERIES
        }
        print(f"right after / compacted: {result['ratio']}", flush=True)
    finally:
        server.stop()
        shutil.rmtree(server.data_dir, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
