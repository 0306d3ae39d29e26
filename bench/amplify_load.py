"""Amplify access logs: parsing and loading into the lake (issue 4's target: >= 200,000 rows/s).

Writes an export of --rows requests over 14 days in Amplify's real format (escaped header, URL-encoded
user agents, `\\=\\=` request ids; the writer the tests use), then, over --rounds fresh data dirs, times
what a collected window costs after its download: parse the CSV into typed columns, check every row
against the lake for its request id, write the Parquet parts and commit them to the catalog.

    .venv/bin/python bench/amplify_load.py                   # 1M rows, 3 rounds
    .venv/bin/python bench/amplify_load.py --rows 200000 --rounds 1
"""

from __future__ import annotations

import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the tests' log writer

from tests.amplify.logs import access_log, varied_requests

from common import argument_parser, median, print_hardware, write_json
from loglake.amplify.lake_rows import store_rows
from loglake.amplify.parse import parse_access_log
from loglake.amplify.run_reports import AppReport
from loglake.lake.objectstore import LocalObjectStore
from loglake.store.sqlite import SQLiteHotStore

START_MS = 1_792_800_000_000  # 2026-10-24T00:00:00Z
SPAN_MS = 14 * 86_400_000


def one_round(data: bytes) -> dict:
    root = Path(tempfile.mkdtemp(prefix="loglake-amplify-bench-"))
    try:
        store = SQLiteHotStore(root / "hot.db")
        lake = LocalObjectStore(root / "lake")
        started = time.perf_counter()
        parsed = parse_access_log(data)
        parsed_at = time.perf_counter()
        report = AppReport("bench")
        store_rows(store, lake, "bench", [parsed], report, int(time.time() * 1000))
        finished = time.perf_counter()
        store.close()
        lake_bytes = sum(p.stat().st_size for p in (root / "lake").rglob("*.parquet"))
        return {
            "rows": report.rows,
            "seconds": finished - started,
            "parse_seconds": parsed_at - started,
            "load_seconds": finished - parsed_at,
            "lake_bytes": lake_bytes,
        }
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    hardware = print_hardware()
    data = access_log(varied_requests(args.rows, START_MS, SPAN_MS, "bench"))
    print(f"export: {args.rows:,} rows, {len(data) / 1e6:.1f} MB of CSV")
    results = []
    for number in range(1, args.rounds + 1):
        result = one_round(data)
        results.append(result)
        print(
            f"round {number}: {result['rows'] / result['seconds']:>10,.0f} rows/s  ({result['rows']:,} rows in "
            f"{result['seconds']:.2f} s: parse {result['parse_seconds']:.2f} s, load {result['load_seconds']:.2f} s; "
            f"lake {result['lake_bytes'] / 1e6:.1f} MB = {100 * result['lake_bytes'] / len(data):.1f}% of the CSV)"
        )
    rate = median([r["rows"] / r["seconds"] for r in results])
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"median of {len(results)}: {rate:,.0f} rows/s; peak RSS of this process {peak_mib:.0f} MiB")
    if args.json:
        write_json(args.json, {"hardware": hardware, "rows_per_s": rate, "rounds": results, "peak_rss_mib": peak_mib})


if __name__ == "__main__":
    main()
