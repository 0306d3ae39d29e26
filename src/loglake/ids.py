"""Record ids: UUIDv7 whose 48-bit time is the record's own timestamp.

Putting the record time (not the arrival time) in the id makes id order equal time order, so one
sorted key serves "most recent N", time ranges and cursors in every store (a SQLite primary key, a
DynamoDB sort key). Ids minted for the same millisecond count up from a random start, so they stay
unique and ordered within a process; across processes 74 random bits make a clash negligible.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterable

MAX_TIMESTAMP_MS = 1 << 48
_RANDOM_BITS = 74
_RANDOM_MASK = (1 << _RANDOM_BITS) - 1
_VERSION_7 = 0x7 << 76
_VARIANT_RFC = 0b10 << 62
_LOW_62 = (1 << 62) - 1

_lock = threading.Lock()
_last_ts = -1
_last_random = 0
# Ids need uniqueness, not secrecy: a seeded PRNG, since os.urandom can cost ~40 us a call on a VM.
_rng = random.Random()


def uuid7_bytes(ts_ms: int) -> bytes:
    """16 bytes of a UUIDv7 for a record at ts_ms (0 <= ts_ms < 2**48)."""
    return uuid7_many((ts_ms,))[0]


def uuid7_many(timestamps: Iterable[int]) -> list[bytes]:
    """One id per timestamp, taking the lock once for the whole batch."""
    global _last_ts, _last_random
    out = []
    append = out.append
    with _lock:
        last_ts, last_random = _last_ts, _last_random
        for ts_ms in timestamps:
            if ts_ms == last_ts and last_random < _RANDOM_MASK:
                last_random += 1
            else:
                last_ts = ts_ms
                last_random = _rng.getrandbits(_RANDOM_BITS - 1)  # top bit clear: room to count up
            append(
                (
                    (ts_ms << 80) | _VERSION_7 | ((last_random >> 62) << 64) | _VARIANT_RFC | (last_random & _LOW_62)
                ).to_bytes(16, "big")
            )
        _last_ts, _last_random = last_ts, last_random
    return out


def split_id(log_id: bytes) -> tuple[int, int]:
    """The id as two non-negative 64-bit integers, ordered as the bytes are: the first 64 bits, then
    the last 62 (the two variant bits are constant), for stores whose fast keys are integers."""
    value = int.from_bytes(log_id, "big")
    return value >> 64, value & _LOW_62


def join_id(high: int, low: int) -> bytes:
    return ((high << 64) | _VARIANT_RFC | low).to_bytes(16, "big")


def lower_bound(ts_ms: int) -> bytes:
    """The smallest id a record at ts_ms can have: ids >= this are at or after ts_ms."""
    return (max(0, min(ts_ms, MAX_TIMESTAMP_MS - 1)) << 80).to_bytes(16, "big")


def timestamp_of(log_id: bytes) -> int:
    return int.from_bytes(log_id[:6], "big")


def format_uuid(raw: bytes) -> str:
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def parse_uuid(text: str) -> bytes:
    """Canonical or bare-hex UUID text to 16 bytes; ValueError otherwise."""
    h = text.replace("-", "") if len(text) == 36 and text[8] == text[13] == text[18] == text[23] == "-" else text
    if len(h) != 32:
        raise ValueError(f"{text!r} is not a UUID")
    return bytes.fromhex(h)
