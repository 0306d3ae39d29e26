"""From ingest of a matching record to the webhook receiving its alert (issue 13's target: at most the
rule's interval + 5 s), against a real `loglake serve` with its default settings and a rules folder.

One Sigma rule ("any critical record", grouped by service, on an interval schedule, the default delay) and an
alerting.yml that routes every alert to a webhook: a local HTTP server in this process that notes when
each request arrives. Each sample sends one critical record of a service of its own (so each makes a
new alert) with POST /logs, just after a window of the rule ended (its firing less the delay): the worst
case, as the record waits for the whole next window and its delay. Reported per sample:

  latency     from sending the record to the webhook receiving its alert (target: interval + 5 s)
  after fire  from the firing that evaluated the record's window to the webhook receiving the alert:
              what loglake adds to the schedule (the round, the outbox, the HTTP delivery)

    flock /tmp/loglake-bench.lock python bench/alert_latency.py --interval 1m --samples 5
"""

from __future__ import annotations

import json
import tempfile
import textwrap
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from common import Server, argument_parser, median, print_hardware, write_json
from loglake.rules.model import DEFAULT_DELAY
from loglake.times import parse_duration

RULE = """
title: Critical record
id: 0b9f6f3e-5f7d-4c55-9d3e-6a1e2b3c4d5e
level: critical
logsource: {{product: loglake, service: app_logs}}
detection: {{sel: {{severity: critical}}, condition: sel}}
loglake: {{schedule: {interval}, group_by: [service]}}
"""


class Webhook:
    """A local HTTP server that notes the wall time each alert's trigger arrives, by the alert's service."""

    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        self.changed = threading.Condition()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                at = time.time()
                body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)))
                if body["event"] == "trigger":
                    with hook.changed:
                        hook.arrived.setdefault(body["alert"]["group"]["service"], at)
                        hook.changed.notify_all()
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, service: str, timeout: float) -> float:
        with self.changed:
            if not self.changed.wait_for(lambda: service in self.arrived, timeout):
                raise SystemExit(f"no alert for {service} reached the webhook within {timeout:.0f} s")
            return self.arrived[service]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--interval", default="1m", help="the rule's schedule (an interval)")
    parser.add_argument("--samples", type=int, default=5)
    args = parser.parse_args()
    interval_s = parse_duration(args.interval) / 1000
    delay_s = parse_duration(DEFAULT_DELAY) / 1000  # (the rule's: it names none)
    hardware = print_hardware()
    rules = Path(tempfile.mkdtemp(prefix="loglake-alert-latency-"))
    (rules / "critical.yml").write_text(textwrap.dedent(RULE.format(interval=args.interval)).lstrip())
    hook = Webhook()
    (rules / "alerting.yml").write_text(
        f'destinations: {{hook: {{type: webhook, url: "{hook.url}"}}}}\nroutes: [{{to: [hook]}}]\n'
    )
    samples = []
    # The server's defaults, but for its access log (off, as in the other benchmarks).
    with Server(extra_args=["--rules-dir", str(rules)]) as server, httpx.Client(timeout=10) as client:
        for i in range(args.samples):
            # Just after a window ended (a firing less the delay): the record's window is the next one, evaluated
            # a whole interval later.
            now = time.time()
            window_end = ((now + delay_s) // interval_s + 1) * interval_s - delay_s
            time.sleep(window_end + 0.2 - now)
            service = f"latency-{i}"
            sent_at = time.time()
            answer = client.post(
                f"{server.url}/logs",
                headers=server.headers,
                json={"service": service, "severity": "critical", "message": "sample"},
            )
            answer.raise_for_status()
            arrived = hook.wait(service, interval_s + 120)
            evaluated = ((sent_at + delay_s) // interval_s + 1) * interval_s  # the firing whose window holds it
            samples.append({"latency_s": arrived - sent_at, "after_fire_s": arrived - evaluated})
            print(
                f"sample {i + 1}: latency {arrived - sent_at:.2f} s (target {interval_s + 5:g} s),"
                f" {arrived - evaluated:.2f} s after the firing",
                flush=True,
            )
    hook.close()
    latencies = [s["latency_s"] for s in samples]
    after = [s["after_fire_s"] for s in samples]
    print(
        f"ingest to webhook, rule every {args.interval}: median {median(latencies):.2f} s, max {max(latencies):.2f} s"
        f" (target at most {interval_s + 5:g} s); after the firing: median {median(after):.2f} s,"
        f" max {max(after):.2f} s (target at most 5 s)"
    )
    write_json(args.json, {"hardware": hardware, "interval_s": interval_s, "samples": samples})


if __name__ == "__main__":
    main()
