"""Operator trial: is every acknowledged record stored exactly once?  python check.py DATA_DIR RUN OUTDIR"""

from __future__ import annotations

import collections
import json
import subprocess
import sys
from pathlib import Path

DATA, RUN, OUT = sys.argv[1], sys.argv[2], Path(sys.argv[3])
sql = (
    "SELECT split_part(message, '-', 2) AS proto, list(CAST(split_part(message, '-', 4) AS BIGINT)) AS seqs "
    f"FROM logs WHERE message LIKE 'ops-%-{RUN}-%' GROUP BY 1"
)
p = subprocess.run(
    ["loglake", "query", "--data-dir", DATA, "--format", "json", sql], capture_output=True, text=True, check=False
)
if p.returncode:
    sys.exit(p.stderr)
rows = json.loads(p.stdout)
rows = rows["rows"] if isinstance(rows, dict) else rows
stored = {}
for row in rows:
    proto, seqs = (row["proto"], row["seqs"]) if isinstance(row, dict) else row
    stored[proto] = collections.Counter(seqs)
for f in sorted(OUT.glob("*.acked")):
    proto = f.stem
    acked = {int(line.rsplit("-", 1)[1]) for line in f.read_text().split()}
    have = stored.get(proto, collections.Counter())
    missing = sorted(acked - set(have))
    dups = sorted(s for s, n in have.items() if n > 1)
    extra = len(set(have) - acked)
    print(
        f"{proto:7} acked {len(acked):8} stored {sum(have.values()):8} distinct {len(have):8} "
        f"missing {len(missing)} {missing[:5]} dup {len(dups)} {dups[:5]} unacked-but-stored {extra}"
    )
