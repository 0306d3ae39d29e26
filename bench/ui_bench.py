"""The web UI's reads through HTTP, on the 10M-record set over 7 days (issue 15's targets):

  histogram-7d  GET /logs/histogram over the set's 7 days (60 buckets). Target: under 1 s.
  first-paint   what Explore asks first for the last 24 h, both at once as a browser does: the newest 100
                records (GET /logs/search?limit=100) and the histogram (60 buckets); the wall time until
                both answered. Target: under 1 s.
  search-24h, histogram-24h, facets-24h   each of those alone (facets: GET /logs/facets, top 10).
  browser-first-paint   the same in the browser: Debian's Chromium (Playwright) opens Explore on the set's
                last 24 h, signed in, and reads the mark the page sets once the histogram and the first
                100 records are drawn (performance.mark "loglake:explore-drawn", its time since the
                navigation started: the document, the modules, the session and both reads). Assets are
                cached after the warm-up, as for a returning user; the cold first load is reported too.
                Target: under 1 s.
  tail          a live tail (GET /logs/tail?q=tailmark) open on a fresh server while a sender posts
                --tail-rate records/s (a batch every 100 ms, one marker record in each): per marker, the
                time from the 201 of its POST to its event on the tail. Target: under 1 s.

The lake is loaded once into --data-dir (as bench/rules_bench.py does, the same marker file) and reused;
the reads run on a server over it with its background job off. Medians of --runs after one warm-up.

    flock /tmp/loglake-bench.lock .venv/bin/python bench/ui_bench.py --data-dir /tmp/loglake-bench/ui-10m
    (--only-browser: just browser-first-paint)
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import msgspec

from common import Server, argument_parser, median, percentile, print_hardware, write_json
from loglake.client import server_sent_events
from rules_bench import ensure_lake

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the browser the UI's tests launch
from tests.ui.chromium import CHROMIUM, CHROMIUM_ARGS

DRAWN_MARK = "loglake:explore-drawn"  # set by src/loglake/ui/static/explore.js

DAY_MS = 86_400_000


def timed(runs: int, fn: Callable[[], object]) -> list[float]:
    """Seconds of each of `runs` calls, after one unmeasured call."""
    fn()
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - started)
    return seconds


def reads(data_dir: Path, runs: int, only_browser: bool = False) -> dict[str, list[float]]:
    with (
        Server(data_dir=data_dir, extra_args=("--flush-interval-seconds", "0")) as server,
        httpx.Client(base_url=server.url, headers=server.headers, timeout=60) as client,
        ThreadPoolExecutor(2) as browser,
    ):
        newest = client.post("/query", json={"sql": "SELECT epoch_ms(max(timestamp)) FROM logs"}).json()["rows"][0][0]
        week = {"since": str(newest + 1 - 7 * DAY_MS), "until": str(newest + 1)}
        day = {"since": str(newest + 1 - DAY_MS), "until": str(newest + 1)}

        def get(path: str, params: dict) -> dict:
            response = client.get(path, params=params)
            response.raise_for_status()
            return response.json()

        def first_paint() -> None:
            page = browser.submit(get, "/logs/search", day | {"limit": "100"})
            counts = browser.submit(get, "/logs/histogram", day | {"buckets": "60"})
            assert page.result()["count"] == 100 and counts.result()["total"] > 0

        week_total = get("/logs/histogram", week | {"buckets": "60"})["total"]
        print(f"the set: {week_total:,} records in the 7 days before {newest} ms")
        cold, painted = browser_first_paint(server, newest + 1, runs)
        print(f"browser first paint, cold (assets not cached): {cold * 1000:.0f} ms")
        if only_browser:
            return {"browser-first-paint": painted}
        return {
            "browser-first-paint": painted,
            "histogram-7d": timed(runs, lambda: get("/logs/histogram", week | {"buckets": "60"})),
            "first-paint": timed(runs, first_paint),
            "search-24h": timed(runs, lambda: get("/logs/search", day | {"limit": "100"})),
            "histogram-24h": timed(runs, lambda: get("/logs/histogram", day | {"buckets": "60"})),
            "facets-24h": timed(runs, lambda: get("/logs/facets", day)),
        }


def browser_first_paint(server: Server, until_ms: int, runs: int) -> tuple[float, list[float]]:
    """Seconds from navigation to Explore's drawn mark over the 24 h before until_ms: the first load
    (nothing cached), then each of `runs` loads after one warm-up."""
    from playwright.sync_api import sync_playwright

    explore = f"{server.url}/ui/explore?from={until_ms - DAY_MS}&to={until_ms}"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
            page.set_default_timeout(60_000)
            page.goto(f"{server.url}/login")
            page.get_by_label("API key").fill(server.key)
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url("**/ui/explore")

            def load() -> float:
                page.goto(explore)
                page.wait_for_function(f"() => performance.getEntriesByName({DRAWN_MARK!r}).length > 0")
                drawn = page.evaluate(
                    f"""() => ({{
                        ms: performance.getEntriesByName({DRAWN_MARK!r})[0].startTime,
                        records: document.querySelectorAll(".records .record").length,
                        bars: document.querySelectorAll(".histogram rect.bar").length,
                    }})"""
                )
                assert drawn["records"] == 100 and drawn["bars"] > 0, drawn
                return drawn["ms"] / 1000

            cold = load()
            load()  # the warm-up
            return cold, [load() for _ in range(runs)]
        finally:
            browser.close()


def tail_latency(rate: int, seconds: float) -> list[float]:
    """Seconds from each marker's 201 to its tail event, on a fresh server taking `rate` records/s."""
    batch = rate // 10
    acked: dict[str, float] = {}
    received: dict[str, float] = {}
    opened = threading.Event()
    with Server() as server:

        def follow() -> None:
            with (
                httpx.Client(base_url=server.url, headers=server.headers, timeout=60) as client,
                client.stream("GET", "/logs/tail", params={"q": "tailmark"}) as response,
            ):
                response.raise_for_status()
                opened.set()
                for name, data in server_sent_events(response.iter_lines()):
                    if name == "record":
                        received[data["message"]] = time.monotonic()

        reader = threading.Thread(target=follow, daemon=True)
        reader.start()
        assert opened.wait(30), "the tail did not open"
        filler = [msgspec.json.encode({"service": "bench", "message": f"filler record {i}"}) for i in range(batch - 1)]
        with httpx.Client(base_url=server.url, headers=server.headers, timeout=60) as client:
            started = time.monotonic()
            n = 0
            while time.monotonic() - started < seconds:
                due = started + n * 0.1
                time.sleep(max(0.0, due - time.monotonic()))
                marker = f"tailmark {n}"
                body = b"\n".join([*filler, msgspec.json.encode({"service": "bench", "message": marker})])
                response = client.post("/logs", content=body, headers={"content-type": "application/x-ndjson"})
                response.raise_for_status()
                acked[marker] = time.monotonic()
                n += 1
        deadline = time.monotonic() + 10
        while acked.keys() - received.keys() and time.monotonic() < deadline:
            time.sleep(0.05)
    missing = acked.keys() - received.keys()
    assert not missing, f"{len(missing)} markers never reached the tail"
    return [received[m] - acked[m] for m in acked]


def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--data-dir", type=Path, required=True, help="the lake to load once and reuse")
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--tail-rate", type=int, default=5000, help="records/s sent while the tail is open")
    parser.add_argument("--tail-seconds", type=float, default=10.0)
    parser.add_argument("--only-browser", action="store_true", help="measure browser-first-paint alone")
    args = parser.parse_args()
    hardware = print_hardware()
    ensure_lake(args.data_dir, args.rows)
    results: dict[str, dict[str, float]] = {}
    for name, seconds in reads(args.data_dir, args.runs, args.only_browser).items():
        results[name] = {"median_ms": median(seconds) * 1000, "max_ms": max(seconds) * 1000}
        print(f"{name:<19} median {results[name]['median_ms']:7.0f} ms   max {results[name]['max_ms']:7.0f} ms")
    if not args.only_browser:
        results["tail"] = tail_results(args.tail_rate, args.tail_seconds)
    write_json(args.json, {"hardware": hardware, "args": vars(args) | {"data_dir": str(args.data_dir)}, **results})


def tail_results(rate: int, seconds: float) -> dict[str, float]:
    latencies = tail_latency(rate, seconds)
    tail = {
        "markers": len(latencies),
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "max_ms": max(latencies) * 1000,
    }
    print(
        f"tail at {rate:,} records/s: {tail['markers']} markers, p50 {tail['p50_ms']:.0f} ms, "
        f"p99 {tail['p99_ms']:.0f} ms, max {tail['max_ms']:.0f} ms (201 of the POST to the event)"
    )
    return tail


if __name__ == "__main__":
    main()
