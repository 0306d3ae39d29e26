"""`ask`'s own work on the 10M-record set (issue 14's target), in process, through the real library:

  prompt + estimate   building the model's prompt from the live catalog (tables, columns, sample values from
                      the footers and the hot store, the time) and estimating an answer's SQL (DuckDB's plan,
                      the catalog's files, the footers' row groups): the work `ask` adds to the model's own
                      time for each answer. Target: under 200 ms together. Reported warm (footers and views
                      known, as in a running server), median and slowest of --runs per query, and cold (a
                      new engine and empty footer cache: the first question after a start).
  accuracy            each query's estimate against the bytes DuckDB reports reading when it runs (warm).

The lake is the one bench/rules_bench.py and bench/lake_sql.py load (records through the hot store,
flushed and compacted), reused from --data-dir when it holds --rows records:

    flock /tmp/loglake-bench.lock .venv/bin/python bench/ask_bench.py --data-dir /tmp/loglake-bench/lake-10m
"""

from __future__ import annotations

import time
from pathlib import Path

from common import argument_parser, median, print_hardware, write_json
from loglake.ask.estimate import Estimator
from loglake.ask.footers import Footers
from loglake.ask.prompt import PromptBuilder
from loglake.config import Settings
from loglake.lake.lake import Lake
from loglake.store.sqlite import SQLiteHotStore
from rules_bench import ensure_lake

DAY_MS = 86_400_000


def queries(last_day: str, previous_day: str) -> list[str]:
    """Answers of the kinds a model writes for everyday questions, over the set's last days."""
    return [
        f"SELECT date_trunc('hour', timestamp) AS hour, count(*) AS errors FROM logs WHERE severity = 'error'"
        f" AND timestamp >= TIMESTAMP '{last_day} 00:00:00' GROUP BY 1 ORDER BY 1 LIMIT 1000",
        f"SELECT service, count(*) FROM logs WHERE date = DATE '{previous_day}' GROUP BY 1 ORDER BY 2 DESC LIMIT 100",
        f"SELECT timestamp, service, message FROM logs WHERE message ILIKE '%failed password%'"
        f" AND timestamp >= TIMESTAMP '{last_day} 06:00:00' AND timestamp < TIMESTAMP '{last_day} 07:00:00'"
        " ORDER BY timestamp DESC LIMIT 100",
        "SELECT service, severity, count(*) FROM logs GROUP BY ALL ORDER BY 3 DESC LIMIT 100",
        "SELECT count(*) FROM logs WHERE service = 'openssh-0' AND message ILIKE '%invalid user%' LIMIT 10",
    ]


def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/loglake-bench/lake-10m"))
    args = parser.parse_args()
    hardware = print_hardware()
    ensure_lake(args.data_dir, args.rows)
    settings = Settings(data_dir=args.data_dir, flush_interval_seconds=0)
    store = SQLiteHotStore(settings.hot_db_path, durability="process")
    lake = Lake.from_settings(settings, store)
    newest, days, files = store.read("SELECT max(max_ts), count(DISTINCT day), count(*) FROM lake_files")[0]
    (last_day, previous_day), now_ms = _last_days(store), newest + 3_600_000
    sqls = queries(last_day, previous_day)
    print(f"lake: {files} files over {days} days, {store.count():,} hot records; now = newest record + 1 h")

    started = time.perf_counter()
    footers = Footers(lake.objects)
    builder, estimator = PromptBuilder(lake.engine, footers), Estimator(lake.engine, footers)
    builder.build(now_ms, "Europe/Berlin", settings.query_max_rows)
    estimator.estimate(sqls[0])
    cold_ms = (time.perf_counter() - started) * 1000
    print(f"cold (new engine, no footer read yet): prompt + estimate {cold_ms:,.0f} ms")

    results: dict = {"rows": args.rows, "cold_ms": cold_ms, "queries": []}
    for sql in sqls:
        timings, prompt_ms, estimate_ms = [], [], []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            prompt = builder.build(now_ms, "Europe/Berlin", settings.query_max_rows)
            t1 = time.perf_counter()
            estimate = estimator.estimate(sql)
            t2 = time.perf_counter()
            prompt_ms.append((t1 - t0) * 1000)
            estimate_ms.append((t2 - t1) * 1000)
            timings.append((t2 - t0) * 1000)
        lake.engine.query(sql)
        real = lake.engine.query(sql).bytes_scanned
        ratio = estimate.bytes / real if real else float("nan")
        entry = {
            "sql": sql,
            "together_ms": timings,
            "prompt_ms_median": median(prompt_ms),
            "estimate_ms_median": median(estimate_ms),
            "estimated_bytes": estimate.bytes,
            "estimated_files": estimate.files,
            "real_bytes": real,
            "prompt_chars": len(prompt.system),
        }
        results["queries"].append(entry)
        print(
            f"prompt + estimate median {median(timings):6.1f} ms, slowest {max(timings):6.1f} ms"
            f" (prompt {median(prompt_ms):5.1f}, estimate {median(estimate_ms):5.1f});"
            f" estimate {estimate.bytes:>12,} B in {estimate.files} files, DuckDB read {real:>12,} B"
            f" ({ratio:.3f}); {sql[:60]}..."
        )
    together = [t for q in results["queries"] for t in q["together_ms"]]
    print(f"all queries: median {median(together):.1f} ms, slowest {max(together):.1f} ms (target 200 ms)")
    lake.close()
    store.close()
    write_json(args.json, {"hardware": hardware, "args": vars(args) | {"data_dir": str(args.data_dir)}, **results})


def _last_days(store: SQLiteHotStore) -> tuple[str, str]:
    """The set's last two whole days (its last partition holds a record or two past midnight)."""
    days = store.read("SELECT day FROM lake_files GROUP BY day HAVING sum(records) > 100000 ORDER BY day DESC LIMIT 2")
    return days[0][0], days[-1][0]


if __name__ == "__main__":
    main()
