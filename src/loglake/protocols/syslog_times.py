"""The times syslog messages carry, as epoch ms: RFC 3339 (RFC 5424's, and some RFC 3164 senders') and RFC
3164's `Mmm dd hh:mm:ss`, which has neither year nor zone. Pure, no I/O."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc

_NS_UTC = pa.timestamp("ns", tz="UTC")


def rfc3339_ms(texts: pa.Array) -> pa.Array:
    """Epoch ms of RFC 3339 times (strings; null for null) as one Arrow cast; ArrowInvalid (or
    ArrowNotImplementedError) when one is not a time Arrow reads."""
    return pc.divide(texts.cast(_NS_UTC).cast(pa.int64()), 1_000_000)  # integer division: before 1970 is refused anyway


def rfc3339_times(texts: list[str | None]) -> list[int | None]:
    """Epoch ms of each RFC 3339 time, cast by Arrow as one column; None for none or one that is not a time."""
    if not any(texts):
        return [None] * len(texts)
    try:
        return rfc3339_ms(pa.array(texts, pa.string())).to_pylist()
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return [_one_rfc3339(text) for text in texts]


def _one_rfc3339(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


_MONTHS = {
    name: n
    for n, name in enumerate(
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"], start=1
    )
}


def rfc3164_time(text: str, now_ms: int) -> int | None:
    """`Mmm dd hh:mm:ss` in UTC, in the year that puts it at most a day after now (else the year before)."""
    month = _MONTHS.get(text[:3])
    if month is None:
        return None
    now = datetime.fromtimestamp(now_ms / 1000, UTC)
    try:
        day, clock = text[4:].split()
        hour, minute, second = map(int, clock.split(":"))
        when = datetime(now.year, month, int(day), hour, minute, second, tzinfo=UTC)
    except ValueError:  # 29 Feb in another year, 31 Apr, 25:00:00
        return None
    stamp = int(when.timestamp() * 1000)
    if stamp > now_ms + 86_400_000:
        try:
            stamp = int(when.replace(year=now.year - 1).timestamp() * 1000)
        except ValueError:
            return None
    return stamp
