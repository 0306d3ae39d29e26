"""Ingest over the shippers' protocols beside native POST /logs, in the same run.

The --rows record set (default 1,000,000, from make_dataset.py) is sent four ways, each round to a fresh
server, interleaved round by round so that the machine's noise falls on all alike:

- native: POST /logs NDJSON in batches of 10,000 (B2's workload);
- elasticsearch: POST /_bulk, each record as a Beats/Vector document (ECS: `@timestamp`, `message`,
  `log.level`, `service.name`, the rest as fields) behind a `create` action, in bulks of up to 10 MB
  (Vector's elasticsearch sink: batch.max_bytes 10,000,000); acknowledged when the answer has
  `errors: false` and an item per record;
- elasticsearch-1600: the same in bulks of 1,600 documents (Filebeat's default bulk_max_size);
- splunk: POST /services/collector/event, events concatenated without separators as the OpenTelemetry
  Collector's HEC exporter sends them (`time` in epoch seconds, `event`, `host`, `source`, `sourcetype`,
  `fields`), in bodies of up to 2 MiB (its max_content_length_logs); acknowledged on Splunk's
  `{"text": "Success", "code": 0}`.

Bodies are built before the clock starts. The report gives records/s per round, the median per way, and
each median as a share of native's (the target: at least 70 %).

    .venv/bin/python bench/protocol_ingest.py                       # 1M records, 4 senders, 3 rounds
    .venv/bin/python bench/protocol_ingest.py --rows 100000 --rounds 1
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import msgspec

import common

_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode


class _EsAck(msgspec.Struct):
    errors: bool


_es_ack = msgspec.json.Decoder(_EsAck).decode


def es_documents(records: list[dict]) -> list[bytes]:
    action = b'{"create":{"_index":"filebeat-9.0.0"}}\n'
    documents = []
    for r in records:
        doc = {
            "@timestamp": datetime.fromtimestamp(r["timestamp"] / 1000, UTC).isoformat(timespec="milliseconds"),
            "message": r["message"],
            "log": {"level": r["severity"]},
            "service": {"name": r["service"]},
            "host": {"name": "bench-host"},
            **r.get("attributes", {}),
        }
        documents.append(action + _encode(doc) + b"\n")
    return documents


def hec_events(records: list[dict]) -> list[bytes]:
    events = []
    for r in records:
        event = {
            "time": r["timestamp"] / 1000,
            "host": "bench-host",
            "source": "bench",
            "sourcetype": "loghub",
            "event": r["message"],
            "fields": {"service.name": r["service"], "severity": r["severity"], **r.get("attributes", {})},
        }
        events.append(_encode(event))
    return events


def grouped(units: list[bytes], max_count: int, max_bytes: int) -> list[list[bytes]]:
    """The units in order, in groups of at most max_count units and max_bytes bytes."""
    groups: list[list[bytes]] = [[]]
    size = 0
    for unit in units:
        if groups[-1] and (len(groups[-1]) == max_count or size + len(unit) > max_bytes):
            groups.append([])
            size = 0
        groups[-1].append(unit)
        size += len(unit)
    return groups


def plan(groups: list[list[bytes]], path: str, answered: Callable[[httpx.Response], bool]) -> dict[str, Any]:
    bodies = [b"".join(group) for group in groups]
    counts = {id(body): len(group) for body, group in zip(bodies, groups, strict=True)}

    def acknowledged(response: httpx.Response, body: bytes) -> int:
        return counts[id(body)] if answered(response) else -1

    return {"bodies": bodies, "path": path, "acknowledged": acknowledged, "records": sum(map(len, groups))}


def native_answered(response: httpx.Response) -> bool:
    return response.status_code == 201


def es_answered(response: httpx.Response) -> bool:
    return response.status_code == 200 and not _es_ack(response.content).errors


def hec_answered(response: httpx.Response) -> bool:
    return response.status_code == 200 and _decode(response.content) == {"text": "Success", "code": 0}


def one_round(name: str, way: dict[str, Any], senders: int, number: int, durability: str) -> dict[str, Any]:
    with common.Server(durability=durability) as server:
        result = common.bulk_send(
            server.url,
            server.headers,
            way["bodies"],
            senders,
            path=way["path"],
            content_type="application/x-ndjson",
            acknowledged=way["acknowledged"],
        )
        server.check_alive()
        stored = sum(v for metric, _, v in server.metrics() if metric == "loglake_records_ingested_total")
    row = {
        "protocol": name,
        "round": number,
        "records": result.records,
        "seconds": round(result.seconds, 3),
        "records_per_s": round(result.records_per_s, 1),
        "mb_per_s": round(result.mb_per_s, 2),
        "records_stored": int(stored),
    }
    print(
        f"{name:>13} round {number}: {row['records_per_s']:>9,.0f} records/s  {row['mb_per_s']:6.1f} MB/s  "
        f"({row['records']:,} records in {row['seconds']:.2f} s)",
        flush=True,
    )
    problems = list(result.failures[:10])
    if result.records != way["records"]:
        problems.append(f"{result.records:,} of {way['records']:,} records acknowledged")
    if stored < result.records:
        problems.append(f"{result.records:,} acknowledged but {int(stored):,} stored")
    if problems:
        sys.exit(f"FAILED ({name}, round {number}):\n  " + "\n  ".join(problems))
    return row


def main() -> None:
    ap: argparse.ArgumentParser = common.argument_parser(__doc__)
    ap.add_argument("--rows", type=int, default=1_000_000, help="records in the data set (default 1,000,000)")
    ap.add_argument("--senders", type=int, default=4, help="concurrent senders (default 4)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds per protocol (default 3)")
    ap.add_argument("--durability", choices=("full", "process"), default="full")
    args = ap.parse_args()

    hw = common.print_hardware()
    lines = common.read_lines(common.dataset(args.rows))
    records = [_decode(line) for line in lines]
    documents = es_documents(records)
    unlimited = 1 << 62
    ways = {
        "native": plan(grouped(lines, 10_000, unlimited), "/logs", native_answered),
        "elasticsearch": plan(grouped(documents, unlimited, 10_000_000), "/_bulk", es_answered),
        "elasticsearch-1600": plan(grouped(documents, 1_600, unlimited), "/_bulk", es_answered),
        "splunk": plan(grouped(hec_events(records), unlimited, 2 << 20), "/services/collector/event", hec_answered),
    }
    del records, documents
    for name, way in ways.items():
        print(f"{name}: {len(way['bodies'])} requests, {sum(map(len, way['bodies'])) / 1e6:.1f} MB", flush=True)
    rows = []
    for number in range(1, args.rounds + 1):
        rows += [one_round(name, way, args.senders, number, args.durability) for name, way in ways.items()]
    medians = {name: common.median([r["records_per_s"] for r in rows if r["protocol"] == name]) for name in ways}
    for name, value in medians.items():
        print(f"{name:>18}: median {value:>9,.0f} records/s = {value / medians['native']:.2f} x native", flush=True)
    common.write_json(
        args.json,
        {"workload": "protocol_ingest", "args": vars(args), "hardware": hw, "rounds": rows, "median": medians},
    )


if __name__ == "__main__":
    main()
