"""A local HTTP server that speaks Amplify's GenerateAccessLogs and serves the exports it promises.

`POST /apps/{appId}/accesslogs` with `{"domainName", "startTime", "endTime"}` (epoch seconds) answers
`{"logUrl": ...}`; a GET of that URL returns the CSV of every request of the app in the whole hours
the range touches (as the service does: exports overlap at their edges), or 0 bytes when none.
Scripted faults per app: ranges over `max_hours` are refused as too large, and the next calls can be
throttled (429), fail (500) or hang past the client's timeout.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.amplify.logs import Request, access_log

HOUR_MS = 3_600_000
_ACCESS_LOGS = re.compile(r"^/apps/([^/]+)/accesslogs$")


@dataclass
class FakeApp:
    domain: str
    requests: list[Request] = field(default_factory=list)
    max_hours: float = math.inf  # larger ranges: BadRequestException "... reduce time range"
    throttle_next: int = 0  # the next N calls: 429 TooManyRequestsException
    fail_next: int = 0  # the next N calls: 500 InternalFailureException
    refuse: str = ""  # every call: this error code (e.g. NotFoundException)
    failing_from_ms: set[int] = field(default_factory=set)  # calls starting here: 500, every time
    denied_from_ms: set[int] = field(default_factory=set)  # calls starting here: 403 AccessDenied (not retried)
    delay_seconds: float = 0.0  # each call takes this long
    slow_over_hours: float = math.inf  # larger ranges take `slow_seconds` to answer (a time-out)
    slow_seconds: float = 0.0
    calls: list[tuple[int, int]] = field(default_factory=list)  # (start_ms, end_ms) of each call
    access_keys: list[str] = field(default_factory=list)  # the SigV4 access key id of each call


class FakeAmplify:
    def __init__(self, port: int = 0) -> None:
        self.apps: dict[str, FakeApp] = {}
        self.exports: dict[str, bytes] = {}
        self.lock = threading.Lock()
        self.active = 0  # calls being answered now, and the most at once
        self.most_active = 0
        self.server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FakeAmplify:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def export(self, app: FakeApp, start_ms: int, end_ms: int) -> bytes:
        first_hour = start_ms // HOUR_MS * HOUR_MS
        last_hour = end_ms // HOUR_MS * HOUR_MS + HOUR_MS  # the end is included, in whole hours
        chosen = [r for r in app.requests if first_hour <= r.at_ms < last_hour]
        return access_log(sorted(chosen, key=lambda r: r.at_ms), app.domain)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # quiet
                pass

            def do_POST(self) -> None:
                match = _ACCESS_LOGS.match(self.path)
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                app = fake.apps.get(match.group(1)) if match else None
                if app is None:
                    return self._error(404, "NotFoundException", "App not found")
                start_ms, end_ms = int(body["startTime"] * 1000), int(body["endTime"] * 1000)
                with fake.lock:
                    fake.active += 1
                    fake.most_active = max(fake.most_active, fake.active)
                try:
                    slow = (end_ms - start_ms) / HOUR_MS > app.slow_over_hours
                    time.sleep(app.slow_seconds if slow else app.delay_seconds)
                    self._answer(app, match.group(1), body, start_ms, end_ms)
                finally:
                    with fake.lock:
                        fake.active -= 1

            def _answer(self, app: FakeApp, app_id: str, body: dict, start_ms: int, end_ms: int) -> None:
                credential = re.search(r"Credential=([^/]+)/", self.headers.get("Authorization", ""))
                with fake.lock:
                    app.calls.append((start_ms, end_ms))
                    app.access_keys.append(credential.group(1) if credential else "")
                    if start_ms in app.failing_from_ms:
                        return self._error(500, "InternalFailureException", "Internal failure")
                    if start_ms in app.denied_from_ms:
                        return self._error(403, "AccessDeniedException", "Not authorized for this range")
                    if app.refuse:
                        return self._error(400, app.refuse, f"{app.refuse} for this app")
                    if app.throttle_next:
                        app.throttle_next -= 1
                        return self._error(429, "TooManyRequestsException", "Rate exceeded")
                    if app.fail_next:
                        app.fail_next -= 1
                        return self._error(500, "InternalFailureException", "Internal failure")
                if body.get("domainName") != app.domain:
                    return self._error(404, "NotFoundException", f"Domain {body.get('domainName')} not found")
                if (end_ms - start_ms) / HOUR_MS > app.max_hours:
                    return self._error(
                        400, "BadRequestException", "Too many records in the time range, reduce time range"
                    )
                token = f"{app_id}-{len(fake.exports)}-{time.monotonic_ns()}"
                with fake.lock:
                    fake.exports[token] = fake.export(app, start_ms, end_ms)
                self._json(200, {"logUrl": f"{fake.url}/exports/{token}?X-Amz-Signature=abc"})

            def do_GET(self) -> None:
                token = self.path.split("?", 1)[0].removeprefix("/exports/")
                data = fake.exports.get(token)
                if data is None:
                    return self._error(403, "AccessDenied", "Request has expired")
                self.send_response(200)
                self.send_header("Content-Type", "text/csv")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _error(self, status: int, code: str, message: str) -> None:
                self._json(status, {"message": message}, {"x-amzn-ErrorType": f"{code}:http://internal.amazon.com/"})

            def _json(self, status: int, document: dict, headers: dict | None = None) -> None:
                data = json.dumps(document).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

        return Handler
