"""The log record: severities, limits, validation and output shape. Pure functions, no I/O.

Validation works on already-decoded JSON values (dicts from msgspec) and reports every problem of
every record at once, because a client fixing a rejected batch wants the whole list, not the first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, NamedTuple

import msgspec

from loglake import ids
from loglake.field_names import RECORD_FIELD_OF
from loglake.spelling import typo_of
from loglake.times import DAY_MS, LATEST_MS, SMALLEST_PLAUSIBLE_MS, finer_unit, format_datetime, parse_iso8601

DEFAULT_SERVICE = "default"
DEFAULT_LOG_TYPE = "application"
NAME_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,128}")
# A page of records (recent, search): how many unless asked, and at most.
DEFAULT_PAGE_LIMIT = 100
MAX_PAGE_LIMIT = 1000
RECORD_FIELDS = ("id", "timestamp", "service", "log_type", "severity", "message", "attributes", "trace_id", "span_id")
# W3C Trace Context / OpenTelemetry ids as lowercase hex: 16 bytes for a trace, 8 for a span.
TRACE_ID_HEX_DIGITS = 32
SPAN_ID_HEX_DIGITS = 16


class Severity(IntEnum):
    DEBUG = 0
    INFO = 1
    WARNING = 2
    ERROR = 3
    CRITICAL = 4

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, value: str) -> Severity:
        """Case-insensitive name or a word for one (SEVERITY_ALIASES: warn, err, crit, ...); ValueError otherwise."""
        found = SEVERITY_ALIASES.get(value.lower())
        if found is None:
            raise ValueError(f"unknown severity {value!r}; use one of {', '.join(SEVERITY_NAMES)}")
        return found


SEVERITY_NAMES = tuple(s.label for s in Severity)  # indexed by Severity value
# Each level word loggers and shippers write for a severity (case-insensitive): the record's own aliases, then
# syslog's (RFC 5424 keywords), GCP's, .NET's (Serilog), winston's, logrus's and zap's. The one table of them,
# for POST /logs, the protocols, `loglake send` and the filters.
SEVERITY_ALIASES: dict[str, Severity] = {s.label: s for s in Severity} | {
    "trace": Severity.DEBUG,
    "notice": Severity.INFO,
    "warn": Severity.WARNING,
    "err": Severity.ERROR,
    "fatal": Severity.CRITICAL,
    "emerg": Severity.CRITICAL,  # syslog
    "emergency": Severity.CRITICAL,  # syslog, GCP
    "alert": Severity.CRITICAL,  # syslog
    "crit": Severity.CRITICAL,  # syslog
    "panic": Severity.CRITICAL,  # logrus, zap
    "dpanic": Severity.ERROR,  # zap: logged as an error in production
    "information": Severity.INFO,  # Serilog
    "informational": Severity.INFO,  # syslog
    "verbose": Severity.DEBUG,  # Serilog, winston
    "silly": Severity.DEBUG,  # winston
}


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-request and per-field limits; every one is configurable (see config.Settings)."""

    max_records: int = 10_000
    max_message_bytes: int = 256 * 1024
    max_attribute_keys: int = 128
    max_attribute_depth: int = 5
    max_attribute_bytes: int = 64 * 1024
    max_future_ms: int = DAY_MS
    # The retention in days (0: none): an older record would be deleted at the next maintenance turn,
    # so ingest refuses it instead of answering 201 for it.
    retention_days: int = 0


def retention_start_ms(now_ms: int, retention_days: int) -> int:
    """The oldest time kept by a retention of `retention_days` (0: everything): midnight UTC that many
    days before today. The lake deletes whole days before it; ingest refuses records before it."""
    if not retention_days:
        return 0
    # (a retention reaching before 1970, `retention --days 1000000`, keeps everything: its day was no date)
    return max(0, (now_ms // DAY_MS - retention_days) * DAY_MS)


class NewRecord(NamedTuple):
    """A validated record ready for the hot store."""

    log_id: bytes
    timestamp: int
    service: str
    log_type: str
    severity: int
    message: str
    attributes: bytes | None  # the attributes object as JSON
    client_id: bytes | None  # the client's own UUID, for idempotent retries
    trace_id: str | None = None  # TRACE_ID_HEX_DIGITS lowercase hex digits, to join logs with traces
    span_id: str | None = None  # SPAN_ID_HEX_DIGITS lowercase hex digits
    # Read back only: (field, reason) of each stored value that could not be read (see readback.py).
    unreadable: tuple[tuple[str, str], ...] = ()


# What a store gives back has exactly the fields that went in.
StoredRecord = NewRecord


@dataclass(frozen=True, slots=True)
class Problem:
    """One reason one record was refused."""

    index: int
    field: str
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "field": self.field, "reason": self.reason}


class InvalidRecords(Exception):
    """Raised with every problem of a batch; nothing of that batch is stored."""

    def __init__(self, problems: list[Problem], total: int) -> None:
        self.problems = problems
        self.total = total
        bad = len({p.index for p in problems})
        super().__init__(f"{bad} of {total} record(s) invalid; nothing was stored")


_json_encode = msgspec.json.Encoder().encode


class TimeBounds(NamedTuple):
    """The times a record may have, worked out once per request."""

    now_ms: int  # a record without a time gets this one
    earliest_ms: int  # the retention's first kept time (0: no retention)
    latest_ms: int  # the furthest a clock may be ahead

    @classmethod
    def of(cls, limits: Limits, now_ms: int) -> TimeBounds:
        latest = min(now_ms + limits.max_future_ms, ids.MAX_TIMESTAMP_MS - 1)
        return cls(now_ms, retention_start_ms(now_ms, limits.retention_days), latest)


def validate_batch(items: list[Any], limits: Limits, now_ms: int) -> list[NewRecord]:
    """Turn decoded JSON objects into NewRecords with fresh ids, or raise InvalidRecords naming each."""
    records: list[NewRecord] = []
    problems: list[Problem] = []
    bounds = TimeBounds.of(limits, now_ms)
    new_id = ids.uuid7_bytes
    for index, item in enumerate(items):
        found = _validate_one(index, item, limits, bounds, problems)
        if found is not None:
            records.append(NewRecord(new_id(found[0]), *found))
    if problems:
        raise InvalidRecords(problems, len(items))
    return records


def record_problems(item: Any, limits: Limits, now_ms: int) -> list[Problem]:
    """Every reason validate_batch would refuse this one record (index 0); [] when it would take it."""
    problems: list[Problem] = []
    _validate_one(0, item, limits, TimeBounds.of(limits, now_ms), problems)
    return problems


def _validate_one(index: int, item: Any, limits: Limits, bounds: TimeBounds, problems: list[Problem]) -> tuple | None:
    if type(item) is not dict:
        problems.append(Problem(index, "", f"a record must be a JSON object, got {_json_type(item)}"))
        return None
    before = len(problems)
    unknown = item.keys() - _KNOWN_FIELDS
    if unknown:
        names = ", ".join(map(_unknown_field, sorted(unknown)))
        problems.append(
            Problem(index, sorted(unknown)[0], f"unknown field(s) {names}; put custom fields under 'attributes'")
        )

    message = item.get("message")
    if type(message) is not str:
        reason = "is required" if message is None else f"must be a string, got {_json_type(message)}"
        problems.append(Problem(index, "message", reason))
    elif not message:
        problems.append(Problem(index, "message", "must not be empty"))
    elif len(message) * 4 > limits.max_message_bytes and len(message.encode()) > limits.max_message_bytes:
        problems.append(Problem(index, "message", f"is larger than {limits.max_message_bytes} bytes of UTF-8"))

    ts = _check_timestamp(index, item.get("timestamp"), bounds, problems)
    if SMALLEST_PLAUSIBLE_MS <= ts < bounds.earliest_ms:
        problems.append(Problem(index, "timestamp", _too_old(limits.retention_days, bounds.earliest_ms)))
    service = _check_name(index, "service", item.get("service"), DEFAULT_SERVICE, problems)
    log_type = _check_name(index, "log_type", item.get("log_type"), DEFAULT_LOG_TYPE, problems)
    severity = _check_severity(index, item.get("severity"), problems)
    attributes = _check_attributes(index, item.get("attributes"), limits, problems)
    client_id = _check_client_id(index, item.get("id"), problems)
    trace_id = _check_hex_id(index, "trace_id", item.get("trace_id"), TRACE_ID_HEX_DIGITS, problems)
    span_id = _check_hex_id(index, "span_id", item.get("span_id"), SPAN_ID_HEX_DIGITS, problems)
    if len(problems) != before:
        return None
    return ts, service, log_type, severity, message, attributes, client_id, trace_id, span_id


_KNOWN_FIELDS = frozenset(RECORD_FIELDS)
_valid_names: set[str] = set()  # names already checked: most batches repeat a handful of services


NAME_RULE = "must be 1-128 characters of A-Z a-z 0-9 . _ -"


def is_valid_name(value: str) -> bool:
    """A service or log_type name: 1-128 of A-Z a-z 0-9 . _ -"""
    if value in _valid_names:
        return True
    if type(value) is str and NAME_PATTERN.fullmatch(value):
        if len(_valid_names) < 10_000:
            _valid_names.add(value)
        return True
    return False


def _check_name(index: int, field: str, value: Any, default: str, problems: list[Problem]) -> str:
    if value is None:
        return default
    if type(value) is str and is_valid_name(value):
        return value
    problems.append(Problem(index, field, NAME_RULE))
    return default


def _check_severity(index: int, value: Any, problems: list[Problem]) -> int:
    if value is None:
        return Severity.INFO
    if type(value) is str:
        found = SEVERITY_ALIASES.get(value) or SEVERITY_ALIASES.get(value.lower())
        if found is not None:
            return found
    problems.append(Problem(index, "severity", _severity_rule(value)))
    return Severity.INFO


def _unknown_field(name: str) -> str:
    """An unknown field as a refusal names it, with the record field it likely meant: another logger's name for it
    (`level`), or a misspelling (`severty`)."""
    meant = [RECORD_FIELD_OF[name]] if name in RECORD_FIELD_OF else typo_of(name, sorted(_KNOWN_FIELDS))
    return f"{name} (did you mean {meant[0]!r}?)" if meant else name


_OTHER_LEVEL_WORDS = ", ".join(name for name in SEVERITY_ALIASES if name not in SEVERITY_NAMES)


def _severity_rule(value: Any) -> str:
    """Why a severity is refused, with the name a misspelt one likely meant (`eror`: error)."""
    meant = []
    if type(value) is str:  # a name before an alias (`eror` is as near `err`)
        meant = typo_of(value.lower(), SEVERITY_NAMES) or typo_of(value.lower(), SEVERITY_ALIASES)
    did_you_mean = f"did you mean {meant[0]!r}? " if meant else ""
    return f"{did_you_mean}must be one of {', '.join(SEVERITY_NAMES)} (or a word for one: {_OTHER_LEVEL_WORDS})"


def _check_timestamp(index: int, value: Any, bounds: TimeBounds, problems: list[Problem]) -> int:
    now_ms = bounds.now_ms
    if value is None:
        return now_ms
    if type(value) is int:
        ts = value
    elif type(value) is str:
        try:
            ts = parse_iso8601(value)
        except ValueError as e:
            problems.append(Problem(index, "timestamp", str(e)))
            return now_ms
    else:
        problems.append(
            Problem(
                index,
                "timestamp",
                "must be epoch milliseconds (integer) or an ISO-8601 string (without an offset: UTC)",
            )
        )
        return now_ms
    if ts < SMALLEST_PLAUSIBLE_MS:
        hint = "; it looks like epoch seconds, send milliseconds" if ts > 0 and type(value) is int else ""
        shown = repr(value) if type(value) is str else value  # (as sent: "0" named no time that was sent)
        problems.append(Problem(index, "timestamp", f"{shown} is before 1973-03-03{hint}"))
    elif ts > bounds.latest_ms:
        finer = finer_unit(ts) if ts >= LATEST_MS else None
        if finer is not None and finer[1] <= bounds.latest_ms:  # the clock is right, the unit is not
            unit, in_ms = finer
            problems.append(Problem(index, "timestamp", f"{ts} looks like epoch {unit}; send milliseconds ({in_ms})"))
        else:
            allowed = (bounds.latest_ms - now_ms) / 3_600_000
            problems.append(Problem(index, "timestamp", f"is more than {allowed:g} h in the future (check the clock)"))
    return ts


def _too_old(retention_days: int, kept_from: int) -> str:
    return (
        f"is older than the retention of {retention_days} days (records before {format_datetime(kept_from)} "
        "are deleted); it would not be kept"
    )


def _check_attributes(index: int, value: Any, limits: Limits, problems: list[Problem]) -> bytes | None:
    if value is None:
        return None
    if type(value) is not dict:
        problems.append(Problem(index, "attributes", f"must be a JSON object, got {_json_type(value)}"))
        return None
    if len(value) > limits.max_attribute_keys:
        problems.append(Problem(index, "attributes", f"has more than {limits.max_attribute_keys} keys"))
        return None
    if nests_deeper_than(value, limits.max_attribute_depth):
        problems.append(Problem(index, "attributes", f"is nested deeper than {limits.max_attribute_depth} levels"))
        return None
    encoded = _json_encode(value)
    if len(encoded) > limits.max_attribute_bytes:
        problems.append(Problem(index, "attributes", f"is larger than {limits.max_attribute_bytes} bytes as JSON"))
        return None
    return encoded


def nests_deeper_than(value: Any, depth: int) -> bool:
    """Whether containers nest more than `depth` levels (a flat object is 1). Looks one level at a time
    and no further than depth + 1, so a value nested hundreds deep costs no recursion."""
    level = [value]
    for _ in range(depth):
        level = [
            child
            for container in level
            for child in (container.values() if type(container) is dict else container)
            if type(child) is dict or type(child) is list
        ]
        if not level:
            return False
    return True


def _check_client_id(index: int, value: Any, problems: list[Problem]) -> bytes | None:
    if value is None:
        return None
    if type(value) is str:
        try:
            return ids.parse_uuid(value)
        except ValueError:
            pass
    problems.append(
        Problem(
            index,
            "id",
            "must be a UUID as text, 8-4-4-4-12 hex digits like 0b7e3f2a-5c1d-4e8f-9a6b-1c2d3e4f5a6b"
            " (it makes retries idempotent); leave it out to let the server assign the logId alone",
        )
    )
    return None


def hex_id(value: Any, digits: int) -> str | None:
    """A trace or span id as stored (lowercase hex), or None when `value` is not `digits` hex digits or is
    all zeros, which W3C Trace Context and OpenTelemetry define as no id at all."""
    if type(value) is not str or len(value) != digits:
        return None
    lower = value.lower()
    if _HEX.fullmatch(lower) is None or lower.count("0") == digits:
        return None
    return lower


_HEX = re.compile(r"[0-9a-f]+")


def _check_hex_id(index: int, field: str, value: Any, digits: int, problems: list[Problem]) -> str | None:
    if value is None:
        return None
    found = hex_id(value, digits)
    if found is None:
        problems.append(
            Problem(
                index,
                field,
                f"must be {digits} hex digits, not all zeros ({digits // 2} bytes as in W3C Trace Context); "
                "leave it out when the record belongs to no trace",
            )
        )
    return found


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number"}.get(
        type(value), type(value).__name__
    )


def record_to_dict(record: StoredRecord) -> dict[str, Any]:
    """The public JSON shape of a record (attributes kept as raw JSON so they are not re-decoded)."""
    out: dict[str, Any] = {
        "logId": ids.format_uuid(record.log_id),
        "timestamp": record.timestamp,
        "datetime": format_datetime(record.timestamp),
        "service": record.service,
        "log_type": record.log_type,
        "severity": SEVERITY_NAMES[record.severity],
        "message": record.message,
        "attributes": msgspec.Raw(record.attributes) if record.attributes else {},
    }
    if record.client_id is not None:
        out["id"] = ids.format_uuid(record.client_id)
    if record.trace_id is not None:
        out["trace_id"] = record.trace_id
    if record.span_id is not None:
        out["span_id"] = record.span_id
    if record.unreadable:
        out["unreadable"] = [{"field": name, "reason": reason} for name, reason in record.unreadable]
    return out
