"""The index names Elasticsearch refuses to create (its MetadataCreateIndexService rules, in the order it checks
them), and its words for why: loglake keeps no indices, but a shipper told that `PUT /Bad Name` or a bulk into
it worked would find nothing when it moves to a real cluster."""

from __future__ import annotations

INVALID_INDEX_NAME = "invalid_index_name_exception"
MAX_INDEX_NAME_BYTES = 255
# As Elasticsearch lists its forbidden characters (its set's order) in the reason.
_FORBIDDEN = frozenset('\\/*?"<>| ,')
_FORBIDDEN_LISTED = '[ , ", *, \\, <, |, ,, >, /, ?]'


def invalid_index_name(index: str) -> str | None:
    """Why Elasticsearch would refuse to create `index` (its reason, word for word), None when it would not."""
    if not index:
        why = "must not be empty"
    elif not _FORBIDDEN.isdisjoint(index):
        why = f"must not contain the following characters {_FORBIDDEN_LISTED}"
    elif "#" in index:
        why = "must not contain '#'"
    elif ":" in index:
        why = "must not contain ':'"
    elif index[0] in "_-+":
        why = "must not start with '_', '-', or '+'"
    elif (size := len(index.encode())) > MAX_INDEX_NAME_BYTES:
        why = f"index name is too long, ({size} > {MAX_INDEX_NAME_BYTES})"
    elif index in (".", ".."):
        why = "must not be '.' or '..'"
    elif index.lower() != index:
        why = "must be lowercase"
    else:
        return None
    return f"Invalid index name [{index}], {why}"
