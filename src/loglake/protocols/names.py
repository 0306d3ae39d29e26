"""Names and levels as shippers send them, made into a loglake record's service, log_type and severity."""

from __future__ import annotations

import functools
import re

from loglake.model import SEVERITY_ALIASES, Severity, is_valid_name

_NOT_NAME = re.compile(r"[^A-Za-z0-9._-]+")
# Each level word loggers and shippers write for a record's severity: the record's own aliases, syslog's
# (RFC 5424 keywords), GCP's, .NET's (Serilog), winston's, logrus's and zap's. The one table of them, for the
# protocols and `loglake send` (line_records). Looked up per record: the labels are worked out here, once.
_LEVELS = {name: severity.label for name, severity in SEVERITY_ALIASES.items()} | {
    "emerg": Severity.CRITICAL.label,  # syslog
    "emergency": Severity.CRITICAL.label,  # syslog, GCP
    "alert": Severity.CRITICAL.label,  # syslog
    "crit": Severity.CRITICAL.label,  # syslog
    "panic": Severity.CRITICAL.label,  # logrus, zap
    "dpanic": Severity.ERROR.label,  # zap: logged as an error in production
    "information": Severity.INFO.label,  # Serilog
    "informational": Severity.INFO.label,  # syslog
    "verbose": Severity.DEBUG.label,  # Serilog, winston
    "silly": Severity.DEBUG.label,  # winston
}


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
