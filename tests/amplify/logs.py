"""Access-log files in Amplify's real format, for tests and benchmarks.

The format as Amplify delivers it: a header whose parentheses are backslash-escaped (`cs\\(Host)`),
URL-encoded values (`%20`), backslash escapes in values (`\\(`, `\\)`, `\\=\\=` closing request ids), no
commas inside values, `-` for empty.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime

# As an export's first line reads, written out (not built from the parser's own field list, which
# the parse tests check against it).
HEADER = (
    "date,time,x-edge-location,sc-bytes,c-ip,cs-method,cs\\(Host),cs-uri-stem,sc-status,cs\\(Referer),"
    "cs\\(User-Agent),cs-uri-query,cs\\(Cookie),x-edge-result-type,x-edge-request-id,x-host-header,"
    "cs-protocol,cs-bytes,time-taken,x-forwarded-for,ssl-protocol,ssl-cipher,x-edge-response-result-type,"
    "cs-protocol-version,fle-status,fle-encrypted-fields,c-port,time-to-first-byte,x-edge-detailed-result-type,"
    "sc-content-type,sc-content-len,sc-range-start,sc-range-end"
)
USER_AGENTS = [
    "Mozilla/5.0%20\\(Windows%20NT%2010.0;%20Win64;%20x64\\)%20AppleWebKit/537.36%20\\(KHTML%20like%20Gecko\\)"
    "%20Chrome/130.0.0.0%20Safari/537.36",
    "Mozilla/5.0%20\\(iPhone;%20CPU%20iPhone%20OS%2018_0%20like%20Mac%20OS%20X\\)%20AppleWebKit/605.1.15",
    "Mozilla/5.0%20\\(compatible;%20Googlebot/2.1;%20+http://www.google.com/bot.html\\)",
    "curl/8.5.0",
]
PATHS = ["/", "/index.html", "/assets/app.js", "/assets/style.css", "/about", "/favicon.ico", "/api/health"]
EDGES = ["FRA56-P1", "CDG50-C1", "AMS1-P2", "LHR61-P3"]
RESULTS = ["Hit", "Miss", "RefreshHit", "Error"]


@dataclass(frozen=True)
class Request:
    at_ms: int
    request_id: str  # as it appears decoded (the file writes its '=' as '\=')
    path: str = "/index.html"
    status: int = 200
    user_agent: str = USER_AGENTS[0]  # as written in the file (encoded)
    query: str = "-"
    sc_bytes: int = 5120
    edge: str = "FRA56-P1"
    result: str = "Hit"
    referer: str = "-"


def request_id(number: int, salt: str = "") -> str:
    """A CloudFront-like request id: 54 characters of base64 ending in '=='."""
    rng = random.Random(f"{salt}{number}")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
    return "".join(rng.choice(alphabet) for _ in range(54)) + "=="


def row(r: Request, domain: str = "danse.tech") -> str:
    at = datetime.fromtimestamp(r.at_ms / 1000, UTC)
    values = [
        at.strftime("%Y-%m-%d"),
        at.strftime("%H:%M:%S"),
        r.edge,
        str(r.sc_bytes),
        "203.0.113.7",
        "GET",
        "d1x2y3z4.cloudfront.net",
        r.path,
        f"{r.status:03d}",  # (000: the viewer left before the answer)
        r.referer,
        r.user_agent,
        r.query,
        "-",
        r.result,
        r.request_id.replace("=", "\\="),
        domain,
        "https",
        "421",
        "0.002",
        "-",
        "TLSv1.3",
        "TLS_AES_128_GCM_SHA256",
        r.result,
        "HTTP/2.0",
        "-",
        "-",
        "54321",
        "0.001",
        r.result,
        "text/html",
        str(r.sc_bytes - 320),
        "-",
        "-",
    ]
    return ",".join(values)


def access_log(requests: list[Request], domain: str = "danse.tech") -> bytes:
    """A whole export; no requests give the 0-byte file Amplify sends for an empty range."""
    if not requests:
        return b""
    return ("\n".join([HEADER, *(row(r, domain) for r in requests)]) + "\n").encode()


def varied_requests(count: int, start_ms: int, span_ms: int, salt: str = "") -> list[Request]:
    """`count` requests spread evenly over [start_ms, start_ms + span_ms), varied like real traffic."""
    rng = random.Random(salt or "varied")
    step = max(1, span_ms // max(count, 1))
    return [
        Request(
            at_ms=start_ms + i * step,
            request_id=request_id(i, salt),
            path=rng.choice(PATHS),
            status=rng.choice([200, 200, 200, 304, 404, 500]),
            user_agent=rng.choice(USER_AGENTS),
            query=rng.choice(["-", "-", "utm_source%3Dnews%26page%3D2", "q=hello%20world"]),
            sc_bytes=rng.randint(400, 90_000),
            edge=rng.choice(EDGES),
            result=rng.choice(RESULTS),
            referer=rng.choice(["-", "https://www.google.com/", "https://danse.tech/"]),
        )
        for i in range(count)
    ]
