"""Names and levels as shippers send them, made into a loglake record's service, log_type and severity."""

from __future__ import annotations

import functools
import re

from loglake.digits import is_ascii_digits
from loglake.field_names import NUMERIC_LEVELS
from loglake.model import SEVERITY_ALIASES, SEVERITY_NAMES, is_valid_name

_NOT_NAME = re.compile(r"[^A-Za-z0-9._-]+")
# The record severity (its label) of each level word loggers and shippers write (model.SEVERITY_ALIASES): looked up
# per record, the labels are worked out here, once.
_LEVELS = {name: severity.label for name, severity in SEVERITY_ALIASES.items()}


@functools.lru_cache(maxsize=4096)  # asked per record, of the few names a batch holds
def safe_name(value: str) -> str:
    """A service or log_type from a shipper's name (an index, a sourcetype, a service.name): each run of
    characters a name may not hold becomes `_`, cut to 128 characters ("nginx:access" -> "nginx_access")."""
    if is_valid_name(value):
        return value
    return _NOT_NAME.sub("_", value)[:128] or "_"


def level_severity(value: object) -> str | None:
    """The record severity of a level name (case-insensitive), None when it is not one we know."""
    if type(value) is not str:
        return None
    return _LEVELS.get(value) or _LEVELS.get(value.lower())


# OpenTelemetry's severity_number 1-24 in four steps per level: TRACE, DEBUG, INFO, WARN, ERROR, FATAL (logs data
# model), each the record severity it is; 0 (unspecified) none.
OTEL_SEVERITIES = [None, *(SEVERITY_NAMES[level] for level in (0, 0, 1, 2, 3, 4) for _ in range(4))]


def otel_severity(value: object) -> str | None:
    """The record severity of an OpenTelemetry severity number (sent as a number, or its digits as text); None
    for 0 (unspecified) and what is none."""
    if type(value) is str and is_ascii_digits(value) and len(value) <= 2:  # (not isdigit(): "²", which int() refuses)
        value = int(value)
    return OTEL_SEVERITIES[value] if type(value) is int and 0 < value < len(OTEL_SEVERITIES) else None


def logger_level_severity(value: object) -> str | None:
    """The record severity of a `level` as loggers write it: a level name, or pino's and bunyan's number (50 is
    error); None when it is neither."""
    return NUMERIC_LEVELS.get(value) if type(value) is int else level_severity(value)
