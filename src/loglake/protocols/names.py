"""Names and levels as shippers send them, made into a loglake record's service, log_type and severity."""

from __future__ import annotations

import re

from loglake.model import SEVERITY_ALIASES, Severity

_NOT_NAME = re.compile(r"[^A-Za-z0-9._-]+")
# Level names shippers send beyond the record's own aliases: syslog's (RFC 5424 keywords) and .NET's.
_MORE_LEVELS = {
    "emerg": Severity.CRITICAL,
    "emergency": Severity.CRITICAL,
    "alert": Severity.CRITICAL,
    "crit": Severity.CRITICAL,
    "panic": Severity.CRITICAL,
    "information": Severity.INFO,
    "informational": Severity.INFO,
    "verbose": Severity.DEBUG,
}


def safe_name(value: str) -> str:
    """A service or log_type from a shipper's name (an index, a sourcetype, a service.name): each run of
    characters a name may not hold becomes `_`, cut to 128 characters ("nginx:access" -> "nginx_access")."""
    return _NOT_NAME.sub("_", value)[:128] or "_"


def level_severity(value: object) -> str | None:
    """The record severity of a level name (case-insensitive), None when it is not one we know."""
    if type(value) is not str:
        return None
    lowered = value.lower()
    found = SEVERITY_ALIASES.get(lowered) or _MORE_LEVELS.get(lowered)
    return found.label if found is not None else None
