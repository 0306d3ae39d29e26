"""Searches with OR and groups beside the same words alone, attribute keys (one, dotted) and wildcards,
over HTTP on the 1M-record, 7-day set.

For each search: GET /logs/histogram over the whole set (60 buckets: every match counted, a full scan)
and GET /logs/search (the newest 100). Each line gives what it found, the median wall time of --runs
after one warm-up, and the server's user+system CPU per request (from /proc: on a shared machine the
steadier figure). A search without OR or groups sends the SQL it sent before they existed.

    flock /tmp/loglake-bench.lock .venv/bin/python bench/search_groups.py --data-dir /tmp/loglake-bench/lake-1m
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from common import Server, argument_parser, median, print_hardware, write_json
from rules_bench import ensure_lake

DAY_MS = 86_400_000
SEARCHES = [
    "error",
    "failed",
    "error OR failed",
    "service:openssh-0 failed",
    "service:openssh-0 (failed OR invalid)",
    "-(error OR failed) user",
    "component:labsz",  # one attribute key: the SQL sent before dotted keys read flat ones too
    "component.name:labsz",  # a dotted key: nested keys, or else the one flat key (both read where neither is)
    "service:openssh* component:lab*",  # prefixes
    "*",
]


def measure(data_dir: Path, runs: int) -> list[dict]:
    results = []
    with (
        Server(data_dir=data_dir, extra_args=("--flush-interval-seconds", "0")) as server,
        httpx.Client(base_url=server.url, headers=server.headers, timeout=120) as client,
    ):
        newest = client.post("/query", json={"sql": "SELECT epoch_ms(max(timestamp)) FROM logs"}).json()["rows"][0][0]
        window = {"since": str(newest + 1 - 8 * DAY_MS), "until": str(newest + 1)}
        for q in SEARCHES:
            for path, extra in (("/logs/histogram", {"buckets": "60"}), ("/logs/search", {"limit": "100"})):
                result = timed(server, client, path, window | {"q": q} | extra, runs)
                print(
                    f"{path:16} {q!r:42} found {result['found']:>9,}  median {result['median_ms']:6.0f} ms"
                    f"  server CPU {result['cpu_ms']:6.0f} ms/request",
                    flush=True,
                )
                results.append({"path": path, "q": q} | result)
    return results


def timed(server: Server, client: httpx.Client, path: str, params: dict, runs: int) -> dict:
    """What one GET found, then the median wall time and the server's CPU per request of `runs` more."""

    def get() -> dict:
        response = client.get(path, params=params)
        response.raise_for_status()
        return response.json()

    answer = get()
    seconds, cpu_before = [], server.cpu_seconds()
    for _ in range(runs):
        started = time.perf_counter()
        get()
        seconds.append(time.perf_counter() - started)
    return {
        "found": answer["total"] if "total" in answer else answer["count"],
        "median_ms": median(seconds) * 1000,
        "cpu_ms": (server.cpu_seconds() - cpu_before) / runs * 1000,
    }


def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--data-dir", type=Path, required=True, help="loaded once (its marker file), then reused")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    hardware = print_hardware()
    ensure_lake(args.data_dir, args.rows)
    results = measure(args.data_dir, args.runs)
    write_json(args.json, {"hardware": hardware, "rows": args.rows, "runs": args.runs, "results": results})


if __name__ == "__main__":
    main()
