"""Tests of the protocols' decoding and mapping (pure: no server)."""

from __future__ import annotations

from loglake.protocols.columns import RecordColumns, listed


def column_rows(found: RecordColumns, *more: list) -> list[tuple]:
    """The records of a protocol's columns as tuples (message, timestamp, service, severity, log type,
    attributes, then the columns in `more`), to compare whole records at once."""
    columns = (found.messages, found.timestamps, found.services, found.severities, found.log_types, found.attributes)
    return list(zip(*map(listed, columns), *more, strict=True))
