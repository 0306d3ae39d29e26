"""Detection rules on the 10M-record set (issue 13's targets), in process, through the real loader and engine:

  round       100 rules (the starter pack and generated Sigma rules) each run once over the 5-minute
              window ending at T (each with its own lookback) as one round (rules/rounds.py: the rules
              that read at most 15 minutes share one scan): the engine's time (the shared fetch plus
              each rule's query) and the wall time of the round; and, to compare, the wall time of
              each rule run on its own. Target: at most 2 s.
  scheduler   the same rules as a round of `loglake serve`'s scheduler (rules/scheduler.py, which runs
              them through rules/rounds.py): windows claimed, run records and alerts committed to a
              fresh alerts.db; wall time.
  lookback    one Sigma rule with a 24 h lookback over the set's last day. Target: at most 1 s.
  test        `loglake rules test` of the starter pack (conversion and inline tests), as a command,
              wall time including Python's start. Target: under 5 s.

T is a 5-minute boundary in the set's last day; round i uses T - 5 min * i, so no round reads
exactly what the one before it read. Medians of --runs are reported.

The lake is loaded once (as bench/lake_sql.py does: the records through the hot store, flushed and
compacted) into --data-dir and reused by later runs with the same --rows:

    flock /tmp/loglake-bench.lock .venv/bin/python bench/rules_bench.py --data-dir /tmp/loglake-bench/lake-10m
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from common import argument_parser, dataset, median, print_hardware, write_json
from lake_sql import load
from loglake.config import Settings
from loglake.lake.lake import Lake
from loglake.rules.loader import load_rules
from loglake.rules.model import Rule
from loglake.rules.rounds import Run, run_round
from loglake.rules.run import run_rule
from loglake.rules.scheduler import RuleFolder, RuleScheduler
from loglake.rules.starter import starter_folder
from loglake.store.sqlite import SQLiteHotStore

FIVE_MINUTES = 300_000
KEYWORDS = (
    "Failed password", "error", "exception", "timeout", "Connection refused", "Deleting block",
    "session opened", "authentication failure", "denied", "restart", "out of memory", "No such file",
    "invalid user", "closed", "interrupt", "corrected", "unreachable", "disk", "Received block", "shutdown",
    "WARN", "fatal",
)  # fmt: skip
SERVICES = ("hdfs-0", "openssh-0", "bgl-1", "apache-0", "linux-0", "spark-0", "zookeeper-0", "windows-0")
COMPONENTS = ("org.apache.hadoop", "sshd", "KERNEL", "nova.", "PowerManager", "CBS")


def generated_rule(i: int, lookback: str | None = None) -> str:
    """The i-th generated Sigma rule: four shapes of detection over the data set's words and fields."""
    keyword, service = KEYWORDS[i % len(KEYWORDS)], SERVICES[i % len(SERVICES)]
    shape = i % 4
    if shape == 0:
        detection = f"sel: {{message|contains: {json.dumps(keyword)}}}\n  condition: sel"
        options = "group_by: [service]\n  threshold: 3"
    elif shape == 1:
        detection = f"sel: {{severity: [error, critical], service: {service}}}\n  condition: sel"
        options = "group_by: [service]"
    elif shape == 2:
        component = COMPONENTS[i % len(COMPONENTS)]
        detection = (
            f"sel: {{attributes.component|startswith: {json.dumps(component)}}}\n"
            f"  words: {{message|contains|all: [{json.dumps(keyword)}, ' ']}}\n  condition: sel and words"
        )
        options = "group_by: [attributes.component]"
    else:
        detection = f"words: [{json.dumps(keyword)}]\n  noise: {{severity: debug}}\n  condition: words and not noise"
        options = "threshold: 2"
    lines = [
        f"title: Generated rule {i}",
        f"id: {uuid.UUID(int=i + 1, version=4)}",
        "level: low",
        "logsource: {product: loglake, service: app_logs}",
        "detection:",
        f"  {detection}",
        "loglake:",
        "  schedule: 5m",
        *([f"  lookback: {lookback}"] if lookback else []),
        f"  {options}",
    ]
    return "\n".join(lines) + "\n"


def rules_folder(count: int) -> Path:
    """The starter pack and `count` generated rules, in a temporary folder."""
    folder = Path(tempfile.mkdtemp(prefix="loglake-rules-bench-"))
    for file in starter_folder().glob("*.yml"):
        (folder / file.name).write_bytes(file.read_bytes())
    for i in range(count):
        (folder / f"generated-{i:03}.yml").write_text(generated_rule(i))
    return folder


def long_rule_file() -> Path:
    """A Sigma rule with a 24 h lookback ("Failed password" by service, at least 3), in a temporary folder."""
    path = Path(tempfile.mkdtemp(prefix="loglake-rules-bench-")) / "lookback-24h.yml"
    path.write_text(generated_rule(1012, lookback="24h"))
    return path


def ensure_lake(data_dir: Path, rows: int) -> None:
    """Load, flush and compact `rows` records into data_dir once (the same marker as lake_sql.py)."""
    marker = data_dir / "bench-lake-loaded.json"
    if marker.exists() and json.loads(marker.read_text())["rows"] == rows:
        print(f"reusing {data_dir}: {rows:,} records loaded, flushed and compacted before")
        return
    settings = Settings(data_dir=data_dir, flush_interval_seconds=0)
    store = SQLiteHotStore(settings.hot_db_path, durability="process")
    lake = Lake.from_settings(settings, store)
    started = time.perf_counter()
    loaded = load(store, dataset(rows), int(time.time() * 1000))
    with lake.maintenance():
        lake.flush(everything=True)
        lake.compact()
    lake.close()
    store.close()
    print(f"loaded, flushed and compacted {loaded:,} records in {time.perf_counter() - started:.0f} s")
    marker.write_text(json.dumps({"rows": rows}))


def round_of(rules: list[Rule], lake: Lake, end_ms: int) -> tuple[float, float, int, int]:
    """All rules over the windows ending at end_ms, as a scheduler's round (run_round: one scan for
    the rules that read little): (engine ms, wall ms, matches, rules that shared the scan). Engine
    time: the shared fetch plus each rule's query."""
    started = time.perf_counter()
    found = run_round([Run(r, end_ms - r.lookback_ms, end_ms) for r in rules], lake.engine, now_ms=end_ms)
    wall_ms = (time.perf_counter() - started) * 1000
    results = [r for r in found.results.values() if not isinstance(r, Exception)]
    assert len(results) == len(rules), [r for r in found.results.values() if isinstance(r, Exception)]
    engine_ms = found.shared_ms + sum(r.elapsed_ms for r in results)
    return engine_ms, wall_ms, sum(len(r.matches) for r in results), found.shared_rules


def scheduler_round(folder: Path, lake: Lake, end_ms: int) -> tuple[float, int, int]:
    """A round of `loglake serve`'s scheduler at end_ms (RuleScheduler.run_round: each rule's window
    claimed, run, and its run record and alerts committed to alerts.db), every rule due for the first
    time (its latest window), with a fresh alerts.db: (wall ms, runs, runs that shared a scan)."""
    with tempfile.TemporaryDirectory(prefix="loglake-rules-bench-") as state_dir:
        scheduler = RuleScheduler(RuleFolder(folder), lake.engine, Path(state_dir), clock=lambda: end_ms / 1000)
        scheduler.reload()
        started = time.perf_counter()
        report = scheduler.run_round()
        wall_ms = (time.perf_counter() - started) * 1000
        scheduler.stop()
    assert report.failed == 0, [r.error for _, r in report.runs if r.error]
    return wall_ms, len(report.runs), report.shared


def alone_round(rules: list[Rule], lake: Lake, end_ms: int) -> float:
    """The same rules each run on its own (run_rule): wall ms."""
    started = time.perf_counter()
    for rule in rules:
        run_rule(rule, lake.engine, end_ms - rule.lookback_ms, end_ms, now_ms=end_ms)
    return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--rules", type=int, default=100, help="rules in a round (starter pack + generated)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/loglake-bench/lake-10m"))
    args = parser.parse_args()
    hardware = print_hardware()
    ensure_lake(args.data_dir, args.rows)
    starter_count = len(list(starter_folder().glob("*.yml")))
    folder = rules_folder(args.rules - starter_count)
    results: dict = {"rows": args.rows}

    started = time.perf_counter()
    loaded = load_rules(folder)
    print(f"loaded {len(loaded.rules)} rules in {time.perf_counter() - started:.2f} s")
    assert not loaded.problems, loaded.problems
    round_rules = loaded.rules
    assert len(round_rules) == args.rules
    [long_rule] = load_rules(long_rule_file()).rules

    settings = Settings(data_dir=args.data_dir, flush_interval_seconds=0)
    store = SQLiteHotStore(settings.hot_db_path, durability="process")
    lake = Lake.from_settings(settings, store)
    newest = store.read("SELECT max(max_ts) FROM lake_files")[0][0]
    end = newest // FIVE_MINUTES * FIVE_MINUTES - FIVE_MINUTES
    round_of(round_rules, lake, end + FIVE_MINUTES)  # warm-up: views, Parquet footers
    rounds = [round_of(round_rules, lake, end - i * FIVE_MINUTES) for i in range(args.runs)]
    alone = [alone_round(round_rules, lake, end - i * FIVE_MINUTES) for i in range(args.runs)]
    scheduled = [scheduler_round(folder, lake, end - i * FIVE_MINUTES) for i in range(args.runs)]
    results["round"] = {
        "engine_ms": [r[0] for r in rounds],
        "wall_ms": [r[1] for r in rounds],
        "matches": [r[2] for r in rounds],
        "shared_rules": rounds[0][3],
        "each_alone_wall_ms": alone,
        "scheduler_wall_ms": [r[0] for r in scheduled],
        "scheduler_shared_runs": scheduled[0][2],
    }
    print(
        f"round of {len(round_rules)} rules over a 5-minute window ({rounds[0][3]} sharing one scan):"
        f" engine median {median([r[0] for r in rounds]):,.0f} ms, wall median {median([r[1] for r in rounds]):,.0f}"
        f" ms (target 2,000 ms); {rounds[0][2]} matches; each rule alone: wall median {median(alone):,.0f} ms"
    )
    print(
        f"the scheduler's round (loglake serve: claims, the round, run records and alerts committed):"
        f" wall median {median([r[0] for r in scheduled]):,.0f} ms, {scheduled[0][1]} runs,"
        f" {scheduled[0][2]} sharing a scan"
    )

    long_runs = []
    run_rule(long_rule, lake.engine, end - 86_400_000, end)
    for i in range(args.runs):
        until = end - i * FIVE_MINUTES
        result = run_rule(long_rule, lake.engine, until - 86_400_000, until)
        long_runs.append((result.elapsed_ms, result.rows_scanned, len(result.matches)))
    results["lookback_24h"] = {"ms": [r[0] for r in long_runs], "rows_scanned": long_runs[0][1]}
    print(
        f"one Sigma rule, 24 h lookback: median {median([r[0] for r in long_runs]):,.0f} ms (target 1,000 ms),"
        f" {long_runs[0][1]:,} rows scanned, {long_runs[0][2]} match(es)"
    )
    lake.close()
    store.close()

    command = [sys.executable, "-m", "loglake", "rules", "test", str(starter_folder())]
    seconds = []
    for _ in range(args.runs):
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        seconds.append(time.perf_counter() - started)
    results["starter_test_s"] = seconds
    print(f"loglake rules test (starter pack, {starter_count} rules): median {median(seconds):.2f} s (target < 5 s)")
    write_json(args.json, {"hardware": hardware, "args": {k: str(v) for k, v in vars(args).items()}, **results})


if __name__ == "__main__":
    main()
