"""Shippers' protocols against native bulk ingest, in the same run: OTLP/HTTP and Loki push vs POST /logs NDJSON.

The --rows record set (make_dataset.py) is sent whole through each protocol, in batches the way its usual
client sends them, each protocol's round on a fresh server:
- native: POST /logs NDJSON batches of 10,000 records (B2);
- otlp: POST /v1/logs protobuf, ExportLogsServiceRequests of 8,192 records (the Collector's batch processor
  default), one ResourceLogs per service, severity number and text, attributes as KeyValues; `otlp-gzip`
  the same, gzip-compressed (the Collector's otlphttp exporter compresses by default);
- loki: POST /loki/api/v1/push protobuf in a snappy block, batches of up to 1 MiB of lines (Promtail's and
  Alloy's default batch size), one stream per (service, level) label set, attributes as structured metadata.
All bodies are built before the clock starts. A record counts only when its batch was answered with success
(201 with the count, 200 without partial_success, 204) and the server counted it stored. The report gives
records/s per round, the median per protocol and sender count, and each protocol's ratio to native.

    .venv/bin/python bench/protocols_ingest.py                    # 1M records, 1 and 4 senders, 2 rounds
    .venv/bin/python bench/protocols_ingest.py --rows 100000 --rounds 1 --senders 1   # quick check
"""

from __future__ import annotations

import gzip
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cramjam
import httpx
import msgspec
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest, ExportLogsServiceResponse
from opentelemetry.proto.common.v1.common_pb2 import KeyValue

import common
from loglake.protocols.loki import PushRequest

OTLP_BATCH = 8192
LOKI_BATCH_BYTES = 1024 * 1024
SEVERITY_NUMBER = {"debug": 5, "info": 9, "warning": 13, "error": 17, "critical": 21}


class Record(msgspec.Struct):
    timestamp: int
    service: str
    severity: str
    message: str
    attributes: dict[str, str] = {}


def native_bodies(lines: list[bytes], batch: int) -> list[tuple[bytes, int]]:
    return [(body, body.count(b"\n")) for body in common.batches(lines, batch)]


def otlp_bodies(records: list[Record], compress: bool) -> list[tuple[bytes, int]]:
    bodies = []
    for start in range(0, len(records), OTLP_BATCH):
        chunk = records[start : start + OTLP_BATCH]
        request = ExportLogsServiceRequest()
        by_service: dict[str, Any] = {}
        for r in chunk:
            scope_logs = by_service.get(r.service)
            if scope_logs is None:
                resource_logs = request.resource_logs.add()
                resource_logs.resource.attributes.add(key="service.name").value.string_value = r.service
                scope_logs = by_service[r.service] = resource_logs.scope_logs.add()
                scope_logs.scope.name = "bench"
            log = scope_logs.log_records.add(
                time_unix_nano=r.timestamp * 1_000_000,
                observed_time_unix_nano=r.timestamp * 1_000_000,
                severity_number=SEVERITY_NUMBER[r.severity],
                severity_text=r.severity.upper(),
            )
            log.body.string_value = r.message
            log.attributes.extend(KeyValue(key=k, value={"string_value": v}) for k, v in r.attributes.items())
        body = request.SerializeToString()
        bodies.append((gzip.compress(body, 6) if compress else body, len(chunk)))
    return bodies


def loki_bodies(records: list[Record]) -> list[tuple[bytes, int]]:
    bodies = []
    start = 0
    while start < len(records):
        size, end = 0, start
        while end < len(records) and size < LOKI_BATCH_BYTES:
            size += len(records[end].message)
            end += 1
        request = PushRequest()
        streams: dict[tuple[str, str], Any] = {}
        for r in records[start:end]:
            stream = streams.get((r.service, r.severity))
            if stream is None:
                stream = streams[(r.service, r.severity)] = request.streams.add()
                stream.labels = f'{{service_name="{r.service}", level="{r.severity}"}}'
            entry = stream.entries.add(line=r.message)
            entry.timestamp.seconds, millis = divmod(r.timestamp, 1000)
            entry.timestamp.nanos = millis * 1_000_000
            for k, v in r.attributes.items():
                entry.structuredMetadata.add(name=k, value=v)
        bodies.append((bytes(cramjam.snappy.compress_raw(request.SerializeToString())), end - start))
        start = end
    return bodies


def _otlp_ok(response: httpx.Response, count: int) -> bool:
    if response.status_code != 200:
        return False
    return ExportLogsServiceResponse.FromString(response.content).partial_success.rejected_log_records == 0


PROTOCOLS: dict[str, tuple[str, dict[str, str], Callable[[httpx.Response, int], bool]]] = {
    "native": (
        "/logs",
        {"Content-Type": "application/x-ndjson"},
        lambda r, count: r.status_code == 201 and r.json()["count"] == count,
    ),
    "otlp": ("/v1/logs", {"Content-Type": "application/x-protobuf"}, _otlp_ok),
    "otlp-gzip": ("/v1/logs", {"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"}, _otlp_ok),
    "loki": ("/loki/api/v1/push", {"Content-Type": "application/x-protobuf"}, lambda r, count: r.status_code == 204),
}


def send(
    server: common.Server, protocol: str, bodies: list[tuple[bytes, int]], senders: int
) -> tuple[float, int, list]:
    """Every body once through common.bulk_send: (seconds, records acknowledged, failures)."""
    path, headers, ok = PROTOCOLS[protocol]
    counts = {id(body): count for body, count in bodies}

    def acknowledged(response: httpx.Response, body: bytes) -> int:
        count = counts[id(body)]
        return count if ok(response, count) else -1

    result = common.bulk_send(
        server.url,
        {**server.headers, **headers},
        [body for body, _ in bodies],
        senders,
        path=path,
        content_type=headers["Content-Type"],
        acknowledged=acknowledged,
    )
    return result.seconds, result.records, result.failures


def one_round(protocol: str, bodies: list[tuple[bytes, int]], senders: int, number: int) -> float:
    with common.Server() as server:
        seconds, records, failures = send(server, protocol, bodies, senders)
        server.check_alive()
        stored = sum(v for name, _, v in server.metrics() if name == "loglake_records_ingested_total")
    expected = sum(count for _, count in bodies)
    if failures or records != expected or stored < records:
        print(f"FAILED {protocol}: {records:,} of {expected:,} acknowledged, {int(stored):,} stored", file=sys.stderr)
        print("\n".join(failures[:10]), file=sys.stderr)
        sys.exit(1)
    rate = records / seconds
    print(f"{protocol:>9} senders {senders} round {number}: {rate:>9,.0f} records/s ({seconds:.2f} s)", flush=True)
    return rate


def main() -> None:
    ap = common.argument_parser(__doc__)
    ap.add_argument("--rows", type=int, default=1_000_000, help="records in the data set (default 1,000,000)")
    ap.add_argument("--senders", default="1,4", help="comma-separated sender counts (default 1,4)")
    ap.add_argument("--rounds", type=int, default=2, help="rounds per protocol and sender count (default 2)")
    ap.add_argument("--dataset", metavar="FILE", help="an NDJSON set make_dataset.py already built (default: --rows)")
    ap.add_argument("--protocols", default=",".join(PROTOCOLS), help=f"comma-separated, of {', '.join(PROTOCOLS)}")
    args = ap.parse_args()
    hw = common.print_hardware()
    lines = common.read_lines(Path(args.dataset) if args.dataset else common.dataset(args.rows), args.rows)
    records = msgspec.json.Decoder(list[Record]).decode(b"[" + b",".join(line.rstrip() for line in lines) + b"]")
    built = {
        "native": lambda: native_bodies(lines, 10_000),
        "otlp": lambda: otlp_bodies(records, compress=False),
        "otlp-gzip": lambda: otlp_bodies(records, compress=True),
        "loki": lambda: loki_bodies(records),
    }
    protocols = [p.strip() for p in args.protocols.split(",") if p.strip()]
    bodies = {p: built[p]() for p in protocols}
    for p in protocols:
        size = sum(len(b) for b, _ in bodies[p])
        print(f"{p}: {len(bodies[p])} requests, {size / 1e6:.1f} MB", flush=True)
    medians: dict[str, dict[str, float]] = {}
    for senders in (int(s) for s in args.senders.split(",")):
        # Interleaved, so a change in the machine's load falls on every protocol alike.
        rates: dict[str, list[float]] = {p: [] for p in protocols}
        for number in range(1, args.rounds + 1):
            for p in protocols:
                rates[p].append(one_round(p, bodies[p], senders, number))
        medians[str(senders)] = {p: common.median(r) for p, r in rates.items()}
        native = medians[str(senders)].get("native")
        for p, rate in medians[str(senders)].items():
            ratio = f"  {rate / native:.2f}x native" if native and p != "native" else ""
            print(f"senders {senders}: {p:>9} median {rate:>9,.0f} records/s{ratio}", flush=True)
    common.write_json(args.json, {"workload": "protocols", "args": vars(args), "hardware": hw, "median": medians})


if __name__ == "__main__":
    main()
