"""What the protocols share when they map their records onto loglake's: service names, trace context in
fields (and in a W3C traceparent), and rejections."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from loglake.model import NAME_PATTERN, SPAN_ID_HEX_DIGITS, TRACE_ID_HEX_DIGITS, Problem, hex_id, is_valid_name
from loglake.times import SMALLEST_PLAUSIBLE_MS, epoch_unit

_NOT_IN_NAMES = re.compile(r"[^A-Za-z0-9._-]")
SHOWN_PROBLEMS = 5  # of a batch's rejected records, named in the protocol's answer


def service_name(given: str) -> str | None:
    """A shipper's service name as a loglake service: as it is when valid, else with each character
    outside A-Z a-z 0-9 . _ - replaced by `_` and cut to 128 (OpenTelemetry's default
    `unknown_service:python`, Loki's `my app`); None when nothing is left (the default service)."""
    if is_valid_name(given):
        return given
    name = _NOT_IN_NAMES.sub("_", given)[:128]
    return name if NAME_PATTERN.fullmatch(name) else None


# Where a log format has no place of its own for them, the names of the trace and span ids, as OpenTelemetry
# names them ("Trace Context in Legacy Formats"): Loki's labels and structured metadata, Splunk HEC's fields.
TRACE_ID_FIELD, SPAN_ID_FIELD = "trace_id", "span_id"
ID_FIELDS = ((TRACE_ID_FIELD, TRACE_ID_HEX_DIGITS), (SPAN_ID_FIELD, SPAN_ID_HEX_DIGITS))


def take_ids(fields: dict[str, Any]) -> tuple[str | None, str | None]:
    """The trace and span ids that fields (ID_FIELDS) give as the record keeps them (model.hex_id: 32 and 16 hex
    digits, not all zeros; lowercase), taken out of the fields; a value that is no id stays, as sent."""
    # (each by name: asked per distinct set of fields, where a generator over ID_FIELDS took twice the time)
    trace_id = hex_id(fields.get(TRACE_ID_FIELD), TRACE_ID_HEX_DIGITS)
    span_id = hex_id(fields.get(SPAN_ID_FIELD), SPAN_ID_HEX_DIGITS)
    if trace_id is not None:
        del fields[TRACE_ID_FIELD]
    if span_id is not None:
        del fields[SPAN_ID_FIELD]
    return trace_id, span_id


# W3C Trace Context's traceparent: version, trace id, parent (span) id, flags; a later version may add fields.
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}(-.*)?", re.DOTALL)


def traceparent_ids(value: Any) -> tuple[str, str] | None:
    """The trace and span ids of a W3C `traceparent` (`00-<trace id>-<parent id>-<flags>`, lowercase hex), None
    when `value` is not one: version ff, more after the flags of version 00, or an id of all zeros."""
    found = _TRACEPARENT.fullmatch(value) if type(value) is str else None
    if found is None or found[1] == "ff" or (found[1] == "00" and found[4] is not None):
        return None
    trace_id, span_id = hex_id(found[2], TRACE_ID_HEX_DIGITS), hex_id(found[3], SPAN_ID_HEX_DIGITS)
    return (trace_id, span_id) if trace_id is not None and span_id is not None else None


def rejection_message(problems: list[Problem], total: int, name: Callable[[int], str]) -> str:
    """One line saying how many of `total` records were refused and why, naming the first few (`name`: a
    record's index as the error names it)."""
    bad = sorted({p.index for p in problems})
    shown = "; ".join(f"{name(p.index)}: {p.field or 'record'} {p.reason}" for p in problems[:SHOWN_PROBLEMS])
    more = f"; and {len(problems) - SHOWN_PROBLEMS} more problem(s)" if len(problems) > SHOWN_PROBLEMS else ""
    return f"{len(bad)} of {total} log record(s) refused: {shown}{more}"


SMALLEST_PLAUSIBLE_NANOS = SMALLEST_PLAUSIBLE_MS * 1_000_000  # Unix nanoseconds before this: not nanoseconds
# The time error advice shows (2026-11-02T00:00:00Z): one a reader can send back and have taken, so within the
# retention's reach of today (tests send it).
EXAMPLE_SECONDS = 1793577600
NANOS_EXAMPLE = f'"{EXAMPLE_SECONDS}000000000"'  # as Loki and OTLP/JSON take a time: Unix nanoseconds in a string
SECONDS_EXAMPLE = f"{EXAMPLE_SECONDS}.123"  # as Splunk HEC takes one: epoch seconds, a fraction in decimals


def nanos_advice(nanos: int) -> str:
    """What a time too small to be Unix nanoseconds probably is (times.epoch_unit), and what to send."""
    unit = epoch_unit(nanos)
    advice = f"send Unix nanoseconds (19 digits), like {NANOS_EXAMPLE}"
    return f"it looks like epoch {unit}; {advice}" if unit else advice
