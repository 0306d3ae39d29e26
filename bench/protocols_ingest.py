"""Every HTTP protocol a shipper speaks beside native POST /logs, in one run: records/s and server CPU per record.

The --rows record set (make_dataset.py) is sent whole through each way, in batches the way its usual client
sends them, each round on a fresh server, the ways interleaved round by round so that the machine's noise
falls on all alike:
- native: POST /logs NDJSON batches of 10,000 records (B2);
- otlp: POST /v1/logs protobuf, ExportLogsServiceRequests of 8,192 records (the Collector's batch processor
  default), one ResourceLogs per service, severity number and text, attributes as KeyValues; `otlp-gzip`
  the same, gzip-compressed (the Collector's otlphttp exporter compresses by default); `otlp-json` the same
  requests in OTLP/JSON (the SDKs' http/json exporters);
- loki: POST /loki/api/v1/push protobuf in a snappy block, batches of up to 1 MiB of lines (Promtail's and
  Alloy's default batch size), one stream per (service, level) label set, attributes as structured metadata;
- elasticsearch: POST /_bulk, each record a Beats/Vector ECS document (`@timestamp`, `message`, `log.level`,
  `service.name`, the rest as fields) behind a `create` action, in bulks of up to 10 MB (Vector's
  elasticsearch sink: batch.max_bytes); `elasticsearch-1600` in bulks of 1,600 documents (Filebeat's
  default bulk_max_size), with the filter_path Filebeat sends (`errors,items.*.error,items.*.status`);
- native-1600 (only when --protocols names it): native in batches of 1,600 records, to tell what Filebeat's
  batch size costs apart from Elasticsearch's mapping; elasticsearch-10000 (likewise): Filebeat's bulks with
  bulk_max_size raised to 10,000 documents, as the README suggests for loglake;
- splunk: POST /services/collector/event, events concatenated without separators as the OpenTelemetry
  Collector's HEC exporter sends them (`time` in epoch seconds, `event`, `host`, `source`, `sourcetype`,
  `fields`), in bodies of up to 2 MiB (its max_content_length_logs).

Bodies are built before the clock starts. A record counts only when its batch was answered with success
(201 with the count, 200 without partial_success or errors, 204, Splunk's code 0) and the server counted it
stored. The report gives records/s and the server's CPU time per record (user + system, from /proc: less
sensitive than the rate to what else the machine runs) per round, their medians per way, and each way's
ratios to native's (the target: at least 0.70x native's rate). The server's CPU includes its child processes'
(common.Server.tree_cpu_seconds: the merge worker, the flush's worker), which do part of its work: without
them, work handed to a worker would look free. Each round also gives the children's resident memory at its end
(their sum, and the largest peak of one), where the server's own CPU went by thread group (its /metrics'
loglake_thread_cpu_seconds_total: ingest checks bodies, bulk writes parts, merge compacts, loop is the event loop)
and the machine's idle share (well above 0: the server waited on something other than CPU, as the GIL). Each
round's server is fresh: its one-time costs (a worker process's start) are in its figures, unless --warm-up sends
a body per sender before the clock starts.

    .venv/bin/python bench/protocols_ingest.py                    # 1M records, 4 senders, 3 rounds
    .venv/bin/python bench/protocols_ingest.py --rows 100000 --rounds 1 --protocols native,loki   # quick check
"""

from __future__ import annotations

import gzip
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cramjam
import httpx
import msgspec
from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest, ExportLogsServiceResponse
from opentelemetry.proto.common.v1.common_pb2 import KeyValue

import common
from loglake.protocols.loki import PushRequest

OTLP_BATCH = 8192
LOKI_BATCH_BYTES = 1024 * 1024
ES_BULK_BYTES = 10_000_000
ES_FILEBEAT_DOCUMENTS = 1600
FILEBEAT_RAISED_DOCUMENTS = 10_000
FILEBEAT_FILTER_PATH = "errors,items.*.error,items.*.status"  # what libbeat asks of every bulk's answer
HEC_BODY_BYTES = 2 << 20
SEVERITY_NUMBER = {"debug": 5, "info": 9, "warning": 13, "error": 17, "critical": 21}
UNLIMITED = 1 << 62
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


class Record(msgspec.Struct):
    timestamp: int
    service: str
    severity: str
    message: str
    attributes: dict[str, str] = {}


@dataclass
class Way:
    """One way of sending the set: its requests (each body and its record count) and how success is answered."""

    path: str
    content_type: str
    bodies: list[tuple[bytes, int]]
    answered: Callable[[httpx.Response], bool]
    headers: dict[str, str] | None = None


# -- the bodies, as each protocol's usual client batches them -------------------------------------------


def grouped(units: list[bytes], max_count: int, max_bytes: int) -> list[tuple[bytes, int]]:
    """The units in order, joined in bodies of at most max_count units and max_bytes bytes."""
    bodies: list[tuple[bytes, int]] = []
    group: list[bytes] = []
    size = 0
    for unit in units:
        if group and (len(group) == max_count or size + len(unit) > max_bytes):
            bodies.append((b"".join(group), len(group)))
            group, size = [], 0
        group.append(unit)
        size += len(unit)
    if group:
        bodies.append((b"".join(group), len(group)))
    return bodies


def otlp_requests(records: list[Record]) -> list[tuple[ExportLogsServiceRequest, int]]:
    requests = []
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
        requests.append((request, len(chunk)))
    return requests


def otlp_bodies(requests: list[tuple[ExportLogsServiceRequest, int]], encoding: str) -> list[tuple[bytes, int]]:
    if encoding == "json":  # OTLP/JSON: lowerCamelCase names, enums as numbers, 64-bit integers as strings
        return [(_encode(json_format.MessageToDict(r, use_integers_for_enums=True)), n) for r, n in requests]
    bodies = [(r.SerializeToString(), n) for r, n in requests]
    return [(gzip.compress(body, 6), n) for body, n in bodies] if encoding == "gzip" else bodies


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


def es_documents(records: list[Record]) -> list[bytes]:
    action = b'{"create":{"_index":"filebeat-9.0.0"}}\n'
    documents = []
    for r in records:
        document = {
            "@timestamp": datetime.fromtimestamp(r.timestamp / 1000, UTC).isoformat(timespec="milliseconds"),
            "message": r.message,
            "log": {"level": r.severity},
            "service": {"name": r.service},
            "host": {"name": "bench-host"},
            **r.attributes,
        }
        documents.append(action + _encode(document) + b"\n")
    return documents


def hec_events(records: list[Record]) -> list[bytes]:
    return [
        _encode(
            {
                "time": r.timestamp / 1000,
                "host": "bench-host",
                "source": "bench",
                "sourcetype": "loghub",
                "event": r.message,
                "fields": {"service.name": r.service, "severity": r.severity, **r.attributes},
            }
        )
        for r in records
    ]


# -- what each protocol answers on success ---------------------------------------------------------------


class _EsAck(msgspec.Struct):
    errors: bool


_es_ack = msgspec.json.Decoder(_EsAck).decode


def otlp_answered(response: httpx.Response) -> bool:
    if response.status_code != 200:
        return False
    if response.headers["content-type"] == "application/json":
        return "partialSuccess" not in _decode(response.content)
    return not ExportLogsServiceResponse.FromString(response.content).HasField("partial_success")


def es_answered(response: httpx.Response) -> bool:
    return response.status_code == 200 and not _es_ack(response.content).errors


def hec_answered(response: httpx.Response) -> bool:
    return response.status_code == 200 and _decode(response.content) == {"text": "Success", "code": 0}


PROTOBUF, NDJSON, JSON = "application/x-protobuf", "application/x-ndjson", "application/json"
GZIP = {"Content-Encoding": "gzip"}
# Each way from the data set's lines and records.
WAYS: dict[str, Callable[[list[bytes], list[Record]], Way]] = {
    "native": lambda lines, _: Way("/logs", NDJSON, grouped(lines, 10_000, UNLIMITED), lambda r: r.status_code == 201),
    # native in Filebeat's batches: what a batch's size costs, apart from Elasticsearch's mapping
    "native-1600": lambda lines, _: Way(
        "/logs", NDJSON, grouped(lines, ES_FILEBEAT_DOCUMENTS, UNLIMITED), lambda r: r.status_code == 201
    ),
    "otlp": lambda _, rs: Way("/v1/logs", PROTOBUF, otlp_bodies(otlp_requests(rs), "protobuf"), otlp_answered),
    "otlp-gzip": lambda _, rs: Way("/v1/logs", PROTOBUF, otlp_bodies(otlp_requests(rs), "gzip"), otlp_answered, GZIP),
    "otlp-json": lambda _, rs: Way("/v1/logs", JSON, otlp_bodies(otlp_requests(rs), "json"), otlp_answered),
    "loki": lambda _, rs: Way("/loki/api/v1/push", PROTOBUF, loki_bodies(rs), lambda r: r.status_code == 204),
    "elasticsearch": lambda _, rs: Way(
        "/_bulk", NDJSON, grouped(es_documents(rs), UNLIMITED, ES_BULK_BYTES), es_answered
    ),
    "elasticsearch-1600": lambda _, rs: Way(
        f"/_bulk?filter_path={FILEBEAT_FILTER_PATH}",
        NDJSON,
        grouped(es_documents(rs), ES_FILEBEAT_DOCUMENTS, UNLIMITED),
        es_answered,
    ),
    # Filebeat with bulk_max_size raised to 10,000 (what the README suggests when shipping to loglake)
    "elasticsearch-10000": lambda _, rs: Way(
        f"/_bulk?filter_path={FILEBEAT_FILTER_PATH}",
        NDJSON,
        grouped(es_documents(rs), FILEBEAT_RAISED_DOCUMENTS, UNLIMITED),
        es_answered,
    ),
    "splunk": lambda _, rs: Way(
        "/services/collector/event", JSON, grouped(hec_events(rs), UNLIMITED, HEC_BODY_BYTES), hec_answered
    ),
}


ON_REQUEST = ("native-1600", "elasticsearch-10000")  # ways run only when --protocols names them


def ways(lines: list[bytes], records: list[Record], wanted: list[str]) -> dict[str, Way]:
    unknown = set(wanted) - set(WAYS)
    if unknown:
        sys.exit(f"unknown protocol(s) {', '.join(sorted(unknown))}; choose of {', '.join(WAYS)}")
    return {name: WAYS[name](lines, records) for name in wanted}


# -- the runs ---------------------------------------------------------------------------------------------


def one_round(name: str, way: Way, senders: int, number: int, durability: str, warm_up: bool) -> dict[str, Any]:
    """Every body of the way once through common.bulk_send to a fresh server: rate and server CPU per record."""
    counts = {id(body): count for body, count in way.bodies}

    def acknowledged(response: httpx.Response, body: bytes) -> int:
        return counts[id(body)] if way.answered(response) else -1

    with common.Server(durability=durability) as server:
        if warm_up:  # (their records are stored too: the count of those stored is then more than those sent)
            common.bulk_send(
                server.url,
                {**server.headers, **(way.headers or {})},
                [body for body, _ in way.bodies[:senders]],
                senders,
                path=way.path,
                content_type=way.content_type,
                acknowledged=acknowledged,
            )
        cpu_before = server.tree_cpu_seconds()
        threads_before = server.thread_cpu()
        idle = common.MachineIdle().start()
        result = common.bulk_send(
            server.url,
            {**server.headers, **(way.headers or {})},
            [body for body, _ in way.bodies],
            senders,
            path=way.path,
            content_type=way.content_type,
            acknowledged=acknowledged,
        )
        cpu = server.tree_cpu_seconds() - cpu_before
        idle_share = idle.share()
        threads = common.thread_cpu_per_record(threads_before, server.thread_cpu(), max(result.records, 1))
        children_kib, child_peak_kib = common.children_rss(server.process.pid)
        server.check_alive()
        stored = sum(v for metric, _, v in server.metrics() if metric == "loglake_records_ingested_total")
    expected = sum(counts.values())
    problems = list(result.failures[:10])
    if result.records != expected:
        problems.append(f"{result.records:,} of {expected:,} records acknowledged")
    if stored < result.records:
        problems.append(f"{result.records:,} acknowledged but {int(stored):,} stored")
    if problems:
        sys.exit(f"FAILED ({name}, round {number}):\n  " + "\n  ".join(problems))
    row = {
        "protocol": name,
        "senders": senders,
        "round": number,
        "records": result.records,
        "seconds": round(result.seconds, 3),
        "records_per_s": round(result.records_per_s, 1),
        "mb_per_s": round(result.mb_per_s, 2),
        "server_cpu_us_per_record": round(cpu / result.records * 1e6, 2),
        "threads_cpu_us_per_record": threads,
        "machine_idle": round(idle_share, 3),
        "children_rss_mib": round(children_kib / 1024),
        "child_peak_rss_mib": round(child_peak_kib / 1024),
    }
    print(
        f"{name:>18} senders {senders} round {number}: {row['records_per_s']:>9,.0f} records/s "
        f"{row['mb_per_s']:6.1f} MB/s  server CPU {row['server_cpu_us_per_record']:5.2f} us/record  "
        f"({result.records:,} records in {result.seconds:.2f} s; children's RSS {row['children_rss_mib']} MiB, "
        f"largest peak {row['child_peak_rss_mib']} MiB)\n{'':>20}by thread, us/record: "
        + ", ".join(f"{group} {us:.2f}" for group, us in threads.items())
        + f"; machine idle {idle_share:.0%}",
        flush=True,
    )
    return row


def main() -> None:
    ap = common.argument_parser(__doc__)
    ap.add_argument("--rows", type=int, default=1_000_000, help="records in the data set (default 1,000,000)")
    ap.add_argument("--senders", default="4", help="comma-separated sender counts (default 4)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds per way and sender count (default 3)")
    ap.add_argument("--durability", choices=("full", "process"), default="full")
    ap.add_argument(
        "--warm-up",
        action="store_true",
        help="send each way's first bodies once (one per sender, at once) before the clock starts: a server's "
        "one-time costs left out (a worker process's start: ~0.3 s of CPU for Python and pyarrow)",
    )
    ap.add_argument("--dataset", metavar="FILE", help="an NDJSON set make_dataset.py already built (default: --rows)")
    usual = ",".join(name for name in WAYS if name not in ON_REQUEST)
    ap.add_argument("--protocols", default=usual, help=f"comma-separated, of {', '.join(WAYS)} (default: {usual})")
    args = ap.parse_args()
    hw = common.print_hardware()
    lines = common.read_lines(Path(args.dataset) if args.dataset else common.dataset(args.rows), args.rows)
    records = msgspec.json.Decoder(list[Record]).decode(b"[" + b",".join(line.rstrip() for line in lines) + b"]")
    started = time.perf_counter()
    sending = ways(lines, records, [p.strip() for p in args.protocols.split(",") if p.strip()])
    del records
    print(f"bodies built in {time.perf_counter() - started:.0f} s", flush=True)
    for name, way in sending.items():
        print(f"{name}: {len(way.bodies)} requests, {sum(len(b) for b, _ in way.bodies) / 1e6:.1f} MB", flush=True)
    rows: list[dict[str, Any]] = []
    medians: dict[str, dict[str, dict[str, float]]] = {}
    for senders in (int(s) for s in args.senders.split(",")):
        these = []
        for number in range(1, args.rounds + 1):
            these += [
                one_round(name, way, senders, number, args.durability, args.warm_up) for name, way in sending.items()
            ]
        rows += these
        medians[str(senders)] = {
            name: {
                key: common.median([r[key] for r in these if r["protocol"] == name])
                for key in ("records_per_s", "server_cpu_us_per_record")
            }
            for name in sending
        }
        native = medians[str(senders)].get("native")
        for name, median in medians[str(senders)].items():
            rate, cpu = median["records_per_s"], median["server_cpu_us_per_record"]
            versus = ""
            if native and name != "native":
                versus = (
                    f" = {rate / native['records_per_s']:.2f}x native's rate, "
                    f"{cpu / native['server_cpu_us_per_record']:.2f}x its CPU per record"
                )
            print(
                f"senders {senders}: {name:>18} median {rate:>9,.0f} records/s, {cpu:5.2f} us CPU/record{versus}",
                flush=True,
            )
    results = {"workload": "protocols_ingest", "args": vars(args), "hardware": hw, "rounds": rows, "median": medians}
    common.write_json(args.json, results)


if __name__ == "__main__":
    main()
