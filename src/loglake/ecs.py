"""The Elastic Common Schema (ECS) fields that give a loglake record's own fields: one list for the
Elasticsearch bulk API (protocols/elastic_sources) and `loglake send` (line_records). ECS loggers and shippers
write a field dotted (`"service.name": "api"`) or nested (`"service": {"name": "api"}`)."""

from __future__ import annotations

# A field as (dotted, parent, child): "log.level" as one key, or nested as {"log": {"level": ...}}. A plain
# tuple, not a NamedTuple: the Elasticsearch bulk mapping unpacks one per document and field, and a tuple
# subclass unpacks several times slower.
Field = tuple[str, str, str]


def _field(dotted: str) -> Field:
    parent, child = dotted.split(".")
    return dotted, parent, child


TIMESTAMP = "@timestamp"
LOG_LEVEL = _field("log.level")
SERVICE_NAME = _field("service.name")
TRACE_ID = _field("trace.id")
SPAN_ID = _field("span.id")
