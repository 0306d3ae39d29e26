"""What the protocols share when they map their records onto loglake's: service names and rejections."""

from __future__ import annotations

import re

from loglake.model import NAME_PATTERN, Problem, is_valid_name

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


def rejection_message(problems: list[Problem], total: int) -> str:
    """One line saying how many of `total` records were refused and why, naming the first few."""
    bad = sorted({p.index for p in problems})
    shown = "; ".join(f"record {p.index}: {p.field or 'record'} {p.reason}" for p in problems[:SHOWN_PROBLEMS])
    more = f"; and {len(problems) - SHOWN_PROBLEMS} more problem(s)" if len(problems) > SHOWN_PROBLEMS else ""
    return f"{len(bad)} of {total} log record(s) refused: {shown}{more}"
