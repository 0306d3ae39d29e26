"""An alert's evidence records as readers get them (the API, the CLI, destinations). Pure."""

from __future__ import annotations

import json
from typing import Any

import msgspec


def with_attributes_decoded(record: Any) -> Any:
    """An evidence record with its `attributes` as the object they are (the lake keeps them as JSON text), as
    GET /logs/{id} answers them: a reader should not have to decode JSON inside JSON. The object is that JSON text
    (msgspec.Raw), which an encoder writes as it is: decoded and encoded again, its numbers lost their text (1.50
    became 1.5, 1E2 100.0) before the API, the UI or a webhook saw them. Python's json writes it with
    `default=raw_decoded`. A record sent without attributes holds NULL in the lake, and `{}` as GET /logs/{id}
    answers it: a receiver reading `attributes.user` failed on the null."""
    attributes = record.get("attributes") if isinstance(record, dict) else None
    if attributes is None and isinstance(record, dict) and "attributes" in record:
        return {**record, "attributes": {}}
    if not isinstance(attributes, str):
        return record
    try:
        msgspec.json.decode(attributes)
    except msgspec.DecodeError:  # text that is not JSON (a SQL rule's own column of that name): as it is
        return record
    return {**record, "attributes": msgspec.Raw(attributes.encode())}


def raw_decoded(value: Any) -> Any:
    """For json.dumps's `default`: a with_attributes_decoded record's JSON text as its value; str of anything
    else."""
    return json.loads(bytes(value)) if isinstance(value, msgspec.Raw) else str(value)
