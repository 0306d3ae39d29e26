"""Shared benchmark plumbing: the data set, a loglake server process, its RSS, and the hardware report.

Not a benchmark itself. `python bench/common.py` prints the hardware report the benchmarks print first;
`python bench/common.py --dataset ROWS [--days D]` builds (or finds) a cached data set and prints its path.

- `dataset()` runs ../shared/bench/make_dataset.py once per set of arguments and caches the NDJSON under
  /tmp/loglake-bench/ (the file name holds the arguments and a hash of the generator, so a changed
  generator never serves a stale file).
- `Server` starts `python -m loglake serve` on a free loopback port with a fresh data dir (or a given one),
  creates an ingest+read key whose rate limit cannot interfere, reads VmRSS/VmHWM from /proc and stops it.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import itertools
import json
import math
import os
import platform
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import msgspec


def shared_folder() -> Path:
    """The workspace's `shared/` folder (not part of the repository): beside the checkout, or for a git
    worktree elsewhere (`git worktree add ../wt/x`), beside the main checkout, found by the git
    directory every worktree shares."""
    checkout = Path(__file__).resolve().parents[1]
    found = [checkout.parent / "shared"]
    try:
        common = subprocess.run(
            ["git", "-C", str(checkout), "rev-parse", "--path-format=absolute", "--git-common-dir"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        found.append(Path(common).parent.parent / "shared")  # <main checkout>/.git -> <main checkout>/../shared
    except (OSError, subprocess.CalledProcessError):  # no git, or not a git checkout
        pass
    return next((folder for folder in found if folder.is_dir()), found[0])


MAKE_DATASET = shared_folder() / "bench" / "make_dataset.py"
CACHE_DIR = Path("/tmp/loglake-bench")
RUNS_DIR = CACHE_DIR / "runs"
LOGLAKE = [sys.executable, "-m", "loglake"]
BENCH_RATE = "1000000"
METRIC_LINE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>.*)\})? (?P<value>\S+)$")
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


# -- data set ----------------------------------------------------------------------------------


def dataset(
    rows: int, days: float = 7.0, end: str | None = None, services: int | None = None, seed: int | None = None
) -> Path:
    """Path of the NDJSON data set for these make_dataset.py arguments, generating it on first use."""
    if not MAKE_DATASET.exists():
        sys.exit(f"data set generator not found: {MAKE_DATASET} (not part of the repository; see bench/README.md)")
    args = ["--rows", str(rows), "--days", f"{days:g}"]
    for flag, value in (("--end", end), ("--services", services), ("--seed", seed)):
        if value is not None:
            args += [flag, str(value)]
    generator = hashlib.sha256(MAKE_DATASET.read_bytes()).hexdigest()[:10]
    name = "logs" + "".join(f"_{a.lstrip('-')}" if a.startswith("--") else f"-{a}" for a in args)
    path = CACHE_DIR / f"{re.sub(r'[^A-Za-z0-9_.-]', '', name)}_gen-{generator}.ndjson"
    if path.exists():
        return path
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".partial-{os.getpid()}")
    print(f"building data set: make_dataset.py {' '.join(args)} -> {path}", file=sys.stderr, flush=True)
    started = time.monotonic()
    try:
        subprocess.run([sys.executable, str(MAKE_DATASET), *args, "--out", str(partial)], check=True)
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
    print(f"built in {time.monotonic() - started:.1f} s", file=sys.stderr, flush=True)
    return path


def read_lines(path: Path, limit: int | None = None) -> list[bytes]:
    """The data set's lines as bytes, each with its trailing newline."""
    out: list[bytes] = []
    with path.open("rb") as f:
        for line in f:
            if limit is not None and len(out) >= limit:
                break
            if line.strip():
                out.append(line if line.endswith(b"\n") else line + b"\n")
    return out


def batches(lines: Sequence[bytes], size: int) -> list[bytes]:
    """NDJSON bodies of `size` records each (the last one may be shorter)."""
    return [b"".join(lines[i : i + size]) for i in range(0, len(lines), size)]


def stream_batches(path: Path, size: int) -> Iterator[bytes]:
    """NDJSON bodies of `size` records each, read from the file as they are needed."""
    with path.open("rb") as f:
        while chunk := [line for line in itertools.islice(f, size) if line.strip()]:
            yield b"".join(line if line.endswith(b"\n") else line + b"\n" for line in chunk)


@dataclass
class BulkResult:
    """What a bulk send achieved; only batches answered 201 with the full count are acknowledged."""

    seconds: float
    records: int
    bytes: int
    batches: int
    failures: list[str]

    @property
    def records_per_s(self) -> float:
        return self.records / self.seconds

    @property
    def mb_per_s(self) -> float:
        return self.bytes / 1e6 / self.seconds


class _Ack(msgspec.Struct):
    count: int


def native_acknowledged(response: httpx.Response, body: bytes) -> int:
    """The records POST /logs acknowledged: the body's NDJSON lines, when it answered 201 with their count."""
    expected = body.count(b"\n")
    ok = response.status_code == 201 and _decode_ack(response.content).count == expected
    return expected if ok else -1


_decode_ack = msgspec.json.Decoder(_Ack).decode


def bulk_send(
    url: str,
    headers: dict[str, str],
    bodies: Iterable[bytes],
    senders: int,
    progress: list[int] | None = None,
    *,
    path: str = "/logs",
    content_type: str = "application/x-ndjson",
    acknowledged: Callable[[httpx.Response, bytes], int] = native_acknowledged,
) -> BulkResult:
    """POST every body once to `path`, `senders` threads each taking the next unsent body, and time it all.

    Pass a list to keep preparing the bodies out of the timing; a generator is read under a lock as it goes.
    `progress[0]`, if given, counts the records acknowledged so far. `acknowledged(response, body)` says how
    many records an answer acknowledged, -1 for a failed batch (by default: POST /logs NDJSON).
    """
    lock = threading.Lock()
    todo = enumerate(bodies)
    start = threading.Barrier(senders + 1)
    acked = [0, 0, 0]  # records, bytes, batches
    failures: list[str] = []
    post_headers = {**headers, "Content-Type": content_type}

    def sender() -> None:
        with httpx.Client(base_url=url, headers=post_headers, timeout=httpx.Timeout(300.0)) as client:
            start.wait()
            while True:
                with lock:
                    index, body = next(todo, (None, b""))
                if index is None:
                    return
                try:
                    response = client.post(path, content=body)
                except httpx.HTTPError as e:
                    with lock:
                        failures.append(f"batch {index}: {type(e).__name__}: {e}")
                    continue
                expected = acknowledged(response, body)
                with lock:
                    if expected >= 0:
                        acked[0] += expected
                        if progress is not None:
                            progress[0] = acked[0]
                        acked[1] += len(body)
                        acked[2] += 1
                    else:
                        failures.append(f"batch {index}: HTTP {response.status_code}: {response.text[:300]}")

    threads = [threading.Thread(target=sender, daemon=True) for _ in range(senders)]
    for t in threads:
        t.start()
    start.wait()
    began = time.perf_counter()
    for t in threads:
        t.join()
    return BulkResult(time.perf_counter() - began, acked[0], acked[1], acked[2], failures)


# -- server ------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def create_key(data_dir: Path, name: str | None = None) -> str:
    """A new ingest+read key with a rate limit far above anything a benchmark can send."""
    name = name or f"bench-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{time.monotonic_ns() % 1_000_000}"
    out = subprocess.run(
        [
            *LOGLAKE,
            "keys",
            "create",
            "--name",
            name,
            "--scopes",
            "ingest,read",
            "--rate-limit",
            BENCH_RATE,
            "--burst",
            BENCH_RATE,
            "--data-dir",
            str(data_dir),
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    secrets = [line.strip() for line in out.splitlines() if line.strip().startswith("llk_")]
    if not secrets:
        sys.exit(f"`loglake keys create` printed no key: {out!r}")
    return secrets[-1]


def read_rss(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process in KiB; VmHWM is its peak resident set size."""
    values = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, value = line.split(":", 1)
                values[key] = int(value.split()[0])
    return values["VmRSS"], values["VmHWM"]


def read_cpu_seconds(stat: str, reaped_children: bool = False) -> float:
    """User + system CPU seconds from a /proc stat file (a process's, or one thread's under task/); with
    `reaped_children`, plus those of its children that ended and were waited for (cutime + cstime)."""
    fields = Path(stat).read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    if reaped_children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / os.sysconf("SC_CLK_TCK")


def thread_cpu_per_record(before: dict[str, float], after: dict[str, float], records: int) -> dict[str, float]:
    """Microseconds of server CPU per record by thread group between two Server.thread_cpu() readings, the groups
    named shortly (loglake-ingest -> ingest, MainThread -> loop), largest first; groups under 0.05 us left out."""
    spent = {
        name.removeprefix("loglake-").replace("MainThread", "loop"): (after[name] - before.get(name, 0.0))
        / records
        * 1e6
        for name in after
    }
    return {name: round(us, 2) for name, us in sorted(spent.items(), key=lambda kv: -kv[1]) if us >= 0.05}


class MachineIdle:
    """The share of the machine's CPU time left idle (idle + iowait, all CPUs) between start() and share()
    (/proc/stat): near 0, the run was short of CPU; well above, its work waited on something else (the GIL,
    the disk, its own senders)."""

    def start(self) -> MachineIdle:
        self._idle, self._total = self._read()
        return self

    def share(self) -> float:
        idle, total = self._read()
        return (idle - self._idle) / max(total - self._total, 1)

    @staticmethod
    def _read() -> tuple[int, int]:
        with open("/proc/stat") as f:
            ticks = [int(v) for v in f.readline().split()[1:]]
        return ticks[3] + ticks[4], sum(ticks)


def children_of(pid: int) -> list[int]:
    """The process ids of `pid`'s children and their children (the merge worker, the flush's worker, ...)."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):  # a thread that ended meanwhile
            found += [int(c) for c in (task / "children").read_text().split()]
    return found + [grandchild for child in found for grandchild in children_of(child)]


def children_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds the live descendants of `pid` have used so far."""
    seconds = 0.0
    for child in children_of(pid):
        with contextlib.suppress(OSError):  # gone meanwhile
            seconds += read_cpu_seconds(f"/proc/{child}/stat")
    return seconds


def children_rss(pid: int) -> tuple[int, int]:
    """(sum of VmRSS, largest VmHWM) of the descendants of `pid`, in KiB."""
    now, peak = 0, 0
    for child in children_of(pid):
        try:
            rss, hwm = read_rss(child)
        except (OSError, KeyError):
            continue  # gone meanwhile
        now, peak = now + rss, max(peak, hwm)
    return now, peak


@dataclass
class Server:
    """A loglake server process for one benchmark round. Use as a context manager."""

    data_dir: Path | None = None
    durability: str = "full"
    access_log: str = "off"
    extra_args: Sequence[str] = ()
    # `python -m loglake`; the installed `loglake` script differs in what its worker processes import
    command: Sequence[str] = tuple(LOGLAKE)
    keep_data: bool = False
    port: int = 0
    key: str = ""
    process: subprocess.Popen | None = None
    peak_rss_kib: int = 0
    last_rss_kib: int = 0
    _fresh: bool = field(default=False, repr=False)
    _log_path: Path | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def start(self) -> Server:
        if self.data_dir is None:
            RUNS_DIR.mkdir(parents=True, exist_ok=True)
            self.data_dir = RUNS_DIR / f"data-{os.getpid()}-{time.monotonic_ns()}"
            self._fresh = True
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.key = create_key(self.data_dir)
        self.port = free_port()
        RUNS_DIR.mkdir(parents=True, exist_ok=True)
        self._log_path = RUNS_DIR / f"server-{os.getpid()}-{time.monotonic_ns()}.log"
        log = self._log_path.open("wb")
        cmd = [
            *self.command,
            "serve",
            "--data-dir",
            str(self.data_dir),
            "--port",
            str(self.port),
            "--access-log",
            self.access_log,
            "--durability",
            self.durability,
            *self.extra_args,
        ]
        self.process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        self._wait_healthy()
        return self

    def _wait_healthy(self, timeout: float = 60.0) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"loglake serve exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"loglake serve did not become healthy in {timeout:.0f} s:\n{self.log_tail()}")

    def rss(self) -> tuple[int, int]:
        """(VmRSS, VmHWM) in KiB now; remembers the last reading so stop() can report the peak."""
        assert self.process is not None
        self.last_rss_kib, self.peak_rss_kib = read_rss(self.process.pid)
        return self.last_rss_kib, self.peak_rss_kib

    def cpu_seconds(self) -> float:
        """User + system CPU time the server process has used so far."""
        assert self.process is not None
        return read_cpu_seconds(f"/proc/{self.process.pid}/stat")

    def tree_cpu_seconds(self) -> float:
        """User + system CPU time the server and its child processes (the merge worker, the flush's worker:
        work the server hands off) have used so far, those that ended too."""
        assert self.process is not None
        pid = self.process.pid
        return read_cpu_seconds(f"/proc/{pid}/stat", reaped_children=True) + children_cpu_seconds(pid)

    def loop_cpu_seconds(self) -> float:
        """User + system CPU time of the server's main thread (the event loop) so far."""
        assert self.process is not None
        pid = self.process.pid
        return read_cpu_seconds(f"/proc/{pid}/task/{pid}/stat")

    def check_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"loglake server died with exit code {self.process.returncode}:\n{self.log_tail()}")

    def metrics(self) -> list[tuple[str, dict[str, str], float]]:
        """Every sample of GET /metrics as (name, labels, value)."""
        text = httpx.get(f"{self.url}/metrics", headers=self.headers, timeout=10.0).text
        samples = []
        for line in text.splitlines():
            m = METRIC_LINE.match(line)
            if m:
                labels = dict(LABEL.findall(m["labels"] or ""))
                samples.append((m["name"], labels, float(m["value"])))
        return samples

    def thread_cpu(self) -> dict[str, float]:
        """The server's CPU seconds by thread group so far (loglake_thread_cpu_seconds_total; Linux)."""
        return {
            labels["threads"]: value
            for name, labels, value in self.metrics()
            if name == "loglake_thread_cpu_seconds_total"
        }

    def statuses(self, route: str) -> dict[str, int]:
        """Responses the server counted for one route, by HTTP status."""
        return {
            labels["status"]: int(value)
            for name, labels, value in self.metrics()
            if name == "loglake_http_requests_total" and labels.get("route") == route
        }

    def stop(self) -> None:
        """Read the peak RSS, stop the server (SIGTERM: graceful; SIGKILL after 30 s), drop a fresh data dir.

        The server's output is deleted too, unless the server had died by itself: then its path is printed.
        """
        if self.process is None:
            return
        died = self.process.poll() is not None
        if not died:
            self.rss()
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                print("loglake server ignored SIGTERM for 30 s; killing it", file=sys.stderr)
                self.process.kill()
                self.process.wait()
        if self._fresh and not self.keep_data and self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)
        if self._log_path is not None:
            if died:
                print(f"the loglake server had exited by itself; its output is in {self._log_path}", file=sys.stderr)
            else:
                self._log_path.unlink(missing_ok=True)

    def log_tail(self, lines: int = 40) -> str:
        if self._log_path is None or not self._log_path.exists():
            return "(no server log)"
        return "\n".join(self._log_path.read_text(errors="replace").splitlines()[-lines:])

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# -- reporting ---------------------------------------------------------------------------------


def hardware() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kib = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "cpu": cpu,
        "ram_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "loglake": _loglake_version(),
        "load_average_1m": os.getloadavg()[0],
    }


def _loglake_version() -> str:
    try:
        from loglake import __version__

        return __version__
    except ImportError:
        return "not importable (run with the project's venv: .venv/bin/python)"


def print_hardware() -> dict[str, Any]:
    hw = hardware()
    print(
        f"hardware: {hw['nproc']} CPUs ({hw['cpus_usable']} usable), {hw['cpu']}, {hw['ram_gib']} GiB RAM, "
        f"Linux {hw['kernel']}; Python {hw['python']}, SQLite {hw['sqlite']}, loglake {hw['loglake']}",
        flush=True,
    )
    print("note: the load generator runs on the same machine as the server and competes for these CPUs", flush=True)
    if hw["load_average_1m"] > 0.5:
        print(
            f"WARNING: the machine is not idle (1-minute load average {hw['load_average_1m']:.2f}); "
            "other processes will skew these figures",
            flush=True,
        )
    return hw


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0-100) of the values."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def mib(kib: int) -> float:
    return kib / 1024


def argument_parser(doc: str | None) -> argparse.ArgumentParser:
    """A benchmark's command line: its docstring as the help, and --json FILE for the results."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    return parser


def write_json(path: str | None, payload: dict[str, Any]) -> None:
    if path:
        Path(path).write_text(json.dumps(payload, indent=2) + "\n")
        print(f"results written to {path}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", type=int, metavar="ROWS", help="build or find the cached data set of ROWS records")
    ap.add_argument("--days", type=float, default=7.0)
    a = ap.parse_args()
    print_hardware()
    if a.dataset:
        print(dataset(a.dataset, a.days))


if __name__ == "__main__":
    main()
