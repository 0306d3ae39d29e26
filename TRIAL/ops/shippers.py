"""Operator trial: several shippers send numbered records until stopped; each writes what was acknowledged.

python shippers.py URL KEY RUN OUTDIR  -> OUTDIR/<proto>.acked holds one message per acknowledged record.
Stopped by SIGTERM (or runs for --seconds)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
from elasticsearch import Elasticsearch, helpers

URL, KEY, RUN, OUT = sys.argv[1], sys.argv[2], sys.argv[3], Path(sys.argv[4])
SECONDS = float(sys.argv[5]) if len(sys.argv) > 5 else 1e9
SYSLOG_PORT = int(sys.argv[6]) if len(sys.argv) > 6 else 0
OUT.mkdir(parents=True, exist_ok=True)
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
H = {"Authorization": f"Bearer {KEY}"}


def acked(proto: str, msgs: list[str]) -> None:
    with open(OUT / f"{proto}.acked", "a") as f:
        f.write("".join(m + "\n" for m in msgs))


def errors(proto: str, what: str) -> None:
    with open(OUT / f"{proto}.errors", "a") as f:
        f.write(what.replace("\n", " ")[:300] + "\n")


def native(proto: str, batch: int) -> None:
    c = httpx.Client(timeout=30)
    seq = 0
    while not stop.is_set():
        msgs = [f"ops-{proto}-{RUN}-{seq + i}" for i in range(batch)]
        seq += batch
        body = "".join(json.dumps({"message": m, "service": proto}) + "\n" for m in msgs)
        try:
            r = c.post(f"{URL}/logs", content=body, headers=H | {"Content-Type": "application/x-ndjson"})
        except httpx.HTTPError as e:
            errors(proto, f"{seq}: {e!r}")
            time.sleep(0.2)
            continue
        if r.status_code == 201:
            acked(proto, msgs)
        else:
            errors(proto, f"{seq}: {r.status_code} {r.text}")
            time.sleep(0.2)


def otlp() -> None:
    c = httpx.Client(timeout=30)
    seq = 0
    while not stop.is_set():
        msgs = [f"ops-otlp-{RUN}-{seq + i}" for i in range(200)]
        seq += 200
        now = time.time_ns()
        body = {
            "resourceLogs": [
                {
                    "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "otlp"}}]},
                    "scopeLogs": [
                        {"logRecords": [{"timeUnixNano": str(now), "body": {"stringValue": m}} for m in msgs]}
                    ],
                }
            ]
        }
        try:
            r = c.post(f"{URL}/v1/logs", json=body, headers=H)
        except httpx.HTTPError as e:
            errors("otlp", f"{seq}: {e!r}")
            time.sleep(0.2)
            continue
        if r.status_code == 200 and "rejected" not in r.text:
            acked("otlp", msgs)
        else:
            errors("otlp", f"{seq}: {r.status_code} {r.text}")
            time.sleep(0.2)


def elastic() -> None:
    es = Elasticsearch(URL, api_key=KEY, request_timeout=30, max_retries=0)
    seq = 0
    while not stop.is_set():
        msgs = [f"ops-es-{RUN}-{seq + i}" for i in range(300)]
        seq += 300
        try:
            ok, errs = helpers.bulk(
                es,
                ({"_index": "es", "message": m, "service.name": "es"} for m in msgs),
                raise_on_error=False,
                stats_only=False,
            )
        except Exception as e:  # a trial records whatever the client raised
            errors("es", f"{seq}: {e!r}")
            time.sleep(0.2)
            continue
        if errs:
            errors("es", f"{seq}: {errs[:1]}")
        acked("es", msgs[:ok] if not errs else [])


def syslog() -> None:
    seq = 0
    while not stop.is_set():
        msgs = [f"ops-syslog-{RUN}-{seq + i}" for i in range(100)]
        seq += 100
        p = subprocess.run(
            ["logger", "-n", "127.0.0.1", "-P", str(SYSLOG_PORT), "--tcp", "-t", "syslog"],
            input="".join(m + "\n" for m in msgs),
            text=True,
            capture_output=True,
        )
        if p.returncode == 0:
            acked("syslog", msgs)  # sent, not acknowledged: syslog has no ack
        else:
            errors("syslog", f"{seq}: {p.stderr}")
            time.sleep(0.2)


threads = [
    threading.Thread(target=native, args=("bulk", 2000)),
    threading.Thread(target=native, args=("small", 50)),
    threading.Thread(target=otlp),
    threading.Thread(target=elastic),
]
if SYSLOG_PORT:
    threads.append(threading.Thread(target=syslog))
for t in threads:
    t.start()
stop.wait(SECONDS)
stop.set()
for t in threads:
    t.join()
