"""Debian's Chromium as the tests and bench/ui_bench.py launch it (never `playwright install`, which
downloads a browser)."""

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
