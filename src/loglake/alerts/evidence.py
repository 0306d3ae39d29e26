"""An alert's evidence records as readers get them (the API, the CLI, destinations). Pure."""

from __future__ import annotations

import json
from typing import Any


def with_attributes_decoded(record: Any) -> Any:
    """An evidence record with its `attributes` as the object they are (the lake keeps them as JSON text), as
    GET /logs/{id} answers them: a reader should not have to decode JSON inside JSON."""
    attributes = record.get("attributes") if isinstance(record, dict) else None
    if not isinstance(attributes, str):
        return record
    try:
        decoded = json.loads(attributes)
    except ValueError:  # text that is not JSON (a SQL rule's own column of that name): as it is
        return record
    return {**record, "attributes": decoded}
