"""An Elasticsearch bulk's work on the server's ingest thread, in process: CPU microseconds per document.

The bodies are protocols_ingest's Elasticsearch documents (Filebeat's shape: `@timestamp`, `message`, nested
`log.level` and `service.name`, `host.name`, the record's attributes), in bulks of 1,600 documents (Filebeat's
bulk_max_size, with its filter_path) or of up to 10 MB (Vector's). Each bulk goes through what the _bulk route runs
on an ingest thread for it, but the store: the parse and ECS mapping (elastic_columns.bulk_records), the column
check of its records in groups of max_records (columns.check, as POST /logs checks a bulk batch), the answer's ids
and the answer itself. Each phase's CPU time (time.thread_time_ns) is the median over --rounds passes, per
document. On a loaded machine it still swings by 10-20 %: compare two versions run alternately, several times,
or count instructions (valgrind --tool=cachegrind, which a machine's load does not change).

    .venv/bin/python bench/es_bulk_parse.py --rows 32000 --rounds 5              # both bulk sizes
    .venv/bin/python bench/es_bulk_parse.py --rows 32000 --bulks 1600 --profile out.prof   # cProfile of one pass
"""

from __future__ import annotations

import cProfile
import tempfile
import time
from pathlib import Path
from typing import Any

import msgspec

import common
from loglake.api.elastic_routes import _parse, _stored_ids, _stored_tables
from loglake.lake.lake import Lake
from loglake.lake.objectstore import LocalObjectStore
from loglake.protocols import elastic_answers
from loglake.service import LogService
from loglake.store.sqlite import SQLiteHotStore
from protocols_ingest import (
    ES_BULK_BYTES,
    ES_FILEBEAT_DOCUMENTS,
    FILEBEAT_FILTER_PATH,
    UNLIMITED,
    Record,
    es_documents,
    grouped,
)

BULKS = {"1600": (ES_FILEBEAT_DOCUMENTS, UNLIMITED, FILEBEAT_FILTER_PATH), "10mb": (UNLIMITED, ES_BULK_BYTES, "")}


class _App:
    """What _parse reads of the app: its service."""

    def __init__(self, service: LogService) -> None:
        self.service = service


def one_pass(app: Any, bodies: list[tuple[bytes, int]], filter_path: str) -> dict[str, int]:
    """Each body's ingest-thread work; CPU nanoseconds per phase over all of them."""
    keep = elastic_answers.answer_filter(filter_path)
    spent = {"parse+map+check": 0, "answer": 0}
    for body, _ in bodies:
        started = time.thread_time_ns()
        items, groups = _parse(app, body, None)
        parsed = time.thread_time_ns()
        tables = _stored_tables(groups, every_item_stored=all(item.error is None for item in items))
        if tables is None or elastic_answers.created_answer(items, 1, keep) is None:  # (as the route answers)
            elastic_answers.bulk_answer(items, 1, keep, None if tables is None else _stored_ids(tables))
        spent["parse+map+check"] += parsed - started
        spent["answer"] += time.thread_time_ns() - parsed
    return spent


def main() -> None:
    ap = common.argument_parser(__doc__)
    ap.add_argument("--rows", type=int, default=32_000, help="documents (default 32,000)")
    ap.add_argument("--rounds", type=int, default=5, help="passes over the bodies; the median is given (default 5)")
    ap.add_argument("--bulks", default="1600,10mb", help="comma-separated, of 1600 and 10mb (default both)")
    ap.add_argument("--dataset", metavar="FILE", help="an NDJSON set make_dataset.py already built (default: --rows)")
    ap.add_argument("--profile", metavar="FILE", help="write a cProfile of one more pass (of the first --bulks)")
    args = ap.parse_args()
    lines = common.read_lines(Path(args.dataset) if args.dataset else common.dataset(args.rows), args.rows)
    records = msgspec.json.Decoder(list[Record]).decode(b"[" + b",".join(line.rstrip() for line in lines) + b"]")
    documents = es_documents(records)
    with tempfile.TemporaryDirectory() as folder:
        store = SQLiteHotStore(Path(folder) / "hot.db")
        lake = Lake(store, LocalObjectStore(Path(folder) / "objects"), Path(folder))
        app = _App(LogService(store, lake=lake))
        results: dict[str, Any] = {}
        for name in args.bulks.split(","):
            count, size, filter_path = BULKS[name]
            bodies = grouped(documents, count, size)
            passes = [one_pass(app, bodies, filter_path) for _ in range(args.rounds)]
            per_document = {
                phase: common.median([p[phase] for p in passes]) / 1000 / len(documents) for phase in passes[0]
            }
            total = sum(per_document.values())
            shown = ", ".join(f"{phase} {us:.2f}" for phase, us in per_document.items())
            print(f"{name:>5}: {len(bodies)} bulks, {total:.2f} us CPU/document ({shown})", flush=True)
            results[name] = per_document | {"total": total}
            if args.profile and name == args.bulks.split(",")[0]:
                cProfile.runctx("one_pass(app, bodies, filter_path)", globals(), locals(), args.profile)
        lake.close()
        store.close()
    common.write_json(args.json, {"workload": "es_bulk_parse", "args": vars(args), "per_document_us": results})


if __name__ == "__main__":
    main()
