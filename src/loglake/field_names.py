"""The names other loggers give a record's fields (`level` for `severity`, `msg` for `message`, ...): the fields
`loglake send` reads a structured line's message, severity, time, names and ids from (line_records), and what
`POST /logs`, which takes the record's own names only, tells a client that sent one of them (model)."""

from __future__ import annotations

from loglake import ecs

# A field of a structured line: its name, or an ECS field, read dotted or nested as the Elasticsearch endpoint
# reads it (`"log.level": "info"` or `"log": {"level": "info"}`).
FieldName = str | ecs.Field

# In order of preference: the first one with a usable value is taken (and leaves the attributes).
MESSAGE_FIELDS: tuple[FieldName, ...] = ("message", "msg", "MESSAGE")
SEVERITY_FIELDS: tuple[FieldName, ...] = ("severity", "level", "levelname", ecs.LOG_LEVEL, "PRIORITY")
TIME_FIELDS: tuple[FieldName, ...] = ("timestamp", "time", "ts", ecs.TIMESTAMP, "__REALTIME_TIMESTAMP")
NAME_FIELDS: dict[str, tuple[FieldName, ...]] = {"service": ("service", ecs.SERVICE_NAME), "log_type": ("log_type",)}
# Trace context as loggers write it (OpenTelemetry's log correlation, W3C names, ECS).
TRACE_ID_FIELDS: tuple[FieldName, ...] = ("trace_id", "traceId", ecs.TRACE_ID)
SPAN_ID_FIELDS: tuple[FieldName, ...] = ("span_id", "spanId", ecs.SPAN_ID)
# pino's and bunyan's numeric levels: trace, debug, info, warn, error, fatal.
NUMERIC_LEVELS = {10: "debug", 20: "debug", 30: "info", 40: "warning", 50: "error", 60: "critical"}


def _record_field_of() -> dict[str, str]:
    fields = {
        "message": MESSAGE_FIELDS,
        "severity": SEVERITY_FIELDS,
        "timestamp": TIME_FIELDS,
        "trace_id": TRACE_ID_FIELDS,
        "span_id": SPAN_ID_FIELDS,
        **NAME_FIELDS,
    }
    return {
        name if type(name) is str else name[0]: field
        for field, names in fields.items()
        for name in names
        if name != field
    }


# "level" -> "severity", "log.level" -> "severity", "@timestamp" -> "timestamp", ...
RECORD_FIELD_OF: dict[str, str] = _record_field_of()
