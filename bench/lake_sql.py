"""The lake workloads of issue 3 on the 10M-record set: flush, compaction, lake size, Q1, Q2, Q3.

Loads --rows records (make_dataset.py, 7 days) into a fresh data dir through the library (no HTTP),
then, timing each step:
  flush       Lake.flush(everything=True): every record from the hot store into the lake
  compact     Lake.compact(): each day's flush files merged into one file per ~128 MB
  size        the lake's bytes (after the flush and after compaction) against the NDJSON's
  Q2          SELECT count(*) FROM logs WHERE message ILIKE '%error%'      (through QueryEngine.query)
  Q3          SELECT service, severity, count(*) FROM logs GROUP BY ALL
  Q1          LogService.recent: the last 100 of one service in the set's last 24 h, cycling services
Queries run --runs times after one warm-up; medians are reported (Q1: p50/p99 of --q1-requests).
Q1 is timed in process, then through GET /logs/recent on a server started on the same data dir.

    .venv/bin/python bench/lake_sql.py                                  # 10M, ~6 min with the data set cached
    .venv/bin/python bench/lake_sql.py --rows 1000000 --runs 3
    .venv/bin/python bench/lake_sql.py --data-dir /tmp/loglake-bench/lake-10m   # keep (and reuse) the lake
"""

from __future__ import annotations

import gc
import itertools
import json
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from common import Server, argument_parser, dataset, median, percentile, print_hardware, stream_batches, write_json
from loglake.config import Settings
from loglake.ingest import parse_body
from loglake.lake.lake import Lake
from loglake.lake.query_answers import QueryResult
from loglake.model import Limits
from loglake.recent_params import parse_recent_params
from loglake.service import LogService
from loglake.store.sqlite import SQLiteHotStore

Q2 = "SELECT count(*) FROM logs WHERE message ILIKE '%error%'"
Q3 = "SELECT service, severity, count(*) FROM logs GROUP BY ALL"


def load(store: SQLiteHotStore, path: Path, now_ms: int) -> int:
    loaded, pending = 0, []
    for body in stream_batches(path, 10_000):
        records = parse_body(body, True, Limits(max_future_ms=10 * 365 * 86_400_000), now_ms)[0]
        pending.append(store.submit(records))
        loaded += len(records)
        if len(pending) > 8:
            pending.pop(0).result()
    for future in pending:
        future.result()
    return loaded


def lake_bytes(store: SQLiteHotStore) -> int:
    """The bytes of the lake's files in its catalog (replaced files wait out a grace period on disk)."""
    return store.read("SELECT coalesce(sum(bytes), 0) FROM lake_files")[0][0]


def timed(runs: int, fn: Callable[[], QueryResult]) -> tuple[list[float], QueryResult]:
    fn()
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        result = fn()
        seconds.append(time.perf_counter() - started)
    return seconds, result


def q1_over_http(data_dir: Path, services: list[str], newest_ms: int, requests: int) -> list[float]:
    """Q1 through the API: a server on the lake (its own background job off), sequential requests."""
    window = {"since": str(newest_ms - 86_400_000), "until": str(newest_ms + 1), "limit": 100}
    plan = [window | {"service": name} for name in services]
    latencies = []
    with (
        Server(data_dir=data_dir, extra_args=("--flush-interval-seconds", "0")) as server,
        httpx.Client(base_url=server.url, headers=server.headers, timeout=30) as client,
    ):
        for params in plan:
            client.get("/logs/recent", params=params)
        for params in itertools.islice(itertools.cycle(plan), requests):
            started = time.perf_counter()
            response = client.get("/logs/recent", params=params)
            latencies.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200 and response.json()["count"] == 100, response.text
    return latencies


def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=5, help="timed runs of Q2 and Q3 (default 5)")
    parser.add_argument("--q1-requests", type=int, default=1000)
    parser.add_argument("--data-dir", type=Path, help="keep the loaded, flushed and compacted lake here; reused")
    args = parser.parse_args()
    hardware = print_hardware()
    path = dataset(args.rows)
    raw_bytes = path.stat().st_size
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="loglake-lake-bench-"))
    marker = data_dir / "bench-lake-loaded.json"
    results: dict = {"rows": args.rows, "raw_bytes": raw_bytes}
    gc.set_threshold(50_000, 20, 20)
    try:
        settings = Settings(data_dir=data_dir, flush_interval_seconds=0)
        store = SQLiteHotStore(settings.hot_db_path, durability="process")
        lake = Lake.from_settings(settings, store)
        if marker.exists() and json.loads(marker.read_text())["rows"] == args.rows:
            results |= json.loads(marker.read_text())
            print(f"reusing {data_dir}: {args.rows:,} records loaded, flushed and compacted before")
        else:
            started = time.perf_counter()
            loaded = load(store, path, int(time.time() * 1000))
            print(f"loaded {loaded:,} records into the hot store in {time.perf_counter() - started:.1f} s")
            with lake.maintenance():
                flushed = lake.flush(everything=True)
                after_flush = lake_bytes(store)
                compacted = lake.compact()
            results |= {
                "flush_records_per_s": flushed.records / flushed.seconds,
                "flush_seconds": flushed.seconds,
                "flush_files": len(flushed.objects),
                "bytes_after_flush": after_flush,
                "compact_seconds": compacted.seconds,
                "bytes_after_compaction": lake_bytes(store),
                "rows": args.rows,
            }
            marker.write_text(json.dumps(results))
        rate, seconds = results["flush_records_per_s"], results["flush_seconds"]
        print(
            f"flush: {rate:,.0f} records/s ({args.rows:,} in {seconds:.1f} s, {results['flush_files']} files);"
            f" compaction {results['compact_seconds']:.1f} s"
        )
        for label, size in (
            ("after flush", results["bytes_after_flush"]),
            ("after compaction", results["bytes_after_compaction"]),
        ):
            print(
                f"lake {label}: {size / 1e6:,.1f} MB = {100 * size / raw_bytes:.2f}% of the NDJSON"
                f" ({raw_bytes / 1e6:,.0f} MB)"
            )

        for name, sql in (("Q2", Q2), ("Q3", Q3)):
            seconds, result = timed(args.runs, lambda sql=sql: lake.engine.query(sql))
            results[name] = {"median_s": median(seconds), "runs_s": seconds, "bytes_scanned": result.bytes_scanned}
            print(f"{name}: median {median(seconds):.3f} s over {args.runs} runs  ({sql})")

        service = LogService(store, clock=time.time, lake=lake)
        newest = store.read("SELECT max(max_ts) FROM lake_files")[0][0]
        names = [row[0] for row in lake.engine.query("SELECT DISTINCT service FROM logs ORDER BY 1").rows]
        queries = [
            parse_recent_params({"service": name, "since": str(newest - 86_400_000), "until": str(newest + 1)}, newest)
            for name in names
        ]
        for query in queries:
            service.recent(query)
        latencies = []
        for query in itertools.islice(itertools.cycle(queries), args.q1_requests):
            started = time.perf_counter()
            page = service.recent(query)
            latencies.append((time.perf_counter() - started) * 1000)
            assert len(page.records) == 100 and {r.service for r in page.records} == {query.service}
        results["Q1"] = {"p50_ms": percentile(latencies, 50), "p99_ms": percentile(latencies, 99)}
        print(
            f"Q1 (in process, {len(names)} services, last 24 h, limit 100): p50 {percentile(latencies, 50):.2f} ms,"
            f" p99 {percentile(latencies, 99):.2f} ms over {args.q1_requests} requests"
        )
        lake.close()
        store.close()
        http = q1_over_http(data_dir, [q.service for q in queries], newest, args.q1_requests)
        results["Q1_http"] = {"p50_ms": percentile(http, 50), "p99_ms": percentile(http, 99)}
        print(
            f"Q1 (GET /logs/recent on a server, one keep-alive client): p50 {percentile(http, 50):.2f} ms,"
            f" p99 {percentile(http, 99):.2f} ms over {len(http)} requests"
        )
    finally:
        if args.data_dir is None:
            shutil.rmtree(data_dir, ignore_errors=True)
    write_json(args.json, {"hardware": hardware, "args": {k: str(v) for k, v in vars(args).items()}, **results})


if __name__ == "__main__":
    main()
