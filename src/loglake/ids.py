"""Record ids: UUIDv7 whose 48-bit time is the record's own timestamp.

Putting the record time (not the arrival time) in the id makes id order equal time order, so one
sorted key serves "most recent N", time ranges and cursors in every store (a SQLite primary key, a
DynamoDB sort key).

The 74 bits after the time (RFC 9562 "fixed bit-length dedicated counter" layout) are a 42-bit
counter shared by all timestamps, starting at a random value and counting up once per id, then a
32-bit random node number drawn when the process starts. Ids are therefore unique within a process
(the counter never repeats), ordered within a millisecond, and distinct across processes unless
two draw the same node *and* the same counter for the same millisecond. Unlike 74 random bits they
also compress: consecutive ids differ in a few low counter bits, which matters for the lake, where
random ids would be half the Parquet bytes.
"""

from __future__ import annotations

import os
import random
import re
import threading
from collections.abc import Iterable

MAX_TIMESTAMP_MS = 1 << 48
_COUNTER_BITS = 42
COUNTER_MASK = (1 << _COUNTER_BITS) - 1
NODE_BITS = 32
_VERSION_7 = 0x7 << 76
# The same layout in split_id's halves: the version and the counter's top 12 bits end the first half;
# the second is the counter's low 30 bits, then the node.
VERSION_7_HIGH = 0x7 << 12
RAND_B_COUNTER_BITS = 30
RAND_B_COUNTER_MASK = (1 << RAND_B_COUNTER_BITS) - 1
VARIANT_RFC = 0b10 << 62  # the two RFC 9562 variant bits, at the top of the last 64
_LOW_62 = (1 << 62) - 1


def _start() -> None:
    """This process's node number and counter start, drawn anew in a forked child: it copies its parent's, and
    would give the same ids as its parent and its siblings in the same millisecond (a forked logging handler's
    records then answered as retries of each other's, and not stored). The lock too: another thread of the
    parent may have held it at the fork."""
    global _lock, _node, _counter
    _lock = threading.Lock()
    # Ids need uniqueness, not secrecy: a seeded PRNG (seeded from os.urandom when made), since os.urandom
    # itself can cost ~40 us a call on a VM.
    rng = random.Random()
    _node = rng.getrandbits(NODE_BITS)
    _counter = rng.getrandbits(_COUNTER_BITS - 1)  # top bit clear: room to count up for ages


_start()
os.register_at_fork(after_in_child=_start)


def uuid7_bytes(ts_ms: int) -> bytes:
    """16 bytes of a UUIDv7 for a record at ts_ms (0 <= ts_ms < 2**48)."""
    return uuid7_many((ts_ms,))[0]


def uuid7_many(timestamps: Iterable[int]) -> list[bytes]:
    """One id per timestamp, taking the lock once for the whole batch."""
    global _counter
    out = []
    append = out.append
    node = _node
    with _lock:
        counter = _counter
        for ts_ms in timestamps:
            counter = (counter + 1) & COUNTER_MASK
            rand_a = counter >> RAND_B_COUNTER_BITS
            rand_b = ((counter & RAND_B_COUNTER_MASK) << NODE_BITS) | node
            append(((ts_ms << 80) | _VERSION_7 | (rand_a << 64) | VARIANT_RFC | rand_b).to_bytes(16, "big"))
        _counter = counter
    return out


def reserve_counters(count: int) -> tuple[int, int]:
    """For ids computed elsewhere (column-wise): the first of `count` consecutive counter values, taken
    as uuid7_many would (each masked to COUNTER_MASK), and this process's node."""
    global _counter
    with _lock:
        first = _counter + 1
        _counter = (_counter + count) & COUNTER_MASK
    return first, _node


def split_id(log_id: bytes) -> tuple[int, int]:
    """The id as two non-negative 64-bit integers, ordered as the bytes are: the first 64 bits, then
    the last 62 (the two variant bits are constant), for stores whose fast keys are integers."""
    value = int.from_bytes(log_id, "big")
    return value >> 64, value & _LOW_62


def join_id(high: int, low: int) -> bytes:
    return ((high << 64) | VARIANT_RFC | low).to_bytes(16, "big")


def is_stored_split(high: object, low: object) -> bool:
    """Whether two stored values are split_id's halves of an id a store can hold (see LAST_STORABLE_MS)."""
    return type(high) is int and type(low) is int and 0 <= high < 1 << 63 and 0 <= low <= _LOW_62


# An id's first 64 bits (split_id's `high`) are its 48-bit time, then 16 bits of version and counter:
# stores keyed by `high` find a time range with these two, and SQL over such a key shifts by HIGH_TIME_SHIFT.
HIGH_TIME_SHIFT = 64 - 48


def smallest_high(ts_ms: int) -> int:
    """The smallest first half (split_id) of an id at ts_ms: halves below it are of earlier times."""
    return ts_ms << HIGH_TIME_SHIFT


def timestamp_of_high(high: int) -> int:
    """The time (epoch ms) in an id's first half (split_id)."""
    return high >> HIGH_TIME_SHIFT


# Stores keep an id's first 64 bits as a signed integer (split_id), so no stored id has a time at or
# past 2**47 ms (year 6429); bounds beyond it mean "after everything".
LAST_STORABLE_MS = (1 << 47) - 1


def lower_bound(ts_ms: int) -> bytes:
    """The smallest id a record at ts_ms can have: ids >= this are at or after ts_ms."""
    return (max(0, min(ts_ms, LAST_STORABLE_MS)) << 80).to_bytes(16, "big")


def timestamp_of(log_id: bytes) -> int:
    return int.from_bytes(log_id[:6], "big")


def format_uuid(raw: bytes) -> str:
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


UUID_PATTERN = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"  # canonical text
_CANONICAL_UUID = re.compile(UUID_PATTERN)


class AmbiguousId(LookupError):
    """Several ids start with the text given (a rule's or an alert's, as the CLI and the routes take
    them): `candidates`, their ids, sorted (the first of them, when `total` says how many there are)."""

    SHOWN = 10  # enough to pick from, not a whole folder's or table's

    def __init__(self, text: str, candidates: list[str], kind: str, total: int | None = None) -> None:
        total = len(candidates) if total is None else total
        shown = ", ".join(candidates[: self.SHOWN])
        more = f" and {total - self.SHOWN} more" if total > self.SHOWN else ""
        super().__init__(f"{text!r} is the start of {total} {kind}' ids ({shown}{more}); give more of it")
        self.candidates = candidates


def parse_uuid(text: str) -> bytes:
    """Canonical UUID text (8-4-4-4-12 hex digits, any case) to 16 bytes; ValueError otherwise.

    Only the canonical form: bytes.fromhex alone would skip spaces and take 30 digits for 15 bytes."""
    if type(text) is not str or not _CANONICAL_UUID.fullmatch(text):
        raise ValueError(f"{text!r} is not a UUID (8-4-4-4-12 hex digits)")
    return bytes.fromhex(text.replace("-", ""))
