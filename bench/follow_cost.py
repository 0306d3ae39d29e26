"""What following by arrival (arrivals.py) costs: the ingest path's share, and a follower's reads.

Ingest: LogService.submit adds one done-callback to the store's future that hands the committed records to
the arrivals log. Timed here in isolation, on real records of the data set (parsed as POST /logs parses
them), for a single-record request (B1's) and a 10,000-record batch (B2's): a bare future resolved with
the records' ids, with and without that callback, while nobody follows (the log only counts) and while
someone does (it keeps the batch). The difference is what every request pays; medians of --rounds.

Reads: --rows records arrive as single-record batches while followed, then a follower reads them all,
1,000 a page (the CLI's page), with no filter and with a service filter; records/s read.

    .venv/bin/python bench/follow_cost.py
    .venv/bin/python bench/follow_cost.py --rows 20000 --rounds 3
"""

from __future__ import annotations

import functools
import time
import timeit
from concurrent.futures import Future

from common import argument_parser, dataset, median, print_hardware, read_lines, write_json
from loglake.arrivals import Arrivals
from loglake.ingest import parse_body
from loglake.model import Limits, NewRecord
from loglake.service import _announce  # the very callback LogService.submit adds
from loglake.store.base import RecentQuery


def resolve(records: list[NewRecord], ids: list[bytes], arrivals: Arrivals | None) -> None:
    write: Future[list[bytes]] = Future()
    if arrivals is not None:
        write.add_done_callback(functools.partial(_announce, arrivals, records))
    write.set_result(ids)


def ingest_cost(records: list[NewRecord], rounds: int, calls: int) -> dict[str, float]:
    ids = [r.log_id for r in records]
    followed = Arrivals()
    nobody = Arrivals()

    def timed(arrivals: Arrivals | None) -> float:
        if arrivals is followed:
            followed.cursor(0)  # a follower reads now and then
        return median(
            [timeit.timeit(lambda: resolve(records, ids, arrivals), number=calls) / calls * 1e6 for _ in range(rounds)]
        )

    bare, idle, kept = timed(None), timed(nobody), timed(followed)
    return {
        "records": len(records),
        "bare_future_us": round(bare, 2),
        "nobody_follows_us": round(idle - bare, 2),
        "followed_us": round(kept - bare, 2),
        "followed_us_per_record": round((kept - bare) / len(records), 3),
    }


def read_cost(records: list[NewRecord], rounds: int) -> dict[str, float]:
    arrivals = Arrivals(max_records=len(records))
    start = arrivals.cursor(0)
    for record in records:
        arrivals.append_records([record], [record.log_id])
    service = records[0].service
    result = {}
    for name, query in (("all", RecentQuery(since_ms=0)), ("one_service", RecentQuery(since_ms=0, service=service))):
        times = []
        for _ in range(rounds):
            began = time.perf_counter()
            after, more = start.seq, True
            while more:
                page = arrivals.read(after, query, 1000)
                after, more = page.seq, page.more
            times.append(time.perf_counter() - began)
        result[f"{name}_records_per_s"] = round(len(records) / median(times))
    return result


def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--rows", type=int, default=100_000, help="records arriving for the read test")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    hardware = print_hardware()
    lines = read_lines(dataset(1_000_000), max(args.rows, 10_000))
    now_ms = int(time.time() * 1000)
    one, _ = parse_body(lines[0], True, Limits(), now_ms)
    batch, _ = parse_body(b"".join(lines[:10_000]), True, Limits(), now_ms)
    ingest = [ingest_cost(one, args.rounds, 20_000), ingest_cost(batch, args.rounds, 20)]
    for row in ingest:
        print(
            f"ingest, {row['records']:>6,}-record request: bare future {row['bare_future_us']:8.2f} µs; "
            f"added while nobody follows {row['nobody_follows_us']:7.2f} µs, while followed "
            f"{row['followed_us']:8.2f} µs ({row['followed_us_per_record']:.3f} µs/record)"
        )
    arrived, _ = parse_body(b"".join(lines[: args.rows]), True, Limits(max_records=args.rows), now_ms)
    reads = read_cost(arrived, args.rounds)
    print(
        f"reads of {args.rows:,} arrivals, 1,000 a page: {reads['all_records_per_s']:,} records/s, "
        f"filtered to one service {reads['one_service_records_per_s']:,} records/s"
    )
    write_json(args.json, {"hardware": hardware, "args": vars(args), "ingest": ingest, "reads": reads})


if __name__ == "__main__":
    main()
