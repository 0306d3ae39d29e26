"""Where lake objects live: Hive-style partition keys that Athena, Trino, Spark and DuckDB all read.

type=app_logs/date=YYYY-MM-DD/part-<uuid7>.parquet
type=amplify_logs/app=<appName>/date_export=YYYY-MM-DD/log_<start>_<end>   (exports as delivered, gzip)
type=amplify_access/app=<appName>/date=YYYY-MM-DD/part-<uuid7>.parquet
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

from loglake import ids

APP_LOGS = "app_logs"
AMPLIFY_LOGS = "amplify_logs"
AMPLIFY_ACCESS = "amplify_access"
_VALUE = re.compile(r"[A-Za-z0-9._-]{1,128}")
# Where Lake.quarantine (and the AWS compaction) keeps the objects it takes out of the lake: beside the tables'
# folders, named with a leading _ as Athena, Hive and Spark skip it.
QUARANTINE = "_quarantine"


class LayoutError(ValueError):
    """A partition value or key that the layout cannot hold."""


def partition_prefix(table: str, **partitions: str | date) -> str:
    """`type=<table>/k=v/.../` with the partitions in the order given."""
    parts = [f"type={_value('type', table)}"]
    parts.extend(f"{name}={_value(name, value)}" for name, value in partitions.items())
    return "/".join(parts) + "/"


def new_part_name(now_ms: int) -> str:
    """`part-<uuid7>.parquet`: unique, and in the order the parts were written."""
    return f"part-{ids.format_uuid(ids.uuid7_bytes(now_ms))}.parquet"


def app_logs_key(day: date, part_name: str) -> str:
    return partition_prefix(APP_LOGS, date=day) + part_name


def amplify_access_key(app: str, day: date, part_name: str) -> str:
    return partition_prefix(AMPLIFY_ACCESS, app=app, date=day) + part_name


def amplify_export_key(app: str, exported_at: datetime, range_start: datetime, range_end: datetime) -> str:
    """The original pipeline's path for an export file: the date of the collection run, then the range
    the file covers, `log_<start>_<end>` (collecting the same range again the same day replaces it)."""
    day = exported_at.astimezone(UTC).date()
    span = "_".join(t.astimezone(UTC).strftime("%Y%m%d_%H%M%S") for t in (range_start, range_end))
    return partition_prefix(AMPLIFY_LOGS, app=app, date_export=day) + f"log_{span}"


def quarantined_key(key: str) -> str:
    """Where lake object `key` is kept once taken out of the lake."""
    return f"{QUARANTINE}/{key}"


def partitions_of(key: str) -> dict[str, str]:
    """The `name=value` segments of a key, e.g. {'type': 'app_logs', 'date': '2026-11-01'}."""
    return dict(segment.split("=", 1) for segment in key.split("/") if "=" in segment)


def day_of(ts_ms: int) -> date:
    """The UTC date a record belongs to: records are partitioned by their own time, not arrival."""
    return datetime.fromtimestamp(ts_ms // 1000, UTC).date()


def _value(name: str, value: str | date) -> str:
    text = value.isoformat() if isinstance(value, date) else value
    if not _VALUE.fullmatch(text):
        raise LayoutError(f"partition {name}={text!r} must be 1-128 characters of A-Z a-z 0-9 . _ -")
    return text
