"""B1's requests through the server's own HTTP protocol, in process: the event loop's CPU per request, no sockets.

32 connections (as wrk -c32) are the protocol `loglake serve` runs (server.uvicorn_config: http_protocol.HttpProtocol
on llhttp, uvicorn's proxy-headers middleware) on transports that hand the answer back instead of a
socket; each connection sends its next request, the bytes wrk sends (one real record, a bearer key), once its
answer is written. So the figure is the server's work per request (HTTP parsing, routing, auth, rate limit, the
check, the durable write on the writer thread, the answer, metrics, the access log) without the kernel's
socket work and without wrk competing for the CPUs. The event loop's CPU per request (time.thread_time) still
swings with the machine's load; instruction counts do not:

    .venv/bin/python bench/b1_in_process.py --requests 20000                  # CPU us per request
    valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file=/tmp/b1.cg \\
        .venv/bin/python bench/b1_in_process.py --requests 3000 --callgrind /tmp/b1.cg   # instructions per request
    .venv/bin/python bench/b1_in_process.py --requests 20000 --profile out.prof   # cProfile of the measured part

With --callgrind (valgrind's --callgrind-out-file) the counts are zeroed after the warm-up and dumped after the
measured requests (callgrind_control), and each thread's instructions per request are read from that dump: thread 01
is the event loop, the writer and the access log's thread are the next largest.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import glob
import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import uvicorn
import uvloop

import common
from loglake import server
from loglake.api.app import LoglakeApp
from loglake.config import Settings

CONNECTIONS = 32


class _Transport:
    """What the protocol writes to: the answer goes back to its connection."""

    def __init__(self, connection: _Connection) -> None:
        self.connection = connection
        self.closing = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8080), "peername": ("127.0.0.1", 40000 + self.connection.number)}.get(
            name, default
        )

    def write(self, data: bytes) -> None:
        self.connection.answered(data)

    def writelines(self, parts: list[bytes]) -> None:
        self.write(b"".join(parts))

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


class _Connection:
    """One keep-alive connection: request i, i + 32, i + 64... each sent once the one before is answered."""

    def __init__(
        self, number: int, protocol: asyncio.Protocol, requests: list[bytes], statuses: dict[int, int]
    ) -> None:
        self.number, self.protocol, self.requests, self.statuses = number, protocol, requests, statuses
        self.loop = asyncio.get_running_loop()
        self.next = self.end = 0
        self.finished: asyncio.Future[None] | None = None
        protocol.connection_made(_Transport(self))  # type: ignore[arg-type]

    def run(self, start: int, end: int) -> asyncio.Future[None]:
        self.next, self.end = start + self.number, end
        self.finished = self.loop.create_future()
        self._send_or_finish()
        return self.finished

    def answered(self, data: bytes) -> None:
        status = int(data[9:12])  # b"HTTP/1.1 201 ..."
        self.statuses[status] = self.statuses.get(status, 0) + 1
        self.next += CONNECTIONS
        self.loop.call_soon(self._send_or_finish)

    def _send_or_finish(self) -> None:
        if self.next < self.end:
            self.protocol.data_received(self.requests[self.next % len(self.requests)])
        elif self.finished is not None and not self.finished.done():
            self.finished.set_result(None)


def _requests(records: Path, key: str) -> list[bytes]:
    """Each record as the bytes wrk sends for it (b1_single_ingest.lua)."""
    head = b"POST /logs HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nContent-Type: application/json\r\nAuthorization: Bearer "
    lines = [line for line in records.read_bytes().splitlines() if line]
    return [head + key.encode() + b"\r\nContent-Length: %d\r\n\r\n" % len(line) + line for line in lines]


def _callgrind(action: str) -> None:
    subprocess.run(["callgrind_control", action, str(os.getpid())], capture_output=True, check=False)


async def _drive(app: LoglakeApp, requests: list[bytes], args: argparse.Namespace) -> dict[str, Any]:
    config = server.uvicorn_config(app)
    config.load()
    state = uvicorn.server.ServerState()
    app._loop = asyncio.get_running_loop()
    app.runtime.start()
    server._tune_gc()  # as the server does before it serves
    statuses: dict[int, int] = {}
    connections = [
        _Connection(n, config.http_protocol_class(config=config, server_state=state, app_state={}), requests, statuses)
        for n in range(CONNECTIONS)
    ]
    await asyncio.gather(*(c.run(0, args.warmup) for c in connections))
    statuses.clear()  # the measured answers' only
    if args.callgrind:
        _callgrind("--zero")
    profile = cProfile.Profile() if args.profile else None
    end = args.warmup + args.requests
    started, cpu_started = time.perf_counter(), time.thread_time()
    if profile is not None:
        profile.enable()
    await asyncio.gather(*(c.run(args.warmup, end) for c in connections))
    if profile is not None:
        profile.disable()
        profile.dump_stats(args.profile)
    seconds, cpu = time.perf_counter() - started, time.thread_time() - cpu_started
    if args.callgrind:
        _callgrind("--dump=measured")
    for connection in connections:
        connection.protocol.connection_lost(None)
    return {
        "requests": args.requests,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "requests_per_s": round(args.requests / seconds),
        "loop_cpu_us_per_request": round(cpu * 1e6 / args.requests, 1),
    }


def _instructions_per_request(out_file: str, requests: int) -> dict[str, int]:
    """Each thread's instructions per request from callgrind's first dump (OUT.1-<thread>), the measured part's."""
    found: dict[str, int] = {}
    for path in sorted(glob.glob(f"{out_file}.1-*")):
        with open(path) as dump:
            for line in dump:
                if line.startswith(("summary:", "totals:")):
                    count = int(line.split()[1])
                    if count > requests * 100:
                        found[path.rsplit("-", 1)[1]] = count // requests
                    break
    return found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=20_000, help="measured requests (default 20,000)")
    ap.add_argument("--warmup", type=int, default=2_000, help="requests before the measured ones (default 2,000)")
    ap.add_argument("--records", type=int, default=5_000, help="distinct records cycled through, as B1's")
    ap.add_argument("--durability", choices=("full", "process"), default="full")
    ap.add_argument(
        "--callgrind",
        metavar="OUT",
        help="running under callgrind with --callgrind-out-file=OUT: count the measured part",
    )
    ap.add_argument("--profile", metavar="FILE", help="cProfile of the measured part, written to FILE")
    ap.add_argument("--json", help="also write the results as JSON")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="loglake-b1-in-process-") as data:
        settings = Settings(data_dir=Path(data), access_log=str(Path(data) / "access.log"), durability=args.durability)
        app = LoglakeApp.from_settings(settings)
        try:
            key = app.keystore.create("bench", frozenset({"ingest"}), rate_limit=1e9, rate_burst=10**9).secret
            drive = _drive(app, _requests(common.dataset(args.records), key), args)
            result = uvloop.run(drive) if server._loop() == "uvloop" else asyncio.run(drive)
        finally:
            app.close()
    if args.callgrind:
        result["instructions_per_request_by_thread"] = _instructions_per_request(args.callgrind, args.requests)
    print(
        f"B1 in process: {result['requests']:,} requests {result['statuses']}, {result['requests_per_s']:,} req/s, "
        f"event loop CPU {result['loop_cpu_us_per_request']} us/request"
    )
    for thread, count in result.get("instructions_per_request_by_thread", {}).items():
        print(f"  thread {thread}: {count:,} instructions/request")
    if args.json:
        common.write_json(args.json, {"workload": "b1_in_process", "args": vars(args), **result})


if __name__ == "__main__":
    main()
