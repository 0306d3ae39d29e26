"""Fill the data folder: random, incompressible messages, singles (hot store) and bulks; print status codes."""

import base64
import collections
import json
import os
import sys
import time

import httpx

URL, KEY, SECONDS = sys.argv[1], sys.argv[2], float(sys.argv[3])
H = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/x-ndjson"}
codes = collections.Counter()
c = httpx.Client(timeout=30)
end = time.time() + SECONDS
i = 0
while time.time() < end:
    n = 2000 if i % 2 else 300
    body = "".join(
        json.dumps({"message": base64.b64encode(os.urandom(300)).decode(), "service": "fill"}) + "\n" for _ in range(n)
    )
    r = c.post(f"{URL}/logs", content=body, headers=H)
    codes[(n, r.status_code)] += 1
    if r.status_code != 201 and codes[(n, r.status_code)] < 3:
        print(n, r.status_code, r.text[:300], flush=True)
    i += 1
print(dict(codes))
