"""The Elastic Common Schema (ECS) fields that give a loglake record's own fields: one list for the
Elasticsearch bulk API (protocols/elastic) and `loglake send` (line_records). ECS loggers and shippers
write a field dotted (`"service.name": "api"`) or nested (`"service": {"name": "api"}`)."""

from __future__ import annotations

from typing import NamedTuple


class Field(NamedTuple):
    dotted: str  # the field as one key: "log.level"
    parent: str  # the field nested: {"log": {"level": ...}}
    child: str


def _field(dotted: str) -> Field:
    parent, child = dotted.split(".")
    return Field(dotted, parent, child)


TIMESTAMP = "@timestamp"
LOG_LEVEL = _field("log.level")
SERVICE_NAME = _field("service.name")
TRACE_ID = _field("trace.id")
SPAN_ID = _field("span.id")
