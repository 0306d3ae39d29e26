"""The server's memory, idle and after one use of each feature: RSS, PSS and USS of `loglake serve` and of
each of its child processes (the merge worker, the flush's worker, OTLP decode workers, the query workers and
their fork server, multiprocessing's resource tracker), from /proc/<pid>/smaps_rollup.

It starts a server with the default settings on an empty data dir (the starter rules copied in with
--rules), then reads the memory at each stage: started, after --idle seconds of nothing, after one
POST /logs of one record, one SQL query, the web UI's page and assets, one OTLP export of about 1 MB,
and (--rules) once a rule run is counted; then (--bulk N) right after N records of B2's data set (4
senders) and --after-bulk seconds later, with the server's peak. USS is what the process alone holds
(what stopping it frees); PSS shares the pages of the libraries among the processes mapping them (their
sum over the tree is the tree's share of the machine's memory), and both depend on what else maps the
same library files (another server of the same install). Nothing here times anything.

    python bench/server_memory.py --idle 60 --rules
    python bench/server_memory.py --idle 5 --bulk 300000 --bulk-days 1 --after-bulk 480   # a merge worker's life
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

import common
from loglake.ui.assets import Assets

FIELDS = {"Rss:": "rss", "Pss:": "pss", "Private_Clean:": "uss", "Private_Dirty:": "uss"}
OTLP_BYTES = 1_000_000


def memory(pid: int) -> dict[str, float]:
    """RSS, PSS and USS of one process, in MiB."""
    found = {"rss": 0.0, "pss": 0.0, "uss": 0.0}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        name, *value = line.split()
        if name in FIELDS:
            found[FIELDS[name]] += int(value[0]) / 1024
    return found


def role(pid: int) -> str:
    """What a process of the tree is, by its command line."""
    command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    if "resource_tracker" in command:
        return "resource tracker"
    if "spawn_main" in command:
        return "spawned worker"
    if "forkserver" in command:  # the query workers' fork server, and the workers forked from it (query_workers.py)
        parent = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[1]
        parent_command = Path(f"/proc/{int(parent)}/cmdline").read_bytes()
        return "query worker" if b"forkserver" in parent_command else "fork server"
    return "server" if " serve " in command else command[:60]


def tree(pid: int) -> list[dict[str, Any]]:
    """The server's and each descendant's memory; a process gone meanwhile is left out."""
    rows = []
    for each in [pid, *common.children_of(pid)]:
        try:
            rows.append({"pid": each, "role": role(each), **memory(each)})
        except (OSError, ValueError):
            continue
    return rows


def report(stage: str, pid: int, results: list[dict[str, Any]]) -> None:
    rows = tree(pid)
    total = {key: sum(row[key] for row in rows) for key in ("rss", "pss", "uss")}
    results.append({"stage": stage, "processes": rows, "total": total})
    print(
        f"{stage:>22}: tree RSS {total['rss']:6.1f} MiB, PSS {total['pss']:6.1f}, USS {total['uss']:6.1f}"
        f"  ({len(rows)} processes)"
    )
    for row in rows:
        sizes = f"RSS {row['rss']:6.1f}  PSS {row['pss']:6.1f}  USS {row['uss']:6.1f}"
        print(f"{'':>24}{row['role']:<17} {row['pid']:>7}: {sizes}")


def otlp_export(target_bytes: int) -> bytes:
    """One OTLP/protobuf export of about target_bytes: records of one service, each a log line."""
    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    resource_logs.resource.attributes.add(key="service.name").value.string_value = "checkout"
    scope_logs = resource_logs.scope_logs.add()
    now_ns = time.time_ns()
    n = 0
    while request.ByteSize() < target_bytes:
        for _ in range(500):
            log = scope_logs.log_records.add(time_unix_nano=now_ns + n, severity_number=9, severity_text="INFO")
            log.body.string_value = f"request {n} served in {n % 97} ms for user {n % 1013} from 10.0.{n % 255}.7"
            n += 1
    return request.SerializeToString()


def rule_runs(server: common.Server) -> float:
    return sum(value for name, _, value in server.metrics() if name == "loglake_rule_runs_total")


def main() -> None:
    parser = common.argument_parser(__doc__)
    parser.add_argument("--idle", type=float, nargs="*", default=[60.0], help="idle stages, seconds since start")
    parser.add_argument("--rules", action="store_true", help="copy the starter rules in, and wait for a rule run")
    parser.add_argument("--bulk", type=int, default=0, help="last, send this many records of the data set (B2's)")
    parser.add_argument("--bulk-days", type=float, default=7.0, help="over this many days (1: one day's big merge)")
    parser.add_argument("--after-bulk", type=float, default=60.0, help="and read the memory again this long after")
    args = parser.parse_args()
    hardware = common.print_hardware()
    results: list[dict[str, Any]] = []
    rules = tempfile.TemporaryDirectory(prefix="loglake-memory-rules-")
    extra_args = []
    if args.rules:
        subprocess.run([*common.LOGLAKE, "rules", "init", "--rules-dir", rules.name], check=True, capture_output=True)
        extra_args = ["--rules-dir", rules.name]
    # the default settings (but the starter rules with --rules), on a port of its own
    # the installed `loglake` command, as users start it (its worker processes import what its script does)
    loglake = [str(Path(sys.executable).with_name("loglake"))]
    server = common.Server(access_log="-", durability="full", extra_args=extra_args, command=loglake)
    with rules, server:
        pid = server.process.pid
        started = time.monotonic()
        report("started", pid, results)
        for seconds in sorted(args.idle):
            time.sleep(max(0.0, seconds - (time.monotonic() - started)))
            report(f"idle {seconds:.0f} s", pid, results)
        record = {"service": "checkout", "severity": "error", "message": "Database connection timeout"}
        httpx.post(f"{server.url}/logs", json=record, headers=server.headers, timeout=30).raise_for_status()
        report("one POST /logs", pid, results)
        sql = {"sql": "SELECT service, count(*) FROM logs GROUP BY service"}
        httpx.post(f"{server.url}/query", json=sql, headers=server.headers, timeout=60).raise_for_status()
        report("one SQL query", pid, results)
        ui = Assets()
        with httpx.Client(base_url=server.url, timeout=30) as browser:
            for path in ("/login", *(f"{ui.prefix}/{name}" for name in ui.files)):  # /ui/ sends there first
                browser.get(path).raise_for_status()
        report("the UI opened", pid, results)
        body = otlp_export(OTLP_BYTES)
        headers = {**server.headers, "Content-Type": "application/x-protobuf"}
        httpx.post(f"{server.url}/v1/logs", content=body, headers=headers, timeout=60).raise_for_status()
        report(f"one OTLP export {len(body) / 1e6:.1f} MB", pid, results)
        if args.rules:
            deadline = time.monotonic() + 180
            while rule_runs(server) == 0 and time.monotonic() < deadline:
                time.sleep(1)
            report(f"rule runs: {rule_runs(server):.0f}", pid, results)
        time.sleep(5)
        report("5 s later", pid, results)
        if args.bulk:
            bodies = common.batches(common.read_lines(common.dataset(args.bulk, days=args.bulk_days)), 10_000)
            sent = common.bulk_send(server.url, server.headers, bodies, senders=4)
            report(f"{sent.records:,} records sent", pid, results)
            time.sleep(args.after_bulk)
            report(f"{args.after_bulk:.0f} s after them", pid, results)
            results[-1]["peak_server_rss_mib"] = common.mib(server.rss()[1])
            print(f"{'':>24}the server's peak RSS (VmHWM): {results[-1]['peak_server_rss_mib']:.1f} MiB")
    common.write_json(args.json, {"hardware": hardware, "stages": results})


if __name__ == "__main__":
    main()
