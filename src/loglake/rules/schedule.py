"""When a rule runs: every interval (`5m`, `1h`) or on a cron expression (`*/10 * * * *`, UTC).

An interval runs at the multiples of its length since the epoch (a `5m` rule at :00, :05, ...), so
every process computes the same times. Cron takes the five classic fields (minute, hour, day of month,
month, day of week) with `*`, lists, ranges, steps and the names `jan`-`dec` and `sun`-`sat`; as in
cron, when both days are restricted a time matching either runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from loglake.digits import is_ascii_digits
from loglake.times import DAY_MS, TimeFormatError, format_duration, parse_duration

_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
# (name, lowest, highest, names for values from the lowest)
_FIELDS = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _DAYS),
)
_ITEM = re.compile(r"(\*|[a-z0-9]+(?:-[a-z0-9]+)?)(?:/(\d+))?")
_MINUTE = timedelta(minutes=1)
# The longest interval: a year's (a rule of a longer one, 10000d say, would never have run; a yearly cron
# expression, 0 0 1 1 *, fires on a day of the calendar).
MAX_INTERVAL_MS = 366 * DAY_MS
_SEARCH_YEARS = 5  # a valid expression fires within this (29 February on a Monday: within 28 years, rare)


class ScheduleError(ValueError):
    """A schedule that is neither an interval nor a cron expression; the message says what is wrong."""


@dataclass(frozen=True)
class Interval:
    ms: int

    def next_after(self, ms: int) -> int:
        return (ms // self.ms + 1) * self.ms

    def __str__(self) -> str:
        return f"every {format_duration(self.ms)}"


@dataclass(frozen=True)
class Cron:
    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    any_day: bool  # day of month is `*`
    any_weekday: bool

    def next_after(self, ms: int) -> int:
        """The first time after `ms` (epoch ms) the expression matches, in UTC."""
        start = datetime.fromtimestamp(ms / 1000, UTC).replace(second=0, microsecond=0) + _MINUTE
        moment = start
        while moment.year < start.year + _SEARCH_YEARS:
            if moment.month not in self.months:
                moment = _first_of_next_month(moment)
            elif not self._day_matches(moment):
                moment = (moment + timedelta(days=1)).replace(hour=0, minute=0)
            elif moment.hour not in self.hours:
                moment = (moment + timedelta(hours=1)).replace(minute=0)
            elif moment.minute not in self.minutes:
                moment += _MINUTE
            else:
                return int(moment.timestamp() * 1000)
        raise ScheduleError(f"{self.text!r} never fires within {_SEARCH_YEARS} years")

    def _day_matches(self, moment: datetime) -> bool:
        by_day = moment.day in self.days
        by_weekday = (moment.isoweekday() % 7) in self.weekdays
        if self.any_day or self.any_weekday:
            return by_day and by_weekday
        return by_day or by_weekday

    def __str__(self) -> str:
        return f"cron {self.text} (UTC)"


Schedule = Interval | Cron


def parse_schedule(text: str) -> Schedule:
    """`5m` (an interval) or a five-field cron expression."""
    text = text.strip()
    if " " not in text:
        try:
            ms = parse_duration(text)
        except TimeFormatError:
            raise ScheduleError(f"{text!r} is neither an interval such as 5m or 1h nor a cron expression") from None
        if ms < 1000:
            raise ScheduleError(f"{text!r} is shorter than a second")
        if ms > MAX_INTERVAL_MS:
            raise ScheduleError(
                f"{text!r} is longer than {format_duration(MAX_INTERVAL_MS)}; for yearly runs write cron: 0 0 1 1 *"
            )
        return Interval(ms)
    return _parse_cron(text)


def _parse_cron(text: str) -> Cron:
    fields = text.lower().split()
    if len(fields) != 5:
        raise ScheduleError(
            f"{text!r} has {len(fields)} fields; cron takes five: minute hour day-of-month month day-of-week"
            " (an interval is written 5m, 1h, 1d)"
        )
    values = [_parse_field(f, *spec) for f, spec in zip(fields, _FIELDS, strict=True)]
    weekdays = frozenset(d % 7 for d in values[4])  # 7 is Sunday too
    cron = Cron(text, *values[:4], weekdays, fields[2] == "*", fields[4] == "*")
    cron.next_after(0)  # an expression that never fires (30 February) is refused now
    return cron


def _parse_field(text: str, name: str, low: int, high: int, names: tuple[str, ...]) -> frozenset[int]:
    found: set[int] = set()
    for item in text.split(","):
        match = _ITEM.fullmatch(item)
        if match is None:
            raise ScheduleError(f"{name} field {text!r}: {item!r} is not a value, range, list or step")
        span, step = match.group(1), int(match.group(2) or 1)
        if step == 0:
            raise ScheduleError(f"{name} field {text!r}: a step of 0")
        if step > high - low:  # (*/61 fires at minute 0 alone: hourly, which 0 * * * * says)
            raise ScheduleError(f"{name} field {text!r}: a step of {step} takes only the first of {low}-{high}")
        if span == "*":
            first, last = low, high
        else:
            first, _, end = span.partition("-")
            first = _value(first, name, low, high, names)
            last = _value(end, name, low, high, names) if end else (high if match.group(2) else first)
        if first > last:
            raise ScheduleError(f"{name} field {text!r}: the range {item!r} runs backwards")
        found.update(range(first, last + 1, step))
    return frozenset(found)


def _value(text: str, name: str, low: int, high: int, names: tuple[str, ...]) -> int:
    if text in names:
        return names.index(text) + low
    if not is_ascii_digits(text) or not low <= int(text) <= high:
        allowed = f"{low}-{high}" + (f" or {names[0]}-{names[-1]}" if names else "")
        raise ScheduleError(f"{name} {text!r} is not {allowed}")
    return int(text)


def _first_of_next_month(moment: datetime) -> datetime:
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
    return moment.replace(year=year, month=month, day=1, hour=0, minute=0)
