"""A local stand-in for AWS Amplify Hosting, to try `loglake amplify collect` without an AWS account.

It answers GenerateAccessLogs (the one call the collector makes) for every app of an Amplify
configuration, with made-up traffic over the last --days, and serves the export files it promises;
boto3 finds it through AWS_ENDPOINT_URL_AMPLIFY. It is the server loglake's own tests use
(tests/amplify/server.py), so run it from the repository's root:

    python -m examples.amplify.fake_amplify --port 8787

then follow "Try it without an AWS account" in the README.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from tests.amplify.logs import varied_requests
from tests.amplify.server import FakeAmplify, FakeApp

from loglake.amplify.config import load_config
from loglake.model import DAY_MS

CONFIG = Path(__file__).with_name("amplify.json")


def fake_service(config: Path, port: int, days: int, per_day: int, now_ms: int) -> FakeAmplify:
    """The stand-in, not started yet, serving `per_day` requests a day of each app, until `now_ms`."""
    fake = FakeAmplify(port)
    start = now_ms - days * DAY_MS
    for app in load_config(config).apps:
        requests = varied_requests(days * per_day, start, days * DAY_MS, salt=app.app_name)
        fake.apps[app.app_id] = FakeApp(app.domain_name, requests)
    return fake


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=CONFIG, help="the Amplify configuration whose apps to serve")
    parser.add_argument("--port", type=int, default=8787, help="loopback port to listen on")
    parser.add_argument("--days", type=int, default=7, help="days of traffic, ending now")
    parser.add_argument("--requests-per-day", type=int, default=500, help="requests a day, per app")
    args = parser.parse_args()
    fake = fake_service(args.config, args.port, args.days, args.requests_per_day, int(time.time() * 1000))
    with fake:
        print(f"Amplify stand-in on {fake.url}: {len(fake.apps)} app(s) of {args.config}; Ctrl-C stops it", flush=True)
        try:
            while True:
                time.sleep(1)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
