"""Loki's mapping of a stream's entries, whose structured metadata repeats a few sets: each entry gets its own
set's record, whichever sets change a field and in whatever order they come."""

from __future__ import annotations

from loglake.protocols import loki


def test_entries_repeating_sets_of_metadata_each_get_their_own_sets_fields_and_attributes() -> None:
    given = [
        {},
        {"level": "error", "user": "ann"},
        {"user": "bob"},
        {},
        {"user": "bob"},
        {"level": "error", "user": "ann"},
    ]
    metadata = [tuple(pairs.items()) for pairs in given * 500]
    stream = loki.Stream({"job": "api", "level": "info"}, list(range(len(metadata))), ["x"] * len(metadata), metadata)
    found, starts = loki.columns([stream])
    assert starts == [0]
    expected = {
        (): ("info", b""),
        (("level", "error"), ("user", "ann")): ("error", b'{"user":"ann"}'),
        (("user", "bob"),): ("info", b'{"user":"bob"}'),
    }
    assert found.severities == [expected[pairs][0] for pairs in metadata]
    assert found.attributes == [expected[pairs][1] for pairs in metadata]
    assert found.services == ["api"] * len(metadata)
