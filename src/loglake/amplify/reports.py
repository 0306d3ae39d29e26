"""Saved queries over `amplify_access`: what people look at on a site's traffic.

The same SQL answers `loglake amplify report`, `GET /amplify/reports` and the UI. Each query takes
the app and a half-open time range; the `date` bounds let DuckDB skip other days' files.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from loglake.lake.layout import partitions_of
from loglake.lake.query import QueryEngine, TimeRange
from loglake.lake.query_answers import result_to_dict
from loglake.lake.stop import Stop
from loglake.lake.tables import AMPLIFY_ACCESS_TABLE

# User agents that announce a program rather than a person (crawlers, monitors, HTTP libraries, the security
# scanners that say their name: sqlmap's was counted as a person's on a new user's trial).
BOT_PATTERN = (
    r"(?i)(bot|crawl|spider|slurp|archiver|facebookexternalhit|preview|monitor|pingdom|uptime|headless|"
    r"lighthouse|curl|wget|python-requests|python-urllib|httpx|go-http-client|java/|okhttp|axios|node-fetch|"
    r"libwww|scrapy|postman|sqlmap|nikto|nmap|masscan|zgrab|nuclei|wpscan|gobuster|dirbuster|acunetix|nessus|"
    r"openvas)"
)
_WHERE = "app = $app AND timestamp >= $since AND timestamp < $until AND date BETWEEN $first_day AND $last_day"


@dataclass(frozen=True)
class SavedQuery:
    name: str
    title: str
    sql: str


SAVED_QUERIES = (
    SavedQuery(
        "top_paths",
        "Top paths",
        f"SELECT cs_uri_stem AS path, count(*) AS requests, sum(sc_bytes) AS bytes FROM amplify_access"
        f" WHERE {_WHERE} GROUP BY path ORDER BY requests DESC, path LIMIT 20",
    ),
    SavedQuery(
        "status_classes",
        "Status classes",
        # (000: the viewer left before any answer, no class of answers)
        f"SELECT CASE WHEN sc_status = 0 THEN '000' ELSE coalesce((sc_status // 100)::VARCHAR || 'xx', 'none') END"
        f" AS status, count(*) AS requests,"
        f" round(100.0 * count(*) / sum(count(*)) OVER (), 2) AS percent FROM amplify_access"
        f" WHERE {_WHERE} GROUP BY status ORDER BY status",
    ),
    SavedQuery(
        "bytes_served",
        "Bytes served per day",
        f"SELECT date, count(*) AS requests, sum(sc_bytes) AS bytes FROM amplify_access"
        f" WHERE {_WHERE} GROUP BY date ORDER BY date",
    ),
    SavedQuery(
        "cache_hit_ratio",
        "Cache hit ratio per day",
        f"SELECT date, count(*) AS requests,"
        f" round(100.0 * count(*) FILTER (WHERE x_edge_result_type IN ('Hit', 'RefreshHit')) / count(*), 2)"
        f" AS hit_percent FROM amplify_access WHERE {_WHERE} GROUP BY date ORDER BY date",
    ),
    SavedQuery(
        "edge_locations",
        "Edge locations",
        f"SELECT regexp_extract(x_edge_location, '^[A-Z]+') AS location, count(*) AS requests,"
        f" sum(sc_bytes) AS bytes FROM amplify_access WHERE {_WHERE}"
        f" GROUP BY location ORDER BY requests DESC, location LIMIT 20",
    ),
    SavedQuery(
        "top_referrers",
        "Top referrers",
        f"SELECT cs_referer AS referrer, count(*) AS requests FROM amplify_access"
        f" WHERE {_WHERE} AND cs_referer IS NOT NULL GROUP BY referrer ORDER BY requests DESC, referrer LIMIT 20",
    ),
    SavedQuery(
        "bots_vs_humans",
        "Bots vs. humans (by user agent)",
        f"SELECT CASE WHEN regexp_matches(coalesce(cs_user_agent, ''), '{BOT_PATTERN}') THEN 'bot' ELSE 'human' END"
        f" AS visitor, count(*) AS requests, round(100.0 * count(*) / sum(count(*)) OVER (), 2) AS percent"
        f" FROM amplify_access WHERE {_WHERE} GROUP BY visitor ORDER BY visitor",
    ),
)
BY_NAME = {q.name: q for q in SAVED_QUERIES}


class UnknownReport(ValueError):
    """A report name that is not one of the saved queries; the message lists the known ones."""


def run_reports(
    engine: QueryEngine,
    app: str,
    since_ms: int,
    until_ms: int,
    names: list[str] | None = None,
    stop: Stop | None = None,
) -> list[dict[str, Any]]:
    """Each chosen saved query's result (as POST /query answers) with its name and title; Stopped when
    told to stop (`stop`) first."""
    unknown = [n for n in names or [] if n not in BY_NAME]
    if unknown:
        raise UnknownReport(f"unknown report {', '.join(unknown)}; known: {', '.join(BY_NAME)}")
    since, until = _utc(since_ms), _utc(until_ms)
    params = {"app": app, "since": since, "until": until, "first_day": since.date(), "last_day": until.date()}
    reports = []
    for saved in [BY_NAME[n] for n in names] if names else SAVED_QUERIES:
        used = {k: v for k, v in params.items() if f"${k}" in saved.sql}
        window = TimeRange(since_ms, until_ms)
        result = engine.run_saved(saved.sql, used, window, cap=1000, tables=(AMPLIFY_ACCESS_TABLE,), stop=stop)
        reports.append({"name": saved.name, "title": saved.title, **result_to_dict(result)})
    return reports


def apps_with_rows(read: Callable[[str, tuple], list[tuple]]) -> list[str]:
    """The apps amplify_access holds rows of (from the catalog)."""
    keys = read("SELECT key FROM lake_files WHERE table_name = ?", (AMPLIFY_ACCESS_TABLE.name,))
    return sorted({partitions_of(key)["app"] for (key,) in keys})


def unknown_app_message(app: str, known: list[str]) -> str:
    listed = ", ".join(known) if known else "none yet: run `loglake amplify collect` or `amplify import`"
    return f"amplify_access holds no rows of app {app!r} (apps with rows: {listed})"


def _utc(ms: int) -> datetime:
    """Naive UTC, as DuckDB's TIMESTAMP columns compare."""
    return datetime.fromtimestamp(ms / 1000, UTC).replace(tzinfo=None)
