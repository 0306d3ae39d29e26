"""Configuration problems name the field and say what a good value is, for optional fields too."""

from __future__ import annotations

from typing import Annotated

import msgspec

from loglake.config_files import one_of, problems_of, whole

Port = Annotated[int, msgspec.Meta(ge=1, le=65535, description="a port from 1 to 65535")]
Name = Annotated[str, msgspec.Meta(pattern=whole("[a-z]+"), description="a name in lower-case letters")]


class _Service(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    port: Port | None = None


def test_an_optional_field_given_a_bad_value_says_what_a_good_one_is() -> None:
    assert problems_of({"name": "web", "port": 70000}, _Service) == ["port: 70000 is not a port from 1 to 65535"]
    assert problems_of({"name": "Web1", "port": None}, _Service) == ["name: 'Web1' is not a name in lower-case letters"]


def test_every_problem_at_once() -> None:
    assert problems_of({"name": "", "port": "x", "extra": 1}, _Service) == [
        "the configuration: unknown field extra (allowed: name, port)",
        "name: '' is not a name in lower-case letters",
        "port: 'x' is not a port from 1 to 65535",
    ]


def test_one_of_takes_only_its_words_as_written() -> None:
    Unit = Annotated[str, one_of(("ms", "s.x"))]
    assert problems_of("s.x", Unit) == [] and problems_of("ms", Unit) == []
    assert problems_of("sax", Unit) == ["the configuration: 'sax' is not one of ms, s.x"]  # a dot is a dot
    assert problems_of("ms\n", Unit) == ["the configuration: 'ms\\n' is not one of ms, s.x"]
