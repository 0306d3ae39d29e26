"""Syslog over TCP: messages/s from senders' first byte until /metrics counts every message stored.

The --rows record set (default 1,000,000, from make_dataset.py) becomes RFC 5424 lines before the clock
starts: the record's service as APP-NAME, its severity as PRI, its message as MSG, framed by a newline (or
by octet counting with --octet-count), as rsyslog forwards them. The time is the sending machine's, as
syslog senders stamp messages: the set's own times spread over a week, which would make every commit a
part per day. --senders TCP connections
(default 1) each send their share as fast as the server reads it. A message counts once stored: the run
ends when loglake_protocol_records_total{protocol="syslog",outcome="accepted"} reaches the number sent
(it fails if that does not happen within --timeout seconds of the last byte). Each round gets a fresh
server and data dir; the report gives messages/s per round, the median, and the server's CPU use.

    .venv/bin/python bench/syslog_tcp.py                       # 1M messages, 1 sender, 3 rounds
    .venv/bin/python bench/syslog_tcp.py --senders 4 --octet-count
    .venv/bin/python bench/syslog_tcp.py --rows 100000 --rounds 1   # quick check
"""

from __future__ import annotations

import argparse
import socket
import sys
import threading
import time
from typing import Any

import msgspec

import common

PRI = {"debug": 15, "info": 14, "warning": 12, "error": 11, "critical": 10}  # facility user, by severity


def syslog_lines(path: str, octet_count: bool) -> list[bytes]:
    lines = []
    now_ms = int(time.time() * 1000)
    records = msgspec.json.Decoder().decode_lines(open(path, "rb").read())  # noqa: SIM115
    for number, record in enumerate(records):
        sent_ms = now_ms - len(records) + number  # a millisecond apart, up to now
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sent_ms / 1000)) + f".{sent_ms % 1000:03d}Z"
        pri = PRI[record.get("severity", "info")]
        message = f"<{pri}>1 {stamp} bench-host {record.get('service', 'app')} 4242 - - {record['message']}"
        data = message.replace("\n", " ").encode()
        lines.append(b"%d %b" % (len(data), data) if octet_count else data + b"\n")
    return lines


def send(port: int, payload: bytes) -> None:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(payload)


def accepted(server: common.Server) -> int:
    for name, labels, value in server.metrics():
        if name == "loglake_protocol_records_total" and labels == {"protocol": "syslog", "outcome": "accepted"}:
            return int(value)
    return 0


def one_round(args: argparse.Namespace, payloads: list[bytes], count: int, number: int) -> dict[str, Any]:
    port = common.free_port()
    with common.Server(durability=args.durability, extra_args=("--syslog-tcp", f"127.0.0.1:{port}")) as server:
        cpu_before = server.cpu_seconds()
        started = time.perf_counter()
        senders = [threading.Thread(target=send, args=(port, p)) for p in payloads]
        for sender in senders:
            sender.start()
        for sender in senders:
            sender.join()
        sent = time.perf_counter()
        stored = accepted(server)
        while stored < count and time.perf_counter() - sent < args.timeout:
            time.sleep(0.02)
            stored = accepted(server)
        seconds = time.perf_counter() - started
        server.check_alive()
        cpu = server.cpu_seconds() - cpu_before
        row = {
            "round": number,
            "messages": count,
            "stored": stored,
            "seconds": round(seconds, 3),
            "messages_per_s": round(stored / seconds, 1),
            "server_cpu_percent": round(100 * cpu / seconds, 1),
            "server_cpu_us_per_message": round(cpu / max(stored, 1) * 1e6, 2),
        }
        print(
            f"round {number}: {row['messages_per_s']:>9,.0f} messages/s  ({stored:,} of {count:,} stored in "
            f"{seconds:.2f} s, server CPU {row['server_cpu_percent']:.0f}%, "
            f"{row['server_cpu_us_per_message']:.1f} µs of server CPU per message)",
            flush=True,
        )
        if stored != count:
            print(f"\nFAILED: {stored:,} of {count:,} messages stored\n{server.log_tail()}", file=sys.stderr)
            sys.exit(1)
        return row


def main() -> None:
    ap = common.argument_parser(__doc__)
    ap.add_argument("--rows", type=int, default=1_000_000, help="messages (default 1,000,000)")
    ap.add_argument("--senders", type=int, default=1, help="TCP connections sending at once (default 1)")
    ap.add_argument("--octet-count", action="store_true", help="frame by octet counting instead of newlines")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds after the last byte to wait for storage")
    ap.add_argument("--durability", choices=("full", "process"), default="full")
    ap.add_argument("--data", help="an NDJSON data set made by make_dataset.py (default: the cached --rows set)")
    args = ap.parse_args()

    hw = common.print_hardware()
    lines = syslog_lines(args.data or str(common.dataset(args.rows)), args.octet_count)
    payloads = [b"".join(lines[i :: args.senders]) for i in range(args.senders)]
    size = sum(map(len, payloads))
    framing = "octet counting" if args.octet_count else "newline framing"
    print(
        f"syslog TCP: {len(lines):,} RFC 5424 messages ({size / 1e6:.1f} MB, {framing}) over {args.senders} "
        f"connection(s), durability {args.durability}, {args.rounds} round(s)",
        flush=True,
    )
    rows = [one_round(args, payloads, len(lines), n) for n in range(1, args.rounds + 1)]
    median = common.median([r["messages_per_s"] for r in rows])
    print(f"median of {len(rows)}: {median:,.0f} messages/s", flush=True)
    common.write_json(
        args.json, {"workload": "syslog_tcp", "args": vars(args), "hardware": hw, "rounds": rows, "median": median}
    )


if __name__ == "__main__":
    main()
