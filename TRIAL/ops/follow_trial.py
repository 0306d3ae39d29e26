"""Operator trial: `loglake recent --follow` while shippers send, one batching for a second with older times.

python follow_trial.py URL KEY RUN SECONDS: prints what the follow missed or showed twice."""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

URL, KEY, RUN, SECONDS = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
H = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/x-ndjson"}
sent: dict[str, set[str]] = collections.defaultdict(set)
stop = threading.Event()


def post(name: str, records: list[dict]) -> None:
    body = "".join(json.dumps(r) + "\n" for r in records)
    r = httpx.post(f"{URL}/logs", content=body, headers=H, timeout=30)
    if r.status_code == 201:
        sent[name].update(r["message"] for r in records)
    else:
        print(name, r.status_code, r.text[:200], file=sys.stderr)


def single() -> None:  # one record every 20 ms, stamped now
    i = 0
    while not stop.is_set():
        post("single", [{"message": f"follow-{RUN}-single-{i}", "service": "single"}])
        i += 1
        time.sleep(0.02)


def batcher(name: str, size: int) -> None:  # a batch a second, stamped over the second before
    i = 0
    while not stop.is_set():
        start = int(time.time() * 1000) - 1000
        recs = [
            {"message": f"follow-{RUN}-{name}-{i + k}", "service": name, "timestamp": start + k * 1000 // size}
            for k in range(size)
        ]
        i += size
        time.sleep(1)
        post(name, recs)


env = dict(os.environ, LOGLAKE_URL=URL, LOGLAKE_API_KEY=KEY)
OUT, ERR = Path(f"/tmp/ops/follow-{RUN}.out"), Path(f"/tmp/ops/follow-{RUN}.err")
# Into files, not pipes: a pipe nobody reads fills at 64 KiB and blocks the follow (the trial's first mistake)
with OUT.open("w") as out_file, ERR.open("w") as err_file:
    follow = subprocess.Popen(
        ["loglake", "recent", "--follow", "--json", "--since", "now"], stdout=out_file, stderr=err_file, env=env
    )
time.sleep(2)
threads = [
    threading.Thread(target=single),
    threading.Thread(target=batcher, args=("batch20", 20)),
    threading.Thread(target=batcher, args=("batch1500", 1500)),
    threading.Thread(target=batcher, args=("batch5000", 5000)),
]
for t in threads:
    t.start()
time.sleep(SECONDS)
stop.set()
for t in threads:
    t.join()
time.sleep(5)
follow.send_signal(signal.SIGINT)
follow.wait(timeout=30)
out, err = OUT.read_text(), ERR.read_text()
shown = collections.Counter(json.loads(line)["message"] for line in out.splitlines() if line.strip())
print("follow stderr:", err.strip()[:500])
for name, msgs in sorted(sent.items()):
    got = {m: n for m, n in shown.items() if m.startswith(f"follow-{RUN}-{name}-")}
    missing = msgs - set(got)
    twice = [m for m, n in got.items() if n > 1]
    print(f"{name:10} sent {len(msgs):7} shown {sum(got.values()):7} missing {len(missing)} twice {len(twice)}")
