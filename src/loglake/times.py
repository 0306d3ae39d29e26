"""Times as people and programs write them: one parser and one rule for the API, the CLI, ingest and
the Amplify collector; and the one form records show theirs in (format_datetime).

- ISO-8601: `2026-12-03T10:00:00Z`, `2026-12-03T11:00:00+01:00`, `2026-12-03 10:00`; a time without an
  offset is UTC, and a date alone (`2026-12-03`) is its midnight, UTC;
- epoch milliseconds: `1764756000000` (a record's timestamp sends them as a JSON integer);
- for the bounds of a query: an age such as `15m`, `2h`, `1h30m`, `1.5h`, `7d` (that long before now), or `now`.

Every error says what was wrong with the text, not only which forms are accepted.
"""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime, timedelta
from fractions import Fraction

from loglake.digits import is_ascii_digits

DAY_MS = 86_400_000
# Epoch ms below this (1973-03-03) are taken for epoch seconds sent by mistake.
SMALLEST_PLAUSIBLE_MS = 100_000_000_000
LATEST_MS = 253_402_300_800_000  # 10000-01-01T00:00:00Z: past every time a query bound may name
DURATION_UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": DAY_MS, "w": 7 * DAY_MS}
FORMS = "epoch milliseconds, ISO-8601 (2026-12-03T10:00:00Z; without an offset it is UTC) or an age like 15m, 1h30m, 7d"

# ASCII digits (\d is any script's); parts add up, and a part may have a fraction: 1h30m, 1.5h (as Loki and
# VictoriaLogs take them).
_DURATION_PART = r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d|w)"
_DURATION = re.compile(f"(?:{_DURATION_PART})+")
_ISO_START = re.compile(r"[0-9]{4}-[0-9]|[0-9]{8}T")  # 2026-12-03..., or the basic form 20261203T...
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)


def epoch_unit(value: float) -> str | None:
    """The unit `value` reads in as a time since 1973, by its size alone: what a time sent in the wrong unit
    probably is (seconds below 10^11, milliseconds below 10^14, microseconds below 10^17, else nanoseconds).
    None below 10^8: a time in no unit."""
    if value < 1e8:
        return None
    for unit, below in (("seconds", 1e11), ("milliseconds", 1e14), ("microseconds", 1e17)):
        if value < below:
            return unit
    return "nanoseconds"


class TimeFormatError(ValueError):
    """A time that cannot be read; the message quotes it and says what is wrong."""


def parse_datetime(text: str) -> datetime:
    """An ISO-8601 date or date-time as an aware UTC datetime; without an offset it is UTC."""
    return _aware(text.strip()).astimezone(UTC)


def parse_iso8601(text: str) -> int:
    """An ISO-8601 date or date-time as epoch ms; without an offset it is UTC."""
    return (_aware(text) - _EPOCH) // _MILLISECOND


def _aware(text: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as e:
        raise TimeFormatError(_iso_problem(text, str(e))) from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def parse_time(text: str, now_ms: int) -> int:
    """A query bound as epoch ms: epoch ms, ISO-8601, an age (15m, 2h, 7d: that long before now) or `now`,
    from 1970 to the year 9999."""
    text = text.strip()
    if is_ascii_digits(text):
        value = int(text)
        if 0 < value < SMALLEST_PLAUSIBLE_MS:
            raise TimeFormatError(f"{text} looks like epoch seconds; send epoch milliseconds ({text}000)")
        if value >= LATEST_MS and (finer := finer_unit(value)) is not None:
            unit, in_ms = finer
            raise TimeFormatError(f"{text} looks like epoch {unit}; send epoch milliseconds ({in_ms})")
    elif _DURATION.fullmatch(text):
        value = now_ms - parse_duration(text)
    elif text == "now":
        value = now_ms
    elif _ISO_START.match(text):
        value = parse_iso8601(text)
    else:
        raise TimeFormatError(f"{text!r} is not a time: use {FORMS}")
    if not 0 <= value < LATEST_MS:
        raise TimeFormatError(f"{text!r} is outside the years 1970 to 9999")
    return value


def finer_unit(value: int) -> tuple[str, int] | None:
    """The unit finer than milliseconds an epoch number past the year 9999 is likely in (a shipper's microseconds
    or nanoseconds), and its value in milliseconds; None when it is no plausible time in either."""
    for unit, per_ms in (("microseconds", 1000), ("nanoseconds", 1_000_000)):
        if SMALLEST_PLAUSIBLE_MS <= value // per_ms < LATEST_MS:
            return unit, value // per_ms
    return None


def parse_duration(text: str) -> int:
    """`30s`, `5m`, `2h`, `7d`, `1w`, `250ms`, `1h30m`, `1.5h` as milliseconds (a fraction of one rounded)."""
    text = text.strip()
    if _DURATION.fullmatch(text) is None:
        raise TimeFormatError(f"{text!r} is not a duration such as 30s, 5m, 1h30m, 7d or 1w")
    return round(sum(Fraction(n) * DURATION_UNITS_MS[unit] for n, unit in re.findall(_DURATION_PART, text)))


def format_duration(ms: int) -> str:
    """A duration for people, in the units that say it exactly: 365 d, 1 h 30 min, 45 s, 250 ms."""
    parts = []
    rest = ms
    for unit, size in (("d", DAY_MS), ("h", 3_600_000), ("min", 60_000), ("s", 1000), ("ms", 1)):
        count, rest = divmod(rest, size)
        if count:
            parts.append(f"{count} {unit}")
    return " ".join(parts) or "0 s"


def _iso_problem(text: str, reason: str) -> str:
    """What is wrong with an ISO-8601 text: a value out of range (month 13, 25 o'clock), a space
    where a URL's `+` of an offset was decoded, digits alone (epoch ms quoted as a string), or else the form."""
    if is_ascii_digits(text.strip()):
        return (
            f"{text!r} is a number in a string: send epoch milliseconds as a JSON number ({text.strip()}),"
            " or an ISO-8601 date-time such as 2026-12-03T10:00:00Z"
        )
    if not reason.startswith("Invalid isoformat string"):
        return f"{text!r} is not a valid date or time: {reason}"
    if _reads_with_plus_for_last_space(text.strip()):
        return f"{text!r} has a space before its offset: in a URL write + as %2B"
    return f"{text!r} is not an ISO-8601 date or time such as 2026-12-03 or 2026-12-03T10:00:00Z"


def _reads_with_plus_for_last_space(text: str) -> bool:
    """Whether `text` is an ISO-8601 date-time once its last space is a `+`: an offset whose `+` a URL
    decoded to a space. A date then a time in another form (04/12/2026 10:00) is not."""
    head, space, offset = text.rpartition(" ")
    if not space:
        return False
    try:
        datetime.fromisoformat(f"{head}+{offset}")
    except ValueError:
        return False
    return True


def format_datetime(ts_ms: int) -> str:
    """Epoch ms to ISO-8601 UTC with milliseconds and Z, the record's `datetime` field."""
    seconds, ms = divmod(ts_ms, 1000)
    days, second_of_day = divmod(seconds, 86_400)
    hours, rest = divmod(second_of_day, 3600)
    minutes, second = divmod(rest, 60)
    return f"{_day_text(days)}T{_TWO_DIGITS[hours]}:{_TWO_DIGITS[minutes]}:{_TWO_DIGITS[second]}.{_THREE_DIGITS[ms]}Z"


# Every ingest answer formats its record's time (and a page of records, each one's): an int formatted with
# a width (`{hours:02d}`) takes the general formatter, ~0.15 us each; looked up, the whole time of day takes
# a tenth of that.
_TWO_DIGITS = [f"{n:02d}" for n in range(60)]
_THREE_DIGITS = [f"{n:03d}" for n in range(1000)]


@functools.lru_cache(maxsize=1024)
def _day_text(days: int) -> str:
    # Every ingest answer formats its record's time, and strftime per call was ~3 % of a single-record
    # POST's CPU; the day is looked up once, the time of day is arithmetic.
    return (_EPOCH + timedelta(days=days)).date().isoformat()


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
