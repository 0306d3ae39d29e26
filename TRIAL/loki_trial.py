import json
import os
import sys
import time

sys.path.insert(0, "/tmp/trialclone")
import cramjam
import httpx
from tests.api.test_loki import entry, field

U = os.environ["LOGLAKE_URL"]
K = os.environ["LOGLAKE_API_KEY"]
now = time.time_ns()


def proto(labels, entries):
    m = field(1, field(1, labels) + b"".join(field(2, e) for e in entries))
    return bytes(cramjam.snappy.compress_raw(m))


body = proto(
    '{job="promtail", level="warn", host="h1"}',
    [
        entry(now, "loki proto line A", {"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"}),
        entry(now + 1, "loki proto line B"),
    ],
)
auth = ("promtail", K)
for attempt in range(2):  # Promtail retries a push whose answer it did not get
    r = httpx.post(U + "/loki/api/v1/push", content=body, auth=auth, headers={"Content-Type": "application/x-protobuf"})
    print("proto", attempt, r.status_code, r.text)
jb = json.dumps(
    {
        "streams": [
            {
                "stream": {"app": "lokijson", "level": "error"},
                "values": [[str(now), "loki json line"], [str(now), "loki json line"]],
            }
        ]
    }
)
for attempt in range(2):
    r = httpx.post(U + "/loki/api/v1/push", content=jb, auth=auth, headers={"Content-Type": "application/json"})
    print("json", attempt, r.status_code, r.text)
r = httpx.post(
    U + "/loki/api/v1/push", content=b"garbage", auth=auth, headers={"Content-Type": "application/x-protobuf"}
)
print("garbage", r.status_code, r.text)
r = httpx.post(U + "/loki/api/v1/push", content=jb, headers={"Content-Type": "application/json"})
print("noauth", r.status_code, r.text)
