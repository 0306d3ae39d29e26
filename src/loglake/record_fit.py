"""Making a record that a shipper built fit the record limits, dropping nothing: one rule for `loglake send`
(line_records) and the Python logging handler (logging_lines). No I/O.

One rule: a value the record cannot take (as model.record_problems judges it) is kept as an attribute.
A message too large is cut at a UTF-8 boundary and its size kept in the attribute `loglake.truncated_bytes`;
attributes nested too deep are kept as JSON text at the deepest level allowed; attributes beyond the most
keys or bytes allowed are kept together as JSON text in `loglake.overflow` (cut, and marked so, when even
that is too large).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from loglake.model import Limits, nests_deeper_than, record_problems

TRUNCATED_BYTES = "loglake.truncated_bytes"  # the size of a message that was cut, in UTF-8 bytes
OVERFLOW = "loglake.overflow"  # the attributes that did not fit, as JSON text
INVALID_UTF8 = "loglake.invalid_utf8"  # a record whose text had what is no UTF-8, replaced by U+FFFD
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.decode


def fit_record(fields: dict[str, Any], marks: dict[str, Any], limits: Limits, now_ms: int, notes: list[str]) -> dict:
    """`fields` (a non-empty `message` string and any other record fields) made to fit `limits`, with
    the attributes `marks` added; says what it changed in `notes`."""
    fields = dict(fields)
    attributes = dict(fields.pop("attributes", None) or {})
    refused = {problem.field for problem in record_problems(fields, limits, now_ms)}
    if "message" in refused:
        fields["message"], marks = fit_message(fields["message"], marks, limits, notes)
    for name in sorted(refused - {"message"}):
        attributes[_free_name(attributes, name)] = fields.pop(name)
    attributes = fit_attributes(attributes, marks, limits, notes)
    return {**fields, "attributes": attributes} if attributes else fields


def fit_message(message: str, marks: dict[str, Any], limits: Limits, notes: list[str]) -> tuple[str, dict[str, Any]]:
    """`message` within the size limit (cut at a UTF-8 boundary), and `marks` with its size in bytes when it
    was cut."""
    if len(message) * 4 <= limits.max_message_bytes:  # no text this long can be over: spare the encoding
        return message, marks
    data = message.encode()
    if len(data) <= limits.max_message_bytes:
        return message, marks
    notes.append(f"message of {len(data)} bytes cut to {limits.max_message_bytes} (size kept in {TRUNCATED_BYTES})")
    return data[: limits.max_message_bytes].decode(errors="ignore"), {**marks, TRUNCATED_BYTES: len(data)}


def fit_attributes(attributes: dict[str, Any], marks: dict[str, Any], limits: Limits, notes: list[str]) -> dict:
    """`attributes` and `marks` within the limits of depth, keys and bytes (the marks are always kept)."""
    if nests_deeper_than(attributes, limits.max_attribute_depth):
        attributes = _fold_deep(attributes, 1, limits.max_attribute_depth)
    fitted = {**attributes, **marks}
    if len(fitted) <= limits.max_attribute_keys and len(_encode(fitted)) <= limits.max_attribute_bytes:
        return fitted
    kept, overflow = dict(marks), {}
    size = len(_encode(kept))
    room = limits.max_attribute_bytes - limits.max_attribute_bytes // 8  # the rest is for the overflow
    for name, value in attributes.items():
        if name in marks:
            continue
        item = len(_encode(name)) + len(_encode(value)) + 2  # with its colon and comma
        if len(kept) < limits.max_attribute_keys - 1 and size + item <= room:
            kept[name] = value
            size += item
        else:
            overflow[name] = value
    text = _cut_to_fit(_encode(overflow).decode(), limits.max_attribute_bytes - size - len(_encode(OVERFLOW)) - 2)
    kept[OVERFLOW] = text
    cut = " (cut: too large even so)" if len(text) < len(_encode(overflow).decode()) else ""
    notes.append(f"{len(overflow)} attribute(s) beyond the limits kept as JSON text in {OVERFLOW}{cut}")
    return kept


def fit_attributes_json(
    attributes: dict[str, Any], marks: dict[str, Any], limits: Limits, notes: list[str], encode: Callable[[Any], bytes]
) -> bytes:
    """fit_attributes as JSON made by `encode` (which may make values JSON cannot hold into ones it can, as
    the logging handler's gives their str()). Most attributes fit as they are, and that is told from their
    JSON without decoding it; the others are decoded and fitted."""
    data = encode(attributes)
    if not marks and len(attributes) <= limits.max_attribute_keys and len(data) <= limits.max_attribute_bytes:
        depth = limits.max_attribute_depth
        # No more brackets than levels (in strings too) cannot nest too deep: most records end here.
        if data.count(b"{") + data.count(b"[") <= depth or not nests_deeper_than(_decode(data), depth):
            return data
    return _encode(fit_attributes(_decode(data), marks, limits, notes))


def _fold_deep(container: dict | list, level: int, depth: int) -> dict | list:
    """The container (at nesting `level`) with every container below `depth` as its JSON text."""

    def fold(value: Any) -> Any:
        if type(value) is dict or type(value) is list:
            return _encode(value).decode() if level == depth else _fold_deep(value, level + 1, depth)
        return value

    if type(container) is dict:
        return {name: fold(value) for name, value in container.items()}
    return [fold(value) for value in container]


def _cut_to_fit(text: str, room: int) -> str:
    """`text`, or as much of it as fits `room` bytes as a JSON string with a mark saying it was cut."""
    if len(_encode(text)) <= room:
        return text
    mark = f"... [cut: {len(text.encode())} bytes in all]"
    data = text.encode()
    low, high = 0, len(data)  # the most bytes of the text that fit with the mark: escapes make it no simple sum
    while low < high:
        middle = (low + high + 1) // 2
        if len(_encode(data[:middle].decode(errors="ignore") + mark)) <= room:
            low = middle
        else:
            high = middle - 1
    return data[:low].decode(errors="ignore") + mark


def _free_name(attributes: dict[str, Any], name: str) -> str:
    """`name`, or if an attribute has it, `name#2`, `name#3`, ..."""
    found, number = name, 1
    while found in attributes:
        number += 1
        found = f"{name}#{number}"
    return found
