"""record_fit.fit_attributes_json, as the logging handler uses it: attributes that fit come back as their own
JSON, whatever their text holds; the others are fitted as `loglake send` fits them."""

from __future__ import annotations

import json

import msgspec

from loglake.model import Limits
from loglake.record_fit import fit_attributes_json

ENCODE = msgspec.json.Encoder(enc_hook=str).encode  # the logging handler's: str() of what JSON cannot hold


def test_brackets_in_text_are_no_nesting() -> None:
    attributes = {"query": "[[[[[[{{{{{{", "rows": [[1], [2]]}
    assert fit_attributes_json(attributes, {}, Limits(), [], ENCODE) == ENCODE(attributes)


def test_containers_the_encoder_makes_count_as_levels() -> None:
    attributes = {"a": ({"b": [{"c": ({"d": 1},)}]},), "id": Named()}  # tuples become arrays
    notes: list[str] = []
    fitted = json.loads(fit_attributes_json(attributes, {"mark": 1}, Limits(), notes, ENCODE))
    # levels: the attributes 1, a's array 2, {b} 3, b's array 4, {c} 5: c's array (6) is kept as text
    assert fitted == {"a": [{"b": [{"c": '[{"d":1}]'}]}], "id": "named", "mark": 1}
    assert notes == []  # folding is no note: it keeps everything in place


class Named:
    def __str__(self) -> str:
        return "named"
