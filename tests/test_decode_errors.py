"""msgspec's validation errors in words: what a protocol's or route's answer says of a value sent wrong."""

from __future__ import annotations

from typing import Annotated

import msgspec
import pytest

from loglake.decode_errors import in_words, lone_surrogates_replaced, not_json_reason


class Entry(msgspec.Struct, forbid_unknown_fields=True):
    line: str
    labels: dict[str, str] = {}
    host: str | None = None
    count: Annotated[int, msgspec.Meta(ge=0)] = 0
    values: list[int] = []


@pytest.mark.parametrize(
    ("sent", "words"),
    [
        (b'{"line": 5}', "line: must be a string, not an integer"),
        (b'{"line": "l", "labels": {"app": 5}}', "labels: each value must be a string, not an integer"),
        (b'{"line": "l", "host": true}', "host: must be a string or null, not a boolean"),
        (b'{"line": "l", "count": -1}', "count: must be an integer >= 0"),
        (b'{"line": "l", "values": [1, "2"]}', "values[1]: must be an integer, not a string"),
        (b'{"labels": {}}', "the body has no `line`, which is required"),
        (b'{"line": "l", "extra": 1}', "the body has an unknown field `extra`"),
        (b"[]", "the body must be an object, not an array"),
    ],
)
def test_a_value_sent_wrong_is_named_by_its_path_and_what_it_must_be(sent: bytes, words: str) -> None:
    with pytest.raises(msgspec.ValidationError) as refused:
        msgspec.json.decode(sent, type=Entry)
    assert in_words(refused.value) == words


def test_the_path_goes_under_the_name_of_what_was_decoded() -> None:
    with pytest.raises(msgspec.ValidationError) as refused:
        msgspec.json.decode(b'[{"line": "l"}, {"line": 1}]', type=list[Entry])
    assert in_words(refused.value, "entries") == "entries[1].line: must be a string, not an integer"
    assert in_words("JSON is malformed: trailing characters") == "JSON is malformed: trailing characters"


@pytest.mark.parametrize(
    ("sent", "reason"),
    [
        (b'{"message": "x", ', "it ends before the JSON does (was it cut short?)"),
        (b"[1, 2", "it ends before the JSON does (was it cut short?)"),
        (b'{"message": "\\ud800"}', "a string holds a lone surrogate escape such as \\ud800, which is no character"),
        (
            b'{"message": "a \\ud800 b"}',
            "a string holds a lone surrogate escape such as \\ud800, which is no character",
        ),
        # an escaped backslash before "ud800" is text, not an escape: this body is only cut short
        (b'{"message": "\\\\ud800', "it ends before the JSON does (was it cut short?)"),
    ],
)
def test_a_body_cut_short_is_told_from_a_lone_surrogate(sent: bytes, reason: str) -> None:
    with pytest.raises(msgspec.DecodeError) as raised:
        msgspec.json.decode(sent)
    assert not_json_reason(raised.value, sent) == reason


@pytest.mark.parametrize(
    ("text", "made"),
    [
        (rb'"x \ud83d y"', rb'"x \ufffd y"'),  # a high one alone
        (rb'"\udc00"', rb'"\ufffd"'),  # a low one alone
        (rb'"\ud83d\ude80 ok"', None),  # a pair: a character
        (rb'"\ud83d\ud83d\ude80"', rb'"\ufffd\ud83d\ude80"'),  # a high one, then a pair
        (rb'"\ude80\ud83d"', rb'"\ufffd\ufffd"'),  # the wrong way round
        (rb'"\\ud83d"', None),  # an escaped backslash, then text
        (rb'"\\\ud83d"', rb'"\\\ufffd"'),  # an escaped backslash, then an escape
        (rb'"\ud83d\\ude80"', rb'"\ufffd\\ude80"'),  # a high one, then text
    ],
)
def test_lone_surrogate_escapes_are_made_u_fffd_and_pairs_kept(text: bytes, made: bytes | None) -> None:
    assert lone_surrogates_replaced(text) == made
