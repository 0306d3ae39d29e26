"""The stream flush function's work per batch (issue 5): DynamoDB Streams INSERT images -> Parquet parts.

Builds Lambda-shaped batches of --batch-size records (the stack's batch size is 1,000) from the data set
(make_dataset.py: real Loghub lines), images as DynamoDB stores them and Lambda hands them over
(binary attributes base64-encoded), then times handlers' flush_stream_batch writing each batch's parts
to a local folder, on one core. The time per batch, with Lambda's arm64 speed and the function's
memory, is what the cost table's flush line rests on.

    .venv/bin/python bench/aws_stream_flush.py                  # 200 batches of 1,000
    .venv/bin/python bench/aws_stream_flush.py --batches 50 --batch-size 100
"""

from __future__ import annotations

import base64
import shutil
import tempfile
import time
from pathlib import Path

from common import argument_parser, dataset, median, percentile, print_hardware, read_lines, write_json
from common import batches as batches_of
from loglake.aws.stream_flush import flush_stream_batch
from loglake.ingest import parse_body
from loglake.lake.objectstore import LocalObjectStore
from loglake.model import Limits
from loglake.store.dynamodb_items import record_item


def lambda_batch(records: list, number: int) -> dict:
    def encoded(image: dict) -> dict:
        return {k: {"B": base64.b64encode(v["B"]).decode()} if "B" in v else v for k, v in image.items()}

    events = [
        {
            "eventName": "INSERT",
            "eventSource": "aws:dynamodb",
            "eventSourceARN": "arn:aws:dynamodb:eu-west-1:123456789012:table/hot/stream/2026-11-22T00:00:00.000",
            "dynamodb": {"NewImage": encoded(record_item(r, 0, 0)), "SequenceNumber": f"{number:012d}{i:06d}"},
        }
        for i, r in enumerate(records)
    ]
    return {"Records": events}


def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=1000)
    args = parser.parse_args()
    hardware = print_hardware()
    total = args.batches * args.batch_size
    now_ms = int(time.time() * 1000)
    records = [r for body in batches_of(read_lines(dataset(max(total, 100_000), days=1), total), 10_000)
               for r in parse_body(body, True, Limits(), now_ms)[0]]  # fmt: skip
    batches = [lambda_batch(records[n * args.batch_size : (n + 1) * args.batch_size], n) for n in range(args.batches)]
    root = Path(tempfile.mkdtemp(prefix="loglake-stream-bench-"))
    try:
        lake = LocalObjectStore(root)
        seconds = []
        for batch in batches:
            started = time.perf_counter()
            flush_stream_batch(batch, lake)
            seconds.append(time.perf_counter() - started)
        lake_bytes = sum(p.stat().st_size for p in root.rglob("*.parquet"))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    per_batch_ms = median(seconds) * 1000
    print(
        f"{args.batches} batches of {args.batch_size:,}: median {per_batch_ms:.1f} ms per batch, "
        f"p99 {percentile(seconds, 99) * 1000:.1f} ms, {args.batch_size / median(seconds):,.0f} records/s; "
        f"{lake_bytes / total:.0f} bytes per record in Parquet"
    )
    write_json(
        args.json,
        {"hardware": hardware, "args": vars(args), "median_ms_per_batch": per_batch_ms, "lake_bytes": lake_bytes},
    )


if __name__ == "__main__":
    main()
