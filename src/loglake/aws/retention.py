"""Retention on AWS: the lake's partitions older than their retention are deleted, by the day they hold.

The bucket's lifecycle rule expires objects by their age, which is not the day of their records:
a compaction rewrites a day's files, the Amplify collector back-fills weeks at once. This job keeps
the promise locally kept by `Lake.expire` and `Collector.expire`: application logs live
`retention_days` after their day, an Amplify app's access logs and exports `logRetention.days`.
The bucket is versioned, so a deleted object stays recoverable until the lifecycle removes its
noncurrent version (7 days).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

from loglake.amplify.config import AmplifyConfig
from loglake.lake.layout import (
    AMPLIFY_ACCESS,
    AMPLIFY_LOGS,
    APP_LOGS,
    partition_prefix,
    partitions_of,
    quarantined_key,
)
from loglake.lake.objectstore import ObjectStore

# A run starts with at least this much of its Lambda's time left (it waits for the lake's maintenance lease until
# then): deleting a year of days' objects, a thousand at a time, takes well under a minute.
RESERVE_MS = 2 * 60_000


@dataclass
class RetentionReport:
    deleted_objects: int = 0
    deleted_bytes: int = 0
    expired: dict[str, list[str]] = field(default_factory=dict)  # prefix -> days (or export dates) dropped

    def to_dict(self) -> dict:
        return {"deleted_objects": self.deleted_objects, "deleted_bytes": self.deleted_bytes, "expired": self.expired}


def expire_lake(lake: ObjectStore, today: date, retention_days: int, amplify: AmplifyConfig | None) -> RetentionReport:
    """Delete app_logs days older than `retention_days` (0 keeps them forever) and, per configured
    Amplify app, access-log days and exports older than its logRetention.days; with each table's days, the parts of
    those days the compaction took out as damaged (QUARANTINE: their records are past the retention too)."""
    report = RetentionReport()
    if retention_days:
        cutoff = today - timedelta(days=retention_days)
        for prefix in (partition_prefix(APP_LOGS), quarantined_key(partition_prefix(APP_LOGS))):
            _expire(lake, prefix, "date", cutoff, report)
    if amplify is not None:
        cutoff = today - timedelta(days=amplify.retention_days)
        for app in amplify.apps:
            access = partition_prefix(AMPLIFY_ACCESS, app=app.app_name)
            for prefix in (access, quarantined_key(access)):
                _expire(lake, prefix, "date", cutoff, report)
            _expire(lake, partition_prefix(AMPLIFY_LOGS, app=app.app_name), "date_export", cutoff, report)
    return report


def _expire(lake: ObjectStore, prefix: str, key: str, cutoff: date, report: RetentionReport) -> None:
    """Delete the objects under `prefix` whose partition `key` names a day before `cutoff`."""
    days: set[str] = set()
    for found in lake.list(prefix):
        day = partitions_of(found.key).get(key)
        if day is not None and day < cutoff.isoformat():
            lake.delete(found.key)
            days.add(day)
            report.deleted_objects += 1
            report.deleted_bytes += found.size
    if days:
        report.expired[prefix] = sorted(days)
