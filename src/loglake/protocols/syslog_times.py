"""The times syslog messages carry, as epoch ms: RFC 3339 (RFC 5424's, and some RFC 3164 senders') and RFC
3164's `Mmm dd hh:mm:ss`, which has neither year nor zone. Pure, no I/O.

A time without a zone (RFC 3164's always; an RFC 3339 one without offset, which RFC 5424 forbids and some senders
send) is the sender's local time: it is read in the zone the syslog_timezone setting names (default UTC), as
syslog-ng's time-zone() does. zoneinfo settles the two times of a zone change: a time that never was (the hour
skipped in spring) is taken as the one it names in the offset before the change (02:30 read as 03:30 in summer
time), and one that was twice (the hour repeated in autumn) as the first of them (fold 0), its summer time.
The usual times, RFC 3339 with an offset, never come here one by one: Arrow reads them as a column."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo

import pyarrow as pa
import pyarrow.compute as pc

_NS_UTC = pa.timestamp("ns", tz="UTC")


def rfc3339_ms(texts: pa.Array) -> pa.Array:
    """Epoch ms of RFC 3339 times (strings; null for null) as one Arrow cast; ArrowInvalid (or
    ArrowNotImplementedError) when one is not a time Arrow reads."""
    return pc.divide(texts.cast(_NS_UTC).cast(pa.int64()), 1_000_000)  # integer division: before 1970 is refused anyway


def rfc3339_times(texts: list[str | None], zone: tzinfo = UTC) -> list[int | None]:
    """Epoch ms of each RFC 3339 time, cast by Arrow as one column; None for none or one that is not a time.
    One without an offset is read in `zone`."""
    if not any(texts):
        return [None] * len(texts)
    try:
        return rfc3339_ms(pa.array(texts, pa.string())).to_pylist()
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return [_one_rfc3339(text, zone) for text in texts]


def _one_rfc3339(text: str | None, zone: tzinfo) -> int | None:
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=zone)
    return int(when.timestamp() * 1000)


_MONTHS = {
    name: n
    for n, name in enumerate(
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"], start=1
    )
}


def rfc3164_time(text: str, now_ms: int, zone: tzinfo = UTC) -> int | None:
    """`Mmm dd hh:mm:ss` (and a fraction of a second, as syslog-ng's frac-digits() and rsyslog's high-precision
    times add) in `zone`, in the latest year that puts it at most a day after now: the next one for `Jan  1 00:00:05`
    sent a little before the new year here, the one before for `Feb 29` of last year, as for any date after today's."""
    month = _MONTHS.get(text[:3])
    if month is None:
        return None
    now = datetime.fromtimestamp(now_ms / 1000, zone)
    try:
        day, clock = text[4:].split()
        clock, _, fraction = clock.partition(".")
        hour, minute, second = map(int, clock.split(":"))
        ms = int(fraction[:3].ljust(3, "0")) if fraction else 0
        datetime(2000, month, int(day), hour, minute, second)  # (a leap year: 31 Apr or 25:00:00 is no time)
    except ValueError:
        return None
    for year in (now.year + 1, now.year, now.year - 1):
        try:
            when = datetime(year, month, int(day), hour, minute, second, tzinfo=zone)
        except ValueError:  # 29 Feb, in a year without one
            continue
        stamp = int(when.timestamp()) * 1000 + ms
        if stamp <= now_ms + 86_400_000:
            return stamp
    return None
