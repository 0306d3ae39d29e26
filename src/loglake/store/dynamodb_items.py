"""A record as an item of the DynamoDB hot store's table (store/dynamodb.py describes its keys) and back: what the
store writes and reads, and what a DynamoDB stream carries to the lake (aws/stream_flush.py)."""

from __future__ import annotations

import binascii
from collections.abc import Callable
from typing import Any

from loglake import readback
from loglake.model import NewRecord, StoredRecord
from loglake.store.base import UNINDEXED_LOG_TYPE, UNINDEXED_SEVERITY

HOUR_MS = 3_600_000


def sharded(value: object, shard: int) -> str:
    """An index key spread over shards: "<value>#<shard>"."""
    return f"{value}#{shard}"


def record_item(r: NewRecord, expires_at: int, shard: int) -> dict[str, dict]:
    """A record as its table item (the image a DynamoDB stream carries); `shard` spreads its index keys."""
    item: dict[str, dict] = {
        "service_name": {"S": r.service},
        "sk": {"B": r.log_id},
        "ts": {"N": str(r.timestamp)},
        "log_type": {"S": r.log_type},
        "severity": {"N": str(int(r.severity))},
        "message": {"S": r.message},
        "time_bucket": {"S": sharded(r.timestamp // HOUR_MS, shard)},
        "expires_at": {"N": str(expires_at)},
    }
    if r.attributes:
        item["attributes"] = {"S": r.attributes.decode()}
    if r.client_id is not None:
        item["client_id"] = {"B": r.client_id}
    if r.trace_id is not None:
        item["trace_id"] = {"S": r.trace_id}
    if r.span_id is not None:
        item["span_id"] = {"S": r.span_id}
    if r.log_type != UNINDEXED_LOG_TYPE:
        item["log_type_key"] = {"S": sharded(r.log_type, shard)}
    if r.severity != UNINDEXED_SEVERITY:
        item["severity_key"] = {"S": sharded(int(r.severity), shard)}
    return item


def record_from_item(item: dict, binary: Callable[[dict], bytes] = lambda value: value["B"]) -> StoredRecord | None:
    """A record from its table item (record_item's inverse), its unreadable values named (readback.py);
    None when its log id cannot be read. `binary` reads a binary attribute (a stream image as Lambda
    hands it over has them base64-encoded)."""
    log_id = readback.stored_id(_attribute(item, "sk", binary), "DynamoDB")
    if log_id is None:
        return None
    return readback.record(
        log_id,
        _number(item, "ts"),
        _attribute(item, "service_name", _string),
        _attribute(item, "log_type", _string),
        _number(item, "severity"),
        _attribute(item, "message", _string),
        _attribute(item, "attributes", _string),
        _attribute(item, "client_id", binary),
        _attribute(item, "trace_id", _string),
        _attribute(item, "span_id", _string),
    )


def _attribute(item: dict, name: str, read: Callable[[dict], Any]) -> Any:
    """An attribute's value as `read` gets it; None when absent, as stored when `read` cannot get it
    (readback then names it)."""
    value = item.get(name)
    if value is None:
        return None
    try:
        return read(value)
    except (KeyError, TypeError, ValueError, binascii.Error):
        return value


def _string(value: dict) -> str:
    return value["S"]


def _number(item: dict, name: str) -> Any:
    return _attribute(item, name, lambda value: int(value["N"]))
