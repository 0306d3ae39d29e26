"""SQL over records still in the hot store (issue 12): time and peak memory of `loglake query`.

Loads --rows records (make_dataset.py, 7 days) into a fresh data dir's hot store through the library and
flushes nothing, then runs each query below --runs times as `loglake query --data-dir DIR` in a fresh
process, and reports the median wall time, the median CPU time (user + system: steadier than wall time on a
busy machine) and the largest peak RSS (the child's ru_maxrss) of the runs, and how much of that peak the
query added to `SELECT 1`'s (what opening the data dir costs without reading a record). Run it at two
--rows to see which queries' memory or time grows with the hot records; --lake then moves every record into
the lake (`loglake flush --all`) and runs the queries again there, for comparison.

    .venv/bin/python bench/hot_sql.py                                     # 1M records, 3 runs each
    .venv/bin/python bench/hot_sql.py --rows 200000 --runs 1
    .venv/bin/python bench/hot_sql.py --rows 20000 --queries top,top_where --lake   # some queries, hot then lake
    .venv/bin/python bench/hot_sql.py --data-dir /tmp/loglake-bench/hot-1m   # keep (and reuse) the data dir
    .venv/bin/python bench/hot_sql.py --data ~/.cache/loglake-peers/logs-1000000-6a332124ff.ndjson  # side_by_side's set
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from common import LOGLAKE, argument_parser, dataset, median, print_hardware, stream_batches, write_json
from loglake.config import Settings
from loglake.ingest import parse_body
from loglake.model import Limits
from loglake.store.sqlite import SQLiteHotStore

BASELINE = "none"
QUERIES = {
    BASELINE: "SELECT 1",
    "count": "SELECT count(*) FROM logs",
    "Q2": "SELECT count(*) FROM logs WHERE message ILIKE '%error%'",
    "Q3": "SELECT service, severity, count(*) FROM logs GROUP BY ALL",
    "newest": "SELECT log_id, service, message FROM logs ORDER BY timestamp DESC LIMIT 10",
    "top": "SELECT * FROM logs ORDER BY timestamp DESC LIMIT 1000",
    "top_where": "SELECT * FROM logs WHERE severity IN ('error', 'critical') ORDER BY timestamp DESC LIMIT 100",
    "top_other": "SELECT * FROM logs ORDER BY length(message) DESC LIMIT 100",
    "star": "SELECT * FROM logs LIMIT 1000",
    "star_all": "SELECT * FROM logs",  # as many rows as the answer may hold (query_max_rows)
    "window": "SELECT service, max(gap) FROM (SELECT service, timestamp - lag(timestamp) OVER"
    " (PARTITION BY service ORDER BY timestamp) AS gap FROM logs) GROUP BY ALL",
}


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


def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--data-dir", type=Path, help="keep the loaded hot store here; reused")
    parser.add_argument("--data", type=Path, help="an NDJSON set to load instead of make_dataset.py's")
    parser.add_argument("--queries", help=f"comma-separated names of the queries to run (of {', '.join(QUERIES)})")
    parser.add_argument("--lake", action="store_true", help="then flush every record to the lake and run them again")
    args = parser.parse_args()
    names = args.queries.split(",") if args.queries else list(QUERIES)
    if unknown := set(names) - set(QUERIES):
        parser.error(f"no such query: {', '.join(sorted(unknown))}")
    queries = {name: QUERIES[name] for name in [BASELINE, *names] if name in QUERIES}
    hardware = print_hardware()
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="loglake-hot-sql-"))
    marker = data_dir / "bench-hot-loaded.json"
    results: dict = {"rows": args.rows}
    try:
        if marker.exists() and json.loads(marker.read_text())["rows"] == args.rows:
            print(f"reusing {data_dir}: {args.rows:,} records in its hot store")
        else:
            settings = Settings(data_dir=data_dir)
            store = SQLiteHotStore(settings.hot_db_path, durability="process")
            started = time.perf_counter()
            loaded = load(store, args.data or dataset(args.rows), int(time.time() * 1000))
            store.close()
            print(f"loaded {loaded:,} records into the hot store in {time.perf_counter() - started:.1f} s")
            marker.write_text(json.dumps({"rows": args.rows}))
            timed_query(data_dir, QUERIES[BASELINE])  # the first open after the load costs more than the next ones
        results["hot"] = run_queries(data_dir, queries, args.runs)
        if args.lake:
            subprocess.run([*LOGLAKE, "flush", "--all", "--data-dir", str(data_dir)], check=True)
            marker.unlink()  # the hot store is empty now
            print("in the lake:")
            results["lake"] = run_queries(data_dir, queries, args.runs)
    finally:
        if args.data_dir is None:
            shutil.rmtree(data_dir, ignore_errors=True)
    write_json(args.json, {"hardware": hardware, "args": {k: str(v) for k, v in vars(args).items()}, **results})


def run_queries(data_dir: Path, queries: dict[str, str], runs: int) -> dict:
    """Each query `runs` times: median wall and CPU seconds, the largest peak RSS, and its growth over SELECT 1's."""
    results: dict = {}
    for name, sql in queries.items():
        timed = [timed_query(data_dir, sql) for _ in range(runs)]
        seconds, cpu, peak = median([r[0] for r in timed]), median([r[1] for r in timed]), max(r[2] for r in timed)
        grown = peak - results[BASELINE]["peak_rss_mib"] if name != BASELINE else 0.0
        answer = timed[-1][3]["rows"]
        results[name] = {
            "sql": sql,
            "median_s": seconds,
            "median_cpu_s": cpu,
            "peak_rss_mib": peak,
            "over_baseline_mib": grown,
            "rows": len(answer),
        }
        print(
            f"{name:>10}: median {seconds:6.2f} s (CPU {cpu:6.2f} s), peak RSS {peak:5,.0f} MiB (+{grown:4,.0f})"
            f" over {runs} runs, {len(answer):,} rows  ({sql})"
        )
    return results


def timed_query(data_dir: Path, sql: str) -> tuple[float, float, float, dict]:
    """One `loglake query` process: its wall and CPU seconds, its peak RSS in MiB and its JSON answer."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        command = [*LOGLAKE, "query", "--data-dir", str(data_dir), "--format", "json", sql]
        process = subprocess.Popen(command, stdout=out, stderr=err)
        _, status, usage = os.wait4(process.pid, 0)  # the child's own peak RSS, not the benchmark's
        seconds = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        if status:
            raise SystemExit(f"query failed: {sql}\n{err.read().decode()}")
        cpu = usage.ru_utime + usage.ru_stime
        return seconds, cpu, usage.ru_maxrss / 1024, json.loads(out.read())


if __name__ == "__main__":
    main()
