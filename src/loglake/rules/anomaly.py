"""Anomaly rules (`type: anomaly`): a metric computed by SQL per window and group, alerting when the
window's value is far from what the same window of earlier periods held.

    type: anomaly
    schedule: 1h                    # each run's window (the lookback) is the bucket
    group_by: [app]
    metric:
      from: amplify_access
      value: 100.0 * count(*) FILTER (WHERE sc_status >= 500) / count(*)
      where: "cs_method <> 'OPTIONS'"           # optional
    baseline: {period: 1w, history: 4w, min_samples: 2}
    direction: up                   # up, down or both
    min_volume: 100                 # records behind the metric (up: now; down: as usual)
    sensitivity: 3                  # how many deviations away

The baseline is seasonal: the mean and standard deviation of the metric over the same window one,
two, ... periods back (with `period: 1w` and hourly windows, the same hour of the week), as far as
`history`. Seasonal rather than an EWMA because logs follow the clock: traffic, errors and batch jobs
rise and fall by hour of day and day of week, and an EWMA of the last hours calls every Monday
morning a spike and every night a silence; and because a seasonal baseline is computed from the
lake at each run, with no state to keep across restarts, so a run, a rule test and a backtest of the
same window always agree. The price is history: no alert until `min_samples` earlier periods hold
data (`period: 1d` learns in days, where daily seasonality is enough).

A sample that the table has no records for at all (before loglake held data) is left out; one where
the table has records but the group none counts as 0 (right for counts: a silent service). The spread
is the standard deviation, but at least the square root of the mean (the noise of a count) and at
least `min_deviation`, so a metric that was flat in every sample does not alert on the smallest
change. Each match's evidence row holds the value, volume, baseline, spread and deviation.
"""

from __future__ import annotations

import re
from typing import Annotated

import msgspec

from loglake.rules.model import Duration
from loglake.rules.sources import BY_TABLE, Source, UnknownField, quote_name
from loglake.times import parse_duration

NUMBER_TYPE = re.compile(r"U?(TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT)|FLOAT|DOUBLE|DECIMAL\(\d+,\d+\)")
MAX_SAMPLES = 60
SAMPLE = "_loglake_sample"  # 0: the window; k: the window k periods back


class Metric(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    table: Annotated[str, msgspec.Meta(pattern="^(logs|amplify_access)$", description="logs or amplify_access")] = (
        "logs"
    )
    value: Annotated[str, msgspec.Meta(min_length=1)] = "count(*)"  # an aggregate over a group's records
    where: str | None = None  # which records count


class Baseline(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    period: Duration = "1w"  # the season: the window is compared with the same window this much earlier
    history: Duration = "4w"  # how far back samples are taken (a whole number of periods)
    min_samples: Annotated[int, msgspec.Meta(ge=1)] = 2  # samples with data needed before alerting


class AnomalyBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """What an anomaly rule file holds besides the rule's facts (RuleMeta) and the options (Options)."""

    type: Annotated[str, msgspec.Meta(pattern="^anomaly$")]
    metric: Metric = msgspec.field(default_factory=Metric)
    baseline: Baseline = msgspec.field(default_factory=Baseline)
    direction: Annotated[str, msgspec.Meta(pattern="^(up|down|both)$", description="up, down or both")] = "up"
    min_volume: Annotated[int, msgspec.Meta(ge=0)] = 10
    sensitivity: Annotated[float, msgspec.Meta(gt=0)] = 3.0
    min_deviation: Annotated[float, msgspec.Meta(ge=0)] = 1.0
    author: str = ""
    references: list[str] = msgspec.field(default_factory=list)
    falsepositives: list[str] = msgspec.field(default_factory=list)


class AnomalyProblem(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def samples_of(body: AnomalyBody, lookback_ms: int) -> tuple[int, int]:
    """(the period in ms, how many earlier windows are samples); AnomalyProblem if they do not fit."""
    period = parse_duration(body.baseline.period)
    history = parse_duration(body.baseline.history)
    if period < lookback_ms:
        raise AnomalyProblem("baseline.period", f"{body.baseline.period} is shorter than the window (lookback)")
    if history < period or history % period:
        raise AnomalyProblem("baseline.history", f"{body.baseline.history} is not a whole number of periods")
    count = history // period
    if count > MAX_SAMPLES:
        raise AnomalyProblem("baseline.history", f"{count} periods; at most {MAX_SAMPLES}")
    if body.baseline.min_samples > count:
        raise AnomalyProblem("baseline.min_samples", f"more than the {count} period(s) of the history")
    return period, count


def group_columns(source: Source, group_by: list[str]) -> list[str]:
    """The group-by fields as `expression AS name`; AnomalyProblem naming an unknown one."""
    found = []
    for name in group_by:
        try:
            found.append(f"{source.field(name).sql} AS {quote_name(name)}")
        except UnknownField as e:
            raise AnomalyProblem("group_by", str(e)) from None
    return found


def metric_query(body: AnomalyBody, group_by: list[str], period_ms: int, samples: int) -> str:
    """The rule's query (the rows plan.rows_plan wraps): one row per group whose window deviates."""
    source = BY_TABLE[body.metric.table]
    table = quote_name(source.table.name)
    branches = [
        f"SELECT *, {k} AS {SAMPLE} FROM {table}"
        f' WHERE "timestamp" >= $since - INTERVAL {k * period_ms} MILLISECOND'
        f' AND "timestamp" < $until - INTERVAL {k * period_ms} MILLISECOND'
        f' AND "date" BETWEEN CAST($since - INTERVAL {k * period_ms} MILLISECOND AS DATE)'
        f" AND CAST($until - INTERVAL {k * period_ms} MILLISECOND AS DATE)"
        for k in range(samples + 1)
    ]
    union = "\n  UNION ALL ".join(branches)
    names = [quote_name(g) for g in group_by]
    keys = ", ".join([SAMPLE, *names])
    same_group = " AND ".join(f"m.{n} IS NOT DISTINCT FROM g.{n}" for n in names) or "true"
    same_current = " AND ".join(f"c.{n} IS NOT DISTINCT FROM b.{n}" for n in names) or "true"
    group_list = ", ".join(f"g.{n}" for n in names)
    b_groups = ", ".join(f"b.{n}" for n in names)
    where = f"WHERE {body.metric.where}" if body.metric.where else ""
    spread = f"greatest(b.deviation, sqrt(abs(b.mean)), {body.min_deviation!r})"
    value, volume = "coalesce(c.value, 0)", "coalesce(c.volume, 0)"
    deviation = f"({value} - b.mean) / {spread}"
    up = f"{deviation} >= {body.sensitivity!r} AND {volume} >= {body.min_volume}"
    down = f"{deviation} <= -{body.sensitivity!r} AND b.mean_volume >= {body.min_volume}"
    condition = {"up": up, "down": down, "both": f"({up}) OR ({down})"}[body.direction]
    return f"""WITH _loglake_samples AS (
  {union}
), _loglake_metric AS (
  SELECT {", ".join([SAMPLE, *group_columns(source, group_by)])},
         ({body.metric.value}) AS value, count(*) AS volume
  FROM _loglake_samples {where} GROUP BY {keys}
), _loglake_groups AS (
  SELECT DISTINCT {", ".join(names) or "1 AS _loglake_all"} FROM _loglake_metric
), _loglake_history AS (
  SELECT DISTINCT {SAMPLE} FROM _loglake_samples WHERE {SAMPLE} > 0
), _loglake_baseline AS (
  SELECT {(group_list + ",") if names else ""} count(*) AS samples,
         avg(coalesce(m.value, 0)) AS mean, stddev_pop(coalesce(m.value, 0)) AS deviation,
         avg(coalesce(m.volume, 0)) AS mean_volume
  FROM _loglake_history h CROSS JOIN _loglake_groups g
  LEFT JOIN _loglake_metric m ON m.{SAMPLE} = h.{SAMPLE} AND {same_group}
  {f"GROUP BY {group_list}" if names else ""}
), _loglake_current AS (
  SELECT * FROM _loglake_metric WHERE {SAMPLE} = 0
)
SELECT {(b_groups + ",") if names else ""} {value} AS value, {volume} AS volume,
       round(b.mean, 3) AS baseline, round({spread}, 3) AS spread, round({deviation}, 2) AS deviation,
       b.samples AS samples, $until - INTERVAL 1 MILLISECOND AS "timestamp"
FROM _loglake_baseline b LEFT JOIN _loglake_current c ON {same_current}
WHERE b.samples >= {body.baseline.min_samples} AND ({condition})"""
