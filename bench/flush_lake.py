"""Lake flush throughput and size: hot store -> daily ZSTD Parquet (issue 3's flush target).

Loads the --rows data set (make_dataset.py, 7 days) into a fresh hot store through the library
(no HTTP), then times Flusher.flush moving every record into a local lake, over --rounds fresh
stores. Reports records/s and the lake's size against the raw NDJSON, with the bytes per column.

    .venv/bin/python bench/flush_lake.py                 # 1M records, 3 rounds
    .venv/bin/python bench/flush_lake.py --rows 200000 --rounds 1
"""

from __future__ import annotations

import collections
import gc
import shutil
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

from common import argument_parser, batches, dataset, median, print_hardware, read_lines, write_json
from loglake.ingest import parse_body
from loglake.lake.flush import Flusher
from loglake.lake.objectstore import LocalObjectStore
from loglake.model import Limits
from loglake.store.sqlite import SQLiteHotStore

FAR_FUTURE_MS = 1 << 46


def one_round(bodies: list[bytes], now_ms: int) -> dict:
    root = Path(tempfile.mkdtemp(prefix="loglake-flush-bench-"))
    try:
        store = SQLiteHotStore(root / "hot.db")
        for future in [store.submit(parse_body(b, True, Limits(), now_ms)[0]) for b in bodies]:
            future.result()
        lake = LocalObjectStore(root / "lake")
        started = time.perf_counter()
        report = Flusher(store, lake).flush(before_ms=FAR_FUTURE_MS)
        seconds = time.perf_counter() - started
        store.close()
        columns: collections.Counter = collections.Counter()
        for path in (root / "lake").rglob("*.parquet"):
            meta = pq.ParquetFile(path).metadata
            for group in range(meta.num_row_groups):
                for c in range(meta.num_columns):
                    column = meta.row_group(group).column(c)
                    columns[column.path_in_schema] += column.total_compressed_size
        return {
            "records": report.records,
            "seconds": seconds,
            "objects": len(report.objects),
            "lake_bytes": sum(columns.values()),
            "columns": dict(columns),
        }
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    hardware = print_hardware()
    path = dataset(args.rows)
    lines = read_lines(path)
    raw_bytes = sum(len(line) for line in lines)
    bodies = batches(lines, 10_000)
    del lines
    gc.set_threshold(50_000, 20, 20)
    now_ms = int(time.time() * 1000)
    results = []
    for number in range(1, args.rounds + 1):
        result = one_round(bodies, now_ms)
        results.append(result)
        print(
            f"round {number}: {result['records'] / result['seconds']:>10,.0f} records/s  "
            f"({result['records']:,} records in {result['seconds']:.2f} s, {result['objects']} objects, "
            f"lake {result['lake_bytes'] / 1e6:.1f} MB = {100 * result['lake_bytes'] / raw_bytes:.1f}% of the NDJSON)"
        )
    rates = [r["records"] / r["seconds"] for r in results]
    print(f"median of {len(rates)}: {median(rates):,.0f} records/s")
    print(
        "bytes per column (last round): "
        + ", ".join(
            f"{name} {size / 1e6:.1f} MB"
            for name, size in sorted(results[-1]["columns"].items(), key=lambda kv: -kv[1])
        )
    )
    write_json(args.json, {"hardware": hardware, "args": vars(args), "raw_bytes": raw_bytes, "rounds": results})


if __name__ == "__main__":
    main()
