"""SQL over records still in the hot store (issue 12): time and peak memory of `loglake query`.

Loads --rows records (make_dataset.py, 7 days) into a fresh data dir's hot store through the library and
flushes nothing, then runs each query below --runs times as `loglake query --data-dir DIR` in a fresh
process, and reports the median wall time, the median CPU time (user + system: steadier than wall time on a
busy machine) and the largest peak RSS (the child's ru_maxrss) of the runs.
`SELECT 1` shows what opening the data dir costs without reading a record.

    .venv/bin/python bench/hot_sql.py                                     # 1M records, 3 runs each
    .venv/bin/python bench/hot_sql.py --rows 200000 --runs 1
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

QUERIES = {
    "none": "SELECT 1",
    "Q2": "SELECT count(*) FROM logs WHERE message ILIKE '%error%'",
    "Q3": "SELECT service, severity, count(*) FROM logs GROUP BY ALL",
    "newest": "SELECT log_id, service, message FROM logs ORDER BY timestamp DESC LIMIT 10",
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
    args = parser.parse_args()
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
        for name, sql in QUERIES.items():
            runs = [timed_query(data_dir, sql) for _ in range(args.runs)]
            seconds, cpu, peak = median([r[0] for r in runs]), median([r[1] for r in runs]), max(r[2] for r in runs)
            answer = runs[-1][3]["rows"]
            results[name] = {"sql": sql, "median_s": seconds, "median_cpu_s": cpu, "peak_rss_mib": peak, "rows": answer}
            print(
                f"{name}: median {seconds:.2f} s (CPU {cpu:.2f} s), peak RSS {peak:,.0f} MiB over {args.runs} runs"
                f"  ({sql} -> {answer[:3]})"
            )
    finally:
        if args.data_dir is None:
            shutil.rmtree(data_dir, ignore_errors=True)
    write_json(args.json, {"hardware": hardware, "args": {k: str(v) for k, v in vars(args).items()}, **results})


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
